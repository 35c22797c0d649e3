//! The workflow benchmark (docs/engine.md, "Fast rebuilds"; README,
//! "Performance"): every command of a release's life, run as a user runs
//! it, against a real PostgreSQL and a bare origin, beside the floor of
//! each database step (the SQL that step must run, in one `psql`).
//!
//! The scenario: a production database of TABLES tables adopted by `git
//! hop-release init --database`, published to a bare origin, and a
//! production clone of it at 0.0.0; then release 0.1.0 of PATCHES patches,
//! each a table of 4 columns and an index, patch BIG also inserting ROWS
//! rows as single-row INSERTs; each patch is created, applied and merged
//! (with a trivial test command); then `promote rc`, `promote prod`, and
//! the production clone's `upgrade` of the whole release.
//!
//! Measured, median and minimum of several runs (a step that changes
//! origin is repeated by putting both repositories', and the production
//! database's, state back between runs, which is not timed):
//!
//! - `--help`, `status`, a hook with nothing to do (the installed
//!   `post-merge` and `pre-push` files, as git runs them);
//! - `release new` and `patch create`, beside the floor of the push they
//!   make (a new commit of two files, to three refs, atomically);
//! - `patch apply` at patches 1, 10 and PATCHES, with templates and with
//!   replays (`hop.templateCache 0`), beside the patch's own SQL;
//! - `patch merge` at the same patches, with templates and with replays,
//!   and the median of all PATCHES merges of the scenario;
//! - `promote rc`, `promote prod` (beside the snapshot and the release's
//!   SQL in one `psql -1` on a new database), `upgrade` (beside the
//!   release's SQL in one transaction on the production database, and the
//!   backup, a `pg_dump -Fc`);
//! - code generation for GEN_TABLES tables (`git hop-release generate`).
//!
//! Run with `cargo bench --bench workflow` (`-- --json` for a machine-read
//! report on stdout; the progress goes to stderr). Nothing is asserted:
//! speed depends on the machine. The cluster runs in memory (see
//! `Server::start_in_memory`; `HOP_BENCH_PGDIR` puts it elsewhere).
//! `HOP_BENCH_TRACE=1` runs `apply` and `merge` once more at each measured
//! patch and prints their output lines with their times
//! (`HOP_BENCH_STRACE=FILE` adds the processes they start);
//! `HOP_BENCH_PAUSE=FILE` stops at the last patch (with
//! `HOP_BENCH_PAUSE_AT=upgrade`, before the upgrade, in the production
//! clone) with the environment in FILE, to try commands by hand.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hop::db::conn::ConnParams;
use hop::version::Version;
use support::{Env, Psql, Server, median, time, write};

const TABLES: usize = 200;
const PATCHES: usize = 20;
const BIG: usize = 2;
const ROWS: usize = 10_000;
const GEN_TABLES: usize = 500;
const RUNS: usize = 5;
const QUICK: usize = 15;
/// The patches at which apply and merge are measured.
const AT: [usize; 3] = [1, 10, PATCHES];

const DIR: &str = "benchwf";
/// What the floor of `release new` and `patch create` is.
const PUSH_FLOOR: &str = "one git push of a new commit (two files) to three refs";
const PROD: &str = "benchwf-prod";
const PROD_DB: &str = "benchwf_prod";

/// One line of the report.
struct Measure {
    name: String,
    times: Vec<Duration>,
    /// The floor this step cannot go under (its SQL, a push…), if any.
    floor: Option<(String, Duration)>,
    /// The same step with templates off (`hop.templateCache 0`).
    replay: Option<Duration>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Measure>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    fn add(
        &mut self,
        name: impl Into<String>,
        mut times: Vec<Duration>,
        floor: Option<(&str, Duration)>,
        replay: Option<Duration>,
    ) -> Duration {
        let name = name.into();
        let m = median(&mut times);
        eprintln!(
            "  {name:<44} median {:>9.1} ms  min {:>9.1} ms  ({} runs){}",
            ms(m),
            ms(times[0]),
            times.len(),
            floor.map_or(String::new(), |(what, f)| format!(
                "  floor {:.1} ms ({what})",
                ms(f)
            ))
        );
        self.rows.push(Measure {
            name,
            times,
            floor: floor.map(|(w, f)| (w.to_string(), f)),
            replay,
        });
        m
    }

    fn print_table(&self) {
        println!(
            "\n{:<44} {:>10} {:>10} {:>5} {:>10} {:>10} {:>10} {:>8}",
            "step", "median ms", "min ms", "runs", "floor ms", "- floor", "replay ms", "speed-up"
        );
        for r in &self.rows {
            let mut t = r.times.clone();
            let m = median(&mut t);
            let (floor, over) = match &r.floor {
                Some((_, f)) => (format!("{:.1}", ms(*f)), format!("{:+.1}", ms(m) - ms(*f))),
                None => (String::new(), String::new()),
            };
            let (replay, ratio) = match r.replay {
                Some(rp) => (
                    format!("{:.1}", ms(rp)),
                    format!("{:.1}x", rp.as_secs_f64() / m.as_secs_f64()),
                ),
                None => (String::new(), String::new()),
            };
            println!(
                "{:<44} {:>10.1} {:>10.1} {:>5} {:>10} {:>10} {:>10} {:>8}",
                r.name,
                ms(m),
                ms(t[0]),
                t.len(),
                floor,
                over,
                replay,
                ratio
            );
        }
        println!("\nfloors:");
        let mut seen = Vec::new();
        for r in &self.rows {
            if let Some((what, _)) = &r.floor
                && !seen.contains(what)
            {
                println!("  {what}");
                seen.push(what.clone());
            }
        }
    }

    fn print_json(&self, machine: &str) {
        let rows: Vec<serde_json::Value> = self
            .rows
            .iter()
            .map(|r| {
                let mut t = r.times.clone();
                let m = median(&mut t);
                serde_json::json!({
                    "step": r.name,
                    "median_ms": ms(m),
                    "min_ms": ms(t[0]),
                    "runs": t.len(),
                    "floor_ms": r.floor.as_ref().map(|(_, f)| ms(*f)),
                    "floor": r.floor.as_ref().map(|(w, _)| w.clone()),
                    "replay_ms": r.replay.map(ms),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "schema_version": 1,
            "benchmark": "workflow",
            "machine": machine,
            "scenario": {
                "snapshot_tables": TABLES,
                "patches": PATCHES,
                "big_patch": BIG,
                "big_patch_rows": ROWS,
                "codegen_tables": GEN_TABLES,
            },
            "rows": rows,
        });
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
    }
}

/// The refs of a repository and where its HEAD points, to put back after
/// a step that is measured several times.
struct RepoState {
    dir: String,
    refs: Vec<(String, String)>,
    head: Option<String>,
    bare: bool,
}

impl RepoState {
    fn save(env: &Env, dir: &str, bare: bool) -> RepoState {
        // Symbolic refs (origin/HEAD) follow their target.
        let list = env.git(
            dir,
            &[
                "for-each-ref",
                "--format=%(objectname) %(refname) %(symref)",
            ],
        );
        let refs = list
            .lines()
            .filter_map(|l| {
                let mut w = l.split(' ');
                match (w.next(), w.next(), w.next()) {
                    (Some(o), Some(r), Some("") | None) => Some((o.to_string(), r.to_string())),
                    _ => None,
                }
            })
            .collect();
        let head = if bare {
            None
        } else {
            Some(env.git(dir, &["symbolic-ref", "HEAD"]))
        };
        RepoState {
            dir: dir.to_string(),
            refs,
            head,
            bare,
        }
    }

    /// Refs back as saved (new ones deleted), then the work tree at HEAD.
    fn restore(&self, env: &Env) {
        let now = RepoState::save(env, &self.dir, true);
        let mut script = String::new();
        for (_, r) in &now.refs {
            if !self.refs.iter().any(|(_, s)| s == r) {
                script.push_str(&format!("delete {r}\n"));
            }
        }
        for (o, r) in &self.refs {
            script.push_str(&format!("update {r} {o}\n"));
        }
        let mut child = env
            .cmd("git", &self.dir, &["update-ref", "--stdin"])
            // Restoring a production clone's tags between runs is the
            // bench's own bookkeeping: past its no-local-tags hook.
            .env("GIT_HOP_INTERNAL", "1")
            .stdin(Stdio::piped())
            .spawn()
            .expect("git update-ref");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(script.as_bytes())
            .expect("write");
        assert!(child.wait().expect("wait").success(), "update-ref failed");
        if !self.bare {
            let head = self.head.as_deref().expect("head");
            let branch = head.strip_prefix("refs/heads/").unwrap_or(head);
            env.git(
                &self.dir,
                &[
                    "-c",
                    "core.hooksPath=/dev/null",
                    "checkout",
                    "-q",
                    "-f",
                    branch,
                ],
            );
            env.git(&self.dir, &["clean", "-q", "-f", "-d"]);
        }
    }
}

/// The SQL files of patch `k`.
fn patch_files(k: usize) -> Vec<(String, String)> {
    let mut files = vec![(
        "01_table.sql".to_string(),
        format!(
            "CREATE TABLE p{k} (id serial PRIMARY KEY, name text NOT NULL, score int NOT NULL DEFAULT 0, created timestamptz NOT NULL DEFAULT now());\n\
             CREATE INDEX p{k}_name ON p{k} (name);\n"
        ),
    )];
    if k == BIG {
        let mut rows = String::with_capacity(ROWS * 50);
        for i in 1..=ROWS {
            rows.push_str(&format!(
                "INSERT INTO p{k} (name, score) VALUES ('row {i}', {});\n",
                i % 97
            ));
        }
        files.push(("02_rows.sql".to_string(), rows));
    }
    files
}

fn patch_id(k: usize) -> String {
    format!("{k}-p{k:02}")
}

/// A psql script of `\i` lines for patches `ks`, between `begin` and `end`.
fn driver(ks: impl Iterator<Item = usize>, begin: &str, end: &str) -> String {
    let mut s = format!("{begin}\n");
    for k in ks {
        for (name, _) in patch_files(k) {
            s.push_str(&format!("\\i Patches/{}/{name}\n", patch_id(k)));
        }
    }
    s.push_str(end);
    s.push('\n');
    s
}

struct Bench<'a> {
    env: &'a Env,
    psql: Psql<'a>,
    report: Report,
    drivers: std::path::PathBuf,
}

impl Bench<'_> {
    fn hop(&self, dir: &str, args: &[&str]) -> String {
        String::from_utf8_lossy(&self.env.run("git", dir, args).stdout).into_owned()
    }

    /// With `HOP_BENCH_TRACE` set, runs `args` once more and prints each
    /// line of its output with the milliseconds since the start (where
    /// a step's time goes).
    fn trace(&self, dir: &str, args: &[&str]) {
        if std::env::var_os("HOP_BENCH_TRACE").is_none() {
            return;
        }
        use std::io::BufRead;
        let t = Instant::now();
        // With HOP_BENCH_STRACE=FILE, also the processes it starts.
        let strace = std::env::var("HOP_BENCH_STRACE").ok();
        let mut cmd = match &strace {
            Some(f) => {
                let mut a = vec!["-f", "-ttt", "-e", "trace=execve", "-o", f, "git"];
                a.extend_from_slice(args);
                self.env.cmd("strace", dir, &a)
            }
            None => self.env.cmd("git", dir, args),
        };
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        for line in std::io::BufReader::new(out).lines() {
            eprintln!("    {:>7.1} ms | {}", ms(t.elapsed()), line.expect("line"));
        }
        let st = child.wait().expect("wait");
        eprintln!("    {:>7.1} ms | exit {st}", ms(t.elapsed()));
        if let Some(f) = strace {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let mut t0 = None;
            for l in text
                .lines()
                .filter(|l| l.contains("execve(") && !l.contains("ENOENT"))
            {
                let mut w = l.split_whitespace();
                let (_pid, ts) = (w.next(), w.next().and_then(|t| t.parse::<f64>().ok()));
                let Some(ts) = ts else { continue };
                let t0 = *t0.get_or_insert(ts);
                let call: String = l
                    .split("execve(")
                    .nth(1)
                    .unwrap_or("")
                    .chars()
                    .take(140)
                    .collect();
                eprintln!("    {:>7.1} ms + {call}", (ts - t0) * 1000.0);
            }
        }
    }

    fn config(&self, dir: &str, key: &str, value: Option<&str>) {
        match value {
            Some(v) => self.env.git(dir, &["config", key, v]),
            None => {
                let _ = self
                    .env
                    .cmd("git", dir, &["config", "--unset", key])
                    .output();
                String::new()
            }
        };
    }

    /// The template databases on the server (docs/engine.md).
    fn templates(&self) -> Vec<String> {
        self.psql
            .run(
                "postgres",
                &[
                    "-At",
                    "-c",
                    "SELECT datname FROM pg_database WHERE starts_with(shobj_description(oid, 'pg_database'), 'git-hop template:')",
                ],
            )
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Writes a psql script under the bench's folder; returns its path.
    fn script(&self, name: &str, text: &str) -> String {
        let p = self.drivers.join(name);
        std::fs::write(&p, text).expect("driver");
        p.display().to_string()
    }

    /// `psql -f` of `script` on `db`, RUNS times.
    fn floor(&self, db: &str, script: &str) -> Duration {
        median(&mut time(RUNS, || {
            self.psql.run(db, &["-f", script]);
        }))
    }

    /// Runs `step` RUNS times, putting `states` (and, through `reset`,
    /// anything else) back after each run but the last.
    fn repeated(
        &self,
        states: &[&RepoState],
        mut reset: impl FnMut(),
        mut step: impl FnMut(),
    ) -> Vec<Duration> {
        let mut times = Vec::new();
        for i in 0..RUNS {
            let t = Instant::now();
            step();
            times.push(t.elapsed());
            if i + 1 < RUNS {
                for s in states {
                    s.restore(self.env);
                }
                reset();
            }
        }
        times
    }
}

/// A commit on `DIR`'s HEAD with two files added, in folders as `patch
/// create` writes them (a release file, a patch's README): what the push
/// floor pushes. Made through a temporary index; no ref is moved.
fn floor_commit(env: &Env, n: usize) -> String {
    let dir = env.path(&format!("floor-{n}"));
    std::fs::create_dir_all(&dir).expect("floor folder");
    let index = dir.join("index");
    let git = |args: &[&str]| {
        let out = env
            .cmd("git", DIR, args)
            .env("GIT_INDEX_FILE", &index)
            .output()
            .expect("git");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["read-tree", "HEAD"]);
    for (name, path) in [
        ("toml", format!(".hop/releases/floor-{n}-patches.toml")),
        ("readme", format!("Patches/{n}-floor/README.md")),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, format!("[patches]\n\"{n}-floor\" = \"candidate\"\n"))
            .expect("floor file");
        let blob = git(&["hash-object", "-w", &file.display().to_string()]);
        git(&[
            "update-index",
            "--add",
            "--cacheinfo",
            &format!("100644,{blob},{path}"),
        ]);
    }
    let tree = git(&["write-tree"]);
    git(&[
        "commit-tree",
        &tree,
        "-p",
        "HEAD",
        "-m",
        &format!("floor {n}"),
    ])
}

/// With `HOP_BENCH_PAUSE=FILE` (and `HOP_BENCH_PAUSE_AT` naming `at`,
/// `patch` by default), writes to FILE the shell variables of the bench's
/// environment (to try commands by hand in the scenario, in `dir`), then
/// waits until FILE.go exists.
fn pause(env: &Env, server: &Server, dir: &str, at: &str) {
    let Some(file) = std::env::var_os("HOP_BENCH_PAUSE") else {
        return;
    };
    if std::env::var("HOP_BENCH_PAUSE_AT")
        .as_deref()
        .unwrap_or("patch")
        != at
    {
        return;
    }
    let file = std::path::PathBuf::from(file);
    let mut text = String::new();
    for (k, v) in env.vars() {
        text.push_str(&format!("export {k}='{v}'\n"));
    }
    for (k, v) in server.pg_env("postgres") {
        text.push_str(&format!("export {k}='{v}'\n"));
    }
    text.push_str(&format!("cd '{}'\n", env.path(dir).display()));
    std::fs::write(&file, text).expect("pause file");
    let go = file.with_extension("go");
    eprintln!("paused: . {} ; then touch {}", file.display(), go.display());
    while !go.exists() {
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let started = Instant::now();
    let (server, pg_dir) = Server::start_in_memory();
    let env = Env::new(&server);
    let drivers = env.tmp.path().join("drivers");
    std::fs::create_dir_all(&drivers).expect("drivers folder");
    let root = env.path(DIR);
    let mut b = Bench {
        env: &env,
        psql: Psql::new(&server, &env.work),
        report: Report::default(),
        drivers,
    };
    eprintln!(
        "workflow: a production database of {TABLES} tables, a release of {PATCHES} patches ({ROWS} single-row INSERTs in patch {BIG}); {}; cluster under {}",
        machine(),
        pg_dir.display()
    );

    // The production database, adopted by init and published.
    b.psql.admin(&format!("CREATE DATABASE {DIR}"));
    let mut ddl = String::new();
    for i in 1..=TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE s{i} (id serial PRIMARY KEY, name text NOT NULL, value int, created timestamptz DEFAULT now());\n\
             INSERT INTO s{i} (name, value) SELECT 'r' || g, g FROM generate_series(1, 5) g;\n"
        ));
    }
    let legacy = b.script("legacy.sql", &ddl);
    b.psql.run(DIR, &["-1", "-f", &legacy]);
    env.init_project_with(DIR, &["--database", DIR]);
    b.psql = Psql::new(&server, &root);
    let cfg = root.join(".hop/config");
    let text = std::fs::read_to_string(&cfg)
        .expect("config")
        .replace("command = \"pytest\"", "command = \"true\"");
    std::fs::write(&cfg, text).expect("config");
    env.git(DIR, &["commit", "-qam", "trivial tests"]);
    env.git(DIR, &["push", "-q", "--no-verify", "origin", "ho-prod"]);
    let origin = env.origin().display().to_string();
    let origin_dir = "../origin.git";

    // The production clone, at 0.0.0.
    b.hop(
        DIR,
        &[
            "hop-release",
            "restore",
            "0.0.0",
            "--db-url",
            &server.url(PROD_DB),
        ],
    );
    b.hop(
        ".",
        &[
            "hop-release",
            "clone",
            &origin,
            PROD,
            "--database",
            PROD_DB,
            "--production",
        ],
    );

    eprintln!("\nstart-up and hooks:");
    let patch_bin = support::bin_dir().join("git-hop-patch");
    let patch_bin = patch_bin.to_str().expect("path");
    let release_bin = support::bin_dir().join("git-hop-release");
    let release_bin = release_bin.to_str().expect("path");
    env.run(patch_bin, DIR, &["--help"]);
    let t = time(QUICK, || {
        env.run(patch_bin, DIR, &["--help"]);
    });
    b.report.add("git-hop-patch --help", t, None, None);
    let t = time(QUICK, || {
        env.run(release_bin, DIR, &["status"]);
    });
    b.report.add("git-hop-release status", t, None, None);

    // The floor of release new and patch create: one push of what they
    // push, a new commit changing two files (a release file, a README)
    // atomically to three refs, to refs no one else uses (deleted after).
    let floor_commits: Vec<String> = (1..=QUICK).map(|n| floor_commit(&env, n)).collect();
    let mut n = 0;
    let push_floor = median(&mut time(QUICK, || {
        let c = &floor_commits[n];
        n += 1;
        env.git(
            DIR,
            &[
                "push",
                "-q",
                "--no-verify",
                "--atomic",
                "origin",
                &format!("{c}:refs/heads/floor-{n}"),
                &format!("{c}:refs/heads/floor-{n}-b"),
                &format!("{c}:refs/hop/floor-{n}"),
            ],
        );
    }));
    for i in 1..=n {
        env.git(
            DIR,
            &[
                "push",
                "-q",
                "--no-verify",
                "origin",
                "--delete",
                &format!("refs/heads/floor-{i}"),
                &format!("refs/heads/floor-{i}-b"),
                &format!("refs/hop/floor-{i}"),
            ],
        );
    }

    // release new, measured RUNS times (both repositories put back).
    let origin_state = RepoState::save(&env, origin_dir, true);
    let dev_state = RepoState::save(&env, DIR, false);
    let t = b.repeated(
        &[&origin_state, &dev_state],
        || {},
        || {
            b.hop(DIR, &["hop-release", "new", "minor"]);
        },
    );
    b.report
        .add("release new", t, Some((PUSH_FLOOR, push_floor)), None);

    // The floor database: the snapshot, then each merged patch.
    let floor_db = "benchwf_floor";
    b.psql.admin(&format!("CREATE DATABASE {floor_db}"));
    let params =
        ConnParams::parse(&server.url(floor_db)).unwrap_or_else(|e| panic!("{}", e.render()));
    let v000: Version = "0.0.0".parse().expect("version");
    hop::snapshot::load(&params, &root, &v000).unwrap_or_else(|e| panic!("{}", e.render()));

    // What copying a template of this snapshot costs the server.
    let copy = time(RUNS, || {
        b.psql
            .admin(&format!("CREATE DATABASE benchwf_copy TEMPLATE {floor_db}"));
        b.psql.admin("DROP DATABASE benchwf_copy");
    });
    b.report.add(
        format!("CREATE + DROP DATABASE … TEMPLATE ({TABLES} tables)"),
        copy,
        None,
        None,
    );

    eprintln!("\nthe release, patch by patch:");
    let mut creates = Vec::new();
    let mut merges = Vec::new();
    for k in 1..=PATCHES {
        let id = patch_id(k);
        let t = Instant::now();
        b.hop(DIR, &["hop-patch", "create", &id, "-d", "bench"]);
        creates.push(t.elapsed());
        for (name, sql) in patch_files(k) {
            write(&root, &format!("Patches/{id}/{name}"), &sql);
        }
        let own = b.script(
            &format!("own-{k}.sql"),
            &driver(std::iter::once(k), "BEGIN;", "ROLLBACK;"),
        );
        if k == PATCHES {
            pause(&env, &server, DIR, "patch");
        }
        if AT.contains(&k) {
            let floor = b.floor(floor_db, &own);
            let what = "the patch's own SQL in one psql, on the staged head";
            b.config(DIR, "hop.templateCache", Some("0"));
            let mut replay = time(RUNS, || {
                b.hop(DIR, &["hop-patch", "apply"]);
            });
            let replay = median(&mut replay);
            b.config(DIR, "hop.templateCache", None);
            let t = time(RUNS, || {
                b.hop(DIR, &["hop-patch", "apply"]);
            });
            b.report.add(
                format!("patch apply at patch {k}"),
                t,
                Some((what, floor)),
                Some(replay),
            );
            b.trace(DIR, &["hop-patch", "apply"]);

            env.git(DIR, &["add", "-A"]);
            env.git(DIR, &["commit", "-qm", &id]);
            let origin_state = RepoState::save(&env, origin_dir, true);
            let dev_state = RepoState::save(&env, DIR, false);
            b.config(DIR, "hop.templateCache", Some("0"));
            let mut replay = b.repeated(
                &[&origin_state, &dev_state],
                || {},
                || {
                    b.hop(DIR, &["hop-patch", "merge"]);
                },
            );
            origin_state.restore(&env);
            dev_state.restore(&env);
            let replay = median(&mut replay);
            b.config(DIR, "hop.templateCache", None);
            // Each run pays what the first one does: the templates a run
            // makes (the new staged head's) are dropped before the next.
            let before = b.templates();
            let forget = || {
                for t in b.templates() {
                    if !before.contains(&t) {
                        b.psql.admin(&format!("DROP DATABASE {t}"));
                    }
                }
            };
            if std::env::var_os("HOP_BENCH_TRACE").is_some() {
                b.trace(DIR, &["hop-patch", "merge"]);
                origin_state.restore(&env);
                dev_state.restore(&env);
                forget();
            }
            let t = b.repeated(&[&origin_state, &dev_state], forget, || {
                b.hop(DIR, &["hop-patch", "merge"]);
            });
            merges.push(t[t.len() - 1]);
            b.report.add(
                format!("patch merge at patch {k}"),
                t,
                Some((what, floor)),
                Some(replay),
            );
        } else {
            b.hop(DIR, &["hop-patch", "apply"]);
            env.git(DIR, &["add", "-A"]);
            env.git(DIR, &["commit", "-qm", &id]);
            let t = Instant::now();
            b.hop(DIR, &["hop-patch", "merge"]);
            merges.push(t.elapsed());
        }
        let commit = b.script(
            &format!("commit-{k}.sql"),
            &driver(std::iter::once(k), "BEGIN;", "COMMIT;"),
        );
        b.psql.run(floor_db, &["-f", &commit]);
    }
    b.report.add(
        format!("patch create (all {PATCHES})"),
        creates,
        Some((PUSH_FLOOR, push_floor)),
        None,
    );
    b.report.add(
        format!("patch merge (all {PATCHES}, one run each)"),
        merges,
        None,
        None,
    );

    // The promotions: their floor is a new database holding the snapshot
    // and the whole release, in one psql -1.
    let whole = b.script(
        "promote-floor.sql",
        &format!(
            "\\i .hop/model/schema-0.0.0.sql\n\\i .hop/model/data-0.0.0.sql\n\\i .hop/model/metadata-0.0.0.sql\nSET search_path = public;\n{}",
            driver(1..=PATCHES, "", "")
        ),
    );
    let full_db = "benchwf_full";
    let promote_floor = median(&mut time(RUNS, || {
        b.psql.admin(&format!("DROP DATABASE IF EXISTS {full_db}"));
        b.psql.admin(&format!("CREATE DATABASE {full_db}"));
        b.psql.run(full_db, &["-1", "-f", &whole]);
    }));
    let what = "a new database, the snapshot and the release in one psql -1";
    eprintln!("\npromotions and upgrade:");
    for (step, args) in [
        ("promote rc", ["hop-release", "promote", "rc"]),
        ("promote prod", ["hop-release", "promote", "prod"]),
    ] {
        let origin_state = RepoState::save(&env, origin_dir, true);
        let dev_state = RepoState::save(&env, DIR, false);
        let t = b.repeated(
            &[&origin_state, &dev_state],
            || {},
            || {
                b.hop(DIR, &args);
            },
        );
        b.report.add(step, t, Some((what, promote_floor)), None);
    }

    // upgrade of the whole release on the production clone; the database
    // is put back from a copy between runs.
    let saved = "benchwf_prod_saved";
    b.psql
        .admin(&format!("CREATE DATABASE {saved} TEMPLATE {PROD_DB}"));
    let release_tx = b.script(
        "upgrade-floor.sql",
        &driver(1..=PATCHES, "BEGIN;", "ROLLBACK;"),
    );
    let upgrade_floor = b.floor(saved, &release_tx);
    let dump = env.tmp.path().join("floor.dump").display().to_string();
    let pg_dump =
        hop::db::pgbin::client_tool("pg_dump").unwrap_or_else(|e| panic!("{}", e.render()));
    let backup = median(&mut time(RUNS, || {
        let out = std::process::Command::new(&pg_dump)
            .args(["-Fc", "-f", &dump])
            .envs(server.pg_env(saved))
            .output()
            .expect("pg_dump");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }));
    pause(&env, &server, PROD, "upgrade");
    let prod_state = RepoState::save(&env, PROD, false);
    let t = b.repeated(
        &[&prod_state],
        || {
            b.psql
                .admin(&format!("DROP DATABASE {PROD_DB} WITH (FORCE)"));
            b.psql
                .admin(&format!("CREATE DATABASE {PROD_DB} TEMPLATE {saved}"));
            // The copy's WAL written out now, not by a checkpoint during
            // the timed run.
            b.psql.admin("CHECKPOINT");
        },
        || {
            b.hop(PROD, &["hop-release", "upgrade"]);
        },
    );
    b.report.add(
        "upgrade (0.0.0 to 0.1.0)",
        t,
        Some((
            "the release in one transaction, plus a pg_dump -Fc backup",
            upgrade_floor + backup,
        )),
        None,
    );

    // Hooks with nothing to do, through the installed files.
    let hooks = root.join(".git/hooks");
    let post_merge = hooks.join("post-merge").display().to_string();
    let pre_push = hooks.join("pre-push").display().to_string();
    let head = env.git(DIR, &["rev-parse", "HEAD"]);
    env.git(DIR, &["update-ref", "ORIG_HEAD", &head]);
    let line = format!(
        "refs/heads/feature {head} refs/heads/feature {}\n",
        "0".repeat(40)
    );
    let t = time(QUICK, || {
        env.run("sh", DIR, &[&post_merge, "0"]);
    });
    b.report
        .add("hook post-merge, nothing to do", t, None, None);
    let t = time(QUICK, || {
        let out = support::feed(env.cmd("sh", DIR, &[&pre_push, "origin", &origin]), &line);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    b.report
        .add("hook pre-push, a feature branch", t, None, None);

    // Code generation for GEN_TABLES tables.
    let gen_db = "benchwf_gen";
    b.psql.admin(&format!("CREATE DATABASE {gen_db}"));
    let mut ddl = String::new();
    for i in 1..=GEN_TABLES {
        ddl.push_str(&format!(
            "CREATE TABLE g{i} (id serial PRIMARY KEY, name text NOT NULL, value int, created timestamptz DEFAULT now(){});\n",
            if i > 1 { format!(", parent int REFERENCES g{}(id)", i - 1) } else { String::new() }
        ));
    }
    let gen_sql = b.script("gen.sql", &ddl);
    b.psql.run(gen_db, &["-1", "-f", &gen_sql]);
    b.hop(
        ".",
        &["hop-release", "init", "benchgen", "--database", gen_db],
    );
    let gen_root = env.path("benchgen");
    let t = time(RUNS, || {
        let _ = std::fs::remove_dir_all(gen_root.join("benchgen"));
        b.hop("benchgen", &["hop-release", "generate"]);
    });
    b.report.add(
        format!("generate, {GEN_TABLES} tables (first)"),
        t,
        None,
        None,
    );
    let t = time(RUNS, || {
        b.hop("benchgen", &["hop-release", "generate"]);
    });
    b.report.add(
        format!("generate, {GEN_TABLES} tables (unchanged)"),
        t,
        None,
        None,
    );

    eprintln!(
        "\nbenchmark done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if json {
        b.report.print_json(&machine());
    } else {
        println!("workflow benchmark on {}", machine());
        b.report.print_table();
    }
}
