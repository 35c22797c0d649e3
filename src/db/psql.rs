//! The runner for PostgreSQL's client programs (`psql`, `pg_dump`): the
//! resolved connection reaches them as `PG*` environment variables (never on
//! the command line), and their errors come back as `file:line: message`.

use std::path::{Path, PathBuf};

use crate::db::conn::{ConnParams, LIBPQ_ENV_VARS};
use crate::db::pgbin;
use crate::error::{Error, Result};

/// A client program bound to one connection.
pub struct Client {
    bin: PathBuf,
    params: ConnParams,
}

/// What a client program printed.
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

impl Client {
    pub fn psql(params: &ConnParams) -> Result<Client> {
        Ok(Client {
            bin: pgbin::client_tool("psql")?,
            params: params.clone(),
        })
    }

    pub fn pg_dump(params: &ConnParams) -> Result<Client> {
        Ok(Client {
            bin: pgbin::client_tool("pg_dump")?,
            params: params.clone(),
        })
    }

    pub fn pg_restore(params: &ConnParams) -> Result<Client> {
        Ok(Client {
            bin: pgbin::client_tool("pg_restore")?,
            params: params.clone(),
        })
    }

    fn expression(&self, args: &[&str]) -> duct::Expression {
        let mut env = self.params.child_env();
        env.push(("PGAPPNAME".into(), "git-hop".into()));
        env.push(("PGTZ".into(), "UTC".into()));
        with_connection_env(duct::cmd(&self.bin, args), env).env("LC_MESSAGES", "C")
    }

    /// Runs the program with `args` (never connection settings), feeding
    /// `stdin`; a failure returns the program's error lines.
    pub fn run(&self, args: &[&str], stdin: Option<&str>, cwd: Option<&Path>) -> Result<Output> {
        let mut cmd = self
            .expression(args)
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        cmd = match stdin {
            Some(s) => cmd.stdin_bytes(s.as_bytes().to_vec()),
            None => cmd.stdin_null(),
        };
        if let Some(dir) = cwd {
            cmd = cmd.dir(dir);
        }
        let name = self.name();
        let out = cmd
            .run()
            .map_err(|e| Error::new(format!("could not run {}: {e}", self.bin.display())))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if out.status.success() {
            Ok(Output { stdout, stderr })
        } else {
            Err(Error::new(format!(
                "{name} failed: {}",
                error_lines(&stderr)
            )))
        }
    }

    /// Runs the program with `args` and hands each line it prints (without
    /// its newline) to `line`, as it comes: for outputs too large to hold
    /// (a dump turned into SQL). A failure returns the program's error lines.
    pub fn each_line(&self, args: &[&str], mut line: impl FnMut(&[u8])) -> Result<()> {
        use std::io::BufRead;
        let errors = tempfile::NamedTempFile::new()
            .map_err(|e| Error::new(format!("cannot create a temporary file: {e}")))?;
        let reader = self
            .expression(args)
            .stdin_null()
            .stderr_path(errors.path())
            .reader()
            .map_err(|e| Error::new(format!("could not run {}: {e}", self.bin.display())))?;
        let mut reader = std::io::BufReader::with_capacity(1 << 16, reader);
        let mut buf = Vec::new();
        let failed = loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) => break None,
                Ok(_) => {
                    if buf.last() == Some(&b'\n') {
                        buf.pop();
                    }
                    line(&buf);
                }
                Err(e) => break Some(e),
            }
        };
        match failed {
            None => Ok(()),
            Some(e) => {
                let stderr = std::fs::read_to_string(errors.path()).unwrap_or_default();
                let why = if stderr.trim().is_empty() {
                    e.to_string()
                } else {
                    error_lines(&stderr)
                };
                Err(Error::new(format!("{} failed: {why}", self.name())))
            }
        }
    }

    /// Runs the program with `args`, its stdin fed by `write` (from another
    /// thread, through a pipe: nothing is held in memory whole). A failure
    /// of the program returns its error lines; one of `write`, its error.
    pub fn run_fed(
        &self,
        args: &[&str],
        write: impl FnOnce(&mut std::io::PipeWriter) -> std::io::Result<()> + Send + 'static,
    ) -> Result<Output> {
        let (reader, mut writer) =
            std::io::pipe().map_err(|e| Error::new(format!("cannot create a pipe: {e}")))?;
        let feeder = std::thread::spawn(move || {
            let r = write(&mut writer);
            drop(writer);
            r
        });
        let out = self
            .expression(args)
            .stdin_file(reader)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run();
        let fed = feeder
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the feeding thread panicked")));
        let out =
            out.map_err(|e| Error::new(format!("could not run {}: {e}", self.bin.display())))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(Error::new(format!(
                "{} failed: {}",
                self.name(),
                error_lines(&stderr)
            )));
        }
        // The program may stop reading early only by failing: a write error
        // with a successful program is the input's own failure.
        fed.map_err(|e| Error::new(format!("cannot feed {}: {e}", self.name())))?;
        Ok(Output { stdout, stderr })
    }

    fn name(&self) -> String {
        self.bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Runs one SQL file with ON_ERROR_STOP, in one transaction when asked.
    pub fn run_file(&self, file: &Path, single_transaction: bool) -> Result<()> {
        let f = file.display().to_string();
        let mut args = vec!["-X", "-q", "-v", "ON_ERROR_STOP=1"];
        if single_transaction {
            args.push("--single-transaction");
        }
        args.extend(["-f", &f]);
        self.run(&args, None, None).map(|_| ())
    }

    /// Runs SQL given as text (as one transaction) and returns its
    /// unaligned, tuples-only output.
    pub fn query(&self, sql: &str) -> Result<String> {
        let args = [
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
            "-",
        ];
        self.run(&args, Some(sql), None).map(|o| o.stdout)
    }
}

/// `cmd` with exactly the connection variables of `env`: every other libpq
/// variable inherited from our environment is removed. (duct applies the
/// innermost setting last, so removing a variable around a setting of it
/// would undo the setting: only what is not set gets removed.)
pub fn with_connection_env(
    mut cmd: duct::Expression,
    env: Vec<(String, String)>,
) -> duct::Expression {
    for var in LIBPQ_ENV_VARS {
        if !env.iter().any(|(k, _)| k == var) {
            cmd = cmd.env_remove(var);
        }
    }
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    cmd
}

/// A path for a psql meta-command argument: single-quoted, with `'`
/// doubled and backslash, newline, CR and tab escaped (psql applies C-like
/// escapes inside single quotes).
pub fn quote_path(path: &Path) -> Result<String> {
    let s = path.to_str().ok_or_else(|| {
        Error::new(format!("path {} is not valid UTF-8", path.display()))
            .hint("move the work tree to a path of UTF-8 characters")
    })?;
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('\'');
    Ok(out)
}

/// The meaningful lines of a psql/pg_dump error output, joined on one line:
/// `psql:FILE:LINE: ERROR: msg` becomes `FILE:LINE: ERROR: msg`.
pub fn error_lines(stderr: &str) -> String {
    let mut picked: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let l = line.trim_end();
        if l.is_empty() {
            continue;
        }
        let l = l.strip_prefix("psql:").unwrap_or(l);
        let l = l.strip_prefix("pg_dump: ").unwrap_or(l);
        let is_main = l.contains("ERROR:") || l.contains("FATAL:") || l.starts_with("error:");
        if is_main || picked.is_empty() {
            picked.push(collapse_spaces(l));
        }
        if picked.len() >= 2 {
            break;
        }
    }
    if picked.is_empty() {
        "no message".into()
    } else {
        picked.join(" / ")
    }
}

fn collapse_spaces(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_keep_file_line_and_message() {
        let stderr =
            "psql:/p/01.sql:3: ERROR:  relation \"x\" does not exist\nLINE 1: select * from x;\n";
        assert_eq!(
            error_lines(stderr),
            "/p/01.sql:3: ERROR: relation \"x\" does not exist"
        );
        assert_eq!(error_lines(""), "no message");
        assert_eq!(
            error_lines("pg_dump: error: connection to server failed\n"),
            "error: connection to server failed"
        );
    }
}
