//! What a patch folder may hold (docs/patches.md): statements and psql
//! meta-commands that would let a patch control its session are refused at
//! `apply` with file:line, and so never merged; only regular files, checked
//! before the database is touched.

use crate::support::{Project, TestEnv, pg, write};

/// The working database's identity: a rebuild drops and recreates it.
fn db_oid(db: &str) -> String {
    pg::server().psql(
        "postgres",
        &format!("SELECT oid FROM pg_database WHERE datname = '{db}'"),
    )
}

fn apply_with_timeout(env: &TestEnv, dir: &str) -> crate::support::Run {
    env.run("timeout", dir, &["60", "git", "hop-patch", "apply"])
}

/// A project on release 0.1.0 with patch 1-x applied (table `good`).
fn project_with_patch() -> Project {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-x"]).ok();
    write(
        env,
        dir,
        "Patches/1-x/01.sql",
        "CREATE TABLE good (id int);\n",
    );
    env.patch(dir, &["apply"]).ok();
    p
}

#[test]
fn session_control_is_refused_at_apply_with_file_and_line() {
    let p = project_with_patch();
    let (env, dir) = (&p.env, p.name.as_str());
    let oid = db_oid(dir);
    let cases: &[(&str, &str)] = &[
        ("\\connect postgres\n", "\\connect"),
        ("\\c otherdb\n", "\\c"),
        ("\\! echo hi\n", "\\! (a shell command)"),
        ("\\q\n", "\\q"),
        ("\\o /tmp/hop-out\n", "\\o"),
        ("\\set ON_ERROR_STOP 0\n", "\\set ON_ERROR_STOP"),
        ("\\i /etc/hostname\n", "\\i"),
        ("\\ir ../../.hop/config\n", "\\ir ../../.hop/config"),
        ("COMMIT;\n", "COMMIT"),
        ("ROLLBACK;\n", "ROLLBACK"),
        (
            "SET CONSTRAINTS ALL IMMEDIATE;\n",
            "SET CONSTRAINTS ALL IMMEDIATE",
        ),
    ];
    for (bad, what) in cases {
        write(
            env,
            dir,
            "Patches/1-x/01.sql",
            &format!(
                "CREATE TABLE good (id int);\nINSERT INTO good VALUES (1);\n{bad}CREATE TABLE after (id int);\n"
            ),
        );
        let r = apply_with_timeout(env, dir);
        r.fails(1)
            .stderr_has(&format!(
                "Patches/1-x/01.sql:3: {what} is not allowed in a patch"
            ))
            .stderr_has("hint: ");
        assert_eq!(
            db_oid(dir),
            oid,
            "{bad:?}: the working database was rebuilt"
        );
        assert_eq!(
            pg::server().psql(dir, "SELECT count(*) FROM good"),
            "0",
            "{bad:?}"
        );
    }
    // The safe forms pass.
    write(
        env,
        dir,
        "Patches/1-x/01.sql",
        "CREATE TABLE good (id int);\nSAVEPOINT s;\nINSERT INTO good VALUES (1);\nROLLBACK TO SAVEPOINT s;\n\\ir 02.sql\n",
    );
    write(
        env,
        dir,
        "Patches/1-x/02.sql",
        "INSERT INTO good VALUES (2);\n",
    );
    env.patch(dir, &["apply"]).ok();
    // 02.sql ran twice: once included, once as a step.
    assert_eq!(
        pg::server().psql(dir, "SELECT string_agg(id::text, ',') FROM good"),
        "2,2"
    );

    // A refused patch is never merged: the validation refuses it the same way.
    write(env, dir, "Patches/1-x/02.sql", "COMMIT;\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "commit in a patch"]).ok();
    let before = p.origin_refs();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("Patches/1-x/02.sql:1: COMMIT is not allowed in a patch");
    assert_eq!(p.origin_refs(), before);
}

#[test]
fn a_patch_folder_holds_regular_files_only() {
    let p = project_with_patch();
    let (env, dir) = (&p.env, p.name.as_str());
    let oid = db_oid(dir);
    let folder = env.path(dir).join("Patches/1-x");
    let inside = env.path(dir).join("inside.sql");
    std::fs::write(&inside, "SELECT 1;\n").unwrap();
    type Make = Box<dyn Fn(&std::path::Path)>;
    let inside2 = inside.clone();
    let cases: Vec<(&str, &str, Make)> = vec![
        (
            "02_out.sql",
            "a symbolic link",
            Box::new(|d| {
                std::os::unix::fs::symlink("/etc/hostname", d.join("02_out.sql")).unwrap()
            }),
        ),
        (
            "02_in.sql",
            "a symbolic link",
            Box::new(move |d| std::os::unix::fs::symlink(&inside2, d.join("02_in.sql")).unwrap()),
        ),
        (
            "sub",
            "a folder",
            Box::new(|d| std::fs::create_dir(d.join("sub")).unwrap()),
        ),
        (
            "02_fifo.sql",
            "not a regular file",
            Box::new(|d| {
                let path = std::ffi::CString::new(d.join("02_fifo.sql").to_str().unwrap()).unwrap();
                // SAFETY: a valid C string; mkfifo has no other precondition.
                assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
            }),
        ),
    ];
    for (name, what, make) in cases {
        make(&folder);
        let r = apply_with_timeout(env, dir);
        r.fails(1)
            .stderr_has(&format!("unexpected {name} in patch folder"))
            .stderr_has(what);
        assert_eq!(db_oid(dir), oid, "{name}: the working database was rebuilt");
        let path = folder.join(name);
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
    env.patch(dir, &["apply"]).ok();
}

/// Transaction control built at run time (no scan sees it) is caught while
/// running, in a rebuild as in an upgrade: nothing of the patch is kept.
#[test]
fn transaction_control_built_at_run_time_is_caught_by_the_guard() {
    let p = project_with_patch();
    let (env, dir) = (&p.env, p.name.as_str());
    for (stmt, message) in [
        ("COMMIT", "a patch file tried to end git-hop's transaction"),
        (
            "ROLLBACK",
            "cannot execute CREATE TABLE in a read-only transaction",
        ),
    ] {
        write(
            env,
            dir,
            "Patches/1-x/01.sql",
            &format!(
                "CREATE TABLE good (id int);\nSELECT '{stmt}' \\gexec\nCREATE TABLE after (id int);\n"
            ),
        );
        env.patch(dir, &["apply"])
            .fails(1)
            .stderr_has("patch 1-x")
            .stderr_has(message);
        assert_eq!(
            pg::server().psql(
                dir,
                "SELECT to_regclass('good') IS NULL AND to_regclass('after') IS NULL AND NOT EXISTS (SELECT FROM half_orm_meta.hop_patch WHERE patch_id = '1-x')"
            ),
            "t",
            "{stmt}"
        );
    }
}
