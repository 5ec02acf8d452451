//! The one error for a file given as input that cannot be used: each tool
//! wraps it transparently (`Error::File`), so the words, the code and the
//! exit status are the same everywhere.

use std::path::{Path, PathBuf};

use exit_code::Exit;

use crate::InputError;

/// A file given as input that is missing, a folder, not a database, or not
/// readable: bad input (exit 2), named with its path.
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

    /// The file it is about.
    pub fn path(&self) -> &Path {
        match self {
            FileError::Missing(p) | FileError::IsDirectory(p) => p,
            FileError::NotADatabase { path, .. } | FileError::PermissionDenied { path, .. } => path,
        }
    }

    /// A stable code for scripts (`--json`'s `error.code`).
    pub fn code(&self) -> &'static str {
        match self {
            FileError::Missing(_) => "not_found",
            FileError::IsDirectory(_) => "is_a_directory",
            FileError::NotADatabase { .. } => "not_a_database",
            FileError::PermissionDenied { .. } => "permission_denied",
        }
    }

    /// Always bad input.
    pub fn exit(&self) -> Exit {
        Exit::BadInput
    }
}
