//! Benchmark of `git hop-patch apply` (docs/releases.md, docs/engine.md) on a release with
//! STAGED patches of FILES SQL files each (a table, a column with a foreign
//! key, an index, a hundred rows, a view and a function: small DDL, as most
//! patches are), and of the same patches run in other ways, to check the
//! claim that one psql process for a whole rebuild beats one per patch or
//! per file (docs/engine.md), on this machine:
//!
//! - `git hop-patch apply`, end to end as a user runs it (drop and create
//!   the database, load the snapshot, one psql process for the patches,
//!   regenerate the code);
//! - git-hop's runner alone (`rebuild::runner::run_patches`: one psql process,
//!   each patch in a transaction with its `hop_patch` row);
//! - one psql process with a plain driver of `\i` lines (no metadata);
//! - one psql process per patch (a driver of its files each);
//! - one psql process per file;
//! - for reference, one `psql -c 'SELECT 1'`: the cost of a process and its
//!   connection alone (a process after DDL costs more: each new backend
//!   rebuilds the relation cache the DDL invalidated).
//!
//! The last four run on a fresh database with the production snapshot
//! loaded (not timed). Run with `cargo bench --bench apply`; it starts a
//! throwaway PostgreSQL cluster and prints the median and minimum of RUNS
//! runs per row, then the ratios.

mod support;

use std::time::Duration;

use hop::db::conn::ConnParams;
use hop::patch_id::PatchId;
use hop::rebuild::runner::{self as patch_runner, PatchToRun, RunOptions};
use hop::version::Version;
use support::{Env, Psql, Server, row, time, write};

const STAGED: usize = 20;
const FILES: usize = 5;
const RUNS: usize = 5;

/// The SQL files of staged patch `k` (1-based).
fn patch_files(k: usize) -> Vec<(String, String)> {
    let fk = if k > 1 {
        format!(", ADD COLUMN parent int REFERENCES t{}(id)", k - 1)
    } else {
        String::new()
    };
    vec![
        (
            "01_table.sql".into(),
            format!(
                "CREATE TABLE t{k} (id serial PRIMARY KEY, name text NOT NULL, created timestamptz NOT NULL DEFAULT now());\n"
            ),
        ),
        (
            "02_columns.sql".into(),
            format!("ALTER TABLE t{k} ADD COLUMN score int NOT NULL DEFAULT 0{fk};\n"),
        ),
        (
            "03_index.sql".into(),
            format!("CREATE INDEX t{k}_name ON t{k} (name);\n"),
        ),
        (
            "04_data.sql".into(),
            format!(
                "INSERT INTO t{k} (name, score) SELECT 'row ' || g, g % 7 FROM generate_series(1, 100) AS g;\n"
            ),
        ),
        (
            "05_view.sql".into(),
            format!(
                "CREATE VIEW v{k} AS SELECT id, name FROM t{k} WHERE score > 0;\n\
                 CREATE FUNCTION f{k}() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM t{k}';\n"
            ),
        ),
    ]
}

fn patch_id(k: usize) -> String {
    format!("{k}-t{k:02}")
}

/// A new database `db` holding the production snapshot.
fn fresh(psql: &Psql, db: &str, params: &ConnParams, production: &Version) {
    psql.admin(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    psql.admin(&format!("CREATE DATABASE {db}"));
    hop::snapshot::load(params, &psql.root, production)
        .unwrap_or_else(|e| panic!("{}", e.render()));
}

/// Times `f` on `RUNS` fresh databases (the preparation is not timed).
fn on_fresh(
    psql: &Psql,
    db: &str,
    params: &ConnParams,
    production: &Version,
    mut f: impl FnMut(),
) -> Vec<Duration> {
    (0..RUNS)
        .map(|_| {
            fresh(psql, db, params, production);
            time(1, &mut f)[0]
        })
        .collect()
}

fn main() {
    let server = Server::start();
    let env = Env::new(&server);
    let root = env.init_project("benchapply");
    let dir = "benchapply";
    env.run("git", dir, &["hop-release", "new", "minor"]);
    let current = format!("{}-bench", STAGED + 1);
    env.run(
        "git",
        dir,
        &["hop-patch", "create", &current, "-d", "bench"],
    );

    // STAGED patches, staged in the release file ahead of the current one
    // (as merges would have left them), committed on the patch branch.
    let mut toml = String::from("[patches]\n");
    for k in 1..=STAGED {
        let id = patch_id(k);
        write(&root, &format!("Patches/{id}/README.md"), "bench\n");
        for (name, sql) in patch_files(k) {
            write(&root, &format!("Patches/{id}/{name}"), &sql);
        }
        toml.push_str(&format!("\"{id}\" = \"staged\"\n"));
    }
    toml.push_str(&format!("\"{current}\" = \"candidate\"\n"));
    write(&root, ".hop/releases/0.1.0-patches.toml", &toml);
    env.git(dir, &["add", "-A"]);
    env.git(dir, &["commit", "-qm", "bench patches"]);

    println!(
        "apply: {STAGED} staged patches x {FILES} SQL files (+ the current patch, README only)"
    );
    let mut last = String::new();
    row(
        "apply",
        "git hop-patch apply (end to end)",
        time(RUNS, || {
            let out = env.run("git", dir, &["hop-patch", "apply"]);
            last = String::from_utf8_lossy(&out.stdout).into_owned();
        }),
    );
    for line in last.lines() {
        let line = line.trim();
        if line.contains("snapshot")
            || line.starts_with("applied ")
            || line.starts_with("generated")
        {
            println!("    last run: {line}");
        }
    }

    let db = "benchapply_cmp";
    let params = ConnParams::parse(&server.url(db)).unwrap_or_else(|e| panic!("{}", e.render()));
    let psql = Psql::new(&server, &root);
    let production: Version = "0.0.0".parse().expect("version");
    let release: Version = "0.1.0".parse().expect("version");
    let patches: Vec<PatchToRun> = (1..=STAGED)
        .map(|k| PatchToRun {
            id: PatchId::parse(&patch_id(k)).expect("id"),
            dir: root.join("Patches").join(patch_id(k)),
        })
        .collect();
    let files = |k: usize| -> Vec<String> {
        patch_files(k)
            .into_iter()
            .map(|(name, _)| format!("Patches/{}/{name}", patch_id(k)))
            .collect()
    };
    let drivers = env.tmp.path().join("drivers");
    std::fs::create_dir_all(&drivers).expect("drivers folder");
    let mut all = String::new();
    let mut per_patch = Vec::new();
    for k in 1..=STAGED {
        let mut one = String::new();
        for f in files(k) {
            one.push_str(&format!("\\i {f}\n"));
        }
        all.push_str(&format!("BEGIN;\n{one}COMMIT;\n"));
        let p = drivers.join(format!("patch-{k}.sql"));
        std::fs::write(&p, one).expect("driver");
        per_patch.push(p.display().to_string());
    }
    let all_path = drivers.join("all.sql");
    std::fs::write(&all_path, all).expect("driver");
    let all_path = all_path.display().to_string();

    println!("\nthe {STAGED} patches alone, on a fresh database holding the snapshot:");
    let runner = row(
        "apply",
        "git-hop runner (1 psql, hop_patch rows)",
        on_fresh(&psql, db, &params, &production, || {
            let mut sink = std::io::sink();
            patch_runner::run_patches(
                &params,
                &release,
                &patches,
                RunOptions {
                    root: &root,
                    extra_env: Vec::new(),
                    out: &mut sink,
                },
            )
            .unwrap_or_else(|e| panic!("{}", e.render()));
        }),
    );
    // The psql git-hop runs (PATH first: on Debian/Ubuntu /usr/bin/psql is
    // pg_wrapper, a Perl script), and the binary itself.
    let mut bins = vec![("psql on PATH", psql.bin.clone())];
    if let Ok(pg) = hop::db::pgbin::PgBin::find() {
        let direct = pg.tool("psql");
        if direct.is_file()
            && std::fs::canonicalize(&direct).ok() != std::fs::canonicalize(&psql.bin).ok()
        {
            bins.push(("psql binary", direct));
        }
    }
    for (label, bin) in bins {
        let psql = Psql {
            bin: bin.clone(),
            server: &server,
            root: root.clone(),
        };
        println!("\nwith {label} ({}):", bin.display());
        let one = row(
            "apply",
            "1 psql, plain \\i driver",
            on_fresh(&psql, db, &params, &production, || {
                psql.run(db, &["-f", &all_path]);
            }),
        );
        let by_patch = row(
            "apply",
            &format!("{STAGED} psql (one per patch)"),
            on_fresh(&psql, db, &params, &production, || {
                for p in &per_patch {
                    psql.run(db, &["--single-transaction", "-f", p]);
                }
            }),
        );
        let by_file = row(
            "apply",
            &format!("{} psql (one per file)", STAGED * FILES),
            on_fresh(&psql, db, &params, &production, || {
                for k in 1..=STAGED {
                    for f in files(k) {
                        psql.run(db, &["--single-transaction", "-f", &f]);
                    }
                }
            }),
        );
        row(
            "apply",
            "1 psql -c 'SELECT 1' (a process, no DDL)",
            time(4 * RUNS, || {
                psql.run(db, &["-c", "SELECT 1"]);
            }),
        );
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "ratios of medians: one per patch / 1 psql = {:.1}x, one per file / 1 psql = {:.1}x, git-hop runner / plain driver = {:.1}x",
            ratio(by_patch, one),
            ratio(by_file, one),
            ratio(runner, one)
        );
    }
}
