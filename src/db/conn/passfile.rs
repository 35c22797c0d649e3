//! The password file (`PGPASSFILE`, `~/.pgpass`) and libpq's defaults
//! (socket directory, OS user) (docs/connection.md).

use std::path::{Path, PathBuf};

use super::conninfo::home_dir;

/// The passfile to read: `PGPASSFILE`, else `$HOME/.pgpass`.
pub(super) fn passfile(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    match env("PGPASSFILE").filter(|v| !v.is_empty()) {
        Some(f) => Some(PathBuf::from(f)),
        None => home_dir(env).map(|h| h.join(".pgpass")),
    }
}

/// Whether [`pgpass_lookup`] would skip the passfile because group or
/// others can read it (for hints).
pub fn passfile_too_open(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = passfile(env)?;
    let meta = std::fs::metadata(&path).ok()?;
    (meta.is_file() && meta.permissions().mode() & 0o077 != 0).then_some(path)
}

/// Password lookup in the passfile (`PGPASSFILE` or `$HOME/.pgpass`), as
/// libpq does: lines `host:port:database:username:password`, `*` matching
/// anything, `\:` and `\\` escapes, `#` comments; a socket host (starting
/// with `/`) matches `localhost`. The file is ignored, without error, when
/// it is not a regular file or group or others may access it.
pub fn pgpass_lookup(
    env: &dyn Fn(&str) -> Option<String>,
    host: &str,
    port: u16,
    dbname: &str,
    user: &str,
) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = passfile(env)?;
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    let host = if host.is_empty() || host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    let wanted = [host, port.as_str(), dbname, user];
    text.lines()
        .find_map(|line| pgpass_match(line.trim_end_matches('\r'), &wanted))
}

/// Matches one passfile line against host, port, dbname, user.
pub(super) fn pgpass_match(line: &str, wanted: &[&str; 4]) -> Option<String> {
    if line.starts_with('#') || line.is_empty() {
        return None;
    }
    let mut chars = line.chars();
    for want in wanted {
        // Read one field up to an unescaped ':'.
        let mut field = String::new();
        let mut ended = false;
        while let Some(c) = chars.next() {
            match c {
                '\\' => field.push(chars.next()?),
                ':' => {
                    ended = true;
                    break;
                }
                _ => field.push(c),
            }
        }
        if !ended || (field != "*" && field != *want) {
            return None;
        }
    }
    // The rest of the line is the password.
    let mut password = String::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    password.push(n);
                }
            }
            _ => password.push(c),
        }
    }
    (!password.is_empty()).then_some(password)
}

/// libpq's default socket directory: the first existing of
/// `/var/run/postgresql` (Debian's) and `/tmp` (upstream's).
pub fn default_socket_dir() -> String {
    ["/var/run/postgresql", "/tmp"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
        .unwrap_or("/tmp")
        .to_string()
}

/// Name and home directory of the effective OS user.
pub(super) fn os_user() -> Option<(String, PathBuf)> {
    use std::ffi::CStr;
    use std::os::unix::ffi::OsStrExt;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed `passwd` is a valid value of this plain C struct; it is
    // only read after getpwuid_r reported success.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the
    // buffer's real size; getpwuid_r is the thread-safe variant.
    let rc = unsafe {
        libc::getpwuid_r(
            libc::geteuid(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name and pw_dir point to NUL-terminated strings
    // inside `buf`, which is still alive.
    let name = unsafe { CStr::from_ptr(pwd.pw_name) }
        .to_string_lossy()
        .into_owned();
    let home = if pwd.pw_dir.is_null() {
        PathBuf::new()
    } else {
        // SAFETY: as above.
        let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
        PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes()))
    };
    Some((name, home))
}
