//! Release versions (docs/versions.md): `X.Y.Z`, `X.Y.Z-rcN`, `X.Y.Z-hotfixN`,
//! their order, their tags (`vX.Y.Z…`) and how the next version is computed.
//!
//! The order is **not** semver's: release candidates of `X.Y.Z` sort before it,
//! hotfixes of `X.Y.Z` sort after it and before the next release:
//! `0.17.0-rc1 < 0.17.0-rc2 < 0.17.0 < 0.17.0-hotfix1 < 0.17.0-hotfix2 < 0.17.1`.
//!
//! Parsing is hand-written rather than delegated to the `semver` crate: semver
//! accepts arbitrary pre-release identifiers and build metadata (`1.2.3-alpha.1+x`)
//! that we would have to reject afterwards anyway, and its error messages do
//! not name our format; the grammar here is small enough (three numbers without
//! leading zeros, an optional `-rcN`/`-hotfixN`) to check directly.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

const FORMAT: &str = "expected MAJOR.MINOR.PATCH[-rcN|-hotfixN]";
const EXAMPLES: &str = "examples: 0.17.0, 0.17.0-rc1, 0.17.0-hotfix2";

/// The suffix of a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pre {
    /// A production release `X.Y.Z`.
    None,
    /// Release candidate `X.Y.Z-rcN` (N >= 1), before `X.Y.Z`.
    Rc(u32),
    /// Hotfix `X.Y.Z-hotfixN` (N >= 1) of production `X.Y.Z`, after `X.Y.Z`.
    Hotfix(u32),
}

impl Pre {
    /// Sort key: rc < none < hotfix, then by number.
    fn rank(self) -> (u8, u32) {
        match self {
            Pre::Rc(n) => (0, n),
            Pre::None => (1, 0),
            Pre::Hotfix(n) => (2, n),
        }
    }
}

impl Ord for Pre {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl PartialOrd for Pre {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A release version. Ordered as described in the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Pre,
}

/// Which number `git hop-release new` increments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Patch,
    Minor,
    Major,
}

impl Version {
    /// A production version `major.minor.patch`.
    pub fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: Pre::None,
        }
    }

    /// The next release after this one (any suffix ignored):
    /// `0.17.0-hotfix2` → patch `0.17.1`, minor `0.18.0`, major `1.0.0`.
    pub fn next(&self, level: Level) -> Version {
        match level {
            Level::Patch => Version::new(self.major, self.minor, self.patch + 1),
            Level::Minor => Version::new(self.major, self.minor + 1, 0),
            Level::Major => Version::new(self.major + 1, 0, 0),
        }
    }

    /// The same version without its `-rcN` / `-hotfixN` suffix.
    pub fn base(&self) -> Version {
        Version::new(self.major, self.minor, self.patch)
    }

    /// True for a plain production release `X.Y.Z` (no suffix).
    pub fn is_release(&self) -> bool {
        self.pre == Pre::None
    }

    /// The git tag of this version: `v0.17.0-rc1`.
    pub fn tag_name(&self) -> String {
        format!("v{self}")
    }

    /// The version of a tag `vX.Y.Z[-rcN|-hotfixN]`; `None` for any other tag.
    pub fn from_tag(tag: &str) -> Option<Version> {
        tag.strip_prefix('v')?.parse().ok()
    }

    /// The `pre_release` and `pre_release_num` columns of `half_orm_meta.hop_release`:
    /// `("", None)`, `("rc", Some(n))` or `("hotfix", Some(n))`.
    pub fn pre_release_columns(&self) -> (&'static str, Option<u32>) {
        match self.pre {
            Pre::None => ("", None),
            Pre::Rc(n) => ("rc", Some(n)),
            Pre::Hotfix(n) => ("hotfix", Some(n)),
        }
    }
}

/// The current production version among git tags: the greatest of the tags
/// `vX.Y.Z` and `vX.Y.Z-hotfixN` (rc tags and unrelated tags are ignored).
pub fn latest_production<'a>(tags: impl IntoIterator<Item = &'a str>) -> Option<Version> {
    tags.into_iter()
        .filter_map(Version::from_tag)
        .filter(|v| !matches!(v.pre, Pre::Rc(_)))
        .max()
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch, self.pre).cmp(&(
            other.major,
            other.minor,
            other.patch,
            other.pre,
        ))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        match self.pre {
            Pre::None => Ok(()),
            Pre::Rc(n) => write!(f, "-rc{n}"),
            Pre::Hotfix(n) => write!(f, "-hotfix{n}"),
        }
    }
}

/// A decimal number without sign or leading zero (`0` itself is fine).
fn number<T: FromStr>(s: &str) -> Option<T> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let leading_zero = s.len() > 1 && s.starts_with('0');
    if digits && !leading_zero {
        s.parse().ok()
    } else {
        None
    }
}

fn parse_version(s: &str) -> Option<Version> {
    let (numbers, pre) = match s.split_once('-') {
        Some((numbers, suffix)) => {
            let pre = if let Some(n) = suffix.strip_prefix("rc") {
                Pre::Rc(number(n)?)
            } else if let Some(n) = suffix.strip_prefix("hotfix") {
                Pre::Hotfix(number(n)?)
            } else {
                return None;
            };
            if matches!(pre, Pre::Rc(0) | Pre::Hotfix(0)) {
                return None;
            }
            (numbers, pre)
        }
        None => (s, Pre::None),
    };
    let mut parts = numbers.split('.');
    let major = number(parts.next()?)?;
    let minor = number(parts.next()?)?;
    let patch = number(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    Some(Version {
        major,
        minor,
        patch,
        pre,
    })
}

impl FromStr for Version {
    type Err = Error;

    fn from_str(s: &str) -> Result<Version> {
        parse_version(s).ok_or_else(|| {
            let err = Error::new(format!("invalid version '{}': {FORMAT}", s.escape_debug()));
            if s.starts_with('v') && parse_version(&s[1..]).is_some() {
                err.hint(format!(
                    "write the version without the leading 'v': {}",
                    &s[1..]
                ))
            } else {
                err.hint(format!(
                    "{EXAMPLES} (numbers without leading zeros, N >= 1)"
                ))
            }
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Patch => "patch",
            Level::Minor => "minor",
            Level::Major => "major",
        })
    }
}

impl FromStr for Level {
    type Err = Error;

    fn from_str(s: &str) -> Result<Level> {
        match s {
            "patch" => Ok(Level::Patch),
            "minor" => Ok(Level::Minor),
            "major" => Ok(Level::Major),
            _ => Err(Error::usage(format!(
                "invalid release level '{}': expected patch, minor or major",
                s.escape_debug()
            ))
            .hint("example: git hop-release new minor")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_displays() {
        for s in [
            "0.0.0",
            "0.17.0",
            "0.17.0-rc1",
            "0.17.0-hotfix2",
            "10.200.3000-rc12",
        ] {
            assert_eq!(v(s).to_string(), s);
        }
        assert_eq!(v("1.2.3"), Version::new(1, 2, 3));
        assert_eq!(v("1.2.3-rc4").pre, Pre::Rc(4));
        assert_eq!(v("1.2.3-hotfix5").pre, Pre::Hotfix(5));
        let max = format!("{m}.{m}.{m}-rc{}", u32::MAX, m = u64::MAX);
        assert_eq!(v(&max).to_string(), max);
    }

    #[test]
    fn refuses_malformed_versions() {
        for s in [
            "",
            "1",
            "1.2",
            "1.2.3.4",
            "1.2.",
            ".1.2",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.3-",
            "1.2.3-rc",
            "1.2.3-rc0",
            "1.2.3-rc01",
            "1.2.3-hotfix",
            "1.2.3-hotfix0",
            "1.2.3-beta1",
            "1.2.3-RC1",
            "1.2.3-rc1-hotfix1",
            "1.2.3+build",
            "-1.2.3",
            "+1.2.3",
            "1.2.+3",
            " 1.2.3",
            "1.2.3 ",
            "v1.2.3",
            "a.b.c",
            "1.2.3-rc-1",
            "1.2.3-rc+1",
            "18446744073709551616.0.0",
            "1.2.3-rc4294967296",
            "１.2.3",
        ] {
            assert!(s.parse::<Version>().is_err(), "{s:?} was accepted");
        }
    }

    #[test]
    fn error_message_names_input_and_format() {
        let e = "1.2".parse::<Version>().unwrap_err();
        assert_eq!(
            e.message,
            "invalid version '1.2': expected MAJOR.MINOR.PATCH[-rcN|-hotfixN]"
        );
        assert!(e.hint.unwrap().contains("0.17.0-rc1"));
        let e = "v1.2.3".parse::<Version>().unwrap_err();
        assert_eq!(
            e.hint.as_deref(),
            Some("write the version without the leading 'v': 1.2.3")
        );
        let e = "a\nb".parse::<Version>().unwrap_err();
        assert!(!e.message.contains('\n'), "{}", e.message);
    }

    #[test]
    fn order_is_rc_release_hotfix_next() {
        let chain = [
            "0.16.9-hotfix3",
            "0.17.0-rc1",
            "0.17.0-rc2",
            "0.17.0-rc10",
            "0.17.0",
            "0.17.0-hotfix1",
            "0.17.0-hotfix2",
            "0.17.0-hotfix10",
            "0.17.1-rc1",
            "0.17.1",
            "0.18.0",
            "1.0.0-rc1",
            "1.0.0",
            "2.0.0",
        ];
        for w in chain.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
            assert!(v(w[1]) > v(w[0]), "{} > {}", w[1], w[0]);
        }
        let mut shuffled: Vec<Version> = chain.iter().rev().map(|s| v(s)).collect();
        shuffled.sort();
        let sorted: Vec<String> = shuffled.iter().map(Version::to_string).collect();
        assert_eq!(sorted, chain);
        assert_eq!(v("0.17.0").cmp(&v("0.17.0")), Ordering::Equal);
        assert_ne!(v("0.17.0-rc1"), v("0.17.0-hotfix1"));
    }

    #[test]
    fn next_versions_ignore_the_suffix() {
        assert_eq!(v("0.17.0-hotfix2").next(Level::Patch), v("0.17.1"));
        assert_eq!(v("0.17.3").next(Level::Minor), v("0.18.0"));
        assert_eq!(v("0.17.3-hotfix1").next(Level::Major), v("1.0.0"));
        assert_eq!(v("0.0.0").next(Level::Patch), v("0.0.1"));
        assert_eq!(v("1.9.9").next(Level::Minor), v("1.10.0"));
    }

    #[test]
    fn base_release_and_columns() {
        assert_eq!(v("0.17.0-rc3").base(), v("0.17.0"));
        assert_eq!(v("0.17.0-hotfix1").base(), v("0.17.0"));
        assert!(v("0.17.0").is_release());
        assert!(!v("0.17.0-rc1").is_release());
        assert!(!v("0.17.0-hotfix1").is_release());
        assert_eq!(v("0.17.0").pre_release_columns(), ("", None));
        assert_eq!(v("0.17.0-rc3").pre_release_columns(), ("rc", Some(3)));
        assert_eq!(
            v("0.17.0-hotfix2").pre_release_columns(),
            ("hotfix", Some(2))
        );
    }

    #[test]
    fn tags() {
        assert_eq!(v("0.17.0-rc1").tag_name(), "v0.17.0-rc1");
        assert_eq!(v("0.17.0").tag_name(), "v0.17.0");
        assert_eq!(
            Version::from_tag("v0.17.0-hotfix2"),
            Some(v("0.17.0-hotfix2"))
        );
        assert_eq!(Version::from_tag("0.17.0"), None);
        assert_eq!(Version::from_tag("vv0.17.0"), None);
        assert_eq!(Version::from_tag("v0.17"), None);
        assert_eq!(Version::from_tag("release-1"), None);
    }

    #[test]
    fn latest_production_skips_rc_and_foreign_tags() {
        let tags = [
            "v0.0.0",
            "v0.1.0",
            "v0.1.0-hotfix1",
            "v0.2.0-rc1",
            "foo",
            "v9",
            "0.9.0",
        ];
        assert_eq!(latest_production(tags), Some(v("0.1.0-hotfix1")));
        let tags = ["v0.1.0-hotfix2", "v0.1.0-hotfix10", "v0.1.0"];
        assert_eq!(latest_production(tags), Some(v("0.1.0-hotfix10")));
        assert_eq!(latest_production(["v1.0.0-rc1", "main"]), None);
        assert_eq!(latest_production(Vec::<&str>::new()), None);
        let owned = [String::from("v0.0.0"), String::from("v0.0.1")];
        assert_eq!(
            latest_production(owned.iter().map(String::as_str)),
            Some(v("0.0.1"))
        );
    }

    #[test]
    fn levels() {
        assert_eq!("patch".parse::<Level>().unwrap(), Level::Patch);
        assert_eq!("minor".parse::<Level>().unwrap(), Level::Minor);
        assert_eq!("major".parse::<Level>().unwrap(), Level::Major);
        let e = "Major".parse::<Level>().unwrap_err();
        assert_eq!(
            e.message,
            "invalid release level 'Major': expected patch, minor or major"
        );
        assert_eq!(e.exit_code(), 2);
        assert_eq!(Level::Minor.to_string(), "minor");
    }
}
