//! Production upgrades (docs/production.md): which production versions a database
//! lacks (the `vX.Y.Z` / `vX.Y.Z-hotfixN` tags on `ho-prod` newer than its
//! `half_orm_meta` version, never rc tags), their patches as each version's
//! tag has them (`.hop/releases/V.txt` and `Patches/<id>/` read from the
//! tag, never from the work tree), schema drift against the recorded
//! version's snapshot, and where the work tree goes afterwards.
//!
//! The work tree of a production clone follows its database: after an
//! upgrade (or a production restore) `ho-prod` is checked out at the
//! commit of the version reached (`git checkout -B ho-prod <tag>`), so the
//! clone never sits on a detached HEAD and later commands (update,
//! upgrade, status, `git pull`) work as usual. A production clone never
//! pushes, and `ho-prod` there must not hold commits of its own (checked
//! before anything changes). The run itself: [`runner`]; the lock:
//! [`lock`].

pub mod lock;
pub mod runner;

use std::path::Path;

use crate::error::{Error, Result};
use crate::origin::REMOTE;
use crate::patch_dir;
use crate::patch_id::PatchId;
use crate::project::{PROD_BRANCH, Project};
use crate::release_file;
use crate::version::{Pre, Version};

use runner::{PatchRun, ReleaseRun, Resume, StepRow};

/// A production version the database lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub version: Version,
    pub tag: String,
    /// The commit the tag points at.
    pub commit: String,
    /// Where its release file and patch folders are read: the tag's
    /// commit, or for a release half-orm-dev made before the project was
    /// imported (its tag holds half-orm-dev's layout), the production
    /// branch, where the import converted them (docs/import.md).
    pub source: String,
    /// Its patches in application order (from `V.txt` at the tag).
    pub patches: Vec<PatchId>,
}

/// The production branch as this clone knows it: origin's when there is
/// an origin, else the local one. Returns (ref, commit).
pub fn production_ref(project: &Project) -> Result<(String, String)> {
    let has_origin = crate::origin::Origin::of(&project.git)?.is_some();
    let r = if has_origin {
        format!("refs/remotes/{REMOTE}/{PROD_BRANCH}")
    } else {
        format!("refs/heads/{PROD_BRANCH}")
    };
    let commit = project.git.rev_parse(&r)?.ok_or_else(|| {
        Error::new(format!("{r} does not exist"))
            .hint("is this a git-hop project? git fetch origin, then run the command again")
    })?;
    Ok((r, commit))
}

/// The production versions on `ho-prod` (tags merged into it, rc tags
/// excluded), ascending.
pub fn production_versions(project: &Project) -> Result<Vec<Version>> {
    let (_, commit) = production_ref(project)?;
    let merged = project
        .git
        .run(&["tag", "--merged", &commit, "--list", "v*"])?;
    let mut out: Vec<Version> = merged
        .lines()
        .filter_map(Version::from_tag)
        .filter(|v| !matches!(v.pre, Pre::Rc(_)))
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The production versions after `from`, up to `to` (included) when
/// given, each with its patches read at its tag.
pub fn pending(project: &Project, from: &Version, to: Option<&Version>) -> Result<Vec<Pending>> {
    let versions = production_versions(project)?;
    if let Some(to) = to {
        if !versions.contains(to) {
            let listed: Vec<String> = versions.iter().map(Version::to_string).collect();
            return Err(Error::new(format!(
                "{to} is not a production version on {PROD_BRANCH} (production versions: {})",
                listed.join(", ")
            ))
            .hint("git hop-release update lists the versions this database can reach"));
        }
        // Already there: nothing pending (the caller says "up to date").
        if to < from {
            return Err(Error::new(format!(
                "the database is at {from}: it cannot upgrade to {to}, which is not newer"
            ))
            .hint(format!(
                "to go back to {to} in production: git hop-release restore {to}"
            )));
        }
    }
    let mut out = Vec::new();
    for v in versions {
        if v <= *from || to.is_some_and(|t| v > *t) {
            continue;
        }
        let tag = v.tag_name();
        let commit = project.git.rev_parse(&tag)?.ok_or_else(|| {
            Error::new(format!("tag {tag} does not name a commit")).hint("git fetch --tags origin")
        })?;
        let rel = format!(".hop/releases/{v}.txt");
        let source = imported_at(project, &commit)?.unwrap_or_else(|| commit.clone());
        let text = project.repo.file_at(&source, &rel).ok_or_else(|| {
            Error::new(format!("tag {tag} has no {rel}"))
                .hint("a production version lists its patches in .hop/releases/X.Y.Z.txt; the tag is not a git-hop release")
        })?;
        let text = String::from_utf8_lossy(&text);
        let patches = release_file::parse_snapshot(Path::new(&format!("{tag}:{rel}")), &text)?;
        out.push(Pending {
            version: v,
            tag,
            commit,
            source,
            patches,
        });
    }
    Ok(out)
}

/// For a release half-orm-dev made before the project was imported (the
/// tree at its tag, `tagged`, is half-orm-dev's, not git-hop's): the
/// import's commit on the production branch, which holds that release's
/// files converted (docs/import.md). `None` for a release of git-hop's.
pub fn imported_at(project: &Project, tagged: &str) -> Result<Option<String>> {
    if is_git_hops(project, tagged) {
        return Ok(None);
    }
    let (_, prod) = production_ref(project)?;
    let path = project.git.run(&[
        "rev-list",
        "--reverse",
        "--first-parent",
        "--ancestry-path",
        &format!("{tagged}..{prod}"),
    ])?;
    Ok(path
        .lines()
        .find(|c| is_git_hops(project, c))
        .map(str::to_string))
}

/// Whether the tree of `commit` is a git-hop project's.
fn is_git_hops(project: &Project, commit: &str) -> bool {
    let config = crate::settings::CONFIG_PATH;
    project.repo.file_at(commit, config).is_some_and(|t| {
        crate::settings::ProjectConfig::parse(Path::new(config), &String::from_utf8_lossy(&t))
            .is_ok()
    })
}

/// The commit holding version `v`'s git-hop files: its tag's, or the
/// import's for a release half-orm-dev made ([`imported_at`]).
pub fn release_files_commit(project: &Project, v: &Version) -> Result<Option<String>> {
    let Some(tagged) = project.git.rev_parse(&v.tag_name())? else {
        return Ok(None);
    };
    Ok(Some(imported_at(project, &tagged)?.unwrap_or(tagged)))
}

/// Extracts the patch folders of `pending` from their tags into `dest`
/// (`dest/<version>/Patches/<id>/`) and reads their steps. Fails, before
/// anything runs, on a missing folder or an unexpected file.
pub fn extract(project: &Project, pending: &[Pending], dest: &Path) -> Result<Vec<ReleaseRun>> {
    let mut out = Vec::new();
    for p in pending {
        let base = dest.join(p.version.to_string());
        std::fs::create_dir_all(&base).map_err(|e| Error::io("cannot create", &base, e))?;
        if !p.patches.is_empty() {
            let tar = dest.join(format!("{}.tar", p.version));
            let mut args: Vec<String> = vec![
                "archive".into(),
                "--format=tar".into(),
                format!("--output={}", tar.display()),
                p.source.clone(),
                "--".into(),
            ];
            args.extend(p.patches.iter().map(|id| format!("Patches/{id}")));
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            project.git.run(&argv).map_err(|e| {
                Error::new(format!(
                    "cannot read the patches of {} at tag {}: {}",
                    p.version, p.tag, e.message
                ))
                .hint(format!(
                    "every patch listed in .hop/releases/{}.txt must have its folder Patches/<id> at the tag",
                    p.version
                ))
            })?;
            let tar_args: Vec<std::ffi::OsString> =
                vec!["-x".into(), "-f".into(), tar.clone().into()];
            let out = duct::cmd("tar", tar_args)
                .dir(&base)
                .stdin_null()
                .stdout_capture()
                .stderr_capture()
                .unchecked()
                .run()
                .map_err(|e| Error::new(format!("could not run tar: {e}")))?;
            if !out.status.success() {
                return Err(Error::new(format!(
                    "cannot extract the patches of {}: tar: {}",
                    p.version,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            let _ = std::fs::remove_file(&tar);
        }
        let mut patches = Vec::new();
        for id in &p.patches {
            let dir = base.join("Patches").join(id.as_str());
            if !dir.is_dir() {
                return Err(Error::new(format!(
                    "tag {} lists patch {id} but has no folder Patches/{id}",
                    p.tag
                ))
                .hint("the release is broken: fix it with a hotfix release"));
            }
            // The checks of apply and merge (docs/patches.md).
            let checked = patch_dir::check(&dir, &base)
                .map_err(|e| e.context(format!("patch {id} of {}", p.tag)))?;
            patches.push(PatchRun {
                id: id.to_string(),
                session: checked.session,
                dir,
                sha256: checked.sha256,
                steps: checked.steps,
            });
        }
        out.push(ReleaseRun {
            version: p.version.clone(),
            commit: p.commit.clone(),
            patches,
        });
    }
    Ok(out)
}

/// The normalized schema snapshot of production version `v`, read at its tag.
pub fn expected_schema(project: &Project, v: &Version) -> Result<String> {
    let tag = v.tag_name();
    let commit = release_files_commit(project, v)?.ok_or_else(|| {
        Error::new(format!(
            "the database's version {v} has no tag {tag}: it is not a production version of this project"
        ))
        .hint("check that the clone and the database belong together (git hop-release status), and fetch the tags")
    })?;
    let rel = format!(".hop/model/schema-{v}.sql");
    let bytes = project.repo.file_at(&commit, &rel).ok_or_else(|| {
        Error::new(format!("tag {tag} has no {rel}"))
            .hint("the model snapshot of a production version must be committed")
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A short difference between two dumps: the lines only in `expected`
/// (`-`) and only in `actual` (`+`), in order, at most `max` of them.
pub fn schema_diff(expected: &str, actual: &str, max: usize) -> Vec<String> {
    use std::collections::HashMap;
    let count = |text: &str| {
        let mut m: HashMap<String, usize> = HashMap::new();
        for l in text.lines() {
            *m.entry(l.to_string()).or_default() += 1;
        }
        m
    };
    let mut in_actual = count(actual);
    let mut in_expected = count(expected);
    let mut out = Vec::new();
    for l in expected.lines() {
        match in_actual.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ if !l.trim().is_empty() => out.push(format!("-{l}")),
            _ => {}
        }
    }
    for l in actual.lines() {
        match in_expected.get_mut(l) {
            Some(n) if *n > 0 => *n -= 1,
            _ if !l.trim().is_empty() => out.push(format!("+{l}")),
            _ => {}
        }
    }
    if out.len() > max {
        let more = out.len() - max;
        out.truncate(max);
        out.push(format!("… and {more} more line(s)"));
    }
    out
}

/// What an interrupted upgrade left (rows of the step table), checked
/// against the releases to run: they must belong to the first one, with
/// the same patch contents.
pub fn resume_state(rows: &[StepRow], releases: &[ReleaseRun]) -> Result<Resume> {
    let Some(first_row) = rows.first() else {
        return Ok(Resume::default());
    };
    let broken = |why: String| {
        Error::new(format!(
            "an interrupted upgrade left {} in a state this upgrade cannot resume: {why}",
            runner::STEP_TABLE
        ))
        .hint("restore the backup taken before it (git hop-release restore <version>), or finish it by hand and drop that table")
    };
    let Some(first) = releases.first() else {
        return Err(broken(format!(
            "it records steps of release {} but no release is pending",
            first_row.release
        )));
    };
    let mut resume = Resume {
        release: Some(first.version.clone()),
        ..Resume::default()
    };
    for row in rows {
        if row.release != first.version.to_string() {
            return Err(broken(format!(
                "it records steps of release {}, the next release is {}",
                row.release, first.version
            )));
        }
        let Some(patch) = first.patches.iter().find(|p| p.id == row.patch_id) else {
            return Err(broken(format!(
                "release {} has no patch {}",
                first.version, row.patch_id
            )));
        };
        if patch.sha256 != row.sha256 {
            return Err(broken(format!(
                "patch {} differs from the one the interrupted upgrade ran",
                row.patch_id
            )));
        }
        if row.state == "done" {
            resume.done.insert((row.patch_id.clone(), row.file.clone()));
        }
    }
    Ok(resume)
}

/// A production clone's `ho-prod` must not hold commits of its own (they
/// would be left behind when it moves to a version's tag).
pub fn check_production_branch(project: &Project) -> Result<()> {
    let local = project
        .git
        .rev_parse(&format!("refs/heads/{PROD_BRANCH}"))?;
    let (r, remote) = production_ref(project)?;
    if let Some(local) = local
        && r.starts_with("refs/remotes/")
        && !project.git.is_ancestor(&local, &remote)?
    {
        return Err(Error::new(format!(
            "{PROD_BRANCH} has commits that are not on origin: a production clone only follows origin"
        ))
        .hint(format!(
            "save them elsewhere (git branch saved {PROD_BRANCH}), then git branch -f {PROD_BRANCH} origin/{PROD_BRANCH}"
        )));
    }
    Ok(())
}

/// Checks out `ho-prod` at the commit of version `v`'s tag.
pub fn move_work_tree(project: &Project, v: &Version) -> Result<()> {
    let tag = v.tag_name();
    let commit = project
        .git
        .rev_parse(&tag)?
        .ok_or_else(|| Error::new(format!("tag {tag} does not exist")))?;
    project
        .git
        .run(&["checkout", "-q", "-B", PROD_BRANCH, &commit])
        .map(|_| ())
        .map_err(|e| {
            Error::new(format!("cannot move the work tree to {tag}: {}", e.message)).hint(format!(
                "the database is at {v}: git checkout -B {PROD_BRANCH} {tag}"
            ))
        })
}

/// Whether the work tree is at `v`'s tag commit on `ho-prod`.
pub fn work_tree_at(project: &Project, v: &Version) -> Result<bool> {
    let head = project.git.rev_parse("HEAD")?;
    let tag = project.git.rev_parse(&v.tag_name())?;
    Ok(head.is_some() && head == tag && project.current_branch().as_deref() == Some(PROD_BRANCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_diff_lists_missing_and_extra_lines() {
        let expected = "CREATE TABLE a (\n    id int\n);\n\n--\nCREATE TABLE b (\n    id int\n);\n";
        let actual = "CREATE TABLE a (\n    id int,\n    x text\n);\n\n--\nCREATE TABLE b (\n    id int\n);\n";
        let d = schema_diff(expected, actual, 10);
        assert_eq!(d, vec!["-    id int", "+    id int,", "+    x text"]);
        assert!(schema_diff(expected, expected, 10).is_empty());
        let d = schema_diff("", "a\nb\nc\n", 2);
        assert_eq!(d, vec!["+a", "+b", "… and 1 more line(s)"]);
    }

    #[test]
    fn resume_state_checks_release_patch_and_contents() {
        let rel = ReleaseRun {
            version: "0.2.0".parse().unwrap(),
            commit: "c".into(),
            patches: vec![PatchRun {
                id: "2-b".into(),
                session: Default::default(),
                dir: "/x".into(),
                sha256: "abc".into(),
                steps: vec![],
            }],
        };
        let row = |release: &str, id: &str, sha: &str, state: &str| StepRow {
            release: release.into(),
            patch_id: id.into(),
            file: "01.sql".into(),
            sha256: sha.into(),
            state: state.into(),
            error: None,
        };
        assert_eq!(
            resume_state(&[], std::slice::from_ref(&rel)).unwrap(),
            Resume::default()
        );
        let r = resume_state(
            &[row("0.2.0", "2-b", "abc", "done")],
            std::slice::from_ref(&rel),
        )
        .unwrap();
        assert_eq!(r.release, Some(rel.version.clone()));
        assert!(r.done.contains(&("2-b".to_string(), "01.sql".to_string())));
        let r = resume_state(
            &[row("0.2.0", "2-b", "abc", "failed")],
            std::slice::from_ref(&rel),
        )
        .unwrap();
        assert!(r.done.is_empty() && r.release.is_some());
        for bad in [
            row("0.1.0", "2-b", "abc", "done"),
            row("0.2.0", "9-z", "abc", "done"),
            row("0.2.0", "2-b", "zzz", "done"),
        ] {
            let e = resume_state(&[bad], std::slice::from_ref(&rel)).unwrap_err();
            assert!(e.message.contains("cannot resume"), "{e:?}");
        }
        assert!(resume_state(&[row("0.2.0", "2-b", "abc", "done")], &[]).is_err());
    }
}
