//! Production: update, upgrade (one transaction, lock, backup, drift,
//! resumable no-transaction steps, kill -9) and restore, on production
//! clones of one shared project whose history is
//! 0.0.0 → 0.1.0 → 0.1.0-hotfix1 → 0.2.0 → 0.3.0.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::support::{Project, TestEnv, bin_dir, pg, write};

/// On a release branch: creates patch `id` with `files`, applies, commits, merges.
fn patch(env: &TestEnv, dir: &str, id: &str, files: &[(&str, &str)]) {
    env.patch(dir, &["create", id]).ok();
    for (name, text) in files {
        write(env, dir, &format!("Patches/{id}/{name}"), text);
    }
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", id]).ok();
    env.patch(dir, &["merge"]).ok();
}

const EMAIL: &str = "ALTER TABLE users ADD COLUMN email text;\n\
INSERT INTO users (id, name) VALUES (100, 'admin');\n\
SELECT pg_sleep(coalesce(nullif(current_setting('hop_test.sleep', true), ''), '0')::float8);\n";

const IDX: &str = "-- hop: no-transaction\n\
DROP INDEX CONCURRENTLY IF EXISTS users_name_uq;\n\
CREATE UNIQUE INDEX CONCURRENTLY users_name_uq ON users (name);\n";

const AFTER_IDX: &str = "CREATE TABLE after_idx (id int);\n\
SELECT pg_sleep(coalesce(nullif(current_setting('hop_test.sleep', true), ''), '0')::float8);\n";

/// The shared project (never dropped: the test cluster goes with the process).
fn project() -> &'static Project {
    static P: OnceLock<Project> = OnceLock::new();
    P.get_or_init(|| {
        let p = Project::new();
        let (env, dir) = (&p.env, p.name.as_str());
        p.publish_tests_command("true");
        env.release(dir, &["new", "minor"]).ok();
        patch(
            env,
            dir,
            "1-users",
            &[(
                "01.sql",
                "CREATE TABLE users (id int PRIMARY KEY, name text);\n",
            )],
        );
        env.release(dir, &["promote", "prod"]).ok();
        env.release(dir, &["hotfix"]).ok();
        patch(
            env,
            dir,
            "2-roles",
            &[(
                "01.sql",
                "CREATE TABLE roles (id int PRIMARY KEY);\nINSERT INTO roles VALUES (1);\n",
            )],
        );
        env.release(dir, &["promote", "hotfix"]).ok();
        env.release(dir, &["new", "minor"]).ok();
        patch(env, dir, "3-email", &[("01.sql", EMAIL)]);
        env.release(dir, &["promote", "prod"]).ok();
        env.release(dir, &["new", "minor"]).ok();
        patch(
            env,
            dir,
            "4-idx",
            &[
                ("01.sql", "CREATE TABLE big (id int);\n"),
                ("02_idx.sql", IDX),
                ("03.sql", AFTER_IDX),
            ],
        );
        env.release(dir, &["promote", "prod"]).ok();
        p
    })
}

/// A production clone with its own database at `version`; dropped at the end.
struct Prod {
    dir: String,
    db: String,
    extra_dbs: Vec<String>,
}

impl Drop for Prod {
    fn drop(&mut self) {
        pg::server().drop_db(&self.db);
        for d in &self.extra_dbs {
            pg::server().drop_db(d);
        }
    }
}

fn prod_at(version: &str) -> Prod {
    let p = project();
    let env = &p.env;
    let db = pg::unique_db_name("prod");
    let dir = db.clone();
    // The database: a development restore of that version.
    env.release(
        &p.name,
        &["restore", version, "--db-url", &pg::server().url(&db)],
    )
    .ok()
    .stdout_has(&format!("at production version {version}"));
    env.git(".", &["clone", "-q", "-b", "ho-prod", p.origin_url(), &dir])
        .ok();
    env.git(&dir, &["config", "hop.production", "true"]).ok();
    env.git(&dir, &["config", "hop.database.name", &db]).ok();
    Prod {
        dir,
        db,
        extra_dbs: Vec::new(),
    }
}

fn sql(db: &str, q: &str) -> String {
    pg::server().psql(db, q)
}

fn releases(db: &str) -> String {
    sql(
        db,
        "SELECT string_agg(version, ',' ORDER BY major, minor, patch, pre_release, pre_release_num) FROM half_orm_meta.hop_release",
    )
}

fn version(db: &str) -> String {
    releases(db).rsplit(',').next().unwrap().to_string()
}

fn show(env: &TestEnv, dir: &str, spec: &str) -> String {
    env.git(dir, &["show", spec]).ok().stdout.clone()
}

fn rev(env: &TestEnv, dir: &str, r: &str) -> String {
    env.git(dir, &["rev-parse", &format!("{r}^{{commit}}")])
        .ok()
        .out()
}

fn backups(env: &TestEnv, dir: &str) -> Vec<std::path::PathBuf> {
    let d = env.path(dir).join(".git/hop/backups");
    let mut out: Vec<_> = std::fs::read_dir(d)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fn pg_restore_list(path: &std::path::Path) -> String {
    let bin = hop::db::pgbin::client_tool("pg_restore").unwrap();
    let out = std::process::Command::new(bin)
        .arg("--list")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn upgrade_from_0_0_0_over_releases_and_a_hotfix_reaches_the_latest() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.0.0");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    let run = env.release(dir, &["upgrade"]);
    run.ok()
        .stdout_has("from 0.0.0 to 0.3.0: 4 release(s)")
        .stdout_has("release 0.1.0-hotfix1")
        .stdout_has("02_idx.sql  (no-transaction")
        .stdout_has("backup: ")
        .stdout_has("upgraded from 0.0.0 to 0.3.0");
    // Applied in section 3 order, each with its tag's commit.
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1,0.2.0,0.3.0");
    for v in ["0.1.0", "0.1.0-hotfix1", "0.2.0", "0.3.0"] {
        assert_eq!(
            sql(
                db,
                &format!("SELECT commit FROM half_orm_meta.hop_release WHERE version = '{v}'")
            ),
            rev(env, dir, &format!("v{v}"))
        );
    }
    assert_eq!(
        sql(
            db,
            "SELECT string_agg(patch_id || '@' || release, ',' ORDER BY release, patch_id) FROM half_orm_meta.hop_patch"
        ),
        "1-users@0.1.0,2-roles@0.1.0-hotfix1,3-email@0.2.0,4-idx@0.3.0"
    );
    assert_eq!(
        sql(
            db,
            "SELECT to_regclass('half_orm_meta.hop_upgrade_step') IS NULL"
        ),
        "t"
    );
    // The database is exactly the 0.3.0 snapshot.
    assert_eq!(
        pg::server().dump_schema(db),
        show(env, dir, "v0.3.0:.hop/model/schema-0.3.0.sql")
    );
    // The work tree: ho-prod at v0.3.0.
    assert_eq!(
        env.git(dir, &["symbolic-ref", "--short", "HEAD"])
            .ok()
            .out(),
        "ho-prod"
    );
    assert_eq!(rev(env, dir, "HEAD"), rev(env, dir, "v0.3.0"));
    // One verified backup of 0.0.0, owner-only.
    let b = backups(env, dir);
    assert_eq!(b.len(), 1, "{b:?}");
    let name = b[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with(&format!("{db}_0.0.0_")), "{name}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&b[0]).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(pg_restore_list(&b[0]).contains(" TABLE half_orm_meta hop_release "));
    // Again: nothing to do.
    env.release(dir, &["upgrade"])
        .ok()
        .stdout_has("is at 0.3.0: up to date");
    env.release(dir, &["update"]).ok().stdout_has("up to date");
    assert_eq!(backups(env, dir).len(), 1);
}

#[test]
fn update_and_dry_run_change_nothing_and_to_release_stops_there() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.0.0");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    let dump = pg::server().dump_schema(db);
    let head = rev(env, dir, "HEAD");
    let run = env.release(dir, &["update", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&run.ok().stdout).unwrap();
    assert_eq!(json["database_version"], "0.0.0");
    assert_eq!(json["production_version"], "0.3.0");
    let pending: Vec<String> = json["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["version"].as_str().unwrap(),
                r["patches"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join("+")
            )
        })
        .collect();
    assert_eq!(
        pending,
        [
            "0.1.0:1-users",
            "0.1.0-hotfix1:2-roles",
            "0.2.0:3-email",
            "0.3.0:4-idx"
        ]
    );
    env.release(dir, &["update"])
        .ok()
        .stdout_has("4 release(s) to apply")
        .stdout_has("0.1.0-hotfix1  2-roles");
    env.release(dir, &["upgrade", "--dry-run"])
        .ok()
        .stdout_has("transaction 1:")
        .stdout_has("commit transaction 1 here: the next step runs outside a transaction")
        .stdout_has("02_idx.sql  (no-transaction")
        .stdout_has("transaction 2:")
        .stdout_has("dry run: nothing was changed");
    assert_eq!(pg::server().dump_schema(db), dump);
    assert_eq!(releases(db), "0.0.0");
    assert_eq!(rev(env, dir, "HEAD"), head);
    assert!(backups(env, dir).is_empty());

    env.release(dir, &["upgrade", "--to-release", "0.1.0-hotfix1"])
        .ok()
        .stdout_has("one transaction");
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1");
    assert_eq!(rev(env, dir, "HEAD"), rev(env, dir, "v0.1.0-hotfix1"));
    assert_eq!(
        pg::server().dump_schema(db),
        show(
            env,
            dir,
            "v0.1.0-hotfix1:.hop/model/schema-0.1.0-hotfix1.sql"
        )
    );
    env.release(dir, &["update"])
        .ok()
        .stdout_has("2 release(s) to apply");
    // Already there: the goal is reached, exit 0.
    env.release(dir, &["upgrade", "--to-release", "0.1.0-hotfix1"])
        .ok()
        .stdout_has("is at 0.1.0-hotfix1: up to date");
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1");
    env.release(dir, &["upgrade", "--to-release", "0.1.0"])
        .fails(1)
        .stderr_has("not newer")
        .stderr_has("git hop-release restore 0.1.0");
    env.release(dir, &["upgrade", "--to-release", "0.1.0-rc1"])
        .fails(1)
        .stderr_has("not a production version");
}

#[test]
fn an_sql_error_in_the_second_release_leaves_the_start_version() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    // Production data the 0.2.0 patch collides with.
    sql(db, "INSERT INTO users VALUES (100, 'already here')");
    let dump = pg::server().dump_schema(db);
    let head = rev(env, dir, "HEAD");
    env.release(dir, &["upgrade", "--to-release", "0.2.0"])
        .fails(1)
        .stderr_has("release 0.2.0, patch 3-email failed: Patches/3-email/01.sql:2: ERROR: duplicate key value")
        .stderr_has("nothing of the upgrade was committed: database")
        .stderr_has("is exactly at 0.1.0");
    assert_eq!(releases(db), "0.0.0,0.1.0");
    assert_eq!(pg::server().dump_schema(db), dump);
    assert_eq!(sql(db, "SELECT to_regclass('roles') IS NULL"), "t");
    assert_eq!(rev(env, dir, "HEAD"), head);
    let b = backups(env, dir);
    assert_eq!(b.len(), 1);
    let toc = pg_restore_list(&b[0]);
    assert!(toc.contains(" TABLE public users "), "{toc}");
    // 0.1.0's rows untouched.
    assert_eq!(sql(db, "SELECT count(*) FROM half_orm_meta.hop_patch"), "1");
}

#[test]
fn kill_9_during_a_patch_leaves_the_start_version_and_a_rerun_succeeds() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0-hotfix1");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    let dump = pg::server().dump_schema(db);
    let mut child = sleeping_upgrade(env, dir, db, &["--to-release", "0.2.0"]);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The upgrade's session goes away soon and nothing was committed.
    let started = Instant::now();
    while sql(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
    ) != "0"
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the killed upgrade's session is still there"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1");
    assert_eq!(pg::server().dump_schema(db), dump);
    sql(db, &format!("ALTER DATABASE \"{db}\" RESET hop_test.sleep"));
    env.release(dir, &["upgrade", "--to-release", "0.2.0"])
        .ok()
        .stdout_has("upgraded from 0.1.0-hotfix1 to 0.2.0");
    assert_eq!(version(db), "0.2.0");
}

/// A cancelled statement (the DBA's pg_cancel_backend, a Ctrl-C of psql)
/// is an interruption, not a broken patch: the hint says to run again.
#[test]
fn a_cancelled_upgrade_is_called_an_interruption() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0-hotfix1");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    let child = sleeping_upgrade(env, dir, db, &["--to-release", "0.2.0"]);
    sql(
        db,
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("canceling statement due to user request"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the upgrade was interrupted") && !stderr.contains("hotfix release"),
        "{stderr}"
    );
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1");
    sql(db, &format!("ALTER DATABASE \"{db}\" RESET hop_test.sleep"));
}

/// kill -9 in the middle of a split upgrade (after its first commit):
/// `status` says an upgrade is interrupted and how to resume it, and the
/// rerun resumes.
#[test]
fn status_shows_a_split_upgrade_killed_half_way() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.2.0");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    let mut child = sleeping_upgrade(env, dir, db, &[]);
    child.kill().unwrap(); // SIGKILL, in 03.sql: 01.sql and 02_idx.sql are committed
    child.wait().unwrap();
    sql(db, &format!("ALTER DATABASE \"{db}\" RESET hop_test.sleep"));
    let started = Instant::now();
    while sql(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    ) != "0"
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(version(db), "0.2.0");
    env.release(dir, &["status"])
        .ok()
        .stdout_has("upgrade:     interrupted in release 0.3.0")
        .stdout_has("done 4-idx 02_idx.sql")
        .stdout_has("resume it: git hop-release upgrade");
    env.release(dir, &["upgrade"])
        .ok()
        .stdout_has("resuming the interrupted upgrade of release 0.3.0")
        .stdout_has("upgraded from 0.2.0 to 0.3.0");
    assert_eq!(
        sql(
            db,
            "SELECT to_regclass('half_orm_meta.hop_upgrade_step') IS NULL"
        ),
        "t"
    );
}

/// `git hop-release upgrade ARGS` in the production clone `dir` started
/// with `hop_test.sleep` set on its database `db`, once it sleeps in a
/// patch (the patches of the shared project read that setting); its output
/// is piped.
fn sleeping_upgrade(env: &TestEnv, dir: &str, db: &str, args: &[&str]) -> std::process::Child {
    sql(
        db,
        &format!("ALTER DATABASE \"{db}\" SET hop_test.sleep = '30'"),
    );
    let bin = bin_dir().join("git-hop-release");
    let child = env
        .cmd(bin.to_str().unwrap(), dir)
        .arg("upgrade")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_sleep(db);
    child
}

fn wait_for_sleep(db: &str) {
    let started = Instant::now();
    while sql(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
    ) != "1"
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the upgrade never reached its sleeping patch"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_second_upgrade_waits_then_fails_clearly() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0-hotfix1");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    sql(
        db,
        &format!("ALTER DATABASE \"{db}\" SET hop_test.sleep = '3'"),
    );
    let bin = bin_dir().join("git-hop-release");
    let first = env
        .cmd(bin.to_str().unwrap(), dir)
        .args(["upgrade", "--to-release", "0.2.0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_sleep(db);
    let t = Instant::now();
    env.release(dir, &["upgrade", "--wait", "1"])
        .fails(1)
        .stderr_has("another git-hop upgrade or restore is running on database")
        .stderr_has("waited 1 s")
        .stderr_has("nothing was changed");
    assert!(t.elapsed() >= Duration::from_secs(1));
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(version(db), "0.2.0");
    // The waiting one took no backup.
    assert_eq!(backups(env, dir).len(), 1);
}

#[test]
fn drift_is_refused_and_force_overrides() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    sql(db, "CREATE TABLE hand_made (id int)");
    env.release(dir, &["upgrade", "--to-release", "0.1.0-hotfix1"])
        .fails(1)
        .stderr_has("differs from the snapshot of its version 0.1.0")
        .stderr_has("+CREATE TABLE public.hand_made (")
        .stderr_has("--force");
    assert_eq!(releases(db), "0.0.0,0.1.0");
    assert!(backups(env, dir).is_empty());
    env.release(
        dir,
        &["upgrade", "--to-release", "0.1.0-hotfix1", "--force"],
    )
    .ok()
    .stdout_has("warning (--force)");
    assert_eq!(version(db), "0.1.0-hotfix1");
}

#[test]
fn a_failing_no_transaction_step_is_recorded_and_the_rerun_resumes_from_it() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.2.0");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    sql(
        db,
        "INSERT INTO users (id, name) VALUES (1, 'dup'), (2, 'dup')",
    );
    env.release(dir, &["upgrade"])
        .fails(1)
        .stderr_has("release 0.3.0, patch 4-idx failed: Patches/4-idx/02_idx.sql:3: ERROR: could not create unique index")
        .stderr_has("is at 0.2.0, with 1 step(s) of 0.3.0 applied")
        .stderr_has("git hop-release upgrade resumes from 4-idx 02_idx.sql");
    assert_eq!(version(db), "0.2.0");
    // What preceded the step committed; its record says where it stopped.
    assert_eq!(sql(db, "SELECT to_regclass('big') IS NOT NULL"), "t");
    assert_eq!(sql(db, "SELECT to_regclass('after_idx') IS NULL"), "t");
    assert_eq!(
        sql(
            db,
            "SELECT string_agg(patch_id || ' ' || file || ' ' || state, ',' ORDER BY file) FROM half_orm_meta.hop_upgrade_step"
        ),
        "4-idx 01.sql done,4-idx 02_idx.sql failed"
    );
    env.release(dir, &["update"])
        .ok()
        .stdout_has("an upgrade of 0.3.0 was interrupted")
        .stdout_has("failed 4-idx 02_idx.sql: ");
    env.release(dir, &["status"])
        .ok()
        .stdout_has("upgrade:     interrupted in release 0.3.0 (2 step(s) recorded)")
        .stdout_has("failed 4-idx 02_idx.sql: ")
        .stdout_has("resume it: git hop-release upgrade");
    let st = env.release(dir, &["status", "--json"]).ok().stdout.clone();
    let json: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_eq!(
        json["database"]["interrupted_upgrade"][1]["state"], "failed",
        "{st}"
    );
    env.release(dir, &["upgrade", "--dry-run"])
        .ok()
        .stdout_has("01.sql  (done by the interrupted upgrade: skipped)")
        .stdout_has("drift check is skipped");
    // The cause fixed, the rerun resumes (01.sql is not run again).
    sql(db, "UPDATE users SET name = 'other' WHERE id = 2");
    env.release(dir, &["upgrade"])
        .ok()
        .stdout_has("resuming the interrupted upgrade of release 0.3.0")
        .stdout_has("upgraded from 0.2.0 to 0.3.0");
    assert_eq!(version(db), "0.3.0");
    assert_eq!(
        sql(
            db,
            "SELECT to_regclass('half_orm_meta.hop_upgrade_step') IS NULL"
        ),
        "t"
    );
    assert_eq!(
        pg::server().dump_schema(db),
        show(env, dir, "v0.3.0:.hop/model/schema-0.3.0.sql")
    );
}

#[test]
fn restore_in_development_rebuilds_a_production_version() {
    let p = project();
    let (env, dir) = (&p.env, p.name.as_str());
    let db = pg::unique_db_name("devrestore");
    let url = pg::server().url(&db);
    env.release(dir, &["restore", "0.1.0-hotfix1", "--db-url", &url])
        .ok()
        .stdout_has("code was not regenerated");
    assert_eq!(releases(&db), "0.0.0,0.1.0,0.1.0-hotfix1");
    assert_eq!(
        pg::server().dump_schema(&db),
        show(
            env,
            dir,
            "v0.1.0-hotfix1:.hop/model/schema-0.1.0-hotfix1.sql"
        )
    );
    // Again, over the existing database.
    env.release(dir, &["restore", "0.1.0", "--db-url", &url])
        .ok();
    assert_eq!(releases(&db), "0.0.0,0.1.0");
    env.release(dir, &["restore", "0.9.0", "--db-url", &url])
        .fails(1)
        .stderr_has("no tag v0.9.0");
    // upgrade is for production clones.
    env.release(dir, &["upgrade", "--db-url", &url])
        .fails(1)
        .stderr_has("runs in production clones")
        .stderr_has("git hop-release restore");
    pg::server().drop_db(&db);
}

#[test]
fn restore_in_production_brings_the_backup_back_only_when_confirmed() {
    let p = project();
    let env = &p.env;
    let mut prod = prod_at("0.1.0");
    let (dir, db) = (prod.dir.clone(), prod.db.clone());
    let (dir, db) = (dir.as_str(), db.as_str());
    sql(db, "INSERT INTO users VALUES (7, 'seven')");
    env.release(dir, &["upgrade", "--to-release", "0.2.0"]).ok();
    assert_eq!(version(db), "0.2.0");
    // No terminal, no --yes: refused, nothing changed.
    env.release(dir, &["restore", "0.1.0"])
        .fails(1)
        .stderr_has("no terminal to ask on")
        .stderr_has("--yes");
    assert_eq!(version(db), "0.2.0");
    // No backup of that version.
    env.release(dir, &["restore", "0.0.0", "--yes"])
        .fails(1)
        .stderr_has("no backup of database")
        .stderr_has("backups of versions: 0.1.0");
    let run = env.release(dir, &["restore", "0.1.0", "--yes"]);
    run.ok().stdout_has("restored to 0.1.0");
    let kept = run
        .stdout
        .split("kept as ")
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap()
        .to_string();
    prod.extra_dbs.push(kept.clone());
    assert_eq!(releases(db), "0.0.0,0.1.0");
    assert_eq!(sql(db, "SELECT name FROM users"), "seven");
    assert_eq!(
        pg::server().dump_schema(db),
        show(env, dir, "v0.1.0:.hop/model/schema-0.1.0.sql")
    );
    assert_eq!(rev(env, dir, "HEAD"), rev(env, dir, "v0.1.0"));
    // The replaced database is kept, at 0.2.0.
    assert_eq!(version(&kept), "0.2.0");
    // And the clone upgrades again from there.
    env.release(dir, &["update"])
        .ok()
        .stdout_has("3 release(s) to apply");
}

#[test]
fn a_patch_that_ends_the_transaction_itself_cannot_commit_half_an_upgrade() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    env.release(dir, &["new", "minor"]).ok();
    // Transaction control that no scan can see (built at run time) and
    // that only production runs: the upgrade's guard must catch it.
    patch(
        env,
        dir,
        "1-commits",
        &[(
            "01.sql",
            "CREATE TABLE a (id int);\nSELECT CASE WHEN current_database() LIKE 'guard%' THEN 'COMMIT' ELSE 'SELECT 1' END \\gexec\nCREATE TABLE b (id int);\n",
        )],
    );
    env.release(dir, &["promote", "prod"]).ok();
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "2-rollback",
        &[(
            "01.sql",
            "CREATE TABLE c (id int);\nSELECT CASE WHEN current_database() LIKE 'guard%' THEN 'ROLLBACK' ELSE 'SELECT 1' END \\gexec\nCREATE TABLE d (id int);\n",
        )],
    );
    env.release(dir, &["promote", "prod"]).ok();
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "3-py",
        &[
            ("01.sql", "CREATE TABLE seen (who text);\n"),
            ("load.py", PY),
        ],
    );
    env.release(dir, &["promote", "prod"]).ok();

    let db = pg::unique_db_name("guard");
    env.release(
        dir,
        &["restore", "0.0.0", "--db-url", &pg::server().url(&db)],
    )
    .ok();
    env.git(
        ".",
        &["clone", "-q", "-b", "ho-prod", p.origin_url(), "prod"],
    )
    .ok();
    env.git("prod", &["config", "hop.production", "true"]).ok();
    env.git("prod", &["config", "hop.database.name", &db]).ok();
    let dump = pg::server().dump_schema(&db);
    env.release("prod", &["upgrade", "--to-release", "0.1.0"])
        .fails(1)
        .stderr_has("release 0.1.0, patch 1-commits failed: Patches/1-commits/01.sql:2: ERROR: a patch file tried to end git-hop's transaction")
        .stderr_has("exactly at 0.0.0");
    assert_eq!(pg::server().dump_schema(&db), dump);
    assert_eq!(releases(&db), "0.0.0");
    // A ROLLBACK in a file: what follows it cannot write (read-only), and
    // nothing is committed.
    sql(
        &db,
        "CREATE TABLE a (id int); CREATE TABLE b (id int); INSERT INTO half_orm_meta.hop_release (version, major, minor, patch) VALUES ('0.1.0', 0, 1, 0)",
    );
    env.release("prod", &["upgrade", "--force"])
        .fails(1)
        .stderr_has("release 0.2.0, patch 2-rollback failed: Patches/2-rollback/01.sql:3: ERROR: cannot execute CREATE TABLE in a read-only transaction")
        .stderr_has("exactly at 0.1.0");
    assert_eq!(
        sql(
            &db,
            "SELECT to_regclass('c') IS NULL AND to_regclass('d') IS NULL"
        ),
        "t"
    );
    pg::server().drop_db(&db);

    // A Python step: it splits the transaction, sees the database, and is recorded.
    let db = pg::unique_db_name("py");
    env.release(
        dir,
        &["restore", "0.2.0", "--db-url", &pg::server().url(&db)],
    )
    .ok();
    env.git("prod", &["config", "hop.database.name", &db]).ok();
    env.release("prod", &["upgrade"])
        .ok()
        .stdout_has("load.py  (python: runs outside the transaction")
        .stdout_has("3-py  load.py  ")
        .stdout_has("upgraded from 0.2.0 to 0.3.0");
    assert_eq!(sql(&db, "SELECT string_agg(who, ',') FROM seen"), "python");
    assert_eq!(releases(&db), "0.0.0,0.1.0,0.2.0,0.3.0");
    assert_eq!(
        sql(
            &db,
            "SELECT to_regclass('half_orm_meta.hop_upgrade_step') IS NULL"
        ),
        "t"
    );
    pg::server().drop_db(&db);
}

const PY: &str = "import subprocess\nsubprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', \"INSERT INTO seen VALUES ('python')\"], check=True)\n";

/// `clone --production` onto an existing production database at an older
/// version: the database is kept, the work tree is put at its version
/// (clean, nothing regenerated), and `upgrade` brings both up to date.
#[test]
fn a_production_clone_of_an_older_database_is_clean_and_upgrades() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0");
    let dir = format!("{}-clone", prod.dir);
    env.release(
        ".",
        &[
            "clone",
            p.origin_url(),
            &dir,
            "--database",
            &prod.db,
            "--production",
        ],
    )
    .ok()
    .stdout_has("kept the production database")
    .stdout_has("work tree at v0.1.0");
    assert_eq!(env.git(&dir, &["status", "--porcelain"]).out(), "");
    assert_eq!(rev(env, &dir, "HEAD"), rev(env, &dir, "v0.1.0"));
    assert_eq!(
        env.git(&dir, &["branch", "--show-current"]).out(),
        "ho-prod"
    );
    env.release(&dir, &["upgrade"]).ok().stdout_has("to 0.3.0");
    assert_eq!(version(&prod.db), "0.3.0");
}

/// Every patch starts from the same session, in a rebuild and in an
/// upgrade: what a patch sets (search_path, role, temporary objects) never
/// reaches the next patch or release, and a three-release upgrade in one
/// run gives exactly the last release's snapshot.
#[test]
fn session_state_never_leaks_into_the_next_patch_or_release() {
    pg::server().psql(
        "postgres",
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hop_norights') THEN CREATE ROLE hop_norights NOLOGIN; END IF; END $$",
    );
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    p.publish_tests_command("true");
    let seen = |table: &str| {
        format!(
            "CREATE TABLE {table} AS SELECT current_user::text AS who, current_setting('search_path') AS path, \
             (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() AND relname LIKE 'scratch%') AS temps;\n"
        )
    };
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "1-state",
        &[(
            "01.sql",
            "CREATE SCHEMA s2;\nSET search_path = s2, public;\nCREATE TEMP TABLE scratch (x int);\nCREATE TEMP VIEW scratch_v AS SELECT 1;\nSET ROLE hop_norights;\n",
        )],
    );
    patch(env, dir, "2-after", &[("01.sql", &seen("after_state"))]);
    env.release(dir, &["promote", "prod"]).ok();
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "3-next",
        &[(
            "01.sql",
            &format!("{}SET search_path = s2;\n", seen("next_release")),
        )],
    );
    env.release(dir, &["promote", "prod"]).ok();
    env.release(dir, &["new", "minor"]).ok();
    patch(
        env,
        dir,
        "4-last",
        &[("01.sql", "CREATE TABLE x3 (id int);\n")],
    );
    env.release(dir, &["promote", "prod"]).ok();

    let db = pg::unique_db_name("state");
    env.release(
        dir,
        &["restore", "0.0.0", "--db-url", &pg::server().url(&db)],
    )
    .ok();
    env.git(
        ".",
        &["clone", "-q", "-b", "ho-prod", p.origin_url(), "prod"],
    )
    .ok();
    env.git("prod", &["config", "hop.production", "true"]).ok();
    env.git("prod", &["config", "hop.database.name", &db]).ok();
    env.release("prod", &["upgrade"])
        .ok()
        .stdout_has("upgraded from 0.0.0 to 0.3.0");
    let user = pg::server().superuser.clone();
    for table in ["after_state", "next_release"] {
        assert_eq!(
            sql(
                &db,
                &format!("SELECT who || ' ' || path || ' ' || temps FROM public.{table}")
            ),
            format!("{user} \"$user\", public 0"),
            "{table}"
        );
    }
    assert_eq!(
        sql(
            &db,
            "SELECT to_regclass('public.x3') IS NOT NULL AND to_regclass('s2.x3') IS NULL"
        ),
        "t"
    );
    crate::support::holds_snapshot(env, dir, &db, "0.3.0");
    pg::server().drop_db(&db);
}

/// An application session holding a lock on `users` for `seconds`
/// (`BEGIN; SELECT … FROM users; SELECT pg_sleep(…)`); returns the process
/// and the session's pid once it sleeps.
// The child is returned: its caller waits for it.
#[allow(clippy::zombie_processes)]
fn blocker(db: &str, seconds: u32) -> (std::process::Child, String) {
    use std::io::Write as _;
    let srv = pg::server();
    let bin = hop::db::pgbin::client_tool("psql").unwrap();
    let mut child = std::process::Command::new(bin)
        .args(srv.psql_args(&srv.superuser, db))
        .env("PGAPPNAME", "hop-test-blocker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            format!("BEGIN;\nSELECT count(*) FROM users;\nSELECT pg_sleep({seconds});\nCOMMIT;\n")
                .as_bytes(),
        )
        .unwrap();
    let started = Instant::now();
    loop {
        let pid = sql(
            db,
            "SELECT coalesce(max(pid)::text, '') FROM pg_stat_activity WHERE application_name = 'hop-test-blocker' AND query LIKE '%pg_sleep%'",
        );
        if !pid.is_empty() {
            return (child, pid);
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the blocker never slept");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Live traffic: while an application transaction holds a lock the upgrade
/// needs, the upgrade never queues the application's queries for longer
/// than hop.lockTimeout; it names the blocker, retries, and completes once
/// the blocker is gone, or gives up with the database at its start.
#[test]
fn an_upgrade_never_stalls_the_application_behind_a_lock() {
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0-hotfix1");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    env.git(dir, &["config", "hop.lockTimeout", "300ms"]).ok();
    let dump = pg::server().dump_schema(db);

    // The blocker stays longer than --lock-wait: the upgrade gives up.
    let (mut held, pid) = blocker(db, 30);
    env.release(
        dir,
        &["upgrade", "--to-release", "0.2.0", "--lock-wait", "2"],
    )
    .fails(1)
    .stderr_has("canceling statement due to lock timeout")
    .stderr_has(&format!("pid {pid} (hop-test-blocker, active"))
    .stderr_has("pg_sleep(30)")
    .stderr_has("gave up after")
    .stderr_has("exactly at 0.1.0-hotfix1")
    .stderr_has("could not get its lock in time");
    assert_eq!(pg::server().dump_schema(db), dump);
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1");
    sql(db, &format!("SELECT pg_terminate_backend({pid})"));
    let _ = held.wait();

    // The blocker ends within --lock-wait: the upgrade completes, and the
    // application's reads (statement_timeout above hop.lockTimeout) never
    // fail meanwhile.
    let (mut held, pid) = blocker(db, 3);
    let bin = bin_dir().join("git-hop-release");
    let upgrade = env
        .cmd(bin.to_str().unwrap(), dir)
        .args(["upgrade", "--to-release", "0.2.0", "--lock-wait", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut reads = 0;
    while started.elapsed() < Duration::from_millis(2000) {
        // (psql fails the test if the statement fails)
        let answer = sql(
            db,
            "SET statement_timeout = '1500ms'; SELECT count(*) >= 0 FROM users",
        );
        assert!(answer.ends_with('t'), "{answer}");
        reads += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reads >= 5, "{reads}");
    let out = upgrade.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("waiting for a lock (try 1"), "{stdout}");
    assert!(
        stdout.contains(&format!("pid {pid} (hop-test-blocker")),
        "{stdout}"
    );
    assert!(
        stdout.contains("upgraded from 0.1.0-hotfix1 to 0.2.0"),
        "{stdout}"
    );
    assert_eq!(version(db), "0.2.0");
    let _ = held.wait();
}

/// An application holding an exclusive lock on a table: the drift check's
/// and the backup's pg_dump wait at most --lock-wait, then the upgrade
/// fails with the database unchanged.
#[test]
fn an_exclusive_lock_bounds_the_dumps_of_an_upgrade() {
    use std::io::Write as _;
    let p = project();
    let env = &p.env;
    let prod = prod_at("0.1.0-hotfix1");
    let (dir, db) = (prod.dir.as_str(), prod.db.as_str());
    let dump = pg::server().dump_schema(db);
    let srv = pg::server();
    let bin = hop::db::pgbin::client_tool("psql").unwrap();
    let mut holder = std::process::Command::new(bin)
        .args(srv.psql_args(&srv.superuser, db))
        .env("PGAPPNAME", "hop-test-exclusive")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    holder
        .stdin
        .take()
        .unwrap()
        .write_all(b"BEGIN;\nLOCK TABLE roles IN ACCESS EXCLUSIVE MODE;\nSELECT pg_sleep(60);\n")
        .unwrap();
    let started = Instant::now();
    while sql(
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hop-test-exclusive' AND query LIKE '%pg_sleep%'",
    ) != "1"
    {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let r = env.release(
        dir,
        &["upgrade", "--to-release", "0.2.0", "--lock-wait", "2"],
    );
    r.fails(1)
        .stderr_has("canceling statement due to statement timeout")
        .stderr_has("another session holds an exclusive lock on a table");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    sql(
        db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'hop-test-exclusive'",
    );
    let _ = holder.wait();
    assert_eq!(pg::server().dump_schema(db), dump);
    assert_eq!(releases(db), "0.0.0,0.1.0,0.1.0-hotfix1");
}

/// `--dry-run --sql` is the upgrade in SQL: run by hand with psql on a
/// copy of the production database, it gives what `upgrade` gives;
/// `--dry-run --json` lists the releases and patches in order; neither
/// changes anything.
#[test]
fn dry_run_sql_run_by_hand_equals_the_upgrade_and_json_lists_the_plan() {
    let p = project();
    let env = &p.env;
    let mut prod = prod_at("0.1.0-hotfix1");
    let (dir, db) = (prod.dir.clone(), prod.db.clone());
    let (dump, head) = (pg::server().dump_schema(&db), rev(env, &dir, "HEAD"));

    let run = env.release(&dir, &["upgrade", "--dry-run", "--sql"]);
    run.ok().stderr_has("dry run: nothing was changed");
    let script = run.stdout.clone();
    assert!(
        script.contains("\nBEGIN;\n") && script.contains("COMMIT;\n"),
        "{script}"
    );
    assert!(script.contains("-- Patches/3-email/01.sql"), "{script}");
    assert!(
        !script.contains("\\i ") && !script.contains("\\warn"),
        "{script}"
    );
    let json = env.release(&dir, &["upgrade", "--dry-run", "--json"]);
    json.ok();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(
        (v["from"].as_str(), v["to"].as_str()),
        (Some("0.1.0-hotfix1"), Some("0.3.0"))
    );
    let plan: Vec<String> = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r["patches"].as_array().unwrap().iter().map(move |p| {
                format!(
                    "{}:{}",
                    r["version"].as_str().unwrap(),
                    p["id"].as_str().unwrap()
                )
            })
        })
        .collect();
    assert_eq!(plan, ["0.2.0:3-email", "0.3.0:4-idx"]);
    assert_eq!(v["transactions"], 2, "{v}");
    assert_eq!(pg::server().dump_schema(&db), dump);
    assert_eq!(releases(&db), "0.0.0,0.1.0,0.1.0-hotfix1");
    assert_eq!(rev(env, &dir, "HEAD"), head);
    assert!(backups(env, &dir).is_empty());

    // The script by hand on a copy; the upgrade on the database.
    let copy = pg::unique_db_name("sqlcopy");
    prod.extra_dbs.push(copy.clone());
    sql(
        "postgres",
        &format!("CREATE DATABASE \"{copy}\" TEMPLATE \"{db}\""),
    );
    pg::server().psql(&copy, &script);
    env.release(&dir, &["upgrade"]).ok();
    assert_eq!(
        pg::server().dump_schema(&copy),
        pg::server().dump_schema(&db)
    );
    assert_eq!(releases(&copy), releases(&db));
    assert_eq!(releases(&copy), "0.0.0,0.1.0,0.1.0-hotfix1,0.2.0,0.3.0");
    assert_eq!(
        sql(&copy, "SELECT count(*) FROM half_orm_meta.hop_patch"),
        sql(&db, "SELECT count(*) FROM half_orm_meta.hop_patch")
    );
    // Up to date: the script says so, and runs nothing.
    let run = env.release(&dir, &["upgrade", "--dry-run", "--sql"]);
    run.ok().stdout_has("up to date, nothing to run");
}
