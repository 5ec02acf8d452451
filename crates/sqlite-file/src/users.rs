//! Who has a database open: the way `fuser` does it (every `/proc/*/fd`
//! link that resolves to the file or one of its sidecars), plus a lock probe
//! (`fcntl(F_GETLK)`, which asks without taking anything) for processes whose
//! `/proc` entries this user cannot read.
//!
//! A lock probe alone is not enough: an idle connection holds no lock, and a
//! connection opened but never used holds none either.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::{sidecar_path, Sidecar};
use serde::Serialize;

/// A process that has the database (or a sidecar) open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub pid: u32,
    /// `/proc/PID/comm`, or `?` where it cannot be read.
    pub name: String,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({})", self.pid, self.name)
    }
}

/// Every other process that has `db`, its `-wal`, `-shm` or `-journal` open
/// or locked. Linux only: elsewhere this is an `Unsupported` error, and the
/// callers refuse rather than guess.
pub fn users(db: &Path) -> io::Result<Vec<User>> {
    if !Path::new("/proc/self/fd").exists() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no /proc: cannot tell which processes have the database open on this system",
        ));
    }
    let mut files = Vec::new();
    for path in [db.to_owned()]
        .into_iter()
        .chain(Sidecar::ALL.iter().map(|&s| sidecar_path(db, s)))
    {
        if let Ok(meta) = std::fs::metadata(&path) {
            files.push((meta.dev(), meta.ino()));
        }
    }
    let me = std::process::id();
    let mut found: BTreeMap<u32, String> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue; // gone, or not ours to read: the lock probe covers it
        };
        for fd in fds.flatten() {
            if let Ok(meta) = std::fs::metadata(fd.path()) {
                if files.contains(&(meta.dev(), meta.ino())) {
                    found.insert(pid, process_name(pid));
                    break;
                }
            }
        }
    }
    for pid in lock_holders(db) {
        if pid != me {
            found.entry(pid).or_insert_with(|| process_name(pid));
        }
    }
    Ok(found.into_iter().map(|(pid, name)| User { pid, name }).collect())
}

fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Pids holding SQLite's locks: the lock bytes of the database file
/// (rollback mode, and the shared lock of WAL readers) and of the `-shm`.
fn lock_holders(db: &Path) -> Vec<u32> {
    const PENDING_BYTE: i64 = 0x4000_0000;
    let mut pids = Vec::new();
    // Opening for reading and closing again is safe here: this process has
    // no SQLite connection to these files, so it drops no lock of its own.
    // Only regular files, opened without blocking: a FIFO must not hang the probe.
    if let Some(file) = open_regular(db) {
        pids.extend(probe(&file, PENDING_BYTE, 512 + 2));
    }
    if let Some(file) = open_regular(&sidecar_path(db, Sidecar::Shm)) {
        pids.extend(probe(&file, 120, 8));
    }
    pids
}

fn open_regular(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    file.metadata().ok()?.is_file().then_some(file)
}

fn probe(file: &File, start: i64, len: i64) -> Option<u32> {
    // SAFETY: a zeroed flock is a valid value to fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as i16;
    lock.l_whence = libc::SEEK_SET as i16;
    lock.l_start = start;
    lock.l_len = len;
    // SAFETY: F_GETLK only reads and fills `lock`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    (rc == 0 && lock.l_type != libc::F_UNLCK as i16 && lock.l_pid > 0).then_some(lock.l_pid as u32)
}
