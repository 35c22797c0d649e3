//! Running an upgrade (docs/production.md, docs/engine.md): every pending release, in order, in
//! **one transaction** together with its `hop_release` / `hop_patch` rows,
//! through one psql process driven by a script of `\i` lines (the
//! conventions of [`crate::rebuild::runner`]: `\warn` markers on stderr tie
//! progress and errors to release, patch and file).
//!
//! What keeps the transaction whole:
//! - **Commit gate.** Before each `COMMIT` the driver stops on `\prompt`,
//!   reading a line from its stdin, a pipe only this process writes to. The
//!   line is written when the gate's marker arrives; if this process dies
//!   (kill -9, Ctrl-C), the pipe closes, `\prompt` fails, psql stops with
//!   the transaction open and the server rolls it back. On Linux psql also
//!   gets SIGKILL when this process dies (`PR_SET_PDEATHSIG`), and the
//!   session sets `client_connection_check_interval` (PostgreSQL 14+) so a
//!   long statement of a dead client is cancelled soon.
//! - **Guard against a patch's own transaction control.** The transaction
//!   is opened as `BEGIN READ WRITE` with the session default
//!   `default_transaction_read_only = on`, and holds a deferred constraint
//!   trigger on a temporary table that raises unless the driver's own
//!   commit sets `hop.commit` (see [`crate::driver`]). A `COMMIT` in a patch file therefore
//!   fails (and rolls everything back); after a `ROLLBACK` in a patch file
//!   every later write fails (read-only), and the driver's check after each
//!   file stops the run. Either way nothing half-done is committed.
//!
//! Steps outside a transaction (docs/engine.md: a SQL file whose first line is
//! `-- hop: no-transaction`, and `*.py` files) split the transaction at
//! their place: what precedes them commits (through the gate) first. The
//! release such a step belongs to is then *in progress*; its steps are
//! recorded in `half_orm_meta.hop_upgrade_step` (see [`STEP_TABLE_SQL`]):
//! a transactional step's row commits with it; a step outside a
//! transaction is recorded `running` before it starts and `done` after it
//! (or `failed`, with the error). The release's own `hop_release` and
//! `hop_patch` rows are written only in the transaction that ends the
//! release, which also drops the step table, so the database's version
//! is never a half-applied release. A rerun reads the table and skips the
//! steps marked `done` (a `running` or `failed` step runs again: a
//! no-transaction step must be safe to rerun, e.g. `CREATE INDEX
//! CONCURRENTLY IF NOT EXISTS`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::conn::ConnParams;
use crate::db::database::{quote_literal, sql_error};
use crate::db::pgbin;
use crate::db::psql::quote_path;
use crate::driver::{self, describe_status, find_error, ms};
use crate::error::{Error, Result};
use crate::patch_dir::{Step, StepKind};
use crate::version::Version;

/// The table of an upgrade in progress (exists only while a release is
/// partly applied; all its rows belong to that release).
pub const STEP_TABLE: &str = "half_orm_meta.hop_upgrade_step";

pub const STEP_TABLE_SQL: &str = "CREATE TABLE IF NOT EXISTS half_orm_meta.hop_upgrade_step (\
release text NOT NULL, patch_id text NOT NULL, file text NOT NULL, sha256 text NOT NULL, \
state text NOT NULL CHECK (state IN ('running', 'done', 'failed')), error text, \
at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (release, patch_id, file));";

/// A patch of a pending release, its files extracted from the release's tag.
#[derive(Debug, Clone)]
pub struct PatchRun {
    pub id: String,
    /// What of the session its SQL may change (`patch_dir::SessionUse`).
    pub session: crate::patch_dir::SessionUse,
    pub dir: PathBuf,
    pub sha256: String,
    pub steps: Vec<Step>,
}

/// A pending release and its patches in application order.
#[derive(Debug, Clone)]
pub struct ReleaseRun {
    pub version: Version,
    /// The commit of its tag (recorded in `hop_release.commit`).
    pub commit: String,
    pub patches: Vec<PatchRun>,
}

/// Where an interrupted upgrade stopped: the release in progress and its
/// steps already done, `(patch id, file name)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub release: Option<Version>,
    pub done: BTreeSet<(String, String)>,
}

/// One recorded step of an upgrade in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub release: String,
    pub patch_id: String,
    pub file: String,
    pub sha256: String,
    pub state: String,
    pub error: Option<String>,
}

/// The rows of [`STEP_TABLE`]; empty when there is no upgrade in progress.
pub fn step_rows(client: &mut impl postgres::GenericClient) -> Result<Vec<StepRow>> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('half_orm_meta.hop_upgrade_step') IS NOT NULL",
            &[],
        )
        .map_err(|e| sql_error("cannot read the catalog", e))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT release, patch_id, file, sha256, state, error FROM half_orm_meta.hop_upgrade_step ORDER BY at, patch_id, file",
            &[],
        )
        .map_err(|e| sql_error(&format!("cannot read {STEP_TABLE}"), e))?;
    Ok(rows
        .iter()
        .map(|r| StepRow {
            release: r.get(0),
            patch_id: r.get(1),
            file: r.get(2),
            sha256: r.get(3),
            state: r.get(4),
            error: r.get(5),
        })
        .collect())
}

/// How a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    InTransaction,
    NoTransaction,
    Python,
}

fn mode(step: &Step) -> Mode {
    match step.kind {
        StepKind::Sql {
            no_transaction: false,
        } => Mode::InTransaction,
        StepKind::Sql {
            no_transaction: true,
        } => Mode::NoTransaction,
        StepKind::Python => Mode::Python,
    }
}

/// The upgrade as a sequence, shared by the plan (`--dry-run`) and the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// Opens a transaction.
    Begin,
    /// Commits the open transaction (through the gate). `before`: the step
    /// outside a transaction that makes it commit, or `None` at the end.
    Commit {
        before: Option<(usize, usize, usize)>,
    },
    ReleaseStart(usize),
    PatchStart(usize, usize),
    Step(usize, usize, usize, Mode),
    /// Done by an interrupted run: skipped.
    Skip(usize, usize, usize),
    /// The release's `hop_release` / `hop_patch` rows.
    ReleaseEnd(usize),
}

/// Whether release `r` records its steps (it is split, or resumed).
fn tracked(releases: &[ReleaseRun], resume: &Resume, r: usize) -> bool {
    let rel = &releases[r];
    resume.release.as_ref() == Some(&rel.version)
        || rel.patches.iter().any(|p| {
            p.steps.iter().any(|s| {
                mode(s) != Mode::InTransaction
                    && !resume.done.contains(&(p.id.clone(), s.name.clone()))
            })
        })
}

/// The sequence of an upgrade of `releases` (the first one possibly
/// resumed).
pub fn items(releases: &[ReleaseRun], resume: &Resume) -> Vec<Item> {
    let mut out = vec![Item::Begin];
    let mut in_tx = true;
    for (r, rel) in releases.iter().enumerate() {
        let resumed = resume.release.as_ref() == Some(&rel.version);
        out.push(Item::ReleaseStart(r));
        for (p, patch) in rel.patches.iter().enumerate() {
            // The session reset at a patch's start needs a writable
            // transaction (temporary objects are dropped there).
            if !in_tx {
                out.push(Item::Begin);
                in_tx = true;
            }
            out.push(Item::PatchStart(r, p));
            for (s, step) in patch.steps.iter().enumerate() {
                if resumed && resume.done.contains(&(patch.id.clone(), step.name.clone())) {
                    out.push(Item::Skip(r, p, s));
                    continue;
                }
                let m = mode(step);
                match m {
                    Mode::InTransaction => {
                        if !in_tx {
                            out.push(Item::Begin);
                            in_tx = true;
                        }
                    }
                    Mode::NoTransaction | Mode::Python => {
                        if in_tx {
                            out.push(Item::Commit {
                                before: Some((r, p, s)),
                            });
                            in_tx = false;
                        }
                    }
                }
                out.push(Item::Step(r, p, s, m));
            }
        }
        if !in_tx {
            out.push(Item::Begin);
            in_tx = true;
        }
        out.push(Item::ReleaseEnd(r));
    }
    out.push(Item::Commit { before: None });
    out
}

/// The plan in words (for `--dry-run` and before a run).
pub fn describe(releases: &[ReleaseRun], resume: &Resume) -> String {
    let items = items(releases, resume);
    let mut out = String::new();
    let mut tx = 0;
    for item in &items {
        match item {
            Item::Begin => {
                tx += 1;
                out.push_str(&format!("transaction {tx}:\n"));
            }
            Item::Commit { before: Some(_) } => {
                out.push_str(&format!(
                    "  commit transaction {tx} here: the next step runs outside a transaction\n"
                ));
            }
            Item::Commit { before: None } => {
                out.push_str(&format!("  commit transaction {tx}\n"));
            }
            Item::ReleaseStart(r) => {
                let rel = &releases[*r];
                out.push_str(&format!(
                    "  release {} ({} patch(es))\n",
                    rel.version,
                    rel.patches.len()
                ));
            }
            Item::PatchStart(r, p) => {
                out.push_str(&format!("    patch {}\n", releases[*r].patches[*p].id));
            }
            Item::Step(r, p, s, m) => {
                let note = match m {
                    Mode::InTransaction => "",
                    Mode::NoTransaction => {
                        "  (no-transaction: runs on its own; what precedes it is committed first)"
                    }
                    Mode::Python => {
                        "  (python: runs outside the transaction; what precedes it is committed first)"
                    }
                };
                let step = &releases[*r].patches[*p].steps[*s];
                out.push_str(&format!("      {}{note}\n", step.name));
            }
            Item::Skip(r, p, s) => {
                let step = &releases[*r].patches[*p].steps[*s];
                out.push_str(&format!(
                    "      {}  (done by the interrupted upgrade: skipped)\n",
                    step.name
                ));
            }
            Item::ReleaseEnd(r) => {
                out.push_str(&format!(
                    "    record release {} in half_orm_meta\n",
                    releases[*r].version
                ));
            }
        }
    }
    if tx > 1 {
        out.push_str(&format!(
            "{tx} transactions: a failure after a commit leaves the database with the steps before it applied, recorded in {STEP_TABLE}; a rerun resumes from the failed step\n"
        ));
    } else {
        out.push_str(
            "one transaction: on any failure the database stays exactly at its starting version\n",
        );
    }
    out
}

/// A marker line of the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    /// The backend pid of the driver's session.
    Backend(i32),
    Release(usize),
    Patch(usize, usize),
    Step(usize, usize, usize),
    Check(usize, usize, usize),
    Record(usize),
    Gate,
    Committed,
    Done,
}

fn marker_text(m: Marker) -> String {
    match m {
        Marker::Backend(pid) => format!("backend {pid}"),
        Marker::Release(r) => format!("release {r}"),
        Marker::Patch(r, p) => format!("patch {r} {p}"),
        Marker::Step(r, p, s) => format!("step {r} {p} {s}"),
        Marker::Check(r, p, s) => format!("check {r} {p} {s}"),
        Marker::Record(r) => format!("record {r}"),
        Marker::Gate => "gate".into(),
        Marker::Committed => "committed".into(),
        Marker::Done => "done".into(),
    }
}

fn parse_marker(rest: &str) -> Option<Marker> {
    let mut w = rest.split(' ');
    let kind = w.next()?;
    let mut n = || w.next().and_then(|x| x.parse::<usize>().ok());
    Some(match kind {
        "backend" => Marker::Backend(w.next()?.parse().ok()?),
        "release" => Marker::Release(n()?),
        "patch" => {
            let r = n()?;
            Marker::Patch(r, n()?)
        }
        "step" => {
            let (r, p) = (n()?, n()?);
            Marker::Step(r, p, n()?)
        }
        "check" => {
            let (r, p) = (n()?, n()?);
            Marker::Check(r, p, n()?)
        }
        "record" => Marker::Record(n()?),
        "gate" => Marker::Gate,
        "committed" => Marker::Committed,
        "done" => Marker::Done,
        _ => return None,
    })
}

/// The upgrade as plain SQL (`upgrade --dry-run --sql`, docs/production.md):
/// what the run executes, in its order, with its transaction boundaries,
/// each patch file inline, the `half_orm_meta` rows as the run writes them,
/// runnable as is by `psql -X -v ON_ERROR_STOP=1 -f`. What the run adds
/// around it (the backup, the drift check, the lock, the guards against a
/// patch file's own COMMIT, the progress markers) is not SQL of the plan.
/// A Python step has no SQL form: refused.
pub fn plain_sql(releases: &[ReleaseRun], resume: &Resume, header: &str) -> Result<String> {
    let mut out = String::new();
    for l in header.lines() {
        out.push_str(&format!("-- {l}\n"));
    }
    let row = |r: usize, p: usize, s: usize, state: &str| step_row(releases, r, p, s, state) + "\n";
    for item in items(releases, resume) {
        match item {
            Item::Begin => out.push_str("\nBEGIN;\n"),
            Item::Commit { .. } => out.push_str("COMMIT;\n"),
            Item::ReleaseStart(r) => {
                let rel = &releases[r];
                out.push_str(&format!(
                    "\n-- release {} ({} patch(es))\n",
                    rel.version,
                    rel.patches.len()
                ));
                if tracked(releases, resume, r) {
                    out.push_str(STEP_TABLE_SQL);
                    out.push('\n');
                }
            }
            Item::PatchStart(r, p) => {
                out.push_str(&format!(
                    "\n-- patch {}: every patch starts from the same session\nRESET ALL;\n",
                    releases[r].patches[p].id
                ));
            }
            Item::Skip(r, p, s) => {
                out.push_str(&format!(
                    "-- {}/{}: done by the interrupted upgrade, skipped\n",
                    releases[r].patches[p].id, releases[r].patches[p].steps[s].name
                ));
            }
            Item::Step(r, p, s, m) => {
                let patch = &releases[r].patches[p];
                let step = &patch.steps[s];
                if m == Mode::Python {
                    return Err(Error::new(format!(
                        "release {} has a Python step (Patches/{}/{}): it has no SQL form",
                        releases[r].version, patch.id, step.name
                    ))
                    .hint("read the plan without --sql (git hop-release upgrade --dry-run); git hop-release upgrade runs it"));
                }
                let text = std::fs::read_to_string(&step.path)
                    .map_err(|e| Error::io("cannot read", &step.path, e))?;
                if m == Mode::NoTransaction {
                    out.push_str(&row(r, p, s, "running"));
                    out.push_str(&format!(
                        "-- Patches/{}/{} (no-transaction: runs on its own)\n",
                        patch.id, step.name
                    ));
                } else {
                    out.push_str(&format!("-- Patches/{}/{}\n", patch.id, step.name));
                }
                out.push_str(&text);
                if !text.ends_with('\n') {
                    out.push('\n');
                }
                if m == Mode::NoTransaction || tracked(releases, resume, r) {
                    out.push_str(&row(r, p, s, "done"));
                }
            }
            Item::ReleaseEnd(r) => {
                let rel = &releases[r];
                out.push_str(&format!(
                    "\n-- record release {}\nRESET ALL;\n",
                    rel.version
                ));
                for l in release_rows(rel, tracked(releases, resume, r)) {
                    out.push_str(&l);
                    out.push('\n');
                }
            }
        }
    }
    Ok(out)
}

/// The row of step `s` of patch `p` of release `r` in the step table, in
/// `state`: the run's and the plain SQL plan's.
fn step_row(releases: &[ReleaseRun], r: usize, p: usize, s: usize, state: &str) -> String {
    let rel = &releases[r];
    let patch = &rel.patches[p];
    format!(
        "INSERT INTO half_orm_meta.hop_upgrade_step (release, patch_id, file, sha256, state) VALUES ({}, {}, {}, {}, '{state}') \
         ON CONFLICT (release, patch_id, file) DO UPDATE SET state = EXCLUDED.state, error = NULL, at = now();",
        quote_literal(&rel.version.to_string()),
        quote_literal(&patch.id),
        quote_literal(&patch.steps[s].name),
        quote_literal(&patch.sha256),
    )
}

/// The statements that record release `rel` in `half_orm_meta` at its end
/// (and drop the step table of a `tracked` one): the run's and the plain
/// SQL plan's.
fn release_rows(rel: &ReleaseRun, tracked: bool) -> Vec<String> {
    let v = &rel.version;
    let (pre, num) = v.pre_release_columns();
    let mut out = vec![format!(
        "INSERT INTO half_orm_meta.hop_release (version, major, minor, patch, pre_release, pre_release_num, commit) VALUES ({}, {}, {}, {}, {}, {}, {});",
        quote_literal(&v.to_string()),
        v.major,
        v.minor,
        v.patch,
        quote_literal(pre),
        num.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into()),
        quote_literal(&rel.commit)
    )];
    for patch in &rel.patches {
        out.push(format!(
            "INSERT INTO half_orm_meta.hop_patch (patch_id, release, sha256) VALUES ({}, {}, {});",
            quote_literal(&patch.id),
            quote_literal(&v.to_string()),
            quote_literal(&patch.sha256)
        ));
    }
    if tracked {
        out.push("DROP TABLE IF EXISTS half_orm_meta.hop_upgrade_step;".into());
    }
    out
}

/// A part of the run: a psql process, or one Python step.
enum Segment {
    Psql(String),
    Python(usize, usize, usize),
}

struct Builder<'a> {
    releases: &'a [ReleaseRun],
    settings: driver::Settings,
    tag: String,
    token: String,
    text: String,
}

impl Builder<'_> {
    fn line(&mut self, l: &str) {
        self.text.push_str(l);
        self.text.push('\n');
    }

    fn marker(&mut self, m: Marker) {
        let l = format!("\\warn {} {}", self.tag, marker_text(m));
        self.line(&l);
    }

    fn preamble(&mut self) {
        self.line("\\set ON_ERROR_STOP on");
        for l in driver::session_setup(&self.settings) {
            self.line(&l);
        }
        // The backend, for the watch on what blocks it.
        let l = format!("\\warn {} backend :hop_backend", self.tag);
        self.line(&l);
    }

    fn step_row(&self, r: usize, p: usize, s: usize, state: &str) -> String {
        step_row(self.releases, r, p, s, state)
    }
}

fn build(
    releases: &[ReleaseRun],
    resume: &Resume,
    tag: &str,
    token: &str,
    lock_timeout: Option<Duration>,
) -> Result<Vec<Segment>> {
    let mut b = Builder {
        releases,
        settings: driver::Settings {
            lock_timeout,
            check_client: true,
        },
        tag: tag.to_string(),
        token: token.to_string(),
        text: String::new(),
    };
    let mut segments = Vec::new();
    b.preamble();
    // The patch before the current one in this psql session.
    let mut previous: Option<(usize, usize)> = None;
    for item in items(releases, resume) {
        match item {
            Item::Begin => {
                for l in driver::guarded_begin(None) {
                    b.line(&l);
                }
            }
            Item::Commit { .. } => {
                b.marker(Marker::Gate);
                b.line(&format!("\\prompt hop_gate_{}", b.token));
                b.line(&driver::guarded_commit());
                b.line("SET default_transaction_read_only = off;");
                b.marker(Marker::Committed);
            }
            Item::ReleaseStart(r) => {
                b.marker(Marker::Release(r));
                if tracked(releases, resume, r) {
                    b.line(STEP_TABLE_SQL);
                }
            }
            Item::PatchStart(r, p) => {
                b.marker(Marker::Patch(r, p));
                // Every patch starts from the same session (docs/engine.md).
                let used = previous
                    .map(|(pr, pp): (usize, usize)| releases[pr].patches[pp].session)
                    .unwrap_or_default();
                previous = Some((r, p));
                for l in driver::session_reset(&b.settings, true, used) {
                    b.line(&l);
                }
            }
            Item::Skip(..) => {}
            Item::Step(r, p, s, m) => {
                let path = quote_path(&releases[r].patches[p].steps[s].path)?;
                match m {
                    Mode::InTransaction => {
                        b.marker(Marker::Step(r, p, s));
                        b.line(&format!("\\i {path}"));
                        b.line("\\set ON_ERROR_STOP on");
                        b.marker(Marker::Check(r, p, s));
                        for l in driver::step_check(&b.tag, true) {
                            b.line(&l);
                        }
                        if tracked(releases, resume, r) {
                            let row = b.step_row(r, p, s, "done");
                            b.line(&row);
                        }
                    }
                    Mode::NoTransaction => {
                        let row = b.step_row(r, p, s, "running");
                        b.line(&row);
                        b.marker(Marker::Step(r, p, s));
                        b.line(&format!("\\i {path}"));
                        b.line("\\set ON_ERROR_STOP on");
                        b.marker(Marker::Check(r, p, s));
                        for l in driver::step_check(&b.tag, false) {
                            b.line(&l);
                        }
                        let row = b.step_row(r, p, s, "done");
                        b.line(&row);
                    }
                    Mode::Python => {
                        b.marker(Marker::Done);
                        segments.push(Segment::Psql(std::mem::take(&mut b.text)));
                        segments.push(Segment::Python(r, p, s));
                        b.preamble();
                    }
                }
            }
            Item::ReleaseEnd(r) => {
                let rel = &releases[r];
                b.marker(Marker::Record(r));
                // git-hop's own rows, whatever role or path a patch left set.
                let used = rel
                    .patches
                    .iter()
                    .fold(crate::patch_dir::SessionUse::default(), |u, p| {
                        u.union(p.session)
                    });
                for l in driver::session_reset(&b.settings, true, used) {
                    b.line(&l);
                }
                for l in release_rows(rel, tracked(releases, resume, r)) {
                    b.line(&l);
                }
            }
        }
    }
    b.marker(Marker::Done);
    segments.push(Segment::Psql(b.text));
    Ok(segments)
}

/// Whether a run failed because a statement did not get its lock within
/// `lock_timeout` (SQLSTATE 55P03).
pub fn is_lock_timeout(message: &str) -> bool {
    message.contains("canceling statement due to lock timeout")
        || message.contains("could not obtain lock")
}

/// What blocked the driver's statement, as the watch last saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocked {
    /// The statement that waited.
    pub statement: String,
    /// `pid 123 (psql, idle in transaction, transaction open 5 s): query`.
    pub blockers: Vec<String>,
}

impl Blocked {
    pub fn describe(&self) -> String {
        format!(
            "the statement `{}` waited for a lock held by: {}",
            self.statement,
            self.blockers.join("; ")
        )
    }
}

/// Watches, from a connection of its own, which sessions block the
/// driver's session (its pid arrives through a marker), and keeps the last
/// non-empty answer: when a statement's `lock_timeout` fires, the blockers
/// are still known.
struct Watch {
    pid: Arc<AtomicI32>,
    seen: Arc<Mutex<Option<Blocked>>>,
    /// Dropped to stop the watch: the thread wakes at once, not at the end
    /// of its pause (the upgrade would wait for it).
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(params: &ConnParams) -> Watch {
        let pid = Arc::new(AtomicI32::new(0));
        let seen = Arc::new(Mutex::new(None));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (p, s) = (pid.clone(), seen.clone());
        let params = params.clone();
        let handle = std::thread::spawn(move || {
            let mut client: Option<postgres::Client> = None;
            loop {
                let backend = p.load(Ordering::Relaxed);
                if backend != 0 {
                    if client.is_none() {
                        client = crate::db::conn::connect(&params).ok();
                    }
                    if let Some(c) = client.as_mut()
                        && let Ok(Some(b)) = blocked(c, backend)
                        && let Ok(mut slot) = s.lock()
                    {
                        *slot = Some(b);
                    }
                }
                match stopped.recv_timeout(Duration::from_millis(100)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => break,
                }
            }
        });
        Watch {
            pid,
            seen,
            stop: Some(stop),
            handle: Some(handle),
        }
    }

    fn last(&self) -> Option<Blocked> {
        self.seen.lock().ok().and_then(|s| s.clone())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The sessions that block backend `pid` now, if any.
fn blocked(client: &mut postgres::Client, pid: i32) -> Result<Option<Blocked>> {
    let rows = client
        .query(
            "SELECT left(coalesce(w.query, ''), 200), b.pid, coalesce(b.application_name, ''), coalesce(b.state, ''), \
             coalesce(extract(epoch FROM now() - b.xact_start)::int, 0), left(coalesce(b.query, ''), 200) \
             FROM pg_stat_activity w JOIN pg_stat_activity b ON b.pid = ANY (pg_blocking_pids(w.pid)) \
             WHERE w.pid = $1 ORDER BY b.pid",
            &[&pid],
        )
        .map_err(|e| sql_error("cannot read pg_stat_activity", e))?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let collapse = |s: String| s.split_whitespace().collect::<Vec<_>>().join(" ");
    Ok(Some(Blocked {
        statement: collapse(first.get(0)),
        blockers: rows
            .iter()
            .map(|r| {
                let app: String = r.get(2);
                let app = if app.is_empty() {
                    "no application_name".into()
                } else {
                    app
                };
                format!(
                    "pid {} ({app}, {}, transaction open {} s): {}",
                    r.get::<_, i32>(1),
                    r.get::<_, String>(3),
                    r.get::<_, i32>(4),
                    collapse(r.get(5))
                )
            })
            .collect(),
    }))
}

pub struct Options<'a> {
    /// The work tree root: working directory of psql and of Python steps.
    pub root: &'a Path,
    /// The folder the patches were extracted into (stripped in messages).
    pub extracted: &'a Path,
    /// Environment of Python steps (PG* and HALFORM_CONF_DIR…).
    pub python_env: Vec<(String, String)>,
    /// `lock_timeout` of every statement (`hop.lockTimeout`).
    pub lock_timeout: Duration,
    pub out: &'a mut dyn Write,
}

/// What a successful run took.
pub struct Report {
    pub total: Duration,
    pub commits: usize,
}

/// Runs the upgrade. `client` is a connection to the same database (the
/// lock's) used to record Python steps and failures outside a transaction.
/// On failure the error names release, patch, file and line; the database
/// is as its last commit left it (the caller reads it back to say where).
pub fn run(
    params: &ConnParams,
    client: &mut postgres::Client,
    releases: &[ReleaseRun],
    resume: &Resume,
    opts: Options,
) -> Result<Report> {
    let started = Instant::now();
    let nonce = driver::nonce();
    let tag = format!("@@hop-upgrade-{nonce}");
    let segments = build(releases, resume, &tag, &nonce, Some(opts.lock_timeout))?;
    let psql = pgbin::client_tool("psql")?;
    let tmp = tempfile::Builder::new()
        .prefix("hop-upgrade-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let watch = Watch::start(params);
    let mut t = Tracker {
        releases,
        backend: watch.pid.clone(),
        tag,
        extracted: opts.extracted.to_path_buf(),
        out: opts.out,
        open: None,
        last: None,
        tail: Vec::new(),
        commits: 0,
        done_seen: false,
    };
    for (n, seg) in segments.iter().enumerate() {
        match seg {
            Segment::Psql(text) => {
                let driver = tmp.path().join(format!("upgrade-{n}.sql"));
                std::fs::write(&driver, text).map_err(|e| Error::io("cannot write", &driver, e))?;
                if let Err(mut e) = run_psql(&psql, params, opts.root, &driver, &mut t) {
                    if is_lock_timeout(&e.message)
                        && let Some(b) = watch.last()
                    {
                        e.message = format!("{}; {}", e.message, b.describe());
                    }
                    // A step outside a transaction failed: record it precisely.
                    if let Some(Marker::Step(r, p, s)) = t.last
                        && mode(&releases[r].patches[p].steps[s]) == Mode::NoTransaction
                    {
                        let _ = record_step(client, &releases[r], p, s, "failed", Some(&e.message));
                    }
                    return Err(e);
                }
            }
            Segment::Python(r, p, s) => {
                run_python(client, &opts.python_env, opts.root, *r, *p, *s, &mut t)?;
            }
        }
    }
    Ok(Report {
        total: started.elapsed(),
        commits: t.commits,
    })
}

struct Tracker<'a> {
    releases: &'a [ReleaseRun],
    /// The driver's backend pid, for the watch.
    backend: Arc<AtomicI32>,
    tag: String,
    extracted: PathBuf,
    out: &'a mut dyn Write,
    /// The step running and since when.
    open: Option<(usize, usize, usize, Instant)>,
    last: Option<Marker>,
    tail: Vec<String>,
    commits: usize,
    done_seen: bool,
}

impl Tracker<'_> {
    fn progress(&mut self, line: String) {
        // Progress is informative: a closed stdout must not stop the run.
        let _ = writeln!(self.out, "{line}");
    }

    /// A patch file as the user sees it: `Patches/<id>/<file>` (the
    /// extraction folder and its `<version>/` level left out).
    fn shown(&self, path: &Path) -> String {
        match path.strip_prefix(&self.extracted) {
            Ok(rel) => {
                let mut parts = rel.components();
                parts.next();
                parts.as_path().display().to_string()
            }
            Err(_) => path.display().to_string(),
        }
    }

    fn step_line(&mut self, r: usize, p: usize, s: usize, took: Duration) {
        let rel = &self.releases[r];
        let patch = &rel.patches[p];
        let step = &patch.steps[s];
        let note = match mode(step) {
            Mode::InTransaction => "",
            Mode::NoTransaction => "  (no-transaction: ran on its own)",
            Mode::Python => "  (python: ran outside the transaction)",
        };
        let line = format!(
            "  {}  {}  {}  {}{note}",
            rel.version,
            patch.id,
            step.name,
            ms(took)
        );
        self.progress(line);
    }

    fn close(&mut self, now: Instant) {
        if let Some((r, p, s, since)) = self.open.take() {
            self.step_line(r, p, s, now - since);
        }
    }

    fn line(&mut self, line: &str, now: Instant) -> Option<Marker> {
        let m = line
            .strip_prefix(self.tag.as_str())
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(parse_marker);
        let Some(m) = m else {
            if self.tail.len() == 50 {
                self.tail.remove(0);
            }
            self.tail.push(line.to_string());
            return None;
        };
        self.tail.clear();
        match m {
            Marker::Step(r, p, s) => {
                self.close(now);
                self.open = Some((r, p, s, now));
            }
            Marker::Check(..) => {}
            Marker::Backend(pid) => {
                self.backend.store(pid, Ordering::Relaxed);
                return Some(m);
            }
            Marker::Committed => {
                self.commits += 1;
            }
            Marker::Done => {
                self.close(now);
                self.done_seen = true;
                return Some(m);
            }
            _ => self.close(now),
        }
        self.last = Some(m);
        Some(m)
    }

    /// The error of a psql process that failed.
    fn failure(&self, status: &str, driver: &Path) -> Error {
        let found = find_error(self.tail.iter().map(String::as_str));
        let driver_s = driver.display().to_string();
        let detail = match &found {
            Some(e) => match &e.location {
                Some((file, _)) if *file == driver_s => e.text.clone(),
                Some((file, line)) => {
                    format!("{}:{line}: {}", self.shown(Path::new(file)), e.text)
                }
                None => e.text.clone(),
            },
            None => match self.tail.iter().rev().find(|l| !l.trim().is_empty()) {
                Some(l) => format!("psql {status}: {}", l.trim()),
                None => format!("psql {status}"),
            },
        };
        let mut detail = detail;
        for rel in self.releases {
            detail = detail.replace(
                &format!("{}/{}/", self.extracted.display(), rel.version),
                "",
            );
        }
        let at = |r: usize, p: usize, s: usize| {
            let rel = &self.releases[r];
            let patch = &rel.patches[p];
            (
                rel.version.to_string(),
                patch.id.clone(),
                self.shown(&patch.steps[s].path),
            )
        };
        match self.last {
            Some(Marker::Step(r, p, s)) => {
                let (v, id, file) = at(r, p, s);
                let detail = if found
                    .as_ref()
                    .is_some_and(|e| e.location.as_ref().is_some_and(|(f, _)| *f != driver_s))
                {
                    detail
                } else {
                    format!("{file}: {detail}")
                };
                Error::new(format!("release {v}, patch {id} failed: {detail}"))
            }
            Some(Marker::Check(r, p, s))
                if mode(&self.releases[r].patches[p].steps[s]) == Mode::NoTransaction =>
            {
                let (v, id, file) = at(r, p, s);
                Error::new(format!(
                    "release {v}, patch {id}: {file} ran, but recording it in {STEP_TABLE} failed: {detail}"
                ))
            }
            Some(Marker::Check(r, p, s)) => {
                let (v, id, file) = at(r, p, s);
                Error::new(format!(
                    "release {v}, patch {id}: {file} ended the upgrade's transaction (a ROLLBACK or COMMIT in the file?): {detail}"
                ))
                .hint("patch files must not hold BEGIN/COMMIT/ROLLBACK: the upgrade runs them in its own transaction")
            }
            Some(Marker::Record(r)) => Error::new(format!(
                "cannot record release {} in half_orm_meta: {detail}",
                self.releases[r].version
            )),
            Some(Marker::Gate) => Error::new(format!("committing the upgrade failed: {detail}")),
            _ => Error::new(format!("the upgrade failed: {detail}"))
                .hint("check that the database server is reachable (git hop-release db status)"),
        }
    }
}

fn run_psql(
    psql: &Path,
    params: &ConnParams,
    root: &Path,
    driver: &Path,
    t: &mut Tracker,
) -> Result<()> {
    t.done_seen = false;
    t.last = None;
    match driver::run(psql, params, root, driver, "git-hop upgrade", t)? {
        None => Ok(()),
        Some(status) => Err(t.failure(&status, driver)),
    }
}

impl driver::Follow for Tracker<'_> {
    fn line(&mut self, line: &str, now: Instant) -> bool {
        Tracker::line(self, line, now) == Some(Marker::Gate)
    }

    fn finished(&self) -> bool {
        self.done_seen
    }
}

fn record_step(
    client: &mut postgres::Client,
    rel: &ReleaseRun,
    p: usize,
    s: usize,
    state: &str,
    error: Option<&str>,
) -> Result<()> {
    let patch = &rel.patches[p];
    client
        .execute(
            "INSERT INTO half_orm_meta.hop_upgrade_step (release, patch_id, file, sha256, state, error) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (release, patch_id, file) DO UPDATE SET state = EXCLUDED.state, error = EXCLUDED.error, at = now()",
            &[
                &rel.version.to_string(),
                &patch.id,
                &patch.steps[s].name,
                &patch.sha256,
                &state,
                &error,
            ],
        )
        .map(|_| ())
        .map_err(|e| sql_error(&format!("cannot record the step in {STEP_TABLE}"), e))
}

/// Records a failed step outside a transaction (after psql failed in it).
pub fn record_failure(
    client: &mut postgres::Client,
    rel: &ReleaseRun,
    patch_id: &str,
    file: &str,
    error: &str,
) -> Result<()> {
    let Some(p) = rel.patches.iter().position(|p| p.id == patch_id) else {
        return Ok(());
    };
    let Some(s) = rel.patches[p].steps.iter().position(|s| s.name == file) else {
        return Ok(());
    };
    record_step(client, rel, p, s, "failed", Some(error))
}

fn run_python(
    client: &mut postgres::Client,
    env: &[(String, String)],
    root: &Path,
    r: usize,
    p: usize,
    s: usize,
    t: &mut Tracker,
) -> Result<()> {
    let rel = &t.releases[r];
    let patch = &rel.patches[p];
    let step = &patch.steps[s];
    let file = t.shown(&step.path);
    record_step(client, rel, p, s, "running", None)?;
    let out = match driver::run_python(&step.path, root, env.to_vec()) {
        Ok(out) => out,
        Err(e) => {
            let msg = format!("cannot run python3 for {file}: {e}");
            let _ = record_step(client, rel, p, s, "failed", Some(&msg));
            return Err(Error::new(format!(
                "release {}, patch {} failed: {msg}",
                rel.version, patch.id
            ))
            .hint("install Python 3 so that python3 is on PATH"));
        }
    };
    let text = out.output;
    t.step_line(r, p, s, out.took);
    for line in text.lines() {
        t.progress(format!("      {line}"));
    }
    if out.status.success() {
        return record_step(client, rel, p, s, "done", None);
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    let msg = format!("{file}: python3 {}{last}", describe_status(&out.status));
    let _ = record_step(client, rel, p, s, "failed", Some(&msg));
    Err(Error::new(format!(
        "release {}, patch {} failed: {msg}",
        rel.version, patch.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, kind: StepKind) -> Step {
        Step {
            path: PathBuf::from(format!("/x/{name}")),
            name: name.into(),
            kind,
        }
    }

    fn sql(name: &str) -> Step {
        step(
            name,
            StepKind::Sql {
                no_transaction: false,
            },
        )
    }

    fn rel(v: &str, patches: Vec<(&str, Vec<Step>)>) -> ReleaseRun {
        ReleaseRun {
            version: v.parse().unwrap(),
            commit: "c".into(),
            patches: patches
                .into_iter()
                .map(|(id, steps)| PatchRun {
                    id: id.into(),
                    session: Default::default(),
                    dir: PathBuf::from("/x"),
                    sha256: "s".into(),
                    steps,
                })
                .collect(),
        }
    }

    #[test]
    fn one_transaction_without_split_steps() {
        let rels = vec![
            rel("0.1.0", vec![("1-a", vec![sql("01.sql"), sql("02.sql")])]),
            rel("0.1.0-hotfix1", vec![("2-b", vec![sql("01.sql")])]),
        ];
        let items = items(&rels, &Resume::default());
        assert_eq!(items.iter().filter(|i| **i == Item::Begin).count(), 1);
        assert_eq!(items.first(), Some(&Item::Begin));
        assert_eq!(items.last(), Some(&Item::Commit { before: None }));
        assert!(!tracked(&rels, &Resume::default(), 0));
        let text = describe(&rels, &Resume::default());
        assert!(text.contains("one transaction"), "{text}");
        assert!(text.contains("release 0.1.0-hotfix1"), "{text}");
    }

    #[test]
    fn split_steps_commit_first_and_resume_skips_done_steps() {
        let notx = step(
            "02_idx.sql",
            StepKind::Sql {
                no_transaction: true,
            },
        );
        let rels = vec![
            rel("0.1.0", vec![("1-a", vec![sql("01.sql")])]),
            rel(
                "0.2.0",
                vec![(
                    "2-b",
                    vec![
                        sql("01.sql"),
                        notx,
                        sql("03.sql"),
                        step("x.py", StepKind::Python),
                    ],
                )],
            ),
        ];
        let it = items(&rels, &Resume::default());
        let commits: Vec<&Item> = it
            .iter()
            .filter(|i| matches!(i, Item::Commit { .. }))
            .collect();
        assert_eq!(commits.len(), 3, "{it:?}");
        assert!(it.contains(&Item::Commit {
            before: Some((1, 0, 1))
        }));
        assert!(tracked(&rels, &Resume::default(), 1));
        assert!(!tracked(&rels, &Resume::default(), 0));
        let text = describe(&rels, &Resume::default());
        assert!(text.contains("02_idx.sql  (no-transaction"), "{text}");
        assert!(text.contains("3 transactions"), "{text}");

        // Resumed after 02_idx.sql: the first steps are skipped, the release stays tracked.
        let resume = Resume {
            release: Some("0.2.0".parse().unwrap()),
            done: [("2-b", "01.sql"), ("2-b", "02_idx.sql")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        };
        let rels = vec![rels[1].clone()];
        let it = items(&rels, &resume);
        assert!(it.contains(&Item::Skip(0, 0, 0)) && it.contains(&Item::Skip(0, 0, 1)));
        assert!(it.contains(&Item::Step(0, 0, 2, Mode::InTransaction)));
        assert!(tracked(&rels, &resume, 0));
        let segments = build(&rels, &resume, "@@t", "n", None).unwrap();
        assert_eq!(segments.len(), 3, "psql, python, psql");
    }

    #[test]
    fn the_plain_sql_plan_holds_the_files_and_refuses_python() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("01.sql");
        std::fs::write(&f, "CREATE TABLE t (id int);").unwrap();
        let mut one = sql("01.sql");
        one.path = f;
        let r = rel("0.2.0", vec![("1-a", vec![one])]);
        let text = plain_sql(std::slice::from_ref(&r), &Resume::default(), "head").unwrap();
        assert!(text.starts_with("-- head\n"), "{text}");
        assert!(
            text.contains("\nBEGIN;\n") && text.trim_end().ends_with("COMMIT;"),
            "{text}"
        );
        assert!(text.contains("CREATE TABLE t (id int);\n"), "{text}");
        assert!(
            text.contains("INSERT INTO half_orm_meta.hop_release"),
            "{text}"
        );
        assert!(!text.contains('\\'), "no psql meta-command: {text}");
        let py = rel(
            "0.2.0",
            vec![("1-a", vec![step("02.py", StepKind::Python)])],
        );
        let e = plain_sql(&[py], &Resume::default(), "head").unwrap_err();
        assert!(e.message.contains("has no SQL form"), "{}", e.message);
    }

    #[test]
    fn markers_round_trip() {
        for m in [
            Marker::Release(1),
            Marker::Patch(1, 2),
            Marker::Step(1, 2, 3),
            Marker::Check(0, 0, 0),
            Marker::Record(4),
            Marker::Gate,
            Marker::Committed,
            Marker::Done,
        ] {
            assert_eq!(parse_marker(&marker_text(m)), Some(m));
        }
        assert_eq!(parse_marker("step 1"), None);
    }
}
