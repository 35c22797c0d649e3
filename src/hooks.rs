//! The git hooks (SPEC 4.6): a marked block inside the hook files of
//! `git rev-parse --git-path hooks` (so `core.hooksPath` is honoured), and
//! what the hooks check when git runs them.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::{Git, INTERNAL_PUSH_ENV};

pub const BEGIN: &str = "# >>> git-hop managed block";
pub const END: &str = "# <<< git-hop managed block <<<";

/// The hooks git-hop installs, with their blocks (the shims in `hooks/`).
pub const HOOKS: &[(&str, &str)] = &[
    ("pre-push", include_str!("../hooks/pre-push")),
    ("post-merge", include_str!("../hooks/post-merge")),
];

/// Where git looks for hooks in this repository.
pub fn hooks_dir(git: &Git) -> Result<PathBuf> {
    let p = git.run(&["rev-parse", "--git-path", "hooks"])?;
    let p = PathBuf::from(p);
    Ok(if p.is_absolute() {
        p
    } else {
        git.dir().join(p)
    })
}

/// `text` with our block replaced by `block` (or appended), everything
/// else kept. With `block` None the block is removed.
pub fn with_block(text: &str, block: Option<&str>) -> String {
    let mut out = String::new();
    let mut inside = false;
    let mut placed = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with(BEGIN) {
            inside = true;
            if let (Some(b), false) = (block, placed) {
                out.push_str(b);
                placed = true;
            }
            continue;
        }
        if inside {
            if line.starts_with(END) {
                inside = false;
            }
            continue;
        }
        out.push_str(line);
    }
    if let (Some(b), false) = (block, placed) {
        if out.is_empty() {
            out.push_str("#!/bin/sh\n");
        } else if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(b);
    }
    out
}

/// Hook state of one file.
#[derive(Debug, PartialEq, Eq)]
pub enum State {
    Installed,
    Outdated,
    Missing,
}

pub fn state(dir: &Path, name: &str, block: &str) -> State {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    if !text.contains(BEGIN) {
        State::Missing
    } else if text.contains(block) {
        State::Installed
    } else {
        State::Outdated
    }
}

/// Installs (or updates) every block; returns the files written.
pub fn install(git: &Git) -> Result<Vec<PathBuf>> {
    let dir = hooks_dir(git)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let mut written = Vec::new();
    for (name, block) in HOOKS {
        let path = dir.join(name);
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        let new = with_block(&old, Some(block));
        if new != old {
            std::fs::write(&path, &new).map_err(|e| Error::io("cannot write", &path, e))?;
            written.push(path.clone());
        }
        make_executable(&path)?;
    }
    Ok(written)
}

/// Removes our blocks only; a file left with nothing but a shebang goes.
pub fn uninstall(git: &Git) -> Result<Vec<PathBuf>> {
    let dir = hooks_dir(git)?;
    let mut changed = Vec::new();
    for (name, _) in HOOKS {
        let path = dir.join(name);
        let Ok(old) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !old.contains(BEGIN) {
            continue;
        }
        let new = with_block(&old, None);
        if new.trim().is_empty() || new.trim() == "#!/bin/sh" {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
        } else {
            std::fs::write(&path, &new).map_err(|e| Error::io("cannot write", &path, e))?;
        }
        changed.push(path);
    }
    Ok(changed)
}

fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut perm = meta.permissions();
    if perm.mode() & 0o111 != 0o111 {
        perm.set_mode(perm.mode() | 0o755);
        std::fs::set_permissions(path, perm).map_err(|e| Error::io("cannot chmod", path, e))?;
    }
    Ok(())
}

/// Refs that only git-hop itself may push, with the command to use.
pub fn protected(remote_ref: &str) -> Option<&'static str> {
    if remote_ref == "refs/heads/ho-prod" {
        Some("git hop-release promote prod|hotfix")
    } else if remote_ref.starts_with("refs/heads/ho-release/") {
        Some("git hop-patch merge or git hop-release sync")
    } else if remote_ref.starts_with("refs/tags/v") {
        Some("git hop-release promote")
    } else if remote_ref.starts_with("refs/hop/") {
        Some("git hop-release new or git hop-patch create")
    } else {
        None
    }
}

/// The pre-push check: `stdin` carries git's `<local ref> <local sha>
/// <remote ref> <remote sha>` lines.
pub fn pre_push(production: bool, stdin: impl BufRead) -> Result<()> {
    if std::env::var_os(INTERNAL_PUSH_ENV).is_some() {
        return Ok(());
    }
    if production {
        return Err(Error::new(
            "this clone is a production clone (git config hop.production true): it never pushes",
        )
        .hint("push from a development clone"));
    }
    for line in stdin.lines() {
        let line = line.map_err(|e| Error::new(format!("cannot read the refs to push: {e}")))?;
        let mut parts = line.split_whitespace();
        let remote_ref = parts.nth(2).unwrap_or("");
        if let Some(cmd) = protected(remote_ref) {
            return Err(Error::new(format!(
                "direct pushes to {remote_ref} are refused: git-hop updates it"
            ))
            .hint(format!(
                "use {cmd}; `git push --no-verify` bypasses this check"
            )));
        }
    }
    Ok(())
}

/// What to tell the user after `git pull` / `git merge` (SPEC 4.6): no
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

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str =
        "# >>> git-hop managed block (x) >>>\necho hop\n# <<< git-hop managed block <<<\n";

    #[test]
    fn block_is_added_replaced_and_removed_keeping_the_rest() {
        let fresh = with_block("", Some(B));
        assert_eq!(fresh, format!("#!/bin/sh\n{B}"));
        let mine = "#!/bin/sh\necho mine\n";
        let both = with_block(mine, Some(B));
        assert_eq!(both, format!("{mine}{B}"));
        assert_eq!(with_block(&both, Some(B)), both, "idempotent");
        let b2 = B.replace("echo hop", "echo hop2");
        let updated = with_block(&both, Some(&b2));
        assert_eq!(updated, format!("{mine}{b2}"));
        assert_eq!(with_block(&updated, None), mine);
    }

    #[test]
    fn protected_refs() {
        assert!(protected("refs/heads/ho-prod").is_some());
        assert!(protected("refs/heads/ho-release/0.1.0").is_some());
        assert!(protected("refs/tags/v0.1.0").is_some());
        assert!(protected("refs/hop/patch/7").is_some());
        assert!(protected("refs/heads/ho-patch/7-x").is_none());
        assert!(
            pre_push(
                false,
                "refs/heads/ho-patch/1 a refs/heads/ho-patch/1 b\n".as_bytes()
            )
            .is_ok()
        );
        assert!(pre_push(false, "refs/heads/x a refs/heads/ho-prod b\n".as_bytes()).is_err());
        assert!(pre_push(true, "".as_bytes()).is_err());
    }
}
