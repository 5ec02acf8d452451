//! The preflight: every refusal decided before the first write. It walks
//! the steps as a simulation (which file exists when, whose data it holds),
//! checks the files, their encodings, their file systems and folders, the
//! names the run makes files at, the locks, DEV in use and the migrations'
//! counts. A plan is the same preflight with the refusals collected.

use super::*;

/// A readable, regular SQLite file with a sound header.
pub(super) fn read_database(path: &Path) -> Result<OnDisk, Error> {
    let found = sqlite_file::inspect(path, false).map_err(|e| match FileError::of_input(path, e) {
        Ok(e) => Error::File(e),
        Err(e) => Error::File(FileError::Io {
            path: path.to_owned(),
            action: "read the header",
            source: e,
        }),
    })?;
    let sidecars = Sidecars::of(path).map_err(|e| {
        Error::File(FileError::Io {
            path: path.to_owned(),
            action: "look for sidecars",
            source: e,
        })
    })?;
    Ok(OnDisk {
        header: found.header,
        bytes: found.meta.len(),
        wal_bytes: sidecars.wal.unwrap_or(0),
        mode: found.meta.permissions().mode() & 0o777,
    })
}

/// The files whose lock a run takes: each file written once, and each
/// temporary file (a `replace` step's staging included).
pub(super) fn lock_targets(d: &Deployment, temporaries: &[PathBuf]) -> Vec<PathBuf> {
    let mut targets: Vec<PathBuf> = Vec::new();
    let durable = d
        .steps
        .iter()
        .map(|s| s.op.target())
        .filter(|&i| !d.files[i].temporary)
        .map(|i| d.files[i].path.clone());
    for target in durable.chain(temporaries.iter().cloned()) {
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    targets
}

/// The temporary files of a deployment: declared `temporary`, and each
/// `replace` step's staging beside its target.
pub(super) fn temporaries(d: &Deployment) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = d.files.iter().filter(|f| f.temporary).map(|f| f.path.clone()).collect();
    for step in &d.steps {
        if let Operation::Replace { to, .. } = step.op {
            out.push(sidefile::staging(&d.files[to].path));
        }
    }
    out
}

/// What killed runs recorded in the lock files of the files this run
/// locks: the proof that what they name is a run's own to remove. A live
/// run's lock, and a link or odd file at a lock's name, are blockers (a
/// plan only reads the files, and never takes a lock).
pub(super) fn dead_records(
    targets: &[PathBuf],
    options: &RunOptions,
    prepared: &mut Prepared,
) -> Result<Vec<Record>, Error> {
    let mut records = Vec::new();
    for target in targets {
        match lock::state(target) {
            Ok(State::Dead(record)) => records.push(record),
            Ok(State::Free) => {}
            Ok(State::Held(holder)) => {
                let e = Error::Locked {
                    db: target.clone(),
                    lock: lock::lock_path(target),
                    holder,
                };
                blocked(prepared, options, e)?;
            }
            Err(e) => blocked(prepared, options, e.into())?,
        }
    }
    Ok(records)
}

pub(super) fn preflight(
    d: &Deployment,
    options: &RunOptions,
    masks: BTreeMap<usize, masking::Masked>,
    counted_remotely: Option<counted_remotely::CountedRemotely>,
    events: &mut dyn Events,
    report: &mut Report,
) -> Result<Prepared, Error> {
    distinct(d)?;
    check(report, "distinct", true, "no file is named twice".into());
    let mut prepared = Prepared {
        disk: Vec::new(),
        origins: Vec::new(),
        temporaries: temporaries(d),
        locks: Vec::new(),
        diffs: BTreeMap::new(),
        rejects: BTreeMap::new(),
        leftovers: Vec::new(),
        readers_left: Vec::new(),
        allow_behind: options.allow_behind,
        masks,
        counted_remotely,
        blockers: Vec::new(),
    };
    let targets = lock_targets(d, &prepared.temporaries);
    let records = dead_records(&targets, options, &mut prepared)?;
    let mut walk = walk(d, &records, report)?;
    if let Some(c) = &prepared.counted_remotely {
        let address = d.files[c.file]
            .remote
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        c.patch(&mut walk.disk, report, &address);
    }
    same_encodings(d, &walk)?;
    check(
        report,
        "encoding",
        true,
        "the schema and data of each migration share one text encoding".into(),
    );
    local_and_writable(d, &walk, &prepared.temporaries)?;
    check(
        report,
        "local",
        true,
        "every file is on a local file system; the folders written are writable".into(),
    );
    prepared.disk = walk.disk;
    prepared.origins = walk.origins;
    side_files(d, &records, options, report, &mut prepared)?;
    lock_and_clean(d, &targets, &walk.written, options, events, report, &mut prepared)?;
    not_in_use(d, &walk.present, options, report, &mut prepared)?;
    masking::check_rules(d, report, &mut prepared)?;
    // Cheap before costly: room for the copies, then the counts, then room
    // for the migrations' journals as the counts measured them.
    if !options.dry_run {
        free_space(d, None, options, report, &mut prepared)?;
    }
    let migrations = count_migrations(d, options, events, report, &mut prepared)?;
    preview_copies(d, options, events, report, &mut prepared)?;
    report.space.clear();
    free_space(d, Some(&migrations), options, report, &mut prepared)?;
    Ok(prepared)
}

/// The files as the steps will find them.
pub(super) struct Walk {
    disk: Vec<Option<OnDisk>>,
    /// On disk now (a temporary file, or one a killed run recorded it made,
    /// found there is a leftover, not present).
    present: Vec<bool>,
    origins: Vec<Origins>,
    /// The files the steps write, each once, in order.
    written: Vec<usize>,
}

/// Walks the steps: every input exists when its step runs, every new file
/// does not, every existing file touched is a readable database.
pub(super) fn walk(d: &Deployment, records: &[Record], report: &mut Report) -> Result<Walk, Error> {
    let n = d.files.len();
    let leftover = |path: &Path| records.iter().any(|r| r.made_here(path));
    let present: Vec<bool> = d
        .files
        .iter()
        .map(|f| exists(&f.path) && !f.temporary && !leftover(&f.path))
        .collect();
    let mut disk: Vec<Option<OnDisk>> = vec![None; n];
    for &i in &d.required {
        disk[i] = Some(read_database(&d.files[i].path)?);
    }
    let mut origin: Vec<usize> = (0..n).collect();
    let mut origins: Vec<Origins> = Vec::new();
    let mut will_exist = present.clone();
    let mut written: Vec<usize> = Vec::new();
    for (s, step) in d.steps.iter().enumerate() {
        let need = |i: usize, will_exist: &[bool]| -> Result<(), Error> {
            if will_exist[i] {
                Ok(())
            } else if present[i] || !d.steps[..s].iter().any(|p| p.op.target() == i) {
                Err(Error::File(FileError::Missing(d.files[i].path.clone())))
            } else {
                Err(Error::BadDeployment {
                    path: d.files[i].path.clone(),
                    why: format!("step {} needs it, and an earlier step consumed it", s + 1),
                })
            }
        };
        let (src, dst) = (step.op.source(), step.op.target());
        origins.push(Origins {
            source: origin[src],
            target: origin[dst],
        });
        need(src, &will_exist)?;
        for i in [src, dst] {
            if present[i] && disk[i].is_none() {
                disk[i] = Some(read_database(&d.files[i].path)?);
            }
        }
        if !written.contains(&dst) {
            written.push(dst);
        }
        match step.op {
            Operation::Snapshot { .. } => {
                if will_exist[dst] {
                    return Err(Error::Exists(d.files[dst].path.clone()));
                }
                origin[dst] = origin[src];
            }
            Operation::Apply { .. } => need(dst, &will_exist)?,
            Operation::Swap { .. } => {
                will_exist[src] = false;
                origin[dst] = origin[src];
            }
            Operation::Replace { .. } => origin[dst] = origin[src],
        }
        will_exist[dst] = true;
    }
    let mut found = Vec::new();
    for (i, f) in d.files.iter().enumerate() {
        let on_disk = disk[i].as_ref();
        report.files.push(FileInfo {
            name: f.name.clone(),
            path: f.path.clone(),
            temporary: f.temporary,
            existed: exists(&f.path),
            bytes: on_disk.map(|o| o.bytes),
            mode: on_disk.map(|o| format!("{:04o}", o.mode)),
            journal_mode: on_disk.map(|o| o.header.journal.as_str()),
        });
        if let Some(o) = on_disk {
            found.push(format!(
                "{} is a database ({}, {} mode)",
                f.path.display(),
                size(o.bytes),
                o.header.journal.as_str()
            ));
        }
    }
    check(report, "files", true, found.join("; "));
    Ok(Walk {
        disk,
        present,
        origins,
        written,
    })
}

/// The names the run makes files at (temporary files, new snapshot
/// targets, rejects): nothing may lie there, nor at their sidecars' names,
/// that the run cannot prove its own. A file a killed run recorded in its
/// lock is a leftover, removed once this run holds the lock; a link, an odd
/// file, or anything unrecorded is refused and left as it is.
pub(super) fn side_files(
    d: &Deployment,
    records: &[Record],
    options: &RunOptions,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    let recorded = |p: &Path| records.iter().any(|r| r.made_here(p));
    // (path, a temporary file the user named in a deployment file)
    let mut made: Vec<(PathBuf, bool)> = prepared
        .temporaries
        .iter()
        .map(|t| {
            let named = d.from_file && d.files.iter().any(|f| f.temporary && f.path == *t);
            (t.clone(), named)
        })
        .collect();
    let stamp = sqlite_file::fs::utc_stamp(SystemTime::now());
    for (s, step) in d.steps.iter().enumerate() {
        // `--rules` with a rollback-mode PROD: its private copy to mask from.
        if step.masking.is_some() {
            made.push((sidefile::mask_source(d.key_home(s)), false));
        }
        match &step.op {
            Operation::Snapshot { to, .. } if !d.files[*to].temporary => made.push((d.files[*to].path.clone(), false)),
            Operation::Apply {
                schema,
                options:
                    ApplyOptions {
                        on_violation: OnViolation::Skip,
                        rejects,
                        ..
                    },
                ..
            } => {
                // A default name takes the next free counter within the second
                // (a run a second ago left one); a name the user gave is theirs.
                let path = rejects.clone().unwrap_or_else(|| {
                    let dev = &d.files[*schema].path;
                    (1..)
                        .map(|n| match n {
                            1 => sidefile::rejects(dev, &stamp),
                            n => sidefile::rejects(dev, &format!("{stamp}-{n}")),
                        })
                        .find(|p| sidefile::check_free(p).is_ok() || recorded(p))
                        .unwrap_or_else(|| sidefile::rejects(dev, &stamp))
                });
                prepared.rejects.insert(s, path.clone());
                made.push((path, false));
            }
            _ => {}
        }
    }
    let blockers_before = prepared.blockers.len();
    for (path, named) in made {
        match sidefile::check_free(&path) {
            Ok(()) => {}
            Err(SideFileError::NotOurs { .. } | SideFileError::StaleSidecar(_)) if recorded(&path) => {
                if !prepared.leftovers.contains(&path) {
                    prepared.leftovers.push(path);
                }
            }
            Err(e @ (SideFileError::NotOurs { .. } | SideFileError::StaleSidecar(_))) if named => {
                return Err(Error::BadDeployment {
                    path,
                    why: format!(
                        "declared temporary, so a run would delete it, but it is not a killed run's leftover ({e}); remove it or name another path"
                    ),
                });
            }
            Err(e) => {
                check(report, "side files", false, e.to_string());
                blocked(prepared, options, e.into())?;
            }
        }
    }
    // Whatever else a killed run recorded: a chain of killed runs is
    // cleaned up by the next one that gets this far.
    for record in records {
        for path in &record.made {
            let there = exists(path) || sidefile::sidecars_present(path).is_ok_and(|s| !s.is_empty());
            if there && !prepared.leftovers.contains(path) {
                prepared.leftovers.push(path.clone());
            }
        }
        prepared.readers_left.extend(record.reads.iter().cloned());
    }
    if prepared.blockers.len() == blockers_before {
        check(
            report,
            "side files",
            true,
            "nothing lies at the names of the files the run makes, but a killed run's recorded leftovers".into(),
        );
    }
    Ok(())
}

/// One run at a time per file written (a plan only looks); then a killed
/// run's leftovers go, now that the lock says that run is gone.
pub(super) fn lock_and_clean(
    d: &Deployment,
    targets: &[PathBuf],
    written: &[usize],
    options: &RunOptions,
    events: &mut dyn Events,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    for target in targets {
        if options.dry_run {
            continue; // a plan never takes a lock: `dead_records` read them
        }
        let lock = Lock::take(target, &options.command)?;
        if let Some(previous) = &lock.inherited {
            let message = format!("took over a killed run's lock ({})", previous.describe());
            events.event("warn", None, &message, Some(&lock.path));
        }
        prepared.locks.push(lock);
    }
    let mut leftovers = prepared.leftovers.clone();
    for &i in written {
        let target = &d.files[i].path;
        let (prefix, ext) = sidefile::plan_copy_prefix(target);
        for path in sidefile::dead_pid_leftovers(parent_dir(target), &prefix, &ext) {
            if !leftovers.contains(&path) {
                leftovers.push(path);
            }
        }
    }
    for path in leftovers {
        if !options.dry_run {
            sidefile::remove_with_sidecars(&path)?;
            events.event("info", None, "removed a killed run's leftover", Some(&path));
        }
        report.leftovers_removed.push(path);
    }
    if !options.dry_run {
        for db in std::mem::take(&mut prepared.readers_left) {
            match sqlite_file::close_idle_wal(&db) {
                Ok(true) => {
                    events.event(
                        "info",
                        None,
                        "removed the empty -wal and the -shm a killed run left beside it",
                        Some(&db),
                    );
                    report
                        .leftovers_removed
                        .push(sqlite_file::sidecar_path(&db, sqlite_file::Sidecar::Wal));
                    report
                        .leftovers_removed
                        .push(sqlite_file::sidecar_path(&db, sqlite_file::Sidecar::Shm));
                }
                Ok(false) => {}
                Err(e) => events.event("warn", None, &format!("left its -wal/-shm as they are: {e}"), Some(&db)),
            }
        }
        record_readers(d, prepared)?;
    }
    match prepared.blockers.iter().find(|e| matches!(e, Error::Locked { .. })) {
        Some(e) => check(report, "lock", false, e.to_string()),
        None => check(report, "lock", true, "no other run holds the files written".into()),
    }
    Ok(())
}

/// Records, before any of them is opened, the databases whose `-wal` and
/// `-shm` do not exist: opening such a WAL-mode file makes both, SQLite
/// removes them when it closes, and a killed run would leave them. The next
/// run removes them then (`sqlite_file::close_idle_wal`).
pub(super) fn record_readers(d: &Deployment, prepared: &mut Prepared) -> Result<(), Error> {
    for (i, f) in d.files.iter().enumerate() {
        let Some(o) = &prepared.disk[i] else { continue };
        let idle = Sidecars::of(&f.path).is_ok_and(|s| s.wal.is_none() && s.shm.is_none());
        if o.header.journal == JournalFlag::Wal && idle {
            for lock in &mut prepared.locks {
                lock.record_reads(&f.path)?;
            }
        }
    }
    Ok(())
}

/// No two names for one file (links included).
pub(super) fn distinct(d: &Deployment) -> Result<(), Error> {
    let mut ids: Vec<(usize, FileId)> = Vec::new();
    for (i, f) in d.files.iter().enumerate() {
        if let Some(b) = d.files[i + 1..].iter().find(|b| b.path == f.path) {
            return Err(Error::File(FileError::SameFile {
                a: f.path.clone(),
                b: b.path.clone(),
            }));
        }
        if let Ok(id) = FileId::of(&f.path) {
            if let Some((j, _)) = ids.iter().find(|(_, other)| *other == id) {
                return Err(Error::File(FileError::SameFile {
                    a: d.files[*j].path.clone(),
                    b: f.path.clone(),
                }));
            }
            ids.push((i, id));
        }
    }
    Ok(())
}

/// The schema and the data of each migration in one text encoding.
pub(super) fn same_encodings(d: &Deployment, walk: &Walk) -> Result<(), Error> {
    for (s, step) in d.steps.iter().enumerate() {
        if !matches!(step.op, Operation::Apply { .. }) {
            continue;
        }
        let Origins { source: a, target: b } = walk.origins[s];
        let encodings = |i: usize| walk.disk[i].as_ref().and_then(|o| o.header.encoding);
        if let (Some(x), Some(y)) = (encodings(a), encodings(b)) {
            if x != y {
                return Err(Error::File(FileError::Encodings {
                    a: d.files[a].path.clone(),
                    b: d.files[b].path.clone(),
                    a_encoding: x.as_str().to_owned(),
                    b_encoding: y.as_str().to_owned(),
                }));
            }
        }
    }
    Ok(())
}

/// Every file on a local file system, every folder written there and writable.
pub(super) fn local_and_writable(d: &Deployment, walk: &Walk, temporaries: &[PathBuf]) -> Result<(), Error> {
    for (i, f) in d.files.iter().enumerate() {
        let folder = parent_dir(&f.path);
        if !folder.is_dir() {
            return Err(Error::File(FileError::FolderMissing(folder.to_owned())));
        }
        let probe = if walk.present[i] { f.path.as_path() } else { folder };
        let kind = network_fs(probe).map_err(|e| {
            Error::File(FileError::Io {
                path: f.path.clone(),
                action: "statfs",
                source: e,
            })
        })?;
        if let Some(kind) = kind {
            return Err(Error::File(FileError::NetworkFs {
                path: f.path.clone(),
                kind,
            }));
        }
    }
    let mut folders: Vec<PathBuf> = walk
        .written
        .iter()
        .map(|&i| parent_dir(&d.files[i].path).to_owned())
        .chain(temporaries.iter().map(|t| parent_dir(t).to_owned()))
        .collect();
    folders.sort();
    folders.dedup();
    for folder in folders {
        let writable = dir_writable(&folder).map_err(|e| {
            Error::File(FileError::Io {
                path: folder.clone(),
                action: "access",
                source: e,
            })
        })?;
        if !writable {
            return Err(Error::File(FileError::PermissionDenied {
                path: folder,
                action: "create files in folder",
            }));
        }
    }
    // A file the run changes must be writable before anything starts: the
    // checkpoint that makes DEV self-contained writes it, and failing there
    // would leave SQLite's sidecars beside it.
    for &i in &walk.written {
        let path = &d.files[i].path;
        if walk.present[i] && !sqlite_file::fs::file_writable(path).unwrap_or(false) {
            return Err(Error::File(FileError::PermissionDenied {
                path: path.clone(),
                action: "write: the run changes or replaces it",
            }));
        }
    }
    Ok(())
}

/// The files to replace are not open by another process (unless `live`).
pub(super) fn not_in_use(
    d: &Deployment,
    present: &[bool],
    options: &RunOptions,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    for step in &d.steps {
        let (to, live) = match step.op {
            Operation::Swap { to, swap, .. } | Operation::Replace { to, swap, .. } => (to, swap.live),
            _ => continue,
        };
        if !present[to] {
            continue;
        }
        let path = &d.files[to].path;
        let users = swap::users(path).map_err(|e| {
            Error::File(FileError::Io {
                path: path.clone(),
                action: "look for processes using it",
                source: e,
            })
        })?;
        if users.is_empty() {
            check(
                report,
                "in use",
                true,
                format!("{}: no process has it open", path.display()),
            );
        } else if live {
            let detail = format!(
                "{}: open by {} (--live: written through SQLite)",
                path.display(),
                list(&users)
            );
            check(report, "in use", true, detail);
        } else {
            let e = Error::InUse {
                path: path.clone(),
                users: list(&users),
            };
            check(report, "in use", false, e.to_string());
            blocked(prepared, options, e)?;
        }
    }
    Ok(())
}

/// A temporary snapshot of the rollback-mode `data` of step `s` beside
/// file `to`, named after this process, for counting without holding
/// PROD's lock: PROD's writers wait for one copy at most.
fn counting_copy(d: &Deployment, s: usize, to: usize, data: &Path, events: &mut dyn Events) -> Result<PathBuf, Error> {
    let temp = sidefile::plan_copy(&d.files[to].path);
    // As long a wait for PROD's writer as the step making the copy allows.
    let timeout = d.steps[..=s]
        .iter()
        .rev()
        .find_map(|p| match p.op {
            Operation::Snapshot { to: made, timeout, .. } if made == to => Some(timeout),
            Operation::Replace { timeout, .. } => Some(timeout),
            _ => None,
        })
        .unwrap_or(Duration::from_secs(60));
    let options = snapshot::Options {
        timeout,
        ..snapshot::Options::default()
    };
    let copy = snapshot::Snapshot::new(data, &temp, options);
    copy.run(&mut Adapter(events))?;
    Ok(temp)
}

/// A plan's preview of the rules of each masked copy (`snapshot` or
/// `replace` with `--rules`), read from PROD (its copy, in rollback mode).
pub(super) fn preview_copies(
    d: &Deployment,
    options: &RunOptions,
    events: &mut dyn Events,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<(), Error> {
    if !options.dry_run {
        return Ok(());
    }
    for (s, step) in d.steps.iter().enumerate() {
        let (Some(_), Operation::Snapshot { from, to, .. } | Operation::Replace { from, to, .. }) =
            (&step.masking, &step.op)
        else {
            continue;
        };
        let Some(disk) = &prepared.disk[*from] else { continue };
        let data = d.files[*from].path.clone();
        let counted_on = if disk.header.journal == JournalFlag::Wal {
            data.clone()
        } else {
            counting_copy(d, s, *to, &data, events)?
        };
        let previewed = masking::preview(d, s, &counted_on, options, report, prepared);
        if counted_on != data {
            sidefile::remove_with_sidecars(&counted_on)?;
        }
        previewed?;
    }
    Ok(())
}

/// Each migration compared and its data impact counted before any write:
/// on PROD itself in WAL mode (its writers never wait for readers), on a
/// temporary snapshot when planning a rollback-mode PROD (its writers wait
/// for one copy at most); a run with a rollback-mode PROD counts on its
/// staging copy instead, before changing it. Returns, per apply step, the
/// room each migration needs (`schema_diff::space`).
pub(super) fn count_migrations(
    d: &Deployment,
    options: &RunOptions,
    events: &mut dyn Events,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<BTreeMap<usize, MigrationBytes>, Error> {
    let mut migrations = BTreeMap::new();
    for (s, step) in d.steps.iter().enumerate() {
        let Operation::Apply {
            to,
            options:
                ApplyOptions {
                    on_violation,
                    ref hints,
                    ref reading,
                    ..
                },
            ..
        } = step.op
        else {
            continue;
        };
        let Origins {
            source: schema_file,
            target: data_file,
        } = prepared.origins[s];
        let (Some(_), Some(data_disk)) = (&prepared.disk[schema_file], &prepared.disk[data_file]) else {
            continue;
        };
        let data_path = d.files[data_file].path.clone();
        // Hints against the real files' schemas, before any copy is made.
        // Only the verdict counts here: a file that cannot be read now
        // (PROD busy) is read again, hints and all, by the counting below.
        if let Err(e @ schema_diff::Error::BadHint { .. }) =
            schema_diff::check_hints(&d.files[schema_file].path, &data_path, hints, reading)
        {
            return Err(e.into());
        }
        // DEV behind the data (PROD and DEV swapped?): refused, unless meant.
        if !options.allow_behind {
            if let Ok(Some(why)) = schema_diff::behind(&d.files[schema_file].path, &data_path, hints) {
                let e = Error::DevBehind {
                    dev: d.files[schema_file].path.clone(),
                    why,
                };
                check(report, "behind", false, e.to_string());
                blocked(prepared, options, e)?;
                continue;
            }
        }
        let wal = data_disk.header.journal == JournalFlag::Wal;
        if !wal && !options.dry_run {
            let detail = format!(
                "{} is in rollback mode: the data impact is counted on the copy, before it is changed",
                data_path.display()
            );
            check(report, "schema", true, detail);
            continue;
        }
        if events.cancelled() {
            return Err(Error::Interrupted);
        }
        events.event("info", Some(&step.name), "counting the data impact", Some(&data_path));
        let counted_on = if wal {
            data_path.clone()
        } else {
            counting_copy(d, s, to, &data_path, events)?
        };
        let diff = schema_diff::compare(&d.files[schema_file].path, &counted_on, hints, reading);
        let measured = diff
            .as_ref()
            .ok()
            .map(|diff| schema_diff::space::migration_bytes(&counted_on, diff));
        if counted_on != data_path {
            // Named after this process: provably its own.
            sidefile::remove_with_sidecars(&counted_on)?;
        }
        let mut diff = diff?;
        // A remote PROD's rows were counted on its host: the image here has
        // its schema, the counts come from there.
        let measured = match prepared.counted_remotely.as_ref().and_then(|c| c.counts_for(data_file)) {
            Some((counts, bytes)) => {
                diff.merge_counts(counts.clone());
                Some(bytes.clone())
            }
            None => measured,
        };
        if let Some(measured) = measured {
            migrations.insert(s, measured);
        }
        let rows =
            |kind: ImpactKind| -> i64 { diff.data_impact.iter().filter(|i| i.kind == kind).map(|i| i.rows).sum() };
        let violating = rows(ImpactKind::Violation).max(0);
        // The one decision `apply` enforces (schema_diff::Report::blocking).
        if let Some(why) = diff.blocking(on_violation) {
            let e = Error::Violations {
                path: data_path.clone(),
                list: why,
            };
            check(report, "schema", false, e.to_string());
            prepared.diffs.insert(s, diff);
            blocked(prepared, options, e)?;
            continue;
        }
        let not_counted = [diff.unreadable.clone(), diff.not_counted.clone()].concat();
        let detail = format!(
            "{}, counted on {}: {} new constraints{}, {} lost{}",
            cli_support::plural(diff.changes.len() as u64, "change", "changes"),
            data_path.display(),
            cli_support::plural(violating, "row breaks", "rows break"),
            if violating > 0 { " (skipped into rejects)" } else { "" },
            cli_support::plural(rows(ImpactKind::Lost), "value or row", "values or rows"),
            if not_counted.is_empty() {
                String::new()
            } else {
                format!("; not counted: {}", not_counted.join("; "))
            }
        );
        check(report, "schema", true, detail);
        prepared.diffs.insert(s, diff);
    }
    Ok(migrations)
}
