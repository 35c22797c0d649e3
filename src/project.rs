//! A hop project: a git work tree with a valid `.hop/config`, found from the
//! current directory, with its settings read and validated up front.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::{Git, Repo};
use crate::settings::{CONFIG_PATH, CloneSettings, ProjectConfig};

pub const PROD_BRANCH: &str = "ho-prod";
pub const RELEASE_PREFIX: &str = "ho-release/";
pub const PATCH_PREFIX: &str = "ho-patch/";

pub struct Project {
    pub root: PathBuf,
    pub repo: Repo,
    pub git: Git,
    pub config: ProjectConfig,
    pub clone: CloneSettings,
}

/// What the current branch is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchRole {
    Production,
    Release(String),
    Patch(String),
    Other(String),
    Detached,
}

impl BranchRole {
    pub fn of(branch: Option<&str>) -> BranchRole {
        match branch {
            None => BranchRole::Detached,
            Some(PROD_BRANCH) => BranchRole::Production,
            Some(b) => {
                if let Some(v) = b.strip_prefix(RELEASE_PREFIX) {
                    BranchRole::Release(v.to_string())
                } else if let Some(id) = b.strip_prefix(PATCH_PREFIX) {
                    BranchRole::Patch(id.to_string())
                } else {
                    BranchRole::Other(b.to_string())
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            BranchRole::Production => "production branch".into(),
            BranchRole::Release(v) => format!("release {v} in preparation"),
            BranchRole::Patch(id) => format!("patch {id}"),
            BranchRole::Other(_) => "not a git-hop branch".into(),
            BranchRole::Detached => "detached HEAD".into(),
        }
    }
}

impl Project {
    /// Finds the project containing `dir`, or says how to make one.
    pub fn discover(dir: &Path) -> Result<Project> {
        let not_a_project = || {
            Error::new(format!(
                "not in a git-hop project ({} has no {CONFIG_PATH} in it or its parents)",
                dir.display()
            ))
            .hint("cd into a project, or create one with `git hop-release init <package>` or `git hop-release clone <url>`")
        };
        let repo = Repo::discover(dir).ok_or_else(not_a_project)?;
        let root = repo.workdir().to_path_buf();
        if !root.join(CONFIG_PATH).is_file() {
            return Err(not_a_project());
        }
        let config = ProjectConfig::load(&root)?;
        let clone = CloneSettings::read(&repo)?;
        let git = Git::new(&root)?;
        Ok(Project {
            root,
            repo,
            git,
            config,
            clone,
        })
    }

    pub fn from_cwd() -> Result<Project> {
        let cwd = std::env::current_dir()
            .map_err(|e| Error::new(format!("cannot read the current directory: {e}")))?;
        Project::discover(&cwd)
    }

    pub fn current_branch(&self) -> Option<String> {
        self.repo.current_branch()
    }

    pub fn role(&self) -> BranchRole {
        BranchRole::of(self.current_branch().as_deref())
    }

    /// The clone's working database (docs/connection.md resolution).
    pub fn database(
        &self,
        opts: &crate::db::database::DbOptions,
    ) -> Result<crate::db::database::Database> {
        crate::db::database::Database::resolve(
            opts,
            &self.repo.common_dir(),
            &self.clone,
            self.config.database.name.as_deref(),
            &self.config.project.package,
        )
    }

    /// `.git/hop`: the clone's private state (embedded cluster, backups).
    pub fn state_dir(&self) -> PathBuf {
        self.repo.common_dir().join("hop")
    }

    /// This clone's template databases (docs/engine.md); `None` in a
    /// production clone, which never uses them, or with
    /// `hop.templateCache = 0`.
    pub fn templates(&self) -> Option<crate::rebuild::template::Cache> {
        (!self.clone.production && self.clone.template_cache > 0).then(|| {
            crate::rebuild::template::Cache::for_clone(
                &self.repo.common_dir(),
                self.clone.template_cache,
            )
        })
    }
}

/// A folder about to receive a new project (init, clone) must not exist or
/// be empty. Returns whether it existed.
pub fn check_new_folder(target: &Path) -> Result<bool> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                Err(Error::new(format!(
                    "{} already exists and is not empty; nothing was changed",
                    target.display()
                ))
                .hint("choose another name or folder, or remove or empty that folder"))
            } else {
                Ok(true)
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(_) => Err(Error::new(format!(
            "{} exists and is not a readable folder; nothing was changed",
            target.display()
        ))),
    }
}

/// Takes back `check_new_folder`'s folder: removes it, or only what it
/// holds when it existed before.
pub fn remove_new_folder(dir: &Path, existed: bool) -> Result<()> {
    if !existed {
        return match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("cannot remove", dir, e)),
        };
    }
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    for entry in entries.flatten() {
        let p = entry.path();
        let r = if p.is_dir() && !p.is_symlink() {
            std::fs::remove_dir_all(&p)
        } else {
            std::fs::remove_file(&p)
        };
        r.map_err(|e| Error::io("cannot remove", &p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        assert_eq!(BranchRole::of(Some("ho-prod")), BranchRole::Production);
        assert_eq!(
            BranchRole::of(Some("ho-release/0.1.0")),
            BranchRole::Release("0.1.0".into())
        );
        assert_eq!(
            BranchRole::of(Some("ho-patch/1-x")),
            BranchRole::Patch("1-x".into())
        );
        assert_eq!(
            BranchRole::of(Some("main")),
            BranchRole::Other("main".into())
        );
        assert_eq!(BranchRole::of(None), BranchRole::Detached);
    }

    #[test]
    fn outside_a_project_is_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Project::discover(tmp.path()).err().unwrap();
        assert!(
            err.message.starts_with("not in a git-hop project"),
            "{}",
            err.message
        );
        assert!(err.hint.unwrap().contains("git hop-release init"));
    }
}
