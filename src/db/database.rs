//! The database a command works on: which server (resolved in the order of
//! docs/connection.md, or the clone's embedded cluster) and which database name, with
//! the few operations on the database as a whole (exists, create, drop,
//! empty in place for a role that may not create databases).

use std::fmt;
use std::path::Path;

use crate::db::cluster::Cluster;
use crate::db::conn::{self, ConnParams};
use crate::error::{Error, Result};
use crate::settings::CloneSettings;

/// Command-line options that pick a database.
#[derive(Debug, Clone, Default)]
pub struct DbOptions {
    pub db_url: Option<String>,
    pub database: Option<String>,
}

pub struct Database {
    pub source: Source,
    /// Complete connection parameters, `dbname` included.
    pub params: ConnParams,
    /// The embedded cluster, when that is the server.
    pub cluster: Option<Cluster>,
    /// A comment [`Database::create`] puts on the database (the owner of a
    /// temporary one: see `db::temp`).
    pub note: Option<String>,
}

fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

impl Database {
    /// Resolves the server and database name; starts nothing yet.
    pub fn resolve(
        opts: &DbOptions,
        git_common_dir: &Path,
        clone: &CloneSettings,
        project_db_name: Option<&str>,
        default_name: &str,
    ) -> Result<Database> {
        let input = ResolveInput {
            db_url_flag: opts.db_url.as_deref(),
            database_flag: opts.database.as_deref(),
            git_url: clone.database_url.as_deref(),
            git_name: clone.database_name.as_deref(),
            project_db_name,
            default_name,
            env: &process_env,
        };
        let resolved = resolve(&input)?;
        crate::settings::validate_db_name(&resolved.dbname)?;
        match resolved.params {
            Some(params) => Ok(Database {
                source: resolved.source,
                params: params.with_dbname(&resolved.dbname),
                cluster: None,
                note: None,
            }),
            None => {
                let cluster = Cluster::for_clone(git_common_dir)?;
                let params = ConnParams {
                    host: Some(cluster.socket_dir().display().to_string()),
                    port: Some(cluster.port()),
                    user: Some(cluster.superuser().to_string()),
                    dbname: Some(resolved.dbname.clone()),
                    ..ConnParams::default()
                };
                Ok(Database {
                    source: Source::Embedded,
                    params,
                    cluster: Some(cluster),
                    note: None,
                })
            }
        }
    }

    pub fn name(&self) -> &str {
        self.params.dbname.as_deref().unwrap_or("")
    }

    /// "database shop on host=… (from HOP_DATABASE_URL)", never a password.
    pub fn describe(&self) -> String {
        match &self.cluster {
            Some(_) => format!("database {} on {}", self.name(), self.server()),
            None => format!(
                "database {} on {} (from {})",
                self.name(),
                self.server(),
                self.source
            ),
        }
    }

    /// The server part only.
    pub fn server(&self) -> String {
        match &self.cluster {
            Some(c) => format!("the embedded cluster at {}", c.status().data_dir.display()),
            None => {
                let mut p = self.params.clone();
                p.dbname = None;
                p.describe()
            }
        }
    }

    /// Makes sure the server is up (starts the embedded cluster on demand).
    pub fn ensure_server(&self) -> Result<()> {
        if let Some(c) = &self.cluster {
            c.ensure_started()?;
        }
        Ok(())
    }

    /// Connects to this database.
    pub fn connect(&self) -> Result<postgres::Client> {
        self.ensure_server()?;
        conn::connect(&self.params)
    }

    /// Connects to the server's maintenance database (`postgres`, then
    /// `template1`), for CREATE/DROP DATABASE and existence checks.
    pub fn connect_maintenance(&self) -> Result<postgres::Client> {
        self.ensure_server()?;
        match conn::connect(&self.params.with_dbname("postgres")) {
            Ok(c) => Ok(c),
            Err(first) => conn::connect(&self.params.with_dbname("template1")).map_err(|_| first),
        }
    }

    pub fn exists(&self) -> Result<bool> {
        self.exists_via(&mut self.connect_maintenance()?)
    }

    /// [`Database::exists`] on an open maintenance connection.
    pub fn exists_via(&self, c: &mut postgres::Client) -> Result<bool> {
        let row = c
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&self.name()],
            )
            .map_err(|e| sql_error("cannot list databases", e))?;
        Ok(row.is_some())
    }

    pub fn create(&self) -> Result<()> {
        self.create_with(None)
    }

    /// Creates the database as a copy of `template` (`CREATE DATABASE …
    /// TEMPLATE`: no session may be open on it).
    pub fn create_from(&self, template: &str) -> Result<()> {
        self.create_with(Some(template))
    }

    fn create_with(&self, template: Option<&str>) -> Result<()> {
        self.create_via(&mut self.connect_maintenance()?, template)
    }

    /// Creates the database (a copy of `template` if given) on an open
    /// maintenance connection.
    pub fn create_via(&self, c: &mut postgres::Client, template: Option<&str>) -> Result<()> {
        let from = template.map_or(String::new(), |t| format!(" TEMPLATE {}", quote_ident(t)));
        c.batch_execute(&format!(
            "CREATE DATABASE {}{from}",
            quote_ident(self.name())
        ))
        .map_err(|e| sql_error(&format!("cannot create database {}", self.name()), e))?;
        if let Some(note) = &self.note {
            c.batch_execute(&format!(
                "COMMENT ON DATABASE {} IS {}",
                quote_ident(self.name()),
                quote_literal(note)
            ))
            .map_err(|e| sql_error(&format!("cannot mark database {}", self.name()), e))?;
        }
        Ok(())
    }

    /// Drops the database, ending leftover sessions of ours.
    pub fn drop_database(&self) -> Result<()> {
        self.drop_via(&mut self.connect_maintenance()?)
    }

    /// [`Database::drop_database`] on an open maintenance connection.
    pub fn drop_via(&self, c: &mut postgres::Client) -> Result<()> {
        c.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(self.name())
        ))
        .map_err(|e| sql_error(&format!("cannot drop database {}", self.name()), e))
    }

    /// Whether the database holds anything of the user's: a schema (public
    /// aside), relation, function or type outside the system schemas.
    pub fn is_empty(&self) -> Result<bool> {
        let mut c = self.connect()?;
        Ok(owners_of_contents(&mut c)?.is_empty())
    }

    /// The role connections log in as, and whether it may create
    /// databases (CREATEDB, or a superuser: the attribute is not
    /// inherited).
    pub fn role(&self) -> Result<Role> {
        let mut c = self.connect_maintenance()?;
        let row = c
            .query_opt(
                "SELECT current_user::text, rolcreatedb OR rolsuper FROM pg_roles \
                 WHERE rolname = current_user",
                &[],
            )
            .map_err(|e| sql_error("cannot read the role's attributes", e))?;
        let Some(row) = row else {
            return Err(Error::new(
                "cannot read the role's attributes: no such role",
            ));
        };
        let name: String = row
            .try_get(0)
            .map_err(|e| Error::new(format!("cannot read the role's name: {e}")))?;
        let may: Option<bool> = row
            .try_get(1)
            .map_err(|e| Error::new(format!("cannot read the role's attributes: {e}")))?;
        Ok(Role {
            name,
            may_create_databases: may.unwrap_or(false),
        })
    }

    /// Makes the database exist and be empty, for a rebuild: dropped and
    /// created again by a role that may create databases; emptied in place
    /// ([`Database::reset_in_place`]) by one that may not (no CREATEDB),
    /// which cannot make it again once dropped.
    pub fn recreate(&self) -> Result<()> {
        let role = self.role()?;
        let exists = self.exists()?;
        if role.may_create_databases {
            if exists {
                self.drop_database()?;
            }
            return self.create();
        }
        if !exists {
            let err = Error::new(format!(
                "database {} does not exist, and role {} may not create it (no CREATEDB)",
                self.name(),
                role.name
            ));
            let grant = format!("ALTER ROLE {} CREATEDB", quote_ident(&role.name));
            return Err(if self.note.is_some() {
                // One of git-hop's own (a validation's temporary database).
                err.hint(format!(
                    "validations (merge, promote, pre-push) run in a temporary database: grant the role CREATEDB ({grant})"
                ))
            } else {
                err.hint(format!(
                    "have a superuser create it for the role (CREATE DATABASE {} OWNER {}), or grant the role CREATEDB ({grant})",
                    quote_ident(self.name()),
                    quote_ident(&role.name),
                ))
            });
        }
        self.reset_in_place(&role)
    }

    /// Empties the database without dropping it, for `role` (the connected
    /// one) that may not create databases: ends the role's other sessions
    /// on it (as `DROP DATABASE … WITH (FORCE)` would), then, in one
    /// transaction, `DROP OWNED BY CURRENT_USER CASCADE` (PostgreSQL 15's
    /// public schema belongs to pg_database_owner and stays; when it was
    /// the role's it is made again as template1 has it) and requires the
    /// database to be empty. Objects of other roles left: an error, and the
    /// transaction rolls back, so nothing was changed.
    pub fn reset_in_place(&self, role: &Role) -> Result<()> {
        let what = format!("cannot empty database {}", self.name());
        let fail = |e| sql_error(&what, e);
        let mut c = self.connect()?;
        c.batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND usename = current_user \
             AND pid <> pg_backend_pid()",
        )
        .map_err(fail)?;
        let mut tx = c.transaction().map_err(fail)?;
        // A session of another role holding a lock in it never makes the
        // rebuild wait without bound.
        tx.batch_execute("SET LOCAL lock_timeout = '30s'; DROP OWNED BY CURRENT_USER CASCADE")
            .map_err(|e| {
                let locked = e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE);
                let err = sql_error(&what, e);
                if locked {
                    err.hint("another session holds a lock in it: end it (see pg_stat_activity), then try again")
                } else {
                    err
                }
            })?;
        let row = tx
            .query_one(
                "SELECT to_regnamespace('public') IS NULL, \
                 current_setting('server_version_num')::int >= 150000",
                &[],
            )
            .map_err(fail)?;
        let (public_gone, v15): (bool, bool) = match (row.try_get(0), row.try_get(1)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Err(Error::new(format!("{what}: {e}"))),
        };
        if public_gone {
            tx.batch_execute(if v15 {
                "CREATE SCHEMA public AUTHORIZATION pg_database_owner; \
                 GRANT USAGE ON SCHEMA public TO PUBLIC; \
                 COMMENT ON SCHEMA public IS 'standard public schema'"
            } else {
                "CREATE SCHEMA public; GRANT USAGE, CREATE ON SCHEMA public TO PUBLIC; \
                 COMMENT ON SCHEMA public IS 'standard public schema'"
            })
            .map_err(fail)?;
        }
        let others = owners_of_contents(&mut tx)?;
        if !others.is_empty() {
            // Dropping `tx` rolls the transaction back.
            return Err(Error::new(format!(
                "cannot empty database {} in place: it holds objects of role(s) {}, and role {} may not create databases (no CREATEDB) to replace it; nothing was changed",
                self.name(),
                others.join(", "),
                role.name
            ))
            .hint(format!(
                "grant the role CREATEDB (ALTER ROLE {} CREATEDB), or have {} drop those objects (or make {} their owner)",
                quote_ident(&role.name),
                others.join(", "),
                role.name
            )));
        }
        tx.commit().map_err(fail)
    }
}

/// The role of [`Database::role`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub name: String,
    pub may_create_databases: bool,
}

/// The owners of what the connected database holds outside the system
/// schemas (`pg_*`, temporary ones included, and information_schema):
/// schemas (public aside), relations, functions, types. None: an empty
/// database.
fn owners_of_contents(client: &mut impl postgres::GenericClient) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT DISTINCT pg_get_userbyid(o.owner)::text FROM ( \
               SELECT n.nspowner AS owner, n.nspname AS schema FROM pg_namespace n \
                 WHERE n.nspname <> 'public' \
               UNION ALL SELECT c.relowner, n.nspname FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
               UNION ALL SELECT p.proowner, n.nspname FROM pg_proc p \
                 JOIN pg_namespace n ON n.oid = p.pronamespace \
               UNION ALL SELECT t.typowner, n.nspname FROM pg_type t \
                 JOIN pg_namespace n ON n.oid = t.typnamespace \
             ) o WHERE o.schema <> 'information_schema' AND o.schema NOT LIKE 'pg\\_%' \
             ORDER BY 1",
            &[],
        )
        .map_err(|e| sql_error("cannot inspect the database", e))?;
    rows.iter()
        .map(|r| {
            r.try_get::<_, String>(0)
                .map_err(|e| Error::new(format!("cannot inspect the database: {e}")))
        })
        .collect()
}

/// Checks a `--db-url` as a command would use it (parsed, TLS files and the
/// client key checked) before the command changes anything.
pub fn check_db_url(url: &str) -> Result<ConnParams> {
    let p = ConnParams::parse_with_env(url, &process_env).map_err(|mut e| {
        e.kind = crate::error::Kind::Usage;
        e.context("--db-url")
    })?;
    p.clone()
        .fill_defaults(&process_env)
        .map_err(|e| e.context("--db-url"))?;
    Ok(p)
}

/// Where the server settings came from (docs/connection.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Flag,
    HopEnv,
    GitConfig,
    Libpq,
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Flag => "--db-url",
            Source::HopEnv => "HOP_DATABASE_URL",
            Source::GitConfig => "git config hop.database.url",
            Source::Libpq => "PG* environment",
            Source::Embedded => "embedded cluster",
        })
    }
}

/// What [`resolve`] looks at.
pub struct ResolveInput<'a> {
    /// `--db-url`.
    pub db_url_flag: Option<&'a str>,
    /// `--database`.
    pub database_flag: Option<&'a str>,
    /// git config `hop.database.url`.
    pub git_url: Option<&'a str>,
    /// git config `hop.database.name`.
    pub git_name: Option<&'a str>,
    /// `.hop/config` `[database] name`.
    pub project_db_name: Option<&'a str>,
    /// Used when nothing else names the database.
    pub default_name: &'a str,
    /// The process environment (injected for tests).
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// The outcome of [`resolve`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub source: Source,
    /// Complete parameters (defaults and passfile applied, `dbname` set);
    /// `None` = the embedded cluster, which the caller supplies.
    pub params: Option<ConnParams>,
    pub dbname: String,
}

/// docs/connection.md: the server is the first of `--db-url`, `HOP_DATABASE_URL`, git
/// config `hop.database.url`, the libpq environment, else the embedded
/// cluster. The database name is `--database`, else the URL's dbname, else
/// `hop.database.name`, else `PGDATABASE` (libpq source only; a service's
/// dbname counts too), else `.hop/config`, else `default_name`.
pub fn resolve(input: &ResolveInput) -> Result<Resolved> {
    let env = input.env;
    let nonblank = |s: &&str| !s.trim().is_empty();
    if input.db_url_flag.is_some_and(|s| s.trim().is_empty()) {
        return Err(Error::usage("--db-url is empty").hint(conn::CONNINFO_HINT));
    }
    if input.database_flag.is_some_and(|s| s.trim().is_empty()) {
        return Err(Error::usage("--database is empty").hint("give a database name"));
    }
    let hop_env = env("HOP_DATABASE_URL");
    let (source, params) = if let Some(url) = input.db_url_flag {
        let p = ConnParams::parse_with_env(url, env).map_err(|mut e| {
            e.kind = crate::error::Kind::Usage;
            e.context("--db-url")
        })?;
        (Source::Flag, Some(p))
    } else if let Some(url) = hop_env.as_deref().filter(nonblank) {
        let p = ConnParams::parse_with_env(url, env).map_err(|e| e.context("HOP_DATABASE_URL"))?;
        (Source::HopEnv, Some(p))
    } else if let Some(url) = input.git_url.filter(nonblank) {
        let p = ConnParams::parse_with_env(url, env)
            .map_err(|e| e.context("git config hop.database.url"))?;
        (Source::GitConfig, Some(p))
    } else if let Some(p) = ConnParams::from_env(env)? {
        (Source::Libpq, Some(p))
    } else {
        (Source::Embedded, None)
    };
    let url_dbname = match source {
        Source::Flag | Source::HopEnv | Source::GitConfig => {
            params.as_ref().and_then(|p| p.dbname.clone())
        }
        Source::Libpq | Source::Embedded => None,
    };
    let libpq_dbname = match source {
        Source::Libpq => params.as_ref().and_then(|p| p.dbname.clone()),
        _ => None,
    };
    let dbname = input
        .database_flag
        .map(str::to_string)
        .or(url_dbname)
        .or_else(|| input.git_name.filter(nonblank).map(str::to_string))
        .or(libpq_dbname)
        .or_else(|| input.project_db_name.filter(nonblank).map(str::to_string))
        .unwrap_or_else(|| input.default_name.to_string());
    let params = match params {
        Some(p) => {
            let mut p = p.with_dbname(&dbname);
            p.fill_defaults(env).map_err(|e| e.context(source))?;
            Some(p)
        }
        None => None,
    };
    Ok(Resolved {
        source,
        params,
        dbname,
    })
}

/// A double-quoted SQL identifier.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A single-quoted SQL literal.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An error from a query: the server's message, not postgres' "db error".
pub fn sql_error(what: &str, e: postgres::Error) -> Error {
    match e.as_db_error() {
        Some(db) => Error::new(format!("{what}: {}", db.message())),
        None => Error::new(format!("{what}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database on the test server, as `user`.
    fn on_test_server(name: &str, user: &str) -> Database {
        let server = crate::test_pg::server();
        Database {
            source: Source::Flag,
            params: ConnParams {
                host: Some(server.socket_dir.display().to_string()),
                port: Some(server.port),
                user: Some(user.to_string()),
                dbname: Some(name.to_string()),
                ..ConnParams::default()
            },
            cluster: None,
            note: None,
        }
    }

    #[test]
    fn a_lone_schema_function_or_type_makes_a_database_not_empty() {
        let server = crate::test_pg::server();
        let name = crate::test_pg::unique_db_name("isempty");
        let db = on_test_server(&name, &server.superuser);
        for sql in [
            "CREATE SCHEMA s",
            "CREATE FUNCTION public.f() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            "CREATE TYPE public.mood AS ENUM ('ok')",
        ] {
            db.recreate().unwrap();
            assert!(db.is_empty().unwrap(), "a new database is empty");
            server.psql(&name, sql);
            assert!(!db.is_empty().unwrap(), "{sql}");
        }
        server.drop_db(&name);
    }

    #[test]
    fn an_in_place_reset_makes_the_public_schema_again_as_template1_has_it() {
        let server = crate::test_pg::server();
        let role = crate::test_pg::unique_db_name("nocreatedb");
        let name = crate::test_pg::unique_db_name("inplace");
        server.psql("postgres", &format!("CREATE ROLE {role} LOGIN NOCREATEDB"));
        server.psql("postgres", &format!("CREATE DATABASE {name} OWNER {role}"));
        let db = on_test_server(&name, &role);
        assert!(!db.role().unwrap().may_create_databases);
        // The role replaced the public schema by its own and filled it.
        db.connect()
            .unwrap()
            .batch_execute(
                "DROP SCHEMA public CASCADE; CREATE SCHEMA public; \
                 CREATE TABLE public.t (id int); CREATE SCHEMA s; CREATE VIEW s.v AS SELECT 1 AS one",
            )
            .unwrap();
        db.recreate().unwrap();
        assert!(db.is_empty().unwrap());
        let public = "SELECT pg_get_userbyid(nspowner), nspacl::text, \
                      obj_description(oid, 'pg_namespace') FROM pg_namespace WHERE nspname = 'public'";
        assert_eq!(server.psql(&name, public), server.psql("template1", public));
        server.drop_db(&name);
        server.psql("postgres", &format!("DROP ROLE {role}"));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
