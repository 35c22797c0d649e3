//! `git hop-release hotfix`: reopens the current production version as a
//! hotfix release (docs/releases.md).
//!
//! The hotfix of production `X.Y.Z` (or `X.Y.Z-hotfixN`) lives on
//! `ho-release/X.Y.Z` with `X.Y.Z-patches.toml` starting with `# HOTFIX`.
//! That name clashes with nothing: a normal release is always greater than
//! production, and `ho-release/X.Y.Z` itself was deleted when `X.Y.Z` went
//! to production (in the same push that tagged it). Two clones opening the
//! same hotfix race on creating that branch on origin; exactly one wins.

use crate::error::{Error, Result};
use crate::origin::{REMOTE, RefUpdate, unique_trailer};
use crate::preconditions;
use crate::project::{Project, RELEASE_PREFIX};
use crate::release;
use crate::release_file::{self, PatchesFile};

/// Reopen the production version for a hotfix
///
/// Reopen the current production version for a hotfix: create
/// ho-release/X.Y.Z from the latest production tag (vX.Y.Z or
/// vX.Y.Z-hotfixN) with a `# HOTFIX` X.Y.Z-patches.toml, push, and switch
/// to it. Other releases may stay in preparation meanwhile
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-release hotfix")?;
    preconditions::clean(&project)?;
    let land = release::survey(&project, true)?;
    let git = &project.git;
    let production = &land.production;
    let base = production.base();
    let branch = format!("{RELEASE_PREFIX}{base}");
    let tag = production.tag_name();
    let from = git.rev_parse(&format!("refs/tags/{tag}"))?.ok_or_else(|| {
        Error::new(format!("tag {tag} not found")).hint("git fetch --tags origin")
    })?;

    let local = git.rev_parse(&format!("refs/heads/{branch}"))?;
    let on_origin = land.releases.iter().any(|r| r.branch == branch);
    if on_origin || (land.origin.is_none() && local.is_some()) {
        return Err(
            Error::new(format!("a hotfix of {base} is already open ({branch})")).hint(format!(
                "git switch {branch}, then git hop-patch create <id>; git hop-release promote hotfix when done"
            )),
        );
    }
    if local.is_some() {
        return Err(Error::new(format!(
            "a local branch {branch} exists but origin has none"
        ))
        .hint(format!(
            "it is left from an earlier release: save what you need from it, then git branch -D {branch}"
        )));
    }

    let toml = release_file::patches_path(&project.root, &base);
    let rel = release::relative(&project, &toml);
    let content = PatchesFile::new_empty(&toml, true).to_string();
    let commit = git.commit_changes(
        &from,
        &[(rel.clone(), Some(content.into_bytes()))],
        &format!("[hop] hotfix release of {production}{}", unique_trailer()),
    )?;
    if let Some(o) = &land.origin {
        o.push(&[RefUpdate::create(format!("refs/heads/{branch}"), &commit)])
            .map_err(|e| {
                Error::new(format!("cannot open the hotfix of {base} on origin: {}", e.message))
                    .hint("another clone probably opened it at the same moment: git fetch && git hop-release status")
            })?;
    }
    git.switch_new(&branch, &commit, land.origin.as_ref().map(|_| REMOTE))?;
    println!("opened a hotfix of production {production} on branch {branch} (from {tag})");
    if let Some(o) = &land.origin {
        println!("pushed {branch} to origin ({})", o.url);
    }
    let others: Vec<String> = land.normal().map(|r| r.version.to_string()).collect();
    if !others.is_empty() {
        println!(
            "releases still in preparation meanwhile: {}",
            others.join(", ")
        );
    }
    println!(
        "created {rel} (# HOTFIX)\n\nnext steps:\n  git hop-patch create <id> -d \"the fix\"\n  git hop-patch apply, commit, git hop-patch merge\n  git hop-release promote hotfix"
    );
    Ok(())
}
