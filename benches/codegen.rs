//! Benchmark of code generation on 500 tables (issue 3): introspection of a
//! live database (three catalog queries whatever the size), first generation,
//! and regeneration of an unchanged schema (which writes nothing).
//!
//! Run with `cargo bench --bench codegen`. It starts a throwaway PostgreSQL
//! cluster (socket only; as the `postgres` user when run as root) and prints
//! one row per measure: the median and minimum of a few runs.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hop::codegen::{generate, introspect};

const TABLES: usize = 500;
const RUNS: usize = 7;

fn pg_bindir() -> PathBuf {
    if let Ok(dir) = std::env::var("HOP_PG_BINDIR") {
        return PathBuf::from(dir);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return dir;
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
        .pop()
        .expect("no PostgreSQL server binaries (initdb) found")
}

fn as_postgres(args: &[&str]) {
    let root = unsafe { libc::geteuid() == 0 };
    let out = if root {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .args(args)
            .output()
    } else {
        Command::new(args[0]).args(&args[1..]).output()
    }
    .expect("cannot run a PostgreSQL binary");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn row(name: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "codegen/{name:<32} median {:>9.2?}  min {:>9.2?}  ({} runs)",
        times[times.len() / 2],
        times[0],
        times.len()
    );
}

fn main() {
    let bin = pg_bindir();
    let dir = tempfile::Builder::new()
        .prefix("hopbench")
        .tempdir_in("/tmp")
        .expect("temp dir");
    if unsafe { libc::geteuid() == 0 } {
        let st = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status();
        assert!(st.is_ok_and(|s| s.success()), "chown failed");
    }
    let data = dir.path().join("data");
    let (initdb, pg_ctl) = (bin.join("initdb"), bin.join("pg_ctl"));
    let (data_s, log_s) = (
        data.display().to_string(),
        dir.path().join("log").display().to_string(),
    );
    as_postgres(&[
        initdb.to_str().unwrap_or("initdb"),
        "-D",
        &data_s,
        "-U",
        "postgres",
        "-A",
        "trust",
        "--no-sync",
        "--no-instructions",
    ]);
    let opts = format!(
        "-k {} -c listen_addresses='' -c fsync=off",
        dir.path().display()
    );
    as_postgres(&[
        pg_ctl.to_str().unwrap_or("pg_ctl"),
        "-D",
        &data_s,
        "-l",
        &log_s,
        "-w",
        "-o",
        &opts,
        "start",
    ]);

    let result = std::panic::catch_unwind(|| {
        let mut client = postgres::Config::new()
            .host_path(dir.path())
            .user("postgres")
            .dbname("postgres")
            .connect(postgres::NoTls)
            .expect("connect");
        let mut ddl = String::from("CREATE SCHEMA app;\n");
        for i in 0..TABLES {
            let fk = if i > 0 {
                format!(", parent int REFERENCES app.t{}(id)", i - 1)
            } else {
                String::new()
            };
            ddl.push_str(&format!(
                "CREATE TABLE app.t{i} (id serial PRIMARY KEY, label text NOT NULL DEFAULT '', at timestamptz DEFAULT now(){fk});\n"
            ));
        }
        client.batch_execute(&ddl).expect("schema");

        let mut times = Vec::new();
        let mut model = None;
        for _ in 0..RUNS {
            let t = Instant::now();
            model = Some(introspect(&mut client).expect("introspect"));
            times.push(t.elapsed());
        }
        let model = model.expect("model");
        assert_eq!(model.relations.len(), TABLES);
        row(&format!("introspect_{TABLES}_tables"), times);

        let (mut first, mut again) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let root = tempfile::tempdir().expect("temp dir");
            let t = Instant::now();
            let report = generate(&model, root.path(), "app", "app").expect("generate");
            first.push(t.elapsed());
            assert_eq!(report.written.len(), 2 * TABLES + 2);
            let t = Instant::now();
            let report = generate(&model, root.path(), "app", "app").expect("generate");
            again.push(t.elapsed());
            assert!(report.written.is_empty());
        }
        row(&format!("generate_{TABLES}_tables"), first);
        row(&format!("regenerate_{TABLES}_unchanged"), again);
    });

    as_postgres(&[
        pg_ctl.to_str().unwrap_or("pg_ctl"),
        "-D",
        &data_s,
        "-m",
        "immediate",
        "-w",
        "stop",
    ]);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
