//! The checks: SOURCE readable and sound, DEST creatable (never over a link,
//! a FIFO or a device, never beside a stale sidecar), and the copy itself.

use super::*;

impl Snapshot {
    /// SOURCE exists, is a readable regular file and has a sound header.
    /// Returns the open file (kept open until SQLite is done with SOURCE).
    pub(crate) fn check_source(&self) -> Result<(File, Header), Error> {
        let path = &self.source;
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::File(FileError::Missing(path.clone())),
            io::ErrorKind::PermissionDenied => Error::File(FileError::PermissionDenied {
                path: path.clone(),
                action: "stat",
            }),
            _ => io_error(path, "stat", e),
        })?;
        if meta.is_dir() {
            return Err(Error::File(FileError::IsDirectory(path.clone())));
        }
        if !meta.is_file() {
            return Err(Error::File(FileError::NotADatabase {
                path: path.clone(),
                reason: format!("is {}, not a regular file", sidefile::kind_of(&meta.file_type())),
            }));
        }
        let mut file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => Error::File(FileError::PermissionDenied {
                path: path.clone(),
                action: "read",
            }),
            _ => io_error(path, "open", e),
        })?;
        let header = Header::read_from(&mut file, meta.len()).map_err(|e| match e {
            HeaderError::Io(e) => io_error(path, "read header", e),
            e => Error::File(FileError::NotADatabase {
                path: path.clone(),
                reason: e.to_string(),
            }),
        })?;
        Ok((file, header))
    }

    /// DEST can be created: its folder exists and is writable, it is not
    /// SOURCE or one of SOURCE's sidecars, and it does not exist (or `force`
    /// and nothing is beside it). Returns DEST's file name.
    pub(crate) fn check_dest(&self) -> Result<String, Error> {
        let dest = &self.dest;
        let folder = parent_dir(dest);
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|_| !dest.as_os_str().to_string_lossy().ends_with('/'))
            .ok_or_else(|| {
                Error::File(FileError::NotADatabase {
                    path: dest.clone(),
                    reason: "not a file name".into(),
                })
            })?
            .to_owned();
        match std::fs::metadata(folder) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(FileError::FolderMissing(folder.to_owned()).into()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FileError::FolderMissing(folder.to_owned()).into())
            }
            Err(e) => return Err(io_error(folder, "stat", e)),
        }
        // DEST is looked at without following a link: only a regular file
        // is ever replaced (with --force), never a link, FIFO or device.
        if FileId::of(&self.source)
            .ok()
            .is_some_and(|s| FileId::of(dest).ok() == Some(s))
        {
            return Err(Error::File(FileError::SameFile {
                a: self.source.clone(),
                b: dest.clone(),
            }));
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
            Found::Other("a directory") => return Err(Error::File(FileError::IsDirectory(dest.clone()))),
            Found::Other(kind) => {
                return Err(Error::File(FileError::NotADatabase {
                    path: dest.clone(),
                    reason: format!("is {kind}, not a regular file; not replacing it"),
                }))
            }
            Found::Link if self.options.force => {
                return Err(Error::File(FileError::NotADatabase {
                    path: dest.clone(),
                    reason: "is a symbolic link; --force replaces only a regular file".into(),
                }))
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
            return Err(Error::File(FileError::PermissionDenied {
                path: folder.to_owned(),
                action: "create files in folder",
            }));
        }
        Ok(name)
    }

    /// The cheap checks (header, page count, schema readable, no sidecar) and,
    /// with `verify`, `PRAGMA quick_check`. Returns whether quick_check ran.
    pub(crate) fn check_copy(&self, temp: &TempFile, state: &State) -> Result<bool, Error> {
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
                .conn()
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(sqlite)?;
            let objects: i64 = db
                .conn()
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
                    .conn()
                    .query_row("PRAGMA quick_check", [], |r| r.get(0))
                    .map_err(sqlite)?;
                if result != "ok" {
                    // The copy is SOURCE's pages: tell a corrupt SOURCE (bad
                    // input) from a bad copy (an I/O failure) by asking SOURCE.
                    if self.source_quick_check().is_some_and(|r| r != "ok") {
                        return Err(Error::File(FileError::NotADatabase {
                            path: self.source.clone(),
                            reason: format!("corrupt: PRAGMA quick_check says: {result}"),
                        }));
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
    pub(crate) fn source_quick_check(&self) -> Option<String> {
        let header = Header::read(&self.source).ok()?;
        let sidecars = Sidecars::of(&self.source).ok()?;
        let db = open_read_only(&self.source, &header, &sidecars).ok()?;
        db.conn()
            .busy_timeout(sqlite_file::wait::busy_timeout(self.options.timeout))
            .ok()?;
        match db.conn().query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)) {
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
}
