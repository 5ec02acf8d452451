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
//!   created; no byte of the database changes. Where SQLite cannot (a full
//!   disk: the `-shm` cannot grow, the read fails, and the close leaves an
//!   empty `-wal` and a `-shm`), dropping the [`ReadOnlyDb`] removes them
//!   itself, by the rules of [`close_idle_wal`].
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

/// A connection that cannot write, opened by [`open_read_only`]. Dropping it
/// leaves the folder as it was found (see the module's docs).
#[derive(Debug)]
pub struct ReadOnlyDb {
    /// `Some` until dropped.
    conn: Option<Connection>,
    /// How it was opened.
    pub mode: OpenMode,
    /// The path it was opened with.
    pub path: PathBuf,
}

impl ReadOnlyDb {
    /// The connection. Nothing it runs can write the database.
    pub fn conn(&self) -> &Connection {
        self.conn
            .as_ref()
            .expect("a ReadOnlyDb has its connection until dropped")
    }
}

impl Drop for ReadOnlyDb {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn.close());
        }
        // Opened with no sidecar beside it: whatever SQLite's close left
        // (only after a failure) is this connection's, if nobody else has
        // taken the file up meanwhile.
        if self.mode == OpenMode::QueryOnly && !sidecars_gone(&self.path) {
            let _ = close_idle_wal(&self.path);
        }
    }
}

fn sidecars_gone(db: &Path) -> bool {
    use crate::sidefile::{look, Found};
    use crate::{sidecar_path, Sidecar};
    [Sidecar::Wal, Sidecar::Shm]
        .iter()
        .all(|&s| matches!(look(&sidecar_path(db, s)), Ok(Found::Nothing)))
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
        conn: Some(conn),
        mode,
        path: path.to_owned(),
    })
}

/// Removes the empty `-wal` and the `-shm` that a killed or failed reader
/// left beside the WAL-mode database `db`, the way SQLite itself removes
/// them: opened read-write with `query_only`, read, and closed as the last
/// connection.
///
/// Only when the `-wal` holds no frame (0 bytes, or not there: nothing any
/// writer ever committed), both are regular files, `db` is writable by this
/// process, no other process has `db` or a sidecar open and no other
/// connection of this one has a sidecar open;
/// then the close checkpoints nothing and no byte of `db` changes.
///
/// Where SQLite cannot finish (a full disk: the `-shm` cannot grow), the
/// same checks are made again under SQLite's exclusive lock on `db`, which
/// no connection can hold a read or write beside, and the two files are
/// unlinked by hand. Returns whether they are gone; `false` leaves
/// everything as it was.
pub fn close_idle_wal(db: &Path) -> std::io::Result<bool> {
    use crate::{sidecar_path, Sidecar};
    // Another connection of this process would lose its locks when the
    // handles below close; and its sidecars are not idle.
    if crate::users::sidecars_held_here(db) || !idle_sidecars(db)? {
        return Ok(false);
    }
    let _ = close_as_last(db);
    if sidecars_gone(db) {
        return Ok(true);
    }
    let Some(_exclusive) = exclusive_lock(db)? else {
        return Ok(false);
    };
    if !idle_sidecars(db)? {
        return Ok(false);
    }
    for sidecar in [Sidecar::Wal, Sidecar::Shm] {
        match std::fs::remove_file(sidecar_path(db, sidecar)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(sidecars_gone(db))
}

/// Whether `db` is a WAL-mode file with a frameless `-wal` and/or a `-shm`
/// beside it, both regular, that no other process has open and this process
/// may remove.
fn idle_sidecars(db: &Path) -> std::io::Result<bool> {
    use crate::sidefile::{look, Found};
    use crate::{sidecar_path, Sidecar};
    let Ok(header) = Header::read(db) else {
        return Ok(false);
    };
    let wal = look(&sidecar_path(db, Sidecar::Wal))?;
    let shm = look(&sidecar_path(db, Sidecar::Shm))?;
    let frameless = match &wal {
        Found::Regular(m) => m.len() == 0,
        Found::Nothing => true,
        _ => false,
    };
    let shm_ok = matches!(shm, Found::Regular(_) | Found::Nothing);
    let something = !matches!((&wal, &shm), (Found::Nothing, Found::Nothing));
    Ok(header.journal == JournalFlag::Wal
        && frameless
        && shm_ok
        && something
        && crate::fs::file_writable(db)?
        && crate::users::users(db)?.is_empty())
}

/// Opens `db` read-write with `query_only`, reads, and closes it.
fn close_as_last(db: &Path) -> rusqlite::Result<()> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0))?;
    conn.close().map_err(|(_, e)| e)
}

/// SQLite's EXCLUSIVE lock on `db` (a POSIX write lock on all its lock
/// bytes), taken without waiting: while it is held no connection anywhere
/// can begin a read or a write, nor open the `-wal`. `None` when another
/// process holds any of those bytes. Dropping the file releases it; callers
/// have checked that this process has no other handle on `db`, whose locks
/// that close would drop.
fn exclusive_lock(db: &Path) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(db)?;
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let lock = crate::users::write_lock(crate::users::PENDING_BYTE, crate::users::LOCK_BYTES);
    // SAFETY: F_SETLK reads `lock` and takes the lock on our own fd.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) };
    Ok((rc == 0).then_some(file))
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
            .conn()
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 3);
        assert!(db.conn().execute("INSERT INTO t VALUES (4)", []).is_err());
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

    /// `DIR/t.db`: WAL mode, three rows in `t`, no sidecar beside it.
    fn wal_db(dir: &Path) -> PathBuf {
        let path = dir.join("t.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES (1),(2),(3);")
            .expect("sql");
        drop(conn);
        path
    }

    #[test]
    fn a_killed_readers_empty_wal_and_shm_go_and_no_byte_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_db(dir.path());
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
    fn dropping_a_reader_leaves_the_sidecars_another_connection_here_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = wal_db(dir.path());
        let header = Header::read(&path).expect("header");
        let reader = open_read_only(&path, &header, &Sidecars::of(&path).expect("sidecars")).expect("open");
        assert_eq!(reader.mode, OpenMode::QueryOnly);
        // Another connection of this process reads: the -wal stays empty.
        let other = Connection::open(&path).expect("open");
        let n: i64 = other
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(n, 3);
        drop(reader);
        assert_eq!(
            std::fs::metadata(sidecar_path(&path, Sidecar::Wal))
                .expect("-wal")
                .len(),
            0
        );
        assert!(sidecar_path(&path, Sidecar::Shm).exists(), "still in use here");
        other.execute("INSERT INTO t VALUES (4)", []).expect("insert");
        drop(other);
        assert!(!sidecar_path(&path, Sidecar::Wal).exists(), "the last close removes it");
    }

    #[test]
    fn uri_paths_escape_what_sqlite_would_parse() {
        assert_eq!(uri_path(Path::new("/a b/c?d#e%.db")), "/a%20b/c%3Fd%23e%25.db");
    }
}
