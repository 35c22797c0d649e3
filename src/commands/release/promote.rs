//! `git hop-release promote rc|prod|hotfix` (docs/releases.md): the sequential
//! rule, the same validation as a merge, one atomic push, local refs moved
//! only once origin accepted it.

use crate::commands::db_args::DbArgs;
use crate::commands::lock_args::LockArgs;
use crate::error::{Error, Result};
use crate::lock::Lock;
use crate::origin::RefUpdate;
use crate::preconditions;
use crate::project::{PROD_BRANCH, Project, RELEASE_PREFIX};
use crate::release::{self, Landscape, Prepared};
use crate::release_file::{self, PatchesFile};
use crate::validation::{self, Worktree};
use crate::version::{Pre, Version};

/// Promote the release in preparation: to a release candidate, to
/// production, or a hotfix to production
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub target: Target,
}

#[derive(clap::Subcommand, Debug)]
pub enum Target {
    Rc(RcArgs),
    Prod(ProdArgs),
    Hotfix(HotfixArgs),
}

/// Validate the smallest release and tag its next release candidate
///
/// Tag the next release candidate X.Y.Z-rcN of the smallest release in
/// preparation: re-validated (fresh database from the production snapshot,
/// staged patches in TOML order, generated code compared, tests), then
/// X.Y.Z-rcN.txt committed on ho-release/X.Y.Z and tagged vX.Y.Z-rcN
#[derive(clap::Args, Debug)]
pub struct RcArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// Validate the smallest release and put it into production
///
/// Put the smallest release in preparation into production: re-validated,
/// merged into ho-prod with its model snapshot (dumped from the validation
/// database and proved: loaded into a fresh database, dumped again and
/// compared; a snapshot that does not reload is refused, naming the first
/// difference), schema.sql moved, X.Y.Z.txt written, the TOML deleted,
/// tagged vX.Y.Z, ho-release/X.Y.Z deleted locally and on origin
#[derive(clap::Args, Debug)]
pub struct ProdArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// Validate the open hotfix and put it into production
///
/// Put the open hotfix release into production as the next X.Y.Z-hotfixN:
/// validated, merged into ho-prod with its model snapshot (proved to
/// reload, as for prod), tagged
/// vX.Y.Z-hotfixN, its branch deleted; lists the releases that must sync
#[derive(clap::Args, Debug)]
pub struct HotfixArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub lock: LockArgs,
}

pub fn run(args: Args) -> Result<()> {
    match args.target {
        Target::Rc(a) => rc(a),
        Target::Prod(a) => prod(a),
        Target::Hotfix(a) => hotfix(a),
    }
}

fn start(command: &str) -> Result<(Project, Landscape)> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, command)?;
    preconditions::clean(&project)?;
    let land = release::survey(&project, true)?;
    Ok((project, land))
}

/// Takes the release's lock on origin; when the release moved there while
/// this command waited its turn, surveys again, so that it validates the
/// head it will push onto.
fn locked(
    project: &Project,
    land: Landscape,
    seen: Option<(Version, String)>,
    args: &LockArgs,
    command: &str,
) -> Result<(Option<Lock>, Landscape)> {
    let (Some((v, commit)), Some(origin)) = (seen, &land.origin) else {
        return Ok((None, land));
    };
    let lock = args.take(project, &v.base().to_string(), command)?;
    let branch = format!("refs/heads/{RELEASE_PREFIX}{}", v.base());
    if origin.remote_ref(&branch)?.as_deref() == Some(commit.as_str()) {
        return Ok((lock, land));
    }
    Ok((lock, release::survey(project, true)?))
}

fn rc(args: RcArgs) -> Result<()> {
    let (project, land) = start("git hop-release promote rc")?;
    let current = project.current_branch();
    let seen =
        release::select_for_promotion(&project, &land, current.as_deref(), "a release candidate")
            .ok()
            .map(|r| (r.version.clone(), r.commit.clone()));
    let (mut lock, land) = locked(
        &project,
        land,
        seen,
        &args.lock,
        "git hop-release promote rc",
    )?;
    let r =
        release::select_for_promotion(&project, &land, current.as_deref(), "a release candidate")?;
    let v = &r.version;
    // One release at a time goes through release candidates.
    for other in land.normal().filter(|o| o.version != *v) {
        if let Some(active) = land.rc_tags(&other.version).last() {
            return Err(Error::new(format!(
                "cannot promote {v} to a release candidate: release {} has an active release candidate ({})",
                other.version,
                active.tag_name()
            ))
            .hint(format!(
                "one release at a time goes through release candidates: promote {v} straight to production (git hop-release promote prod), then sync {} and promote it again",
                other.version
            )));
        }
    }
    let n = match land.rc_tags(v).last().map(|t| t.pre) {
        Some(Pre::Rc(n)) => n + 1,
        _ => 1,
    };
    let target = Version {
        pre: Pre::Rc(n),
        ..v.clone()
    };
    let working = project.database(&args.db.options(None))?;

    // Validate and build the commit in a temporary worktree.
    let (commit, tag, staged) = {
        let wt = Worktree::add(&project, &r.commit)?;
        let file = PatchesFile::load(release_file::patches_path(&wt.path, v))?;
        validation::validate_tree(&project, &working, &wt, v, &file)?;
        let staged = file.staged();
        let txt = release_file::snapshot_path(&wt.path, &target);
        if txt.exists() {
            return Err(Error::new(format!(
                "{} exists already on {} but tag {} does not",
                release::relative(
                    &project,
                    &release_file::snapshot_path(&project.root, &target)
                ),
                r.branch,
                target.tag_name()
            ))
            .hint("fetch the tags (git fetch --tags origin) and run the command again"));
        }
        release_file::write_snapshot(
            &txt,
            &staged,
            Some(&format!(
                "release candidate {target}: staged patches in application order"
            )),
        )?;
        let message = format!("[hop] release candidate {target}");
        wt.git.run(&["add", "-A"])?;
        wt.git
            .run(&["commit", "-q", "--no-verify", "-m", &message])?;
        let commit = wt.git.head()?;
        let tag = release::make_tag(&project.git, &commit, &target.tag_name(), &message)?;
        (commit, tag, staged)
    };

    // One atomic push, then local refs.
    let tag_ref = format!("refs/tags/{}", target.tag_name());
    if let Some(o) = &land.origin {
        crate::lock::push(
            lock.as_mut(),
            o,
            &[
                RefUpdate::update(format!("refs/heads/{}", r.branch), &commit, &r.commit),
                RefUpdate::create(tag_ref.clone(), &tag),
            ],
        )
        .map_err(|e| {
            e.context(format!("cannot publish {target}")).hint(
                "nothing was changed, locally or on origin: fetch, check git hop-release status, and run the command again",
            )
        })?;
    }
    project
        .git
        .update_refs(&[(&tag_ref, Some(&tag), Some(""))])?;
    let mut notes = Vec::new();
    if r.local.is_some() {
        release::move_local_branch(&project, &r.branch, &commit, &mut notes)?;
    }
    println!(
        "\nrelease candidate {target}: {} patch(es): {}",
        staged.len(),
        staged.join(", ")
    );
    println!(
        "committed {} on {} and tagged {}",
        release::relative(
            &project,
            &release_file::snapshot_path(&project.root, &target)
        ),
        r.branch,
        target.tag_name()
    );
    if let Some(o) = &land.origin {
        println!(
            "pushed {} and {} to origin ({})",
            r.branch,
            target.tag_name(),
            o.url
        );
    }
    for n in notes {
        println!("note: {n}");
    }
    println!(
        "\nnext steps:\n  test the release candidate {}\n  git hop-patch create <id>          # a fix, then promote rc again\n  git hop-release promote prod       # when it is good",
        target.tag_name()
    );
    Ok(())
}

/// A promotion whose push origin accepted but whose local part never ran:
/// completed, and said so (the goal is reached: exit 0).
fn completed(project: &Project, land: &Landscape) -> Result<bool> {
    let Some((v, notes)) = release::complete_interrupted_production(project, land)? else {
        return Ok(false);
    };
    println!(
        "{v} was already promoted: an interrupted run had published it to origin; completed locally ({PROD_BRANCH} at {}, its release branch deleted)",
        v.tag_name()
    );
    for n in notes {
        println!("note: {n}");
    }
    Ok(true)
}

fn prod(args: ProdArgs) -> Result<()> {
    let (project, land) = start("git hop-release promote prod")?;
    if completed(&project, &land)? {
        return Ok(());
    }
    let current = project.current_branch();
    let seen = release::select_for_promotion(&project, &land, current.as_deref(), "production")
        .ok()
        .map(|r| (r.version.clone(), r.commit.clone()));
    let (mut lock, land) = locked(
        &project,
        land,
        seen,
        &args.lock,
        "git hop-release promote prod",
    )?;
    let r = release::select_for_promotion(&project, &land, current.as_deref(), "production")?;
    let target = r.version.clone();
    if land.is_released(&target) {
        return Err(Error::new(format!(
            "{} exists already: {target} is in production",
            target.tag_name()
        ))
        .hint("a released version reopens only as a hotfix: git hop-release hotfix"));
    }
    let working = project.database(&args.db.options(None))?;
    let p = release::build_production(&project, &working, &land, r, &target)?;
    let notes = release::publish_production(&project, &land, r, &p, lock.as_mut())?;
    report_production(&project, &land, r, &p, &notes);
    println!(
        "\nnext steps:\n  deploy: git hop-release upgrade on the production servers\n  git hop-release new <patch|minor|major>   # the next release"
    );
    let later: Vec<&Prepared> = land.normal().filter(|o| o.version != target).collect();
    if !later.is_empty() {
        println!(
            "  these releases in preparation must now run git hop-release sync: {}",
            later
                .iter()
                .map(|o| o.version.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn hotfix(args: HotfixArgs) -> Result<()> {
    let (project, land) = start("git hop-release promote hotfix")?;
    if completed(&project, &land)? {
        return Ok(());
    }
    let seen = land
        .hotfixes()
        .next()
        .map(|r| (r.version.clone(), r.commit.clone()));
    let (mut lock, land) = locked(
        &project,
        land,
        seen,
        &args.lock,
        "git hop-release promote hotfix",
    )?;
    let hotfixes: Vec<&Prepared> = land.hotfixes().collect();
    let Some(r) = hotfixes.first().copied() else {
        return Err(Error::new(format!(
            "no hotfix release is open (production is {})",
            land.production
        ))
        .hint("git hop-release hotfix opens one"));
    };
    let v = &r.version;
    if *v != land.production.base() {
        return Err(Error::new(format!(
            "the hotfix release {v} is not of the current production version {}",
            land.production
        ))
        .hint(format!(
            "production moved on since it was opened: move its patches to a release in preparation, then delete {} (locally and on origin)",
            r.branch
        )));
    }
    let candidates = r.file.candidates();
    if !candidates.is_empty() {
        return Err(Error::new(format!(
            "cannot promote the hotfix {v}: candidates not merged yet: {}",
            candidates.join(", ")
        ))
        .hint("merge them (git switch ho-patch/<id> && git hop-patch merge), or take them out of the release: git hop-patch detach <id>"));
    }
    if r.file.staged().is_empty() {
        return Err(Error::new(format!(
            "the hotfix release {v} has no staged patch: nothing to promote"
        ))
        .hint("git hop-patch create <id>, then git hop-patch merge"));
    }
    release::check_contains_production(&project, &land, r)?;
    release::check_local_branch(&project, r)?;
    let n = match land.hotfix_tags(v).last().map(|t| t.pre) {
        Some(Pre::Hotfix(n)) => n + 1,
        _ => 1,
    };
    let target = Version {
        pre: Pre::Hotfix(n),
        ..v.clone()
    };
    let working = project.database(&args.db.options(None))?;
    let p = release::build_production(&project, &working, &land, r, &target)?;
    let notes = release::publish_production(&project, &land, r, &p, lock.as_mut())?;
    report_production(&project, &land, r, &p, &notes);
    let others: Vec<String> = land.normal().map(|o| o.version.to_string()).collect();
    println!("\nnext steps:\n  deploy: git hop-release upgrade on the production servers");
    if others.is_empty() {
        println!("  no release in preparation needs to sync");
    } else {
        println!(
            "  these releases in preparation must now run git hop-release sync (so they carry the hotfix): {}",
            others.join(", ")
        );
    }
    Ok(())
}

fn report_production(
    project: &Project,
    land: &Landscape,
    r: &Prepared,
    p: &release::Production,
    notes: &[String],
) {
    let v = &p.version;
    println!(
        "\n{v} is in production: {} patch(es): {}",
        p.patches.len(),
        p.patches.join(", ")
    );
    println!(
        "merged {} into {PROD_BRANCH}; model snapshot .hop/model/schema-{v}.sql, data-{v}.sql, metadata-{v}.sql (schema.sql points at it); {}; tagged {}",
        r.branch,
        release::relative(project, &release_file::snapshot_path(&project.root, v)),
        v.tag_name()
    );
    match &land.origin {
        Some(o) => println!(
            "pushed {PROD_BRANCH} and {} to origin ({}); deleted {} locally and on origin",
            v.tag_name(),
            o.url,
            r.branch
        ),
        None => println!("deleted {}", r.branch),
    }
    for n in notes {
        println!("note: {n}");
    }
}
