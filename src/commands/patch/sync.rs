//! `git hop-patch sync`: brings the release's latest state into the patch
//! branch (docs/releases.md).

use crate::error::Result;
use crate::origin::{Origin, REMOTE, RefUpdate};
use crate::preconditions;
use crate::project::{Project, RELEASE_PREFIX};

/// Merge the release's latest state into the patch branch
///
/// Merge the latest ho-release/X.Y.Z from origin into the current patch
/// branch (and push the patch branch)
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-patch sync")?;
    let id = preconditions::on_patch_branch(&project, "git hop-patch sync")?;
    preconditions::clean(&project)?;
    let (version, _) = preconditions::release_of_patch(&project, &id)?;
    let git = &project.git;
    let release_branch = format!("{RELEASE_PREFIX}{version}");
    let origin = Origin::of(git)?;
    let source = match &origin {
        Some(o) => {
            o.fetch()?;
            format!("{REMOTE}/{release_branch}")
        }
        None => release_branch.clone(),
    };
    let before = git.head()?;
    let message = format!("[hop] sync {id} with release {version}");
    if let Err(f) = git.merge(&["--no-edit", "-q", "-m", &message, &source], &[])? {
        return Err(f.error(
            &source,
            "resolve them, git add and git commit (the merge is in progress), then git hop-patch apply",
        ));
    }
    let after = git.head()?;
    if after == before {
        println!("{} is up to date with {source}", id.branch());
        return Ok(());
    }
    if let Some(o) = &origin {
        let branch = id.branch();
        let remote = git.rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))?;
        let update = match &remote {
            Some(r) => RefUpdate::update(format!("refs/heads/{branch}"), &after, r),
            None => RefUpdate::create(format!("refs/heads/{branch}"), &after),
        };
        o.push(&[update])?;
    }
    println!(
        "merged {source} into {}\n\nnext step:\n  git hop-patch apply      # rebuild the database with the new staged patches",
        id.branch()
    );
    Ok(())
}
