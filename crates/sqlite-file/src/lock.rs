//! One run at a time per database: a lock file beside it (`DB.refresh-dev.lock`),
//! which is also the run's record of what it made.
//!
//! The lock is an `flock` on that file, which the kernel releases when the
//! process dies however it dies (`kill -9` included). The file holds the
//! holder's pid and start time, so a second run can say who holds it, and
//! one line per file the run is about to make (`made PATH`) or per database
//! it is about to open in a way that may leave `-wal`/`-shm` beside it
//! (`reads PATH`). Each line is written and synced *before* the file is made.
//!
//! A lock file whose `flock` is free and whose pid is gone is a killed run's:
//! the next run takes it over and inherits its record ([`Lock::inherited`]),
//! which is the proof that the files named there are a run's own to remove
//! (and a chain of killed runs is cleaned up by the next one that finishes,
//! since the record is carried over). The lock file is never followed
//! through a link, and it is removed when the run ends.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sidefile::{self, Found, SideFileError};

/// The lock file's name for `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".refresh-dev.lock");
    crate::fs::parent_dir(db).join(name)
}

/// What a lock file records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// `pid N refresh-dev COMMAND, started STAMP`, or empty.
    pub holder: String,
    /// Files the run made (or was about to make), absolute.
    pub made: Vec<PathBuf>,
    /// Databases the run opened where their `-wal`/`-shm` did not exist.
    pub reads: Vec<PathBuf>,
    pid: Option<u32>,
}

impl Record {
    fn parse(text: &str) -> Record {
        let mut record = Record::default();
        let mut holder = Vec::new();
        for line in text.lines() {
            if let Some(p) = line.strip_prefix("made ") {
                record.made.push(PathBuf::from(unescape(p)));
            } else if let Some(p) = line.strip_prefix("reads ") {
                record.reads.push(PathBuf::from(unescape(p)));
            } else if !line.trim().is_empty() {
                holder.push(line.trim().to_owned());
            }
        }
        record.pid = text
            .split_whitespace()
            .skip_while(|w| *w != "pid")
            .nth(1)
            .and_then(|p| p.parse().ok());
        record.holder = holder.join(", ");
        record
    }

    /// The holder in words (`another run` when the file says nothing).
    pub fn describe(&self) -> String {
        if self.holder.is_empty() {
            "another run".to_owned()
        } else {
            self.holder.clone()
        }
    }

    /// Whether the recorded pid is a live process other than this one (a
    /// lock file naming this process's pid is a dead run's whose pid was
    /// reused: this process is new).
    fn alive(&self) -> bool {
        self.pid
            .is_some_and(|pid| pid != std::process::id() && crate::fs::process_alive(pid))
    }

    /// Whether `path` is among the files this record says its run made.
    pub fn made_here(&self, path: &Path) -> bool {
        let path = absolute(path);
        self.made.contains(&path)
    }
}

/// The state of `db`'s lock, as its file says, without taking it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No lock file.
    Free,
    /// A live run holds it.
    Held(String),
    /// A killed run's lock: its record is inherited by the next run.
    Dead(Record),
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{}: another refresh-dev holds {} ({holder}); wait for it, or remove that file if no such run exists", db.display(), lock.display())]
    Held { db: PathBuf, lock: PathBuf, holder: String },
    #[error(transparent)]
    SideFile(#[from] SideFileError),
}

/// Reads `db`'s lock file without taking the lock: what a plan predicts,
/// and how a run finds a killed run's record before it takes the lock over.
///
/// Only reads: a plan must never take the lock, even for an instant, or a
/// run starting at that instant would refuse. The recorded pid tells.
pub fn state(db: &Path) -> Result<State, SideFileError> {
    let path = lock_path(db);
    match sidefile::look(&path).map_err(|e| io_error(&path, "stat", e))? {
        Found::Nothing => return Ok(State::Free),
        Found::Link => return Err(SideFileError::Link(path)),
        Found::Other(kind) => return Err(SideFileError::NotRegular { path, kind }),
        Found::Regular(_) => {}
    }
    let mut text = String::new();
    match sidefile::open_existing(&path, false) {
        Ok(mut f) => {
            let _ = f.read_to_string(&mut text);
        }
        Err(SideFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => return Ok(State::Free),
        Err(e) => return Err(e),
    }
    let record = Record::parse(&text);
    Ok(if record.pid == Some(std::process::id()) || record.alive() {
        State::Held(record.describe())
    } else {
        State::Dead(record)
    })
}

/// A held lock; released (and its file removed) on drop.
#[derive(Debug)]
pub struct Lock {
    file: File,
    pub path: PathBuf,
    /// The lock file was there, left by a run that is gone: its record.
    pub inherited: Option<Record>,
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

fn io_error(path: &Path, action: &'static str, source: io::Error) -> SideFileError {
    SideFileError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// `path` made absolute without resolving links (a side file's own name).
pub fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

fn escape(path: &Path) -> String {
    path.to_string_lossy().replace('%', "%25").replace('\n', "%0A")
}

fn unescape(text: &str) -> String {
    text.replace("%0A", "\n").replace("%25", "%")
}

impl Lock {
    /// Takes the lock for `db`, for the command `what`, or says who holds it.
    /// A killed run's record is inherited, and kept in the file, so that it
    /// survives this run being killed too.
    pub fn take(db: &Path, what: &str) -> Result<Lock, LockError> {
        let path = lock_path(db);
        loop {
            match sidefile::look(&path).map_err(|e| io_error(&path, "stat", e))? {
                Found::Link => return Err(SideFileError::Link(path).into()),
                Found::Other(kind) => return Err(SideFileError::NotRegular { path, kind }.into()),
                Found::Nothing | Found::Regular(_) => {}
            }
            let mut file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
                .open(&path)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP) => SideFileError::Link(path.clone()),
                    _ => io_error(&path, "open the lock file", e),
                })?;
            let meta = file.metadata().map_err(|e| io_error(&path, "stat", e))?;
            if !meta.is_file() {
                return Err(SideFileError::NotRegular {
                    path,
                    kind: sidefile::kind_of(&meta.file_type()),
                }
                .into());
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let record = Record::parse(&text);
            if !try_flock(&file).map_err(|e| io_error(&path, "flock", e))? || record.alive() {
                return Err(LockError::Held {
                    db: db.to_owned(),
                    lock: path.clone(),
                    holder: record.describe(),
                });
            }
            // The file may have been removed by its holder between our open
            // and our flock: then this lock is on a name nobody sees.
            let same = match std::fs::symlink_metadata(&path) {
                Ok(b) => meta.ino() == b.ino() && meta.dev() == b.dev(),
                Err(_) => false,
            };
            if !same {
                continue;
            }
            let inherited = (!text.trim().is_empty()).then_some(record);
            let mut me = format!(
                "pid {} refresh-dev {what}\nstarted {}\n",
                std::process::id(),
                crate::fs::utc_stamp(std::time::SystemTime::now())
            );
            for made in inherited.iter().flat_map(|r| &r.made) {
                me.push_str(&format!("made {}\n", escape(made)));
            }
            for reads in inherited.iter().flat_map(|r| &r.reads) {
                me.push_str(&format!("reads {}\n", escape(reads)));
            }
            let write = |file: &mut File, text: &str| -> io::Result<()> {
                file.set_len(0)?;
                file.rewind()?;
                file.write_all(text.as_bytes())?;
                file.sync_data()
            };
            if let Err(e) = write(&mut file, &me) {
                // A full disk: put back the record found (its truncation
                // freed the room for it), or take away the name the run
                // cannot use.
                if text.trim().is_empty() {
                    drop(Lock {
                        file,
                        path: path.clone(),
                        inherited: None,
                    });
                } else {
                    let _ = write(&mut file, &text);
                }
                return Err(io_error(&path, "write the lock file", e).into());
            }
            return Ok(Lock { file, path, inherited });
        }
    }

    fn append(&mut self, line: String) -> Result<(), SideFileError> {
        let path = self.path.clone();
        let write = |file: &mut File| -> io::Result<()> {
            file.seek(io::SeekFrom::End(0))?;
            file.write_all(line.as_bytes())?;
            file.sync_data()
        };
        write(&mut self.file).map_err(|e| io_error(&path, "write the lock file", e))
    }

    /// Records, before it is made, that this run makes `path` (and so the
    /// sidecars SQLite keeps beside it): a later run may remove it if this
    /// one is killed.
    pub fn record_made(&mut self, path: &Path) -> Result<(), SideFileError> {
        self.append(format!("made {}\n", escape(&absolute(path))))
    }

    /// Records, before it is opened, that this run opens `db` whose `-wal`
    /// and `-shm` do not exist: if the run is killed while it has `db`
    /// open, a later run may remove the empty `-wal` and the `-shm` it left.
    pub fn record_reads(&mut self, db: &Path) -> Result<(), SideFileError> {
        self.append(format!("reads {}\n", escape(&absolute(db))))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Remove the name while still holding the flock, so a run waiting to
        // open it never takes a lock on a removed file unnoticed; and only
        // if the name is still this file.
        let ours = match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
            _ => false,
        };
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
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
        assert!(matches!(state(&db), Ok(State::Held(_))));
        drop(first);
        assert!(!lock_path(&db).exists());
        assert_eq!(state(&db).expect("state"), State::Free);
    }

    #[test]
    fn a_dead_runs_record_is_inherited_and_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dev.db");
        let staging = dir.path().join(".dev.refresh-staging.db");
        // pid_max is at most 2^22: this pid cannot exist.
        std::fs::write(
            lock_path(&db),
            format!("pid 99999999 refresh-dev run\nmade {}\n", staging.display()),
        )
        .expect("write");
        let State::Dead(record) = state(&db).expect("state") else {
            panic!("a dead run's lock")
        };
        assert!(record.made_here(&staging));
        let mut lock = Lock::take(&db, "run").expect("take over");
        let inherited = lock.inherited.clone().expect("inherited");
        assert!(inherited.holder.contains("99999999"));
        assert!(inherited.made_here(&staging));
        lock.record_reads(Path::new("/srv/prod.db")).expect("record");
        let text = std::fs::read_to_string(lock_path(&db)).expect("read");
        assert!(text.contains(&format!("made {}", staging.display())), "{text}");
        assert!(text.contains("reads /srv/prod.db"), "{text}");
        // Killed in turn: the next run inherits both runs' records.
        std::mem::forget(lock);
    }

    #[test]
    fn a_link_at_the_lock_files_name_is_never_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("dev.db");
        let prod = dir.path().join("prod.db");
        std::fs::write(&prod, b"PROD's bytes").expect("write");
        std::os::unix::fs::symlink(&prod, lock_path(&db)).expect("symlink");
        assert!(matches!(
            Lock::take(&db, "run"),
            Err(LockError::SideFile(SideFileError::Link(_)))
        ));
        assert!(matches!(state(&db), Err(SideFileError::Link(_))));
        assert_eq!(std::fs::read(&prod).expect("read"), b"PROD's bytes");
        assert!(std::fs::symlink_metadata(lock_path(&db)).is_ok(), "the link stays");
    }
}
