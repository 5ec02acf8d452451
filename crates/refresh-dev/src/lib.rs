//! `refresh-dev`: the Refresh Dev pattern as sub-deployments, end to end.
//!
//! What it does:
//! - Describes a refresh as a [`Deployment`]: named files, then ordered steps
//!   (`snapshot`, `apply`, `swap`, `replace`), each with its own source and
//!   options, and `abort_remaining`. `run`, `replace` and `staging` build one
//!   in code; `deploy FILE.toml` reads one ([`deployment`]).
//! - Decides every refusal before anything is written ([`runner`]): the files
//!   exist and are databases with one text encoding, none is another, none is
//!   on a network file system, the folders written are writable and have room
//!   for the staging copy plus the migration's journal, the file to replace is
//!   not in use, no other run holds it ([`sqlite_file::lock`]), and the schema diff finds
//!   no blocking violation (counted on PROD itself in WAL mode, where readers
//!   never block writers; for a rollback-mode PROD, on the staging copy just
//!   made, or on a temporary snapshot when planning), and nothing that is
//!   not provably the run's own lies at the names of the files it makes.
//! - Runs the steps with the workspace's libraries (`snapshot`, `schema-diff`,
//!   `swap`), stops at the first failure unless a step says otherwise, and
//!   cleans up what it made: staging files, rejects of an aborted run, and a
//!   killed run's leftovers once its lock says it is gone (the lock file
//!   records what a run makes: [`sqlite_file::lock`]).
//! - Reports per step ([`report`]): status, timings, bytes, changes, the data
//!   lost, the backup.
//!
//! What it does not do: write PROD (every library opens it read-only), change
//! DEV other than through `swap` (so DEV is wholly old or wholly new), or
//! decide what DEV's schema should be: it applies DEV's own, verbatim.

pub mod deployment;
pub mod helper_job;
pub mod report;
pub mod rollback;
pub mod runner;
mod summary;

use std::path::PathBuf;

use exit_code::Exit;

pub use deployment::{Deployment, Operation, Step};
pub use report::Report;
pub use rollback::rollback;
pub use runner::{Events, RemoteOptions, RunOptions};

/// Why a deployment was refused or failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file error every tool shares: missing, not a database, I/O, a full disk, … ([`sqlite_file::FileError`]).
    #[error(transparent)]
    File(#[from] sqlite_file::FileError),
    #[error("{}: {why}", path.display())]
    BadDeployment { path: PathBuf, why: String },
    #[error("{0}")]
    Usage(String),
    #[error("{}: already exists; not replacing it", .0.display())]
    Exists(PathBuf),
    #[error("{}: in use by {users}; stop the application (or pass --live)", path.display())]
    InUse { path: PathBuf, users: String },
    #[error("{}: another refresh-dev holds {} ({holder}); wait for it, or remove that file if no such run exists", db.display(), lock.display())]
    Locked { db: PathBuf, lock: PathBuf, holder: String },
    /// Refused by `schema_diff::Report::blocking`, in its words.
    #[error("{}: {list}", path.display())]
    Violations { path: PathBuf, list: String },
    #[error("{}: not enough free space: {needed} bytes needed ({why}), {available} available", folder.display())]
    NoSpace {
        folder: PathBuf,
        needed: u64,
        available: u64,
        why: String,
    },
    /// A file at one of the run's own names that it cannot prove is its own,
    /// or a link or odd file there: refused, left as it is.
    #[error(transparent)]
    SideFile(#[from] sqlite_file::sidefile::SideFileError),
    #[error("{}: --log names {what}; the log would be written into it", path.display())]
    LogIsInput { path: PathBuf, what: String },
    #[error("{}: its schema is behind the data's: {why}. Were --prod and --dev swapped? To make DEV a plain copy of PROD, use `refresh-dev replace`; to refresh anyway, pass --allow-behind", dev.display())]
    DevBehind { dev: PathBuf, why: String },
    #[error("interrupted; nothing was changed")]
    Interrupted,
    /// A step's own tool failed: its error, whose message names the file.
    #[error(transparent)]
    Snapshot(snapshot::Error),
    #[error(transparent)]
    SchemaDiff(schema_diff::Error),
    #[error(transparent)]
    Swap(swap::Error),
    /// Reading a remote PROD: ssh, the helper, the link, the base.
    #[error(transparent)]
    Remote(#[from] remote::Error),
    /// `--rules`: the rules file, the key, or masked values that break a
    /// constraint.
    #[error(transparent)]
    Mask(mask::Error),
}

impl From<mask::Error> for Error {
    fn from(e: mask::Error) -> Self {
        match e {
            mask::Error::Interrupted => Error::Interrupted,
            mask::Error::File(e) => Error::File(e),
            e => Error::Mask(e),
        }
    }
}

impl Error {
    /// The exit status for this error, from the workspace's one table.
    pub fn exit(&self) -> Exit {
        match self {
            Error::File(e) => e.exit(),
            Error::BadDeployment { .. } | Error::LogIsInput { .. } | Error::Usage(_) => Exit::BadInput,
            Error::SideFile(e) if e.is_io() => Exit::Error,
            Error::SideFile(_) => Exit::Refused,
            Error::Exists(_)
            | Error::InUse { .. }
            | Error::Locked { .. }
            | Error::Violations { .. }
            | Error::DevBehind { .. }
            | Error::Interrupted => Exit::Refused,
            Error::NoSpace { .. } => Exit::Error,
            Error::Snapshot(e) => e.exit(),
            Error::SchemaDiff(e) => e.exit(),
            Error::Swap(e) => e.exit(),
            Error::Remote(e) => e.exit(),
            Error::Mask(mask::Error::Rules { .. } | mask::Error::Key { .. }) => Exit::BadInput,
            Error::Mask(mask::Error::Constraint { .. } | mask::Error::Interrupted) => Exit::Refused,
            Error::Mask(mask::Error::File(e)) => e.exit(),
        }
    }
}

impl Error {
    /// A stable code for scripts (`--json`'s `error.code`), listed in the README.
    pub fn code(&self) -> &'static str {
        match self {
            Error::File(e) => e.code(),
            Error::BadDeployment { .. } => "bad_deployment",
            Error::Usage(_) => "usage",
            Error::Exists(_) => "exists",
            Error::InUse { .. } => "dev_in_use",
            Error::Locked { .. } => "locked",
            Error::Violations { .. } => "violations",
            Error::NoSpace { .. } => "no_space",
            Error::SideFile(e) => e.code(),
            Error::LogIsInput { .. } => "log_is_input",
            Error::DevBehind { .. } => "dev_behind",
            Error::Interrupted => "interrupted",
            Error::Swap(swap::Error::InUse { .. }) => "dev_in_use",
            Error::Snapshot(e) => e.code(),
            Error::SchemaDiff(e) => e.code(),
            Error::Swap(e) => e.code(),
            Error::Remote(e) => e.code(),
            Error::Mask(e) => e.code(),
        }
    }

    /// The file the error is about, where it names one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            Error::File(e) => Some(e.path()),
            Error::Exists(p) => Some(p),
            Error::BadDeployment { path, .. }
            | Error::InUse { path, .. }
            | Error::Violations { path, .. }
            | Error::LogIsInput { path, .. } => Some(path),
            Error::Locked { lock, .. } => Some(lock),
            Error::NoSpace { folder, .. } => Some(folder),
            Error::DevBehind { dev, .. } => Some(dev),
            Error::SideFile(e) => Some(e.path()),
            Error::Snapshot(e) => e.file(),
            Error::SchemaDiff(e) => e.file(),
            Error::Swap(e) => e.file(),
            Error::Mask(mask::Error::Rules { path, .. } | mask::Error::Key { path, .. }) => Some(path),
            Error::Mask(mask::Error::File(e)) => Some(e.path()),
            _ => None,
        }
    }
}

impl From<sqlite_file::lock::LockError> for Error {
    fn from(e: sqlite_file::lock::LockError) -> Self {
        match e {
            sqlite_file::lock::LockError::Held { db, lock, holder } => Error::Locked { db, lock, holder },
            sqlite_file::lock::LockError::SideFile(e) => Error::SideFile(e),
        }
    }
}

impl From<snapshot::Error> for Error {
    fn from(e: snapshot::Error) -> Self {
        match e {
            snapshot::Error::Interrupted(_) => Error::Interrupted,
            e => Error::Snapshot(e),
        }
    }
}

impl From<schema_diff::Error> for Error {
    fn from(e: schema_diff::Error) -> Self {
        match e {
            schema_diff::Error::Violations { path, list } => Error::Violations { path, list },
            e => Error::SchemaDiff(e),
        }
    }
}

impl From<swap::Error> for Error {
    fn from(e: swap::Error) -> Self {
        Error::Swap(e)
    }
}
