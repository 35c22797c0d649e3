//! `git hop-release status`: production version, database version, which
//! database and server, the releases in preparation (their patches and
//! states, RC tags, whether they contain production), what can be promoted
//! next, the current branch and its role.

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::db::meta;
use crate::error::Result;
use crate::project::Project;
use crate::release;
use crate::snapshot;
use crate::version;

/// Show production, database, releases in preparation and branch
///
/// Show the production version, the database's version, which database and
/// server are in use, the releases in preparation with their patches, RC
/// tags and what can be promoted next, the current branch's role (reads
/// origin's branches as last fetched), and the tagged model snapshots that
/// do not reload (each is loaded once per clone and server version; not on
/// a production clone)
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
    /// The version of this document's shape (docs/ci.md).
    pub schema_version: u32,
    pub package: String,
    pub root: String,
    pub production_version: Option<String>,
    pub model_version: Option<String>,
    pub releases_in_preparation: Vec<String>,
    /// Each release in preparation, smallest first.
    pub releases: Vec<ReleaseStatus>,
    /// What `promote` would do now, or why it cannot.
    pub next_promotion: Option<String>,
    /// Why releases could not be read (no ho-prod, a broken release file…).
    pub releases_error: Option<String>,
    pub branch: Option<String>,
    pub branch_role: String,
    pub production_clone: bool,
    pub database: DatabaseStatus,
    pub snapshots: SnapshotStatus,
}

/// Whether the tagged model snapshots reload (checked once per snapshot
/// and server version; not on a production clone, which never loads one).
#[derive(Serialize, Debug)]
pub struct SnapshotStatus {
    pub checked: bool,
    /// Tagged snapshots that do not reload, with the reason.
    pub not_reloading: Vec<snapshot::check::Failure>,
    /// Why the check could not run.
    pub error: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct ReleaseStatus {
    pub version: String,
    pub branch: String,
    pub hotfix: bool,
    /// Patches in application order with their state.
    pub patches: Vec<PatchStatus>,
    /// `vX.Y.Z-rcN` tags of this release.
    pub rc_tags: Vec<String>,
    /// Whether the branch contains the current ho-prod (otherwise it must sync).
    pub contains_production: bool,
}

#[derive(Serialize, Debug)]
pub struct PatchStatus {
    pub id: String,
    pub state: String,
}

#[derive(Serialize, Debug)]
pub struct DatabaseStatus {
    pub name: String,
    pub server: String,
    pub source: String,
    pub embedded: bool,
    pub version: Option<String>,
    pub error: Option<String>,
    /// The steps an interrupted split upgrade recorded (resumed by `git
    /// hop-release upgrade`); empty when there is none.
    pub interrupted_upgrade: Vec<crate::commands::release::update::InterruptedStep>,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let tags = project.repo.tags();
    let production = version::latest_production(tags.iter().map(String::as_str));
    let model = snapshot::current_version(&project.root).ok();
    let (releases, next_promotion, releases_error) = match release::survey(&project, false) {
        Ok(land) => {
            let mut list = Vec::new();
            for r in &land.releases {
                list.push(ReleaseStatus {
                    version: r.version.to_string(),
                    branch: r.branch.clone(),
                    hotfix: r.is_hotfix(),
                    patches: r
                        .file
                        .patches()
                        .into_iter()
                        .map(|(id, st)| PatchStatus {
                            id,
                            state: st.to_string(),
                        })
                        .collect(),
                    rc_tags: land
                        .rc_tags(&r.version)
                        .iter()
                        .map(|t| t.tag_name())
                        .collect(),
                    contains_production: land.contains_production(&project.git, &r.commit)?,
                });
            }
            let next = next_promotion(&project, &land);
            (list, next, None)
        }
        Err(e) => (Vec::new(), None, Some(e.message)),
    };
    let db = project.database(&args.db.options(None))?;
    let read = db.connect().and_then(|mut c| {
        let v = meta::database_version(&mut c)?;
        let steps = crate::upgrade::runner::step_rows(&mut c)?;
        Ok((v, steps))
    });
    let (db_version, interrupted, db_error) = match read {
        Ok((v, steps)) => (
            v.map(|v| v.to_string()),
            steps
                .into_iter()
                .map(crate::commands::release::update::InterruptedStep::from)
                .collect(),
            None,
        ),
        Err(e) => (None, Vec::new(), Some(e.message)),
    };
    let snapshots = if project.clone.production || db_error.is_some() {
        SnapshotStatus {
            checked: false,
            not_reloading: Vec::new(),
            error: None,
        }
    } else {
        match snapshot::check::tagged_failures(&project, &db) {
            Ok(f) => SnapshotStatus {
                checked: true,
                not_reloading: f,
                error: None,
            },
            Err(e) => SnapshotStatus {
                checked: false,
                not_reloading: Vec::new(),
                error: Some(e.message),
            },
        }
    };
    let branch = project.current_branch();
    let status = Status {
        schema_version: crate::machine::SCHEMA_VERSION,
        package: project.config.project.package.clone(),
        root: project.root.display().to_string(),
        production_version: production.map(|v| v.to_string()),
        model_version: model.map(|v| v.to_string()),
        releases_in_preparation: releases.iter().map(|r| r.version.clone()).collect(),
        releases,
        next_promotion,
        releases_error,
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
            interrupted_upgrade: interrupted,
        },
        snapshots,
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

/// What `promote` would do now, or why it cannot (never an error).
fn next_promotion(project: &Project, land: &release::Landscape) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(h) = land.hotfixes().next() {
        let staged = h.file.staged();
        let candidates = h.file.candidates();
        parts.push(if !candidates.is_empty() {
            format!(
                "hotfix {}: candidates to merge first: {}",
                h.version,
                candidates.join(", ")
            )
        } else if staged.is_empty() {
            format!("hotfix {}: no staged patch yet", h.version)
        } else {
            format!("git hop-release promote hotfix ({})", h.version)
        });
    }
    if land.normal().next().is_some() {
        parts.push(
            match release::select_for_promotion(project, land, None, "a release candidate") {
                Ok(r) => {
                    let rc = land
                        .rc_tags(&r.version)
                        .last()
                        .map(|t| format!(" (last RC {})", t.tag_name()))
                        .unwrap_or_default();
                    format!("git hop-release promote rc|prod ({}){rc}", r.version)
                }
                Err(e) => format!("blocked: {}", e.message),
            },
        );
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("; "))
    }
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
    if let Some(first) = s.database.interrupted_upgrade.first() {
        out.push_str(&format!(
            "upgrade:     interrupted in release {} ({} step(s) recorded)\n",
            first.release,
            s.database.interrupted_upgrade.len()
        ));
        for step in &s.database.interrupted_upgrade {
            let err = step
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "               {} {} {}{err}\n",
                step.state, step.patch, step.file
            ));
        }
        out.push_str("             resume it: git hop-release upgrade (git hop-release upgrade --dry-run shows what is left)\n");
    }
    if s.database.embedded {
        out.push_str(&format!("server:      {}\n", s.database.server));
    } else {
        out.push_str(&format!(
            "server:      {} (from {})\n",
            s.database.server, s.database.source
        ));
    }
    let releases = if s.releases_in_preparation.is_empty() {
        "none".to_string()
    } else {
        s.releases_in_preparation.join(", ")
    };
    out.push_str(&format!("in progress: {releases}\n"));
    for r in &s.releases {
        let kind = if r.hotfix { " (hotfix)" } else { "" };
        let sync = if r.contains_production {
            ""
        } else {
            " (must sync: git hop-release sync)"
        };
        out.push_str(&format!("  {}{kind} on {}{sync}\n", r.version, r.branch));
        if r.patches.is_empty() {
            out.push_str("    no patch yet\n");
        }
        for p in &r.patches {
            out.push_str(&format!("    {:<10} {}\n", p.state, p.id));
        }
        if !r.rc_tags.is_empty() {
            out.push_str(&format!(
                "    release candidates: {}\n",
                r.rc_tags.join(", ")
            ));
        }
    }
    for f in &s.snapshots.not_reloading {
        out.push_str(&format!(
            "snapshot:    {} does not reload: {}\n             (an older git-hop tagged it unproved: rebuilds from it fail until the file is corrected by hand on ho-prod)\n",
            f.version, f.error
        ));
    }
    if let Some(e) = &s.snapshots.error {
        out.push_str(&format!("snapshot:    not checked ({e})\n"));
    }
    if let Some(e) = &s.releases_error {
        out.push_str(&format!("  (cannot read the releases: {e})\n"));
    }
    if let Some(n) = &s.next_promotion {
        out.push_str(&format!("promote:     {n}\n"));
    }
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
