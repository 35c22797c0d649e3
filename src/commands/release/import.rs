//! `git hop-release import [--dry-run]`: converts a half-orm-dev 1.1
//! project in place, development or production clone (docs/import.md).

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::import::{Follow, Plan};

/// Convert a half-orm-dev project into a git-hop project
///
/// In a half-orm-dev 1.1 project, on a clean ho-prod in sync with origin:
/// rewrite its config, release files, Patches/ and model snapshots in
/// git-hop's formats, its hotfix tags (.postN) as -hotfixN and its patch
/// number tags as reservations, regenerate the code, and push all of it to
/// origin as one atomic change; then convert this clone's database. With
/// --dry-run, show the plan and change nothing. In a clone of a project
/// that another clone imported (a production server, say), bring this
/// clone over: ho-prod moved to origin's, half-orm-dev's branches, tags and
/// hooks gone, the database converted; run again, it resumes an import
/// that was stopped
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show what the import would change, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::new(format!("cannot read the current directory: {e}")))?;
    let git = Git::new(&cwd)?;
    // Another clone imported the project (or this clone's import stopped
    // after its push): this clone catches up.
    if let Some(follow) = Follow::read(&git)? {
        let git = git.at(&follow.root);
        println!(
            "{} the half-orm-dev clone in {}:",
            if args.dry_run {
                "would bring over"
            } else {
                "bringing over"
            },
            follow.root.display()
        );
        for line in follow.describe() {
            println!("  {line}");
        }
        if args.dry_run {
            println!("\ndry run: nothing was changed");
            return Ok(());
        }
        follow.apply(&git, &args.db.options(None), &mut std::io::stdout())?;
        println!(
            "\nimported: this clone of {} is git-hop's (origin's production is {})\n\nnext steps:\n  {}",
            follow.legacy.package,
            follow.production,
            if follow.legacy.production {
                "git hop-release upgrade        # the releases made since half-orm-dev's last upgrade"
            } else {
                "git hop-release status"
            }
        );
        return Ok(());
    }
    let plan = Plan::read(&git)?;
    let git = git.at(&plan.root);
    println!(
        "{} the half-orm-dev project in {}:",
        if args.dry_run {
            "would import"
        } else {
            "importing"
        },
        plan.root.display()
    );
    for line in plan.describe() {
        println!("  {line}");
    }
    if args.dry_run {
        println!("\ndry run: nothing was changed");
        return Ok(());
    }
    let mut out = std::io::stdout();
    plan.apply(&git, &args.db.options(None), &mut out)?;
    if plan.legacy.had_password {
        eprintln!(
            "git-hop: warning: half-orm-dev's committed .hop/config held the database password; it is gone from the new config but stays in the git history: change that password"
        );
    }
    println!(
        "\nimported: {} is a git-hop project at production {}\n\nnext steps:\n  git hop-release status\n  git hop-release new minor      # the next release",
        plan.legacy.package, plan.production
    );
    Ok(())
}
