//! Production backups (docs/production.md): `pg_dump -Fc` files taken by
//! `upgrade` before it changes anything, their verification, and the
//! production `restore` that brings one back.
//!
//! A backup lives in the backup directory (git config `hop.backupDir`,
//! relative to the work tree when relative; default `.git/hop/backups`,
//! mode 0700) as `<database>_<version>_<UTC time>.dump`, mode 0600: the
//! version is the one the database was at, so "the backup taken before
//! leaving V" is the newest file of that database and version. A backup is
//! written under a temporary name and renamed only once verified:
//! `pg_restore --list` reads it and lists every table of the database.
//!
//! Restore never overwrites the database in place: the backup is restored
//! into a new database on the same server, checked (its `half_orm_meta`
//! version must be V), given the original's owner, privileges and settings,
//! and then swapped with the original in one transaction (two `ALTER
//! DATABASE … RENAME`). The replaced database is kept under another name
//! for the operator to drop. A failure before the swap drops the new
//! database and leaves the original untouched. The swap needs the original
//! database to have no other session: git-hop never terminates sessions,
//! so it refuses and says so.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::db::conn::{self, ConnParams};
use crate::db::database::{Database, quote_ident, quote_literal, sql_error};
use crate::db::meta;
use crate::db::pgbin;
use crate::db::psql::with_connection_env;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::version::Version;

/// A backup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub path: PathBuf,
    pub database: String,
    /// The version the database was at.
    pub version: Version,
    /// `20261121T083520.123Z`.
    pub stamp: String,
}

/// The clone's backup directory.
pub fn backup_dir(project: &Project) -> PathBuf {
    match &project.clone.backup_dir {
        Some(d) if d.is_absolute() => d.clone(),
        Some(d) => project.root.join(d),
        None => project.state_dir().join("backups"),
    }
}

/// `<database>_<version>_<stamp>.dump`.
pub fn file_name(database: &str, version: &Version, stamp: &str) -> String {
    format!("{database}_{version}_{stamp}.dump")
}

/// The backup a file name describes (`None` for another file).
pub fn parse_name(dir: &Path, name: &str) -> Option<Backup> {
    let base = name.strip_suffix(".dump")?;
    let (rest, stamp) = base.rsplit_once('_')?;
    let (database, version) = rest.rsplit_once('_')?;
    if database.is_empty() || !stamp.ends_with('Z') || !stamp.contains('T') {
        return None;
    }
    Some(Backup {
        path: dir.join(name),
        database: database.to_string(),
        version: version.parse().ok()?,
        stamp: stamp.to_string(),
    })
}

/// The backups of `database` in `dir`, oldest first.
pub fn list(dir: &Path, database: &str) -> Result<Vec<Backup>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("cannot read the backup directory", dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(b) = parse_name(dir, &name)
            && b.database == database
        {
            out.push(b);
        }
    }
    out.sort_by(|a, b| a.stamp.cmp(&b.stamp));
    Ok(out)
}

/// The newest backup of `database` taken at `version`.
pub fn find(dir: &Path, database: &str, version: &Version) -> Result<Option<Backup>> {
    Ok(list(dir, database)?
        .into_iter()
        .rev()
        .find(|b| b.version == *version))
}

/// The current UTC time as `20261121T083520.123Z`.
pub fn stamp_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    stamp(now.as_secs() as i64, now.subsec_millis())
}

fn stamp(secs: i64, millis: u32) -> String {
    let (y, m, d, h, mi, sec) = crate::utc::civil(secs);
    format!("{y:04}{m:02}{d:02}T{h:02}{mi:02}{sec:02}.{millis:03}Z")
}

/// The user tables of the database (`schema`, `name`), temporary and
/// system ones excluded.
pub fn tables(client: &mut impl postgres::GenericClient) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' ORDER BY 1, 2",
            &[],
        )
        .map_err(|e| sql_error("cannot list the tables", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

fn create_private_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("cannot create the backup directory", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| Error::io("cannot restrict the backup directory", dir, e))?;
    }
    Ok(())
}

/// Writes a verified backup of the database of `params` (at `version`)
/// into `dir`; `tables` are the tables it must list. pg_dump waits at most
/// `lock_wait` for the share lock of a table (an application holding an
/// exclusive one): the upgrade never waits without bound.
pub fn take(
    params: &ConnParams,
    dir: &Path,
    version: &Version,
    tables: &[(String, String)],
    lock_wait: std::time::Duration,
) -> Result<Backup> {
    let database = params.dbname.clone().unwrap_or_default();
    create_private_dir(dir)?;
    let stamp = stamp_now();
    let name = file_name(&database, version, &stamp);
    let path = dir.join(&name);
    let partial = dir.join(format!(".{name}.partial"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| {
            Error::io("cannot create the backup", &partial, e)
                .hint("check the backup directory (git config hop.backupDir) and its free space")
        })?;
    let result =
        dump_into(params, file, &partial, lock_wait).and_then(|()| verify(&partial, tables));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    std::fs::rename(&partial, &path).map_err(|e| Error::io("cannot rename", &partial, e))?;
    Ok(Backup {
        path,
        database,
        version: version.clone(),
        stamp,
    })
}

fn dump_into(
    params: &ConnParams,
    file: std::fs::File,
    shown: &Path,
    lock_wait: std::time::Duration,
) -> Result<()> {
    let pg_dump = pgbin::client_tool("pg_dump")?;
    let mut env = params.child_env();
    env.push(("PGAPPNAME".into(), "git-hop backup".into()));
    let wait = format!("--lock-wait-timeout={}", lock_wait.as_millis().max(1));
    let args = ["-Fc", "--no-password", wait.as_str()];
    let out = with_connection_env(duct::cmd(&pg_dump, args), env)
        .env("LC_MESSAGES", "C")
        .stdin_null()
        .stdout_file(file)
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| Error::new(format!("could not run {}: {e}", pg_dump.display())))?;
    if !out.status.success() {
        let lines = crate::db::psql::error_lines(&String::from_utf8_lossy(&out.stderr));
        let hint = if lines.contains("statement timeout") {
            format!(
                "nothing was changed; another session holds an exclusive lock on a table and pg_dump waited {} s for it: run the upgrade again when it is released",
                lock_wait.as_secs()
            )
        } else {
            "nothing was changed; check that pg_dump reaches the server and is not older than it"
                .into()
        };
        return Err(Error::new(format!(
            "the backup failed (pg_dump into {}): {lines}",
            shown.display()
        ))
        .hint(hint));
    }
    Ok(())
}

/// `pg_restore --list` reads the backup and lists every table of `tables`.
pub fn verify(path: &Path, tables: &[(String, String)]) -> Result<()> {
    // Reading a file needs no connection.
    let path_s = path.display().to_string();
    let out = crate::db::psql::Client::pg_restore(&ConnParams::default())?
        .run(&["--list", &path_s], None, None)
        .map_err(|e| {
            Error::new(format!(
                "the backup {path_s} cannot be read back: {}",
                e.message
            ))
            .hint("the backup is not usable; nothing was changed")
        })?;
    let toc = out.stdout;
    let missing: Vec<String> = tables
        .iter()
        .filter(|(s, t)| !toc.lines().any(|l| l.contains(&format!(" TABLE {s} {t} "))))
        .map(|(s, t)| format!("{s}.{t}"))
        .collect();
    if !missing.is_empty() {
        return Err(Error::new(format!(
            "the backup {} does not list table(s) {}",
            path.display(),
            missing.join(", ")
        ))
        .hint("the backup is not usable; nothing was changed"));
    }
    Ok(())
}

/// The half_orm_meta tables every backup of a git-hop database holds.
pub fn meta_tables() -> Vec<(String, String)> {
    vec![
        (meta::SCHEMA.into(), "hop_release".into()),
        (meta::SCHEMA.into(), "hop_patch".into()),
    ]
}

/// Other client sessions on database `name` (pid, application), ours
/// excluded; autovacuum workers do not count (PostgreSQL stops them itself
/// for the rename).
pub fn other_sessions(client: &mut postgres::Client, name: &str) -> Result<Vec<(i32, String)>> {
    let rows = client
        .query(
            "SELECT pid, coalesce(application_name, '') FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
            &[&name],
        )
        .map_err(|e| sql_error("cannot read pg_stat_activity", e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// What a production restore did.
pub struct Restored {
    /// The name the replaced database now has.
    pub kept_as: String,
}

/// Restores `backup` as database `db` (see the module documentation).
/// `out` gets progress lines.
/// `lock` (the production lock, on the database itself) is released just
/// before the swap, which needs the database to have no session.
pub fn restore(
    db: &Database,
    backup: &Backup,
    lock: crate::upgrade::lock::Lock,
    out: &mut dyn Write,
) -> Result<Restored> {
    let name = db.name().to_string();
    let stamp = stamp_now()
        .replace(['T', '.', 'Z'], "")
        .chars()
        .take(14)
        .collect::<String>();
    let fresh = format!("{name}_hop_restore");
    let kept_as = format!("{name}_before_restore_{stamp}");
    for n in [&fresh, &kept_as] {
        if n.len() > 63 {
            return Err(Error::new(format!(
                "database name {n} would be longer than 63 characters"
            ))
            .hint("restore it by hand with pg_restore"));
        }
    }
    let mut admin = db.connect_maintenance()?;
    let exists = |c: &mut postgres::Client, n: &str| -> Result<bool> {
        Ok(
            c.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&n])
                .map_err(|e| sql_error("cannot list databases", e))?
                .is_some(),
        )
    };
    if exists(&mut admin, &fresh)? {
        return Err(Error::new(format!(
            "database {fresh} exists (left by an interrupted restore?)"
        ))
        .hint(format!(
            "check it is not needed, drop it (DROP DATABASE {}), then run the restore again",
            quote_ident(&fresh)
        )));
    }
    let row = admin
        .query_one(
            "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database WHERE datname = $1",
            &[&name],
        )
        .map_err(|e| sql_error(&format!("cannot read database {name}"), e))?;
    let (owner, encoding, collate, ctype): (String, String, String, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    admin
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            quote_ident(&fresh),
            quote_literal(&encoding),
            quote_literal(&collate),
            quote_literal(&ctype)
        ))
        .map_err(|e| {
            sql_error(&format!("cannot create database {fresh}"), e)
                .hint("a production restore needs the CREATEDB privilege; nothing was changed")
        })?;
    let drop_fresh = |admin: &mut postgres::Client| {
        let _ = admin.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(&fresh)
        ));
    };
    let _ = writeln!(
        out,
        "restoring {} into database {fresh}",
        backup.path.display()
    );
    let fresh_params = db.params.with_dbname(&fresh);
    let mut lock = Some(lock);
    let result = (|| -> Result<()> {
        pg_restore_into(&fresh_params, &backup.path)?;
        let mut c = conn::connect(&fresh_params)?;
        let v = meta::database_version(&mut c)?;
        if v.as_ref() != Some(&backup.version) {
            return Err(Error::new(format!(
                "the restored database is at version {}, not {}",
                v.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                backup.version
            ))
            .hint("the backup file does not hold what its name says; nothing was changed"));
        }
        drop(c);
        copy_database_properties(&mut admin, &name, &fresh, &owner)?;
        drop(lock.take());
        let others = other_sessions(&mut admin, &name)?;
        if !others.is_empty() {
            let list: Vec<String> = others
                .iter()
                .map(|(pid, app)| format!("pid {pid} {app}"))
                .collect();
            return Err(Error::new(format!(
                "database {name} has {} other session(s) ({}): git-hop never terminates sessions",
                others.len(),
                list.join(", ")
            ))
            .hint(
                "stop the applications using it, then run the restore again; nothing was changed",
            ));
        }
        admin
            .batch_execute(&format!(
                "BEGIN; ALTER DATABASE {} RENAME TO {}; ALTER DATABASE {} RENAME TO {}; COMMIT;",
                quote_ident(&name),
                quote_ident(&kept_as),
                quote_ident(&fresh),
                quote_ident(&name)
            ))
            .map_err(|e| {
                let _ = admin.batch_execute("ROLLBACK");
                sql_error("cannot swap the restored database in", e)
                    .hint("another session may have connected meanwhile; nothing was changed: run the restore again")
            })
    })();
    if let Err(e) = result {
        drop_fresh(&mut admin);
        return Err(e);
    }
    Ok(Restored { kept_as })
}

fn pg_restore_into(params: &ConnParams, file: &Path) -> Result<()> {
    let db = params.dbname.clone().unwrap_or_default();
    let file_s = file.display().to_string();
    crate::db::psql::Client::pg_restore(params)?
        .run(
            &["--exit-on-error", "--single-transaction", "--no-password", "-d", &db, &file_s],
            None,
            None,
        )
        .map(|_| ())
        .map_err(|e| {
            Error::new(format!("pg_restore of {file_s} failed: {}", e.message)).hint(
                "nothing was changed; the user running the restore may lack privileges the backup's objects need (owners)",
            )
        })
}

/// Gives `fresh` the owner, database privileges and settings of `name`.
fn copy_database_properties(
    admin: &mut postgres::Client,
    name: &str,
    fresh: &str,
    owner: &str,
) -> Result<()> {
    let mut sql = format!(
        "ALTER DATABASE {} OWNER TO {};\n",
        quote_ident(fresh),
        quote_ident(owner)
    );
    let acl = admin
        .query(
            "SELECT a.privilege_type, CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, a.is_grantable \
             FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = $1",
            &[&name],
        )
        .map_err(|e| sql_error("cannot read the database's privileges", e))?;
    if !acl.is_empty() {
        // An explicit ACL replaces the defaults: start from none.
        sql.push_str(&format!(
            "REVOKE ALL ON DATABASE {} FROM PUBLIC;\n",
            quote_ident(fresh)
        ));
        for r in &acl {
            let (privilege, grantee, grantable): (String, String, bool) =
                (r.get(0), r.get(1), r.get(2));
            sql.push_str(&format!(
                "GRANT {privilege} ON DATABASE {} TO {grantee}{};\n",
                quote_ident(fresh),
                if grantable { " WITH GRANT OPTION" } else { "" }
            ));
        }
    }
    let settings = admin
        .query(
            "SELECT s.setrole, unnest(s.setconfig) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = $1",
            &[&name],
        )
        .map_err(|e| sql_error("cannot read the database's settings", e))?;
    for r in &settings {
        let role: u32 = r.get(0);
        let setting: String = r.get(1);
        let Some((key, value)) = setting.split_once('=') else {
            continue;
        };
        let target = if role == 0 {
            format!("DATABASE {}", quote_ident(fresh))
        } else {
            let rname: String = admin
                .query_one("SELECT pg_get_userbyid($1)", &[&role])
                .map_err(|e| sql_error("cannot read a role", e))?
                .get(0);
            format!(
                "ROLE {} IN DATABASE {}",
                quote_ident(&rname),
                quote_ident(fresh)
            )
        };
        sql.push_str(&format!(
            "ALTER {target} SET {} = {};\n",
            quote_ident(key),
            quote_literal(value)
        ));
    }
    admin.batch_execute(&sql).map_err(|e| {
        sql_error("cannot give the restored database the original's owner, privileges and settings", e)
            .hint("a production restore needs the privileges to set them (run it as the database owner or a superuser); nothing was changed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_stamps_sort() {
        let v: Version = "0.1.0-hotfix2".parse().unwrap();
        let s = stamp(1_795_250_120, 7);
        assert_eq!(s, "20261121T083520.007Z");
        assert_eq!(stamp(0, 0), "19700101T000000.000Z");
        assert_eq!(stamp(951_782_400, 0), "20000229T000000.000Z");
        let name = file_name("my_shop-db", &v, &s);
        assert_eq!(name, "my_shop-db_0.1.0-hotfix2_20261121T083520.007Z.dump");
        let b = parse_name(Path::new("/b"), &name).unwrap();
        assert_eq!(b.database, "my_shop-db");
        assert_eq!(b.version, v);
        assert_eq!(b.stamp, s);
        assert_eq!(b.path, Path::new("/b").join(&name));
        assert!(parse_name(Path::new("/b"), "x.dump").is_none());
        assert!(parse_name(Path::new("/b"), &format!(".{name}.partial")).is_none());
        assert!(stamp(100, 0) < stamp(101, 0));
    }

    #[test]
    fn find_takes_the_newest_of_that_database_and_version() {
        let dir = tempfile::tempdir().unwrap();
        let v1: Version = "0.1.0".parse().unwrap();
        let v2: Version = "0.2.0".parse().unwrap();
        for (db, v, t) in [
            ("shop", &v1, 10),
            ("shop", &v1, 30),
            ("shop", &v2, 40),
            ("shop_x", &v1, 50),
        ] {
            std::fs::write(dir.path().join(file_name(db, v, &stamp(t, 0))), b"x").unwrap();
        }
        let b = find(dir.path(), "shop", &v1).unwrap().unwrap();
        assert_eq!(b.stamp, stamp(30, 0));
        assert_eq!(list(dir.path(), "shop").unwrap().len(), 3);
        assert!(
            find(dir.path(), "shop", &"0.3.0".parse().unwrap())
                .unwrap()
                .is_none()
        );
        assert!(list(&dir.path().join("none"), "shop").unwrap().is_empty());
    }
}
