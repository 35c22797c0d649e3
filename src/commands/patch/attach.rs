//! `git hop-patch attach <ID> [--before OTHER]`: puts a detached patch back
//! as a candidate of the current release (docs/releases.md, "Detach,
//! attach, abandon"). One atomic push: the release file with the new
//! candidate, and the patch branch rebuilt as the patch's own changes on top
//! of the release (what another release's history brought along stays with
//! that release); refused when the branch and the release both changed a
//! file differently.

use crate::error::{Error, Result};
use crate::origin::RefUpdate;
use crate::patch_id::PatchId;
use crate::preconditions;
use crate::project::{Project, RELEASE_PREFIX};
use crate::release::{self};
use crate::release_file::{self, PatchState};

/// Put a detached patch back as a candidate of the current release
///
/// On ho-release/X.Y.Z: add a detached patch to the release as a candidate
/// (at the end, or before the candidate OTHER_ID), its branch rebuilt as its
/// own changes on top of the release, in one atomic push
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The detached patch
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// Insert the patch before this candidate instead of at the end
    #[arg(long, value_name = "OTHER_ID")]
    pub before: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let id = PatchId::parse(&args.id)?;
    if let Some(b) = &args.before {
        PatchId::parse(b)?;
    }
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-patch attach")?;
    let version = preconditions::on_release_branch(&project, "git hop-patch attach")?;
    preconditions::clean(&project)?;
    let release_branch = format!("{RELEASE_PREFIX}{version}");
    let land = release::survey(&project, true)?;
    if land.origin.is_some() {
        preconditions::in_sync(&project, &release_branch)?;
    }
    let r = land
        .releases
        .iter()
        .find(|r| r.version == version)
        .ok_or_else(|| {
            Error::new(format!("release {version} is not in preparation on origin"))
                .hint("git hop-release status lists the releases in preparation")
        })?;
    if let Some(other) = land
        .releases
        .iter()
        .find(|o| o.file.state(id.as_str()).is_some())
    {
        let state = other.file.state(id.as_str());
        if other.version == version && state == Some(PatchState::Candidate) {
            println!("{id} is a candidate of release {version} already");
            return Ok(());
        }
        let state = state.map(|s| s.as_str()).unwrap_or("listed");
        return Err(Error::new(format!(
            "{id} is {state} in release {}: only a detached patch can be attached",
            other.version
        ))
        .hint(if state == "candidate" {
            format!("git hop-patch detach {id} first, then attach it here")
        } else {
            "a staged patch belongs to its release".to_string()
        }));
    }
    let branch = id.branch();
    let patch =
        crate::commands::patch::detach::patch_tip(&project, &land, &id)?.ok_or_else(|| {
            Error::new(format!("there is no branch {branch} to attach")).hint(format!(
                "a new patch is made with git hop-patch create {id}"
            ))
        })?;
    let mut file = r.file.clone();
    if let Some(before) = &args.before
        && file.state(before) != Some(PatchState::Candidate)
    {
        return Err(Error::new(format!(
            "Patch not found in candidates file: {before} is not a candidate of release {version}"
        ))
        .hint(format!("candidates: {}", file.candidates().join(", "))));
    }
    file.add_candidate(id.as_str(), args.before.as_deref())?;
    let toml = release_file::patches_rel(&version);
    let git = &project.git;
    let release_commit = git.commit_changes(
        &r.commit,
        &[(toml.clone(), Some(file.to_string().into_bytes()))],
        &format!("[hop] attach patch {id} to release {version}"),
    )?;
    // The patch's own changes, laid on top of the release: a branch made in
    // another release also carries that release's files (its release file,
    // the folders of its other patches), which stay with their release. The
    // new tip has the release as its only parent, so later merges with the
    // release see just the patch.
    let base = git.merge_base(&patch, &release_commit)?.ok_or_else(|| {
        Error::new(format!(
            "{branch} and {release_branch} share no history: nothing to attach"
        ))
    })?;
    let own_dir = format!("Patches/{id}/");
    let foreign = |p: &str| {
        (p.starts_with("Patches/") && !p.starts_with(&own_dir))
            || p.starts_with(&format!("{}/", release_file::RELEASES_DIR))
    };
    let own: Vec<String> = git
        .changed_paths(&base, &patch)?
        .into_iter()
        .filter(|p| !foreign(p))
        .collect();
    let theirs: std::collections::BTreeSet<String> = git
        .changed_paths(&base, &release_commit)?
        .into_iter()
        .collect();
    let blob = |rev: &str, path: &str| project.repo.file_at(rev, path);
    let clashes: Vec<&String> = own
        .iter()
        .filter(|p| theirs.contains(*p) && blob(&patch, p) != blob(&release_commit, p))
        .collect();
    if !clashes.is_empty() {
        let list: Vec<&str> = clashes.iter().map(|p| p.as_str()).collect();
        return Err(Error::new(format!(
            "cannot attach {id}: {branch} and release {version} both changed {}",
            list.join(", ")
        ))
        .hint(format!(
            "nothing was changed: make them agree on the branch (git switch {branch} && git checkout origin/{release_branch} -- <path>, or merge it), commit and push, then attach again"
        )));
    }
    let attached = git.overlay_commit(
        &release_commit,
        &patch,
        &own,
        &format!(
            "[hop] attach {id} to release {version}: its changes on top of the release\n\nEarlier tip of {branch}: {patch}"
        ),
    )?;
    let updates = [
        RefUpdate::branch(&release_branch, &release_commit, &r.commit),
        RefUpdate::branch(&branch, &attached, &patch),
    ];
    // One atomic push; then the release branch follows (a fast-forward),
    // and the local patch branch moves to the new tip when it held exactly
    // what was attached (it is not checked out: we are on the release).
    if let Some(o) = &land.origin {
        o.push(&updates).map_err(|e| {
            e.context(format!("cannot attach {id}")).hint(
                "nothing was changed: origin changed meanwhile (a merge?); run the command again",
            )
        })?;
    }
    let mut notes = Vec::new();
    crate::publish::follow_locally(&project, &updates[..1], &mut notes)?;
    let local = format!("refs/heads/{branch}");
    match git.rev_parse(&local)? {
        Some(tip) if tip == patch => {
            git.update_refs(&[(&local, Some(&attached), Some(&patch))])?;
        }
        Some(_) => notes.push(format!(
            "your local {branch} differs from what was attached and was left as it is; origin has the attached branch (git switch {branch} && git reset --hard origin/{branch} once your commits are safe)"
        )),
        None => {}
    }
    let place = match &args.before {
        Some(b) => format!(" before {b}"),
        None => String::new(),
    };
    println!(
        "attached {id} to release {version} as a candidate{place}; {branch} now holds its changes on top of the release"
    );
    for n in notes {
        println!("note: {n}");
    }
    println!(
        "\nnext steps:\n  git switch {branch}\n  git hop-patch apply      # rebuild the database with this release's staged patches"
    );
    Ok(())
}
