//! A lock held by this process on a file (`flock`): released when the
//! guard is dropped, and by the kernel when the process dies, even by
//! `kill -9`, so a killed run never leaves a lock behind.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, Result};

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct LockFile {
    _file: fs::File,
}

fn open(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io("cannot open the lock file", path, e))
}

fn flock(file: &fs::File, path: &Path, op: libc::c_int) -> Result<bool> {
    loop {
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(Error::io("cannot lock", path, err)),
        }
    }
}

impl LockFile {
    /// Waits for the lock on `path` (created when missing).
    pub fn acquire(path: &Path) -> Result<LockFile> {
        let file = open(path)?;
        flock(&file, path, libc::LOCK_EX)?;
        Ok(LockFile { _file: file })
    }

    /// The lock on `path` if nobody holds it, without waiting.
    pub fn try_acquire(path: &Path) -> Result<Option<LockFile>> {
        let file = open(path)?;
        Ok(flock(&file, path, libc::LOCK_EX | libc::LOCK_NB)?.then_some(LockFile { _file: file }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_not_taken_twice_and_is_free_once_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lock");
        let held = LockFile::try_acquire(&p).unwrap().expect("free at first");
        assert!(LockFile::try_acquire(&p).unwrap().is_none());
        drop(held);
        assert!(LockFile::try_acquire(&p).unwrap().is_some());
        let _blocking = LockFile::acquire(&p).unwrap();
    }
}
