//! Rebuilding a database for a release in preparation (docs/releases.md:
//! apply, validation steps 2–3): the plan (a fresh database from the
//! production snapshot, then the release's staged patches in TOML order,
//! then the current patch) here, its run in [`runner`], beside
//! `upgrade/{mod,runner}.rs` in the same shape (docs/engine.md).

pub mod runner;
pub mod template;

use std::io::Write;
use std::path::Path;

use crate::db::database::Database;
use crate::error::{Error, Result};
use crate::patch_id::PatchId;
use crate::release_file::PatchesFile;
use crate::snapshot;
use crate::version::Version;
use runner::{PatchToRun, RunOptions, RunReport};

/// The patches to run for `current` (staged head, then `current` unless
/// it is staged already), in TOML order (docs/releases.md).
pub fn patch_order(file: &PatchesFile, current: Option<&PatchId>) -> Result<Vec<PatchId>> {
    let mut ids = Vec::new();
    for id in file.staged() {
        ids.push(PatchId::parse(&id)?);
    }
    if let Some(c) = current
        && !ids.iter().any(|i| i == c)
    {
        ids.push(c.clone());
    }
    Ok(ids)
}

/// Starts copying into `temp` (not created yet) the template of the
/// staged head of release `version` (`file`) as `root` holds it
/// ([`template::Prepared`]): the patches' SHA-256 name it, up to the first
/// with a Python step, read without checking their statements (the
/// rebuild checks them, and takes the copy only if its own keys name the
/// same template). `None` when the staged patches cannot be read.
pub fn copy_ahead(
    temp: crate::db::temp::TempDatabase,
    cache: &template::Cache,
    root: &Path,
    version: &Version,
    file: &PatchesFile,
) -> Option<template::Prepared> {
    let mut shas = Vec::new();
    for id in patch_order(file, None).ok()? {
        let (sha, python) =
            crate::patch_dir::sha256_and_python(&root.join("Patches").join(id.as_str())).ok()?;
        if python {
            break;
        }
        shas.push(sha);
    }
    let production = snapshot::current_version(root).ok()?;
    template::Prepared::start(temp, cache, root, &production, version, shas).ok()
}

/// How a rebuild starts: a full replay, or from this clone's template
/// databases (docs/engine.md), whose head may hold the first `staged`
/// patches.
pub enum Start<'a> {
    Replay,
    /// From a dump of the production database instead of the schema
    /// snapshot (`apply --from-dump`, docs/patches.md).
    Dump(&'a crate::dump::Dump),
    Templates {
        cache: &'a template::Cache,
        staged: usize,
        /// A copy of a template made ahead, if any.
        ahead: template::Ahead,
    },
}

/// Drops and recreates `db` (empties it in place for a role that may not
/// create databases: [`Database::recreate`]), loads the production
/// snapshot found in `root`, and runs `patches` (folders under
/// `root/Patches`); with [`Start::Templates`], copies a template holding
/// the snapshot and the staged head instead, and runs only the rest. Every patch folder is
/// checked first (docs/patches.md): a refused file leaves the database as
/// it was.
pub fn rebuild(
    db: &Database,
    root: &Path,
    release: &Version,
    patches: &[PatchId],
    start: Start,
    extra_env: Vec<(String, String)>,
    out: &mut dyn Write,
) -> Result<RunReport> {
    let production = snapshot::current_version(root)?;
    let mut to_run = Vec::new();
    for id in patches {
        let dir = root.join("Patches").join(id.as_str());
        if !dir.is_dir() {
            return Err(
                Error::new(format!("patch folder Patches/{id} is missing")).hint(format!(
                    "the release lists {id}: is its merge committed? (git log -- Patches/{id})"
                )),
            );
        }
        to_run.push(PatchToRun {
            id: id.clone(),
            dir,
        });
    }
    // Every folder read and checked once, before the database is touched.
    let checked = runner::check(&to_run, root)?;
    let dump = match &start {
        Start::Dump(dump) => Some(*dump),
        _ => None,
    };
    if let Some(dump) = dump {
        dump.check_version(&production)?;
    }
    db.ensure_server()?;
    if let Start::Templates {
        cache,
        staged,
        ahead,
    } = start
    {
        let head = template::cacheable(&checked, staged);
        match template::create_from_template(
            db,
            cache,
            root,
            &production,
            release,
            &checked,
            head,
            ahead,
            &extra_env,
            out,
        )? {
            Ok(report) => return Ok(report),
            Err(template::Fallback(reason)) => {
                let _ = writeln!(
                    out,
                    "note: no template database ({reason}); replaying the whole release"
                );
            }
        }
    }
    let started = std::time::Instant::now();
    if let Some(dump) = dump {
        restore_then_swap(db, dump)?;
        let _ = writeln!(
            out,
            "database {}: dump {} restored (production {production}, {} ms)",
            db.name(),
            dump.path.display(),
            started.elapsed().as_millis()
        );
    } else {
        // Dropped and created again, or emptied in place for a role without
        // CREATEDB (docs/engine.md).
        db.recreate()?;
        snapshot::load(&db.params, root, &production)?;
        let _ = writeln!(
            out,
            "database {}: production snapshot {production} loaded ({} ms)",
            db.name(),
            started.elapsed().as_millis()
        );
    }
    runner::run_checked(
        &db.params,
        release,
        &checked,
        RunOptions {
            root,
            extra_env,
            out,
        },
    )
}

/// Restores `dump` into a temporary database, then puts it in the place of
/// `db` (docs/patches.md, "Trying a patch on real data"): a restore that
/// fails half-way (a dump truncated after the checks, a full disk) leaves
/// `db` as it was. A role that may not create databases restores into `db`
/// emptied in place, as before.
fn restore_then_swap(db: &Database, dump: &crate::dump::Dump) -> Result<()> {
    if !db.role()?.may_create_databases {
        db.recreate()?;
        return dump.restore(&db.params);
    }
    let temp = crate::db::temp::TempDatabase::new(db, "restore");
    temp.db.create()?;
    dump.restore(&temp.db.params)
        .map_err(|e| e.context(format!("database {} was left as it was", db.name())))?;
    let mut c = db.connect_maintenance()?;
    db.drop_via(&mut c)?;
    c.batch_execute(&format!(
        "ALTER DATABASE {} RENAME TO {}; COMMENT ON DATABASE {} IS NULL",
        crate::db::database::quote_ident(temp.db.name()),
        crate::db::database::quote_ident(db.name()),
        crate::db::database::quote_ident(db.name()),
    ))
    .map_err(|e| {
        crate::db::database::sql_error(
            &format!("cannot rename the restored database to {}", db.name()),
            e,
        )
    })
}
