//! The one throwaway-PostgreSQL harness of the project: one cluster per
//! test or bench process, shared by the unit tests (the library includes
//! this file under `cfg(test)`), the integration tests and the benchmarks.
//!
//! [`server`] starts it lazily in a temporary folder under /tmp (fast
//! settings, socket only) with a role `pwuser` (password `secret-pw`,
//! scram-sha-256 on the socket). Rust tests have no global teardown, so a
//! watchdog process, started with the cluster, waits for this process to end
//! (end of file on a pipe only this process holds), then stops the cluster
//! and removes the folder.

#![allow(dead_code)]

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use hop::db::cluster::{Cluster, ClusterOptions};

#[path = "certs.rs"]
pub mod certs;
use hop::db::pgbin;

/// The role with a password, for tests of password authentication.
pub const PW_USER: &str = "pwuser";
pub const PW_PASSWORD: &str = "secret-pw";

pub struct TestServer {
    pub socket_dir: PathBuf,
    pub port: u16,
    pub superuser: String,
    /// PGDATA of the cluster.
    pub data_dir: PathBuf,
    /// The temporary folder holding everything (removed by the watchdog).
    pub base_dir: PathBuf,
    psql: PathBuf,
    cluster: Cluster,
    /// Its other end is the watchdog's stdin: closed when this process ends.
    _watchdog: std::io::PipeWriter,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();

/// The test process's cluster, started on first use.
pub fn server() -> &'static TestServer {
    SERVER.get_or_init(|| start(Path::new("/tmp")))
}

/// The process's cluster, started on first use with its folder under
/// `parent` (the benchmarks put it in memory: see benches/support).
pub fn server_in(parent: &Path) -> &'static TestServer {
    SERVER.get_or_init(|| start(parent))
}

fn no_postgres(e: hop::Error) -> ! {
    panic!(
        "cannot start the test PostgreSQL cluster:\n{}\n(the integration tests need PostgreSQL: run ./install.sh)",
        e.render()
    )
}

fn start(parent: &Path) -> TestServer {
    let base = new_base(parent);
    let opts = ClusterOptions {
        fast: true,
        extra_hba: vec![format!("local all {PW_USER} scram-sha-256")],
        ..Default::default()
    };
    launch(base, opts, &[])
}

fn new_base(parent: &Path) -> PathBuf {
    tempfile::Builder::new()
        .prefix("hop-test-")
        .tempdir_in(parent)
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a temporary folder in {}: {e}",
                parent.display()
            )
        })
        .keep()
}

/// Starts a cluster in `base` (its files handed to the server's user
/// first), with its watchdog and the role `pwuser`.
fn launch(base: PathBuf, opts: ClusterOptions, owned: &[&Path]) -> TestServer {
    let cluster = Cluster::at(&base, opts).unwrap_or_else(|e| no_postgres(e));
    for f in owned {
        cluster
            .give_to_owner(f)
            .unwrap_or_else(|e| panic!("{}", e.render()));
    }
    let psql = pgbin::client_tool("psql").unwrap_or_else(|e| no_postgres(e));
    // The watchdog first, so that even a failed start is cleaned up.
    let watchdog = start_watchdog(&cluster, &base);
    cluster.ensure_started().unwrap_or_else(|e| no_postgres(e));
    let server = TestServer {
        socket_dir: cluster.socket_dir().to_path_buf(),
        port: cluster.port(),
        superuser: cluster.superuser().to_string(),
        data_dir: cluster.data_dir().to_path_buf(),
        base_dir: base,
        psql,
        cluster,
        _watchdog: watchdog,
    };
    // The password goes through stdin, never a command line.
    server.psql(
        "postgres",
        &format!("CREATE ROLE {PW_USER} LOGIN CREATEDB PASSWORD '{PW_PASSWORD}'"),
    );
    server
}

/// The role that logs in with the client certificate of [`TlsServer`].
pub const CERT_USER: &str = "certuser";

/// A TLS-only server (docs/connection.md): `ssl=on` with a certificate for
/// `localhost` signed by a CA made for the run, listening on 127.0.0.1,
/// whose pg_hba accepts TCP only as `hostssl`: scram-sha-256 for
/// `pwuser`, `cert` for [`CERT_USER`]. Plain TCP is refused. The harness
/// itself uses the Unix socket (trust) to set things up.
pub struct TlsServer {
    pub server: TestServer,
    pub host: &'static str,
    pub port: u16,
    pub ca: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

static TLS_SERVER: OnceLock<TlsServer> = OnceLock::new();

/// The test process's TLS-only server, started on first use.
pub fn tls_server() -> &'static TlsServer {
    TLS_SERVER.get_or_init(start_tls)
}

fn start_tls() -> TlsServer {
    let base = new_base(Path::new("/tmp"));
    let server_dir = base.join("tls");
    let certs = certs::make(&server_dir, "localhost", CERT_USER);
    // The client's files stay the test's own (its key is mode 0600).
    let client_dir = base.join("client");
    std::fs::create_dir_all(&client_dir).unwrap();
    let client_cert = client_dir.join("client.crt");
    let client_key = client_dir.join("client.key");
    std::fs::rename(&certs.client_cert, &client_cert).unwrap();
    std::fs::rename(&certs.client_key, &client_key).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free TCP port: {e}"));
    let path = |p: &Path| p.display().to_string();
    let opts = ClusterOptions {
        fast: true,
        extra_hba: vec![
            format!("hostssl all {CERT_USER} 127.0.0.1/32 cert"),
            "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
        ],
        tcp_port: Some(port),
        settings: vec![
            ("ssl".into(), "on".into()),
            ("ssl_cert_file".into(), path(&certs.server_cert)),
            ("ssl_key_file".into(), path(&certs.server_key)),
            ("ssl_ca_file".into(), path(&certs.ca)),
        ],
    };
    let owned = [
        server_dir.as_path(),
        certs.server_cert.as_path(),
        certs.server_key.as_path(),
        certs.ca.as_path(),
    ];
    let server = launch(base, opts, &owned);
    server.psql(
        "postgres",
        &format!("CREATE ROLE {CERT_USER} LOGIN CREATEDB"),
    );
    TlsServer {
        server,
        host: "localhost",
        port,
        ca: certs.ca,
        client_cert,
        client_key,
    }
}

impl TlsServer {
    /// `postgresql://<user>@<host>:<port>/<db>` over TCP (no password, no
    /// TLS settings: the test gives those).
    pub fn url(&self, host: &str, user: &str, db: &str) -> String {
        format!("postgresql://{user}@{host}:{}/{db}", self.port)
    }
}

/// Starts `sh` as the cluster's owner, in its own session (Ctrl-C on the
/// tests does not reach it), reading a pipe whose write end only this
/// process holds (close-on-exec): at end of file it stops the cluster and
/// removes the folders.
fn start_watchdog(cluster: &Cluster, base: &Path) -> std::io::PipeWriter {
    let pg_ctl = cluster
        .pg_bin()
        .unwrap_or_else(|e| no_postgres(e))
        .tool("pg_ctl");
    let (reader, writer) =
        std::io::pipe().unwrap_or_else(|e| panic!("cannot create the watchdog's pipe: {e}"));
    let script = r#"read _ignored
"$1" stop -D "$2" -m immediate -w >/dev/null 2>&1
rm -rf "$3" "$4""#;
    let args: Vec<OsString> = vec![
        "-c".into(),
        script.into(),
        "hop-test-watchdog".into(),
        pg_ctl.into(),
        cluster.data_dir().into(),
        base.into(),
        cluster.socket_dir().into(),
    ];
    let expr = cluster
        .as_owner(duct::cmd("sh", args))
        .stdin_file(reader)
        .stdout_null()
        .stderr_null()
        .before_spawn(|cmd| {
            // SAFETY: setsid is async-signal-safe.
            unsafe {
                cmd.pre_exec(|| {
                    libc::setsid();
                    Ok(())
                });
            }
            Ok(())
        });
    expr.start()
        .unwrap_or_else(|e| panic!("cannot start the test cluster's watchdog: {e}"));
    writer
}

impl TestServer {
    /// Runs `sql` (from stdin) with `psql -X -At -v ON_ERROR_STOP=1` as the
    /// superuser on `db`; returns stdout without its last newline. Panics with
    /// psql's stderr on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = duct::cmd(&self.psql, self.psql_args(&self.superuser, db))
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE")
            .stdin_bytes(sql)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.psql.display()));
        if !out.status.success() {
            panic!(
                "psql on database {db} failed:\n{}\nSQL:\n{sql}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        text
    }

    /// The arguments of psql connecting as `user` to `db` on this server.
    pub fn psql_args(&self, user: &str, db: &str) -> Vec<OsString> {
        vec![
            "-X".into(),
            "-At".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "-h".into(),
            self.socket_dir.clone().into(),
            "-p".into(),
            self.port.to_string().into(),
            "-U".into(),
            user.into(),
            "-d".into(),
            db.into(),
        ]
    }

    pub fn create_db(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        );
    }

    /// Drops `name` if it exists, ending its sessions.
    pub fn drop_db(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
        );
    }

    /// `postgresql://postgres@/<db>?host=<socket_dir>`.
    pub fn url(&self, db: &str) -> String {
        format!(
            "postgresql://{}@/{}?host={}",
            self.superuser,
            percent_encode(db),
            percent_encode(&self.socket_dir.to_string_lossy())
        )
    }

    /// `postgresql://postgres@/?host=<socket_dir>`: the server, no database.
    pub fn server_url(&self) -> String {
        format!(
            "postgresql://{}@/?host={}",
            self.superuser,
            percent_encode(&self.socket_dir.to_string_lossy())
        )
    }

    /// `postgresql://pwuser:secret-pw@/<db>?host=<socket_dir>`: the role
    /// without superuser (LOGIN CREATEDB only); `db` may be empty.
    pub fn pw_url(&self, db: &str) -> String {
        format!(
            "postgresql://{PW_USER}:{PW_PASSWORD}@/{}?host={}",
            percent_encode(db),
            percent_encode(&self.socket_dir.to_string_lossy())
        )
    }

    /// The normalized schema dump of `db` (as git-hop writes snapshots).
    pub fn dump_schema(&self, db: &str) -> String {
        let params = hop::db::conn::ConnParams::parse(&self.url(db)).unwrap();
        hop::snapshot::dump_schema(&params).unwrap()
    }

    /// The normalized data dump of `db` (as git-hop writes snapshots).
    pub fn dump_data(&self, db: &str) -> String {
        let params = hop::db::conn::ConnParams::parse(&self.url(db)).unwrap();
        hop::snapshot::dump_data(&params).unwrap()
    }

    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }
}

/// A database name not used before in this test run: `<prefix>_<pid>_<n>`.
pub fn unique_db_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{}_{}_{n}", prefix.to_lowercase(), std::process::id())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
