//! The checks every swap makes before it touches anything: a readable,
//! local database, and who has it open.

use super::*;

/// A regular, readable SQLite file with a sound header.
pub(crate) fn check_database(path: &Path) -> Result<(std::fs::Metadata, Header), Error> {
    let found = sqlite_file::inspect(path, false).map_err(|e| match FileError::of_input(path, e) {
        Ok(e) => Error::File(e),
        Err(e) => io_error(path, "read", e),
    })?;
    Ok((found.meta, found.header))
}

pub(crate) fn check_local(path: &Path) -> Result<(), Error> {
    match network_fs(path) {
        Ok(Some(kind)) => Err(Error::File(FileError::NetworkFs {
            path: path.to_owned(),
            kind,
        })),
        Ok(None) => Ok(()),
        Err(e) => Err(io_error(path, "statfs", e)),
    }
}

/// The other processes that have `db` open, waiting up to `wait` for none.
pub(crate) fn wait_until_free(db: &Path, wait: Duration) -> Result<Vec<User>, Error> {
    let deadline = sqlite_file::wait::deadline(wait);
    loop {
        let found = users(db).map_err(|e| Error::CannotCheckUse {
            path: db.to_owned(),
            why: e.to_string(),
        })?;
        if found.is_empty() || sqlite_file::wait::passed(deadline) {
            return Ok(found);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub(crate) fn in_use(path: &Path, found: &[User], hint: &'static str) -> Error {
    Error::InUse {
        path: path.to_owned(),
        users: found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        hint,
    }
}
