//! The developer's loop: apply, merge (test-gated, in a temporary worktree
//! and database), sync, two developers, and failures that must leave
//! nothing behind.

use crate::support::{Project, TestEnv, pg, write};

/// Makes the project's test command a shell script checking the database.
fn use_test_script(env: &TestEnv, dir: &str, script: &str) {
    crate::support::set_tests_command(env, dir, "sh tests/check.sh");
    write(env, dir, "tests/check.sh", script);
}

/// Temporary databases of the project whose working database is `db`.
fn temp_databases(db: &str) -> String {
    pg::server().psql(
        "postgres",
        &format!("SELECT string_agg(datname, ',') FROM pg_database WHERE starts_with(datname, '{db}_hop_')"),
    )
}

use crate::support::worktrees;

#[test]
fn quick_start_release_patch_apply_merge() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-users", "-d", "users"]).ok();
    write(
        env,
        dir,
        "Patches/1-users/01_users.sql",
        "CREATE TABLE users (id serial PRIMARY KEY, username text NOT NULL);\n",
    );
    env.patch(dir, &["apply"]).ok().stdout_has("1-users");
    assert_eq!(
        pg::server().psql(dir, "SELECT to_regclass('public.users') IS NOT NULL"),
        "t"
    );
    let sha = pg::server().psql(
        dir,
        "SELECT patch_id || ' ' || release || ' ' || length(sha256) FROM half_orm_meta.hop_patch",
    );
    assert_eq!(sha, "1-users 0.1.0 64");
    let module =
        std::fs::read_to_string(env.path(dir).join(format!("{dir}/public/users.py"))).unwrap();
    assert!(
        module.contains("class Users(") && module.contains("\"public\".\"users\""),
        "{module}"
    );
    assert!(
        env.path(dir)
            .join("tests/public/users/test_public_users.py")
            .is_file()
    );
    env.release(dir, &["generate"])
        .ok()
        .stdout_has("0 written, 0 removed");
    env.patch(dir, &["status"])
        .ok()
        .stdout_has("database: matches the patch files");
    // Drift: the files changed since the last apply; CRLF alone is no drift.
    let sql = env.path(dir).join("Patches/1-users/01_users.sql");
    let original = std::fs::read_to_string(&sql).unwrap();
    std::fs::write(&sql, original.replace('\n', "\r\n")).unwrap();
    env.patch(dir, &["status"])
        .ok()
        .stdout_has("database: matches the patch files");
    std::fs::write(&sql, format!("{original}-- more\n")).unwrap();
    let st = env.patch(dir, &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.ok().stdout).unwrap();
    assert!(
        v["database"].as_str().unwrap().starts_with("differs"),
        "{v}"
    );
    assert_eq!(v["state"], "candidate");
    assert_eq!(v["behind"], 0);
    std::fs::write(&sql, &original).unwrap();
    use_test_script(
        env,
        dir,
        "psql -X -v ON_ERROR_STOP=1 -Atc 'SELECT count(*) FROM users' >/dev/null\n",
    );
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "users table and a test"])
        .ok();
    env.patch(dir, &["merge"])
        .ok()
        .stdout_has("merged 1-users into ho-release/0.1.0")
        .stdout_has("tests passed");

    assert_eq!(
        env.git(dir, &["branch", "--show-current"]).out(),
        "ho-release/0.1.0"
    );
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert_eq!(toml, "[patches]\n\"1-users\" = \"staged\"\n");
    assert!(
        env.git(dir, &["rev-parse", "--verify", "-q", "ho-patch/1-users"])
            .code
            != Some(0),
        "local patch branch left"
    );
    let refs = p.origin_refs();
    assert!(!refs.contains("refs/heads/ho-patch/1-users"), "{refs}");
    let on_origin = env.git(
        ".",
        &[
            "--git-dir",
            p.origin_url(),
            "show",
            "ho-release/0.1.0:Patches/1-users/01_users.sql",
        ],
    );
    on_origin.ok().stdout_has("CREATE TABLE users");
    assert_eq!(worktrees(env, dir), 1, "temporary worktree left");
    assert_eq!(temp_databases(dir), "", "temporary database left");
    assert_eq!(env.git(dir, &["status", "--porcelain"]).out(), "");
    // The release branch tracks origin's, so git pull and status work.
    assert_eq!(
        env.git(dir, &["rev-parse", "--abbrev-ref", "@{upstream}"])
            .out(),
        "origin/ho-release/0.1.0"
    );

    // Numeric-only id, end to end.
    env.patch(dir, &["create", "456"]).ok();
    write(
        env,
        dir,
        "Patches/456/01_x.sql",
        "ALTER TABLE users ADD COLUMN email text;\n",
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "email"]).ok();
    // A release branch that lost its upstream gets it back with the merge.
    env.git(dir, &["branch", "--unset-upstream", "ho-release/0.1.0"])
        .ok();
    env.patch(dir, &["merge"]).ok();
    let toml =
        std::fs::read_to_string(env.path(dir).join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert_eq!(
        toml,
        "[patches]\n\"1-users\" = \"staged\"\n\"456\" = \"staged\"\n"
    );
    assert_eq!(
        env.git(dir, &["rev-parse", "--abbrev-ref", "@{upstream}"])
            .out(),
        "origin/ho-release/0.1.0"
    );
}

#[test]
fn a_failing_test_blocks_the_merge_and_leaves_everything_as_it_was() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    use_test_script(env, dir, "echo 'test_a FAILED' >&2; exit 1\n");
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();
    pg::server().psql(dir, "INSERT INTO a VALUES (42)");
    let before = p.local_state(dir);
    let origin_before = p.origin_refs();
    let r = env.patch(dir, &["merge"]);
    r.fails(1)
        .stderr_has("tests failed")
        .stderr_has("test_a FAILED");
    assert_eq!(p.local_state(dir), before, "local repository changed");
    assert_eq!(p.origin_refs(), origin_before, "origin changed");
    assert_eq!(worktrees(env, dir), 1, "temporary worktree left");
    assert_eq!(temp_databases(dir), "", "temporary database left");
    assert_eq!(
        pg::server().psql(dir, "SELECT id FROM a"),
        "42",
        "working database changed"
    );
}

#[test]
fn an_sql_error_reports_file_and_line_and_keeps_only_staged_patches() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-base"]).ok();
    write(
        env,
        dir,
        "Patches/1-base/01.sql",
        "CREATE TABLE base (id int);\n",
    );
    use_test_script(env, dir, "true\n");
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "base"]).ok();
    env.patch(dir, &["merge"]).ok();
    env.patch(dir, &["create", "2-broken"]).ok();
    write(
        env,
        dir,
        "Patches/2-broken/01_ok.sql",
        "CREATE TABLE fine (id int);\n",
    );
    write(
        env,
        dir,
        "Patches/2-broken/02_bad.sql",
        "-- second file\nSELECT 1;\nSELECT * FROM no_such_table;\n",
    );
    let r = env.patch(dir, &["apply"]);
    r.fails(1)
        .stderr_has("2-broken")
        .stderr_has("02_bad.sql:3")
        .stderr_has("no_such_table");
    assert_eq!(
        pg::server().psql(dir, "SELECT to_regclass('public.base') IS NOT NULL"),
        "t"
    );
    assert_eq!(
        pg::server().psql(dir, "SELECT to_regclass('public.fine') IS NULL"),
        "t",
        "half of the failed patch applied"
    );
    assert_eq!(
        pg::server().psql(
            dir,
            "SELECT string_agg(patch_id, ',') FROM half_orm_meta.hop_patch"
        ),
        "1-base"
    );
}

#[test]
fn two_developers_merge_order_is_release_order() {
    let p = Project::new();
    let env = &p.env;
    let dir = p.name.as_str();
    env.release(dir, &["new", "minor"]).ok();
    let db_b = p.clone_as("b");
    env.git("b", &["switch", "-q", "ho-release/0.1.0"]).ok();
    // A: 2-api, B: 1-auth.
    env.patch(dir, &["create", "2-api"]).ok();
    env.patch("b", &["create", "1-auth"]).ok_or_retry(env, "b");
    write(
        env,
        dir,
        "Patches/2-api/01.sql",
        "CREATE TABLE api_key (id int PRIMARY KEY);\n",
    );
    use_test_script(
        env,
        dir,
        "psql -X -v ON_ERROR_STOP=1 -Atc 'SELECT 1 FROM api_key' >/dev/null\n",
    );
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "api"]).ok();
    env.patch(dir, &["merge"]).ok();
    // B depends on A's table.
    write(
        env,
        "b",
        "Patches/1-auth/01.sql",
        "CREATE TABLE auth (key int REFERENCES api_key (id));\n",
    );
    env.git("b", &["add", "-A"]).ok();
    env.git("b", &["commit", "-qm", "auth"]).ok();
    env.patch("b", &["status"]).ok().stdout_has("behind");
    // Without A's patch, B's patch cannot even apply.
    env.patch("b", &["apply"]).fails(1).stderr_has("api_key");
    env.patch("b", &["sync"])
        .ok()
        .stdout_has("merged origin/ho-release/0.1.0");
    env.patch("b", &["sync"]).ok().stdout_has("up to date");
    env.patch("b", &["apply"]).ok().stdout_has("2-api");
    env.git("b", &["add", "-A"]).ok();
    env.git("b", &["commit", "-qm", "generated code"]).ok();
    env.patch("b", &["merge"]).ok().stdout_has("tests passed");
    let toml =
        std::fs::read_to_string(env.path("b").join(".hop/releases/0.1.0-patches.toml")).unwrap();
    assert_eq!(
        toml, "[patches]\n\"2-api\" = \"staged\"\n\"1-auth\" = \"staged\"\n",
        "merge order is release order"
    );
    pg::server().drop_db(&db_b);
}

trait OkOrRetry {
    fn ok_or_retry(&self, env: &TestEnv, dir: &str);
}

impl OkOrRetry for crate::support::Run {
    /// `patch create` in a second clone right after the first one pushed:
    /// it is refused as out of sync; pull and retry, as a user would.
    fn ok_or_retry(&self, env: &TestEnv, dir: &str) {
        if self.code == Some(0) {
            return;
        }
        self.stderr_has("behind origin");
        env.git(dir, &["pull", "-q", "--ff-only"]).ok();
        env.patch(dir, &["create", "1-auth"]).ok();
    }
}

#[test]
fn wrong_branch_dirty_tree_and_refusing_origin_change_nothing() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    for cmd in ["apply", "merge", "sync"] {
        env.patch(dir, &[cmd])
            .fails(1)
            .stderr_has("Must be on ho-patch/* branch");
    }
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    use_test_script(env, dir, "true\n");
    env.patch(dir, &["apply"]).ok();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("Repository is not clean");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();
    let hook = p.origin.join("hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'origin refuses' >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let before = p.local_state(dir);
    let origin_before = p.origin_refs();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("origin refuses");
    assert_eq!(p.local_state(dir), before);
    assert_eq!(p.origin_refs(), origin_before);
    assert_eq!(worktrees(env, dir), 1);
    assert_eq!(temp_databases(dir), "");
    std::fs::remove_file(&hook).unwrap();
    env.patch(dir, &["merge"]).ok();
}

#[test]
fn code_generation_can_be_turned_off() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    let cfg = env.path(dir).join(".hop/config");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n[codegen]\npython = false\n")).unwrap();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    env.patch(dir, &["apply"])
        .ok()
        .stdout_has("code generation is off");
    assert!(!env.path(dir).join(format!("{dir}/public")).exists());
}

#[test]
fn a_killed_merge_leaves_a_state_the_next_merge_cleans_up() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    let mark = env.tmp.path().join("tests-started");
    let script = format!(
        "if [ -f {m}.done ]; then exit 0; fi\ntouch {m}\nsleep 60\n",
        m = mark.display()
    );
    use_test_script(env, dir, &script);
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();
    let before = p.local_state(dir);
    let origin_before = p.origin_refs();

    let mut child = env
        .cmd("git-hop-patch", dir)
        .arg("merge")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !mark.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the tests never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap(); // SIGKILL: no cleanup code runs
    child.wait().unwrap();
    assert_eq!(p.local_state(dir), before, "the user's clone changed");
    // Origin holds only the killed run's lock of the release
    // (docs/releases.md, "The merge queue"), which the next run takes over.
    let without_lock = |refs: String| {
        refs.lines()
            .filter(|l| !l.ends_with("\trefs/hop/locks/0.1.0"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(p.origin_refs().contains("\trefs/hop/locks/0.1.0"));
    assert_eq!(
        without_lock(p.origin_refs()),
        without_lock(origin_before),
        "origin changed"
    );
    assert_eq!(
        env.git(dir, &["branch", "--show-current"]).out(),
        "ho-patch/1-a"
    );

    std::fs::write(mark.with_extension("done"), "").unwrap();
    env.patch(dir, &["merge"])
        .ok()
        .stderr_has("is gone (its process ended): taking it over");
    assert!(!p.origin_refs().contains("refs/hop/locks/"));
    assert_eq!(
        worktrees(env, dir),
        1,
        "the killed run's worktree was not pruned"
    );
    assert_eq!(
        temp_databases(dir),
        "",
        "the killed run's database was not dropped"
    );
}

/// The seed's quick start with the real half_orm and pytest: the business
/// method appended to the generated class survives regeneration, and the
/// merge runs pytest against the validation database through half_orm.
#[test]
fn seed_quick_start_with_half_orm_and_pytest() {
    let python = crate::support::venv::venv_python();
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-users"]).ok();
    write(
        env,
        dir,
        "Patches/1-users/01_users.sql",
        "CREATE TABLE users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), username text NOT NULL);\n",
    );
    env.patch(dir, &["apply"]).ok();
    let module = env.path(dir).join(format!("{dir}/public/users.py"));
    let mut text = std::fs::read_to_string(&module).unwrap();
    let business = "    @classmethod\n    def create(cls, username: str):\n        if not username or not username.strip():\n            raise ValueError('Username cannot be empty')\n        return cls(username=username).ho_insert()\n";
    text.push_str(business);
    std::fs::write(&module, &text).unwrap();
    write(
        env,
        dir,
        "tests/public/users/test_users_logic.py",
        &format!(
            "import pytest\nfrom {dir}.public.users import Users\n\ndef test_create():\n    row = Users.create(username='alice')\n    assert row['username'] == 'alice'\n    assert row['id'] is not None\n\ndef test_empty_name():\n    with pytest.raises(ValueError):\n        Users.create(username='')\n"
        ),
    );
    let cfg = env.path(dir).join(".hop/config");
    let conf = std::fs::read_to_string(&cfg).unwrap().replace(
        "command = \"pytest\"",
        &format!(
            "command = \"{} -m pytest -q -p no:cacheprovider tests\"",
            python.display()
        ),
    );
    std::fs::write(&cfg, conf).unwrap();
    // Regeneration keeps the business method byte for byte.
    env.patch(dir, &["apply"]).ok();
    assert!(
        std::fs::read_to_string(&module)
            .unwrap()
            .ends_with(business)
    );
    env.git(dir, &["add", "-A"]).ok();
    env.git(
        dir,
        &["commit", "-qm", "users with business logic and tests"],
    )
    .ok();
    env.patch(dir, &["merge"]).ok().stdout_has("tests passed");
}

/// Release 0.1.0 with patch 2-api in the project's clone and 1-auth in a
/// second clone "b" (whose database is returned), both with a trivial
/// test command and neither merged.
fn two_clones_two_patches() -> (Project, String) {
    let p = Project::new();
    let env = &p.env;
    let dir = p.name.as_str();
    env.release(dir, &["new", "minor"]).ok();
    use_test_script(env, dir, "true\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["stash", "-q"]).ok();
    let db_b = p.clone_as("b");
    env.git("b", &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.patch(dir, &["create", "2-api"]).ok();
    env.git(dir, &["stash", "pop", "-q"]).ok();
    env.git("b", &["pull", "-q", "--ff-only"]).ok();
    env.patch("b", &["create", "1-auth"]).ok();
    use_test_script(env, "b", "true\n");
    (p, db_b)
}

/// Two patches adding tables to the same schema, each with its generated
/// code committed: syncing one onto the other does not conflict, and the
/// merged code validates.
#[test]
fn generated_code_of_two_patches_in_one_schema_merges_cleanly() {
    let (p, db_b) = two_clones_two_patches();
    let env = &p.env;
    let dir = p.name.as_str();
    for (d, id, table) in [(dir, "2-api", "api_key"), ("b", "1-auth", "auth")] {
        write(
            env,
            d,
            &format!("Patches/{id}/01.sql"),
            &format!("CREATE TABLE {table} (id int PRIMARY KEY);\n"),
        );
        env.patch(d, &["apply"]).ok();
        env.git(d, &["add", "-A"]).ok();
        env.git(d, &["commit", "-qm", id]).ok();
    }
    env.patch(dir, &["merge"]).ok();
    env.patch("b", &["sync"]).ok();
    env.patch("b", &["merge"]).ok().stdout_has("merged 1-auth");
    pg::server().drop_db(&db_b);
}

/// Two patches writing the same file differently: the second merge names
/// the conflicting file and the command that resolves it, and changes
/// nothing, on origin or in the clone.
#[test]
fn a_merge_that_conflicts_names_the_files_and_changes_nothing() {
    let (p, db_b) = two_clones_two_patches();
    let env = &p.env;
    let dir = p.name.as_str();
    for (d, id) in [(dir, "2-api"), ("b", "1-auth")] {
        write(env, d, "notes.txt", &format!("{id}\n"));
        env.patch(d, &["apply"]).ok();
        env.git(d, &["add", "-A"]).ok();
        env.git(d, &["commit", "-qm", id]).ok();
    }
    env.patch(dir, &["merge"]).ok();
    let origin_release = || {
        env.git("b", &["ls-remote", "origin", "ho-release/0.1.0"])
            .out()
    };
    let before = origin_release();
    let head = env.git("b", &["rev-parse", "HEAD"]).out();
    env.patch("b", &["merge"])
        .fails(1)
        .stderr_has("merging ho-patch/1-auth into ho-release/0.1.0 conflicts in: notes.txt")
        .stderr_has("git hop-patch sync");
    assert_eq!(origin_release(), before);
    assert_eq!(env.git("b", &["rev-parse", "HEAD"]).out(), head);
    assert_eq!(env.git("b", &["status", "--porcelain"]).out(), "");
    pg::server().drop_db(&db_b);
}

/// A merge interrupted after its push (origin has the staged release, the
/// clone still has the patch branch checked out): the next merge finishes
/// the local part instead of failing.
#[test]
fn a_merge_interrupted_after_its_push_is_completed_by_the_next_run() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    use_test_script(env, dir, "true\n");
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a"]).ok();
    let patch_commit = env.git(dir, &["rev-parse", "HEAD"]).out();
    let release_before = env.git(dir, &["rev-parse", "ho-release/0.1.0"]).out();
    env.patch(dir, &["merge"]).ok();
    let merged = env.git(dir, &["rev-parse", "ho-release/0.1.0"]).out();
    // Put the clone back as it was when the push had just succeeded.
    env.git(dir, &["switch", "-q", "-c", "ho-patch/1-a", &patch_commit])
        .ok();
    env.git(
        dir,
        &["update-ref", "refs/heads/ho-release/0.1.0", &release_before],
    )
    .ok();
    env.patch(dir, &["merge"]).ok().stdout_has("already staged");
    assert_eq!(
        env.git(dir, &["branch", "--show-current"]).out(),
        "ho-release/0.1.0"
    );
    assert_eq!(
        env.git(dir, &["rev-parse", "ho-release/0.1.0"]).out(),
        merged
    );
    assert!(
        env.git(dir, &["rev-parse", "--verify", "-q", "ho-patch/1-a"])
            .code
            != Some(0)
    );
    assert_eq!(env.git(dir, &["status", "--porcelain"]).out(), "");
}

/// A merge may change only its own patch: the revert of a sync (which
/// takes a staged patch out of the release) and a stale release file
/// committed on a patch branch (which demotes one) are refused, naming the
/// patch, with origin unchanged.
#[test]
fn a_merge_that_undoes_the_release_is_refused() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    use_test_script(env, dir, "true\n");
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "tests"]).ok();
    env.git(dir, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    env.git(dir, &["switch", "-q", "ho-release/0.1.0"]).ok();
    env.patch(dir, &["create", "2-b"]).ok();
    for (id, table) in [("1-a", "a"), ("2-b", "b")] {
        env.git(dir, &["switch", "-q", &format!("ho-patch/{id}")])
            .ok();
        write(
            env,
            dir,
            &format!("Patches/{id}/01.sql"),
            &format!("CREATE TABLE {table} (id int);\n"),
        );
        env.patch(dir, &["apply"]).ok();
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", id]).ok();
    }
    env.git(dir, &["switch", "-q", "ho-patch/1-a"]).ok();
    env.patch(dir, &["merge"]).ok();

    // 2-b syncs (1-a comes in), then the sync is reverted.
    env.git(dir, &["switch", "-q", "ho-patch/2-b"]).ok();
    env.patch(dir, &["sync"]).ok();
    env.git(dir, &["revert", "-m", "1", "--no-edit", "HEAD"])
        .ok();
    let before = p.origin_refs();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("merging 2-b would change the release beyond the patch: it makes patch 1-a candidate again (the release has it staged)")
        .stderr_has("git checkout origin/ho-release/0.1.0 -- <path>");
    assert_eq!(p.origin_refs(), before);

    // A stale release file that forgets 1-a.
    env.git(dir, &["reset", "-q", "--hard", "HEAD~1"]).ok();
    let toml = env.path(dir).join(".hop/releases/0.1.0-patches.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    assert!(text.contains("\"1-a\" = \"staged\""), "{text}");
    std::fs::write(&toml, text.replace("\"1-a\" = \"staged\"\n", "")).unwrap();
    env.git(dir, &["commit", "-qam", "stale release file"]).ok();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("it drops patch 1-a (staged) from the release");
    assert_eq!(p.origin_refs(), before);

    // Another patch's folder changed on the patch branch.
    env.git(dir, &["reset", "-q", "--hard", "HEAD~1"]).ok();
    write(
        env,
        dir,
        "Patches/1-a/01.sql",
        "CREATE TABLE a (id bigint);\n",
    );
    env.git(dir, &["commit", "-qam", "touch 1-a"]).ok();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("it changes Patches/1-a/01.sql, a file of patch 1-a");
    assert_eq!(p.origin_refs(), before);

    // Without those commits the merge goes through.
    env.git(dir, &["reset", "-q", "--hard", "HEAD~1"]).ok();
    env.patch(dir, &["merge"]).ok();
}

/// Validation worktrees are kept and reused (docs/engine.md, "Fast
/// rebuilds"): whatever an earlier validation left in its slot (tests'
/// output, a stray SQL file in a patch folder, a changed tracked file)
/// never reaches the next one, which sees exactly the
/// commit it validates, in the same slot.
#[test]
fn a_reused_validation_worktree_holds_exactly_the_commit_it_validates() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    for (n, id) in ["1-a", "2-b"].into_iter().enumerate() {
        env.patch(dir, &["create", id]).ok();
        if n == 0 {
            // Committed with the first patch; fails on a stray file.
            use_test_script(env, dir, "test ! -e stray.txt\n");
        }
        write(
            env,
            dir,
            &format!("Patches/{id}/01.sql"),
            &format!("CREATE TABLE t{n} (id int);\n"),
        );
        env.patch(dir, &["apply"]).ok();
        env.git(dir, &["add", "-A"]).ok();
        env.git(dir, &["commit", "-qm", id]).ok();
        env.patch(dir, &["merge"])
            .ok()
            .stdout_has("tests passed")
            .stdout_has("applied in");
        let slot = env.path(dir).join(".git/hop/tmp/validate-slot-0");
        assert!(slot.join(".git").is_file(), "no kept worktree after {id}");
        assert_eq!(
            env.git(dir, &["worktree", "list"]).out().lines().count(),
            2,
            "one kept worktree, reused"
        );
        assert_eq!(worktrees(env, dir), 1);
        if n == 0 {
            // What a careless earlier run could leave behind.
            std::fs::write(slot.join("stray.txt"), "left by a test\n").unwrap();
            std::fs::write(slot.join("Patches/1-a/02_stray.sql"), "SELECT 1/0;\n").unwrap();
            std::fs::write(slot.join("tests/check.sh"), "exit 1\n").unwrap();
            std::fs::write(slot.join(".git-hop-junk"), "").unwrap();
        } else {
            assert!(!slot.join("stray.txt").exists());
            assert!(!slot.join("Patches/1-a/02_stray.sql").exists());
        }
    }
}

/// The merge validation regenerates the code from the database it built
/// and refuses a patch whose generated code was not committed (or is
/// stale), naming the files, and changes nothing.
#[test]
fn uncommitted_generated_code_blocks_the_merge() {
    let p = Project::new();
    let (env, dir) = (&p.env, p.name.as_str());
    env.release(dir, &["new", "minor"]).ok();
    env.patch(dir, &["create", "1-a"]).ok();
    write(env, dir, "Patches/1-a/01.sql", "CREATE TABLE a (id int);\n");
    crate::support::set_tests_command(env, dir, "true");
    // The SQL committed without applying: no generated code at all.
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "a, without its code"]).ok();
    let origin_before = p.origin_refs();
    let package = p.name.clone();
    env.patch(dir, &["merge"])
        .fails(1)
        .stderr_has("generated code is out of date: ")
        .stderr_has(&format!("{package}/public/a.py"))
        .stderr_has("git hop-patch apply");
    assert_eq!(p.origin_refs(), origin_before, "origin changed");
    // Applied and committed, it merges.
    env.patch(dir, &["apply"]).ok();
    env.git(dir, &["add", "-A"]).ok();
    env.git(dir, &["commit", "-qm", "code"]).ok();
    env.patch(dir, &["merge"]).ok().stdout_has("staged");
}
