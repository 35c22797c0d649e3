//! Settings: the committed project file `.hop/config` (docs/settings.md) and the
//! per-clone git config `hop.*` (docs/settings.md). Both are validated when read.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{self, Error, Result};
use crate::git::Repo;

pub const CONFIG_PATH: &str = ".hop/config";

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub project: ProjectSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub tests: TestsSection,
    #[serde(default)]
    pub codegen: CodegenSection,
    #[serde(default)]
    pub lint: LintSection,
}

/// `[lint]`: which lint rules fail `apply` and `merge` instead of warning
/// (docs/patches.md, "Lint").
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LintSection {
    #[serde(default)]
    pub deny: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    pub package: String,
    pub min_version: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TestsSection {
    pub command: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CodegenSection {
    #[serde(default = "yes")]
    pub python: bool,
}

impl Default for CodegenSection {
    fn default() -> Self {
        CodegenSection { python: true }
    }
}

fn yes() -> bool {
    true
}

impl ProjectConfig {
    /// Reads and validates `<root>/.hop/config`.
    pub fn load(root: &Path) -> Result<ProjectConfig> {
        let path = root.join(CONFIG_PATH);
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
        Self::parse(&path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<ProjectConfig> {
        let cfg: ProjectConfig =
            toml::from_str(text).map_err(|e| error::toml_error(path, text, &e))?;
        let at = |key: &str| {
            let (l, c) = find_key(text, key);
            format!("{}:{l}:{c}", path.display())
        };
        validate_package(&cfg.project.package).map_err(|e| e.context(at("package")))?;
        if let Some(name) = &cfg.database.name {
            validate_db_name(name).map_err(|e| e.context(at("name")))?;
        }
        if let Some(v) = &cfg.project.min_version {
            let min = semver::Version::parse(v).map_err(|e| {
                Error::new(format!(
                    "{}: invalid min_version '{v}': {e}",
                    at("min_version")
                ))
            })?;
            let ours = semver::Version::parse(env!("CARGO_PKG_VERSION"))
                .map_err(|e| Error::new(format!("bad own version: {e}")))?;
            if min > ours {
                return Err(Error::new(format!(
                    "this project needs git-hop {min} or newer ({} says so); this is git-hop {ours}",
                    path.display()
                ))
                .hint("upgrade git-hop: pull its repository and run ./install.sh"));
            }
        }
        for rule in &cfg.lint.deny {
            if !crate::lint::is_rule(rule) {
                return Err(Error::new(format!(
                    "{}: unknown lint rule '{rule}' in [lint] deny",
                    at("deny")
                ))
                .hint(format!(
                    "the rules: {}",
                    crate::lint::rule_names().join(", ")
                )));
            }
        }
        if let Some(cmd) = &cfg.tests.command
            && cmd.trim().is_empty()
        {
            return Err(
                Error::new(format!("{}: [tests] command is empty", at("command")))
                    .hint("remove the key to run no tests, or give a command"),
            );
        }
        Ok(cfg)
    }

    /// The text of a new project's `.hop/config`.
    pub fn render_new(package: &str, dbname: &str) -> String {
        format!(
            "# git-hop project settings (committed). See `man git-hop-release`.\n\
             [project]\n\
             package = \"{package}\"     # generated code goes to ./{package}\n\
             min_version = \"{}\"   # oldest git-hop that may work on this repository\n\
             \n\
             [database]\n\
             name = \"{dbname}\"        # default database name of a clone\n\
             \n\
             [tests]\n\
             command = \"pytest\"       # run from the work tree root\n",
            env!("CARGO_PKG_VERSION")
        )
    }

    /// Database name a clone uses when nothing else names one.
    pub fn db_name(&self) -> &str {
        self.database
            .name
            .as_deref()
            .unwrap_or(&self.project.package)
    }
}

/// Where `key = ` first appears (for error locations of valid TOML).
fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            return (i + 1, line.len() - t.len() + 1);
        }
    }
    (1, 1)
}

const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

/// A package name is a lower-case Python identifier (it becomes a folder
/// and the import name of the generated code).
pub fn validate_package(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !PY_KEYWORDS.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid package name '{name}': it must be a lower-case Python identifier \
             (letters a-z, digits, _; not starting with a digit; not a keyword; at most 63 characters)"
        ))
        .hint("example: git hop-release init shop"))
    }
}

/// Database names: letters, digits, `_` and `-`, at most 63 bytes.
pub fn validate_db_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "invalid database name '{name}': use letters, digits, _ and - (not starting with a digit), at most 63 characters"
        )))
    }
}

/// Per-clone settings from git config (never committed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloneSettings {
    pub database_url: Option<String>,
    pub database_name: Option<String>,
    pub production: bool,
    pub backup_dir: Option<PathBuf>,
    pub pre_push_tests: bool,
    /// `hop.lockTimeout`: the `lock_timeout` of every statement of an
    /// upgrade (default 2 s).
    pub lock_timeout: std::time::Duration,
    /// `hop.templateCache`: how many template databases this clone keeps
    /// (docs/engine.md; default 4, 0 = none: every rebuild replays).
    pub template_cache: usize,
}

/// The default of `hop.lockTimeout`.
pub const DEFAULT_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A duration as `hop.lockTimeout` takes it: `500ms`, `2s`, `1min`, or a
/// number of milliseconds (PostgreSQL's unit for `lock_timeout`).
pub fn parse_duration(v: &str) -> Option<std::time::Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let ms = match unit.trim() {
        "" | "ms" => n,
        "s" => n.checked_mul(1000)?,
        "min" => n.checked_mul(60_000)?,
        _ => return None,
    };
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

impl CloneSettings {
    pub fn read(repo: &Repo) -> Result<CloneSettings> {
        let boolean = |key: &str| -> Result<bool> {
            match repo.config_string(key) {
                None => Ok(false),
                Some(v) => parse_bool(&v).ok_or_else(|| {
                    Error::new(format!(
                        "git config {key} has the value '{v}', which is not a boolean"
                    ))
                    .hint(format!("git config {key} true   (or false)"))
                }),
            }
        };
        Ok(CloneSettings {
            database_url: repo
                .config_string("hop.database.url")
                .filter(|s| !s.is_empty()),
            database_name: repo
                .config_string("hop.database.name")
                .filter(|s| !s.is_empty()),
            production: boolean("hop.production")?,
            backup_dir: repo.config_string("hop.backupDir").map(PathBuf::from),
            pre_push_tests: boolean("hop.prePushTests")?,
            lock_timeout: match repo.config_string("hop.lockTimeout") {
                None => DEFAULT_LOCK_TIMEOUT,
                Some(v) => parse_duration(&v).ok_or_else(|| {
                    Error::new(format!(
                        "git config hop.lockTimeout has the value '{v}', which is not a duration"
                    ))
                    .hint("git config hop.lockTimeout 2s   (500ms, 2s, 1min; a bare number is milliseconds)")
                })?,
            },
            template_cache: match repo.config_string("hop.templateCache") {
                None => crate::rebuild::template::DEFAULT_LIMIT,
                Some(v) => v.trim().parse::<usize>().map_err(|_| {
                    Error::new(format!(
                        "git config hop.templateCache has the value '{v}', which is not a number"
                    ))
                    .hint("git config hop.templateCache 4   (0: no template databases)")
                })?,
            },
        })
    }
}

/// git's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" | "" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProjectConfig> {
        ProjectConfig::parse(Path::new(".hop/config"), text)
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration(" 1min"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("1500"), Some(Duration::from_millis(1500)));
        for bad in ["", "0", "2 h", "-1s", "s", "1.5s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn new_config_parses_back() {
        let cfg = parse(&ProjectConfig::render_new("shop", "shopdb")).unwrap();
        assert_eq!(cfg.project.package, "shop");
        assert_eq!(cfg.db_name(), "shopdb");
        assert_eq!(cfg.tests.command.as_deref(), Some("pytest"));
        assert!(cfg.codegen.python);
    }

    #[test]
    fn malformed_config_names_file_line_and_column() {
        let err = parse("[project]\npackage = \"x\"\n[database\n").unwrap_err();
        assert!(err.message.starts_with(".hop/config:3:"), "{}", err.message);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = parse("[project]\npackage = \"x\"\ncolour = 1\n").unwrap_err();
        assert!(err.message.contains(".hop/config:3:1"), "{}", err.message);
        assert!(err.message.contains("colour"), "{}", err.message);
        let err = parse("[project]\npackage = \"Bad-Name\"\n").unwrap_err();
        assert!(err.message.contains(".hop/config:2:1"), "{}", err.message);
        let err = parse("[project]\npackage = \"x\"\nmin_version = \"99.0.0\"\n").unwrap_err();
        assert!(
            err.message.contains("needs git-hop 99.0.0"),
            "{}",
            err.message
        );
        let err = parse("[project]\npackage = \"x\"\n[codegen]\npython = \"no\"\n").unwrap_err();
        assert!(err.message.contains(".hop/config:4:"), "{}", err.message);
    }

    #[test]
    fn package_names() {
        for ok in ["shop", "_x", "a1_b"] {
            validate_package(ok).unwrap();
        }
        for bad in [
            "",
            "1shop",
            "Shop",
            "my-shop",
            "class",
            "sh op",
            "é",
            &"a".repeat(64),
        ] {
            assert!(validate_package(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn db_names() {
        validate_db_name("legacy-db_1").unwrap();
        for bad in ["", "1x", "a b", "x;drop", "x\"y", &"a".repeat(64)] {
            assert!(validate_db_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }
}
