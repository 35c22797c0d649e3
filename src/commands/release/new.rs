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
    // First from what this clone last fetched, with no fetch: the push is a
    // compare-and-swap on the reservation and the branch, and holds a lease
    // on origin's ho-prod, so a clone that missed a promotion is refused by
    // origin. Only then (or when what it knows refuses) fetch and decide
    // again on origin's state.
    match open(&project, origin.as_ref(), level, false) {
        Err(Attempt::Stale) => {}
        Err(Attempt::Failed(e)) => return Err(e),
        Ok(()) => return Ok(()),
    }
    if let Some(o) = &origin {
        o.fetch()?;
    }
    open(&project, origin.as_ref(), level, true).map_err(|a| match a {
        Attempt::Stale => Error::new("origin changed meanwhile; nothing was changed")
            .hint("run the command again"),
        Attempt::Failed(e) => e,
    })
}

/// Why an attempt did not open the release.
enum Attempt {
    /// What this clone knew may be out of date: fetch and try again.
    Stale,
    Failed(Error),
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Attempt {
        Attempt::Failed(e)
    }
}

fn open(
    project: &Project,
    origin: Option<&Origin>,
    level: Level,
    fetched: bool,
) -> std::result::Result<(), Attempt> {
    let stale_or = |e: Error| {
        if fetched || origin.is_none() {
            Attempt::Failed(e)
        } else {
            Attempt::Stale
        }
    };
    let git = &project.git;
    let base_ref = if origin.is_some() {
        format!("refs/remotes/{REMOTE}/{PROD_BRANCH}")
    } else {
        format!("refs/heads/{PROD_BRANCH}")
    };
    let Some(base) = git.rev_parse(&base_ref)? else {
        return Err(stale_or(
            Error::new(format!("{base_ref} does not exist"))
                .hint("is this a git-hop project? git hop-release status"),
        ));
    };
    let tags = git.run(&["tag", "--merged", &base, "--list", "v*"])?;
    let Some(production) = version::latest_production(tags.lines()) else {
        return Err(stale_or(
            Error::new("no production version (no v* tag on ho-prod)")
                .hint("git hop-release init creates v0.0.0"),
        ));
    };
    let next = production.next(level);
    let branch = format!("{RELEASE_PREFIX}{next}");
    let reservation = release_reservation(&next.to_string());

    // Already in preparation anywhere? With an origin, its reservation
    // decides (an abandoned release's reservation is gone there, while this
    // clone may still hold a copy); its branches and tags are as last
    // fetched.
    let taken_locally = git.rev_parse(&format!("refs/heads/{branch}"))?.is_some()
        || (origin.is_none() && git.rev_parse(&reservation)?.is_some())
        || git
            .rev_parse(&format!("refs/tags/{}", next.tag_name()))?
            .is_some();
    let taken_on_origin = origin.is_some()
        && git
            .rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))?
            .is_some();
    let in_preparation = || {
        Error::new(format!("release {next} is already in preparation (or released); nothing was changed"))
            .hint(format!("git switch {branch}  (git fetch first if it is on origin only), or choose another level"))
    };
    if taken_locally || taken_on_origin {
        return Err(stale_or(in_preparation()));
    }

    // Build the commit, push, and only then touch local refs.
    let toml_path = release_file::patches_path(&project.root, &next);
    let rel = release_file::patches_rel(&next);
    let content = PatchesFile::new_empty(&toml_path, false).to_string();
    let commit = git.commit_changes(
        &base,
        &[(rel.clone(), Some(content.into_bytes()))],
        &format!(
            "[hop] new release {next}{}",
            crate::origin::unique_trailer()
        ),
    )?;
    if let Some(o) = origin
        && let Err(e) = o.push(&[
            RefUpdate::create(format!("refs/heads/{branch}"), &commit),
            RefUpdate::create(reservation.clone(), &commit),
            // A lease only: production as this clone knows it.
            RefUpdate::update(format!("refs/heads/{PROD_BRANCH}"), &base, &base),
        ])
    {
        if !fetched {
            return Err(Attempt::Stale);
        }
        if o.ls_remote(&[&format!("refs/heads/{branch}"), &reservation])
            .is_ok_and(|taken| !taken.is_empty())
        {
            return Err(Attempt::Failed(in_preparation()));
        }
        return Err(Attempt::Failed(
            Error::new(format!("cannot reserve release {next} on origin: {}", e.message))
                .hint("another clone probably opened it at the same moment: git fetch && git hop-release status"),
        ));
    }
    git.update_refs(&[(&reservation, Some(&commit), None)])?;
    git.switch_new(&branch, &commit, origin.map(|_| REMOTE))?;
    println!("opened release {next} (production is {production}) on branch {branch}");
    if let Some(o) = origin {
        println!("reserved {next} and pushed {branch} to origin ({})", o.url);
    }
    println!(
        "created {rel}\n\nnext steps:\n  git hop-patch create <id> -d \"what it does\"   # e.g. 1-users"
    );
    Ok(())
}
