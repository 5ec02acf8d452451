//! The one path-carrying file error: a file given as input that cannot be
//! used, or an I/O or SQLite failure on a file. Each tool wraps it
//! transparently (`Error::File`), so the words, the code and the exit status
//! are the same everywhere.

use std::path::{Path, PathBuf};

use exit_code::Exit;

use crate::InputError;

/// A file given as input that is missing, a folder, not a database, or not
/// readable (bad input, exit 2); or an I/O or SQLite failure on a file
/// (exit 4), a full disk among them. Always named with its path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: no such file", .0.display())]
    Missing(PathBuf),
    #[error("{}: is a directory, not a database file", .0.display())]
    IsDirectory(PathBuf),
    /// Not a database, empty, truncated, corrupt, or not a regular file.
    #[error("{}: {reason}", path.display())]
    NotADatabase { path: PathBuf, reason: String },
    #[error("{}: permission denied ({action})", path.display())]
    PermissionDenied { path: PathBuf, action: &'static str },
    /// The folder a file is to be made in does not exist.
    #[error("{}: folder does not exist", .0.display())]
    FolderMissing(PathBuf),
    /// On a network file system, where SQLite's locks cannot be trusted.
    #[error("{}: is on a network file system ({kind}), where SQLite's locking is unreliable", path.display())]
    NetworkFs { path: PathBuf, kind: &'static str },
    /// Two paths given for two files are one file.
    #[error("{} and {} are the same file", a.display(), b.display())]
    SameFile { a: PathBuf, b: PathBuf },
    /// A schema and the data it is put onto in different text encodings.
    #[error("{} is {a_encoding} and {} is {b_encoding}: SQLite cannot reconcile text encodings", a.display(), b.display())]
    Encodings {
        a: PathBuf,
        b: PathBuf,
        a_encoding: String,
        b_encoding: String,
    },
    /// No room left on the file system holding `path` (a folder).
    #[error("{}: disk full{}", path.display(), match (needed, available) {
        (Some(n), Some(a)) => format!(" ({n} bytes needed, {a} available)"),
        _ => String::new(),
    })]
    DiskFull {
        path: PathBuf,
        needed: Option<u64>,
        available: Option<u64>,
    },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {action}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl FileError {
    /// What [`crate::inspect`] found wrong with `path`, as a `FileError`;
    /// an I/O error that says nothing about the file comes back as it is.
    pub fn of_input(path: &Path, e: InputError) -> Result<FileError, std::io::Error> {
        let path = path.to_owned();
        Ok(match e {
            InputError::Missing => FileError::Missing(path),
            InputError::IsDirectory => FileError::IsDirectory(path),
            InputError::PermissionDenied => FileError::PermissionDenied { path, action: "read" },
            e @ (InputError::NotADatabase(_) | InputError::NotRegular(_) | InputError::LinkLoop) => {
                FileError::NotADatabase {
                    path,
                    reason: e.to_string(),
                }
            }
            InputError::Io(e) => return Err(e),
        })
    }

    /// An I/O failure on `path` while doing `action`, classified: a full disk
    /// (named by `path`'s folder), permission denied, or else I/O.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> FileError {
        match source.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => FileError::full(path),
            Some(libc::EACCES) | Some(libc::EPERM) => FileError::PermissionDenied {
                path: path.to_owned(),
                action,
            },
            _ => FileError::Io {
                path: path.to_owned(),
                action,
                source,
            },
        }
    }

    /// The file system holding `path` is full: named by `path`'s folder.
    fn full(path: &Path) -> FileError {
        FileError::DiskFull {
            path: crate::fs::parent_dir(path).to_owned(),
            needed: None,
            available: None,
        }
    }

    /// A SQLite failure on `path` while doing `action`, classified: a full
    /// disk, a file that is not a database or is corrupt, or else SQLite.
    pub fn sqlite(path: &Path, action: &'static str, source: rusqlite::Error) -> FileError {
        use rusqlite::ErrorCode;
        match source.sqlite_error_code() {
            Some(ErrorCode::DiskFull) => FileError::full(path),
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => FileError::NotADatabase {
                path: path.to_owned(),
                reason: format!("corrupt: {source}"),
            },
            _ => FileError::Sqlite {
                path: path.to_owned(),
                action,
                source,
            },
        }
    }

    /// The file it is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Missing(p) | FileError::IsDirectory(p) | FileError::FolderMissing(p) => p,
            FileError::SameFile { b, .. } | FileError::Encodings { b, .. } => b,
            FileError::NotADatabase { path, .. }
            | FileError::PermissionDenied { path, .. }
            | FileError::NetworkFs { path, .. }
            | FileError::DiskFull { path, .. }
            | FileError::Io { path, .. }
            | FileError::Sqlite { path, .. } => path,
        }
    }

    /// A stable code for scripts (`--json`'s `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Missing(_) => "not_found",
            FileError::IsDirectory(_) => "is_a_directory",
            FileError::NotADatabase { .. } => "not_a_database",
            FileError::PermissionDenied { .. } => "permission_denied",
            FileError::FolderMissing(_) => "folder_missing",
            FileError::NetworkFs { .. } => "network_file_system",
            FileError::SameFile { .. } => "same_file",
            FileError::Encodings { .. } => "encodings_differ",
            FileError::DiskFull { .. } => "disk_full",
            FileError::Io { .. } | FileError::Sqlite { .. } => "io",
        }
    }

    /// Bad input, but for a full disk or an I/O or SQLite failure.
    pub fn exit(&self) -> Exit {
        match self {
            FileError::DiskFull { .. } | FileError::Io { .. } | FileError::Sqlite { .. } => Exit::Error,
            _ => Exit::BadInput,
        }
    }
}
