//! `hook <event>` (hidden): what the installed hook blocks call.

use std::io::BufReader;

use crate::error::Result;
use crate::project::Project;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The hook: pre-push or post-merge
    pub event: String,
    /// What git passed to the hook
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub rest: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    match args.event.as_str() {
        "pre-push" => {
            // Before anything else (no thread exists yet): git's GIT_DIR of a
            // linked worktree would send the validation's git commands to the
            // user's repository.
            crate::hooks::forget_repository_env();
            crate::hooks::stdout_to_stderr();
            // Outside a hop project the hook has nothing to enforce.
            let Ok(project) = Project::from_cwd() else {
                return Ok(());
            };
            crate::hooks::pre_push(&project, BufReader::new(std::io::stdin()))
        }
        "post-merge" => {
            if let Ok(project) = Project::from_cwd() {
                for line in crate::hooks::post_merge_notices(&project) {
                    eprintln!("git-hop: {line}");
                }
            }
            // A post-merge hook never fails the merge.
            Ok(())
        }
        other => Err(crate::Error::usage(format!(
            "unknown hook '{other}' (pre-push or post-merge)"
        ))),
    }
}
