//! `git hop-release unlock [X.Y.Z] [--yes]`: breaks the origin lock of a
//! release (docs/releases.md, "The merge queue"), after confirmation. For a
//! holder that is gone but whose lock has not expired yet; the commands
//! that were waiting then go on. Safety does not depend on the lock: a
//! command whose lock was broken still pushes by compare-and-swap.

use crate::error::{Error, Result};
use crate::lock::{self, Holder};
use crate::origin::{Origin, RefUpdate};
use crate::project::{BranchRole, Project};
use crate::version::Version;

/// Break the origin lock of a release
///
/// Show who holds the lock of a release on origin (merge, promote and sync
/// take it in turn) and break it after confirmation
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The release (default: the current release or patch branch's)
    #[arg(value_name = "X.Y.Z")]
    pub release: Option<String>,
    /// Do not ask for confirmation
    #[arg(long)]
    pub yes: bool,
}

pub fn run(args: Args) -> Result<()> {
    let given = args
        .release
        .as_deref()
        .map(str::parse::<Version>)
        .transpose()?;
    let project = Project::from_cwd()?;
    let version = match given {
        Some(v) => v.base(),
        None => match project.role() {
            BranchRole::Release(v) => v.parse()?,
            BranchRole::Patch(id) => {
                let id = crate::patch_id::PatchId::parse(&id)?;
                crate::preconditions::release_of_patch(&project, &id)?.0
            }
            _ => {
                return Err(Error::usage(
                    "which release? give its X.Y.Z (git hop-release unlock 0.2.0)",
                ));
            }
        },
    };
    let origin = Origin::of(&project.git)?
        .ok_or_else(|| Error::new("this project has no origin: there is no lock to break"))?;
    let name = lock::lock_ref(&version.to_string());
    let Some(oid) = origin.remote_ref(&name)? else {
        println!("release {version} is not locked");
        return Ok(());
    };
    let who = lock::holder_of(&project.git, &name, &oid)
        .map(|h: Holder| {
            let state = if h.expired(lock::now()) {
                format!("expired at {}", lock::utc_time(h.expires))
            } else {
                format!("expires at {}", lock::utc_time(h.expires))
            };
            format!("{} ({state})", h.describe())
        })
        .unwrap_or_else(|| format!("an unknown holder ({oid})"));
    if !args.yes {
        crate::confirm::confirm(
            &format!("break the lock of release {version} held by {who}?"),
            &format!("git hop-release unlock {version} --yes"),
        )?;
    }
    origin.push(&[RefUpdate::delete(name, &oid)]).map_err(|e| {
        e.context("the lock changed meanwhile (released or renewed); nothing was changed")
            .hint(format!(
                "git hop-release unlock {version} shows its holder now"
            ))
    })?;
    println!("broke the lock of release {version} held by {who}");
    Ok(())
}
