//! Tests of connection parameters: parsing, the environment, service
//! files, the password file, TLS settings, resolution order.

use super::*;
use crate::db::database::{ResolveInput, Source, resolve};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| map.get(k).cloned()
}

/// An environment with no home files: HOME points at an empty dir.
fn no_env() -> impl Fn(&str) -> Option<String> + use<> {
    env_of(&[
        ("HOME", "/nonexistent-hop-test-home"),
        ("PGSYSCONFDIR", "/nonexistent-hop"),
    ])
}

fn parse(s: &str) -> Result<ConnParams> {
    ConnParams::parse_with_env(s, &no_env())
}

fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

#[test]
fn uri_full_form() {
    let p = parse("postgres://alice:s3cret@db.example.com:6543/shop?sslmode=require").unwrap();
    assert_eq!(
        p,
        ConnParams {
            host: Some("db.example.com".into()),
            port: Some(6543),
            user: Some("alice".into()),
            password: Some("s3cret".into()),
            dbname: Some("shop".into()),
            sslmode: Some(SslMode::Require),
            ..Default::default()
        }
    );
    let p = parse("postgresql://db").unwrap();
    assert_eq!(
        p,
        ConnParams {
            host: Some("db".into()),
            ..Default::default()
        }
    );
}

#[test]
fn uri_percent_encoding_and_at_in_password() {
    let p = parse("postgresql://bob:p%40ss%3Aw%2Fd@localhost/my%20db").unwrap();
    assert_eq!(p.password.as_deref(), Some("p@ss:w/d"));
    assert_eq!(p.dbname.as_deref(), Some("my db"));
    // An unencoded '@' in the password: the last '@' ends the user info.
    let p = parse("postgresql://bob:p@ss@localhost/db").unwrap();
    assert_eq!(p.password.as_deref(), Some("p@ss"));
    assert_eq!(p.host.as_deref(), Some("localhost"));
    let e = parse("postgresql://bob:bad%zzsecret@localhost/db").unwrap_err();
    assert!(e.message.contains("password"), "{}", e.message);
    assert!(!e.message.contains("secret"), "{}", e.message);
}

#[test]
fn uri_socket_host() {
    let p = parse("postgresql:///shop?host=/var/run/pg&port=5433").unwrap();
    assert_eq!(p.host.as_deref(), Some("/var/run/pg"));
    assert_eq!(p.port, Some(5433));
    assert_eq!(p.dbname.as_deref(), Some("shop"));
    let p = parse("postgresql://%2Ftmp%2Fsock/shop").unwrap();
    assert_eq!(p.host.as_deref(), Some("/tmp/sock"));
    let c = p.to_config();
    assert!(
        matches!(&c.get_hosts()[0], postgres::config::Host::Unix(d) if d == Path::new("/tmp/sock"))
    );
}

#[test]
fn uri_ipv6() {
    let p = parse("postgres://u@[::1]:5433/db").unwrap();
    assert_eq!(p.host.as_deref(), Some("::1"));
    assert_eq!(p.port, Some(5433));
    assert_eq!(p.server(), "[::1]:5433");
    let p = parse("postgres://[fe80::1]/db").unwrap();
    assert_eq!(p.host.as_deref(), Some("fe80::1"));
    assert_eq!(p.port, None);
    assert!(parse("postgres://[::1/db").is_err());
    let c = parse("postgres://[::1]:5433/db").unwrap().to_config();
    assert!(matches!(&c.get_hosts()[0], postgres::config::Host::Tcp(h) if h == "::1"));
}

#[test]
fn uri_errors() {
    let e = parse("postgres://h/db?foo=1").unwrap_err();
    assert!(
        e.message.contains("unknown connection parameter \"foo\""),
        "{}",
        e.message
    );
    let e = parse("postgres://h/db?sslcrl=/x").unwrap_err();
    assert!(
        e.message
            .contains("\"sslcrl\" in the connection string is not supported"),
        "{}",
        e.message
    );
    let e = parse("postgres://h1,h2/db").unwrap_err();
    assert!(e.message.contains("several hosts"));
    let e = parse("postgres://h:notaport/db").unwrap_err();
    assert!(
        e.message.contains("invalid port \"notaport\""),
        "{}",
        e.message
    );
    let e = parse("mysql://u:pw@h/db").unwrap_err();
    assert!(e.message.contains("unsupported URL scheme"));
    assert!(!e.message.contains("pw"));
    assert_eq!(
        parse("postgres://h/db?ssl=true").unwrap().sslmode,
        Some(SslMode::Require)
    );
}

#[test]
fn conninfo_with_quotes_and_escapes() {
    let p = parse(
        "host=localhost  port = 5433 dbname='my shop' password='it\\'s a \\\\secret' user=a\\ b",
    )
    .unwrap();
    assert_eq!(p.host.as_deref(), Some("localhost"));
    assert_eq!(p.port, Some(5433));
    assert_eq!(p.dbname.as_deref(), Some("my shop"));
    assert_eq!(p.password.as_deref(), Some("it's a \\secret"));
    assert_eq!(p.user.as_deref(), Some("a b"));
    // Empty string and empty values mean "not given".
    assert_eq!(parse("").unwrap(), ConnParams::default());
    assert_eq!(parse("host='' dbname=x").unwrap().host, None);
    let p =
        parse("connect_timeout=10 application_name=hop sslmode=disable hostaddr=10.0.0.1 host=h")
            .unwrap();
    assert_eq!(p.connect_timeout, Some(10));
    assert_eq!(p.application_name.as_deref(), Some("hop"));
    assert_eq!(p.host.as_deref(), Some("10.0.0.1"));
}

#[test]
fn conninfo_errors_name_the_key_never_the_password() {
    let e = parse("host=h bogus=1 password=hunter2").unwrap_err();
    assert!(
        e.message.contains("unknown connection parameter \"bogus\""),
        "{}",
        e.message
    );
    assert!(e.hint.is_some());
    let e = parse("password='hunter2").unwrap_err();
    assert!(e.message.contains("unterminated"), "{}", e.message);
    assert!(!e.render().contains("hunter2"));
    let e = parse("hunter2").unwrap_err();
    assert!(!e.render().contains("hunter2"), "{}", e.render());
    let e = parse("connect_timeout=soon").unwrap_err();
    assert!(e.message.contains("connect_timeout"));
}

#[test]
fn every_libpq_sslmode_parses_and_bogus_is_refused() {
    for m in [
        SslMode::Disable,
        SslMode::Allow,
        SslMode::Prefer,
        SslMode::Require,
        SslMode::VerifyCa,
        SslMode::VerifyFull,
    ] {
        assert_eq!(parse(&format!("sslmode={m}")).unwrap().sslmode, Some(m));
        assert_eq!(
            parse(&format!("postgres://h/db?sslmode={m}"))
                .unwrap()
                .sslmode,
            Some(m)
        );
    }
    let e = parse("sslmode=bogus").unwrap_err();
    assert_eq!(
        e.message,
        "invalid sslmode \"bogus\" in the connection string"
    );
    assert!(e.hint.unwrap().contains("verify-full"));
    let e = ConnParams::from_env(&env_of(&[("PGHOST", "h"), ("PGSSLMODE", "bogus")])).unwrap_err();
    assert!(e.message.contains("in PGSSLMODE"), "{}", e.message);
    // PGSSLMODE also reaches a server named by a URL (libpq's rule).
    let mut p = parse("postgres://u@h/db").unwrap();
    let e = p
        .fill_defaults(&env_of(&[("HOME", "/nonexistent"), ("PGSSLMODE", "nope")]))
        .unwrap_err();
    assert!(e.message.contains("in PGSSLMODE"), "{}", e.message);
    let e = parse("channel_binding=maybe").unwrap_err();
    assert!(
        e.message.contains("invalid channel_binding"),
        "{}",
        e.message
    );
}

#[test]
fn from_env_none_without_connection_vars() {
    assert_eq!(ConnParams::from_env(&no_env()).unwrap(), None);
    // PGSSLMODE alone does not select a server.
    assert_eq!(
        ConnParams::from_env(&env_of(&[("PGSSLMODE", "disable")])).unwrap(),
        None
    );
    assert_eq!(
        ConnParams::from_env(&env_of(&[("PGHOST", "")])).unwrap(),
        None
    );
}

#[test]
fn from_env_reads_libpq_vars() {
    let env = env_of(&[
        ("PGHOST", "db"),
        ("PGPORT", "6000"),
        ("PGUSER", "u"),
        ("PGPASSWORD", "pw"),
        ("PGDATABASE", "d"),
        ("PGSSLMODE", "prefer"),
        ("PGCONNECT_TIMEOUT", "7"),
        ("PGAPPNAME", "app"),
    ]);
    let p = ConnParams::from_env(&env).unwrap().unwrap();
    assert_eq!(
        p,
        ConnParams {
            host: Some("db".into()),
            port: Some(6000),
            user: Some("u".into()),
            password: Some("pw".into()),
            dbname: Some("d".into()),
            sslmode: Some(SslMode::Prefer),
            connect_timeout: Some(7),
            application_name: Some("app".into()),
            ..Default::default()
        }
    );
    let p = ConnParams::from_env(&env_of(&[("PGHOSTADDR", "127.0.0.1")]))
        .unwrap()
        .unwrap();
    assert_eq!(p.host.as_deref(), Some("127.0.0.1"));
    let e = ConnParams::from_env(&env_of(&[("PGPORT", "x")])).unwrap_err();
    assert!(
        e.message.contains("invalid port \"x\" in PGPORT"),
        "{}",
        e.message
    );
}

#[test]
fn service_file_from_env_and_conninfo() {
    let dir = tempfile::tempdir().unwrap();
    let svc = write_file(
        dir.path(),
        "services.conf",
        "# comment\n[other]\nhost=wrong\n\n[shop]\nhost=svc-host\nport = 5555\ndbname=svcdb\nuser=svcuser\n[later]\nhost=wrong2\n",
        0o644,
    );
    let svc_s = svc.to_str().unwrap();
    // Service values come first; PG* variables only fill the rest (libpq).
    let env = env_of(&[
        ("PGSERVICEFILE", svc_s),
        ("PGSERVICE", "shop"),
        ("PGHOST", "env-host"),
        ("PGPASSWORD", "envpw"),
    ]);
    let p = ConnParams::from_env(&env).unwrap().unwrap();
    assert_eq!(p.host.as_deref(), Some("svc-host"));
    assert_eq!(p.port, Some(5555));
    assert_eq!(p.dbname.as_deref(), Some("svcdb"));
    assert_eq!(p.user.as_deref(), Some("svcuser"));
    assert_eq!(p.password.as_deref(), Some("envpw"));
    // service= in a conninfo: explicit keys win over the service.
    let env = env_of(&[("PGSERVICEFILE", svc_s)]);
    let p = ConnParams::parse_with_env("service=shop dbname=mine", &env).unwrap();
    assert_eq!(p.host.as_deref(), Some("svc-host"));
    assert_eq!(p.dbname.as_deref(), Some("mine"));
    let p = ConnParams::parse_with_env("postgres:///x?service=shop", &env).unwrap();
    assert_eq!(
        (p.host.as_deref(), p.dbname.as_deref()),
        (Some("svc-host"), Some("x"))
    );
    // Unknown service: error naming the service and the files searched.
    let e = ConnParams::parse_with_env("service=nope", &env).unwrap_err();
    assert!(
        e.message.contains("service \"nope\" not found"),
        "{}",
        e.message
    );
    assert!(e.message.contains(svc_s));
}

#[test]
fn service_file_search_order_and_errors() {
    let home = tempfile::tempdir().unwrap();
    let sys = tempfile::tempdir().unwrap();
    write_file(home.path(), ".pg_service.conf", "[a]\nhost=home-a\n", 0o600);
    write_file(
        sys.path(),
        "pg_service.conf",
        "[a]\nhost=sys-a\n[b]\nhost=sys-b\n",
        0o644,
    );
    let env = env_of(&[
        ("HOME", home.path().to_str().unwrap()),
        ("PGSYSCONFDIR", sys.path().to_str().unwrap()),
    ]);
    let host = |s: &str| ConnParams::parse_with_env(s, &env).unwrap().host;
    assert_eq!(host("service=a").as_deref(), Some("home-a"));
    assert_eq!(host("service=b").as_deref(), Some("sys-b"));
    write_file(
        home.path(),
        ".pg_service.conf",
        "[a]\nhost=x\nsslcrl=/k\n",
        0o600,
    );
    let e = ConnParams::parse_with_env("service=a", &env).unwrap_err();
    assert!(e.message.contains(".pg_service.conf:3"), "{}", e.message);
    assert!(e.message.contains("sslcrl"));
    // TLS settings come from a service too.
    write_file(
        home.path(),
        ".pg_service.conf",
        "[a]\nhost=x\nsslmode=verify-full\nsslrootcert=/ca.crt\nsslcert=/c\nsslkey=/k\nchannel_binding=require\n",
        0o600,
    );
    let p = ConnParams::parse_with_env("service=a", &env).unwrap();
    assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
    assert_eq!(p.sslrootcert.as_deref(), Some("/ca.crt"));
    assert_eq!(p.sslcert.as_deref(), Some("/c"));
    assert_eq!(p.sslkey.as_deref(), Some("/k"));
    assert_eq!(p.channel_binding, Some(ChannelBinding::Require));
    write_file(home.path(), ".pg_service.conf", "[a]\nservice=b\n", 0o600);
    let e = ConnParams::parse_with_env("service=a", &env).unwrap_err();
    assert!(e.message.contains("nested service"), "{}", e.message);
    write_file(home.path(), ".pg_service.conf", "[a]\nhost\n", 0o600);
    let e = ConnParams::parse_with_env("service=a", &env).unwrap_err();
    assert!(e.message.contains(":2: syntax error"), "{}", e.message);
}

#[test]
fn pgpass_matching_wildcards_and_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write_file(
        dir.path(),
        "pgpass",
        "# comment\n\
         db.example.com:5432:shop:alice:first\n\
         *:5432:*:alice:second\n\
         localhost:*:*:bob:sock\\:et\\\\pw\n\
         we\\:ird:5432:*:carol:has:colon\r\n\
         *:*:*:empty:\n",
        0o600,
    );
    let env = env_of(&[("PGPASSFILE", pass.to_str().unwrap())]);
    let look = |h: &str, port: u16, d: &str, u: &str| pgpass_lookup(&env, h, port, d, u);
    assert_eq!(
        look("db.example.com", 5432, "shop", "alice").as_deref(),
        Some("first")
    );
    assert_eq!(
        look("db.example.com", 5432, "other", "alice").as_deref(),
        Some("second")
    );
    assert_eq!(look("elsewhere", 5433, "shop", "alice"), None);
    assert_eq!(
        look("/var/run/postgresql", 6000, "x", "bob").as_deref(),
        Some("sock:et\\pw")
    );
    assert_eq!(
        look("localhost", 6000, "x", "bob").as_deref(),
        Some("sock:et\\pw")
    );
    assert_eq!(look("otherhost", 6000, "x", "bob"), None);
    assert_eq!(
        look("we:ird", 5432, "x", "carol").as_deref(),
        Some("has:colon")
    );
    assert_eq!(look("h", 1, "x", "empty"), None);
    assert_eq!(passfile_too_open(&env), None);
}

#[test]
fn pgpass_ignored_when_group_or_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write_file(dir.path(), ".pgpass", "*:*:*:*:pw\n", 0o644);
    let env = env_of(&[("HOME", dir.path().to_str().unwrap())]);
    assert_eq!(pgpass_lookup(&env, "h", 5432, "d", "u"), None);
    assert_eq!(passfile_too_open(&env), Some(pass.clone()));
    std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        pgpass_lookup(&env, "h", 5432, "d", "u").as_deref(),
        Some("pw")
    );
    // A missing file is no error either.
    let env = env_of(&[("PGPASSFILE", "/nonexistent/pgpass")]);
    assert_eq!(pgpass_lookup(&env, "h", 5432, "d", "u"), None);
}

#[test]
fn fill_defaults_and_passfile() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write_file(dir.path(), "pp", "localhost:5432:shop:*:frompass\n", 0o600);
    let env = env_of(&[("PGPASSFILE", pass.to_str().unwrap())]);
    let mut p = ConnParams {
        dbname: Some("shop".into()),
        ..Default::default()
    };
    p.fill_defaults(&env).unwrap();
    let dir_default = default_socket_dir();
    assert_eq!(p.host.as_deref(), Some(dir_default.as_str()));
    assert!(p.host.as_deref().is_some_and(|h| h.starts_with('/')));
    assert_eq!(p.port, Some(5432));
    assert!(p.user.is_some());
    assert_eq!(p.password.as_deref(), Some("frompass"));
    // An explicit password is kept; dbname defaults to the user.
    let mut p = ConnParams {
        password: Some("given".into()),
        ..Default::default()
    };
    p.fill_defaults(&env).unwrap();
    assert_eq!(p.password.as_deref(), Some("given"));
    assert_eq!(p.dbname, p.user);
}

#[test]
fn os_user_is_found() {
    let (name, _) = os_user().unwrap();
    assert!(!name.is_empty());
}

#[test]
fn child_env_describe_and_debug_hide_the_password() {
    let p = parse("postgres://u:topsecret@%2Fvar%2Frun%2Fpg/my%20shop?sslmode=prefer&connect_timeout=3&application_name=hop")
        .unwrap();
    assert_eq!(
        p.describe(),
        "host=/var/run/pg user=u dbname='my shop' sslmode=prefer"
    );
    assert!(!format!("{p:?}").contains("topsecret"));
    let env: HashMap<_, _> = p.child_env().into_iter().collect();
    assert_eq!(env["PGHOST"], "/var/run/pg");
    assert_eq!(env["PGUSER"], "u");
    assert_eq!(env["PGDATABASE"], "my shop");
    assert_eq!(env["PGPASSWORD"], "topsecret");
    assert_eq!(env["PGSSLMODE"], "prefer");
    assert_eq!(env["PGCONNECT_TIMEOUT"], "3");
    assert_eq!(env["PGAPPNAME"], "hop");
    assert!(!env.contains_key("PGPORT"));
    let no_pw = ConnParams {
        host: Some("h".into()),
        ..Default::default()
    };
    assert!(no_pw.child_env().iter().all(|(k, _)| k != "PGPASSWORD"));
    for (k, _) in p.child_env() {
        assert!(
            LIBPQ_ENV_VARS.contains(&k.as_str()),
            "{k} is not cleared first"
        );
    }
}

#[test]
fn to_config_maps_everything() {
    let p = parse("host=h port=6000 user=u password=pw dbname=d sslmode=disable connect_timeout=1 application_name=a").unwrap();
    let c = p.to_config();
    assert!(matches!(&c.get_hosts()[0], postgres::config::Host::Tcp(h) if h == "h"));
    assert_eq!(c.get_ports(), &[6000]);
    assert_eq!(c.get_user(), Some("u"));
    assert_eq!(c.get_password(), Some(&b"pw"[..]));
    assert_eq!(c.get_dbname(), Some("d"));
    assert_eq!(c.get_connect_timeout(), Some(&Duration::from_secs(2)));
    assert_eq!(c.get_application_name(), Some("a"));
    let c = ConnParams::default().to_config();
    assert_eq!(c.get_ports(), &[5432]);
    assert!(matches!(&c.get_hosts()[0], postgres::config::Host::Unix(_)));
    assert_eq!(
        parse("connect_timeout=0")
            .unwrap()
            .to_config()
            .get_connect_timeout(),
        None
    );
}

fn input<'a>(env: &'a dyn Fn(&str) -> Option<String>) -> ResolveInput<'a> {
    ResolveInput {
        db_url_flag: None,
        database_flag: None,
        git_url: None,
        git_name: None,
        project_db_name: None,
        default_name: "default",
        env,
    }
}

#[test]
fn resolve_order_of_sources() {
    let env = env_of(&[
        ("HOME", "/nonexistent-hop-test-home"),
        ("HOP_DATABASE_URL", "postgres://envhost/envdb"),
        ("PGHOST", "pghost"),
        ("PGDATABASE", "pgdb"),
    ]);
    let mut i = input(&env);
    i.db_url_flag = Some("postgres://flaghost/flagdb");
    i.git_url = Some("postgres://githost/gitdb");
    let r = resolve(&i).unwrap();
    assert_eq!(r.source, Source::Flag);
    assert_eq!(r.dbname, "flagdb");
    let p = r.params.unwrap();
    assert_eq!(p.host.as_deref(), Some("flaghost"));
    assert_eq!(p.dbname.as_deref(), Some("flagdb"));
    assert_eq!(p.port, Some(5432));
    assert!(p.user.is_some());

    i.db_url_flag = None;
    let r = resolve(&i).unwrap();
    assert_eq!((r.source, r.dbname.as_str()), (Source::HopEnv, "envdb"));

    let env2 = env_of(&[
        ("HOP_DATABASE_URL", ""),
        ("PGHOST", "pghost"),
        ("PGDATABASE", "pgdb"),
    ]);
    let mut i = input(&env2);
    i.git_url = Some("host=githost");
    i.git_name = Some("gitname");
    let r = resolve(&i).unwrap();
    assert_eq!(
        (r.source, r.dbname.as_str()),
        (Source::GitConfig, "gitname")
    );
    assert_eq!(r.params.unwrap().host.as_deref(), Some("githost"));

    i.git_url = None;
    let r = resolve(&i).unwrap();
    assert_eq!(r.source, Source::Libpq);
    assert_eq!(r.dbname, "gitname"); // hop.database.name beats PGDATABASE
    i.git_name = None;
    i.project_db_name = Some("projdb");
    let r = resolve(&i).unwrap();
    assert_eq!(r.dbname, "pgdb"); // PGDATABASE beats .hop/config
    assert_eq!(r.params.unwrap().host.as_deref(), Some("pghost"));

    let env3 = no_env();
    let mut i = input(&env3);
    let r = resolve(&i).unwrap();
    assert_eq!(
        (r.source, r.params, r.dbname.as_str()),
        (Source::Embedded, None, "default")
    );
    i.project_db_name = Some("projdb");
    assert_eq!(resolve(&i).unwrap().dbname, "projdb");
    i.git_name = Some("gitname");
    assert_eq!(resolve(&i).unwrap().dbname, "gitname");
    i.database_flag = Some("flagname");
    assert_eq!(resolve(&i).unwrap().dbname, "flagname");
}

#[test]
fn resolve_dbname_rules() {
    let env = env_of(&[
        ("HOME", "/nonexistent-hop-test-home"),
        ("PGDATABASE", "pgdb"),
    ]);
    let mut i = input(&env);
    // A URL without dbname: PGDATABASE does not apply to a URL source.
    i.db_url_flag = Some("postgres://h");
    i.project_db_name = Some("projdb");
    assert_eq!(resolve(&i).unwrap().dbname, "projdb");
    i.database_flag = Some("explicit");
    i.db_url_flag = Some("postgres://h/urldb");
    let r = resolve(&i).unwrap();
    assert_eq!(r.dbname, "explicit");
    assert_eq!(r.params.unwrap().dbname.as_deref(), Some("explicit"));
}

#[test]
fn resolve_uses_the_passfile_and_names_the_source_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write_file(dir.path(), "pp", "h:5432:db:u:filepw\n", 0o600);
    let env = env_of(&[("PGPASSFILE", pass.to_str().unwrap())]);
    let mut i = input(&env);
    i.db_url_flag = Some("postgres://u@h/db");
    let r = resolve(&i).unwrap();
    assert_eq!(r.params.unwrap().password.as_deref(), Some("filepw"));
    // PGPASSWORD before the password file, for a URL without one
    // (--db-url, HOP_DATABASE_URL or hop.database.url alike).
    let env2 = env_of(&[
        ("PGPASSFILE", pass.to_str().unwrap()),
        ("PGPASSWORD", "envpw"),
    ]);
    let mut i2 = input(&env2);
    i2.git_url = Some("postgres://u@h/db");
    let r = resolve(&i2).unwrap();
    assert_eq!(r.params.unwrap().password.as_deref(), Some("envpw"));
    i2.git_url = Some("postgres://u:urlpw@h/db");
    let r = resolve(&i2).unwrap();
    assert_eq!(r.params.unwrap().password.as_deref(), Some("urlpw"));

    i.db_url_flag = Some("postgres://u:hunter2@h/db?nope=1");
    let e = resolve(&i).unwrap_err();
    assert_eq!(e.kind, crate::error::Kind::Usage);
    assert!(
        e.message
            .starts_with("--db-url: unknown connection parameter \"nope\""),
        "{}",
        e.message
    );
    assert!(!e.render().contains("hunter2"));
    i.db_url_flag = Some(" ");
    assert!(resolve(&i).is_err());

    let env = env_of(&[("HOP_DATABASE_URL", "host=h port=0")]);
    let e = resolve(&input(&env)).unwrap_err();
    assert!(
        e.message.starts_with("HOP_DATABASE_URL: invalid port"),
        "{}",
        e.message
    );
    assert_eq!(Source::Libpq.to_string(), "PG* environment");
    assert_eq!(Source::GitConfig.to_string(), "git config hop.database.url");
}

#[test]
fn connect_to_an_empty_socket_dir_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let host = dir.path().to_str().unwrap().to_string();
    let p = ConnParams {
        host: Some(host.clone()),
        port: Some(5432),
        user: Some("u".into()),
        password: Some("hunter2".into()),
        dbname: Some("d".into()),
        ..Default::default()
    };
    let e = connect(&p).err().unwrap();
    assert!(
        e.message
            .starts_with(&format!("cannot connect to PostgreSQL at {host}:5432: ")),
        "{}",
        e.message
    );
    assert!(e.hint.is_some());
    assert!(!e.render().contains("hunter2"));
}

#[test]
fn connect_refused_on_tcp() {
    // A port that was just free: bind, note it, release it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = ConnParams {
        host: Some("127.0.0.1".into()),
        port: Some(port),
        user: Some("u".into()),
        ..Default::default()
    };
    let e = connect(&p).err().unwrap();
    assert_eq!(
        e.message,
        format!("cannot connect to PostgreSQL at 127.0.0.1:{port}: connection refused")
    );
    // Every mode that speaks TLS reaches the same refused port.
    for mode in [SslMode::Require, SslMode::Prefer, SslMode::Allow] {
        let p = ConnParams {
            sslmode: Some(mode),
            ..p.clone()
        };
        let e = connect(&p).err().unwrap();
        assert!(e.message.ends_with("connection refused"), "{}", e.message);
    }
}

/// `complete`'s environment: HOME (for `~/.postgresql/`) and nothing else.
fn home_env(home: &Path) -> impl Fn(&str) -> Option<String> + use<> {
    env_of(&[("HOME", home.to_str().unwrap())])
}

fn tcp(extra: &str) -> ConnParams {
    parse(&format!("host=db.example.com user=u dbname=d {extra}")).unwrap()
}

#[test]
fn tls_defaults_come_from_the_home_postgresql_folder() {
    let home = tempfile::tempdir().unwrap();
    let env = home_env(home.path());
    // Nothing there: prefer, no verification, no client certificate.
    let mut p = tcp("");
    p.fill_defaults(&env).unwrap();
    assert_eq!((p.sslrootcert.as_ref(), p.sslcert.as_ref()), (None, None));
    let e = tcp("sslmode=verify-ca").fill_defaults(&env).unwrap_err();
    assert!(
        e.message.contains("needs a root certificate"),
        "{}",
        e.message
    );
    // root.crt, postgresql.crt and postgresql.key are used once they exist.
    let pg = home.path().join(".postgresql");
    std::fs::create_dir(&pg).unwrap();
    write_file(&pg, "root.crt", "x", 0o644);
    write_file(&pg, "postgresql.crt", "x", 0o644);
    let key = write_file(&pg, "postgresql.key", "x", 0o600);
    let mut p = tcp("sslmode=verify-full");
    p.fill_defaults(&env).unwrap();
    assert_eq!(
        p.sslrootcert,
        Some(pg.join("root.crt").display().to_string())
    );
    assert_eq!(
        p.sslcert,
        Some(pg.join("postgresql.crt").display().to_string())
    );
    assert_eq!(p.sslkey, Some(key.display().to_string()));
    // The children get the same files.
    let child: HashMap<_, _> = p.child_env().into_iter().collect();
    assert_eq!(child["PGSSLMODE"], "verify-full");
    assert_eq!(child["PGSSLROOTCERT"], p.sslrootcert.clone().unwrap());
    assert_eq!(child["PGSSLKEY"], key.display().to_string());
    // A key others can read is refused, as libpq does.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = tcp("").fill_defaults(&env).unwrap_err();
    assert!(
        e.message.contains("has group or world access"),
        "{}",
        e.message
    );
    std::fs::remove_file(&key).unwrap();
    let e = tcp("").fill_defaults(&env).unwrap_err();
    assert!(e.message.contains("private key file"), "{}", e.message);
}

#[test]
fn tls_files_given_must_exist_and_sockets_and_disable_check_nothing() {
    let home = tempfile::tempdir().unwrap();
    let env = home_env(home.path());
    for (extra, needle) in [
        (
            "sslrootcert=/nonexistent/ca.crt",
            "root certificate file \"/nonexistent/ca.crt\" does not exist",
        ),
        (
            "sslcert=/nonexistent/c.crt",
            "client certificate file \"/nonexistent/c.crt\" does not exist",
        ),
        ("sslmode=verify-full", "needs a root certificate"),
        (
            "sslrootcert=system sslmode=require",
            "weak sslmode \"require\" may not be used with sslrootcert=system",
        ),
        (
            "sslmode=disable channel_binding=require",
            "channel_binding=require needs TLS",
        ),
    ] {
        let e = tcp(extra).fill_defaults(&env).unwrap_err();
        assert!(e.message.contains(needle), "{extra}: {}", e.message);
        assert!(e.hint.is_some());
    }
    // TLS is not used on a Unix socket, nor with disable: nothing to check.
    let mut p = parse("host=/tmp sslmode=verify-full sslrootcert=/nonexistent").unwrap();
    p.fill_defaults(&env).unwrap();
    let mut p = tcp("sslmode=disable sslrootcert=/nonexistent");
    p.fill_defaults(&env).unwrap();
}

#[test]
fn sslrootcert_system_means_verify_full_with_the_system_bundle() {
    let home = tempfile::tempdir().unwrap();
    let bundle = write_file(home.path(), "bundle.pem", "x", 0o644);
    let env = env_of(&[
        ("HOME", home.path().to_str().unwrap()),
        ("SSL_CERT_FILE", bundle.to_str().unwrap()),
    ]);
    let mut p = tcp("sslrootcert=system");
    p.fill_defaults(&env).unwrap();
    assert_eq!(p.sslmode, Some(SslMode::VerifyFull));
    // A file every libpq reads (before 16, libpq does not know "system").
    assert_eq!(p.sslrootcert, Some(bundle.display().to_string()));
    let mut p = tcp("sslrootcert=system sslmode=verify-full");
    p.fill_defaults(&env).unwrap();
}

#[test]
fn pgssl_variables_fill_what_a_url_left_unset() {
    let home = tempfile::tempdir().unwrap();
    let ca = write_file(home.path(), "ca.crt", "x", 0o644);
    let env = env_of(&[
        ("HOME", home.path().to_str().unwrap()),
        ("PGSSLMODE", "verify-ca"),
        ("PGSSLROOTCERT", ca.to_str().unwrap()),
        ("PGCHANNELBINDING", "require"),
    ]);
    let mut p = parse("postgres://u@db/d").unwrap();
    p.fill_defaults(&env).unwrap();
    assert_eq!(p.sslmode, Some(SslMode::VerifyCa));
    assert_eq!(p.sslrootcert.as_deref(), ca.to_str());
    assert_eq!(p.channel_binding, Some(ChannelBinding::Require));
    // The URL's own settings win.
    let mut p = parse("postgres://u@db/d?sslmode=require").unwrap();
    p.fill_defaults(&env).unwrap();
    assert_eq!(p.sslmode, Some(SslMode::Require));
    // And a clone stores them, never the password.
    let p = parse("postgres://u:pw@db/d?sslmode=verify-full&sslrootcert=/ca.crt&sslcert=/c&sslkey=/k&channel_binding=require").unwrap();
    let stored = p.to_conninfo();
    assert_eq!(
        stored,
        "host=db user=u dbname=d sslmode=verify-full sslrootcert=/ca.crt sslcert=/c sslkey=/k channel_binding=require"
    );
    assert_eq!(parse(&stored).unwrap().password, None);
}
