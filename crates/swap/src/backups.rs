//! Backup names (`TARGET.bak-<UTC %Y%m%dT%H%M%SZ>`), listing and retention.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use sqlite_file::fs::utc_stamp;

fn prefix(target: &Path) -> String {
    format!(
        "{}.bak-",
        target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

/// The sort key of a backup's file name: its stamp and its counter.
fn key(target: &Path, name: &str) -> Option<(String, u32)> {
    let rest = name.strip_prefix(&prefix(target))?;
    let (stamp, counter) = match rest.split_once('-') {
        Some((stamp, n)) => (stamp, n.parse().ok()?),
        None => (rest, 0),
    };
    let valid = stamp.len() == 16
        && stamp.as_bytes()[8] == b'T'
        && stamp.ends_with('Z')
        && stamp[..8]
            .bytes()
            .chain(stamp[9..15].bytes())
            .all(|b| b.is_ascii_digit());
    valid.then(|| (stamp.to_owned(), counter))
}

/// The backups of `target`, oldest first.
pub fn list(target: &Path) -> Vec<PathBuf> {
    let folder = sqlite_file::fs::parent_dir(target);
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut found: Vec<((String, u32), PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_owned();
            Some((key(target, &name)?, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// A backup name for `target` at `time` that does not exist yet and sorts
/// after every backup already there (`…Z`, `…Z-2`, `…Z-3`). The names are
/// the recorded order of the backups: where an existing backup's stamp is
/// ahead of `time` (it was made while the clock was ahead, or the clock was
/// set back since), the new one takes that stamp with the next counter, so
/// the newest name is always the backup made last, whatever the clock did.
pub fn new_name(target: &Path, time: SystemTime) -> PathBuf {
    let folder = sqlite_file::fs::parent_dir(target);
    let now = utc_stamp(time);
    let newest = list(target)
        .iter()
        .filter_map(|p| key(target, p.file_name()?.to_str()?))
        .max();
    let name = match newest {
        Some((stamp, n)) if stamp >= now => format!("{}{stamp}-{}", prefix(target), n.max(1) + 1),
        _ => format!("{}{now}", prefix(target)),
    };
    folder.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn stamps_are_utc() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_547_045); // 2026-11-24 19:04:05 UTC
        assert_eq!(utc_stamp(t), "20261124T190405Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(utc_stamp(leap), "20000229T000000Z");
    }

    #[test]
    fn lists_backups_oldest_first_and_ignores_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("shop.db");
        for name in [
            "shop.db.bak-20261124T190405Z-2",
            "shop.db.bak-20261124T190405Z",
            "shop.db.bak-20251231T235959Z",
            "shop.db.bak-20261124T190405Z-10",
            "shop.db.bak-nonsense",
            "other.db.bak-20261124T190405Z",
            "shop.db",
        ] {
            std::fs::write(dir.path().join(name), b"x").expect("write");
        }
        let names: Vec<_> = list(&target)
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "shop.db.bak-20251231T235959Z",
                "shop.db.bak-20261124T190405Z",
                "shop.db.bak-20261124T190405Z-2",
                "shop.db.bak-20261124T190405Z-10"
            ]
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_795_547_045);
        assert_eq!(
            new_name(&target, t).file_name().expect("name").to_string_lossy(),
            "shop.db.bak-20261124T190405Z-11"
        );
        let later = t + Duration::from_secs(60);
        assert_eq!(
            new_name(&target, later).file_name().expect("name").to_string_lossy(),
            "shop.db.bak-20261124T190505Z"
        );
    }

    #[test]
    fn a_backup_from_a_clock_ahead_never_outranks_the_next_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("shop.db");
        std::fs::write(dir.path().join("shop.db.bak-20991231T235959Z"), b"x").expect("write");
        let now = UNIX_EPOCH + Duration::from_secs(1_795_547_045);
        let name = new_name(&target, now);
        assert_eq!(
            name.file_name().expect("name").to_string_lossy(),
            "shop.db.bak-20991231T235959Z-2"
        );
        std::fs::write(&name, b"x").expect("write");
        assert_eq!(
            list(&target).last(),
            Some(&name),
            "the newest name is the one made last"
        );
    }
}
