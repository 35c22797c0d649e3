//! The lint of patch files: locking DDL on a table production has is
//! reported with file:line (apply warns and goes on), a rule in
//! `[lint] deny` fails merge, and a table new in the release is fine.

use crate::support::{Project, patch_with, write};

#[test]
fn locking_ddl_warns_in_apply_fails_merge_when_denied_and_new_tables_are_fine() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    // Production gets a table.
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "1-users",
        &[(
            "Patches/1-users/01.sql",
            "CREATE TABLE users (id int PRIMARY KEY, name text);\nCREATE INDEX ON users (name);\n",
        )],
    );
    env.patch(dir, &["lint"])
        .ok()
        .stdout_has("1-users: no finding");
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();

    // The next release: a table new in it (one patch), an index on it in
    // another patch: nothing to report.
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.2.0",
        "2-tags",
        &[(
            "Patches/2-tags/01.sql",
            "CREATE TABLE tags (id int, label text);\n",
        )],
    );
    env.patch(dir, &["merge"]).ok();
    patch_with(
        env,
        dir,
        "0.2.0",
        "3-tag-idx",
        &[(
            "Patches/3-tag-idx/01.sql",
            "CREATE INDEX ON tags (label);\n",
        )],
    );
    let r = env.patch(dir, &["lint"]);
    r.ok().stdout_has("3-tag-idx: no finding");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);

    // Locking DDL on the production table: apply warns and succeeds.
    patch_with(
        env,
        dir,
        "0.2.0",
        "4-users",
        &[(
            "Patches/4-users/01.sql",
            "-- users grow\nCREATE INDEX users_id_name ON users (id, name);\nALTER TABLE users ALTER COLUMN id TYPE bigint;\n",
        )],
    );
    let r = env.patch(dir, &["apply"]);
    r.ok()
        .stderr_has("warning: Patches/4-users/01.sql:2: require-concurrent-index-creation")
        .stderr_has("(safer: Use `concurrently`")
        .stderr_has("warning: Patches/4-users/01.sql:3: changing-column-type");
    let r = env.patch(dir, &["lint", "--json"]);
    r.ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    let found: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            format!(
                "{}:{} {}",
                f["file"].as_str().unwrap(),
                f["line"],
                f["rule"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            "Patches/4-users/01.sql:2 require-concurrent-index-creation",
            "Patches/4-users/01.sql:3 changing-column-type"
        ]
    );

    // Denied: merge fails, naming the rule, and origin is unchanged.
    let cfg = env.path(dir).join(".hop/config");
    let text = std::fs::read_to_string(&cfg).unwrap();
    write(
        env,
        dir,
        ".hop/config",
        &format!("{text}\n[lint]\ndeny = [\"changing-column-type\"]\n"),
    );
    env.git(dir, &["commit", "-qam", "deny type changes"]).ok();
    let before = p.origin_refs();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("error: Patches/4-users/01.sql:3: changing-column-type")
        .stderr_has("changing-column-type is denied by [lint] deny");
    assert_eq!(p.origin_refs(), before);
    env.patch(dir, &["lint"]).fails(1);
    // apply refuses before the database is touched (a rebuild would drop
    // this table of the working database).
    let server = crate::support::pg::server();
    server.psql(&p.db, "CREATE TABLE marker (id int)");
    env.patch(dir, &["apply"])
        .fails(1)
        .stderr_has("changing-column-type is denied");
    assert_eq!(
        server.psql(
            &p.db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'marker'"
        ),
        "1"
    );
    // An unknown rule is a config error naming the line.
    write(
        env,
        dir,
        ".hop/config",
        &format!("{text}\n[lint]\ndeny = [\"no-such-rule\"]\n"),
    );
    env.patch(dir, &["lint"])
        .fails(1)
        .stderr_has("unknown lint rule 'no-such-rule'");
}
