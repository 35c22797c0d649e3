//! Running a rebuild's patches (docs/engine.md): the step of `apply` and of
//! every validation that runs the release's patches ([`run_patches`]) into a
//! database holding the production snapshot. Patch folders are read and
//! checked by [`crate::patch_dir`]; the psql process, the transaction guard,
//! the session reset and error reading are [`crate::driver`]'s, shared with
//! the upgrade's runner. This module holds the rebuild's own plan: one
//! guarded transaction per patch with its `half_orm_meta.hop_patch` row.
//!
//! How a run works: one psql process executes a generated driver script of
//! `\i` lines. A SQL file whose first line is `-- hop: no-transaction` runs
//! on its own: the transaction is committed before it and a new one opened
//! after it.
//!
//! Python steps (`*.py`) run after the patch's SQL, from Rust, as
//! `python3 FILE` in the work tree root: psql 15's `\!` ignores the exit
//! status of its command, so psql cannot stop on a failed step. The driver
//! is therefore split at Python steps: what precedes them commits, the psql
//! process ends, Python runs, and a new psql process continues. A run
//! without Python steps uses exactly one psql process.
//!
//! Progress and timings: the driver writes a marker line with psql's `\warn`
//! (stderr, which C leaves unbuffered, unlike stdout on a pipe) before each
//! step; the runner reads psql's stderr as a stream and timestamps each
//! marker when it arrives, so a file's time is the interval between its
//! marker and the next one. Server messages arrive on the same stream, after
//! the marker of the step that caused them, which is how an error is tied to
//! its patch and file (psql itself gives `file:line`). psql needs version 13
//! or later (`\warn`, `pg_current_xact_id`).

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::db::conn::ConnParams;
use crate::db::database::quote_literal;
use crate::db::pgbin;
use crate::driver::{self, describe_status, find_error, ms};
use crate::error::{Error, Result};
use crate::patch_dir::{self, Step, StepKind};
use crate::patch_id::PatchId;
use crate::version::Version;

const HINT_APPLY: &str = "fix the file and run git hop-patch apply again";

/// A patch to run and its folder.
#[derive(Debug, Clone)]
pub struct PatchToRun {
    pub id: PatchId,
    pub dir: PathBuf,
}

pub struct RunOptions<'a> {
    /// The work tree root: working directory of psql and of Python steps;
    /// messages show paths relative to it.
    pub root: &'a Path,
    /// More variables for Python steps (e.g. `HALFORM_CONF_DIR`).
    pub extra_env: Vec<(String, String)>,
    /// Progress lines. Write errors are ignored: progress must not abort a
    /// run half-way.
    pub out: &'a mut dyn Write,
}

/// What a successful run took.
#[derive(Debug, Clone)]
pub struct RunReport {
    /// Each patch id with the time it took, in run order.
    pub patches: Vec<(String, Duration)>,
    pub total: Duration,
}

#[cfg(test)]
thread_local! {
    /// psql processes started by this thread (tests prove one per run).
    static PSQL_SPAWNS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Rebuild step of `apply` and merge validation: into a database that
/// already holds the production snapshot (and so the `half_orm_meta`
/// schema), records release `release` in `half_orm_meta.hop_release` unless
/// it is there, then runs `patches` in the given order, each in one
/// transaction with its `hop_patch` row (patch id, release, SHA-256).
///
/// Every patch folder is checked (unexpected files) before anything runs. On
/// an error the message names the patch, the file (relative to `root`), the
/// line and the server's message; the database keeps what committed before
/// the failing transaction and nothing of it.
pub fn run_patches(
    params: &ConnParams,
    release: &Version,
    patches: &[PatchToRun],
    opts: RunOptions,
) -> Result<RunReport> {
    let checked = check(patches, opts.root)?;
    run_checked(params, release, &checked, opts)
}

/// Patches read and checked (docs/patches.md), ready to run: a rebuild
/// checks them before it touches the database.
#[derive(Clone)]
pub struct Checked {
    planned: Vec<Planned>,
}

impl Checked {
    pub fn len(&self) -> usize {
        self.planned.len()
    }

    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    /// The SHA-256 of patch `i`'s folder.
    pub fn sha256(&self, i: usize) -> &str {
        &self.planned[i].sha256
    }

    /// Whether patch `i` has a Python step.
    pub fn has_python(&self, i: usize) -> bool {
        self.planned[i]
            .steps
            .iter()
            .any(|s| s.kind == patch_dir::StepKind::Python)
    }

    /// The patches `range` of this plan, checked already.
    pub fn part(&self, range: std::ops::Range<usize>) -> Checked {
        Checked {
            planned: self.planned[range].to_vec(),
        }
    }
}

/// Reads and checks every patch folder of `patches` (errors show paths
/// relative to `root`); runs nothing.
pub fn check(patches: &[PatchToRun], root: &Path) -> Result<Checked> {
    let root = std::path::absolute(root)
        .map_err(|e| Error::io("cannot resolve the work tree", root, e))?;
    let mut planned = Vec::with_capacity(patches.len());
    for p in patches {
        let checked = patch_dir::check(&p.dir, &root)?;
        planned.push(Planned {
            id: p.id.to_string(),
            steps: checked.steps,
            sha256: checked.sha256,
            session: checked.session,
            record: true,
        });
    }
    Ok(Checked { planned })
}

/// Reads and checks the seed folder `dir` with a patch folder's rules
/// (docs/patches.md), to run its files in name order, `*.sql` and `*.py`
/// alike: each file one step of its own (a SQL file in a guarded
/// transaction), recording nothing in `half_orm_meta`.
pub fn check_seed(dir: &Path, root: &Path) -> Result<Checked> {
    let root = std::path::absolute(root)
        .map_err(|e| Error::io("cannot resolve the work tree", root, e))?;
    let checked = patch_dir::check_in(dir, &root, patch_dir::Folder::Seed)?;
    let mut steps = checked.steps;
    steps.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(Checked {
        planned: steps
            .into_iter()
            .map(|step| Planned {
                id: "seed".into(),
                steps: vec![step],
                sha256: String::new(),
                session: checked.session,
                record: false,
            })
            .collect(),
    })
}

/// [`run_patches`] of patches already checked.
pub fn run_checked(
    params: &ConnParams,
    release: &Version,
    checked: &Checked,
    opts: RunOptions,
) -> Result<RunReport> {
    let started = Instant::now();
    let root = std::path::absolute(opts.root)
        .map_err(|e| Error::io("cannot resolve the work tree", opts.root, e))?;
    let planned = &checked.planned;
    let tag = format!("@@hop-{}", driver::nonce());
    let segments = plan_segments(release, planned, &tag)?;
    let psql = pgbin::client_tool("psql")?;
    let tmp = tempfile::Builder::new()
        .prefix("hop-run-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let mut tracker = Tracker {
        planned,
        release,
        root: &root,
        tag: &tag,
        out: opts.out,
        open_step: None,
        patch_start: None,
        last: None,
        tail: VecDeque::new(),
        done_seen: false,
        durations: Vec::new(),
    };
    for (n, segment) in segments.iter().enumerate() {
        match segment {
            Segment::Psql(script) => {
                let driver = tmp.path().join(format!("driver-{n}.sql"));
                fs::write(&driver, script.text())
                    .map_err(|e| Error::io("cannot write", &driver, e))?;
                run_psql(&psql, params, &root, &driver, script, &mut tracker)?;
            }
            Segment::Python { patch, step } => {
                run_python(
                    params,
                    &opts.extra_env,
                    &root,
                    &planned[*patch],
                    *patch,
                    *step,
                    &mut tracker,
                )?;
            }
        }
    }
    Ok(RunReport {
        patches: tracker.durations,
        total: started.elapsed(),
    })
}

#[derive(Clone)]
struct Planned {
    id: String,
    steps: Vec<Step>,
    sha256: String,
    session: patch_dir::SessionUse,
    /// A patch, recorded in `half_orm_meta.hop_patch`; `false` for the
    /// development seed data (docs/patches.md), which leaves no row.
    record: bool,
}

impl Planned {
    /// How messages name it: "patch 1-x", or "seed data".
    fn label(&self) -> String {
        if self.record {
            format!("patch {}", self.id)
        } else {
            "seed data".into()
        }
    }
}

/// A part of a run: a psql process with its driver, or one Python step.
enum Segment {
    Psql(Script),
    Python { patch: usize, step: usize },
}

/// What a line of the driver does (to explain an error located there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Marker,
    Setting,
    Release,
    Begin(usize),
    Commit(usize),
    Include(usize, usize),
    Meta(usize),
}

/// A marker written by the driver before a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    Release,
    Begin(usize),
    Step(usize, usize),
    /// After a step: the checks that it left the session and transaction.
    Check(usize, usize),
    Meta(usize),
    End(usize),
    Done,
}

/// A driver script, line by line with the role of each line.
struct Script {
    lines: Vec<(String, Role)>,
    tag: String,
}

impl Script {
    fn new(tag: &str) -> Script {
        Script {
            lines: Vec::new(),
            tag: tag.to_string(),
        }
    }

    fn push(&mut self, line: String, role: Role) {
        self.lines.push((line, role));
    }

    fn marker(&mut self, m: Marker) {
        let text = match m {
            Marker::Release => "release".to_string(),
            Marker::Begin(p) => format!("begin {p}"),
            Marker::Step(p, s) => format!("step {p} {s}"),
            Marker::Check(p, s) => format!("check {p} {s}"),
            Marker::Meta(p) => format!("meta {p}"),
            Marker::End(p) => format!("end {p}"),
            Marker::Done => "done".to_string(),
        };
        self.push(format!("\\warn {} {text}", self.tag), Role::Marker);
    }

    fn text(&self) -> String {
        let mut s = String::new();
        for (line, _) in &self.lines {
            s.push_str(line);
            s.push('\n');
        }
        s
    }

    /// The role of a (1-based) line.
    fn role(&self, line: usize) -> Option<Role> {
        line.checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .map(|(_, r)| *r)
    }
}

fn parse_marker(rest: &str) -> Option<Marker> {
    let mut words = rest.split(' ');
    let kind = words.next()?;
    let mut num = || words.next().and_then(|w| w.parse::<usize>().ok());
    Some(match kind {
        "release" => Marker::Release,
        "begin" => Marker::Begin(num()?),
        "step" => {
            let p = num()?;
            Marker::Step(p, num()?)
        }
        "check" => {
            let p = num()?;
            Marker::Check(p, num()?)
        }
        "meta" => Marker::Meta(num()?),
        "end" => Marker::End(num()?),
        "done" => Marker::Done,
        _ => return None,
    })
}

/// A driver script's first lines (docs/engine.md): the session's backend,
/// the guard's objects, the driver's settings.
fn new_script(tag: &str) -> Script {
    let mut script = Script::new(tag);
    for l in driver::session_setup(&driver::Settings::default()) {
        script.push(l, Role::Setting);
    }
    script
}

impl Script {
    fn begin(&mut self, p: usize) {
        for l in driver::guarded_begin(None) {
            self.push(l, Role::Begin(p));
        }
    }

    fn commit(&mut self, p: usize) {
        self.push(driver::guarded_commit(), Role::Commit(p));
    }

    /// The checks after the steps of patch `p` run since the last check
    /// (the last of them is `unchecked`): one round trip per run of steps,
    /// not per file.
    fn check(&mut self, p: usize, unchecked: &mut Option<usize>, in_tx: bool) {
        if let Some(s) = unchecked.take() {
            self.marker(Marker::Check(p, s));
            let tag = self.tag.clone();
            for l in driver::step_check(&tag, in_tx) {
                self.push(l, Role::Setting);
            }
        }
    }
}

/// The rebuild's transaction plan (docs/engine.md): the release row, then
/// each patch in one guarded transaction with its `hop_patch` row, the
/// session reset at its start; a no-transaction file commits what precedes
/// it and runs on its own; Python steps end the psql process.
fn plan_segments(release: &Version, planned: &[Planned], tag: &str) -> Result<Vec<Segment>> {
    let mut segments = Vec::new();
    let mut script = new_script(tag);
    let (pre, num) = release.pre_release_columns();
    if planned.iter().any(|p| p.record) {
        script.marker(Marker::Release);
        script.push("BEGIN READ WRITE;".into(), Role::Release);
        script.push(
        format!(
            "INSERT INTO half_orm_meta.hop_release (version, major, minor, patch, pre_release, pre_release_num) \
             VALUES ({}, {}, {}, {}, {}, {}) ON CONFLICT (version) DO NOTHING;",
            quote_literal(&release.to_string()),
            release.major,
            release.minor,
            release.patch,
            quote_literal(pre),
            num.map(|n| n.to_string()).unwrap_or_else(|| "NULL".into())
        ),
        Role::Release,
        );
        script.push("COMMIT;".into(), Role::Release);
    }
    let settings = driver::Settings::default();
    for (p, patch) in planned.iter().enumerate() {
        script.marker(Marker::Begin(p));
        // The patch's transaction, the session reset first (one round trip).
        let used = if p > 0 {
            planned[p - 1].session
        } else {
            patch_dir::SessionUse::default()
        };
        for l in driver::guarded_begin(Some((&settings, used))) {
            script.push(l, Role::Begin(p));
        }
        let mut in_tx = true;
        let mut unchecked = None;
        let mut python = Vec::new();
        for (s, step) in patch.steps.iter().enumerate() {
            let no_transaction = match step.kind {
                StepKind::Python => {
                    python.push(s);
                    continue;
                }
                StepKind::Sql { no_transaction } => no_transaction,
            };
            if no_transaction && in_tx {
                script.check(p, &mut unchecked, true);
                script.commit(p);
                script.push(
                    "SET default_transaction_read_only = off;".into(),
                    Role::Setting,
                );
                in_tx = false;
            } else if !no_transaction && !in_tx {
                script.begin(p);
                in_tx = true;
            }
            script.marker(Marker::Step(p, s));
            script.push(
                format!("\\i {}", crate::db::psql::quote_path(&step.path)?),
                Role::Include(p, s),
            );
            // A file may have turned it off: the driver's own lines must stop.
            script.push("\\set ON_ERROR_STOP on".into(), Role::Setting);
            unchecked = Some(s);
            if no_transaction {
                script.check(p, &mut unchecked, false);
            }
        }
        if !python.is_empty() {
            if in_tx {
                script.check(p, &mut unchecked, true);
                script.commit(p);
                in_tx = false;
            }
            script.marker(Marker::Done);
            segments.push(Segment::Psql(std::mem::replace(
                &mut script,
                new_script(tag),
            )));
            for s in python {
                segments.push(Segment::Python { patch: p, step: s });
            }
        }
        script.check(p, &mut unchecked, in_tx);
        if !in_tx {
            script.begin(p);
        }
        script.marker(Marker::Meta(p));
        // git-hop's own row, whatever role or setting the patch left set,
        // and the commit: one round trip.
        let row = patch.record.then(|| {
            format!(
                "INSERT INTO half_orm_meta.hop_patch (patch_id, release, sha256) VALUES ({}, {}, {})",
                quote_literal(&patch.id),
                quote_literal(&release.to_string()),
                quote_literal(&patch.sha256)
            )
        });
        script.push(
            driver::commit_with(row.as_slice(), patch.session),
            Role::Meta(p),
        );
        script.marker(Marker::End(p));
    }
    script.marker(Marker::Done);
    segments.push(Segment::Psql(script));
    Ok(segments)
}

/// Lines of psql's stderr kept to explain a failure.
const TAIL_LINES: usize = 50;

/// Follows a run: timings, progress lines, and what ran last.
struct Tracker<'a> {
    planned: &'a [Planned],
    release: &'a Version,
    root: &'a Path,
    tag: &'a str,
    out: &'a mut dyn Write,
    /// The step running: (patch, step, since).
    open_step: Option<(usize, usize, Instant)>,
    patch_start: Option<Instant>,
    /// The last marker seen (in this or an earlier segment).
    last: Option<Marker>,
    /// Non-marker stderr lines since the last marker.
    tail: VecDeque<String>,
    /// The current psql process reached the end of its driver.
    done_seen: bool,
    durations: Vec<(String, Duration)>,
}

impl Tracker<'_> {
    fn line(&mut self, line: &str, now: Instant) {
        let marker = line
            .strip_prefix(self.tag)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(parse_marker);
        match marker {
            Some(m) => self.marker(m, now),
            None => {
                if self.tail.len() == TAIL_LINES {
                    self.tail.pop_front();
                }
                self.tail.push_back(line.to_string());
            }
        }
    }

    fn marker(&mut self, m: Marker, now: Instant) {
        self.tail.clear();
        match m {
            Marker::Release => {}
            // The end of a psql process's driver: before a Python step, or the end.
            Marker::Done => self.close_step(now),
            Marker::Begin(_) => self.patch_start = Some(now),
            Marker::Step(p, s) => {
                self.close_step(now);
                self.open_step = Some((p, s, now));
            }
            Marker::Meta(_) | Marker::Check(..) => self.close_step(now),
            Marker::End(p) => {
                self.close_step(now);
                let took = self.patch_start.map(|t| now - t).unwrap_or_default();
                let id = self.planned[p].id.clone();
                self.progress(format!("  {id}  applied in {}", ms(took)));
                self.durations.push((id, took));
            }
        }
        if m == Marker::Done {
            self.done_seen = true;
        } else {
            self.last = Some(m);
        }
    }

    fn close_step(&mut self, now: Instant) {
        if let Some((p, s, since)) = self.open_step.take() {
            self.step_line(p, s, now - since);
        }
    }

    fn step_line(&mut self, p: usize, s: usize, took: Duration) {
        let step = &self.planned[p].steps[s];
        let note = match step.kind {
            StepKind::Sql {
                no_transaction: true,
            } => "  (no-transaction: ran on its own, the patch's transaction committed before it)",
            StepKind::Python => "  (python: ran outside the patch's transaction)",
            StepKind::Sql { .. } => "",
        };
        let line = format!(
            "  {}  {}  {}{note}",
            self.planned[p].id,
            step.name,
            ms(took)
        );
        self.progress(line);
    }

    fn progress(&mut self, line: String) {
        // Progress is informative only: a closed stdout must not abort the run.
        let _ = writeln!(self.out, "{line}");
    }

    /// A path as the user sees it: relative to the work tree when inside it.
    fn shown(&self, path: &Path) -> String {
        path.strip_prefix(self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }

    /// The error of a psql process that failed or stopped early.
    fn psql_failure(&self, status: &str, driver: &Path, script: &Script) -> Error {
        let found = find_error(self.tail.iter().map(String::as_str));
        let driver_str = driver.display().to_string();
        let root_prefix = format!("{}/", self.root.display());
        // The server's message, with its location made readable.
        let detail = match &found {
            Some(e) => match &e.location {
                Some((file, line)) if *file == driver_str => match script.role(*line) {
                    Some(Role::Commit(_)) => format!("committing its transaction: {}", e.text),
                    Some(Role::Meta(_)) => {
                        format!(
                            "recording it in half_orm_meta.hop_patch and committing (deferred constraints are checked then): {}",
                            e.text
                        )
                    }
                    Some(Role::Begin(_)) => format!("opening its transaction: {}", e.text),
                    _ => e.text.clone(),
                },
                Some((file, line)) => {
                    let file = file.strip_prefix(&root_prefix).unwrap_or(file);
                    format!("{file}:{line}: {}", e.text)
                }
                None => e.text.clone(),
            },
            None => match self.tail.iter().rev().find(|l| !l.trim().is_empty()) {
                Some(l) => format!("psql {status}: {}", l.trim()),
                None => format!("psql {status}"),
            },
        };
        match self.last {
            None => Error::new(format!("cannot run the patches: {detail}"))
                .hint("check that the database server is reachable (git hop-release db status)"),
            Some(Marker::Release) => Error::new(format!(
                "cannot record release {} in half_orm_meta.hop_release: {detail}",
                self.release
            ))
            .hint("the database must hold the production snapshot (with the half_orm_meta schema): rebuild it"),
            Some(Marker::Begin(p) | Marker::Meta(p) | Marker::End(p) | Marker::Step(p, _)) => {
                // Paths of the work tree in the message, as the user sees them.
                let detail = detail.replace(&root_prefix, "");
                let mut err = Error::new(format!(
                    "{} failed: {detail}",
                    self.planned[p].label()
                ))
                .hint(HINT_APPLY);
                if let Some(Marker::Step(p, s)) = self.last {
                    let step = &self.planned[p].steps[s];
                    let file = self.shown(&step.path);
                    if found.as_ref().is_none_or(|e| e.location.is_none()) {
                        err.message = format!("{} failed: {file}: {detail}", self.planned[p].label());
                    }
                    let mut hint = format!("fix {file} and run git hop-patch apply again");
                    if s > 0 && self.planned[p].steps[..=s].iter().any(Step::outside_transaction) {
                        hint.push_str(&format!(
                            " (steps of {} before {} ran outside its transaction and stay applied)",
                            self.planned[p].label(), step.name
                        ));
                    }
                    err = err.hint(hint);
                }
                err
            }
            Some(Marker::Check(p, s)) => {
                let file = self.shown(&self.planned[p].steps[s].path);
                Error::new(format!(
                    "{} ended git-hop's transaction or changed its session in {file} or a file before it (a COMMIT, ROLLBACK or reconnection built at run time?): {detail}",
                    self.planned[p].label()
                ))
                .hint("a patch must not control its transaction or session: remove that from the file and run git hop-patch apply again")
            }
            Some(Marker::Done) => Error::new(format!("psql failed after the last patch: {detail}")),
        }
    }
}

fn run_psql(
    psql: &Path,
    params: &ConnParams,
    root: &Path,
    driver: &Path,
    script: &Script,
    tracker: &mut Tracker,
) -> Result<()> {
    #[cfg(test)]
    PSQL_SPAWNS.with(|c| c.set(c.get() + 1));
    tracker.done_seen = false;
    tracker.last = None;
    match driver::run(psql, params, root, driver, "git-hop", tracker)? {
        None => Ok(()),
        Some(status) => Err(tracker.psql_failure(&status, driver, script)),
    }
}

impl driver::Follow for Tracker<'_> {
    fn line(&mut self, line: &str, now: Instant) -> bool {
        Tracker::line(self, line, now);
        false
    }

    fn finished(&self) -> bool {
        self.done_seen
    }
}

fn run_python(
    params: &ConnParams,
    extra_env: &[(String, String)],
    root: &Path,
    patch: &Planned,
    p: usize,
    s: usize,
    tracker: &mut Tracker,
) -> Result<()> {
    let step = &patch.steps[s];
    let file = tracker.shown(&step.path);
    let mut env = params.child_env();
    env.extend(extra_env.iter().cloned());
    let out = driver::run_python(Path::new(&file), root, env).map_err(|e| {
        Error::new(format!(
            "{} failed: cannot run python3 for {file}: {e}",
            patch.label()
        ))
        .hint("install Python 3 so that python3 is on PATH")
    })?;
    let took = out.took;
    let text = out.output;
    if out.status.success() {
        tracker.step_line(p, s, took);
        for line in text.lines() {
            tracker.progress(format!("      {line}"));
        }
        return Ok(());
    }
    for line in text.lines() {
        tracker.progress(format!("      {line}"));
    }
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default();
    let mut hint = format!("fix {file} and run git hop-patch apply again");
    if s > 0 {
        hint.push_str(&format!(
            " (the steps of {} before it stay applied: Python steps run outside the patch's transaction)",
            patch.label()
        ));
    }
    Err(Error::new(format!(
        "{} failed: {file}: python3 {}{last}",
        patch.label(),
        describe_status(&out.status)
    ))
    .hint(hint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{conn, meta};
    use crate::patch_dir::{patch_sha256, steps};

    /// A fresh database holding the half_orm_meta schema.
    struct Db {
        params: ConnParams,
    }

    impl Db {
        fn new(name: &str) -> Db {
            let server = crate::test_pg::server();
            let base = ConnParams {
                host: Some(server.socket_dir.display().to_string()),
                port: Some(server.port),
                user: Some(server.superuser.clone()),
                ..Default::default()
            };
            let mut c = conn::connect(&base.with_dbname("postgres")).unwrap();
            c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
                .unwrap();
            c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
            let params = base.with_dbname(name);
            meta::install(&mut conn::connect(&params).unwrap()).unwrap();
            Db { params }
        }

        fn client(&self) -> postgres::Client {
            conn::connect(&self.params).unwrap()
        }

        fn exists(&self, relation: &str) -> bool {
            let row = self
                .client()
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
                .unwrap();
            row.get(0)
        }

        fn hop_patches(&self) -> Vec<(String, String, String)> {
            self.client()
                .query(
                    "SELECT patch_id, release, sha256 FROM half_orm_meta.hop_patch ORDER BY applied_at, patch_id",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect()
        }
    }

    /// A work tree with `Patches/<id>/<file>` files.
    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            Tree {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn root(&self) -> &Path {
            self.dir.path()
        }
        fn write(&self, id: &str, file: &str, content: impl AsRef<[u8]>) -> &Self {
            let dir = self.patch_dir(id);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(file), content).unwrap();
            self
        }
        fn patch_dir(&self, id: &str) -> PathBuf {
            self.root().join("Patches").join(id)
        }
        fn patches(&self, ids: &[&str]) -> Vec<PatchToRun> {
            ids.iter()
                .map(|id| PatchToRun {
                    id: PatchId::parse(id).unwrap(),
                    dir: self.patch_dir(id),
                })
                .collect()
        }
    }

    fn spawns() -> usize {
        PSQL_SPAWNS.with(|c| c.get())
    }

    /// Runs the patches; returns the result, the progress text and the
    /// number of psql processes started.
    fn run(
        db: &Db,
        tree: &Tree,
        release: &str,
        ids: &[&str],
        extra_env: Vec<(String, String)>,
    ) -> (Result<RunReport>, String, usize) {
        let mut out = Vec::new();
        let before = spawns();
        let res = run_patches(
            &db.params,
            &release.parse().unwrap(),
            &tree.patches(ids),
            RunOptions {
                root: tree.root(),
                extra_env,
                out: &mut out,
            },
        );
        (res, String::from_utf8(out).unwrap(), spawns() - before)
    }

    fn names(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|s| s.name.as_str()).collect()
    }

    // ---- steps and sha256 (no database)

    #[test]
    fn steps_run_sql_in_lexicographic_order_then_python() {
        let t = Tree::new();
        for f in [
            "10_b.sql",
            "02_a.sql",
            "2_z.sql",
            "b.py",
            "a.py",
            "README.md",
        ] {
            t.write("1-x", f, "SELECT 1;\n");
        }
        t.write(
            "1-x",
            "01_idx.sql",
            "-- hop: no-transaction  \r\nCREATE INDEX;\n",
        );
        t.write("1-x", "03_bom.sql", "\u{feff}-- hop: no-transaction\n");
        t.write(
            "1-x",
            "04_second.sql",
            "SELECT 1;\n-- hop: no-transaction\n",
        );
        t.write("1-x", "05_near.sql", "-- hop: no-transactions\n");
        let steps = steps(&t.patch_dir("1-x")).unwrap();
        assert_eq!(
            names(&steps),
            [
                "01_idx.sql",
                "02_a.sql",
                "03_bom.sql",
                "04_second.sql",
                "05_near.sql",
                "10_b.sql",
                "2_z.sql",
                "a.py",
                "b.py"
            ]
        );
        let no_tx: Vec<bool> = steps
            .iter()
            .map(|s| {
                matches!(
                    s.kind,
                    StepKind::Sql {
                        no_transaction: true
                    }
                )
            })
            .collect();
        assert_eq!(
            no_tx,
            [true, false, true, false, false, false, false, false, false]
        );
        assert_eq!(steps[7].kind, StepKind::Python);
        assert!(steps.iter().all(|s| s.path.is_absolute()));
        assert_eq!(steps[0].path, t.patch_dir("1-x").join("01_idx.sql"));
    }

    #[test]
    fn steps_refuse_other_files_and_folders() {
        let t = Tree::new();
        t.write("1-x", "01_a.sql", "SELECT 1;");
        t.write("1-x", "notes.txt", "x");
        let e = steps(&t.patch_dir("1-x")).unwrap_err();
        assert!(e.message.contains("unexpected file notes.txt"), "{e:?}");
        assert!(e.hint.is_some());
        assert!(patch_sha256(&t.patch_dir("1-x")).is_err());

        let t = Tree::new();
        t.write("1-x", "01_a.sql", "SELECT 1;");
        fs::create_dir_all(t.patch_dir("1-x").join("data")).unwrap();
        let e = steps(&t.patch_dir("1-x")).unwrap_err();
        assert!(
            e.message.contains("unexpected data") && e.message.contains("a folder"),
            "{e:?}"
        );

        let t = Tree::new();
        t.write("1-x", ".gitkeep", "");
        let e = steps(&t.patch_dir("1-x")).unwrap_err();
        assert!(e.message.contains(".gitkeep"), "{e:?}");

        let e = steps(&t.patch_dir("2-missing")).unwrap_err();
        assert!(e.message.contains("2-missing"), "{e:?}");
    }

    #[test]
    fn sha256_ignores_crlf_bom_and_readme_but_not_content_or_names() {
        let sha = |files: &[(&str, &[u8])]| {
            let t = Tree::new();
            for (f, c) in files {
                t.write("1-x", f, c);
            }
            patch_sha256(&t.patch_dir("1-x")).unwrap()
        };
        let base = sha(&[
            ("01_a.sql", b"CREATE TABLE a();\nSELECT 1;\n"),
            ("b.py", b"print(1)\n"),
        ]);
        assert_eq!(base.len(), 64);
        assert!(
            base.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        let windows = sha(&[
            (
                "01_a.sql",
                b"\xEF\xBB\xBFCREATE TABLE a();\r\nSELECT 1;\r\n",
            ),
            ("b.py", b"print(1)\r\n"),
        ]);
        assert_eq!(base, windows);
        let with_readme = sha(&[
            ("01_a.sql", b"CREATE TABLE a();\nSELECT 1;\n"),
            ("b.py", b"print(1)\n"),
            ("README.md", b"anything"),
        ]);
        assert_eq!(base, with_readme);
        let content = sha(&[
            ("01_a.sql", b"CREATE TABLE b();\nSELECT 1;\n"),
            ("b.py", b"print(1)\n"),
        ]);
        assert_ne!(base, content);
        let renamed = sha(&[
            ("02_a.sql", b"CREATE TABLE a();\nSELECT 1;\n"),
            ("b.py", b"print(1)\n"),
        ]);
        assert_ne!(base, renamed);
        // Content moved from one file to the next must not collide.
        let moved = sha(&[
            ("01_a.sql", b"CREATE TABLE a();\n"),
            ("b.py", b"SELECT 1;\nprint(1)\n"),
        ]);
        assert_ne!(base, moved);
        // A lone CR is content.
        let lone_cr = sha(&[
            ("01_a.sql", b"CREATE TABLE a();\rSELECT 1;\n"),
            ("b.py", b"print(1)\n"),
        ]);
        assert_ne!(
            base,
            sha(&[
                ("01_a.sql", b"CREATE TABLE a();SELECT 1;\n"),
                ("b.py", b"print(1)\n")
            ])
        );
        assert_ne!(base, lone_cr);
        // Empty patch: well defined.
        let empty = sha(&[("README.md", b"x")]);
        assert_eq!(
            empty,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn helpers_quote_paths_and_find_errors() {
        assert_eq!(
            crate::db::psql::quote_path(Path::new("/a b/it's\\x\ny")).unwrap(),
            "'/a b/it''s\\\\x\\ny'"
        );
        let e = find_error(
            [
                "psql:/p/01.sql:1: NOTICE:  table \"x\" does not exist, skipping",
                "psql:/p/a:b.sql:3: ERROR:  duplicate key value violates unique constraint \"t_pkey\"",
                "DETAIL:  Key (id)=(1) already exists.",
            ]
            .into_iter(),
        )
        .unwrap();
        assert_eq!(e.location, Some(("/p/a:b.sql".to_string(), 3)));
        assert_eq!(
            e.text,
            "ERROR: duplicate key value violates unique constraint \"t_pkey\" (DETAIL: Key (id)=(1) already exists.)"
        );
        let e = find_error(["psql: error: connection to server failed"].into_iter()).unwrap();
        assert_eq!(e.location, None);
        assert_eq!(e.text, "error: connection to server failed");
        assert!(find_error(["psql:/p:1: NOTICE:  ERROR: is only text"].into_iter()).is_none());
    }

    // ---- runs against a real server

    #[test]
    fn a_failing_file_reports_patch_file_line_and_keeps_earlier_patches() {
        let db = Db::new("pr_fail");
        let t = Tree::new();
        t.write("1-users", "01_users.sql", "CREATE TABLE users (id int);\n");
        t.write("2-api", "01_a.sql", "CREATE TABLE api_a (id int);\n");
        t.write(
            "2-api",
            "02_b.sql",
            "CREATE TABLE api_b (id int);\n\nSELECT * FROM nope;\nCREATE TABLE api_c (id int);\n",
        );
        t.write("3-more", "01_m.sql", "CREATE TABLE more (id int);\n");
        let (res, out, n) = run(&db, &t, "0.1.0", &["1-users", "2-api", "3-more"], vec![]);
        let e = res.unwrap_err();
        assert_eq!(
            e.message,
            "patch 2-api failed: Patches/2-api/02_b.sql:3: ERROR: relation \"nope\" does not exist"
        );
        assert_eq!(
            e.hint.as_deref(),
            Some("fix Patches/2-api/02_b.sql and run git hop-patch apply again")
        );
        assert_eq!(n, 1);
        assert!(out.contains("  1-users  01_users.sql  "), "{out}");
        assert!(out.contains("  2-api  01_a.sql  "), "{out}");
        assert!(!out.contains("02_b.sql"), "{out}");
        // Patch 1 committed with its row; nothing of patch 2 (rolled back
        // when psql exited inside the transaction), nothing of patch 3.
        assert!(db.exists("users"));
        assert!(!db.exists("api_a") && !db.exists("api_b") && !db.exists("api_c"));
        assert!(!db.exists("more"));
        let rows = db.hop_patches();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "1-users");
        assert_eq!(rows[0].1, "0.1.0");
        let releases = meta::releases(&mut db.client()).unwrap();
        assert_eq!(releases, vec!["0.1.0".parse::<Version>().unwrap()]);
    }

    #[test]
    fn a_successful_run_records_rows_with_sha256_in_one_psql_process() {
        let db = Db::new("pr_ok");
        // The release may already be recorded (its row is kept).
        meta::record_release(&mut db.client(), &"0.2.0-rc1".parse().unwrap(), Some("abc")).unwrap();
        let t = Tree::new();
        t.write("1-users", "README.md", "# users\n");
        t.write(
            "1-users",
            "01_users.sql",
            "CREATE TABLE users (id int PRIMARY KEY, name text);\n",
        );
        // COPY FROM stdin with inline data, CRLF and a BOM, and output on stdout.
        t.write(
            "1-users",
            "02_data.sql",
            "\u{feff}COPY users (id, name) FROM stdin;\r\n1\talice\r\n2\tbob\r\n\\.\r\nSELECT count(*) FROM users;\r\n",
        );
        t.write("2-it-s", "01_it's.sql", "CREATE TABLE quoted (id int);\n");
        t.write("3-empty", "README.md", "nothing to run\n");
        t.write(
            "4-more",
            "01_more.sql",
            "INSERT INTO users VALUES (3, 'carol');\n",
        );
        let ids = ["1-users", "2-it-s", "3-empty", "4-more"];
        let (res, out, n) = run(&db, &t, "0.2.0-rc1", &ids, vec![]);
        let report = res.unwrap_or_else(|e| panic!("{}\n{out}", e.render()));
        assert_eq!(n, 1, "one psql process for the whole run");
        let got: Vec<&str> = report.patches.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(got, ids);
        assert!(report.total >= report.patches.iter().map(|(_, d)| *d).sum());
        for line in [
            "  1-users  01_users.sql  ",
            "  1-users  02_data.sql  ",
            "  2-it-s  01_it's.sql  ",
            "  1-users  applied in ",
            "  3-empty  applied in ",
        ] {
            assert!(out.contains(line), "{line:?} missing in:\n{out}");
        }
        assert!(out.lines().all(|l| l.ends_with(" ms")), "{out}");
        let rows = db.hop_patches();
        let expected: Vec<(String, String, String)> = ids
            .iter()
            .map(|id| {
                (
                    id.to_string(),
                    "0.2.0-rc1".to_string(),
                    patch_sha256(&t.patch_dir(id)).unwrap(),
                )
            })
            .collect();
        let mut rows_sorted = rows.clone();
        rows_sorted.sort();
        assert_eq!(rows_sorted, expected);
        let names: Vec<String> = db
            .client()
            .query("SELECT name FROM users ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert!(db.exists("quoted"));
        let commit: Option<String> = db
            .client()
            .query_one(
                "SELECT commit FROM half_orm_meta.hop_release WHERE version = '0.2.0-rc1'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(commit.as_deref(), Some("abc"));
        // A rerun of an applied patch is refused (its row exists), named.
        let (res, _, _) = run(&db, &t, "0.2.0-rc1", &["3-empty"], vec![]);
        let e = res.unwrap_err();
        assert!(
            e.message.starts_with(
                "patch 3-empty failed: recording it in half_orm_meta.hop_patch and committing (deferred constraints are checked then): ERROR: duplicate key value violates unique constraint \"hop_patch_pkey\" (DETAIL: Key (patch_id, release)=(3-empty, 0.2.0-rc1) already exists.)"
            ),
            "{e:?}"
        );
        let (res, _, _) = run(&db, &t, "0.2.0-rc1", &["4-more"], vec![]);
        let e = res.unwrap_err();
        assert_eq!(
            e.message,
            "patch 4-more failed: Patches/4-more/01_more.sql:1: ERROR: duplicate key value violates unique constraint \"users_pkey\" (DETAIL: Key (id)=(3) already exists.)"
        );
    }

    #[test]
    fn a_no_transaction_file_runs_on_its_own() {
        let db = Db::new("pr_notx");
        let t = Tree::new();
        t.write(
            "1-idx",
            "01_t.sql",
            "CREATE TABLE t (id int);\nINSERT INTO t SELECT generate_series(1, 100);\n",
        );
        t.write(
            "1-idx",
            "02_idx.sql",
            "-- hop: no-transaction\r\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n",
        );
        t.write(
            "1-idx",
            "03_after.sql",
            "CREATE TABLE after_idx (id int);\n",
        );
        let (res, out, n) = run(&db, &t, "0.1.0", &["1-idx"], vec![]);
        res.unwrap_or_else(|e| panic!("{}\n{out}", e.render()));
        assert_eq!(n, 1);
        assert!(
            out.lines()
                .any(|l| l.starts_with("  1-idx  02_idx.sql  ") && l.contains("no-transaction")),
            "{out}"
        );
        let valid: bool = db
            .client()
            .query_one(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_id'::regclass",
                &[],
            )
            .unwrap()
            .get(0);
        assert!(valid);
        assert!(db.exists("after_idx"));
        assert_eq!(db.hop_patches().len(), 1);

        // The same file without the mark fails inside the transaction.
        let db = Db::new("pr_notx2");
        let t = Tree::new();
        t.write("1-idx", "01_t.sql", "CREATE TABLE t (id int);\n");
        t.write(
            "1-idx",
            "02_idx.sql",
            "CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
        );
        let (res, _, _) = run(&db, &t, "0.1.0", &["1-idx"], vec![]);
        let e = res.unwrap_err();
        assert!(
            e.message.starts_with("patch 1-idx failed: Patches/1-idx/02_idx.sql:1: ERROR: CREATE INDEX CONCURRENTLY cannot run inside a transaction block"),
            "{e:?}"
        );
        assert!(!db.exists("t"));
    }

    #[test]
    fn python_steps_see_the_database_and_failures_name_patch_and_file() {
        let db = Db::new("pr_py");
        let psql = pgbin::client_tool("psql").unwrap();
        let env = vec![
            ("HOP_TEST_PSQL".to_string(), psql.display().to_string()),
            ("HALFORM_CONF_DIR".to_string(), "/conf/dir".to_string()),
        ];
        let script = r#"import os, subprocess
db = os.environ["PGDATABASE"]
conf = os.environ["HALFORM_CONF_DIR"]
sql = "INSERT INTO seen VALUES ('%s', '%s', '%s')" % (db, conf, os.getcwd())
subprocess.run([os.environ["HOP_TEST_PSQL"], "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True)
print("inserted")
"#;
        let t = Tree::new();
        t.write(
            "1-py",
            "01_seen.sql",
            "CREATE TABLE seen (db text, conf text, cwd text);\n",
        );
        t.write("1-py", "load.py", script);
        t.write("2-sql", "01.sql", "CREATE TABLE two (id int);\n");
        let (res, out, n) = run(&db, &t, "0.1.0", &["1-py", "2-sql"], env.clone());
        res.unwrap_or_else(|e| panic!("{}\n{out}", e.render()));
        assert_eq!(n, 2, "psql is split at the Python step");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("  1-py  01_seen.sql  "), "{out}");
        assert!(lines[1].starts_with("  1-py  load.py  "), "{out}");
        assert!(lines[1].ends_with("(python: ran outside the patch's transaction)"));
        assert_eq!(lines[2], "      inserted");
        assert!(lines[3].starts_with("  1-py  applied in "), "{out}");
        let row = db
            .client()
            .query_one("SELECT db, conf, cwd FROM seen", &[])
            .unwrap();
        let root = fs::canonicalize(t.root()).unwrap();
        assert_eq!(row.get::<_, String>(0), "pr_py");
        assert_eq!(row.get::<_, String>(1), "/conf/dir");
        assert_eq!(PathBuf::from(row.get::<_, String>(2)), root);
        let ids: Vec<String> = db.hop_patches().into_iter().map(|r| r.0).collect();
        assert_eq!(ids, ["1-py", "2-sql"]);
        assert!(db.exists("two"));

        // A failing step: patch and file named, its row not written, and
        // nothing after it ran.
        let db = Db::new("pr_py_fail");
        let t = Tree::new();
        t.write("1-ok", "01.sql", "CREATE TABLE one (id int);\n");
        t.write("2-py", "01.sql", "CREATE TABLE two (id int);\n");
        t.write(
            "2-py",
            "boom.py",
            "print('working')\nraise SystemExit('cannot load the data')\n",
        );
        t.write("3-after", "01.sql", "CREATE TABLE three (id int);\n");
        let (res, out, _) = run(&db, &t, "0.1.0", &["1-ok", "2-py", "3-after"], env);
        let e = res.unwrap_err();
        assert_eq!(
            e.message,
            "patch 2-py failed: Patches/2-py/boom.py: python3 exited with status 1: cannot load the data"
        );
        assert!(
            e.hint
                .as_deref()
                .unwrap()
                .starts_with("fix Patches/2-py/boom.py")
        );
        assert!(out.contains("  2-py  01.sql  "), "{out}");
        assert!(out.contains("      working"), "{out}");
        assert!(db.exists("one") && db.exists("two") && !db.exists("three"));
        let ids: Vec<String> = db.hop_patches().into_iter().map(|r| r.0).collect();
        assert_eq!(ids, ["1-ok"]);
    }

    #[test]
    fn errors_before_any_patch_are_clear() {
        // No server at all.
        let t = Tree::new();
        t.write("1-x", "01.sql", "SELECT 1;\n");
        let params = ConnParams {
            host: Some(t.root().display().to_string()),
            port: Some(5999),
            user: Some("nobody".into()),
            dbname: Some("nothing".into()),
            ..Default::default()
        };
        let mut out = Vec::new();
        let e = run_patches(
            &params,
            &Version::new(0, 1, 0),
            &t.patches(&["1-x"]),
            RunOptions {
                root: t.root(),
                extra_env: vec![],
                out: &mut out,
            },
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("cannot run the patches: error: connection to server"),
            "{e:?}"
        );
        let socket = format!("{}/.s.PGSQL.5999", t.root().display());
        assert!(e.message.contains(&socket), "{e:?}");
        assert!(e.hint.is_some());

        // A database without half_orm_meta.
        let db = Db::new("pr_nometa");
        db.client()
            .batch_execute("DROP SCHEMA half_orm_meta CASCADE")
            .unwrap();
        let (res, _, _) = run(&db, &t, "0.1.0", &["1-x"], vec![]);
        let e = res.unwrap_err();
        assert!(
            e.message.starts_with("cannot record release 0.1.0 in half_orm_meta.hop_release: ERROR: relation \"half_orm_meta.hop_release\" does not exist"),
            "{e:?}"
        );

        // An unexpected file: refused before anything runs.
        let db = Db::new("pr_refuse");
        t.write("2-y", "01.sql", "CREATE TABLE y (id int);\n");
        t.write("3-z", "data.csv", "1,2\n");
        let (res, _, n) = run(&db, &t, "0.1.0", &["2-y", "3-z"], vec![]);
        assert!(
            res.unwrap_err()
                .message
                .contains("unexpected file data.csv")
        );
        assert_eq!(n, 0);
        assert!(!db.exists("y"));
    }
}
