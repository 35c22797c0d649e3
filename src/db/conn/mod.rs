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

pub use connect::connect;
pub(crate) use conninfo::CONNINFO_HINT;
use conninfo::*;
use passfile::*;
pub use passfile::{default_socket_dir, passfile_too_open, pgpass_lookup};

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
    /// One of `disable`, `allow`, `prefer`, `require` (checked on parsing).
    pub sslmode: Option<String>,
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
    pub fn fill_defaults(&mut self, env: &dyn Fn(&str) -> Option<String>) {
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
    }

    /// The `postgres` crate's configuration. A host starting with `/` is a
    /// Unix-socket directory; a missing host or port gets libpq's default.
    /// `allow` maps to `prefer` (without TLS support both mean plain text).
    pub fn to_config(&self) -> postgres::Config {
        use postgres::config::SslMode;
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
        match self.sslmode.as_deref() {
            Some("disable") => {
                c.ssl_mode(SslMode::Disable);
            }
            Some("require") => {
                c.ssl_mode(SslMode::Require);
            }
            Some(_) | None => {
                c.ssl_mode(SslMode::Prefer);
            }
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
    /// `PGPASSWORD`, `PGSSLMODE`, `PGCONNECT_TIMEOUT`, `PGAPPNAME`, each only
    /// when set.
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
        push("PGSSLMODE", self.sslmode.clone());
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
        push("sslmode", self.sslmode.clone());
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
fn quote_conninfo(v: &str) -> String {
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
mod tests {
    use super::*;
    use crate::db::database::{ResolveInput, Source, resolve};
    use std::collections::HashMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    /// An environment with no home files: HOME points at an empty dir.
    fn no_env() -> impl Fn(&str) -> Option<String> + use<> {
        env_of(&[
            ("HOME", "/nonexistent-hop-test-home"),
            ("PGSYSCONFDIR", "/nonexistent-hop"),
        ])
    }

    fn parse(s: &str) -> Result<ConnParams> {
        ConnParams::parse_with_env(s, &no_env())
    }

    fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn uri_full_form() {
        let p = parse("postgres://alice:s3cret@db.example.com:6543/shop?sslmode=require").unwrap();
        assert_eq!(
            p,
            ConnParams {
                host: Some("db.example.com".into()),
                port: Some(6543),
                user: Some("alice".into()),
                password: Some("s3cret".into()),
                dbname: Some("shop".into()),
                sslmode: Some("require".into()),
                ..Default::default()
            }
        );
        let p = parse("postgresql://db").unwrap();
        assert_eq!(
            p,
            ConnParams {
                host: Some("db".into()),
                ..Default::default()
            }
        );
    }

    #[test]
    fn uri_percent_encoding_and_at_in_password() {
        let p = parse("postgresql://bob:p%40ss%3Aw%2Fd@localhost/my%20db").unwrap();
        assert_eq!(p.password.as_deref(), Some("p@ss:w/d"));
        assert_eq!(p.dbname.as_deref(), Some("my db"));
        // An unencoded '@' in the password: the last '@' ends the user info.
        let p = parse("postgresql://bob:p@ss@localhost/db").unwrap();
        assert_eq!(p.password.as_deref(), Some("p@ss"));
        assert_eq!(p.host.as_deref(), Some("localhost"));
        let e = parse("postgresql://bob:bad%zzsecret@localhost/db").unwrap_err();
        assert!(e.message.contains("password"), "{}", e.message);
        assert!(!e.message.contains("secret"), "{}", e.message);
    }

    #[test]
    fn uri_socket_host() {
        let p = parse("postgresql:///shop?host=/var/run/pg&port=5433").unwrap();
        assert_eq!(p.host.as_deref(), Some("/var/run/pg"));
        assert_eq!(p.port, Some(5433));
        assert_eq!(p.dbname.as_deref(), Some("shop"));
        let p = parse("postgresql://%2Ftmp%2Fsock/shop").unwrap();
        assert_eq!(p.host.as_deref(), Some("/tmp/sock"));
        let c = p.to_config();
        assert!(
            matches!(&c.get_hosts()[0], postgres::config::Host::Unix(d) if d == Path::new("/tmp/sock"))
        );
    }

    #[test]
    fn uri_ipv6() {
        let p = parse("postgres://u@[::1]:5433/db").unwrap();
        assert_eq!(p.host.as_deref(), Some("::1"));
        assert_eq!(p.port, Some(5433));
        assert_eq!(p.server(), "[::1]:5433");
        let p = parse("postgres://[fe80::1]/db").unwrap();
        assert_eq!(p.host.as_deref(), Some("fe80::1"));
        assert_eq!(p.port, None);
        assert!(parse("postgres://[::1/db").is_err());
        let c = parse("postgres://[::1]:5433/db").unwrap().to_config();
        assert!(matches!(&c.get_hosts()[0], postgres::config::Host::Tcp(h) if h == "::1"));
    }

    #[test]
    fn uri_errors() {
        let e = parse("postgres://h/db?foo=1").unwrap_err();
        assert!(
            e.message.contains("unknown connection parameter \"foo\""),
            "{}",
            e.message
        );
        let e = parse("postgres://h/db?sslrootcert=/x").unwrap_err();
        assert!(
            e.message
                .contains("\"sslrootcert\" in the connection string is not supported")
        );
        let e = parse("postgres://h1,h2/db").unwrap_err();
        assert!(e.message.contains("several hosts"));
        let e = parse("postgres://h:notaport/db").unwrap_err();
        assert!(
            e.message.contains("invalid port \"notaport\""),
            "{}",
            e.message
        );
        let e = parse("mysql://u:pw@h/db").unwrap_err();
        assert!(e.message.contains("unsupported URL scheme"));
        assert!(!e.message.contains("pw"));
        assert_eq!(
            parse("postgres://h/db?ssl=true")
                .unwrap()
                .sslmode
                .as_deref(),
            Some("require")
        );
    }

    #[test]
    fn conninfo_with_quotes_and_escapes() {
        let p = parse(
            "host=localhost  port = 5433 dbname='my shop' password='it\\'s a \\\\secret' user=a\\ b",
        )
        .unwrap();
        assert_eq!(p.host.as_deref(), Some("localhost"));
        assert_eq!(p.port, Some(5433));
        assert_eq!(p.dbname.as_deref(), Some("my shop"));
        assert_eq!(p.password.as_deref(), Some("it's a \\secret"));
        assert_eq!(p.user.as_deref(), Some("a b"));
        // Empty string and empty values mean "not given".
        assert_eq!(parse("").unwrap(), ConnParams::default());
        assert_eq!(parse("host='' dbname=x").unwrap().host, None);
        let p = parse(
            "connect_timeout=10 application_name=hop sslmode=disable hostaddr=10.0.0.1 host=h",
        )
        .unwrap();
        assert_eq!(p.connect_timeout, Some(10));
        assert_eq!(p.application_name.as_deref(), Some("hop"));
        assert_eq!(p.host.as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn conninfo_errors_name_the_key_never_the_password() {
        let e = parse("host=h bogus=1 password=hunter2").unwrap_err();
        assert!(
            e.message.contains("unknown connection parameter \"bogus\""),
            "{}",
            e.message
        );
        assert!(e.hint.is_some());
        let e = parse("password='hunter2").unwrap_err();
        assert!(e.message.contains("unterminated"), "{}", e.message);
        assert!(!e.render().contains("hunter2"));
        let e = parse("hunter2").unwrap_err();
        assert!(!e.render().contains("hunter2"), "{}", e.render());
        let e = parse("connect_timeout=soon").unwrap_err();
        assert!(e.message.contains("connect_timeout"));
    }

    #[test]
    fn sslmode_verify_full_refused_clearly() {
        for s in [
            "postgres://h/db?sslmode=verify-full",
            "host=h sslmode=verify-ca",
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.message.contains("is not supported"), "{}", e.message);
            assert!(
                e.message.contains("disable, allow, prefer and require"),
                "{}",
                e.message
            );
        }
        let e = ConnParams::from_env(&env_of(&[("PGHOST", "h"), ("PGSSLMODE", "verify-full")]))
            .unwrap_err();
        assert!(e.message.contains("in PGSSLMODE"), "{}", e.message);
        assert!(
            parse("sslmode=bogus")
                .unwrap_err()
                .message
                .contains("invalid sslmode")
        );
        for m in ["disable", "allow", "prefer", "require"] {
            assert_eq!(
                parse(&format!("sslmode={m}")).unwrap().sslmode.as_deref(),
                Some(m)
            );
        }
    }

    #[test]
    fn from_env_none_without_connection_vars() {
        assert_eq!(ConnParams::from_env(&no_env()).unwrap(), None);
        // PGSSLMODE alone does not select a server.
        assert_eq!(
            ConnParams::from_env(&env_of(&[("PGSSLMODE", "disable")])).unwrap(),
            None
        );
        assert_eq!(
            ConnParams::from_env(&env_of(&[("PGHOST", "")])).unwrap(),
            None
        );
    }

    #[test]
    fn from_env_reads_libpq_vars() {
        let env = env_of(&[
            ("PGHOST", "db"),
            ("PGPORT", "6000"),
            ("PGUSER", "u"),
            ("PGPASSWORD", "pw"),
            ("PGDATABASE", "d"),
            ("PGSSLMODE", "prefer"),
            ("PGCONNECT_TIMEOUT", "7"),
            ("PGAPPNAME", "app"),
        ]);
        let p = ConnParams::from_env(&env).unwrap().unwrap();
        assert_eq!(
            p,
            ConnParams {
                host: Some("db".into()),
                port: Some(6000),
                user: Some("u".into()),
                password: Some("pw".into()),
                dbname: Some("d".into()),
                sslmode: Some("prefer".into()),
                connect_timeout: Some(7),
                application_name: Some("app".into()),
            }
        );
        let p = ConnParams::from_env(&env_of(&[("PGHOSTADDR", "127.0.0.1")]))
            .unwrap()
            .unwrap();
        assert_eq!(p.host.as_deref(), Some("127.0.0.1"));
        let e = ConnParams::from_env(&env_of(&[("PGPORT", "x")])).unwrap_err();
        assert!(
            e.message.contains("invalid port \"x\" in PGPORT"),
            "{}",
            e.message
        );
    }

    #[test]
    fn service_file_from_env_and_conninfo() {
        let dir = tempfile::tempdir().unwrap();
        let svc = write_file(
            dir.path(),
            "services.conf",
            "# comment\n[other]\nhost=wrong\n\n[shop]\nhost=svc-host\nport = 5555\ndbname=svcdb\nuser=svcuser\n[later]\nhost=wrong2\n",
            0o644,
        );
        let svc_s = svc.to_str().unwrap();
        // Service values come first; PG* variables only fill the rest (libpq).
        let env = env_of(&[
            ("PGSERVICEFILE", svc_s),
            ("PGSERVICE", "shop"),
            ("PGHOST", "env-host"),
            ("PGPASSWORD", "envpw"),
        ]);
        let p = ConnParams::from_env(&env).unwrap().unwrap();
        assert_eq!(p.host.as_deref(), Some("svc-host"));
        assert_eq!(p.port, Some(5555));
        assert_eq!(p.dbname.as_deref(), Some("svcdb"));
        assert_eq!(p.user.as_deref(), Some("svcuser"));
        assert_eq!(p.password.as_deref(), Some("envpw"));
        // service= in a conninfo: explicit keys win over the service.
        let env = env_of(&[("PGSERVICEFILE", svc_s)]);
        let p = ConnParams::parse_with_env("service=shop dbname=mine", &env).unwrap();
        assert_eq!(p.host.as_deref(), Some("svc-host"));
        assert_eq!(p.dbname.as_deref(), Some("mine"));
        let p = ConnParams::parse_with_env("postgres:///x?service=shop", &env).unwrap();
        assert_eq!(
            (p.host.as_deref(), p.dbname.as_deref()),
            (Some("svc-host"), Some("x"))
        );
        // Unknown service: error naming the service and the files searched.
        let e = ConnParams::parse_with_env("service=nope", &env).unwrap_err();
        assert!(
            e.message.contains("service \"nope\" not found"),
            "{}",
            e.message
        );
        assert!(e.message.contains(svc_s));
    }

    #[test]
    fn service_file_search_order_and_errors() {
        let home = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        write_file(home.path(), ".pg_service.conf", "[a]\nhost=home-a\n", 0o600);
        write_file(
            sys.path(),
            "pg_service.conf",
            "[a]\nhost=sys-a\n[b]\nhost=sys-b\n",
            0o644,
        );
        let env = env_of(&[
            ("HOME", home.path().to_str().unwrap()),
            ("PGSYSCONFDIR", sys.path().to_str().unwrap()),
        ]);
        let host = |s: &str| ConnParams::parse_with_env(s, &env).unwrap().host;
        assert_eq!(host("service=a").as_deref(), Some("home-a"));
        assert_eq!(host("service=b").as_deref(), Some("sys-b"));
        write_file(
            home.path(),
            ".pg_service.conf",
            "[a]\nhost=x\nsslkey=/k\n",
            0o600,
        );
        let e = ConnParams::parse_with_env("service=a", &env).unwrap_err();
        assert!(e.message.contains(".pg_service.conf:3"), "{}", e.message);
        assert!(e.message.contains("sslkey"));
        write_file(home.path(), ".pg_service.conf", "[a]\nservice=b\n", 0o600);
        let e = ConnParams::parse_with_env("service=a", &env).unwrap_err();
        assert!(e.message.contains("nested service"), "{}", e.message);
        write_file(home.path(), ".pg_service.conf", "[a]\nhost\n", 0o600);
        let e = ConnParams::parse_with_env("service=a", &env).unwrap_err();
        assert!(e.message.contains(":2: syntax error"), "{}", e.message);
    }

    #[test]
    fn pgpass_matching_wildcards_and_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let pass = write_file(
            dir.path(),
            "pgpass",
            "# comment\n\
             db.example.com:5432:shop:alice:first\n\
             *:5432:*:alice:second\n\
             localhost:*:*:bob:sock\\:et\\\\pw\n\
             we\\:ird:5432:*:carol:has:colon\r\n\
             *:*:*:empty:\n",
            0o600,
        );
        let env = env_of(&[("PGPASSFILE", pass.to_str().unwrap())]);
        let look = |h: &str, port: u16, d: &str, u: &str| pgpass_lookup(&env, h, port, d, u);
        assert_eq!(
            look("db.example.com", 5432, "shop", "alice").as_deref(),
            Some("first")
        );
        assert_eq!(
            look("db.example.com", 5432, "other", "alice").as_deref(),
            Some("second")
        );
        assert_eq!(look("elsewhere", 5433, "shop", "alice"), None);
        assert_eq!(
            look("/var/run/postgresql", 6000, "x", "bob").as_deref(),
            Some("sock:et\\pw")
        );
        assert_eq!(
            look("localhost", 6000, "x", "bob").as_deref(),
            Some("sock:et\\pw")
        );
        assert_eq!(look("otherhost", 6000, "x", "bob"), None);
        assert_eq!(
            look("we:ird", 5432, "x", "carol").as_deref(),
            Some("has:colon")
        );
        assert_eq!(look("h", 1, "x", "empty"), None);
        assert_eq!(passfile_too_open(&env), None);
    }

    #[test]
    fn pgpass_ignored_when_group_or_others_can_read() {
        let dir = tempfile::tempdir().unwrap();
        let pass = write_file(dir.path(), ".pgpass", "*:*:*:*:pw\n", 0o644);
        let env = env_of(&[("HOME", dir.path().to_str().unwrap())]);
        assert_eq!(pgpass_lookup(&env, "h", 5432, "d", "u"), None);
        assert_eq!(passfile_too_open(&env), Some(pass.clone()));
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            pgpass_lookup(&env, "h", 5432, "d", "u").as_deref(),
            Some("pw")
        );
        // A missing file is no error either.
        let env = env_of(&[("PGPASSFILE", "/nonexistent/pgpass")]);
        assert_eq!(pgpass_lookup(&env, "h", 5432, "d", "u"), None);
    }

    #[test]
    fn fill_defaults_and_passfile() {
        let dir = tempfile::tempdir().unwrap();
        let pass = write_file(dir.path(), "pp", "localhost:5432:shop:*:frompass\n", 0o600);
        let env = env_of(&[("PGPASSFILE", pass.to_str().unwrap())]);
        let mut p = ConnParams {
            dbname: Some("shop".into()),
            ..Default::default()
        };
        p.fill_defaults(&env);
        let dir_default = default_socket_dir();
        assert_eq!(p.host.as_deref(), Some(dir_default.as_str()));
        assert!(p.host.as_deref().is_some_and(|h| h.starts_with('/')));
        assert_eq!(p.port, Some(5432));
        assert!(p.user.is_some());
        assert_eq!(p.password.as_deref(), Some("frompass"));
        // An explicit password is kept; dbname defaults to the user.
        let mut p = ConnParams {
            password: Some("given".into()),
            ..Default::default()
        };
        p.fill_defaults(&env);
        assert_eq!(p.password.as_deref(), Some("given"));
        assert_eq!(p.dbname, p.user);
    }

    #[test]
    fn os_user_is_found() {
        let (name, _) = os_user().unwrap();
        assert!(!name.is_empty());
    }

    #[test]
    fn child_env_describe_and_debug_hide_the_password() {
        let p = parse("postgres://u:topsecret@%2Fvar%2Frun%2Fpg/my%20shop?sslmode=prefer&connect_timeout=3&application_name=hop")
            .unwrap();
        assert_eq!(
            p.describe(),
            "host=/var/run/pg user=u dbname='my shop' sslmode=prefer"
        );
        assert!(!format!("{p:?}").contains("topsecret"));
        let env: HashMap<_, _> = p.child_env().into_iter().collect();
        assert_eq!(env["PGHOST"], "/var/run/pg");
        assert_eq!(env["PGUSER"], "u");
        assert_eq!(env["PGDATABASE"], "my shop");
        assert_eq!(env["PGPASSWORD"], "topsecret");
        assert_eq!(env["PGSSLMODE"], "prefer");
        assert_eq!(env["PGCONNECT_TIMEOUT"], "3");
        assert_eq!(env["PGAPPNAME"], "hop");
        assert!(!env.contains_key("PGPORT"));
        let no_pw = ConnParams {
            host: Some("h".into()),
            ..Default::default()
        };
        assert!(no_pw.child_env().iter().all(|(k, _)| k != "PGPASSWORD"));
        for (k, _) in p.child_env() {
            assert!(
                LIBPQ_ENV_VARS.contains(&k.as_str()),
                "{k} is not cleared first"
            );
        }
    }

    #[test]
    fn to_config_maps_everything() {
        let p = parse("host=h port=6000 user=u password=pw dbname=d sslmode=disable connect_timeout=1 application_name=a").unwrap();
        let c = p.to_config();
        assert!(matches!(&c.get_hosts()[0], postgres::config::Host::Tcp(h) if h == "h"));
        assert_eq!(c.get_ports(), &[6000]);
        assert_eq!(c.get_user(), Some("u"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        assert_eq!(c.get_dbname(), Some("d"));
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Disable);
        assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(2)));
        assert_eq!(c.get_application_name(), Some("a"));
        let c = ConnParams::default().to_config();
        assert_eq!(c.get_ports(), &[5432]);
        assert!(matches!(&c.get_hosts()[0], postgres::config::Host::Unix(_)));
        assert_eq!(
            parse("connect_timeout=0")
                .unwrap()
                .to_config()
                .get_connect_timeout(),
            None
        );
    }

    fn input<'a>(env: &'a dyn Fn(&str) -> Option<String>) -> ResolveInput<'a> {
        ResolveInput {
            db_url_flag: None,
            database_flag: None,
            git_url: None,
            git_name: None,
            project_db_name: None,
            default_name: "default",
            env,
        }
    }

    #[test]
    fn resolve_order_of_sources() {
        let env = env_of(&[
            ("HOME", "/nonexistent-hop-test-home"),
            ("HOP_DATABASE_URL", "postgres://envhost/envdb"),
            ("PGHOST", "pghost"),
            ("PGDATABASE", "pgdb"),
        ]);
        let mut i = input(&env);
        i.db_url_flag = Some("postgres://flaghost/flagdb");
        i.git_url = Some("postgres://githost/gitdb");
        let r = resolve(&i).unwrap();
        assert_eq!(r.source, Source::Flag);
        assert_eq!(r.dbname, "flagdb");
        let p = r.params.unwrap();
        assert_eq!(p.host.as_deref(), Some("flaghost"));
        assert_eq!(p.dbname.as_deref(), Some("flagdb"));
        assert_eq!(p.port, Some(5432));
        assert!(p.user.is_some());

        i.db_url_flag = None;
        let r = resolve(&i).unwrap();
        assert_eq!((r.source, r.dbname.as_str()), (Source::HopEnv, "envdb"));

        let env2 = env_of(&[
            ("HOP_DATABASE_URL", ""),
            ("PGHOST", "pghost"),
            ("PGDATABASE", "pgdb"),
        ]);
        let mut i = input(&env2);
        i.git_url = Some("host=githost");
        i.git_name = Some("gitname");
        let r = resolve(&i).unwrap();
        assert_eq!(
            (r.source, r.dbname.as_str()),
            (Source::GitConfig, "gitname")
        );
        assert_eq!(r.params.unwrap().host.as_deref(), Some("githost"));

        i.git_url = None;
        let r = resolve(&i).unwrap();
        assert_eq!(r.source, Source::Libpq);
        assert_eq!(r.dbname, "gitname"); // hop.database.name beats PGDATABASE
        i.git_name = None;
        i.project_db_name = Some("projdb");
        let r = resolve(&i).unwrap();
        assert_eq!(r.dbname, "pgdb"); // PGDATABASE beats .hop/config
        assert_eq!(r.params.unwrap().host.as_deref(), Some("pghost"));

        let env3 = no_env();
        let mut i = input(&env3);
        let r = resolve(&i).unwrap();
        assert_eq!(
            (r.source, r.params, r.dbname.as_str()),
            (Source::Embedded, None, "default")
        );
        i.project_db_name = Some("projdb");
        assert_eq!(resolve(&i).unwrap().dbname, "projdb");
        i.git_name = Some("gitname");
        assert_eq!(resolve(&i).unwrap().dbname, "gitname");
        i.database_flag = Some("flagname");
        assert_eq!(resolve(&i).unwrap().dbname, "flagname");
    }

    #[test]
    fn resolve_dbname_rules() {
        let env = env_of(&[
            ("HOME", "/nonexistent-hop-test-home"),
            ("PGDATABASE", "pgdb"),
        ]);
        let mut i = input(&env);
        // A URL without dbname: PGDATABASE does not apply to a URL source.
        i.db_url_flag = Some("postgres://h");
        i.project_db_name = Some("projdb");
        assert_eq!(resolve(&i).unwrap().dbname, "projdb");
        i.database_flag = Some("explicit");
        i.db_url_flag = Some("postgres://h/urldb");
        let r = resolve(&i).unwrap();
        assert_eq!(r.dbname, "explicit");
        assert_eq!(r.params.unwrap().dbname.as_deref(), Some("explicit"));
    }

    #[test]
    fn resolve_uses_the_passfile_and_names_the_source_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let pass = write_file(dir.path(), "pp", "h:5432:db:u:filepw\n", 0o600);
        let env = env_of(&[("PGPASSFILE", pass.to_str().unwrap())]);
        let mut i = input(&env);
        i.db_url_flag = Some("postgres://u@h/db");
        let r = resolve(&i).unwrap();
        assert_eq!(r.params.unwrap().password.as_deref(), Some("filepw"));
        // PGPASSWORD before the password file, for a URL without one
        // (--db-url, HOP_DATABASE_URL or hop.database.url alike).
        let env2 = env_of(&[
            ("PGPASSFILE", pass.to_str().unwrap()),
            ("PGPASSWORD", "envpw"),
        ]);
        let mut i2 = input(&env2);
        i2.git_url = Some("postgres://u@h/db");
        let r = resolve(&i2).unwrap();
        assert_eq!(r.params.unwrap().password.as_deref(), Some("envpw"));
        i2.git_url = Some("postgres://u:urlpw@h/db");
        let r = resolve(&i2).unwrap();
        assert_eq!(r.params.unwrap().password.as_deref(), Some("urlpw"));

        i.db_url_flag = Some("postgres://u:hunter2@h/db?nope=1");
        let e = resolve(&i).unwrap_err();
        assert_eq!(e.kind, crate::error::Kind::Usage);
        assert!(
            e.message
                .starts_with("--db-url: unknown connection parameter \"nope\""),
            "{}",
            e.message
        );
        assert!(!e.render().contains("hunter2"));
        i.db_url_flag = Some(" ");
        assert!(resolve(&i).is_err());

        let env = env_of(&[("HOP_DATABASE_URL", "host=h port=0")]);
        let e = resolve(&input(&env)).unwrap_err();
        assert!(
            e.message.starts_with("HOP_DATABASE_URL: invalid port"),
            "{}",
            e.message
        );
        assert_eq!(Source::Libpq.to_string(), "PG* environment");
        assert_eq!(Source::GitConfig.to_string(), "git config hop.database.url");
    }

    #[test]
    fn connect_to_an_empty_socket_dir_fails_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().to_str().unwrap().to_string();
        let p = ConnParams {
            host: Some(host.clone()),
            port: Some(5432),
            user: Some("u".into()),
            password: Some("hunter2".into()),
            dbname: Some("d".into()),
            ..Default::default()
        };
        let e = connect(&p).err().unwrap();
        assert!(
            e.message
                .starts_with(&format!("cannot connect to PostgreSQL at {host}:5432: ")),
            "{}",
            e.message
        );
        assert!(e.hint.is_some());
        assert!(!e.render().contains("hunter2"));
    }

    #[test]
    fn connect_refused_on_tcp() {
        // A port that was just free: bind, note it, release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = ConnParams {
            host: Some("127.0.0.1".into()),
            port: Some(port),
            user: Some("u".into()),
            ..Default::default()
        };
        let e = connect(&p).err().unwrap();
        assert_eq!(
            e.message,
            format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused")
        );
        let p = ConnParams {
            sslmode: Some("require".into()),
            ..p
        };
        let e = connect(&p).err().unwrap();
        assert!(
            e.message.contains("sslmode=require needs TLS"),
            "{}",
            e.message
        );
    }
}
