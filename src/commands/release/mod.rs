//! `git hop-release`: project set-up, releases, production, the database
//! and the hooks.

use clap::{Parser, Subcommand};

use crate::error::Result;

pub mod abandon;
pub mod apply;
pub mod clone;
pub mod completions;
pub mod db;
pub mod env;
pub mod generate;
pub mod hook;
pub mod hooks;
pub mod hotfix;
pub mod import;
pub mod init;
pub mod new;
pub mod promote;
pub mod restore;
pub mod status;
pub mod sync;
pub mod unlock;
pub mod update;
pub mod upgrade;
pub mod validate;

/// Releases, production and project set-up for git-hop projects
/// (PostgreSQL schema patches versioned in git).
#[derive(Parser, Debug)]
#[command(
    name = "git-hop-release",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "See also: git hop-patch (a developer's work on one patch).")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Init(init::Args),
    Clone(clone::Args),
    New(new::Args),
    Promote(promote::Args),
    Hotfix(hotfix::Args),
    Apply(apply::Args),
    Validate(validate::Args),
    Abandon(abandon::Args),
    Import(import::Args),
    Sync(sync::Args),
    Unlock(unlock::Args),
    Update(update::Args),
    Upgrade(upgrade::Args),
    Restore(restore::Args),
    Status(status::Args),
    Db(db::Args),
    Generate(generate::Args),
    Env(env::Args),
    Hooks(hooks::Args),
    #[command(hide = true)]
    Hook(hook::Args),
    #[command(hide = true)]
    Completions(completions::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Init(a) => init::run(a),
        Command::Clone(a) => clone::run(a),
        Command::New(a) => new::run(a),
        Command::Promote(a) => promote::run(a),
        Command::Hotfix(a) => hotfix::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Abandon(a) => abandon::run(a),
        Command::Import(a) => import::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Unlock(a) => unlock::run(a),
        Command::Update(a) => update::run(a),
        Command::Upgrade(a) => upgrade::run(a),
        Command::Restore(a) => restore::run(a),
        Command::Status(a) => status::run(a),
        Command::Db(a) => db::run(a),
        Command::Generate(a) => generate::run(a),
        Command::Env(a) => env::run(a),
        Command::Hooks(a) => hooks::run(a),
        Command::Hook(a) => hook::run(a),
        Command::Completions(a) => completions::run::<Cli>(a, "hop-release"),
    }
}
