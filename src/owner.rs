//! Who made a temporary thing (a validation database, a temporary worktree)
//! and whether that run is gone, so that a later run removes only its own
//! host's leftovers (docs/safety.md). The host is the machine's boot, its
//! host name and the PID namespace: two containers, or a process under
//! `unshare -p`, on one machine are different hosts, since their pids mean
//! different processes. A run is gone when its pid is gone, is a zombie not
//! yet reaped, or now names another process (its start time differs).

use std::fmt;

/// The run that owns a temporary thing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `hostname/pid-namespace/boot-id`.
    pub host: String,
    pub pid: u32,
    /// The process's start time, in clock ticks after boot (/proc/PID/stat).
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn me() -> Owner {
        let pid = std::process::id();
        Owner {
            host: host_id(),
            pid,
            start: start_time(pid).unwrap_or(0),
        }
    }

    /// Parses what [`Owner`]'s `Display` wrote.
    pub fn parse(s: &str) -> Option<Owner> {
        let mut host = None;
        let mut pid = None;
        let mut start = None;
        for part in s.split_whitespace() {
            if let Some(v) = part.strip_prefix("host=") {
                host = Some(v.to_string());
            } else if let Some(v) = part.strip_prefix("pid=") {
                pid = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("start=") {
                start = v.parse().ok();
            }
        }
        Some(Owner {
            host: host?,
            pid: pid?,
            start: start?,
        })
    }

    /// Whether this owner's run is over: on this host only (another host's
    /// runs are never judged from here).
    pub fn is_gone(&self) -> bool {
        self.host == host_id() && !process_alive(self.pid, Some(self.start))
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host={} pid={} start={}",
            self.host, self.pid, self.start
        )
    }
}

/// Whether process `pid` runs (a zombie does not), and, given `start`, is
/// still the process that started then.
pub fn process_alive(pid: u32, start: Option<u64>) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The command name, in parentheses, may hold spaces: fields follow the
    // last ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return false;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3), fields[19] the start time (field 22).
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | None) {
        return false;
    }
    match start {
        Some(s) => fields.get(19).and_then(|v| v.parse::<u64>().ok()) == Some(s),
        None => true,
    }
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// `hostname/pid-namespace/boot-id` of this process.
pub fn host_id() -> String {
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let pidns = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|l| {
            let s = l.to_string_lossy().into_owned();
            s.strip_prefix("pid:[")
                .and_then(|x| x.strip_suffix(']'))
                .map(str::to_string)
        })
        .unwrap_or_else(|| "0".into());
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().chars().take(8).collect::<String>())
        .unwrap_or_else(|_| "0".into());
    // No spaces: the owner is written as space-separated fields.
    format!("{hostname}/{pidns}/{boot}").replace(char::is_whitespace, "_")
}

/// Eight random hexadecimal digits (from the kernel's generator).
pub fn random_hex() -> String {
    use std::io::Read;
    let mut b = [0u8; 4];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // Not random, but unique enough within this machine and time.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b = (t ^ std::process::id().rotate_left(16)).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_its_owner_round_trips() {
        let me = Owner::me();
        assert!(me.start > 0);
        assert!(!me.is_gone());
        assert_eq!(Owner::parse(&me.to_string()), Some(me.clone()));
        // The same pid with another start time is another process.
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(reused.is_gone());
        // Another host's run is never judged from here.
        let elsewhere = Owner {
            host: "elsewhere/1/2".into(),
            pid: 999_999_999,
            ..me
        };
        assert!(!elsewhere.is_gone());
        assert_eq!(random_hex().len(), 8);
        assert_ne!(random_hex(), random_hex());
    }

    #[test]
    fn a_zombie_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        // Not reaped yet: a zombie once it exited.
        let started = std::time::Instant::now();
        while process_alive(pid, None) {
            assert!(started.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        child.wait().unwrap();
    }
}
