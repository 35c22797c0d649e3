//! Finding PostgreSQL's programs: the server binaries (`initdb`, `pg_ctl`,
//! `postgres`) that run the embedded cluster, and the client tools (`psql`,
//! `pg_dump`, `pg_restore`).
//!
//! Debian and Ubuntu keep the server binaries off `PATH`, in
//! `/usr/lib/postgresql/<major>/bin`, so `PATH` alone is not enough.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Debian/Ubuntu install one directory per PostgreSQL major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The directory holding the server binaries `initdb`, `pg_ctl` and `postgres`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBin {
    pub server_dir: PathBuf,
}

impl PgBin {
    /// Finds the server binaries. Order: `$HOP_PG_BINDIR` when set
    /// (authoritative: if `initdb` is not there, that is the error);
    /// `pg_config --bindir` (if that directory has `initdb`); the highest
    /// `/usr/lib/postgresql/<N>/bin`; `initdb` on `PATH` (symlinks resolved).
    pub fn find() -> Result<PgBin> {
        Search::system().find()
    }

    /// The path of one server program, e.g. `tool("pg_ctl")`.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.server_dir.join(name)
    }
}

/// Finds a client tool (`psql`, `pg_dump`, `pg_restore`): `$HOP_PG_BINDIR`,
/// then the highest `/usr/lib/postgresql/<N>/bin` that has it, then `PATH`,
/// then the server directory of [`PgBin::find`].
pub fn client_tool(name: &str) -> Result<PathBuf> {
    Search::system().client_tool(name)
}

/// The places looked at, injectable so that tests need not touch the
/// process environment.
struct Search {
    /// `$HOP_PG_BINDIR` (an empty value counts as unset).
    bindir_env: Option<OsString>,
    /// The `pg_config` program to ask, if there is one.
    pg_config: Option<PathBuf>,
    /// `/usr/lib/postgresql` in real life.
    debian_root: PathBuf,
    /// `$PATH`.
    path_env: Option<OsString>,
}

impl Search {
    fn system() -> Search {
        let path_env = std::env::var_os("PATH");
        let pg_config = path_env
            .as_ref()
            .and_then(|p| which::which_in("pg_config", Some(p), "/").ok());
        Search {
            bindir_env: std::env::var_os("HOP_PG_BINDIR").filter(|v| !v.is_empty()),
            pg_config,
            debian_root: PathBuf::from(DEBIAN_ROOT),
            path_env,
        }
    }

    fn find(&self) -> Result<PgBin> {
        if let Some(dir) = &self.bindir_env {
            let dir = PathBuf::from(dir);
            if is_executable(&dir.join("initdb")) {
                return Ok(PgBin { server_dir: dir });
            }
            return Err(not_found(&format!("HOP_PG_BINDIR={}", dir.display())));
        }
        let mut looked = Vec::new();
        if let Some(pg_config) = &self.pg_config {
            looked.push(format!("`{} --bindir`", pg_config.display()));
            if let Some(dir) = pg_config_bindir(pg_config)
                && is_executable(&dir.join("initdb"))
            {
                return Ok(PgBin { server_dir: dir });
            }
        }
        looked.push(format!("{}/<version>/bin", self.debian_root.display()));
        if let Some(dir) = highest_versioned_dir(&self.debian_root, "initdb") {
            return Ok(PgBin { server_dir: dir });
        }
        looked.push("PATH".to_string());
        if let Some(dir) = self.on_path("initdb").and_then(|exe| {
            let real = std::fs::canonicalize(&exe).unwrap_or(exe);
            real.parent().map(Path::to_path_buf)
        }) {
            return Ok(PgBin { server_dir: dir });
        }
        Err(not_found(&looked.join(", ")))
    }

    fn client_tool(&self, name: &str) -> Result<PathBuf> {
        if let Some(dir) = &self.bindir_env {
            let exe = Path::new(dir).join(name);
            if is_executable(&exe) {
                return Ok(exe);
            }
        }
        // Debian/Ubuntu: the real binary of the newest version. The `psql`
        // on PATH there is a Perl wrapper that costs ~25 ms a process and
        // would pick the same newest version for a remote server anyway;
        // the newest pg_dump is also the one that can dump every server.
        if let Some(dir) = highest_versioned_dir(&self.debian_root, name) {
            return Ok(dir.join(name));
        }
        if let Some(exe) = self.on_path(name) {
            return Ok(exe);
        }
        if let Ok(bin) = self.find() {
            let exe = bin.tool(name);
            if is_executable(&exe) {
                return Ok(exe);
            }
        }
        let mut looked = Vec::new();
        if let Some(dir) = &self.bindir_env {
            looked.push(format!("HOP_PG_BINDIR={}", Path::new(dir).display()));
        }
        looked.push("PATH".to_string());
        looked.push(format!("{}/<version>/bin", self.debian_root.display()));
        Err(Error::new(format!(
            "PostgreSQL client tool `{name}` not found (looked in {})",
            looked.join(", ")
        ))
        .hint("install the PostgreSQL client (apt-get install postgresql-client), or set HOP_PG_BINDIR"))
    }

    fn on_path(&self, name: &str) -> Option<PathBuf> {
        let path = self.path_env.as_ref()?;
        which::which_in(name, Some(path), "/").ok()
    }
}

fn not_found(looked: &str) -> Error {
    Error::new(format!(
        "PostgreSQL server binaries not found (initdb is missing; looked in {looked})"
    ))
    .hint("run ./install.sh, or apt-get install postgresql, or set HOP_PG_BINDIR")
}

/// `pg_config --bindir`, or `None` when it fails.
fn pg_config_bindir(pg_config: &Path) -> Option<PathBuf> {
    let out = duct::cmd(pg_config, ["--bindir"])
        .stdin_null()
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let dir = text.trim();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// `<root>/<highest version>/bin` among those holding `program`.
fn highest_versioned_dir(root: &Path, program: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = parse_version(&e.file_name())?;
            let bin = e.path().join("bin");
            is_executable(&bin.join(program)).then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// "15" → [15], "9.6" → [9, 6]; anything else → None.
fn parse_version(name: &OsStr) -> Option<Vec<u32>> {
    let name = name.to_str()?;
    name.split('.').map(|p| p.parse::<u32>().ok()).collect()
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_program(path: &Path, script: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("#!/bin/sh\n{script}\n")).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn empty_search(root: &Path) -> Search {
        Search {
            bindir_env: None,
            pg_config: None,
            debian_root: root.join("usr-lib-postgresql"),
            path_env: Some(root.join("empty-path").into_os_string()),
        }
    }

    #[test]
    fn hop_pg_bindir_is_authoritative() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = empty_search(tmp.path());
        // A perfectly good Debian layout exists, but HOP_PG_BINDIR wins.
        fake_program(&s.debian_root.join("15/bin/initdb"), "true");
        s.bindir_env = Some(tmp.path().join("nothing-here").into_os_string());
        let err = s.find().unwrap_err();
        assert!(err.message.contains("initdb is missing"), "{}", err.message);
        assert!(err.message.contains("HOP_PG_BINDIR="), "{}", err.message);
        assert!(err.hint.as_deref().unwrap().contains("./install.sh"));

        fake_program(&tmp.path().join("mine/initdb"), "true");
        s.bindir_env = Some(tmp.path().join("mine").into_os_string());
        assert_eq!(s.find().unwrap().server_dir, tmp.path().join("mine"));
    }

    #[test]
    fn pg_config_bindir_is_used_when_it_has_initdb() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = empty_search(tmp.path());
        fake_program(&s.debian_root.join("16/bin/initdb"), "true");
        let cfg_dir = tmp.path().join("cfg-bin");
        fake_program(&cfg_dir.join("initdb"), "true");
        let pg_config = tmp.path().join("pg_config");
        fake_program(&pg_config, &format!("echo '{}'", cfg_dir.display()));
        s.pg_config = Some(pg_config.clone());
        assert_eq!(s.find().unwrap().server_dir, cfg_dir);

        // pg_config pointing at a dir without initdb: fall through to Debian.
        fake_program(&pg_config, "echo /nonexistent/bin");
        assert_eq!(s.find().unwrap().server_dir, s.debian_root.join("16/bin"));
    }

    #[test]
    fn highest_debian_version_wins_numerically() {
        let tmp = tempfile::tempdir().unwrap();
        let s = empty_search(tmp.path());
        for v in ["9.6", "10", "15"] {
            fake_program(&s.debian_root.join(v).join("bin/initdb"), "true");
        }
        // 17 exists but has no initdb (client-only install).
        fake_program(&s.debian_root.join("17/bin/psql"), "true");
        fs::create_dir_all(s.debian_root.join("not-a-version/bin")).unwrap();
        assert_eq!(s.find().unwrap().server_dir, s.debian_root.join("15/bin"));
        // ...but the client tool comes from 17.
        assert_eq!(
            s.client_tool("psql").unwrap(),
            s.debian_root.join("17/bin/psql")
        );
    }

    #[test]
    fn initdb_on_path_is_resolved_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = empty_search(tmp.path());
        let real = tmp.path().join("opt/pg/bin");
        fake_program(&real.join("initdb"), "true");
        let path_dir = tmp.path().join("path-bin");
        fs::create_dir_all(&path_dir).unwrap();
        std::os::unix::fs::symlink(real.join("initdb"), path_dir.join("initdb")).unwrap();
        s.path_env = Some(path_dir.into_os_string());
        assert_eq!(
            s.find().unwrap().server_dir,
            fs::canonicalize(&real).unwrap()
        );
    }

    #[test]
    fn nothing_found_lists_where_it_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let s = empty_search(tmp.path());
        let err = s.find().unwrap_err();
        assert!(
            err.message
                .starts_with("PostgreSQL server binaries not found (initdb is missing; looked in ")
        );
        assert!(err.message.contains("usr-lib-postgresql/<version>/bin"));
        assert!(err.message.contains("PATH"));
        let err = s.client_tool("pg_dump").unwrap_err();
        assert!(err.message.contains("`pg_dump`"), "{}", err.message);
        assert!(err.hint.unwrap().contains("postgresql-client"));
    }

    #[test]
    fn client_tool_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = empty_search(tmp.path());
        // Only in the server dir found via Debian layout.
        fake_program(&s.debian_root.join("15/bin/initdb"), "true");
        fake_program(&s.debian_root.join("15/bin/pg_dump"), "true");
        assert_eq!(
            s.client_tool("pg_dump").unwrap(),
            s.debian_root.join("15/bin/pg_dump")
        );
        // The Debian versioned dir beats PATH (there, PATH has a wrapper).
        let path_dir = tmp.path().join("path-bin");
        fake_program(&path_dir.join("pg_dump"), "true");
        fake_program(&path_dir.join("pg_restore"), "true");
        s.path_env = Some(path_dir.clone().into_os_string());
        assert_eq!(
            s.client_tool("pg_dump").unwrap(),
            s.debian_root.join("15/bin/pg_dump")
        );
        // PATH when the versioned dirs lack the tool.
        assert_eq!(
            s.client_tool("pg_restore").unwrap(),
            path_dir.join("pg_restore")
        );
        // HOP_PG_BINDIR beats PATH; falls through when the tool is not there.
        let mine = tmp.path().join("mine");
        fake_program(&mine.join("pg_dump"), "true");
        s.bindir_env = Some(mine.clone().into_os_string());
        assert_eq!(s.client_tool("pg_dump").unwrap(), mine.join("pg_dump"));
        assert!(s.client_tool("psql").is_err());
    }

    #[test]
    fn finds_this_machines_postgresql() {
        // The project's CI and dev machines have PostgreSQL (./install.sh).
        let bin = PgBin::find().unwrap();
        for p in ["initdb", "pg_ctl", "postgres"] {
            assert!(is_executable(&bin.tool(p)), "{}", bin.tool(p).display());
        }
        assert!(is_executable(&client_tool("psql").unwrap()));
        assert!(is_executable(&client_tool("pg_dump").unwrap()));
    }
}
