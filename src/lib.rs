//! git-hop: Git-centric patch management and database versioning for
//! PostgreSQL projects. Both binaries (`git-hop-patch`, `git-hop-release`)
//! are thin shells over this library.

pub mod cli;
pub mod commands;
pub mod db;
pub mod error;
pub mod git;
pub mod hooks;
pub mod man;
pub mod origin;
pub mod patch_id;
pub mod preconditions;
pub mod project;
pub mod release_file;
pub mod settings;
pub mod snapshot;
pub mod undo;
pub mod version;

pub use error::{Error, Result};
