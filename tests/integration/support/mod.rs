//! The integration-test harness: one throwaway PostgreSQL cluster per test
//! run (`pg`), and per test an isolated environment (`TestEnv`) in which the
//! real binaries run as processes against real git.

#![allow(dead_code)]

#[path = "../../common/pg.rs"]
pub mod pg;
#[path = "../../common/venv.rs"]
pub mod venv;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// An isolated home for one test: its own HOME, git config, PATH with the
/// freshly built binaries first, TZ=UTC, no PG* variables, no TTY.
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub work: PathBuf,
    extra: Vec<(String, String)>,
}

pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_git-hop-release"))
        .parent()
        .unwrap()
        .to_path_buf()
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let tmp = tempfile::Builder::new().prefix("hop-t").tempdir().unwrap();
        let home = tmp.path().join("home");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(
            home.join(".gitconfig"),
            "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        TestEnv {
            tmp,
            home,
            work,
            extra: Vec::new(),
        }
    }

    /// A TestEnv whose commands use the shared test server for `db`.
    pub fn with_server(db: &str) -> TestEnv {
        let mut env = TestEnv::new();
        env.set("HOP_DATABASE_URL", &pg::server().url(db));
        env
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.extra.retain(|(k, _)| k != key);
        self.extra.push((key.into(), value.into()));
    }

    pub fn unset(&mut self, key: &str) {
        self.extra.retain(|(k, _)| k != key);
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.work.join(rel)
    }

    /// A command with the isolated environment, run in `dir` (relative to work).
    pub fn cmd(&self, program: &str, dir: &str) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        c.env("PATH", path)
            .env("HOME", &self.home)
            .env("GIT_CONFIG_GLOBAL", self.home.join(".gitconfig"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("TZ", "UTC")
            .env("TMPDIR", self.tmp.path())
            .env("LC_ALL", "C")
            .env("USER", whoami())
            .current_dir(self.work.join(dir))
            .stdin(Stdio::null());
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c
    }

    /// Runs `git hop-release ARGS` (through git, as a user would).
    pub fn release(&self, dir: &str, args: &[&str]) -> Run {
        let mut a = vec!["hop-release"];
        a.extend_from_slice(args);
        self.run("git", dir, &a)
    }

    pub fn patch(&self, dir: &str, args: &[&str]) -> Run {
        let mut a = vec!["hop-patch"];
        a.extend_from_slice(args);
        self.run("git", dir, &a)
    }

    pub fn git(&self, dir: &str, args: &[&str]) -> Run {
        self.run("git", dir, args)
    }

    pub fn run(&self, program: &str, dir: &str, args: &[&str]) -> Run {
        let out = self.cmd(program, dir).args(args).output().unwrap();
        Run::from(program, args, out)
    }

    /// A bare repository to serve as origin.
    pub fn bare_origin(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(format!("{name}.git"));
        let r = self.run(
            "git",
            ".",
            &["init", "-q", "--bare", "-b", "ho-prod", p.to_str().unwrap()],
        );
        r.ok();
        p
    }
}

pub fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| {
        if is_root() {
            "root".into()
        } else {
            "user".into()
        }
    })
}

pub fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// What a finished process printed, with assertions that show it all.
pub struct Run {
    pub cmdline: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(program: &str, args: &[&str], out: Output) -> Run {
        Run {
            cmdline: format!("{program} {}", args.join(" ")),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The run of a command built by hand (`TestEnv::cmd`), named `cmdline`.
    pub fn from_output(cmdline: &str, out: Output) -> Run {
        Run {
            cmdline: cmdline.to_string(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn show(&self) -> String {
        format!(
            "`{}` exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmdline, self.code, self.stdout, self.stderr
        )
    }

    #[track_caller]
    pub fn ok(&self) -> &Run {
        assert_eq!(self.code, Some(0), "{}", self.show());
        self
    }

    /// Fails with exit code `code`, one `error:` line, no panic/backtrace.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &Run {
        assert_eq!(self.code, Some(code), "{}", self.show());
        assert!(!self.stderr.contains("panicked"), "{}", self.show());
        assert!(!self.stderr.contains("RUST_BACKTRACE"), "{}", self.show());
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Run {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n{}",
            self.show()
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Run {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n{}",
            self.show()
        );
        self
    }

    pub fn out(&self) -> String {
        self.stdout.trim_end().to_string()
    }
}

/// Writes `text` to `rel` in the clone `dir`, creating folders.
pub fn write(env: &TestEnv, dir: &str, rel: &str, text: &str) {
    let p = env.path(dir).join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Sets the project's `[tests] command` in the clone `dir` (uncommitted).
/// The worktrees of clone `dir` but its validation slots (kept for reuse
/// under `.git/hop/tmp/validate-slot-N`, docs/engine.md): 1 when no
/// temporary worktree is left.
pub fn worktrees(env: &TestEnv, dir: &str) -> usize {
    env.git(dir, &["worktree", "list"])
        .out()
        .lines()
        .filter(|l| !l.contains("/.git/hop/tmp/validate-slot-"))
        .count()
}

pub fn set_tests_command(env: &TestEnv, dir: &str, command: &str) {
    let cfg = env.path(dir).join(".hop/config");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("command = \"pytest\"", &format!("command = \"{command}\""));
    std::fs::write(cfg, text).unwrap();
}

impl Project {
    /// Sets `[tests] command`, commits it on ho-prod and publishes it.
    pub fn publish_tests_command(&self, command: &str) {
        let (env, dir) = (&self.env, self.name.as_str());
        set_tests_command(env, dir, command);
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", "tests command"]).ok();
        env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
            .ok();
    }
}

/// The snapshot file `kind`-`v`.sql of the clone `dir`.
pub fn model(env: &TestEnv, dir: &str, kind: &str, v: &str) -> String {
    std::fs::read_to_string(env.path(dir).join(format!(".hop/model/{kind}-{v}.sql"))).unwrap()
}

/// Database `db` holds exactly the schema and data of snapshot `v` (as the
/// clone `dir` has it).
#[track_caller]
pub fn holds_snapshot(env: &TestEnv, dir: &str, db: &str, v: &str) {
    let s = pg::server();
    assert_eq!(
        s.dump_schema(db),
        model(env, dir, "schema", v),
        "schema of {db} vs snapshot {v}"
    );
    assert_eq!(
        s.dump_data(db),
        model(env, dir, "data", v),
        "data of {db} vs snapshot {v}"
    );
}

/// Files under `dir` (relative paths, sorted), `.git` excluded.
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A project initialized with a bare origin on the shared test server.
pub struct Project {
    pub env: TestEnv,
    /// The folder and package.
    pub name: String,
    /// The working database.
    pub db: String,
    pub origin: PathBuf,
}

impl Project {
    pub fn new() -> Project {
        Project::on(&pg::server().server_url())
    }

    /// A project whose every command reaches the test server through
    /// `server_url` (a URL without a database name).
    pub fn on(server_url: &str) -> Project {
        let mut env = TestEnv::new();
        env.set("HOP_DATABASE_URL", server_url);
        let name = pg::unique_db_name("p");
        let origin = env.bare_origin("origin");
        env.release(".", &["init", &name, "--origin", origin.to_str().unwrap()])
            .ok();
        Project {
            env,
            db: name.clone(),
            name,
            origin,
        }
    }

    /// A project on the shared test server whose working database is `db`
    /// (its folder and package get a name of their own).
    pub fn with_database(db: &str) -> Project {
        let mut env = TestEnv::new();
        env.set("HOP_DATABASE_URL", &pg::server().server_url());
        let name = pg::unique_db_name("p");
        let origin = env.bare_origin("origin");
        env.release(
            ".",
            &[
                "init",
                &name,
                "--database",
                db,
                "--origin",
                origin.to_str().unwrap(),
            ],
        )
        .ok();
        Project {
            env,
            db: db.to_string(),
            name,
            origin,
        }
    }

    pub fn origin_url(&self) -> &str {
        self.origin.to_str().unwrap()
    }

    /// Another developer's clone (own folder and database).
    pub fn clone_as(&self, dir: &str) -> String {
        let db = pg::unique_db_name(dir);
        self.env
            .release(".", &["clone", self.origin_url(), dir, "--database", &db])
            .ok();
        db
    }

    /// Everything that describes a clone's local state: refs, HEAD, status.
    pub fn local_state(&self, dir: &str) -> String {
        let refs = self
            .env
            .git(dir, &["for-each-ref", "--format=%(refname) %(objectname)"])
            .out();
        let head = self.env.git(dir, &["symbolic-ref", "-q", "HEAD"]).out();
        let status = self
            .env
            .git(dir, &["status", "--porcelain", "--untracked-files=all"])
            .out();
        let files = tree(&self.env.path(dir)).join("\n");
        format!("HEAD {head}\n{refs}\n--status\n{status}\n--files\n{files}")
    }

    pub fn origin_refs(&self) -> String {
        self.env.git(".", &["ls-remote", self.origin_url()]).out()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // This clone's template databases too, so the shared server stays small.
        let _ = self.env.release(&self.name, &["db", "gc"]);
        pg::server().drop_db(&self.db);
    }
}

/// In clone `dir`: creates patch `id` in release `version` from the
/// release branch as origin has it, writes `files` (paths relative to the
/// clone), applies, commits and pushes the patch branch; stays on it.
pub fn patch_with(env: &TestEnv, dir: &str, version: &str, id: &str, files: &[(&str, &str)]) {
    env.git(dir, &["switch", "-q", &format!("ho-release/{version}")])
        .ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", id]).ok();
    for (rel, text) in files {
        write(env, dir, rel, text);
    }
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
    env.git(dir, &["push", "-q", "origin", &format!("ho-patch/{id}")])
        .ok();
}
