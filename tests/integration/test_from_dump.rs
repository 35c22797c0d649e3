//! `git hop-patch apply --from-dump FILE`: a data-migration patch tried on
//! a copy of production data (custom and plain dumps), and every dump that
//! cannot be used refused before the working database is touched.

use std::process::Command;

use crate::support::{Project, TestEnv, patch_with, pg};

fn sql(db: &str, q: &str) -> String {
    pg::server().psql(db, q)
}

/// `pg_dump ARGS -f FILE DB` of the test server.
fn pg_dump(env: &TestEnv, db: &str, file: &str, args: &[&str]) {
    let out = Command::new("pg_dump")
        .args(args)
        .args(["-f", file, &pg::server().url(db)])
        .env("TZ", "UTC")
        .env("HOME", &env.home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the working database holds, to see that a refusal changed nothing.
fn state(db: &str) -> String {
    sql(
        db,
        "SELECT (SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public') \
         || ' ' || (SELECT count(*) FROM public.person) \
         || ' ' || (SELECT string_agg(patch_id, ',' ORDER BY patch_id) FROM half_orm_meta.hop_patch)",
    )
}

#[test]
fn apply_from_dump_runs_a_data_migration_on_production_rows_and_refuses_unusable_dumps() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "1-person",
        &[(
            "Patches/1-person/01.sql",
            "CREATE TABLE person (id int PRIMARY KEY, name text NOT NULL);\n",
        )],
    );
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();

    // "Production" at 0.1.0 with 1,000 rows, and a database still at 0.0.0.
    let prod = pg::unique_db_name("prod");
    let old = pg::unique_db_name("old");
    for (db, v) in [(&prod, "0.1.0"), (&old, "0.0.0")] {
        env.release(dir, &["restore", v, "--db-url", &pg::server().url(db)])
            .ok();
    }
    sql(
        &prod,
        "INSERT INTO person SELECT i, 'person ' || i FROM generate_series(1, 1000) i",
    );
    let custom = env.tmp.path().join("prod.dump").display().to_string();
    let plain = env.tmp.path().join("prod.sql").display().to_string();
    let at_old = env.tmp.path().join("old.dump").display().to_string();
    pg_dump(env, &prod, &custom, &["-Fc"]);
    pg_dump(env, &prod, &plain, &["--create"]);
    pg_dump(env, &old, &at_old, &["-Fc"]);

    // The next release: a data migration.
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.2.0",
        "2-upper",
        &[(
            "Patches/2-upper/01.sql",
            "ALTER TABLE person ADD COLUMN shout text;\nUPDATE person SET shout = upper(name);\n",
        )],
    );
    env.patch(dir, &["apply", "--from-dump", &custom])
        .ok()
        .stdout_has(&format!("dump {custom} restored (production 0.1.0"))
        .stdout_has("2-upper");
    assert_eq!(
        sql(
            &p.db,
            "SELECT count(*) || ' ' || count(*) FILTER (WHERE shout = upper(name) AND shout LIKE 'PERSON %') FROM person"
        ),
        "1000 1000"
    );
    // The same from a plain dump, made with --create (its CREATE DATABASE
    // and \connect are left out: the working database is the one restored).
    sql(&p.db, "UPDATE person SET name = 'changed'");
    env.patch(dir, &["apply", "--from-dump", &plain]).ok();
    assert_eq!(
        sql(
            &p.db,
            "SELECT count(*) FILTER (WHERE shout = upper(name) AND name <> 'changed') FROM person"
        ),
        "1000"
    );

    // Unusable dumps: one line, and the working database as it was.
    let before = state(&p.db);
    let truncated = env.tmp.path().join("cut.dump");
    let bytes = std::fs::read(&custom).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let cut_plain = env.tmp.path().join("cut.sql");
    let text = std::fs::read_to_string(&plain).unwrap();
    std::fs::write(&cut_plain, &text[..text.len() - 200]).unwrap();
    let readme = env.path(dir).join(".hop/config");
    let missing = env.tmp.path().join("missing.dump");
    for (file, says) in [
        (missing.display().to_string(), "cannot read the dump"),
        (truncated.display().to_string(), "cannot be read whole"),
        (cut_plain.display().to_string(), "is incomplete"),
        (readme.display().to_string(), "is not a pg_dump file"),
        (
            at_old.clone(),
            "is of a database at version 0.0.0, production is at 0.1.0",
        ),
    ] {
        let run = env.patch(dir, &["apply", "--from-dump", &file]);
        run.fails(1).stderr_has(says);
        let first = run.stderr.lines().next().unwrap_or_default().to_string();
        assert!(
            first.starts_with("error: ") && first.contains(says),
            "{}",
            run.stderr
        );
        assert_eq!(state(&p.db), before, "{file}");
    }
    // A dump that passes the checks but fails while it is restored (a
    // statement the server refuses, half-way): the working database as it
    // was, and no restore database left behind.
    let failing = env.tmp.path().join("failing.sql");
    let at = text.find("COPY ").expect("the plain dump has COPY data");
    std::fs::write(
        &failing,
        format!("{}SELECT 1 / 0;\n{}", &text[..at], &text[at..]),
    )
    .unwrap();
    let run = env.patch(dir, &["apply", "--from-dump", failing.to_str().unwrap()]);
    run.fails(1)
        .stderr_has("division by zero")
        .stderr_has(&format!("database {} was left as it was", p.db));
    assert_eq!(state(&p.db), before);
    assert_eq!(
        sql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_hop_restore_')",
                p.db
            )
        ),
        "0"
    );
    for db in [&prod, &old] {
        pg::server().drop_db(db);
    }
}
