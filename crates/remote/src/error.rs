//! What can go wrong reading a remote PROD. Before the helper's version
//! handshake a failure is bad input (exit 2: ssh's own message, a missing
//! helper, a version mismatch); after it, a cut link is an I/O error
//! (exit 4). Either way nothing local has changed but the base's temporary
//! file, which is removed.

use exit_code::Exit;
use sqlite_file::FileError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ssh could not connect, authenticate or check the host key.
    #[error("{host}: ssh failed before the helper answered: {message}")]
    Connect { host: String, message: String },
    /// The remote shell could not run the helper.
    #[error("{host}: cannot run `{exe}` there ({message}); install refresh-dev on {host} (cargo install --path crates/refresh-dev) or name it with --remote-exe PATH")]
    HelperMissing { host: String, exe: String, message: String },
    /// What answered is not a refresh-dev helper.
    #[error("{host}: `{exe}` is not a refresh-dev helper (it answered: {answer})")]
    NotAHelper { host: String, exe: String, answer: String },
    #[error("{host}: the helper speaks protocol {theirs} (refresh-dev {their_version}), this refresh-dev speaks {ours} ({our_version}); install the same version on both hosts")]
    Version {
        host: String,
        ours: u32,
        theirs: u32,
        our_version: String,
        their_version: String,
    },
    /// The helper refused or failed, with its own exit status and code.
    #[error("{host}: {message}")]
    Remote {
        host: String,
        exit: u8,
        code: String,
        message: String,
    },
    /// The link broke after the handshake (a cut connection, a killed ssh).
    #[error("{host}: the link was cut ({why}); nothing local changed")]
    Cut { host: String, why: String },
    /// The file put together here does not hash as the helper's copy did.
    #[error("{host}: the copy received does not match the helper's hash; the old base is kept")]
    Verify { host: String },
    #[error("interrupted; the base was not changed")]
    Interrupted,
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    SideFile(#[from] sqlite_file::sidefile::SideFileError),
}

impl Error {
    /// The exit status, from the workspace's one table.
    pub fn exit(&self) -> Exit {
        match self {
            Error::Connect { .. } | Error::HelperMissing { .. } | Error::NotAHelper { .. } | Error::Version { .. } => {
                Exit::BadInput
            }
            Error::Remote { exit, .. } => match exit {
                2 => Exit::BadInput,
                3 => Exit::Refused,
                _ => Exit::Error,
            },
            Error::Cut { .. } | Error::Verify { .. } => Exit::Error,
            Error::Interrupted => Exit::Refused,
            Error::File(e) => e.exit(),
            Error::SideFile(e) if e.is_io() => Exit::Error,
            Error::SideFile(_) => Exit::Refused,
        }
    }

    /// A stable code for scripts: the helper's own code where it is one of
    /// the workspace's, else `remote_error`.
    pub fn code(&self) -> &'static str {
        const KNOWN: [&str; 15] = [
            "not_found",
            "is_a_directory",
            "not_a_database",
            "permission_denied",
            "folder_missing",
            "network_file_system",
            "same_file",
            "hot_journal",
            "not_wal",
            "busy",
            "disk_full",
            "interrupted",
            "side_file_is_a_link",
            "usage",
            "io",
        ];
        match self {
            Error::Connect { .. } => "remote_unreachable",
            Error::HelperMissing { .. } | Error::NotAHelper { .. } => "remote_helper_missing",
            Error::Version { .. } => "remote_version",
            Error::Remote { code, .. } => KNOWN.iter().find(|k| *k == code).copied().unwrap_or("remote_error"),
            Error::Cut { .. } => "remote_cut",
            Error::Verify { .. } => "remote_verify",
            Error::Interrupted => "interrupted",
            Error::File(e) => e.code(),
            Error::SideFile(e) => e.code(),
        }
    }
}
