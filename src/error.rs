//! The core's one error type, rendered in one place (`Error::render`).
//!
//! Every error says what failed (and where, with `file:line:col` when there is
//! one) and, in `hint`, what to do about it. Binaries map it to an exit code.

use std::fmt;
use std::path::Path;

/// How an error ends the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command could not do its job (exit 1).
    Failure,
    /// The command line itself was wrong (exit 2).
    Usage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    pub hint: Option<String>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Failure,
            message: message.into(),
            hint: None,
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Usage,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds (or replaces) the "what to do" part.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with context ("while doing X: ...").
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    /// An I/O error on a path.
    pub fn io(what: &str, path: &Path, err: std::io::Error) -> Self {
        Error::new(format!("{what} {}: {err}", path.display()))
    }

    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Failure => 1,
            Kind::Usage => 2,
        }
    }

    /// The text printed on stderr: one `error:` line, then a `hint:` line.
    pub fn render(&self) -> String {
        let mut s = format!("error: {}", self.message.trim_end());
        if let Some(h) = &self.hint {
            s.push_str("\nhint: ");
            s.push_str(h.trim_end());
        }
        s
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// `1:5` style location of a byte offset in a text.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

/// Turns a `toml` parse error into `file:line:col: message`.
pub fn toml_error(path: &Path, text: &str, err: &toml::de::Error) -> Error {
    let where_ = match err.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            format!("{}:{l}:{c}", path.display())
        }
        None => path.display().to_string(),
    };
    Error::new(format!("{where_}: {}", err.message().trim_end()))
        .hint(format!("fix the TOML syntax in {}", path.display()))
}

/// Same for a `toml_edit` parse error.
pub fn toml_edit_error(path: &Path, text: &str, err: &toml_edit::TomlError) -> Error {
    let where_ = match err.span() {
        Some(span) => {
            let (l, c) = line_col(text, span.start);
            format!("{}:{l}:{c}", path.display())
        }
        None => path.display().to_string(),
    };
    Error::new(format!("{where_}: {}", err.message().trim_end()))
        .hint(format!("fix the TOML syntax in {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab\ncd", 99), (2, 3));
    }

    #[test]
    fn render_has_error_and_hint_lines() {
        let e = Error::new("it broke").hint("do this");
        assert_eq!(e.render(), "error: it broke\nhint: do this");
        assert_eq!(e.exit_code(), 1);
        assert_eq!(Error::usage("bad").exit_code(), 2);
    }
}
