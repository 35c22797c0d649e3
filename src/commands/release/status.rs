//! `git hop-release status`: production version, database version, which
//! database and server, the current branch and its role.

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::db::meta;
use crate::error::Result;
use crate::project::Project;
use crate::release_file;
use crate::snapshot;
use crate::version;

/// Show the production version, the database's version, which database and
/// server are in use, releases in preparation, and the current branch's role
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Serialize, Debug)]
pub struct Status {
    pub package: String,
    pub root: String,
    pub production_version: Option<String>,
    pub model_version: Option<String>,
    pub releases_in_preparation: Vec<String>,
    pub branch: Option<String>,
    pub branch_role: String,
    pub production_clone: bool,
    pub database: DatabaseStatus,
}

#[derive(Serialize, Debug)]
pub struct DatabaseStatus {
    pub name: String,
    pub server: String,
    pub source: String,
    pub embedded: bool,
    pub version: Option<String>,
    pub error: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let tags = project.repo.tags();
    let production = version::latest_production(tags.iter().map(String::as_str));
    let model = snapshot::current_version(&project.root).ok();
    let releases = release_file::releases_in_preparation(&project.root)?;
    let db = project.database(&args.db.options(None))?;
    let (db_version, db_error) = match db
        .connect()
        .and_then(|mut c| meta::database_version(&mut c))
    {
        Ok(v) => (v.map(|v| v.to_string()), None),
        Err(e) => (None, Some(e.message)),
    };
    let branch = project.current_branch();
    let status = Status {
        package: project.config.project.package.clone(),
        root: project.root.display().to_string(),
        production_version: production.map(|v| v.to_string()),
        model_version: model.map(|v| v.to_string()),
        releases_in_preparation: releases.iter().map(|v| v.to_string()).collect(),
        branch: branch.clone(),
        branch_role: project.role().describe(),
        production_clone: project.clone.production,
        database: DatabaseStatus {
            name: db.name().to_string(),
            server: db.server(),
            source: db.source.to_string(),
            embedded: db.cluster.is_some(),
            version: db_version,
            error: db_error,
        },
    };
    if args.json {
        let text = serde_json::to_string_pretty(&status)
            .map_err(|e| crate::Error::new(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&status));
    }
    Ok(())
}

fn or_none(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("none")
}

pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let kind = if s.production_clone {
        " (production clone)"
    } else {
        ""
    };
    out.push_str(&format!("project:     {}{kind} in {}\n", s.package, s.root));
    out.push_str(&format!(
        "production:  {}\n",
        or_none(&s.production_version)
    ));
    let db_version = match (&s.database.version, &s.database.error) {
        (_, Some(e)) => format!("unknown ({e})"),
        (Some(v), None) => v.clone(),
        (None, None) => "none (no half_orm_meta)".into(),
    };
    out.push_str(&format!("database:    {} {db_version}\n", s.database.name));
    out.push_str(&format!(
        "server:      {} (from {})\n",
        s.database.server, s.database.source
    ));
    let releases = if s.releases_in_preparation.is_empty() {
        "none".to_string()
    } else {
        s.releases_in_preparation.join(", ")
    };
    out.push_str(&format!("in progress: {releases}\n"));
    out.push_str(&format!(
        "branch:      {} ({})\n",
        or_none(&s.branch),
        s.branch_role
    ));
    if s.releases_in_preparation.is_empty() && !s.production_clone {
        out.push_str("\nnext: git hop-release new <patch|minor|major>\n");
    }
    out
}
