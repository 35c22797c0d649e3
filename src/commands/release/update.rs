//! `git hop-release update`: fetches origin and lists the production
//! versions the database lacks, in order, with their patches (docs/production.md).
//! Changes nothing (but the fetch).

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::db::meta;
use crate::error::{Error, Result};
use crate::origin::Origin;
use crate::project::Project;
use crate::upgrade::{self, runner};

/// List the production releases newer than the database
///
/// Fetch origin and list the production releases newer than the database's
/// version, in order, with their patches (changes nothing)
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Serialize, Debug)]
pub struct Update {
    /// The version of this document's shape (docs/ci.md).
    pub schema_version: u32,
    pub database: String,
    pub database_version: String,
    /// The latest production version on ho-prod.
    pub production_version: Option<String>,
    pub production_clone: bool,
    /// In application order.
    pub pending: Vec<PendingRelease>,
    /// Steps an interrupted upgrade left (release in progress), if any.
    pub interrupted: Vec<InterruptedStep>,
}

#[derive(Serialize, Debug)]
pub struct PendingRelease {
    pub version: String,
    pub tag: String,
    pub commit: String,
    pub patches: Vec<String>,
}

#[derive(Serialize, Debug)]
pub struct InterruptedStep {
    pub release: String,
    pub patch: String,
    pub file: String,
    pub state: String,
    pub error: Option<String>,
}

impl From<crate::upgrade::runner::StepRow> for InterruptedStep {
    fn from(r: crate::upgrade::runner::StepRow) -> Self {
        InterruptedStep {
            release: r.release,
            patch: r.patch_id,
            file: r.file,
            state: r.state,
            error: r.error,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    if let Some(o) = Origin::of(&project.git)? {
        o.fetch()?;
    }
    let db = project.database(&args.db.options(None))?;
    let mut client = db.connect()?;
    let version = meta::database_version(&mut client)?.ok_or_else(|| {
        Error::new(format!(
            "database {} has no git-hop metadata (half_orm_meta)",
            db.name()
        ))
        .hint("check which database this clone uses: git hop-release status")
    })?;
    let rows = runner::step_rows(&mut client)?;
    let pending = upgrade::pending(&project, &version, None)?;
    let production = upgrade::production_versions(&project)?.pop();
    let update = Update {
        schema_version: crate::machine::SCHEMA_VERSION,
        database: db.name().to_string(),
        database_version: version.to_string(),
        production_version: production.map(|v| v.to_string()),
        production_clone: project.clone.production,
        pending: pending
            .iter()
            .map(|p| PendingRelease {
                version: p.version.to_string(),
                tag: p.tag.clone(),
                commit: p.commit.clone(),
                patches: p.patches.iter().map(|i| i.to_string()).collect(),
            })
            .collect(),
        interrupted: rows.into_iter().map(InterruptedStep::from).collect(),
    };
    if args.json {
        let text = serde_json::to_string_pretty(&update)
            .map_err(|e| Error::new(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        print!("{}", render(&update));
    }
    Ok(())
}

pub fn render(u: &Update) -> String {
    let mut out = format!(
        "database {} is at {} (production: {})\n",
        u.database,
        u.database_version,
        u.production_version.as_deref().unwrap_or("none")
    );
    if !u.interrupted.is_empty() {
        out.push_str(&format!(
            "an upgrade of {} was interrupted; steps recorded:\n",
            u.interrupted[0].release
        ));
        for s in &u.interrupted {
            let err = s
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            out.push_str(&format!("  {} {} {}{err}\n", s.state, s.patch, s.file));
        }
    }
    if u.pending.is_empty() {
        out.push_str("up to date: no production release to apply\n");
        return out;
    }
    out.push_str(&format!(
        "{} release(s) to apply, in this order:\n",
        u.pending.len()
    ));
    for p in &u.pending {
        let patches = if p.patches.is_empty() {
            "no patch".to_string()
        } else {
            p.patches.join(", ")
        };
        out.push_str(&format!("  {}  {patches}\n", p.version));
    }
    if u.production_clone {
        out.push_str("\nnext: git hop-release upgrade --dry-run, then git hop-release upgrade\n");
    } else {
        out.push_str(
            "\nthis is a development clone: git hop-release restore <version> rebuilds the database at a production version\n",
        );
    }
    out
}
