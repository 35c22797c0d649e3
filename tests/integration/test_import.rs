//! `git hop-release import`: what it refuses, changing nothing; and a
//! project made by the real half-orm-dev 1.1.0a1 (PyPI), development and
//! production clones, imported, continued by git-hop and upgraded.

use crate::support::{Project, TestEnv, write};

#[test]
fn import_refuses_a_git_hop_project_a_foreign_folder_and_a_dirty_tree() {
    // A git-hop project is imported already.
    let p = Project::new();
    let before = p.origin_refs();
    p.env
        .release(&p.name, &["import", "--dry-run"])
        .fails(1)
        .stderr_has("is git-hop's already: this project is imported");
    assert_eq!(p.origin_refs(), before);

    // A repository without half-orm-dev's config.
    let env = TestEnv::new();
    env.git(".", &["init", "-q", "-b", "ho-prod", "plain"]).ok();
    env.release("plain", &["import"])
        .fails(1)
        .stderr_has("cannot read")
        .stderr_has("run git hop-release import in a half-orm-dev project");
    write(&env, "plain", ".hop/config", "[other]\nx = 1\n");
    env.release("plain", &["import"])
        .fails(1)
        .stderr_has("is not a half-orm-dev config");

    // A half-orm-dev config, but uncommitted changes.
    write(
        &env,
        "plain",
        ".hop/config",
        "[halfORM]\nhop_version = 1.1.0-a1\ndevel = True\npackage_name = blog\n\n[database]\nname = blog\n",
    );
    env.git("plain", &["add", "-A"]).ok();
    env.git("plain", &["commit", "-qm", "half-orm-dev"]).ok();
    write(
        &env,
        "plain",
        ".hop/config",
        "[halfORM]\npackage_name = changed\n",
    );
    let run = env.release("plain", &["import", "--dry-run"]);
    run.fails(1)
        .stderr_has("uncommitted changes; nothing was changed");
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1
    );
    assert!(
        env.git("plain", &["status", "--porcelain"])
            .ok()
            .out()
            .contains(".hop/config")
    );
}

/// Runs the real `half_orm dev ARGS` (half-orm-dev 1.1.0a1 from PyPI) in
/// `dir`, answering yes to every prompt, as its users do.
#[track_caller]
fn half_orm_dev(env: &TestEnv, dir: &str, args: &[&str]) -> String {
    use std::io::Write;
    let half_orm = crate::support::venv::dev_venv_python().with_file_name("half_orm");
    let mut a = vec!["dev"];
    a.extend_from_slice(args);
    let mut child = env
        .cmd(half_orm.to_str().unwrap(), dir)
        .args(&a)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all("y\n".repeat(200).as_bytes());
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // half-orm-dev exits 0 on some failures: its "❌" says so.
    assert!(
        out.status.success() && !text.contains('❌'),
        "half_orm dev {} in {dir} failed:\n{text}",
        args.join(" ")
    );
    text
}

/// Branches, HEAD, config, hooks, status and files of clone `dir` (what
/// `--dry-run` leaves alone; its fetch updates remote-tracking refs and
/// tags only).
fn clone_state(env: &TestEnv, dir: &str) -> String {
    let refs = env
        .git(
            dir,
            &[
                "for-each-ref",
                "--format=%(refname) %(objectname)",
                "refs/heads",
            ],
        )
        .out();
    let config = env.git(dir, &["config", "--local", "--list"]).out();
    let hooks: Vec<String> = std::fs::read_dir(env.path(dir).join(".git/hooks"))
        .unwrap()
        .flatten()
        .map(|e| {
            let text = std::fs::read(e.path()).unwrap_or_default();
            format!("{} {}", e.file_name().to_string_lossy(), text.len())
        })
        .collect();
    let head = env.git(dir, &["rev-parse", "HEAD"]).out();
    let status = env
        .git(dir, &["status", "--porcelain", "--untracked-files=all"])
        .out();
    let files = crate::support::tree(&env.path(dir)).join("\n");
    format!(
        "HEAD {head}\n{refs}\n--config\n{config}\n--hooks\n{}\n--status\n{status}\n--files\n{files}",
        hooks.join("\n")
    )
}

#[test]
fn a_project_made_by_half_orm_dev_is_imported_then_continued_and_its_production_upgraded() {
    let server = crate::support::pg::server();
    let python = crate::support::venv::dev_venv_python();
    let mut env = TestEnv::new();
    let conf = env.tmp.path().join("halform");
    std::fs::create_dir_all(&conf).unwrap();
    env.set("HALFORM_CONF_DIR", conf.to_str().unwrap());
    env.set(
        "PATH",
        &format!(
            "{}:{}:{}",
            crate::support::bin_dir().display(),
            python.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    env.set("PYTHONDONTWRITEBYTECODE", "1");
    let name = crate::support::pg::unique_db_name("hod");
    let prod_db = format!("{name}_prod");
    let origin = env.bare_origin("origin");
    let origin_url = format!("file://{}", origin.display());
    let host = server.socket_dir.display().to_string();
    let port = server.port.to_string();
    let connection = [
        "--host",
        host.as_str(),
        "--port",
        port.as_str(),
        "--user",
        server.superuser.as_str(),
        "--password",
        "unused",
    ];
    let dev = name.as_str();
    let sql = |db: &str, q: &str| server.psql(db, q);

    // half-orm-dev makes the project and a production clone at 0.0.0.
    let mut init = vec!["init", dev, "--git-origin", &origin_url, "--create-db=true"];
    init.extend_from_slice(&connection);
    half_orm_dev(&env, ".", &init);
    let mut clone = vec![
        "clone",
        &origin_url,
        "--dest-dir",
        "prod",
        "--database-name",
        &prod_db,
        "--production",
    ];
    clone.extend_from_slice(&connection);
    half_orm_dev(&env, ".", &clone);

    // Release 0.1.0: two patches, rc, prod; production upgraded by
    // half-orm-dev, then holding rows.
    half_orm_dev(&env, dev, &["release", "create", "minor"]);
    for (id, text) in [
        ("1-a", "CREATE TABLE a (id int PRIMARY KEY, v text);\n"),
        (
            "2-b",
            "CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id));\n",
        ),
    ] {
        env.git(dev, &["switch", "-q", "ho-release/0.1.0"]).ok();
        half_orm_dev(&env, dev, &["patch", "create", id]);
        write(&env, dev, &format!("Patches/{id}/01.sql"), text);
        half_orm_dev(&env, dev, &["patch", "apply"]);
        env.git(dev, &["add", "-A"]).ok();
        env.git(dev, &["commit", "-qm", id]).ok();
        half_orm_dev(&env, dev, &["patch", "merge"]);
    }
    env.git(dev, &["switch", "-q", "ho-release/0.1.0"]).ok();
    half_orm_dev(&env, dev, &["release", "promote", "rc"]);
    half_orm_dev(&env, dev, &["release", "promote", "prod"]);
    half_orm_dev(&env, "prod", &["upgrade", "--yes"]);
    sql(
        &prod_db,
        "INSERT INTO a SELECT g, 'row ' || g FROM generate_series(1, 100) g",
    );

    // A hotfix of 0.1.0 (half-orm-dev 1.1.0a1 cannot upgrade production
    // to it: it looks for a branch its promote did not make; git-hop will).
    half_orm_dev(&env, dev, &["release", "hotfix"]);
    half_orm_dev(&env, dev, &["patch", "create", "3-fix"]);
    write(
        &env,
        dev,
        "Patches/3-fix/01.sql",
        "ALTER TABLE a ADD COLUMN note text;\n",
    );
    half_orm_dev(&env, dev, &["patch", "apply"]);
    env.git(dev, &["add", "-A"]).ok();
    env.git(dev, &["commit", "-qm", "3-fix"]).ok();
    half_orm_dev(&env, dev, &["patch", "merge"]);
    env.git(dev, &["switch", "-q", "ho-release/0.1.0"]).ok();
    half_orm_dev(&env, dev, &["release", "promote", "hotfix"]);
    env.git(dev, &["switch", "-q", "ho-prod"]).ok();
    env.git(dev, &["pull", "-q", "--ff-only"]).ok();

    // The dry run changes nothing, here or on origin.
    let ls_origin = || env.git(".", &["ls-remote", origin.to_str().unwrap()]).out();
    let (before, origin_before) = (clone_state(&env, dev), ls_origin());
    env.release(dev, &["import", "--dry-run"])
        .ok()
        .stdout_has("production 0.1.0-hotfix1")
        .stdout_has("Patches/staged/1-a → Patches/1-a")
        .stdout_has("dry run: nothing was changed");
    assert_eq!(clone_state(&env, dev), before);
    assert_eq!(ls_origin(), origin_before);

    // The import of the development clone, stopped after its push (a
    // folder where git-hop writes its post-merge hook): origin has the
    // import; run again, the clone's part resumes.
    let blocker = env.path(dev).join(".git/hooks/post-merge");
    std::fs::create_dir_all(&blocker).unwrap();
    env.release(dev, &["import"])
        .fails(1)
        .stdout_has("pushed the import to origin");
    assert!(ls_origin().contains("refs/tags/v0.1.0-hotfix1"));
    std::fs::remove_dir(&blocker).unwrap();
    env.release(dev, &["import"])
        .ok()
        .stdout_has("resume the import of this clone")
        .stdout_has("rebuilt at 0.1.0-hotfix1")
        .stdout_has("imported:");
    assert!(!env.path(dev).join(".git/hop/import-pending").exists());
    let config = std::fs::read_to_string(env.path(dev).join(".hop/config")).unwrap();
    assert!(config.contains("[project]"), "{config}");
    assert!(env.path(dev).join("Patches/1-a/01.sql").is_file());
    let remote = ls_origin();
    for r in [
        "refs/tags/v0.1.0-hotfix1",
        "refs/tags/v0.1.0",
        "refs/hop/patches/3",
    ] {
        assert!(remote.contains(r), "origin lacks {r}:\n{remote}");
    }
    for r in ["v0.1.0.post1", "ho-prod-0.1.0", "ho-staged/", "ho-patch/"] {
        assert!(!remote.contains(r), "origin still has {r}:\n{remote}");
    }
    assert!(
        env.git(dev, &["status", "--porcelain"])
            .ok()
            .out()
            .is_empty()
    );

    // git-hop goes on: a release with a data migration, merged (the tests
    // half-orm-dev generated run), promoted.
    env.release(dev, &["new", "minor"]).ok();
    env.patch(dev, &["create", "4-score"]).ok();
    write(
        &env,
        dev,
        "Patches/4-score/01.sql",
        "ALTER TABLE a ADD COLUMN score int NOT NULL DEFAULT 0;\nUPDATE a SET score = id * 2;\n",
    );
    env.patch(dev, &["apply"]).ok();
    env.git(dev, &["add", "-A"]).ok();
    env.git(dev, &["commit", "-qm", "4-score"]).ok();
    env.patch(dev, &["merge"])
        .ok()
        .stdout_has("running tests: pytest")
        .stdout_has("tests passed");
    env.release(dev, &["promote", "prod"]).ok();

    // The production clone half-orm-dev upgraded: its dry run changes
    // nothing; import brings it over, upgrade takes it to 0.2.0 through
    // the hotfix, its rows intact and its history listed.
    let (before, db_before) = (
        clone_state(&env, "prod"),
        sql(&prod_db, "SELECT count(*) FROM a"),
    );
    env.release("prod", &["import", "--dry-run"])
        .ok()
        .stdout_has("the production database: half-orm-dev's metadata converted in place")
        .stdout_has("dry run: nothing was changed");
    assert_eq!(clone_state(&env, "prod"), before);
    // A commit of its own that origin lacks: refused, nothing changed.
    let bare = ["-c", "core.hooksPath=/dev/null"];
    write(&env, "prod", "local.txt", "x\n");
    env.git("prod", &[&bare[..], &["add", "local.txt"]].concat())
        .ok();
    env.git("prod", &[&bare[..], &["commit", "-qm", "local"]].concat())
        .ok();
    let with_commit = clone_state(&env, "prod");
    env.release("prod", &["import"])
        .fails(1)
        .stderr_has("this clone's HEAD has commits it lacks");
    assert_eq!(clone_state(&env, "prod"), with_commit);
    env.git(
        "prod",
        &[&bare[..], &["reset", "-q", "--hard", "HEAD~1"]].concat(),
    )
    .ok();
    // The application holds a lock on half-orm-dev's metadata: the
    // conversion waits hop.lockTimeout, then rolls back whole; run again
    // once the lock is gone, the import resumes.
    let mut holder = std::process::Command::new("psql")
        .args(server.psql_args(&server.superuser, &prod_db))
        .args([
            "-c",
            "BEGIN; LOCK TABLE half_orm_meta.hop_release IN ACCESS SHARE MODE; SELECT pg_sleep(120);",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let locked = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'hop_release' AND l.granted";
    for _ in 0..100 {
        if sql(&prod_db, locked) != "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    env.release("prod", &["import"])
        .fails(1)
        .stderr_has("holds a lock on half_orm_meta");
    assert_eq!(
        sql(
            &prod_db,
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'half_orm_meta.half_orm_dev'"
        ),
        "0",
        "the conversion rolled back"
    );
    sql(
        &prod_db,
        "SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'hop_release' AND l.pid <> pg_backend_pid()",
    );
    let _ = holder.kill();
    let _ = holder.wait();
    env.release("prod", &["import"])
        .ok()
        .stdout_has("resume the import of this clone");
    assert_eq!(sql(&prod_db, "SELECT count(*) FROM a"), db_before);
    assert_eq!(
        env.git("prod", &["config", "hop.production"]).ok().out(),
        "true"
    );
    env.release("prod", &["upgrade"])
        .ok()
        .stdout_has("upgraded from 0.1.0 to 0.2.0");
    assert_eq!(
        sql(&prod_db, "SELECT count(*), sum(score), count(note) FROM a"),
        "100|10100|0"
    );
    assert_eq!(
        sql(
            &prod_db,
            "SELECT string_agg(version, ' ' ORDER BY major, minor, patch, pre_release_num NULLS FIRST) FROM half_orm_meta.hop_release"
        ),
        "0.0.0 0.1.0 0.1.0-hotfix1 0.2.0"
    );
    assert_eq!(
        sql(
            &prod_db,
            "SELECT count(*) FROM \"half_orm_meta.half_orm_dev\".hop_release"
        ),
        "2"
    );
    // A production clone of git-hop's now: commits on ho-prod are refused.
    write(&env, "prod", "x.txt", "x\n");
    env.git("prod", &["add", "x.txt"]).ok();
    assert_ne!(env.git("prod", &["commit", "-qm", "x"]).code, Some(0));

    let _ = env.release(dev, &["db", "gc"]);
    server.drop_db(&prod_db);
    server.drop_db(dev);
}
