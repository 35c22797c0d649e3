//! `git hop-patch validate [--json]`: the validation of `merge`, for CI and
//! before asking for review; commits, tags and pushes nothing
//! (docs/releases.md, docs/ci.md).

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::machine::{self, JsonError, Verdict};
use crate::origin::{Origin, REMOTE};
use crate::preconditions;
use crate::project::{Project, RELEASE_PREFIX};
use crate::validation;

/// Validate the current patch with its release, as merge would, and stage nothing
///
/// Run the validation of git hop-patch merge (in a temporary worktree and
/// database: the release, as origin has it, merged with the patch; a fresh
/// database from the production snapshot with the staged patches and this
/// one; the regenerated code compared with the committed code; the tests)
/// and commit, tag and push nothing. Exit 0 when it passes, 1 when it
/// fails. With --json, print the result as JSON on stdout (the progress
/// goes to stderr)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print the result as JSON on stdout (progress on stderr)
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The `--json` document.
#[derive(Serialize, Debug)]
pub struct Report {
    pub schema_version: u32,
    pub command: &'static str,
    pub patch: Option<String>,
    pub release: Option<String>,
    /// The release head and patch commit validated.
    pub release_commit: Option<String>,
    pub patch_commit: Option<String>,
    pub passed: bool,
    pub error: Option<JsonError>,
}

/// Who makes the validation's merge commit, which nothing keeps: a CI
/// runner may have no git identity.
pub const IDENTITY: &[(&str, &str)] = &[
    ("GIT_AUTHOR_NAME", "git-hop validate"),
    ("GIT_AUTHOR_EMAIL", "git-hop@localhost"),
    ("GIT_COMMITTER_NAME", "git-hop validate"),
    ("GIT_COMMITTER_EMAIL", "git-hop@localhost"),
];

impl Verdict for Report {
    fn set_verdict(&mut self, passed: bool, error: Option<JsonError>) {
        self.passed = passed;
        self.error = error;
    }
}

pub fn run(args: Args) -> Result<()> {
    let mut report = Report {
        schema_version: machine::SCHEMA_VERSION,
        command: "git hop-patch validate",
        patch: None,
        release: None,
        release_commit: None,
        patch_commit: None,
        passed: false,
        error: None,
    };
    let result = machine::judged(args.json, &mut report, |report| validate(&args, report));
    if !args.json && result.is_ok() {
        println!(
            "\nvalidated {} with release {}: it would merge (nothing was committed or pushed)",
            report.patch.as_deref().unwrap_or(""),
            report.release.as_deref().unwrap_or("")
        );
    }
    result
}

fn validate(args: &Args, report: &mut Report) -> Result<()> {
    let project = Project::from_cwd()?;
    let command = "git hop-patch validate";
    preconditions::development(&project, command)?;
    let id = preconditions::on_patch_branch(&project, command)?;
    report.patch = Some(id.to_string());
    preconditions::clean(&project)?;
    let (version, file) = preconditions::release_of_patch(&project, &id)?;
    report.release = Some(version.to_string());
    if file.state(id.as_str()) == Some(crate::release_file::PatchState::Staged) {
        return Err(
            Error::new(format!("{id} is staged in release {version} already"))
                .hint("git hop-release validate validates the release with its staged patches"),
        );
    }
    let git = &project.git;
    let branch = format!("{RELEASE_PREFIX}{version}");
    let patch_commit = git.head()?;
    // The release as origin has it: what merge would land on.
    let release_commit = match Origin::of(git)? {
        Some(o) => {
            o.fetch()?;
            git.rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))?
                .ok_or_else(|| Error::new(format!("{branch} does not exist on origin")))?
        }
        None => git
            .rev_parse(&format!("refs/heads/{branch}"))?
            .ok_or_else(|| Error::new(format!("branch {branch} not found")))?,
    };
    report.release_commit = Some(release_commit.clone());
    report.patch_commit = Some(patch_commit.clone());
    let working = project.database(&args.db.options(None))?;
    validation::validate_merge(
        &project,
        &working,
        &version,
        &release_commit,
        &patch_commit,
        &id,
        IDENTITY,
        None,
    )
    .map(|_| ())
}
