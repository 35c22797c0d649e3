//! Releases: promote rc / prod, hotfixes, sync, the sequential rule and its
//! refusals, reproducible model snapshots, and failures that leave nothing
//! behind.

use crate::support::{Project, TestEnv, pg, write};

fn read(env: &TestEnv, dir: &str, rel: &str) -> String {
    std::fs::read_to_string(env.path(dir).join(rel)).unwrap()
}

/// The project's tests: fail when `$HOME/fail` exists, else check that the
/// database answers.
const CHECK: &str = "[ ! -e \"$HOME/fail\" ] || { echo 'test_release FAILED' >&2; exit 1; }\npsql -X -v ON_ERROR_STOP=1 -Atc 'SELECT 1' >/dev/null\n";

fn use_test_script(env: &TestEnv, dir: &str) {
    crate::support::set_tests_command(env, dir, "sh tests/check.sh");
    write(env, dir, "tests/check.sh", CHECK);
}

/// On a release branch: creates patch `id` with `sql`, applies, commits
/// and merges it (extra files may be written by `before_commit`).
fn patch(env: &TestEnv, dir: &str, id: &str, sql: &str, before_commit: impl FnOnce()) {
    env.patch(dir, &["create", id]).ok();
    write(env, dir, &format!("Patches/{id}/01.sql"), sql);
    before_commit();
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
    env.patch(dir, &["merge"]).ok();
}

fn branch(env: &TestEnv, dir: &str) -> String {
    env.git(dir, &["symbolic-ref", "--short", "HEAD"])
        .ok()
        .out()
}

fn rev(env: &TestEnv, dir: &str, r: &str) -> String {
    env.git(dir, &["rev-parse", &format!("{r}^{{commit}}")])
        .ok()
        .out()
}

fn show(env: &TestEnv, dir: &str, spec: &str) -> String {
    env.git(dir, &["show", spec]).ok().out()
}

fn temp_databases(p: &Project) -> String {
    pg::server().psql(
        "postgres",
        &format!(
            "SELECT string_agg(datname, ',') FROM pg_database WHERE datname LIKE '{}%\\_hop\\_%'",
            p.name
        ),
    )
}

use crate::support::worktrees;

/// A project with 0.1.0 in production: a users table and the test script.
fn project_at_0_1_0() -> Project {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "1-users",
        "CREATE TABLE users (id serial PRIMARY KEY, name text);\n",
        || use_test_script(env, dir),
    );
    env.release(dir, &["promote", "prod"]).ok();
    p
}

#[test]
fn full_cycle_rc_fix_rc_prod_with_reproducible_snapshots() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "1-users",
        "CREATE TABLE users (id serial PRIMARY KEY, name text);\n",
        || use_test_script(env, dir),
    );
    patch(
        env,
        dir,
        "2-roles",
        "CREATE TABLE roles (name text PRIMARY KEY, label text);\n\
         INSERT INTO roles VALUES ('user', 'a user'), ('admin', E'line one\\nline two'), ('guest', 'trailing  ');\n",
        || {},
    );
    env.release(dir, &["promote", "rc"])
        .ok()
        .stdout_has("release candidate 0.1.0-rc1")
        .stdout_has("tests passed");
    assert_eq!(branch(env, dir), "ho-release/0.1.0");
    assert_eq!(
        read(env, dir, ".hop/releases/0.1.0-rc1.txt"),
        "# release candidate 0.1.0-rc1: staged patches in application order\n1-users\n2-roles\n"
    );
    assert_eq!(rev(env, dir, "v0.1.0-rc1"), rev(env, dir, "HEAD"));
    assert_eq!(
        rev(env, dir, "v0.1.0-rc1"),
        rev(env, dir, "origin/ho-release/0.1.0")
    );
    // Staged patches stay staged.
    assert_eq!(
        read(env, dir, ".hop/releases/0.1.0-patches.toml"),
        "[patches]\n\"1-users\" = \"staged\"\n\"2-roles\" = \"staged\"\n"
    );

    // A fix, then rc2.
    patch(
        env,
        dir,
        "3-fix",
        "ALTER TABLE users ADD COLUMN email text;\nINSERT INTO roles VALUES ('editor', NULL);\n",
        || {},
    );
    env.release(dir, &["promote", "rc"])
        .ok()
        .stdout_has("0.1.0-rc2");
    assert_eq!(
        show(env, dir, "v0.1.0-rc2:.hop/releases/0.1.0-rc2.txt"),
        "# release candidate 0.1.0-rc2: staged patches in application order\n1-users\n2-roles\n3-fix"
    );
    assert!(
        env.git(
            dir,
            &["cat-file", "-e", "v0.1.0-rc1:.hop/releases/0.1.0-rc2.txt"]
        )
        .code
            != Some(0)
    );

    env.release(dir, &["promote", "prod"])
        .ok()
        .stdout_has("0.1.0 is in production");
    assert_eq!(branch(env, dir), "ho-prod");
    assert_eq!(rev(env, dir, "v0.1.0"), rev(env, dir, "HEAD"));
    assert_eq!(rev(env, dir, "v0.1.0"), rev(env, dir, "origin/ho-prod"));
    assert_eq!(
        env.git(dir, &["cat-file", "-t", "v0.1.0"]).ok().out(),
        "tag",
        "annotated tag"
    );
    for rc in ["v0.1.0-rc1", "v0.1.0-rc2"] {
        env.git(dir, &["merge-base", "--is-ancestor", rc, "v0.1.0"])
            .ok();
    }
    for f in ["0.1.0-rc1.txt", "0.1.0-rc2.txt", "0.1.0.txt"] {
        assert!(env.path(dir).join(".hop/releases").join(f).is_file(), "{f}");
    }
    assert!(
        !env.path(dir)
            .join(".hop/releases/0.1.0-patches.toml")
            .exists()
    );
    assert_eq!(
        read(env, dir, ".hop/releases/0.1.0.txt"),
        "# release 0.1.0: patches in application order\n1-users\n2-roles\n3-fix\n"
    );
    assert_eq!(
        std::fs::read_link(env.path(dir).join(".hop/model/schema.sql"))
            .unwrap()
            .display()
            .to_string(),
        "schema-0.1.0.sql"
    );
    let refs = p.origin_refs();
    assert!(!refs.contains("refs/heads/ho-release/0.1.0"), "{refs}");
    for t in ["v0.1.0-rc1", "v0.1.0-rc2", "v0.1.0"] {
        assert!(refs.contains(&format!("refs/tags/{t}")), "{t}: {refs}");
    }
    assert!(
        env.git(
            dir,
            &["rev-parse", "--verify", "-q", "refs/heads/ho-release/0.1.0"]
        )
        .code
            != Some(0),
        "local release branch left"
    );
    assert_eq!(env.git(dir, &["status", "--porcelain"]).out(), "");
    assert_eq!(worktrees(env, dir), 1, "temporary worktree left");
    assert_eq!(temp_databases(&p), "", "temporary database left");

    // The snapshot: schema, reference data, metadata.
    let model = env.path(dir).join(".hop/model");
    let schema = std::fs::read_to_string(model.join("schema-0.1.0.sql")).unwrap();
    assert!(schema.contains("CREATE TABLE public.users"), "{schema}");
    assert!(schema.contains("email text"), "{schema}");
    let data = std::fs::read_to_string(model.join("data-0.1.0.sql")).unwrap();
    assert!(data.contains("admin\tline one\\nline two\n"), "{data}");
    assert!(data.contains("editor\t\\N\n"), "{data}");
    assert!(data.contains("guest\ttrailing  \n"), "{data}");
    let metadata = std::fs::read_to_string(model.join("metadata-0.1.0.sql")).unwrap();
    assert!(metadata.contains("VALUES ('0.1.0', 0, 1, 0"), "{metadata}");
    assert!(metadata.contains("('3-fix', '0.1.0'"), "{metadata}");

    // Reproducible: load 0.1.0 into a fresh database and dump it again.
    let fresh = pg::unique_db_name("fresh");
    pg::server().create_db(&fresh);
    let params = hop::db::conn::ConnParams::parse(&pg::server().url(&fresh)).unwrap();
    let v: hop::version::Version = "0.1.0".parse().unwrap();
    hop::snapshot::load(&params, &env.path(dir), &v).unwrap();
    assert_eq!(hop::snapshot::dump_schema(&params).unwrap(), schema);
    assert_eq!(hop::snapshot::dump_data(&params).unwrap(), data);
    let mut client = hop::db::conn::connect(&params).unwrap();
    assert_eq!(hop::db::meta::dump_rows(&mut client).unwrap(), metadata);
    drop(client);
    pg::server().drop_db(&fresh);

    // A fresh clone has the reference rows.
    let db_b = p.clone_as("b");
    assert_eq!(
        pg::server().psql(
            &db_b,
            "SELECT string_agg(name, ',' ORDER BY name) FROM roles"
        ),
        "admin,editor,guest,user"
    );
    assert_eq!(
        pg::server().psql(
            &db_b,
            "SELECT max(version) FROM half_orm_meta.hop_release WHERE pre_release = ''"
        ),
        "0.1.0"
    );
    pg::server().drop_db(&db_b);
}

#[test]
fn parallel_releases_go_in_order_and_sync_brings_production() {
    let p = project_at_0_1_0();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "patch"]).ok();
    patch(env, dir, "10-a", "CREATE TABLE a (id int);\n", || {});
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "20-b",
        "CREATE SCHEMA s2;\nCREATE TABLE s2.b (id int);\n",
        || {},
    );
    // From 0.2.0's branch: refused, naming 0.1.1.
    let before = p.local_state(dir);
    let origin_before = p.origin_refs();
    env.release(dir, &["promote", "rc"])
        .fails(1)
        .stderr_has("release 0.1.1 is in preparation and comes first");
    assert_eq!(p.local_state(dir), before);
    assert_eq!(p.origin_refs(), origin_before);
    // From ho-prod: 0.1.1 is taken, both for rc and prod.
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    env.release(dir, &["promote", "rc"])
        .ok()
        .stdout_has("release candidate 0.1.1-rc1");
    env.release(dir, &["promote", "prod"])
        .ok()
        .stdout_has("0.1.1 is in production")
        .stdout_has("must now run git hop-release sync: 0.2.0");
    let refs = p.origin_refs();
    assert!(!refs.contains("refs/heads/ho-release/0.1.1"), "{refs}");
    assert!(refs.contains("refs/tags/v0.1.1-rc1"), "{refs}");
    assert!(!refs.contains("refs/tags/v0.2.0"), "{refs}");

    // 0.2.0 lacks 0.1.1: refused until synced.
    env.git(dir, &["switch", "-q", "ho-release/0.2.0"]).ok();
    let before = p.local_state(dir);
    for what in ["rc", "prod"] {
        env.release(dir, &["promote", what])
            .fails(1)
            .stderr_has("does not contain the current ho-prod")
            .stderr_has("git hop-release sync");
    }
    assert_eq!(p.local_state(dir), before);
    env.release(dir, &["status"])
        .ok()
        .stdout_has("0.2.0 on ho-release/0.2.0 (must sync");
    env.release(dir, &["sync"])
        .ok()
        .stdout_has("synced ho-release/0.2.0")
        .stdout_has("tests passed");
    assert_eq!(
        rev(env, dir, "HEAD"),
        rev(env, dir, "origin/ho-release/0.2.0")
    );
    env.git(dir, &["merge-base", "--is-ancestor", "v0.1.1", "HEAD"])
        .ok();
    env.release(dir, &["sync"])
        .ok()
        .stdout_has("nothing to sync");
    env.release(dir, &["promote", "prod"])
        .ok()
        .stdout_has("0.2.0 is in production");
    let schema = read(env, dir, ".hop/model/schema-0.2.0.sql");
    assert!(schema.contains("CREATE TABLE public.a"), "{schema}");
    assert!(schema.contains("CREATE TABLE s2.b"), "{schema}");
    let metadata = read(env, dir, ".hop/model/metadata-0.2.0.sql");
    assert!(metadata.contains("('10-a', '0.1.1'"), "{metadata}");
    assert!(metadata.contains("('20-b', '0.2.0'"), "{metadata}");
}

#[test]
fn hotfixes_reach_production_and_later_releases() {
    let p = project_at_0_1_0();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "20-b",
        "CREATE SCHEMA s2;\nCREATE TABLE s2.b (id int);\n",
        || write(env, dir, "tests/notes.txt", "0.2.0 notes\n"),
    );
    env.release(dir, &["promote", "hotfix"])
        .fails(1)
        .stderr_has("no hotfix release is open");

    // First hotfix, from v0.1.0.
    env.release(dir, &["hotfix"]).ok().stdout_has("from v0.1.0");
    assert_eq!(branch(env, dir), "ho-release/0.1.0");
    assert_eq!(
        read(env, dir, ".hop/releases/0.1.0-patches.toml"),
        "# HOTFIX\n[patches]\n"
    );
    env.release(dir, &["hotfix"])
        .fails(1)
        .stderr_has("already open");
    patch(env, dir, "30-h1", "CREATE TABLE h1 (id int);\n", || {});
    // promote rc ignores the hotfix: it takes 0.2.0.
    env.release(dir, &["status", "--json"])
        .ok()
        .stdout_has("\"hotfix\": true")
        .stdout_has("git hop-release promote hotfix (0.1.0)");
    env.release(dir, &["promote", "hotfix"])
        .ok()
        .stdout_has("0.1.0-hotfix1 is in production")
        .stdout_has("must now run git hop-release sync (so they carry the hotfix): 0.2.0");
    assert_eq!(branch(env, dir), "ho-prod");
    assert_eq!(
        rev(env, dir, "v0.1.0-hotfix1"),
        rev(env, dir, "origin/ho-prod")
    );
    assert!(!p.origin_refs().contains("refs/heads/ho-release/0.1.0"));
    assert_eq!(
        std::fs::read_link(env.path(dir).join(".hop/model/schema.sql"))
            .unwrap()
            .display()
            .to_string(),
        "schema-0.1.0-hotfix1.sql"
    );
    assert_eq!(
        read(env, dir, ".hop/releases/0.1.0-hotfix1.txt"),
        "# hotfix 0.1.0-hotfix1: patches in application order\n30-h1\n"
    );
    assert!(
        !env.path(dir)
            .join(".hop/releases/0.1.0-patches.toml")
            .exists()
    );

    // Second hotfix, from v0.1.0-hotfix1; it conflicts with 0.2.0 on a file.
    env.release(dir, &["hotfix"])
        .ok()
        .stdout_has("from v0.1.0-hotfix1");
    env.git(
        dir,
        &["merge-base", "--is-ancestor", "v0.1.0-hotfix1", "HEAD"],
    )
    .ok();
    patch(env, dir, "31-h2", "CREATE TABLE h2 (id int);\n", || {
        write(env, dir, "tests/notes.txt", "hotfix notes\n")
    });
    env.release(dir, &["promote", "hotfix"])
        .ok()
        .stdout_has("0.1.0-hotfix2 is in production");
    let schema = read(env, dir, ".hop/model/schema-0.1.0-hotfix2.sql");
    assert!(schema.contains("CREATE TABLE public.h1"), "{schema}");
    assert!(schema.contains("CREATE TABLE public.h2"), "{schema}");
    let metadata = read(env, dir, ".hop/model/metadata-0.1.0-hotfix2.sql");
    assert!(
        metadata.contains("'0.1.0-hotfix2', 0, 1, 0, 'hotfix', 2"),
        "{metadata}"
    );

    // 0.2.0 must sync; the merge conflicts; the user resolves; sync resumes.
    env.git(dir, &["switch", "-q", "ho-release/0.2.0"]).ok();
    env.release(dir, &["promote", "prod"])
        .fails(1)
        .stderr_has("git hop-release sync");
    let origin_before = p.origin_refs();
    env.release(dir, &["sync"])
        .fails(1)
        .stderr_has("conflicts in: tests/notes.txt");
    assert_eq!(p.origin_refs(), origin_before, "origin changed");
    assert_eq!(worktrees(env, dir), 1, "temporary worktree left");
    env.git(dir, &["rev-parse", "-q", "--verify", "MERGE_HEAD"])
        .ok();
    env.release(dir, &["sync"])
        .fails(1)
        .stderr_has("a merge is in progress");
    write(env, dir, "tests/notes.txt", "0.2.0 notes\nhotfix notes\n");
    env.git(dir, &["add", "tests/notes.txt"]).ok();
    env.git(dir, &["commit", "-q", "--no-edit"]).ok();
    env.release(dir, &["sync"])
        .ok()
        .stdout_has("tests passed")
        .stdout_has("pushed ho-release/0.2.0");
    assert_eq!(
        rev(env, dir, "HEAD"),
        rev(env, dir, "origin/ho-release/0.2.0")
    );
    assert_eq!(
        std::fs::read_link(env.path(dir).join(".hop/model/schema.sql"))
            .unwrap()
            .display()
            .to_string(),
        "schema-0.1.0-hotfix2.sql"
    );
    env.release(dir, &["promote", "prod"]).ok();
    let schema = read(env, dir, ".hop/model/schema-0.2.0.sql");
    for t in ["public.h1", "public.h2", "s2.b"] {
        assert!(
            schema.contains(&format!("CREATE TABLE {t}")),
            "{t}: {schema}"
        );
    }
}

#[test]
fn a_failing_test_blocks_promotion_and_changes_nothing() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    patch(env, dir, "1-a", "CREATE TABLE a (id int);\n", || {
        use_test_script(env, dir)
    });
    std::fs::write(env.home.join("fail"), "").unwrap();
    for (what, on) in [("rc", "ho-release/0.1.0"), ("prod", "ho-prod")] {
        env.git(dir, &["switch", "-q", on]).ok();
        let before = p.local_state(dir);
        let origin_before = p.origin_refs();
        env.release(dir, &["promote", what])
            .fails(1)
            .stderr_has("tests failed")
            .stderr_has("test_release FAILED");
        assert_eq!(
            p.local_state(dir),
            before,
            "{what}: local repository changed"
        );
        assert_eq!(p.origin_refs(), origin_before, "{what}: origin changed");
        assert_eq!(worktrees(env, dir), 1, "{what}: temporary worktree left");
        assert_eq!(temp_databases(&p), "", "{what}: temporary database left");
        assert_eq!(branch(env, dir), on, "{what}: HEAD not on its branch");
        assert_eq!(env.git(dir, &["tag", "--list"]).out(), "v0.0.0");
    }
    std::fs::remove_file(env.home.join("fail")).unwrap();

    // Validation passes but origin refuses the push: nothing changes either.
    let hook = p.origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'origin is read-only today' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    for (what, on) in [("rc", "ho-release/0.1.0"), ("prod", "ho-release/0.1.0")] {
        env.git(dir, &["switch", "-q", on]).ok();
        let before = p.local_state(dir);
        let origin_before = p.origin_refs();
        env.release(dir, &["promote", what])
            .fails(1)
            .stderr_has("origin is read-only today")
            .stderr_has("nothing was changed");
        assert_eq!(
            p.local_state(dir),
            before,
            "{what}: local repository changed"
        );
        assert_eq!(p.origin_refs(), origin_before, "{what}: origin changed");
        assert_eq!(worktrees(env, dir), 1, "{what}: temporary worktree left");
    }
    std::fs::remove_file(&hook).unwrap();
    env.release(dir, &["promote", "prod"]).ok();
    assert_eq!(branch(env, dir), "ho-prod");
    assert_eq!(env.git(dir, &["tag", "--list", "v0.1.0"]).out(), "v0.1.0");
}

#[test]
fn refusals_name_what_blocks_and_change_nothing() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let unchanged = |f: &dyn Fn()| {
        let before = p.local_state(dir);
        let origin_before = p.origin_refs();
        f();
        assert_eq!(p.local_state(dir), before, "local repository changed");
        assert_eq!(p.origin_refs(), origin_before, "origin changed");
    };
    unchanged(&|| {
        env.release(dir, &["promote", "rc"])
            .fails(1)
            .stderr_has("no release in preparation");
        env.release(dir, &["promote", "hotfix"])
            .fails(1)
            .stderr_has("no hotfix release is open")
            .stderr_has("git hop-release hotfix");
    });

    // Candidates unmerged.
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", "2-b"]).ok();
    unchanged(&|| {
        for what in ["rc", "prod"] {
            env.release(dir, &["promote", what])
                .fails(1)
                .stderr_has("candidates not merged yet: 1-a, 2-b");
        }
    });
    env.git(dir, &["switch", "-q", "ho-patch/1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    use_test_script(env, dir);
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.patch(dir, &["sync"]).ok();
    write(env, dir, "Patches/2-b/01.sql", "CREATE TABLE b (id int);\n");
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "b"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "rc"]).ok();

    // A smaller release opens: it blocks 0.1.0, and 0.1.0's RC blocks its RC.
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    env.release(dir, &["new", "patch"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    unchanged(&|| {
        env.release(dir, &["promote", "rc"])
            .fails(1)
            .stderr_has("cannot promote 0.1.0")
            .stderr_has("release 0.0.1 is in preparation and comes first");
    });
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    unchanged(&|| {
        env.release(dir, &["promote", "prod"])
            .fails(1)
            .stderr_has("release 0.0.1 has no staged patch")
            .stderr_has("it comes before 0.1.0");
    });
    env.git(dir, &["switch", "-q", "ho-release/0.0.1"]).ok();
    patch(env, dir, "3-c", "CREATE TABLE c (id int);\n", || {
        use_test_script(env, dir)
    });
    unchanged(&|| {
        env.release(dir, &["promote", "rc"])
            .fails(1)
            .stderr_has("release 0.1.0 has an active release candidate (v0.1.0-rc1)");
    });
    let status = env.release(dir, &["status", "--json"]).ok().stdout.clone();
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["production_version"], "0.0.0");
    assert_eq!(
        json["releases_in_preparation"],
        serde_json::json!(["0.0.1", "0.1.0"])
    );
    assert_eq!(
        json["releases"][1]["rc_tags"],
        serde_json::json!(["v0.1.0-rc1"])
    );
    assert_eq!(
        json["releases"][1]["patches"],
        serde_json::json!([{"id": "1-a", "state": "staged"}, {"id": "2-b", "state": "staged"}])
    );
    assert_eq!(json["releases"][0]["contains_production"], true);
    let next = json["next_promotion"].as_str().unwrap();
    assert!(next.contains("promote rc|prod (0.0.1)"), "{next}");
    env.release(dir, &["status"])
        .ok()
        .stdout_has("release candidates: v0.1.0-rc1")
        .stdout_has("staged     3-c");

    // No production tag: hotfix refused.
    env.git(dir, &["tag", "-d", "v0.0.0"]).ok();
    env.git(
        dir,
        &["push", "-q", "--no-verify", "origin", ":refs/tags/v0.0.0"],
    )
    .ok();
    unchanged(&|| {
        env.release(dir, &["hotfix"])
            .fails(1)
            .stderr_has("no production version");
    });
}

/// A `promote prod` killed right after origin accepted its push (origin
/// has the tag and the new ho-prod, the clone still has the release branch
/// checked out): the rerun completes the local part and says so.
#[test]
fn a_promotion_interrupted_after_its_push_is_completed_by_the_next_run() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "1-users",
        "CREATE TABLE users (id int);\n",
        || use_test_script(env, dir),
    );
    let prod_before = rev(env, dir, "ho-prod");
    let release = rev(env, dir, "ho-release/0.1.0");
    env.release(dir, &["promote", "prod"]).ok();
    let prod_after = rev(env, dir, "ho-prod");
    let origin_after = p.origin_refs();
    // Put the clone back as it was when the push had just succeeded.
    for (r, c) in [
        ("refs/heads/ho-release/0.1.0", &release),
        ("refs/remotes/origin/ho-release/0.1.0", &release),
        ("refs/remotes/origin/ho-prod", &prod_before),
    ] {
        env.git(dir, &["update-ref", r, c]).ok();
    }
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["update-ref", "refs/heads/ho-prod", &prod_before])
        .ok();
    env.git(dir, &["tag", "-d", "v0.1.0"]).ok();

    env.release(dir, &["promote", "prod"])
        .ok()
        .stdout_has("0.1.0 was already promoted")
        .stdout_has("completed locally");
    assert_eq!(branch(env, dir), "ho-prod");
    assert_eq!(rev(env, dir, "ho-prod"), prod_after);
    assert_eq!(rev(env, dir, "v0.1.0"), prod_after);
    assert_ne!(
        env.git(
            dir,
            &["rev-parse", "--verify", "-q", "refs/heads/ho-release/0.1.0"]
        )
        .code,
        Some(0)
    );
    assert_eq!(p.origin_refs(), origin_after);
    env.release(dir, &["status"])
        .ok()
        .stdout_has("production:  0.1.0")
        .stdout_has("in progress: none")
        .stdout_has("branch:      ho-prod");
}
