//! TLS as libpq does it (docs/connection.md): `sslmode`, `sslrootcert`
//! (a file, or `system`), `sslcert`/`sslkey` and `channel_binding`, checked
//! when the parameters are resolved, and the OpenSSL connector of our own
//! client. The `psql`/`pg_dump`/`pg_restore` children get the same
//! resolved values through `PGSSL*` variables ([`super::ConnParams::child_env`]),
//! and their libpq links the same OpenSSL, so both sides accept the same
//! certificates.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;

use super::ConnParams;
use super::conninfo::{Origin, home_dir};
use crate::error::{Error, Result};

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const NAMES: &'static str = "disable, allow, prefer, require, verify-ca or verify-full";

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must be checked against a root.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    pub(super) fn parse(v: &str, origin: &Origin) -> Result<SslMode> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::new(format!("invalid sslmode \"{v}\" {origin}"))
                    .hint(format!("use sslmode={}", SslMode::NAMES)));
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// libpq's `channel_binding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelBinding {
    Disable,
    Prefer,
    Require,
}

impl ChannelBinding {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelBinding::Disable => "disable",
            ChannelBinding::Prefer => "prefer",
            ChannelBinding::Require => "require",
        }
    }

    pub(super) fn parse(v: &str, origin: &Origin) -> Result<ChannelBinding> {
        Ok(match v {
            "disable" => ChannelBinding::Disable,
            "prefer" => ChannelBinding::Prefer,
            "require" => ChannelBinding::Require,
            _ => {
                return Err(
                    Error::new(format!("invalid channel_binding \"{v}\" {origin}"))
                        .hint("use channel_binding=disable, prefer or require"),
                );
            }
        })
    }
}

/// The value of `sslrootcert` that means the system's trusted roots.
pub const SYSTEM_ROOTS: &str = "system";

/// The variables that fill TLS settings a URL or conninfo left unset
/// (libpq reads them whatever named the server).
pub(super) const TLS_ENV_KEYS: &[(&str, &str)] = &[
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCHANNELBINDING", "channel_binding"),
];

/// Whether the host is a Unix-socket folder, where libpq never uses TLS.
fn is_socket(params: &ConnParams) -> bool {
    params.host.as_deref().is_none_or(|h| h.starts_with('/'))
}

/// The system's CA bundle: `SSL_CERT_FILE`, else the first of the usual
/// places (Debian, Fedora, Alpine/macOS, SUSE). Resolving `system` to a file
/// lets libpq versions before 16, which do not know `sslrootcert=system`,
/// use the very roots our own client uses.
fn system_bundle(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(f) = env("SSL_CERT_FILE").filter(|f| !f.is_empty()) {
        return Some(PathBuf::from(f));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
        "/etc/ssl/ca-bundle.pem",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// Completes and checks the TLS settings of resolved parameters, as libpq
/// does before it connects: the defaults (`~/.postgresql/root.crt`,
/// `postgresql.crt`, `postgresql.key` when they exist; `verify-full` with
/// `sslrootcert=system`), then every file. A file given explicitly must
/// exist (libpq would quietly skip a missing one in the weaker modes; a user
/// who names a file means it). Nothing is checked for a Unix socket or
/// `sslmode=disable`, where TLS is not used.
pub(super) fn complete(
    params: &mut ConnParams,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    if is_socket(params) {
        return Ok(());
    }
    if params.sslrootcert.as_deref() == Some(SYSTEM_ROOTS) {
        match params.sslmode {
            None => params.sslmode = Some(SslMode::VerifyFull),
            Some(SslMode::VerifyFull) => {}
            Some(m) => {
                return Err(Error::new(format!(
                    "weak sslmode \"{m}\" may not be used with sslrootcert=system"
                ))
                .hint("use sslmode=verify-full with the system's roots, or name a CA file in sslrootcert"));
            }
        }
        let Some(bundle) = system_bundle(env) else {
            return Err(Error::new(
                "sslrootcert=system: no system certificate store found",
            )
            .hint("install the ca-certificates package, set SSL_CERT_FILE, or name a CA file in sslrootcert"));
        };
        params.sslrootcert = Some(bundle.display().to_string());
    }
    let mode = params.sslmode.unwrap_or(SslMode::Prefer);
    if mode == SslMode::Disable {
        if params.channel_binding == Some(ChannelBinding::Require) {
            return Err(Error::new(
                "channel_binding=require needs TLS, but sslmode=disable turns it off",
            )
            .hint("use sslmode=require or stronger, or channel_binding=prefer"));
        }
        return Ok(());
    }
    let pgdir = home_dir(env).map(|h| h.join(".postgresql"));
    match &params.sslrootcert {
        Some(root) => must_exist(root, "root certificate", "sslrootcert")?,
        None => {
            let default = pgdir.as_ref().map(|d| d.join("root.crt"));
            match default.filter(|p| p.exists()) {
                Some(p) => params.sslrootcert = Some(p.display().to_string()),
                None if mode.verifies() => {
                    let shown = pgdir.map_or("~/.postgresql/root.crt".into(), |d| {
                        d.join("root.crt").display().to_string()
                    });
                    return Err(Error::new(format!(
                        "sslmode={mode} needs a root certificate, and {shown} does not exist"
                    ))
                    .hint("name the CA certificate that signed the server's in sslrootcert (or PGSSLROOTCERT), use sslrootcert=system for the system's roots, or sslmode=require not to verify"));
                }
                None => {}
            }
        }
    }
    match &params.sslcert {
        Some(cert) => must_exist(cert, "client certificate", "sslcert")?,
        None => {
            if let Some(p) = pgdir
                .as_ref()
                .map(|d| d.join("postgresql.crt"))
                .filter(|p| p.exists())
            {
                params.sslcert = Some(p.display().to_string());
            }
        }
    }
    if params.sslcert.is_some() {
        let key = match &params.sslkey {
            Some(k) => PathBuf::from(k),
            None => pgdir
                .map(|d| d.join("postgresql.key"))
                .unwrap_or_else(|| PathBuf::from("postgresql.key")),
        };
        check_key_file(&key, params.sslcert.as_deref().unwrap_or_default())?;
        params.sslkey = Some(key.display().to_string());
    }
    Ok(())
}

fn must_exist(path: &str, what: &str, key: &str) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(Error::new(format!("{what} file \"{path}\" is not a file"))
            .hint(format!("point {key} at a PEM file"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::new(format!(
            "{what} file \"{path}\" does not exist"
        ))
        .hint(format!(
            "fix {key} (or PG{}) to name an existing file",
            key.to_uppercase()
        ))),
        Err(e) => Err(
            Error::io(&format!("cannot read the {what} file"), Path::new(path), e)
                .hint(format!("check the permissions of the file named by {key}")),
        ),
    }
}

/// libpq's rule for the client key: a regular file, with no access for
/// group or others when the user owns it, at most `u=rw,g=r` when root does.
fn check_key_file(key: &Path, cert: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(key) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::new(format!(
                "certificate \"{cert}\" is given, but its private key file \"{}\" does not exist",
                key.display()
            ))
            .hint("name the key in sslkey (or PGSSLKEY)"));
        }
        Err(e) => {
            return Err(Error::io("cannot read the private key file", key, e)
                .hint("check the key file's permissions"));
        }
    };
    if !meta.is_file() {
        return Err(Error::new(format!(
            "private key file \"{}\" is not a regular file",
            key.display()
        ))
        .hint("point sslkey at the PEM file of the client key"));
    }
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let mode = meta.mode();
    let too_open =
        (meta.uid() == euid && mode & 0o077 != 0) || (meta.uid() == 0 && mode & 0o037 != 0);
    if too_open {
        return Err(Error::new(format!(
            "private key file \"{}\" has group or world access",
            key.display()
        ))
        .hint(format!(
            "chmod 600 {} (libpq refuses it too: u=rw (0600) or less if you own it, u=rw,g=r (0640) or less if root does)",
            key.display()
        )));
    }
    Ok(())
}

/// Whether our client speaks TLS to this server at all.
pub(super) fn wanted(params: &ConnParams) -> bool {
    !is_socket(params) && params.sslmode != Some(SslMode::Disable)
}

/// Why the server's certificate was refused, as OpenSSL's verification saw
/// it (kept by the verify callback for the error message).
#[derive(Clone, Debug, Default)]
pub(super) struct Refusal {
    /// OpenSSL's reason ("unable to get local issuer certificate", ...).
    pub reason: String,
    /// The host name or address did not match the certificate.
    pub name_mismatch: bool,
    /// The names the server's certificate carries (SAN, else CN).
    pub names: Vec<String>,
}

/// Our client's connector for `params` (resolved by [`complete`]) and the
/// slot where a refused certificate is described.
pub(super) fn connector(
    params: &ConnParams,
) -> Result<(
    postgres_openssl::MakeTlsConnector,
    Arc<Mutex<Option<Refusal>>>,
)> {
    let ssl_err = |what: &str, e: openssl::error::ErrorStack| {
        Error::new(format!("cannot set up TLS: {what}: {e}"))
            .hint("check the certificate and key files named by sslrootcert, sslcert and sslkey")
    };
    let mode = params.sslmode.unwrap_or(SslMode::Prefer);
    let mut b =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| ssl_err("OpenSSL", e))?;
    // libpq's default ssl_min_protocol_version.
    b.set_min_proto_version(Some(SslVersion::TLS1_2))
        .map_err(|e| ssl_err("protocol version", e))?;
    let verify = match &params.sslrootcert {
        // As libpq: a root certificate, once there, is checked in every
        // mode; the host name only in verify-full.
        Some(root) => {
            let pem = std::fs::read(root).map_err(|e| {
                Error::io("cannot read the root certificate file", Path::new(root), e)
                    .hint("fix sslrootcert (or PGSSLROOTCERT)")
            })?;
            let certs = X509::stack_from_pem(&pem).map_err(|e| {
                Error::new(format!(
                    "root certificate file \"{root}\" holds no PEM certificate: {e}"
                ))
                .hint("point sslrootcert at the CA certificate(s) in PEM form")
            })?;
            if certs.is_empty() {
                return Err(Error::new(format!(
                    "root certificate file \"{root}\" holds no PEM certificate"
                ))
                .hint("point sslrootcert at the CA certificate(s) in PEM form"));
            }
            let mut store = X509StoreBuilder::new().map_err(|e| ssl_err("store", e))?;
            for c in certs {
                store.add_cert(c).map_err(|e| ssl_err(root, e))?;
            }
            // Only these roots, never the system's as well (libpq's rule).
            b.set_cert_store(store.build());
            true
        }
        None => false,
    };
    if let Some(cert) = &params.sslcert {
        b.set_certificate_chain_file(cert).map_err(|e| {
            Error::new(format!(
                "cannot load the client certificate \"{cert}\": {e}"
            ))
            .hint("point sslcert at the client certificate in PEM form")
        })?;
        let key_path = params.sslkey.clone().unwrap_or_default();
        let pem = std::fs::read(&key_path).map_err(|e| {
            Error::io("cannot read the private key file", Path::new(&key_path), e)
                .hint("fix sslkey (or PGSSLKEY)")
        })?;
        if String::from_utf8_lossy(&pem).contains("ENCRYPTED") {
            return Err(Error::new(format!(
                "private key file \"{key_path}\" is encrypted: git-hop does not take sslpassword"
            ))
            .hint(format!(
                "decrypt it into a file only you can read: openssl pkey -in {key_path} -out KEY; chmod 600 KEY"
            )));
        }
        // A callback that gives no passphrase: never a prompt on a terminal.
        let key = PKey::private_key_from_pem_callback(&pem, |_| Ok(0)).map_err(|e| {
            Error::new(format!("cannot load the private key \"{key_path}\": {e}"))
                .hint("point sslkey at the client key in PEM form")
        })?;
        b.set_private_key(&key)
            .and_then(|()| b.check_private_key())
            .map_err(|e| {
                Error::new(format!(
                    "the private key \"{key_path}\" does not belong to the certificate \"{cert}\": {e}"
                ))
                .hint("pair sslcert with its own key in sslkey")
            })?;
    }
    b.set_verify(if verify {
        SslVerifyMode::PEER
    } else {
        SslVerifyMode::NONE
    });
    let mut make = postgres_openssl::MakeTlsConnector::new(b.build());
    let refusal: Arc<Mutex<Option<Refusal>>> = Arc::default();
    let slot = refusal.clone();
    let check_host = mode == SslMode::VerifyFull;
    make.set_callback(move |cfg, _domain| {
        cfg.set_verify_hostname(check_host);
        if verify {
            let slot = slot.clone();
            cfg.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
                if !ok && let Ok(mut s) = slot.lock() {
                    let err = ctx.error();
                    // X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
                    let name_mismatch = matches!(err.as_raw(), 62 | 64);
                    // The server's own certificate, whichever link failed.
                    let leaf = ctx.chain().and_then(|c| c.get(0)).or(ctx.current_cert());
                    let names = leaf.map(cert_names).unwrap_or_default();
                    s.get_or_insert(Refusal {
                        reason: err.error_string().to_string(),
                        name_mismatch,
                        names,
                    });
                }
                ok
            });
        }
        Ok(())
    });
    Ok((make, refusal))
}

/// The DNS names and addresses of a certificate, else its common name.
fn cert_names(cert: &openssl::x509::X509Ref) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(sans) = cert.subject_alt_names() {
        for san in sans.iter() {
            if let Some(d) = san.dnsname() {
                names.push(d.to_string());
            } else if let Some(ip) = san.ipaddress() {
                let text = match ip.len() {
                    4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(ip);
                        std::net::Ipv6Addr::from(b).to_string()
                    }
                    _ => continue,
                };
                names.push(text);
            }
        }
    }
    if names.is_empty() {
        for e in cert
            .subject_name()
            .entries_by_nid(openssl::nid::Nid::COMMONNAME)
        {
            if let Ok(s) = e.data().to_string() {
                names.push(s);
            }
        }
    }
    names
}
