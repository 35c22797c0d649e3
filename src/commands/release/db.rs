//! `git hop-release db status|start|stop`: the clone's embedded cluster.

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::project::Project;

/// Show, start or stop the clone's embedded PostgreSQL cluster
///
/// Show, start or stop this clone's embedded PostgreSQL cluster
/// (used when no server is configured)
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Which server this clone uses; for the embedded cluster, where it lives and whether it runs
    Status,
    /// Start the embedded cluster (commands also start it on demand)
    Start,
    /// Stop the embedded cluster
    Stop,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let db = project.database(&args.db.options(None))?;
    let Some(cluster) = &db.cluster else {
        return match args.action {
            Action::Status => {
                println!(
                    "this clone uses {} (from {}); no embedded cluster",
                    db.server(),
                    db.source
                );
                Ok(())
            }
            _ => Err(Error::new(format!(
                "this clone uses {} (from {}), not the embedded cluster",
                db.server(),
                db.source
            ))
            .hint("start and stop that server with its own tools")),
        };
    };
    match args.action {
        Action::Status => {
            let s = cluster.status();
            let state = if s.running {
                "running"
            } else if s.initialized {
                "stopped"
            } else {
                "not created yet (created on first use)"
            };
            println!("embedded cluster: {state}");
            println!("data:     {}", s.data_dir.display());
            println!("socket:   {}", s.socket_dir.display());
            println!("owner:    {}", s.owner);
            println!("log:      {}", s.log_file.display());
            println!("database: {}", db.name());
            println!(
                "connect:  psql -h {} -p {} -U {} {}",
                s.socket_dir.display(),
                cluster.port(),
                cluster.superuser(),
                db.name()
            );
        }
        Action::Start => {
            cluster.ensure_started()?;
            println!(
                "embedded cluster running (socket {})",
                cluster.socket_dir().display()
            );
        }
        Action::Stop => {
            cluster.stop()?;
            println!("embedded cluster stopped");
        }
    }
    Ok(())
}
