//! `git hop-patch status`: the current patch, its release and state, how far
//! behind the release branch on origin it is, and whether the working
//! database matches the patch's files.

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::origin::{Origin, REMOTE};
use crate::project::{BranchRole, Project, RELEASE_PREFIX};
use crate::release_file::{self, PatchState};

/// Show the current patch, its release, state and drift
///
/// Show the current patch, its release and state, the commits the patch
/// branch lacks from the release branch on origin, and whether the working
/// database matches the patch's files
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Serialize, Debug, Default)]
struct Status {
    /// The version of this document's shape (docs/ci.md).
    schema_version: u32,
    branch: Option<String>,
    role: String,
    patch: Option<String>,
    release: Option<String>,
    state: Option<String>,
    /// Commits of ho-release/X.Y.Z on origin that the patch branch lacks.
    behind: Option<u64>,
    origin_error: Option<String>,
    /// "matches", "differs", "not applied", or why it is unknown.
    database: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let role = project.role();
    let mut st = Status {
        schema_version: crate::machine::SCHEMA_VERSION,
        branch: project.current_branch(),
        role: role.describe(),
        ..Status::default()
    };
    if let BranchRole::Patch(id) = &role {
        st.patch = Some(id.clone());
        if let Some((v, file)) = release_file::find_patch(&project.root, id)? {
            st.release = Some(v.to_string());
            st.state = file.state(id).map(|s| match s {
                PatchState::Candidate => "candidate".to_string(),
                PatchState::Staged => "staged".to_string(),
            });
            let release_branch = format!("{RELEASE_PREFIX}{v}");
            let target = match Origin::of(&project.git)? {
                Some(o) => match o.fetch() {
                    Ok(()) => Some(format!("refs/remotes/{REMOTE}/{release_branch}")),
                    Err(e) => {
                        st.origin_error = Some(e.message);
                        Some(format!("refs/remotes/{REMOTE}/{release_branch}"))
                    }
                },
                None => Some(format!("refs/heads/{release_branch}")),
            };
            if let Some(t) = target
                && project.git.rev_parse(&t)?.is_some()
            {
                let n = project
                    .git
                    .run(&["rev-list", "--count", &format!("HEAD..{t}")])?;
                st.behind = n.trim().parse().ok();
            }
            st.database = Some(database_state(&project, &args, id, &v.to_string()));
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&st)
            .map_err(|e| Error::new(format!("cannot render JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "branch:   {} ({})",
        st.branch.as_deref().unwrap_or("none"),
        st.role
    );
    match (&st.patch, &st.release) {
        (Some(p), Some(r)) => {
            println!(
                "patch:    {p}, {} in release {r}",
                st.state.as_deref().unwrap_or("?")
            );
            match st.behind {
                Some(0) => println!("release:  up to date with ho-release/{r}"),
                Some(n) => println!(
                    "release:  {n} commit(s) behind ho-release/{r} on origin (run git hop-patch sync)"
                ),
                None => {}
            }
            if let Some(e) = &st.origin_error {
                println!("origin:   unreachable ({e})");
            }
            if let Some(d) = &st.database {
                println!("database: {d}");
            }
        }
        (Some(p), None) => println!("patch:    {p}, not listed in any release in preparation"),
        _ => println!("not on a patch branch (ho-patch/<id>)"),
    }
    Ok(())
}

fn database_state(project: &Project, args: &Args, id: &str, release: &str) -> String {
    let files = match crate::patch_dir::patch_sha256(&project.root.join("Patches").join(id)) {
        Ok(s) => s,
        Err(e) => return format!("unknown ({})", e.message),
    };
    let applied =
        project.database(&args.db.options(None)).and_then(|db| {
            let mut c = db.connect()?;
            if !crate::db::meta::is_installed(&mut c)? {
                return Ok(None);
            }
            let row = c
            .query_opt(
                "SELECT sha256 FROM half_orm_meta.hop_patch WHERE patch_id = $1 AND release = $2",
                &[&id, &release],
            )
            .map_err(|e| crate::db::database::sql_error("cannot read half_orm_meta.hop_patch", e))?;
            Ok(row.map(|r| r.get::<_, String>(0)))
        });
    match applied {
        Ok(Some(sha)) if sha == files => "matches the patch files".into(),
        Ok(Some(_)) => "differs from the patch files (run git hop-patch apply)".into(),
        Ok(None) => "patch not applied (run git hop-patch apply)".into(),
        Err(e) => format!("unknown ({})", e.message),
    }
}
