//! Proving a snapshot (docs/snapshots.md): load it into a fresh temporary
//! database with the loader every rebuild uses, dump that database again,
//! and require the same three texts. A snapshot that passes builds, in
//! every clone and validation, the database it was dumped from.

use std::path::Path;

use crate::db::database::Database;
use crate::db::temp::TempDatabase;
use crate::error::{Error, Result};
use crate::snapshot::sections::Dump;
use crate::snapshot::{Files, Texts, dump, files, load};
use crate::version::Version;

/// Proves the snapshot `texts` of version `v` (not yet written anywhere) on
/// the server of `working`.
pub fn prove(working: &Database, texts: &Texts, v: &Version) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("hop-proof-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let f = files(tmp.path(), v);
    let dir = tmp.path().join(crate::snapshot::MODEL_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    for (path, text) in [
        (&f.schema, &texts.schema),
        (&f.data, &texts.data),
        (&f.metadata, &texts.metadata),
    ] {
        std::fs::write(path, text).map_err(|e| Error::io("cannot write", path, e))?;
    }
    prove_files(working, &f, tmp.path(), &v.to_string())
}

/// Proves the snapshot files `f` (under `root`, which error messages leave
/// out) on the server of `working`.
pub fn prove_files(working: &Database, f: &Files, root: &Path, label: &str) -> Result<()> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io("cannot read", p, e));
    let expected = Texts {
        schema: read(&f.schema)?,
        data: read(&f.data)?,
        metadata: read(&f.metadata)?,
    };
    let temp = TempDatabase::new(working, "proof");
    if temp.db.exists()? {
        temp.db.drop_database()?;
    }
    temp.db.create()?;
    let prefix = format!("{}/", root.display());
    load::load_files(&temp.db.params, f).map_err(|e| {
        let message = e.message.replace(&prefix, "");
        Error { message, ..e }.context(format!("the model snapshot {label} does not reload"))
    })?;
    let again = dump(&temp.db)?;
    drop(temp);
    compare(&expected, &again, label)
}

/// The first difference between the snapshot and the dump of a database
/// loaded from it, as an error naming the file, line and object.
pub fn compare(expected: &Texts, again: &Texts, label: &str) -> Result<()> {
    for (kind, a, b) in [
        ("schema", &expected.schema, &again.schema),
        ("data", &expected.data, &again.data),
        ("metadata", &expected.metadata, &again.metadata),
    ] {
        if kind == "data" && a.as_str() == crate::snapshot::dump::NO_DATA {
            continue; // 0.0.0 records no rows
        }
        let Some((line, want, got)) = first_difference(a, b) else {
            continue;
        };
        let object = Dump::parse(a)
            .entry_at(line)
            .map(|e| format!(" ({})", e.describe()))
            .unwrap_or_default();
        return Err(Error::new(format!(
            "the model snapshot {label} does not reload into what it was dumped from: .hop/model/{kind}-{label}.sql:{}{object}: the snapshot has {}, a database loaded from it gives {}",
            line + 1,
            show(want),
            show(got)
        ))
        .hint("every database built from this snapshot would differ from production: find what the load changes (a trigger, a rule or a default that depends on the session) and make it reproducible in a patch"));
    }
    Ok(())
}

/// The 0-based index of the first line that differs, with both lines
/// (`None` past the end of a text).
fn first_difference<'a>(
    a: &'a str,
    b: &'a str,
) -> Option<(usize, Option<&'a str>, Option<&'a str>)> {
    let mut la = a.lines();
    let mut lb = b.lines();
    let mut i = 0;
    loop {
        match (la.next(), lb.next()) {
            (None, None) => return None,
            (x, y) if x != y => return Some((i, x, y)),
            _ => i += 1,
        }
    }
}

fn show(line: Option<&str>) -> String {
    match line {
        None => "the end of the file".into(),
        Some(l) => {
            let short: String = l.chars().take(120).collect();
            let more = if short.len() < l.len() { "…" } else { "" };
            format!("`{short}{more}`")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_is_named_with_its_object() {
        let a = "--\n-- Data for Name: audit; Type: TABLE DATA; Schema: public; Owner: -\n--\n\nCOPY public.audit (id) FROM stdin;\n1\n2\n\\.\n";
        let b = a.replace("1\n2\n", "1\n2\n3\n4\n");
        let t = |d: &str| Texts {
            schema: "s\n".into(),
            data: d.into(),
            metadata: "m\n".into(),
        };
        assert!(compare(&t(a), &t(a), "0.1.0").is_ok());
        let e = compare(&t(a), &t(&b), "0.1.0").unwrap_err();
        assert!(
            e.message.contains(
                ".hop/model/data-0.1.0.sql:8 (table data public.audit): the snapshot has `\\.`, a database loaded from it gives `3`"
            ),
            "{}",
            e.message
        );
        assert_eq!(
            first_difference("a\n", "a\nb\n"),
            Some((1, None, Some("b")))
        );
    }
}
