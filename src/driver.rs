//! The parts of the psql driver engine (docs/engine.md) that rebuilds
//! (`rebuild::runner`) and upgrades (`upgrade::runner`) share: the psql
//! process and its environment, the transaction guard, the session reset
//! before every patch, the check that the session never changed, and the
//! reading of psql's errors. Each runner keeps its own transaction plan.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::db::conn::ConnParams;
use crate::db::psql::with_connection_env;
use crate::error::{Error, Result};
pub use crate::patch_dir::SessionUse;

/// The name of the guard's temporary function and table.
pub const GUARD: &str = "hop_guard";

/// The name of the temporary function that drops a patch's temporary
/// objects.
pub const RESET: &str = "hop_reset";

/// The first lines of every psql process of a driver: the session's backend
/// remembered, the transaction guard's objects and the reset function made
/// once for the session (temporary: they go with it), then the driver's
/// settings.
///
/// The guard: the session's default is read-only (`PGOPTIONS`, see
/// [`driver_psql`]) and the driver's transactions are `READ WRITE`; each
/// inserts a row into a temporary table whose deferred constraint trigger
/// raises at commit unless the driver's own commit ([`guarded_commit`]) set
/// `hop.commit`. So a `COMMIT` reached by a patch (one no scan could see:
/// built at run time) fails and rolls everything back, and after a
/// `ROLLBACK` every later write fails.
pub fn session_setup(settings: &Settings) -> Vec<String> {
    let mut out = vec![
        "SELECT pg_backend_pid() AS hop_backend \\gset".to_string(),
        "BEGIN READ WRITE;".into(),
        format!(
            "CREATE OR REPLACE FUNCTION pg_temp.{GUARD}() RETURNS trigger LANGUAGE plpgsql AS $hop_guard$ BEGIN IF current_setting('hop.commit', true) IS DISTINCT FROM 'on' THEN RAISE EXCEPTION 'a patch file tried to end git-hop''s transaction (COMMIT or SET CONSTRAINTS ALL IMMEDIATE in the file): patch files must not control transactions'; END IF; RETURN NULL; END $hop_guard$;"
        ),
        format!("CREATE TEMP TABLE {GUARD} (x int) ON COMMIT DELETE ROWS;"),
        format!(
            "CREATE CONSTRAINT TRIGGER {GUARD} AFTER INSERT ON pg_temp.{GUARD} DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.{GUARD}();"
        ),
        format!(
            "CREATE OR REPLACE FUNCTION pg_temp.{RESET}() RETURNS void LANGUAGE plpgsql AS $hop_reset$ DECLARE r record; BEGIN \
FOR r IN SELECT format('%I.%I', n.nspname, c.relname) AS name, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND c.relname <> '{GUARD}' LOOP \
EXECUTE format('DROP %s IF EXISTS %s CASCADE', CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.name); END LOOP; \
FOR r IN SELECT p.oid::regprocedure::text AS name FROM pg_proc p WHERE p.pronamespace = pg_my_temp_schema() AND p.proname NOT IN ('{GUARD}', '{RESET}') LOOP \
EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.name); END LOOP; END $hop_reset$;"
        ),
        "COMMIT;".into(),
    ];
    if settings.check_client {
        out.push(
            "SELECT current_setting('server_version_num')::int >= 140000 AS hop_pg14 \\gset".into(),
        );
    }
    out.extend(settings.lines());
    out
}

/// Opens a guarded transaction and remembers its id, in one round trip;
/// with `reset`, the session reset of a patch's start runs in it first
/// (see [`session_reset`]).
pub fn guarded_begin(reset: Option<(&Settings, SessionUse)>) -> Vec<String> {
    let reset_sql = reset
        .map(|(s, used)| format!("{} \\; ", reset_chain(s, used)))
        .unwrap_or_default();
    let mut out = vec![format!(
        "BEGIN READ WRITE \\; {reset_sql}SET default_transaction_read_only = on \\; INSERT INTO pg_temp.{GUARD} VALUES (1) \\; SELECT pg_current_xact_id() AS hop_xid \\gset"
    )];
    if let Some((s, _)) = reset {
        out.extend(s.client_check());
    }
    out
}

/// The driver's own commit of a guarded transaction.
pub fn guarded_commit() -> String {
    "SET LOCAL hop.commit = 'on' \\; COMMIT;".into()
}

/// The driver's own `statements` (its metadata rows), then its commit, in
/// one round trip, with the session's own settings and, when the patch
/// may have changed it (`used`), its own user, whatever the patch left set.
pub fn commit_with(statements: &[String], used: SessionUse) -> String {
    let mut out = String::from("RESET ALL");
    if used.role {
        out.push_str(" \\; SET SESSION AUTHORIZATION DEFAULT \\; RESET ROLE");
    }
    for s in statements {
        out.push_str(" \\; ");
        out.push_str(s.trim_end_matches(';'));
    }
    out.push_str(" \\; SET LOCAL hop.commit = 'on' \\; COMMIT;");
    out
}

/// After a step: fails, after a `{tag} session` marker, when the step
/// changed the session's backend (a reconnection), or, in a guarded
/// transaction (`in_transaction`), when the transaction it started in has
/// ended. One round trip, whatever role the step left set.
pub fn step_check(tag: &str, in_transaction: bool) -> Vec<String> {
    let ended = if in_transaction {
        "pg_current_xact_id_if_assigned()::text IS DISTINCT FROM :'hop_xid'"
    } else {
        "false"
    };
    vec![
        format!("SELECT pg_backend_pid() <> :hop_backend AS hop_moved, {ended} AS hop_ended \\gset"),
        "\\if :hop_moved".into(),
        format!("\\warn {tag} session"),
        "DO $hop_moved$ BEGIN RAISE EXCEPTION 'the session changed while the file ran (a reconnection): patch files must not reconnect'; END $hop_moved$;".into(),
        "\\elif :hop_ended".into(),
        "DO $hop_ended$ BEGIN RAISE EXCEPTION 'the transaction ended while the file ran (a COMMIT or ROLLBACK): patch files must not control transactions'; END $hop_ended$;".into(),
        "\\endif".into(),
    ]
}

/// The session settings of a driver, applied at its start and again after
/// every reset.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `lock_timeout` of every statement (upgrades: docs/engine.md).
    pub lock_timeout: Option<Duration>,
    /// Cancel the statements of a client that went away (PostgreSQL 14+;
    /// needs `hop_pg14`, set by [`session_setup`]).
    pub check_client: bool,
}

impl Settings {
    fn sets(&self) -> String {
        let mut out = String::from("SET client_min_messages = warning");
        if let Some(t) = self.lock_timeout {
            out.push_str(&format!(" \\; SET lock_timeout = '{}ms'", t.as_millis()));
        }
        out
    }

    fn lines(&self) -> Vec<String> {
        let mut out = vec![format!("{};", self.sets())];
        out.extend(self.client_check());
        out
    }

    fn client_check(&self) -> Vec<String> {
        if !self.check_client {
            return Vec::new();
        }
        vec![
            "\\if :hop_pg14".into(),
            "SET client_connection_check_interval = '1s';".into(),
            "\\endif".into(),
        ]
    }
}

/// Puts the session back to the state every patch starts from, in a
/// rebuild and in an upgrade alike (docs/engine.md): settings (`SET`,
/// `search_path`…) always; and what the previous patch may have changed
/// (`used`, from its text: see [`SessionUse`]): role and session
/// authorization, prepared statements, cursors, listeners, advisory locks,
/// temporary objects (but the driver's); then the driver's settings. One
/// round trip (plus the client-check setting). Runs inside a guarded
/// transaction (`in_transaction`: the default stays read-only) or in a
/// no-transaction stretch (the default becomes writable). Rebuilds and
/// upgrades follow the same rule, so they never disagree.
pub fn session_reset(settings: &Settings, in_transaction: bool, used: SessionUse) -> Vec<String> {
    let mut out = vec![format!(
        "{} \\; SET default_transaction_read_only = {};",
        reset_chain(settings, used),
        if in_transaction { "on" } else { "off" }
    )];
    out.extend(settings.client_check());
    out
}

/// The statements of [`session_reset`], chained for one round trip.
fn reset_chain(settings: &Settings, used: SessionUse) -> String {
    let mut out = String::from("RESET ALL");
    if used.role {
        out.push_str(" \\; SET SESSION AUTHORIZATION DEFAULT \\; RESET ROLE");
    }
    if used.prepare {
        out.push_str(" \\; DEALLOCATE ALL");
    }
    if used.cursor {
        out.push_str(" \\; CLOSE ALL");
    }
    if used.listen {
        out.push_str(" \\; UNLISTEN *");
    }
    if used.advisory {
        out.push_str(" \\; SELECT pg_advisory_unlock_all()");
    }
    if used.temp {
        // Looking for temporary objects scans the catalogs (a millisecond).
        out.push_str(&format!(" \\; SELECT pg_temp.{RESET}()"));
    }
    out.push_str(" \\; ");
    out.push_str(&settings.sets());
    out
}

/// Follows a driver while psql runs it: each line of psql's stderr
/// (markers and server messages) as it arrives.
pub trait Follow {
    /// One line, without its newline; `true` when the driver now waits at
    /// its commit gate (`\\prompt`) for the runner's go.
    fn line(&mut self, line: &str, now: Instant) -> bool;
    /// Whether psql reached the end of its driver (its last marker).
    fn finished(&self) -> bool;
}

/// Runs `driver` in one psql process (see [`driver_psql`]) and feeds its
/// stderr to `follow` as a stream. psql's stdin is a pipe only this process
/// writes: the commit gate gets its line there, and if this process dies
/// the pipe closes, a waiting `\\prompt` fails and psql stops with its
/// transaction open, which the server rolls back; psql also dies with this
/// process (Linux). Returns `None` when psql reached the end of its driver,
/// else how it ended (for the runner's error).
pub fn run(
    psql: &Path,
    params: &ConnParams,
    root: &Path,
    driver: &Path,
    appname: &str,
    follow: &mut dyn Follow,
) -> Result<Option<String>> {
    let (gate_reader, mut gate_writer) =
        std::io::pipe().map_err(|e| Error::new(format!("cannot create a pipe: {e}")))?;
    let expr = driver_psql(psql, params, root, driver, appname).stdin_file(gate_reader);
    let reader = die_with_parent(expr)
        .reader()
        .map_err(|e| Error::new(format!("could not run {}: {e}", psql.display())))?;
    let mut lines = BufReader::new(&reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let now = Instant::now();
                let text = String::from_utf8_lossy(&buf);
                if follow.line(text.trim_end_matches(['\n', '\r']), now) {
                    // psql waits on \\prompt: let it commit.
                    let _ = gate_writer.write_all(b"commit\n");
                    let _ = gate_writer.flush();
                }
            }
            Err(e) => {
                let _ = reader.kill();
                return Err(Error::new(format!("cannot read psql's output: {e}")));
            }
        }
    }
    drop(gate_writer);
    let status = match reader.try_wait() {
        Ok(Some(out)) => out.status,
        Ok(None) => return Err(Error::new("psql closed its output but did not exit")),
        Err(e) => return Err(Error::new(format!("cannot wait for psql: {e}"))),
    };
    if status.success() && follow.finished() {
        return Ok(None);
    }
    Ok(Some(if status.success() {
        "stopped before the end of its script".to_string()
    } else {
        describe_status(&status)
    }))
}

/// How a Python step ended.
pub struct PythonRun {
    pub status: std::process::ExitStatus,
    /// stdout and stderr, interleaved.
    pub output: String,
    pub took: Duration,
}

/// Runs a Python step (`python3 FILE` from `root`, with `env` as its
/// connection and half_orm variables); dies with this process.
pub fn run_python(
    file: &Path,
    root: &Path,
    env: Vec<(String, String)>,
) -> std::io::Result<PythonRun> {
    let expr = with_connection_env(duct::cmd("python3", [file]), env)
        .dir(root)
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked();
    let since = Instant::now();
    let out = die_with_parent(expr).run()?;
    Ok(PythonRun {
        status: out.status,
        output: String::from_utf8_lossy(&out.stdout).into_owned(),
        took: since.elapsed(),
    })
}

/// A word no patch file holds by chance: the process id and the time, for
/// the markers of a driver (and the name of its commit gate's variable).
pub fn nonce() -> String {
    format!(
        "{:x}x{:x}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}

/// `12 ms`.
pub(crate) fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The main error line of psql's stderr.
pub(crate) struct FoundError {
    /// `(file, line)` psql put before the message.
    pub(crate) location: Option<(String, usize)>,
    /// `ERROR: …` (spaces collapsed), with the DETAIL line when there is one.
    pub(crate) text: String,
}

const SEVERITIES: &[&str] = &["ERROR:", "FATAL:", "PANIC:", "error:", "fatal:"];

/// Finds the first error among psql's stderr lines: `psql:FILE:LINE: ERROR:  msg`,
/// `psql: error: msg` or a bare `ERROR:  msg`.
pub(crate) fn find_error<'a>(lines: impl Iterator<Item = &'a str>) -> Option<FoundError> {
    let lines: Vec<&str> = lines.collect();
    for (i, line) in lines.iter().enumerate() {
        let Some((location, text)) = split_error_line(line) else {
            continue;
        };
        let mut text = collapse(text);
        if let Some(detail) = lines[i + 1..]
            .iter()
            .take(4)
            .find_map(|l| l.trim_start().strip_prefix("DETAIL:"))
        {
            text = format!("{text} (DETAIL: {})", collapse(detail));
        }
        return Some(FoundError { location, text });
    }
    None
}

fn split_error_line(line: &str) -> Option<(Option<(String, usize)>, &str)> {
    for sev in SEVERITIES {
        if line.starts_with(sev) {
            return Some((None, line));
        }
        let Some(idx) = line.find(&format!(": {sev}")) else {
            continue;
        };
        let prefix = &line[..idx];
        let text = &line[idx + 2..];
        let location = prefix.strip_prefix("psql:").and_then(|loc| {
            let (file, num) = loc.rsplit_once(':')?;
            Some((file.to_string(), num.parse::<usize>().ok()?))
        });
        if location.is_some() || prefix == "psql" || prefix == "pg_dump" {
            return Some((location, text));
        }
    }
    None
}

fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The psql process that runs a driver script: connection through the
/// environment only, `ON_ERROR_STOP`, no password prompt; stderr (markers and
/// messages) merged into the output read by the caller, query results
/// dropped. Shared by rebuilds and production upgrades.
pub(crate) fn driver_psql(
    psql: &Path,
    params: &ConnParams,
    root: &Path,
    driver: &Path,
    appname: &str,
) -> duct::Expression {
    let mut env = params.child_env();
    if !env.iter().any(|(k, _)| k == "PGAPPNAME") {
        env.push(("PGAPPNAME".into(), appname.into()));
    }
    env.push(("PGTZ".into(), "UTC".into()));
    env.push(("LC_MESSAGES".into(), "C".into()));
    // Every session of the driver starts read-only: only the driver's own
    // `BEGIN READ WRITE` (and its no-transaction stretches) can write, so a
    // patch that reconnected could not commit anything behind its back.
    env.push((
        "PGOPTIONS".into(),
        "-c default_transaction_read_only=on".into(),
    ));
    let args: Vec<std::ffi::OsString> = vec![
        "-X".into(),
        "-q".into(),
        "-w".into(),
        "-v".into(),
        "ON_ERROR_STOP=1".into(),
        "-f".into(),
        driver.into(),
    ];
    with_connection_env(duct::cmd(psql, args), env)
        .dir(root)
        .stdout_null()
        .stderr_to_stdout()
        .unchecked()
}

pub(crate) fn describe_status(status: &std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(s)) => format!("was killed by signal {s}"),
        _ => "failed".into(),
    }
}

/// Makes the child die with this process (Linux), so an orphan psql can
/// never go on with the script.
pub(crate) fn die_with_parent(expr: duct::Expression) -> duct::Expression {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        expr.before_spawn(|cmd| {
            // SAFETY: prctl is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            Ok(())
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        expr
    }
}
