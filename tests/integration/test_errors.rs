//! Bad input and broken environments: one clear error line, exit code,
//! nothing half-done, and a retry that works.

use crate::support::{TestEnv, pg, tree};

fn server_url() -> String {
    pg::server().server_url()
}

#[test]
fn invalid_package_names_are_usage_errors() {
    let env = TestEnv::new();
    for bad in ["Shop", "1shop", "my-shop", "class", "../x"] {
        env.release(".", &["init", bad])
            .fails(2)
            .stderr_has("invalid package name");
    }
    assert!(
        tree(&env.work).is_empty(),
        "nothing created: {:?}",
        tree(&env.work)
    );
    env.release(".", &["init"]).fails(2);
    env.release(".", &["no-such-command"]).fails(2);
}

#[test]
fn unreachable_server_fails_cleanly_and_leaves_nothing() {
    let mut env = TestEnv::new();
    let nowhere = env.tmp.path().join("no-server");
    std::fs::create_dir_all(&nowhere).unwrap();
    env.set(
        "HOP_DATABASE_URL",
        &format!("postgresql://postgres@/?host={}", nowhere.display()),
    );
    env.release(".", &["init", "shop"])
        .fails(1)
        .stderr_has("cannot connect");
    assert!(!env.path("shop").exists(), "a failed init leaves no folder");
    // TCP: nothing listens on port 1.
    env.set("HOP_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/x");
    env.release(".", &["init", "shop"])
        .fails(1)
        .stderr_has("cannot connect");
    assert!(!env.path("shop").exists());
}

#[test]
fn wrong_password_is_refused_never_echoed_and_retry_works() {
    let mut env = TestEnv::new();
    let srv = pg::server();
    let pkg = pg::unique_db_name("pw");
    env.set(
        "HOP_DATABASE_URL",
        &format!(
            "postgresql://pwuser:Wr0ngSecret@/?host={}",
            srv.socket_dir.display()
        ),
    );
    let r = env.release(".", &["init", &pkg]);
    r.fails(1).stderr_has("password authentication failed");
    assert!(
        !r.stderr.contains("Wr0ngSecret") && !r.stdout.contains("Wr0ngSecret"),
        "password echoed:\n{}",
        r.stderr
    );
    assert!(!env.path(&pkg).exists());
    // The right password through PGPASSWORD-free URL + ~/.pgpass (mode 0600).
    let pgpass = env.home.join(".pgpass");
    std::fs::write(&pgpass, "*:*:*:pwuser:secret-pw\n").unwrap();
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&pgpass).unwrap().permissions(),
        0o600,
    );
    std::fs::set_permissions(&pgpass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    env.set(
        "HOP_DATABASE_URL",
        &format!("postgresql://pwuser@/?host={}", srv.socket_dir.display()),
    );
    env.release(".", &["init", &pkg]).ok();
    assert_eq!(
        srv.psql(&pkg, "SELECT version FROM half_orm_meta.hop_release")
            .trim(),
        "0.0.0"
    );
    srv.drop_db(&pkg);
}

#[test]
fn failed_init_drops_the_database_it_created() {
    let mut env = TestEnv::new();
    let srv = pg::server();
    let pkg = pg::unique_db_name("half");
    env.set("HOP_DATABASE_URL", &server_url());
    // An origin that cannot be pushed to (a file, not a repository) is
    // refused before anything is created.
    let bogus = env.tmp.path().join("not-a-repo");
    std::fs::write(&bogus, "x").unwrap();
    env.release(".", &["init", &pkg, "--origin", bogus.to_str().unwrap()])
        .fails(1)
        .stderr_has("cannot reach origin");
    assert!(!env.path(&pkg).exists());
    assert_eq!(
        srv.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{pkg}'")
        )
        .trim(),
        "0"
    );
    // An origin that accepts ls-remote but refuses pushes: everything is undone.
    let origin = env.bare_origin("refusing");
    let hook = origin.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'origin says no' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.release(".", &["init", &pkg, "--origin", origin.to_str().unwrap()])
        .fails(1)
        .stderr_has("push to origin");
    assert!(!env.path(&pkg).exists(), "folder left behind");
    assert_eq!(
        srv.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{pkg}'")
        )
        .trim(),
        "0",
        "database left behind"
    );
    std::fs::remove_file(&hook).unwrap();
    env.release(".", &["init", &pkg, "--origin", origin.to_str().unwrap()])
        .ok();
    srv.drop_db(&pkg);
}

#[test]
fn commands_outside_a_project_say_so() {
    let env = TestEnv::new();
    env.release(".", &["status"])
        .fails(1)
        .stderr_has("not in a git-hop project")
        .stderr_has("git hop-release init");
    env.patch(".", &["status"])
        .fails(1)
        .stderr_has("not in a git-hop project");
    env.git(".", &["init", "-q", "plain"]).ok();
    env.release("plain", &["status"])
        .fails(1)
        .stderr_has("not in a git-hop project");
}

#[test]
fn malformed_config_names_file_line_and_column() {
    let mut env = TestEnv::new();
    env.set("HOP_DATABASE_URL", &server_url());
    let pkg = pg::unique_db_name("cfg");
    env.release(".", &["init", &pkg]).ok();
    let cfg = env.path(&pkg).join(".hop/config");
    std::fs::write(&cfg, "[project]\npackage = \"x\"\n[database\nname = 1\n").unwrap();
    env.release(&pkg, &["status"])
        .fails(1)
        .stderr_has(".hop/config:3:");
    std::fs::write(&cfg, "[project]\npackage = \"x\"\nflavour = \"y\"\n").unwrap();
    env.release(&pkg, &["status"])
        .fails(1)
        .stderr_has(".hop/config:3:1")
        .stderr_has("flavour");
    pg::server().drop_db(&pkg);
}

#[test]
fn missing_initdb_is_reported_and_leaves_nothing() {
    let mut env = TestEnv::new();
    let empty = env.tmp.path().join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    env.set("HOP_PG_BINDIR", empty.to_str().unwrap());
    env.release(".", &["init", "demo"])
        .fails(1)
        .stderr_has("initdb")
        .stderr_has("install.sh");
    assert!(!env.path("demo").exists());
}
