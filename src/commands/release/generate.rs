//! `git hop-release generate`: regenerates the half_orm package and test
//! skeletons from the working database (docs/codegen.md).

use crate::commands::db_args::DbArgs;
use crate::error::Result;
use crate::project::Project;

/// Regenerate the half_orm package and test skeletons
///
/// Regenerate the half_orm Python package (<package>/) and the test
/// skeletons from the working database; user code between the markers and
/// after the last marker is kept
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let db = project.database(&args.db.options(None))?;
    let report = crate::generate::regenerate(&project.root, &project.config, &db)?;
    let conf = crate::generate::write_working_config(&project, &db)?;
    println!("{}", crate::generate::summary(&report));
    println!("half_orm config: {}", conf.display());
    if let Some(r) = &report {
        for p in &r.written {
            println!("  wrote   {}", p.display());
        }
        for p in &r.removed {
            println!("  removed {}", p.display());
        }
    }
    Ok(())
}
