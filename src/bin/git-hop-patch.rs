//! `git hop-patch`: a developer's daily work on one patch.
use hop::commands::patch;

fn main() -> std::process::ExitCode {
    let cli: patch::Cli = hop::cli::parse("git hop-patch");
    hop::cli::finish(patch::run(cli))
}
