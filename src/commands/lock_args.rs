//! `--wait SECONDS`, shared by the commands that take a release's origin
//! lock (`hop-patch merge`, `promote`, `release sync`; docs/releases.md,
//! "The merge queue").

use crate::error::Result;
use crate::lock::{self, Lock};
use crate::origin::Origin;
use crate::project::Project;

#[derive(clap::Args, Debug, Clone)]
pub struct LockArgs {
    /// How long to wait, in seconds, while another merge, promotion or
    /// sync of the release holds its lock on origin
    #[arg(long, value_name = "SECONDS", default_value_t = lock::DEFAULT_WAIT)]
    pub wait: u64,
}

impl LockArgs {
    /// Takes the lock of release `version` on origin (`None` without an
    /// origin: nobody else to take turns with).
    pub fn take(&self, project: &Project, version: &str, command: &str) -> Result<Option<Lock>> {
        let Some(origin) = Origin::of(&project.git)? else {
            return Ok(None);
        };
        Lock::acquire(
            &project.git,
            &origin,
            &lock::Options {
                version,
                command,
                wait: std::time::Duration::from_secs(self.wait),
                expiry: lock::expiry(&project.git),
            },
        )
        .map(Some)
    }
}
