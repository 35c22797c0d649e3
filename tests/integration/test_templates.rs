//! Template databases (docs/engine.md): `apply` and the `merge`
//! validation copy a template holding the snapshot and the staged head,
//! and replay only the current patch; the copy equals a replay; a busy
//! template falls back to a replay; `db gc` removes them; a production
//! clone never makes one.

use crate::support::{Project, pg, write};

/// Staged patches 1-a and 2-b (merged), then the current patch 3-c applied.
fn release_with_a_staged_head() -> Project {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    crate::support::set_tests_command(env, dir, "true");
    env.git(dir, &["commit", "-qam", "tests"]).ok();
    env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(dir, &["new", "minor"]).ok();
    for (id, sql) in [
        (
            "1-a",
            "CREATE TABLE a (id int PRIMARY KEY, t text);\nINSERT INTO a VALUES (1, 'x'), (2, 'y');\n",
        ),
        (
            "2-b",
            "CREATE TABLE b (id int REFERENCES a);\nCREATE INDEX ON b (id);\nINSERT INTO b VALUES (1);\n",
        ),
    ] {
        env.patch(dir, &["create", id]).ok();
        write(env, dir, &format!("Patches/{id}/01.sql"), sql);
        env.patch(dir, &["apply"]).ok();
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", id]).ok();
        env.patch(dir, &["merge"]).ok();
    }
    env.patch(dir, &["create", "3-c"]).ok();
    write(
        env,
        dir,
        "Patches/3-c/01.sql",
        "ALTER TABLE a ADD COLUMN n int DEFAULT 7;\n",
    );
    p
}

fn dumps(db: &str) -> (String, String) {
    let s = pg::server();
    (s.dump_schema(db), s.dump_data(db))
}

#[test]
fn a_copy_from_a_template_equals_a_replay_and_runs_only_the_current_patch() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    // The merge of 2-b left the template of the head 1-a, 2-b.
    let r = env.patch(dir, &["apply"]);
    r.ok()
        .stdout_has("copied from template")
        .stdout_has("and 2 staged patch(es)");
    assert!(!r.stdout.contains("made once"), "{}", r.stdout);
    r.stdout_has("applied 1 patch(es)");
    let from_template = dumps(&p.db);
    // The same with templates off: a full replay.
    env.git(dir, &["config", "hop.templateCache", "0"]).ok();
    let r = env.patch(dir, &["apply"]);
    r.ok();
    assert!(!r.stdout.contains("template"), "{}", r.stdout);
    assert_eq!(dumps(&p.db), from_template, "a copy differs from a replay");
    env.git(dir, &["config", "--unset", "hop.templateCache"])
        .ok();

    // db status lists them; db gc removes them all; the next apply makes
    // them again (once).
    let status = env.release(dir, &["db", "status"]).ok().out();
    assert!(status.contains("templates: "), "{status}");
    assert!(status.contains("hop_tpl_"), "{status}");
    env.release(dir, &["db", "gc"]).ok().stdout_has("removed ");
    env.release(dir, &["db", "status"])
        .ok()
        .stdout_has("templates: 0 of at most 4");
    env.patch(dir, &["apply"]).ok().stdout_has("made once");
    assert_eq!(dumps(&p.db), from_template);
}

#[test]
fn a_template_with_a_session_open_falls_back_to_a_replay() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    let status = env.release(dir, &["db", "status"]).ok().out();
    let names: Vec<&str> = status
        .split_whitespace()
        .filter(|w| w.starts_with("hop_tpl_"))
        .collect();
    assert!(!names.is_empty(), "no template listed: {status}");
    // An application (or a psql) connected to each of this clone's templates.
    let srv = pg::server();
    let mut holders = Vec::new();
    for name in names {
        let mut holder = postgres::Config::new()
            .host_path(&srv.socket_dir)
            .port(srv.port)
            .user(&srv.superuser)
            .dbname(name)
            .connect(postgres::NoTls)
            .unwrap();
        holder.simple_query("SELECT 1").unwrap();
        holders.push(holder);
    }
    let r = env.patch(dir, &["apply"]);
    r.ok().stdout_has("note: no template database (");
    assert_eq!(
        r.stdout.matches("note: no template database").count(),
        1,
        "{}",
        r.stdout
    );
    r.stdout_has("replaying the whole release");
    drop(holders);
    srv.psql(&p.db, "SELECT n FROM a LIMIT 1");
}

#[test]
fn a_production_clone_never_makes_a_template() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    env.git(dir, &["add", "-A"]).ok();
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "c"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();
    let prod_db = pg::unique_db_name("tplprod");
    env.release(
        dir,
        &["restore", "0.0.0", "--db-url", &pg::server().url(&prod_db)],
    )
    .ok();
    env.release(
        ".",
        &[
            "clone",
            p.origin_url(),
            "prod",
            "--database",
            &prod_db,
            "--production",
        ],
    )
    .ok();
    env.release("prod", &["upgrade"]).ok();
    let cache = hop::rebuild::template::Cache::for_clone(&env.path("prod").join(".git"), 4);
    let theirs = pg::server().psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE '%clone={}%'",
            cache.clone_id
        ),
    );
    assert_eq!(theirs, "0");
    env.release("prod", &["db", "status"])
        .ok()
        .stdout_has("a production clone never uses them");
    pg::server().drop_db(&prod_db);
}
