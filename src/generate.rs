//! Code generation after a database rebuild (docs/codegen.md): regenerating the
//! half_orm package from a database, and the half_orm config that lets the
//! generated package (and the project's tests) connect to it.

use std::path::{Path, PathBuf};

use crate::codegen::{self, HalformParams, Report};
use crate::db::database::Database;
use crate::error::Result;
use crate::settings::ProjectConfig;

/// Regenerates `<package>/` and the test skeletons under `root` from
/// `db`; `None` when `[codegen] python = false`.
pub fn regenerate(root: &Path, config: &ProjectConfig, db: &Database) -> Result<Option<Report>> {
    if !config.codegen.python {
        return Ok(None);
    }
    let mut client = db.connect()?;
    let model = codegen::introspect(&mut client)?;
    let package = &config.project.package;
    // The config name is the package's, so the generated code is the same
    // whichever database a clone or a validation uses.
    codegen::generate(&model, root, package, package).map(Some)
}

/// Writes the half_orm config named after the package into `dir`, pointing
/// at `db`, and returns the environment for a process that uses the
/// generated package against it (PG* variables included).
pub fn environment(
    dir: &Path,
    root: &Path,
    config: &ProjectConfig,
    db: &Database,
) -> Result<Vec<(String, String)>> {
    let p = &db.params;
    let params = HalformParams {
        dbname: db.name().to_string(),
        host: p.host.clone(),
        port: p.port,
        user: p.user.clone(),
    };
    codegen::write_halform_config(dir, &config.project.package, &params)?;
    let mut env = p.child_env();
    env.push(("HALFORM_CONF_DIR".into(), dir.display().to_string()));
    env.push(("PYTHONPATH".into(), root.display().to_string()));
    env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
    Ok(env)
}

/// One line about what a regeneration did.
pub fn summary(report: &Option<Report>) -> String {
    match report {
        None => "code generation is off ([codegen] python = false)".into(),
        Some(r) => format!(
            "generated code: {} written, {} removed, {} unchanged",
            r.written.len(),
            r.removed.len(),
            r.unchanged
        ),
    }
}

/// Writes the half_orm config of the clone's working database `db` (docs/codegen.md:
/// after every command that builds or changes it, so the generated package
/// and the tests work right away); returns its folder.
pub fn write_working_config(project: &crate::project::Project, db: &Database) -> Result<PathBuf> {
    let dir = working_config_dir(&project.state_dir());
    environment(&dir, &project.root, &project.config, db)?;
    Ok(dir)
}

/// Where a clone keeps the half_orm config of its working database.
pub fn working_config_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("halform")
}
