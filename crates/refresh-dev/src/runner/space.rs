//! Free space: the copies and the migrations' journals, per file system,
//! counted as the run will really write them.

use super::*;

/// Free space per file system: each copy made there (only its `-wal`'s
/// pages where the file system shares blocks) and, once the migrations are
/// measured (`migrations`), each migration's journal and new pages (twice
/// what `schema_diff::space` measured). A migration not measured yet is
/// checked on the copy once it is made (`room_for_migration`).
pub(super) fn free_space(
    d: &Deployment,
    migrations: Option<&BTreeMap<usize, MigrationBytes>>,
    options: &RunOptions,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    // Keyed by device: two folders on one file system share its free space.
    let mut needs: BTreeMap<u64, (PathBuf, u64, Vec<String>)> = BTreeMap::new();
    let mut need = |folder: &Path, bytes: u64, why: String| {
        let device = FileId::of(folder).map(|id| id.dev).unwrap_or(0);
        let entry = needs
            .entry(device)
            .or_insert_with(|| (folder.to_owned(), 0, Vec::new()));
        entry.1 += bytes;
        entry.2.push(why);
    };
    for (s, step) in d.steps.iter().enumerate() {
        let src = prepared.origins[s].source;
        match step.op {
            Operation::Snapshot { to, .. } | Operation::Replace { to, .. } => {
                if let Some(o) = &prepared.disk[src] {
                    let (from, folder) = (&d.files[src].path, parent_dir(&d.files[to].path));
                    // On one file system with reflinks the copy shares the
                    // file's blocks: only the pages taken from its -wal are new.
                    let same_fs = FileId::of(from).ok().map(|f| f.dev) == FileId::of(folder).ok().map(|f| f.dev);
                    if same_fs && sqlite_file::fs::reflinks(folder).unwrap_or(false) {
                        let why = format!(
                            "a copy of {} sharing its blocks (reflinks): its -wal's pages and 1 MiB",
                            from.display()
                        );
                        need(folder, o.wal_bytes + (1 << 20), why);
                    } else {
                        need(folder, o.bytes + o.wal_bytes, format!("a copy of {}", from.display()));
                    }
                }
            }
            Operation::Apply { to, .. } => {
                let Some(migrations) = migrations else { continue };
                // A migration not counted yet is counted on the copy once it
                // is made, and its room checked there (`room_for_migration`).
                if let Some(MigrationBytes { bytes, why }) = migrations.get(&s) {
                    need(parent_dir(&d.files[to].path), 2 * bytes + (1 << 20), why.clone());
                }
            }
            Operation::Swap { .. } => {}
        }
        // `--rules`: the masked copy is at most the copy's size (counted
        // above); a rollback-mode PROD is first copied privately beside it.
        if let (Some(_), Operation::Snapshot { to, .. } | Operation::Replace { to, .. }) = (&step.masking, &step.op) {
            if let Some(o) = prepared.disk[src]
                .as_ref()
                .filter(|o| o.header.journal != JournalFlag::Wal)
            {
                let why = format!("a private copy of {} to mask from", d.files[src].path.display());
                need(parent_dir(&d.files[*to].path), o.bytes + o.wal_bytes, why);
            }
        }
    }
    for (_, (folder, needed, why)) in needs {
        let available = available_space(&folder).map_err(|e| {
            Error::File(FileError::Io {
                path: folder.clone(),
                action: "statvfs",
                source: e,
            })
        })?;
        let why = why.join(" + ");
        report.space.push(Space {
            folder: folder.clone(),
            needed,
            available,
            why: why.clone(),
        });
        if needed > available {
            let e = Error::NoSpace {
                folder,
                needed,
                available,
                why,
            };
            check(report, "space", false, e.to_string());
            blocked(prepared, options, e)?;
        }
    }
    Ok(())
}

/// Room in `db`'s folder for the migration `diff` plans: the journal and
/// new pages (`schema_diff::space`), twice over, and 1 MiB.
pub(super) fn room_for_migration(db: &Path, diff: &schema_diff::Report) -> Result<(), Error> {
    let measured = schema_diff::space::migration_bytes(db, diff);
    let folder = parent_dir(db);
    let needed = 2 * measured.bytes + (1 << 20);
    let available = available_space(folder).map_err(|e| {
        Error::File(FileError::Io {
            path: folder.to_owned(),
            action: "statvfs",
            source: e,
        })
    })?;
    if needed > available {
        return Err(Error::NoSpace {
            folder: folder.to_owned(),
            needed,
            available,
            why: measured.why,
        });
    }
    Ok(())
}
