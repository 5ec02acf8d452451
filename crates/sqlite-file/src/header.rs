//! The 100-byte SQLite database header (<https://www.sqlite.org/fileformat.html>).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// Length of the database header.
pub const HEADER_LEN: usize = 100;
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Why a file's header does not describe a usable database.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The file could not be opened or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A FIFO, socket or device: never opened as a database.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// The file is empty (SQLite would treat it as a new, empty database).
    #[error("empty file, not a database")]
    Empty,
    /// The file does not start with the SQLite magic string.
    #[error("not an SQLite database (bad header)")]
    NotADatabase,
    /// The file is shorter than its header says it must be.
    #[error("truncated: {actual} bytes, the header says at least {expected}")]
    Truncated { actual: u64, expected: u64 },
    /// A header field holds a value SQLite never writes.
    #[error("corrupt header: {0}")]
    Corrupt(&'static str),
}

/// The file-format flag of bytes 18/19: what the next connection will use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalFlag {
    /// Legacy rollback journal (`DELETE`, `TRUNCATE`, `PERSIST`, `MEMORY`, `OFF`).
    Rollback,
    /// Write-ahead log.
    Wal,
}

/// Text encoding of the database (header offset 56).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Utf8,
    Utf16le,
    Utf16be,
}

impl Encoding {
    /// The name `PRAGMA encoding` answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Utf16le => "UTF-16le",
            Encoding::Utf16be => "UTF-16be",
        }
    }
}

impl JournalFlag {
    /// `"wal"` or `"rollback"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JournalFlag::Rollback => "rollback",
            JournalFlag::Wal => "wal",
        }
    }
}

/// The fields of the header that the tools need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Page size in bytes (512..=65536).
    pub page_size: u32,
    /// WAL or rollback, from the read/write version bytes.
    pub journal: JournalFlag,
    /// File change counter (offset 24).
    pub change_counter: u32,
    /// Database size in pages, when the in-header size is valid (offset 28).
    pub page_count: Option<u32>,
    /// Text encoding (offset 56); `None` for a database with no schema yet.
    pub encoding: Option<Encoding>,
    /// `PRAGMA user_version` (offset 60).
    pub user_version: i32,
    /// `PRAGMA application_id` (offset 68).
    pub application_id: i32,
    /// `PRAGMA auto_vacuum`: 0 none, 1 full, 2 incremental.
    pub auto_vacuum: u8,
}

impl Header {
    /// Reads and checks the header of the file at `path`, and that the file is
    /// as long as the header says.
    /// A FIFO or device is never read (opened without blocking, then refused).
    pub fn read(path: &Path) -> Result<Header, HeaderError> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(HeaderError::NotRegular(crate::sidefile::kind_of(&meta.file_type())));
        }
        Self::read_from(&mut file, meta.len())
    }

    /// Like [`Header::read`], from an open file of length `len`.
    pub fn read_from(file: &mut File, len: u64) -> Result<Header, HeaderError> {
        if len == 0 {
            return Err(HeaderError::Empty);
        }
        let mut buf = [0u8; HEADER_LEN];
        let mut got = 0;
        while got < HEADER_LEN {
            match file.read(&mut buf[got..])? {
                0 => break,
                n => got += n,
            }
        }
        if got < MAGIC.len() || &buf[..MAGIC.len()] != MAGIC {
            return Err(HeaderError::NotADatabase);
        }
        if got < HEADER_LEN {
            return Err(HeaderError::Truncated {
                actual: len,
                expected: HEADER_LEN as u64,
            });
        }
        let header = Self::parse(&buf)?;
        // The in-header size is what the file must hold at least. (With a WAL
        // the file may be longer; it is never legitimately shorter.)
        let pages = u64::from(header.page_count.unwrap_or(1).max(1));
        let expected = pages * u64::from(header.page_size);
        if len < expected {
            return Err(HeaderError::Truncated { actual: len, expected });
        }
        Ok(header)
    }

    /// What SQLite assumes of an empty (0-byte) file: a new, empty database
    /// in rollback mode. For callers that accept empty files as databases.
    pub fn of_empty_file() -> Header {
        Header {
            page_size: 4096,
            journal: JournalFlag::Rollback,
            change_counter: 0,
            page_count: Some(0),
            encoding: None,
            user_version: 0,
            application_id: 0,
            auto_vacuum: 0,
        }
    }

    /// Parses a header from its 100 bytes.
    pub fn parse(buf: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
        if &buf[..MAGIC.len()] != MAGIC {
            return Err(HeaderError::NotADatabase);
        }
        let be16 = |at: usize| u16::from_be_bytes([buf[at], buf[at + 1]]);
        let be32 = |at: usize| u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
        let page_size = match be16(16) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => u32::from(n),
            _ => return Err(HeaderError::Corrupt("invalid page size")),
        };
        let journal = match (buf[18], buf[19]) {
            (1, 1) => JournalFlag::Rollback,
            (2, 2) => JournalFlag::Wal,
            _ => return Err(HeaderError::Corrupt("unknown file format version")),
        };
        if buf[21] != 64 || buf[22] != 32 || buf[23] != 32 {
            return Err(HeaderError::Corrupt("invalid payload fractions"));
        }
        let change_counter = be32(24);
        let page_count = (be32(92) == change_counter && be32(28) != 0).then(|| be32(28));
        let encoding = match be32(56) {
            0 => None,
            1 => Some(Encoding::Utf8),
            2 => Some(Encoding::Utf16le),
            3 => Some(Encoding::Utf16be),
            _ => return Err(HeaderError::Corrupt("invalid text encoding")),
        };
        let auto_vacuum = match (be32(52), be32(64)) {
            (0, _) => 0,
            (_, 0) => 1,
            _ => 2,
        };
        Ok(Header {
            page_size,
            journal,
            change_counter,
            page_count,
            encoding,
            user_version: be32(60) as i32,
            application_id: be32(68) as i32,
            auto_vacuum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn db(sql: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.db");
        let conn = rusqlite::Connection::open(&path).expect("open");
        conn.execute_batch(sql).expect("sql");
        drop(conn);
        (dir, path)
    }

    #[test]
    fn reads_the_fields_sqlite_reports() {
        let (_dir, path) = db("PRAGMA page_size=8192; PRAGMA user_version=7; \
             PRAGMA application_id=1234; CREATE TABLE t(x); INSERT INTO t VALUES (1);");
        let h = Header::read(&path).expect("header");
        assert_eq!(h.page_size, 8192);
        assert_eq!(h.user_version, 7);
        assert_eq!(h.application_id, 1234);
        assert_eq!(h.journal, JournalFlag::Rollback);
        assert_eq!(h.encoding, Some(Encoding::Utf8));
        assert_eq!(h.page_count, Some(2));
        assert_eq!(h.auto_vacuum, 0);
    }

    #[test]
    fn sees_the_wal_flag() {
        let (_dir, path) = db("PRAGMA journal_mode=WAL; CREATE TABLE t(x);");
        assert_eq!(Header::read(&path).expect("header").journal, JournalFlag::Wal);
    }

    #[test]
    fn refuses_what_is_not_a_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty");
        std::fs::write(&empty, b"").expect("write");
        assert!(matches!(Header::read(&empty), Err(HeaderError::Empty)));
        let text = dir.path().join("text");
        std::fs::write(&text, b"hello, this is not a database at all").expect("write");
        assert!(matches!(Header::read(&text), Err(HeaderError::NotADatabase)));
    }

    #[test]
    fn refuses_a_truncated_file() {
        let (_dir, path) = db("CREATE TABLE t(x); INSERT INTO t VALUES (zeroblob(20000));");
        let bytes = std::fs::read(&path).expect("read");
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&bytes[..bytes.len() - 4096]).expect("write");
        drop(f);
        assert!(matches!(Header::read(&path), Err(HeaderError::Truncated { .. })));
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&bytes[..50]).expect("write");
        drop(f);
        assert!(matches!(Header::read(&path), Err(HeaderError::Truncated { .. })));
    }
}

/// Why a path is not a database file that can be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("no such file")]
    Missing,
    #[error("is a directory, not a database file")]
    IsDirectory,
    /// A FIFO, socket or device: opening it could hang or read forever.
    #[error("is {0}, not a regular file")]
    NotRegular(&'static str),
    /// A symbolic link that points to itself, in a loop, or too deep.
    #[error("too many levels of symbolic links (a link loop)")]
    LinkLoop,
    #[error("permission denied")]
    PermissionDenied,
    /// The header's verdict: not a database, empty, truncated or corrupt.
    #[error("{0}")]
    NotADatabase(HeaderError),
    #[error("{0}")]
    Io(io::Error),
}

/// A regular file that can be read and has a sound SQLite header.
#[derive(Debug)]
pub struct Inspected {
    pub meta: std::fs::Metadata,
    pub header: Header,
}

/// Checks that `path` is a readable SQLite database file, without SQLite.
/// With `empty_is_database`, an empty file reads as an empty database, as
/// SQLite itself treats it.
pub fn inspect(path: &Path, empty_is_database: bool) -> Result<Inspected, InputError> {
    let io = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => InputError::Missing,
        io::ErrorKind::PermissionDenied => InputError::PermissionDenied,
        _ if e.raw_os_error() == Some(libc::ELOOP) => InputError::LinkLoop,
        _ => InputError::Io(e),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(InputError::IsDirectory);
    }
    if !meta.is_file() {
        return Err(InputError::NotRegular(crate::sidefile::kind_of(&meta.file_type())));
    }
    let header = match Header::read(path) {
        Ok(h) => h,
        Err(HeaderError::NotRegular(kind)) => return Err(InputError::NotRegular(kind)),
        Err(HeaderError::Empty) if empty_is_database => Header::of_empty_file(),
        Err(HeaderError::Io(e)) => return Err(io(e)),
        Err(e) => return Err(InputError::NotADatabase(e)),
    };
    Ok(Inspected { meta, header })
}
