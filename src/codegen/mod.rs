//! Code generation (docs/codegen.md): the half_orm Python package and test
//! skeletons of a project, generated from its live database.
//!
//! [`introspect`] reads the model of a database; [`generate`] turns it into
//! files under a work tree, keeping the user's code between half_orm's
//! markers byte for byte and writing nothing that did not change;
//! [`write_halform_config`] writes the half_orm connection file through which
//! the generated package connects.
//!
//! Layout, for package `pkg` (names made valid Python identifiers by
//! [`names`], never two relations on one file):
//!
//! ```text
//! pkg/__init__.py                          MODEL = Model('<config>', scope=__name__)
//! pkg/<schema>/__init__.py                 the schema's docstring (nothing per relation)
//! pkg/<schema>/<relation>.py               SchemaRelationDict, BC_SchemaRelation (typed.rs),
//!                                          class CamelCase(BC_SchemaRelation)
//! tests/<schema>/<relation>/test_<schema>_<relation>.py    created once
//! ```

pub mod introspect;
pub mod names;
pub mod python;
pub mod regions;
pub mod typed;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
pub use introspect::{Column, ForeignKey, Model, Relation, RelationKind, introspect};
use python::{HEADER_PREFIX, ModuleCtx};
use regions::Marker::{Begin, End};

/// What [`generate`] did. Paths are relative to the work tree root, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Files created or rewritten.
    pub written: Vec<PathBuf>,
    /// Generated files removed because their relation (or schema) is gone.
    pub removed: Vec<PathBuf>,
    /// Files left as they were: same content, or a test skeleton that exists.
    pub unchanged: usize,
}

/// Connection parameters written to a half_orm config file. No password:
/// libpq (under psycopg) takes it from `PGPASSWORD` or `~/.pgpass`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HalformParams {
    pub dbname: String,
    /// Host name, or a Unix-socket directory (starting with `/`).
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
}

/// Where one relation's files go.
struct Placement<'a> {
    relation: &'a Relation,
    schema_dir: String,
    module: String,
    class: String,
    test_file: String,
}

fn check_package(package: &str) -> Result<()> {
    if names::is_plain_identifier(package) {
        return Ok(());
    }
    Err(Error::new(format!(
        "the package name {package:?} is not a valid Python package name"
    ))
    .hint("set [project] package in .hop/config to a Python identifier, e.g. my_project"))
}

fn check_config_name(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name == "."
        || name == ".."
        || name.contains(['/', '\0', '\n', '\r'])
        || name.trim() != name;
    if !bad {
        return Ok(());
    }
    Err(
        Error::new(format!("{name:?} cannot name a half_orm config file"))
            .hint("use a plain file name such as the database name (no '/', no spaces around it)"),
    )
}

/// Places every relation: schema directories, modules, classes, test files.
fn place(model: &Model) -> Vec<Placement<'_>> {
    let schemas: BTreeSet<&str> = model.relations.iter().map(|r| r.schema.as_str()).collect();
    let schema_items: Vec<(String, String)> = schemas
        .iter()
        .map(|s| (s.to_string(), names::identifier(s)))
        .collect();
    let schema_dirs: BTreeMap<&str, String> = schemas
        .iter()
        .copied()
        .zip(names::disambiguate(&schema_items))
        .collect();

    let mut placements = Vec::with_capacity(model.relations.len());
    for schema in &schemas {
        let rels: Vec<&Relation> = model
            .relations
            .iter()
            .filter(|r| r.schema == *schema)
            .collect();
        let items: Vec<(String, String)> = rels
            .iter()
            .map(|r| (r.name.clone(), names::identifier(&r.name)))
            .collect();
        for (rel, module) in rels.into_iter().zip(names::disambiguate(&items)) {
            placements.push(Placement {
                relation: rel,
                schema_dir: schema_dirs[schema].clone(),
                module,
                class: names::class_name(&rel.name),
                test_file: String::new(),
            });
        }
    }
    // Test files sit in different folders but pytest imports them by base
    // name: those must be unique too.
    let items: Vec<(String, String)> = placements
        .iter()
        .map(|p| {
            (
                format!("{}/{}", p.schema_dir, p.module),
                format!("test_{}_{}", p.schema_dir, p.module),
            )
        })
        .collect();
    for (p, name) in placements.iter_mut().zip(names::disambiguate(&items)) {
        p.test_file = format!("{name}.py");
    }
    placements
}

/// The text of `path` if it holds anything but white space.
fn read_existing(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::new(format!(
                    "{} is not UTF-8 text, so it cannot be a generated module",
                    path.display()
                ))
                .hint(format!(
                    "move {} away so that git-hop can generate it",
                    path.display()
                ))
            })?;
            Ok(if text.trim().is_empty() {
                None
            } else {
                Some(text)
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e).hint("check the file's permissions")),
    }
}

/// A file [`generate`] means to write, with what is there now.
struct Planned {
    rel_path: PathBuf,
    content: String,
    current: Option<String>,
}

/// Generates the package `package` and its test skeletons under `root` from
/// `model`. `dbname_for_config` names the half_orm config file that `MODEL`
/// reads (`$HALFORM_CONF_DIR/<dbname_for_config>`); when that file is missing,
/// half_orm connects to the database of that name by peer authentication.
///
/// Nothing is written when any existing file is in the way (a file without
/// the markers at a generated path, say): the error names it.
pub fn generate(
    model: &Model,
    root: &Path,
    package: &str,
    dbname_for_config: &str,
) -> Result<Report> {
    check_package(package)?;
    check_config_name(dbname_for_config)?;
    let placements = place(model);
    let pkg = PathBuf::from(package);

    let mut plan: Vec<Planned> = Vec::new();
    let mut planned_generated: BTreeSet<PathBuf> = BTreeSet::new();
    let mut add = |rel_path: PathBuf,
                   layout: &[regions::Marker],
                   render: &dyn Fn(&[String]) -> String|
     -> Result<()> {
        let abs = root.join(&rel_path);
        let current = read_existing(&abs)?;
        let user = match &current {
            Some(text) => regions::user_regions(text, layout, &abs)?,
            None => vec![String::new(); layout.iter().filter(|m| **m == End).count() + 1],
        };
        planned_generated.insert(rel_path.clone());
        plan.push(Planned {
            rel_path,
            content: render(&user),
            current,
        });
        Ok(())
    };

    add(pkg.join("__init__.py"), &[Begin], &|r| {
        python::render_package_init(package, dbname_for_config, &r[0])
    })?;
    let mut by_dir: BTreeMap<&str, &str> = BTreeMap::new();
    for p in &placements {
        by_dir.entry(&p.schema_dir).or_insert(&p.relation.schema);
    }
    for (dir, schema) in &by_dir {
        add(pkg.join(dir).join("__init__.py"), &[Begin], &|r| {
            python::render_schema_init(schema, &r[0])
        })?;
    }
    let targets: typed::Targets = placements
        .iter()
        .map(|p| {
            (
                (p.relation.schema.clone(), p.relation.name.clone()),
                (
                    format!("{package}.{}.{}", p.schema_dir, p.module),
                    p.class.clone(),
                ),
            )
        })
        .collect();
    let mut tests: Vec<Planned> = Vec::new();
    for p in &placements {
        let ctx = ModuleCtx {
            package,
            schema_dir: &p.schema_dir,
            module: &p.module,
            class: &p.class,
            relation: p.relation,
            targets: &targets,
        };
        add(
            pkg.join(&p.schema_dir).join(format!("{}.py", p.module)),
            &[Begin, End, Begin, End],
            &|r| python::render_module(&ctx, [&r[0], &r[1], &r[2]]),
        )?;
        let rel_path = PathBuf::from("tests")
            .join(&p.schema_dir)
            .join(&p.module)
            .join(&p.test_file);
        let current = match fs::symlink_metadata(root.join(&rel_path)) {
            Ok(_) => Some(String::new()), // exists: never rewritten
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("cannot inspect", &root.join(&rel_path), e)),
        };
        tests.push(Planned {
            rel_path,
            content: python::render_test(&ctx),
            current,
        });
    }

    let mut report = Report::default();
    for item in &plan {
        if item.current.as_deref() == Some(item.content.as_str()) {
            report.unchanged += 1;
            continue;
        }
        write_file(&root.join(&item.rel_path), &item.content)?;
        report.written.push(item.rel_path.clone());
    }
    let test_paths: BTreeSet<PathBuf> = tests.iter().map(|t| t.rel_path.clone()).collect();
    for item in &tests {
        if item.current.is_some() {
            report.unchanged += 1;
            continue;
        }
        write_file(&root.join(&item.rel_path), &item.content)?;
        report.written.push(item.rel_path.clone());
    }

    remove_stale_modules(root, &pkg, &planned_generated, &mut report.removed)?;
    remove_stale_tests(root, &test_paths, &mut report.removed)?;
    report.written.sort();
    report.removed.sort();
    Ok(report)
}

/// Writes `content` to `path` through a temporary file and a rename, so an
/// interrupted run never leaves a half-written module; keeps the old mode.
/// Only replacements are synced to disk (a new file holds no user code yet),
/// which keeps a first generation of hundreds of modules fast.
fn write_file(path: &Path, content: &str) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| {
        Error::io("cannot create the folder", parent, e)
            .hint("check the permissions of the work tree")
    })?;
    let existing = fs::metadata(path).ok();
    let mode = existing
        .as_ref()
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.git-hop-tmp"));
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if existing.is_some() {
            // It replaces a file that may hold the user's code: the new
            // content must be on disk before the old one goes.
            f.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write", path, e)
            .hint("check the permissions of the work tree and the free disk space")
    })
}

/// True when `path` is a regular file (not a link) starting with the header.
fn is_generated(path: &Path) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.file_type().is_file() {
        return false;
    }
    let mut head = [0u8; 64];
    let n = fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    head[..n].starts_with(HEADER_PREFIX.as_bytes())
}

/// Sub-folders of `dir` (not links), sorted; none when it does not exist.
fn subdirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io("cannot list", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir && entry.file_name() != "__pycache__" {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

fn remove(root: &Path, path: &Path, removed: &mut Vec<PathBuf>) -> Result<()> {
    fs::remove_file(path).map_err(|e| {
        Error::io("cannot remove", path, e).hint("check the permissions of the work tree")
    })?;
    removed.push(path.strip_prefix(root).unwrap_or(path).to_path_buf());
    Ok(())
}

/// Removes `dir`, which git-hop just emptied of generated files, if nothing
/// but a `__pycache__` is left in it. Folders git-hop did not empty stay.
fn remove_dir_if_empty(dir: &Path) -> Result<()> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))? {
        names.push(
            entry
                .map_err(|e| Error::io("cannot list", dir, e))?
                .file_name(),
        );
    }
    if names.iter().all(|n| n == "__pycache__") {
        if !names.is_empty() {
            fs::remove_dir_all(dir.join("__pycache__"))
                .map_err(|e| Error::io("cannot remove", &dir.join("__pycache__"), e))?;
        }
        fs::remove_dir(dir).map_err(|e| Error::io("cannot remove", dir, e))?;
    }
    Ok(())
}

/// Generated `.py` files of the package that no relation or schema claims.
fn remove_stale_modules(
    root: &Path,
    pkg: &Path,
    keep: &BTreeSet<PathBuf>,
    removed: &mut Vec<PathBuf>,
) -> Result<()> {
    for dir in subdirs(&root.join(pkg))? {
        let before = removed.len();
        for file in files_in(&dir)? {
            let rel = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
            let is_py = file.extension().is_some_and(|e| e == "py");
            if is_py && !keep.contains(&rel) && is_generated(&file) {
                remove(root, &file, removed)?;
            }
        }
        if removed.len() > before {
            remove_dir_if_empty(&dir)?;
        }
    }
    Ok(())
}

/// Test skeletons (`tests/<schema>/<relation>/test_*.py`) of relations that
/// are gone, while they still carry the generated header.
fn remove_stale_tests(
    root: &Path,
    keep: &BTreeSet<PathBuf>,
    removed: &mut Vec<PathBuf>,
) -> Result<()> {
    for schema_dir in subdirs(&root.join("tests"))? {
        let before = removed.len();
        for rel_dir in subdirs(&schema_dir)? {
            let before_rel = removed.len();
            for file in files_in(&rel_dir)? {
                let rel = file.strip_prefix(root).unwrap_or(&file).to_path_buf();
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.starts_with("test_")
                    && name.ends_with(".py")
                    && !keep.contains(&rel)
                    && is_generated(&file)
                {
                    remove(root, &file, removed)?;
                }
            }
            if removed.len() > before_rel {
                remove_dir_if_empty(&rel_dir)?;
            }
        }
        if removed.len() > before {
            remove_dir_if_empty(&schema_dir)?;
        }
    }
    Ok(())
}

/// A value of a config file, as ConfigParser will read it back.
fn ini_value(key: &str, value: &str) -> Result<String> {
    if value.contains(['\n', '\r', '\0']) || value.trim() != value || value.is_empty() {
        return Err(Error::new(format!(
            "the half_orm config value {key} = {value:?} cannot be written (empty, multi-line or with spaces around it)"
        ))
        .hint("use connection settings without such characters"));
    }
    // ConfigParser interpolates `%`; `%%` reads back as `%`.
    Ok(value.replace('%', "%%"))
}

/// Writes the half_orm connection file `<dir>/<name>` (ini format, section
/// `[database]`: `name`, `host`, `port`, `user`), readable by its owner only,
/// without any password. Point `HALFORM_CONF_DIR` at `dir` and the generated
/// package connects with `Model('<name>')`.
pub fn write_halform_config(dir: &Path, name: &str, params: &HalformParams) -> Result<PathBuf> {
    check_config_name(name)?;
    let mut text = String::from(
        "# half_orm connection file, written by git-hop. No password here: libpq\n\
         # reads it from PGPASSWORD or ~/.pgpass.\n[database]\n",
    );
    text.push_str(&format!("name = {}\n", ini_value("name", &params.dbname)?));
    if let Some(host) = &params.host {
        text.push_str(&format!("host = {}\n", ini_value("host", host)?));
    }
    if let Some(port) = params.port {
        text.push_str(&format!("port = {port}\n"));
    }
    if let Some(user) = &params.user {
        text.push_str(&format!("user = {}\n", ini_value("user", user)?));
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| Error::io("cannot create the half_orm config folder", dir, e))?;
    let path = dir.join(name);
    // A temporary file of this writer's own (tempfile creates it 0600):
    // two commands of one clone may write the config at once; the last
    // rename wins, whole.
    let result = (|| -> std::io::Result<()> {
        let mut f = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".git-hop-tmp")
            .tempfile_in(dir)?;
        f.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(text.as_bytes())?;
        f.as_file().sync_all()?;
        f.persist(&path).map(|_| ()).map_err(|e| e.error)
    })();
    result.map_err(|e| {
        Error::io("cannot write the half_orm config file", &path, e)
            .hint("check the permissions of that folder")
    })?;
    Ok(path)
}
