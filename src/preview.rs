//! The integration preview of a release (docs/releases.md, "Previewing a
//! release"): in a temporary worktree, every candidate branch merged into
//! the release, the working database rebuilt with the staged head and the
//! candidates in TOML order, code generated and the tests run. When that
//! whole run fails, candidates are tried one at a time in TOML order, each
//! on top of the staged head and the candidates that passed before it, in a
//! temporary database, so the ones that break it are named. Nothing is
//! committed to a branch or pushed; the worktree's merge commits are never
//! referenced.

use std::io::Write;

use crate::db::database::Database;
use crate::db::temp::TempDatabase;
use crate::error::{Error, Result};
use crate::git::Git;
use crate::origin::REMOTE;
use crate::patch_id::PatchId;
use crate::project::Project;
use crate::rebuild;
use crate::release_file::PatchesFile;
use crate::settings::ProjectConfig;
use crate::validation::{self, Worktree};
use crate::version::Version;

/// The identity of the preview's throwaway merge commits (no identity
/// needs to be configured for a preview).
const IDENTITY: [(&str, &str); 4] = [
    ("GIT_AUTHOR_NAME", "git-hop"),
    ("GIT_AUTHOR_EMAIL", "git-hop@localhost"),
    ("GIT_COMMITTER_NAME", "git-hop"),
    ("GIT_COMMITTER_EMAIL", "git-hop@localhost"),
];

/// What became of one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Merged, and the run that holds it passed.
    Passed,
    /// No branch `ho-patch/<id>`, here or on origin.
    Missing,
    /// Its merge conflicts in these files.
    Conflicts(Vec<String>),
    /// Merged, but the run with it fails: why.
    Fails(String),
}

/// The preview of one release.
pub struct Report {
    pub staged: Vec<PatchId>,
    pub candidates: Vec<(PatchId, Outcome)>,
    /// Why the staged head alone fails, when it does (no candidate is then
    /// to blame).
    pub staged_fails: Option<String>,
    /// The patches the working database holds afterwards, in run order.
    pub working: Vec<PatchId>,
}

/// Where the run stopped.
enum Failed {
    /// Rebuilding the database (a patch's SQL or Python).
    Rebuild(Error),
    /// Code generation, seed data or the tests.
    Later(Error),
}

impl Failed {
    fn error(&self) -> &Error {
        match self {
            Failed::Rebuild(e) | Failed::Later(e) => e,
        }
    }
}

/// Previews release `version` whose branch is at `release_commit` and
/// whose release file is `file`, rebuilding `working`. With `skip_tests`,
/// a run is the rebuild and the code generation.
pub fn preview(
    project: &Project,
    working: &Database,
    version: &Version,
    release_commit: &str,
    file: &PatchesFile,
    skip_tests: bool,
) -> Result<Report> {
    let staged = rebuild::patch_order(file, None)?;
    let mut candidates: Vec<(PatchId, Option<String>)> = Vec::new();
    for id in file.candidates() {
        let id = PatchId::parse(&id)?;
        let commit = candidate_commit(&project.git, &id)?;
        candidates.push((id, commit));
    }
    println!(
        "previewing release {version} in a temporary worktree: {} staged, {} candidate(s)",
        staged.len(),
        candidates.len()
    );
    let wt = Worktree::add(project, release_commit)?;
    let mut outcomes: Vec<(PatchId, Outcome)> = Vec::new();
    let mut merged: Vec<(PatchId, String)> = Vec::new();
    for (id, commit) in &candidates {
        let Some(commit) = commit else {
            println!("  {id}  no branch {} here or on origin", id.branch());
            outcomes.push((id.clone(), Outcome::Missing));
            continue;
        };
        match merge_into(&wt, version, id, commit)? {
            Ok(()) => {
                println!("  {id}  merged");
                merged.push((id.clone(), commit.clone()));
                outcomes.push((id.clone(), Outcome::Passed));
            }
            Err(files) => {
                println!("  {id}  conflicts in {}", files.join(", "));
                outcomes.push((id.clone(), Outcome::Conflicts(files)));
            }
        }
    }
    // The whole release, on the working database.
    let all: Vec<PatchId> = staged
        .iter()
        .cloned()
        .chain(merged.iter().map(|(id, _)| id.clone()))
        .collect();
    let conf_dir = crate::generate::working_config_dir(&project.state_dir());
    let mut out = std::io::stdout();
    println!(
        "rebuilding {} with the whole release: {}",
        working.describe(),
        list(&all)
    );
    let first = run(
        project,
        working,
        &wt,
        version,
        &all,
        staged.len(),
        &conf_dir,
        skip_tests,
        &mut out,
    );
    let Err(failed) = first else {
        return Ok(Report {
            staged,
            candidates: outcomes,
            staged_fails: None,
            working: all,
        });
    };
    println!("the whole release fails: {}", failed.error().message);
    // Which candidates break it: the staged head alone first, then each
    // candidate on top of those that passed.
    let tried = |ids: &[(PatchId, String)]| -> Result<std::result::Result<(), Failed>> {
        wt.reset(release_commit)?;
        for (id, commit) in ids {
            if let Err(files) = merge_into(&wt, version, id, commit)? {
                return Ok(Err(Failed::Later(Error::new(format!(
                    "without the candidates that failed, its merge conflicts in {}",
                    files.join(", ")
                )))));
            }
        }
        let order: Vec<PatchId> = staged
            .iter()
            .cloned()
            .chain(ids.iter().map(|(id, _)| id.clone()))
            .collect();
        let temp = TempDatabase::new(working, "preview");
        let conf = tempfile::Builder::new()
            .prefix("hop-halform")
            .tempdir()
            .map_err(|e| Error::new(format!("cannot create a temporary folder: {e}")))?;
        let result = run(
            project,
            &temp.db,
            &wt,
            version,
            &order,
            staged.len(),
            conf.path(),
            skip_tests,
            &mut std::io::sink(),
        );
        Ok(result)
    };
    let mut staged_fails = None;
    let mut accepted: Vec<(PatchId, String)> = Vec::new();
    if merged.is_empty() {
        staged_fails = Some(failed.error().message.clone());
    } else {
        println!("trying the candidates one at a time, in TOML order, on the staged head:");
        if let Err(f) = tried(&[])? {
            println!("  the staged head alone fails: {}", f.error().message);
            staged_fails = Some(f.error().message.clone());
        } else {
            for (id, commit) in &merged {
                let mut ids = accepted.clone();
                ids.push((id.clone(), commit.clone()));
                match tried(&ids)? {
                    Ok(()) => {
                        println!("  {id}  passes");
                        accepted = ids;
                    }
                    Err(f) => {
                        println!("  {id}  fails: {}", f.error().message);
                        if let Some(o) = outcomes.iter_mut().find(|(x, _)| x == id) {
                            o.1 = Outcome::Fails(f.error().message.clone());
                        }
                    }
                }
            }
        }
    }
    // The working database keeps the whole release when its SQL ran (only
    // a later step failed); otherwise it gets what passed.
    let working_holds = match (&failed, &staged_fails) {
        (Failed::Later(_), _) => all,
        (Failed::Rebuild(_), Some(_)) => Vec::new(),
        (Failed::Rebuild(_), None) => {
            wt.reset(release_commit)?;
            for (id, commit) in &accepted {
                let _ = merge_into(&wt, version, id, commit)?;
            }
            let order: Vec<PatchId> = staged
                .iter()
                .cloned()
                .chain(accepted.iter().map(|(id, _)| id.clone()))
                .collect();
            println!(
                "rebuilding {} with what passed: {}",
                working.describe(),
                list(&order)
            );
            // Tests already passed on this combination.
            match run(
                project,
                working,
                &wt,
                version,
                &order,
                staged.len(),
                &conf_dir,
                true,
                &mut out,
            ) {
                Ok(()) => order,
                Err(Failed::Rebuild(e) | Failed::Later(e)) => return Err(e),
            }
        }
    };
    Ok(Report {
        staged,
        candidates: outcomes,
        staged_fails,
        working: working_holds,
    })
}

/// The commit to preview of candidate `id`: this clone's branch when it
/// holds origin's, else origin's (what the team pushed), else this clone's.
fn candidate_commit(git: &Git, id: &PatchId) -> Result<Option<String>> {
    let local = git.rev_parse(&format!("refs/heads/{}", id.branch()))?;
    let remote = git.rev_parse(&format!("refs/remotes/{REMOTE}/{}", id.branch()))?;
    Ok(match (local, remote) {
        (Some(l), Some(r)) if git.is_ancestor(&r, &l)? => Some(l),
        (_, Some(r)) => Some(r),
        (l, None) => l,
    })
}

/// Merges candidate `id` at `commit` into the worktree's HEAD and commits
/// (never on a branch); the conflicting files when it does not merge, the
/// worktree then back at its HEAD.
fn merge_into(
    wt: &Worktree,
    version: &Version,
    id: &PatchId,
    commit: &str,
) -> Result<std::result::Result<(), Vec<String>>> {
    let head = wt.git.head()?;
    match wt
        .git
        .merge(&["--no-ff", "--no-commit", "-q", commit], &IDENTITY)?
    {
        Ok(()) => {
            wt.git.run_env(
                &[
                    "commit",
                    "-q",
                    "--no-verify",
                    "--allow-empty",
                    "-m",
                    &format!("[hop] preview of release {version}: merge {id}"),
                ],
                &IDENTITY,
            )?;
            Ok(Ok(()))
        }
        Err(f) => {
            wt.reset(&head)?;
            let files = if f.conflicts.is_empty() {
                vec![f.message]
            } else {
                f.conflicts
            };
            Ok(Err(files))
        }
    }
}

/// One run: `db` rebuilt from the worktree's files with `order` (its first
/// `staged` patches from a template when there is one), code generated
/// into the worktree, the seed data, and unless `skip_tests` the tests.
#[allow(clippy::too_many_arguments)]
fn run(
    project: &Project,
    db: &Database,
    wt: &Worktree,
    version: &Version,
    order: &[PatchId],
    staged: usize,
    conf_dir: &std::path::Path,
    skip_tests: bool,
    out: &mut dyn Write,
) -> std::result::Result<(), Failed> {
    let later = Failed::Later;
    let config = ProjectConfig::load(&wt.path).map_err(later)?;
    let seed = crate::seed::Seed::of(&wt.path).map_err(later)?;
    let env =
        crate::generate::environment(conf_dir, &wt.path, &config, db).map_err(Failed::Later)?;
    let cache = project.templates();
    let start = match &cache {
        Some(cache) => rebuild::Start::Templates {
            cache,
            staged,
            ahead: rebuild::template::Ahead::Nothing,
        },
        None => rebuild::Start::Replay,
    };
    rebuild::rebuild(db, &wt.path, version, order, start, env.clone(), out)
        .map_err(Failed::Rebuild)?;
    let generated = crate::generate::regenerate(&wt.path, &config, db).map_err(Failed::Later)?;
    let _ = writeln!(out, "{}", crate::generate::summary(&generated));
    if let Some(seed) = &seed {
        seed.run(db, version, env.clone(), out)
            .map_err(Failed::Later)?;
    }
    if skip_tests {
        let _ = writeln!(out, "tests skipped (--skip-tests)");
        return Ok(());
    }
    validation::run_tests(project, &wt.path, env).map_err(Failed::Later)
}

fn list(ids: &[PatchId]) -> String {
    if ids.is_empty() {
        return "nothing but the production snapshot".into();
    }
    ids.iter()
        .map(|i| i.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
