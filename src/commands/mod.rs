//! One module per subcommand: its clap `Args` and a `run` function.

pub mod db_args;
pub mod lock_args;
pub mod patch;
pub mod release;
