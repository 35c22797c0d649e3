//! `git hop-release new <patch|minor|major>`: opens the next release,
//! reserved atomically on origin (docs/releases.md).

use crate::error::{Error, Result};
use crate::origin::{Origin, REMOTE, RefUpdate, release_reservation};
use crate::preconditions;
use crate::project::{PROD_BRANCH, Project, RELEASE_PREFIX};
use crate::release_file::{self, PatchesFile};
use crate::version::{self, Level};

/// Open the next release (patch, minor or major)
///
/// Open the next release: reserve its version on origin, create
/// ho-release/X.Y.Z from ho-prod with an empty X.Y.Z-patches.toml, push,
/// and switch to it
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which part of the production version to increase
    #[arg(value_parser = ["patch", "minor", "major"])]
    pub level: String,
}

pub fn run(args: Args) -> Result<()> {
    let level: Level = args.level.parse()?;
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-release new")?;
    preconditions::clean(&project)?;
    let origin = Origin::of(&project.git)?;
    if let Some(o) = &origin {
        o.fetch()?;
    }
    let git = &project.git;
    let base_ref = if origin.is_some() {
        format!("refs/remotes/{REMOTE}/{PROD_BRANCH}")
    } else {
        format!("refs/heads/{PROD_BRANCH}")
    };
    let base = git.rev_parse(&base_ref)?.ok_or_else(|| {
        Error::new(format!("{base_ref} does not exist"))
            .hint("is this a git-hop project? git hop-release status")
    })?;
    let tags = git.run(&["tag", "--merged", &base, "--list", "v*"])?;
    let production = version::latest_production(tags.lines()).ok_or_else(|| {
        Error::new("no production version (no v* tag on ho-prod)")
            .hint("git hop-release init creates v0.0.0")
    })?;
    let next = production.next(level);
    let branch = format!("{RELEASE_PREFIX}{next}");

    // Already in preparation anywhere?
    // With an origin, its reservation decides (an abandoned release's
    // reservation is gone there, while this clone may still hold a copy).
    let taken_locally = git.rev_parse(&format!("refs/heads/{branch}"))?.is_some()
        || (origin.is_none()
            && git
                .rev_parse(&release_reservation(&next.to_string()))?
                .is_some())
        || git
            .rev_parse(&format!("refs/tags/{}", next.tag_name()))?
            .is_some();
    // Origin's branches and tags as just fetched; its reservations are
    // found by the push, whose compare-and-swap refuses one taken.
    let taken_on_origin = origin.is_some()
        && git
            .rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))?
            .is_some();
    let in_preparation = || {
        Error::new(format!("release {next} is already in preparation (or released); nothing was changed"))
            .hint(format!("git switch {branch}  (git fetch first if it is on origin only), or choose another level"))
    };
    if taken_locally || taken_on_origin {
        return Err(in_preparation());
    }

    // Build the commit, push, and only then touch local refs.
    let toml_path = release_file::patches_path(&project.root, &next);
    let rel = toml_path
        .strip_prefix(&project.root)
        .unwrap_or(&toml_path)
        .display()
        .to_string();
    let content = PatchesFile::new_empty(&toml_path, false).to_string();
    let commit = git.commit_changes(
        &base,
        &[(rel.clone(), Some(content.into_bytes()))],
        &format!(
            "[hop] new release {next}{}",
            crate::origin::unique_trailer()
        ),
    )?;
    if let Some(o) = &origin
        && let Err(e) = o.push(&[
            RefUpdate::create(format!("refs/heads/{branch}"), &commit),
            RefUpdate::create(release_reservation(&next.to_string()), &commit),
        ])
    {
        let reservation = release_reservation(&next.to_string());
        if o.ls_remote(&[&format!("refs/heads/{branch}"), &reservation])
            .is_ok_and(|taken| !taken.is_empty())
        {
            return Err(in_preparation());
        }
        return Err(
            Error::new(format!("cannot reserve release {next} on origin: {}", e.message))
                .hint("another clone probably opened it at the same moment: git fetch && git hop-release status"),
        );
    }
    git.run(&[
        "update-ref",
        &release_reservation(&next.to_string()),
        &commit,
    ])?;
    git.run(&["switch", "-q", "-c", &branch, &commit])?;
    if origin.is_some() {
        git.run(&[
            "branch",
            "-q",
            "--set-upstream-to",
            &format!("{REMOTE}/{branch}"),
        ])?;
    }
    println!("opened release {next} (production is {production}) on branch {branch}");
    if let Some(o) = &origin {
        println!("reserved {next} and pushed {branch} to origin ({})", o.url);
    }
    println!(
        "created {rel}\n\nnext steps:\n  git hop-patch create <id> -d \"what it does\"   # e.g. 1-users"
    );
    Ok(())
}
