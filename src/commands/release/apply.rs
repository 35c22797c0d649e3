//! `git hop-release apply`: the integration preview of the whole release,
//! candidates included, before promotion (docs/releases.md, "Previewing a
//! release").

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::origin::{Origin, REMOTE};
use crate::preconditions;
use crate::preview::{self, Outcome};
use crate::project::{Project, RELEASE_PREFIX};
use crate::release_file::{self, PatchesFile};

/// Preview the whole release: every candidate merged, rebuilt and tested
///
/// On ho-release/X.Y.Z: in a temporary worktree, merge every candidate
/// branch into the release, rebuild the working database (staged head,
/// then candidates in TOML order), regenerate code and run the tests. When
/// that fails, try the candidates one at a time to name those that break
/// it. Commits and pushes nothing; exits 1 when a candidate conflicts or
/// fails
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rebuild and generate code, but do not run the tests
    #[arg(long)]
    pub skip_tests: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-release apply")?;
    let version = preconditions::on_release_branch(&project, "git hop-release apply")?;
    let git = &project.git;
    let branch = format!("{RELEASE_PREFIX}{version}");
    // The candidates are other developers' branches: see what origin has
    // (a preview still runs on what this clone knows when origin is away).
    if let Some(origin) = Origin::of(git)?
        && let Err(e) = origin.fetch()
    {
        eprintln!(
            "git-hop: warning: {}; previewing what this clone knows",
            e.message
        );
    }
    let local = git
        .rev_parse(&format!("refs/heads/{branch}"))?
        .ok_or_else(|| Error::new(format!("branch {branch} not found")))?;
    // The release as origin has it when this clone is behind.
    let release_commit = match git.rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))? {
        Some(r) if r != local && git.is_ancestor(&local, &r)? => r,
        _ => local,
    };
    let rel = release_file::patches_rel(&version);
    let text = git.file_at(&release_commit, &rel)?;
    let file = PatchesFile::parse(release_file::patches_path(&project.root, &version), &text)?;
    let working = project.database(&args.db.options(None))?;
    let report = preview::preview(
        &project,
        &working,
        &version,
        &release_commit,
        &file,
        args.skip_tests,
    )?;
    println!("\nrelease {version}:");
    for id in &report.staged {
        println!("  {:<24} staged", id.as_str());
    }
    for (id, outcome) in &report.candidates {
        let what = match outcome {
            Outcome::Passed if args.skip_tests => "candidate, merges and rebuilds".to_string(),
            Outcome::Passed => "candidate, passes".to_string(),
            Outcome::Missing => format!("candidate, no branch {}", id.branch()),
            Outcome::Conflicts(files) => format!("candidate, conflicts in {}", files.join(", ")),
            Outcome::Fails(why) => format!("candidate, FAILS: {why}"),
        };
        println!("  {:<24} {what}", id.as_str());
    }
    println!(
        "working database {}: {}",
        working.describe(),
        if report.working.is_empty() {
            "not rebuilt".to_string()
        } else {
            report
                .working
                .iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    if let Some(why) = &report.staged_fails {
        return Err(Error::new(format!(
            "the staged head of release {version} fails on its own: {why}; nothing was committed or pushed"
        ))
        .hint(format!(
            "the tests fail without any candidate: if production moved, git hop-release sync; otherwise fix it in a patch of release {version}"
        )));
    }
    let bad: Vec<String> = report
        .candidates
        .iter()
        .filter(|(_, o)| *o != Outcome::Passed)
        .map(|(id, _)| id.to_string())
        .collect();
    if !bad.is_empty() {
        return Err(Error::new(format!(
            "release {version}: {} of {} candidate(s) do not go in: {}; nothing was committed or pushed",
            bad.len(),
            report.candidates.len(),
            bad.join(", ")
        ))
        .hint("on each, git hop-patch sync and fix it, or git hop-patch detach it from the release"));
    }
    println!(
        "\nrelease {version} previewed: {} staged and {} candidate(s) {}; nothing was committed or pushed",
        report.staged.len(),
        report.candidates.len(),
        if args.skip_tests {
            "merge and rebuild (tests skipped)"
        } else {
            "merge and pass the tests together"
        }
    );
    Ok(())
}
