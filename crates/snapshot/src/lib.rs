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

use exit_code::Exit;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::Serialize;
use sqlite_file::fs::{available_space, copy_range, dir_writable, parent_dir, rename_noreplace, FileId};
use sqlite_file::sidefile::{self, Found, SideFileError};
use sqlite_file::{open_read_only, Header, HeaderError, JournalFlag, JournalState, Sidecar, Sidecars};

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
}

impl Default for Options {
    fn default() -> Self {
        Options {
            force: false,
            verify: false,
            timeout: Duration::from_secs(60),
            method: Method::Auto,
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
    #[error("{}: no such file", .0.display())]
    SourceMissing(PathBuf),
    #[error("{}: is a directory, not a database file", .0.display())]
    IsDirectory(PathBuf),
    #[error("{}: {reason}", path.display())]
    NotADatabase { path: PathBuf, reason: String },
    #[error("{}: permission denied ({action})", path.display())]
    PermissionDenied { path: PathBuf, action: &'static str },
    #[error("{} and {} are the same file", source_path.display(), dest.display())]
    SameFile { source_path: PathBuf, dest: PathBuf },
    #[error("{}: is a sidecar of the source {}", dest.display(), source_path.display())]
    DestIsSidecar { source_path: PathBuf, dest: PathBuf },
    #[error("{}: already exists (pass --force to replace it)", .0.display())]
    DestExists(PathBuf),
    #[error("{}: folder does not exist", .0.display())]
    DestFolderMissing(PathBuf),
    #[error("{}: has {what} beside it, so it may be in use; not replacing it (use swap)", path.display())]
    DestInUse { path: PathBuf, what: String },
    #[error(
        "{}: has a hot journal (a writer died mid-transaction); let its application open it to roll it back: snapshot never writes the source",
        .0.display()
    )]
    HotJournal(PathBuf),
    #[error("{}: still locked by a writer after {secs:.1} s (raise --timeout)", path.display())]
    Busy { path: PathBuf, secs: f64 },
    #[error("{}: disk full{}", path.display(), match (needed, available) {
        (Some(n), Some(a)) => format!(" ({n} bytes needed, {a} available)"),
        _ => String::new(),
    })]
    DiskFull {
        path: PathBuf,
        needed: Option<u64>,
        available: Option<u64>,
    },
    #[error("{}: is in WAL mode, and this build's SQLite lacks sqlite_dbpage, which byte-copy needs there (use --method backup-api)", .0.display())]
    MethodUnsupported(PathBuf),
    /// A link, an odd file or a stale sidecar at a name this tool writes.
    #[error(transparent)]
    SideFile(#[from] sqlite_file::sidefile::SideFileError),
    #[error("interrupted; {} was not created", .0.display())]
    Interrupted(PathBuf),
    #[error("{}: copy failed its check: {reason}", path.display())]
    BadCopy { path: PathBuf, reason: String },
    #[error("{}: {action}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit status for this error, from the workspace's one table.
    pub fn exit(&self) -> Exit {
        match self {
            Error::SourceMissing(_)
            | Error::IsDirectory(_)
            | Error::NotADatabase { .. }
            | Error::PermissionDenied { .. }
            | Error::SameFile { .. }
            | Error::DestIsSidecar { .. }
            | Error::DestFolderMissing(_)
            | Error::MethodUnsupported(_) => Exit::BadInput,
            Error::DestExists(_)
            | Error::DestInUse { .. }
            | Error::HotJournal(_)
            | Error::Busy { .. }
            | Error::Interrupted(_) => Exit::Refused,
            Error::SideFile(e) if e.is_io() => Exit::Failed,
            Error::SideFile(_) => Exit::Refused,
            Error::DiskFull { .. } | Error::BadCopy { .. } | Error::Sqlite { .. } | Error::Io { .. } => Exit::Failed,
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

/// Prefix of the temporary files of a snapshot into `dest`: `.NAME.snapshot-`.
fn temp_prefix(dest_name: &str) -> String {
    format!(".{dest_name}.snapshot-")
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
            return Err(Error::DiskFull {
                path: folder,
                needed: Some(source_len),
                available: Some(available),
            });
        }

        let sidecars = Sidecars::of(&self.source).map_err(|e| io_error(&self.source, "look for sidecars", e))?;
        let source = open_read_only(&self.source, &header, &sidecars).map_err(|e| self.source_error(e, "open"))?;
        // SQLite waits for a writer's lock in slices, so that the observer is
        // asked between them (Ctrl-C while PROD's writer holds it back).
        let slice = Duration::from_millis(100).min(self.options.timeout);
        source
            .conn
            .busy_timeout(slice)
            .map_err(|e| self.source_error(e, "set busy timeout"))?;
        let deadline = sqlite_file::wait::deadline(self.options.timeout);

        // One read transaction for the whole copy: its snapshot is DEST.
        let (state, locked_at) = loop {
            source
                .conn
                .execute_batch("BEGIN")
                .map_err(|e| self.source_error(e, "begin"))?;
            let locked_at = Instant::now();
            match read_state(&source.conn) {
                Ok(state) => break (state, locked_at),
                Err(e) if is_busy(&e) && !sqlite_file::wait::passed(deadline) => {
                    let _ = source.conn.execute_batch("ROLLBACK");
                    if observer.cancelled() {
                        return Err(Error::Interrupted(self.dest.clone()));
                    }
                }
                Err(e) => return Err(self.source_error(e, "read schema")),
            }
        };
        source
            .conn
            .busy_timeout(sqlite_file::wait::busy_timeout(self.options.timeout))
            .map_err(|e| self.source_error(e, "set busy timeout"))?;
        // A WAL-mode byte copy reads the pages in the -wal through SQLite's
        // `sqlite_dbpage`, which a build of SQLite may lack.
        let dbpage = header.journal == JournalFlag::Rollback
            || source
                .conn
                .prepare("SELECT data FROM sqlite_dbpage('main') WHERE pgno = 1")
                .is_ok();
        let method = match (self.options.method, dbpage) {
            (Method::Auto, true) => Method::ByteCopy,
            (Method::Auto, false) => Method::BackupApi,
            (Method::ByteCopy, false) => return Err(Error::MethodUnsupported(self.source.clone())),
            (m, _) => m,
        };

        let temp = TempFile::create(&folder, &dest_name)?;
        let copied = match method {
            Method::ByteCopy => self.byte_copy(&source_file, &source.conn, header.journal, &temp, &state, observer),
            _ => self.backup(&source.conn, &temp, &state, observer).map(|()| 0),
        };
        // End the read transaction before anything else, then close SQLite's
        // handles before ours (closing a second handle drops SQLite's locks).
        let _ = source.conn.execute_batch("COMMIT");
        let lock_held = locked_at.elapsed();
        drop(source);
        drop(source_file);
        let pages_from_wal = copied?;

        let verified = self.check_copy(&temp, &state)?;
        temp.finish(&self.source, &self.dest, self.options.force)?;

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

    /// SOURCE exists, is a readable regular file and has a sound header.
    /// Returns the open file (kept open until SQLite is done with SOURCE).
    fn check_source(&self) -> Result<(File, Header), Error> {
        let path = &self.source;
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::SourceMissing(path.clone()),
            io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: path.clone(),
                action: "stat",
            },
            _ => io_error(path, "stat", e),
        })?;
        if meta.is_dir() {
            return Err(Error::IsDirectory(path.clone()));
        }
        if !meta.is_file() {
            return Err(Error::NotADatabase {
                path: path.clone(),
                reason: format!("is {}, not a regular file", sidefile::kind_of(&meta.file_type())),
            });
        }
        let mut file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => Error::PermissionDenied {
                path: path.clone(),
                action: "read",
            },
            _ => io_error(path, "open", e),
        })?;
        let header = Header::read_from(&mut file, meta.len()).map_err(|e| match e {
            HeaderError::Io(e) => io_error(path, "read header", e),
            e => Error::NotADatabase {
                path: path.clone(),
                reason: e.to_string(),
            },
        })?;
        Ok((file, header))
    }

    /// DEST can be created: its folder exists and is writable, it is not
    /// SOURCE or one of SOURCE's sidecars, and it does not exist (or `force`
    /// and nothing is beside it). Returns DEST's file name.
    fn check_dest(&self) -> Result<String, Error> {
        let dest = &self.dest;
        let folder = parent_dir(dest);
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| !dest.as_os_str().to_string_lossy().ends_with('/'))
            .ok_or_else(|| Error::NotADatabase {
                path: dest.clone(),
                reason: "not a file name".into(),
            })?
            .to_owned();
        match std::fs::metadata(folder) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(Error::DestFolderMissing(folder.to_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::DestFolderMissing(folder.to_owned())),
            Err(e) => return Err(io_error(folder, "stat", e)),
        }
        // DEST is looked at without following a link: only a regular file
        // is ever replaced (with --force), never a link, FIFO or device.
        if FileId::of(&self.source)
            .ok()
            .is_some_and(|s| FileId::of(dest).ok() == Some(s))
        {
            return Err(Error::SameFile {
                source_path: self.source.clone(),
                dest: dest.clone(),
            });
        }
        match sidefile::look(dest).map_err(|e| io_error(dest, "stat", e))? {
            Found::Nothing => {
                // A -wal or -journal at DEST's name would be replayed into the copy.
                if let Some(stale) = sidefile::sidecars_present(dest)
                    .map_err(|e| io_error(dest, "look for sidecars", e))?
                    .first()
                {
                    return Err(SideFileError::StaleSidecar(stale.clone()).into());
                }
            }
            Found::Other("a directory") => return Err(Error::IsDirectory(dest.clone())),
            Found::Other(kind) => {
                return Err(Error::NotADatabase {
                    path: dest.clone(),
                    reason: format!("is {kind}, not a regular file; not replacing it"),
                })
            }
            Found::Link if self.options.force => {
                return Err(Error::NotADatabase {
                    path: dest.clone(),
                    reason: "is a symbolic link; --force replaces only a regular file".into(),
                })
            }
            Found::Link => return Err(Error::DestExists(dest.clone())),
            Found::Regular(_) => {
                if !self.options.force {
                    return Err(Error::DestExists(dest.clone()));
                }
                let sidecars = Sidecars::of(dest).map_err(|e| io_error(dest, "look for sidecars", e))?;
                let live_journal = sidecars.journal == Some(JournalState::Live);
                if sidecars.wal.is_some() || sidecars.shm.is_some() || live_journal {
                    let what = sidecars
                        .present()
                        .iter()
                        .map(|s| s.suffix())
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(Error::DestInUse {
                        path: dest.clone(),
                        what,
                    });
                }
            }
        }
        // DEST must not be SOURCE's -wal, -shm or -journal.
        let source_folder = parent_dir(&self.source);
        if FileId::of(source_folder).ok() == FileId::of(folder).ok() {
            if let Some(source_name) = self.source.file_name().and_then(|n| n.to_str()) {
                if Sidecar::ALL
                    .iter()
                    .any(|s| name == format!("{source_name}{}", s.suffix()))
                {
                    return Err(Error::DestIsSidecar {
                        source_path: self.source.clone(),
                        dest: dest.clone(),
                    });
                }
            }
        }
        if !dir_writable(folder).map_err(|e| io_error(folder, "access", e))? {
            return Err(Error::PermissionDenied {
                path: folder.to_owned(),
                action: "create files in folder",
            });
        }
        Ok(name)
    }

    /// Copies the main file with the kernel, inside the read transaction.
    ///
    /// Rollback mode: the shared lock keeps every writer out, so the file is
    /// the state. WAL mode: while this reader holds its read mark, a
    /// checkpoint may only write into the main file pages of frames that this
    /// snapshot can see, and the WAL cannot restart, so every page that can
    /// differ from the snapshot is named in the `-wal`. Those pages are then
    /// read again through SQLite (`sqlite_dbpage`, in this same transaction)
    /// and written over the copy, which is cut to the snapshot's page count:
    /// the result is exactly what a checkpoint of this snapshot would write.
    /// Returns how many pages came from the WAL.
    fn byte_copy(
        &self,
        source: &File,
        conn: &Connection,
        journal: JournalFlag,
        temp: &TempFile,
        state: &State,
        observer: &mut dyn Observer,
    ) -> Result<u64, Error> {
        let page_size = u64::from(state.page_size);
        let size = state.pages * page_size;
        let file_len = source.metadata().map_err(|e| io_error(&self.source, "stat", e))?.len();
        let want = match journal {
            JournalFlag::Rollback => file_len,
            JournalFlag::Wal => file_len.min(size),
        };
        let wal_pages = match journal {
            JournalFlag::Rollback => Default::default(),
            JournalFlag::Wal => sqlite_file::wal_page_numbers(&self.source, state.page_size)
                .map_err(|e| io_error(&self.source, "read the -wal's frame headers", e))?,
        };
        let wal_pages: Vec<u32> = wal_pages.into_iter().filter(|&p| u64::from(p) <= state.pages).collect();
        let total = want + wal_pages.len() as u64 * page_size;
        let file = temp
            .file
            .as_ref()
            .ok_or_else(|| io_error(&temp.path, "write", io::ErrorKind::Other.into()))?;
        let interrupted = |e: io::Error| match e.kind() {
            io::ErrorKind::Interrupted => Error::Interrupted(self.dest.clone()),
            _ => write_error(&temp.path, "copy", e),
        };
        let mut keep_going = |done| {
            observer.progress(done, total);
            !observer.cancelled()
        };
        let copied = copy_range(source, file, want, &mut keep_going).map_err(interrupted)?;
        if journal == JournalFlag::Rollback {
            if copied != want {
                return Err(io_error(
                    &self.source,
                    "copy",
                    io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank under a shared lock"),
                ));
            }
            return Ok(0);
        }
        // WAL mode: a checkpoint may have truncated the file meanwhile; every
        // page past that point is in the WAL.
        file.set_len(size).map_err(|e| write_error(&temp.path, "resize", e))?;
        let mut stmt = conn
            .prepare("SELECT data FROM sqlite_dbpage('main') WHERE pgno = ?1")
            .map_err(|e| self.source_error(e, "read pages"))?;
        let mut done = copied;
        for pgno in &wal_pages {
            let data: Vec<u8> = stmt
                .query_row([pgno], |r| r.get(0))
                .map_err(|e| self.source_error(e, "read a page"))?;
            if data.len() as u64 != page_size {
                return Err(Error::BadCopy {
                    path: temp.path.clone(),
                    reason: format!("page {pgno} read back as {} bytes", data.len()),
                });
            }
            std::os::unix::fs::FileExt::write_all_at(file, &data, (u64::from(*pgno) - 1) * page_size)
                .map_err(|e| write_error(&temp.path, "write a page", e))?;
            done += page_size;
            if !keep_going(done) {
                return Err(Error::Interrupted(self.dest.clone()));
            }
        }
        Ok(wal_pages.len() as u64)
    }

    fn backup(
        &self,
        source: &Connection,
        temp: &TempFile,
        state: &State,
        observer: &mut dyn Observer,
    ) -> Result<(), Error> {
        let dest_error = |e: rusqlite::Error| sqlite_write_error(&temp.path, e);
        let mut dest = Connection::open_with_flags(
            &temp.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(dest_error)?;
        // The temporary file is thrown away on any failure, so it needs no
        // journal and no sync per page: it is fsynced once, at the end.
        dest.pragma_update(None, "locking_mode", "EXCLUSIVE")
            .map_err(dest_error)?;
        dest.pragma_update(None, "synchronous", "OFF").map_err(dest_error)?;
        let _: String = dest
            .pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get(0))
            .map_err(dest_error)?;
        let total = state.pages * u64::from(state.page_size);
        let step_pages = ((16u32 << 20) / state.page_size).max(1) as i32;
        let deadline = sqlite_file::wait::deadline(self.options.timeout);
        {
            let backup = Backup::new(source, &mut dest).map_err(dest_error)?;
            loop {
                if observer.cancelled() {
                    return Err(Error::Interrupted(self.dest.clone()));
                }
                match backup.step(step_pages).map_err(|e| self.backup_error(e, &temp.path))? {
                    StepResult::Done => break,
                    StepResult::Busy | StepResult::Locked => {
                        if sqlite_file::wait::passed(deadline) {
                            return Err(Error::Busy {
                                path: self.source.clone(),
                                secs: self.options.timeout.as_secs_f64(),
                            });
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => {} // More
                }
                let p = backup.progress();
                let done = (p.pagecount - p.remaining).max(0) as u64 * u64::from(state.page_size);
                observer.progress(done, total);
            }
        }
        observer.progress(total, total);
        dest.close().map_err(|(_, e)| dest_error(e))
    }

    /// The cheap checks (header, page count, schema readable, no sidecar) and,
    /// with `verify`, `PRAGMA quick_check`. Returns whether quick_check ran.
    fn check_copy(&self, temp: &TempFile, state: &State) -> Result<bool, Error> {
        let bad = |reason: String| Error::BadCopy {
            path: temp.path.clone(),
            reason,
        };
        let header = Header::read(&temp.path).map_err(|e| bad(e.to_string()))?;
        let sidecars = Sidecars::of(&temp.path).map_err(|e| io_error(&temp.path, "look for sidecars", e))?;
        if !sidecars.is_empty() {
            return Err(bad(format!("sidecars left beside the copy: {:?}", sidecars.present())));
        }
        if header.page_size != state.page_size
            || header.user_version != state.user_version
            || header.application_id != state.application_id
        {
            return Err(bad("header differs from the source's state".into()));
        }
        let sqlite = |e| bad(format!("cannot read the copy: {e}"));
        {
            let db = open_read_only(&temp.path, &header, &sidecars).map_err(sqlite)?;
            let pages: i64 = db
                .conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(sqlite)?;
            let objects: i64 = db
                .conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(sqlite)?;
            let (pages, objects) = (pages as u64, objects as u64);
            if pages != state.pages || objects != state.objects {
                return Err(bad(format!(
                    "{pages} pages and {objects} schema rows, the source had {} and {}",
                    state.pages, state.objects
                )));
            }
            if self.options.verify {
                let result: String = db
                    .conn
                    .query_row("PRAGMA quick_check", [], |r| r.get(0))
                    .map_err(sqlite)?;
                if result != "ok" {
                    // The copy is SOURCE's pages: tell a corrupt SOURCE (bad
                    // input) from a bad copy (an I/O failure) by asking SOURCE.
                    if self.source_quick_check().is_some_and(|r| r != "ok") {
                        return Err(Error::NotADatabase {
                            path: self.source.clone(),
                            reason: format!("corrupt: PRAGMA quick_check says: {result}"),
                        });
                    }
                    return Err(bad(format!("quick_check: {result}")));
                }
            }
        }
        let after = Sidecars::of(&temp.path).map_err(|e| io_error(&temp.path, "look for sidecars", e))?;
        if !after.is_empty() {
            return Err(bad(format!("reading the copy left {:?}", after.present())));
        }
        Ok(self.options.verify)
    }

    /// `PRAGMA quick_check` on SOURCE itself, read-only (`None` if it cannot
    /// be asked): only after its copy failed the check.
    fn source_quick_check(&self) -> Option<String> {
        let header = Header::read(&self.source).ok()?;
        let sidecars = Sidecars::of(&self.source).ok()?;
        let db = open_read_only(&self.source, &header, &sidecars).ok()?;
        db.conn
            .busy_timeout(sqlite_file::wait::busy_timeout(self.options.timeout))
            .ok()?;
        match db.conn.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
            Ok(r) => Some(r),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase)
                ) =>
            {
                Some(e.to_string())
            }
            Err(_) => None,
        }
    }

    /// Classifies an SQLite error met while reading SOURCE.
    fn source_error(&self, e: rusqlite::Error, action: &'static str) -> Error {
        if is_busy(&e) {
            return Error::Busy {
                path: self.source.clone(),
                secs: self.options.timeout.as_secs_f64(),
            };
        }
        let path = self.source.clone();
        match e.sqlite_error() {
            Some(f) if f.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK => Error::HotJournal(path),
            Some(f) if f.code == ErrorCode::NotADatabase || f.code == ErrorCode::DatabaseCorrupt => {
                Error::NotADatabase {
                    path,
                    reason: format!("corrupt: {e}"),
                }
            }
            Some(f) if f.code == ErrorCode::PermissionDenied || f.code == ErrorCode::CannotOpen => {
                Error::PermissionDenied {
                    path,
                    action: "open with SQLite",
                }
            }
            _ => Error::Sqlite {
                path,
                action,
                source: e,
            },
        }
    }

    /// An error from a backup step: reading SOURCE or writing DEST.
    fn backup_error(&self, e: rusqlite::Error, temp: &Path) -> Error {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => sqlite_write_error(temp, e),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt | ErrorCode::DatabaseBusy) => {
                self.source_error(e, "copy")
            }
            _ => Error::Sqlite {
                path: self.source.clone(),
                action: "copy",
                source: e,
            },
        }
    }
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

/// The temporary file DEST is built in. Removed (with any sidecar) on drop
/// unless [`TempFile::finish`] put it in place.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
    done: bool,
}

impl TempFile {
    fn create(folder: &Path, dest_name: &str) -> Result<TempFile, Error> {
        let path = folder.join(format!("{}{}.tmp", temp_prefix(dest_name), std::process::id()));
        let file = sidefile::create_new(&path, 0o600).map_err(|e| match e {
            SideFileError::Io { source, .. } => write_error(&path, "create", source),
            e => Error::SideFile(e),
        })?;
        Ok(TempFile {
            path,
            file: Some(file),
            done: false,
        })
    }

    /// fsync, permissions from SOURCE (never wider), rename into place, fsync
    /// the folder.
    fn finish(mut self, source: &Path, dest: &Path, force: bool) -> Result<(), Error> {
        let file = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path).map_err(|e| io_error(&self.path, "open", e))?,
        };
        file.sync_all().map_err(|e| write_error(&self.path, "fsync", e))?;
        let mode = std::fs::metadata(source)
            .map_err(|e| io_error(source, "stat", e))?
            .permissions()
            .mode()
            & 0o777;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&self.path, "chmod", e))?;
        drop(file);
        // A sidecar that appeared at DEST's name since the check would be
        // replayed into the copy: refuse, leaving it (and the copy) alone.
        if let Some(stale) = sidefile::sidecars_present(dest)
            .map_err(|e| io_error(dest, "look for sidecars", e))?
            .first()
        {
            return Err(SideFileError::StaleSidecar(stale.clone()).into());
        }
        if force {
            std::fs::rename(&self.path, dest).map_err(|e| write_error(dest, "rename into place", e))?;
        } else {
            rename_noreplace(&self.path, dest).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::DestExists(dest.to_owned()),
                _ => write_error(dest, "rename into place", e),
            })?;
        }
        self.done = true;
        let folder = parent_dir(dest);
        sqlite_file::fs::fsync_dir(folder).map_err(|e| io_error(folder, "fsync folder", e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.done {
            remove_with_sidecars(&self.path);
        }
    }
}

fn remove_with_sidecars(path: &Path) {
    let _ = sidefile::remove_with_sidecars(path);
}

/// SQLite's "a writer holds the lock" (`SQLITE_BUSY` or `SQLITE_LOCKED`).
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Removes temporary files (and their sidecars) left in `folder` by killed
/// snapshots into the same DEST name, whose process is gone.
fn remove_leftovers(folder: &Path, dest_name: &str) -> Vec<PathBuf> {
    sidefile::dead_pid_leftovers(folder, &temp_prefix(dest_name), ".tmp")
        .into_iter()
        .filter(|p| sidefile::remove_with_sidecars(p).is_ok())
        .collect()
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// An I/O error while writing DEST: a full disk is named as such.
fn write_error(path: &Path, action: &'static str, e: io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::DiskFull {
            path: parent_dir(path).to_owned(),
            needed: None,
            available: None,
        },
        Some(libc::EACCES) | Some(libc::EPERM) => Error::PermissionDenied {
            path: path.to_owned(),
            action,
        },
        _ => io_error(path, action, e),
    }
}

fn sqlite_write_error(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => Error::DiskFull {
            path: parent_dir(path).to_owned(),
            needed: None,
            available: None,
        },
        _ => Error::Sqlite {
            path: path.to_owned(),
            action: "write copy",
            source: e,
        },
    }
}
