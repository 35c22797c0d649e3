//! `git hop-release init`: a new project, on a new database or adopting an
//! existing one as version 0.0.0 (docs/releases.md).

use std::path::{Path, PathBuf};

use crate::commands::db_args::DbArgs;
use crate::db::database::{Database, quote_ident};
use crate::db::meta;
use crate::error::{Error, Result};
use crate::git::{Git, Repo};
use crate::origin::RefUpdate;
use crate::project::PROD_BRANCH;
use crate::settings::{self, CloneSettings, ProjectConfig};
use crate::snapshot;
use crate::undo::Undo;
use crate::version::Version;

/// Create a new project (new or adopted database, version 0.0.0)
///
/// Create a new project: a folder with a git repository on ho-prod, the
/// database (created, or an existing one adopted as version 0.0.0), the
/// half_orm_meta schema, the 0.0.0 model snapshot, hooks; tagged v0.0.0.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Package name: a lower-case Python identifier, used for the folder and the generated code
    pub package: String,
    /// Database to create, or to adopt when it already exists (default: the package name)
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// An empty git repository to push the new project to (becomes `origin`)
    #[arg(long, value_name = "URL")]
    pub origin: Option<String>,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    // Validate everything before changing anything.
    settings::validate_package(&args.package)?;
    if let Some(name) = &args.database {
        settings::validate_db_name(name)?;
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::new(format!("cannot read the current directory: {e}")))?;
    let target = cwd.join(&args.package);
    let existed = crate::project::check_new_folder(&target)?;
    let git = Git::new(&cwd)?;
    git.run(&["var", "GIT_COMMITTER_IDENT"]).map_err(|_| {
        Error::new("git does not know who you are (no user.name / user.email)")
            .hint("git config --global user.name \"Your Name\" && git config --global user.email you@example.com")
    })?;
    if let Some(origin) = &args.origin {
        check_origin(&git, origin)?;
    }

    let mut undo = Undo::new();
    let result = create(&args, &target, existed, &mut undo);
    let summary = undo.on_error(result)?;
    println!("{summary}");
    Ok(())
}

/// The origin must answer and must not hold a project already.
fn check_origin(git: &Git, origin: &str) -> Result<()> {
    let refs = git
        .run(&["ls-remote", "--heads", "--tags", origin])
        .map_err(|e| {
            Error::new(format!("cannot reach origin {origin}: {}", e.message))
                .hint("check the URL and your access; --origin takes an existing, empty repository")
        })?;
    if refs
        .lines()
        .any(|l| l.ends_with("refs/heads/ho-prod") || l.contains("refs/tags/v"))
    {
        return Err(Error::new(format!(
            "origin {origin} already holds a git-hop project (it has ho-prod or v* tags)"
        ))
        .hint(format!("clone it instead: git hop-release clone {origin}")));
    }
    Ok(())
}

fn create(args: &Args, target: &Path, existed: bool, undo: &mut Undo) -> Result<String> {
    // 1. The folder and the repository.
    if !existed {
        std::fs::create_dir(target).map_err(|e| Error::io("cannot create", target, e))?;
    }
    {
        let t = target.to_path_buf();
        undo.push(format!("remove {}", t.display()), move || {
            crate::project::remove_new_folder(&t, existed)
        });
    }
    let git = Git::new(target)?;
    git.run(&["init", "-q", "-b", PROD_BRANCH])?;
    let repo =
        Repo::discover(target).ok_or_else(|| Error::new("git init did not create a repository"))?;
    let common_dir = repo.common_dir();

    // 2. The database: created, or adopted.
    let db = Database::resolve(
        &args.db.options(args.database.as_deref()),
        &common_dir,
        &CloneSettings::default(),
        None,
        &args.package,
    )?;
    if let Some(cluster) = &db.cluster {
        let c = cluster.clone();
        undo.push("remove the embedded cluster", move || c.destroy());
    }
    db.ensure_server()?;
    let exists = db
        .exists()
        .map_err(|e| e.context(format!("cannot use {}", db.describe())))?;
    let adopted = if exists {
        let mut client = db.connect()?;
        if let Some(v) = meta::database_version(&mut client)? {
            return Err(Error::new(format!(
                "database {} is already a git-hop database (version {v})",
                db.name()
            ))
            .hint("clone its project with `git hop-release clone <url> --database NAME`, or choose another --database"));
        }
        let had_meta = meta::is_installed(&mut client)?;
        if !had_meta {
            let params = db.params.clone();
            undo.push(
                format!("remove half_orm_meta from {}", db.name()),
                move || {
                    let mut c = crate::db::conn::connect(&params)?;
                    c.batch_execute(&format!(
                        "DROP SCHEMA IF EXISTS {} CASCADE",
                        quote_ident(meta::SCHEMA)
                    ))
                    .map_err(|e| crate::db::database::sql_error("cannot drop half_orm_meta", e))
                },
            );
        }
        true
    } else {
        db.create()?;
        if db.cluster.is_none() {
            let params = db.params.clone();
            let name = db.name().to_string();
            undo.push(format!("drop database {name}"), move || {
                drop_db(&params, &name)
            });
        }
        false
    };

    // 3. Metadata and version 0.0.0, in one transaction.
    let v0 = "0.0.0".parse::<Version>()?;
    let mut client = db.connect()?;
    {
        let mut tx = client
            .transaction()
            .map_err(|e| crate::db::database::sql_error("cannot start a transaction", e))?;
        meta::install(&mut tx)?;
        meta::record_release(&mut tx, &v0, None)?;
        tx.commit()
            .map_err(|e| crate::db::database::sql_error("cannot commit the metadata", e))?;
    }

    // 4. The project's files and the 0.0.0 model snapshot.
    let dbname = db.name().to_string();
    write_skeleton(target, &args.package, &dbname)?;
    let schema = snapshot::dump_schema(&db.params)?;
    let metadata = meta::dump_rows(&mut client)?;
    let data = snapshot::dump::NO_DATA;
    // Every clone is built from this snapshot: it must reload
    // (docs/snapshots.md), else nothing is left behind.
    let texts = snapshot::Texts {
        schema,
        data: data.to_string(),
        metadata,
    };
    snapshot::proof::prove(&db, &texts, &v0)
        .map_err(|e| e.context(format!("database {} cannot be adopted", db.name())))?;
    let snapshot::Texts {
        schema, metadata, ..
    } = texts;
    snapshot::write(target, &v0, &schema, data, &metadata)?;
    let config = ProjectConfig::load(target)?;
    let generated = crate::generate::regenerate(target, &config, &db)?;

    // 5. Commit, tag, hooks.
    git.run(&["add", "-A"])?;
    git.run(&[
        "commit",
        "-q",
        "-m",
        &format!("[hop] init {} at 0.0.0", args.package),
    ])?;
    git.run(&["tag", "-a", &v0.tag_name(), "-m", "[hop] release 0.0.0"])?;
    let commit = git.run(&["rev-parse", "HEAD"])?;
    let tag_id = git.run(&["rev-parse", &format!("refs/tags/{}", v0.tag_name())])?;
    meta::set_commit(&mut client, &v0, &commit)?;
    crate::hooks::install(&git)?;
    // The half_orm config of the new database (docs/codegen.md).
    let project = crate::project::Project::discover(target)?;
    crate::generate::write_working_config(&project, &db)?;

    // 6. Origin.
    let mut pushed = String::new();
    if let Some(origin) = &args.origin {
        git.run(&["remote", "add", "origin", origin])?;
        let origin_remote = crate::origin::Origin::of(&git)?
            .ok_or_else(|| Error::new("the origin remote was not added"))?;
        origin_remote.push(&[
            RefUpdate::create(format!("refs/heads/{PROD_BRANCH}"), &commit),
            RefUpdate::create(format!("refs/tags/{}", v0.tag_name()), &tag_id),
        ])?;
        git.run(&[
            "branch",
            "-q",
            "--set-upstream-to",
            &format!("origin/{PROD_BRANCH}"),
        ])?;
        pushed = format!("\npushed ho-prod and v0.0.0 to {origin}");
    }

    let how = if adopted {
        format!("adopted the existing database {dbname} as version 0.0.0 (its rows are untouched)")
    } else {
        format!("created the database {dbname}")
    };
    Ok(format!(
        "created project {} in {}\n{how} on {}\nmodel snapshot .hop/model/schema-0.0.0.sql; {}\ncommit {} on ho-prod tagged v0.0.0; hooks installed{pushed}\n\n\
         next steps:\n  cd {}\n  git hop-release status\n  git hop-release new minor      # start release 0.1.0",
        args.package,
        target.display(),
        db.server(),
        crate::generate::summary(&generated),
        &commit[..commit.len().min(10)],
        args.package,
    ))
}

fn drop_db(params: &crate::db::conn::ConnParams, name: &str) -> Result<()> {
    let mut c = crate::db::conn::connect(&params.with_dbname("postgres"))
        .or_else(|_| crate::db::conn::connect(&params.with_dbname("template1")))?;
    c.batch_execute(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(name)
    ))
    .map_err(|e| crate::db::database::sql_error(&format!("cannot drop database {name}"), e))
}

fn write_skeleton(root: &Path, package: &str, dbname: &str) -> Result<()> {
    let files: Vec<(PathBuf, String)> = vec![
        (root.join(settings::CONFIG_PATH), ProjectConfig::render_new(package, dbname)),
        (root.join(".gitignore"), "__pycache__/\n*.pyc\n.pytest_cache/\n.venv/\n".to_string()),
        (
            root.join("Patches/README.md"),
            "# Patches\n\nOne folder per patch (`git hop-patch create <id>`): its `*.sql` files run in name order.\n".to_string(),
        ),
        (
            root.join("tests/README.md"),
            "# Tests\n\nThe project's tests; `[tests] command` in `.hop/config` runs them.\n".to_string(),
        ),
    ];
    for (path, content) in files {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
        }
        std::fs::write(&path, content).map_err(|e| Error::io("cannot write", &path, e))?;
    }
    Ok(())
}
