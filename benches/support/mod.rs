//! What the end-to-end benchmarks share: a throwaway PostgreSQL cluster
//! (socket only, fast settings, removed at the end even on a panic), an
//! isolated environment in which the real binaries run as a user runs them
//! (through `git`), a project made with `git hop-release init`, and the
//! timing rows (median and minimum of a few runs). Benchmarks only print:
//! speed depends on the machine and is never asserted.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "../../tests/common/pg.rs"]
mod pg;

/// The bench process's throwaway cluster (tests/common/pg.rs: stopped and
/// removed when the process ends).
pub struct Server {
    srv: &'static pg::TestServer,
}

impl Server {
    /// The cluster, on the same disk as the tests' (/tmp).
    pub fn start() -> Server {
        Server { srv: pg::server() }
    }

    /// The cluster in memory (/dev/shm when it has 2 GiB free, else /tmp;
    /// `HOP_BENCH_PGDIR` chooses another folder): where what is measured
    /// is git-hop and PostgreSQL rather than this machine's disk. Returns
    /// the folder too, for the report.
    pub fn start_in_memory() -> (Server, PathBuf) {
        let parent = match std::env::var_os("HOP_BENCH_PGDIR") {
            Some(d) => PathBuf::from(d),
            None if free_bytes(Path::new("/dev/shm")) >= 2 << 30 => PathBuf::from("/dev/shm"),
            None => PathBuf::from("/tmp"),
        };
        (
            Server {
                srv: pg::server_in(&parent),
            },
            parent,
        )
    }

    /// `postgresql://postgres@/<db>?host=<socket folder>`.
    pub fn url(&self, db: &str) -> String {
        self.srv.url(db)
    }

    /// The connection variables of database `db` for a child process.
    pub fn pg_env(&self, db: &str) -> Vec<(String, String)> {
        vec![
            ("PGHOST".into(), self.srv.socket_dir.display().to_string()),
            ("PGPORT".into(), self.srv.port.to_string()),
            ("PGUSER".into(), self.srv.superuser.clone()),
            ("PGDATABASE".into(), db.to_string()),
        ]
    }
}

/// Free bytes on the file system of `dir` (0 when it cannot be read).
fn free_bytes(dir: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return 0;
    };
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return 0;
    }
    st.f_bavail as u64 * st.f_frsize as u64
}

/// The folder of the freshly built binaries.
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_git-hop-release"))
        .parent()
        .expect("binary folder")
        .to_path_buf()
}

/// An isolated home: its own HOME and git config, the built binaries first
/// on PATH, no PG* variables, the cluster as `HOP_DATABASE_URL`.
pub struct Env {
    pub tmp: tempfile::TempDir,
    pub work: PathBuf,
    vars: Vec<(String, String)>,
}

impl Env {
    pub fn new(server: &Server) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("hop-bench-")
            .tempdir()
            .expect("temporary folder");
        let home = tmp.path().join("home");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&home).expect("home");
        std::fs::create_dir_all(&work).expect("work");
        let gitconfig = home.join(".gitconfig");
        std::fs::write(
            &gitconfig,
            "[user]\n\tname = Bench\n\temail = bench@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .expect("gitconfig");
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let vars = vec![
            ("PATH".into(), path),
            ("HOME".into(), home.display().to_string()),
            ("GIT_CONFIG_GLOBAL".into(), gitconfig.display().to_string()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("TMPDIR".into(), tmp.path().display().to_string()),
            ("LC_ALL".into(), "C".into()),
            ("TZ".into(), "UTC".into()),
            ("HOP_DATABASE_URL".into(), server.url("")),
        ];
        Env { tmp, work, vars }
    }

    /// The environment variables of the isolated commands.
    pub fn vars(&self) -> &[(String, String)] {
        &self.vars
    }

    /// `program args` in `dir` (relative to the work folder), isolated.
    pub fn cmd(&self, program: &str, dir: &str, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .args(args)
            .current_dir(self.work.join(dir))
            .stdin(Stdio::null());
        if let Ok(user) = std::env::var("USER") {
            c.env("USER", user);
        }
        c
    }

    /// Runs and requires success; returns what it printed.
    pub fn run(&self, program: &str, dir: &str, args: &[&str]) -> Output {
        let out = self
            .cmd(program, dir, args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn git(&self, dir: &str, args: &[&str]) -> String {
        let out = self.run("git", dir, args);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }

    /// `git hop-release init <package> --origin <bare origin>`.
    pub fn init_project(&self, package: &str) -> PathBuf {
        self.init_project_with(package, &[])
    }

    /// The bare origin of [`Env::init_project`].
    pub fn origin(&self) -> PathBuf {
        self.tmp.path().join("origin.git")
    }

    /// `git hop-release init <package> --origin <bare origin> EXTRA`.
    pub fn init_project_with(&self, package: &str, extra: &[&str]) -> PathBuf {
        let o = self.origin().display().to_string();
        self.run("git", ".", &["init", "-q", "--bare", "-b", "ho-prod", &o]);
        let mut args = vec!["hop-release", "init", package, "--origin", &o];
        args.extend_from_slice(extra);
        self.run("git", ".", &args);
        self.path(package)
    }
}

/// psql as git-hop runs it (no psqlrc, stop at the first error) on the
/// bench server, from a project's root (so `\i` paths are relative to it).
pub struct Psql<'a> {
    pub bin: PathBuf,
    pub server: &'a Server,
    pub root: PathBuf,
}

impl<'a> Psql<'a> {
    /// The psql git-hop itself runs (hop::db::pgbin).
    pub fn new(server: &'a Server, root: &Path) -> Psql<'a> {
        Psql {
            bin: hop::db::pgbin::client_tool("psql").unwrap_or_else(|e| panic!("{}", e.render())),
            server,
            root: root.to_path_buf(),
        }
    }

    /// `psql -X -q -v ON_ERROR_STOP=1 ARGS` on `db`; returns its stdout.
    pub fn run(&self, db: &str, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .env_remove("PGSERVICE")
            .env_remove("PGPASSWORD")
            .envs(self.server.pg_env(db))
            .current_dir(&self.root)
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `sql` on the maintenance database.
    pub fn admin(&self, sql: &str) {
        self.run("postgres", &["-c", sql]);
    }
}

/// Runs `cmd` with `stdin` on its standard input (as git feeds a
/// pre-push hook); its stdout is discarded.
pub fn feed(mut cmd: Command, stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Writes `text` to `dir/rel`, creating folders.
pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("folder");
    }
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
}

/// Runs `f` `runs` times and returns the durations.
pub fn time(runs: usize, mut f: impl FnMut()) -> Vec<Duration> {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect()
}

/// The median of `times` (sorted in place).
pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Prints one row: median and minimum; returns the median.
pub fn row(group: &str, name: &str, mut times: Vec<Duration>) -> Duration {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{group}/{name:<48} median {:>10.2?}  min {:>10.2?}  ({} runs)",
        median,
        times[0],
        times.len()
    );
    median
}
