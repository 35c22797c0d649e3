//! `git hop-release hooks install|uninstall|status`.

use crate::error::Result;
use crate::hooks::{self, State};
use crate::project::Project;

/// Install, remove or show git-hop's blocks in the hooks (pre-push, post-merge; in production clones pre-commit and reference-transaction too)
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Write (or update) git-hop's block in each hook file, keeping the rest of the file
    Install,
    /// Remove git-hop's block from each hook file, keeping the rest
    Uninstall,
    /// Show whether each hook holds git-hop's current block
    Status,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let dir = hooks::hooks_dir(&project.git)?;
    match args.action {
        Action::Install => {
            let written = hooks::install(&project.git)?;
            if written.is_empty() {
                println!("hooks already installed in {}", dir.display());
            }
            for p in written {
                println!("installed git-hop's block in {}", p.display());
            }
        }
        Action::Uninstall => {
            let changed = hooks::uninstall(&project.git)?;
            if changed.is_empty() {
                println!("no git-hop hook block in {}", dir.display());
            }
            for p in changed {
                println!("removed git-hop's block from {}", p.display());
            }
        }
        Action::Status => {
            let production = project.clone.production;
            for (name, block) in hooks::hooks_of(production) {
                let s = match hooks::state(&dir, name, block) {
                    State::Installed => "installed",
                    State::Outdated => "outdated (run git hop-release hooks install)",
                    State::Missing => "not installed (run git hop-release hooks install)",
                };
                println!("{name}: {s}   ({})", dir.join(name).display());
            }
            for m in hooks::managers(&project.git, &dir) {
                println!("hook manager {m}");
            }
        }
    }
    Ok(())
}
