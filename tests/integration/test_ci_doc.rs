//! docs/ci.md stays true: the `Lint` and `Validate` steps of its GitHub Actions
//! workflow, run in a plain shell as the runner would (their `if:` decided
//! by the branch), pass for a good patch and a release, and fail for a
//! patch whose tests fail.

use crate::support::{Project, patch_with};

/// A step of the workflow: its name, its `if:` branch prefix, its `run:`.
struct Step {
    name: String,
    prefix: Option<String>,
    run: String,
}

/// The steps of the YAML block of docs/ci.md that have a `run:`.
fn steps() -> Vec<Step> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/ci.md")).unwrap();
    let yaml = doc
        .split("```yaml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("docs/ci.md has a yaml block");
    let mut out: Vec<Step> = Vec::new();
    let mut current: Option<Step> = None;
    for line in yaml.lines() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix("- name: ") {
            out.extend(current.take().filter(|s| !s.run.is_empty()));
            current = Some(Step {
                name: name.to_string(),
                prefix: None,
                run: String::new(),
            });
        } else if l.starts_with("- ") {
            out.extend(current.take().filter(|s| !s.run.is_empty()));
        } else if let Some(s) = current.as_mut() {
            if let Some(cond) = l.strip_prefix("if: startsWith(github.ref_name, '") {
                s.prefix = cond.strip_suffix("')").map(str::to_string);
            } else if let Some(run) = l.strip_prefix("run: ") {
                s.run = run.to_string();
            }
        }
    }
    out.extend(current.filter(|s| !s.run.is_empty()));
    out
}

/// Runs the `Validate` steps that apply to `branch` in clone `dir`, as the
/// runner does (`sh -e`, CI=true, GITHUB_REF_NAME); returns whether all
/// passed, how many ran, and the last verdict's error message.
fn run_steps(p: &Project, dir: &str, branch: &str) -> (bool, usize, String) {
    let runner_temp = p.env.tmp.path().join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let mut ran = 0;
    for s in steps()
        .iter()
        .filter(|s| s.name.starts_with("Validate") || s.name.starts_with("Lint"))
    {
        if s.prefix
            .as_deref()
            .is_some_and(|pre| !branch.starts_with(pre))
        {
            continue;
        }
        ran += 1;
        let out = p
            .env
            .cmd("sh", dir)
            .args(["-e", "-c", &s.run])
            .env("CI", "true")
            .env("GITHUB_REF_NAME", branch)
            .env("RUNNER_TEMP", &runner_temp)
            .output()
            .unwrap();
        // Each step writes its verdict to "$RUNNER_TEMP/<name>.json".
        let name = s
            .run
            .split("\"$RUNNER_TEMP/")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("step {:?} keeps no verdict", s.name));
        let verdict = std::fs::read_to_string(runner_temp.join(name)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&verdict)
            .unwrap_or_else(|e| panic!("step {:?} left no JSON verdict ({e}): {verdict}", s.name));
        assert_eq!(v["passed"], out.status.success(), "{verdict}");
        if !out.status.success() {
            let message = v["error"]["message"].as_str().unwrap_or("").to_string();
            return (false, ran, message);
        }
    }
    (true, ran, String::new())
}

#[test]
fn the_ci_documents_workflow_passes_a_good_patch_and_a_release_and_fails_a_failing_test() {
    let names: Vec<String> = steps().into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"Validate the patch".to_string())
            && names.contains(&"Validate the release".to_string()),
        "{names:?}"
    );
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    // The project's tests fail when a tests/failing file is there.
    p.publish_tests_command("test ! -e tests/failing");
    env.release(dir, &["new", "minor"]).ok();
    patch_with(
        env,
        dir,
        "0.1.0",
        "1-good",
        &[("Patches/1-good/01.sql", "CREATE TABLE good (id int);\n")],
    );
    let before = p.origin_refs();
    assert_eq!(
        run_steps(&p, dir, "ho-patch/1-good"),
        (true, 2, String::new())
    );

    patch_with(
        env,
        dir,
        "0.1.0",
        "2-bad",
        &[
            ("Patches/2-bad/01.sql", "CREATE TABLE bad (id int);\n"),
            ("tests/failing", "a test that fails\n"),
        ],
    );
    let before_bad = p.origin_refs();
    let (passed, ran, message) = run_steps(&p, dir, "ho-patch/2-bad");
    assert_eq!((passed, ran), (false, 2));
    assert!(message.starts_with("tests failed"), "{message}");
    assert_eq!(p.origin_refs(), before_bad);

    // The good patch merged: its release passes.
    env.git(dir, &["switch", "-q", "ho-patch/1-good"]).ok();
    env.patch(dir, &["merge"]).ok();
    let merged = p.origin_refs();
    assert_ne!(merged, before);
    assert_eq!(
        run_steps(&p, dir, "ho-release/0.1.0"),
        (true, 1, String::new())
    );
    assert_eq!(p.origin_refs(), merged);
}
