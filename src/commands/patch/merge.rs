//! `git hop-patch merge`: validates the patch with the release in a
//! temporary worktree and database, then stages it (docs/releases.md).

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::origin::{Origin, REMOTE, RefUpdate};
use crate::preconditions;
use crate::project::{Project, RELEASE_PREFIX};
use crate::release_file;
use crate::validation;

/// Validate the patch with its release, then stage it
///
/// Validate and merge the current patch into its release: in a temporary
/// worktree and database (your work tree and working database are not
/// touched), merge the release and the patch, rebuild from the production
/// snapshot with the staged patches and this one in TOML order, compare the
/// regenerated code with the committed code, run the tests; when the patch
/// mentions triggers, materialized views or generated columns, also prove
/// that the release's model snapshot would reload. Only if all passes:
/// merge into ho-release/X.Y.Z, mark the patch staged, delete
/// ho-patch/<id>, push
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lock: crate::commands::lock_args::LockArgs,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-patch merge")?;
    let id = preconditions::on_patch_branch(&project, "git hop-patch merge")?;
    preconditions::clean(&project)?;
    let (version, _) = preconditions::release_of_patch(&project, &id)?;
    let working = project.database(&args.db.options(None))?;
    // The validation database is copied ahead, from the staged head as the
    // patch branch holds it, while origin is locked and fetched and git
    // merges (docs/engine.md): the validation takes the copy only when it
    // holds the release's staged head.
    let ahead = validation::prepare(&project, &working, &project.root, &version);
    let git = &project.git;
    let release_branch = format!("{RELEASE_PREFIX}{version}");
    let patch_branch = id.branch();
    let patch_commit = git.head()?;
    let origin = Origin::of(git)?;

    // Where the release and the patch stand on origin.
    let local_release = git.rev_parse(&format!("refs/heads/{release_branch}"))?;
    let mut origin_patch = None;
    // The release's lock first: once it is ours, the release head fetched
    // next is the one the push will land on, so this merge validates once.
    let mut lock = args.lock.take(
        &project,
        &version.to_string(),
        &format!("git hop-patch merge {id}"),
    )?;
    let release_commit = if let Some(o) = &origin {
        o.fetch()?;
        let remote_release = git
            .rev_parse(&format!("refs/remotes/{REMOTE}/{release_branch}"))?
            .ok_or_else(|| Error::new(format!("{release_branch} does not exist on origin")))?;
        if let Some(local) = &local_release
            && local != &remote_release
            && !git.is_ancestor(local, &remote_release)?
        {
            return Err(Error::new(format!("{release_branch} has local commits that are not on origin"))
                    .hint(format!("git-hop adds to release branches only through its commands: git branch -f {release_branch} origin/{release_branch} (after saving those commits elsewhere)")));
        }
        origin_patch = git.rev_parse(&format!("refs/remotes/{REMOTE}/{patch_branch}"))?;
        if let Some(op) = &origin_patch
            && !git.is_ancestor(op, &patch_commit)?
        {
            return Err(Error::new(format!(
                "origin's {patch_branch} has commits that your branch lacks"
            ))
            .hint("git pull, then git hop-patch merge again"));
        }
        remote_release
    } else {
        local_release
            .clone()
            .ok_or_else(|| Error::new(format!("branch {release_branch} not found")))?
    };

    // An earlier run pushed but was interrupted before moving local refs:
    // the release already has the patch staged. Finish the local part.
    if already_staged(&project, &version, &release_commit, &patch_commit, &id)? {
        move_local_refs(
            &project,
            &release_branch,
            &patch_branch,
            &release_commit,
            local_release.as_deref(),
            origin.is_some(),
        )?;
        println!(
            "{id} is already staged in {release_branch} (an earlier merge was interrupted after pushing); \
             switched to {release_branch} and deleted the local {patch_branch}"
        );
        return Ok(());
    }

    // Validate (temporary worktree and database, removed on every path).
    let staged = validation::validate_merge(
        &project,
        &working,
        &version,
        &release_commit,
        &patch_commit,
        &id,
        &[],
        ahead,
    )?;

    // Publish in one atomic push, then move local refs.
    if let Some(o) = &origin {
        let mut updates = vec![RefUpdate::update(
            format!("refs/heads/{release_branch}"),
            &staged,
            &release_commit,
        )];
        if let Some(op) = &origin_patch {
            updates.push(RefUpdate::delete(format!("refs/heads/{patch_branch}"), op));
        }
        crate::lock::push(lock.as_mut(), o, &updates).map_err(|e| {
            e.context(format!("cannot merge {id}"))
                .hint("nothing was changed: if another patch was merged meanwhile, run git hop-patch merge again")
        })?;
    }
    move_local_refs(
        &project,
        &release_branch,
        &patch_branch,
        &staged,
        local_release.as_deref(),
        origin.is_some(),
    )?;

    let file =
        release_file::PatchesFile::load(release_file::patches_path(&project.root, &version))?;
    println!(
        "\nmerged {id} into {release_branch}: staged ({} staged, {} candidate(s))",
        file.staged().len(),
        file.candidates().len()
    );
    if origin.is_some() {
        println!("pushed {release_branch}; deleted {patch_branch} locally and on origin");
    }
    let others = file.candidates();
    if !others.is_empty() {
        println!(
            "these candidates must now run `git hop-patch sync`: {}",
            others.join(", ")
        );
    }
    println!(
        "\nnext steps:\n  git hop-patch create <id>      # another patch\n  git hop-release promote rc     # when the release is complete"
    );
    Ok(())
}

/// Whether the release (at `release_commit`) already holds the patch as
/// staged, with every commit of the patch branch merged.
fn already_staged(
    project: &Project,
    version: &crate::version::Version,
    release_commit: &str,
    patch_commit: &str,
    id: &crate::patch_id::PatchId,
) -> Result<bool> {
    let toml = release_file::patches_path(&project.root, version);
    let rel = toml
        .strip_prefix(&project.root)
        .unwrap_or(&toml)
        .display()
        .to_string();
    let Ok(text) = project.git.file_at(release_commit, &rel) else {
        return Ok(false);
    };
    let file = release_file::PatchesFile::parse(&toml, &text)?;
    Ok(
        file.state(id.as_str()) == Some(release_file::PatchState::Staged)
            && project.git.is_ancestor(patch_commit, release_commit)?,
    )
}

/// After origin accepted the merge: the release branch at `release`, the
/// user on it, the patch branch gone.
fn move_local_refs(
    project: &Project,
    release_branch: &str,
    patch_branch: &str,
    release: &str,
    old: Option<&str>,
    has_origin: bool,
) -> Result<()> {
    let git = &project.git;
    let refname = format!("refs/heads/{release_branch}");
    git.update_refs(&[(&refname, Some(release), Some(old.unwrap_or("")))])?;
    git.switch(release_branch)?;
    git.run(&["branch", "-q", "-D", patch_branch])?;
    if has_origin {
        // Usually tracking already (read in process, nothing run then).
        let _ = git.set_upstream(release_branch, REMOTE);
    }
    Ok(())
}
