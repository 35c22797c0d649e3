//! `git hop-release apply`: the integration preview of a whole release,
//! candidates included, that names the candidates that conflict or fail
//! and commits and pushes nothing.

use crate::support::{Project, patch_with, pg, worktrees};

/// A check the tests command runs: the table is there.
fn check(table: &str) -> String {
    format!("psql -X -qtAc 'SELECT count(*) FROM {table}' >/dev/null\n")
}

#[test]
fn release_apply_merges_every_candidate_and_names_those_that_conflict_or_fail() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("for f in checks/*.sh; do sh $f || exit 1; done");
    env.release(dir, &["new", "minor"]).ok();
    // Two staged patches.
    for (id, table) in [("1-a", "a"), ("2-b", "b")] {
        patch_with(
            env,
            dir,
            "0.1.0",
            id,
            &[
                (
                    &format!("Patches/{id}/01.sql"),
                    &format!("CREATE TABLE {table} (id int);\n"),
                ),
                (&format!("checks/{id}.sh"), &check(table)),
            ],
        );
        env.patch(dir, &["merge"]).ok();
    }
    // Three candidates: one passes, one's tests fail, one conflicts with
    // the first.
    patch_with(
        env,
        dir,
        "0.1.0",
        "3-c",
        &[
            ("Patches/3-c/01.sql", "CREATE TABLE c (id int);\n"),
            ("checks/3-c.sh", &check("c")),
            ("notes.txt", "c was here\n"),
        ],
    );
    patch_with(
        env,
        dir,
        "0.1.0",
        "4-d",
        &[
            ("Patches/4-d/01.sql", "CREATE TABLE d (id int);\n"),
            ("checks/4-d.sh", "echo 'd is broken' >&2; exit 1\n"),
        ],
    );
    patch_with(
        env,
        dir,
        "0.1.0",
        "5-e",
        &[
            ("Patches/5-e/01.sql", "CREATE TABLE e (id int);\n"),
            ("notes.txt", "e was here\n"),
        ],
    );
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    let toml_path = env.path(dir).join(".hop/releases/0.1.0-patches.toml");
    let toml = std::fs::read_to_string(&toml_path).unwrap();
    let origin = p.origin_refs();
    let local = p.local_state(dir);
    let trees = worktrees(env, dir);

    let run = env.release(dir, &["apply"]);
    run.fails(1)
        .stdout_has("3-c                      candidate, passes")
        .stdout_has("4-d                      candidate, FAILS: tests failed")
        .stdout_has("5-e                      candidate, conflicts in notes.txt")
        .stderr_has("2 of 3 candidate(s) do not go in: 4-d, 5-e; nothing was committed or pushed");
    // The working database holds the staged head and both candidates that
    // merge, the failing one included.
    assert_eq!(
        pg::server().psql(
            &p.db,
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "a,b,c,d"
    );
    // Nothing committed, pushed or left behind.
    assert_eq!(p.origin_refs(), origin);
    assert_eq!(p.local_state(dir), local);
    assert_eq!(std::fs::read_to_string(&toml_path).unwrap(), toml);
    assert_eq!(worktrees(env, dir), trees);

    // Without the two, the release previews clean (exit 0), and
    // --skip-tests runs no test.
    env.patch(dir, &["detach", "4-d"]).ok();
    env.patch(dir, &["detach", "5-e"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.release(dir, &["apply"])
        .ok()
        .stdout_has("3-c                      candidate, passes")
        .stdout_has("merge and pass the tests together; nothing was committed or pushed");
    assert_eq!(
        pg::server().psql(
            &p.db,
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "a,b,c"
    );
    let skipped = env.release(dir, &["apply", "--skip-tests"]);
    skipped.ok().stdout_has("tests skipped (--skip-tests)");
    assert!(
        !skipped.out().contains("running tests"),
        "{}",
        skipped.out()
    );
}

#[test]
fn release_apply_blames_no_candidate_when_the_staged_head_fails_alone() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("test ! -e broken");
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "1-a",
        &[("Patches/1-a/01.sql", "CREATE TABLE a (id int);\n")],
    );
    env.patch(dir, &["merge"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "2-b",
        &[("Patches/2-b/01.sql", "CREATE TABLE b (id int);\n")],
    );
    // The release branch itself now breaks the tests (committed past the
    // validation, as a careless push with --no-verify would).
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    crate::support::write(env, dir, "broken", "x\n");
    env.git(dir, &["add", "broken"]).ok();
    env.git(dir, &["commit", "-qm", "broken"]).ok();
    env.release(dir, &["apply"])
        .fails(1)
        .stdout_has("the staged head alone fails: tests failed")
        .stderr_has("the staged head of release 0.1.0 fails on its own");
}
