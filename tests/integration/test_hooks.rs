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

/// git-hop's block comes first in each hook file and hands the rest of the
/// file git's exact input: a user's hook that ends with `exit 0`, one that
/// swallows stdin as git-lfs's does, and a hook manager's shim under
/// `core.hooksPath` can no longer switch the checks off, and still get the
/// ref lines. Install is idempotent; uninstall restores each byte.
#[test]
fn the_block_runs_first_and_the_users_hook_still_gets_gits_input() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["hooks", "uninstall"]).ok();
    let log = env.path("hook.log");
    let manager = env.path("manager");
    std::fs::create_dir_all(&manager).unwrap();
    std::fs::write(
        manager.join("run"),
        format!(
            "#!/bin/sh\necho \"manager $1\" >> '{}'\ncat >> '{}'\n",
            log.display(),
            log.display()
        ),
    )
    .unwrap();
    let cases = [
        (
            "exit0",
            None,
            format!("#!/bin/sh\ncat >> '{}'\nexit 0\n", log.display()),
        ),
        (
            "lfs",
            None,
            format!(
                "#!/bin/sh\ncommand -v git-lfs >/dev/null 2>&1 || true\ncat > /dev/null\necho lfs-ran >> '{}'\n",
                log.display()
            ),
        ),
        (
            "shim",
            Some(manager.clone()),
            format!(
                "#!/bin/sh\n# a hook manager's shim\nexec sh '{}' pre-push \"$@\"\n",
                manager.join("run").display()
            ),
        ),
    ];
    let zeros = "0".repeat(40);
    for (n, (name, hooks_path, text)) in cases.iter().enumerate() {
        let hooks_dir = match hooks_path {
            Some(d) => {
                env.git(dir, &["config", "core.hooksPath", d.to_str().unwrap()])
                    .ok();
                d.clone()
            }
            None => env.path(dir).join(".git/hooks"),
        };
        let hook = hooks_dir.join("pre-push");
        std::fs::write(&hook, text).unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        env.release(dir, &["hooks", "install"]).ok();
        let installed = std::fs::read(&hook).unwrap();
        env.release(dir, &["hooks", "install"])
            .ok()
            .stdout_has("already installed");
        assert_eq!(std::fs::read(&hook).unwrap(), installed, "{name}: twice");
        let _ = std::fs::remove_file(&log);

        // ho-prod: refused, naming the command to use.
        write(env, dir, &format!("f{n}.txt"), "x\n");
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", name]).ok();
        env.git(dir, &["push", "-q", "origin", "ho-prod"])
            .fails(1)
            .stderr_has("direct pushes to refs/heads/ho-prod are refused")
            .stderr_has("git hop-release promote");
        // An ordinary branch: passes, and the user's hook got git's lines.
        let sha = env.git(dir, &["rev-parse", "HEAD"]).ok().out();
        let feature = format!("refs/heads/feature-{name}");
        env.git(dir, &["push", "-q", "origin", &format!("HEAD:{feature}")])
            .ok();
        let got = std::fs::read_to_string(&log).unwrap_or_default();
        let line = format!("HEAD {sha} {feature} {zeros}\n");
        let want = match *name {
            "exit0" => line,
            "lfs" => "lfs-ran\n".to_string(),
            _ => format!("manager pre-push\n{line}"),
        };
        assert_eq!(got, want, "{name}: what the user's hook received");

        env.release(dir, &["hooks", "uninstall"]).ok();
        assert_eq!(
            std::fs::read_to_string(&hook).unwrap(),
            *text,
            "{name}: uninstall restores the file"
        );
        if hooks_path.is_some() {
            env.git(dir, &["config", "--unset", "core.hooksPath"]).ok();
        }
        env.git(dir, &["reset", "-q", "--hard", "origin/ho-prod"])
            .ok();
    }
    // hooks status names the hook managers it sees and how to chain.
    write(env, dir, "lefthook.yml", "pre-push:\n");
    let hook = env.path(dir).join(".git/hooks/pre-push");
    std::fs::write(&hook, "#!/bin/sh\ngit lfs pre-push \"$@\"\n").unwrap();
    env.release(dir, &["hooks", "install"]).ok();
    env.release(dir, &["hooks", "status"])
        .ok()
        .stdout_has("pre-push: installed")
        .stdout_has("hook manager lefthook: `lefthook install` rewrites its hook files; run git hop-release hooks install after it")
        .stdout_has("hook manager git-lfs: its hook lines run after git-hop's block");
}

/// Without git-hop-release on PATH the block still refuses pushes to the
/// refs git-hop owns (a shell check of the ref names), and lets a feature
/// branch through with a warning.
#[test]
fn without_the_binary_protected_refs_are_still_refused() {
    let mut p = Project::new();
    p.env.set("PATH", "/usr/local/bin:/usr/bin:/bin");
    let (env, dir) = (&p.env, p.name.as_str());
    write(env, dir, "x.txt", "x\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "x"]).ok();
    for target in ["ho-prod", "ho-release/0.1.0"] {
        env.git(
            dir,
            &["push", "-q", "origin", &format!("HEAD:refs/heads/{target}")],
        )
        .fails(1)
        .stderr_has(&format!("direct pushes to refs/heads/{target} are refused"))
        .stderr_has("git-hop-release is not on PATH")
        .stderr_has("--no-verify");
    }
    env.git(dir, &["push", "-q", "origin", "HEAD:refs/heads/feature"])
        .ok()
        .stderr_has("warning: git-hop-release is not on PATH");
    assert!(p.origin_refs().contains("refs/heads/feature"));
    assert!(!p.origin_refs().contains("ho-release/0.1.0"));
}

/// A production clone refuses a commit on ho-prod, a tag of its own and any
/// push, each naming its escape hatch; its upgrades still move it.
#[test]
fn a_production_clone_refuses_local_commits_tags_and_pushes() {
    let p = Project::new();
    let env = &p.env;
    let prod_db = pg::unique_db_name("hkprod");
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
    env.release("prod", &["hooks", "status"])
        .ok()
        .stdout_has("pre-commit: installed")
        .stdout_has("reference-transaction: installed");
    write(env, "prod", "x.txt", "x\n");
    env.git("prod", &["add", "-A"]).ok();
    env.git("prod", &["commit", "-qm", "local"])
        .fails(1)
        .stderr_has("production clone: no local commits on ho-prod")
        .stderr_has("--no-verify");
    // git aborts the ref update (its exit code for that is 128).
    env.git("prod", &["tag", "v9.9.9"])
        .fails(128)
        .stderr_has("it makes no tags of its own")
        .stderr_has("core.hooksPath=/dev/null");
    assert_eq!(env.git("prod", &["tag", "--list", "v9*"]).ok().out(), "");
    env.git("prod", &["push", "-q", "origin", "HEAD:refs/heads/feature"])
        .fails(1)
        .stderr_has("production clone");
    // The escape hatch for commits works; fetching tags from origin too.
    env.git("prod", &["commit", "-qm", "local", "--no-verify"])
        .ok();
    env.git(p.name.as_str(), &["tag", "-a", "-m", "t", "vtest-fetch"])
        .ok();
    env.git(
        p.name.as_str(),
        &["push", "-q", "--no-verify", "origin", "vtest-fetch"],
    )
    .ok();
    env.git("prod", &["fetch", "-q", "--tags", "origin"]).ok();
    assert_eq!(
        env.git("prod", &["tag", "--list", "vtest-fetch"])
            .ok()
            .out(),
        "vtest-fetch"
    );
    // A development clone has neither hook.
    assert!(
        !env.path(&p.name)
            .join(".git/hooks/reference-transaction")
            .exists()
    );
    pg::server().drop_db(&prod_db);
}
