//! `swap`: replace a database file (DEV) with a new one atomically, keeping a
//! backup of the old one, and undo that.
//!
//! What it does, in order; every refusal is decided before TARGET is touched:
//! 1. Checks NEW (an existing, closed SQLite database: sound header, no live
//!    `-journal`, not open by another process, not on a network file system)
//!    and TARGET (not NEW, not a directory, a database if it exists, its
//!    folder writable and local), and that TARGET is not open by another
//!    process: a `/proc/*/fd` scan as `fuser` does, plus a lock probe. An idle
//!    connection holds no lock, so a lock probe alone would miss it.
//! 2. Makes the old TARGET self-contained the way SQLite itself would: opens
//!    it (a hot journal is rolled back by SQLite), checkpoints its WAL with
//!    `wal_checkpoint(TRUNCATE)` and closes it, so SQLite removes its own
//!    sidecars and the backup holds every committed row. A sidecar is never
//!    deleted blindly; an inactive `-journal` (left by `TRUNCATE`/`PERSIST`:
//!    empty or with a zeroed header) is recognised and removed.
//! 3. Moves NEW into TARGET's folder under a temporary name (a copy, fsynced,
//!    when NEW is on another file system), gives it TARGET's permission bits
//!    and owner, fsyncs it, hard-links the old TARGET to its backup name, and
//!    exchanges the two names with `renameat2(RENAME_EXCHANGE)` (a plain
//!    rename where the file system cannot), then fsyncs the folder. TARGET is
//!    wholly old or wholly new at every instant, also after `kill -9`.
//! 4. Keeps the newest `keep_backups` backups (`TARGET.bak-<UTC stamp>`).
//!
//! With `live`, TARGET stays open by its application: the backup is taken
//! through SQLite's backup API, and NEW's pages are written into TARGET with
//! the backup API in one write transaction, so open connections see the new
//! data at their next transaction and a crash leaves TARGET old or new
//! through SQLite's own journal.
//!
//! [`undo`] exchanges TARGET with its newest backup, so running it twice
//! returns to where it started.
//!
//! What it does not do: change NEW's content, or decide whether NEW is the
//! right file. Linux only for the in-use check; elsewhere it refuses.

pub mod backups;
pub mod cli;

use std::fs::File;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

mod checks;
mod live;
mod selfcontained;
mod sidefiles;
mod undo;

use checks::*;
pub use selfcontained::make_self_contained;
use sidefiles::*;
pub use undo::undo;

use exit_code::Exit;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;
use sqlite_file::fs::{
    available_space, copy_range, dir_writable, fsync_dir, network_fs, parent_dir, rename_exchange, rename_noreplace,
    resolve_link, same_file, FileId,
};
use sqlite_file::sidefile;
use sqlite_file::{open_read_only, sidecar_path, FileError, Header, JournalFlag, JournalState, Sidecar, Sidecars};

pub use sqlite_file::users::{users, User};

/// What can be chosen about a swap.
#[derive(Debug, Clone)]
pub struct Options {
    /// Keep the old TARGET as `TARGET.bak-<UTC stamp>`.
    pub backup: bool,
    /// How many backups to keep, the new one included (at least 1).
    pub keep_backups: usize,
    /// Write NEW into TARGET through SQLite while its application has it open.
    pub live: bool,
    /// Wait up to this long for TARGET to be free before giving up.
    pub wait: Duration,
    /// How long SQLite waits on a lock (checkpoint, live write).
    pub busy_timeout: Duration,
    /// Permission bits the new TARGET (and a `live` backup) may have at most:
    /// TARGET's own bits are kept, less any this ceiling lacks. The driver
    /// sets PROD's, so a copy of PROD's data is never readable more widely.
    pub max_mode: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            backup: true,
            keep_backups: 3,
            live: false,
            wait: Duration::ZERO,
            busy_timeout: Duration::from_secs(10),
            max_mode: None,
        }
    }
}

/// How NEW reached TARGET's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// `renameat2(RENAME_EXCHANGE)`.
    Exchange,
    /// A rename over TARGET (the file system cannot exchange).
    Rename,
    /// No TARGET existed: NEW was moved into place.
    FirstRefresh,
    /// Written into the open TARGET through SQLite's backup API.
    Live,
}

/// What a finished swap did. Serialized as the `--json` summary.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: PathBuf,
    pub new: PathBuf,
    pub method: Method,
    /// Where the old TARGET is kept, if it is.
    pub backup: Option<PathBuf>,
    /// What was done to make the old TARGET self-contained first.
    pub old_target: Vec<String>,
    /// Older backups removed by the retention setting.
    pub backups_removed: Vec<PathBuf>,
    /// NEW was on another file system and was copied (fsynced) first.
    pub copied_across_file_systems: bool,
    /// Processes that had TARGET open (only with `live`).
    pub open_by: Vec<User>,
    pub seconds: f64,
}

/// What [`undo`] did.
#[derive(Debug, Clone, Serialize)]
pub struct UndoReport {
    pub target: PathBuf,
    /// The backup now back at TARGET's name.
    pub restored: PathBuf,
    /// The name that now holds the file TARGET had (the same backup name).
    pub replaced_kept_as: PathBuf,
    pub old_target: Vec<String>,
    pub seconds: f64,
}

/// Why a swap was refused or failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file error every tool shares: missing, not a database, I/O, a full disk, … ([`sqlite_file::FileError`]).
    #[error(transparent)]
    File(#[from] sqlite_file::FileError),
    #[error("{}: not a complete, closed database: {why}", path.display())]
    NotClosed { path: PathBuf, why: String },
    #[error("{}: no backup to restore (looked for {}.bak-*)", .0.display(), .0.file_name().map(|n| n.to_string_lossy()).unwrap_or_default())]
    NoBackup(PathBuf),
    #[error("{}: in use by {users}; stop the application{hint}", path.display())]
    InUse {
        path: PathBuf,
        users: String,
        hint: &'static str,
    },
    #[error("{}: cannot tell whether it is in use: {why}", path.display())]
    CannotCheckUse { path: PathBuf, why: String },
    #[error("{}: still locked after {secs:.1} s ({what})", path.display())]
    Busy {
        path: PathBuf,
        secs: f64,
        what: &'static str,
    },
    #[error(
        "{}: --live cannot write pages of {new} bytes into a WAL-mode database of {target} byte pages (SQLite refuses); stop the application and swap without --live",
        path.display()
    )]
    LivePageSize { path: PathBuf, target: u32, new: u32 },
    #[error("{}: still has {left} beside it after a checkpoint; not swapping", path.display())]
    NotSelfContained { path: PathBuf, left: String },
    #[error(transparent)]
    SideFile(sidefile::SideFileError),
}

impl Error {
    /// A stable code for scripts (`--json`'s `error.code`), listed in the README.
    pub fn code(&self) -> &'static str {
        match self {
            Error::File(e) => e.code(),
            Error::NotClosed { .. } => "not_closed",
            Error::NoBackup(_) => "no_backup",
            Error::InUse { .. } | Error::CannotCheckUse { .. } => "in_use",
            Error::Busy { .. } => "busy",
            Error::LivePageSize { .. } => "live_impossible",
            Error::SideFile(e) => e.code(),
            Error::NotSelfContained { .. } => "io",
        }
    }

    /// The file the error is about, where it names one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Error::File(e) => Some(e.path()),
            Error::NoBackup(p) => Some(p),
            Error::NotClosed { path, .. }
            | Error::InUse { path, .. }
            | Error::CannotCheckUse { path, .. }
            | Error::Busy { path, .. }
            | Error::LivePageSize { path, .. }
            | Error::NotSelfContained { path, .. } => Some(path),
            Error::SideFile(e) => Some(e.path()),
        }
    }

    /// The exit status for this error, from the workspace's one table.
    pub fn exit(&self) -> Exit {
        match self {
            Error::File(e) => e.exit(),
            Error::NotClosed { .. } | Error::NoBackup(_) => Exit::BadInput,
            Error::InUse { .. } | Error::CannotCheckUse { .. } | Error::Busy { .. } | Error::LivePageSize { .. } => {
                Exit::Refused
            }
            Error::SideFile(_) => Exit::Refused,
            Error::NotSelfContained { .. } => Exit::Error,
        }
    }
}

fn io_error(path: &Path, action: &'static str, e: io::Error) -> Error {
    Error::File(FileError::io(path, action, e))
}

/// A side file's refusal (a link, an odd file, a stale sidecar at its name)
/// or its I/O failure.
fn side_error(path: &Path, e: sidefile::SideFileError) -> Error {
    match e {
        sidefile::SideFileError::Io { source, action, .. } => io_error(path, action, source),
        e => Error::SideFile(e),
    }
}

fn sqlite_error(path: &Path, action: &'static str, e: rusqlite::Error) -> Error {
    Error::File(FileError::sqlite(path, action, e))
}

/// One swap: NEW replaces TARGET.
#[derive(Debug, Clone)]
pub struct Swap {
    pub new: PathBuf,
    pub target: PathBuf,
    pub options: Options,
}

impl Swap {
    pub fn new(new: impl Into<PathBuf>, target: impl Into<PathBuf>, options: Options) -> Swap {
        Swap {
            new: new.into(),
            target: target.into(),
            options,
        }
    }

    /// Runs the swap. On any error before the exchange, TARGET, its sidecars
    /// and NEW are as they were.
    pub fn run(&self) -> Result<Report, Error> {
        // A symbolic link names the file to replace: the link itself stays.
        let (new, target) = (resolve_link(&self.new), resolve_link(&self.target));
        if (&new, &target) != (&self.new, &self.target) {
            return Swap {
                new,
                target,
                options: self.options.clone(),
            }
            .run();
        }
        let started = Instant::now();
        let (new, target) = (&self.new, &self.target);
        let folder = parent_dir(target).to_owned();

        // NEW: a complete, closed, local database.
        let (new_meta, new_header) = check_database(new)?;
        check_local(new)?;
        let new_sidecars = Sidecars::of(new).map_err(|e| io_error(new, "look for sidecars", e))?;
        if new_sidecars.journal == Some(JournalState::Live) {
            return Err(Error::NotClosed {
                path: new.clone(),
                why: "it has a live -journal (a transaction in progress or interrupted)".into(),
            });
        }
        let new_users = users(new).map_err(|e| Error::CannotCheckUse {
            path: new.clone(),
            why: e.to_string(),
        })?;
        if !new_users.is_empty() {
            return Err(in_use(new, &new_users, ""));
        }

        // TARGET: its folder, and what is there now.
        match std::fs::metadata(&folder) {
            Ok(m) if m.is_dir() => {}
            _ => return Err(Error::File(FileError::FolderMissing(folder))),
        }
        check_local(&folder)?;
        if same_file(new, target).map_err(|e| io_error(target, "stat", e))? {
            return Err(Error::File(FileError::SameFile {
                a: new.clone(),
                b: target.clone(),
            }));
        }
        let existing = match std::fs::metadata(target) {
            Ok(_) => Some(check_database(target)?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(target, "stat", e)),
        };
        if !dir_writable(&folder).map_err(|e| io_error(&folder, "access", e))? {
            return Err(Error::File(FileError::PermissionDenied {
                path: folder,
                action: "create files in folder",
            }));
        }
        let mut open_by = Vec::new();
        if existing.is_some() {
            open_by = wait_until_free(target, self.options.wait)?;
            if !open_by.is_empty() && !self.options.live {
                return Err(in_use(target, &open_by, ", or pass --live"));
            }
        }
        if let (true, Some((_, t))) = (self.options.live, &existing) {
            if t.journal == JournalFlag::Wal && t.page_size != new_header.page_size {
                return Err(Error::LivePageSize {
                    path: target.clone(),
                    target: t.page_size,
                    new: new_header.page_size,
                });
            }
        }
        // Space: a copy of NEW when it is on another file system, the old
        // TARGET's WAL when it is checkpointed, and with --live a backup copy
        // plus a journal as big as NEW.
        let target_sidecars = Sidecars::of(target).map_err(|e| io_error(target, "look for sidecars", e))?;
        let same_fs = FileId::of(new).ok().map(|f| f.dev) == FileId::of(&folder).ok().map(|f| f.dev);
        let mut needed = target_sidecars.wal.unwrap_or(0);
        if !same_fs {
            needed += new_meta.len();
        }
        if self.options.live {
            needed += new_meta.len() + existing.as_ref().map_or(0, |(m, _)| m.len());
        }
        let available = available_space(&folder).map_err(|e| io_error(&folder, "statvfs", e))?;
        if available < needed {
            return Err(Error::File(FileError::DiskFull {
                path: folder,
                needed: Some(needed),
                available: Some(available),
            }));
        }

        // Every refusal is decided: from here on, files change.
        remove_leftovers(target);
        if !new_sidecars.is_empty() {
            make_self_contained(new, self.options.busy_timeout)?;
        }
        let mut report = Report {
            target: target.clone(),
            new: new.clone(),
            method: Method::FirstRefresh,
            backup: None,
            old_target: Vec::new(),
            backups_removed: Vec::new(),
            copied_across_file_systems: !same_fs,
            open_by: Vec::new(),
            seconds: 0.0,
        };
        let Some((target_meta, target_header)) = existing else {
            let mode = new_meta.permissions().mode() & self.ceiling();
            let placed = place(new, &temp_path(target, "swap"), mode, None)?;
            rename_noreplace(&placed.temp, target).map_err(|e| io_error(target, "move into place", e))?;
            placed.done();
            fsync_dir(&folder).map_err(|e| io_error(&folder, "fsync folder", e))?;
            report.seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        };
        let mode = target_meta.permissions().mode() & self.ceiling();
        let owner = Some((target_meta.uid(), target_meta.gid()));

        if self.options.live {
            report.method = Method::Live;
            report.open_by = open_by;
            report.backup = self.live(&new_header, &target_header, mode)?;
            // NEW was only read, and is closed: consumed.
            sidefile::remove_with_sidecars(new).map_err(|e| {
                Error::File(FileError::Io {
                    path: new.clone(),
                    action: "remove (consumed)",
                    source: io::Error::other(e.to_string()),
                })
            })?;
        } else {
            report.old_target = make_self_contained(target, self.options.busy_timeout)?;
            // An application may have opened TARGET while it was checkpointed.
            let late = users(target).map_err(|e| Error::CannotCheckUse {
                path: target.clone(),
                why: e.to_string(),
            })?;
            if !late.is_empty() {
                return Err(in_use(target, &late, ", or pass --live"));
            }
            let placed = place(new, &temp_path(target, "swap"), mode, owner)?;
            let backup = if self.options.backup {
                let name = backups::new_name(target, SystemTime::now());
                std::fs::hard_link(target, &name).map_err(|e| io_error(&name, "link the backup", e))?;
                Some(name)
            } else {
                None
            };
            let swapped = match rename_exchange(&placed.temp, target) {
                Ok(()) => Ok(Method::Exchange),
                Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                    std::fs::rename(&placed.temp, target).map(|()| Method::Rename)
                }
                Err(e) => Err(e),
            };
            report.method = match swapped {
                Ok(m) => m,
                Err(e) => {
                    if let Some(name) = &backup {
                        let _ = std::fs::remove_file(name);
                    }
                    return Err(io_error(target, "exchange", e));
                }
            };
            let temp = placed.temp.clone();
            placed.done();
            if report.method == Method::Exchange {
                // The temporary name now holds the old TARGET (also at the
                // backup name, if any).
                std::fs::remove_file(&temp).map_err(|e| io_error(&temp, "remove the old file's temporary name", e))?;
            }
            fsync_dir(&folder).map_err(|e| io_error(&folder, "fsync folder", e))?;
            report.backup = backup;
        }
        if report.backup.is_some() {
            let made = report.backup.clone().unwrap_or_default();
            report.backups_removed = self.expire_backups(&made);
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The permission bits the new TARGET may have.
    fn ceiling(&self) -> u32 {
        self.options.max_mode.unwrap_or(0o777) & 0o777
    }

    /// Removes all but the newest `keep_backups` backups, in their recorded
    /// order ([`backups::new_name`]); never `made`, the backup this swap
    /// just made, and never anything but a regular file no process has open.
    fn expire_backups(&self, made: &Path) -> Vec<PathBuf> {
        let older: Vec<PathBuf> = backups::list(&self.target)
            .into_iter()
            .filter(|b| b.as_path() != made)
            .collect();
        let keep_older = self.options.keep_backups.max(1) - 1;
        let excess = older.len().saturating_sub(keep_older);
        let mut removed = Vec::new();
        for old in older.into_iter().take(excess) {
            if sidefile::remove(&old).unwrap_or(false) {
                removed.push(old);
            }
        }
        removed
    }
}
