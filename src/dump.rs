//! A `pg_dump` of a production database given to `git hop-patch apply
//! --from-dump` (docs/patches.md, "Trying a patch on real data"): custom
//! format (`pg_dump -Fc`) or plain SQL. [`Dump::open`] reads it whole once,
//! before any database is touched: it must be complete, and its
//! `half_orm_meta.hop_release` rows give the version it is at.
//! [`Dump::restore`] loads it into an empty database, without the
//! production owners and privileges (`--no-owner --no-privileges`), in one
//! transaction.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::db::conn::ConnParams;
use crate::db::psql::Client;
use crate::error::{Error, Result};
use crate::version::Version;

/// The first bytes of a custom-format dump.
const CUSTOM_MAGIC: &[u8] = b"PGDMP";
/// The second line of a plain dump (after `--`), and its last.
const PLAIN_START: &str = "-- PostgreSQL database dump";
const PLAIN_END: &str = "-- PostgreSQL database dump complete";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Custom,
    Plain,
}

/// A dump file, read and checked.
#[derive(Debug)]
pub struct Dump {
    pub path: PathBuf,
    pub format: Format,
    /// The database's version: its greatest `hop_release` version.
    pub version: Version,
}

impl Dump {
    /// Reads `path` and checks that it is a complete dump of a git-hop
    /// database; changes nothing.
    pub fn open(path: &Path) -> Result<Dump> {
        let shown = path.display().to_string();
        let mut file = std::fs::File::open(path)
            .map_err(|e| Error::io("cannot read the dump", path, e).hint(USAGE))?;
        let mut head = [0u8; 64];
        let n = read_up_to(&mut file, &mut head)
            .map_err(|e| Error::io("cannot read the dump", path, e))?;
        let head = &head[..n];
        let format = if head.starts_with(CUSTOM_MAGIC) {
            Format::Custom
        } else if String::from_utf8_lossy(head)
            .lines()
            .take(3)
            .any(|l| l.trim_end() == PLAIN_START)
        {
            Format::Plain
        } else {
            return Err(Error::new(format!(
                "{shown} is not a pg_dump file (custom format or plain SQL)"
            ))
            .hint(USAGE));
        };
        let mut scan = Scan::default();
        match format {
            Format::Custom => {
                // pg_restore turns the whole archive into SQL: it reads
                // every block, so a truncated file fails here.
                Client::pg_restore(&ConnParams::default())?
                    .each_line(&["-f", "-", &shown], |l| scan.line(l))
                    .map_err(|e| {
                        Error::new(format!("the dump {shown} cannot be read whole: {}", e.message))
                            .hint("it is truncated or damaged: make it again (pg_dump -Fc); nothing was changed")
                    })?;
            }
            Format::Plain => {
                let reader = std::io::BufReader::with_capacity(
                    1 << 16,
                    std::fs::File::open(path)
                        .map_err(|e| Error::io("cannot read the dump", path, e))?,
                );
                for l in reader.split(b'\n') {
                    let l = l.map_err(|e| Error::io("cannot read the dump", path, e))?;
                    scan.line(&l);
                }
                if !scan.complete {
                    return Err(Error::new(format!(
                        "the dump {shown} is incomplete: it does not end with pg_dump's \"{PLAIN_END}\" line"
                    ))
                    .hint("it is truncated: make it again (pg_dump); nothing was changed"));
                }
            }
        }
        if !scan.seen {
            return Err(Error::new(format!(
                "the dump {shown} holds no half_orm_meta.hop_release: it is not a dump of a git-hop database"
            ))
            .hint("dump the production database of this project (a production clone's), or convert a half-orm-dev project first with git hop-release import"));
        }
        let version = scan.versions.into_iter().max().ok_or_else(|| {
            Error::new(format!(
                "the dump {shown} has no release in half_orm_meta.hop_release"
            ))
            .hint(USAGE)
        })?;
        Ok(Dump {
            path: path.to_path_buf(),
            format,
            version,
        })
    }

    /// Refuses a dump at another version than production's.
    pub fn check_version(&self, production: &Version) -> Result<()> {
        if &self.version == production {
            return Ok(());
        }
        Err(Error::new(format!(
            "the dump {} is of a database at version {}, production is at {production}",
            self.path.display(),
            self.version
        ))
        .hint(format!(
            "dump a database at {production} (a production clone's after git hop-release upgrade); nothing was changed"
        )))
    }

    /// Loads the dump into the empty database of `params`, in one
    /// transaction, without its owners and privileges (the roles of
    /// production need not exist here).
    pub fn restore(&self, params: &ConnParams) -> Result<()> {
        let shown = self.path.display().to_string();
        let db = params.dbname.clone().unwrap_or_default();
        let result = match self.format {
            Format::Custom => Client::pg_restore(params)?
                .run(
                    &[
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        "--single-transaction",
                        "--no-password",
                        "-d",
                        &db,
                        &shown,
                    ],
                    None,
                    None,
                )
                .map(|_| ()),
            Format::Plain => {
                let path = self.path.clone();
                Client::psql(params)?
                    .run_fed(
                        &[
                            "-X",
                            "-q",
                            "-v",
                            "ON_ERROR_STOP=1",
                            "--single-transaction",
                            "-f",
                            "-",
                        ],
                        move |w| feed_plain(&path, w),
                    )
                    .map(|_| ())
            }
        };
        result.map_err(|e| {
            Error::new(format!("cannot restore the dump {shown}: {}", e.message))
                .hint("the dump needs something this server lacks (an extension, a role it references); the database is empty")
        })
    }
}

const USAGE: &str =
    "give a pg_dump of the production database: pg_dump -Fc (custom format) or plain SQL";

/// Fills `buf` as far as the file goes.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What reading a dump's SQL finds: the `hop_release` rows, and its last
/// line.
#[derive(Default)]
struct Scan {
    /// Inside a COPY block: the position of the version column when it is
    /// hop_release's, else `None`.
    copy: Option<Option<usize>>,
    seen: bool,
    versions: Vec<Version>,
    /// Whether pg_dump's closing line came, followed by nothing but
    /// comments and `\unrestrict` (newer pg_dump ends with it).
    complete: bool,
}

impl Scan {
    fn line(&mut self, raw: &[u8]) {
        if raw.trim_ascii() == PLAIN_END.as_bytes() {
            self.complete = true;
        } else if !raw.trim_ascii().is_empty()
            && !raw.starts_with(b"--")
            && !raw.starts_with(b"\\unrestrict ")
        {
            self.complete = false;
        }
        match self.copy {
            Some(column) => {
                if raw == b"\\." {
                    self.copy = None;
                } else if let Some(c) = column
                    && let Some(v) = raw.split(|b| *b == b'\t').nth(c)
                    && let Ok(v) = String::from_utf8_lossy(v).parse::<Version>()
                {
                    self.versions.push(v);
                }
            }
            None => {
                if raw.starts_with(b"COPY ") && raw.ends_with(b" FROM stdin;") {
                    let text = String::from_utf8_lossy(raw);
                    self.copy = Some(hop_release_version_column(&text));
                    if self.copy == Some(None) {
                        return;
                    }
                    self.seen = true;
                }
            }
        }
    }
}

/// In `COPY half_orm_meta.hop_release (version, major, …) FROM stdin;`, the
/// position of `version`; `None` for another table's COPY.
fn hop_release_version_column(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("COPY ")?;
    let (table, rest) = rest.split_once(" (")?;
    if table.replace('"', "") != "half_orm_meta.hop_release" {
        return None;
    }
    let (columns, _) = rest.split_once(')')?;
    columns
        .split(',')
        .position(|c| c.trim().trim_matches('"') == "version")
}

/// Feeds a plain dump to psql without what `--no-owner --no-privileges`
/// leave out of a custom one (ownership, grants) and without what would
/// leave the database being restored (`CREATE DATABASE`, `\connect` of a
/// dump made with `--create`); COPY data passes untouched.
fn feed_plain(path: &Path, w: &mut impl Write) -> std::io::Result<()> {
    let reader = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(path)?);
    let mut w = std::io::BufWriter::with_capacity(1 << 16, w);
    let mut in_copy = false;
    for line in reader.split(b'\n') {
        let line = line?;
        if in_copy {
            in_copy = line != b"\\.";
        } else if line.starts_with(b"COPY ") && line.ends_with(b" FROM stdin;") {
            in_copy = true;
        } else if skipped_in_plain(&line) {
            continue;
        }
        w.write_all(&line)?;
        w.write_all(b"\n")?;
    }
    w.flush()
}

/// A statement line of a plain dump that a restore here leaves out.
fn skipped_in_plain(line: &[u8]) -> bool {
    let text = String::from_utf8_lossy(line);
    let t = text.trim_end();
    (t.starts_with("ALTER ") && t.contains(" OWNER TO ") && t.ends_with(';'))
        || t.starts_with("GRANT ")
        || t.starts_with("REVOKE ")
        || t.starts_with("ALTER DEFAULT PRIVILEGES ")
        || t.starts_with("CREATE DATABASE ")
        || (t.starts_with("ALTER DATABASE ") && t.ends_with(';'))
        || t.starts_with("\\connect ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_version_column_of_hop_release_only() {
        assert_eq!(
            hop_release_version_column(
                "COPY half_orm_meta.hop_release (version, major, minor) FROM stdin;"
            ),
            Some(0)
        );
        assert_eq!(
            hop_release_version_column(
                "COPY half_orm_meta.hop_release (major, \"version\") FROM stdin;"
            ),
            Some(1)
        );
        assert_eq!(
            hop_release_version_column("COPY public.hop_release (version) FROM stdin;"),
            None
        );
    }

    #[test]
    fn scan_reads_rows_of_hop_release_and_the_last_line() {
        let mut s = Scan::default();
        for l in [
            "COPY public.t (version) FROM stdin;",
            "9.9.9",
            "\\.",
            "COPY half_orm_meta.hop_release (version, major) FROM stdin;",
            "0.0.0\t0",
            "0.1.0\t0",
            "0.2.0-rc1\t0",
            "\\.",
            "",
            "-- PostgreSQL database dump complete",
            "--",
            "",
            "\\unrestrict abc",
        ] {
            s.line(l.as_bytes());
        }
        assert!(s.seen);
        assert_eq!(s.versions.iter().max().unwrap().to_string(), "0.2.0-rc1");
        assert!(s.complete);
        s.line(b"CREATE TABLE t (id int);");
        assert!(!s.complete);
    }

    #[test]
    fn plain_restore_leaves_out_owners_grants_and_database_changes() {
        for l in [
            "ALTER TABLE public.a OWNER TO prod;",
            "GRANT SELECT ON TABLE public.a TO app;",
            "REVOKE ALL ON SCHEMA public FROM PUBLIC;",
            "CREATE DATABASE prod WITH TEMPLATE = template0;",
            "\\connect prod",
        ] {
            assert!(skipped_in_plain(l.as_bytes()), "{l}");
        }
        for l in [
            "CREATE TABLE public.a (id integer);",
            "SET lock_timeout = 0;",
        ] {
            assert!(!skipped_in_plain(l.as_bytes()), "{l}");
        }
    }
}
