//! One PostgreSQL server shared by many clones, hosts and CI jobs: each
//! run's temporary databases carry a random name and their owner (host,
//! pid, start time), and a run removes only its own host's leftovers whose
//! process is gone (a zombie counts as gone).

use std::time::{Duration, Instant};

use crate::support::{Project, Run, TestEnv, bin_dir, is_root, pg, write};

/// The project's tests sleep `$HOME/delay` seconds (0 when absent).
const CHECK: &str = "sleep \"$(cat \"$HOME/delay\" 2>/dev/null || echo 0)\"\n";

fn set_delay(env: &TestEnv, seconds: u32) {
    std::fs::write(env.home.join("delay"), seconds.to_string()).unwrap();
}

/// A project on release 0.1.0 with patch `id` applied and committed, its
/// tests sleeping on demand.
fn project_with_patch(db: &str, id: &str) -> Project {
    let p = Project::with_database(db);
    let (env, dir) = (&p.env, p.name.as_str());
    write(env, dir, "tests/check.sh", CHECK);
    p.publish_tests_command("sh tests/check.sh");
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", id]).ok();
    write(
        env,
        dir,
        &format!("Patches/{id}/01.sql"),
        "CREATE TABLE t (id int);\n",
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
    p
}

/// Temporary databases whose name starts with `prefix`, with their comment.
fn temporaries(prefix: &str) -> Vec<(String, String)> {
    let out = pg::server().psql(
        "postgres",
        &format!(
            "SELECT datname || '|' || coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database \
             WHERE starts_with(datname, '{prefix}') AND datname LIKE '%\\_hop\\_%' ORDER BY 1"
        ),
    );
    out.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, c) = l.split_once('|').unwrap();
            (n.to_string(), c.to_string())
        })
        .collect()
}

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(t) = f() {
            return t;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finished(child: std::process::Child, cmd: &str) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        cmdline: cmd.to_string(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn merges_on_one_server_never_touch_each_others_temporary_databases() {
    // Working databases sharing their first 40 characters.
    let common = format!("shared_{}_{}", std::process::id(), "x".repeat(40));
    let common = &common[..40];
    let a = project_with_patch(&format!("{common}_one"), "1-a");
    let b = project_with_patch(&format!("{common}_two"), "1-b");
    set_delay(&a.env, 4);
    set_delay(&b.env, 1);

    // A validates first; B starts while A's validation database exists,
    // from another PID namespace when this runs as root (its pids mean
    // other processes there, as in another container).
    let merge_a = a
        .env
        .cmd("git", &a.name)
        .args(["hop-patch", "merge"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // (a temporary name keeps only the first characters of the working
    // database's: both projects' start with `common`)
    // (its comment comes right after CREATE DATABASE)
    let a_temp = wait_for("A's validation database", || {
        temporaries(common).into_iter().find(|(_, c)| !c.is_empty())
    });
    assert!(
        a_temp
            .1
            .starts_with("git-hop temporary database: validate host="),
        "{a_temp:?}"
    );
    let b_args: Vec<&str> = if is_root() {
        vec!["-p", "-f", "--mount-proc", "git", "hop-patch", "merge"]
    } else {
        vec!["git", "hop-patch", "merge"]
    };
    let program = if is_root() { "unshare" } else { "env" };
    let run_b = b.env.run(program, &b.name, &b_args);
    run_b.ok();
    finished(merge_a, "git hop-patch merge (A)").ok();
    assert!(temporaries(common).is_empty(), "{:?}", temporaries(common));

    // A merge killed with kill -9 whose process stays a zombie (not
    // reaped): the next run on this host removes its database.
    let (env, dir) = (&a.env, a.name.as_str());
    env.patch(dir, &["create", "2-a"]).ok();
    write(env, dir, "Patches/2-a/01.sql", "CREATE TABLE u (id int);\n");
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "2-a"]).ok();
    set_delay(env, 60);
    let bin = bin_dir().join("git-hop-patch");
    let mut killed = env
        .cmd(bin.to_str().unwrap(), dir)
        .arg("merge")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = killed.id();
    let mine = format!(" pid={pid} ");
    let leftover = wait_for("the killed merge's validation database", || {
        temporaries(common)
            .into_iter()
            .find(|(_, c)| c.contains(&mine))
    });
    killed.kill().unwrap(); // SIGKILL; not reaped: a zombie
    wait_for("the zombie", || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?
            .1
            .trim_start()
            .starts_with('Z')
            .then_some(())
    });
    set_delay(env, 0);
    env.patch(dir, &["merge"]).ok();
    assert!(
        !temporaries(common).iter().any(|(n, _)| *n == leftover.0),
        "{:?} is still there",
        leftover.0
    );
    killed.wait().unwrap();
}
