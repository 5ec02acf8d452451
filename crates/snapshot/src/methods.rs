//! The two ways to copy, inside SOURCE's one read transaction: the kernel's
//! byte copy (with the `-wal`'s pages read again through SQLite) and the
//! backup API; and what their SQLite errors mean.

use super::*;

/// SQLite's "a writer holds the lock" (`SQLITE_BUSY` or `SQLITE_LOCKED`).
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

impl Snapshot {
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
    pub(crate) fn byte_copy(
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
            JournalFlag::Wal => self.pages_in_wal(state)?,
        };
        let total = want + wal_pages.len() as u64 * page_size;
        let file = temp
            .file
            .as_ref()
            .ok_or_else(|| io_error(&temp.path, "write", io::ErrorKind::Other.into()))?;
        let interrupted = |e: io::Error| match e.kind() {
            io::ErrorKind::Interrupted => Error::Interrupted(self.dest.clone()),
            _ => io_error(&temp.path, "copy", e),
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
        file.set_len(size).map_err(|e| io_error(&temp.path, "resize", e))?;
        let mut stmt = conn
            .prepare(PAGE_THROUGH_SQLITE)
            .map_err(|e| self.source_error(e, "read pages"))?;
        let mut done = copied;
        for &pgno in &wal_pages {
            let data = self.page_through_sqlite(&mut stmt, pgno, page_size, &temp.path)?;
            std::os::unix::fs::FileExt::write_all_at(file, &data, (u64::from(pgno) - 1) * page_size)
                .map_err(|e| io_error(&temp.path, "write a page", e))?;
            done += page_size;
            if !keep_going(done) {
                return Err(Error::Interrupted(self.dest.clone()));
            }
        }
        Ok(wal_pages.len() as u64)
    }

    pub(crate) fn backup(
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

    /// Classifies an SQLite error met while reading SOURCE.
    pub(crate) fn source_error(&self, e: rusqlite::Error, action: &'static str) -> Error {
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
                Error::File(FileError::NotADatabase {
                    path,
                    reason: format!("corrupt: {e}"),
                })
            }
            Some(f) if f.code == ErrorCode::PermissionDenied || f.code == ErrorCode::CannotOpen => {
                Error::File(FileError::PermissionDenied {
                    path,
                    action: "open with SQLite",
                })
            }
            _ => Error::File(FileError::Sqlite {
                path,
                action,
                source: e,
            }),
        }
    }

    /// An error from a backup step: reading SOURCE or writing DEST.
    pub(crate) fn backup_error(&self, e: rusqlite::Error, temp: &Path) -> Error {
        match e.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => sqlite_write_error(temp, e),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt | ErrorCode::DatabaseBusy) => {
                self.source_error(e, "copy")
            }
            _ => Error::File(FileError::Sqlite {
                path: self.source.clone(),
                action: "copy",
                source: e,
            }),
        }
    }
}
