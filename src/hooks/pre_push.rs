//! The pre-push hook (docs/hooks.md): the refs only git-hop may push, every
//! push from a production clone, a patch's uncommitted files, and with
//! `hop.prePushTests` the validation of `merge` in a scratch repository.

use std::io::BufRead;
use std::path::Path;

use crate::db::database::DbOptions;
use crate::error::{Error, Result};
use crate::git::{INTERNAL_PUSH_ENV, Repo};
use crate::origin::{Origin, REMOTE};
use crate::patch_id::PatchId;
use crate::project::{PATCH_PREFIX, Project, RELEASE_PREFIX};
use crate::release_file;
use crate::validation::{self, Worktree};

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

/// One line of what git feeds the pre-push hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRef {
    pub local_ref: String,
    pub local_sha: String,
    pub remote_ref: String,
    pub remote_sha: String,
}

impl PushedRef {
    /// Whether the push deletes the remote ref (git sends a zero id).
    pub fn is_delete(&self) -> bool {
        self.local_sha.bytes().all(|b| b == b'0')
    }

    /// The patch whose branch this pushes, when it is `refs/heads/ho-patch/<id>`
    /// with a valid id.
    pub fn patch_id(&self) -> Option<PatchId> {
        let id = self
            .remote_ref
            .strip_prefix("refs/heads/")?
            .strip_prefix(PATCH_PREFIX)?;
        PatchId::parse(id).ok()
    }
}

/// Reads git's `<local ref> <local sha> <remote ref> <remote sha>` lines.
pub fn read_pushed_refs(stdin: impl BufRead) -> Result<Vec<PushedRef>> {
    let mut refs = Vec::new();
    for line in stdin.lines() {
        let line = line.map_err(|e| Error::new(format!("cannot read the refs to push: {e}")))?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        if parts.is_empty() {
            continue;
        }
        let [local_ref, local_sha, remote_ref, remote_sha] = parts[..] else {
            return Err(Error::new(format!(
                "unexpected line from git on the pre-push hook's input: '{line}'"
            ))
            .hint("`git push --no-verify` bypasses the hook"));
        };
        refs.push(PushedRef {
            local_ref: local_ref.into(),
            local_sha: local_sha.into(),
            remote_ref: remote_ref.into(),
            remote_sha: remote_sha.into(),
        });
    }
    Ok(refs)
}

/// The refusals of the pre-push hook: every push from a production clone,
/// direct pushes to the refs git-hop owns.
pub fn check_refs(production: bool, refs: &[PushedRef]) -> Result<()> {
    if production {
        return Err(Error::new(
            "this clone is a production clone (git config hop.production true): it never pushes",
        )
        .hint("push from a development clone"));
    }
    for r in refs {
        if let Some(cmd) = protected(&r.remote_ref) {
            return Err(Error::new(format!(
                "direct pushes to {} are refused: git-hop updates it",
                r.remote_ref
            ))
            .hint(format!(
                "use {cmd}; `git push --no-verify` bypasses this check"
            )));
        }
    }
    Ok(())
}

/// Variables by which git hands a hook its repository. A linked worktree's
/// hook gets `GIT_DIR`, and every git command the hook runs elsewhere (the
/// validation's own repository and worktree) would then act on the user's
/// repository instead: the hook forgets them and finds its repository from
/// its working directory, where git starts it.
const REPOSITORY_ENV: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_GRAFT_FILE",
];

/// Removes [`REPOSITORY_ENV`] from this process's environment. Call it
/// first thing in the hook process, before any thread exists.
pub fn forget_repository_env() {
    for key in REPOSITORY_ENV {
        if std::env::var_os(key).is_some() {
            // SAFETY: called from the hook's main thread at its start, before
            // any other thread is spawned, so nothing reads the environment
            // concurrently.
            unsafe { std::env::remove_var(key) };
        }
    }
}

/// Points this process's standard output at its standard error: git hands
/// a pre-push hook's stdout to `git push`'s stdout, which scripts parse
/// (`git push --porcelain`), so everything the hook prints (the
/// validation's progress included) goes to stderr.
pub fn stdout_to_stderr() {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: dup2 on the process's own standard descriptors; nothing else
    // holds them in a way that a swap could invalidate.
    unsafe {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
}

/// The pre-push hook (docs/hooks.md): `stdin` carries git's `<local ref> <local
/// sha> <remote ref> <remote sha>` lines. Refuses what [`check_refs`]
/// refuses; for each pushed patch branch, warns about the patch's files left
/// uncommitted (when the pushed commit is the one checked out) and, when
/// `hop.prePushTests` is true, validates the patch merged with its release
/// and refuses the push if that fails. With nothing of that to do it runs
/// no database, no fetch and at most one `git status`.
pub fn pre_push(project: &Project, stdin: impl BufRead) -> Result<()> {
    if std::env::var_os(INTERNAL_PUSH_ENV).is_some() {
        return Ok(());
    }
    let refs = read_pushed_refs(stdin)?;
    check_refs(project.clone.production, &refs)?;
    for r in &refs {
        let Some(id) = r.patch_id() else {
            continue;
        };
        if r.is_delete() {
            continue;
        }
        if project.repo.rev("HEAD").as_deref() == Some(r.local_sha.as_str()) {
            match uncommitted_patch_files(project, &id) {
                Ok(files) if !files.is_empty() => {
                    eprintln!("{}", uncommitted_warning(&id, &files));
                }
                Ok(_) => {}
                // A warning that cannot be computed never blocks a push.
                Err(e) => eprintln!("git-hop: cannot check for uncommitted files: {e}"),
            }
        }
        if project.clone.pre_push_tests {
            validate_patch_push(project, &id, &r.local_sha).map_err(|e| {
                let hint = e.hint.clone().unwrap_or_default();
                e.context(format!(
                    "push of {} refused: the patch does not pass validation (git config hop.prePushTests is true)",
                    id.branch()
                ))
                .hint(format!(
                    "{}{}`git push --no-verify` skips this check; `git config hop.prePushTests false` turns it off",
                    hint,
                    if hint.is_empty() { "" } else { "; " }
                ))
            })?;
        }
    }
    Ok(())
}

/// One file of a patch that a push leaves behind, with what git says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uncommitted {
    pub path: String,
    pub state: &'static str,
}

/// Files under `Patches/<id>/`, `tests/` and the package folder that are
/// untracked or differ from HEAD (staged or not): they are not in the push.
pub fn uncommitted_patch_files(project: &Project, id: &PatchId) -> Result<Vec<Uncommitted>> {
    let patch_dir = format!("Patches/{id}/");
    let package = format!("{}/", project.config.project.package);
    let out = project.git.run(&[
        "status",
        "--porcelain=v1",
        "-z",
        "--untracked-files=all",
        "--",
        &patch_dir,
        "tests/",
        &package,
    ])?;
    Ok(parse_status_z(&out))
}

/// `git status --porcelain=v1 -z` entries (renames and copies carry their
/// source as the next field, skipped).
fn parse_status_z(out: &str) -> Vec<Uncommitted> {
    let mut files = Vec::new();
    let mut fields = out.split('\0').filter(|f| !f.is_empty());
    while let Some(entry) = fields.next() {
        let (Some(code), Some(path)) = (entry.get(..2), entry.get(3..)) else {
            continue;
        };
        let (x, y) = (code.as_bytes()[0], code.as_bytes()[1]);
        if matches!(x, b'R' | b'C') {
            fields.next();
        }
        let state = match (x, y) {
            (b'?', b'?') => "untracked",
            (b'U', _) | (_, b'U') | (b'A', b'A') | (b'D', b'D') => "unmerged",
            (_, b'M') => "modified",
            (_, b'D') => "deleted",
            (b'A', _) => "added, not committed",
            (b'D', _) => "removed, not committed",
            (b'R', _) => "renamed, not committed",
            _ => "changed, not committed",
        };
        files.push(Uncommitted {
            path: path.to_string(),
            state,
        });
    }
    files
}

/// The warning printed for `files`.
pub fn uncommitted_warning(id: &PatchId, files: &[Uncommitted]) -> String {
    let mut s = format!(
        "git-hop: warning: {} file(s) of patch {id} are not committed: commit them or they are not pushed",
        files.len()
    );
    for f in files {
        s.push_str(&format!("\n  {} ({})", f.path, f.state));
    }
    s
}

/// An empty repository under `.git/hop/tmp/prepush-<pid>` that borrows the
/// user's objects (`objects/info/alternates`, read only): the pre-push
/// validation's worktree, merge and commit live in it, so the user's
/// repository gets no commit, object, ref or worktree entry. Removed when
/// dropped; one left by a killed hook is removed by the next.
struct Scratch {
    project: Project,
    _folder: RemoveOnDrop,
}

impl Scratch {
    fn new(project: &Project) -> Result<Scratch> {
        let tmp = project.state_dir().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        remove_stale_scratches(&tmp);
        let path = tmp.join(format!("prepush-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        // From here on the guard removes the folder whatever happens.
        let folder = RemoveOnDrop(path.clone());
        let p = path.display().to_string();
        project.git.run(&["init", "-q", &p])?;
        let objects = project.repo.common_dir().join("objects");
        let alternates = path.join(".git/objects/info/alternates");
        std::fs::write(&alternates, format!("{}\n", objects.display()))
            .map_err(|e| Error::io("cannot write", &alternates, e))?;
        let repo = Repo::discover(&path).ok_or_else(|| {
            Error::new(format!(
                "cannot open the temporary repository {}",
                path.display()
            ))
        })?;
        Ok(Scratch {
            project: Project {
                root: path.clone(),
                repo,
                git: project.git.at(&path),
                config: project.config.clone(),
                clone: project.clone.clone(),
            },
            _folder: folder,
        })
    }
}

struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Scratch repositories whose hook process is gone.
fn remove_stale_scratches(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name
            .strip_prefix("prepush-")
            .and_then(|p| p.parse::<u32>().ok())
            && !crate::owner::process_alive(pid, None)
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The identity of the validation's throwaway commit (the user's may be
/// set only in their repository's own config, which the scratch lacks).
const SCRATCH_IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "git-hop"),
    ("GIT_AUTHOR_EMAIL", "git-hop@localhost"),
    ("GIT_COMMITTER_NAME", "git-hop"),
    ("GIT_COMMITTER_EMAIL", "git-hop@localhost"),
];

/// Validation of docs/releases.md for a push of patch `id` at `commit`: the patch
/// merged with its release (origin's `ho-release/X.Y.Z` after a fetch, else
/// the local branch), the patch staged at the end of the staged head, then a
/// fresh temporary database, the patches in TOML order, the regenerated code
/// compared with the committed code, the tests. All of it in a scratch
/// repository and a temporary database, both removed on every path; the
/// user's work tree, repository and working database are not touched.
pub fn validate_patch_push(project: &Project, id: &PatchId, commit: &str) -> Result<()> {
    let origin = Origin::of(&project.git)?;
    if let Some(o) = &origin {
        o.fetch()?;
    }
    let scratch = Scratch::new(project)?;
    let wt = Worktree::add(&scratch.project, commit)?;
    let (version, _) = release_file::find_patch(&wt.path, id.as_str())?.ok_or_else(|| {
        Error::new(format!(
            "no release in preparation lists {id} at the pushed commit {}",
            short(commit)
        ))
        .hint("git hop-patch sync brings the release file up to date")
    })?;
    let release_branch = format!("{RELEASE_PREFIX}{version}");
    let remote = match &origin {
        Some(_) => project
            .git
            .rev_parse(&format!("refs/remotes/{REMOTE}/{release_branch}"))?,
        None => None,
    };
    let release_commit = match remote {
        Some(c) => c,
        None => project
            .git
            .rev_parse(&format!("refs/heads/{release_branch}"))?
            .ok_or_else(|| {
                Error::new(format!(
                    "{release_branch} exists neither on origin nor locally"
                ))
            })?,
    };
    println!(
        "git-hop: hop.prePushTests is true: validating {id} merged with {release_branch} ({}) in a temporary worktree and database",
        short(&release_commit)
    );
    // The validation database is copied ahead while git merges.
    let working = project.database(&DbOptions::default())?;
    let prepared = validation::prepare(&scratch.project, &working, &wt.path, &version);
    // 1. Merge (the tree is the one `git hop-patch merge` would build).
    let file = validation::merge_and_stage(
        &wt,
        &release_commit,
        id,
        &version,
        &validation::Step1 {
            what: &format!("{release_branch} into {}", id.branch()),
            conflict_hint: "git hop-patch sync, resolve the conflicts and commit",
            message: &format!("[hop] pre-push validation of {id}"),
            env: &SCRATCH_IDENTITY,
        },
    )?;
    // 2–5.
    validation::validate_staged(
        &scratch.project,
        &working,
        &wt,
        &release_commit,
        id,
        &file,
        &version,
        prepared,
    )?;
    println!("git-hop: {id} passes validation with {release_branch}");
    Ok(())
}

fn short(commit: &str) -> &str {
    commit.get(..10).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::git::Git;

    fn pushed(line: &str) -> Vec<PushedRef> {
        read_pushed_refs(line.as_bytes()).unwrap()
    }

    #[test]
    fn protected_refs() {
        assert!(protected("refs/heads/ho-prod").is_some());
        assert!(protected("refs/heads/ho-release/0.1.0").is_some());
        assert!(protected("refs/tags/v0.1.0").is_some());
        assert!(protected("refs/hop/patch/7").is_some());
        assert!(protected("refs/heads/ho-patch/7-x").is_none());
        assert!(
            check_refs(
                false,
                &pushed("refs/heads/ho-patch/1 a refs/heads/ho-patch/1 b\n")
            )
            .is_ok()
        );
        let err = check_refs(false, &pushed("refs/heads/x a refs/heads/ho-prod b\n")).unwrap_err();
        assert!(
            err.message.contains("refs/heads/ho-prod"),
            "{}",
            err.message
        );
        assert!(check_refs(true, &[]).is_err());
    }

    #[test]
    fn pushed_refs_are_read_and_classified() {
        let z = "0".repeat(40);
        let refs = pushed(&format!(
            "refs/heads/ho-patch/7-x abc refs/heads/ho-patch/7-x {z}\n\n\
             (delete) {z} refs/heads/ho-patch/8 def\n\
             refs/heads/f abc refs/heads/ho-patch/Bad {z}\n"
        ));
        assert_eq!(refs.len(), 3);
        assert_eq!(refs[0].local_ref, "refs/heads/ho-patch/7-x");
        assert_eq!(refs[0].patch_id().unwrap().as_str(), "7-x");
        assert!(!refs[0].is_delete());
        assert!(refs[1].is_delete());
        assert_eq!(refs[1].patch_id().unwrap().as_str(), "8");
        assert!(refs[2].patch_id().is_none(), "not a valid patch id");
        let err = read_pushed_refs("only three fields\n".as_bytes()).unwrap_err();
        assert!(err.message.contains("only three fields"), "{}", err.message);
    }

    #[test]
    fn status_entries_are_described() {
        let out = "?? Patches/7/02.sql\0 M tests/t.py\0R  pkg/b.py\0pkg/a.py\0A  pkg/n.py\0 D tests/old.py\0";
        let files = parse_status_z(out);
        let got: Vec<(&str, &str)> = files.iter().map(|f| (f.path.as_str(), f.state)).collect();
        assert_eq!(
            got,
            vec![
                ("Patches/7/02.sql", "untracked"),
                ("tests/t.py", "modified"),
                ("pkg/b.py", "renamed, not committed"),
                ("pkg/n.py", "added, not committed"),
                ("tests/old.py", "deleted"),
            ]
        );
        let id = PatchId::parse("7").unwrap();
        let w = uncommitted_warning(&id, &files[..1]);
        assert!(w.contains("commit them or they are not pushed"), "{w}");
        assert!(w.contains("\n  Patches/7/02.sql (untracked)"), "{w}");
    }

    /// A committed project with package `pkg`, a patch folder and a test.
    fn project_repo() -> (tempfile::TempDir, Project) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let env = crate::git::TEST_ENV;
        let git = Git::new(root).unwrap();
        git.run_env(&["init", "-q", "-b", "ho-patch/7-x"], &env)
            .unwrap();
        for (rel, text) in [
            (".hop/config", "[project]\npackage = \"pkg\"\n"),
            ("Patches/7-x/01.sql", "SELECT 1;\n"),
            ("tests/t.py", "x = 1\n"),
            ("pkg/__init__.py", ""),
        ] {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        git.run_env(&["add", "-A"], &env).unwrap();
        git.run_env(&["commit", "-q", "-m", "one"], &env).unwrap();
        let project = Project::discover(root).unwrap();
        (tmp, project)
    }

    #[test]
    fn uncommitted_files_of_the_patch_only_are_listed() {
        let (tmp, project) = project_repo();
        let id = PatchId::parse("7-x").unwrap();
        assert!(uncommitted_patch_files(&project, &id).unwrap().is_empty());
        let root = tmp.path();
        std::fs::write(root.join("Patches/7-x/02 two.sql"), "SELECT 2;\n").unwrap();
        std::fs::write(root.join("tests/t.py"), "x = 2\n").unwrap();
        std::fs::create_dir_all(root.join("pkg/public")).unwrap();
        std::fs::write(root.join("pkg/public/t.py"), "").unwrap();
        // Not the patch's: another patch, a file at the root.
        std::fs::create_dir_all(root.join("Patches/8")).unwrap();
        std::fs::write(root.join("Patches/8/01.sql"), "").unwrap();
        std::fs::write(root.join("notes.txt"), "").unwrap();
        let mut got: Vec<(String, &str)> = uncommitted_patch_files(&project, &id)
            .unwrap()
            .into_iter()
            .map(|f| (f.path, f.state))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("Patches/7-x/02 two.sql".to_string(), "untracked"),
                ("pkg/public/t.py".to_string(), "untracked"),
                ("tests/t.py".to_string(), "modified"),
            ]
        );
    }

    #[test]
    fn scratch_repository_sees_the_users_commits_and_leaves_nothing() {
        let (tmp, project) = project_repo();
        let head = project.git.rev_parse("HEAD").unwrap().unwrap();
        let worktrees_before = project.git.run(&["worktree", "list"]).unwrap();
        let objects_before = project.git.run(&["count-objects"]).unwrap();
        let tmpdir = project.state_dir().join("tmp");
        // A scratch of a killed hook (no such process) is removed.
        let stale = tmpdir.join("prepush-4000000000");
        std::fs::create_dir_all(&stale).unwrap();
        let commit;
        {
            let scratch = Scratch::new(&project).unwrap();
            assert!(!stale.exists(), "stale scratch left");
            let wt = Worktree::add(&scratch.project, &head).unwrap();
            assert_eq!(
                std::fs::read_to_string(wt.path.join("tests/t.py")).unwrap(),
                "x = 1\n"
            );
            std::fs::write(wt.path.join("tests/t.py"), "x = 3\n").unwrap();
            wt.git.run(&["add", "-A"]).unwrap();
            wt.git
                .run_env(&["commit", "-q", "-m", "scratch"], &SCRATCH_IDENTITY)
                .unwrap();
            commit = wt.git.rev_parse("HEAD").unwrap().unwrap();
            assert!(tmpdir.read_dir().unwrap().next().is_some());
        }
        assert!(
            tmpdir.read_dir().unwrap().next().is_none(),
            "scratch folder left"
        );
        assert_eq!(
            project.git.run(&["worktree", "list"]).unwrap(),
            worktrees_before
        );
        assert_eq!(project.git.run(&["count-objects"]).unwrap(), objects_before);
        assert!(
            project.git.rev_parse(&commit).unwrap().is_none(),
            "commit leaked"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("tests/t.py")).unwrap(),
            "x = 1\n"
        );
    }
}
