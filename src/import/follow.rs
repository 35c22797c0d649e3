//! A clone catching up with an import (docs/import.md, "Other clones"):
//! origin's `ho-prod` is git-hop's, this clone is still half-orm-dev's
//! (another clone ran the import), or an import of this clone pushed and
//! was stopped before its local part ended. [`Follow::apply`] moves the
//! clone onto origin's `ho-prod`, drops half-orm-dev's branches, tags and
//! hooks, writes the clone's settings and converts its database. Every
//! step may run again: a stopped run is resumed by the next `import`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Legacy, convert_metadata_sql, legacy_version};
use crate::db::database::{Database, DbOptions};
use crate::error::{Error, Result};
use crate::git::{Git, Repo};
use crate::origin::{Origin, REMOTE};
use crate::project::PROD_BRANCH;
use crate::settings::{CloneSettings, ProjectConfig};
use crate::version::Version;

/// Under the git folder: what the clone was (half-orm-dev's description,
/// without password) while its local part of an import is not finished.
const MARKER: &str = "hop/import-pending";

/// The local part of an import, worked out before anything changes.
pub struct Follow {
    pub root: PathBuf,
    pub legacy: Legacy,
    /// origin's `ho-prod`, imported.
    pub target: String,
    /// The production version `target` holds.
    pub production: Version,
    /// half-orm-dev's local branches that go (their commits are in `target`).
    pub branches: Vec<String>,
    /// half-orm-dev's local tags that go (origin has git-hop's names).
    pub tags: Vec<String>,
    /// half-orm-dev's hooks in this clone.
    pub hooks: Vec<PathBuf>,
    /// Resuming a stopped import of this clone.
    pub resumed: bool,
}

impl Follow {
    /// The local part left to do in the clone of `git`, or `None` when
    /// origin's `ho-prod` is not imported (the project is to convert:
    /// [`super::Plan`]). Changes nothing but remote-tracking refs (a fetch)
    /// and a stale marker.
    pub fn read(git: &Git) -> Result<Option<Follow>> {
        let repo = Repo::discover(git.dir()).ok_or_else(|| {
            Error::new("not in a git repository").hint("cd into the half-orm-dev project to import")
        })?;
        let root = repo.workdir().to_path_buf();
        let marker = repo.common_dir().join(MARKER);
        if repo.is_dirty()? {
            return Err(
                Error::new("the work tree has uncommitted changes; nothing was changed")
                    .hint("commit or stash them (git stash -u), then git hop-release import"),
            );
        }
        let (legacy, resumed) = match Legacy::read(&root) {
            Ok(l) => (l, false),
            Err(e) if marker.is_dir() && e.message.contains("is git-hop's already") => {
                (Legacy::read_with(&marker, &marker)?, true)
            }
            Err(e) => return Err(e),
        };
        let Some(origin) = Origin::of(git)? else {
            return Ok(None);
        };
        origin.fetch_without_hooks()?;
        let Some(target) = git.rev_parse(&format!("refs/remotes/{REMOTE}/{PROD_BRANCH}"))? else {
            return Ok(None);
        };
        let config = crate::settings::CONFIG_PATH;
        let imported = git
            .file_at(&target, config)
            .is_ok_and(|t| ProjectConfig::parse(Path::new(config), &t).is_ok());
        if !imported {
            // A marker left by an import whose push never landed.
            let _ = std::fs::remove_dir_all(&marker);
            return Ok(None);
        }
        let head = git.head()?;
        if !git.is_ancestor(&head, &target)? {
            return Err(Error::new(format!(
                "origin's {PROD_BRANCH} is imported already, and this clone's HEAD has commits it lacks"
            ))
            .hint(format!("save those commits elsewhere (git branch keep-mine), then git switch -C {PROD_BRANCH} origin/{PROD_BRANCH} and git hop-release import")));
        }
        if let Some(local) = git.rev_parse(&format!("refs/heads/{PROD_BRANCH}"))?
            && !git.is_ancestor(&local, &target)?
        {
            return Err(Error::new(format!(
                "the local {PROD_BRANCH} has commits that origin's imported {PROD_BRANCH} lacks"
            ))
            .hint(format!("save them elsewhere (git branch keep-mine {PROD_BRANCH}), then git branch -f {PROD_BRANCH} origin/{PROD_BRANCH} and git hop-release import")));
        }
        let link = git
            .file_at(
                &target,
                &format!("{}/schema.sql", crate::snapshot::MODEL_DIR),
            )
            .unwrap_or_default();
        let production = link
            .trim()
            .strip_prefix("schema-")
            .and_then(|s| s.strip_suffix(".sql"))
            .and_then(|v| v.parse::<Version>().ok())
            .ok_or_else(|| {
                Error::new(format!(
                    "origin's {PROD_BRANCH} has no model snapshot link (.hop/model/schema.sql)"
                ))
            })?;

        // half-orm-dev's local branches and tags that origin no longer has.
        let remote = origin.ls_remote(&[])?;
        let mut branches = Vec::new();
        for b in repo.local_branches() {
            let legacy_name = b
                .strip_prefix("ho-prod-")
                .and_then(legacy_version)
                .is_some()
                || b.starts_with("ho-staged/")
                || b.starts_with("ho-release/");
            if !legacy_name || remote.contains_key(&format!("refs/heads/{b}")) {
                continue;
            }
            let Some(oid) = git.rev_parse(&format!("refs/heads/{b}"))? else {
                continue;
            };
            // half-orm-dev keeps a staged patch's branch, with a
            // bookkeeping commit of its own, once the patch is released.
            let released = b.strip_prefix("ho-staged/").is_some_and(|id| {
                git.run(&[
                    "grep",
                    "-q",
                    "-x",
                    "-F",
                    id,
                    &target,
                    "--",
                    ".hop/releases/",
                ])
                .is_ok()
            });
            if released || git.is_ancestor(&oid, &target)? {
                branches.push(b);
            }
        }
        let mut tags = Vec::new();
        for t in repo.tags() {
            let legacy_name = t.strip_prefix('v').is_some_and(|v| v.contains(".post"))
                || t.strip_prefix("ho-patch/")
                    .is_some_and(|n| n.parse::<u64>().is_ok());
            if legacy_name && !remote.contains_key(&format!("refs/tags/{t}")) {
                tags.push(t);
            }
        }
        Ok(Some(Follow {
            hooks: legacy_hooks(git)?,
            root,
            legacy,
            target,
            production,
            branches,
            tags,
            resumed,
        }))
    }

    /// What [`Follow::apply`] will do, one line each.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![if self.resumed {
            format!(
                "resume the import of this clone: origin's {PROD_BRANCH} is git-hop's (production {})",
                self.production
            )
        } else {
            format!(
                "follow the import on origin: {PROD_BRANCH} is git-hop's there (its production is {}); this clone catches up",
                self.production
            )
        }];
        out.push(format!(
            "{PROD_BRANCH} moved to origin's ({})",
            &self.target[..12.min(self.target.len())]
        ));
        for b in &self.branches {
            out.push(format!("local branch {b} deleted (half-orm-dev's)"));
        }
        for t in &self.tags {
            out.push(format!("local tag {t} deleted (origin has git-hop's name)"));
        }
        for h in &self.hooks {
            out.push(format!(
                "hook {} (half-orm-dev's) replaced by git-hop's",
                h.display()
            ));
        }
        out.push(format!(
            "this clone's database: {} ({}){}",
            self.legacy.db_name,
            self.legacy
                .conninfo
                .as_deref()
                .unwrap_or("the default server"),
            self.legacy
                .conf_file
                .as_ref()
                .map(|f| format!(", as half-orm-dev's {} says", f.display()))
                .unwrap_or_default()
        ));
        out.push(database_step(&self.legacy, &self.production));
        out
    }

    /// Moves the clone onto `target` and converts it (see the module's doc).
    pub fn apply(&self, git: &Git, db_opts: &DbOptions, out: &mut dyn Write) -> Result<()> {
        let repo =
            Repo::discover(&self.root).ok_or_else(|| Error::new("the repository is gone"))?;
        write_marker(&repo, &self.legacy)?;
        let working = database(&repo, &self.legacy, db_opts)?;

        // half-orm-dev's hooks first: on production they refuse every
        // ref update, the moves below included.
        for h in &self.hooks {
            let _ = std::fs::remove_file(h);
        }

        // The clone onto origin's ho-prod.
        if git.head()? != self.target {
            if repo.current_branch().as_deref() == Some(PROD_BRANCH) {
                git.run(&["merge", "-q", "--ff-only", &self.target])?;
            } else {
                git.run(&["switch", "-q", "-C", PROD_BRANCH, &self.target])?;
            }
        }
        let _ = git.set_upstream(PROD_BRANCH, REMOTE);
        for b in &self.branches {
            let _ = git.run(&["branch", "-q", "-D", b]);
        }
        for t in &self.tags {
            let _ = git.run(&["tag", "-d", t]);
        }
        let _ = git.run(&["fetch", "-q", REMOTE, "+refs/hop/*:refs/hop/*"]);

        // Settings, and git-hop's hooks.
        let clone = CloneSettings::read(&repo)?;
        if clone.database_url.is_none()
            && let Some(c) = &self.legacy.conninfo
        {
            git.run(&["config", "hop.database.url", c])?;
        }
        let project = crate::project::Project::discover(&self.root)?;
        if clone.database_name.is_none()
            && project.config.database.name.as_deref() != Some(self.legacy.db_name.as_str())
        {
            git.run(&["config", "hop.database.name", &self.legacy.db_name])?;
        }
        if self.legacy.production {
            git.run(&["config", "hop.production", "true"])?;
        }
        // A handle of its own: `git`'s cached config predates hop.production.
        crate::hooks::install::install(&git.at(&self.root))?;

        // The clone's database.
        if self.legacy.production {
            let mut client = working.connect()?;
            let fail = |e| crate::db::database::sql_error("cannot convert the metadata", e);
            let mut tx = client.transaction().map_err(fail)?;
            // Live traffic: its locks are waited for hop.lockTimeout at most
            // (docs/import.md); the transaction then rolls back whole.
            let wait = CloneSettings::read(&repo)?.lock_timeout;
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = '{}ms'",
                wait.as_millis().max(1)
            ))
            .map_err(fail)?;
            tx.batch_execute(&convert_metadata_sql()).map_err(|e| {
                let blocked = e
                    .as_db_error()
                    .is_some_and(|d| d.code() == &postgres::error::SqlState::LOCK_NOT_AVAILABLE);
                let err = fail(e);
                if blocked {
                    err.hint(format!(
                        "a session of the application holds a lock on half_orm_meta (waited {} ms, hop.lockTimeout): nothing of the database was changed; run git hop-release import again, it resumes",
                        wait.as_millis()
                    ))
                } else {
                    err
                }
            })?;
            let at = crate::db::meta::database_version(&mut tx)?;
            tx.commit().map_err(fail)?;
            let _ = writeln!(
                out,
                "{}: half-orm-dev's metadata converted (its history kept in \"{}\"), at {}",
                working.describe(),
                super::LEGACY_SCHEMA,
                at.map(|v| v.to_string())
                    .unwrap_or_else(|| "no release".into())
            );
        } else {
            working.recreate()?;
            crate::snapshot::load(&working.params, &self.root, &self.production)?;
            crate::generate::write_working_config(&project, &working)?;
            let _ = writeln!(
                out,
                "{}: rebuilt at {} from the new snapshot",
                working.describe(),
                self.production
            );
        }
        remove_marker(&repo);
        Ok(())
    }
}

/// What happens to the clone's database, in words (the plans' last line).
pub(super) fn database_step(legacy: &Legacy, production: &Version) -> String {
    if legacy.production {
        "the production database: half-orm-dev's metadata converted in place (one transaction), its data untouched; then git hop-release upgrade".to_string()
    } else {
        format!("the working database rebuilt at {production} from the new snapshot")
    }
}

/// The clone's database as half-orm-dev's description names it (unless
/// flags, `HOP_DATABASE_URL` or the clone's settings say otherwise).
pub(super) fn database(repo: &Repo, legacy: &Legacy, db_opts: &DbOptions) -> Result<Database> {
    let mut clone = CloneSettings::read(repo)?;
    if clone.database_url.is_none() {
        clone.database_url = legacy.conninfo.clone();
    }
    let working = Database::resolve(
        db_opts,
        &repo.common_dir(),
        &clone,
        Some(&legacy.db_name),
        &legacy.package,
    )?;
    working.ensure_server()?;
    Ok(working)
}

/// Records what the clone was before its import changes it (in the older
/// form of half-orm-dev's config, which holds the connection: no password).
pub(super) fn write_marker(repo: &Repo, legacy: &Legacy) -> Result<()> {
    let dir = repo.common_dir().join(MARKER).join(".hop");
    let path = dir.join("config");
    if path.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
    let mut text = format!(
        "[halfORM]\nhop_version = {}\ndevel = True\npackage_name = {}\n\n[database]\nname = {}\nproduction = {}\n",
        legacy.hop_version,
        legacy.package,
        legacy.db_name,
        if legacy.production { "True" } else { "False" }
    );
    for (k, v) in &legacy.connection {
        text.push_str(&format!("{k} = {v}\n"));
    }
    let tmp = dir.join("config.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io("cannot write", &tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write", &path, e))
}

/// The import of this clone is over.
pub(super) fn remove_marker(repo: &Repo) {
    let _ = std::fs::remove_dir_all(repo.common_dir().join(MARKER));
}

/// half-orm-dev's hooks in the clone of `git` (marked "Half-ORM").
pub(super) fn legacy_hooks(git: &Git) -> Result<Vec<PathBuf>> {
    let hooks_dir = crate::hooks::install::hooks_dir(git)?;
    Ok([
        "pre-commit",
        "pre-push",
        "prepare-commit-msg",
        "reference-transaction",
        "post-merge",
        "post-checkout",
    ]
    .iter()
    .map(|h| hooks_dir.join(h))
    .filter(|p| {
        std::fs::read_to_string(p)
            .is_ok_and(|t| t.contains("Half-ORM") || t.contains("half_orm_dev"))
    })
    .collect())
}
