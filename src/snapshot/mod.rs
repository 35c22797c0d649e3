//! Model snapshots (docs/snapshots.md): `.hop/model/schema-V.sql`,
//! `data-V.sql`, `metadata-V.sql` and the `schema.sql` symlink. Dumping a
//! database into them (`dump`), the sections of a dump (`sections`),
//! loading them in pg_restore's order (`load`), and proving that they
//! reload into what they were dumped from (`proof`).

pub mod check;
pub mod dump;
pub mod load;
pub mod proof;
pub mod sections;

pub use dump::{Texts, dump, dump_data, dump_schema, normalize, normalize_data};

use std::path::{Path, PathBuf};

use crate::db::conn::ConnParams;
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

/// Loads version `v`'s snapshot found under `root` into the (empty)
/// database of `params` (see [`load::load_files`]).
pub fn load(params: &ConnParams, root: &Path, v: &Version) -> Result<()> {
    load::load_files(params, &files(root, v))
        .map_err(|e| e.context(format!("cannot load the model snapshot {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
