//! The files SQLite keeps beside a database: `-wal`, `-shm` and `-journal`.

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
