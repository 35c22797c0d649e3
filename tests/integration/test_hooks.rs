//! Hook installation keeps the user's own hook code; pre-push refuses
//! direct pushes to the refs git-hop owns.

use crate::support::{TestEnv, pg};

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
