//! Benchmark of loading a model snapshot (docs/snapshots.md), the first
//! step of every development rebuild: git-hop's loader (pre-data, data,
//! metadata, post-data, in one psql process and one transaction) against
//! the order git-hop used before, which is also what `psql -1 -f schema -f
//! data` does: the whole schema with its indexes and foreign keys, then the
//! rows. The snapshot: TABLES tables, each with a primary key, an index, a
//! foreign key to the previous one and ROWS rows, dumped by git-hop from a
//! real database. Run with `cargo bench --bench snapshot`; prints the median
//! and minimum of RUNS loads into fresh databases (creating them is not
//! timed), then the ratio.

mod support;

use std::time::Duration;

use hop::db::conn::ConnParams;
use support::{Psql, Server, row, time};

const TABLES: usize = 40;
const ROWS: usize = 2000;
const RUNS: usize = 7;

fn psql(server: &Server, db: &str, args: &[&str]) {
    Psql::new(server, &std::env::temp_dir()).run(db, args);
}

fn fresh(server: &Server, db: &str) {
    psql(
        server,
        "postgres",
        &["-c", &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")],
    );
    psql(
        server,
        "postgres",
        &["-c", &format!("CREATE DATABASE {db}")],
    );
}

/// Times `f` on `RUNS` fresh databases `db`.
fn on_fresh(server: &Server, db: &str, mut f: impl FnMut()) -> Vec<Duration> {
    (0..RUNS)
        .map(|_| {
            fresh(server, db);
            time(1, &mut f)[0]
        })
        .collect()
}

fn main() {
    let server = Server::start();
    let source = "benchsnap_source";
    fresh(&server, source);
    let mut setup = String::from(
        "CREATE SCHEMA half_orm_meta; CREATE TABLE half_orm_meta.hop_release (version text PRIMARY KEY);\n",
    );
    for k in 1..=TABLES {
        let fk = if k > 1 {
            format!(", parent int REFERENCES t{}(id)", k - 1)
        } else {
            String::new()
        };
        setup.push_str(&format!(
            "CREATE TABLE t{k} (id int PRIMARY KEY, name text NOT NULL, score int NOT NULL DEFAULT 0{fk});\n\
             CREATE INDEX t{k}_name ON t{k} (name);\n\
             INSERT INTO t{k} (id, name, score{}) SELECT g, 'row ' || g, g % 7{} FROM generate_series(1, {ROWS}) AS g;\n",
            if k > 1 { ", parent" } else { "" },
            if k > 1 { ", g" } else { "" },
        ));
    }
    psql(&server, source, &["-c", &setup]);
    let params =
        ConnParams::parse(&server.url(source)).unwrap_or_else(|e| panic!("{}", e.render()));
    let schema = hop::snapshot::dump_schema(&params).unwrap_or_else(|e| panic!("{}", e.render()));
    let data = hop::snapshot::dump_data(&params).unwrap_or_else(|e| panic!("{}", e.render()));
    let tmp = tempfile::tempdir().expect("temporary folder");
    let v: hop::version::Version = "1.0.0".parse().expect("version");
    let files = hop::snapshot::write(tmp.path(), &v, &schema, &data, "SELECT 1;\n")
        .unwrap_or_else(|e| panic!("{}", e.render()));
    println!(
        "load a snapshot: {TABLES} tables x {ROWS} rows, a primary key, an index and a foreign key each ({} KiB of schema, {} KiB of data)",
        schema.len() / 1024,
        data.len() / 1024
    );

    let db = "benchsnap_target";
    let target = ConnParams::parse(&server.url(db)).unwrap_or_else(|e| panic!("{}", e.render()));
    let (s, d, m) = (
        files.schema.display().to_string(),
        files.data.display().to_string(),
        files.metadata.display().to_string(),
    );
    let before = row(
        "snapshot",
        "schema whole, then data (the order before)",
        on_fresh(&server, db, || {
            psql(
                &server,
                db,
                &["--single-transaction", "-f", &s, "-f", &d, "-f", &m],
            )
        }),
    );
    let now = row(
        "snapshot",
        "pre-data, data, post-data (git-hop's loader)",
        on_fresh(&server, db, || {
            hop::snapshot::load::load_files(&target, &files)
                .unwrap_or_else(|e| panic!("{}", e.render()));
        }),
    );
    println!(
        "ratio of medians: git-hop's loader / the order before = {:.2}",
        now.as_secs_f64() / before.as_secs_f64()
    );
}
