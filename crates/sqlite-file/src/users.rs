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
    let files = files_of(db);
    let me = std::process::id();
    let mut found: BTreeMap<u32, String> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        // Gone, or not ours to read: the lock probe covers it.
        if pid != me && holds(&entry.path(), &files) {
            found.insert(pid, process_name(pid));
        }
    }
    for pid in lock_holders(db) {
        if pid != me {
            found.entry(pid).or_insert_with(|| process_name(pid));
        }
    }
    Ok(found.into_iter().map(|(pid, name)| User { pid, name }).collect())
}

/// Whether this process itself still has a `-wal` or `-shm` of `db` open:
/// another SQLite connection of its own that has read `db` in WAL mode, and
/// so may hold POSIX locks on it, which closing any other handle on `db`
/// would drop. (A plain handle on `db` holds neither sidecar nor lock.)
pub fn sidecars_held_here(db: &Path) -> bool {
    let sidecars = ids([Sidecar::Wal, Sidecar::Shm].iter().map(|&s| sidecar_path(db, s)));
    holds(Path::new("/proc/self"), &sidecars)
}

/// The (device, inode) of `db` and of each sidecar that exists.
fn files_of(db: &Path) -> Vec<(u64, u64)> {
    ids([db.to_owned()]
        .into_iter()
        .chain(Sidecar::ALL.iter().map(|&s| sidecar_path(db, s))))
}

/// The (device, inode) of each of `paths` that exists.
fn ids(paths: impl Iterator<Item = std::path::PathBuf>) -> Vec<(u64, u64)> {
    paths
        .filter_map(|path| std::fs::metadata(path).ok())
        .map(|meta| (meta.dev(), meta.ino()))
        .collect()
}

/// Whether the process at `/proc/PID` has an fd on one of `files`.
fn holds(proc_dir: &Path, files: &[(u64, u64)]) -> bool {
    let Ok(fds) = std::fs::read_dir(proc_dir.join("fd")) else {
        return false;
    };
    fds.flatten()
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .any(|meta| files.contains(&(meta.dev(), meta.ino())))
}

fn process_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// Where SQLite's lock bytes start in a database file: the pending byte,
/// then the reserved byte, then 510 shared bytes.
pub(crate) const PENDING_BYTE: i64 = 0x4000_0000;
/// How many lock bytes SQLite uses from [`PENDING_BYTE`] on.
pub(crate) const LOCK_BYTES: i64 = 512 + 2;

/// Pids holding SQLite's locks: the lock bytes of the database file
/// (rollback mode, and the shared lock of WAL readers) and of the `-shm`.
fn lock_holders(db: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    // Opening for reading and closing again is safe here: this process has
    // no SQLite connection to these files, so it drops no lock of its own.
    // Only regular files, opened without blocking: a FIFO must not hang the probe.
    if let Some(file) = open_regular(db) {
        pids.extend(probe(&file, PENDING_BYTE, LOCK_BYTES));
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

/// A POSIX write lock on `len` bytes from `start`, as `fcntl` takes it.
pub(crate) fn write_lock(start: i64, len: i64) -> libc::flock {
    // SAFETY: a zeroed flock is a valid value to fill in.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as i16;
    lock.l_whence = libc::SEEK_SET as i16;
    lock.l_start = start;
    lock.l_len = len;
    lock
}

fn probe(file: &File, start: i64, len: i64) -> Option<u32> {
    let mut lock = write_lock(start, len);
    // SAFETY: F_GETLK only reads and fills `lock`.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut lock) };
    (rc == 0 && lock.l_type != libc::F_UNLCK as i16 && lock.l_pid > 0).then_some(lock.l_pid as u32)
}
