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
//! - The same, in a folder this process cannot write: no writer can exist
//!   (it could not create a `-wal` either), so the file alone is the whole
//!   state and it is opened `immutable=1`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::fs::{dir_writable, parent_dir};
use crate::{Header, JournalFlag, Sidecars};

/// How [`open_read_only`] opened the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// `SQLITE_OPEN_READONLY`.
    ReadOnly,
    /// `SQLITE_OPEN_READWRITE` with `PRAGMA query_only=1`: no statement can write.
    QueryOnly,
    /// Read-only with `immutable=1`: a WAL-mode file with no sidecars in a
    /// folder nobody here can write to.
    Immutable,
}

/// A connection that cannot write, opened by [`open_read_only`].
#[derive(Debug)]
pub struct ReadOnlyDb {
    /// The connection. Nothing it runs can write the database.
    pub conn: Connection,
    /// How it was opened.
    pub mode: OpenMode,
    /// The path it was opened with.
    pub path: PathBuf,
}

/// Opens the database at `path` so that reading it leaves the file and its
/// folder as they were found. The caller has already checked the header and
/// looked at the sidecars.
pub fn open_read_only(path: &Path, header: &Header, sidecars: &Sidecars) -> rusqlite::Result<ReadOnlyDb> {
    let no_sidecar = sidecars.wal.is_none() && sidecars.shm.is_none();
    let mode = if header.journal == JournalFlag::Wal && no_sidecar {
        if dir_writable(parent_dir(path)).unwrap_or(false) {
            OpenMode::QueryOnly
        } else {
            OpenMode::Immutable
        }
    } else {
        OpenMode::ReadOnly
    };
    let conn = match mode {
        OpenMode::ReadOnly => {
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?
        }
        OpenMode::QueryOnly => {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.pragma_update(None, "query_only", true)?;
            conn
        }
        OpenMode::Immutable => Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        )?,
    };
    Ok(ReadOnlyDb {
        conn,
        mode,
        path: path.to_owned(),
    })
}

/// Removes the empty `-wal` and the `-shm` that a killed reader left beside
/// the WAL-mode database `db`, the way SQLite itself removes them: opened
/// read-write with `query_only`, read, and closed as the last connection.
///
/// Only when the `-wal` holds no frame (0 bytes: nothing any writer ever
/// committed there), both are regular files, `db` is writable by this
/// process and no process has `db` or a sidecar open; then the close
/// checkpoints nothing and no byte of `db` changes. Returns whether they are
/// gone; `false` leaves everything as it was.
pub fn close_idle_wal(db: &Path) -> std::io::Result<bool> {
    use crate::sidefile::{look, Found};
    use crate::{sidecar_path, Sidecar};
    let Ok(header) = Header::read(db) else {
        return Ok(false);
    };
    let wal = look(&sidecar_path(db, Sidecar::Wal))?;
    let shm = look(&sidecar_path(db, Sidecar::Shm))?;
    let empty_wal = matches!(&wal, Found::Regular(m) if m.len() == 0);
    let shm_ok = matches!(shm, Found::Regular(_) | Found::Nothing);
    if header.journal != JournalFlag::Wal || !empty_wal || !shm_ok {
        return Ok(false);
    }
    if !crate::fs::file_writable(db)? || !crate::users::users(db)?.is_empty() {
        return Ok(false);
    }
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(std::io::Error::other)?;
    conn.pragma_update(None, "query_only", true)
        .map_err(std::io::Error::other)?;
    let read: rusqlite::Result<i64> = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0));
    read.map_err(std::io::Error::other)?;
    conn.close().map_err(|(_, e)| std::io::Error::other(e))?;
    Ok(matches!(look(&sidecar_path(db, Sidecar::Wal))?, Found::Nothing)
        && matches!(look(&sidecar_path(db, Sidecar::Shm))?, Found::Nothing))
}

/// Percent-encodes a path for an SQLite `file:` URI.
pub fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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

    fn read_everything(path: &Path) -> OpenMode {
        let header = Header::read(path).expect("header");
        let sidecars = Sidecars::of(path).expect("sidecars");
        let db = open_read_only(path, &header, &sidecars).expect("open");
        let n: i64 = db
            .conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 3);
        assert!(db.conn.execute("INSERT INTO t VALUES (4)", []).is_err());
        db.mode
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
            let opened = read_everything(&path);
            assert_eq!(folder(dir.path()), before, "journal_mode={mode}");
            let expected = if mode == "WAL" {
                OpenMode::QueryOnly
            } else {
                OpenMode::ReadOnly
            };
            assert_eq!(opened, expected, "journal_mode={mode}");
            assert!(!sidecar_path(&path, Sidecar::Wal).exists());
        }
    }

    #[test]
    fn a_killed_readers_empty_wal_and_shm_go_and_no_byte_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);")
            .expect("sql");
        drop(conn);
        let bytes = std::fs::read(&path).expect("read");
        // What a reader killed before closing leaves: an empty -wal and a -shm.
        std::fs::write(sidecar_path(&path, Sidecar::Wal), b"").expect("write");
        std::fs::write(sidecar_path(&path, Sidecar::Shm), vec![0u8; 32768]).expect("write");
        assert!(close_idle_wal(&path).expect("close"));
        assert!(!sidecar_path(&path, Sidecar::Wal).exists());
        assert!(!sidecar_path(&path, Sidecar::Shm).exists());
        assert_eq!(std::fs::read(&path).expect("read"), bytes);
        // A -wal with content is someone's data: left alone.
        std::fs::write(sidecar_path(&path, Sidecar::Wal), b"frames").expect("write");
        assert!(!close_idle_wal(&path).expect("close"));
        assert!(sidecar_path(&path, Sidecar::Wal).exists());
    }

    #[test]
    fn uri_paths_escape_what_sqlite_would_parse() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%.db")), "/a%20b/c%3Fd%23e%25.db");
    }
}
