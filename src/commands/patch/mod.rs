//! `git hop-patch`: a developer's work on one patch.

use clap::{Parser, Subcommand};

use crate::error::Result;

pub mod apply;
pub mod attach;
pub mod create;
pub mod detach;
pub mod lint;
pub mod merge;
pub mod status;
pub mod sync;
pub mod validate;

/// A developer's daily work on one patch of a git-hop project
/// (PostgreSQL schema patches versioned in git).
#[derive(Parser, Debug)]
#[command(
    name = "git-hop-patch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(after_help = "See also: git hop-release (project set-up, releases, production).")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    Create(create::Args),
    Apply(apply::Args),
    Merge(merge::Args),
    Lint(lint::Args),
    Validate(validate::Args),
    Sync(sync::Args),
    Detach(detach::Args),
    Attach(attach::Args),
    Status(status::Args),
    #[command(hide = true)]
    Completions(crate::commands::release::completions::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Create(a) => create::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Lint(a) => lint::run(a),
        Command::Validate(a) => validate::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Detach(a) => detach::run(a),
        Command::Attach(a) => attach::run(a),
        Command::Status(a) => status::run(a),
        Command::Completions(a) => {
            crate::commands::release::completions::run::<Cli>(a, "hop-patch")
        }
    }
}
