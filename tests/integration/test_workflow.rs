//! `release new` and `patch create`: reservations on origin, preconditions,
//! races between clones, and a failing origin.

use std::process::Stdio;

use crate::support::{Project, pg, write};

#[test]
fn new_release_and_patch_create_reserve_on_origin() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"])
        .ok()
        .stdout_has("opened release 0.1.0");
    assert_eq!(
        env.git(dir, &["branch", "--show-current"]).out(),
        "ho-release/0.1.0"
    );
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert_eq!(toml, "[patches]\n");
    let refs = p.origin_refs();
    assert!(
        refs.contains("refs/heads/ho-release/0.1.0") && refs.contains("refs/hop/releases/0.1.0"),
        "{refs}"
    );
    env.release(dir, &["new", "minor"])
        .fails(1)
        .stderr_has("already in preparation");
    env.release(dir, &["new", "patch"])
        .ok()
        .stdout_has("opened release 0.0.1");
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();

    env.patch(dir, &["create", "1-users", "-d", "The users table"])
        .ok()
        .stdout_has("created patch 1-users");
    assert_eq!(
        env.git(dir, &["branch", "--show-current"]).out(),
        "ho-patch/1-users"
    );
    let readme = std::fs::read_to_string(env.path(dir).join("Patches/1-users/README.md")).unwrap();
    assert!(readme.contains("The users table"), "{readme}");
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert_eq!(toml, "[patches]\n\"1-users\" = \"candidate\"\n");
    let refs = p.origin_refs();
    assert!(
        refs.contains("refs/heads/ho-patch/1-users") && refs.contains("refs/hop/patches/1"),
        "{refs}"
    );
    env.git(dir, &["status", "--porcelain"]).ok();
    assert_eq!(env.git(dir, &["status", "--porcelain"]).out(), "");
    env.patch(dir, &["status"])
        .ok()
        .stdout_has("1-users, candidate in release 0.1.0");

    // Numeric-only ids, --before, and a taken number.
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.patch(dir, &["create", "456"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.patch(dir, &["create", "3-api", "--before", "456"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert_eq!(
        toml,
        "[patches]\n\"1-users\" = \"candidate\"\n\"3-api\" = \"candidate\"\n\"456\" = \"candidate\"\n"
    );
    env.patch(dir, &["create", "1-other"])
        .fails(1)
        .stderr_has("patch number 1 is already taken by 1-users");
    env.patch(dir, &["create", "01-other"])
        .fails(1)
        .stderr_has("already taken by 1-users");
    env.patch(dir, &["create", "9-x", "--before", "77"])
        .fails(1)
        .stderr_has("Patch not found in candidates file");
}

#[test]
fn patch_create_refuses_bad_input_and_wrong_state() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.patch(dir, &["create", "1-x"])
        .fails(1)
        .stderr_has("Must be on ho-release/* branch");
    env.release(dir, &["new", "minor"]).ok();
    let long = "1".repeat(65);
    for bad in [
        "-1-x",
        "../x",
        "1 x",
        "1-X",
        "1-é",
        long.as_str(),
        "1--x",
        "x-1",
    ] {
        let r = env.patch(dir, &["create", bad]);
        assert_ne!(r.code, Some(0), "{bad} accepted");
        r.stderr_has("invalid patch id");
    }
    std::fs::write(env.path(dir).join("stray.txt"), "x").unwrap();
    env.patch(dir, &["create", "2-x"])
        .fails(1)
        .stderr_has("Repository is not clean: stray.txt");
    // git status runs beside the other checks: a dirty tree is still the
    // error told, whatever else is wrong.
    env.patch(dir, &["create", "2-x", "--before", "1-nope"])
        .fails(1)
        .stderr_has("Repository is not clean: stray.txt");
    std::fs::remove_file(env.path(dir).join("stray.txt")).unwrap();
    let before = p.local_state(dir);
    env.patch(dir, &["create", "2-x", "--before", "1-nope"])
        .fails(1)
        .stderr_has("Patch not found in candidates file");
    assert_eq!(p.local_state(dir), before);
    // Malformed release file: file, line and column.
    let toml = env.path(dir).join(".hop/releases/0.1.0-patches.toml");
    std::fs::write(&toml, "[patches]\n\"1-a\" = candidate\n").unwrap();
    env.git(dir, &["commit", "-qam", "broken"]).ok();
    env.git(
        dir,
        &["push", "-q", "--no-verify", "origin", "ho-release/0.1.0"],
    )
    .ok();
    env.patch(dir, &["create", "2-x"])
        .fails(1)
        .stderr_has("0.1.0-patches.toml:2:");
}

/// Starts the same hop command in two clones at once; returns both runs.
fn race(p: &Project, a: &str, b: &str, args: &[&str]) -> Vec<(String, std::process::Output)> {
    let mut children = Vec::new();
    for dir in [a, b] {
        let mut c = p.env.cmd("git", dir);
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        children.push((dir.to_string(), c.spawn().unwrap()));
    }
    children
        .into_iter()
        .map(|(d, c)| (d, c.wait_with_output().unwrap()))
        .collect()
}

#[test]
fn racing_clones_exactly_one_wins_and_the_loser_keeps_nothing() {
    let p = Project::new();
    let db_a = p.clone_as("a");
    let db_b = p.clone_as("b");
    let before_a = p.local_state("a");
    let before_b = p.local_state("b");
    let runs = race(&p, "a", "b", &["hop-release", "new", "minor"]);
    let winners: Vec<&String> = runs
        .iter()
        .filter(|(_, o)| o.status.success())
        .map(|(d, _)| d)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one clone must win: {runs:?}");
    let (loser, out) = runs.iter().find(|(_, o)| !o.status.success()).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0.1.0"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let before = if loser == "a" { &before_a } else { &before_b };
    let after = p.local_state(loser);
    // The loser only gained remote-tracking refs from its fetch.
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("refs/remotes/"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&after), strip(before), "the loser's clone changed");
    assert!(
        p.env
            .git(loser, &["rev-parse", "--verify", "-q", "ho-release/0.1.0"])
            .code
            != Some(0)
    );

    // Both on the release, racing for one patch number.
    for d in ["a", "b"] {
        p.env.git(d, &["fetch", "-q"]).ok();
        p.env.git(d, &["switch", "-q", "ho-release/0.1.0"]).ok();
    }
    let before_a = p.local_state("a");
    let before_b = p.local_state("b");
    let runs = race(&p, "a", "b", &["hop-patch", "create", "7-x"]);
    let winners = runs.iter().filter(|(_, o)| o.status.success()).count();
    assert_eq!(winners, 1, "{runs:?}");
    let (loser, out) = runs.iter().find(|(_, o)| !o.status.success()).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("7"), "{err}");
    let before = if loser == "a" { &before_a } else { &before_b };
    assert_eq!(
        strip(&p.local_state(loser)),
        strip(before),
        "the loser's clone changed"
    );
    pg::server().drop_db(&db_a);
    pg::server().drop_db(&db_b);
}

#[test]
fn a_refusing_origin_leaves_the_clone_as_it_was_and_retry_works() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    let hook = p.origin.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\necho 'origin is read-only today' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = p.local_state(dir);
    let origin_before = p.origin_refs();
    env.patch(dir, &["create", "5-x"])
        .fails(1)
        .stderr_has("origin is read-only today");
    assert_eq!(p.local_state(dir), before);
    assert_eq!(p.origin_refs(), origin_before);
    std::fs::remove_file(&hook).unwrap();
    env.patch(dir, &["create", "5-x"]).ok();

    // Origin gone altogether.
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    let moved = p.origin.with_extension("moved");
    std::fs::rename(&p.origin, &moved).unwrap();
    let before = p.local_state(dir);
    env.patch(dir, &["create", "6-y"])
        .fails(1)
        .stderr_has("cannot reach origin");
    assert_eq!(p.local_state(dir), before);
    std::fs::rename(&moved, &p.origin).unwrap();
    env.patch(dir, &["create", "6-y"]).ok();
}

/// A reservation another clone pushed that this clone has not seen (git
/// fetch does not bring `refs/hop/*`): `release new` and `patch create` no
/// longer ask origin before pushing, so the push's compare-and-swap
/// refuses it, the error names what is taken, and nothing changed.
#[test]
fn a_reservation_unseen_by_this_clone_is_refused_by_the_push() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let head = env.git(dir, &["rev-parse", "HEAD"]).out();
    // Pushed by "another clone" (straight to origin, past the hooks).
    let reserve = |r: &str| {
        env.git(
            dir,
            &[
                "push",
                "-q",
                "--no-verify",
                "origin",
                &format!("{head}:{r}"),
            ],
        )
        .ok();
    };
    reserve("refs/hop/releases/0.1.0");
    let (local, origin) = (p.local_state(dir), p.origin_refs());
    env.release(dir, &["new", "minor"])
        .fails(1)
        .stderr_has("release 0.1.0 is already in preparation");
    assert_eq!(p.local_state(dir), local, "local repository changed");
    assert_eq!(p.origin_refs(), origin, "origin changed");

    env.release(dir, &["new", "patch"]).ok();
    reserve("refs/hop/patches/7");
    let (local, origin) = (p.local_state(dir), p.origin_refs());
    env.patch(dir, &["create", "7-x"])
        .fails(1)
        .stderr_has("patch number 7 is already taken by ")
        .stderr_has("nothing was changed");
    assert_eq!(p.origin_refs(), origin, "origin changed");
    // The winner's reservation was fetched to name it; nothing else moved.
    let after = p.local_state(dir);
    assert_eq!(
        after.replace(&format!("refs/hop/patches/7 {head}\n"), ""),
        local,
        "local repository changed"
    );
    env.patch(dir, &["create", "8-y"]).ok();
}

/// `patch create` and `release new` push without fetching first: a clone
/// that missed what another clone pushed is refused by origin's
/// compare-and-swap (create: told it is behind, nothing changed) or, for
/// `new`, fetches and decides again on origin's production.
#[test]
fn a_stale_clone_is_caught_by_the_push_without_a_fetch_first() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let db_b = p.clone_as("b");
    // Production moved on origin (another clone), unseen by b.
    write(env, dir, "NOTES.md", "prod moved\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "prod moved"]).ok();
    env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    let moved = env.git(dir, &["rev-parse", "HEAD"]).ok().out();
    env.release("b", &["new", "minor"])
        .ok()
        .stdout_has("opened release 0.1.0");
    env.git(
        "b",
        &["merge-base", "--is-ancestor", &moved, "ho-release/0.1.0"],
    )
    .ok();
    // The release branch moved on origin (a patch created from a), unseen
    // by b: refused, nothing changed but what b learnt of origin.
    env.git(dir, &["fetch", "-q"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.patch(dir, &["create", "1-x"]).ok();
    let strip = |s: String| {
        s.lines()
            .filter(|l| !l.starts_with("refs/remotes/"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let before = strip(p.local_state("b"));
    env.patch("b", &["create", "2-y"])
        .fails(1)
        .stderr_has("ho-release/0.1.0 is behind origin");
    assert_eq!(strip(p.local_state("b")), before);
    assert!(!p.origin_refs().contains("ho-patch/2-y"));
    env.git("b", &["pull", "-q", "--ff-only"]).ok();
    env.patch("b", &["create", "2-y"]).ok();
    pg::server().drop_db(&db_b);
}
