//! The database a command works on: which server (resolved in the order of
//! docs/connection.md, or the clone's embedded cluster) and which database name, with
//! the few operations on the database as a whole (exists, create, drop).

use std::path::Path;

use crate::db::cluster::Cluster;
use crate::db::conn::{self, ConnParams, ResolveInput, Source};
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
        let resolved = conn::resolve(&input)?;
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
        let mut c = self.connect_maintenance()?;
        let row = c
            .query_opt(
                "SELECT 1 FROM pg_database WHERE datname = $1",
                &[&self.name()],
            )
            .map_err(|e| sql_error("cannot list databases", e))?;
        Ok(row.is_some())
    }

    pub fn create(&self) -> Result<()> {
        let mut c = self.connect_maintenance()?;
        c.batch_execute(&format!("CREATE DATABASE {}", quote_ident(self.name())))
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
        let mut c = self.connect_maintenance()?;
        c.batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(self.name())
        ))
        .map_err(|e| sql_error(&format!("cannot drop database {}", self.name()), e))
    }

    /// Whether the database holds any relation, function or type of the
    /// user's (anything outside the system schemas).
    pub fn is_empty(&self) -> Result<bool> {
        let mut c = self.connect()?;
        let row = c
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
                 AND n.nspname NOT LIKE 'pg_temp%'",
                &[],
            )
            .map_err(|e| sql_error("cannot inspect the database", e))?;
        let n: i64 = row.get(0);
        Ok(n == 0)
    }
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

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
