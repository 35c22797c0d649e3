//! What both binaries share: parsing with git's command name, and turning
//! a result into output and an exit code (the one place errors are rendered).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::error::Result;

/// Parses the process arguments with `git hop-…` as the displayed name.
/// Usage errors exit 2 through clap.
pub fn parse<T: CommandFactory + FromArgMatches>(display_name: &'static str) -> T {
    parse_from(display_name, std::env::args_os())
}

pub fn parse_from<T: CommandFactory + FromArgMatches>(
    display_name: &'static str,
    args: impl IntoIterator<Item = OsString>,
) -> T {
    let matches = T::command().bin_name(display_name).get_matches_from(args);
    T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// Prints the error, if any, and gives the exit code.
pub fn finish(result: Result<()>) -> ExitCode {
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", e.render());
            ExitCode::from(e.exit_code())
        }
    };
    // What the command left running (dropping a database it no longer
    // needs) ends before the process does.
    crate::background::wait();
    code
}
