//! Temporary databases (validation, snapshot proofs) on the working
//! database's server, which other clones, hosts and CI jobs may share
//! (docs/safety.md): named after the working database and the purpose with
//! a random part (never longer than PostgreSQL's 63 bytes, so two never
//! collide after truncation), marked with a comment naming their owner
//! (host, pid, process start time: [`crate::owner`]), dropped when dropped,
//! and dropped by a later run of the same host once their process is gone.

use crate::db::database::{Database, quote_ident};
use crate::owner::{self, Owner};

/// What a temporary database's comment starts with.
pub const COMMENT: &str = "git-hop temporary database:";

/// PostgreSQL's longest identifier, in bytes.
const NAME_MAX: usize = 63;

/// A temporary database on the working database's server, dropped when
/// dropped. It is created by its user ([`Database::create`] writes the
/// owner's comment).
pub struct TempDatabase {
    pub db: Database,
}

impl TempDatabase {
    pub fn new(working: &Database, purpose: &str) -> TempDatabase {
        drop_stale(working);
        TempDatabase::unswept(working, purpose)
    }

    /// [`TempDatabase::new`] without sweeping the leftovers first: for a
    /// caller that sweeps them on a connection of its own
    /// ([`drop_stale_via`]).
    pub fn unswept(working: &Database, purpose: &str) -> TempDatabase {
        let db = Database {
            source: working.source,
            params: working.params.with_dbname(&name(working.name(), purpose)),
            cluster: working.cluster.clone(),
            note: Some(format!("{COMMENT} {purpose} {}", Owner::me())),
        };
        TempDatabase { db }
    }
}

/// `<working>_hop_<purpose>_<random>`, the working database's name cut (on
/// a character boundary) so that the whole fits in 63 bytes.
pub(crate) fn name(working: &str, purpose: &str) -> String {
    let tail = format!("_hop_{purpose}_{}", owner::random_hex());
    let room = NAME_MAX.saturating_sub(tail.len());
    let mut head = String::new();
    for c in working.chars() {
        if head.len() + c.len_utf8() > room {
            break;
        }
        head.push(c);
    }
    format!("{head}{tail}")
}

/// Temporary databases left by killed runs of this host (their process is
/// gone, a zombie, or its pid now names another process). Another host's
/// are never touched, whatever their pid.
pub(crate) fn drop_stale(working: &Database) {
    if let Ok(mut client) = working.connect_maintenance() {
        drop_stale_via(&mut client);
    }
}

/// [`drop_stale`] on an open maintenance connection.
pub(crate) fn drop_stale_via(client: &mut postgres::Client) {
    let Ok(rows) = client.query(
        "SELECT d.datname, shobj_description(d.oid, 'pg_database') FROM pg_database d \
         WHERE starts_with(shobj_description(d.oid, 'pg_database'), $1)",
        &[&COMMENT],
    ) else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let note: Option<String> = row.get(1);
        let gone = note
            .as_deref()
            .and_then(|n| n.strip_prefix(COMMENT))
            .and_then(Owner::parse)
            .is_some_and(|o| o.is_gone());
        if gone {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&name)
            ));
        }
    }
}

impl Drop for TempDatabase {
    /// Dropped by the server while the command goes on (it publishes, or
    /// reports), and before the process exits ([`crate::background`]).
    fn drop(&mut self) {
        let db = Database {
            source: self.db.source,
            params: self.db.params.clone(),
            cluster: self.db.cluster.clone(),
            note: None,
        };
        crate::background::spawn(move || {
            let _ = db.drop_database();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_differ_even_from_long_working_names() {
        let long = "a".repeat(80);
        let a = name(&long, "validate");
        let b = name(&long, "validate");
        assert!(a.len() <= NAME_MAX && b.len() <= NAME_MAX, "{a}");
        assert_ne!(a, b);
        assert!(a.starts_with("aaaa") && a.contains("_hop_validate_"));
        let accented = "é".repeat(40);
        let c = name(&accented, "proof");
        assert!(c.len() <= NAME_MAX && c.is_char_boundary(c.len()));
        assert!(name("shop", "proof").starts_with("shop_hop_proof_"));
    }
}
