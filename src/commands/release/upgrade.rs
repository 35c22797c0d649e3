//! `git hop-release upgrade`: brings a production database to the latest
//! (or a chosen) production version (docs/production.md): fetch, refuse on schema
//! drift, take the production lock, back up and verify, run every pending
//! release in one transaction ([`crate::upgrade::runner`]), then move the
//! work tree to the version reached.
//!
//! Development clones are refused: their database is rebuilt, not
//! upgraded (`git hop-patch apply`, `git hop-release restore <version>`).

use std::time::Duration;

use crate::backup;
use crate::commands::db_args::DbArgs;
use crate::db::meta;
use crate::error::{Error, Result};
use crate::origin::Origin;
use crate::preconditions;
use crate::project::Project;
use crate::snapshot;
use crate::upgrade::{self, lock::Lock, runner};
use crate::version::Version;

/// Upgrade this production database to the latest (or a given) release
///
/// Upgrade this production clone's database: every production release newer
/// than its version, in order, in one transaction with the metadata rows,
/// after a verified backup; then check out ho-prod at the version reached
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Stop at this production version (default: the latest)
    #[arg(long, value_name = "VERSION")]
    pub to_release: Option<String>,
    /// Print the plan (releases, patches, files, transaction splits) and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the exact SQL in run order on stdout, runnable
    /// by psql -X -v ON_ERROR_STOP=1 -f (the plan goes to stderr)
    #[arg(long, requires = "dry_run", conflicts_with = "json")]
    pub sql: bool,
    /// With --dry-run: print the plan as JSON on stdout (the rest on stderr)
    #[arg(long, requires = "dry_run")]
    pub json: bool,
    /// Upgrade even if the database schema drifted from its version's snapshot
    #[arg(long)]
    pub force: bool,
    /// Seconds to wait for another upgrade or restore of the database to finish
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub wait: u64,
    /// Seconds to keep retrying while the application's sessions hold a lock
    /// a patch needs (each try waits at most hop.lockTimeout, default 2 s)
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub lock_wait: u64,
    #[command(flatten)]
    pub db: DbArgs,
}

/// The `--dry-run --json` document.
#[derive(serde::Serialize, Debug, Default)]
pub struct Plan {
    pub schema_version: u32,
    pub database: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub releases: Vec<PlannedRelease>,
    /// How many transactions the run takes (1 unless a step runs outside one).
    pub transactions: usize,
    pub error: Option<crate::machine::JsonError>,
}

#[derive(serde::Serialize, Debug)]
pub struct PlannedRelease {
    pub version: String,
    pub commit: String,
    pub patches: Vec<PlannedPatch>,
}

#[derive(serde::Serialize, Debug)]
pub struct PlannedPatch {
    pub id: String,
    pub sha256: String,
    /// `file` and how it runs: `transaction`, `no-transaction`, `python`,
    /// `skipped` (done by an interrupted run).
    pub steps: Vec<(String, String)>,
}

pub fn run(args: Args) -> Result<()> {
    let machine = args.sql || args.json;
    let mut plan = Plan {
        schema_version: crate::machine::SCHEMA_VERSION,
        ..Plan::default()
    };
    let mut sql = None;
    let result = {
        let _people = crate::machine::StdoutToStderr::new(machine);
        upgrade(&args, &mut plan, &mut sql)
    };
    if args.json {
        plan.error = result.as_ref().err().map(crate::machine::JsonError::from);
        crate::machine::print(&plan)?;
    } else if let Some(text) = sql.filter(|_| result.is_ok()) {
        print!("{text}");
    }
    result
}

fn upgrade(args: &Args, plan: &mut Plan, sql: &mut Option<String>) -> Result<()> {
    let to = args
        .to_release
        .as_deref()
        .map(str::parse::<Version>)
        .transpose()?;
    let project = Project::from_cwd()?;
    if !project.clone.production {
        return Err(Error::new(
            "git hop-release upgrade runs in production clones; this is a development clone",
        )
        .hint("a development database is rebuilt, not upgraded: git hop-patch apply (on a patch branch) or git hop-release restore <version>; a production server is cloned with git hop-release clone --production"));
    }
    preconditions::clean(&project)?;
    if let Some(o) = Origin::of(&project.git)? {
        o.fetch()?;
    }
    upgrade::check_production_branch(&project)?;
    let db = project.database(&args.db.options(None))?;
    db.ensure_server()?;
    // The lock first: what follows reads a state no other upgrade changes.
    let mut lock_holder;
    let mut plain;
    let client: &mut postgres::Client = if args.dry_run {
        plain = db.connect()?;
        &mut plain
    } else {
        lock_holder = Lock::acquire(&db.params, Duration::from_secs(args.wait), "upgrade")?;
        lock_holder.client()
    };
    let version = meta::database_version(client)?.ok_or_else(|| {
        Error::new(format!(
            "database {} has no git-hop metadata (half_orm_meta)",
            db.name()
        ))
        .hint("check which database this clone uses: git hop-release status")
    })?;
    let rows = runner::step_rows(client)?;
    let pending = upgrade::pending(&project, &version, to.as_ref())?;
    plan.database = Some(db.name().to_string());
    plan.from = Some(version.to_string());
    plan.to = Some(version.to_string());
    if pending.is_empty() && rows.is_empty() {
        *sql = Some(format!(
            "-- database {} is at {version}: up to date, nothing to run\n",
            db.name()
        ));
        if upgrade::work_tree_at(&project, &version)? {
            println!("database {} is at {version}: up to date", db.name());
        } else if args.dry_run {
            println!(
                "database {} is at {version}: up to date; the work tree would move to {}",
                db.name(),
                version.tag_name()
            );
        } else {
            upgrade::move_work_tree(&project, &version)?;
            println!(
                "database {} is at {version}: up to date; work tree moved to {} (ho-prod)",
                db.name(),
                version.tag_name()
            );
        }
        return Ok(());
    }
    let tmp = tempfile::Builder::new()
        .prefix("hop-upgrade-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let releases = upgrade::extract(&project, &pending, tmp.path())?;
    let resume = upgrade::resume_state(&rows, &releases)?;
    let target = pending
        .last()
        .map(|p| p.version.clone())
        .unwrap_or_else(|| version.clone());

    // Drift: the database must be exactly its version's snapshot. Its schema
    // dump runs beside the backup (two pg_dump processes reading the same
    // database); a refusal deletes the backup it made (docs/production.md).
    let drift_dump = || -> Result<Option<String>> {
        if resume.release.is_some() {
            return Ok(None);
        }
        snapshot::dump::dump_schema_waiting(&db.params, Duration::from_secs(args.lock_wait))
            .map(Some)
    };
    let check = |actual: Option<String>| match actual {
        Some(a) => drift_refusal(&project, &db, &version, &a, args.force),
        None => Ok(None),
    };
    let dir = backup::backup_dir(&project);
    let (warning, taken) = if args.dry_run {
        (check(drift_dump()?)?, None)
    } else {
        let tables = backup::tables(client)?;
        let (actual, taken) = std::thread::scope(|s| {
            let dump = s.spawn(drift_dump);
            let taken = backup::take(
                &db.params,
                &dir,
                &version,
                &tables,
                Duration::from_secs(args.lock_wait),
            );
            let actual = dump
                .join()
                .unwrap_or_else(|_| Err(Error::new("the schema dump of the drift check stopped")));
            (actual, taken)
        });
        match actual.and_then(check) {
            Ok(warning) => (warning, Some(taken?)),
            Err(e) => {
                if let Ok(b) = &taken {
                    let _ = std::fs::remove_file(&b.path);
                }
                return Err(e);
            }
        }
    };
    if let Some(r) = &resume.release {
        println!(
            "resuming the interrupted upgrade of release {r} ({} step(s) done); the drift check is skipped (the database holds part of {r})",
            resume.done.len()
        );
    }
    if let Some(warning) = warning {
        println!("warning (--force): {warning}");
    }

    println!(
        "upgrade of {} from {version} to {target}: {} release(s)",
        db.describe(),
        pending.len()
    );
    print!("{}", runner::describe(&releases, &resume));
    plan.to = Some(target.to_string());
    plan.transactions = runner::items(&releases, &resume)
        .iter()
        .filter(|i| matches!(i, runner::Item::Begin))
        .count();
    plan.releases = releases
        .iter()
        .map(|r| PlannedRelease {
            version: r.version.to_string(),
            commit: r.commit.clone(),
            patches: r
                .patches
                .iter()
                .map(|p| PlannedPatch {
                    id: p.id.clone(),
                    sha256: p.sha256.clone(),
                    steps: p
                        .steps
                        .iter()
                        .map(|s| {
                            let how = if resume.release.as_ref() == Some(&r.version)
                                && resume.done.contains(&(p.id.clone(), s.name.clone()))
                            {
                                "skipped"
                            } else {
                                match s.kind {
                                    crate::patch_dir::StepKind::Python => "python",
                                    crate::patch_dir::StepKind::Sql {
                                        no_transaction: true,
                                    } => "no-transaction",
                                    crate::patch_dir::StepKind::Sql { .. } => "transaction",
                                }
                            };
                            (s.name.clone(), how.to_string())
                        })
                        .collect(),
                })
                .collect(),
        })
        .collect();
    if args.sql {
        *sql = Some(runner::plain_sql(
            &releases,
            &resume,
            &format!(
                "git hop-release upgrade --dry-run --sql: database {} from {version} to {target}\n\
                 run it with: psql -X -v ON_ERROR_STOP=1 -f FILE (git hop-release upgrade itself also\n\
                 takes a verified backup, checks for drift, locks, and guards the transactions)",
                db.name()
            ),
        )?);
    }
    let Some(taken) = taken else {
        println!("\ndry run: nothing was changed");
        return Ok(());
    };
    println!("backup: {} (verified)", taken.path.display());

    // Python steps get the database as in docs/releases.md (a half_orm config for it).
    let has_python = releases.iter().any(|r| {
        r.patches.iter().any(|p| {
            p.steps
                .iter()
                .any(|s| s.kind == crate::patch_dir::StepKind::Python)
        })
    });
    let python_env = if has_python {
        let conf_dir = crate::generate::working_config_dir(&project.state_dir());
        crate::generate::environment(&conf_dir, &project.root, &project.config, &db)?
    } else {
        Vec::new()
    };
    let mut out = std::io::stdout();
    // Live traffic (docs/engine.md): every statement waits at most
    // hop.lockTimeout for a lock; a run that did not get one rolls back
    // and is tried again, with backoff and jitter, within --lock-wait.
    let lock_timeout = project.clone.lock_timeout;
    let lock_wait = Duration::from_secs(args.lock_wait);
    let started = std::time::Instant::now();
    let mut attempt: u32 = 0;
    let mut resume = resume;
    let mut releases = releases;
    let report = loop {
        let result = runner::run(
            &db.params,
            client,
            &releases,
            &resume,
            runner::Options {
                root: &project.root,
                extracted: tmp.path(),
                python_env: python_env.clone(),
                lock_timeout,
                out: &mut out,
            },
        );
        let e = match result {
            Ok(r) => break r,
            Err(e) => e,
        };
        attempt += 1;
        let pause = backoff(attempt);
        if !runner::is_lock_timeout(&e.message) || started.elapsed() + pause >= lock_wait {
            let mut e = e;
            if runner::is_lock_timeout(&e.message) {
                e.message = format!(
                    "{}; gave up after {attempt} tries in {} s (--lock-wait {})",
                    e.message,
                    started.elapsed().as_secs(),
                    args.lock_wait
                );
            }
            return Err(after_failure(&project, &db, e, &version, &taken));
        }
        println!(
            "waiting for a lock (try {attempt}, rolled back; again in {} ms): {}",
            pause.as_millis(),
            e.message
        );
        std::thread::sleep(pause);
        // What committed before a split stays done: start from there.
        let now = meta::database_version(client)?.unwrap_or_else(|| version.clone());
        releases.retain(|r| r.version > now);
        let rows = runner::step_rows(client)?;
        resume = upgrade::resume_state(&rows, &releases)?;
    };
    upgrade::move_work_tree(&project, &target)?;
    crate::generate::write_working_config(&project, &db)?;
    println!(
        "\ndatabase {} upgraded from {version} to {target} in {} ms ({} commit(s)); work tree at {} (ho-prod)\nbackup of {version}: {}\n\nnext steps:\n  git hop-release status\n  to go back: git hop-release restore {version}",
        db.name(),
        report.total.as_millis(),
        report.commits,
        target.tag_name(),
        taken.path.display()
    );
    Ok(())
}

/// The drift check (docs/production.md): `Ok(None)` when the schema of the
/// database (`actual`, a normalized dump) is its version's snapshot; the
/// difference as a warning with `force`; an error without it.
fn drift_refusal(
    project: &Project,
    db: &crate::db::database::Database,
    version: &Version,
    actual: &str,
    force: bool,
) -> Result<Option<String>> {
    // The materialized views' population is not schema (docs/snapshots.md).
    let expected = snapshot::sections::for_drift(&upgrade::expected_schema(project, version)?);
    let actual = snapshot::sections::for_drift(actual);
    if expected == actual {
        return Ok(None);
    }
    let diff = upgrade::schema_diff(&expected, &actual, 20).join("\n  ");
    let what = format!(
        "the schema of database {} differs from the snapshot of its version {version} (.hop/model/schema-{version}.sql at {}):\n  {diff}",
        db.name(),
        version.tag_name()
    );
    if !force {
        return Err(Error::new(what).hint(
            "someone changed the production schema by hand: bring it back to the snapshot, or pass --force to upgrade anyway; nothing was changed",
        ));
    }
    Ok(Some(what))
}

/// The pause before try `attempt + 1` of a run that did not get its lock:
/// 250 ms doubling up to 5 s, with ±25 % jitter so that upgrades and
/// applications retrying together drift apart.
fn backoff(attempt: u32) -> Duration {
    let base = 250u64
        .saturating_mul(1 << attempt.min(5).saturating_sub(1))
        .min(5000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let jitter = base / 2 * (nanos % 1000) / 1000; // 0..base/2
    Duration::from_millis(base - base / 4 + jitter)
}

/// What to do about a failed run, from its actual cause: an interruption
/// (a cancel, a lost connection, a killed process) is not a broken patch.
fn cause_hint(message: &str) -> String {
    let interrupted = [
        "canceling statement due to user request",
        "terminating connection",
        "server closed the connection",
        "connection to server",
        "was killed by signal",
        "could not receive data from server",
    ];
    if interrupted.iter().any(|m| message.contains(m)) {
        "the upgrade was interrupted (a cancel, a lost connection or a killed process), not broken: run git hop-release upgrade again".into()
    } else if message.contains("canceling statement due to statement timeout") {
        "the server's or the role's statement_timeout cancelled a statement: raise it for the upgrade (ALTER ROLE … SET statement_timeout), then run git hop-release upgrade again".into()
    } else if message.contains("lock timeout") {
        "a patch could not get its lock in time: the application's sessions held it (see above); run git hop-release upgrade again at a quieter time, or with a longer --lock-wait".into()
    } else {
        "a patch of the release failed: fix it in a hotfix release (git hop-release hotfix), then run git hop-release upgrade again".into()
    }
}

/// The error of a failed run, saying where the database now is (read back
/// from it) and what to do.
fn after_failure(
    project: &Project,
    db: &crate::db::database::Database,
    e: Error,
    start: &Version,
    taken: &backup::Backup,
) -> Error {
    let state = db.connect().and_then(|mut c| {
        let v = meta::database_version(&mut c)?;
        let rows = runner::step_rows(&mut c)?;
        Ok((v, rows))
    });
    let (now, rows) = match state {
        Ok((Some(v), rows)) => (v, rows),
        Ok((None, _)) | Err(_) => {
            return e.hint(format!(
                "the database could not be read back after the failure; the backup of {start} is {}",
                taken.path.display()
            ));
        }
    };
    // The work tree follows the database (releases completed before a split).
    if now != *start {
        let _ = upgrade::move_work_tree(project, &now);
    }
    if rows.is_empty() && now == *start {
        return Error::new(format!(
            "{}; nothing of the upgrade was committed: database {} is exactly at {start}",
            e.message,
            db.name()
        ))
        .hint(format!(
            "{}; backup of {start}: {}",
            cause_hint(&e.message),
            taken.path.display()
        ));
    }
    let failed = rows
        .iter()
        .find(|r| r.state != "done")
        .map(|r| format!("{} {}", r.patch_id, r.file));
    let release = rows.first().map(|r| r.release.clone()).unwrap_or_default();
    let mut msg = format!("{}; database {} is at {now}", e.message, db.name());
    if !rows.is_empty() {
        msg.push_str(&format!(
            ", with {} step(s) of {release} applied before a step outside a transaction (recorded in {})",
            rows.iter().filter(|r| r.state == "done").count(),
            runner::STEP_TABLE
        ));
    }
    let resume = match failed {
        Some(f) => format!("git hop-release upgrade resumes from {f}"),
        None => "git hop-release upgrade resumes where it stopped".into(),
    };
    Error::new(msg).hint(format!(
        "fix the cause, then {resume}; or go back: git hop-release restore {start} (backup {})",
        taken.path.display()
    ))
}
