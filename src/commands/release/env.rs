//! `git hop-release env`: the exports through which the generated half_orm
//! package, the project's tests and psql reach this clone's database
//! (docs/codegen.md), for `eval "$(git hop-release env)"`.

use serde::Serialize;

use crate::commands::db_args::DbArgs;
use crate::error::{Error, Result};
use crate::project::Project;

/// Print the exports that reach this clone's database
///
/// Print `export` lines for HALFORM_CONF_DIR (the half_orm config of this
/// clone's database, which init, clone, generate, apply, restore and
/// upgrade write), PGHOST, PGPORT, PGUSER, PGDATABASE and the TLS settings
/// (PGSSLMODE, PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGCHANNELBINDING) when
/// there are any, for eval "$(git hop-release env)"; never a password (use
/// PGPASSWORD or ~/.pgpass). Starts the embedded cluster when it is the
/// server
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON instead of shell exports
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Serialize, Debug)]
pub struct Env {
    pub schema_version: u32,
    pub variables: Vec<(String, String)>,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    let db = project.database(&args.db.options(None))?;
    db.ensure_server()?;
    // Written by the commands that build or change the database; read only
    // here.
    let conf_dir = crate::generate::working_config_dir(&project.state_dir());
    if !conf_dir.join(&project.config.project.package).is_file() {
        eprintln!(
            "warning: no half_orm config for this clone's database yet: git hop-release generate writes it"
        );
    }
    let p = &db.params;
    let mut vars = vec![(
        "HALFORM_CONF_DIR".to_string(),
        conf_dir.display().to_string(),
    )];
    // What psql would get (TLS settings included), never the password.
    vars.extend(p.child_env().into_iter().filter(|(k, _)| k != "PGPASSWORD"));
    if args.json {
        let text = serde_json::to_string_pretty(&Env {
            schema_version: crate::machine::SCHEMA_VERSION,
            variables: vars,
        })
        .map_err(|e| Error::new(format!("cannot render JSON: {e}")))?;
        println!("{text}");
    } else {
        for (k, v) in vars {
            println!("export {k}={}", shell_quote(&v));
        }
    }
    Ok(())
}

/// A POSIX shell single-quoted word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/a b/it's"), "'/a b/it'\\''s'");
    }
}
