//! `git hop-release sync`: brings the current production (a hotfix, a
//! smaller release) into a release in preparation, validated (docs/releases.md).
//!
//! The merge is made in a temporary worktree; only when it conflicts is it
//! made again in the user's work tree, left in progress for the user to
//! resolve. Once the user committed the resolution, `sync` validates that
//! commit and pushes it.

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::origin::{REMOTE, RefUpdate};
use crate::preconditions;
use crate::project::{PROD_BRANCH, Project};
use crate::release;
use crate::release_file::{self, PatchesFile};
use crate::validation::{self, Worktree};

/// Merge the current ho-prod into the release branch, validate, push
///
/// Merge the current ho-prod from origin into the current release branch
/// (ho-release/X.Y.Z), validate the release and push. On a conflict the
/// merge is left in progress in your work tree: resolve it, commit, and run
/// sync again
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lock: crate::commands::lock_args::LockArgs,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-release sync")?;
    let version = preconditions::on_release_branch(&project, "git hop-release sync")?;
    let git = &project.git;
    if git.rev_parse("MERGE_HEAD")?.is_some() {
        return Err(Error::new("a merge is in progress in your work tree")
            .hint("resolve the conflicts, git add the files and git commit, then git hop-release sync again"));
    }
    preconditions::clean(&project)?;
    // The release's lock first: the head fetched next is the one the push
    // lands on.
    let mut lock = args
        .lock
        .take(&project, &version.to_string(), "git hop-release sync")?;
    let land = release::survey(&project, true)?;
    let branch = project.current_branch().unwrap_or_default();
    let head = git.head()?;
    let remote = match &land.origin {
        Some(_) => land
            .releases
            .iter()
            .find(|r| r.branch == branch)
            .map(|r| r.commit.clone())
            .ok_or_else(|| {
                Error::new(format!("{branch} does not exist on origin"))
                    .hint("git hop-release status lists the releases in preparation")
            })?,
        None => head.clone(),
    };

    // Where we stand: up to date, a resolved merge to publish, or a merge to make.
    let merged = if head == remote {
        if land.contains_production(git, &head)? {
            println!(
                "{branch} already contains {PROD_BRANCH} (production {}): nothing to sync",
                land.production
            );
            return Ok(());
        }
        None
    } else if git.is_ancestor(&head, &remote)? {
        return Err(Error::new(format!("{branch} is behind origin"))
            .hint("git pull --ff-only, then git hop-release sync again"));
    } else if is_resolved_sync(&project, &head, &remote, &land.prod_commit)? {
        Some(head.clone())
    } else {
        return Err(Error::new(format!("{branch} has local commits that are not on origin"))
            .hint(format!("git-hop adds to release branches only through its commands: save those commits elsewhere, then git reset --hard origin/{branch}")));
    };

    let working = project.database(&args.db.options(None))?;
    let prod_name = match &land.origin {
        Some(_) => format!("{REMOTE}/{PROD_BRANCH}"),
        None => PROD_BRANCH.to_string(),
    };
    let message = format!(
        "[hop] sync release {version} with {PROD_BRANCH} ({})",
        land.production
    );
    let (commit, resumed) = match merged {
        Some(c) => {
            let wt = Worktree::add(&project, &c)?;
            validate(&project, &working, &wt, &version)?;
            (c, true)
        }
        None => {
            let wt = Worktree::add(&project, &remote)?;
            let out = wt.git.output(
                &[
                    "merge",
                    "--no-ff",
                    "--no-verify",
                    "-q",
                    "-m",
                    &message,
                    &land.prod_commit,
                ],
                &[],
            )?;
            if !out.ok {
                drop(wt);
                return Err(conflict(
                    &project,
                    &branch,
                    &prod_name,
                    &message,
                    &land.prod_commit,
                ));
            }
            validate(&project, &working, &wt, &version)?;
            (wt.git.head()?, false)
        }
    };

    if let Some(o) = &land.origin {
        crate::lock::push(
            lock.as_mut(),
            o,
            &[RefUpdate::update(
                format!("refs/heads/{branch}"),
                &commit,
                &remote,
            )],
        )
        .map_err(|e| {
            e.context(format!("cannot push {branch}"))
                .hint("fetch and run git hop-release sync again")
        })?;
    }
    let mut notes = Vec::new();
    if !resumed {
        release::move_local_branch(&project, &branch, &commit, &mut notes)?;
    }
    if land.origin.is_some() {
        let _ = git.set_upstream(&branch, REMOTE);
    }
    println!(
        "\nsynced {branch} with {PROD_BRANCH} (production {}): validated",
        land.production
    );
    if let Some(o) = &land.origin {
        println!("pushed {branch} to origin ({})", o.url);
    }
    for n in notes {
        println!("note: {n}");
    }
    let file = PatchesFile::load(release_file::patches_path(&project.root, &version))?;
    let candidates = file.candidates();
    println!("\nnext steps:");
    if !candidates.is_empty() {
        println!(
            "  candidates must run git hop-patch sync: {}",
            candidates.join(", ")
        );
    }
    println!("  git hop-release promote rc|prod   # when the release is ready");
    Ok(())
}

/// The user's resolution of a sync merge: HEAD merges origin's release tip
/// with a commit of `ho-prod`.
fn is_resolved_sync(project: &Project, head: &str, remote: &str, prod: &str) -> Result<bool> {
    let git = &project.git;
    let parents = git.run(&["rev-list", "--parents", "-n", "1", head])?;
    let parents: Vec<&str> = parents.split_whitespace().skip(1).collect();
    if parents.len() != 2 || parents[0] != remote {
        return Ok(false);
    }
    git.is_ancestor(parents[1], prod)
}

fn validate(
    project: &Project,
    working: &crate::db::database::Database,
    wt: &Worktree,
    version: &crate::version::Version,
) -> Result<()> {
    let file = PatchesFile::load(release_file::patches_path(&wt.path, version))?;
    validation::validate_tree(project, working, wt, version, &file)
}

/// Makes the conflicting merge again in the user's work tree, left in
/// progress, and says which files conflict.
fn conflict(project: &Project, branch: &str, prod_name: &str, message: &str, prod: &str) -> Error {
    let git = &project.git;
    let failure = match git.merge(&["--no-ff", "--no-verify", "-q", "-m", message, prod], &[]) {
        Ok(Err(f)) => f,
        Ok(Ok(())) => return Error::new(format!(
            "merging {prod_name} into {branch} conflicted in a temporary worktree but not in yours"
        ))
        .hint("git hop-release sync again"),
        Err(e) => return e,
    };
    if failure.conflicts.is_empty() {
        let _ = git.run(&["merge", "--abort"]);
        return Error::new(format!(
            "cannot merge {prod_name} into {branch}: {}",
            failure.message
        ))
        .hint(format!(
            "git merge {prod_name} shows why; then git hop-release sync again"
        ));
    }
    failure.error(
        &format!("{prod_name} into {branch}"),
        "the merge is in progress in your work tree: resolve the conflicts, git add the files and git commit, then git hop-release sync again (it validates and pushes)",
    )
}
