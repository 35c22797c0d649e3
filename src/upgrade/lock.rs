//! The production lock (docs/production.md): one session-level advisory lock per
//! database, held by `upgrade` and `restore` for their whole run on a
//! connection of their own. It is taken with `pg_try_advisory_lock`,
//! polled, never with the blocking `pg_advisory_lock`: a waiting session
//! holds no snapshot and no transaction, so it can never deadlock with a
//! `CREATE INDEX CONCURRENTLY` of the upgrade it waits for. The lock goes
//! away with its connection (end of the process, kill -9 included).

use std::time::{Duration, Instant};

use crate::db::conn::{self, ConnParams};
use crate::db::database::sql_error;
use crate::error::{Error, Result};

/// The advisory lock key of git-hop's production operations ("hopUpgrd").
pub const KEY: i64 = 0x686f_7055_7067_7264;

/// How often a waiting run asks again.
const POLL: Duration = Duration::from_millis(200);

/// A held lock: dropping it (or the process ending) releases it.
pub struct Lock {
    client: postgres::Client,
}

impl Lock {
    /// Takes the lock on the database of `params`, waiting up to `wait`;
    /// `what` names the operation in messages ("upgrade").
    pub fn acquire(params: &ConnParams, wait: Duration, what: &str) -> Result<Lock> {
        let mut client = conn::connect(params)?;
        let started = Instant::now();
        loop {
            let row = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&KEY])
                .map_err(|e| sql_error("cannot take the production lock", e))?;
            if row.get::<_, bool>(0) {
                return Ok(Lock { client });
            }
            if started.elapsed() >= wait {
                let holder = holder(&mut client).unwrap_or_default();
                return Err(Error::new(format!(
                    "another git-hop upgrade or restore is running on database {}{holder}: waited {} s for it",
                    params.dbname.as_deref().unwrap_or(""),
                    wait.as_secs()
                ))
                .hint(format!(
                    "let it finish, then run git hop-release {what} again (--wait SECONDS waits longer); nothing was changed"
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The connection holding the lock (for reads in the locked section).
    pub fn client(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

/// " (session pid 123, git-hop, since …)" for the session holding the lock.
fn holder(client: &mut postgres::Client) -> Result<String> {
    let row = client
        .query_opt(
            "SELECT a.pid, coalesce(a.application_name, ''), to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
             FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
             AND l.classid = ($1 >> 32)::oid AND l.objid = ($1 & 4294967295)::oid AND l.objsubid = 1 LIMIT 1",
            &[&KEY],
        )
        .map_err(|e| sql_error("cannot read pg_locks", e))?;
    Ok(match row {
        Some(r) => format!(
            " (session pid {}, {}, connected since {} UTC)",
            r.get::<_, i32>(0),
            r.get::<_, String>(1),
            r.get::<_, String>(2)
        ),
        None => String::new(),
    })
}
