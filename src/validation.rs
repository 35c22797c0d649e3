//! Validation (docs/releases.md): in a temporary worktree and a temporary database,
//! so the user's work tree and working database are never touched: merge,
//! fresh database from the production snapshot, patches in TOML order,
//! regenerated code compared with the committed code, tests run against
//! the database under test. Everything temporary is removed on every path.

use std::path::{Path, PathBuf};

use crate::db::database::Database;
pub use crate::db::temp::TempDatabase;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::lock_file::LockFile;
use crate::patch_id::PatchId;
use crate::project::Project;
use crate::rebuild;
use crate::release_file::{self, PatchesFile};
use crate::settings::ProjectConfig;
use crate::version::Version;

/// How many validation worktrees a clone keeps for reuse.
const SLOTS: usize = 4;

/// A detached worktree under `.git/hop/tmp/` (docs/engine.md, "Fast
/// rebuilds"): one of the clone's SLOTS kept worktrees, locked while in
/// use and reused by the next validation (checking out a commit there
/// rewrites only the files that differ, where a new worktree writes them
/// all and removing it deletes them all); when every slot is busy, a new
/// one named by the process, removed when dropped.
pub struct Worktree {
    main: Git,
    pub path: PathBuf,
    pub git: Git,
    /// The slot's lock; `None` for a worktree of this process alone.
    slot: Option<LockFile>,
}

impl Worktree {
    pub fn add(project: &Project, commit: &str) -> Result<Worktree> {
        let tmp = project.state_dir().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        prune_stale(project, &tmp);
        for n in 0..SLOTS {
            let Some(lock) = LockFile::try_acquire(&tmp.join(format!("validate-slot-{n}.lock")))?
            else {
                continue;
            };
            let path = tmp.join(format!("validate-slot-{n}"));
            let wt = Worktree {
                main: project.git.clone(),
                git: project.git.at(&path),
                path,
                slot: Some(lock),
            };
            if wt.path.join(".git").is_file() && wt.reset(commit).is_ok() {
                return Ok(wt);
            }
            // Missing or broken (a folder removed by hand, a killed checkout).
            let p = wt.path.display().to_string();
            let _ = project.git.run(&["worktree", "remove", "--force", &p]);
            let _ = std::fs::remove_dir_all(&wt.path);
            let _ = project.git.run(&["worktree", "prune"]);
            project
                .git
                .run(&["worktree", "add", "-q", "--detach", &p, commit])?;
            return Ok(wt);
        }
        let path = tmp.join(format!("validate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let p = path.display().to_string();
        let _ = project.git.run(&["worktree", "prune"]);
        project
            .git
            .run(&["worktree", "add", "-q", "--detach", &p, commit])?;
        Ok(Worktree {
            main: project.git.clone(),
            git: project.git.at(&path),
            path,
            slot: None,
        })
    }

    /// A kept worktree back to exactly `commit`: tracked files as
    /// committed, nothing else (what an earlier run left, tests' output
    /// and ignored files included, is removed).
    pub fn reset(&self, commit: &str) -> Result<()> {
        // An interrupted merge leaves MERGE_HEAD: checkout -f ends it.
        self.git
            .run(&["checkout", "-q", "-f", "--detach", commit])?;
        self.git.run(&["clean", "-q", "-f", "-f", "-d", "-x"])?;
        Ok(())
    }
}

impl Drop for Worktree {
    fn drop(&mut self) {
        if self.slot.is_some() {
            // Kept for the next validation; the lock goes with `slot`.
            return;
        }
        let p = self.path.display().to_string();
        let _ = self.main.run(&["worktree", "remove", "--force", &p]);
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = self.main.run(&["worktree", "prune"]);
    }
}

/// Worktrees left by a killed run (their process is gone).
fn prune_stale(project: &Project, tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    let mut removed = false;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("validate-")
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        // A zombie not yet reaped is gone too.
        if !crate::owner::process_alive(pid, None) {
            let p = e.path().display().to_string();
            let _ = project.git.run(&["worktree", "remove", "--force", &p]);
            let _ = std::fs::remove_dir_all(e.path());
            removed = true;
        }
    }
    // Only after a removal: a kept slot's metadata is pruned (and made
    // again) by Worktree::add itself when its folder is gone.
    if removed {
        let _ = project.git.run(&["worktree", "prune"]);
    }
}

/// Validates merging `patch_commit` (patch `id`) into the release whose
/// branch is at `release_commit`. Returns the commit to become the
/// release branch: the merge, with the patch staged at the end of the
/// staged head of the TOML. `env` is the environment of its git commands
/// (`validate` gives a committer identity: its commit is thrown away, and a
/// CI runner may have none). `ahead`: its database copied ahead
/// ([`prepare`]); without one, the copy starts once the worktree is
/// checked out.
#[allow(clippy::too_many_arguments)]
pub fn validate_merge(
    project: &Project,
    working: &Database,
    version: &Version,
    release_commit: &str,
    patch_commit: &str,
    id: &PatchId,
    env: &[(&str, &str)],
    ahead: Option<rebuild::template::Prepared>,
) -> Result<String> {
    let release_branch = format!("ho-release/{version}");
    let commit = merge_commit(
        &project.git,
        release_commit,
        patch_commit,
        id,
        version,
        &Step1 {
            what: &format!("{} into {release_branch}", id.branch()),
            conflict_hint: "git hop-patch sync, resolve the conflicts, commit, then git hop-patch merge again",
            message: &format!("[hop] merge patch {id} into release {version}"),
            env,
        },
    )?;
    let wt = Worktree::add(project, &commit)?;
    // The validation database is copied ahead while the merge is checked
    // and the lint runs.
    let prepared = ahead.or_else(|| prepare(project, working, &wt.path, version));
    let file = PatchesFile::load(release_file::patches_path(&wt.path, version))?;
    validate_staged(
        project,
        working,
        &wt,
        release_commit,
        id,
        &file,
        version,
        prepared,
    )?;
    Ok(commit)
}

/// The validation database of a merge, copied ahead from the template of
/// the staged head in the work tree `root` (the longest part of it this
/// clone has a template of): [`rebuild::copy_ahead`]. `merge` starts it
/// from the user's work tree before origin is locked and fetched (the
/// patch branch holds the release as last synced), pre-push from its
/// worktree before git merges; the validation takes the copy only when it
/// holds the template it would copy. `None` without templates.
pub fn prepare(
    project: &Project,
    working: &Database,
    root: &Path,
    version: &Version,
) -> Option<rebuild::template::Prepared> {
    let cache = project.templates()?;
    let file = PatchesFile::load(release_file::patches_path(root, version)).ok()?;
    rebuild::copy_ahead(
        TempDatabase::unswept(working, "validate"),
        &cache,
        root,
        version,
        &file,
    )
}

/// How step 1 names itself: the merge in a conflict, the hint, the commit
/// message, and the environment of its git commands.
pub struct Step1<'a> {
    pub what: &'a str,
    pub conflict_hint: &'a str,
    pub message: &'a str,
    pub env: &'a [(&'a str, &'a str)],
}

/// Step 1 of the validation (docs/releases.md): in `wt`, merges `other`
/// (the patch into the release, or the release into the patch: the same
/// tree), marks `id` staged in the release file and commits
/// ([`merge_commit`]), then checks the commit out. `pre-push`
/// (hop.prePushTests) uses it; `merge` checks [`merge_commit`] out in its
/// worktree at once. Returns the release file.
pub fn merge_and_stage(
    wt: &Worktree,
    other: &str,
    id: &PatchId,
    version: &Version,
    step: &Step1,
) -> Result<PatchesFile> {
    let head = wt.git.head()?;
    let commit = merge_commit(&wt.git, &head, other, id, version, step)?;
    wt.git.run(&["checkout", "-q", "-f", "--detach", &commit])?;
    PatchesFile::load(release_file::patches_path(&wt.path, version))
}

/// The commit of step 1: `theirs` merged into `ours` as `git merge --no-ff`
/// merges them (`git merge-tree`: no work tree, index or ref is touched),
/// with `id` staged at the end of the staged head of the release file; no
/// merge commit when `theirs` is merged already, as with git. One git
/// process instead of a merge, an add and a commit in a work tree.
pub fn merge_commit(
    git: &Git,
    ours: &str,
    theirs: &str,
    id: &PatchId,
    version: &Version,
    step: &Step1,
) -> Result<String> {
    let tree = match git.merge_tree(ours, theirs)? {
        Ok(tree) => tree,
        Err(f) => return Err(f.error(step.what, step.conflict_hint)),
    };
    let rel = release_file::patches_rel(version);
    let text = git.text_at(&tree, &rel).map_err(|e| {
        e.context(format!("merging {}", step.what))
            .hint("git hop-patch status tells where the patch stands")
    })?;
    let mut file = PatchesFile::parse(&rel, &text)?;
    if file.state(id.as_str()).is_none() {
        return Err(Error::new(format!(
            "Patch not found in candidates file: release {version} does not list {id}"
        ))
        .hint("git hop-patch status tells where the patch stands"));
    }
    file.mark_staged(id.as_str())?;
    let parents: Vec<&str> = if git.is_ancestor(theirs, ours)? {
        vec![ours]
    } else {
        vec![ours, theirs]
    };
    git.commit_tree_changes(
        &tree,
        &[(rel, Some(file.to_string().into_bytes()))],
        &parents,
        step.message,
        step.env,
    )
}

/// The validation of patch `id` once its merge with the release (at
/// `release_commit`) is committed, staged, in `wt`: merge integrity, steps
/// 2–5, and the snapshot proof when the patch may need it. `merge` and
/// `pre-push` (hop.prePushTests) both run it, so they judge alike.
/// `prepared`: its database, copied ahead ([`prepare`]).
#[allow(clippy::too_many_arguments)]
pub fn validate_staged(
    project: &Project,
    working: &Database,
    wt: &Worktree,
    release_commit: &str,
    id: &PatchId,
    file: &PatchesFile,
    version: &Version,
    prepared: Option<rebuild::template::Prepared>,
) -> Result<()> {
    check_integrity(project, wt, release_commit, id, file, version)?;
    // The lint, with the validated tree's [lint] deny (docs/patches.md).
    let order = rebuild::patch_order(file, None)?;
    let before: Vec<PatchId> = order.iter().take_while(|p| *p != id).cloned().collect();
    crate::lint::report(
        &crate::lint::lint_patch(&wt.path, &before, id)?,
        &ProjectConfig::load(&wt.path)?.lint.deny,
    )?;
    let dir = wt.path.join("Patches").join(id.as_str());
    let prove = touches_snapshot_loading(&dir);
    let (temp, texts) =
        validate_tree_keep(project, working, wt, version, file, Some(prepared), prove)?;
    if let Some(texts) = texts {
        // The cheap form of promote's proof (docs/snapshots.md), so that a
        // snapshot that would not reload shows up on the patch that causes it.
        println!(
            "patch {id} creates triggers, materialized views or generated columns: proving that the release's snapshot reloads"
        );
        drop(temp);
        crate::snapshot::proof::prove(working, &texts, version)
            .map_err(|e| e.context(format!("{id} was not merged")))?;
    }
    Ok(())
}

/// Merge integrity (docs/releases.md): merging patch `id` may change only
/// its own TOML entry (staged, at the end of the staged head) and its own
/// `Patches/<id>/` (generated code and tests aside). A merge that drops,
/// reorders or demotes another patch of the release (the revert of a sync,
/// a stale TOML committed on the patch branch) or changes another patch's
/// folder is refused, naming that patch.
fn check_integrity(
    project: &Project,
    wt: &Worktree,
    release_commit: &str,
    id: &PatchId,
    merged: &PatchesFile,
    version: &Version,
) -> Result<()> {
    let release_branch = format!("ho-release/{version}");
    let toml_rel = release_file::patches_path(Path::new(""), version)
        .display()
        .to_string();
    let toml_rel = toml_rel.as_str();
    let merged_commit = wt.git.head()?;
    let hint = format!(
        "{} undoes work of the release (a reverted sync, a stale release file?): restore what {release_branch} holds (git checkout origin/{release_branch} -- <path>), commit, then git hop-patch merge again",
        id.branch()
    );
    let before_text = project
        .repo
        .file_at(release_commit, toml_rel)
        .ok_or_else(|| Error::new(format!("the release branch has no {toml_rel}")))?;
    let mut expected =
        PatchesFile::parse(Path::new(toml_rel), &String::from_utf8_lossy(&before_text))?;
    if expected.state(id.as_str()).is_some() {
        expected.mark_staged(id.as_str())?;
    }
    let want = expected.patches();
    let got = merged.patches();
    if want != got {
        let staged: Vec<&String> = want
            .iter()
            .filter(|(_, s)| *s == crate::release_file::PatchState::Staged)
            .map(|(p, _)| p)
            .collect();
        let position = |list: &[(String, crate::release_file::PatchState)], p: &str| {
            list.iter().position(|(x, _)| x == p)
        };
        let mut what = None;
        for (p, state) in &want {
            match got.iter().find(|(x, _)| x == p) {
                None => what = Some(format!("it drops patch {p} ({state}) from the release")),
                Some((_, s)) if s != state => {
                    what = Some(format!(
                        "it makes patch {p} {s} again (the release has it {state})"
                    ))
                }
                _ => {}
            }
            if what.is_some() {
                break;
            }
        }
        if what.is_none() {
            for p in &staged {
                if position(&got, p) != position(&want, p) {
                    what = Some(format!(
                        "it moves the staged patch {p} (the staged head's order is the order production will use)"
                    ));
                    break;
                }
            }
        }
        let what = what.unwrap_or_else(|| {
            let extra: Vec<&str> = got
                .iter()
                .filter(|(p, _)| position(&want, p).is_none())
                .map(|(p, _)| p.as_str())
                .collect();
            format!("it adds {} to the release file", extra.join(", "))
        });
        return Err(Error::new(format!(
            "merging {id} would change the release beyond the patch: {what}"
        ))
        .hint(hint));
    }
    let changed = wt.git.run(&[
        "diff",
        "--name-only",
        "--no-renames",
        release_commit,
        &merged_commit,
        "--",
        "Patches",
    ])?;
    let own = format!("Patches/{id}/");
    if let Some(path) = changed.lines().find(|p| !p.starts_with(&own)) {
        let other = path.split('/').nth(1).unwrap_or(path);
        return Err(Error::new(format!(
            "merging {id} would change the release beyond the patch: it changes {path}, a file of patch {other}"
        ))
        .hint(hint));
    }
    Ok(())
}

/// Whether a patch's files may create what loading a snapshot treats
/// apart: triggers, materialized views, generated columns (the words
/// `TRIGGER`, `MATERIALIZED` or `GENERATED` in its SQL), or anything a
/// Python step may do.
pub fn touches_snapshot_loading(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.flatten().any(|e| {
        let path = e.path();
        match path.extension().and_then(|x| x.to_str()) {
            Some("py") => true,
            Some("sql") => std::fs::read_to_string(&path).is_ok_and(|text| {
                let upper = text.to_ascii_uppercase();
                upper
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| matches!(w, "TRIGGER" | "MATERIALIZED" | "GENERATED"))
            }),
            _ => false,
        }
    })
}

/// Steps 2–5 of the validation (docs/releases.md) on a checked-out worktree.
pub fn validate_tree(
    project: &Project,
    working: &Database,
    wt: &Worktree,
    version: &Version,
    file: &PatchesFile,
) -> Result<()> {
    validate_tree_keep(project, working, wt, version, file, None, false).map(|_| ())
}

/// [`validate_tree`], handing the validation database to the caller, and
/// with `dump_snapshot` the model snapshot dumped from it once the code is
/// generated, before the seed data and the tests (a promotion writes it);
/// the database is dropped with the returned value, and on failure before
/// returning. `templates`: `None` replays (a promotion); `Some` starts
/// from templates (merge, pre-push), from the database copied ahead when
/// there is one.
pub fn validate_tree_keep(
    project: &Project,
    working: &Database,
    wt: &Worktree,
    version: &Version,
    file: &PatchesFile,
    templates: Option<Option<rebuild::template::Prepared>>,
    dump_snapshot: bool,
) -> Result<(TempDatabase, Option<crate::snapshot::Texts>)> {
    let order = rebuild::patch_order(file, None)?;
    let use_templates = templates.is_some();
    let (temp, copied) = match templates {
        Some(Some(prepared)) => prepared.finish(),
        _ => (TempDatabase::new(working, "validate"), None),
    };
    let ahead = copied.map_or(rebuild::template::Ahead::Nothing, |key| {
        rebuild::template::Ahead::Target(key)
    });
    println!(
        "validating release {version} in a temporary worktree and database {}: {}",
        temp.db.name(),
        order
            .iter()
            .map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let conf = tempfile::Builder::new()
        .prefix("hop-halform")
        .tempdir()
        .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
    // The validated tree's settings (its tests command, its code generation),
    // not those of the branch the user is on.
    let config = ProjectConfig::load(&wt.path)?;
    let seed = crate::seed::Seed::of(&wt.path)?;
    let env = crate::generate::environment(conf.path(), &wt.path, &config, &temp.db)?;
    let mut out = std::io::stdout();
    // merge and pre-push start from templates (the whole order is staged:
    // the patch being merged ends it, so the next apply finds the new head
    // made); promotions replay (docs/engine.md).
    let cache = use_templates.then(|| project.templates()).flatten();
    let start = match &cache {
        Some(cache) => rebuild::Start::Templates {
            cache,
            staged: order.len(),
            ahead,
        },
        None => rebuild::Start::Replay,
    };
    rebuild::rebuild(
        &temp.db,
        &wt.path,
        version,
        &order,
        start,
        env.clone(),
        &mut out,
    )?;
    let generated = crate::generate::regenerate(&wt.path, &config, &temp.db)?;
    println!("{}", crate::generate::summary(&generated));
    // Generated code must equal the committed code: the worktree holds
    // exactly the commit, so what code generation wrote or removed (it
    // writes a file only when its content differs) is what is out of date.
    if let Some(report) = &generated {
        let files: Vec<String> = report
            .written
            .iter()
            .chain(&report.removed)
            .map(|p| p.strip_prefix(&wt.path).unwrap_or(p).display().to_string())
            .collect();
        if !files.is_empty() {
            return Err(Error::new(format!(
                "generated code is out of date: {}",
                files.join(", ")
            ))
            .hint("run git hop-patch apply and commit"));
        }
    }
    // A promotion's model snapshot is dumped before the seed data goes in
    // (and before the tests write anything).
    let snapshot = if dump_snapshot {
        Some(crate::snapshot::dump(&temp.db)?)
    } else {
        None
    };
    if let Some(seed) = &seed {
        seed.run(&temp.db, version, env.clone(), &mut out)?;
    }
    run_tests(project, &wt.path, env)?;
    Ok((temp, snapshot))
}

/// Runs `[tests] command` (of `root`'s `.hop/config`, else the project's)
/// from `root` with the database under test exported.
pub fn run_tests(project: &Project, root: &Path, mut env: Vec<(String, String)>) -> Result<()> {
    let loaded = ProjectConfig::load(root).ok();
    let config = loaded.as_ref().unwrap_or(&project.config);
    let Some(command) = config.tests.command.as_deref() else {
        println!("no [tests] command in .hop/config: tests skipped");
        return Ok(());
    };
    println!("running tests: {command}");
    env.push(("HOP_TESTING".into(), "1".into()));
    let cmd = crate::db::psql::with_connection_env(duct::cmd("sh", ["-c", command]), env)
        .dir(root)
        .stdin_null();
    // Test output goes to the user's stderr so that it never mixes with
    // machine-readable stdout.
    let out = cmd
        .stdout_to_stderr()
        .unchecked()
        .run()
        .map_err(|e| Error::new(format!("cannot run the tests ({command}): {e}")))?;
    if out.status.success() {
        println!("tests passed");
        Ok(())
    } else {
        Err(Error::new(format!(
            "tests failed ({command} exited {})",
            out.status
                .code()
                .map(|c| c.to_string())
                .unwrap_or("on a signal".into())
        ))
        .hint("fix the tests or the patch, commit, and run the command again"))
    }
}
