//! Passwords as libpq finds them: the URL's own, else `PGPASSWORD`, else
//! the password file; never on a command line, never in a file of the
//! repository.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::{TestEnv, pg, write};

const PASSWORD: &str = pg::PW_PASSWORD;

/// Every command line seen in /proc while `running` holds, that shows `needle`.
fn sample_cmdlines(
    needle: &'static str,
    running: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        while running.load(Ordering::Relaxed) {
            if let Ok(dir) = std::fs::read_dir("/proc") {
                for e in dir.flatten() {
                    if let Ok(bytes) = std::fs::read(e.path().join("cmdline"))
                        && String::from_utf8_lossy(&bytes).contains(needle)
                    {
                        seen.push(String::from_utf8_lossy(&bytes).replace('\0', " "));
                    }
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        seen
    })
}

/// Files under `dir` (`.git` included) whose bytes hold `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_symlink() {
                continue;
            }
            if p.is_dir() {
                // The embedded cluster is not used here; skip nothing else.
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn pgpassword_serves_a_server_stored_in_git_config_and_is_never_shown() {
    let srv = pg::server();
    let mut env = TestEnv::new();
    let url = format!(
        "postgresql://{}@/?host={}",
        pg::PW_USER,
        srv.socket_dir.display()
    );
    env.set("HOP_DATABASE_URL", &url);
    env.set("PGPASSWORD", PASSWORD);
    let running = Arc::new(AtomicBool::new(true));
    let sampler = sample_cmdlines(PASSWORD, running.clone());
    let dbs = Mutex::new(Vec::new());

    let name = pg::unique_db_name("pgpw");
    dbs.lock().unwrap().push(name.clone());
    let origin = env.bare_origin("origin");
    env.release(".", &["init", &name, "--origin", origin.to_str().unwrap()])
        .ok();
    let dir = name.as_str();
    crate::support::set_tests_command(&env, dir, "true");
    env.git(dir, &["commit", "-qam", "tests"]).ok();
    env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(
        &env,
        dir,
        "Patches/1-a/01.sql",
        "CREATE TABLE a (id int);\n",
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();

    // A clone whose server is stored in hop.database.url (no password in
    // it): PGPASSWORD logs it in.
    env.unset("HOP_DATABASE_URL");
    let other = pg::unique_db_name("pgpwclone");
    dbs.lock().unwrap().push(other.clone());
    let clone_url = format!(
        "postgresql://{}@/{other}?host={}",
        pg::PW_USER,
        srv.socket_dir.display()
    );
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "other",
            "--db-url",
            &clone_url,
        ],
    )
    .ok();
    let stored = env.git("other", &["config", "hop.database.url"]).ok().out();
    assert!(!stored.contains(PASSWORD), "{stored}");
    env.release("other", &["status"])
        .ok()
        .stdout_has(&format!("database:    {other} 0.1.0"));
    // Without it, the server refuses (no password file here).
    env.unset("PGPASSWORD");
    env.release("other", &["status"])
        .ok()
        .stdout_has("asks a password for user \"pwuser\" and none was given");

    running.store(false, Ordering::Relaxed);
    let seen = sampler.join().unwrap();
    assert!(
        seen.is_empty(),
        "a command line showed the password: {seen:?}"
    );
    for d in [dir, "other"] {
        let holding = files_holding(&env.path(d), PASSWORD.as_bytes());
        assert!(holding.is_empty(), "files hold the password: {holding:?}");
    }
    for db in dbs.lock().unwrap().iter() {
        srv.drop_db(db);
    }
}
