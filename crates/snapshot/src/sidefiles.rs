//! The side files a snapshot makes: the temporary file DEST is built in,
//! removed on every failure, and a killed run's, removed by the next run.

use super::*;

/// Prefix of the temporary files of a snapshot into `dest`: `.NAME.snapshot-`.
pub(crate) fn temp_prefix(dest_name: &str) -> String {
    format!(".{dest_name}.snapshot-")
}

/// The temporary file DEST is built in. Removed (with any sidecar) on drop
/// unless [`TempFile::finish`] put it in place.
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
    pub(crate) file: Option<File>,
    pub(crate) done: bool,
}

impl TempFile {
    pub(crate) fn create(folder: &Path, dest_name: &str) -> Result<TempFile, Error> {
        let path = folder.join(format!("{}{}.tmp", temp_prefix(dest_name), std::process::id()));
        let file = sidefile::create_new(&path, 0o600).map_err(|e| match e {
            SideFileError::Io { source, .. } => io_error(&path, "create", source),
            e => Error::SideFile(e),
        })?;
        Ok(TempFile {
            path,
            file: Some(file),
            done: false,
        })
    }

    /// fsync (where `durable`), permissions from SOURCE (never wider),
    /// rename into place, fsync the folder (where `durable`).
    pub(crate) fn finish(mut self, source: &Path, dest: &Path, force: bool, durable: bool) -> Result<(), Error> {
        let file = match self.file.take() {
            Some(f) => f,
            None => File::open(&self.path).map_err(|e| io_error(&self.path, "open", e))?,
        };
        if durable {
            file.sync_all().map_err(|e| io_error(&self.path, "fsync", e))?;
        }
        let mode = std::fs::metadata(source)
            .map_err(|e| io_error(source, "stat", e))?
            .permissions()
            .mode()
            & 0o777;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(|e| io_error(&self.path, "chmod", e))?;
        drop(file);
        // A sidecar that appeared at DEST's name since the check would be
        // replayed into the copy: refuse, leaving it (and the copy) alone.
        if let Some(stale) = sidefile::sidecars_present(dest)
            .map_err(|e| io_error(dest, "look for sidecars", e))?
            .first()
        {
            return Err(SideFileError::StaleSidecar(stale.clone()).into());
        }
        if force {
            std::fs::rename(&self.path, dest).map_err(|e| io_error(dest, "rename into place", e))?;
        } else {
            rename_noreplace(&self.path, dest).map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Error::DestExists(dest.to_owned()),
                _ => io_error(dest, "rename into place", e),
            })?;
        }
        self.done = true;
        if !durable {
            return Ok(());
        }
        let folder = parent_dir(dest);
        sqlite_file::fs::fsync_dir(folder).map_err(|e| io_error(folder, "fsync folder", e))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.done {
            remove_with_sidecars(&self.path);
        }
    }
}

pub(crate) fn remove_with_sidecars(path: &Path) {
    let _ = sidefile::remove_with_sidecars(path);
}

/// Removes temporary files (and their sidecars) left in `folder` by killed
/// snapshots into the same DEST name, whose process is gone.
pub(crate) fn remove_leftovers(folder: &Path, dest_name: &str) -> Vec<PathBuf> {
    sidefile::dead_pid_leftovers(folder, &temp_prefix(dest_name), ".tmp")
        .into_iter()
        .filter(|p| sidefile::remove_with_sidecars(p).is_ok())
        .collect()
}
