//! The origin lock of a release (docs/releases.md, "The merge queue"):
//! `merge`, `promote` and `release sync` of one release take turns through
//! a ref on origin, `refs/hop/locks/X.Y.Z`, taken, renewed and released by
//! compare-and-swap pushes. The ref points at a commit whose message names
//! the holder (user, host, command, pid), when it started and when it
//! expires; a thread renews the expiry while the command runs, so a long
//! test suite keeps the lock, and a killed command's lock expires and is
//! taken over. The lock saves work (each merge validates once, against the
//! head it will push onto); safety still rests on the compare-and-swap
//! pushes of the commands themselves.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::git::Git;
use crate::origin::{Origin, REMOTE, RefUpdate};

/// Where the locks live on origin.
pub const LOCKS: &str = "refs/hop/locks/";
/// How long a lock lives without renewal, by default (`hop.lockExpiry`).
pub const DEFAULT_EXPIRY: Duration = Duration::from_secs(120);
/// How long a command waits for the lock, by default (`--wait`).
pub const DEFAULT_WAIT: u64 = 600;

/// The lock ref of release `version`.
pub fn lock_ref(version: &str) -> String {
    format!("{LOCKS}{version}")
}

/// Who holds a lock, as its commit message says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub owner: String,
    pub command: String,
    pub pid: String,
    pub started: u64,
    pub expires: u64,
}

impl Holder {
    fn message(&self, version: &str) -> String {
        format!(
            "[hop] lock of release {version}\n\nowner: {}\ncommand: {}\npid: {}\nstarted: {}\nexpires: {}\n{}",
            self.owner,
            self.command,
            self.pid,
            self.started,
            self.expires,
            crate::origin::unique_trailer().trim_start()
        )
    }

    /// Reads a lock commit's message; `None` when it is not one.
    pub fn parse(message: &str) -> Option<Holder> {
        let field = |key: &str| {
            message
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
                .map(str::to_string)
        };
        Some(Holder {
            owner: field("owner")?,
            command: field("command").unwrap_or_default(),
            pid: field("pid").unwrap_or_default(),
            started: field("started")?.parse().ok()?,
            expires: field("expires")?.parse().ok()?,
        })
    }

    /// Whether the holder is a process of this host (same user) that no
    /// longer runs: killed before it released its lock.
    pub fn gone(&self) -> bool {
        self.owner == owner()
            && !self.pid.is_empty()
            && self.pid != std::process::id().to_string()
            && Path::new("/proc/self").exists()
            // A zombie (killed, not reaped yet) is gone too.
            && self
                .pid
                .parse()
                .is_ok_and(|pid| !crate::owner::process_alive(pid, None))
    }

    pub fn expired(&self, now: u64) -> bool {
        self.expires <= now
    }

    /// "ann@host (git hop-patch merge, pid 42) since 12:00:03 UTC".
    pub fn describe(&self) -> String {
        format!(
            "{} ({}, pid {}) since {}",
            self.owner,
            self.command,
            self.pid,
            utc_time(self.started)
        )
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS UTC` of a Unix time.
pub fn utc_time(secs: u64) -> String {
    let (y, m, d, h, mi, s) = crate::utc::civil(secs as i64);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

fn owner() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

/// A lock commit: no parent, the empty tree, the holder in its message
/// (and git-hop as its author, so that no identity needs to be set up).
fn lock_commit(git: &Git, holder: &Holder, version: &str) -> Result<String> {
    git.root_commit_as("git-hop", "git-hop@localhost", &holder.message(version))
}

/// The holder of the lock `oid` on origin (its commit fetched when this
/// clone does not have it).
pub fn holder_of(git: &Git, name: &str, oid: &str) -> Option<Holder> {
    let read = || git.run(&["log", "-1", "--format=%B", oid]).ok();
    let text = read().or_else(|| {
        git.run(&["fetch", "-q", REMOTE, &format!("+{name}:{name}")])
            .ok()?;
        read()
    })?;
    Holder::parse(&text)
}

/// A lock this process holds; renewed until [`Lock::release_update`] or
/// drop. Dropping it without having published its release deletes it on
/// origin (best effort: otherwise it expires).
pub struct Lock {
    git: Git,
    name: String,
    current: Arc<Mutex<String>>,
    lost: Arc<AtomicBool>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    released: bool,
}

/// How to wait for and hold a lock.
pub struct Options<'a> {
    /// The release, `X.Y.Z`.
    pub version: &'a str,
    /// What the holder runs, shown to those who wait.
    pub command: &'a str,
    /// How long to wait for a lock someone else holds.
    pub wait: Duration,
    /// How long the lock lives without renewal.
    pub expiry: Duration,
}

impl Lock {
    /// Takes the lock of a release on origin, waiting while another command
    /// holds it (saying who, once), taking over an expired one.
    pub fn acquire(git: &Git, origin: &Origin, opts: &Options) -> Result<Lock> {
        let name = lock_ref(opts.version);
        let started = now();
        let deadline = Instant::now() + opts.wait;
        let mut told: Option<String> = None;
        let mut pause = Duration::from_millis(200);
        let mut expect: Option<String> = None;
        let mut retried_free = false;
        loop {
            let holder = Holder {
                owner: owner(),
                command: opts.command.to_string(),
                pid: std::process::id().to_string(),
                started,
                expires: now() + opts.expiry.as_secs(),
            };
            let commit = lock_commit(git, &holder, opts.version)?;
            let update = match &expect {
                None => RefUpdate::create(name.clone(), &commit),
                Some(old) => RefUpdate::update(name.clone(), &commit, old),
            };
            let pushed = origin.push(&[update]);
            if pushed.is_ok() {
                if let Some(old) = &expect {
                    eprintln!(
                        "git-hop: took over the expired lock of release {} ({old})",
                        opts.version
                    );
                }
                return Ok(Lock::hold(git, name, commit, holder, opts));
            }
            // Who holds it?
            expect = None;
            let Some(oid) = origin.remote_ref(&name)? else {
                // Released meanwhile: try again, once; a push refused with
                // no lock there is refused for another reason.
                if !retried_free {
                    retried_free = true;
                    continue;
                }
                return Err(pushed
                    .err()
                    .unwrap_or_else(|| Error::new("cannot take the lock"))
                    .context(format!("cannot take the lock of release {}", opts.version))
                    .hint("nothing was changed; check your access to origin, then run the command again"));
            };
            retried_free = false;
            match holder_of(git, &name, &oid) {
                Some(h) if !h.expired(now()) && !h.gone() => {
                    let who = h.describe();
                    if told.as_deref() != Some(who.as_str()) {
                        eprintln!(
                            "git-hop: release {} is locked by {who}; waiting for it (up to {} s)",
                            opts.version,
                            deadline.saturating_duration_since(Instant::now()).as_secs()
                        );
                        told = Some(who.clone());
                    }
                    if Instant::now() >= deadline {
                        return Err(Error::new(format!(
                            "release {} is still locked by {who}, after waiting {} s; nothing was changed",
                            opts.version,
                            opts.wait.as_secs()
                        ))
                        .hint(format!(
                            "wait longer (--wait SECONDS), or, if that command is gone, git hop-release unlock {}",
                            opts.version
                        )));
                    }
                    std::thread::sleep(
                        pause.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Some(h) => {
                    let why = if h.gone() {
                        "is gone (its process ended)".to_string()
                    } else {
                        format!("expired at {}", utc_time(h.expires))
                    };
                    eprintln!(
                        "git-hop: the lock of release {} held by {} {why}: taking it over",
                        opts.version,
                        h.describe(),
                    );
                    expect = Some(oid);
                }
                // Not a lock git-hop made: treat as expired.
                None => expect = Some(oid),
            }
        }
    }

    fn hold(git: &Git, name: String, commit: String, holder: Holder, opts: &Options) -> Lock {
        let current = Arc::new(Mutex::new(commit));
        let lost = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            // Git holds a gix handle that stays on its thread: the renewer
            // opens its own.
            let (dir, name, version) = (
                git.dir().to_path_buf(),
                name.clone(),
                opts.version.to_string(),
            );
            let (current, lost, expiry) = (current.clone(), lost.clone(), opts.expiry);
            let mut holder = holder;
            std::thread::spawn(move || {
                let Ok(git) = Git::new(&dir) else { return };
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(expiry / 3) {
                    let (Ok(Some(origin)), Ok(old)) =
                        (Origin::of(&git), current.lock().map(|g| g.clone()))
                    else {
                        return;
                    };
                    holder.expires = now() + expiry.as_secs();
                    let Ok(new) = lock_commit(&git, &holder, &version) else {
                        return;
                    };
                    if origin
                        .push(&[RefUpdate::update(name.clone(), &new, &old)])
                        .is_ok()
                    {
                        if let Ok(mut g) = current.lock() {
                            *g = new;
                        }
                    } else {
                        lost.store(true, Ordering::SeqCst);
                        eprintln!(
                            "git-hop: warning: the lock of release {version} was broken or taken over; going on (the final push is still a compare-and-swap)"
                        );
                        return;
                    }
                }
            })
        };
        Lock {
            git: git.clone(),
            name,
            current,
            lost,
            stop: Some(stop),
            renewer: Some(renewer),
            released: false,
        }
    }

    fn stop_renewing(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
    }

    /// Stops renewing and returns the update that releases the lock, to
    /// ride in the command's final atomic push; `None` when the lock was
    /// lost (broken or taken over): the push then goes without it.
    pub fn release_update(&mut self) -> Option<RefUpdate> {
        self.stop_renewing();
        if self.lost.load(Ordering::SeqCst) {
            return None;
        }
        let current = self.current.lock().ok()?.clone();
        Some(RefUpdate::delete(self.name.clone(), &current))
    }

    /// The final push carried the release: nothing left to do on drop.
    pub fn published(&mut self) {
        self.released = true;
    }

    /// Whether origin still holds this lock as ours.
    pub fn still_ours(&self, origin: &Origin) -> bool {
        let Ok(current) = self.current.lock().map(|g| g.clone()) else {
            return false;
        };
        origin.remote_ref(&self.name).ok().flatten().as_deref() == Some(current.as_str())
    }

    /// Pushes `updates` with the lock's release folded in (one atomic
    /// push). When only the lock's part was refused (it was broken or
    /// taken over meanwhile), pushes the updates alone.
    pub fn push_with_release(&mut self, origin: &Origin, updates: &[RefUpdate]) -> Result<()> {
        let mut all = updates.to_vec();
        if let Some(u) = self.release_update() {
            all.push(u);
        }
        match origin.push(&all) {
            Ok(()) => {
                self.published();
                Ok(())
            }
            Err(_) if all.len() > updates.len() && !self.still_ours(origin) => {
                origin.push(updates)?;
                self.published();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop_renewing();
        if self.released || self.lost.load(Ordering::SeqCst) {
            return;
        }
        if let (Ok(Some(origin)), Ok(current)) = (
            Origin::of(&self.git),
            self.current.lock().map(|g| g.clone()),
        ) {
            let _ = origin.push(&[RefUpdate::delete(self.name.clone(), &current)]);
        }
    }
}

/// The final push of a command that may hold a lock: with the lock's
/// release folded in when it does.
pub fn push(lock: Option<&mut Lock>, origin: &Origin, updates: &[RefUpdate]) -> Result<()> {
    match lock {
        Some(l) => l.push_with_release(origin, updates),
        None => origin.push(updates),
    }
}

/// The lock expiry of a clone: `hop.lockExpiry` (seconds), else the default.
pub fn expiry(git: &Git) -> Duration {
    git.config_value("hop.lockExpiry")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s >= 3)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_EXPIRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_round_trips_through_its_message() {
        let h = Holder {
            owner: "ann@box".into(),
            command: "git hop-patch merge".into(),
            pid: "42".into(),
            started: 1_700_000_000,
            expires: 1_700_000_120,
        };
        assert_eq!(Holder::parse(&h.message("0.1.0")), Some(h.clone()));
        assert!(h.expired(1_700_000_120) && !h.expired(1_700_000_119));
        assert_eq!(Holder::parse("[hop] something else"), None);
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc_time(0), "1970-01-01 00:00:00 UTC");
        assert!(
            h.describe()
                .contains("ann@box (git hop-patch merge, pid 42) since 2023-11-14")
        );
    }
}
