//! `--undo`: TARGET exchanged with its newest backup.

use super::*;

/// Puts TARGET's newest backup back, atomically exchanging the two, so the
/// backup name then holds what TARGET was: running it twice returns to
/// where it started.
pub fn undo(target: &Path, options: &Options) -> Result<UndoReport, Error> {
    let resolved = resolve_link(target);
    let target = resolved.as_path();
    let started = Instant::now();
    let folder = parent_dir(target).to_owned();
    match std::fs::metadata(&folder) {
        Ok(m) if m.is_dir() => {}
        _ => return Err(Error::File(FileError::FolderMissing(folder))),
    }
    check_database(target)?;
    let backup = backups::list(target)
        .pop()
        .ok_or_else(|| Error::NoBackup(target.to_owned()))?;
    check_database(&backup)?;
    if !dir_writable(&folder).map_err(|e| io_error(&folder, "access", e))? {
        return Err(Error::File(FileError::PermissionDenied {
            path: folder,
            action: "rename files in folder",
        }));
    }
    let found = wait_until_free(target, options.wait)?;
    if !found.is_empty() {
        return Err(in_use(target, &found, ""));
    }
    let old_target = make_self_contained(target, options.busy_timeout)?;
    match rename_exchange(&backup, target) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::Unsupported => {
            // link + rename: TARGET is old or new at every instant.
            let temp = temp_path(target, "swap");
            std::fs::hard_link(target, &temp).map_err(|e| io_error(&temp, "link", e))?;
            std::fs::rename(&backup, target).map_err(|e| io_error(target, "rename", e))?;
            std::fs::rename(&temp, &backup).map_err(|e| io_error(&backup, "rename", e))?;
        }
        Err(e) => return Err(io_error(target, "exchange", e)),
    }
    fsync_dir(&folder).map_err(|e| io_error(&folder, "fsync folder", e))?;
    Ok(UndoReport {
        target: target.to_owned(),
        restored: backup.clone(),
        replaced_kept_as: backup,
        old_target,
        seconds: started.elapsed().as_secs_f64(),
    })
}
