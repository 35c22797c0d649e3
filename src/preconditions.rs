//! Checks that commands run before changing anything: the right branch, a
//! clean work tree, a development clone, in sync with origin. Each failure
//! says what is wrong and which command fixes it.

use crate::error::{Error, Result};
use crate::origin::REMOTE;
use crate::patch_id::PatchId;
use crate::project::{BranchRole, PATCH_PREFIX, Project, RELEASE_PREFIX};
use crate::version::Version;

/// Development commands are refused in a production clone.
pub fn development(project: &Project, command: &str) -> Result<()> {
    if project.clone.production {
        return Err(Error::new(format!(
            "{command} is a development command and this is a production clone (git config hop.production true)"
        ))
        .hint("run it in a development clone; production runs git hop-release update / upgrade"));
    }
    Ok(())
}

/// No tracked change and no untracked file (ignored files don't count).
pub fn clean(project: &Project) -> Result<()> {
    clean_in(&project.git)
}

/// [`clean`], asked of git on a thread of its own while the command reads
/// and checks the rest (a `git status` costs a few milliseconds): see
/// [`CleanCheck::then`].
pub fn start_clean(project: &Project) -> CleanCheck {
    let dir = project.git.dir().to_path_buf();
    CleanCheck(std::thread::spawn(move || {
        clean_in(&crate::git::Git::new(dir)?)
    }))
}

/// A [`clean`] check under way.
pub struct CleanCheck(std::thread::JoinHandle<Result<()>>);

impl CleanCheck {
    /// `rest`'s result once the work tree is known to be clean; a work tree
    /// that is not is the error, whatever `rest` found (as if [`clean`]
    /// had run first). `rest` must change nothing.
    pub fn then<T>(self, rest: impl FnOnce() -> Result<T>) -> Result<T> {
        let found = rest();
        self.0
            .join()
            .unwrap_or_else(|_| Err(Error::new("the check of the work tree stopped")))?;
        found
    }
}

fn clean_in(git: &crate::git::Git) -> Result<()> {
    let out = git.run(&["status", "--porcelain", "--untracked-files=normal"])?;
    if out.trim().is_empty() {
        return Ok(());
    }
    let files: Vec<&str> = out.lines().map(|l| l.get(3..).unwrap_or(l)).collect();
    let shown = if files.len() > 10 {
        format!("{} and {} more", files[..10].join(", "), files.len() - 10)
    } else {
        files.join(", ")
    };
    Err(Error::new(format!("Repository is not clean: {shown}"))
        .hint("commit them (git add -A && git commit) or stash them (git stash -u), then run the command again"))
}

/// The current branch must be `ho-release/X.Y.Z`; returns X.Y.Z.
pub fn on_release_branch(project: &Project, command: &str) -> Result<Version> {
    match project.role() {
        BranchRole::Release(v) => v.parse::<Version>().map_err(|e| {
            Error::new(format!("branch {RELEASE_PREFIX}{v} does not name a version: {}", e.message))
        }),
        other => Err(Error::new(format!(
            "Must be on ho-release/* branch to run {command} (current: {})",
            branch_name(project, &other)
        ))
        .hint("git switch ho-release/X.Y.Z (git hop-release status lists the releases in preparation)")),
    }
}

/// The current branch must be `ho-patch/<id>`; returns the id.
pub fn on_patch_branch(project: &Project, command: &str) -> Result<PatchId> {
    match project.role() {
        BranchRole::Patch(id) => PatchId::parse(&id),
        other => Err(Error::new(format!(
            "Must be on ho-patch/* branch to run {command} (current: {})",
            branch_name(project, &other)
        ))
        .hint(format!(
            "git switch {PATCH_PREFIX}<id> (git branch --list '{PATCH_PREFIX}*' lists them)"
        ))),
    }
}

/// The release in preparation (in the work tree) that lists patch `id`.
pub fn release_of_patch(
    project: &Project,
    id: &PatchId,
) -> Result<(Version, crate::release_file::PatchesFile)> {
    crate::release_file::find_patch(&project.root, id.as_str())?.ok_or_else(|| {
        Error::new(format!(
            "Patch not found in candidates file: no release in preparation lists {id}"
        ))
        .hint(format!(
            "a detached patch goes back with git hop-patch attach {id} (on a release branch); otherwise git hop-patch sync brings the release file up to date"
        ))
    })
}

fn branch_name(project: &Project, role: &BranchRole) -> String {
    match role {
        BranchRole::Detached => "detached HEAD".into(),
        _ => project.current_branch().unwrap_or_default(),
    }
}

/// After a fetch: the local branch must be exactly origin's (when origin
/// has it). Returns origin's commit.
pub fn in_sync(project: &Project, branch: &str) -> Result<Option<String>> {
    let remote = project
        .git
        .rev_parse(&format!("refs/remotes/{REMOTE}/{branch}"))?;
    let local = project.git.rev_parse(&format!("refs/heads/{branch}"))?;
    let (Some(remote), Some(local)) = (remote, local) else {
        return Ok(None);
    };
    if remote == local {
        return Ok(Some(remote));
    }
    if project.git.is_ancestor(&local, &remote)? {
        Err(
            Error::new(format!("{branch} is behind origin")).hint(format!(
                "update it first: git switch {branch} && git pull --ff-only"
            )),
        )
    } else if project.git.is_ancestor(&remote, &local)? {
        Err(Error::new(format!("{branch} has local commits that are not on origin"))
            .hint("git-hop adds to release branches only through its own commands; move those commits to a patch branch, then git reset --hard origin/".to_string() + branch))
    } else {
        Err(Error::new(format!("{branch} and origin/{branch} have diverged"))
            .hint(format!("git switch {branch} && git reset --hard origin/{branch} (after saving your commits elsewhere)")))
    }
}
