//! The database options every database-using command accepts.

use crate::db::database::DbOptions;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct DbArgs {
    /// PostgreSQL server to use, as a URL or key=value string
    /// (overrides HOP_DATABASE_URL, git config hop.database.url and PG* variables)
    #[arg(long, value_name = "URL", global = true)]
    pub db_url: Option<String>,
}

impl DbArgs {
    pub fn options(&self, database: Option<&str>) -> DbOptions {
        DbOptions {
            db_url: self.db_url.clone(),
            database: database.map(str::to_string),
        }
    }
}
