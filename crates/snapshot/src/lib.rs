//! `snapshot`: a consistent, point-in-time copy of a live SQLite database
//! into a new file, without writing the source.
//!
//! What it does:
//! - Copies SOURCE under SQLite's own locking, inside one read transaction,
//!   so DEST is one committed state of SOURCE even while other processes
//!   write it, in WAL and in rollback-journal mode. The default method copies
//!   the file with the kernel (`copy_file_range`, which shares extents where
//!   the file system has reflinks) while that transaction is held:
//!   - rollback mode: its shared lock keeps every writer from changing the
//!     file. Writers wait for the copy; [`Report::lock_held_seconds`] says how long.
//!   - WAL mode: writers never wait. While the transaction holds its read
//!     mark, a checkpoint can only write into the file pages of frames this
//!     snapshot sees, and the WAL cannot restart; so every page that may
//!     differ is named in the `-wal`, and those pages are read again through
//!     SQLite (`sqlite_dbpage`) in the same transaction and written over the
//!     copy. The result is what a checkpoint of the snapshot would write.
//!   - `Method::BackupApi`: SQLite's online backup API, stepped in chunks in
//!     that one transaction, so it never restarts however busy the writer.
//!     The fallback where `sqlite_dbpage` is missing.
//! - Never writes SOURCE and leaves its folder as found
//!   ([`sqlite_file::open_read_only`]).
//! - [`Held`]: the same reading without a copy, for as long as the caller
//!   wants the pages (a remote helper serving a WAL-mode PROD in place). A
//!   rollback-mode SOURCE is refused there: its lock would hold its writers.
//! - Creates DEST atomically: a temporary file in DEST's folder, self-contained
//!   (no `-wal`/`-journal` needed), checked, fsynced, given SOURCE's permission
//!   bits (never wider), renamed into place without replacing (unless
//!   `force`), and the folder fsynced. A failure removes the temporary file; a
//!   killed run's temporary file is removed by the next run.
//!
//! What it does not do: repair SOURCE (a hot journal is reported, not rolled
//! back), replace a database that is in use (that is the `swap` crate's job),
//! or change the copy's page size, encoding or journal mode: all come from
//! SOURCE.

pub mod cli;

use std::fs::File;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod checks;
mod held;
mod methods;

pub use held::Held;
mod sidefiles;

use methods::*;
use sidefiles::*;

use exit_code::Exit;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;
use sqlite_file::fs::{available_space, copy_range, dir_writable, parent_dir, rename_noreplace, FileId};
use sqlite_file::sidefile::{self, Found, SideFileError};
use sqlite_file::{open_read_only, FileError, Header, HeaderError, JournalFlag, JournalState, Sidecar, Sidecars};

/// How the pages are copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Byte copy, or the backup API where this build's SQLite lacks
    /// `sqlite_dbpage` and the source is in WAL mode.
    #[default]
    Auto,
    /// SQLite's online backup API, inside one read transaction.
    BackupApi,
    /// A kernel copy of the file inside the read transaction; in WAL mode,
    /// the pages named in the `-wal` are then read again through SQLite.
    ByteCopy,
}

/// What can be chosen about a snapshot.
#[derive(Debug, Clone)]
pub struct Options {
    /// Replace DEST if it exists (never one with sidecars beside it).
    pub force: bool,
    /// Run `PRAGMA quick_check` on the copy before it is put in place.
    pub verify: bool,
    /// How long to wait for SOURCE's writers to let go of their lock, and for
    /// the whole copy to make progress.
    pub timeout: Duration,
    /// How to copy.
    pub method: Method,
    /// Flush the copy and its folder to disk before returning (the
    /// default). A copy that is only ever read and then removed (the remote
    /// helper's private copy) need not be.
    pub durable: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            force: false,
            verify: false,
            timeout: Duration::from_secs(60),
            method: Method::Auto,
            durable: true,
        }
    }
}

/// What the caller hears while a snapshot runs.
pub trait Observer {
    /// `done` of `total` bytes copied.
    fn progress(&mut self, _done: u64, _total: u64) {}
    /// Asked between chunks: `true` stops the snapshot, which then cleans up.
    fn cancelled(&self) -> bool {
        false
    }
}

/// An observer that hears nothing and never cancels.
pub struct Quiet;
impl Observer for Quiet {}

/// What a finished snapshot did. Serialized as the `--json` summary.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub source: PathBuf,
    pub dest: PathBuf,
    /// Size of DEST in bytes.
    pub bytes: u64,
    pub pages: u64,
    pub page_size: u32,
    /// SOURCE's (and so DEST's) journal mode family: `wal` or `rollback`.
    pub journal_mode: &'static str,
    pub method: Method,
    pub encoding: &'static str,
    pub user_version: i32,
    pub application_id: i32,
    /// Wall time of the whole run.
    pub seconds: f64,
    /// Rollback mode: how long SOURCE's shared lock was held, the longest any
    /// of its writers had to wait. `None` in WAL mode, where writers never wait.
    pub lock_held_seconds: Option<f64>,
    /// WAL mode with `byte-copy`: pages read through SQLite because the
    /// `-wal` names them (the rest came from the kernel's copy of the file).
    pub pages_from_wal: u64,
    /// Whether `PRAGMA quick_check` passed on the copy.
    pub verified: bool,
    /// Temporary files of earlier killed runs that were removed.
    pub leftovers_removed: Vec<PathBuf>,
}

/// Why a snapshot was refused or failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file error every tool shares: missing, not a database, I/O, a full disk, … ([`sqlite_file::FileError`]).
    #[error(transparent)]
    File(#[from] sqlite_file::FileError),
    #[error("{}: is a sidecar of the source {}", dest.display(), source_path.display())]
    DestIsSidecar { source_path: PathBuf, dest: PathBuf },
    #[error("{}: already exists (pass --force to replace it)", .0.display())]
    DestExists(PathBuf),
    #[error("{}: has {what} beside it, so it may be in use; not replacing it (use swap)", path.display())]
    DestInUse { path: PathBuf, what: String },
    #[error(
        "{}: has a hot journal (a writer died mid-transaction); let its application open it to roll it back: snapshot never writes the source",
        .0.display()
    )]
    HotJournal(PathBuf),
    #[error("{}: still locked by a writer after {secs:.1} s (raise --timeout)", path.display())]
    Busy { path: PathBuf, secs: f64 },
    #[error("{}: is in WAL mode, and this build's SQLite lacks sqlite_dbpage, which byte-copy needs there (use --method backup-api)", .0.display())]
    MethodUnsupported(PathBuf),
    /// A link, an odd file or a stale sidecar at a name this tool writes.
    #[error(transparent)]
    SideFile(#[from] sqlite_file::sidefile::SideFileError),
    #[error(
        "{}: is in rollback-journal mode: it can be served in place only in WAL mode (its shared lock would hold its writers for the whole transfer)",
        .0.display()
    )]
    NotWal(PathBuf),
    #[error("interrupted; {} was not created", .0.display())]
    Interrupted(PathBuf),
    #[error("{}: copy failed its check: {reason}", path.display())]
    BadCopy { path: PathBuf, reason: String },
}

impl Error {
    /// A stable code for scripts (`--json`'s `error.code`), listed in the README.
    pub fn code(&self) -> &'static str {
        match self {
            Error::File(e) => e.code(),
            Error::DestIsSidecar { .. } => "same_file",
            Error::DestExists(_) => "exists",
            Error::DestInUse { .. } => "in_use",
            Error::HotJournal(_) => "hot_journal",
            Error::Busy { .. } => "busy",
            Error::MethodUnsupported(_) => "usage",
            Error::NotWal(_) => "not_wal",
            Error::SideFile(e) => e.code(),
            Error::Interrupted(_) => "interrupted",
            Error::BadCopy { .. } => "io",
        }
    }

    /// The file the error is about, where it names one.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Error::File(e) => Some(e.path()),
            Error::DestExists(p)
            | Error::HotJournal(p)
            | Error::MethodUnsupported(p)
            | Error::NotWal(p)
            | Error::Interrupted(p) => Some(p),
            Error::DestInUse { path, .. } | Error::Busy { path, .. } | Error::BadCopy { path, .. } => Some(path),
            Error::DestIsSidecar { dest, .. } => Some(dest),
            Error::SideFile(e) => Some(e.path()),
        }
    }

    /// The exit status for this error, from the workspace's one table.
    pub fn exit(&self) -> Exit {
        match self {
            Error::File(e) => e.exit(),
            Error::DestIsSidecar { .. } | Error::MethodUnsupported(_) | Error::NotWal(_) => Exit::BadInput,
            Error::DestExists(_)
            | Error::DestInUse { .. }
            | Error::HotJournal(_)
            | Error::Busy { .. }
            | Error::Interrupted(_) => Exit::Refused,
            Error::SideFile(e) if e.is_io() => Exit::Error,
            Error::SideFile(_) => Exit::Refused,
            Error::BadCopy { .. } => Exit::Error,
        }
    }
}

/// One snapshot to take: SOURCE → DEST.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub source: PathBuf,
    pub dest: PathBuf,
    pub options: Options,
}

impl Snapshot {
    pub fn new(source: impl Into<PathBuf>, dest: impl Into<PathBuf>, options: Options) -> Snapshot {
        Snapshot {
            source: source.into(),
            dest: dest.into(),
            options,
        }
    }

    /// Takes the snapshot. On error nothing is left behind: no DEST, no
    /// temporary file, and SOURCE as it was.
    pub fn run(&self, observer: &mut dyn Observer) -> Result<Report, Error> {
        let started = Instant::now();
        let (source_file, header) = self.check_source()?;
        let dest_name = self.check_dest()?;
        let folder = parent_dir(&self.dest).to_owned();
        let leftovers_removed = remove_leftovers(&folder, &dest_name);

        // Fail early: the main file is a lower bound of what DEST will hold.
        let source_len = source_file
            .metadata()
            .map_err(|e| io_error(&self.source, "stat", e))?
            .len();
        let available = available_space(&folder).map_err(|e| io_error(&folder, "statvfs", e))?;
        // On one file system with reflinks the kernel's copy shares blocks.
        let same_fs = FileId::of(&self.source).ok().map(|f| f.dev) == FileId::of(&folder).ok().map(|f| f.dev);
        let shares_blocks = same_fs && sqlite_file::fs::reflinks(&folder).unwrap_or(false);
        if available < source_len && !shares_blocks {
            return Err(Error::File(FileError::DiskFull {
                path: folder,
                needed: Some(source_len),
                available: Some(available),
            }));
        }

        let sidecars = Sidecars::of(&self.source).map_err(|e| io_error(&self.source, "look for sidecars", e))?;
        let source = open_read_only(&self.source, &header, &sidecars).map_err(|e| self.source_error(e, "open"))?;
        // One read transaction for the whole copy: its snapshot is DEST.
        let (state, locked_at) = self.begin_read(source.conn(), observer)?;
        // A WAL-mode byte copy reads the pages in the -wal through SQLite's
        // `sqlite_dbpage`, which a build of SQLite may lack.
        let dbpage = header.journal == JournalFlag::Rollback || has_dbpage(source.conn());
        let method = match (self.options.method, dbpage) {
            (Method::Auto, true) => Method::ByteCopy,
            (Method::Auto, false) => Method::BackupApi,
            (Method::ByteCopy, false) => return Err(Error::MethodUnsupported(self.source.clone())),
            (m, _) => m,
        };

        let temp = TempFile::create(&folder, &dest_name)?;
        let copied = match method {
            Method::ByteCopy => self.byte_copy(&source_file, source.conn(), header.journal, &temp, &state, observer),
            _ => self.backup(source.conn(), &temp, &state, observer).map(|()| 0),
        };
        // End the read transaction before anything else, then close SQLite's
        // handles before ours (closing a second handle drops SQLite's locks).
        let _ = source.conn().execute_batch("COMMIT");
        let lock_held = locked_at.elapsed();
        drop(source);
        drop(source_file);
        let pages_from_wal = copied?;

        let verified = self.check_copy(&temp, &state)?;
        temp.finish(&self.source, &self.dest, self.options.force, self.options.durable)?;

        let bytes = state.pages * u64::from(state.page_size);
        Ok(Report {
            source: self.source.clone(),
            dest: self.dest.clone(),
            bytes,
            pages: state.pages,
            page_size: state.page_size,
            journal_mode: header.journal.as_str(),
            method,
            encoding: state.encoding,
            user_version: state.user_version,
            application_id: state.application_id,
            seconds: started.elapsed().as_secs_f64(),
            lock_held_seconds: (header.journal == JournalFlag::Rollback).then_some(lock_held.as_secs_f64()),
            pages_from_wal,
            verified,
            leftovers_removed,
        })
    }
}

impl Snapshot {
    /// Starts the read transaction on SOURCE (`conn`), waiting up to the
    /// timeout for its writers: SOURCE's state, and when its lock was taken.
    /// SQLite waits for a writer's lock in slices, so that the observer is
    /// asked between them (Ctrl-C while PROD's writer holds it back).
    pub(crate) fn begin_read(&self, conn: &Connection, observer: &dyn Observer) -> Result<(State, Instant), Error> {
        let slice = Duration::from_millis(100).min(self.options.timeout);
        conn.busy_timeout(slice)
            .map_err(|e| self.source_error(e, "set busy timeout"))?;
        let deadline = sqlite_file::wait::deadline(self.options.timeout);
        let begun = loop {
            conn.execute_batch("BEGIN").map_err(|e| self.source_error(e, "begin"))?;
            let locked_at = Instant::now();
            match read_state(conn) {
                Ok(state) => break (state, locked_at),
                Err(e) if is_busy(&e) && !sqlite_file::wait::passed(deadline) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    if observer.cancelled() {
                        return Err(Error::Interrupted(self.dest.clone()));
                    }
                }
                Err(e) => return Err(self.source_error(e, "read schema")),
            }
        };
        conn.busy_timeout(sqlite_file::wait::busy_timeout(self.options.timeout))
            .map_err(|e| self.source_error(e, "set busy timeout"))?;
        Ok(begun)
    }

    /// The pages (1-based) the `-wal` names within the snapshot's `state`,
    /// read while its transaction holds the read mark: a superset of those
    /// that may differ from the main file.
    pub(crate) fn pages_in_wal(&self, state: &State) -> Result<std::collections::BTreeSet<u32>, Error> {
        Ok(sqlite_file::wal_page_numbers(&self.source, state.page_size)
            .map_err(|e| io_error(&self.source, "read the -wal's frame headers", e))?
            .into_iter()
            .filter(|&p| u64::from(p) <= state.pages)
            .collect())
    }

    /// Page `pgno` of the snapshot, read through SQLite (`sqlite_dbpage`)
    /// with `stmt`; a page of the wrong size is a bad copy of `into`.
    pub(crate) fn page_through_sqlite(
        &self,
        stmt: &mut rusqlite::Statement,
        pgno: u32,
        page_size: u64,
        into: &Path,
    ) -> Result<Vec<u8>, Error> {
        let data: Vec<u8> = stmt
            .query_row([pgno], |r| r.get(0))
            .map_err(|e| self.source_error(e, "read a page"))?;
        if data.len() as u64 != page_size {
            return Err(Error::BadCopy {
                path: into.to_owned(),
                reason: format!("page {pgno} read back as {} bytes", data.len()),
            });
        }
        Ok(data)
    }
}

/// The statement that reads a page of the snapshot through SQLite.
pub(crate) const PAGE_THROUGH_SQLITE: &str = "SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?1";

/// Whether this build's SQLite has `sqlite_dbpage`.
fn has_dbpage(conn: &Connection) -> bool {
    conn.prepare("SELECT data FROM sqlite_dbpage('main') WHERE pgno = 1")
        .is_ok()
}

/// SOURCE's state as seen by the snapshot's read transaction.
struct State {
    pages: u64,
    page_size: u32,
    objects: u64,
    encoding: &'static str,
    user_version: i32,
    application_id: i32,
}

fn read_state(conn: &Connection) -> rusqlite::Result<State> {
    // Reading the schema starts the read transaction and proves it readable.
    let objects: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let page_size: u32 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let encoding: String = conn.query_row("PRAGMA encoding", [], |r| r.get(0))?;
    let user_version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let application_id: i32 = conn.query_row("PRAGMA application_id", [], |r| r.get(0))?;
    let encoding = match encoding.as_str() {
        "UTF-16le" => "UTF-16le",
        "UTF-16be" => "UTF-16be",
        _ => "UTF-8",
    };
    Ok(State {
        pages: pages as u64,
        page_size,
        objects: objects as u64,
        encoding,
        user_version,
        application_id,
    })
}

/// An I/O error on `path`: a full disk and a refused permission are named
/// as such.
fn io_error(path: &Path, action: &'static str, e: io::Error) -> Error {
    Error::File(FileError::io(path, action, e))
}

/// A SQLite error while writing the copy at `path`.
fn sqlite_write_error(path: &Path, e: rusqlite::Error) -> Error {
    Error::File(FileError::sqlite(path, "write copy", e))
}
