//! The reference page `githop(7)`: every setting, environment variable and
//! exit code of git-hop, in one place, rendered as roff.
//!
//! `git help hop` opens the guide `githop` in section 7, so install.sh
//! installs this page as `share/man/man7/githop.7`; the committed copy in
//! `man/` is compared with [`render`] by a test (like the pages of each
//! command, see `crate::man`). The content comes from the code and from
//! docs/settings.md, docs/connection.md, docs/hooks.md and
//! docs/production.md; tests check that every `hop.*` key the code reads,
//! every `.hop/config` key it accepts and every variable it names is here.
//!
//! Text uses one markup: `code` (between backticks) is set in bold.

/// One documented name: a setting, a key or a variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub name: &'static str,
    /// What applies when it is unset (markup allowed), if anything does.
    pub default: Option<&'static str>,
    /// What it means (markup allowed).
    pub text: &'static str,
}

const fn entry(name: &'static str, default: Option<&'static str>, text: &'static str) -> Entry {
    Entry {
        name,
        default,
        text,
    }
}

/// The per-clone settings: git config `hop.*`, never committed
/// (docs/settings.md).
pub const CLONE_SETTINGS: &[Entry] = &[
    entry(
        "hop.database.url",
        Some(
            "the libpq variables when one names a server (see `ENVIRONMENT`), else the clone's embedded cluster",
        ),
        "The PostgreSQL server of this clone, and optionally its database: a URL such as \
         `postgres://user@host:5432/dbname` or libpq `key=value` pairs (TLS settings such as \
         `sslmode` included). `--db-url` and `HOP_DATABASE_URL` come before it, the libpq \
         variables after it. `git hop-release clone --db-url` stores it. It never holds a \
         password: one comes from `PGPASSWORD` or the password file (docs/connection.md).",
    ),
    entry(
        "hop.database.name",
        Some(
            "`PGDATABASE` (when the libpq variables name the server), else `[database] name` of `.hop/config`, else the package name",
        ),
        "The name of this clone's database, used when neither `--database` nor the server's URL \
         names one. `git hop-release clone --database` stores it.",
    ),
    entry(
        "hop.production",
        Some("`false`"),
        "A boolean: this clone is a production server (`git hop-release clone --production` \
         sets it). Development commands are refused, the database is never rebuilt from a \
         snapshot, it changes only through `git hop-release upgrade` (with a backup), its \
         `pre-push` hook refuses every push, and its hooks refuse commits on `ho-prod` and \
         tags of its own (docs/production.md, docs/hooks.md).",
    ),
    entry(
        "hop.backupDir",
        Some("`.git/hop/backups`"),
        "Where `git hop-release upgrade` writes the `pg_dump -Fc` backup it takes before \
         changing a production database, and where `git hop-release restore` finds it. A \
         relative path is relative to the work tree's root. Backups are readable by their \
         owner only.",
    ),
    entry(
        "hop.prePushTests",
        Some("`false`"),
        "A boolean: when true, the `pre-push` hook validates a pushed patch branch as \
         `git hop-patch merge` would (merged with its release, fresh database, tests), \
         without staging it, and refuses the push if that fails.",
    ),
    entry(
        "hop.lockTimeout",
        Some("`2s`"),
        "The `lock_timeout` of every statement of an upgrade: how long one statement waits \
         for a lock, so the application's queries never queue behind it for longer. A \
         statement that did not get its lock rolls the upgrade back, which retries within \
         `--lock-wait`. Written `500ms`, `2s`, `1min`, or a number of milliseconds; \
         anything else is an error.",
    ),
    entry(
        "hop.lockExpiry",
        Some("`120`"),
        "Seconds a release's origin lock (the merge queue of `merge`, `promote` and `sync`) \
         lives without renewal; a running command renews it every third of that time, and \
         another clone takes over a lock whose expiry passed. A whole number of at least `3`; \
         any other value is ignored and the default applies (docs/releases.md, \
         \"The merge queue\").",
    ),
    entry(
        "hop.templateCache",
        Some("`4`"),
        "How many template databases this clone keeps to make rebuilds fast (`apply`, the \
         validation of `merge`): a number, `0` for none, in which case every rebuild replays \
         the whole release (docs/engine.md). Production clones keep none.",
    ),
];

/// A section of `.hop/config` and its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TomlSection {
    pub name: &'static str,
    pub keys: &'static [Entry],
}

/// The committed project file `.hop/config` (docs/settings.md).
pub const PROJECT_SETTINGS: &[TomlSection] = &[
    TomlSection {
        name: "project",
        keys: &[
            entry(
                "package",
                None,
                "Required. The Python package of the generated code (the folder `./<package>` \
                 and its import name): a lower-case Python identifier of at most 63 \
                 characters.",
            ),
            entry(
                "min_version",
                Some("none: any version may work on it"),
                "The oldest git-hop that may work on this repository, a semantic version such \
                 as `0.1.0`; an older git-hop refuses every command on it. `git hop-release \
                 init` writes its own version.",
            ),
        ],
    },
    TomlSection {
        name: "database",
        keys: &[entry(
            "name",
            Some("the package name"),
            "The default database name of a clone: letters, digits, `_` and `-`, not starting \
             with a digit, at most 63 characters. `hop.database.name`, `--database` and a \
             database named by the server's URL come first.",
        )],
    },
    TomlSection {
        name: "tests",
        keys: &[entry(
            "command",
            Some("no tests are run (`git hop-release init` writes `pytest`)"),
            "The project's test command, run by every validation (`merge`, `promote`, `sync`, \
             `apply` of a release, the `pre-push` hook with `hop.prePushTests`) with `sh -c` \
             from the work tree's root, with the database under test in the `PG*` variables \
             and `HALFORM_CONF_DIR`, and `HOP_TESTING=1`. It must not be empty.",
        )],
    },
    TomlSection {
        name: "codegen",
        keys: &[entry(
            "python",
            Some("`true`"),
            "A boolean: whether git-hop generates the half_orm package and the test skeletons \
             after each rebuild of the database (docs/codegen.md).",
        )],
    },
    TomlSection {
        name: "lint",
        keys: &[entry(
            "deny",
            Some("`[]`: every finding is a warning"),
            "The lint rules (squawk's names, such as `require-concurrent-index-creation` or \
             `changing-column-type`; `git hop-patch lint --help` and docs/patches.md list them) \
             whose findings fail `apply`, `merge` and the validations, and make \
             `git hop-patch lint` exit 1, instead of warning.",
        )],
    },
];

/// Variables git-hop reads.
pub const ENV_READ: &[Entry] = &[
    entry(
        "HOP_DATABASE_URL",
        None,
        "The server (and optionally the database), as a URL or `key=value` pairs: after \
         `--db-url`, before `hop.database.url` and the libpq variables. An empty value counts \
         as unset.",
    ),
    entry(
        "HOP_PG_BINDIR",
        None,
        "The folder of PostgreSQL's programs (`initdb`, `pg_ctl`, `postgres`, and first \
         choice for `psql`, `pg_dump`, `pg_restore`). When set, `initdb` must be there. \
         Otherwise they are looked for with `pg_config --bindir`, in the newest \
         `/usr/lib/postgresql/<N>/bin`, then on `PATH`.",
    ),
    entry(
        "HOP_PG_RUN_AS",
        Some("`postgres`, else `nobody`"),
        "When git-hop runs as root: the unprivileged user that runs the embedded cluster \
         (PostgreSQL refuses to run as root).",
    ),
    entry(
        "HALFORM_CONF_DIR",
        Some("`/etc/half_orm`"),
        "Read by `git hop-release import`: the folder of half-orm-dev's connection files \
         (docs/import.md).",
    ),
    entry(
        "SSL_CERT_FILE",
        None,
        "The system's CA bundle that `sslrootcert=system` means; without it, the \
         distribution's bundle.",
    ),
    entry(
        "HOME",
        None,
        "Where `~/.pgpass`, `~/.pg_service.conf` and `~/.postgresql/` (root certificate, \
         client certificate and key) are looked for.",
    ),
    entry(
        "USER, LOGNAME",
        None,
        "The user name recorded in a release's origin lock (`user@host`).",
    ),
];

/// libpq's variables that git-hop honours itself (docs/connection.md).
pub const ENV_LIBPQ: &[Entry] = &[
    entry(
        "PGHOST, PGHOSTADDR, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSERVICE",
        None,
        "When any of them is set (and nothing before names a server), they name the server, \
         as in libpq; `PGDATABASE` names the database after `hop.database.name`. \
         `PGPASSWORD` also serves a server named by a URL without a password.",
    ),
    entry(
        "PGCONNECT_TIMEOUT, PGAPPNAME",
        None,
        "With the variables above: the connection timeout and the application name.",
    ),
    entry(
        "PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGCHANNELBINDING",
        None,
        "The TLS settings a URL or service left unset, whatever named the server.",
    ),
    entry("PGPASSFILE", Some("`~/.pgpass`"), "The password file."),
    entry(
        "PGSERVICEFILE, PGSYSCONFDIR",
        Some("`~/.pg_service.conf`, then `pg_service.conf` in `PGSYSCONFDIR`"),
        "Where a `service=` key or `PGSERVICE` is looked up.",
    ),
];

/// Variables git-hop sets for the programs it starts.
pub const ENV_SET: &[Entry] = &[
    entry(
        "HOP_TESTING",
        None,
        "Set to `1` for `[tests] command`, so a project's tests can tell they run under git-hop.",
    ),
    entry(
        "HALFORM_CONF_DIR",
        None,
        "For the tests, the `*.py` steps of patches and `git hop-release env`: a folder \
         holding a half_orm config, named after the package, that points at the database in \
         use (never a password).",
    ),
    entry(
        "PG*",
        None,
        "`psql`, `pg_dump`, `pg_restore`, the tests and the `*.py` steps get the resolved \
         server only as `PG*` variables (the inherited libpq variables are removed first): a \
         password never reaches a command line.",
    ),
];

/// Variables between git-hop and its own hooks: not to be set by hand.
pub const ENV_INTERNAL: &[Entry] = &[
    entry(
        "GIT_HOP_INTERNAL",
        None,
        "Set on every git command git-hop runs, so its hooks let git-hop's own work through.",
    ),
    entry(
        "GIT_HOP_INTERNAL_PUSH",
        None,
        "Set on git-hop's own `git push`, which the `pre-push` hook lets through to \
         protected refs.",
    ),
    entry(
        "GIT_HOP_HOOK_REST",
        None,
        "Set by git-hop's hook blocks when they run the rest of a hook file.",
    ),
];

/// The exit codes of both binaries (`crate::error::Kind`, `crate::cli`).
pub const EXIT_CODES: &[Entry] = &[
    entry(
        "0",
        None,
        "Success, also when the goal was already reached (an `upgrade` of an up-to-date \
         database, `hooks install` of installed hooks). `-h`, `--help` and `--version` too.",
    ),
    entry(
        "1",
        None,
        "Failure: the command could not do its job. It prints an `error:` line and a `hint:` \
         line on standard error; a command that fails leaves origin, the clone and the \
         database as they were.",
    ),
    entry(
        "2",
        None,
        "Usage error: the command line itself was wrong (an unknown option, a missing or \
         invalid argument).",
    ),
];

/// The file name of the page, in section 7.
pub const FILE_NAME: &str = "githop.7";

/// The page as roff. Deterministic: no date, nothing from the environment.
pub fn render() -> String {
    let mut r = Roff::default();
    r.raw(&format!(
        ".TH GITHOP 7 \"\" \"git-hop {}\" \"git-hop Manual\"",
        env!("CARGO_PKG_VERSION")
    ));
    // No hyphenation: names and values stay whole, searchable in the pager.
    r.raw(".nh");
    r.section("NAME");
    r.raw("githop \\- git\\-hop's settings, environment variables and exit codes");

    r.section("SYNOPSIS");
    r.lines(&[
        "`git help hop`, `man githop`",
        "`git config hop.<name> <value>` (per clone, never committed)",
        "`.hop/config` (per project, committed)",
    ]);

    r.section("DESCRIPTION");
    r.para(
        "git-hop is two git subcommands: `git hop-patch`, a developer's daily work on one \
         patch, and `git hop-release`, project set-up, releases, production and the \
         database. This page lists what configures them: the per-clone git settings, the \
         project's `.hop/config`, the environment variables, and their exit codes. Each \
         command's options are on its own page: git-hop-patch(1), git-hop-release(1), \
         git-hop-release-clone(1) and so on (`git hop-patch merge --help`).",
    );

    r.section("PER-CLONE SETTINGS");
    r.para(
        "Set with `git config hop.<name> <value>` in a clone: they live in its `.git/config` \
         and are never committed. Booleans take git's spellings (`true`, `yes`, `on`, `1`; \
         `false`, `no`, `off`, `0`). An invalid value is an error naming the key, except for \
         `hop.lockExpiry`.",
    );
    r.entries(CLONE_SETTINGS);

    r.section("PROJECT SETTINGS");
    r.para(
        "`.hop/config` is a TOML file at the work tree's root, committed, written by `git \
         hop-release init` and read by every command. Unknown sections and keys are refused \
         with the file, line and column.",
    );
    for s in PROJECT_SETTINGS {
        r.subsection(&format!("[{}]", s.name));
        r.entries(s.keys);
    }

    r.section("ENVIRONMENT");
    r.para("An empty variable counts as unset.");
    r.subsection("Read by git-hop");
    r.entries(ENV_READ);
    r.subsection("libpq variables");
    r.para(
        "git-hop reads these itself, for its own connections and for the `psql`, `pg_dump` \
         and `pg_restore` it starts (docs/connection.md). The server is the first of \
         `--db-url`, `HOP_DATABASE_URL`, `hop.database.url`, these variables, and else the \
         clone's embedded cluster, a private PostgreSQL under `.git/hop/pg` on a Unix socket.",
    );
    r.entries(ENV_LIBPQ);
    r.subsection("Set for the programs git-hop starts");
    r.entries(ENV_SET);
    r.subsection("Internal");
    r.para("Between git-hop and its own hooks; do not set them.");
    r.entries(ENV_INTERNAL);

    r.section("EXIT STATUS");
    r.entries(EXIT_CODES);

    r.section("FILES");
    r.entries(&[
        entry(
            ".hop/config",
            None,
            "The project's settings (see `PROJECT SETTINGS`).",
        ),
        entry(
            ".git/hop/",
            None,
            "Per clone, never committed: the embedded cluster (`pg/`), backups (`backups/`, \
             unless `hop.backupDir` says otherwise), validation worktrees and caches.",
        ),
    ]);

    r.section("SEE ALSO");
    r.raw(
        "\\fBgit\\-hop\\-patch\\fR(1), \\fBgit\\-hop\\-release\\fR(1), \\fBgit\\-config\\fR(1), \\fBpsql\\fR(1)",
    );
    r.para(
        "The design pages in the `docs/` folder of git-hop's source tree: settings.md, \
         connection.md, production.md, hooks.md.",
    );
    r.out
}

/// A roff writer: each call ends on a new line, so requests always start
/// a line and text never does with `.` or `'`.
#[derive(Default)]
struct Roff {
    out: String,
}

impl Roff {
    fn raw(&mut self, line: &str) {
        self.out.push_str(line);
        self.out.push('\n');
    }

    fn text(&mut self, text: &str) {
        let t = inline(text);
        if t.starts_with('.') || t.starts_with('\'') {
            self.out.push_str("\\&");
        }
        self.raw(&t);
    }

    fn section(&mut self, title: &str) {
        self.raw(&format!(".SH \"{}\"", escape(title)));
    }

    fn subsection(&mut self, title: &str) {
        self.raw(&format!(".SS \"{}\"", escape(title)));
    }

    fn para(&mut self, text: &str) {
        self.raw(".PP");
        self.text(text);
    }

    /// Lines kept apart (no filling).
    fn lines(&mut self, lines: &[&str]) {
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                self.raw(".br");
            }
            self.text(line);
        }
    }

    fn entries(&mut self, entries: &[Entry]) {
        for e in entries {
            self.raw(".TP");
            self.raw(&format!("\\fB{}\\fR", escape(e.name)));
            self.text(e.text);
            if let Some(d) = e.default {
                self.text(&format!("Default: {d}."));
            }
        }
    }
}

/// Escapes text for roff: backslashes and hyphens (so `--db-url` is typed
/// with ASCII hyphens, searchable and copyable).
fn escape(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// [`escape`], and `code` set in bold.
fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str("\\fB");
            out.push_str(&escape(part));
            out.push_str("\\fR");
        } else {
            out.push_str(&escape(part));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::ProjectConfig;
    use std::path::Path;

    #[test]
    fn page_is_deterministic_and_titled_without_date() {
        let page = render();
        assert_eq!(page, render());
        assert!(
            page.starts_with(&format!(
                ".TH GITHOP 7 \"\" \"git-hop {}\"",
                env!("CARGO_PKG_VERSION")
            )),
            "{page}"
        );
        for section in ["NAME", "PER-CLONE SETTINGS", "ENVIRONMENT", "EXIT STATUS"] {
            assert!(
                page.contains(&format!(".SH \"{}\"\n", escape(section))),
                "{section}"
            );
        }
        // Text lines never start a request by accident; markup is balanced.
        for line in page.lines() {
            assert!(!line.starts_with('\'') && !line.starts_with(". "), "{line}");
            assert_eq!(
                line.matches("\\fB").count(),
                line.matches("\\fR").count(),
                "{line}"
            );
        }
        assert!(!page.contains('`'), "unbalanced backtick");
    }

    #[test]
    fn every_entry_is_on_the_page() {
        let page = render();
        let all = CLONE_SETTINGS
            .iter()
            .chain(PROJECT_SETTINGS.iter().flat_map(|s| s.keys))
            .chain(ENV_READ)
            .chain(ENV_LIBPQ)
            .chain(ENV_SET)
            .chain(ENV_INTERNAL)
            .chain(EXIT_CODES);
        for e in all {
            assert!(
                page.contains(&format!("\\fB{}\\fR\n", escape(e.name))),
                "{}",
                e.name
            );
        }
    }

    #[test]
    fn exit_codes_match_the_error_kinds() {
        use crate::error::Error;
        let codes: Vec<&str> = EXIT_CODES.iter().map(|e| e.name).collect();
        assert_eq!(codes, ["0", "1", "2"]);
        assert_eq!(Error::new("x").exit_code().to_string(), codes[1]);
        assert_eq!(Error::usage("x").exit_code().to_string(), codes[2]);
    }

    /// The names serde expects where `text` has an unknown key
    /// (`deny_unknown_fields` lists them in its error).
    fn expected_keys(text: &str) -> Vec<String> {
        let err = ProjectConfig::parse(Path::new(".hop/config"), text).unwrap_err();
        let msg = err.message;
        let (_, expected) = msg
            .split_once("expected")
            .unwrap_or_else(|| panic!("{msg}"));
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    /// Every section and key `.hop/config` accepts is documented, and every
    /// documented one is accepted.
    #[test]
    fn project_settings_match_the_parser() {
        let sections: Vec<&str> = PROJECT_SETTINGS.iter().map(|s| s.name).collect();
        let mut accepted = expected_keys("[project]\npackage = \"x\"\n[zz_unknown]\n");
        accepted.sort();
        let mut documented: Vec<String> = sections.iter().map(|s| s.to_string()).collect();
        documented.sort();
        assert_eq!(accepted, documented);

        let mut full = String::new();
        for s in PROJECT_SETTINGS {
            full.push_str(&format!("[{}]\n", s.name));
            let mut keys: Vec<String> = s.keys.iter().map(|k| k.name.to_owned()).collect();
            keys.sort();
            let mut text = format!("[{}]\nzz_unknown = 1\n", s.name);
            if s.name != "project" {
                text = format!("[project]\npackage = \"x\"\n{text}");
            }
            let mut accepted = expected_keys(&text);
            accepted.sort();
            assert_eq!(accepted, keys, "[{}]", s.name);
            for k in s.keys {
                let value = match k.name {
                    "package" => "\"x\"",
                    "min_version" => "\"0.0.1\"",
                    "name" => "\"x\"",
                    "command" => "\"pytest\"",
                    "python" => "true",
                    "deny" => "[\"changing-column-type\"]",
                    other => panic!("no sample value for {other}"),
                };
                full.push_str(&format!("{} = {value}\n", k.name));
            }
        }
        ProjectConfig::parse(Path::new(".hop/config"), &full).unwrap();
    }
}
