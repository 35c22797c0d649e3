//! Development seed data (`.hop/seed/`): loaded after every development
//! rebuild (apply, a merge validation, clone, restore), in name order, SQL
//! and Python alike; never in production (a production clone, upgrade, the
//! model snapshot of a promotion); a failing seed file is named with its line.

use crate::support::{Project, pg, write};

const USERS: &str = "SELECT coalesce(string_agg(id || name, ',' ORDER BY id), '') FROM users";

#[test]
fn seed_data_goes_into_development_databases_only() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let srv = pg::server();
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-users"]).ok();
    write(
        env,
        dir,
        "Patches/1-users/01.sql",
        "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL);\n",
    );
    // Name order across kinds: 02 (Python) runs between 01 and 03.
    write(
        env,
        dir,
        ".hop/seed/01_users.sql",
        "INSERT INTO users VALUES (1, 'seed');\n",
    );
    write(
        env,
        dir,
        ".hop/seed/02_more.py",
        "import subprocess\nsubprocess.run([\"psql\", \"-X\", \"-q\", \"-v\", \"ON_ERROR_STOP=1\", \"-c\", \"INSERT INTO users VALUES (2, 'py')\"], check=True)\n",
    );
    write(
        env,
        dir,
        ".hop/seed/03_last.sql",
        "UPDATE users SET name = name || '!' WHERE id = 2;\n",
    );
    // A file of an unknown type: a one-line error before the database is
    // touched (the table does not exist yet).
    write(env, dir, ".hop/seed/notes.txt", "not a seed\n");
    env.patch(dir, &["apply"])
        .fails(1)
        .stderr_has("unexpected file notes.txt in seed folder ")
        .stderr_has("a seed folder holds only *.sql, *.py and README.md");
    assert_eq!(
        srv.psql(
            &p.db,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"
        ),
        "0"
    );
    std::fs::remove_file(env.path(dir).join(".hop/seed/notes.txt")).unwrap();
    // A failing seed file: named with its line, the patch applied.
    write(
        env,
        dir,
        ".hop/seed/04_bad.sql",
        "\nINSERT INTO nope VALUES (1);\n",
    );
    env.patch(dir, &["apply"]).fails(1).stderr_has(
        "seed data failed: .hop/seed/04_bad.sql:2: ERROR: relation \"nope\" does not exist",
    );
    std::fs::remove_file(env.path(dir).join(".hop/seed/04_bad.sql")).unwrap();
    let r = env.patch(dir, &["apply"]);
    r.ok()
        .stdout_has("  seed  02_more.py")
        .stdout_has("seed data: 3 file(s) of .hop/seed");
    assert_eq!(srv.psql(&p.db, USERS), "1seed,2py!");
    // Seed data is no patch: nothing recorded.
    assert_eq!(
        srv.psql(
            &p.db,
            "SELECT string_agg(patch_id, ',') FROM half_orm_meta.hop_patch"
        ),
        "1-users"
    );
    // The merge validation loads it too: its tests see the rows.
    crate::support::set_tests_command(
        env,
        dir,
        "test \\\"$(psql -X -Atc 'SELECT count(*) FROM users')\\\" = 2",
    );
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "1-users with seed data"])
        .ok();
    env.patch(dir, &["merge"])
        .ok()
        .stdout_has("seed data: 3 file(s)")
        .stdout_has("tests passed");
    // The model snapshot of the promotion holds none of it.
    env.release(dir, &["promote", "prod"]).ok();
    let data = crate::support::model(env, dir, "data", "0.1.0");
    assert!(!data.contains("seed") && !data.contains("py!"), "{data}");

    // Another developer's clone: loaded.
    let dev = p.clone_as("dev2");
    assert_eq!(srv.psql(&dev, USERS), "1seed,2py!");
    // restore: the snapshot of the tag, then the seed data as tagged.
    env.release(dir, &["restore", "0.1.0"])
        .ok()
        .stdout_has("seed data: 3 file(s)");
    assert_eq!(srv.psql(&p.db, USERS), "1seed,2py!");

    // Production: a new production clone, and an upgrade, load none.
    let prod_new = pg::unique_db_name("seedprod");
    env.release(
        ".",
        &[
            "clone",
            p.origin_url(),
            "prod1",
            "--database",
            &prod_new,
            "--production",
        ],
    )
    .ok();
    assert_eq!(srv.psql(&prod_new, USERS), "");
    let prod_old = pg::unique_db_name("seedup");
    env.release(dir, &["restore", "0.0.0", "--db-url", &srv.url(&prod_old)])
        .ok();
    env.release(
        ".",
        &[
            "clone",
            p.origin_url(),
            "prod2",
            "--database",
            &prod_old,
            "--production",
        ],
    )
    .ok();
    let r = env.release("prod2", &["upgrade"]);
    r.ok();
    assert!(!r.stdout.contains("seed data"), "{}", r.stdout);
    assert_eq!(srv.psql(&prod_old, USERS), "");
    for db in [dev, prod_new, prod_old] {
        srv.drop_db(&db);
    }
}
