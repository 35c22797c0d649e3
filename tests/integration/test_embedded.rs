//! With no server configured anywhere, a clone gets its own embedded
//! cluster: `init demo && cd demo && git hop-release status` just works.

use crate::support::TestEnv;

#[test]
fn init_and_status_work_with_no_postgresql_configured() {
    let env = TestEnv::new();
    env.release(".", &["init", "demo"])
        .ok()
        .stdout_has("created the database demo")
        .stdout_has("embedded cluster");
    let st = env.release("demo", &["status"]);
    st.ok()
        .stdout_has("production:  0.0.0")
        .stdout_has("database:    demo 0.0.0")
        .stdout_has("embedded cluster");
    let db = env.release("demo", &["db", "status"]);
    db.ok().stdout_has("embedded cluster: running");
    let data_dir = db
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        std::path::Path::new(&data_dir).join("PG_VERSION").is_file(),
        "{data_dir}"
    );
    let socket = db
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("socket:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        socket.len() + "/.s.PGSQL.5432".len() < 100,
        "socket path too long: {socket}"
    );
    // TCP is off: the server only listens on its socket.
    let conf = std::fs::read_to_string(std::path::Path::new(&data_dir).join("postmaster.opts"))
        .unwrap_or_default();
    assert!(conf.contains("listen_addresses="), "{conf}");

    env.release("demo", &["db", "stop"]).ok();
    env.release("demo", &["db", "status"])
        .ok()
        .stdout_has("embedded cluster: stopped");
    // Started again on demand.
    env.release("demo", &["status"])
        .ok()
        .stdout_has("database:    demo 0.0.0");
    env.release("demo", &["db", "stop"]).ok();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// A project folder deleted while its embedded cluster runs, then made
/// again at the same path: the orphaned server holding the socket is
/// stopped, and the new project gets its own cluster.
#[test]
fn a_project_recreated_at_the_same_path_gets_a_working_cluster() {
    let env = TestEnv::new();
    env.release(".", &["init", "again"]).ok();
    let db = env.release("again", &["db", "status"]);
    let data_dir = db
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap()
        .trim()
        .to_string();
    let pid: i32 = std::fs::read_to_string(std::path::Path::new(&data_dir).join("postmaster.pid"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::remove_dir_all(env.path("again")).unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
    env.release(".", &["init", "again"])
        .ok()
        .stdout_has("created the database again");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}/cwd")).exists()
            || std::fs::read_link(format!("/proc/{pid}/cwd")).is_err(),
        "the orphaned server still runs"
    );
    env.release("again", &["status"])
        .ok()
        .stdout_has("database:    again 0.0.0");
    let db = env.release("again", &["db", "status"]);
    let data_dir = db
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap()
        .trim()
        .to_string();
    env.release("again", &["db", "stop"]).ok();
    let _ = std::fs::remove_dir_all(&data_dir);
}
