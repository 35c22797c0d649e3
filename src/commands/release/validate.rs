//! `git hop-release validate [VERSION] [--json]`: the validation of
//! `promote`, for CI on a release branch; commits, tags and pushes nothing
//! (docs/releases.md, docs/ci.md).

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::machine::{self, JsonError, Verdict};
use crate::project::{BranchRole, Project, RELEASE_PREFIX};
use crate::release;
use crate::release_file::{self, PatchesFile};
use crate::validation::{self, Worktree};
use crate::version::Version;

/// Validate a release as promote would, and promote nothing
///
/// Run the validation of git hop-release promote on the release of the
/// current branch (or VERSION), as origin has it: the lint of its staged
/// patches; in a temporary worktree and database, the production snapshot
/// and the staged patches in TOML order, the regenerated code compared with the committed code, the
/// tests, and the proof that the model snapshot dumped from it reloads.
/// Commit, tag and push nothing. Candidates not merged yet are listed, not
/// validated (merge them with git hop-patch merge). Exit 0 when it passes,
/// 1 when it fails. With --json, print the result as JSON on stdout (the
/// progress goes to stderr)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The release (X.Y.Z); default: the current branch's
    #[arg(value_name = "VERSION")]
    pub release: Option<String>,
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
    pub release: Option<String>,
    /// The release head validated.
    pub release_commit: Option<String>,
    /// The staged patches, in the order production will run them.
    pub staged: Vec<String>,
    /// Candidates not merged yet (not validated).
    pub candidates: Vec<String>,
    pub passed: bool,
    pub error: Option<JsonError>,
}

impl Verdict for Report {
    fn set_verdict(&mut self, passed: bool, error: Option<JsonError>) {
        self.passed = passed;
        self.error = error;
    }
}

pub fn run(args: Args) -> Result<()> {
    // Checked first: a usage error is no validation result.
    let asked = match &args.release {
        Some(v) => Some(v.parse::<Version>().map_err(|e| {
            Error::usage(format!("invalid version {v:?}: {}", e.message))
                .hint("give a release in preparation as X.Y.Z")
        })?),
        None => None,
    };
    let mut report = Report {
        schema_version: machine::SCHEMA_VERSION,
        command: "git hop-release validate",
        release: None,
        release_commit: None,
        staged: Vec::new(),
        candidates: Vec::new(),
        passed: false,
        error: None,
    };
    let result = machine::judged(args.json, &mut report, |report| {
        validate(&args, asked, report)
    });
    if !args.json && result.is_ok() {
        println!(
            "\nvalidated release {} ({} staged patch(es)): it would promote (nothing was committed, tagged or pushed)",
            report.release.as_deref().unwrap_or(""),
            report.staged.len()
        );
        if !report.candidates.is_empty() {
            println!(
                "not validated, candidates not merged yet: {}",
                report.candidates.join(", ")
            );
        }
    }
    result
}

fn validate(args: &Args, asked: Option<Version>, report: &mut Report) -> Result<()> {
    let project = Project::from_cwd()?;
    crate::preconditions::development(&project, "git hop-release validate")?;
    let version = match asked {
        Some(v) => v,
        None => match project.role() {
            BranchRole::Release(v) => v.parse()?,
            _ => {
                return Err(Error::usage(
                    "git hop-release validate runs on a release branch, or with the release's version",
                )
                .hint("git switch ho-release/X.Y.Z, or git hop-release validate X.Y.Z"));
            }
        },
    };
    report.release = Some(version.to_string());
    let land = release::survey(&project, true)?;
    let r = land
        .releases
        .iter()
        .find(|r| r.version == version)
        .ok_or_else(|| {
            Error::new(format!("release {version} is not in preparation"))
                .hint("git hop-release status lists the releases in preparation")
        })?;
    report.release_commit = Some(r.commit.clone());
    report.staged = r.file.staged();
    report.candidates = r.file.candidates();
    if !project.git.is_ancestor(&land.prod_commit, &r.commit)? {
        return Err(Error::new(format!(
            "{RELEASE_PREFIX}{version} lacks what ho-prod received since it was opened (production {})",
            land.production
        ))
        .hint(format!(
            "git switch {RELEASE_PREFIX}{version} && git hop-release sync, then validate again"
        )));
    }
    let working = project.database(&args.db.options(None))?;
    let wt = Worktree::add(&project, &r.commit)?;
    let file = PatchesFile::load(release_file::patches_path(&wt.path, &version))?;
    // The lint of every staged patch, in order (docs/patches.md).
    let order = crate::rebuild::patch_order(&file, None)?;
    let deny = crate::settings::ProjectConfig::load(&wt.path)?.lint.deny;
    for (i, id) in order.iter().enumerate() {
        crate::lint::report(&crate::lint::lint_patch(&wt.path, &order[..i], id)?, &deny)?;
    }
    let (temp, texts) =
        validation::validate_tree_keep(&project, &working, &wt, &version, &file, None, true)?;
    drop(temp);
    let texts = texts.ok_or_else(|| Error::new("the validation dumped no model snapshot"))?;
    println!("proving the model snapshot {version}: load, dump, compare");
    crate::snapshot::proof::prove(&working, &texts, &version)
}
