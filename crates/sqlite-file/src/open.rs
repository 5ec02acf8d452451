//! Opening a database for reading without changing it or its folder.
//!
//! The rule, measured on this project's machines (see ARCHITECTURE.md):
//! - A rollback-mode file is opened read-only (`SQLITE_OPEN_READONLY`): that
//!   creates nothing, and a hot journal is reported (`SQLITE_READONLY_ROLLBACK`)
//!   instead of being rolled back into the file.
//! - A WAL-mode file whose `-wal` or `-shm` exists (a live or crashed app) is
//!   opened read-only too: its bytes and its `-wal` stay as they are; only the
//!   read marks in `-shm` move, as for any WAL reader.
//! - A WAL-mode file with no `-wal` and no `-shm`: a read-only open would create
//!   both and leave them behind, so it is opened read-write with
//!   `PRAGMA query_only=1`. The last connection to close then removes what it
//!   created; no byte of the database changes.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::{Header, JournalFlag, Sidecars};

/// How [`open_read_only`] opened the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `SQLITE_OPEN_READONLY`.
    ReadOnly,
    /// `SQLITE_OPEN_READWRITE` with `PRAGMA query_only=1`: no statement can write.
    QueryOnly,
}

/// A connection that cannot write, opened by [`open_read_only`].
#[derive(Debug)]
pub struct ReadOnlyDb {
    /// The connection. Foreign-key enforcement and everything else are left
    /// at the library defaults; nothing this connection runs can write.
    pub conn: Connection,
    /// How it was opened.
    pub mode: OpenMode,
    /// The path it was opened with.
    pub path: PathBuf,
}

/// Opens the database at `path` so that reading it leaves the file and its
/// folder as they were found. The caller has already checked the header.
pub fn open_read_only(path: &Path, header: &Header, sidecars: &Sidecars) -> rusqlite::Result<ReadOnlyDb> {
    let no_sidecar = sidecars.wal.is_none() && sidecars.shm.is_none();
    let (flags, mode) = if header.journal == JournalFlag::Wal && no_sidecar {
        (OpenFlags::SQLITE_OPEN_READ_WRITE, OpenMode::QueryOnly)
    } else {
        (OpenFlags::SQLITE_OPEN_READ_ONLY, OpenMode::ReadOnly)
    };
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    if mode == OpenMode::QueryOnly {
        conn.pragma_update(None, "query_only", true)?;
    }
    Ok(ReadOnlyDb {
        conn,
        mode,
        path: path.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{sidecar_path, Sidecar};

    fn folder(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| {
                let e = e.expect("entry");
                let name = e.file_name().to_string_lossy().into_owned();
                let bytes = if name.ends_with("-shm") {
                    Vec::new() // read marks move, as for any WAL reader
                } else {
                    std::fs::read(e.path()).expect("read")
                };
                (name, bytes)
            })
            .collect();
        out.sort();
        out
    }

    fn read_everything(path: &Path) {
        let header = Header::read(path).expect("header");
        let sidecars = Sidecars::of(path).expect("sidecars");
        let db = open_read_only(path, &header, &sidecars).expect("open");
        let n: i64 = db
            .conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 3);
        assert!(db.conn.execute("INSERT INTO t VALUES (4)", []).is_err());
    }

    #[test]
    fn leaves_every_kind_of_file_and_folder_as_found() {
        for mode in ["WAL", "DELETE", "PERSIST", "TRUNCATE"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.db");
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(&format!(
                "PRAGMA journal_mode={mode}; CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);"
            ))
            .expect("sql");
            drop(conn);
            let before = folder(dir.path());
            read_everything(&path);
            assert_eq!(folder(dir.path()), before, "journal_mode={mode}");
            assert!(!sidecar_path(&path, Sidecar::Wal).exists() || mode == "WAL");
        }
    }
}
