//! Hook installation keeps the user's own hook code; pre-push refuses
//! direct pushes to the refs git-hop owns, warns about a patch's
//! uncommitted files and, with hop.prePushTests, validates the patch.

use crate::support::{Project, TestEnv, pg, write};

#[test]
fn hooks_install_uninstall_keep_user_code_and_guard_protected_refs() {
    let mut env = TestEnv::new();
    env.set("HOP_DATABASE_URL", &pg::server().server_url());
    let origin = env.bare_origin("o");
    let pkg = pg::unique_db_name("hk");
    env.release(".", &["init", &pkg, "--origin", origin.to_str().unwrap()])
        .ok();
    env.release(&pkg, &["hooks", "status"])
        .ok()
        .stdout_has("pre-push: installed")
        .stdout_has("post-merge: installed");

    // A direct push to ho-prod is refused by the hook...
    std::fs::write(env.path(&pkg).join("x.txt"), "x").unwrap();
    env.git(&pkg, &["add", "x.txt"]).ok();
    env.git(&pkg, &["commit", "-q", "-m", "x"]).ok();
    env.git(&pkg, &["push", "-q", "origin", "ho-prod"])
        .fails(1)
        .stderr_has("direct pushes to refs/heads/ho-prod are refused");
    // ...but an ordinary branch goes through.
    env.git(&pkg, &["push", "-q", "origin", "HEAD:refs/heads/feature"])
        .ok();

    // post-merge: a merge that brings patch files says to rebuild.
    env.git(&pkg, &["switch", "-q", "-c", "other"]).ok();
    std::fs::create_dir_all(env.path(&pkg).join("Patches/9-x")).unwrap();
    std::fs::write(env.path(&pkg).join("Patches/9-x/01.sql"), "SELECT 1;\n").unwrap();
    env.git(&pkg, &["add", "Patches"]).ok();
    env.git(&pkg, &["commit", "-qm", "patch files"]).ok();
    env.git(&pkg, &["switch", "-q", "ho-prod"]).ok();
    env.git(&pkg, &["merge", "-q", "--no-ff", "--no-edit", "other"])
        .ok()
        .stderr_has("run git hop-patch apply");

    // User code in the hook survives install and uninstall.
    let hook = env.path(&pkg).join(".git/hooks/pre-push");
    let text = std::fs::read_to_string(&hook).unwrap();
    std::fs::write(&hook, format!("{text}echo user-line\n")).unwrap();
    env.release(&pkg, &["hooks", "install"])
        .ok()
        .stdout_has("already installed");
    env.release(&pkg, &["hooks", "uninstall"]).ok();
    let after = std::fs::read_to_string(&hook).unwrap();
    assert!(
        after.contains("echo user-line") && !after.contains("git-hop managed block"),
        "{after}"
    );
    assert!(!env.path(&pkg).join(".git/hooks/post-merge").exists());
    env.release(&pkg, &["hooks", "status"])
        .ok()
        .stdout_has("pre-push: not installed");
    env.git(&pkg, &["push", "-q", "origin", "ho-prod"]).ok();

    // core.hooksPath is honoured.
    env.git(&pkg, &["config", "core.hooksPath", "myhooks"]).ok();
    env.release(&pkg, &["hooks", "install"]).ok();
    assert!(env.path(&pkg).join("myhooks/pre-push").is_file());
    pg::server().drop_db(&pkg);
}

/// Temporary databases of the project whose working database is `db`.
fn temp_databases(db: &str) -> String {
    pg::server().psql(
        "postgres",
        &format!("SELECT string_agg(datname, ',') FROM pg_database WHERE starts_with(datname, '{db}_hop_')"),
    )
}

/// What `.git/hop/tmp` holds (validation worktrees, scratch repositories).
fn hop_tmp(env: &TestEnv, dir: &str) -> Vec<String> {
    std::fs::read_dir(env.path(dir).join(".git/hop/tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn pre_push_of_a_patch_warns_about_uncommitted_files_and_validates_when_asked() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    // The project's tests need a column the patch does not create yet.
    crate::support::set_tests_command(env, dir, "sh tests/check.sh");
    write(
        env,
        dir,
        "tests/check.sh",
        "psql -X -v ON_ERROR_STOP=1 -Atc 'SELECT ok FROM a' >/dev/null || { echo 'test_ok FAILED' >&2; exit 1; }\n",
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();

    // An untracked file of the patch: a warning, and the push goes through.
    write(env, dir, "Patches/1-a/02_later.sql", "SELECT 2;\n");
    env.git(dir, &["push", "-q", "origin", "ho-patch/1-a"])
        .ok()
        .stderr_has("commit them or they are not pushed")
        .stderr_has("Patches/1-a/02_later.sql (untracked)");
    std::fs::remove_file(env.path(dir).join("Patches/1-a/02_later.sql")).unwrap();

    // With hop.prePushTests, failing tests refuse the push and leave nothing.
    env.git(dir, &["config", "hop.prePushTests", "true"]).ok();
    write(env, dir, "Patches/1-a/README.md", "a, with tests\n");
    env.git(dir, &["commit", "-qam", "readme"]).ok();
    pg::server().psql(dir, "INSERT INTO a VALUES (42)");
    env.git(dir, &["fetch", "-q", "--prune", "--tags", "origin"])
        .ok();
    let before = p.local_state(dir);
    let origin_before = p.origin_refs();
    env.git(dir, &["push", "-q", "origin", "ho-patch/1-a"])
        .fails(1)
        .stderr_has("push of ho-patch/1-a refused")
        .stderr_has("tests failed")
        .stderr_has("test_ok FAILED")
        .stderr_has("--no-verify");
    assert_eq!(p.local_state(dir), before, "local repository changed");
    assert_eq!(p.origin_refs(), origin_before, "origin changed");
    assert_eq!(
        hop_tmp(env, dir),
        Vec::<String>::new(),
        "left in .git/hop/tmp"
    );
    assert_eq!(
        env.git(dir, &["worktree", "list"]).out().lines().count(),
        1,
        "worktree left"
    );
    assert_eq!(temp_databases(dir), "", "temporary database left");
    assert_eq!(
        pg::server().psql(dir, "SELECT id FROM a"),
        "42",
        "working database changed"
    );

    // Fixed patch (and regenerated code) committed: the push goes through.
    write(
        env,
        dir,
        "Patches/1-a/01.sql",
        "CREATE TABLE a (id int, ok bool);\n",
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a.ok"]).ok();
    let head = env.git(dir, &["rev-parse", "HEAD"]).out();
    env.git(dir, &["push", "-q", "origin", "ho-patch/1-a"])
        .ok()
        .stderr_has("passes validation");
    assert!(
        p.origin_refs()
            .contains(&format!("{head}\trefs/heads/ho-patch/1-a")),
        "{}",
        p.origin_refs()
    );
    assert_eq!(
        hop_tmp(env, dir),
        Vec::<String>::new(),
        "left in .git/hop/tmp"
    );
    assert_eq!(temp_databases(dir), "", "temporary database left");
    // The release is untouched: the patch is still a candidate.
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert!(toml.contains("\"1-a\" = \"candidate\""), "{toml}");

    // pre-push judges as merge does: a branch that changes the release
    // beyond its patch (here, another entry of the release file) is refused.
    let toml_path = env.path(dir).join(".hop/releases/0.1.0-patches.toml");
    std::fs::write(&toml_path, format!("{toml}\"99-x\" = \"candidate\"\n")).unwrap();
    env.git(dir, &["commit", "-qam", "stale release file"]).ok();
    let origin_before = p.origin_refs();
    env.git(dir, &["push", "-q", "origin", "ho-patch/1-a"])
        .fails(1)
        .stderr_has("would change the release beyond the patch: it adds 99-x");
    assert_eq!(p.origin_refs(), origin_before);
    env.git(dir, &["reset", "-q", "--hard", "HEAD~1"]).ok();

    // From a linked worktree (git gives the hook GIT_DIR): the validation
    // still runs in its own repository, not in the user's worktree.
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["worktree", "add", "-q", "../wt", "ho-patch/1-a"])
        .ok();
    write(env, "wt", "Patches/1-a/README.md", "a, from a worktree\n");
    env.git("wt", &["commit", "-qam", "from wt"]).ok();
    let head = env.git("wt", &["rev-parse", "HEAD"]).out();
    env.git("wt", &["push", "-q", "origin", "ho-patch/1-a"])
        .ok()
        .stderr_has("passes validation");
    assert_eq!(env.git("wt", &["rev-parse", "HEAD"]).out(), head);
    assert_eq!(
        env.git("wt", &["status", "--porcelain", "--untracked-files=all"])
            .out(),
        ""
    );
    assert_eq!(env.git(dir, &["worktree", "list"]).out().lines().count(), 2);
    assert_eq!(
        hop_tmp(env, dir),
        Vec::<String>::new(),
        "left in .git/hop/tmp"
    );
}
