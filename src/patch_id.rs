//! Patch identifiers (docs/patches.md): `^[0-9]+(-[a-z0-9]+)*$`, at most 64 characters,
//! e.g. `42-add-users`. A patch `<id>` lives on branch `ho-patch/<id>` and in
//! folder `Patches/<id>/`; the leading number is what gets reserved on origin.
//!
//! The check is hand-written (no regex crate). Only ASCII is accepted, so the
//! length in characters is the length in bytes.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest id accepted, in characters.
pub const MAX_LEN: usize = 64;

const RULE: &str = "ids are a number followed by -words of lower-case letters and digits \
                    (^[0-9]+(-[a-z0-9]+)*$), at most 64 characters";
const HINT: &str = "example: 42-add-users";

/// A validated patch id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PatchId(String);

/// True when `s` matches `^[0-9]+(-[a-z0-9]+)*$` (length not checked).
fn matches_rule(s: &str) -> bool {
    let mut words = s.split('-');
    let number_ok = words
        .next()
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    number_ok
        && words.all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// `s` for an error message: escaped, and shortened when absurdly long.
fn shown(s: &str) -> String {
    const SHOWN: usize = 80;
    if s.chars().count() > SHOWN {
        let head: String = s.chars().take(SHOWN).collect();
        format!("{}…", head.escape_debug())
    } else {
        s.escape_debug().to_string()
    }
}

impl PatchId {
    /// Validates `s` as a patch id.
    pub fn parse(s: &str) -> Result<PatchId> {
        if !matches_rule(s) {
            return Err(Error::new(format!("invalid patch id '{}': {RULE}", shown(s))).hint(HINT));
        }
        if s.len() > MAX_LEN {
            return Err(Error::new(format!(
                "invalid patch id '{}': it is {} characters long, at most {MAX_LEN} are allowed",
                shown(s),
                s.len()
            ))
            .hint("use a shorter description after the number, e.g. 42-add-users"));
        }
        Ok(PatchId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The leading number, as written (`"42"` for `42-add-users`).
    pub fn number(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }

    /// The patch's branch: `ho-patch/<id>`.
    pub fn branch(&self) -> String {
        format!("ho-patch/{}", self.0)
    }
}

impl fmt::Display for PatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for PatchId {
    type Err = Error;

    fn from_str(s: &str) -> Result<PatchId> {
        PatchId::parse(s)
    }
}

impl AsRef<str> for PatchId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<PatchId> for String {
    fn from(id: PatchId) -> String {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ids() {
        let max = format!("1-{}", "a".repeat(62));
        assert_eq!(max.len(), 64);
        for s in [
            "456",
            "1-users",
            "12-a-b-3",
            "0",
            "007-x",
            "1-2-3",
            "99-9a9",
            max.as_str(),
        ] {
            let id = PatchId::parse(s).unwrap_or_else(|e| panic!("{s:?} refused: {e}"));
            assert_eq!(id.as_str(), s);
            assert_eq!(id.to_string(), s);
        }
    }

    #[test]
    fn refuses_invalid_ids() {
        let too_long = format!("1-{}", "a".repeat(63));
        assert_eq!(too_long.len(), 65);
        let digits_too_long = "1".repeat(65);
        for s in [
            "-1-x",
            "../x",
            "1 x",
            "1-X",
            "1--x",
            "1-",
            "",
            "-",
            "x",
            "x-1",
            "1_x",
            "1.x",
            "1/x",
            "1-x/y",
            " 1",
            "1\n",
            "1-é",
            "１",
            "1-ａ",
            too_long.as_str(),
            digits_too_long.as_str(),
        ] {
            assert!(PatchId::parse(s).is_err(), "{s:?} was accepted");
            assert!(
                s.parse::<PatchId>().is_err(),
                "{s:?} was accepted by FromStr"
            );
        }
    }

    #[test]
    fn error_names_the_id_and_the_rule() {
        let e = PatchId::parse("1-X").unwrap_err();
        assert_eq!(
            e.message,
            "invalid patch id '1-X': ids are a number followed by -words of lower-case \
             letters and digits (^[0-9]+(-[a-z0-9]+)*$), at most 64 characters"
        );
        assert_eq!(e.hint.as_deref(), Some("example: 42-add-users"));

        let e = PatchId::parse(&format!("1-{}", "a".repeat(63))).unwrap_err();
        assert!(
            e.message.contains("65 characters long, at most 64"),
            "{}",
            e.message
        );

        let e = PatchId::parse("1\nx").unwrap_err();
        assert!(
            e.message.starts_with("invalid patch id '1\\nx'"),
            "{}",
            e.message
        );
        let e = PatchId::parse(&"x".repeat(1000)).unwrap_err();
        assert!(e.message.len() < 300, "{}", e.message);
    }

    #[test]
    fn number_and_branch() {
        let id = PatchId::parse("42-add-users").unwrap();
        assert_eq!(id.number(), "42");
        assert_eq!(id.branch(), "ho-patch/42-add-users");
        assert_eq!(PatchId::parse("456").unwrap().number(), "456");
        assert_eq!(String::from(id), "42-add-users");
    }
}
