//! half-orm-dev's own description of a clone (docs/import.md): its
//! `.hop/config`, the connection file it reads from `HALFORM_CONF_DIR`, and
//! its version names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::settings::ProjectConfig;
use crate::version::Version;

/// What half-orm-dev's `.hop/config` and its connection file say.
#[derive(Debug, Clone)]
pub struct Legacy {
    pub hop_version: String,
    pub package: String,
    pub db_name: String,
    /// `host=… port=… user=…` of its `[database]` section (no password).
    pub conninfo: Option<String>,
    /// The same, as read: `(host|port|user, value)`.
    pub connection: Vec<(String, String)>,
    pub production: bool,
    /// Its committed config held a password.
    pub had_password: bool,
    /// half-orm-dev's connection file, when the connection came from one.
    pub conf_file: Option<PathBuf>,
}

/// Where half-orm-dev (half_orm) reads connection files when
/// `HALFORM_CONF_DIR` is not set.
pub const HALFORM_CONF_DIR: &str = "/etc/half_orm";

/// `[section]` / `key = value` lines.
fn parse_ini(text: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.trim().to_string();
        } else if let Some((k, v)) = l.split_once('=') {
            out.insert(
                (section.clone(), k.trim().to_string()),
                v.trim().to_string(),
            );
        }
    }
    out
}

impl Legacy {
    /// Reads `.hop/config` and half-orm-dev's connection file; an error
    /// when the project is not half-orm-dev's.
    pub fn read(root: &Path) -> Result<Legacy> {
        let conf_dir = std::env::var_os("HALFORM_CONF_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(HALFORM_CONF_DIR));
        Legacy::read_with(root, &conf_dir)
    }

    /// [`Legacy::read`], the connection files being in `conf_dir`.
    pub fn read_with(root: &Path, conf_dir: &Path) -> Result<Legacy> {
        let path = root.join(".hop/config");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::io("cannot read", &path, e).hint(
                "run git hop-release import in a half-orm-dev project (a clone with .hop/config)",
            )
        })?;
        if ProjectConfig::parse(&path, &text).is_ok() {
            return Err(Error::new(format!(
                "{} is git-hop's already: this project is imported",
                path.display()
            ))
            .hint("git hop-release status shows where it stands"));
        }
        let ini = parse_ini(&text);
        let get = |s: &str, k: &str| {
            ini.get(&(s.to_string(), k.to_string()))
                .filter(|v| !v.is_empty())
                .cloned()
        };
        let Some(package) = get("halfORM", "package_name") else {
            return Err(Error::new(format!(
                "{} is not a half-orm-dev config (no package_name in a [halfORM] section)",
                path.display()
            ))
            .hint("run git hop-release import in a half-orm-dev project"));
        };
        let yes = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes");
        // half-orm-dev 1.1 keeps the connection out of git, in
        // $HALFORM_CONF_DIR/<name>: the name is .hop/alt_config's (a clone
        // made with --database-name) or the package's. Older projects had
        // a [database] section in .hop/config itself.
        let conf_name = std::fs::read_to_string(root.join(".hop/alt_config"))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && !t.contains('/'))
            .unwrap_or_else(|| package.clone());
        let conf_path = conf_dir.join(&conf_name);
        let conf = match std::fs::read_to_string(&conf_path) {
            Ok(t) => Some(parse_ini(&t)),
            Err(_) if get("database", "name").is_some() => None,
            Err(e) => {
                return Err(Error::io("cannot read half-orm-dev's connection file", &conf_path, e)
                    .hint("it says which database this clone uses and whether it is production: set HALFORM_CONF_DIR to the folder half-orm-dev reads (default /etc/half_orm), then git hop-release import again"));
            }
        };
        let db = |k: &str| match &conf {
            Some(c) => c
                .get(&("database".to_string(), k.to_string()))
                .filter(|v| !v.is_empty())
                .cloned(),
            None => get("database", k),
        };
        let connection: Vec<(String, String)> = ["host", "port", "user"]
            .iter()
            .filter_map(|k| db(k).map(|v| (k.to_string(), v)))
            .collect();
        let conninfo: Vec<String> = connection
            .iter()
            .map(|(k, v)| format!("{k}={}", crate::db::conn::quote_conninfo(v)))
            .collect();
        let production = match db("production") {
            Some(v) => yes(&v),
            None => !get("halfORM", "devel").is_some_and(|v| yes(&v)),
        };
        Ok(Legacy {
            hop_version: get("halfORM", "hop_version").unwrap_or_default(),
            db_name: db("name").unwrap_or_else(|| package.clone()),
            package,
            conninfo: (!conninfo.is_empty()).then(|| conninfo.join(" ")),
            connection,
            production,
            had_password: get("database", "password").is_some(),
            conf_file: conf.is_some().then_some(conf_path),
        })
    }
}

/// A half-orm-dev version name (`0.1.0`, `0.1.0-rc1`, `0.1.0.post1`) in
/// git-hop's (`0.1.0-hotfix1`).
pub fn legacy_version(name: &str) -> Option<Version> {
    if let Some((base, n)) = name.split_once(".post") {
        let n: u32 = n.parse().ok()?;
        return format!("{base}-hotfix{n}").parse().ok();
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_versions_become_git_hops() {
        assert_eq!(
            legacy_version("0.1.0.post2").unwrap().to_string(),
            "0.1.0-hotfix2"
        );
        assert_eq!(
            legacy_version("0.1.0-rc1").unwrap().to_string(),
            "0.1.0-rc1"
        );
        assert_eq!(legacy_version("1.2.3").unwrap().to_string(), "1.2.3");
        assert!(legacy_version("1.2").is_none());
    }

    #[test]
    fn half_orm_dev_config_is_read_without_its_password() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".hop")).unwrap();
        std::fs::write(
            dir.path().join(".hop/config"),
            "[halfORM]\nhop_version = 1.1.0-a1\ndevel = True\npackage_name = blog\n\n[database]\nname = blogdb\nuser = ann\npassword = secret\nhost = /run/pg\nport = 5432\nproduction = False\n",
        )
        .unwrap();
        let nowhere = dir.path().join("no-conf");
        let l = Legacy::read_with(dir.path(), &nowhere).unwrap();
        assert_eq!((l.package.as_str(), l.db_name.as_str()), ("blog", "blogdb"));
        assert!(!l.production && l.had_password);
        let c = l.conninfo.unwrap();
        assert!(
            c.contains("host=/run/pg") && c.contains("user=ann") && !c.contains("secret"),
            "{c}"
        );
        std::fs::write(dir.path().join(".hop/config"), "[x]\na = 1\n").unwrap();
        assert!(
            Legacy::read_with(dir.path(), &nowhere)
                .unwrap_err()
                .message
                .contains("not a half-orm-dev config")
        );
    }

    #[test]
    fn half_orm_dev_1_1_connection_files_are_read_and_required() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf");
        std::fs::create_dir_all(dir.path().join(".hop")).unwrap();
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::write(
            dir.path().join(".hop/config"),
            "[halfORM]\nhop_version = 1.1.0-a1\ndevel = True\npackage_name = blog\n",
        )
        .unwrap();
        // No connection file: whether this is production is unknown.
        let e = Legacy::read_with(dir.path(), &conf).unwrap_err();
        assert!(e.message.contains("connection file"), "{}", e.message);
        // A production clone made with --database-name: .hop/alt_config.
        std::fs::write(dir.path().join(".hop/alt_config"), "blog_prod\n").unwrap();
        std::fs::write(
            conf.join("blog_prod"),
            "[database]\nname = blog_prod\nuser = ops\npassword = pw\nhost = db1\nport = 5433\nproduction = True\n",
        )
        .unwrap();
        let l = Legacy::read_with(dir.path(), &conf).unwrap();
        assert_eq!(l.db_name, "blog_prod");
        assert!(l.production && !l.had_password);
        let c = l.conninfo.unwrap();
        assert!(
            c.contains("host=db1 port=5433 user=ops") && !c.contains("pw"),
            "{c}"
        );
    }
}
