//! Side files: every file the tools make beside DEV and PROD (staging copies,
//! temporary snapshots, plan and `--sql` copies, rejects, backups, locks) and
//! the `-wal`/`-journal`/`-shm` SQLite keeps beside them. One home for their
//! names and for the rules that keep them from ever costing the user data:
//!
//! - **Never follow a link.** A side file is created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW` ([`create_new`]) and an existing one is looked
//!   at with `lstat` ([`look`]): a symbolic link at a side file's name is
//!   refused ([`SideFileError::Link`]), never written through or removed.
//! - **Remove only what is provably ours** ([`remove`]): a regular file (not a
//!   link, not a device or FIFO) that no process has open. Whether a name is
//!   ours at all is the caller's proof: a temporary name carrying the pid of a
//!   process that is gone ([`dead_pid_leftovers`]), or a path a dead run
//!   recorded in its lock ([`crate::lock`]).
//! - **Never adopt a sidecar.** [`create_new`] refuses to make a database file
//!   where a `-wal`, `-journal` or `-shm` already lies at its name: SQLite
//!   would replay it into the new file. The caller removes the ones it can
//!   prove are its own first.
//! - **Never wider than asked:** files are created with the mode given (the
//!   umask may narrow it further).

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::fs::parent_dir;
use crate::{sidecar_path, Sidecar};

/// What lies at a name, looked at without following a link.
#[derive(Debug)]
pub enum Found {
    Nothing,
    Regular(Metadata),
    Link,
    /// A directory, FIFO, socket or device: its kind in words.
    Other(&'static str),
}

/// Why a side file could not be made, used or removed. Every variant names it.
#[derive(Debug, thiserror::Error)]
pub enum SideFileError {
    #[error("{}: is a symbolic link where this tool keeps its own file; links are never followed here (remove the link)", .0.display())]
    Link(PathBuf),
    #[error("{}: is {kind}, not a regular file; not touching it", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{}: already exists and is not provably a leftover of this tool ({why}); remove it if it is not needed", path.display())]
    NotOurs { path: PathBuf, why: String },
    #[error("{}: a stale sidecar lies where a database is to be made, and SQLite would replay it into the new file; remove it if you know it is stale", .0.display())]
    StaleSidecar(PathBuf),
    #[error("{}: open by {users}; not removing it", path.display())]
    InUse { path: PathBuf, users: String },
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
}

impl SideFileError {
    /// Whether this is an I/O failure (a full disk included) rather than a
    /// refusal to protect data.
    pub fn is_io(&self) -> bool {
        matches!(self, SideFileError::Io { .. })
    }

    /// A stable code for scripts.
    pub fn code(&self) -> &'static str {
        match self {
            SideFileError::Link(_) => "side_file_is_a_link",
            SideFileError::NotRegular { .. } => "not_a_regular_file",
            SideFileError::NotOurs { .. } => "side_file_not_ours",
            SideFileError::StaleSidecar(_) => "stale_sidecar",
            SideFileError::InUse { .. } => "in_use",
            SideFileError::Io { .. } => "io",
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SideFileError::Link(p) | SideFileError::StaleSidecar(p) => p,
            SideFileError::NotRegular { path, .. }
            | SideFileError::NotOurs { path, .. }
            | SideFileError::InUse { path, .. }
            | SideFileError::Io { path, .. } => path,
        }
    }
}

fn io_err<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> SideFileError + 'a {
    move |source| SideFileError::Io {
        path: path.to_owned(),
        action,
        source,
    }
}

/// What lies at `path`, without following a link.
pub fn look(path: &Path) -> io::Result<Found> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(e),
    };
    let t = meta.file_type();
    Ok(if t.is_symlink() {
        Found::Link
    } else if t.is_file() {
        Found::Regular(meta)
    } else {
        Found::Other(kind_of(&t))
    })
}

/// A file type in words, for messages.
pub fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// The sidecars (`-wal`, `-shm`, `-journal`) that lie at `db`'s names now,
/// links and odd files included.
pub fn sidecars_present(db: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for kind in Sidecar::ALL {
        let path = sidecar_path(db, kind);
        if !matches!(look(&path)?, Found::Nothing) {
            out.push(path);
        }
    }
    Ok(out)
}

/// Checks that a database file could be created at `path` now: nothing lies
/// at its name or at its sidecars' names. What a plan predicts and what
/// [`create_new`] enforces.
pub fn check_free(path: &Path) -> Result<(), SideFileError> {
    match look(path).map_err(io_err(path, "stat"))? {
        Found::Nothing => {}
        Found::Link => return Err(SideFileError::Link(path.to_owned())),
        Found::Other(kind) => {
            return Err(SideFileError::NotRegular {
                path: path.to_owned(),
                kind,
            })
        }
        Found::Regular(_) => {
            return Err(SideFileError::NotOurs {
                path: path.to_owned(),
                why: "a file this run would create".into(),
            })
        }
    }
    match sidecars_present(path)
        .map_err(io_err(path, "stat its sidecars"))?
        .first()
    {
        Some(stale) => Err(SideFileError::StaleSidecar(stale.clone())),
        None => Ok(()),
    }
}

/// Creates the new file `path` for reading and writing with permission bits
/// `mode` (or narrower, by the umask): `O_CREAT|O_EXCL|O_NOFOLLOW`, and only
/// where no sidecar lies at its name ([`check_free`]).
pub fn create_new(path: &Path, mode: u32) -> Result<File, SideFileError> {
    if let Some(stale) = sidecars_present(path)
        .map_err(io_err(path, "stat its sidecars"))?
        .first()
    {
        return Err(SideFileError::StaleSidecar(stale.clone()));
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(mode & 0o777)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => check_free(path).err().unwrap_or(SideFileError::NotOurs {
                path: path.to_owned(),
                why: "it appeared while being created".into(),
            }),
            _ if e.raw_os_error() == Some(libc::ELOOP) => SideFileError::Link(path.to_owned()),
            _ => SideFileError::Io {
                path: path.to_owned(),
                action: "create",
                source: e,
            },
        })
}

/// Opens the existing side file `path` without following a link.
pub fn open_existing(path: &Path, write: bool) -> Result<File, SideFileError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => SideFileError::Link(path.to_owned()),
            _ => SideFileError::Io {
                path: path.to_owned(),
                action: "open",
                source: e,
            },
        })?;
    let meta = file.metadata().map_err(io_err(path, "stat"))?;
    if !meta.is_file() {
        return Err(SideFileError::NotRegular {
            path: path.to_owned(),
            kind: kind_of(&meta.file_type()),
        });
    }
    Ok(file)
}

/// Removes the side file `path`, which the caller has proved is its own by
/// name: only a regular file that no process has open. Returns whether a
/// file was removed (`false`: nothing was there). A link, a device, a FIFO or
/// a file in use is refused and left as it is.
pub fn remove(path: &Path) -> Result<bool, SideFileError> {
    match look(path).map_err(io_err(path, "stat"))? {
        Found::Nothing => return Ok(false),
        Found::Link => return Err(SideFileError::Link(path.to_owned())),
        Found::Other(kind) => {
            return Err(SideFileError::NotRegular {
                path: path.to_owned(),
                kind,
            })
        }
        Found::Regular(_) => {}
    }
    let users = crate::users::users(path).map_err(io_err(path, "look for processes using it"))?;
    if !users.is_empty() {
        return Err(SideFileError::InUse {
            path: path.to_owned(),
            users: users.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        });
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(SideFileError::Io {
            path: path.to_owned(),
            action: "remove",
            source: e,
        }),
    }
}

/// [`remove`] for the database side file `path` and each of its sidecars,
/// also where the database itself is already gone. Returns the paths
/// removed; the first refusal is returned after trying them all.
pub fn remove_with_sidecars(path: &Path) -> Result<Vec<PathBuf>, SideFileError> {
    let mut removed = Vec::new();
    let mut first_error = None;
    // Sidecars first: a database without its journal is never half-recovered
    // by someone opening it in between.
    let names = Sidecar::ALL
        .iter()
        .map(|&s| sidecar_path(path, s))
        .chain([path.to_owned()]);
    for name in names {
        match remove(&name) {
            Ok(true) => removed.push(name),
            Ok(false) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(removed),
    }
}

/// `.{stem}.{tag}{.ext}` in `path`'s folder: the hidden names of a run's own
/// files beside `path` (`dev/.shop.refresh-staging.db` for `dev/shop.db`).
pub fn hidden_name(path: &Path, tag: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    parent_dir(path).join(format!(".{stem}.{tag}{ext}"))
}

/// The staging copy of PROD beside `dev`: `dev/.shop.refresh-staging.db`.
pub fn staging(dev: &Path) -> PathBuf {
    hidden_name(dev, "refresh-staging")
}

/// The last copy received of a remote PROD, kept beside `dev` so that the
/// next refresh moves only the pages that changed: `dev/.shop.refresh-base.db`.
/// It is a cache: replaced whole (renamed over) by each refresh, never
/// written in place.
pub fn base(dev: &Path) -> PathBuf {
    hidden_name(dev, "refresh-base")
}

/// The base of a remote PROD masked and subset on its host under the rules
/// and key named by `tag`: `dev/.shop.refresh-base-{tag}.db`. A base made
/// under other rules, another key, or none, has another name.
pub fn masked_base(dev: &Path, tag: &str) -> PathBuf {
    hidden_name(dev, &format!("refresh-base-{tag}"))
}

/// Every base beside `dev` ([`base`] and each [`masked_base`]): regular
/// files only, never a temporary fetch's file.
pub fn bases(dev: &Path) -> Vec<PathBuf> {
    let stem = dev
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let ext = dev
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let prefix = format!(".{stem}.refresh-base");
    let Ok(entries) = std::fs::read_dir(parent_dir(dev)) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(middle) = name.strip_prefix(&prefix).and_then(|r| r.strip_suffix(&ext)) else {
                return false;
            };
            let tagged = middle
                .strip_prefix('-')
                .is_some_and(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_hexdigit()));
            (middle.is_empty() || tagged) && e.file_type().is_ok_and(|t| t.is_file())
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// The private copy of a rollback-mode PROD that `--rules` masks from,
/// beside `dev`: `dev/.shop.refresh-mask-source.db`. It holds PROD's
/// original values for the moment of one run, and is removed by it (or, if
/// that run was killed, by the next).
pub fn mask_source(dev: &Path) -> PathBuf {
    hidden_name(dev, "refresh-mask-source")
}

/// The masking key of the data that ends in `dev` (`refresh-dev --rules`):
/// `dev/.shop.db.refresh-mask-key`, mode 0600. Made by the first run that
/// masks, kept across refreshes so masked values stay the same.
pub fn mask_key(dev: &Path) -> PathBuf {
    let name = dev.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    parent_dir(dev).join(format!(".{name}.refresh-mask-key"))
}

/// A plan's temporary copy of PROD beside `dev`, named after this process.
pub fn plan_copy(dev: &Path) -> PathBuf {
    hidden_name(dev, &format!("refresh-plan-{}", std::process::id()))
}

/// The prefix of `.{stem}.refresh-plan-{pid}{.ext}` names beside `dev`.
pub fn plan_copy_prefix(dev: &Path) -> (String, String) {
    let stem = dev.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
    let ext = dev
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    (format!(".{stem}.refresh-plan-"), ext)
}

/// A temporary file beside `target` named after this process:
/// `.{name}.{what}-{pid}.tmp` (`what`: `snapshot`, `swap`, `backup`, `schema-diff-sql`).
pub fn pid_temp(target: &Path, what: &str) -> PathBuf {
    let (prefix, suffix) = pid_temp_pattern(target, what);
    parent_dir(target).join(format!("{prefix}{}{suffix}", std::process::id()))
}

/// The `(prefix, suffix)` around the pid in [`pid_temp`]'s names.
pub fn pid_temp_pattern(target: &Path, what: &str) -> (String, String) {
    let name = target.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    (format!(".{name}.{what}-"), ".tmp".to_owned())
}

/// The rejects database of `db` made at `stamp`: `{db}.rejects-{stamp}.sqlite`.
pub fn rejects(db: &Path, stamp: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(format!(".rejects-{stamp}.sqlite"));
    PathBuf::from(name)
}

/// Files in `folder` named `{prefix}{pid}{suffix}` whose process is gone,
/// also where only a sidecar of such a name is left: a killed run's
/// temporary files, provably its by name. Returns the database names (for
/// [`remove_with_sidecars`]). This process's own pid never counts.
pub fn dead_pid_leftovers(folder: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let base = Sidecar::ALL
            .iter()
            .find_map(|s| name.strip_suffix(s.suffix()))
            .unwrap_or(name);
        let pid = base
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(suffix))
            .and_then(|digits| digits.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        if pid != std::process::id() && !crate::fs::process_alive(pid) {
            out.push(folder.join(base));
        }
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_new_refuses_links_existing_files_and_stale_sidecars() {
        let dir = tempfile::tempdir().expect("tempdir");
        let precious = dir.path().join("precious.db");
        std::fs::write(&precious, b"keep me").expect("write");
        let link = dir.path().join(".x.refresh-staging.db");
        std::os::unix::fs::symlink(&precious, &link).expect("symlink");
        assert!(matches!(create_new(&link, 0o600), Err(SideFileError::Link(_))));
        assert!(matches!(remove(&link), Err(SideFileError::Link(_))));
        assert_eq!(std::fs::read(&precious).expect("read"), b"keep me");

        let fresh = dir.path().join("fresh.db");
        std::fs::write(sidecar_path(&fresh, Sidecar::Wal), b"stale").expect("write");
        assert!(matches!(create_new(&fresh, 0o600), Err(SideFileError::StaleSidecar(_))));
        assert!(!fresh.exists());
        std::fs::remove_file(sidecar_path(&fresh, Sidecar::Wal)).expect("rm");
        create_new(&fresh, 0o600).expect("create");
        assert!(matches!(create_new(&fresh, 0o600), Err(SideFileError::NotOurs { .. })));
    }

    #[test]
    fn remove_takes_regular_files_only_and_sidecars_without_their_database() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("s.db");
        std::fs::write(sidecar_path(&db, Sidecar::Wal), b"orphan").expect("write");
        let removed = remove_with_sidecars(&db).expect("remove");
        assert_eq!(removed, vec![sidecar_path(&db, Sidecar::Wal)]);
        assert!(!remove(&db).expect("nothing there"));
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("cstring");
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(remove(&fifo), Err(SideFileError::NotRegular { .. })));
        assert!(fifo.exists());
    }

    #[test]
    fn dead_pid_leftovers_are_told_by_name_and_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("dev.db");
        let (prefix, suffix) = pid_temp_pattern(&target, "swap");
        for name in [
            format!("{prefix}99999999{suffix}"),
            format!("{prefix}99999998{suffix}-wal"),
            format!("{prefix}{}{suffix}", std::process::id()),
            format!("{prefix}abc{suffix}"),
            "dev.db".to_owned(),
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let found: Vec<String> = dead_pid_leftovers(dir.path(), &prefix, &suffix)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            found,
            [format!("{prefix}99999998{suffix}"), format!("{prefix}99999999{suffix}")]
        );
    }

    #[test]
    fn hidden_names_sit_beside_the_file() {
        assert_eq!(
            staging(Path::new("dev/shop.db")),
            PathBuf::from("dev/.shop.refresh-staging.db")
        );
        assert_eq!(
            rejects(Path::new("dev/shop.db"), "20261203T000000Z"),
            PathBuf::from("dev/shop.db.rejects-20261203T000000Z.sqlite")
        );
    }
}
