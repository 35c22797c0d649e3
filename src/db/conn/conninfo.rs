//! Parsing what names a server (docs/connection.md): libpq `key=value`
//! strings, `postgres://` URIs, the `PG*` variables they may be merged
//! with, and service files (`pg_service.conf`).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ConnParams;
use super::passfile::os_user;
use super::tls::{ChannelBinding, SslMode};
use crate::error::{Error, Result};

/// The keys we understand, in conninfo strings, URI queries and service files.
pub(super) const KEYS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "channel_binding",
    "connect_timeout",
    "application_name",
    "service",
];

/// Keys libpq knows but git-hop does not handle: refused by name rather than
/// silently ignored.
pub(super) const LIBPQ_ONLY_KEYS: &[&str] = &[
    "passfile",
    "require_auth",
    "client_encoding",
    "options",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "replication",
    "gssencmode",
    "sslnegotiation",
    "sslcompression",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "target_session_attrs",
    "load_balance_hosts",
];

/// libpq environment variable → conninfo key (PGSERVICE is handled apart).
pub(super) const ENV_KEYS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGHOSTADDR", "hostaddr"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGDATABASE", "dbname"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGAPPNAME", "application_name"),
];

/// The variables whose presence means "the user configured libpq".
pub(super) const ENV_TRIGGERS: &[&str] = &[
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGSERVICE",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
];

pub(crate) const CONNINFO_HINT: &str = "use a URL such as postgres://user@host:5432/dbname, or key=value pairs \
     such as \"host=localhost dbname=shop\"";

/// Where a collected value came from, for error messages.
#[derive(Clone, Debug)]
pub(super) enum Origin {
    ConnString,
    Env(&'static str),
    ServiceFile(PathBuf, usize),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::ConnString => f.write_str("in the connection string"),
            Origin::Env(var) => write!(f, "in {var}"),
            Origin::ServiceFile(path, line) => write!(f, "at {}:{line}", path.display()),
        }
    }
}

/// Collected `key → value` settings, before validation (libpq's option array).
#[derive(Default)]
pub(super) struct Settings {
    vals: HashMap<&'static str, (String, Origin)>,
}

impl Settings {
    /// Sets a key, replacing an earlier value (later wins inside one source).
    pub(super) fn set(&mut self, key: &'static str, value: String, origin: Origin) {
        if value.is_empty() {
            // libpq treats an empty value as "not given".
            self.vals.remove(key);
        } else {
            self.vals.insert(key, (value, origin));
        }
    }

    /// Sets a key only if no earlier source gave it.
    pub(super) fn fill(&mut self, key: &'static str, value: String, origin: Origin) {
        if !value.is_empty() && !self.vals.contains_key(key) {
            self.vals.insert(key, (value, origin));
        }
    }

    pub(super) fn take(&mut self, key: &str) -> Option<(String, Origin)> {
        self.vals.remove(key)
    }

    /// Applies the `[service]` section named by `service` (values given
    /// explicitly keep precedence, as in libpq).
    pub(super) fn apply_service(
        &mut self,
        service: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<()> {
        for (key, value, origin) in load_service(service, env)? {
            self.fill(key, value, origin);
        }
        Ok(())
    }

    /// Validates and converts into [`ConnParams`].
    pub(super) fn into_params(mut self) -> Result<ConnParams> {
        let host = self.take("host").map(|v| v.0);
        let hostaddr = self.take("hostaddr").map(|v| v.0);
        let port = match self.take("port") {
            Some((v, origin)) => Some(parse_port(&v, &origin)?),
            None => None,
        };
        let sslmode = match self.take("sslmode") {
            Some((v, origin)) => Some(SslMode::parse(&v, &origin)?),
            None => None,
        };
        let channel_binding = match self.take("channel_binding") {
            Some((v, origin)) => Some(ChannelBinding::parse(&v, &origin)?),
            None => None,
        };
        let connect_timeout = match self.take("connect_timeout") {
            Some((v, origin)) => Some(v.trim().parse::<u64>().map_err(|_| {
                Error::new(format!("invalid connect_timeout \"{v}\" {origin}"))
                    .hint("give a whole number of seconds (0 = wait forever)")
            })?),
            None => None,
        };
        Ok(ConnParams {
            // libpq connects to hostaddr when both are given.
            host: hostaddr.or(host),
            port,
            user: self.take("user").map(|v| v.0),
            password: self.take("password").map(|v| v.0),
            dbname: self.take("dbname").map(|v| v.0),
            sslmode,
            sslrootcert: self.take("sslrootcert").map(|v| v.0),
            sslcert: self.take("sslcert").map(|v| v.0),
            sslkey: self.take("sslkey").map(|v| v.0),
            channel_binding,
            connect_timeout,
            application_name: self.take("application_name").map(|v| v.0),
        })
    }
}

pub(super) fn parse_port(v: &str, origin: &Origin) -> Result<u16> {
    match v.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ if v.contains(',') => Err(Error::new(format!(
            "several ports \"{v}\" {origin}: git-hop connects to one server only"
        ))
        .hint("give a single port")),
        _ => Err(Error::new(format!("invalid port \"{v}\" {origin}"))
            .hint("give a port number between 1 and 65535")),
    }
}

/// Maps a user-written key to our canonical `&'static str`, or refuses it.
pub(super) fn known_key(key: &str, origin: &Origin) -> Result<&'static str> {
    if let Some(k) = KEYS.iter().find(|k| **k == key) {
        return Ok(k);
    }
    if LIBPQ_ONLY_KEYS.contains(&key) {
        return Err(Error::new(format!(
            "connection parameter \"{key}\" {origin} is not supported by git-hop"
        ))
        .hint(format!(
            "remove \"{key}\"; git-hop understands {}",
            KEYS.join(", ")
        )));
    }
    Err(
        Error::new(format!("unknown connection parameter \"{key}\" {origin}"))
            .hint(format!("known parameters: {}", KEYS.join(", "))),
    )
}

/// Parses libpq `key=value` pairs (values may be single-quoted, `\` escapes
/// the next character).
pub(super) fn parse_conninfo(s: &str) -> Result<Vec<(&'static str, String)>> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next_if_eq(&'=').is_none() {
            // A lone word: never echo it, it may be a password.
            return Err(Error::new(
                "invalid connection string: expected key=value pairs or a postgres:// URL",
            )
            .hint(CONNINFO_HINT));
        }
        let key = known_key(&key, &Origin::ConnString)?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '\'' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return Err(Error::new(format!(
                    "unterminated quoted value for \"{key}\" in the connection string"
                ))
                .hint("close the value with a single quote; write \\' for a quote inside it"));
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        value.push(n);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Parses what follows `postgresql://`:
/// `[user[:password]@][host][:port][/dbname][?key=value&...]`.
pub(super) fn parse_uri(rest: &str) -> Result<Vec<(&'static str, String)>> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let (main, query) = match rest.find('?') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let (authority, path) = match main.find('/') {
        Some(i) => (&main[..i], Some(&main[i + 1..])),
        None => (main, None),
    };
    let hostport = match authority.rfind('@') {
        Some(i) => {
            let userinfo = &authority[..i];
            let (user, password) = match userinfo.find(':') {
                Some(j) => (&userinfo[..j], Some(&userinfo[j + 1..])),
                None => (userinfo, None),
            };
            out.push(("user", percent_decode(user, "the user name of the URL")?));
            if let Some(p) = password {
                out.push(("password", percent_decode(p, "the password of the URL")?));
            }
            &authority[i + 1..]
        }
        None => authority,
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            return Err(
                Error::new("unterminated IPv6 address (missing ']') in the URL")
                    .hint("write an IPv6 host as postgres://[::1]:5432/dbname"),
            );
        };
        let after = &inner[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => {
                return Err(
                    Error::new("unexpected text after the IPv6 address in the URL")
                        .hint("write an IPv6 host as postgres://[::1]:5432/dbname"),
                );
            }
        };
        (inner[..end].to_string(), port)
    } else {
        if hostport.contains(',') {
            return Err(Error::new(
                "several hosts in the URL: git-hop connects to one server only",
            )
            .hint("give a single host"));
        }
        let (h, p) = match hostport.find(':') {
            Some(i) => (&hostport[..i], Some(&hostport[i + 1..])),
            None => (hostport, None),
        };
        (percent_decode(h, "the host of the URL")?, p)
    };
    out.push(("host", host));
    if let Some(p) = port {
        out.push(("port", percent_decode(p, "the port of the URL")?));
    }
    if let Some(path) = path {
        out.push((
            "dbname",
            percent_decode(path, "the database name of the URL")?,
        ));
    }
    for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let Some((k, v)) = param.split_once('=') else {
            return Err(Error::new(format!(
                "invalid URL parameter \"{}\": expected key=value",
                percent_decode(param, "a URL parameter").unwrap_or_default()
            ))
            .hint(CONNINFO_HINT));
        };
        let k = percent_decode(k, "a URL parameter name")?;
        let v = percent_decode(v, "a URL parameter value")?;
        if k == "ssl" {
            // libpq's JDBC-compatible spelling.
            if v == "true" {
                out.push(("sslmode", "require".to_string()));
                continue;
            }
            return Err(Error::new(format!("invalid URL parameter ssl={v}"))
                .hint("use ssl=true, or sslmode=..."));
        }
        let key = known_key(&k, &Origin::ConnString)?;
        out.push((key, v));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; `what` names the part in errors (never its value).
pub(super) fn percent_decode(s: &str, what: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(0) | None => {
                    return Err(Error::new(format!("invalid percent-encoding in {what}"))
                        .hint("write special characters as %XX (e.g. %40 for @, %2F for /)"));
                }
                Some(b) => out.push(b),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        Error::new(format!("{what} is not valid UTF-8 once percent-decoded"))
            .hint("percent-encode UTF-8 characters byte by byte")
    })
}

/// The user's home directory: `HOME`, else the password database.
pub(super) fn home_dir(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| os_user().map(|(_, home)| home))
}

/// `key, value, where` triples read from a service file section.
pub(super) type ServiceValues = Vec<(&'static str, String, Origin)>;

/// The service files to search, in libpq's order.
pub(super) fn service_files(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    match env("PGSERVICEFILE").filter(|v| !v.is_empty()) {
        Some(f) => files.push(PathBuf::from(f)),
        None => {
            if let Some(home) = home_dir(env) {
                files.push(home.join(".pg_service.conf"));
            }
        }
    }
    let sysconf = env("PGSYSCONFDIR")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/etc/postgresql-common".to_string());
    files.push(Path::new(&sysconf).join("pg_service.conf"));
    files
}

/// Reads the section `[service]`: the first file that defines it wins.
pub(super) fn load_service(
    service: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ServiceValues> {
    let files = service_files(env);
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(Error::io("cannot read service file", file, e)
                    .hint("fix the file's permissions or set PGSERVICEFILE"));
            }
        };
        if let Some(vals) = parse_service_file(&text, file, service)? {
            return Ok(vals);
        }
    }
    let searched: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Err(Error::new(format!(
        "service \"{service}\" not found (searched {})",
        searched.join(", ")
    ))
    .hint(format!(
        "define a [{service}] section in ~/.pg_service.conf, or point PGSERVICEFILE at the file that has it"
    )))
}

/// The settings of `[service]` in one service file, `None` if the file has
/// no such section.
pub(super) fn parse_service_file(
    text: &str,
    file: &Path,
    service: &str,
) -> Result<Option<ServiceValues>> {
    let mut in_group = false;
    let mut found = false;
    let mut vals = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let lineno = n + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            if found {
                break; // end of our section
            }
            let name = rest.strip_suffix(']').unwrap_or(rest);
            in_group = name == service;
            found = in_group;
            continue;
        }
        if !in_group {
            continue;
        }
        let origin = Origin::ServiceFile(file.to_path_buf(), lineno);
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::new(format!(
                "{}:{lineno}: syntax error in service file: expected key=value",
                file.display()
            ))
            .hint(
                "fix the line, see https://www.postgresql.org/docs/current/libpq-pgservice.html",
            ));
        };
        let key = key.trim();
        if key == "service" {
            return Err(Error::new(format!(
                "{}:{lineno}: nested service specifications are not supported",
                file.display()
            ))
            .hint("remove the service= line from the section"));
        }
        let key = known_key(key, &origin)?;
        vals.push((key, value.trim().to_string(), origin));
    }
    Ok(found.then_some(vals))
}
