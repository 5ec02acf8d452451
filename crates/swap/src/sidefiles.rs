//! The side files a swap makes in TARGET's folder: NEW under a temporary
//! name until the exchange, put back on every failure; a killed run's
//! temporary files, removed by the next run.

use super::*;

/// The temporary name in TARGET's folder: `.NAME.swap-PID.tmp`.
pub(crate) fn temp_path(target: &Path, what: &str) -> PathBuf {
    sidefile::pid_temp(target, what)
}

/// Removes temporary files of killed runs (whose process is gone) beside `target`.
pub(crate) fn remove_leftovers(target: &Path) {
    for what in ["swap", "backup"] {
        let (prefix, suffix) = sidefile::pid_temp_pattern(target, what);
        for leftover in sidefile::dead_pid_leftovers(parent_dir(target), &prefix, &suffix) {
            let _ = sidefile::remove_with_sidecars(&leftover);
        }
    }
}

/// NEW moved (or copied) to a temporary name in TARGET's folder. Until
/// [`Placed::done`], dropping it puts NEW back (or removes the copy).
pub(crate) struct Placed {
    pub(crate) temp: PathBuf,
    pub(crate) new: PathBuf,
    pub(crate) copied: bool,
    pub(crate) done: bool,
}

impl Placed {
    /// NEW is in place: a copied NEW is consumed now.
    pub(crate) fn done(mut self) {
        self.done = true;
        if self.copied {
            let _ = std::fs::remove_file(&self.new);
        }
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if self.copied {
            let _ = std::fs::remove_file(&self.temp);
        } else {
            let _ = std::fs::rename(&self.temp, &self.new);
        }
    }
}

/// Moves NEW to `temp` (same file system) or copies it there and fsyncs it.
pub(crate) fn place(new: &Path, temp: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<Placed, Error> {
    let same_fs = FileId::of(new).ok().map(|f| f.dev) == FileId::of(parent_dir(temp)).ok().map(|f| f.dev);
    let placed = if same_fs {
        rename_noreplace(new, temp).map_err(|e| io_error(temp, "move NEW into the folder", e))?;
        Placed {
            temp: temp.to_owned(),
            new: new.to_owned(),
            copied: false,
            done: false,
        }
    } else {
        let src = File::open(new).map_err(|e| io_error(new, "open", e))?;
        let len = src.metadata().map_err(|e| io_error(new, "stat", e))?.len();
        let dst = sidefile::create_new(temp, 0o600).map_err(|e| side_error(temp, e))?;
        let placed = Placed {
            temp: temp.to_owned(),
            new: new.to_owned(),
            copied: true,
            done: false,
        };
        let copied = copy_range(&src, &dst, len, &mut |_| true).map_err(|e| io_error(temp, "copy NEW", e))?;
        if copied != len {
            return Err(io_error(
                new,
                "copy",
                io::Error::new(io::ErrorKind::UnexpectedEof, "NEW shrank while being copied"),
            ));
        }
        placed
    };
    let file = File::open(temp).map_err(|e| io_error(temp, "open", e))?;
    if let Some((uid, gid)) = owner {
        // Only root may give a file away; an ordinary user keeps it.
        let _ = std::os::unix::fs::fchown(&file, Some(uid), Some(gid));
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error(temp, "chmod", e))?;
    file.sync_all().map_err(|e| io_error(temp, "fsync", e))?;
    Ok(placed)
}
