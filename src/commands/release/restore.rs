//! `git hop-release restore <V>` (docs/production.md). In a development clone:
//! rebuilds the working database at production version V from V's model
//! snapshot, read at tag vV. In a production clone: restores the verified
//! backup `upgrade` took before leaving V ([`crate::backup::restore`]),
//! after confirmation (`--yes`, or a "yes" typed on a terminal; without a
//! terminal and without `--yes` it refuses), then checks out `ho-prod` at
//! vV.

use std::time::Duration;

use crate::backup;
use crate::commands::db_args::DbArgs;
use crate::db::meta;
use crate::error::{Error, Result};
use crate::preconditions;
use crate::project::Project;
use crate::snapshot;
use crate::upgrade::{self, lock::Lock};
use crate::version::{Pre, Version};

/// Bring the database back to a production version
///
/// Bring the database back to production version V: in development, rebuild
/// it from V's model snapshot; in production, restore the backup taken before
/// leaving V (asks for confirmation unless --yes)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The production version (X.Y.Z or X.Y.Z-hotfixN)
    #[arg(value_name = "VERSION")]
    pub target: String,
    /// Do not ask for confirmation (production)
    #[arg(long)]
    pub yes: bool,
    /// Seconds to wait for an upgrade or restore of the database to finish (production)
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    let v: Version = args.target.parse()?;
    if matches!(v.pre, Pre::Rc(_)) {
        return Err(Error::usage(format!(
            "{v} is a release candidate, not a production version"
        ))
        .hint("restore takes X.Y.Z or X.Y.Z-hotfixN"));
    }
    let project = Project::from_cwd()?;
    if project.git.rev_parse(&v.tag_name())?.is_none() {
        return Err(Error::new(format!(
            "{v} is not a production version of this project (no tag {})",
            v.tag_name()
        ))
        .hint("git fetch --tags origin; git hop-release update lists the production versions"));
    }
    if project.clone.production {
        production(&project, &args, &v)
    } else {
        development(&project, &args, &v)
    }
}

fn development(project: &Project, args: &Args, v: &Version) -> Result<()> {
    let tag = v.tag_name();
    let commit = project
        .git
        .rev_parse(&tag)?
        .ok_or_else(|| Error::new(format!("tag {tag} does not exist")))?;
    // The snapshot as the tag has it, whatever the work tree holds.
    let tmp = tempfile::Builder::new()
        .prefix("hop-restore-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let files = snapshot::files(tmp.path(), v);
    for path in [&files.schema, &files.data, &files.metadata] {
        let rel = path
            .strip_prefix(tmp.path())
            .unwrap_or(path)
            .display()
            .to_string();
        let bytes = project.repo.file_at(&commit, &rel).ok_or_else(|| {
            Error::new(format!("tag {tag} has no {rel}"))
                .hint("the model snapshot of a production version must be committed")
        })?;
        crate::release_file::write_atomic(path, &bytes)?;
    }
    // The seed data as the tag has it, which fits its schema (docs/patches.md).
    let listed = project.git.run(&[
        "ls-tree",
        "-r",
        "--name-only",
        "-z",
        &commit,
        "--",
        crate::seed::DIR,
    ])?;
    for rel in listed.split('\0').filter(|r| !r.is_empty()) {
        if let Some(bytes) = project.repo.file_at(&commit, rel) {
            let path = tmp.path().join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("cannot create", parent, e))?;
            }
            crate::release_file::write_atomic(&path, &bytes)?;
        }
    }
    let seed = crate::seed::Seed::of(tmp.path())?;
    let db = project.database(&args.db.options(None))?;
    db.ensure_server()?;
    if db.exists()? {
        db.drop_database()?;
    }
    db.create()?;
    snapshot::load(&db.params, tmp.path(), v)?;
    let mut client = db.connect()?;
    meta::set_commit(&mut client, v, &commit)?;
    let conf_dir = crate::generate::write_working_config(project, &db)?;
    if let Some(seed) = &seed {
        let env = crate::generate::environment(&conf_dir, &project.root, &project.config, &db)?;
        seed.run(&db, v, env, &mut std::io::stdout())?;
    }
    println!(
        "rebuilt {} at production version {v} from the model snapshot at {tag}\n\ncode was not regenerated (the work tree is on {}):\n  git hop-release generate   regenerates it from this database\n  git hop-patch apply        rebuilds the database for your patch again",
        db.describe(),
        project
            .current_branch()
            .unwrap_or_else(|| "a detached HEAD".into())
    );
    Ok(())
}

fn production(project: &Project, args: &Args, v: &Version) -> Result<()> {
    preconditions::clean(project)?;
    upgrade::check_production_branch(project)?;
    let db = project.database(&args.db.options(None))?;
    let dir = backup::backup_dir(project);
    let found = backup::find(&dir, db.name(), v)?.ok_or_else(|| {
        let others: Vec<String> = backup::list(&dir, db.name())
            .unwrap_or_default()
            .iter()
            .map(|b| b.version.to_string())
            .collect();
        let have = if others.is_empty() {
            "none".to_string()
        } else {
            others.join(", ")
        };
        Error::new(format!(
            "no backup of database {} at version {v} in {} (backups of versions: {have})",
            db.name(),
            dir.display()
        ))
        .hint("a production restore needs the backup git hop-release upgrade took before leaving that version; nothing was changed")
    })?;
    backup::verify(&found.path, &backup::meta_tables())?;
    db.ensure_server()?;
    let lock = Lock::acquire(&db.params, Duration::from_secs(args.wait), "restore")?;
    let current = {
        let mut c = db.connect()?;
        meta::database_version(&mut c)?
    };
    let current = current
        .map(|c| c.to_string())
        .unwrap_or_else(|| "no version".into());
    let question = format!(
        "replace production database {} (now at {current}) with the backup of {v} taken {} ({})?",
        db.name(),
        found.stamp,
        found.path.display()
    );
    if !args.yes {
        crate::confirm::confirm(&question, &format!("git hop-release restore {v} --yes"))?;
    }
    let mut out = std::io::stdout();
    let restored = backup::restore(&db, &found, lock, &mut out)?;
    upgrade::move_work_tree(project, v)?;
    println!(
        "database {} restored to {v} from {}; work tree at {} (ho-prod)\nthe replaced database is kept as {}: drop it once you are satisfied (DROP DATABASE \"{}\")",
        db.name(),
        found.path.display(),
        v.tag_name(),
        restored.kept_as,
        restored.kept_as
    );
    Ok(())
}
