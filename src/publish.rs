//! Publishing a change (docs/safety.md): one atomic compare-and-swap push
//! to origin ([`crate::origin::Origin::push`]), then the same updates on
//! the local refs, so that a refused push leaves the local repository as it
//! was, and an accepted one leaves it as origin is.
//!
//! Local branches follow origin only where that loses nothing: an existing
//! branch moves when the move is a fast-forward (the checked-out one in the
//! work tree too), a branch that has commits of its own stays, with a note,
//! and a branch this clone never had is not created. A deleted branch goes
//! unless it is checked out. git-hop's own refs (`refs/hop/…`) and tags
//! mirror origin's.

use crate::error::Result;
use crate::origin::{Origin, RefUpdate};
use crate::project::Project;

/// Pushes `updates` to `origin` in one atomic push (when there is one),
/// then applies them to the local refs. Returns notes for the user about
/// local branches left alone. Without an origin, only the local part runs.
pub fn publish(
    project: &Project,
    origin: Option<&Origin>,
    updates: &[RefUpdate],
) -> Result<Vec<String>> {
    if let Some(o) = origin {
        o.push(updates)?;
    }
    let mut notes = Vec::new();
    follow_locally(project, updates, &mut notes)?;
    Ok(notes)
}

/// The local part of [`publish`]: what origin now holds, on local refs.
pub fn follow_locally(
    project: &Project,
    updates: &[RefUpdate],
    notes: &mut Vec<String>,
) -> Result<()> {
    let git = &project.git;
    let current = project.current_branch();
    let mut plain: Vec<(&str, Option<&str>, Option<&str>)> = Vec::new();
    for u in updates {
        if let Some(branch) = u.name.strip_prefix("refs/heads/") {
            let exists = git.rev_parse(&u.name)?.is_some();
            match &u.new {
                Some(new) if exists => {
                    crate::release::move_local_branch(project, branch, new, notes)?
                }
                Some(_) => {}
                None if !exists => {}
                None if current.as_deref() == Some(branch) => notes.push(format!(
                    "{branch} is gone from origin; your checked-out copy stays until you switch away (then git branch -D {branch})"
                )),
                None => {
                    git.run(&["branch", "-q", "-D", branch])?;
                }
            }
        } else {
            plain.push((&u.name, u.new.as_deref(), None));
        }
    }
    git.update_refs(&plain)?;
    Ok(())
}
