//! Faithful model snapshots: loaded in pg_restore's order (the user's
//! triggers never fire, materialized views populated as they were),
//! proved at promotion and at merge, by a role without superuser, through
//! promote → apply → merge → clone → restore and a production upgrade.

use crate::support::{Project, TestEnv, holds_snapshot, model, pg, write};

/// The project's tests read the materialized view `stats` when it exists
/// (an unpopulated one refuses to be read).
const CHECK: &str = "psql -X -q -v ON_ERROR_STOP=1 -c \"DO \\$\\$ BEGIN IF to_regclass('public.stats') IS NOT NULL THEN PERFORM * FROM public.stats; END IF; END \\$\\$;\"\n";

/// Release 0.1.0: the three defects of loading a snapshot with its
/// triggers in place, and materialized views.
const DEFECTS: &str = r#"-- A trigger that reads another table by an unqualified name.
CREATE TABLE crates (name text PRIMARY KEY);
CREATE TABLE reserved (name text PRIMARY KEY);
CREATE FUNCTION not_in_use() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name IN (SELECT name FROM crates) THEN RAISE EXCEPTION 'in use'; END IF; RETURN NEW; END $$;
CREATE TRIGGER t BEFORE INSERT ON reserved FOR EACH ROW EXECUTE FUNCTION not_in_use();
INSERT INTO reserved VALUES ('std');
-- A statement-level trigger, on an empty table.
CREATE TABLE events (id int);
CREATE FUNCTION count_crates() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM count(*) FROM crates; RETURN NULL; END $$;
CREATE TRIGGER s AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION count_crates();
-- An audit trigger with qualified names: it must not run again on a load.
CREATE TABLE items (id int PRIMARY KEY, name text);
CREATE TABLE audit (id serial PRIMARY KEY, item int, what text);
CREATE FUNCTION audit_item() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO public.audit (item, what) VALUES (NEW.id, TG_OP); RETURN NEW; END $$;
CREATE TRIGGER a AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit_item();
INSERT INTO items VALUES (1, 'one'), (2, 'two');
-- Reference data frozen once written: a load that fires it fails.
CREATE TABLE frozen (k text PRIMARY KEY);
INSERT INTO frozen VALUES ('a');
CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'frozen'; END $$;
CREATE TRIGGER f BEFORE INSERT ON frozen FOR EACH ROW EXECUTE FUNCTION refuse();
-- Materialized views: one populated, one not.
CREATE MATERIALIZED VIEW stats AS SELECT count(*) AS n FROM items;
CREATE UNIQUE INDEX stats_n ON stats (n);
CREATE MATERIALIZED VIEW later AS SELECT count(*) AS n FROM audit WITH NO DATA;
"#;

/// Release 0.2.0: more audited rows, a refresh, and a generated column
/// through an SQL function whose body names its type without the schema.
const MORE: &str = r#"INSERT INTO items VALUES (3, 'three');
REFRESH MATERIALIZED VIEW CONCURRENTLY stats;
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE FUNCTION mood_of(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT (x::mood)::text $$;
CREATE TABLE feelings (x text, m text GENERATED ALWAYS AS (mood_of(x)) STORED);
INSERT INTO feelings (x) VALUES ('happy');
"#;

/// A generated column through a function whose body names a type of a
/// schema that only the patch's own search_path reaches: no database can
/// be built from its snapshot.
const UNLOADABLE: &str = r#"CREATE SCHEMA app;
CREATE TYPE app.level AS ENUM ('low', 'high');
SET search_path = app, public;
CREATE FUNCTION app.level_of(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT (x::level)::text $$;
CREATE TABLE app.readings (x text, l text GENERATED ALWAYS AS (app.level_of(x)) STORED);
INSERT INTO app.readings (x) VALUES ('low');
"#;

const FIX: &str = "ALTER FUNCTION app.level_of(text) SET search_path = app;\n";

fn use_check(p: &Project) {
    write(&p.env, &p.name, "tests/check.sh", CHECK);
    p.publish_tests_command("sh tests/check.sh");
}

/// Creates patch `id` with `files`, applies and commits it.
fn patch(env: &TestEnv, dir: &str, id: &str, files: &[(&str, &str)]) {
    env.patch(dir, &["create", id]).ok();
    for (name, text) in files {
        write(env, dir, &format!("Patches/{id}/{name}"), text);
    }
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
}

fn sql(db: &str, q: &str) -> String {
    pg::server().psql(db, q)
}

/// What every database built from snapshot 0.1.0 (`at_0_2 = false`) or
/// 0.2.0 holds: the triggers' rows once, the view populated, the other not.
#[track_caller]
fn holds_rows(db: &str, at_0_2: bool) {
    let (items, audit) = if at_0_2 { ("3", "3") } else { ("2", "2") };
    assert_eq!(sql(db, "SELECT count(*) FROM public.items"), items);
    assert_eq!(sql(db, "SELECT count(*) FROM public.audit"), audit);
    assert_eq!(sql(db, "SELECT n FROM public.stats"), items);
    assert_eq!(
        sql(
            db,
            "SELECT string_agg(matviewname || '=' || ispopulated, ',' ORDER BY matviewname) FROM pg_matviews"
        ),
        "later=false,stats=true"
    );
    assert_eq!(sql(db, "SELECT name FROM public.reserved"), "std");
    assert_eq!(sql(db, "SELECT k FROM public.frozen"), "a");
    if at_0_2 {
        assert_eq!(sql(db, "SELECT m FROM public.feelings"), "happy");
        assert_eq!(sql(db, "SELECT l FROM app.readings"), "low");
    }
}

/// `restore V` into a fresh database; it must hold snapshot V.
fn restore_holds(env: &TestEnv, dir: &str, v: &str) -> String {
    let db = pg::unique_db_name("restored");
    env.release(dir, &["restore", v, "--db-url", &pg::server().pw_url(&db)])
        .ok()
        .stdout_has(&format!("at production version {v}"));
    holds_snapshot(env, dir, &db, v);
    db
}

#[test]
fn snapshots_reload_what_production_holds_through_every_command() {
    let srv = pg::server();
    let p = Project::on(&srv.pw_url(""));
    let (env, dir) = (&p.env, p.name.as_str());
    // Every database of this test belongs to a role without superuser.
    assert_eq!(
        sql(
            "postgres",
            &format!(
                "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{dir}'"
            )
        ),
        pg::PW_USER
    );
    use_check(&p);

    // 0.1.0: the defects. merge proves the snapshot (the patch has triggers).
    env.release(dir, &["new", "minor"]).ok();
    patch(env, dir, "1-defects", &[("01.sql", DEFECTS)]);
    env.patch(dir, &["merge"])
        .ok()
        .stdout_has("proving that the release's snapshot reloads");
    env.release(dir, &["promote", "prod"])
        .ok()
        .stdout_has("proving the model snapshot 0.1.0");
    assert!(model(env, dir, "schema", "0.1.0").contains("REFRESH MATERIALIZED VIEW public.stats;"));
    assert!(
        !model(env, dir, "schema", "0.1.0").contains("REFRESH MATERIALIZED VIEW public.later;")
    );
    let r1 = restore_holds(env, dir, "0.1.0");
    holds_rows(&r1, false);

    // 0.2.0: apply and merge build on snapshot 0.1.0.
    env.release(dir, &["new", "minor"]).ok();
    patch(env, dir, "2-more", &[("01.sql", MORE)]);
    // The snapshot's rows once, 2-more's on top; the view was populated
    // (REFRESH … CONCURRENTLY refuses an unpopulated one).
    assert_eq!(sql(dir, "SELECT count(*) FROM public.audit"), "3");
    assert_eq!(sql(dir, "SELECT n FROM public.stats"), "3");
    assert_eq!(sql(dir, "SELECT name FROM public.reserved"), "std");
    assert_eq!(sql(dir, "SELECT m FROM public.feelings"), "happy");
    env.patch(dir, &["merge"]).ok();

    // A snapshot that cannot reload is refused at merge, naming the object.
    patch(env, dir, "3-app", &[("01.sql", UNLOADABLE)]);
    let before = p.origin_refs();
    let r = env.patch(dir, &["merge"]);
    r.fails(1)
        .stderr_has("3-app was not merged")
        .stderr_has("table app.readings")
        .stderr_has("type \"level\" does not exist")
        .stderr_has("SET search_path");
    assert_eq!(p.origin_refs(), before, "a refused merge pushes nothing");
    write(env, dir, "Patches/3-app/02_fix.sql", FIX);
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "3-app: search_path"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();
    let r2 = restore_holds(env, dir, "0.2.0");
    holds_rows(&r2, true);

    // A clone, and a restore of the older version there.
    let clone_db = p.clone_as("other");
    holds_snapshot(env, "other", &clone_db, "0.2.0");
    holds_rows(&clone_db, true);
    let r3 = restore_holds(env, "other", "0.1.0");
    holds_rows(&r3, false);

    // Production, upgraded release by release from 0.0.0, holds what each
    // snapshot holds.
    let prod_db = pg::unique_db_name("prod");
    env.release(
        dir,
        &["restore", "0.0.0", "--db-url", &srv.pw_url(&prod_db)],
    )
    .ok();
    env.git(
        ".",
        &["clone", "-q", "-b", "ho-prod", p.origin_url(), "prod"],
    )
    .ok();
    env.git("prod", &["config", "hop.production", "true"]).ok();
    env.git("prod", &["config", "hop.database.name", &prod_db])
        .ok();
    env.release("prod", &["upgrade", "--to-release", "0.1.0"])
        .ok();
    holds_snapshot(env, dir, &prod_db, "0.1.0");
    holds_rows(&prod_db, false);
    env.release("prod", &["upgrade"]).ok();
    holds_snapshot(env, dir, &prod_db, "0.2.0");
    holds_rows(&prod_db, true);

    // Every tagged snapshot reloads.
    let st = env.release(dir, &["status", "--json"]).ok().stdout.clone();
    let json: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(json["snapshots"]["checked"], true, "{st}");
    assert_eq!(
        json["snapshots"]["not_reloading"],
        serde_json::json!([]),
        "{st}"
    );

    for db in [r1, r2, r3, prod_db, clone_db] {
        srv.drop_db(&db);
    }
}

#[test]
fn promote_refuses_a_snapshot_that_does_not_reload_and_status_reports_a_tagged_one() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    use_check(&p);
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "1-app",
        &[("01.sql", &format!("{UNLOADABLE}{FIX}"))],
    );
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();

    // 0.2.0 replaces the function: its text says nothing of triggers,
    // views or generated columns, so merge does not prove; promote does.
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "2-replace",
        &[(
            "01.sql",
            "SET search_path = app, public;\nCREATE OR REPLACE FUNCTION app.level_of(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT (x::level)::text $$;\nALTER FUNCTION app.level_of(text) RESET search_path;\n",
        )],
    );
    env.patch(dir, &["merge"]).ok();
    let before = p.origin_refs();
    let local = p.local_state(dir);
    env.release(dir, &["promote", "prod"])
        .fails(1)
        .stderr_has("0.2.0 was not promoted")
        .stderr_has("the model snapshot 0.2.0 does not reload")
        .stderr_has("table app.readings");
    assert_eq!(p.origin_refs(), before, "nothing was pushed");
    assert_eq!(p.local_state(dir), local, "nothing changed locally");

    // An existing project whose tagged snapshot does not reload (made by
    // hand here: an older git-hop tagged what it did not prove).
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    let schema = env.path(dir).join(".hop/model/schema-0.1.0.sql");
    let mut text = std::fs::read_to_string(&schema).unwrap();
    text.push_str("CREATE TABLE public.broken (x text, l text GENERATED ALWAYS AS (app.level_of_missing(x)) STORED);\n");
    std::fs::write(&schema, text).unwrap();
    env.git(dir, &["commit", "-qam", "a snapshot that does not reload"])
        .ok();
    env.git(dir, &["tag", "-f", "-a", "-m", "old", "v0.1.0"])
        .ok();
    let r = env.release(dir, &["status"]).ok().stdout.clone();
    assert!(
        r.contains("snapshot:    0.1.0 does not reload") && r.contains("level_of_missing"),
        "{r}"
    );
    assert!(!r.contains("0.0.0 does not reload"), "{r}");
    // The outcome is kept: a second status says the same without loading.
    let json = env.release(dir, &["status", "--json"]).ok().stdout.clone();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["snapshots"]["not_reloading"][0]["version"], "0.1.0",
        "{json}"
    );
    let checks = std::fs::read_to_string(env.path(dir).join(".git/hop/snapshot-checks")).unwrap();
    assert_eq!(checks.lines().count(), 2, "{checks}");
}
