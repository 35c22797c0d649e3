//! Connecting with git-hop's own client, and one-line errors that name
//! the server and never the password (docs/connection.md).

use super::ConnParams;
use crate::error::{Error, Result};

/// Connects with our own client (no TLS support: `sslmode=require` is
/// refused up front). Errors are one-liners naming the server, never the
/// password.
pub fn connect(params: &ConnParams) -> Result<postgres::Client> {
    let server = params.server();
    if params.sslmode.as_deref() == Some("require") {
        return Err(Error::new(format!(
            "cannot connect to PostgreSQL at {server}: sslmode=require needs TLS, which \
             git-hop's own PostgreSQL client does not support yet"
        ))
        .hint("use sslmode=prefer or disable, or reach the server through a trusted network"));
    }
    params
        .to_config()
        .connect(postgres::NoTls)
        .map_err(|e| connect_error(params, &e))
}

/// Turns a connection failure into a clear error.
pub(super) fn connect_error(params: &ConnParams, e: &postgres::Error) -> Error {
    use postgres::error::SqlState;
    let server = params.server();
    let user = params.user.clone().unwrap_or_default();
    let dbname = params.dbname.clone().unwrap_or_default();
    let password_hint = "set the password with PGPASSWORD, a ~/.pgpass entry (mode 0600: \
                         libpq ignores a passfile others can read) or the --db-url URL";
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        if *code == SqlState::INVALID_PASSWORD {
            return Error::new(format!(
                "cannot connect to PostgreSQL at {server}: password authentication failed for user \"{user}\""
            ))
            .hint(password_hint);
        }
        if *code == SqlState::INVALID_CATALOG_NAME {
            return Error::new(format!(
                "cannot connect to PostgreSQL at {server}: database \"{dbname}\" does not exist"
            ))
            .hint(
                "create it, or choose another name with --database or git config hop.database.name",
            );
        }
        if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            return Error::new(format!(
                "cannot connect to PostgreSQL at {server}: {}",
                db.message()
            ))
            .hint("check the user name, and the server's pg_hba.conf for this client");
        }
        if *code == SqlState::CANNOT_CONNECT_NOW {
            return Error::new(format!(
                "cannot connect to PostgreSQL at {server}: {}",
                db.message()
            ))
            .hint("the server is starting or shutting down; retry in a moment");
        }
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: {}",
            db.message()
        ))
        .hint(
            db.hint()
                .unwrap_or("check the server's log for details")
                .to_string(),
        );
    }
    let top = e.to_string();
    if let Some(io) = find_io_error(e) {
        let reason = match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
            std::io::ErrorKind::NotFound if server.starts_with('/') => format!(
                "no server socket there (.s.PGSQL.{} not found)",
                params.port.unwrap_or(5432)
            ),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            std::io::ErrorKind::TimedOut => "timed out".to_string(),
            _ => io.to_string(),
        };
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: {reason}"
        ))
        .hint("check that the server is running and that the connection settings are right");
    }
    let detail = match std::error::Error::source(e) {
        Some(s) => format!("{top}: {s}"),
        None => top.clone(),
    };
    if detail.contains("password missing") {
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: the server asks a password for user \"{user}\" and none was given"
        ))
        .hint(password_hint);
    }
    if top.starts_with("timeout") {
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: timed out"
        ))
        .hint("check that the server is running and reachable, or raise connect_timeout");
    }
    Error::new(format!(
        "cannot connect to PostgreSQL at {server}: {detail}"
    ))
    .hint("check that the server is running and that the connection settings are right")
}

pub(super) fn find_io_error(e: &postgres::Error) -> Option<&std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}
