//! `git hop-patch create <id>`: a new patch of the current release, its
//! number reserved atomically on origin (docs/releases.md).

use crate::error::{Error, Result};
use crate::origin::{Origin, REMOTE, RefUpdate, patch_reservation};
use crate::patch_id::PatchId;
use crate::preconditions;
use crate::project::{Project, RELEASE_PREFIX};
use crate::release_file::{self, PatchesFile};

/// Create a patch in the current release
///
/// Create a patch: reserve its number on origin, add it as a candidate of
/// the current release, create ho-patch/<id> and Patches/<id>/README.md,
/// push, and switch to it
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Patch id: a number (usually an issue number), then optional -words
    /// of lower-case letters and digits, e.g. 42-add-users
    #[arg(allow_hyphen_values = true)]
    pub id: String,
    /// What the patch does (goes into Patches/<id>/README.md)
    #[arg(short, long, value_name = "DESCRIPTION")]
    pub description: Option<String>,
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
    preconditions::development(&project, "git hop-patch create")?;
    let version = preconditions::on_release_branch(&project, "git hop-patch create")?;
    // The work tree is checked by git meanwhile; until the push nothing
    // is changed (the commit is an unreferenced object).
    let clean = preconditions::start_clean(&project);
    let git = &project.git;
    let (release_branch, origin, base, branch, reservation, commit) = clean.then(|| {
        let release_branch = format!("{RELEASE_PREFIX}{version}");
        // No fetch first: the push below is a compare-and-swap on the release
        // branch as this clone has it, on the number and on the branch, so a
        // stale clone is refused by origin itself, and told why afterwards.
        let origin = Origin::of(git)?;
        let base = git
            .rev_parse(&format!("refs/heads/{release_branch}"))?
            .ok_or_else(|| Error::new(format!("branch {release_branch} not found")))?;

        // The release file, with the new candidate.
        let toml_path = release_file::patches_path(&project.root, &version);
        let rel_toml = toml_path
            .strip_prefix(&project.root)
            .unwrap_or(&toml_path)
            .display()
            .to_string();
        let text = git.file_at(&base, &rel_toml)?;
        let mut file = PatchesFile::parse(&toml_path, &text)?;
        if file.state(id.as_str()).is_some() {
            return Err(
                Error::new(format!("patch {id} is already listed in {rel_toml}"))
                    .hint(format!("git switch {}", id.branch())),
            );
        }
        if let Some(before) = &args.before
            && !file.candidates().iter().any(|c| c == before)
        {
            return Err(Error::new(format!(
                "Patch not found in candidates file: {before} is not a candidate of release {version}"
            ))
            .hint(format!("candidates: {}", list_or_none(&file.candidates()))));
        }
        file.add_candidate(id.as_str(), args.before.as_deref())?;

        // Free locally and on origin?
        let branch = id.branch();
        let reservation = patch_reservation(id.number());
        if git.rev_parse(&format!("refs/heads/{branch}"))?.is_some() {
            return Err(Error::new(format!("branch {branch} already exists"))
                .hint(format!("git switch {branch}")));
        }
        // What this clone knows (its own reservations, origin's branches as
        // last fetched); origin's other reservations and branches are found by
        // the push, whose compare-and-swap refuses a number taken meanwhile.
        if let Some(commit) = git.rev_parse(&reservation)? {
            return Err(taken_error(git, id.number(), &commit));
        }
        if origin.is_some()
            && git
                .rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))?
                .is_some()
        {
            return Err(branch_on_origin(&branch));
        }

        // Build the commit, push everything at once, then move local refs.
        let readme_rel = format!("Patches/{id}/README.md");
        let readme = match &args.description {
            Some(d) => format!("# {id}\n\n{}\n", d.trim()),
            None => format!("# {id}\n"),
        };
        let commit = git.commit_changes(
            &base,
            &[
                (rel_toml.clone(), Some(file.to_string().into_bytes())),
                (readme_rel.clone(), Some(readme.into_bytes())),
            ],
            &format!(
                "[hop] create patch {id} in release {version}{}",
                crate::origin::unique_trailer()
            ),
        )?;
        Ok((release_branch, origin, base, branch, reservation, commit))
    })?;
    if let Some(o) = &origin
        && let Err(e) = o.push(&[
            RefUpdate::update(format!("refs/heads/{release_branch}"), &commit, &base),
            RefUpdate::create(format!("refs/heads/{branch}"), &commit),
            RefUpdate::create(reservation.clone(), &commit),
        ])
    {
        // Say why: the number or the branch taken, or a release branch that
        // is not origin's.
        let remote_branch = format!("refs/heads/{branch}");
        let remote_release = format!("refs/heads/{release_branch}");
        if let Ok(seen) = o.ls_remote(&[&reservation, &remote_branch, &remote_release]) {
            if let Some(winner) = seen.get(&reservation) {
                let _ = git.run(&["fetch", "-q", REMOTE, &reservation]);
                return Err(taken_error(git, id.number(), winner).context("nothing was changed"));
            }
            if seen.contains_key(&remote_branch) {
                return Err(branch_on_origin(&branch).context("nothing was changed"));
            }
            if seen.get(&remote_release) != Some(&base) && o.fetch().is_ok() {
                preconditions::in_sync(&project, &release_branch)
                    .map_err(|e| e.context("nothing was changed"))?;
            }
        }
        return Err(e
            .context(format!("cannot create patch {id}"))
            .hint("nothing was changed locally; git fetch, then run the command again"));
    }
    git.switch_new(&branch, &commit, origin.as_ref().map(|_| REMOTE))?;
    // Both local refs in one transaction.
    git.update_refs(&[
        (
            &format!("refs/heads/{release_branch}"),
            Some(&commit),
            Some(&base),
        ),
        (&reservation, Some(&commit), None),
    ])?;
    println!("created patch {id} as a candidate of release {version} on branch {branch}");
    if origin.is_some() {
        println!(
            "reserved patch number {} and pushed {branch} and {release_branch} to origin",
            id.number()
        );
    }
    println!(
        "\nnext steps:\n  put SQL files in Patches/{id}/ (01_….sql, run in name order)\n  git hop-patch apply      # rebuild the database with this patch, regenerate code\n  git add -A && git commit\n  git hop-patch merge      # validate and merge into {release_branch}"
    );
    Ok(())
}

fn branch_on_origin(branch: &str) -> Error {
    Error::new(format!("{branch} already exists on origin")).hint(format!("git switch {branch}"))
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// "patch number 7 is already taken by 7-x (Ann, 2026-11-21)".
fn taken_error(git: &crate::git::Git, number: &str, commit: &str) -> Error {
    let info = git
        .run(&[
            "log",
            "-1",
            "--format=%s%x00%an%x00%ad",
            "--date=short",
            commit,
        ])
        .unwrap_or_default();
    let mut parts = info.split('\0');
    let subject = parts.next().unwrap_or("");
    let author = parts.next().unwrap_or("someone");
    let date = parts.next().unwrap_or("");
    let holder = subject
        .strip_prefix("[hop] create patch ")
        .and_then(|r| r.split(' ').next())
        .unwrap_or("another patch");
    Error::new(format!(
        "patch number {number} is already taken by {holder} ({author}, {date})"
    ))
    .hint("choose another number (usually the number of your issue)")
}
