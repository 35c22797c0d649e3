//! `git hop-patch detach [ID]`: takes a candidate out of its release
//! (docs/releases.md, "Detach, attach, abandon"). One atomic push: the
//! release branch without the patch's entry, and the patch branch with its
//! own copy of the release file likewise, so the branch itself knows it is
//! detached. Its number stays reserved and its branch stays.

use crate::error::{Error, Result};
use crate::origin::RefUpdate;
use crate::patch_id::PatchId;
use crate::preconditions;
use crate::project::Project;
use crate::release::{self, Landscape};
use crate::release_file::{PatchState, PatchesFile};

/// Take a candidate patch out of its release
///
/// Take a candidate out of its release: its entry leaves the release file on
/// origin and on its branch (one atomic push). The
/// branch ho-patch/<id> and the patch number stay; git hop-patch attach puts
/// it back, in this or another release. A staged patch cannot be detached.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The patch (default: the current patch branch's)
    #[arg(allow_hyphen_values = true)]
    pub id: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let given = args.id.as_deref().map(PatchId::parse).transpose()?;
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-patch detach")?;
    let id = match given {
        Some(id) => id,
        None => preconditions::on_patch_branch(&project, "git hop-patch detach")?,
    };
    let branch = id.branch();
    let on_it = project.current_branch().as_deref() == Some(branch.as_str());
    if on_it {
        preconditions::clean(&project)?;
    }
    let land = release::survey(&project, true)?;
    if on_it && land.origin.is_some() {
        preconditions::in_sync(&project, &branch)?;
    }
    let patch_commit = patch_tip(&project, &land, &id)?;
    let Some(r) = land
        .releases
        .iter()
        .find(|r| r.file.state(id.as_str()).is_some())
    else {
        if patch_commit.is_some() {
            println!(
                "{id} is in no release in preparation: it is detached already (git hop-patch attach {id} on a release branch puts it back)"
            );
            return Ok(());
        }
        return Err(Error::new(format!(
            "no patch {id}: no release in preparation lists it and there is no branch {branch}"
        ))
        .hint("git hop-release status lists the releases and their patches"));
    };
    let version = &r.version;
    if r.file.state(id.as_str()) == Some(PatchState::Staged) {
        return Err(Error::new(format!(
            "{id} is staged in release {version}: a staged patch cannot be detached"
        ))
        .hint("it is part of the release; to undo its changes, create a patch that reverts them"));
    }
    let mut file = r.file.clone();
    file.remove(id.as_str())?;
    let toml = crate::release_file::patches_rel(version);
    let git = &project.git;
    let release_commit = git.commit_changes(
        &r.commit,
        &[(toml.clone(), Some(file.to_string().into_bytes()))],
        &format!("[hop] detach patch {id} from release {version}"),
    )?;
    let mut updates = vec![RefUpdate::branch(&r.branch, &release_commit, &r.commit)];
    // The branch's own copy of the release file loses the entry too, so the
    // branch itself knows it is detached.
    if let Some(patch) = &patch_commit
        && let Some(text) = project.repo.file_at(patch, &toml)
    {
        let path = crate::release_file::patches_path(&project.root, version);
        let mut own = PatchesFile::parse(&path, &String::from_utf8_lossy(&text))?;
        if own.state(id.as_str()).is_some() {
            own.remove(id.as_str())?;
            let commit = git.commit_changes(
                patch,
                &[(toml.clone(), Some(own.to_string().into_bytes()))],
                &format!("[hop] detach {id} from release {version}"),
            )?;
            updates.push(RefUpdate::branch(&branch, &commit, patch));
        }
    }
    let notes = crate::publish::publish(&project, land.origin.as_ref(), &updates).map_err(|e| {
        e.context(format!("cannot detach {id}"))
            .hint("nothing was changed: origin changed meanwhile (a merge?); run the command again")
    })?;
    println!(
        "detached {id} from release {version}: {} lists it no more; its branch {branch} and its number {} stay",
        r.branch,
        id.number()
    );
    for n in notes {
        println!("note: {n}");
    }
    println!(
        "\nto put it back, in this or another release:\n  git switch ho-release/X.Y.Z && git hop-patch attach {id}"
    );
    Ok(())
}

/// The tip of the patch's branch: origin's when there is an origin.
pub fn patch_tip(project: &Project, land: &Landscape, id: &PatchId) -> Result<Option<String>> {
    let branch = id.branch();
    match land.origin {
        Some(_) => project
            .git
            .rev_parse(&format!("refs/remotes/{}/{branch}", crate::origin::REMOTE)),
        None => project.git.rev_parse(&format!("refs/heads/{branch}")),
    }
}
