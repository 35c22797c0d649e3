//! TLS to a server that accepts nothing else (docs/connection.md): the
//! harness's TLS-only server (`pg::tls_server`: a certificate for
//! `localhost` signed by a CA made for the run, `hostssl` only, scram for
//! `pwuser` and `cert` for `certuser`), reached over TCP on 127.0.0.1 by
//! git-hop's own client and by the psql/pg_dump it starts.

use std::os::unix::fs::PermissionsExt;

use crate::support::{Run, TestEnv, pg, tree, write};

/// An environment whose commands reach the TLS server as `pwuser` at
/// `host`, with `PGPASSWORD` and the given libpq TLS variables.
fn tls_env(host: &str, vars: &[(&str, &str)]) -> TestEnv {
    let tls = pg::tls_server();
    let mut env = TestEnv::new();
    env.set("HOP_DATABASE_URL", &tls.url(host, pg::PW_USER, ""));
    env.set("PGPASSWORD", pg::PW_PASSWORD);
    for (k, v) in vars {
        env.set(k, v);
    }
    env
}

fn ca() -> String {
    pg::tls_server().ca.display().to_string()
}

/// The run failed with exactly one `error:` line holding `needle`, and
/// left nothing in the work folder.
#[track_caller]
fn one_line_failure(env: &TestEnv, r: &Run, code: i32, needle: &str) {
    r.fails(code).stderr_has(needle);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(errors[0].contains(needle), "{}", r.stderr);
    assert!(
        r.stderr.lines().any(|l| l.starts_with("hint:")),
        "{}",
        r.stderr
    );
    assert!(tree(&env.work).is_empty(), "left: {:?}", tree(&env.work));
}

#[test]
fn a_release_and_a_production_upgrade_over_verify_full() {
    let tls = pg::tls_server();
    let ca = ca();
    let env = tls_env(
        "localhost",
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)],
    );
    let pkg = pg::unique_db_name("tlswf");
    let origin = env.bare_origin("origin");
    env.release(".", &["init", &pkg, "--origin", origin.to_str().unwrap()])
        .ok();
    crate::support::set_tests_command(&env, &pkg, "true");
    env.git(&pkg, &["commit", "-qam", "tests"]).ok();
    env.git(&pkg, &["push", "-q", "--no-verify", "origin", "ho-prod"])
        .ok();
    env.release(&pkg, &["new", "minor"]).ok();
    env.patch(&pkg, &["create", "1-things"]).ok();
    write(
        &env,
        &pkg,
        "Patches/1-things/01.sql",
        "CREATE TABLE things (id int PRIMARY KEY);\nINSERT INTO things VALUES (1), (2);\n",
    );
    // apply: psql runs the patch, pg_dump checks it, our client the rest.
    env.patch(&pkg, &["apply"]).ok();
    env.git(&pkg, &["add", "-A"]).ok();
    env.git(&pkg, &["commit", "-qm", "things"]).ok();
    env.patch(&pkg, &["merge"]).ok();
    env.release(&pkg, &["promote", "prod"]).ok();
    let exports = env.release(&pkg, &["env"]).ok().out();
    assert!(
        exports.contains("export PGSSLMODE='verify-full'"),
        "{exports}"
    );
    assert!(
        exports.contains(&format!("export PGSSLROOTCERT='{ca}'")),
        "{exports}"
    );
    assert!(!exports.contains(pg::PW_PASSWORD), "{exports}");

    // A production database at 0.0.0, a production clone, an upgrade.
    let prod_db = pg::unique_db_name("tlsprod");
    env.release(
        &pkg,
        &[
            "restore",
            "0.0.0",
            "--db-url",
            &tls.url("localhost", pg::PW_USER, &prod_db),
        ],
    )
    .ok();
    env.release(
        ".",
        &[
            "clone",
            origin.to_str().unwrap(),
            "prod",
            "--database",
            &prod_db,
            "--production",
        ],
    )
    .ok();
    env.release("prod", &["upgrade"]).ok();
    assert_eq!(
        tls.server.psql(&prod_db, "SELECT count(*) FROM things"),
        "2"
    );
    // The generated package reaches it too, through the exports (psycopg's
    // libpq reads PGSSLMODE and PGSSLROOTCERT).
    assert_eq!(
        crate::test_env::count_through_half_orm(&env, "prod", &pkg, "things", "Things"),
        "2"
    );
    for db in [pkg.as_str(), prod_db.as_str()] {
        tls.server.drop_db(db);
    }
}

#[test]
fn require_allow_and_the_default_prefer_work_without_a_root_certificate() {
    let tls = pg::tls_server();
    for vars in [
        vec![("PGSSLMODE", "require")],
        vec![],
        // allow: plain text first, refused here, then TLS.
        vec![("PGSSLMODE", "allow")],
        // SCRAM bound to the TLS channel (tls-server-end-point).
        vec![("PGSSLMODE", "require"), ("PGCHANNELBINDING", "require")],
    ] {
        let env = tls_env("127.0.0.1", &vars);
        let pkg = pg::unique_db_name("tlsreq");
        env.release(".", &["init", &pkg]).ok();
        env.release(&pkg, &["status"]).ok();
        tls.server.drop_db(&pkg);
    }
}

#[test]
fn verify_full_against_an_address_the_certificate_does_not_name_fails_in_one_line() {
    let ca = ca();
    let env = tls_env(
        "127.0.0.1",
        &[("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", &ca)],
    );
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(
        &env,
        &r,
        1,
        "the server's certificate is for localhost, not for \"127.0.0.1\"",
    );
    r.stderr_has("sslmode=verify-ca");
    // verify-ca checks the signer only: the same address is fine.
    let tls = pg::tls_server();
    let env = tls_env(
        "127.0.0.1",
        &[("PGSSLMODE", "verify-ca"), ("PGSSLROOTCERT", &ca)],
    );
    let pkg = pg::unique_db_name("tlsca");
    env.release(".", &["init", &pkg]).ok();
    tls.server.drop_db(&pkg);
    // The system's roots (here SSL_CERT_FILE, a store without the test
    // CA) do not know the server's signer.
    let not_the_ca = tls.client_cert.display().to_string();
    let env = tls_env(
        "localhost",
        &[("PGSSLROOTCERT", "system"), ("SSL_CERT_FILE", &not_the_ca)],
    );
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(&env, &r, 1, "was not verified");
    r.stderr_has("sslrootcert");
    // Nor does a wrong root file under the default prefer: the fallback to
    // plain text is refused as well, and the certificate is the cause told.
    let env = tls_env("localhost", &[("PGSSLROOTCERT", &not_the_ca)]);
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(
        &env,
        &r,
        1,
        "the server's certificate (localhost) was not verified",
    );
}

#[test]
fn disable_against_a_tls_only_server_fails_in_one_line() {
    let env = tls_env("localhost", &[("PGSSLMODE", "disable")]);
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(&env, &r, 1, "no encryption");
    r.stderr_has("over TLS only");
}

#[test]
fn a_client_certificate_logs_in_as_the_cert_role() {
    let tls = pg::tls_server();
    let pkg = pg::unique_db_name("tlscert");
    let url = format!(
        "{}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        tls.url("localhost", pg::CERT_USER, ""),
        tls.ca.display(),
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let mut env = TestEnv::new();
    env.set("HOP_DATABASE_URL", &url);
    env.release(".", &["init", &pkg]).ok();
    env.release(&pkg, &["status"]).ok();
    assert_eq!(
        tls.server.psql(
            "postgres",
            &format!(
                "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{pkg}'"
            )
        ),
        pg::CERT_USER
    );
    let exports = env.release(&pkg, &["env"]).ok().out();
    assert!(
        exports.contains(&format!("export PGSSLCERT='{}'", tls.client_cert.display())),
        "{exports}"
    );
    tls.server.drop_db(&pkg);

    // Without its certificate, the cert role is refused.
    let mut env = TestEnv::new();
    env.set(
        "HOP_DATABASE_URL",
        &format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            tls.url("localhost", pg::CERT_USER, ""),
            tls.ca.display()
        ),
    );
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(&env, &r, 1, "certificate");
}

#[test]
fn a_client_key_readable_by_others_is_refused() {
    let tls = pg::tls_server();
    let env = TestEnv::new();
    let key = env.tmp.path().join("open.key");
    std::fs::copy(&tls.client_key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut env = env;
    env.set(
        "HOP_DATABASE_URL",
        &format!(
            "{}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            tls.url("localhost", pg::CERT_USER, ""),
            tls.ca.display(),
            tls.client_cert.display(),
            key.display()
        ),
    );
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(&env, &r, 1, "has group or world access");
    r.stderr_has("chmod 600");
}

#[test]
fn bad_tls_settings_fail_in_one_line_and_leave_nothing() {
    let tls = pg::tls_server();
    let base = tls.url("localhost", pg::PW_USER, "");
    let cases = [
        (format!("{base}?sslmode=bogus"), "invalid sslmode \"bogus\""),
        (
            format!("{base}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"),
            "root certificate file \"/nonexistent/ca.crt\" does not exist",
        ),
        (
            format!("{base}?sslbogus=1"),
            "unknown connection parameter \"sslbogus\"",
        ),
        (
            format!("{base}?sslmode=verify-full"),
            "sslmode=verify-full needs a root certificate",
        ),
    ];
    for (url, needle) in &cases {
        let mut env = TestEnv::new();
        env.set("PGPASSWORD", pg::PW_PASSWORD);
        env.set("HOP_DATABASE_URL", url);
        let r = env.release(".", &["init", "shop"]);
        one_line_failure(&env, &r, 1, needle);
        // The same on the command line is a usage error or a failure, and
        // a clone leaves no folder either.
        env.unset("HOP_DATABASE_URL");
        let origin = env.bare_origin("origin");
        let r = env.release(
            ".",
            &["clone", origin.to_str().unwrap(), "c", "--db-url", url],
        );
        assert!(matches!(r.code, Some(1) | Some(2)), "{}", r.stderr);
        r.stderr_has(needle);
        assert!(!env.path("c").exists(), "a failed clone leaves no folder");
    }
    // PGSSLMODE is checked as strictly.
    let env = tls_env("localhost", &[("PGSSLMODE", "bogus")]);
    let r = env.release(".", &["init", "shop"]);
    one_line_failure(&env, &r, 1, "invalid sslmode \"bogus\" in PGSSLMODE");
}
