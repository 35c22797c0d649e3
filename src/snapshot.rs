//! Model snapshots (SPEC 5.4): `.hop/model/schema-V.sql`, `data-V.sql`,
//! `metadata-V.sql` and the `schema.sql` symlink; normalized dumps and
//! loading a snapshot into a fresh database.

use std::path::{Path, PathBuf};

use crate::db::conn::ConnParams;
use crate::db::psql;
use crate::error::{Error, Result};
use crate::release_file::write_atomic;
use crate::version::Version;

pub const MODEL_DIR: &str = ".hop/model";

/// The three files of version `v`.
pub struct Files {
    pub schema: PathBuf,
    pub data: PathBuf,
    pub metadata: PathBuf,
}

pub fn files(root: &Path, v: &Version) -> Files {
    let dir = root.join(MODEL_DIR);
    Files {
        schema: dir.join(format!("schema-{v}.sql")),
        data: dir.join(format!("data-{v}.sql")),
        metadata: dir.join(format!("metadata-{v}.sql")),
    }
}

/// Removes what differs between PostgreSQL versions or runs of pg_dump, so
/// the same schema gives the same bytes.
pub fn normalize(dump: &str) -> String {
    let mut out = String::with_capacity(dump.len());
    let mut blank_run = 0;
    for line in dump.lines() {
        let drop = line.starts_with("-- Dumped from database version")
            || line.starts_with("-- Dumped by pg_dump version")
            || line.starts_with("\\restrict")
            || line.starts_with("\\unrestrict")
            || line.starts_with("SET transaction_timeout");
        if drop {
            continue;
        }
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The normalized schema of a database.
pub fn dump_schema(params: &ConnParams) -> Result<String> {
    let pg_dump = psql::Client::pg_dump(params)?;
    let out = pg_dump
        .run(
            &["--schema-only", "--no-owner", "--no-privileges"],
            None,
            None,
        )
        .map_err(|e| {
            e.context("cannot dump the schema").hint(
                "check that pg_dump reaches the server with the same settings, and that it is not older than the server (pg_dump --version)",
            )
        })?;
    Ok(normalize(&out.stdout))
}

/// The rows of the user's tables (`data-V.sql`: what the patches created,
/// reference data included), every schema but `half_orm_meta`, with the
/// sequences' positions. Deterministic: the rows of each table are sorted,
/// except in a table with a foreign key to itself (its rows keep their
/// order, in which they load and dump again unchanged).
pub fn dump_data(params: &ConnParams) -> Result<String> {
    let pg_dump = psql::Client::pg_dump(params)?;
    let out = pg_dump
        .run(
            &[
                "--data-only",
                "--no-owner",
                "--no-privileges",
                "--exclude-schema=half_orm_meta",
            ],
            None,
            None,
        )
        .map_err(|e| e.context("cannot dump the data"))?;
    let keep = psql::Client::psql(params)?
        .query(
            "SELECT DISTINCT format('%I.%I', n.nspname, c.relname) FROM pg_catalog.pg_constraint k \
             JOIN pg_catalog.pg_class c ON c.oid = k.conrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE k.contype = 'f' AND k.conrelid = k.confrelid",
        )
        .map_err(|e| e.context("cannot list self-referencing tables"))?;
    let keep: Vec<&str> = keep
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    Ok(normalize_data(&out.stdout, &keep))
}

/// [`normalize`] for a data dump: the same outside the `COPY <table> … FROM
/// stdin;` blocks; inside them rows are kept byte for byte (an empty line or
/// trailing blanks are data) and sorted, except for the tables in `keep`.
pub fn normalize_data(dump: &str, keep: &[&str]) -> String {
    let mut out = String::with_capacity(dump.len());
    let mut outside = String::new();
    // Rows of the current block, and whether to sort them.
    let mut block: Option<(Vec<&str>, bool)> = None;
    for line in dump.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        if let Some((rows, sort)) = block.as_mut() {
            if line == "\\." {
                if *sort {
                    rows.sort_unstable();
                }
                for r in rows.iter() {
                    out.push_str(r);
                    out.push('\n');
                }
                block = None;
                outside.push_str(line);
                outside.push('\n');
            } else {
                rows.push(line);
            }
            continue;
        }
        outside.push_str(line);
        outside.push('\n');
        if let Some(rest) = line.strip_prefix("COPY ")
            && line.ends_with(" FROM stdin;")
        {
            let table = rest.split(' ').next().unwrap_or("");
            out.push_str(&normalize(&outside));
            outside.clear();
            block = Some((Vec::new(), !keep.contains(&table)));
        }
    }
    if let Some((rows, _)) = block {
        // An unterminated block (never from pg_dump): keep it as it was.
        for r in rows {
            out.push_str(r);
            out.push('\n');
        }
    }
    out.push_str(&normalize(&outside));
    out
}

/// Writes the snapshot files of `v` (atomically each) and points
/// `schema.sql` at the schema.
pub fn write(root: &Path, v: &Version, schema: &str, data: &str, metadata: &str) -> Result<Files> {
    let f = files(root, v);
    let dir = root.join(MODEL_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    write_atomic(&f.schema, schema.as_bytes())?;
    write_atomic(&f.data, data.as_bytes())?;
    write_atomic(&f.metadata, metadata.as_bytes())?;
    point_current(root, v)?;
    Ok(f)
}

/// Moves the `schema.sql` symlink to `schema-V.sql` (atomically).
pub fn point_current(root: &Path, v: &Version) -> Result<()> {
    let dir = root.join(MODEL_DIR);
    let link = dir.join("schema.sql");
    let tmp = dir.join(".schema.sql.tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(format!("schema-{v}.sql"), &tmp)
        .map_err(|e| Error::io("cannot create the symlink", &tmp, e))?;
    std::fs::rename(&tmp, &link).map_err(|e| Error::io("cannot move the symlink", &link, e))
}

/// The version `schema.sql` points at.
pub fn current_version(root: &Path) -> Result<Version> {
    let link = root.join(MODEL_DIR).join("schema.sql");
    let target = std::fs::read_link(&link).map_err(|e| {
        Error::io("cannot read the symlink", &link, e)
            .hint("the project's model snapshot is missing: check out ho-prod")
    })?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let v = name
        .strip_prefix("schema-")
        .and_then(|s| s.strip_suffix(".sql"))
        .ok_or_else(|| {
            Error::new(format!(
                "{} points at {name}, not at a schema-V.sql file",
                link.display()
            ))
        })?;
    v.parse::<Version>()
}

/// Loads version `v`'s snapshot into the (empty) database of `params`:
/// schema, then data, then metadata, in one transaction.
pub fn load(params: &ConnParams, root: &Path, v: &Version) -> Result<()> {
    let f = files(root, v);
    let mut script = String::from("\\set ON_ERROR_STOP 1\n");
    for path in [&f.schema, &f.data, &f.metadata] {
        if !path.is_file() {
            return Err(
                Error::new(format!("model snapshot file {} is missing", path.display())).hint(
                    "the snapshot of a production version must be committed under .hop/model/",
                ),
            );
        }
        script.push_str(&format!(
            "\\i {}\n",
            psql_quote(&path.display().to_string())
        ));
        // pg_dump's schema sets search_path to ''; later files must not depend on it.
        script.push_str("SELECT pg_catalog.set_config('search_path', '\"$user\", public', false) \\g /dev/null\n");
    }
    let client = psql::Client::psql(params)?;
    client
        .run(
            &[
                "-X",
                "-q",
                "--single-transaction",
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                "-",
            ],
            Some(&script),
            Some(root),
        )
        .map(|_| ())
        .map_err(|e| e.context(format!("cannot load the model snapshot {v}")))
}

/// psql's quoting for a `\i` argument.
fn psql_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_version_lines_and_squeezes_blanks() {
        let dump = "--\n-- Dumped from database version 15.18\n-- Dumped by pg_dump version 17.1\n\n\n\\restrict abc\nSET transaction_timeout = 0;\nCREATE TABLE t (id int);   \n\n\n\\unrestrict abc\n";
        assert_eq!(normalize(dump), "--\n\nCREATE TABLE t (id int);\n\n");
    }

    #[test]
    fn symlink_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let v: Version = "0.1.0".parse().unwrap();
        let f = write(tmp.path(), &v, "s", "d", "m").unwrap();
        assert_eq!(std::fs::read_to_string(&f.schema).unwrap(), "s");
        assert_eq!(current_version(tmp.path()).unwrap(), v);
        let v2: Version = "0.1.0-hotfix1".parse().unwrap();
        write(tmp.path(), &v2, "s2", "d2", "m2").unwrap();
        assert_eq!(current_version(tmp.path()).unwrap(), v2);
        let link = tmp.path().join(MODEL_DIR).join("schema.sql");
        assert_eq!(std::fs::read_to_string(link).unwrap(), "s2");
    }

    #[test]
    fn data_rows_are_kept_verbatim_and_sorted_except_kept_tables() {
        let dump = "-- Dumped by pg_dump version 17.1\nSET x = 0;\n\n\nCOPY public.t (v) FROM stdin;\nb  \n\n\na\n\\.\n\nCOPY public.tree (id, parent) FROM stdin;\n2\t\\N\n1\t2\n\\.\nSELECT pg_catalog.setval('public.t_id_seq', 2, true);   \n\n\n";
        let sorted = normalize_data(dump, &["public.tree"]);
        assert_eq!(
            sorted,
            "SET x = 0;\n\nCOPY public.t (v) FROM stdin;\n\n\na\nb  \n\\.\n\nCOPY public.tree (id, parent) FROM stdin;\n2\t\\N\n1\t2\n\\.\nSELECT pg_catalog.setval('public.t_id_seq', 2, true);\n\n"
        );
        assert_eq!(normalize_data(&sorted, &["public.tree"]), sorted);
    }

    #[test]
    fn psql_quoting() {
        assert_eq!(psql_quote("/a b/it's.sql"), "'/a b/it\\'s.sql'");
    }
}
