//! `git hop-patch apply`: rebuilds the working database with the release's
//! staged patches and this one, in TOML order, then regenerates code and
//! loads the development seed data (docs/patches.md).

use crate::commands::db_args::DbArgs;
use crate::error::Result;
use crate::preconditions;
use crate::project::Project;
use crate::rebuild;

/// Rebuild the working database with this patch and regenerate code
///
/// Rebuild the working database: production snapshot, then the release's
/// staged patches and this patch in TOML order; then regenerate code and
/// load the seed data of .hop/seed/.
/// The work tree may hold uncommitted changes. With --from-dump, start from a
/// pg_dump of the production database instead of the schema snapshot, to
/// try data migrations on real data
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Start from this pg_dump (custom format or plain SQL) of a database at
    /// the production version instead of the schema snapshot; the seed data
    /// is then left out
    #[arg(long, value_name = "FILE")]
    pub from_dump: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub db: DbArgs,
}

pub fn run(args: Args) -> Result<()> {
    let project = Project::from_cwd()?;
    preconditions::development(&project, "git hop-patch apply")?;
    let id = preconditions::on_patch_branch(&project, "git hop-patch apply")?;
    let (version, file) = preconditions::release_of_patch(&project, &id)?;
    let order = rebuild::patch_order(&file, Some(&id))?;
    let db = project.database(&args.db.options(None))?;
    let cache = project.templates().filter(|_| args.from_dump.is_none());
    // The template of the staged head is copied beside the working database
    // while the patch is checked and linted (docs/engine.md): nothing that
    // is the user's is touched until the checks pass.
    let ahead = cache.as_ref().and_then(|cache| {
        rebuild::copy_ahead(
            crate::db::temp::TempDatabase::unswept(&db, "copy"),
            cache,
            &project.root,
            &version,
            &file,
        )
    });
    // Checked before the database is touched, like the patches.
    let seed = crate::seed::Seed::of(&project.root)?;
    // The lint (docs/patches.md): warnings, or an error for a denied rule.
    let before: Vec<_> = order.iter().take_while(|p| **p != id).cloned().collect();
    crate::lint::report(
        &crate::lint::lint_patch(&project.root, &before, &id)?,
        &project.config.lint.deny,
    )?;
    let dump = args
        .from_dump
        .as_deref()
        .map(crate::dump::Dump::open)
        .transpose()?;
    println!(
        "rebuilding {} for release {version}: {}",
        db.describe(),
        list(&order)
    );
    let mut out = std::io::stdout();
    let conf_dir = crate::generate::working_config_dir(&project.state_dir());
    let env = crate::generate::environment(&conf_dir, &project.root, &project.config, &db)?;
    let start = match (&dump, &cache) {
        (Some(dump), _) => rebuild::Start::Dump(dump),
        (None, Some(cache)) => rebuild::Start::Templates {
            cache,
            staged: file.staged().len(),
            ahead: ahead.map_or(rebuild::template::Ahead::Nothing, |p| {
                rebuild::template::Ahead::Beside(Box::new(p))
            }),
        },
        (None, None) => rebuild::Start::Replay,
    };
    let report = rebuild::rebuild(
        &db,
        &project.root,
        &version,
        &order,
        start,
        env.clone(),
        &mut out,
    )?;
    let generated = crate::generate::regenerate(&project.root, &project.config, &db)?;
    println!("{}", crate::generate::summary(&generated));
    match (&seed, &dump) {
        (Some(_), Some(_)) => {
            println!("seed data left out: the database holds the dump's data")
        }
        (Some(seed), None) => seed.run(&db, &version, env, &mut out)?,
        (None, _) => {}
    }
    println!(
        "half_orm config for this database: export HALFORM_CONF_DIR={}",
        conf_dir.display()
    );
    println!(
        "\napplied {} patch(es) in {} ms\n\nnext steps:\n  run your tests, then: git add -A && git commit\n  git hop-patch merge",
        report.patches.len(),
        report.total.as_millis()
    );
    Ok(())
}

fn list(ids: &[crate::patch_id::PatchId]) -> String {
    ids.iter()
        .map(|i| i.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
