//! `init` (new and adopted databases, --origin) and `clone`.

use crate::support::{TestEnv, pg, tree};

fn unique(prefix: &str) -> String {
    pg::unique_db_name(prefix)
}

/// Server-only URL (no database name), so --database / the package decide.
fn server_url() -> String {
    pg::server().server_url()
}

fn env() -> TestEnv {
    let mut e = TestEnv::new();
    e.set("HOP_DATABASE_URL", &server_url());
    e
}

#[test]
fn init_creates_the_project_database_snapshot_and_tag() {
    let env = env();
    let pkg = unique("shop");
    env.release(".", &["init", &pkg])
        .ok()
        .stdout_has("created project")
        .stdout_has("next steps");
    let root = env.path(&pkg);
    for f in [
        ".hop/config",
        ".gitignore",
        "Patches/README.md",
        &format!("{pkg}/__init__.py"),
        ".hop/model/schema-0.0.0.sql",
        ".hop/model/data-0.0.0.sql",
        ".hop/model/metadata-0.0.0.sql",
    ] {
        assert!(
            root.join(f).is_file(),
            "{f} missing; tree: {:?}",
            tree(&root)
        );
    }
    let link = std::fs::read_link(root.join(".hop/model/schema.sql")).unwrap();
    assert_eq!(link.to_str(), Some("schema-0.0.0.sql"));
    let schema = std::fs::read_to_string(root.join(".hop/model/schema-0.0.0.sql")).unwrap();
    assert!(
        schema.contains("CREATE TABLE half_orm_meta.hop_release"),
        "{schema}"
    );
    assert!(
        !schema.contains("Dumped from database version"),
        "not normalized"
    );

    assert_eq!(
        env.git(&pkg, &["branch", "--show-current"]).out(),
        "ho-prod"
    );
    assert_eq!(
        env.git(&pkg, &["tag", "--points-at", "HEAD"]).out(),
        "v0.0.0"
    );
    assert_eq!(
        env.git(&pkg, &["log", "--format=%s"]).out().lines().count(),
        1
    );
    assert_eq!(
        env.git(&pkg, &["status", "--porcelain"]).out(),
        "",
        "work tree clean after init"
    );

    let rows = pg::server().psql(
        &pkg,
        "SELECT version, major, minor, patch, pre_release FROM half_orm_meta.hop_release",
    );
    assert_eq!(rows.trim(), "0.0.0|0|0|0|");
    let commit = pg::server().psql(&pkg, "SELECT commit FROM half_orm_meta.hop_release");
    assert_eq!(commit.trim(), env.git(&pkg, &["rev-parse", "HEAD"]).out());

    let st = env.release(&pkg, &["status"]);
    st.ok()
        .stdout_has("production:  0.0.0")
        .stdout_has(&format!("database:    {pkg} 0.0.0"))
        .stdout_has("ho-prod (production branch)");
    let json = env.release(&pkg, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.ok().stdout).unwrap();
    assert_eq!(v["production_version"], "0.0.0");
    assert_eq!(v["database"]["version"], "0.0.0");
    assert_eq!(v["database"]["source"], "HOP_DATABASE_URL");
    assert_eq!(v["branch"], "ho-prod");
    pg::server().drop_db(&pkg);
}

#[test]
fn init_adopts_an_existing_database_without_touching_its_rows() {
    let env = env();
    let legacy = unique("legacy");
    let srv = pg::server();
    srv.create_db(&legacy);
    srv.psql(&legacy, "CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL); INSERT INTO customer (name) VALUES ('ada'), ('bob');");
    let pkg = unique("shop");
    env.release(".", &["init", &pkg, "--database", &legacy])
        .ok()
        .stdout_has("adopted the existing database");
    let schema =
        std::fs::read_to_string(env.path(&pkg).join(".hop/model/schema-0.0.0.sql")).unwrap();
    assert!(schema.contains("CREATE TABLE public.customer"), "{schema}");
    let module = env.path(&pkg).join(format!("{pkg}/public/customer.py"));
    assert!(
        module.is_file(),
        "no generated module for the adopted table"
    );
    assert_eq!(
        srv.psql(
            &legacy,
            "SELECT string_agg(name, ',' ORDER BY id) FROM customer"
        )
        .trim(),
        "ada,bob"
    );
    let cfg = std::fs::read_to_string(env.path(&pkg).join(".hop/config")).unwrap();
    assert!(cfg.contains(&format!("name = \"{legacy}\"")), "{cfg}");
    // A database that is already a git-hop database is not adopted twice.
    let again = unique("again");
    env.release(".", &["init", &again, "--database", &legacy])
        .fails(1)
        .stderr_has("already a git-hop database");
    assert!(!env.path(&again).exists());
    srv.drop_db(&legacy);
}

/// A database whose schema cannot be rebuilt from its own dump (a
/// generated column through a function that names a type of a schema only
/// the creating session's search_path reached) is not adopted: every clone
/// would fail. init names the object and the fix, and leaves nothing.
#[test]
fn init_refuses_a_database_whose_snapshot_would_not_reload() {
    let env = env();
    let legacy = unique("unloadable");
    let srv = pg::server();
    srv.create_db(&legacy);
    srv.psql(
        &legacy,
        "CREATE SCHEMA app; CREATE TYPE app.level AS ENUM ('low', 'high'); SET search_path = app, public; \
         CREATE FUNCTION app.level_of(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT (x::level)::text $$; \
         CREATE TABLE app.readings (x text, l text GENERATED ALWAYS AS (app.level_of(x)) STORED); \
         INSERT INTO app.readings (x) VALUES ('low');",
    );
    let pkg = unique("unl");
    env.release(".", &["init", &pkg, "--database", &legacy])
        .fails(1)
        .stderr_has(&format!("database {legacy} cannot be adopted"))
        .stderr_has("table app.readings")
        .stderr_has("SET search_path");
    assert!(!env.path(&pkg).exists());
    assert_eq!(
        srv.psql(
            &legacy,
            "SELECT to_regnamespace('half_orm_meta') IS NULL AND (SELECT count(*) FROM app.readings) = 1"
        ),
        "t"
    );
    assert_eq!(
        srv.psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{legacy}_hop_')"
            )
        ),
        "0"
    );
    // With the fix the hint names, it is adopted.
    srv.psql(
        &legacy,
        "ALTER FUNCTION app.level_of(text) SET search_path = app",
    );
    env.release(".", &["init", &pkg, "--database", &legacy])
        .ok();
    srv.drop_db(&legacy);
}

#[test]
fn init_with_origin_then_clone_builds_an_equal_database() {
    let env = env();
    let srv = pg::server();
    let legacy = unique("src");
    srv.create_db(&legacy);
    srv.psql(&legacy, "CREATE TABLE item (id int PRIMARY KEY, label text UNIQUE); CREATE VIEW item_labels AS SELECT label FROM item;");
    let origin = env.bare_origin("origin");
    let pkg = unique("shop");
    env.release(
        ".",
        &[
            "init",
            &pkg,
            "--database",
            &legacy,
            "--origin",
            origin.to_str().unwrap(),
        ],
    )
    .ok()
    .stdout_has("pushed ho-prod and v0.0.0");
    let remote = env.git(".", &["ls-remote", origin.to_str().unwrap()]).out();
    assert!(
        remote.contains("refs/heads/ho-prod") && remote.contains("refs/tags/v0.0.0"),
        "{remote}"
    );

    let copy = unique("copy");
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "other",
            "--database",
            &copy,
        ],
    )
    .ok()
    .stdout_has("created the database");
    assert_eq!(
        env.git("other", &["branch", "--show-current"]).out(),
        "ho-prod"
    );
    assert_eq!(
        env.git("other", &["config", "hop.database.name"]).out(),
        copy
    );
    assert_eq!(
        srv.dump_schema(&legacy),
        srv.dump_schema(&copy),
        "the clone's schema differs"
    );
    assert_eq!(
        srv.psql(&copy, "SELECT version FROM half_orm_meta.hop_release")
            .trim(),
        "0.0.0"
    );
    env.release("other", &["status"])
        .ok()
        .stdout_has(&format!("database:    {copy} 0.0.0"));
    let hook = std::fs::read_to_string(env.path("other/.git/hooks/pre-push")).unwrap();
    assert!(hook.contains("git-hop managed block"));

    // Into a non-empty folder: refused, folder untouched.
    std::fs::create_dir_all(env.path("busy")).unwrap();
    std::fs::write(env.path("busy/keep.txt"), "mine").unwrap();
    let before = tree(&env.path("busy"));
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "busy",
            "--database",
            &unique("x"),
        ],
    )
    .fails(1)
    .stderr_has("not empty");
    assert_eq!(tree(&env.path("busy")), before);
    // A second init of the same package: refused, untouched.
    let before = tree(&env.path(&pkg));
    env.release(".", &["init", &pkg])
        .fails(1)
        .stderr_has("already exists and is not empty");
    assert_eq!(tree(&env.path(&pkg)), before);
    // A clone onto an existing, non-empty database is refused without --force.
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "third",
            "--database",
            &copy,
        ],
    )
    .fails(1)
    .stderr_has("--force");
    assert!(
        !env.path("third").exists(),
        "a failed clone leaves no folder"
    );
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "third",
            "--database",
            &copy,
            "--force",
        ],
    )
    .ok();
    // --production keeps an existing database and marks the clone.
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "prod",
            "--database",
            &legacy,
            "--production",
        ],
    )
    .ok()
    .stdout_has("kept the production database");
    assert_eq!(env.git("prod", &["config", "hop.production"]).out(), "true");
    env.release("prod", &["status"])
        .ok()
        .stdout_has("(production clone)");
    srv.drop_db(&legacy);
    srv.drop_db(&copy);
}
