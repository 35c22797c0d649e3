//! `git hop-release`: releases, promotion, production, project set-up.
use hop::commands::release;

fn main() -> std::process::ExitCode {
    let cli: release::Cli = hop::cli::parse("git hop-release");
    hop::cli::finish(release::run(cli))
}
