//! Connecting with git-hop's own client, and one-line errors that name
//! the server and never the password (docs/connection.md).

use super::ConnParams;
use super::tls::{self, Refusal, SslMode};
use crate::error::{Error, Result};

/// Connects with our own client, speaking TLS as libpq's `sslmode` says
/// (docs/connection.md): `allow` tries plain text first and TLS when the
/// server refuses it, `prefer` TLS first and plain text when the server has
/// none or the handshake fails, `require` and stronger TLS only. Errors are
/// one-liners naming the server, never the password.
pub fn connect(params: &ConnParams) -> Result<postgres::Client> {
    use postgres::config::SslMode as Wire;
    let mut config = params.to_config();
    if !tls::wanted(params) {
        config.ssl_mode(Wire::Disable);
        return config
            .connect(postgres::NoTls)
            .map_err(|e| connect_error(params, &e, None));
    }
    let (make, refusal) = tls::connector(params)?;
    let mode = params.sslmode.unwrap_or(SslMode::Prefer);
    let with_tls = |config: &mut postgres::Config| {
        config.ssl_mode(Wire::Require);
        config
            .connect(make.clone())
            .map_err(|e| connect_error(params, &e, refusal.lock().ok().and_then(|r| r.clone())))
    };
    match mode {
        SslMode::Allow => {
            config.ssl_mode(Wire::Disable);
            match config.connect(postgres::NoTls) {
                Ok(c) => Ok(c),
                // The server answered and refused plain text: try TLS.
                Err(e) if e.as_db_error().is_some() => with_tls(&mut config),
                Err(e) => Err(connect_error(params, &e, None)),
            }
        }
        SslMode::Prefer => {
            config.ssl_mode(Wire::Prefer);
            match config.connect(make.clone()) {
                Ok(c) => Ok(c),
                Err(e) if is_tls_failure(&e) => {
                    // libpq's fallback; when plain text is refused too, the
                    // refused certificate is the cause worth telling.
                    config.ssl_mode(Wire::Disable);
                    config.connect(postgres::NoTls).map_err(|plain| {
                        let refused = refusal.lock().ok().and_then(|r| r.clone());
                        match refused {
                            Some(_) => connect_error(params, &e, refused),
                            None => connect_error(params, &plain, None),
                        }
                    })
                }
                Err(e) => Err(connect_error(
                    params,
                    &e,
                    refusal.lock().ok().and_then(|r| r.clone()),
                )),
            }
        }
        SslMode::Disable | SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            with_tls(&mut config)
        }
    }
}

/// Whether the TLS handshake itself failed (as opposed to the server
/// refusing the login after it).
fn is_tls_failure(e: &postgres::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if err.downcast_ref::<openssl::ssl::Error>().is_some() {
            return true;
        }
        cur = err.source();
    }
    e.to_string().contains("TLS handshake")
}

/// Turns a connection failure into a clear error.
pub(super) fn connect_error(
    params: &ConnParams,
    e: &postgres::Error,
    refusal: Option<Refusal>,
) -> Error {
    use postgres::error::SqlState;
    let server = params.server();
    if let Some(r) = refusal {
        return certificate_refused(params, &r);
    }
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
            let hint = if db.message().ends_with("no encryption") {
                "the server accepts this login over TLS only: use sslmode=require, or \
                 verify-full with sslrootcert naming its CA"
            } else if db.message().contains("certificate") {
                "give the client certificate and key the server expects in sslcert and sslkey \
                 (its common name must be the user name)"
            } else {
                "check the user name, and the server's pg_hba.conf for this client"
            };
            return Error::new(format!(
                "cannot connect to PostgreSQL at {server}: {}",
                db.message()
            ))
            .hint(hint);
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
    if detail.contains("server does not support TLS") {
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: the server does not offer TLS, and sslmode={} requires it",
            params.sslmode.map_or("require", |m| m.as_str())
        ))
        .hint("turn ssl on in the server's configuration, or use sslmode=prefer");
    }
    if is_tls_failure(e) {
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: the TLS handshake failed: {}",
            one_line(&detail)
        ))
        .hint("check the server's TLS configuration and the files named by sslcert and sslkey");
    }
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

/// The server's certificate was refused: which name or which chain.
fn certificate_refused(params: &ConnParams, r: &Refusal) -> Error {
    let server = params.server();
    let host = params.host.clone().unwrap_or_default();
    let names = if r.names.is_empty() {
        "no host name".to_string()
    } else {
        r.names.join(", ")
    };
    if r.name_mismatch {
        return Error::new(format!(
            "cannot connect to PostgreSQL at {server}: the server's certificate is for {names}, \
             not for \"{host}\" (sslmode=verify-full)"
        ))
        .hint(format!(
            "connect with a host name the certificate names ({names}), or use sslmode=verify-ca \
             to check only who signed it"
        ));
    }
    Error::new(format!(
        "cannot connect to PostgreSQL at {server}: the server's certificate ({names}) was not \
         verified: {}",
        r.reason
    ))
    .hint(format!(
        "name the CA that signed the server's certificate in sslrootcert or PGSSLROOTCERT \
         (the roots used: {}), or sslrootcert=system when a public CA signed it",
        params.sslrootcert.as_deref().unwrap_or("none")
    ))
}

/// An OpenSSL error chain on one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
