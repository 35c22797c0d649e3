//! Loading a model snapshot into an empty database, in `pg_restore`'s order
//! (docs/snapshots.md): the pre-data part of `schema-V.sql`, the data, the
//! half_orm_meta rows, then the post-data part (indexes, constraints,
//! triggers, rules, materialized views populated), all in one transaction.
//! So the user's triggers and rules never fire during a load, no foreign key
//! is checked against a half-loaded table, and no superuser is needed.
//!
//! Every statement runs with the session's default `search_path`, as the
//! patches that built the database ran, not with pg_dump's empty one: every
//! name pg_dump writes is qualified, so this changes nothing but the
//! functions that PostgreSQL runs or inlines during the load (a generated
//! column, a check constraint, an index expression) and whose bodies name
//! objects without their schema, which load as the patches built them.
//! The proof of a snapshot guards the rest.
//!
//! psql runs files, not parts of files: the parts are written to a
//! temporary folder as copies in which the lines of the other part (and
//! pg_dump's `set_config('search_path', '', false)`) are left empty, so that
//! psql's `file:line` of an error is the line of the snapshot file itself.

use std::path::{Path, PathBuf};

use crate::db::conn::ConnParams;
use crate::db::psql;
use crate::error::{Error, Result};
use crate::snapshot::Files;
use crate::snapshot::sections::Dump;

/// Loads the snapshot `files` into the empty database of `params`. Every
/// path of a failure leaves the database empty.
pub fn load_files(params: &ConnParams, files: &Files) -> Result<()> {
    for path in [&files.schema, &files.data, &files.metadata] {
        if !path.is_file() {
            return Err(
                Error::new(format!("model snapshot file {} is missing", path.display())).hint(
                    "the snapshot of a production version must be committed under .hop/model/",
                ),
            );
        }
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io("cannot read", p, e));
    let schema_text = read(&files.schema)?;
    let schema = Dump::parse(&schema_text);
    let data_text = read(&files.data)?;
    let data = Dump::parse(&data_text);
    let tmp = tempfile::Builder::new()
        .prefix("hop-load-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let (pre, post) = split(&schema);
    // (temporary file, the snapshot file it stands for)
    let mut steps: Vec<(PathBuf, &Path)> = vec![(
        write_part(tmp.path(), "pre-data", &name(&files.schema), &pre)?,
        &files.schema,
    )];
    steps.push((
        write_part(tmp.path(), "data", &name(&files.data), &keep(&data, None))?,
        &files.data,
    ));
    steps.push((files.metadata.clone(), &files.metadata));
    if let Some(p) = post {
        steps.push((
            write_part(tmp.path(), "post-data", &name(&files.schema), &p)?,
            &files.schema,
        ));
    }

    let mut script = String::from("\\set ON_ERROR_STOP 1\n");
    for (path, _) in &steps {
        script.push_str(&format!("\\i {}\n", psql::quote_path(path)?));
        script.push_str("RESET search_path;\n");
    }
    let client = psql::Client::psql(params)?;
    let result = client.run(
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
        None,
    );
    match result {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut message = e.message.clone();
            for (tmp_path, real) in &steps {
                message =
                    message.replace(&tmp_path.display().to_string(), &real.display().to_string());
            }
            let e = Error { message, ..e };
            let e = explain(e, &files.schema, &schema);
            Err(explain(e, &files.data, &data))
        }
    }
}

/// The pre-data and post-data parts of a schema dump, each as long as the
/// whole text; pg_dump's header of `SET` commands starts both. No post-data
/// part when the dump has none.
fn split(dump: &Dump) -> (String, Option<String>) {
    match dump.post_data_start() {
        None => (keep(dump, None), None),
        Some(cut) => (
            keep(dump, Some(cut..dump.lines.len())),
            Some(keep(dump, Some(dump.header_end()..cut))),
        ),
    }
}

/// The text of `dump` with the lines of `blank` and pg_dump's empty
/// search_path left empty (their newlines kept, so every other line keeps
/// its number).
fn keep(dump: &Dump, blank: Option<std::ops::Range<usize>>) -> String {
    let header = dump.header_end();
    let mut out = String::new();
    for (i, line) in dump.lines.iter().enumerate() {
        let empty_path = i < header
            && line.trim_end() == "SELECT pg_catalog.set_config('search_path', '', false);";
        if empty_path || blank.as_ref().is_some_and(|r| r.contains(&i)) {
            if line.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(line);
        }
    }
    out
}

fn write_part(dir: &Path, part: &str, name: &str, text: &str) -> Result<PathBuf> {
    let d = dir.join(part);
    std::fs::create_dir_all(&d).map_err(|e| Error::io("cannot create", &d, e))?;
    let path = d.join(name);
    std::fs::write(&path, text).map_err(|e| Error::io("cannot write", &path, e))?;
    Ok(path)
}

/// Names the object of the schema file at the line of a load error, with
/// the fix when PostgreSQL inlined a function under pg_dump's empty
/// search_path.
fn explain(e: Error, schema: &Path, dump: &Dump) -> Error {
    let needle = format!("{}:", schema.display());
    let line = e.message.find(&needle).and_then(|at| {
        let rest = &e.message[at + needle.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<usize>().ok()
    });
    let Some(entry) = line.and_then(|l| dump.entry_at(l.saturating_sub(1))) else {
        return e;
    };
    if entry.kind == "TABLE DATA" {
        let message = format!("{}: {}", entry.describe(), e.message);
        return Error { message, ..e }.hint(
            "the rows of the snapshot do not load into its tables: a check constraint or a generated column computes differently here than where the snapshot was dumped",
        );
    }
    let object = entry.describe();
    let hint = if e.message.contains("does not exist") {
        format!(
            "{object} cannot be created from the snapshot: if a function it uses names an object without its schema, qualify the names in the function's body (app.my_type) or give the function its search_path (ALTER FUNCTION … SET search_path = app), in a patch"
        )
    } else {
        format!("{object} cannot be restored from the snapshot as pg_dump wrote it")
    };
    let message = format!("{object}: {}", e.message);
    Error { message, ..e }.hint(hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_keep_the_line_numbers_of_the_file() {
        let text = "--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\nSELECT pg_catalog.set_config('search_path', '', false);\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (a int);\n\n--\n-- Name: t t_pkey; Type: CONSTRAINT; Schema: public; Owner: -\n--\n\nALTER TABLE public.t ADD PRIMARY KEY (a);\n";
        let dump = Dump::parse(text);
        let (pre, post) = split(&dump);
        let post = post.unwrap();
        assert_eq!(pre.lines().count(), text.lines().count());
        assert_eq!(post.lines().count(), text.lines().count());
        assert!(!pre.contains("search_path") && !post.contains("search_path"));
        assert!(pre.contains("SET x = 1;") && pre.contains("CREATE TABLE"));
        assert!(!pre.contains("PRIMARY KEY"));
        assert!(post.starts_with("--\n-- PostgreSQL database dump\n--\n\nSET x = 1;\n"));
        assert!(!post.contains("CREATE TABLE"));
        assert_eq!(
            post.lines().nth(16),
            Some("ALTER TABLE public.t ADD PRIMARY KEY (a);")
        );
        let (whole, none) = split(&Dump::parse("CREATE TABLE t (a int);\n"));
        assert_eq!(whole, "CREATE TABLE t (a int);\n");
        assert!(none.is_none());
    }

    #[test]
    fn an_error_names_the_object_at_its_line() {
        let text = "SET x = 1;\n\n--\n-- Name: g; Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.g (x text);\n";
        let dump = Dump::parse(text);
        let e =
            Error::new("psql failed: /m/schema-0.2.0.sql:7: ERROR: type \"mood\" does not exist");
        let e = explain(e, Path::new("/m/schema-0.2.0.sql"), &dump);
        assert!(
            e.message.starts_with("table public.g: psql failed"),
            "{}",
            e.message
        );
        assert!(e.hint.unwrap().contains("SET search_path"));
    }
}
