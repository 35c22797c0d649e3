//! Release housekeeping: `git hop-patch detach` / `attach` and
//! `git hop-release abandon`, each one atomic compare-and-swap push that
//! refuses what would lose work and leaves everything as it was when it
//! fails.

use std::process::Stdio;

use crate::support::{Project, TestEnv, pg, write};

fn toml_on_origin(env: &TestEnv, dir: &str, v: &str) -> String {
    env.git(dir, &["fetch", "-q", "--prune", "origin"]).ok();
    env.git(
        dir,
        &[
            "show",
            &format!("origin/ho-release/{v}:.hop/releases/{v}-patches.toml"),
        ],
    )
    .ok()
    .out()
}

fn on_origin(p: &Project, name: &str) -> bool {
    p.origin_refs()
        .lines()
        .any(|l| l.split('\t').nth(1) == Some(name))
}

/// Writes, applies and commits the SQL of the current patch branch.
fn fill(env: &TestEnv, dir: &str, id: &str, sql: &str) {
    write(env, dir, &format!("Patches/{id}/01.sql"), sql);
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
    env.git(dir, &["push", "-q", "origin", &format!("ho-patch/{id}")])
        .ok();
}

#[test]
fn detach_attach_and_abandon_move_patches_and_close_empty_releases() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    fill(env, dir, "1-a", "CREATE TABLE a (id int);\n");
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", "2-b"]).ok();
    fill(env, dir, "2-b", "CREATE TABLE b (id int);\n");

    // Detach the current patch: out of the release, branch and number kept.
    env.patch(dir, &["detach"])
        .ok()
        .stdout_has("detached 2-b from release 0.1.0");
    let toml = toml_on_origin(env, dir, "0.1.0");
    assert!(toml.contains("\"1-a\"") && !toml.contains("2-b"), "{toml}");
    assert!(on_origin(&p, "refs/heads/ho-patch/2-b"));
    assert!(on_origin(&p, "refs/hop/patches/2"));
    // The branch knows it: it follows origin, and apply says what to do.
    assert_eq!(
        env.git(dir, &["rev-parse", "HEAD"]).ok().out(),
        env.git(dir, &["rev-parse", "origin/ho-patch/2-b"])
            .ok()
            .out()
    );
    env.patch(dir, &["apply"])
        .fails(1)
        .stderr_has("git hop-patch attach 2-b");
    // Already detached: the goal is reached.
    let before = p.origin_refs();
    env.patch(dir, &["detach", "2-b"])
        .ok()
        .stdout_has("detached already");
    assert_eq!(p.origin_refs(), before);
    // The number stays taken.
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", "2-other"])
        .fails(1)
        .stderr_has("patch number 2 is already taken by 2-b");

    // A staged patch cannot be detached; nothing changes.
    env.git(dir, &["switch", "-q", "ho-patch/1-a"]).ok();
    env.patch(dir, &["merge"]).ok();
    let before = (p.origin_refs(), p.local_state(dir));
    env.patch(dir, &["detach", "1-a"])
        .fails(1)
        .stderr_has("1-a is staged in release 0.1.0: a staged patch cannot be detached");
    assert_eq!((p.origin_refs(), p.local_state(dir)), before);

    // Attach it to another release: listed there, its branch holds that
    // release, and 0.1.0's files stayed behind.
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    env.release(dir, &["new", "major"]).ok();
    env.patch(dir, &["attach", "2-b"])
        .ok()
        .stdout_has("attached 2-b to release 1.0.0 as a candidate");
    let toml = toml_on_origin(env, dir, "1.0.0");
    assert!(toml.contains("\"2-b\" = \"candidate\""), "{toml}");
    let files = env
        .git(
            dir,
            &["ls-tree", "-r", "--name-only", "origin/ho-patch/2-b"],
        )
        .ok()
        .out();
    assert!(files.contains("Patches/2-b/01.sql"), "{files}");
    assert!(
        files.contains(".hop/releases/1.0.0-patches.toml"),
        "{files}"
    );
    assert!(
        !files.contains("Patches/1-a/") && !files.contains("0.1.0-patches.toml"),
        "{files}"
    );
    // Twice: nothing to do.
    env.patch(dir, &["attach", "2-b"])
        .ok()
        .stdout_has("a candidate of release 1.0.0 already");
    // In a second release at once: refused.
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["attach", "2-b"])
        .fails(1)
        .stderr_has("2-b is candidate in release 1.0.0")
        .stderr_has("git hop-patch detach 2-b");
    // The patch works in its new release.
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["apply"])
        .ok()
        .stdout_has("for release 1.0.0");
    let sql = |q: &str| pg::server().psql(&p.db, q);
    assert_eq!(
        sql(
            "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'"
        ),
        "b"
    );

    // abandon: refused with a staged patch, naming it.
    let before = (p.origin_refs(), p.local_state(dir));
    env.release(dir, &["abandon", "0.1.0"])
        .fails(1)
        .stderr_has("release 0.1.0 has staged patches: 1-a");
    assert_eq!((p.origin_refs(), p.local_state(dir)), before);

    // An empty release blocks the next one; abandoned, it no longer does.
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    env.release(dir, &["new", "patch"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.release(dir, &["promote", "prod"])
        .fails(1)
        .stderr_has("release 0.0.1 is in preparation and comes first")
        .stderr_has("git hop-release abandon 0.0.1");
    env.release(dir, &["abandon", "0.0.1"])
        .ok()
        .stdout_has("abandoned release 0.0.1");
    assert!(!on_origin(&p, "refs/heads/ho-release/0.0.1"));
    assert!(!on_origin(&p, "refs/hop/releases/0.0.1"));
    assert_eq!(
        env.git(dir, &["branch", "--list", "ho-release/0.0.1"])
            .ok()
            .out(),
        ""
    );
    env.release(dir, &["promote", "prod"]).ok();

    // Abandoning a release with a candidate detaches it; the version can be
    // opened again.
    env.git(dir, &["switch", "-q", "ho-release/1.0.0"]).ok();
    env.release(dir, &["abandon", "1.0.0"])
        .ok()
        .stdout_has("switched to ho-prod")
        .stdout_has("detached its candidates (branches and numbers kept): 2-b");
    assert!(on_origin(&p, "refs/heads/ho-patch/2-b"));
    let files = env
        .git(
            dir,
            &["ls-tree", "-r", "--name-only", "origin/ho-patch/2-b"],
        )
        .ok()
        .out();
    assert!(!files.contains("1.0.0-patches.toml"), "{files}");
    env.release(dir, &["abandon", "1.0.0"])
        .fails(1)
        .stderr_has("release 1.0.0 is not in preparation");
    env.release(dir, &["abandon", "0.1.0"])
        .fails(1)
        .stderr_has("release 0.1.0 is in production");
    // The branch and the release both changed one file differently:
    // refused, naming it, nothing changed.
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    write(env, dir, "NOTES.md", "from the patch\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "notes on the patch"]).ok();
    env.git(dir, &["push", "-q", "origin", "ho-patch/2-b"]).ok();
    env.git(dir, &["switch", "-q", "ho-prod"]).ok();
    write(env, dir, "NOTES.md", "from production\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "notes on ho-prod"]).ok();
    env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(dir, &["new", "major"]).ok();
    let before = (p.origin_refs(), p.local_state(dir));
    env.patch(dir, &["attach", "2-b"])
        .fails(1)
        .stderr_has("ho-patch/2-b and release 1.0.0 both changed NOTES.md");
    assert_eq!((p.origin_refs(), p.local_state(dir)), before);
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.git(
        dir,
        &["checkout", "origin/ho-release/1.0.0", "--", "NOTES.md"],
    )
    .ok();
    env.git(dir, &["commit", "-qm", "notes as released"]).ok();
    env.git(dir, &["push", "-q", "origin", "ho-patch/2-b"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/1.0.0"]).ok();
    env.patch(dir, &["attach", "2-b"]).ok();
    assert!(toml_on_origin(env, dir, "1.0.0").contains("\"2-b\" = \"candidate\""));
    // The local branch, which held what was attached, follows.
    assert_eq!(
        env.git(dir, &["rev-parse", "ho-patch/2-b"]).ok().out(),
        env.git(dir, &["rev-parse", "origin/ho-patch/2-b"])
            .ok()
            .out()
    );
    // And the patch merges into its new release.
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "regenerated", "--allow-empty"])
        .ok();
    env.patch(dir, &["merge"]).ok();
    let toml = toml_on_origin(env, dir, "1.0.0");
    assert!(toml.contains("\"2-b\" = \"staged\""), "{toml}");
}

#[test]
fn a_detach_racing_a_merge_loses_nothing() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    fill(env, dir, "1-a", "CREATE TABLE a (id int);\n");
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", "2-b"]).ok();
    let db_b = p.clone_as("b");
    env.git(dir, &["switch", "-q", "ho-patch/1-a"]).ok();
    env.git("b", &["switch", "-q", "ho-release/0.1.0"]).ok();

    let spawn = |d: &str, args: &[&str]| {
        let mut c = env.cmd("git", d);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.spawn().unwrap()
    };
    let merge = spawn(dir, &["hop-patch", "merge"]);
    let detach = spawn("b", &["hop-patch", "detach", "2-b"]);
    let merge = merge.wait_with_output().unwrap();
    let detach = detach.wait_with_output().unwrap();
    // One may lose the compare-and-swap race: it changed nothing and says
    // so; run again, it lands.
    for (out, d, args) in [
        (&merge, dir, &["merge"][..]),
        (&detach, "b", &["detach", "2-b"][..]),
    ] {
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("origin changed meanwhile"), "{err}");
            env.patch(d, args).ok();
        }
    }
    let toml = toml_on_origin(env, dir, "0.1.0");
    assert!(toml.contains("\"1-a\" = \"staged\""), "{toml}");
    assert!(!toml.contains("2-b"), "{toml}");
    assert!(on_origin(&p, "refs/heads/ho-patch/2-b"));
    assert!(!on_origin(&p, "refs/heads/ho-patch/1-a"));
    let files = env
        .git(
            dir,
            &["ls-tree", "-r", "--name-only", "origin/ho-release/0.1.0"],
        )
        .ok()
        .out();
    assert!(files.contains("Patches/1-a/01.sql"), "{files}");
    pg::server().drop_db(&db_b);
}
