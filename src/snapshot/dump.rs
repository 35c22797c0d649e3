//! Dumping a database into the three texts of a model snapshot, normalized
//! so that the same database gives the same bytes (docs/snapshots.md).

use crate::db::conn::ConnParams;
use crate::db::database::Database;
use crate::db::{meta, psql};
use crate::error::Result;

/// The data file of version 0.0.0: no patch has created rows yet (the rows
/// of an adopted database are not the model's).
pub const NO_DATA: &str = "-- git-hop: rows created by the patches of 0.0.0 (none)\n";

/// The three texts of a snapshot, as dumped from a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Texts {
    pub schema: String,
    pub data: String,
    pub metadata: String,
}

/// Dumps `db` (schema, data, half_orm_meta rows).
pub fn dump(db: &Database) -> Result<Texts> {
    let schema = dump_schema(&db.params)?;
    let data = dump_data(&db.params)?;
    let metadata = {
        let mut client = db.connect()?;
        meta::dump_rows(&mut client)?
    };
    Ok(Texts {
        schema,
        data,
        metadata,
    })
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

/// The normalized schema of a database: pg_dump's pre-data and post-data
/// sections, which are `--schema-only` plus the population of the
/// materialized views that are populated (`REFRESH MATERIALIZED VIEW`, the
/// last entries), so that a database built from it holds what this one holds.
pub fn dump_schema(params: &ConnParams) -> Result<String> {
    dump_schema_waiting(params, DUMP_LOCK_WAIT)
}

/// How long a dump waits for a table's share lock (held exclusively by
/// someone else) before it fails: never without bound.
pub const DUMP_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// [`dump_schema`], waiting at most `lock_wait` for a lock (`upgrade`'s
/// drift check passes its `--lock-wait`).
pub fn dump_schema_waiting(params: &ConnParams, lock_wait: std::time::Duration) -> Result<String> {
    let pg_dump = psql::Client::pg_dump(params)?;
    let wait = format!("--lock-wait-timeout={}", lock_wait.as_millis().max(1));
    let out = pg_dump
        .run(
            &[
                "--section=pre-data",
                "--section=post-data",
                "--no-owner",
                "--no-privileges",
                &wait,
            ],
            None,
            None,
        )
        .map_err(|e| {
            let hint = if e.message.contains("statement timeout") {
                format!(
                    "another session holds an exclusive lock on a table, and pg_dump waited {} s for it: run the command again when it is released; nothing was changed",
                    lock_wait.as_secs()
                )
            } else {
                "check that pg_dump reaches the server with the same settings, and that it is not older than the server (pg_dump --version)".into()
            };
            e.context("cannot dump the schema").hint(hint)
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
    let wait = format!("--lock-wait-timeout={}", DUMP_LOCK_WAIT.as_millis());
    let out = pg_dump
        .run(
            &[
                "--data-only",
                "--no-owner",
                "--no-privileges",
                "--exclude-schema=half_orm_meta",
                &wait,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_version_lines_and_squeezes_blanks() {
        let dump = "--\n-- Dumped from database version 15.18\n-- Dumped by pg_dump version 17.1\n\n\n\\restrict abc\nSET transaction_timeout = 0;\nCREATE TABLE t (id int);   \n\n\n\\unrestrict abc\n";
        assert_eq!(normalize(dump), "--\n\nCREATE TABLE t (id int);\n\n");
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
}
