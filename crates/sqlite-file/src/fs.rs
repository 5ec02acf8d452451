//! Durable file operations: identity through links, folder fsync, rename
//! without replacing, in-kernel copies, free space.
//!
//! Linux first: `renameat2(RENAME_NOREPLACE)` and `copy_file_range`. Where the
//! kernel or file system lacks them, the documented fallbacks are a hard link
//! plus unlink (still atomic and still refusing to replace) and a plain
//! read/write loop.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Identity of a file: device and inode. Equal for hard links and symlinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    /// The identity of what `path` points to (following symlinks).
    pub fn of(path: &Path) -> io::Result<FileId> {
        let meta = std::fs::metadata(path)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }
}

/// Whether `a` and `b` are the same file (through symlinks and hard links).
/// A path that does not exist is the same as nothing.
pub fn same_file(a: &Path, b: &Path) -> io::Result<bool> {
    match (FileId::of(a), FileId::of(b)) {
        (Ok(x), Ok(y)) => Ok(x == y),
        (Err(e), _) | (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

/// The file a database path names: the target of a symbolic link (followed
/// to the end, as SQLite follows it to place its `-wal` and `-journal`), or
/// `path` itself. Replacing a database means replacing that file, never the link.
pub fn resolve_link(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        _ => path.to_owned(),
    }
}

/// Whether process `pid` exists (also another user's): how a temporary
/// file named after its maker's pid is told from a killed run's leftover.
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill with signal 0 only checks that the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The folder holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `fsync` a folder, so that a rename or unlink in it survives a power cut.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

/// `renameat2(from, to, flags)` relative to the working directory, as
/// `rename(2)` resolves paths.
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> io::Result<()> {
    let (f, t) = (cstring(from)?, cstring(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them
    // relative to the working directory.
    let rc = unsafe { libc::renameat2(libc::AT_FDCWD, f.as_ptr(), libc::AT_FDCWD, t.as_ptr(), flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether an error says the file system (or kernel) lacks a `renameat2` flag.
fn unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP))
}

/// Renames `from` to `to` atomically, failing with `AlreadyExists` if `to`
/// exists: `renameat2(RENAME_NOREPLACE)`, or where the file system does not
/// support it, `link` + `unlink` (which refuses to replace just the same).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported(&e) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        result => result,
    }
}

/// Exchanges `a` and `b` atomically (`renameat2(RENAME_EXCHANGE)`). Returns
/// `Unsupported` where the file system cannot; callers choose their fallback.
pub fn rename_exchange(a: &Path, b: &Path) -> io::Result<()> {
    match renameat2(a, b, libc::RENAME_EXCHANGE) {
        Err(e) if unsupported(&e) => Err(io::Error::new(io::ErrorKind::Unsupported, e)),
        result => result,
    }
}

/// `%Y%m%dT%H%M%SZ` in UTC for `time`: the stamp in backup and rejects file names.
pub fn utc_stamp(time: std::time::SystemTime) -> String {
    let (year, month, day, secs, _) = utc_parts(time);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// RFC 3339 in UTC with milliseconds (`2026-12-02T05:53:10.123Z`), for logs.
pub fn utc_rfc3339(time: std::time::SystemTime) -> String {
    let (year, month, day, secs, millis) = utc_parts(time);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// (year, month, day, seconds of the day, milliseconds) in UTC.
fn utc_parts(time: std::time::SystemTime) -> (i64, i64, i64, u64, u32) {
    let since = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil-from-days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem, since.subsec_millis())
}

/// Bytes available to an unprivileged writer in the file system holding `dir`.
pub fn available_space(dir: &Path) -> io::Result<u64> {
    let c = cstring(dir)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid path and `st` a writable statvfs buffer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs succeeded and filled the buffer.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    Ok(u64::from(st.f_bavail) * u64::from(st.f_frsize))
}

/// The kind of network file system holding `path`, if it is one. SQLite's
/// POSIX locks are unreliable on them (NFS, SMB/CIFS, FUSE mounts such as
/// sshfs, 9p, Ceph, AFS), so the tools refuse to write there.
pub fn network_fs(path: &Path) -> io::Result<Option<&'static str>> {
    let c = cstring(path)?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a valid path and `st` a writable statfs buffer.
    let rc = unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded and filled the buffer.
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on some targets, u32 on others
    let kind = unsafe { st.assume_init() }.f_type as i64 as u32;
    Ok(match kind {
        0x6969 => Some("NFS"),
        0x517B => Some("SMB"),
        0xFF53_4D42 => Some("CIFS"),
        0xFE53_4D42 => Some("SMB2"),
        0x6573_5546 => Some("FUSE"),
        0x0102_1997 => Some("9p"),
        0x00C3_6400 => Some("Ceph"),
        0x5346_414F => Some("AFS"),
        _ => None,
    })
}

/// Whether a copy into `dir` of a file on the same file system shares its
/// blocks (a reflink) instead of writing them: btrfs always, XFS where it
/// was made with `reflink=1` (read from its geometry, `XFS_IOC_FSGEOMETRY`).
/// Asked without writing anything. `false` where it cannot tell.
pub fn reflinks(dir: &Path) -> io::Result<bool> {
    const BTRFS: u32 = 0x9123_683E;
    const XFS: u32 = 0x5846_5342;
    let c = cstring(dir)?;
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c` is a valid path and `st` a writable statfs buffer.
    if unsafe { libc::statfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statfs succeeded and filled the buffer.
    #[allow(clippy::unnecessary_cast)] // f_type is i64 on some targets, u32 on others
    let kind = unsafe { st.assume_init() }.f_type as i64 as u32;
    match kind {
        BTRFS => Ok(true),
        XFS => {
            // struct xfs_fsop_geom (256 bytes); `flags` is the u32 at byte 92,
            // and XFS_FSOP_GEOM_FLAGS_REFLINK is bit 20 (linux/xfs_fs.h).
            const XFS_IOC_FSGEOMETRY: libc::c_ulong = 0x8100_587e;
            const REFLINK: u32 = 1 << 20;
            let folder = File::open(dir)?;
            let mut geometry = [0u8; 256];
            // SAFETY: the ioctl fills at most 256 bytes of `geometry`.
            let rc = unsafe { libc::ioctl(folder.as_raw_fd(), XFS_IOC_FSGEOMETRY as _, geometry.as_mut_ptr()) };
            if rc != 0 {
                return Ok(false);
            }
            let flags = u32::from_ne_bytes([geometry[92], geometry[93], geometry[94], geometry[95]]);
            Ok(flags & REFLINK != 0)
        }
        _ => Ok(false),
    }
}

/// Whether the calling process may create files in `dir` (`access(W_OK|X_OK)`).
pub fn dir_writable(dir: &Path) -> io::Result<bool> {
    access(dir, libc::W_OK | libc::X_OK)
}

/// `access(path, mode)`: `false` where permission is denied or the file
/// system is read-only.
fn access(path: &Path, mode: libc::c_int) -> io::Result<bool> {
    let c = cstring(path)?;
    // SAFETY: `c` is a valid NUL-terminated path.
    let rc = unsafe { libc::access(c.as_ptr(), mode) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::EPERM) => Ok(false),
        _ => Err(err),
    }
}

/// Whether the calling process may write the file at `path` (`access(W_OK)`).
pub fn file_writable(path: &Path) -> io::Result<bool> {
    access(path, libc::W_OK)
}

/// Copies `len` bytes from the start of `src` to the start of `dst`, in the
/// kernel where it can (`copy_file_range`, which shares extents on file
/// systems with reflinks). After each chunk it calls `keep_going(copied)`,
/// and stops with `Interrupted` when that answers `false`. Returns the bytes
/// copied: fewer than `len` when `src` ends first.
pub fn copy_range(src: &File, dst: &File, len: u64, keep_going: &mut dyn FnMut(u64) -> bool) -> io::Result<u64> {
    const CHUNK: u64 = 64 << 20;
    let mut off_in: libc::loff_t = 0;
    let mut off_out: libc::loff_t = 0;
    let mut copied = 0u64;
    while copied < len {
        let want = (len - copied).min(CHUNK) as usize;
        // SAFETY: both descriptors are open; the offsets are ours.
        let n = unsafe { libc::copy_file_range(src.as_raw_fd(), &mut off_in, dst.as_raw_fd(), &mut off_out, want, 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::EXDEV | libc::ENOSYS | libc::EOPNOTSUPP | libc::EINVAL) if copied == 0 => {
                    copy_by_reading(src, dst, len, keep_going)
                }
                Some(libc::EINTR) => continue,
                _ => Err(err),
            };
        }
        if n == 0 {
            return Ok(copied);
        }
        copied += n as u64;
        if !keep_going(copied) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
    }
    Ok(copied)
}

fn copy_by_reading(
    mut src: &File,
    mut dst: &File,
    len: u64,
    keep_going: &mut dyn FnMut(u64) -> bool,
) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    src.seek(SeekFrom::Start(0))?;
    dst.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut copied = 0u64;
    while copied < len {
        let want = (len - copied).min(buf.len() as u64) as usize;
        let n = src.read(&mut buf[..want])?;
        if n == 0 {
            return Ok(copied);
        }
        dst.write_all(&buf[..n])?;
        copied += n as u64;
        if !keep_going(copied) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_sees_through_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").expect("write");
        let hard = dir.path().join("hard");
        std::fs::hard_link(&a, &hard).expect("link");
        let soft = dir.path().join("soft");
        std::os::unix::fs::symlink(&a, &soft).expect("symlink");
        let other = dir.path().join("other");
        std::fs::write(&other, b"x").expect("write");
        assert!(same_file(&a, &hard).expect("same"));
        assert!(same_file(&a, &soft).expect("same"));
        assert!(!same_file(&a, &other).expect("same"));
        assert!(!same_file(&a, &dir.path().join("missing")).expect("same"));
    }

    #[test]
    fn ext4_and_tmpfs_have_no_reflinks() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!reflinks(dir.path()).expect("statfs"));
    }

    #[test]
    fn local_folders_are_not_network_file_systems() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(network_fs(dir.path()).expect("statfs"), None);
    }

    #[test]
    fn rename_exchange_swaps_two_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"A").expect("write");
        std::fs::write(&b, b"B").expect("write");
        rename_exchange(&a, &b).expect("exchange");
        assert_eq!(std::fs::read(&a).expect("read"), b"B");
        assert_eq!(std::fs::read(&b).expect("read"), b"A");
    }

    #[test]
    fn rename_noreplace_refuses_to_replace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"new").expect("write");
        std::fs::write(&b, b"old").expect("write");
        let err = rename_noreplace(&a, &b).expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).expect("read"), b"old");
        std::fs::remove_file(&b).expect("rm");
        rename_noreplace(&a, &b).expect("rename");
        assert_eq!(std::fs::read(&b).expect("read"), b"new");
        assert!(!a.exists());
    }

    #[test]
    fn copy_range_copies_exactly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, &data).expect("write");
        let src = File::open(&a).expect("open");
        let dst = File::create(&b).expect("create");
        let mut last = 0;
        let copied = copy_range(&src, &dst, data.len() as u64 + 10, &mut |n| {
            last = n;
            true
        })
        .expect("copy");
        assert_eq!(
            (copied, last),
            (data.len() as u64, data.len() as u64),
            "stops where src ends"
        );
        assert_eq!(std::fs::read(&b).expect("read"), data);
    }
}
