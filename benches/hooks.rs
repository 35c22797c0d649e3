//! Benchmark of the hooks with nothing to do (docs/hooks.md: "with nothing to do
//! it returns in well under 100 ms"): wall time of `git-hop-release hook
//! post-merge` and `hook pre-push`, as processes, in a real project (made by
//! `git hop-release init`, with a release in preparation and a patch branch
//! checked out), and of the installed hook files as git runs them (`sh`,
//! the marked block, the binary). `git rev-parse HEAD` is the baseline: the
//! cost of any process that opens the repository.
//!
//! Run with `cargo bench --bench hooks`. It starts a throwaway PostgreSQL
//! cluster (needed by `init` only: the hooks themselves never touch the
//! database unless `hop.prePushTests` is true) and prints one row per
//! measure: the median and minimum of RUNS runs.

mod support;

use support::{Env, Server, row, time};

const RUNS: usize = 31;

fn main() {
    let server = Server::start();
    let env = Env::new(&server);
    let root = env.init_project("benchhooks");
    let dir = "benchhooks";
    env.run("git", dir, &["hop-release", "new", "minor"]);
    env.run(
        "git",
        dir,
        &["hop-patch", "create", "1-bench", "-d", "bench"],
    );
    let head = env.git(dir, &["rev-parse", "HEAD"]);
    // What git leaves after a merge that brought nothing.
    env.git(dir, &["update-ref", "ORIG_HEAD", &head]);
    let origin = env.tmp.path().join("origin.git").display().to_string();
    let bin = support::bin_dir().join("git-hop-release");
    let bin = bin.to_str().expect("binary path");

    let push_patch =
        format!("refs/heads/ho-patch/1-bench {head} refs/heads/ho-patch/1-bench {head}\n");
    let push_other = format!(
        "refs/heads/feature {head} refs/heads/feature {}\n",
        "0".repeat(40)
    );
    let pre_push = |program: &str, args: &[&str], stdin: &str| {
        let out = support::feed(env.cmd(program, dir, args), stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "pre-push failed: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "pre-push had something to say: {stderr}"
        );
    };
    let quiet = |program: &str, args: &[&str]| {
        let out = env.cmd(program, dir, args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{program} {args:?} failed: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "{program} {args:?} had something to say: {stderr}"
        );
    };
    // Warm the page cache once.
    quiet(bin, &["hook", "post-merge", "0"]);

    println!(
        "hooks in a project on a patch branch, nothing to do (docs/hooks.md: well under 100 ms)"
    );
    row(
        "hooks",
        "baseline: git rev-parse HEAD",
        time(RUNS, || quiet("git", &["rev-parse", "HEAD"])),
    );
    row(
        "hooks",
        "git-hop-release hook post-merge",
        time(RUNS, || quiet(bin, &["hook", "post-merge", "0"])),
    );
    row(
        "hooks",
        "git-hop-release hook pre-push (patch branch)",
        time(RUNS, || {
            pre_push(bin, &["hook", "pre-push", "origin", &origin], &push_patch)
        }),
    );
    row(
        "hooks",
        "git-hop-release hook pre-push (other branch)",
        time(RUNS, || {
            pre_push(bin, &["hook", "pre-push", "origin", &origin], &push_other)
        }),
    );
    let hooks = root.join(".git/hooks");
    let post_merge = hooks.join("post-merge").display().to_string();
    let pre_push_file = hooks.join("pre-push").display().to_string();
    row(
        "hooks",
        ".git/hooks/post-merge (sh + block + binary)",
        time(RUNS, || quiet("sh", &[&post_merge, "0"])),
    );
    row(
        "hooks",
        ".git/hooks/pre-push (sh + block + binary)",
        time(RUNS, || {
            pre_push("sh", &[&pre_push_file, "origin", &origin], &push_patch)
        }),
    );
}
