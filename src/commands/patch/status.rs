//! `git hop-patch status`: the current branch's patch, its release and state.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::project::{BranchRole, Project};
use crate::release_file::{self, PatchState, PatchesFile};

/// Show the current patch, the release it belongs to and its state
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug)]
struct Status {
    branch: Option<String>,
    role: String,
    patch: Option<String>,
    release: Option<String>,
    state: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let role = project.role();
    let mut st = Status {
        branch: project.current_branch(),
        role: role.describe(),
        patch: None,
        release: None,
        state: None,
    };
    if let BranchRole::Patch(id) = &role {
        st.patch = Some(id.clone());
        for v in release_file::releases_in_preparation(&project.root)? {
            let file = PatchesFile::load(release_file::patches_path(&project.root, &v))?;
            if let Some(state) = file.state(id) {
                st.release = Some(v.to_string());
                st.state = Some(match state {
                    PatchState::Candidate => "candidate".into(),
                    PatchState::Staged => "staged".into(),
                });
            }
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&st)
            .map_err(|e| Error::new(format!("cannot render JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    println!(
        "branch:  {} ({})",
        st.branch.as_deref().unwrap_or("none"),
        st.role
    );
    match (&st.patch, &st.release) {
        (Some(p), Some(r)) => println!(
            "patch:   {p}, {} in release {r}",
            st.state.as_deref().unwrap_or("?")
        ),
        (Some(p), None) => println!("patch:   {p}, not listed in any release in preparation"),
        _ => println!("not on a patch branch (ho-patch/<id>)"),
    }
    Ok(())
}
