//! `git hop-release clone`: a working copy of a project with its own
//! database built from the current model snapshot (docs/releases.md).

use std::path::{Path, PathBuf};

use crate::commands::db_args::DbArgs;
use crate::db::database::Database;
use crate::db::meta;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::project::{PROD_BRANCH, Project};
use crate::snapshot;
use crate::undo::Undo;

/// Clone a project and build its database
///
/// Clone a project, check out ho-prod, build the local database from the
/// current model snapshot and install the hooks.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The repository to clone
    pub url: String,
    /// Folder to clone into (default: the repository's name)
    pub dir: Option<PathBuf>,
    /// Database name (default: [database] name of .hop/config); remembered in git config hop.database.name
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// Mark this clone as a production server: it refuses development
    /// commands and never resets its database (an existing database is kept)
    #[arg(long)]
    pub production: bool,
    /// Replace the database even if it exists and is not empty (development clones only)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    if let Some(name) = &args.database {
        crate::settings::validate_db_name(name)?;
    }
    if let Some(url) = &args.db.db_url {
        crate::db::database::check_db_url(url)?;
    }
    if args.production && args.force {
        return Err(Error::usage(
            "--force cannot be used with --production: a production clone never resets its database",
        ));
    }
    let cwd = std::env::current_dir()
        .map_err(|e| Error::new(format!("cannot read the current directory: {e}")))?;
    let dir = cwd.join(
        args.dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(default_dir(&args.url))),
    );
    let existed = crate::project::check_new_folder(&dir)?;
    let mut undo = Undo::new();
    let result = clone(&args, &cwd, &dir, existed, &mut undo);
    let summary = undo.on_error(result)?;
    println!("{summary}");
    Ok(())
}

fn default_dir(url: &str) -> String {
    let base = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("project");
    let base = base.strip_suffix(".git").unwrap_or(base);
    if base.is_empty() {
        "project".into()
    } else {
        base.to_string()
    }
}

fn clone(args: &Args, cwd: &Path, dir: &Path, existed: bool, undo: &mut Undo) -> Result<String> {
    let git = Git::new(cwd)?;
    {
        let d = dir.to_path_buf();
        undo.push(format!("remove {}", d.display()), move || {
            crate::project::remove_new_folder(&d, existed)
        });
    }
    let dir_s = dir.display().to_string();
    git.run(&["clone", "-q", "--branch", PROD_BRANCH, &args.url, &dir_s])
        .map_err(|e| {
            Error::new(format!("cannot clone {}: {}", args.url, e.message))
                .hint("check the URL; a git-hop project has a ho-prod branch")
        })?;
    let project = Project::discover(dir)
        .map_err(|e| e.context(format!("{} is not a git-hop project", args.url)))?;
    let g = &project.git;
    if args.production {
        g.run(&["config", "hop.production", "true"])?;
    }
    if let Some(name) = &args.database {
        g.run(&["config", "hop.database.name", name])?;
    }
    if let Some(url) = &args.db.db_url {
        // Remember the server, never a password.
        let mut p = crate::db::database::check_db_url(url)?;
        if p.password.take().is_some() {
            eprintln!(
                "note: the password in --db-url is not stored; use PGPASSWORD or ~/.pgpass for later commands"
            );
        }
        g.run(&["config", "hop.database.url", &p.to_conninfo()])?;
    }
    let project = Project::discover(dir)?;
    let version = snapshot::current_version(&project.root)?;
    // Development seed data (docs/patches.md), checked before the database
    // is touched; a production clone never loads it.
    let seed = if args.production {
        None
    } else {
        crate::seed::Seed::of(&project.root)?
    };
    let db = Database::resolve(
        &args.db.options(None),
        &project.repo.common_dir(),
        &project.clone,
        project.config.database.name.as_deref(),
        &project.config.project.package,
    )?;
    if let Some(c) = &db.cluster {
        let c = c.clone();
        undo.push("remove the embedded cluster", move || c.destroy());
    }
    db.ensure_server()?;

    let how;
    let mut kept = None;
    if db.exists()? {
        let empty = db.is_empty()?;
        if args.production {
            let mut client = db.connect()?;
            match meta::database_version(&mut client)? {
                Some(v) => {
                    kept = Some(v.clone());
                    how = format!(
                        "kept the production database {} (version {v}; run git hop-release upgrade to bring it up to date)",
                        db.name()
                    )
                }
                None => {
                    return Err(Error::new(format!("database {} exists but has no git-hop metadata", db.name()))
                        .hint("a production clone never resets a database: check --database, or adopt it with git hop-release init"));
                }
            }
        } else if !empty && !args.force {
            return Err(Error::new(format!(
                "database {} already exists and is not empty",
                db.name()
            ))
            .hint("pass --database NAME for another database, or --force to replace it"));
        } else {
            db.drop_database()?;
            db.create()?;
            load(&db, &project, &version)?;
            how = format!("replaced the database {} with version {version}", db.name());
        }
    } else {
        db.create()?;
        if db.cluster.is_none() {
            let params = db.params.clone();
            undo.push(format!("drop database {}", db.name()), move || {
                let mut c = crate::db::conn::connect(&params.with_dbname("postgres"))?;
                let name = params.dbname.clone().unwrap_or_default();
                c.batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    crate::db::database::quote_ident(&name)
                ))
                .map_err(|e| crate::db::database::sql_error("cannot drop the database", e))
            });
        }
        load(&db, &project, &version)?;
        how = format!("created the database {} at version {version}", db.name());
    }
    // A kept production database is at its own version: the work tree
    // follows it (upgrade moves both on), and its code is the committed one.
    let generated = match &kept {
        Some(v) => {
            crate::upgrade::move_work_tree(&project, v)?;
            None
        }
        None => crate::generate::regenerate(&project.root, &project.config, &db)?,
    };
    if let Some(seed) = &seed {
        let conf_dir = crate::generate::working_config_dir(&project.state_dir());
        let env = crate::generate::environment(&conf_dir, &project.root, &project.config, &db)?;
        seed.run(&db, &version, env, &mut std::io::stdout())?;
    }
    crate::hooks::install(g)?;
    crate::generate::write_working_config(&project, &db)?;
    let role = if args.production {
        " (production clone)"
    } else {
        ""
    };
    Ok(format!(
        "cloned {} into {}{role}\n{how} on {}\n{}\nhooks installed\n\nnext steps:\n  cd {}\n  git hop-release status",
        args.url,
        dir.display(),
        db.server(),
        match &kept {
            Some(v) => format!("work tree at {} (the database's version)", v.tag_name()),
            None => crate::generate::summary(&generated),
        },
        dir.display()
    ))
}

fn load(db: &Database, project: &Project, version: &crate::version::Version) -> Result<()> {
    snapshot::load(&db.params, &project.root, version)?;
    if let Some(commit) = project.repo.rev(&version.tag_name()) {
        let mut client = db.connect()?;
        meta::set_commit(&mut client, version, &commit)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_dir_from_url() {
        assert_eq!(default_dir("/srv/git/shop.git"), "shop");
        assert_eq!(default_dir("git@host:team/shop.git/"), "shop");
        assert_eq!(default_dir("https://h/x/demo"), "demo");
    }
}
