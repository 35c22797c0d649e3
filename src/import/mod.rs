//! Bringing a half-orm-dev 1.1 project over to git-hop (docs/import.md):
//! [`Plan::read`] reads the project and works out every change, changing
//! nothing; [`Plan::apply`] makes them: one commit on `ho-prod` and every
//! ref change in one atomic push, then the clone's own settings, hooks and
//! database.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::codegen::regions::BEGIN;
use crate::db::database::{Database, DbOptions};
use crate::db::temp::TempDatabase;
use crate::error::{Error, Result};
use crate::git::{Git, Repo};
use crate::origin::{Origin, RefUpdate, patch_reservation};
use crate::patch_id::PatchId;
use crate::project::PROD_BRANCH;
use crate::settings::ProjectConfig;
use crate::version::Version;

mod follow;
mod legacy;

pub use follow::Follow;
pub use legacy::{HALFORM_CONF_DIR, Legacy, legacy_version};

/// half-orm-dev's metadata moves to this schema (its history kept); git-hop's
/// own `half_orm_meta` tables take the releases it lists.
pub const LEGACY_SCHEMA: &str = "half_orm_meta.half_orm_dev";

/// The metadata conversion, run on a database half-orm-dev made (a
/// snapshot's, or production's): half-orm-dev's tables and function moved
/// to [`LEGACY_SCHEMA`], git-hop's installed, and every release it
/// recorded listed there under git-hop's name (`.postN` becomes
/// `-hotfixN`). Idempotent on a converted database.
pub fn convert_metadata_sql() -> String {
    format!(
        "DO $hop$
BEGIN
  IF to_regclass('half_orm_meta.hop_release') IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM information_schema.columns
                     WHERE table_schema = 'half_orm_meta' AND table_name = 'hop_release'
                       AND column_name = 'version') THEN
    CREATE SCHEMA IF NOT EXISTS \"{LEGACY_SCHEMA}\";
    ALTER TABLE half_orm_meta.hop_release SET SCHEMA \"{LEGACY_SCHEMA}\";
    IF to_regclass('half_orm_meta.hop_release_issue') IS NOT NULL THEN
      ALTER TABLE half_orm_meta.hop_release_issue SET SCHEMA \"{LEGACY_SCHEMA}\";
    END IF;
    IF to_regclass('half_orm_meta.database') IS NOT NULL THEN
      ALTER TABLE half_orm_meta.database SET SCHEMA \"{LEGACY_SCHEMA}\";
    END IF;
    IF to_regclass('half_orm_meta.bootstrap') IS NOT NULL THEN
      ALTER TABLE half_orm_meta.bootstrap SET SCHEMA \"{LEGACY_SCHEMA}\";
    END IF;
    IF to_regprocedure('half_orm_meta.check_database(text)') IS NOT NULL THEN
      ALTER FUNCTION half_orm_meta.check_database(text) SET SCHEMA \"{LEGACY_SCHEMA}\";
    END IF;
  END IF;
END
$hop$;
{install}
DO $hop$
BEGIN
  IF to_regclass('\"{LEGACY_SCHEMA}\".hop_release') IS NOT NULL THEN
    INSERT INTO half_orm_meta.hop_release (version, major, minor, patch, pre_release, pre_release_num, applied_at)
    SELECT format('%s.%s.%s', r.major, r.minor, r.patch)
             || CASE WHEN coalesce(r.pre_release::text, '') = '' THEN ''
                     WHEN r.pre_release::text = 'rc' THEN '-rc' || r.pre_release_num::text
                     ELSE '-hotfix' || r.pre_release_num::text END,
           r.major, r.minor, r.patch,
           CASE WHEN coalesce(r.pre_release::text, '') = '' THEN ''
                WHEN r.pre_release::text = 'rc' THEN 'rc' ELSE 'hotfix' END,
           nullif(r.pre_release_num::text, '')::int,
           coalesce(r.date + r.time, now())
      FROM \"{LEGACY_SCHEMA}\".hop_release r
     WHERE coalesce(r.pre_release::text, '') IN ('', 'rc', 'post', 'hotfix')
    ON CONFLICT (version) DO NOTHING;
  END IF;
END
$hop$;
",
        install = crate::db::meta::INSTALL_SQL
    )
}

/// A ref change of the import.
#[derive(Debug, Clone)]
pub struct RefChange {
    pub what: String,
    pub update: RefUpdate,
}

/// Every change the import makes, worked out before any is made.
pub struct Plan {
    pub root: PathBuf,
    pub legacy: Legacy,
    /// `ho-prod` as this clone and origin have it.
    pub head: String,
    /// `Patches/staged/<id>` → `Patches/<id>`.
    pub moves: Vec<(String, String)>,
    /// `.hop/releases` files renamed (`.postN`) or rewritten (`id:sha`).
    pub release_files: Vec<(String, String)>,
    /// The snapshots half-orm-dev wrote, rewritten in git-hop's format.
    pub snapshots: Vec<Version>,
    /// Hotfixes half-orm-dev promoted without a snapshot: built from the
    /// snapshot before them and their patches.
    pub built: Vec<(Version, Vec<PatchId>)>,
    /// The production version the project is at.
    pub production: Version,
    /// Generated files of half-orm-dev that go (git-hop generates its own).
    pub removed: Vec<String>,
    /// Modules whose user code is kept in git-hop's layout.
    pub modules: Vec<String>,
    pub refs: Vec<RefChange>,
    /// Local branches that go with their origin ref.
    pub local_branches: Vec<String>,
    /// half-orm-dev's hooks in this clone.
    pub hooks: Vec<PathBuf>,
}

impl Plan {
    /// Reads the half-orm-dev project of `git` (on `ho-prod`, clean, in
    /// sync with origin) and works out the import. Changes nothing but
    /// this clone's remote-tracking refs (a fetch).
    pub fn read(git: &Git) -> Result<Plan> {
        let repo = Repo::discover(git.dir()).ok_or_else(|| {
            Error::new("not in a git repository").hint("cd into the half-orm-dev project to import")
        })?;
        let root = repo.workdir().to_path_buf();
        let legacy = Legacy::read(&root)?;
        if repo.current_branch().as_deref() != Some(PROD_BRANCH) {
            return Err(Error::new(format!(
                "import runs on {PROD_BRANCH}; this clone is on {}",
                repo.current_branch()
                    .unwrap_or_else(|| "a detached HEAD".into())
            ))
            .hint(format!(
                "git switch {PROD_BRANCH}, then git hop-release import"
            )));
        }
        if repo.is_dirty()? {
            return Err(
                Error::new("the work tree has uncommitted changes; nothing was changed")
                    .hint("commit or stash them (git stash -u), then git hop-release import"),
            );
        }
        let origin = Origin::of(git)?.ok_or_else(|| {
            Error::new("this clone has no origin").hint("git remote add origin <url>")
        })?;
        origin.fetch_without_hooks()?;
        let head = git.head()?;
        let remote = origin.ls_remote(&[])?;
        if remote.get(&format!("refs/heads/{PROD_BRANCH}")) != Some(&head) {
            return Err(Error::new(format!(
                "{PROD_BRANCH} differs from origin's; nothing was changed"
            ))
            .hint("git pull --ff-only (or push your commits), then git hop-release import"));
        }
        let open: Vec<&String> = remote
            .keys()
            .filter(|r| r.starts_with("refs/heads/ho-release/"))
            .collect();
        if let Some(r) = open.first() {
            return Err(Error::new(format!(
                "{} is a release in preparation: import converts a project between releases",
                r.trim_start_matches("refs/heads/")
            ))
            .hint("promote it to production (or merge it away) with half-orm-dev first, then git hop-release import"));
        }

        // Files.
        let mut moves = Vec::new();
        let staged = root.join("Patches/staged");
        if let Ok(entries) = std::fs::read_dir(&staged) {
            let mut ids: Vec<String> = entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            ids.sort();
            for id in ids {
                let to = format!("Patches/{id}");
                if root.join(&to).exists() {
                    return Err(Error::new(format!(
                        "Patches/staged/{id} and {to} both exist: which one is the patch?"
                    ))
                    .hint(
                        "remove the wrong one with half-orm-dev's tools, commit, then import again",
                    ));
                }
                moves.push((format!("Patches/staged/{id}"), to));
            }
        }
        let releases = root.join(".hop/releases");
        let mut release_files = Vec::new();
        let mut released: BTreeMap<Version, Vec<PatchId>> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&releases) {
            let mut names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".txt"))
                .collect();
            names.sort();
            for name in names {
                let stem = name.trim_end_matches(".txt");
                let Some(v) = legacy_version(stem) else {
                    continue;
                };
                let path = releases.join(&name);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| Error::io("cannot read", &path, e))?;
                let mut ids = Vec::new();
                for (n, line) in text.lines().enumerate() {
                    let l = line.split('#').next().unwrap_or("").trim();
                    if l.is_empty() {
                        continue;
                    }
                    let id = l.split(':').next().unwrap_or(l);
                    ids.push(
                        PatchId::parse(id)
                            .map_err(|e| e.context(format!("{}:{}", path.display(), n + 1)))?,
                    );
                }
                let new = format!("{v}.txt");
                if new != name || text.contains(':') {
                    release_files.push((
                        format!(".hop/releases/{name}"),
                        format!(".hop/releases/{new}"),
                    ));
                }
                released.insert(v, ids);
            }
        }
        let model = root.join(crate::snapshot::MODEL_DIR);
        let mut snapshots: Vec<Version> = std::fs::read_dir(&model)
            .map(|e| {
                e.flatten()
                    .filter_map(|e| {
                        let n = e.file_name().to_string_lossy().into_owned();
                        let v = n.strip_prefix("schema-")?.strip_suffix(".sql")?;
                        legacy_version(v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        snapshots.sort();
        if snapshots.is_empty() {
            return Err(Error::new(format!(
                "{} holds no schema-X.Y.Z.sql: not a half-orm-dev 1.x project",
                model.display()
            ))
            .hint("upgrade the project with half-orm-dev 1.1 first (half_orm dev check)"));
        }

        // Refs: version tags, hotfix names, reservations, branches.
        let mut refs = Vec::new();
        let mut local_branches = Vec::new();
        let mut production: Option<Version> = None;
        for (name, oid) in &remote {
            // A tag's commit (annotated tags are objects of their own),
            // as the fetch above brought it.
            let peeled = git
                .rev_parse(&format!("{name}^{{commit}}"))?
                .unwrap_or_else(|| oid.clone());
            if let Some(tag) = name.strip_prefix("refs/tags/") {
                if let Some(v) = tag.strip_prefix('v').and_then(legacy_version) {
                    if v.is_release() || v.to_string().contains("hotfix") {
                        production = production.max(Some(v.clone()));
                    }
                    let new = v.tag_name();
                    if new != tag {
                        refs.push(RefChange {
                            what: format!("tag {tag} → {new}"),
                            update: RefUpdate::create(format!("refs/tags/{new}"), &peeled),
                        });
                        refs.push(RefChange {
                            what: format!("tag {tag} deleted"),
                            update: RefUpdate::delete(name.clone(), oid),
                        });
                    }
                } else if let Some(n) = tag.strip_prefix("ho-patch/")
                    && n.parse::<u64>().is_ok()
                {
                    let reservation = patch_reservation(n);
                    refs.push(RefChange {
                        what: format!(
                            "patch number {n} reserved as {reservation} (tag {tag} deleted)"
                        ),
                        update: RefUpdate::create(reservation, &peeled),
                    });
                    refs.push(RefChange {
                        what: String::new(),
                        update: RefUpdate::delete(name.clone(), oid),
                    });
                }
            } else if let Some(branch) = name.strip_prefix("refs/heads/") {
                let legacy_prod = branch.strip_prefix("ho-prod-").and_then(legacy_version);
                if let Some(v) = legacy_prod {
                    let tag = format!("refs/tags/{}", v.tag_name());
                    if remote.contains_key(&tag) {
                        refs.push(RefChange {
                            what: format!(
                                "branch {branch} deleted (tag {} holds it)",
                                v.tag_name()
                            ),
                            update: RefUpdate::delete(name.clone(), oid),
                        });
                    } else {
                        refs.push(RefChange {
                            what: format!("branch {branch} → tag {}", v.tag_name()),
                            update: RefUpdate::create(tag, oid),
                        });
                        refs.push(RefChange {
                            what: String::new(),
                            update: RefUpdate::delete(name.clone(), oid),
                        });
                    }
                    local_branches.push(branch.to_string());
                } else if let Some(id) = branch.strip_prefix("ho-staged/") {
                    // half-orm-dev keeps a staged patch's branch, with a
                    // bookkeeping commit of its own, once the patch is released.
                    let released_patch = released.values().flatten().any(|p| p.as_str() == id);
                    if !released_patch && !git.is_ancestor(oid, &head)? {
                        return Err(Error::new(format!(
                            "branch {branch} holds commits that {PROD_BRANCH} lacks"
                        ))
                        .hint("merge or delete it with half-orm-dev first, then git hop-release import"));
                    }
                    refs.push(RefChange {
                        what: format!("branch {branch} deleted (its patch is in {PROD_BRANCH})"),
                        update: RefUpdate::delete(name.clone(), oid),
                    });
                    local_branches.push(branch.to_string());
                }
            }
        }
        let production = production.ok_or_else(|| {
            Error::new("origin has no production tag (vX.Y.Z): nothing to import from")
                .hint("half-orm-dev tags every production release; fetch its tags")
        })?;
        let latest = snapshots
            .last()
            .cloned()
            .unwrap_or_else(|| Version::new(0, 0, 0));
        let mut built = Vec::new();
        for (v, ids) in &released {
            if v > &latest
                && !v.is_release()
                && v.to_string().contains("hotfix")
                && v <= &production
            {
                built.push((v.clone(), ids.clone()));
            }
        }
        if production > latest && built.last().map(|(v, _)| v) != Some(&production) {
            return Err(Error::new(format!(
                "production is at {production} but .hop/model has no snapshot of it and no release file says how to build it"
            ))
            .hint("run half_orm dev check, commit what it restores, then import again"));
        }

        // Generated code: half-orm-dev's package-wide files go; its modules
        // keep their user code.
        let pkg = root.join(&legacy.package);
        let mut removed = Vec::new();
        let mut modules = Vec::new();
        for f in [
            "__init__.py",
            "ho_baseclasses.py",
            "ho_typeddicts.py",
            "ho_dataclasses.py",
        ] {
            if pkg.join(f).is_file() {
                removed.push(format!("{}/{f}", legacy.package));
            }
        }
        for path in walk_py(&pkg) {
            let rel = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if path.parent() == Some(pkg.as_path()) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if path.file_name().is_some_and(|n| n == "__init__.py") {
                if text.contains("__all__")
                    && text.contains("It has been generated by the\ncommand hop")
                {
                    removed.push(rel);
                }
            } else if text.contains("ho_baseclasses.BC_") && text.matches(BEGIN).count() == 3 {
                modules.push(rel);
            }
        }
        let hooks = follow::legacy_hooks(git)?;
        Ok(Plan {
            root,
            legacy,
            head,
            moves,
            release_files,
            snapshots,
            built,
            production,
            removed,
            modules,
            refs,
            local_branches,
            hooks,
        })
    }

    /// The plan, one line per change.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![format!(
            "import the half-orm-dev {} project {} (production {}{})",
            self.legacy.hop_version,
            self.legacy.package,
            self.production,
            if self.legacy.production {
                ", a production clone"
            } else {
                ""
            }
        )];
        out.push(".hop/config rewritten as git-hop's settings (no password)".into());
        for (from, to) in &self.moves {
            out.push(format!("{from} → {to}"));
        }
        for (from, to) in &self.release_files {
            out.push(format!("{from} → {to} (one patch id per line)"));
        }
        for v in &self.snapshots {
            out.push(format!(
                "snapshot {v} rewritten in git-hop's format (half-orm-dev's metadata kept in \"{LEGACY_SCHEMA}\")"
            ));
        }
        for (v, ids) in &self.built {
            out.push(format!(
                "snapshot {v} built: the hotfix's patches {} on the snapshot before it",
                ids.iter()
                    .map(|i| i.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        out.push(format!(
            ".hop/model/schema.sql → schema-{}.sql",
            self.production
        ));
        for f in &self.removed {
            out.push(format!(
                "{f} removed (half-orm-dev's; git-hop generates its own)"
            ));
        }
        for m in &self.modules {
            out.push(format!("{m}: user code kept, regenerated by git-hop"));
        }
        for r in &self.refs {
            if !r.what.is_empty() {
                out.push(r.what.clone());
            }
        }
        for h in &self.hooks {
            out.push(format!(
                "hook {} (half-orm-dev's) replaced by git-hop's",
                h.display()
            ));
        }
        out.push(follow::database_step(&self.legacy, &self.production));
        out
    }

    /// Makes every change: the commit and the refs in one atomic push to
    /// origin, then this clone's settings, hooks and database.
    pub fn apply(&self, git: &Git, db_opts: &DbOptions, out: &mut dyn Write) -> Result<()> {
        // The database the conversion builds on, and the clone's.
        let repo =
            Repo::discover(&self.root).ok_or_else(|| Error::new("the repository is gone"))?;
        let working = follow::database(&repo, &self.legacy, db_opts)?;

        // The new tree, in a worktree of its own.
        let wt_path = repo.common_dir().join("hop/tmp/import");
        let _ = std::fs::remove_dir_all(&wt_path);
        let _ = git.run(&["worktree", "prune"]);
        let p = wt_path.display().to_string();
        git.run(&["worktree", "add", "-q", "--detach", &p, &self.head])?;
        let result = self.build_tree(&git.at(&wt_path), &wt_path, &working, out);
        let _ = git.run(&["worktree", "remove", "--force", &p]);
        let commit = result.map_err(|e| e.context("nothing was changed"))?;
        drop(working);

        // One atomic push. Before it, what the clone was is recorded: once
        // origin has the import, a stopped run is resumed from there.
        follow::write_marker(&repo, &self.legacy)?;
        let origin = Origin::of(git)?.ok_or_else(|| Error::new("this clone has no origin"))?;
        let mut updates = vec![RefUpdate::update(
            format!("refs/heads/{PROD_BRANCH}"),
            &commit,
            &self.head,
        )];
        updates.extend(self.refs.iter().map(|r| r.update.clone()));
        if let Err(e) = origin.push(&updates) {
            follow::remove_marker(&repo);
            return Err(e.context("cannot publish the import; nothing was changed"));
        }
        let _ = writeln!(
            out,
            "pushed the import to origin ({} ref changes)",
            updates.len()
        );
        let _ = origin.fetch_without_hooks();

        // This clone follows (the part that `import` resumes if stopped).
        Follow {
            root: self.root.clone(),
            legacy: self.legacy.clone(),
            target: commit,
            production: self.production.clone(),
            branches: self.local_branches.clone(),
            tags: self
                .refs
                .iter()
                .filter(|r| r.update.new.is_none())
                .filter_map(|r| r.update.name.strip_prefix("refs/tags/").map(str::to_string))
                .collect(),
            hooks: self.hooks.clone(),
            resumed: false,
        }
        .apply(git, db_opts, out)
    }

    /// Writes the converted tree into the worktree `wt` and commits it;
    /// returns the commit.
    fn build_tree(
        &self,
        wt: &Git,
        dir: &Path,
        working: &Database,
        out: &mut dyn Write,
    ) -> Result<String> {
        for (from, to) in &self.moves {
            wt.run(&["mv", from, to])?;
        }
        let _ = std::fs::remove_dir(dir.join("Patches/staged"));
        for (from, to) in &self.release_files {
            let text = std::fs::read_to_string(dir.join(from))
                .map_err(|e| Error::io("cannot read", &dir.join(from), e))?;
            let ids: Vec<String> = text
                .lines()
                .map(|l| l.split('#').next().unwrap_or("").trim())
                .filter(|l| !l.is_empty())
                .map(|l| l.split(':').next().unwrap_or(l).to_string())
                .collect();
            wt.run(&["rm", "-q", from])?;
            crate::release_file::write_snapshot(&dir.join(to), &ids, None)?;
        }
        std::fs::write(
            dir.join(".hop/config"),
            ProjectConfig::render_new(&self.legacy.package, &self.legacy.db_name),
        )
        .map_err(|e| Error::io("cannot write", &dir.join(".hop/config"), e))?;
        for f in &self.removed {
            wt.run(&["rm", "-q", f])?;
        }
        for m in &self.modules {
            let path = dir.join(m);
            let text =
                std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
            std::fs::write(&path, to_git_hop_layout(&text))
                .map_err(|e| Error::io("cannot write", &path, e))?;
        }

        // Snapshots, each through a database built from it.
        let mut versions = self.snapshots.clone();
        versions.extend(self.built.iter().map(|(v, _)| v.clone()));
        let mut previous: Option<Version> = None;
        for v in &versions {
            let temp = TempDatabase::new(working, "import");
            temp.db.recreate()?;
            let built = self.built.iter().find(|(b, _)| b == v);
            match (built, &previous) {
                (Some((_, ids)), Some(prev)) => {
                    crate::snapshot::load(&temp.db.params, dir, prev)?;
                    let patches: Vec<crate::rebuild::runner::PatchToRun> = ids
                        .iter()
                        .map(|id| crate::rebuild::runner::PatchToRun {
                            id: id.clone(),
                            dir: dir.join("Patches").join(id.as_str()),
                        })
                        .collect();
                    let checked = crate::rebuild::runner::check(&patches, dir)?;
                    crate::rebuild::runner::run_checked(
                        &temp.db.params,
                        v,
                        &checked,
                        crate::rebuild::runner::RunOptions {
                            root: dir,
                            extra_env: Vec::new(),
                            out: &mut std::io::sink(),
                        },
                    )?;
                }
                _ => {
                    let legacy_name = |prefix: &str| -> PathBuf {
                        let model = dir.join(crate::snapshot::MODEL_DIR);
                        let direct = model.join(format!("{prefix}-{v}.sql"));
                        if direct.is_file() {
                            return direct;
                        }
                        // `0.1.0-hotfix1` was `0.1.0.post1`.
                        let old = v.to_string().replace("-hotfix", ".post");
                        model.join(format!("{prefix}-{old}.sql"))
                    };
                    let psql = crate::db::psql::Client::psql(&temp.db.params)?;
                    psql.run_file(&legacy_name("schema"), true).map_err(|e| {
                        e.context(format!("cannot load half-orm-dev's snapshot {v}"))
                    })?;
                    let data = legacy_name("data");
                    if data.is_file() {
                        psql.run_file(&data, true).map_err(|e| {
                            e.context(format!("cannot load half-orm-dev's data {v}"))
                        })?;
                    }
                    let mut c = temp.db.connect()?;
                    c.batch_execute(&convert_metadata_sql()).map_err(|e| {
                        crate::db::database::sql_error("cannot convert the metadata", e)
                    })?;
                }
            }
            let texts = crate::snapshot::dump(&temp.db)?;
            crate::snapshot::write(dir, v, &texts.schema, &texts.data, &texts.metadata)?;
            let _ = writeln!(out, "snapshot {v}: written in git-hop's format");
            if v == &self.production {
                // The code, generated from the production database.
                let config = ProjectConfig::load(dir)?;
                let report = crate::generate::regenerate(dir, &config, &temp.db)?;
                let _ = writeln!(out, "{}", crate::generate::summary(&report));
            }
            previous = Some(v.clone());
        }
        // Legacy `.postN` model files are gone with their rename.
        for f in std::fs::read_dir(dir.join(crate::snapshot::MODEL_DIR))
            .map_err(|e| Error::io("cannot read", &dir.join(crate::snapshot::MODEL_DIR), e))?
            .flatten()
        {
            if f.file_name().to_string_lossy().contains(".post") {
                let _ = std::fs::remove_file(f.path());
            }
        }
        crate::snapshot::point_current(dir, &self.production)?;
        wt.run(&["add", "-A"])?;
        wt.run(&[
            "commit",
            "-q",
            "--no-verify",
            "-m",
            &format!(
                "[hop] import the half-orm-dev {} project {} at {}",
                self.legacy.hop_version, self.legacy.package, self.production
            ),
        ])?;
        wt.head()
    }
}

/// Every `.py` file under `dir`, sorted.
fn walk_py(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("__pycache__") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "py") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A module in half-orm-dev's layout (module code, class attributes, its
/// generated `__init__`, then a third marker and the class body) in
/// git-hop's (the class body right after the second end marker): the
/// generated `__init__` and the third marker go, the user's code stays.
pub fn to_git_hop_layout(text: &str) -> String {
    let end = crate::codegen::regions::END;
    let mut out = String::with_capacity(text.len());
    let mut ends = 0;
    let mut skipping = false;
    for line in text.split_inclusive('\n') {
        if skipping {
            if line.trim_start().starts_with(BEGIN) {
                skipping = false;
            }
            continue;
        }
        out.push_str(line);
        if line.trim_start().starts_with(end) {
            ends += 1;
            if ends == 2 {
                skipping = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modules_move_to_git_hops_layout_keeping_user_code() {
        let b = BEGIN;
        let e = crate::codegen::regions::END;
        let text = format!(
            "\"\"\"doc\"\"\"\nimport typing\n{b}\nX = 1\n{e}\n\n@register\nclass A(ho_baseclasses.BC_PublicA):\n    \"\"\"doc\"\"\"\n\n    {b}\n    Fkeys = {{}}\n    {e}\n    def __init__(self, id=None, **kwargs):\n        super().__init__(id=id, **kwargs)\n\n        {b}\n    def mine(self):\n        return 42\n"
        );
        let out = to_git_hop_layout(&text);
        assert!(out.contains("X = 1") && out.contains("Fkeys = {}"), "{out}");
        assert!(
            out.ends_with(&format!(
                "    {e}\n    def mine(self):\n        return 42\n"
            )),
            "{out}"
        );
        assert_eq!(out.matches(b).count(), 2, "{out}");
    }
}
