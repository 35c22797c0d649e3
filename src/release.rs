//! Releases as a whole (docs/versions.md, 4.2): which releases are in preparation
//! (the `ho-release/X.Y.Z` branches, on origin when there is one, each with
//! its `X.Y.Z-patches.toml`), the production version, the sequential rule
//! that decides what may be promoted, and the steps every promotion shares:
//! annotated tags made without touching local refs, the merge into
//! `ho-prod` with its model snapshot, and moving local refs once origin
//! accepted the push.

use crate::db::database::Database;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::origin::{Origin, REMOTE, RefUpdate};
use crate::project::{PROD_BRANCH, Project, RELEASE_PREFIX};
use crate::release_file::{self, PatchesFile};
use crate::snapshot;
use crate::validation::{self, Worktree};
use crate::version::{self, Level, Pre, Version};

/// A release in preparation: its branch and its TOML at the branch's tip.
pub struct Prepared {
    pub version: Version,
    /// `ho-release/X.Y.Z`.
    pub branch: String,
    /// The tip the command works from: origin's when there is an origin.
    pub commit: String,
    /// The local branch's tip, when there is a local branch.
    pub local: Option<String>,
    pub file: PatchesFile,
}

impl Prepared {
    /// A hotfix release (its TOML starts with `# HOTFIX`).
    pub fn is_hotfix(&self) -> bool {
        self.file.is_hotfix()
    }
}

/// Production and the releases in preparation, as origin has them.
pub struct Landscape {
    pub origin: Option<Origin>,
    /// `refs/remotes/origin/ho-prod`, or `refs/heads/ho-prod` without origin.
    pub prod_ref: String,
    pub prod_commit: String,
    /// The greatest `vX.Y.Z` / `vX.Y.Z-hotfixN` tag on `ho-prod`.
    pub production: Version,
    /// Smallest first.
    pub releases: Vec<Prepared>,
    /// Every tag of the repository (short names).
    pub tags: Vec<String>,
}

impl Landscape {
    /// The releases in preparation that are not hotfixes, smallest first.
    pub fn normal(&self) -> impl Iterator<Item = &Prepared> {
        self.releases.iter().filter(|r| !r.is_hotfix())
    }

    pub fn hotfixes(&self) -> impl Iterator<Item = &Prepared> {
        self.releases.iter().filter(|r| r.is_hotfix())
    }

    /// The release candidates of `v` (`vX.Y.Z-rcN` tags), by number.
    pub fn rc_tags(&self, v: &Version) -> Vec<Version> {
        self.suffixed(v, |p| matches!(p, Pre::Rc(_)))
    }

    /// The hotfixes of `v` (`vX.Y.Z-hotfixN` tags), by number.
    pub fn hotfix_tags(&self, v: &Version) -> Vec<Version> {
        self.suffixed(v, |p| matches!(p, Pre::Hotfix(_)))
    }

    fn suffixed(&self, v: &Version, keep: impl Fn(Pre) -> bool) -> Vec<Version> {
        let base = v.base();
        let mut out: Vec<Version> = self
            .tags
            .iter()
            .filter_map(|t| Version::from_tag(t))
            .filter(|t| t.base() == base && keep(t.pre))
            .collect();
        out.sort();
        out
    }

    /// Whether the production version is tagged (a release already went out).
    pub fn is_released(&self, v: &Version) -> bool {
        self.tags.iter().any(|t| *t == v.tag_name())
    }

    /// Whether `commit` contains the current `ho-prod`.
    pub fn contains_production(&self, git: &Git, commit: &str) -> Result<bool> {
        git.is_ancestor(&self.prod_commit, commit)
    }
}

/// Reads production and the releases in preparation. With `fetch`, origin
/// is fetched first (commands that change something always fetch).
pub fn survey(project: &Project, fetch: bool) -> Result<Landscape> {
    let git = &project.git;
    let origin = Origin::of(git)?;
    if fetch && let Some(o) = &origin {
        o.fetch()?;
    }
    let prod_ref = if origin.is_some() {
        format!("refs/remotes/{REMOTE}/{PROD_BRANCH}")
    } else {
        format!("refs/heads/{PROD_BRANCH}")
    };
    let prod_commit = git.rev_parse(&prod_ref)?.ok_or_else(|| {
        Error::new(format!("{prod_ref} does not exist"))
            .hint("is this a git-hop project? git fetch origin, then git hop-release status")
    })?;
    let merged = git.run(&["tag", "--merged", &prod_commit, "--list", "v*"])?;
    let production = version::latest_production(merged.lines()).ok_or_else(|| {
        Error::new(format!(
            "no production version: {PROD_BRANCH} carries no vX.Y.Z or vX.Y.Z-hotfixN tag"
        ))
        .hint("fetch the tags (git fetch --tags origin); git hop-release init tags v0.0.0")
    })?;
    let tags: Vec<String> = git
        .run(&["tag", "--list", "v*"])?
        .lines()
        .map(str::to_string)
        .collect();

    // The release branches: origin's (and local ones without origin).
    let pattern = if origin.is_some() {
        format!("refs/remotes/{REMOTE}/{RELEASE_PREFIX}")
    } else {
        format!("refs/heads/{RELEASE_PREFIX}")
    };
    let listed = git.run(&[
        "for-each-ref",
        "--format=%(refname) %(objectname)",
        &pattern,
    ])?;
    let mut releases = Vec::new();
    for line in listed.lines() {
        let Some((name, commit)) = line.split_once(' ') else {
            continue;
        };
        let Some(v) = name.strip_prefix(pattern.as_str()) else {
            continue;
        };
        let Ok(version) = v.parse::<Version>() else {
            continue;
        };
        if !version.is_release() {
            continue;
        }
        let branch = format!("{RELEASE_PREFIX}{version}");
        let toml = release_file::patches_path(&project.root, &version);
        let rel = relative(project, &toml);
        let text = project.repo.file_at(commit, &rel).ok_or_else(|| {
            Error::new(format!("{branch} has no {rel}")).hint(format!(
                "a release branch holds its release file; restore it on {branch} or delete the branch"
            ))
        })?;
        let text = String::from_utf8_lossy(&text).into_owned();
        let file =
            PatchesFile::parse(&toml, &text).map_err(|e| e.context(format!("on {branch}")))?;
        let local = git.rev_parse(&format!("refs/heads/{branch}"))?;
        releases.push(Prepared {
            version,
            branch,
            commit: commit.to_string(),
            local,
            file,
        });
    }
    releases.sort_by(|a, b| a.version.cmp(&b.version));
    Ok(Landscape {
        origin,
        prod_ref,
        prod_commit,
        production,
        releases,
        tags,
    })
}

/// A path under the project root as git names it.
pub fn relative(project: &Project, path: &std::path::Path) -> String {
    path.strip_prefix(&project.root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Whether release `v` directly follows production `prod` (docs/versions.md): the
/// next patch, minor or major version of it.
pub fn directly_follows(prod: &Version, v: &Version) -> bool {
    [Level::Patch, Level::Minor, Level::Major]
        .iter()
        .any(|l| prod.next(*l) == *v)
}

/// The release `promote rc|prod` may promote (the sequential rule of docs/versions.md): the
/// smallest release in preparation (hotfixes aside), which must directly
/// follow production, have no candidates, have staged patches and contain
/// the current `ho-prod`. `current` is the current branch: promoting from
/// another release's branch is refused, naming the release that blocks.
pub fn select_for_promotion<'a>(
    project: &Project,
    land: &'a Landscape,
    current: Option<&str>,
    what: &str,
) -> Result<&'a Prepared> {
    let normal: Vec<&Prepared> = land.normal().collect();
    let Some(first) = normal.first().copied() else {
        return Err(Error::new(format!(
            "no release in preparation to promote (production is {})",
            land.production
        ))
        .hint("git hop-release new <patch|minor|major> opens one"));
    };
    let v = &first.version;
    if let Some(b) = current
        && let Some(other) = normal.iter().find(|r| r.branch == b)
        && other.version != *v
    {
        return Err(Error::new(format!(
            "cannot promote {} to {what}: release {v} is in preparation and comes first; only the smallest release in preparation can be promoted",
            other.version
        ))
        .hint(format!(
            "promote {v} first (git switch {} && git hop-release promote …), or close it if it has no staged patch: git hop-release abandon {v}",
            first.branch
        )));
    }
    if !directly_follows(&land.production, v) {
        return Err(Error::new(format!(
            "release {v} does not directly follow production {}: releases reach production one after the other",
            land.production
        ))
        .hint("the release that comes between must be promoted first: git hop-release status"));
    }
    let candidates = first.file.candidates();
    if !candidates.is_empty() {
        return Err(Error::new(format!(
            "cannot promote {v} to {what}: candidates not merged yet: {}",
            candidates.join(", ")
        ))
        .hint("merge them (git switch ho-patch/<id> && git hop-patch merge), or take them out of the release: git hop-patch detach <id>"));
    }
    if first.file.staged().is_empty() {
        let later: Vec<String> = normal[1..]
            .iter()
            .filter(|r| !r.file.staged().is_empty())
            .map(|r| r.version.to_string())
            .collect();
        let blocks = if later.is_empty() {
            String::new()
        } else {
            format!(
                "; it comes before {}, which can be promoted only after it",
                later.join(", ")
            )
        };
        return Err(Error::new(format!(
            "release {v} has no staged patch: nothing to promote{blocks}"
        ))
        .hint(if later.is_empty() {
            "git hop-patch create <id>, then git hop-patch merge".to_string()
        } else {
            format!("stage a patch in it (git hop-patch create <id>, then git hop-patch merge), or close it: git hop-release abandon {v}")
        }));
    }
    check_contains_production(project, land, first)?;
    check_local_branch(project, first)?;
    Ok(first)
}

/// A release branch must contain the current `ho-prod` (a hotfix or a
/// smaller release may have landed since it was opened).
pub fn check_contains_production(project: &Project, land: &Landscape, r: &Prepared) -> Result<()> {
    if land.contains_production(&project.git, &r.commit)? {
        return Ok(());
    }
    Err(Error::new(format!(
        "{} does not contain the current {PROD_BRANCH} (production {}): it must be synced first",
        r.branch, land.production
    ))
    .hint(format!("git switch {} && git hop-release sync", r.branch)))
}

/// The local release branch may lag behind origin, never hold commits of
/// its own (they would be lost).
pub fn check_local_branch(project: &Project, r: &Prepared) -> Result<()> {
    if let Some(local) = &r.local
        && local != &r.commit
        && !project.git.is_ancestor(local, &r.commit)?
    {
        return Err(Error::new(format!(
            "{} has local commits that are not on origin",
            r.branch
        ))
        .hint(format!(
            "git-hop adds to release branches only through its commands: save those commits elsewhere, then git branch -f {0} origin/{0}",
            r.branch
        )));
    }
    Ok(())
}

/// Makes an annotated tag object `name` on `commit` without creating the
/// ref (the ref is created once origin accepted it). Returns its id.
pub fn make_tag(git: &Git, commit: &str, name: &str, message: &str) -> Result<String> {
    let tagger = git.run(&["var", "GIT_COMMITTER_IDENT"]).map_err(|_| {
        Error::new("git does not know who you are (no user.name / user.email)")
            .hint("git config --global user.name \"Your Name\" && git config --global user.email you@example.com")
    })?;
    let text = format!("object {commit}\ntype commit\ntag {name}\ntagger {tagger}\n\n{message}\n");
    git.run_stdin(&["mktag"], text.as_bytes(), &[])
}

/// Commits everything changed in the worktree into its HEAD commit
/// (`--amend`), keeping the message and parents.
fn amend_all(wt: &Worktree) -> Result<String> {
    wt.git.run(&["add", "-A"])?;
    wt.git
        .run(&["commit", "-q", "--amend", "--no-edit", "--no-verify"])?;
    wt.git.head()
}

/// What a production promotion (`promote prod`, `promote hotfix`) built.
pub struct Production {
    pub version: Version,
    pub commit: String,
    pub tag: String,
    pub patches: Vec<String>,
}

/// Validates release `r` merged into `ho-prod` as production version
/// `target` and builds the production commit: the merge, the model
/// snapshot of `target` dumped from the validation database, the
/// `schema.sql` symlink moved, `target.txt`, the TOML deleted; and its
/// annotated tag. Touches no ref: see [`publish_production`].
pub fn build_production(
    project: &Project,
    working: &Database,
    land: &Landscape,
    r: &Prepared,
    target: &Version,
) -> Result<Production> {
    let wt = Worktree::add(project, &land.prod_commit)?;
    let message = if target.is_release() {
        format!("[hop] release {target}")
    } else {
        format!("[hop] hotfix {target}")
    };
    let merged = wt
        .git
        .output(&["merge", "--no-ff", "--no-commit", "-q", &r.commit], &[])?;
    if !merged.ok {
        return Err(Error::new(format!(
            "cannot merge {} into {PROD_BRANCH}: {}",
            r.branch,
            crate::git::first_lines(&merged.stderr, &merged.stdout)
        ))
        .hint(format!("git switch {} && git hop-release sync", r.branch)));
    }
    wt.git
        .run(&["commit", "-q", "--no-verify", "-m", &message])?;
    let toml = release_file::patches_path(&wt.path, &r.version);
    let file = PatchesFile::load(&toml)?;
    let patches = file.staged();

    let (temp, texts) =
        validation::validate_tree_keep(project, working, &wt, target, &file, None, true)?;
    drop(temp);
    let texts = texts.ok_or_else(|| Error::new("the validation dumped no model snapshot"))?;
    // The snapshot must build what it was dumped from (docs/snapshots.md).
    println!("proving the model snapshot {target}: load, dump, compare");
    snapshot::proof::prove(working, &texts, target)
        .map_err(|e| e.context(format!("{target} was not promoted")))?;
    snapshot::write(
        &wt.path,
        target,
        &texts.schema,
        &texts.data,
        &texts.metadata,
    )?;
    let header = format!(
        "{} {target}: patches in application order",
        if target.is_release() {
            "release"
        } else {
            "hotfix"
        }
    );
    release_file::write_snapshot(
        &release_file::snapshot_path(&wt.path, target),
        &patches,
        Some(&header),
    )?;
    std::fs::remove_file(&toml).map_err(|e| Error::io("cannot remove", &toml, e))?;
    let commit = amend_all(&wt)?;
    let tag = make_tag(&project.git, &commit, &target.tag_name(), &message)?;
    Ok(Production {
        version: target.clone(),
        commit,
        tag,
        patches,
    })
}

/// One atomic push: `ho-prod` to the production commit, the tag created,
/// the release branch deleted; then the same locally (the tag, `ho-prod`
/// moved when it can fast-forward, the release branch deleted, switching to
/// `ho-prod` first when it was checked out). Returns notes for the user.
pub fn publish_production(
    project: &Project,
    land: &Landscape,
    r: &Prepared,
    p: &Production,
    lock: Option<&mut crate::lock::Lock>,
) -> Result<Vec<String>> {
    let git = &project.git;
    let tag_ref = format!("refs/tags/{}", p.version.tag_name());
    if let Some(o) = &land.origin {
        crate::lock::push(lock, o, &[
            RefUpdate::update(
                format!("refs/heads/{PROD_BRANCH}"),
                &p.commit,
                &land.prod_commit,
            ),
            RefUpdate::create(tag_ref.clone(), &p.tag),
            RefUpdate::delete(format!("refs/heads/{}", r.branch), &r.commit),
        ])
        .map_err(|e| {
            e.context(format!("cannot publish {}", p.version)).hint(
                "nothing was changed, locally or on origin: fetch, check git hop-release status, and run the command again",
            )
        })?;
    }
    let mut notes = Vec::new();
    git.update_refs(&[(&tag_ref, Some(&p.tag), Some(""))])?;
    let current = project.current_branch();
    let on_release = current.as_deref() == Some(r.branch.as_str());
    move_local_branch(project, PROD_BRANCH, &p.commit, &mut notes)?;
    if on_release {
        git.switch(PROD_BRANCH)?;
        notes.push(format!("switched to {PROD_BRANCH}"));
    }
    if r.local.is_some() {
        git.run(&["branch", "-q", "-D", &r.branch])?;
    }
    if land.origin.is_some() {
        let _ = git.update_refs(&[(&format!("refs/remotes/{REMOTE}/{}", r.branch), None, None)]);
    }
    Ok(notes)
}

/// A production promotion that origin accepted but whose local part never
/// ran (the command was killed right after its push): a local release
/// branch that origin no longer has, fully merged into origin's `ho-prod`,
/// whose version is tagged there. Completes the local part as
/// [`publish_production`] would (tag, `ho-prod`, switch, branch deleted)
/// and returns the version reached; `None` when there is nothing to
/// complete.
pub fn complete_interrupted_production(
    project: &Project,
    land: &Landscape,
) -> Result<Option<(Version, Vec<String>)>> {
    let git = &project.git;
    if land.origin.is_none() {
        return Ok(None);
    }
    let locals = git.run(&[
        "for-each-ref",
        "--format=%(refname:short) %(objectname)",
        &format!("refs/heads/{RELEASE_PREFIX}"),
    ])?;
    let merged = git.run(&["tag", "--merged", &land.prod_commit, "--list", "v*"])?;
    for line in locals.lines() {
        let Some((branch, commit)) = line.split_once(' ') else {
            continue;
        };
        let Some(Ok(v)) = branch
            .strip_prefix(RELEASE_PREFIX)
            .map(str::parse::<Version>)
        else {
            continue;
        };
        if land.releases.iter().any(|r| r.branch == branch) {
            continue; // still in preparation on origin
        }
        // The version it became: vX.Y.Z or its latest hotfix, on ho-prod.
        let Some(reached) = merged
            .lines()
            .filter_map(Version::from_tag)
            .filter(|t| t.base() == v && !matches!(t.pre, Pre::Rc(_)))
            .max()
        else {
            continue;
        };
        if !git.is_ancestor(commit, &land.prod_commit)? {
            continue;
        }
        let mut notes = Vec::new();
        move_local_branch(project, PROD_BRANCH, &land.prod_commit, &mut notes)?;
        if project.current_branch().as_deref() == Some(branch) {
            git.switch(PROD_BRANCH)?;
            notes.push(format!("switched to {PROD_BRANCH}"));
        }
        git.run(&["branch", "-q", "-D", branch])?;
        return Ok(Some((reached, notes)));
    }
    Ok(None)
}

/// Moves local branch `branch` to `commit` when that is a fast-forward
/// (creates it when missing). The checked-out branch is fast-forwarded in
/// the work tree. A branch with commits of its own is left alone, with a
/// note.
pub fn move_local_branch(
    project: &Project,
    branch: &str,
    commit: &str,
    notes: &mut Vec<String>,
) -> Result<()> {
    let git = &project.git;
    let full = format!("refs/heads/{branch}");
    let Some(local) = git.rev_parse(&full)? else {
        git.run(&["branch", "-q", branch, commit])?;
        return Ok(());
    };
    if local == commit {
        return Ok(());
    }
    if !git.is_ancestor(&local, commit)? {
        notes.push(format!(
            "your local {branch} has commits of its own and was left as it is (origin has the new {branch})"
        ));
        return Ok(());
    }
    if project.current_branch().as_deref() == Some(branch) {
        let out = git.output(&["merge", "--ff-only", "-q", commit], &[])?;
        if !out.ok {
            notes.push(format!(
                "could not fast-forward your work tree on {branch}: {}; run git pull --ff-only",
                crate::git::first_lines(&out.stderr, &out.stdout)
            ));
        }
    } else {
        git.update_refs(&[(&full, Some(commit), Some(&local))])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn next_versions_directly_follow() {
        assert!(directly_follows(&v("0.1.0"), &v("0.1.1")));
        assert!(directly_follows(&v("0.1.0"), &v("0.2.0")));
        assert!(directly_follows(&v("0.1.0"), &v("1.0.0")));
        assert!(directly_follows(&v("0.1.0-hotfix2"), &v("0.1.1")));
        assert!(!directly_follows(&v("0.1.0"), &v("0.1.2")));
        assert!(!directly_follows(&v("0.1.0"), &v("0.3.0")));
        assert!(!directly_follows(&v("0.1.0"), &v("0.1.0")));
    }

    #[test]
    fn tags_are_made_without_refs() {
        let tmp = tempfile::tempdir().unwrap();
        let g = Git::new(tmp.path()).unwrap();
        let env = crate::git::TEST_ENV;
        g.run_env(&["init", "-q", "-b", "ho-prod"], &env).unwrap();
        g.run_env(&["config", "user.name", "t"], &env).unwrap();
        g.run_env(&["config", "user.email", "t@e"], &env).unwrap();
        g.run_env(&["commit", "-q", "--allow-empty", "-m", "one"], &env)
            .unwrap();
        let c = g.rev_parse("HEAD").unwrap().unwrap();
        let tag = make_tag(&g, &c, "v0.1.0", "[hop] release 0.1.0").unwrap();
        assert_eq!(g.run(&["tag", "--list"]).unwrap(), "", "no ref created");
        assert_eq!(g.run(&["cat-file", "-t", &tag]).unwrap(), "tag");
        g.run(&["update-ref", "refs/tags/v0.1.0", &tag]).unwrap();
        assert_eq!(g.rev_parse("v0.1.0").unwrap().unwrap(), c);
        assert_eq!(
            g.run(&["tag", "-l", "--format=%(contents:subject)", "v0.1.0"])
                .unwrap(),
            "[hop] release 0.1.0"
        );
    }
}
