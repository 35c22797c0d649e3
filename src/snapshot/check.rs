//! Which tagged snapshots of a project do not reload (`git hop-release
//! status`, docs/snapshots.md). Each snapshot is proved once per clone and
//! server version: the outcome is kept in `.git/hop/snapshot-checks`, keyed
//! by the SHA-256 of its three files and the server's version.

use sha2::{Digest, Sha256};

use crate::db::database::Database;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::release_file::write_atomic;
use crate::snapshot::{MODEL_DIR, files, proof};
use crate::version::{Pre, Version};

/// A tagged snapshot that does not reload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub version: String,
    pub error: String,
}

/// The production versions (tags `vX.Y.Z`, `vX.Y.Z-hotfixN`) whose snapshot,
/// as the tag holds it, does not reload on `working`'s server.
pub fn tagged_failures(project: &Project, working: &Database) -> Result<Vec<Failure>> {
    let mut versions: Vec<Version> = project
        .repo
        .tags()
        .iter()
        .filter_map(|t| Version::from_tag(t))
        .filter(|v| !matches!(v.pre, Pre::Rc(_)))
        .collect();
    versions.sort();
    let server = {
        let mut c = working.connect()?;
        let row = c
            .query_one("SHOW server_version_num", &[])
            .map_err(|e| crate::db::database::sql_error("cannot read the server version", e))?;
        row.get::<_, String>(0)
    };
    let cache_path = project.state_dir().join("snapshot-checks");
    let cached = std::fs::read_to_string(&cache_path).unwrap_or_default();
    let mut cache: Vec<String> = cached.lines().map(str::to_string).collect();
    let mut failures = Vec::new();
    for v in versions {
        let tag = v.tag_name();
        let names = [
            format!("{MODEL_DIR}/schema-{v}.sql"),
            format!("{MODEL_DIR}/data-{v}.sql"),
            format!("{MODEL_DIR}/metadata-{v}.sql"),
        ];
        let contents: Vec<Option<Vec<u8>>> = names
            .iter()
            .map(|n| project.repo.file_at(&tag, n))
            .collect();
        if contents.iter().any(Option::is_none) {
            continue; // a tag without a snapshot: nothing to load
        }
        let mut h = Sha256::new();
        h.update(server.as_bytes());
        for c in contents.iter().flatten() {
            h.update([0]);
            h.update(c.len().to_string().as_bytes());
            h.update([0]);
            h.update(c);
        }
        let key: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let outcome = match cache
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
        {
            Some(o) => o.to_string(),
            None => {
                let o = match prove_at(working, &v, &contents) {
                    Ok(()) => "ok".to_string(),
                    Err(e) => format!("fail {}", e.message.replace('\n', " ")),
                };
                cache.push(format!("{key} {o}"));
                o
            }
        };
        if let Some(error) = outcome.strip_prefix("fail ") {
            failures.push(Failure {
                version: v.to_string(),
                error: error.to_string(),
            });
        }
    }
    let text = cache.join("\n") + "\n";
    if text != cached {
        // Only a cache: failing to write it costs a new check next time.
        let _ = write_atomic(&cache_path, text.as_bytes());
    }
    Ok(failures)
}

fn prove_at(working: &Database, v: &Version, contents: &[Option<Vec<u8>>]) -> Result<()> {
    let tmp = tempfile::Builder::new()
        .prefix("hop-check-")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    let f = files(tmp.path(), v);
    let dir = tmp.path().join(MODEL_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    for (path, c) in [&f.schema, &f.data, &f.metadata].into_iter().zip(contents) {
        std::fs::write(path, c.as_deref().unwrap_or_default())
            .map_err(|e| Error::io("cannot write", path, e))?;
    }
    proof::prove_files(working, &f, tmp.path(), &v.to_string())
}
