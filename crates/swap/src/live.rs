//! `--live`: the backup and NEW's pages written into the open TARGET under
//! one write lock, through SQLite's backup API.

use super::*;

impl Swap {
    /// `--live`: under one write lock on TARGET, taken once, the backup is
    /// made and then NEW's pages are written, so no commit of TARGET's
    /// application can land between the two and be in neither. Returns the
    /// backup's name; on failure TARGET is as it was and no backup is left.
    pub(crate) fn live(
        &self,
        new_header: &Header,
        target_header: &Header,
        mode: u32,
    ) -> Result<Option<PathBuf>, Error> {
        let (new, target) = (&self.new, &self.target);
        // Opened before SQLite's handles on TARGET and closed after them:
        // closing a second handle would drop SQLite's POSIX locks.
        let target_file = File::open(target).map_err(|e| io_error(target, "open", e))?;
        let new_sidecars = Sidecars::of(new).map_err(|e| io_error(new, "look for sidecars", e))?;
        let src = open_read_only(new, new_header, &new_sidecars).map_err(|e| sqlite_error(new, "open", e))?;
        let mut dst = Connection::open_with_flags(
            target,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sqlite_error(target, "open", e))?;
        dst.busy_timeout(sqlite_file::wait::busy_timeout(self.options.busy_timeout))
            .map_err(|e| sqlite_error(target, "busy timeout", e))?;
        let mut made = None;
        let result = (|| -> Result<(), Error> {
            let backup = Backup::new(src.conn(), &mut dst).map_err(|e| sqlite_error(target, "write", e))?;
            // A step of no pages takes TARGET's write lock (exclusive in
            // rollback mode), which the backup holds until it ends.
            self.run_backup(&backup, 0, target, "taking its write lock")?;
            if self.options.backup {
                made = Some(self.live_backup(target_header, &target_file, mode)?);
            }
            self.run_backup(&backup, -1, target, "writing the new content")
        })();
        let closed = dst.close().map_err(|(_, e)| sqlite_error(target, "close", e));
        drop(src);
        drop(target_file);
        match result.and(closed) {
            Ok(()) => Ok(made),
            Err(e) => {
                if let Some(b) = &made {
                    let _ = std::fs::remove_file(b);
                }
                Err(e)
            }
        }
    }

    /// The backup of the open TARGET, taken while this process holds its
    /// write lock: in rollback mode the file itself (the exclusive lock
    /// keeps everyone out, and nothing is written yet); in WAL mode through a
    /// second, read-only connection, which sees the last commit.
    pub(crate) fn live_backup(&self, header: &Header, target_file: &File, mode: u32) -> Result<PathBuf, Error> {
        let target = &self.target;
        let temp = sidefile::pid_temp(target, "backup");
        let result = (|| {
            let out = sidefile::create_new(&temp, 0o600).map_err(|e| side_error(&temp, e))?;
            match header.journal {
                JournalFlag::Rollback => {
                    let len = target_file.metadata().map_err(|e| io_error(target, "stat", e))?.len();
                    let copied = copy_range(target_file, &out, len, &mut |_| true)
                        .map_err(|e| io_error(&temp, "copy for the backup", e))?;
                    if copied != len {
                        return Err(io_error(
                            target,
                            "copy for the backup",
                            io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank under an exclusive lock"),
                        ));
                    }
                }
                JournalFlag::Wal => {
                    let sidecars = Sidecars::of(target).map_err(|e| io_error(target, "look for sidecars", e))?;
                    let src = open_read_only(target, header, &sidecars).map_err(|e| sqlite_error(target, "open", e))?;
                    let mut dst = Connection::open(&temp).map_err(|e| sqlite_error(&temp, "open", e))?;
                    dst.pragma_update(None, "synchronous", "OFF")
                        .map_err(|e| sqlite_error(&temp, "pragma", e))?;
                    let _: String = dst
                        .pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get(0))
                        .map_err(|e| sqlite_error(&temp, "pragma", e))?;
                    {
                        let backup =
                            Backup::new(src.conn(), &mut dst).map_err(|e| sqlite_error(target, "backup", e))?;
                        self.run_backup(&backup, -1, target, "reading for the backup")?;
                    }
                    dst.close().map_err(|(_, e)| sqlite_error(&temp, "close", e))?;
                }
            }
            out.set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_error(&temp, "chmod", e))?;
            out.sync_all().map_err(|e| io_error(&temp, "fsync", e))?;
            let name = backups::new_name(target, SystemTime::now());
            rename_noreplace(&temp, &name).map_err(|e| io_error(&name, "name the backup", e))?;
            fsync_dir(parent_dir(target)).map_err(|e| io_error(target, "fsync folder", e))?;
            Ok(name)
        })();
        if result.is_err() {
            let _ = sidefile::remove_with_sidecars(&temp);
        }
        result
    }

    /// Steps `backup` by `pages` (-1: to the end; 0: only take the locks)
    /// until that is done, retrying Busy/Locked until the busy timeout.
    pub(crate) fn run_backup(
        &self,
        backup: &Backup,
        pages: i32,
        blame: &Path,
        what: &'static str,
    ) -> Result<(), Error> {
        let deadline = sqlite_file::wait::deadline(self.options.busy_timeout);
        loop {
            match backup.step(pages) {
                Ok(StepResult::Done) => return Ok(()),
                Ok(StepResult::More) if pages >= 0 => return Ok(()),
                Ok(StepResult::Busy | StepResult::Locked) => {}
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.sqlite_error_code(),
                        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    ) => {}
                Err(e) => return Err(sqlite_error(blame, what, e)),
            }
            if sqlite_file::wait::passed(deadline) {
                return Err(Error::Busy {
                    path: blame.to_owned(),
                    secs: self.options.busy_timeout.as_secs_f64(),
                    what: "an application holds a transaction open",
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
