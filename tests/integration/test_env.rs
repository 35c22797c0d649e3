//! A working half_orm config after every command that builds or changes a
//! clone's database: after `init`, `clone`, and `clone --production` +
//! `upgrade`, `eval "$(git hop-release env)"` is all the generated package
//! needs (the real half-orm from PyPI), with no `apply` first.

use crate::support::{TestEnv, pg, write};

/// Runs, in the clone `dir`, `eval "$(git hop-release env)"` and then
/// Python (the test venv, with half-orm) counting the rows of
/// `<package>.public.<module>.<class>`.
pub(crate) fn count_through_half_orm(
    env: &TestEnv,
    dir: &str,
    package: &str,
    module: &str,
    class: &str,
) -> String {
    let python = crate::support::venv::venv_python();
    let script = env.tmp.path().join(format!("count-{dir}.py"));
    std::fs::write(
        &script,
        format!(
            "import sys\nsys.path.insert(0, '.')\nfrom {package}.public.{module} import {class}\nprint(len(list({class}().ho_select())))\n"
        ),
    )
    .unwrap();
    let r = env.run(
        "sh",
        dir,
        &[
            "-c",
            &format!(
                "eval \"$(git hop-release env)\" && exec '{}' '{}'",
                python.display(),
                script.display()
            ),
        ],
    );
    r.ok();
    r.out()
}

#[test]
fn the_generated_package_connects_after_init_clone_and_upgrade() {
    let srv = pg::server();
    let mut env = TestEnv::new();
    env.set("HOP_DATABASE_URL", &srv.server_url());
    // init adopts a database with a table and rows.
    let pkg = pg::unique_db_name("envp");
    let adopted = pg::unique_db_name("envdb");
    srv.create_db(&adopted);
    srv.psql(
        &adopted,
        "CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a'), (2, 'b')",
    );
    let origin = env.bare_origin("origin");
    env.release(
        ".",
        &[
            "init",
            &pkg,
            "--database",
            &adopted,
            "--origin",
            origin.to_str().unwrap(),
        ],
    )
    .ok();
    let exports = env.release(&pkg, &["env"]).ok().out();
    assert!(exports.contains("export HALFORM_CONF_DIR='"), "{exports}");
    assert!(
        exports.contains(&format!("export PGDATABASE='{adopted}'")),
        "{exports}"
    );
    assert!(!exports.to_lowercase().contains("password"), "{exports}");
    let json = env.release(&pkg, &["env", "--json"]).ok().stdout.clone();
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(
        count_through_half_orm(&env, &pkg, &pkg, "items", "Items"),
        "2"
    );

    // A release with reference data, then a fresh clone.
    crate::support::set_tests_command(&env, &pkg, "true");
    env.git(&pkg, &["commit", "-qam", "tests"]).ok();
    env.git(&pkg, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(&pkg, &["new", "minor"]).ok();
    env.patch(&pkg, &["create", "1-things"]).ok();
    write(
        &env,
        &pkg,
        "Patches/1-things/01.sql",
        "CREATE TABLE things (id int PRIMARY KEY);\nINSERT INTO things VALUES (7);\n",
    );
    env.patch(&pkg, &["apply"]).ok();
    env.git(&pkg, &["add", "-A"]).ok();
    env.git(&pkg, &["commit", "-qm", "things"]).ok();
    env.patch(&pkg, &["merge"]).ok();
    env.release(&pkg, &["promote", "prod"]).ok();

    let clone_db = pg::unique_db_name("envclone");
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "dev",
            "--database",
            &clone_db,
        ],
    )
    .ok();
    assert_eq!(
        count_through_half_orm(&env, "dev", &pkg, "things", "Things"),
        "1"
    );

    // A production clone of a database at 0.0.0, then upgrade.
    let prod_db = pg::unique_db_name("envprod");
    env.release(&pkg, &["restore", "0.0.0", "--db-url", &srv.url(&prod_db)])
        .ok();
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "prod",
            "--database",
            &prod_db,
            "--production",
        ],
    )
    .ok();
    env.release("prod", &["upgrade"]).ok();
    assert_eq!(
        count_through_half_orm(&env, "prod", &pkg, "things", "Things"),
        "1"
    );

    for db in [adopted, clone_db, prod_db] {
        srv.drop_db(&db);
    }
}
