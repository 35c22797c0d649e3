//! `git hop-patch validate` and `git hop-release validate`: merge's and
//! promote's validation for CI, which commits, tags and pushes nothing;
//! the exit code and `--json` say the result.

use crate::support::{Project, Run, patch_with};

/// Runs `git hop-<which> validate ARGS` as a CI job does (`CI=true`, no
/// TTY), with the tests failing when `fail` (the project's tests command
/// reads `FAIL_TESTS`).
fn validate(p: &Project, dir: &str, which: &str, args: &[&str], fail: bool) -> Run {
    let mut a = vec![which, "validate"];
    a.extend_from_slice(args);
    let mut cmd = p.env.cmd("git", dir);
    cmd.args(&a).env("CI", "true");
    if fail {
        cmd.env("FAIL_TESTS", "1");
    }
    let out = cmd.output().unwrap();
    Run::from_output(&format!("git {}", a.join(" ")), out)
}

/// The JSON document on stdout (nothing else there).
#[track_caller]
fn json(r: &Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", r.stdout))
}

#[test]
fn validate_commands_judge_like_merge_and_promote_and_change_nothing() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("test -z $FAIL_TESTS");
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "1-a",
        &[(
            "Patches/1-a/01.sql",
            "CREATE TABLE a (id int PRIMARY KEY);\n",
        )],
    );
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    let state = || (p.origin_refs(), p.local_state(dir));
    let before = state();

    // A passing patch: exit 0, nothing committed, tagged or pushed.
    validate(&p, dir, "hop-patch", &[], false)
        .ok()
        .stdout_has("validated 1-a with release 0.1.0")
        .stdout_has("running tests: test -z $FAIL_TESTS");
    assert_eq!(state(), before);
    let r = validate(&p, dir, "hop-patch", &["--json"], false);
    r.ok();
    let v = json(&r);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["passed"], true);
    assert_eq!(v["patch"], "1-a");
    assert_eq!(v["release"], "0.1.0");
    assert!(v["error"].is_null());
    // The progress went to stderr.
    assert!(r.stderr.contains("running tests"), "{}", r.stderr);
    assert_eq!(state(), before);

    // Failing tests: exit 1, the error in the JSON too.
    validate(&p, dir, "hop-patch", &[], true)
        .fails(1)
        .stderr_has("error: tests failed");
    let r = validate(&p, dir, "hop-patch", &["--json"], true);
    r.fails(1).stderr_has("error: tests failed");
    let v = json(&r);
    assert_eq!(v["passed"], false);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tests failed"),
        "{v}"
    );
    assert_eq!(state(), before);
    assert_eq!(
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap(),
        toml
    );

    // The release, once the patch is staged: the same, on its branch.
    env.patch(dir, &["merge"]).ok();
    let before = state();
    validate(&p, dir, "hop-release", &[], false)
        .ok()
        .stdout_has("validated release 0.1.0 (1 staged patch(es))")
        .stdout_has("proving the model snapshot 0.1.0");
    let r = validate(&p, dir, "hop-release", &["--json"], false);
    r.ok();
    let v = json(&r);
    assert_eq!(v["passed"], true);
    assert_eq!(v["staged"], serde_json::json!(["1-a"]));
    assert_eq!(state(), before);
    let r = validate(&p, dir, "hop-release", &["0.1.0", "--json"], true);
    r.fails(1);
    assert_eq!(json(&r)["passed"], false);
    assert_eq!(state(), before);

    // Not a release in preparation; not a version.
    validate(&p, dir, "hop-release", &["0.9.0"], false)
        .fails(1)
        .stderr_has("release 0.9.0 is not in preparation");
    validate(&p, dir, "hop-release", &["nine"], false)
        .fails(2)
        .stderr_has("invalid version");
    // Every read-only --json document carries the same schema_version.
    for (which, args) in [
        ("hop-release", vec!["status", "--json"]),
        ("hop-patch", vec!["status", "--json"]),
        ("hop-release", vec!["env", "--json"]),
    ] {
        let mut a = vec![which];
        a.extend(args);
        let r = env.git(dir, &a);
        r.ok();
        assert_eq!(json(&r)["schema_version"], 1, "git {}", a.join(" "));
    }
    // A staged patch is validated with its release.
    env.git(dir, &["switch", "-q", "-c", "ho-patch/1-a"]).ok();
    validate(&p, dir, "hop-patch", &[], false)
        .fails(1)
        .stderr_has("git hop-release validate");
}
