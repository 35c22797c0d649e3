//! Installing the hooks (docs/hooks.md): git-hop's marked block, first in
//! each hook file of `git rev-parse --git-path hooks` (so `core.hooksPath`
//! is honoured), the rest of the file kept byte for byte; and what `hooks
//! status` tells about the folder (its state, a hook manager owning it).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::Git;

pub const BEGIN: &str = "# >>> git-hop managed block";
pub const END: &str = "# <<< git-hop managed block <<<";

/// The hooks git-hop installs in every clone, with their blocks (`hooks/`).
pub const HOOKS: &[(&str, &str)] = &[
    ("pre-push", include_str!("../../hooks/pre-push")),
    ("post-merge", include_str!("../../hooks/post-merge")),
];

/// The hooks a production clone also gets: no local commits on `ho-prod`,
/// no tags of its own.
pub const PRODUCTION_HOOKS: &[(&str, &str)] = &[
    ("pre-commit", include_str!("../../hooks/pre-commit")),
    (
        "reference-transaction",
        include_str!("../../hooks/reference-transaction"),
    ),
];

/// The line a block carries when git-hop created the file for it, so that
/// uninstall removes the file instead of leaving a bare shebang.
const CREATED: &str = "# (git-hop created this file; uninstall removes it)\n";

/// The hooks of a clone: every clone's, and a production clone's too.
pub fn hooks_of(production: bool) -> Vec<(&'static str, &'static str)> {
    let mut all = HOOKS.to_vec();
    if production {
        all.extend_from_slice(PRODUCTION_HOOKS);
    }
    all
}

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

/// `text` with git-hop's block removed (wherever it is: older versions
/// appended it), then, with `block`, put first: right after the shebang
/// line, so that nothing the file holds can skip it. A file git-hop creates
/// gets `#!/bin/sh` and a marker line, so that uninstall removes it.
pub fn with_block(text: &str, block: Option<&str>) -> String {
    let mut rest = String::new();
    let mut inside = false;
    let mut created = false;
    for line in text.split_inclusive('\n') {
        if line.starts_with(BEGIN) {
            inside = true;
            continue;
        }
        if inside {
            if line == CREATED {
                created = true;
            }
            if line.starts_with(END) {
                inside = false;
            }
            continue;
        }
        rest.push_str(line);
    }
    if created && rest == "#!/bin/sh\n" {
        rest.clear();
    }
    let Some(block) = block else {
        return rest;
    };
    let (first, body) = block.split_once('\n').unwrap_or((block, ""));
    if rest.is_empty() {
        return format!("#!/bin/sh\n{first}\n{CREATED}{body}");
    }
    // A file git-hop created that the user added to keeps its marker.
    let marked;
    let block = if created {
        marked = format!("{first}\n{CREATED}{body}");
        marked.as_str()
    } else {
        block
    };
    let split = if rest.starts_with("#!") {
        rest.find('\n').map(|i| i + 1).unwrap_or(rest.len())
    } else {
        0
    };
    let (shebang, body) = rest.split_at(split);
    let nl = if !shebang.is_empty() && !shebang.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    format!("{shebang}{nl}{block}{body}")
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
    let text = text.replace(CREATED, "");
    if !text.contains(BEGIN) {
        State::Missing
    } else if text.contains(block) && first_block(&text) {
        State::Installed
    } else {
        State::Outdated
    }
}

/// Whether the block comes first (after an optional shebang line).
fn first_block(text: &str) -> bool {
    let mut lines = text.lines();
    match lines.next() {
        Some(l) if l.starts_with("#!") => lines.next().is_some_and(|l| l.starts_with(BEGIN)),
        Some(l) => l.starts_with(BEGIN),
        None => false,
    }
}

/// Whether this clone is a production clone (`hop.production`).
fn production(git: &Git) -> bool {
    git.config_value("hop.production")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1"))
}

/// Installs (or updates) every block of this clone (a production clone's
/// too); returns the files written. The rest of each file stays as it was.
pub fn install(git: &Git) -> Result<Vec<PathBuf>> {
    let dir = hooks_dir(git)?;
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let mut written = Vec::new();
    for (name, block) in hooks_of(production(git)) {
        let path = dir.join(name);
        let old = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
                Error::new(format!("{} is not a text file", path.display()))
                    .hint("git-hop writes its block into shell hook files only")
            })?,
            Err(_) => String::new(),
        };
        let new = with_block(&old, Some(block));
        if new != old {
            std::fs::write(&path, &new).map_err(|e| Error::io("cannot write", &path, e))?;
            written.push(path.clone());
        }
        make_executable(&path)?;
    }
    Ok(written)
}

/// Removes git-hop's blocks only, restoring each file as it was before
/// (a file git-hop created goes).
pub fn uninstall(git: &Git) -> Result<Vec<PathBuf>> {
    let dir = hooks_dir(git)?;
    let mut changed = Vec::new();
    for (name, _) in hooks_of(true) {
        let path = dir.join(name);
        let Ok(old) = std::fs::read_to_string(&path) else {
            continue;
        };
        if !old.contains(BEGIN) {
            continue;
        }
        let created = old.contains(CREATED);
        let new = with_block(&old, None);
        if created && new.is_empty() {
            std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
        } else {
            std::fs::write(&path, &new).map_err(|e| Error::io("cannot write", &path, e))?;
        }
        changed.push(path);
    }
    Ok(changed)
}

/// Hook managers that own or share the hooks folder, each with how to
/// chain git-hop with it.
pub fn managers(git: &Git, dir: &Path) -> Vec<String> {
    let root = git.dir();
    let hooks_path = git.config_value("core.hooksPath").unwrap_or_default();
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let files: String = ["pre-push", "post-merge", "pre-commit", "post-checkout"]
        .iter()
        .map(|n| read(n))
        .collect();
    let mut out = Vec::new();
    if hooks_path.contains(".husky") || root.join(".husky").is_dir() {
        out.push("husky: its `husky` command rewrites the files of .husky/_; run git hop-release hooks install after it (git-hop's block then runs first and hands git's input to husky's script)".to_string());
    }
    if root.join("lefthook.yml").is_file()
        || root.join(".lefthook.yml").is_file()
        || files.contains("lefthook")
    {
        out.push("lefthook: `lefthook install` rewrites its hook files; run git hop-release hooks install after it (git-hop's block runs first, then lefthook with git's input)".to_string());
    }
    if root.join(".pre-commit-config.yaml").is_file()
        || files.contains("pre-commit.com")
        || files.contains("pre_commit")
    {
        out.push("pre-commit: `pre-commit install` replaces its hook files; run git hop-release hooks install after it (or `pre-commit install` with the legacy hook kept, then hooks install again)".to_string());
    }
    if files.contains("git lfs") || files.contains("git-lfs") {
        out.push("git-lfs: its hook lines run after git-hop's block and receive git's exact input; `git lfs install` leaves the block in place (it appends), run git hop-release hooks install if it rewrote a file".to_string());
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    const B: &str =
        "# >>> git-hop managed block (x) >>>\necho hop\n# <<< git-hop managed block <<<\n";

    #[test]
    fn block_comes_first_and_uninstall_restores_the_file_byte_for_byte() {
        // A file git-hop creates: shebang, block with its marker; removed.
        let fresh = with_block("", Some(B));
        assert!(fresh.starts_with("#!/bin/sh\n# >>> git-hop"), "{fresh}");
        assert!(fresh.contains(CREATED));
        assert_eq!(with_block(&fresh, Some(B)), fresh, "idempotent");
        assert_eq!(with_block(&fresh, None), "");
        // A user's file: the block goes right after its shebang.
        let mine = "#!/bin/bash\necho mine\nexit 0\n";
        let both = with_block(mine, Some(B));
        assert_eq!(both, format!("#!/bin/bash\n{B}echo mine\nexit 0\n"));
        assert_eq!(with_block(&both, Some(B)), both, "idempotent");
        let b2 = B.replace("echo hop", "echo hop2");
        let updated = with_block(&both, Some(&b2));
        assert_eq!(updated, format!("#!/bin/bash\n{b2}echo mine\nexit 0\n"));
        assert_eq!(with_block(&updated, None), mine);
        // No shebang, no final newline, a bare shebang of the user's own.
        for text in ["echo mine", "#!/bin/sh\n", "#!/bin/sh"] {
            let installed = with_block(text, Some(B));
            assert!(!installed.contains(CREATED));
            assert_eq!(with_block(&installed, None).trim_end(), text.trim_end());
        }
        assert_eq!(
            with_block(&with_block("#!/bin/sh\n", Some(B)), None),
            "#!/bin/sh\n"
        );
        // An older version's block, appended at the end, moves first.
        let old = format!("#!/bin/sh\necho mine\n{B}");
        assert_eq!(
            with_block(&old, Some(B)),
            format!("#!/bin/sh\n{B}echo mine\n")
        );
    }
}
