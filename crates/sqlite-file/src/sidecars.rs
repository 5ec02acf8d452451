//! The files SQLite keeps beside a database: `-wal`, `-shm` and `-journal`.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The magic number that starts a rollback journal's header.
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];

/// One kind of sidecar file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sidecar {
    Wal,
    Shm,
    Journal,
}

impl Sidecar {
    /// Every kind, in the order they are usually listed.
    pub const ALL: [Sidecar; 3] = [Sidecar::Wal, Sidecar::Shm, Sidecar::Journal];

    /// The suffix SQLite appends to the database's path.
    pub fn suffix(self) -> &'static str {
        match self {
            Sidecar::Wal => "-wal",
            Sidecar::Shm => "-shm",
            Sidecar::Journal => "-journal",
        }
    }
}

/// The path of a sidecar of the database at `db`.
pub fn sidecar_path(db: &Path, kind: Sidecar) -> PathBuf {
    let mut name: OsString = db.as_os_str().to_owned();
    name.push(kind.suffix());
    PathBuf::from(name)
}

/// What a `-journal` file beside a database means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalState {
    /// Empty (left by `journal_mode=TRUNCATE`) or with a zeroed header (left by
    /// `journal_mode=PERSIST`): nothing to roll back, not stale.
    Inactive,
    /// Has a journal header: either a writer is in a transaction right now, or
    /// a writer died mid-transaction and SQLite will roll it back (a hot journal).
    Live,
}

/// The sidecars present beside one database, with their sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sidecars {
    /// Size of `-wal`, if it exists.
    pub wal: Option<u64>,
    /// Size of `-shm`, if it exists.
    pub shm: Option<u64>,
    /// State of `-journal`, if it exists.
    pub journal: Option<JournalState>,
}

impl Sidecars {
    /// Looks at the sidecars of the database at `db`.
    pub fn of(db: &Path) -> io::Result<Sidecars> {
        let size = |kind| match std::fs::symlink_metadata(sidecar_path(db, kind)) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
        let journal = match size(Sidecar::Journal)? {
            None => None,
            Some(0) => Some(JournalState::Inactive),
            Some(_) => Some(journal_state(&sidecar_path(db, Sidecar::Journal))?),
        };
        Ok(Sidecars {
            wal: size(Sidecar::Wal)?,
            shm: size(Sidecar::Shm)?,
            journal,
        })
    }

    /// No sidecar at all exists.
    pub fn is_empty(&self) -> bool {
        self.wal.is_none() && self.shm.is_none() && self.journal.is_none()
    }

    /// The sidecar kinds present.
    pub fn present(&self) -> Vec<Sidecar> {
        let mut out = Vec::new();
        if self.wal.is_some() {
            out.push(Sidecar::Wal);
        }
        if self.shm.is_some() {
            out.push(Sidecar::Shm);
        }
        if self.journal.is_some() {
            out.push(Sidecar::Journal);
        }
        out
    }

    /// Whether a `-wal` with frames (longer than its 32-byte header) exists.
    pub fn wal_has_frames(&self) -> bool {
        self.wal.is_some_and(|len| len > 32)
    }
}

/// The page numbers named by every frame header in the `-wal` of the
/// database at `db`, whatever its salt or checksum: a superset of the pages
/// that any reader's snapshot takes from the WAL. Empty when there is no
/// `-wal`. Fails with `InvalidData` when the WAL's header is not one for
/// pages of `page_size` bytes.
pub fn wal_page_numbers(db: &Path, page_size: u32) -> io::Result<BTreeSet<u32>> {
    use std::os::unix::fs::FileExt;
    let file = match File::open(sidecar_path(db, Sidecar::Wal)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut pages = BTreeSet::new();
    if len < 32 {
        return Ok(pages);
    }
    let mut header = [0u8; 32];
    file.read_exact_at(&mut header, 0)?;
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let magic = be32(&header[0..4]);
    if magic & !1 != 0x377f_0682 || be32(&header[8..12]) != page_size {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the -wal header does not match the database",
        ));
    }
    let frame = 24 + u64::from(page_size);
    let mut at = 32u64;
    let mut pgno = [0u8; 4];
    while at + frame <= len {
        file.read_exact_at(&mut pgno, at)?;
        let n = be32(&pgno);
        if n != 0 {
            pages.insert(n);
        }
        at += frame;
    }
    Ok(pages)
}

fn journal_state(path: &Path) -> io::Result<JournalState> {
    let mut head = [0u8; 8];
    let mut file = match File::open(path) {
        Ok(f) => f,
        // Gone between the two looks: a writer finished its transaction.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(JournalState::Inactive),
        Err(e) => return Err(e),
    };
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(if got == head.len() && head == JOURNAL_MAGIC {
        JournalState::Live
    } else {
        JournalState::Inactive
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_append_to_the_full_path() {
        assert_eq!(
            sidecar_path(Path::new("/a/b.db"), Sidecar::Wal),
            PathBuf::from("/a/b.db-wal")
        );
        assert_eq!(
            sidecar_path(Path::new("x"), Sidecar::Journal),
            PathBuf::from("x-journal")
        );
    }

    #[test]
    fn persist_and_truncate_journals_are_inactive() {
        for mode in ["PERSIST", "TRUNCATE"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("t.db");
            let conn = rusqlite::Connection::open(&path).expect("open");
            conn.execute_batch(&format!(
                "PRAGMA journal_mode={mode}; CREATE TABLE t(x); INSERT INTO t VALUES (1);"
            ))
            .expect("sql");
            drop(conn);
            let s = Sidecars::of(&path).expect("sidecars");
            assert_eq!(s.journal, Some(JournalState::Inactive), "{mode}");
        }
    }

    #[test]
    fn lists_the_pages_in_the_wal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t(x);")
            .expect("sql");
        let pages = wal_page_numbers(&path, 4096).expect("wal");
        assert_eq!(pages, BTreeSet::from([1, 2]), "schema page and the new table's root");
        assert!(wal_page_numbers(&path, 1024).is_err(), "wrong page size");
        drop(conn);
        assert!(wal_page_numbers(&path, 4096).expect("no wal").is_empty());
    }

    #[test]
    fn a_journal_with_a_header_is_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("t.db");
        std::fs::write(&db, b"").expect("write");
        let mut bytes = JOURNAL_MAGIC.to_vec();
        bytes.extend_from_slice(&[0u8; 504]);
        std::fs::write(sidecar_path(&db, Sidecar::Journal), bytes).expect("write");
        let s = Sidecars::of(&db).expect("sidecars");
        assert_eq!(s.journal, Some(JournalState::Live));
        assert_eq!(s.present(), vec![Sidecar::Journal]);
    }
}
