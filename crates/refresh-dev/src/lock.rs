//! One run at a time per database: a lock file beside it (`DEV.refresh-dev.lock`).
//!
//! The lock is an `flock` on that file, which the kernel releases when the
//! process dies however it dies (`kill -9` included), and the file holds the
//! holder's pid and start time so a second run can say who holds it. The file
//! is removed when the run ends. A lock file whose `flock` is free and whose
//! pid is gone is a killed run's: the next run takes it over, and that is what
//! allows it to remove the killed run's leftovers.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// The lock file's name for `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".refresh-dev.lock");
    sqlite_file::fs::parent_dir(db).join(name)
}

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
    /// The lock file was there, left by a run that is gone.
    pub took_over: Option<String>,
}

/// Who holds a lock, as its file says.
///
/// Only reads: a plan must never take the lock, even for an instant, or a
/// run starting at that instant would refuse. The recorded pid tells.
pub fn holder(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lock_path(db)).ok()?;
    (recorded_pid(&text) == Some(std::process::id()) || pid_alive(&text)).then(|| describe(&text))
}

fn describe(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        "another run".to_owned()
    } else {
        text.replace('\n', ", ")
    }
}

/// The pid a lock file's text (`pid N ...`) records.
fn recorded_pid(text: &str) -> Option<u32> {
    text.split_whitespace().skip_while(|w| *w != "pid").nth(1)?.parse().ok()
}

/// Whether the pid recorded in a lock file's text is a live process other
/// than this one (a lock file naming this process's pid is a dead run's
/// whose pid was reused: this process is new).
fn pid_alive(text: &str) -> bool {
    let Some(pid) = recorded_pid(text) else {
        return false;
    };
    pid != std::process::id() && sqlite_file::fs::process_alive(pid)
}

/// `flock(LOCK_EX | LOCK_NB)`: true when taken.
fn try_flock(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a file descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

impl Lock {
    /// Takes the lock for `db`, for the command `what`, or says who holds it.
    pub fn take(db: &Path, what: &str) -> Result<Lock, Error> {
        let path = lock_path(db);
        let io_err = |e: io::Error| Error::Io {
            path: path.clone(),
            action: "take the lock file",
            source: e,
        };
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
                .map_err(|e| match e.kind() {
                    io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                        path: path.clone(),
                        action: "create the lock file",
                    },
                    _ => io_err(e),
                })?;
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            if !try_flock(&file).map_err(io_err)? || pid_alive(&text) {
                return Err(Error::Locked {
                    db: db.to_owned(),
                    lock: path.clone(),
                    holder: describe(&text),
                });
            }
            // The file may have been removed by its holder between our open
            // and our flock: then this lock is on a name nobody sees.
            let same = match (file.metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            let took_over = (!text.trim().is_empty()).then(|| describe(&text));
            let me = format!(
                "pid {} refresh-dev {what}\nstarted {}\n",
                std::process::id(),
                sqlite_file::fs::utc_stamp(std::time::SystemTime::now())
            );
            file.set_len(0).map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            file.write_all(me.as_bytes()).map_err(io_err)?;
            return Ok(Lock { file, path, took_over });
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Remove the name while still holding the flock, so a run waiting to
        // open it never takes a lock on a removed file unnoticed.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_the_file_goes_with_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dev.db");
        let first = Lock::take(&db, "run").expect("first");
        let err = Lock::take(&db, "run").expect_err("second");
        assert!(
            err.to_string().contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(holder(&db).is_some());
        drop(first);
        assert!(!lock_path(&db).exists());
        assert!(holder(&db).is_none());
    }

    #[test]
    fn a_dead_runs_lock_file_is_taken_over() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dev.db");
        // pid_max is at most 2^22: this pid cannot exist.
        std::fs::write(lock_path(&db), "pid 99999999 refresh-dev run\n").expect("write");
        let lock = Lock::take(&db, "run").expect("take over");
        assert!(lock.took_over.as_deref().is_some_and(|t| t.contains("99999999")));
    }
}
