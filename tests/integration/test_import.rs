//! `git hop-release import`: what it refuses, changing nothing. (The
//! conversion of a project made by half-orm-dev itself is checked by hand
//! so far: docs/import.md.)

use crate::support::{Project, TestEnv, write};

#[test]
fn import_refuses_a_git_hop_project_a_foreign_folder_and_a_dirty_tree() {
    // A git-hop project is imported already.
    let p = Project::new();
    let before = p.origin_refs();
    p.env
        .release(&p.name, &["import", "--dry-run"])
        .fails(1)
        .stderr_has("is git-hop's already: this project is imported");
    assert_eq!(p.origin_refs(), before);

    // A repository without half-orm-dev's config.
    let env = TestEnv::new();
    env.git(".", &["init", "-q", "-b", "ho-prod", "plain"]).ok();
    env.release("plain", &["import"])
        .fails(1)
        .stderr_has("cannot read")
        .stderr_has("run git hop-release import in a half-orm-dev project");
    write(&env, "plain", ".hop/config", "[other]\nx = 1\n");
    env.release("plain", &["import"])
        .fails(1)
        .stderr_has("is not a half-orm-dev config");

    // A half-orm-dev config, but uncommitted changes.
    write(
        &env,
        "plain",
        ".hop/config",
        "[halfORM]\nhop_version = 1.1.0-a1\ndevel = True\npackage_name = blog\n\n[database]\nname = blog\n",
    );
    env.git("plain", &["add", "-A"]).ok();
    env.git("plain", &["commit", "-qm", "half-orm-dev"]).ok();
    write(
        &env,
        "plain",
        ".hop/config",
        "[halfORM]\npackage_name = changed\n",
    );
    let run = env.release("plain", &["import", "--dry-run"]);
    run.fails(1)
        .stderr_has("uncommitted changes; nothing was changed");
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );
    assert!(
        env.git("plain", &["status", "--porcelain"])
            .ok()
            .out()
            .contains(".hop/config")
    );
}
