//! Temporary databases (validation, snapshot proofs) on the working
//! database's server: named after the working database, the purpose and the
//! process, dropped when dropped, and dropped by a later run when their
//! process is gone (a killed run).

use std::path::Path;

use crate::db::database::Database;

/// A temporary database on the working database's server, dropped when
/// dropped.
pub struct TempDatabase {
    pub db: Database,
}

impl TempDatabase {
    pub fn new(working: &Database, purpose: &str) -> TempDatabase {
        let prefix: String = working.name().chars().take(30).collect();
        let prefix = format!("{prefix}_hop_{purpose}_");
        drop_stale(working, &prefix);
        let base = format!("{prefix}{}", std::process::id());
        let db = Database {
            source: working.source,
            params: working.params.with_dbname(&base),
            cluster: working.cluster.clone(),
        };
        TempDatabase { db }
    }
}

/// Temporary databases left by a killed run (their process is gone).
fn drop_stale(working: &Database, prefix: &str) {
    let Ok(mut client) = working.connect_maintenance() else {
        return;
    };
    let Ok(rows) = client.query(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
        &[&prefix],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let alive = name[prefix.len()..]
            .parse::<u32>()
            .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .unwrap_or(true);
        if !alive {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                crate::db::database::quote_ident(&name)
            ));
        }
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let _ = self.db.drop_database();
    }
}
