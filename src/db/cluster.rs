//! The embedded PostgreSQL cluster: a private cluster of one clone (docs/connection.md),
//! or a throwaway one for tests, run with the system's binaries.
//!
//! The server listens on a Unix socket only (never TCP), in a short directory
//! only the cluster's owner can enter, with trust authentication on that socket.
//! PostgreSQL refuses to run as root, so as root every `initdb`/`pg_ctl` runs
//! as an unprivileged user (`$HOP_PG_RUN_AS`, else `postgres`, else `nobody`);
//! when that user cannot enter the clone's folder, the data lives under
//! `/var/lib/git-hop/clusters/<hash of the clone's path>` instead, and
//! `<git dir>/hop/pg.location` records where.
//!
//! Layout of a cluster's base folder: `data/` (PGDATA), `server.log`, `lock`
//! (serializes `ensure_started`/`stop`/`destroy` between processes), and for
//! [`Cluster::at`] `sock/` (the socket directory, when its path is short).

use std::ffi::{CStr, OsStr};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::pgbin::PgBin;
use crate::error::{Error, Result};
use crate::lock_file::LockFile;

/// Where a clone's cluster lives when its owner cannot enter the clone.
const FALLBACK_ROOT: &str = "/var/lib/git-hop/clusters";
/// The port: only part of the socket file's name, since there is no TCP.
const PORT: u16 = 5432;
const SUPERUSER: &str = "postgres";
/// Unix socket paths are limited to about 107 bytes; stay well below.
const MAX_SOCKET_PATH: usize = 100;
/// Lines of the server log quoted when the server does not start.
const LOG_TAIL_LINES: usize = 8;

/// How a cluster is configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterOptions {
    /// `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`: for tests
    /// only (a crash can corrupt the data).
    pub fast: bool,
    /// Lines put before the default trust line in `pg_hba.conf`, e.g.
    /// `"local all pwuser scram-sha-256"`.
    pub extra_hba: Vec<String>,
    /// Also listen on TCP at 127.0.0.1 on this port (the test harness's TLS
    /// server). The embedded cluster of a clone never does.
    pub tcp_port: Option<u16>,
    /// Further `-c name=value` server settings (e.g. `ssl=on`); values
    /// hold no single quote.
    pub settings: Vec<(String, String)>,
}

/// What `db status` shows about a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub initialized: bool,
    pub running: bool,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    /// The user the server runs as.
    pub owner: String,
    pub log_file: PathBuf,
}

/// The user the server runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owner {
    name: String,
    uid: u32,
    gid: u32,
    /// We are root: spawn `initdb`/`pg_ctl` as this user.
    switch: bool,
}

/// One PostgreSQL cluster (see the module documentation).
#[derive(Debug, Clone)]
pub struct Cluster {
    base: PathBuf,
    data_dir: PathBuf,
    log_file: PathBuf,
    lock_file: PathBuf,
    socket_dir: PathBuf,
    /// `<git dir>/hop/pg.location` for a clone's cluster.
    location_file: Option<PathBuf>,
    /// `destroy` removes the whole base (a clone's cluster) rather than only
    /// what the cluster put in it (a caller's folder, [`Cluster::at`]).
    owns_base: bool,
    owner: Owner,
    opts: ClusterOptions,
    bin: OnceLock<PgBin>,
}

impl Cluster {
    /// The clone's embedded cluster: data under `<git_common_dir>/hop/pg/`,
    /// unless we are root and the unprivileged owner cannot enter that folder:
    /// then under `/var/lib/git-hop/clusters/<hash of the canonical git dir>`.
    /// Nothing is created until [`Cluster::ensure_started`].
    pub fn for_clone(git_common_dir: &Path) -> Result<Cluster> {
        let git_dir = fs::canonicalize(git_common_dir)
            .map_err(|e| Error::io("cannot open the git directory", git_common_dir, e))?;
        let key = sha256_hex(git_dir.as_os_str().as_bytes());
        let default_base = git_dir.join("hop").join("pg");
        let fallback_base = Path::new(FALLBACK_ROOT).join(&key);
        let location_file = git_dir.join("hop").join("pg.location");

        // The recorded choice counts only if it is one of this clone's two
        // places (a copied .git must not share another clone's cluster).
        let recorded = fs::read_to_string(&location_file)
            .ok()
            .map(|s| PathBuf::from(s.trim_end_matches('\n')));
        let base = if recorded.as_ref() == Some(&default_base) {
            default_base
        } else if recorded.as_ref() == Some(&fallback_base) {
            fallback_base
        } else {
            let owner = resolve_owner(&default_base.join("data"))?;
            if owner_can(&owner, "-x", &nearest_existing(&default_base)) {
                default_base
            } else {
                fallback_base
            }
        };
        let data_dir = base.join("data");
        let owner = resolve_owner(&data_dir)?;
        let socket_dir = short_socket_dir(&base, owner.uid);
        Ok(Cluster {
            log_file: base.join("server.log"),
            lock_file: base.join("lock"),
            data_dir,
            socket_dir,
            location_file: Some(location_file),
            owns_base: true,
            owner,
            opts: ClusterOptions::default(),
            bin: OnceLock::new(),
            base,
        })
    }

    /// A throwaway cluster in `base` (tests): data, log and socket under
    /// `base`, except that the socket goes to a short `/tmp/hop-…` folder when
    /// `base` is too long for a socket path. As root, `base` is given to the
    /// unprivileged owner.
    pub fn at(base: &Path, opts: ClusterOptions) -> Result<Cluster> {
        fs::create_dir_all(base).map_err(|e| Error::io("cannot create", base, e))?;
        let base = fs::canonicalize(base).map_err(|e| Error::io("cannot open", base, e))?;
        let data_dir = base.join("data");
        let owner = resolve_owner(&data_dir)?;
        let in_base = base.join("sock");
        let socket_dir = if socket_dir_usable(&in_base) {
            in_base
        } else {
            short_socket_dir(&base, owner.uid)
        };
        Ok(Cluster {
            log_file: base.join("server.log"),
            lock_file: base.join("lock"),
            data_dir,
            socket_dir,
            location_file: None,
            owns_base: false,
            owner,
            opts,
            bin: OnceLock::new(),
            base,
        })
    }

    /// Creates the cluster if needed and starts it if it is not running.
    /// Idempotent, and safe when several processes call it at once.
    pub fn ensure_started(&self) -> Result<()> {
        let bin = self.pg_bin()?;
        self.prepare_base()?;
        let _lock = self.lock()?;
        if !self.is_initialized() {
            // An orphan must be gone before a new cluster appears at its
            // old path.
            self.stop_orphan_on_socket()?;
            self.initdb(bin)?;
        }
        self.record_location()?;
        if let Some(pid) = self.postmaster() {
            let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port()));
            if pid.alive && pid.socket_dir == self.socket_dir && socket.exists() {
                return Ok(());
            }
            if pid.alive {
                // Running, but its socket is gone (a /tmp cleaner) or elsewhere.
                self.pg_ctl_stop(bin)?;
            }
        }
        self.prepare_socket_dir()?;
        self.pg_ctl_start(bin)
    }

    /// A server still holding our socket although its data folder was
    /// deleted (a clone removed without `db stop`, then made again at the
    /// same path) would keep ours from starting: stop it. A server whose
    /// data folder still exists is someone else's: refuse.
    fn stop_orphan_on_socket(&self) -> Result<()> {
        let lock = self
            .socket_dir
            .join(format!(".s.PGSQL.{}.lock", self.port()));
        let Ok(text) = fs::read_to_string(&lock) else {
            return Ok(());
        };
        let Some(pid) = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok())
        else {
            return Ok(());
        };
        let cwd = match fs::read_link(format!("/proc/{pid}/cwd")) {
            Ok(c) => c,
            Err(_) => return Ok(()), // gone: PostgreSQL replaces a stale lock itself
        };
        let cwd_s = cwd.display().to_string();
        if cwd == self.data_dir {
            return Ok(());
        }
        if !cwd_s.ends_with(" (deleted)") && cwd.exists() {
            return Err(Error::new(format!(
                "another PostgreSQL server (pid {pid}, data {cwd_s}) uses the socket folder {}",
                self.socket_dir.display()
            ))
            .hint(format!(
                "stop that server (pg_ctl stop -D {cwd_s}), then retry"
            )));
        }
        // SIGINT: PostgreSQL's fast shutdown.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        // Wait for the process itself to end (a zombie counts as ended:
        // some init processes never reap), not only for its lock file.
        for _ in 0..200 {
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            if matches!(state, None | Some("Z") | Some("X")) {
                let _ = fs::remove_file(&lock);
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Err(Error::new(format!(
            "an orphaned PostgreSQL server (pid {pid}, its data folder deleted) holds {} and did not stop",
            self.socket_dir.display()
        ))
        .hint(format!("kill {pid}, then retry")))
    }

    /// Stops the server (fast shutdown); nothing to do when it is not running.
    pub fn stop(&self) -> Result<()> {
        if !self.base.is_dir() {
            return Ok(());
        }
        let _lock = self.lock()?;
        if !self.is_running() {
            return Ok(());
        }
        self.pg_ctl_stop(self.pg_bin()?)?;
        // The socket folder is re-created on start; an empty one left in
        // /tmp is only clutter.
        let _ = fs::remove_dir(&self.socket_dir);
        Ok(())
    }

    pub fn status(&self) -> ClusterStatus {
        ClusterStatus {
            initialized: self.is_initialized(),
            running: self.is_running(),
            data_dir: self.data_dir.clone(),
            socket_dir: self.socket_dir.clone(),
            owner: self.owner.name.clone(),
            log_file: self.log_file.clone(),
        }
    }

    /// Stops the server, then removes its data, log, socket folder and
    /// location file (undoes a failed `init`).
    pub fn destroy(&self) -> Result<()> {
        if self.base.is_dir() {
            let lock = self.lock()?;
            if self.is_running() {
                self.pg_ctl_stop(self.pg_bin()?)?;
            }
            if self.owns_base {
                remove_dir_all(&self.base)?;
            } else {
                remove_dir_all(&self.data_dir)?;
                remove_dir_all(&self.initdb_dir())?;
                remove_file(&self.log_file)?;
                if self.socket_dir.starts_with(&self.base) {
                    remove_dir_all(&self.socket_dir)?;
                }
                remove_file(&self.lock_file)?;
            }
            drop(lock);
        }
        // A socket folder outside the base, if it is ours.
        if fs::symlink_metadata(&self.socket_dir)
            .is_ok_and(|m| m.is_dir() && m.uid() == self.owner.uid)
        {
            remove_dir_all(&self.socket_dir)?;
        }
        if let Some(location) = &self.location_file {
            remove_file(location)?;
        }
        Ok(())
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn superuser(&self) -> &str {
        SUPERUSER
    }

    /// 5432 (the socket folder is private, so there are no clashes), or
    /// the TCP port of [`ClusterOptions::tcp_port`].
    pub fn port(&self) -> u16 {
        self.opts.tcp_port.unwrap_or(PORT)
    }

    /// Hands a file to the user the server runs as (as root; a no-op
    /// otherwise), e.g. a TLS key the server must own.
    pub fn give_to_owner(&self, path: &Path) -> Result<()> {
        if self.owner.switch {
            chown_to(path, &self.owner)?;
        }
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_file(&self) -> &Path {
        &self.log_file
    }

    /// The user the server runs as.
    pub fn owner(&self) -> &str {
        &self.owner.name
    }

    /// The server binaries, found on first use.
    pub fn pg_bin(&self) -> Result<&PgBin> {
        if let Some(bin) = self.bin.get() {
            return Ok(bin);
        }
        let found = PgBin::find()?;
        Ok(self.bin.get_or_init(|| found))
    }

    /// Makes `expr` run as the cluster's owner (as root: with its uid/gid,
    /// from `/`); unchanged when we are not root.
    pub fn as_owner(&self, expr: duct::Expression) -> duct::Expression {
        as_owner(&self.owner, expr)
    }

    /// Runs `program` as the owner, output captured, status unchecked.
    fn run_as_owner(&self, program: &Path, args: &[&OsStr]) -> Result<std::process::Output> {
        self.as_owner(duct::cmd(program, args.iter().copied()))
            .stdin_null()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| Error::new(format!("cannot run {}: {e}", program.display())))
    }

    fn is_initialized(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    fn is_running(&self) -> bool {
        self.postmaster().is_some_and(|p| p.alive)
    }

    /// `initdb` works here and the result is renamed to `data/` only once
    /// complete, so a half-made cluster never looks initialized.
    fn initdb_dir(&self) -> PathBuf {
        self.base.join("data.initdb")
    }

    /// What `postmaster.pid` says, if it names this data directory.
    fn postmaster(&self) -> Option<Postmaster> {
        let text = fs::read_to_string(self.data_dir.join("postmaster.pid")).ok()?;
        let mut lines = text.lines();
        let pid: i32 = lines.next()?.trim().parse().ok()?;
        let data_dir = PathBuf::from(lines.next()?);
        if pid <= 0 || data_dir != self.data_dir {
            return None;
        }
        let socket_dir = PathBuf::from(lines.nth(2).unwrap_or_default());
        Some(Postmaster {
            alive: process_alive(pid),
            socket_dir,
        })
    }

    /// Creates the base folder (and world-traversable parents), owned by the
    /// cluster's owner, and checks that the owner can write in it.
    fn prepare_base(&self) -> Result<()> {
        if let Some(parent) = self.base.parent() {
            create_traversable_dirs(parent)?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.base) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot create", &self.base, e)),
        }
        if self.owner.switch {
            chown_to(&self.base, &self.owner)?;
            if !owner_can(&self.owner, "-w", &self.base) {
                return Err(Error::new(format!(
                    "user `{}`, who runs PostgreSQL, cannot write in {} (a folder above it is closed to that user)",
                    self.owner.name,
                    self.base.display()
                ))
                .hint("use a folder every user can enter, or set HOP_PG_RUN_AS to a user that can"));
            }
        }
        Ok(())
    }

    /// Takes the cluster's lock (blocking) until the guard is dropped.
    fn lock(&self) -> Result<LockFile> {
        LockFile::acquire(&self.lock_file)
    }

    fn initdb(&self, bin: &PgBin) -> Result<()> {
        let work = self.initdb_dir();
        remove_dir_all(&work)?;
        // A data folder without PG_VERSION is not a cluster: a leftover.
        remove_dir_all(&self.data_dir)?;
        let os = OsStr::new;
        let out = self.run_as_owner(
            &bin.tool("initdb"),
            &[
                os("-D"),
                work.as_os_str(),
                os("-U"),
                os(SUPERUSER),
                os("-A"),
                os("trust"),
                os("--locale=C"),
                os("-E"),
                os("UTF8"),
                os("--no-sync"),
                os("--no-instructions"),
            ],
        )?;
        if !out.status.success() {
            let _ = remove_dir_all(&work);
            return Err(Error::new(format!(
                "initdb failed for {}: {}",
                self.data_dir.display(),
                tail(&String::from_utf8_lossy(&out.stderr), 3).join(" / ")
            ))
            .hint(format!(
                "check free space and that user `{}` can write in {}",
                self.owner.name,
                self.base.display()
            )));
        }
        self.write_hba(&work)?;
        fs::rename(&work, &self.data_dir).map_err(|e| {
            Error::io(
                &format!("cannot rename {} to", work.display()),
                &self.data_dir,
                e,
            )
        })
    }

    /// `pg_hba.conf`: the extra lines, then trust on the local socket only.
    fn write_hba(&self, data_dir: &Path) -> Result<()> {
        let path = data_dir.join("pg_hba.conf");
        let mut text = String::from(
            "# Written by git-hop. The server listens on its private Unix socket only.\n",
        );
        for line in &self.opts.extra_hba {
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text.push_str("local all all trust\nlocal replication all trust\n");
        fs::write(&path, text).map_err(|e| Error::io("cannot write", &path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("cannot change the mode of", &path, e))?;
        if self.owner.switch {
            chown_to(&path, &self.owner)?;
        }
        Ok(())
    }

    /// Writes `<git dir>/hop/pg.location` (a clone's cluster only).
    fn record_location(&self) -> Result<()> {
        let Some(location) = &self.location_file else {
            return Ok(());
        };
        let text = format!("{}\n", self.base.display());
        if fs::read_to_string(location).is_ok_and(|t| t == text) {
            return Ok(());
        }
        if let Some(parent) = location.parent() {
            create_traversable_dirs(parent)?;
        }
        fs::write(location, text).map_err(|e| Error::io("cannot write", location, e))
    }

    /// The socket folder: created mode 0700 for the owner; refused when it
    /// exists and belongs to someone else (it may sit in a shared /tmp).
    fn prepare_socket_dir(&self) -> Result<()> {
        let dir = &self.socket_dir;
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {
                if self.owner.switch {
                    chown_to(dir, &self.owner)?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot create the socket folder", dir, e)),
        }
        let meta = fs::symlink_metadata(dir)
            .map_err(|e| Error::io("cannot inspect the socket folder", dir, e))?;
        let remove_it = format!("remove it (rm -rf {}) and retry", dir.display());
        if !meta.is_dir() {
            return Err(Error::new(format!(
                "the socket folder {} is not a folder",
                dir.display()
            ))
            .hint(remove_it));
        }
        if meta.uid() != self.owner.uid {
            return Err(Error::new(format!(
                "the socket folder {} belongs to uid {}, not to `{}` who runs PostgreSQL",
                dir.display(),
                meta.uid(),
                self.owner.name
            ))
            .hint(remove_it));
        }
        if meta.mode() & 0o777 != 0o700 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .map_err(|e| Error::io("cannot change the mode of", dir, e))?;
        }
        Ok(())
    }

    fn pg_ctl_start(&self, bin: &PgBin) -> Result<()> {
        // pg_ctl hands -o to /bin/sh: the socket path is quoted, and our
        // socket paths never hold a quote (see `socket_dir_usable`).
        let listen = match self.opts.tcp_port {
            Some(_) => "127.0.0.1",
            None => "",
        };
        let mut server_opts = format!(
            "-p {} -k '{}' -c listen_addresses='{listen}' -c unix_socket_permissions=0700",
            self.port(),
            self.socket_dir.display()
        );
        for (name, value) in &self.opts.settings {
            if value.contains('\'') || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::new(format!("invalid server setting {name}")));
            }
            server_opts.push_str(&format!(" -c {name}='{value}'"));
        }
        if self.opts.fast {
            server_opts.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        // Only what this start adds to the log tells why it failed.
        let log_before = fs::metadata(&self.log_file).map_or(0, |m| m.len());
        let os = OsStr::new;
        let out = self.run_as_owner(
            &bin.tool("pg_ctl"),
            &[
                os("-D"),
                self.data_dir.as_os_str(),
                os("-l"),
                self.log_file.as_os_str(),
                os("-w"),
                os("-t"),
                os("60"),
                os("start"),
                os("-o"),
                os(&server_opts),
            ],
        )?;
        if out.status.success() {
            return Ok(());
        }
        let log = fs::read(&self.log_file).unwrap_or_default();
        let log = String::from_utf8_lossy(log.get(log_before as usize..).unwrap_or_default());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut lines = tail(&log, LOG_TAIL_LINES);
        if lines.is_empty() {
            lines = tail(&stderr, 3);
        }
        let mut message = format!(
            "PostgreSQL did not start (data folder {}); it said:",
            self.data_dir.display()
        );
        for line in lines {
            message.push_str("\n  ");
            message.push_str(line);
        }
        Err(Error::new(message).hint(format!(
            "fix what the server log says, then retry; full log: {}",
            self.log_file.display()
        )))
    }

    fn pg_ctl_stop(&self, bin: &PgBin) -> Result<()> {
        let os = OsStr::new;
        let out = self.run_as_owner(
            &bin.tool("pg_ctl"),
            &[
                os("-D"),
                self.data_dir.as_os_str(),
                os("-m"),
                os("fast"),
                os("-w"),
                os("-t"),
                os("60"),
                os("stop"),
            ],
        )?;
        if out.status.success() || !self.is_running() {
            return Ok(());
        }
        Err(Error::new(format!(
            "could not stop PostgreSQL (data folder {}): {}",
            self.data_dir.display(),
            tail(&String::from_utf8_lossy(&out.stderr), 2).join(" / ")
        ))
        .hint(format!(
            "see {}; as a last resort: pg_ctl stop -m immediate -D {}",
            self.log_file.display(),
            self.data_dir.display()
        )))
    }
}

struct Postmaster {
    alive: bool,
    socket_dir: PathBuf,
}

/// Whether process `pid` exists and is not a zombie (a container's PID 1 may
/// never reap the postmaster once it has exited).
fn process_alive(pid: i32) -> bool {
    u32::try_from(pid).is_ok_and(|p| crate::owner::process_alive(p, None))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Who runs the server. Not root: ourselves. Root: the owner of an existing
/// data folder (PostgreSQL insists on it), else `$HOP_PG_RUN_AS`, else
/// `postgres`, else `nobody`.
fn resolve_owner(data_dir: &Path) -> Result<Owner> {
    if !is_root() {
        // SAFETY: geteuid/getegid have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let name = user_by_uid(uid).map_or_else(|| uid.to_string(), |u| u.name);
        return Ok(Owner {
            name,
            uid,
            gid,
            switch: false,
        });
    }
    if let Ok(meta) = fs::symlink_metadata(data_dir)
        && meta.is_dir()
        && meta.uid() != 0
    {
        let uid = meta.uid();
        let user = user_by_uid(uid).unwrap_or(User {
            name: uid.to_string(),
            uid,
            gid: meta.gid(),
        });
        return Ok(Owner {
            name: user.name,
            uid,
            gid: user.gid,
            switch: true,
        });
    }
    let user = match std::env::var("HOP_PG_RUN_AS").ok().filter(|v| !v.is_empty()) {
        Some(name) => user_by_name(&name).ok_or_else(|| {
            Error::new(format!("HOP_PG_RUN_AS names user `{name}`, who does not exist"))
                .hint("set HOP_PG_RUN_AS to an existing unprivileged user, or unset it")
        })?,
        None => user_by_name("postgres").or_else(|| user_by_name("nobody")).ok_or_else(|| {
            Error::new("running as root, but there is no `postgres` or `nobody` user to run PostgreSQL as")
                .hint("create a `postgres` user (apt-get install postgresql does), or set HOP_PG_RUN_AS")
        })?,
    };
    if user.uid == 0 {
        return Err(Error::new(format!(
            "HOP_PG_RUN_AS names `{}`, a root account: PostgreSQL refuses to run as root",
            user.name
        ))
        .hint("set HOP_PG_RUN_AS to an unprivileged user, or unset it"));
    }
    Ok(Owner {
        name: user.name,
        uid: user.uid,
        gid: user.gid,
        switch: true,
    })
}

fn as_owner(owner: &Owner, expr: duct::Expression) -> duct::Expression {
    if !owner.switch {
        return expr;
    }
    let (uid, gid) = (owner.uid, owner.gid);
    expr.dir("/").before_spawn(move |cmd| {
        // std also drops the supplementary groups when root sets a uid.
        cmd.uid(uid).gid(gid);
        Ok(())
    })
}

/// Asks the system, as `owner`, whether `test <flag> <path>` holds (search
/// permission on every folder above counts). Always true when not root.
fn owner_can(owner: &Owner, flag: &str, path: &Path) -> bool {
    if !owner.switch {
        return true;
    }
    as_owner(owner, duct::cmd("test", [flag.as_ref(), path.as_os_str()]))
        .stdin_null()
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()
        .is_ok_and(|o| o.status.success())
}

fn nearest_existing(path: &Path) -> PathBuf {
    path.ancestors()
        .find(|p| fs::symlink_metadata(p).is_ok())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// Creates `dir` and its missing parents, each mode 0755 whatever the umask,
/// so that the cluster's owner can pass through them.
fn create_traversable_dirs(dir: &Path) -> Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|p| fs::symlink_metadata(p).is_err())
        .collect();
    for p in missing.into_iter().rev() {
        match fs::create_dir(p) {
            Ok(()) => fs::set_permissions(p, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("cannot change the mode of", p, e))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io("cannot create", p, e)),
        }
    }
    Ok(())
}

fn chown_to(path: &Path, owner: &Owner) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io("cannot inspect", path, e))?;
    if meta.uid() == owner.uid && meta.gid() == owner.gid {
        return Ok(());
    }
    std::os::unix::fs::lchown(path, Some(owner.uid), Some(owner.gid))
        .map_err(|e| Error::io(&format!("cannot give to user `{}`", owner.name), path, e))
}

/// `/tmp/hop-<16 hex of hash(base)>-<uid>`: short whatever the base.
fn short_socket_dir(base: &Path, uid: u32) -> PathBuf {
    let hash = sha256_hex(base.as_os_str().as_bytes());
    PathBuf::from(format!("/tmp/hop-{}-{uid}", &hash[..16]))
}

/// Short enough for a socket path, and plain enough to pass through pg_ctl's
/// shell command line.
fn socket_dir_usable(dir: &Path) -> bool {
    let socket_len = dir.as_os_str().len() + format!("/.s.PGSQL.{PORT}").len();
    socket_len < MAX_SOCKET_PATH
        && dir.to_str().is_some_and(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c))
        })
}

fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    Sha256::digest(bytes)
        .iter()
        .fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The last `n` non-blank lines of `text`.
fn tail(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

fn remove_dir_all(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("cannot remove", path, e)),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("cannot remove", path, e)),
        _ => Ok(()),
    }
}

struct User {
    name: String,
    uid: u32,
    gid: u32,
}

fn user_by_name(name: &str) -> Option<User> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes into the buffers we pass, with their sizes.
    lookup_user(|pwd, buf, len, result| unsafe {
        libc::getpwnam_r(cname.as_ptr(), pwd, buf, len, result)
    })
}

fn user_by_uid(uid: u32) -> Option<User> {
    // SAFETY: getpwuid_r writes into the buffers we pass, with their sizes.
    lookup_user(|pwd, buf, len, result| unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) })
}

/// Thread-safe passwd lookup (the `_r` variants), growing the buffer on ERANGE.
fn lookup_user(
    call: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int,
) -> Option<User> {
    let mut buf: Vec<libc::c_char> = vec![0; 4096];
    loop {
        // SAFETY: an all-zero passwd is a valid value to be overwritten.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string in buf.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned();
        return Some(User {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::pgbin::client_tool;
    use std::io::Write;

    /// Destroys the cluster even when the test fails half-way.
    struct Guard(Cluster);
    impl Drop for Guard {
        fn drop(&mut self) {
            if let Err(e) = self.0.destroy() {
                eprintln!("cleanup: {}", e.render());
            }
        }
    }

    /// psql as the superuser (or `user`) on the cluster's socket.
    fn psql_as(c: &Cluster, user: &str, sql: &str) -> std::process::Output {
        let args: Vec<std::ffi::OsString> = vec![
            "-X".into(),
            "-At".into(),
            "-w".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
            "-h".into(),
            c.socket_dir().into(),
            "-p".into(),
            c.port().to_string().into(),
            "-U".into(),
            user.into(),
            "-d".into(),
            "postgres".into(),
        ];
        duct::cmd(client_tool("psql").unwrap(), args)
            .env_remove("PGPASSWORD")
            .stdin_bytes(sql)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .unwrap()
    }

    fn psql(c: &Cluster, sql: &str) -> String {
        let out = psql_as(c, c.superuser(), sql);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    fn postmaster_pid(c: &Cluster) -> String {
        let text = fs::read_to_string(c.data_dir().join("postmaster.pid")).unwrap();
        text.lines().next().unwrap().to_string()
    }

    fn entries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn start_is_idempotent_and_stop_restart_destroy_work() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let c = Guard(Cluster::at(&base, ClusterOptions::default()).unwrap());
        let c = &c.0;
        assert!(!c.status().initialized);
        assert!(!c.status().running);
        c.stop().unwrap(); // not running, not even created: no error

        c.ensure_started().unwrap();
        let st = c.status();
        assert!(st.initialized && st.running, "{st:?}");
        assert_eq!(st.socket_dir, base.join("sock"));
        assert!(base.join("sock/.s.PGSQL.5432").exists());
        assert_eq!(psql(c, "select current_user"), "postgres");
        // Not a fast cluster.
        assert_eq!(psql(c, "show fsync"), "on");
        // Never TCP.
        assert_eq!(psql(c, "show listen_addresses"), "");

        let pid = postmaster_pid(c);
        c.ensure_started().unwrap();
        assert_eq!(
            postmaster_pid(c),
            pid,
            "a second ensure_started restarted it"
        );

        // A second handle on the same folder sees the same server.
        let again = Cluster::at(&base, ClusterOptions::default()).unwrap();
        assert!(again.status().running);
        again.ensure_started().unwrap();
        assert_eq!(postmaster_pid(c), pid);

        c.stop().unwrap();
        assert!(!c.status().running);
        assert!(!base.join("sock/.s.PGSQL.5432").exists());
        c.stop().unwrap();

        c.ensure_started().unwrap();
        assert!(c.status().running);
        assert_eq!(psql(c, "select 41 + 1"), "42");

        let pid: i32 = postmaster_pid(c).parse().unwrap();
        assert!(process_alive(pid));
        c.destroy().unwrap();
        assert_eq!(entries(&base), Vec::<String>::new(), "destroy left files");
        assert!(!process_alive(pid), "server still running");
        let st = c.status();
        assert!(!st.initialized && !st.running);
        c.destroy().unwrap(); // twice is fine
    }

    #[test]
    fn owner_and_socket_folder_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let opts = ClusterOptions {
            fast: true,
            extra_hba: vec!["local all pwuser scram-sha-256".into()],
            ..Default::default()
        };
        let c = Guard(Cluster::at(tmp.path(), opts).unwrap());
        let c = &c.0;
        c.ensure_started().unwrap();

        let sock = fs::metadata(c.socket_dir()).unwrap();
        assert_eq!(sock.mode() & 0o777, 0o700);
        let data = fs::metadata(c.data_dir()).unwrap();
        assert_eq!(sock.uid(), data.uid());
        if is_root() {
            assert_ne!(data.uid(), 0, "the server must not run as root");
            assert_eq!(c.owner(), user_by_uid(data.uid()).unwrap().name);
        }
        assert_eq!(c.status().owner, c.owner());

        // Fast settings are on.
        assert_eq!(psql(c, "show fsync"), "off");
        assert_eq!(psql(c, "show synchronous_commit"), "off");
        assert_eq!(psql(c, "show full_page_writes"), "off");

        // Extra hba lines come before the trust line, and they are in force.
        let hba = fs::read_to_string(c.data_dir().join("pg_hba.conf")).unwrap();
        let extra = hba.find("local all pwuser scram-sha-256").unwrap();
        let trust = hba.find("local all all trust").unwrap();
        assert!(extra < trust, "{hba}");
        assert!(!hba.contains("host "), "{hba}");
        psql(c, "create role pwuser login password 'pw'");
        let out = psql_as(c, "pwuser", "select 1");
        assert!(!out.status.success(), "pwuser got in without a password");
    }

    #[test]
    fn concurrent_starts_with_a_long_base_share_one_server() {
        let tmp = tempfile::tempdir().unwrap();
        // The base's parent must be open to the server's owner.
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let base = tmp.path().join("x".repeat(120));
        let c = Guard(Cluster::at(&base, ClusterOptions::default()).unwrap());
        let sock = c.0.socket_dir().to_path_buf();
        assert!(
            sock.to_str().unwrap().starts_with("/tmp/hop-"),
            "{}",
            sock.display()
        );
        assert!(sock.as_os_str().len() + "/.s.PGSQL.5432".len() < 100);

        let results: Vec<Result<()>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..3)
                .map(|_| {
                    let base = base.clone();
                    s.spawn(move || Cluster::at(&base, ClusterOptions::default())?.ensure_started())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            r.unwrap();
        }
        assert!(c.0.status().running);
        assert_eq!(psql(&c.0, "select 1"), "1");
        c.0.destroy().unwrap();
        assert!(!sock.exists(), "the /tmp socket folder was left behind");
    }

    #[test]
    fn a_failed_start_quotes_the_server_log() {
        let tmp = tempfile::tempdir().unwrap();
        let c = Guard(
            Cluster::at(
                tmp.path(),
                ClusterOptions {
                    fast: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let c = &c.0;
        c.ensure_started().unwrap();
        c.stop().unwrap();
        let conf = c.data_dir().join("postgresql.conf");
        let mut f = fs::OpenOptions::new().append(true).open(&conf).unwrap();
        writeln!(f, "no_such_setting_xyz = 1").unwrap();
        drop(f);
        let err = c.ensure_started().unwrap_err();
        eprintln!("{}", err.render());
        // Only this start's lines, not the earlier successful start's.
        assert!(
            !err.message.contains("database system is ready"),
            "{}",
            err.message
        );
        assert!(
            err.message.starts_with("PostgreSQL did not start"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("no_such_setting_xyz"),
            "{}",
            err.message
        );
        assert!(!c.status().running);
    }

    #[test]
    fn a_socket_folder_of_someone_else_is_refused() {
        if !is_root() {
            return; // cannot make a folder owned by another user
        }
        let tmp = tempfile::tempdir().unwrap();
        let c = Guard(
            Cluster::at(
                tmp.path(),
                ClusterOptions {
                    fast: true,
                    ..Default::default()
                },
            )
            .unwrap(),
        );
        let c = &c.0;
        fs::create_dir(c.socket_dir()).unwrap();
        std::os::unix::fs::chown(c.socket_dir(), Some(54321), Some(54321)).unwrap();
        let err = c.ensure_started().unwrap_err();
        assert!(
            err.message.contains("belongs to uid 54321"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("rm -rf"));
        assert!(!c.status().running);
    }

    #[test]
    fn clone_cluster_lives_in_the_git_dir_when_reachable() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let git = tmp.path().join("repo/.git");
        fs::create_dir_all(&git).unwrap();
        let c = Cluster::for_clone(&git).unwrap();
        let git = fs::canonicalize(&git).unwrap();
        assert_eq!(c.data_dir(), git.join("hop/pg/data"));
        let sock = c.socket_dir().to_str().unwrap().to_string();
        assert!(sock.starts_with("/tmp/hop-"), "{sock}");
        assert!(sock.len() + "/.s.PGSQL.5432".len() < 100);
        // Nothing is created before ensure_started.
        assert!(!git.join("hop").exists());
    }

    #[test]
    fn clone_cluster_falls_back_when_its_owner_cannot_enter() {
        if !is_root() {
            return; // the fallback is for root only
        }
        // A root folder of mode 0700: `postgres` cannot enter it.
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let git = tmp.path().join("repo/.git");
        fs::create_dir_all(&git).unwrap();
        let c = Guard(Cluster::for_clone(&git).unwrap());
        let c = &c.0;
        let git = fs::canonicalize(&git).unwrap();
        let base = c.data_dir().parent().unwrap().to_path_buf();
        assert_eq!(
            base,
            Path::new(FALLBACK_ROOT).join(sha256_hex(git.as_os_str().as_bytes()))
        );
        c.ensure_started().unwrap();
        assert!(c.status().running);
        assert_eq!(psql(c, "select current_user"), "postgres");
        let location = git.join("hop/pg.location");
        assert_eq!(
            fs::read_to_string(&location).unwrap(),
            format!("{}\n", base.display())
        );
        // A second look goes by the recorded location and finds it running.
        let again = Cluster::for_clone(&git).unwrap();
        assert_eq!(again.data_dir(), c.data_dir());
        assert!(again.status().running);

        let sock = c.socket_dir().to_path_buf();
        c.destroy().unwrap();
        assert!(!base.exists(), "{} left behind", base.display());
        assert!(!sock.exists(), "{} left behind", sock.display());
        assert!(!location.exists());
        assert_eq!(entries(&git.join("hop")), Vec::<String>::new());
    }

    #[test]
    fn helpers() {
        assert_eq!(tail("a\n\nb\nc\n\n", 2), vec!["b", "c"]);
        assert_eq!(tail("", 2), Vec::<&str>::new());
        assert!(socket_dir_usable(Path::new("/tmp/abc/sock")));
        assert!(!socket_dir_usable(Path::new("/tmp/a b/sock")));
        assert!(!socket_dir_usable(Path::new("/tmp/it's/sock")));
        assert!(!socket_dir_usable(&Path::new("/tmp").join("y".repeat(90))));
        assert_eq!(
            nearest_existing(Path::new("/tmp/no/such/dir")),
            Path::new("/tmp")
        );
        assert_eq!(
            short_socket_dir(Path::new("/a"), 7),
            short_socket_dir(Path::new("/a"), 7)
        );
        assert_ne!(
            short_socket_dir(Path::new("/a"), 7),
            short_socket_dir(Path::new("/b"), 7)
        );
        assert_eq!(user_by_name("root").unwrap().uid, 0);
        assert_eq!(user_by_uid(0).unwrap().name, "root");
        assert!(user_by_name("no-such-user-hop").is_none());
        assert!(process_alive(std::process::id() as i32));
        assert!(!process_alive(i32::MAX));
    }
}
