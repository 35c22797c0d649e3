//! Connection parameters: where the database server is and how to log in.
//!
//! Owns the libpq-compatible resolution that the `postgres` crate lacks (it
//! reads no `PG*` variables, no `.pgpass`, no service file): URI and
//! `key=value` parsing, the `PG*` environment, `pg_service.conf`, the
//! passfile and libpq's defaults. The result feeds both our own
//! `postgres::Client` ([`ConnParams::to_config`], [`connect`]) and child
//! `psql`/`pg_dump` processes ([`ConnParams::child_env`] after removing
//! [`LIBPQ_ENV_VARS`]), so both see exactly the same server, and a password
//! never reaches a command line or a message. One concept a file:
//! `conninfo` (URIs, `key=value`, `PG*`, service files), `passfile` (the
//! password file, libpq's defaults), `connect` (our own client); the order
//! in which sources are tried is `db::database`'s, its only caller.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

mod connect;
mod conninfo;
mod passfile;
pub mod tls;

pub use connect::connect;
pub(crate) use conninfo::CONNINFO_HINT;
use conninfo::*;
use passfile::*;
pub use passfile::{default_socket_dir, passfile_too_open, pgpass_lookup};
pub use tls::{ChannelBinding, SslMode};

/// Resolved connection parameters (no defaults applied for what was not
/// given, except by [`ConnParams::fill_defaults`]).
///
/// `Debug` is written by hand so that the password never shows.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ConnParams {
    /// Host name, IP address, or a Unix-socket directory (starts with `/`).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub dbname: Option<String>,
    /// libpq's `sslmode` (default `prefer`).
    pub sslmode: Option<SslMode>,
    /// The CA file (or `system`) that checks the server's certificate.
    pub sslrootcert: Option<String>,
    /// The client certificate and its key (PEM files).
    pub sslcert: Option<String>,
    pub sslkey: Option<String>,
    pub channel_binding: Option<ChannelBinding>,
    /// Seconds; 0 means wait forever (as in libpq).
    pub connect_timeout: Option<u64>,
    pub application_name: Option<String>,
}

impl fmt::Debug for ConnParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("dbname", &self.dbname)
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .field("sslcert", &self.sslcert)
            .field("sslkey", &self.sslkey)
            .field("channel_binding", &self.channel_binding)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .finish()
    }
}

/// Names of the libpq variables to remove from a child's inherited
/// environment before [`ConnParams::child_env`] is applied, so that `psql` or
/// `pg_dump` sees exactly the resolved values and nothing else.
pub const LIBPQ_ENV_VARS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGREQUIRESSL",
    "PGSSLNEGOTIATION",
    "PGSSLCOMPRESSION",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCERTMODE",
    "PGSSLROOTCERT",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGREQUIREPEER",
    "PGREQUIREAUTH",
    "PGCHANNELBINDING",
    "PGGSSENCMODE",
    "PGGSSLIB",
    "PGGSSDELEGATION",
    "PGKRBSRVNAME",
    "PGCONNECT_TIMEOUT",
    "PGCLIENTENCODING",
    "PGTARGETSESSIONATTRS",
    "PGLOADBALANCEHOSTS",
    "PGDATESTYLE",
    "PGTZ",
    "PGGEQO",
];

impl ConnParams {
    /// Parses a `postgres://`/`postgresql://` URI or a libpq `key=value`
    /// string. A `service=` key is resolved through the service file found
    /// with the process environment (see [`ConnParams::parse_with_env`]).
    pub fn parse(url_or_conninfo: &str) -> Result<ConnParams> {
        ConnParams::parse_with_env(url_or_conninfo, &|k| std::env::var(k).ok())
    }

    /// [`ConnParams::parse`], reading `PGSERVICEFILE`, `HOME` and
    /// `PGSYSCONFDIR` (for a `service=` key) through `env`. No other `PG*`
    /// variable is merged in: a URL stands on its own (docs/connection.md).
    pub fn parse_with_env(
        url_or_conninfo: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnParams> {
        let s = url_or_conninfo.trim();
        let pairs = if let Some(rest) = s
            .strip_prefix("postgresql://")
            .or_else(|| s.strip_prefix("postgres://"))
        {
            parse_uri(rest)?
        } else if let Some(i) = s.find("://") {
            let scheme = &s[..i];
            // The scheme cannot hold a password, but keep it short anyway.
            let scheme: String = scheme.chars().take(20).collect();
            return Err(Error::new(format!(
                "unsupported URL scheme \"{scheme}://\" in the connection string"
            ))
            .hint(CONNINFO_HINT));
        } else {
            parse_conninfo(s)?
        };
        let mut settings = Settings::default();
        for (key, value) in pairs {
            settings.set(key, value, Origin::ConnString);
        }
        if let Some((service, _)) = settings.take("service") {
            settings.apply_service(&service, env)?;
        }
        settings.into_params()
    }

    /// The libpq environment: `PGHOST`, `PGHOSTADDR` (used as the host),
    /// `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`,
    /// `PGCONNECT_TIMEOUT`, `PGAPPNAME` and `PGSERVICE`. As in libpq, the
    /// service's values come first and the variables only fill what it left
    /// unset. `None` when none of `PGHOST`, `PGHOSTADDR`, `PGPORT`,
    /// `PGSERVICE`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` is set (empty counts
    /// as unset).
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<Option<ConnParams>> {
        let get = |k: &str| env(k).filter(|v| !v.is_empty());
        if !ENV_TRIGGERS.iter().any(|k| get(k).is_some()) {
            return Ok(None);
        }
        let mut settings = Settings::default();
        if let Some(service) = get("PGSERVICE") {
            settings
                .apply_service(&service, env)
                .map_err(|e| e.context("PGSERVICE"))?;
        }
        for (var, key) in ENV_KEYS {
            if let Some(v) = get(var) {
                settings.fill(key, v, Origin::Env(var));
            }
        }
        settings.into_params().map(Some)
    }

    /// The same server, another database.
    pub fn with_dbname(&self, name: &str) -> ConnParams {
        ConnParams {
            dbname: Some(name.to_string()),
            ..self.clone()
        }
    }

    /// Completes the parameters with libpq's defaults: host = the default
    /// socket directory (first existing of `/var/run/postgresql`, `/tmp`),
    /// port 5432, user = the OS user name, dbname = the user name; then, if
    /// no password was given, the passfile's entry (see [`pgpass_lookup`]).
    ///
    /// The TLS settings a URL or conninfo left unset come from the `PGSSL*`
    /// variables and `PGCHANNELBINDING`, as in libpq; then they are
    /// completed and checked (files that must exist, the client key's mode):
    /// an error here means nothing was tried yet.
    pub fn fill_defaults(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        for (var, key) in tls::TLS_ENV_KEYS {
            let Some(v) = env(var).filter(|v| !v.is_empty()) else {
                continue;
            };
            let origin = Origin::Env(var);
            match *key {
                "sslmode" if self.sslmode.is_none() => {
                    self.sslmode = Some(SslMode::parse(&v, &origin)?);
                }
                "channel_binding" if self.channel_binding.is_none() => {
                    self.channel_binding = Some(ChannelBinding::parse(&v, &origin)?);
                }
                "sslrootcert" if self.sslrootcert.is_none() => self.sslrootcert = Some(v),
                "sslcert" if self.sslcert.is_none() => self.sslcert = Some(v),
                "sslkey" if self.sslkey.is_none() => self.sslkey = Some(v),
                _ => {}
            }
        }
        if self.host.is_none() {
            self.host = Some(default_socket_dir());
        }
        if self.port.is_none() {
            self.port = Some(5432);
        }
        if self.user.is_none() {
            self.user = os_user().map(|(name, _)| name).or_else(|| env("USER"));
        }
        if self.dbname.is_none() {
            self.dbname = self.user.clone();
        }
        // As libpq: the conninfo's or URL's own password, else PGPASSWORD,
        // else the password file (docs/connection.md).
        if self.password.is_none() {
            self.password = env("PGPASSWORD").filter(|p| !p.is_empty());
        }
        if self.password.is_none()
            && let (Some(host), Some(port), Some(user)) = (&self.host, self.port, &self.user)
        {
            let dbname = self.dbname.as_deref().unwrap_or(user);
            self.password = pgpass_lookup(env, host, port, dbname, user);
        }
        tls::complete(self, env)
    }

    /// The `postgres` crate's configuration. A host starting with `/` is a
    /// Unix-socket directory; a missing host or port gets libpq's default.
    pub fn to_config(&self) -> postgres::Config {
        let mut c = postgres::Config::new();
        let host = self.host.clone().unwrap_or_else(default_socket_dir);
        if host.starts_with('/') {
            c.host_path(&host);
        } else {
            c.host(&host);
        }
        c.port(self.port.unwrap_or(5432));
        if let Some(u) = &self.user {
            c.user(u);
        }
        if let Some(p) = &self.password {
            c.password(p);
        }
        if let Some(d) = &self.dbname {
            c.dbname(d);
        }
        // The TLS side (sslmode, certificates) is `connect`'s.
        if let Some(cb) = self.channel_binding {
            c.channel_binding(match cb {
                ChannelBinding::Disable => postgres::config::ChannelBinding::Disable,
                ChannelBinding::Prefer => postgres::config::ChannelBinding::Prefer,
                ChannelBinding::Require => postgres::config::ChannelBinding::Require,
            });
        }
        match self.connect_timeout {
            // libpq: 0 = forever, and anything below 2 s means 2 s.
            Some(0) | None => {}
            Some(t) => {
                c.connect_timeout(Duration::from_secs(t.max(2)));
            }
        }
        if let Some(a) = &self.application_name {
            c.application_name(a);
        }
        c
    }

    /// The variables to set on a `psql`/`pg_dump` child (after removing
    /// [`LIBPQ_ENV_VARS`]): `PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`,
    /// `PGPASSWORD`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT`, `PGSSLKEY`,
    /// `PGCHANNELBINDING`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`, each only when
    /// set. After [`ConnParams::fill_defaults`], `sslrootcert=system` is the
    /// system's CA file, which every libpq version reads.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v));
            }
        };
        push("PGHOST", self.host.clone());
        push("PGPORT", self.port.map(|p| p.to_string()));
        push("PGUSER", self.user.clone());
        push("PGDATABASE", self.dbname.clone());
        push("PGPASSWORD", self.password.clone());
        push("PGSSLMODE", self.sslmode.map(|m| m.to_string()));
        push("PGSSLROOTCERT", self.sslrootcert.clone());
        push("PGSSLCERT", self.sslcert.clone());
        push("PGSSLKEY", self.sslkey.clone());
        push(
            "PGCHANNELBINDING",
            self.channel_binding.map(|c| c.as_str().to_string()),
        );
        push(
            "PGCONNECT_TIMEOUT",
            self.connect_timeout.map(|t| t.to_string()),
        );
        push("PGAPPNAME", self.application_name.clone());
        out
    }

    /// `host=/tmp/x port=5432 user=postgres dbname=shop` (the keys that are
    /// set, plus sslmode), never the password.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={}", quote_conninfo(&v)));
            }
        };
        push("host", self.host.clone());
        push("port", self.port.map(|p| p.to_string()));
        push("user", self.user.clone());
        push("dbname", self.dbname.clone());
        push("sslmode", self.sslmode.map(|m| m.to_string()));
        parts.join(" ")
    }

    /// The conninfo a clone stores in `hop.database.url`: every setting that
    /// was given (TLS files and channel binding included), never the password.
    pub fn to_conninfo(&self) -> String {
        let mut parts = vec![self.describe()];
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                parts.push(format!("{k}={}", quote_conninfo(&v)));
            }
        };
        push("sslrootcert", self.sslrootcert.clone());
        push("sslcert", self.sslcert.clone());
        push("sslkey", self.sslkey.clone());
        push(
            "channel_binding",
            self.channel_binding.map(|c| c.as_str().to_string()),
        );
        push(
            "connect_timeout",
            self.connect_timeout.map(|t| t.to_string()),
        );
        push("application_name", self.application_name.clone());
        parts.retain(|p| !p.is_empty());
        parts.join(" ")
    }

    /// `host:port` for messages (`[::1]:5432` for IPv6).
    pub fn server(&self) -> String {
        let host = self.host.clone().unwrap_or_else(default_socket_dir);
        let port = self.port.unwrap_or(5432);
        if host.contains(':') && !host.starts_with('/') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

/// Quotes a conninfo value when it needs it.
pub fn quote_conninfo(v: &str) -> String {
    if !v.is_empty()
        && !v
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\')
    {
        return v.to_string();
    }
    let mut s = String::from("'");
    for c in v.chars() {
        if c == '\'' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests;
