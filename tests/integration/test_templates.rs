//! Template databases (docs/engine.md): `apply` and the `merge`
//! validation copy a template holding the snapshot and the staged head,
//! and replay only the current patch; the copy equals a replay; a busy
//! template, or a role without CREATEDB, falls back to a replay; a changed
//! staged patch or snapshot gives a new template; two clones building at
//! once both succeed; a staged patch failing in a build leaves no template;
//! `db gc` removes them; a production clone never makes one.

use std::process::Stdio;

use crate::support::{Project, pg, write};

/// Staged patches 1-a and 2-b (merged), then the current patch 3-c applied.
fn release_with_a_staged_head() -> Project {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    crate::support::set_tests_command(env, dir, "true");
    env.git(dir, &["commit", "-qam", "tests"]).ok();
    env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(dir, &["new", "minor"]).ok();
    for (id, sql) in [
        (
            "1-a",
            "CREATE TABLE a (id int PRIMARY KEY, t text);\nINSERT INTO a VALUES (1, 'x'), (2, 'y');\n",
        ),
        (
            "2-b",
            "CREATE TABLE b (id int REFERENCES a);\nCREATE INDEX ON b (id);\nINSERT INTO b VALUES (1);\n",
        ),
    ] {
        env.patch(dir, &["create", id]).ok();
        write(env, dir, &format!("Patches/{id}/01.sql"), sql);
        env.patch(dir, &["apply"]).ok();
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", id]).ok();
        // The validation's database is copied from the template of the
        // staged head, ahead (while origin is locked and git merges); the
        // new head's template is made meanwhile.
        env.patch(dir, &["merge"])
            .ok()
            .stdout_has("), ahead; template ")
            .stdout_has("of the staged head is made meanwhile");
    }
    env.patch(dir, &["create", "3-c"]).ok();
    write(
        env,
        dir,
        "Patches/3-c/01.sql",
        "ALTER TABLE a ADD COLUMN n int DEFAULT 7;\n",
    );
    p
}

fn dumps(db: &str) -> (String, String) {
    let s = pg::server();
    (s.dump_schema(db), s.dump_data(db))
}

#[test]
fn a_copy_from_a_template_equals_a_replay_and_runs_only_the_current_patch() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    // The merge of 2-b left the template of the head 1-a, 2-b.
    let r = env.patch(dir, &["apply"]);
    // Copied ahead, beside the working database, while the patch was
    // checked.
    r.ok()
        .stdout_has("copied from template")
        .stdout_has("and 2 staged patch(es)), ahead");
    assert!(!r.stdout.contains("made once"), "{}", r.stdout);
    r.stdout_has("applied 1 patch(es)");
    // The copy renamed in place of the working database keeps no mark of a
    // temporary database (a later sweep would drop it), and no copy is left.
    let server = |sql: String| pg::server().psql("postgres", &sql).trim().to_string();
    let db = &p.db;
    let note = server(format!(
        "SELECT coalesce(shobj_description(oid, 'pg_database'), 'none') FROM pg_database WHERE datname = '{db}'"
    ));
    assert_eq!(note, "none");
    let copies = server(format!(
        "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{db}_hop_copy_')"
    ));
    assert_eq!(copies, "0");
    let from_template = dumps(&p.db);
    // The same with templates off: a full replay.
    env.git(dir, &["config", "hop.templateCache", "0"]).ok();
    let r = env.patch(dir, &["apply"]);
    r.ok();
    assert!(!r.stdout.contains("template"), "{}", r.stdout);
    assert_eq!(dumps(&p.db), from_template, "a copy differs from a replay");
    env.git(dir, &["config", "--unset", "hop.templateCache"])
        .ok();

    // db status lists them; db gc removes them all; the next apply makes
    // them again (once).
    let status = env.release(dir, &["db", "status"]).ok().out();
    assert!(status.contains("templates: "), "{status}");
    assert!(status.contains("hop_tpl_"), "{status}");
    env.release(dir, &["db", "gc"]).ok().stdout_has("removed ");
    env.release(dir, &["db", "status"])
        .ok()
        .stdout_has("templates: 0 of at most 4");
    env.patch(dir, &["apply"]).ok().stdout_has("made once");
    assert_eq!(dumps(&p.db), from_template);
}

#[test]
fn an_apply_refused_after_its_copy_began_leaves_the_working_database_and_no_copy() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    env.patch(dir, &["apply"])
        .ok()
        .stdout_has("copied from template");
    let server = pg::server();
    server.psql(&p.db, "CREATE TABLE kept (id int)");
    // The copy of the head's template starts before the patch is checked;
    // the check refuses the patch.
    write(
        env,
        dir,
        "Patches/3-c/01.sql",
        "ALTER TABLE a ADD COLUMN n int DEFAULT 7;\nCOMMIT;\n",
    );
    env.patch(dir, &["apply"])
        .fails(1)
        .stderr_has("Patches/3-c/01.sql:2: COMMIT is not allowed in a patch");
    let kept = server.psql(
        &p.db,
        "SELECT count(*) FROM pg_class WHERE relname IN ('kept', 'a', 'b')",
    );
    assert_eq!(kept.trim(), "3", "the working database was touched");
    let copies = server.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_hop_copy_')",
            p.db
        ),
    );
    assert_eq!(copies.trim(), "0", "the copy made ahead was left");
}

/// A patch branch behind its release (another patch merged since it was
/// made): the copy the merge makes ahead, from the patch branch's staged
/// head, is not the release's; the validation copies the right template
/// instead, and the merge goes through.
#[test]
fn a_merge_of_a_branch_behind_its_release_does_not_take_the_stale_copy() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    // 3-c as it is; then 4-d made from the same release, merged first.
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "3-c"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.patch(dir, &["create", "4-d"]).ok();
    write(env, dir, "Patches/4-d/01.sql", "CREATE TABLE d (id int);\n");
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "4-d"]).ok();
    env.patch(dir, &["merge"])
        .ok()
        .stdout_has("), ahead; template ");
    // 3-c's branch holds the head 1-a, 2-b; the release's is 1-a, 2-b, 4-d.
    env.git(dir, &["switch", "-q", "ho-patch/3-c"]).ok();
    let r = env.patch(dir, &["merge"]);
    r.ok()
        .stdout_has("and 3 staged patch(es))")
        .stdout_has("merged 3-c into ho-release/0.1.0");
    assert!(!r.stdout.contains(", ahead"), "{}", r.stdout);
    let left = pg::server().psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_hop_validate_')",
            p.db
        ),
    );
    assert_eq!(left.trim(), "0");
}

#[test]
fn a_template_with_a_session_open_falls_back_to_a_replay() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    let status = env.release(dir, &["db", "status"]).ok().out();
    let names: Vec<&str> = status
        .split_whitespace()
        .filter(|w| w.starts_with("hop_tpl_"))
        .collect();
    assert!(!names.is_empty(), "no template listed: {status}");
    // An application (or a psql) connected to each of this clone's templates.
    let srv = pg::server();
    let mut holders = Vec::new();
    for name in names {
        let mut holder = postgres::Config::new()
            .host_path(&srv.socket_dir)
            .port(srv.port)
            .user(&srv.superuser)
            .dbname(name)
            .connect(postgres::NoTls)
            .unwrap();
        holder.simple_query("SELECT 1").unwrap();
        holders.push(holder);
    }
    let r = env.patch(dir, &["apply"]);
    r.ok().stdout_has("note: no template database (");
    assert_eq!(
        r.stdout.matches("note: no template database").count(),
        1,
        "{}",
        r.stdout
    );
    r.stdout_has("replaying the whole release");
    drop(holders);
    srv.psql(&p.db, "SELECT n FROM a LIMIT 1");
}

#[test]
fn a_production_clone_never_makes_a_template() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    env.git(dir, &["add", "-A"]).ok();
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "c"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();
    let prod_db = pg::unique_db_name("tplprod");
    env.release(
        dir,
        &["restore", "0.0.0", "--db-url", &pg::server().url(&prod_db)],
    )
    .ok();
    env.release(
        ".",
        &[
            "clone",
            p.origin_url(),
            "prod",
            "--database",
            &prod_db,
            "--production",
        ],
    )
    .ok();
    env.release("prod", &["upgrade"]).ok();
    let cache = hop::rebuild::template::Cache::for_clone(&env.path("prod").join(".git"), 4);
    let theirs = pg::server().psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE shobj_description(oid, 'pg_database') LIKE '%clone={}%'",
            cache.clone_id
        ),
    );
    assert_eq!(theirs, "0");
    env.release("prod", &["db", "status"])
        .ok()
        .stdout_has("a production clone never uses them");
    pg::server().drop_db(&prod_db);
}

/// The names of the databases on the server whose name is that of a
/// template of the clone `dir` (ready or being built), sorted.
fn template_databases(p: &Project, dir: &str) -> Vec<String> {
    let cache = hop::rebuild::template::Cache::for_clone(&p.env.path(dir).join(".git"), 4);
    let names = pg::server().psql(
        "postgres",
        &format!(
            "SELECT datname FROM pg_database WHERE starts_with(datname, 'hop_tpl_{}_') ORDER BY 1",
            &cache.clone_id[..8]
        ),
    );
    names.lines().map(str::to_string).collect()
}

/// The templates `db status` of the clone `dir` lists, sorted.
fn listed_templates(p: &Project, dir: &str) -> Vec<String> {
    let status = p.env.release(dir, &["db", "status"]).ok().out();
    let mut names: Vec<String> = status
        .split_whitespace()
        .filter(|w| w.starts_with("hop_tpl_"))
        .map(str::to_string)
        .collect();
    names.sort();
    names
}

/// How many times a run said it fell back to a full replay (stdout and
/// stderr together).
fn fallback_notes(r: &crate::support::Run) -> usize {
    let note = "note: no template database (";
    r.stdout.matches(note).count() + r.stderr.matches(note).count()
}

#[test]
fn a_role_without_createdb_falls_back_and_says_so_once() {
    let mut p = release_with_a_staged_head();
    let srv = pg::server();
    let db = p.db.clone();
    // What a superuser's full replay gives.
    p.env
        .git(&p.name, &["config", "hop.templateCache", "0"])
        .ok();
    p.env.patch(&p.name, &["apply"]).ok();
    p.env
        .git(&p.name, &["config", "--unset", "hop.templateCache"])
        .ok();
    let replay = dumps(&db);

    // A role that may not create databases, stored in the clone's git
    // config as clone stores a server (HOP_DATABASE_URL would win over it).
    let role = pg::unique_db_name("nocreatedb");
    srv.psql("postgres", &format!("CREATE ROLE {role} LOGIN NOCREATEDB"));
    let url = format!("postgresql://{role}@/?host={}", srv.socket_dir.display());
    let conninfo = hop::db::conn::ConnParams::parse(&url)
        .unwrap()
        .to_conninfo();
    p.env.unset("HOP_DATABASE_URL");
    {
        let (env, dir) = (&p.env, p.name.as_str());
        env.git(dir, &["config", "hop.database.url", &conninfo])
            .ok();

        // The role owns the database and a table in it, but not what the
        // superuser made there: refused, naming the cause, and the
        // database is as it was (the role's table too: one transaction).
        srv.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO {role}"));
        srv.psql(
            &db,
            &format!("CREATE TABLE mine (id int); ALTER TABLE mine OWNER TO {role}"),
        );
        let before = dumps(&db);
        assert!(before.0.contains("CREATE TABLE public.mine"));
        let r = env.patch(dir, &["apply"]);
        r.fails(1)
            .stderr_has(&format!(
                "error: cannot empty database {db} in place: it holds objects of role(s) {}, and role {role} may not create databases (no CREATEDB) to replace it; nothing was changed\nhint: ",
                srv.superuser
            ))
            .stderr_has(&format!("ALTER ROLE \"{role}\" CREATEDB"));
        assert_eq!(fallback_notes(&r), 1, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(dumps(&db), before, "a refused reset changed the database");

        // No database at all, and the role may not create one.
        srv.drop_db(&db);
        env.patch(dir, &["apply"])
            .fails(1)
            .stderr_has(&format!(
                "error: database {db} does not exist, and role {role} may not create it (no CREATEDB)"
            ))
            .stderr_has(&format!("CREATE DATABASE \"{db}\" OWNER \"{role}\""));

        // A database made for the role (by a superuser): apply falls back
        // once and gives what the superuser's replay gives, made by the role.
        srv.psql("postgres", &format!("CREATE DATABASE {db} OWNER {role}"));
        let r = env.patch(dir, &["apply"]);
        r.ok()
            .stdout_has(&format!(
                "note: no template database (role {role} may not create databases); replaying the whole release"
            ))
            .stdout_has("production snapshot 0.0.0 loaded")
            .stdout_has("applied 3 patch(es)");
        assert_eq!(fallback_notes(&r), 1, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(dumps(&db), replay);
        assert_eq!(
            srv.psql(
                &db,
                "SELECT tableowner FROM pg_tables WHERE tablename = 'a'"
            ),
            role
        );

        // Again, the database full of the role's objects (and one more):
        // emptied in place, rebuilt the same.
        srv.psql(
            &db,
            &format!("CREATE TABLE stray (id int); ALTER TABLE stray OWNER TO {role}"),
        );
        let r = env.patch(dir, &["apply"]);
        r.ok().stdout_has("applied 3 patch(es)");
        assert_eq!(fallback_notes(&r), 1, "{}\n{}", r.stdout, r.stderr);
        assert_eq!(dumps(&db), replay, "the in-place reset left something");

        // A validation creates its temporary database: it needs CREATEDB.
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", "3-c"]).ok();
        let r = env.patch(dir, &["merge"]);
        r.fails(1)
            .stderr_has(&format!("and role {role} may not create it (no CREATEDB)"))
            .stderr_has("hint: validations (merge, promote, pre-push) run in a temporary database: grant the role CREATEDB");
        assert_eq!(fallback_notes(&r), 1, "{}\n{}", r.stdout, r.stderr);
    }

    // The superuser again, for the cleanup (templates, database), then the role.
    p.env.set("HOP_DATABASE_URL", &srv.server_url());
    drop(p);
    srv.psql("postgres", &format!("DROP ROLE {role}"));
}

#[test]
fn a_changed_staged_patch_or_a_new_snapshot_gives_a_new_template() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    let srv = pg::server();
    // Room for every template this test makes: none is evicted, so each
    // old one is still there to be (wrongly) found.
    env.git(dir, &["config", "hop.templateCache", "10"]).ok();
    // The merges left the templates of this head: nothing is made.
    let r = env.patch(dir, &["apply"]);
    r.ok().stdout_has("and 2 staged patch(es)");
    assert!(!r.stdout.contains("made once"), "{}", r.stdout);

    // The staged 2-b's content changes (committed): a new template of the
    // head, made from that of 1-a; the snapshot's and 1-a's serve as they are.
    let path = env.path(dir).join("Patches/2-b/01.sql");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{original}INSERT INTO b VALUES (2);\n")).unwrap();
    env.git(
        dir,
        &["commit", "-qm", "2-b: one more row", "--", "Patches/2-b"],
    )
    .ok();
    let r = env.patch(dir, &["apply"]);
    r.ok()
        .stdout_has("the staged head (1 patch(es) on the template of 1)")
        .stdout_has("and 2 staged patch(es)");
    assert_eq!(r.stdout.matches("made once").count(), 1, "{}", r.stdout);
    // What was copied ahead (the template of 1-a, the longest there was)
    // is not the template copied: it was dropped, and a copy made.
    assert!(!r.stdout.contains(", ahead"), "{}", r.stdout);
    let copies = srv.psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_hop_copy_')",
            p.db
        ),
    );
    assert_eq!(copies.trim(), "0");
    assert_eq!(srv.psql(&p.db, "SELECT count(*) FROM b"), "2");
    let edited = dumps(&p.db);
    // Made once: the next apply copies it.
    let r = env.patch(dir, &["apply"]);
    r.ok().stdout_has("copied from template");
    assert!(!r.stdout.contains("made once"), "{}", r.stdout);
    assert_eq!(dumps(&p.db), edited);
    // And it holds what a full replay of the edited release gives.
    env.git(dir, &["config", "hop.templateCache", "0"]).ok();
    env.patch(dir, &["apply"]).ok();
    assert_eq!(dumps(&p.db), edited, "a copy differs from a replay");
    env.git(dir, &["config", "hop.templateCache", "10"]).ok();

    // The content as it was: the template of that content serves again.
    std::fs::write(&path, &original).unwrap();
    env.git(
        dir,
        &["commit", "-qm", "2-b as merged", "--", "Patches/2-b"],
    )
    .ok();
    let r = env.patch(dir, &["apply"]);
    r.ok().stdout_has("and 2 staged patch(es)");
    assert!(!r.stdout.contains("made once"), "{}", r.stdout);
    assert_eq!(srv.psql(&p.db, "SELECT count(*) FROM b"), "1");

    // A new production snapshot (0.1.0): the next release's first apply
    // builds a template of it.
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "3-c"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.release(dir, &["promote", "prod"]).ok();
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "4-d"]).ok();
    write(env, dir, "Patches/4-d/01.sql", "CREATE TABLE d (id int);\n");
    // The snapshot 0.0.0's, 1-a's, 2-b's (both contents) and 3-c's.
    let before = listed_templates(&p, dir);
    assert_eq!(before.len(), 5, "{before:?}");
    let r = env.patch(dir, &["apply"]);
    r.ok();
    let made: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("template hop_tpl_") && l.contains(": production snapshot 0.1.0 (")
        })
        .collect();
    assert_eq!(made.len(), 1, "{}", r.stdout);
    assert!(made[0].ends_with(", made once)"), "{}", r.stdout);
    let new = made[0]
        .strip_prefix("template ")
        .and_then(|l| l.split(':').next())
        .unwrap();
    r.stdout_has(&format!(
        "copied from template {new} (production snapshot 0.1.0)"
    ));
    // Beside the old snapshot's template (still there: it was not chosen).
    let mut expected = before.clone();
    expected.push(new.to_string());
    expected.sort();
    assert_eq!(listed_templates(&p, dir), expected);
    assert_eq!(srv.psql(&p.db, "SELECT count(*) FROM a WHERE n = 7"), "2");
    assert_eq!(srv.psql(&p.db, "SELECT count(*) FROM d"), "0");
}

/// `git hop-patch apply` started in the clone `dir`, output captured.
fn spawn_apply(p: &Project, dir: &str) -> std::process::Child {
    p.env
        .cmd("git", dir)
        .args(["hop-patch", "apply"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for an apply of [`spawn_apply`] in the clone `dir` that had no
/// template: it succeeded, built the snapshot's and the head's templates
/// itself (no fallback) and copied the head's.
#[track_caller]
fn built_both_templates(dir: &str, child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let show = format!("clone {dir}: {:?}\n{stdout}\n{stderr}", out.status);
    assert!(out.status.success(), "{show}");
    assert!(!stdout.contains("note: no template database"), "{show}");
    assert!(
        stdout.lines().any(|l| l.starts_with("template hop_tpl_")
            && l.contains(": production snapshot 0.0.0 (")
            && l.ends_with(", made once)")),
        "{show}"
    );
    assert!(
        stdout.contains("the staged head (2 patch(es) on the template of 0)"),
        "{show}"
    );
    assert!(
        stdout.contains("copied from template") && stdout.contains("and 2 staged patch(es)"),
        "{show}"
    );
    assert!(stdout.contains("applied 1 patch(es)"), "{show}");
}

/// Waits (at most a minute) until a template of the clone `dir` is being
/// built: a database of its templates' name that still carries a temporary
/// database's comment.
fn wait_for_a_build(p: &Project, dir: &str) {
    let srv = pg::server();
    let cache = hop::rebuild::template::Cache::for_clone(&p.env.path(dir).join(".git"), 4);
    let mut c = postgres::Config::new()
        .host_path(&srv.socket_dir)
        .port(srv.port)
        .user(&srv.superuser)
        .dbname("postgres")
        .connect(postgres::NoTls)
        .unwrap();
    let prefix = format!("hop_tpl_{}_", &cache.clone_id[..8]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_database WHERE starts_with(datname, $1) \
                 AND starts_with(shobj_description(oid, 'pg_database'), $2)",
                &[&prefix, &hop::db::temp::COMMENT],
            )
            .unwrap()
            .get(0);
        if n > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no template of clone {dir} was ever seen being built"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

#[test]
fn two_clones_building_the_same_template_at_the_same_moment_both_succeed() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    // 3-c committed and published, so that another clone applies the same tree.
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "3-c"]).ok();
    env.git(
        dir,
        &["push", "-q", "--no-verify", "origin", "ho-patch/3-c"],
    )
    .ok();
    let db_b = p.clone_as("b");
    env.git("b", &["switch", "-q", "ho-patch/3-c"]).ok();
    let no_templates = || {
        env.release(dir, &["db", "gc"]).ok();
        env.release("b", &["db", "gc"]).ok();
        assert!(template_databases(&p, dir).is_empty());
        assert!(template_databases(&p, "b").is_empty());
    };
    // Each clone keeps its two ready templates, nothing half-built.
    let two_ready_each = || {
        for d in [dir, "b"] {
            let listed = listed_templates(&p, d);
            assert_eq!(listed.len(), 2, "clone {d}: {listed:?}");
            assert_eq!(template_databases(&p, d), listed, "clone {d}");
        }
    };

    // Neither clone has a template; both start at once, so both build the
    // snapshot's and the head's templates at the same time.
    no_templates();
    let (a, b) = (spawn_apply(&p, dir), spawn_apply(&p, "b"));
    built_both_templates(dir, a);
    built_both_templates("b", b);
    two_ready_each();
    let at_once = (dumps(&p.db), dumps(&db_b));

    // Again, b starting while a's build is under way (what b's start does
    // to the leftovers of killed runs must spare it).
    no_templates();
    let a = spawn_apply(&p, dir);
    wait_for_a_build(&p, dir);
    let b = spawn_apply(&p, "b");
    built_both_templates(dir, a);
    built_both_templates("b", b);
    two_ready_each();
    let overlapping = (dumps(&p.db), dumps(&db_b));

    // Every copy equals a full replay.
    env.git(dir, &["config", "hop.templateCache", "0"]).ok();
    env.patch(dir, &["apply"]).ok();
    let replay = dumps(&p.db);
    assert_eq!(at_once.0, replay, "clone a's copy differs from a replay");
    assert_eq!(at_once.1, replay, "clone b's copy differs from a replay");
    assert_eq!(
        overlapping.0, replay,
        "clone a's copy differs from a replay"
    );
    assert_eq!(
        overlapping.1, replay,
        "clone b's copy differs from a replay"
    );
    env.release("b", &["db", "gc"]).ok();
    pg::server().drop_db(&db_b);
}

#[test]
fn a_staged_patch_failing_while_its_template_is_built_leaves_no_template() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    env.patch(dir, &["apply"]).ok();
    let before = dumps(&p.db);
    let templates = listed_templates(&p, dir);
    assert!(!templates.is_empty());
    assert_eq!(template_databases(&p, dir), templates);

    // The staged 2-b now fails at run time (a foreign key), committed: the
    // head's template is built again, from that of 1-a, and fails.
    let path = env.path(dir).join("Patches/2-b/01.sql");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{original}INSERT INTO b VALUES (99);\n")).unwrap();
    env.git(
        dir,
        &[
            "commit",
            "-qm",
            "2-b: a row without its a",
            "--",
            "Patches/2-b",
        ],
    )
    .ok();
    let r = env.patch(dir, &["apply"]);
    r.fails(1)
        .stdout_has("the staged head (1 patch(es) on the template of 1)")
        .stderr_has("error: patch 2-b failed: Patches/2-b/01.sql:4: ")
        .stderr_has("violates foreign key constraint");
    assert_eq!(fallback_notes(&r), 0, "{}\n{}", r.stdout, r.stderr);
    // No template left behind, ready or half-built; the working database
    // as it was.
    assert_eq!(listed_templates(&p, dir), templates);
    assert_eq!(template_databases(&p, dir), templates);
    assert_eq!(dumps(&p.db), before);

    // A merge's validation makes the new head's template in the
    // background, beside its temporary database: the merged patch failing
    // leaves neither.
    std::fs::write(&path, original).unwrap();
    write(
        env,
        dir,
        "Patches/3-c/01.sql",
        "INSERT INTO b VALUES (99);\n",
    );
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "3-c, failing"]).ok();
    let r = env.patch(dir, &["merge"]);
    r.fails(1)
        .stdout_has("of the staged head is made meanwhile")
        .stderr_has("patch 3-c failed: Patches/3-c/01.sql:1: ")
        .stderr_has("violates foreign key constraint");
    assert_eq!(listed_templates(&p, dir), templates);
    assert_eq!(template_databases(&p, dir), templates);
    assert_eq!(
        pg::server().psql(
            "postgres",
            &format!(
                "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_hop_')",
                p.db
            )
        ),
        "0",
        "a temporary database was left"
    );
}

/// The name X of the first line "…copied from template X (…" of `stdout`.
fn copied_from(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.split("copied from template ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no copy in:\n{stdout}"))
        .to_string()
}

/// Templates beyond hop.templateCache are dropped while the command goes
/// on, and before it exits: the one just used (apply) or made (merge) stays.
#[test]
fn templates_beyond_the_cache_bound_are_gone_when_the_command_ends() {
    let p = release_with_a_staged_head();
    let (env, dir) = (&p.env, p.name.as_str());
    // The snapshot's, 1-a's and the head's (1-a, 2-b).
    assert_eq!(template_databases(&p, dir).len(), 3);
    env.git(dir, &["config", "hop.templateCache", "1"]).ok();
    let r = env.patch(dir, &["apply"]);
    r.ok();
    let used = copied_from(&r.stdout);
    assert_eq!(template_databases(&p, dir), vec![used.clone()]);
    // A merge makes the next head's template: it alone is kept.
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "3-c"]).ok();
    let r = env.patch(dir, &["merge"]);
    r.ok().stdout_has("of the staged head is made meanwhile");
    let made = r
        .stdout
        .lines()
        .find_map(|l| l.split("; template ").nth(1))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_string();
    assert_ne!(made, used);
    assert_eq!(template_databases(&p, dir), vec![made.clone()]);
    assert_eq!(listed_templates(&p, dir), vec![made]);
    // And the validation's database went with the merge.
    let left = pg::server().psql(
        "postgres",
        &format!(
            "SELECT count(*) FROM pg_database WHERE starts_with(datname, '{}_hop_validate_')",
            p.db
        ),
    );
    assert_eq!(left, "0");
}
