//! The origin lock (merge queue): merges of one release take turns through
//! `refs/hop/locks/X.Y.Z` on origin, so each validates once and lands on its
//! first run; an expired lock is taken over, `unlock` breaks a live one, a
//! short `--wait` fails clearly, and the compare-and-swap pushes keep
//! everything safe when the lock is broken.

use std::process::{Command, Stdio};

use crate::support::{Project, TestEnv, pg, write};

fn toml_on_origin(env: &TestEnv, dir: &str) -> String {
    env.git(dir, &["fetch", "-q", "origin"]).ok();
    env.git(
        dir,
        &[
            "show",
            "origin/ho-release/0.1.0:.hop/releases/0.1.0-patches.toml",
        ],
    )
    .ok()
    .out()
}

/// In clone `dir`, on the release branch: creates patch `id` with a table,
/// commits and pushes it, back on the release branch.
fn candidate(env: &TestEnv, dir: &str, id: &str, table: &str) {
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", id]).ok();
    write(
        env,
        dir,
        &format!("Patches/{id}/01.sql"),
        &format!("CREATE TABLE {table} (id int);\n"),
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
    env.git(dir, &["push", "-q", "origin", &format!("ho-patch/{id}")])
        .ok();
}

/// Writes a lock straight to origin, as a holder that is gone would have
/// left it (`expires` seconds from now, negative: in the past).
fn plant_lock(env: &TestEnv, dir: &str, expires_in: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let msg = format!(
        "[hop] lock of release 0.1.0\n\nowner: ghost@elsewhere\ncommand: git hop-patch merge 99\npid: 1\nstarted: {}\nexpires: {}\n",
        now - 300,
        now + expires_in
    );
    let tree = env.git(dir, &["mktree"]).ok().out();
    let mut c = env.cmd("git", dir);
    c.args(["commit-tree", &tree, "-m", &msg]);
    let out = c.output().unwrap();
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_string();
    env.git(
        dir,
        &[
            "push",
            "-q",
            "--no-verify",
            "--force",
            "origin",
            &format!("{commit}:refs/hop/locks/0.1.0"),
        ],
    )
    .ok();
    commit
}

fn lock_on_origin(p: &Project) -> Option<String> {
    p.origin_refs()
        .lines()
        .find(|l| l.ends_with("\trefs/hop/locks/0.1.0"))
        .map(|l| l.split('\t').next().unwrap().to_string())
}

#[test]
fn three_clones_merging_at_once_each_validate_once_and_land_first_time() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let count = env.path("validations.log");
    p.publish_tests_command(&format!("echo run >> {}", count.display()));
    env.release(dir, &["new", "minor"]).ok();
    let clones = ["a", "b", "c"];
    let dbs: Vec<String> = clones.iter().map(|c| p.clone_as(c)).collect();
    let mut all_staged = Vec::new();
    for round in 0..2 {
        let mut ids = Vec::new();
        for (n, c) in clones.iter().enumerate() {
            for k in 0..2 {
                let id = format!("{}-{c}{k}", 10 * (round + 1) + n * 2 + k);
                candidate(env, c, &id, &format!("t{round}_{c}{k}"));
                ids.push((c.to_string(), id));
            }
        }
        let _ = std::fs::remove_file(&count);
        // Each clone merges its two patches, all three at the same time.
        let threads: Vec<_> = clones
            .iter()
            .map(|c| {
                let mine: Vec<String> = ids
                    .iter()
                    .filter(|(d, _)| d == c)
                    .map(|(_, id)| id.clone())
                    .collect();
                let cmds: Vec<Command> = mine
                    .iter()
                    .flat_map(|id| {
                        let mut sw = env.cmd("git", c);
                        sw.args(["switch", "-q", &format!("ho-patch/{id}")]);
                        let mut m = env.cmd("git", c);
                        m.args(["hop-patch", "merge"]);
                        [sw, m]
                    })
                    .collect();
                std::thread::spawn(move || {
                    cmds.into_iter()
                        .map(|mut cmd| {
                            let out = cmd
                                .stdout(Stdio::piped())
                                .stderr(Stdio::piped())
                                .output()
                                .unwrap();
                            (
                                out.status.code(),
                                String::from_utf8_lossy(&out.stderr).into_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut waited = 0;
        for t in threads {
            for (code, stderr) in t.join().unwrap() {
                assert_eq!(
                    code,
                    Some(0),
                    "every merge lands on its first run: {stderr}"
                );
                if stderr.contains("is locked by") {
                    waited += 1;
                }
            }
        }
        assert!(waited >= 1, "someone waited its turn");
        let runs = std::fs::read_to_string(&count).unwrap();
        assert_eq!(runs.lines().count(), 6, "one validation per merge");
        // Every patch staged once, in merge order.
        let toml = toml_on_origin(env, dir);
        let staged: Vec<&str> = toml
            .lines()
            .filter(|l| l.ends_with("= \"staged\""))
            .map(|l| l.split('"').nth(1).unwrap())
            .collect();
        assert_eq!(staged.len(), 6 * (round + 1), "{toml}");
        let history = env
            .git(
                dir,
                &[
                    "log",
                    "--first-parent",
                    "--reverse",
                    "--format=%s",
                    "origin/ho-release/0.1.0",
                ],
            )
            .ok()
            .out();
        let merged: Vec<&str> = history
            .lines()
            .filter_map(|l| l.strip_prefix("[hop] merge patch "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(staged, merged);
        assert_eq!(lock_on_origin(&p), None, "the lock is released");
        all_staged = staged.iter().map(|s| s.to_string()).collect();
    }
    let mut unique = all_staged.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        12,
        "each patch staged exactly once: {all_staged:?}"
    );
    for db in dbs {
        pg::server().drop_db(&db);
    }
}

#[test]
fn expired_locks_are_taken_over_live_ones_wait_or_are_broken() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    env.release(dir, &["new", "minor"]).ok();
    candidate(env, dir, "1-a", "a");
    candidate(env, dir, "2-b", "b");
    candidate(env, dir, "3-c", "c");

    // A live lock and a short wait: a clear failure, nothing changed.
    let ghost = plant_lock(env, dir, 3600);
    env.git(dir, &["switch", "-q", "ho-patch/1-a"]).ok();
    let before = (p.origin_refs(), p.local_state(dir));
    env.patch(dir, &["merge", "--wait", "1"])
        .fails(1)
        .stderr_has(
            "release 0.1.0 is still locked by ghost@elsewhere (git hop-patch merge 99, pid 1)",
        )
        .stderr_has("git hop-release unlock 0.1.0");
    assert_eq!((p.origin_refs(), p.local_state(dir)), before);

    // unlock without --yes and without a terminal: refused.
    env.release(dir, &["unlock", "0.1.0"])
        .fails(1)
        .stderr_has("--yes");
    assert_eq!(lock_on_origin(&p).as_deref(), Some(ghost.as_str()));
    // A waiting merge proceeds once the lock is broken.
    let mut waiting = env.cmd("git", dir);
    waiting
        .args(["hop-patch", "merge", "--wait", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = waiting.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.release(dir, &["unlock", "0.1.0", "--yes"])
        .ok()
        .stdout_has("broke the lock of release 0.1.0 held by ghost@elsewhere");
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is locked by ghost@elsewhere"), "{err}");
    assert!(toml_on_origin(env, dir).contains("\"1-a\" = \"staged\""));
    env.release(dir, &["unlock", "0.1.0", "--yes"])
        .ok()
        .stdout_has("not locked");

    // An expired lock (its holder was killed): taken over.
    plant_lock(env, dir, -10);
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.patch(dir, &["merge"])
        .ok()
        .stderr_has("held by ghost@elsewhere (git hop-patch merge 99, pid 1)")
        .stderr_has("taking it over");
    assert!(toml_on_origin(env, dir).contains("\"2-b\" = \"staged\""));
    assert_eq!(lock_on_origin(&p), None);

    // A holder elsewhere that stopped renewing: the waiter proceeds once
    // the lock expires.
    plant_lock(env, dir, 3);
    candidate(env, dir, "5-e", "e");
    env.patch(dir, &["merge"])
        .ok()
        .stderr_has("is locked by ghost@elsewhere")
        .stderr_has("expired at")
        .stderr_has("taking it over");

    // The lock broken while a merge validates, another merge landing
    // meanwhile: the first one's push is refused, nothing is lost.
    let db_b = p.clone_as("b");
    env.git("b", &["switch", "-q", "ho-patch/3-c"]).ok();
    let cfg = env.path("b").join(".hop/config");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("command = \"true\"", "command = \"sleep 4\""),
    )
    .unwrap();
    env.git("b", &["commit", "-qam", "slow tests"]).ok();
    env.git("b", &["push", "-q", "origin", "ho-patch/3-c"]).ok();
    let mut slow = env.cmd("git", "b");
    slow.args(["hop-patch", "merge"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let slow = slow.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    env.release(dir, &["unlock", "0.1.0", "--yes"]).ok();
    // Another developer's patch lands while b still validates.
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.git(dir, &["pull", "-q", "--ff-only"]).ok();
    env.patch(dir, &["create", "4-d"]).ok();
    env.patch(dir, &["merge"]).ok();
    let out = slow.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("origin changed meanwhile"), "{err}");
    let toml = toml_on_origin(env, dir);
    assert!(
        toml.contains("\"4-d\" = \"staged\"") && toml.contains("\"3-c\" = \"candidate\""),
        "{toml}"
    );
    // Run again: it lands.
    env.patch("b", &["merge"]).ok();
    assert!(toml_on_origin(env, dir).contains("\"3-c\" = \"staged\""));
    pg::server().drop_db(&db_b);
}

/// `kill -9` of the lock holder while it validates: the clone waiting for
/// the lock proceeds (the holder's process is gone, or, from another host,
/// once its lock expires) and lands; nothing is lost.
#[test]
fn a_killed_lock_holder_does_not_block_the_others() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    let mark = env.path("started");
    p.publish_tests_command(&format!(
        "touch {m}; [ -e {m}.go ] || sleep 30",
        m = mark.display()
    ));
    env.release(dir, &["new", "minor"]).ok();
    let db_b = p.clone_as("b");
    candidate(env, dir, "1-a", "a");
    candidate(env, "b", "2-b", "b");
    env.git(dir, &["switch", "-q", "ho-patch/1-a"]).ok();
    let mut holder = env.cmd("git-hop-patch", dir);
    holder
        .arg("merge")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut holder = holder.spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !mark.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the holder never validated"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(lock_on_origin(&p).is_some());
    let mut waiter = env.cmd("git", "b");
    waiter
        .args(["hop-patch", "merge", "--wait", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let waiter = waiter.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    std::fs::write(mark.with_extension("go"), "").unwrap();
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    let out = waiter.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("taking it over"), "{err}");
    let toml = toml_on_origin(env, dir);
    assert!(
        toml.contains("\"2-b\" = \"staged\"") && toml.contains("\"1-a\" = \"candidate\""),
        "{toml}"
    );
    // The killed merge, run again, lands too.
    env.patch(dir, &["merge"]).ok();
    assert!(toml_on_origin(env, dir).contains("\"1-a\" = \"staged\""));
    assert_eq!(lock_on_origin(&p), None);
    pg::server().drop_db(&db_b);
}
