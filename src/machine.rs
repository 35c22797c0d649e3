//! Output for machines (`--json`, docs/ci.md): one JSON document on
//! stdout, carrying [`SCHEMA_VERSION`], while what a command says to people
//! (its progress, the output of the tests it runs) goes to stderr.

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Result};

/// The version of every `--json` document's shape; it grows when a field
/// changes meaning or goes (a new field keeps it).
pub const SCHEMA_VERSION: u32 = 1;

/// An error as a `--json` document holds it.
#[derive(Serialize, Debug, Clone)]
pub struct JsonError {
    pub message: String,
    pub hint: Option<String>,
}

impl From<&Error> for JsonError {
    fn from(e: &Error) -> JsonError {
        JsonError {
            message: e.message.clone(),
            hint: e.hint.clone(),
        }
    }
}

/// A `--json` document that carries a verdict.
pub trait Verdict: Serialize {
    fn set_verdict(&mut self, passed: bool, error: Option<JsonError>);
}

/// Runs `work` on `report` (with `json`, its output and its children's on
/// stderr), records the verdict in it, and with `json` prints it; returns
/// what `work` returned, so the exit code says the verdict.
pub fn judged<R: Verdict>(
    json: bool,
    report: &mut R,
    work: impl FnOnce(&mut R) -> Result<()>,
) -> Result<()> {
    let result = {
        let _people = StdoutToStderr::new(json);
        work(report)
    };
    report.set_verdict(result.is_ok(), result.as_ref().err().map(JsonError::from));
    if json {
        print(report)?;
    }
    result
}

/// Prints `value` as pretty JSON on stdout.
pub fn print<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::new(format!("cannot render JSON: {e}")))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::new(format!("cannot write to stdout: {e}")))
}

/// While it lives, file descriptor 1 is the process's stderr, so that
/// everything written to stdout (this process's lines and its children's,
/// a test command's included) reaches stderr; dropped, stdout is back.
pub struct StdoutToStderr {
    saved: Option<std::os::fd::OwnedFd>,
}

impl StdoutToStderr {
    /// Redirects when `on` (a `--json` run); a no-op guard otherwise.
    pub fn new(on: bool) -> StdoutToStderr {
        if !on {
            return StdoutToStderr { saved: None };
        }
        let _ = std::io::stdout().flush();
        // SAFETY: dup and dup2 on the process's own standard descriptors;
        // the saved copy is owned by the guard and closed once restored.
        let saved = unsafe {
            let fd = libc::dup(1);
            if fd < 0 || libc::dup2(2, 1) < 0 {
                if fd >= 0 {
                    libc::close(fd);
                }
                return StdoutToStderr { saved: None };
            }
            <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
        };
        StdoutToStderr { saved: Some(saved) }
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = std::io::stdout().flush();
            // SAFETY: restores descriptor 1 from the copy this guard owns.
            unsafe {
                libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&saved), 1);
            }
        }
    }
}
