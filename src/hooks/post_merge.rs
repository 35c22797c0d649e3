//! The post-merge hook (docs/hooks.md): what to run after `git pull` or
//! `git merge`, from local refs only.

/// What to tell the user after `git pull` / `git merge` (docs/hooks.md): no
/// fetch, no database access, only local refs and the merge's diff, so the
/// hook returns at once.
pub fn post_merge_notices(project: &crate::project::Project) -> Vec<String> {
    use crate::project::BranchRole;
    let git = &project.git;
    let mut notes = Vec::new();
    if let BranchRole::Patch(id) = project.role()
        && let Ok(Some((v, _))) = crate::release_file::find_patch(&project.root, &id)
    {
        let remote = format!("refs/remotes/origin/ho-release/{v}");
        if let Ok(Some(_)) = git.rev_parse(&remote) {
            let behind = git
                .run(&["rev-list", "--count", &format!("HEAD..{remote}")])
                .unwrap_or_default();
            if behind.trim() != "0" && !behind.trim().is_empty() {
                notes.push(format!(
                        "ho-release/{v} on origin has {} commit(s) this branch lacks: run git hop-patch sync",
                        behind.trim()
                    ));
            }
        }
    }
    let changed = git
        .run(&[
            "diff",
            "--name-only",
            "ORIG_HEAD",
            "HEAD",
            "--",
            "Patches",
            ".hop/model",
            ".hop/releases",
        ])
        .unwrap_or_default();
    if !changed.trim().is_empty() {
        notes.push(if project.clone.production {
            "the merge brought new releases: run git hop-release update, then git hop-release upgrade".into()
        } else {
            "the merge changed patches or the model: run git hop-patch apply (on a patch branch) to rebuild your database".into()
        });
    }
    notes
}
