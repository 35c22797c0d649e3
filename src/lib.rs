//! git-hop: Git-centric patch management and database versioning for
//! PostgreSQL projects. Both binaries (`git-hop-patch`, `git-hop-release`)
//! are thin shells over this library.

pub mod background;
pub mod backup;
pub mod cli;
pub mod codegen;
pub mod commands;
pub mod confirm;
pub mod db;
pub mod driver;
pub mod dump;
pub mod error;
pub mod generate;
pub mod git;
pub mod hooks;
pub mod import;
pub mod lint;
pub mod lock;
pub mod lock_file;
pub mod machine;
pub mod man;
pub mod origin;
pub mod owner;
pub mod patch_dir;
pub mod patch_id;
pub mod preconditions;
pub mod preview;
pub mod project;
pub mod publish;
pub mod rebuild;
pub mod reference;
pub mod release;
pub mod release_file;
pub mod seed;
pub mod settings;
pub mod snapshot;
pub mod sql_lexer;
pub mod undo;
pub mod upgrade;
pub mod utc;
pub mod validation;
pub mod version;

pub use error::{Error, Result};

// The test harness (tests/common/pg.rs) names the library `hop`, as the
// integration tests and benches do.
#[cfg(test)]
extern crate self as hop;

/// The one throwaway-PostgreSQL harness, shared with the integration tests
/// and the benchmarks.
#[cfg(test)]
#[path = "../tests/common/pg.rs"]
pub(crate) mod test_pg;
