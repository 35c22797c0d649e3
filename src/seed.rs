//! Development seed data (docs/patches.md, "Seed data"): the files of
//! `.hop/seed/` (`*.sql` and `*.py`), run in name order after every
//! development rebuild (`apply`, a validation, `clone`, `restore`), once the
//! code is generated, so that neither the generated code nor a model
//! snapshot ever holds what they add. Never in production: a production
//! clone, `upgrade` and the model snapshot of a promotion never see them.
//! They run through the patches' engine ([`crate::rebuild::runner`]): the
//! same file rules, `file:line` errors and session guard, no
//! `half_orm_meta` row.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::db::database::Database;
use crate::error::Result;
use crate::rebuild::runner::{self, Checked, RunOptions};
use crate::version::Version;

/// The seed folder, relative to the work tree root.
pub const DIR: &str = ".hop/seed";

/// A work tree's seed files, read and checked.
pub struct Seed {
    root: PathBuf,
    checked: Checked,
}

impl Seed {
    /// The seed data of the work tree `root`: `None` when it has no
    /// `.hop/seed/` folder or the folder holds no file to run. A file the
    /// rules refuse is an error, before any database is touched.
    pub fn of(root: &Path) -> Result<Option<Seed>> {
        let dir = root.join(DIR);
        if !dir.is_dir() {
            return Ok(None);
        }
        let checked = runner::check_seed(&dir, root)?;
        if checked.is_empty() {
            return Ok(None);
        }
        Ok(Some(Seed {
            root: root.to_path_buf(),
            checked,
        }))
    }

    /// How many files it runs.
    pub fn len(&self) -> usize {
        self.checked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.checked.is_empty()
    }

    /// Runs the seed files on `db` (at or for `version`), Python ones with
    /// `extra_env` (a half_orm config for `db`).
    pub fn run(
        &self,
        db: &Database,
        version: &Version,
        extra_env: Vec<(String, String)>,
        out: &mut dyn Write,
    ) -> Result<()> {
        let report = runner::run_checked(
            &db.params,
            version,
            &self.checked,
            RunOptions {
                root: &self.root,
                extra_env,
                out,
            },
        )?;
        let _ = writeln!(
            out,
            "seed data: {} file(s) of {DIR} ({} ms)",
            self.checked.len(),
            report.total.as_millis()
        );
        Ok(())
    }
}
