//! `git hop-release db status|start|stop|gc`: the clone's embedded cluster
//! and its template databases (docs/engine.md).

use crate::commands::db_args::DbArgs;
use crate::db::database::Database;
use crate::error::{Error, Result};
use crate::project::Project;
use crate::rebuild::template::{self, Cache};

/// Show, start or stop the clone's embedded PostgreSQL cluster; list or remove its template databases
///
/// Show, start or stop this clone's embedded PostgreSQL cluster (used when
/// no server is configured); status also lists this clone's template
/// databases, which gc removes

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
    /// Remove this clone's template databases (rebuilds make them again when needed)
    Gc,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let db = project.database(&args.db.options(None))?;
    let cache = Cache::for_clone(&project.repo.common_dir(), project.clone.template_cache);
    if let Action::Gc = args.action {
        db.ensure_server()?;
        let n = template::gc(&db, &cache)?;
        println!("removed {n} template database(s) of this clone");
        return Ok(());
    }
    let Some(cluster) = &db.cluster else {
        return match args.action {
            Action::Status => {
                println!(
                    "this clone uses {} (from {}); no embedded cluster",
                    db.server(),
                    db.source
                );
                // The server may be down: status still says what it can.
                if let Err(e) = print_templates(&project, &db, &cache) {
                    println!("templates: unknown ({})", e.message);
                }
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
            if s.running {
                print_templates(&project, &db, &cache)?;
            }
        }
        Action::Gc => {}
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

/// This clone's template databases, with their size.
fn print_templates(project: &Project, db: &Database, cache: &Cache) -> Result<()> {
    if project.clone.production {
        println!("templates: none (a production clone never uses them)");
        return Ok(());
    }
    let mut ours: Vec<_> = template::list(db)?
        .into_iter()
        .filter(|t| t.clone_id == cache.clone_id)
        .collect();
    ours.sort_by_key(|t| std::cmp::Reverse(t.used));
    println!(
        "templates: {} of at most {} (git config hop.templateCache)",
        ours.len(),
        cache.limit
    );
    for t in ours {
        println!(
            "  {}  {:.1} MB  key {}",
            t.name,
            t.size as f64 / 1_048_576.0,
            &t.key[..t.key.len().min(12)]
        );
    }
    Ok(())
}
