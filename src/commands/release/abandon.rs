//! `git hop-release abandon <X.Y.Z>`: closes a release in preparation that
//! has no staged patch (docs/releases.md, "Detach, attach, abandon"). One
//! atomic push deletes its branch (with its release file) and its
//! reservation, and takes its release file off each candidate's branch: the
//! candidates become detached patches, their branches and numbers kept.

use crate::error::{Error, Result};
use crate::origin::{RefUpdate, release_reservation};
use crate::preconditions;
use crate::project::{PROD_BRANCH, Project};
use crate::release;
use crate::release_file;
use crate::version::Version;

/// Close a release in preparation that has no staged patch
///
/// Close a release in preparation that has no staged patch: delete its
/// branch ho-release/X.Y.Z, its release file and its reservation on origin
/// (one atomic push). Its candidates become detached patches (git hop-patch
/// attach puts them into another release)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The release to close, e.g. 0.2.0
    #[arg(value_name = "X.Y.Z")]
    pub release: String,
}

pub fn run(args: Args) -> Result<()> {
    let version: Version = args.release.parse()?;
    if version.base() != version {
        return Err(Error::usage(format!(
            "{version} is not a release in preparation: give its X.Y.Z"
        )));
    }
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-release abandon")?;
    let land = release::survey(&project, true)?;
    let Some(r) = land.releases.iter().find(|r| r.version == version) else {
        if land.is_released(&version) {
            return Err(Error::new(format!(
                "release {version} is in production: it cannot be abandoned"
            )));
        }
        let open: Vec<String> = land
            .releases
            .iter()
            .map(|r| r.version.to_string())
            .collect();
        return Err(
            Error::new(format!("release {version} is not in preparation")).hint(format!(
                "releases in preparation: {}",
                if open.is_empty() {
                    "none".into()
                } else {
                    open.join(", ")
                }
            )),
        );
    };
    let staged = r.file.staged();
    if !staged.is_empty() {
        return Err(Error::new(format!(
            "release {version} has staged patches: {}; a release with staged patches cannot be abandoned",
            staged.join(", ")
        ))
        .hint(format!(
            "staged patches go out with their release (git hop-release promote prod); to undo one, create a patch of {version} that reverts it"
        )));
    }
    let on_it = project.current_branch().as_deref() == Some(r.branch.as_str());
    if on_it {
        preconditions::clean(&project)?;
    }
    let git = &project.git;
    let mut updates = vec![RefUpdate::delete(
        format!("refs/heads/{}", r.branch),
        &r.commit,
    )];
    let reservation = release_reservation(&version.to_string());
    let reserved = match &land.origin {
        Some(o) => o.remote_ref(&reservation)?,
        None => git.rev_parse(&reservation)?,
    };
    if let Some(held) = &reserved {
        updates.push(RefUpdate::delete(reservation.clone(), held));
    }
    let toml = release_file::patches_rel(&version);
    let candidates = r.file.candidates();
    let mut detached = Vec::new();
    for c in &candidates {
        let id = crate::patch_id::PatchId::parse(c)?;
        let Some(tip) = crate::commands::patch::detach::patch_tip(&project, &land, &id)? else {
            continue;
        };
        if project.repo.file_at(&tip, &toml).is_none() {
            continue;
        }
        let commit = git.commit_changes(
            &tip,
            &[(toml.clone(), None)],
            &format!("[hop] release {version} abandoned: {id} detached"),
        )?;
        updates.push(RefUpdate::branch(&id.branch(), &commit, &tip));
        detached.push(id.to_string());
    }
    if let Some(o) = &land.origin {
        o.push(&updates).map_err(|e| {
            e.context(format!("cannot abandon release {version}")).hint(
                "nothing was changed: origin changed meanwhile (a merge or a new candidate?); run the command again",
            )
        })?;
    }
    if on_it {
        git.switch(PROD_BRANCH)?;
    }
    let mut notes = Vec::new();
    crate::publish::follow_locally(&project, &updates, &mut notes)?;
    println!(
        "abandoned release {version}: deleted {} and its release file{}",
        r.branch,
        if land.origin.is_some() {
            " on origin and locally"
        } else {
            ""
        }
    );
    if on_it {
        println!("switched to {PROD_BRANCH}");
    }
    if !detached.is_empty() {
        println!(
            "detached its candidates (branches and numbers kept): {}\n  git switch ho-release/X.Y.Z && git hop-patch attach <id>   # puts one into another release",
            detached.join(", ")
        );
    }
    for n in notes {
        println!("note: {n}");
    }
    Ok(())
}
