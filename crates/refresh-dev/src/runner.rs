//! Runs a [`Deployment`]: the preflight that decides every refusal before a
//! write, then the steps in order, then the cleanup.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use exit_code::Exit;
use schema_diff::apply::OnViolation;
use schema_diff::plan::{ImpactKind, Strategy};
use sqlite_file::fs::{available_space, dir_writable, network_fs, parent_dir, FileId};
use sqlite_file::lock::{self, Lock, Record, State};
use sqlite_file::sidefile::{self, SideFileError};
use sqlite_file::{Header, InputError, JournalFlag, Sidecars};

use crate::deployment::{Deployment, Operation, SwapOptions};
use crate::report::{size, Check, FileInfo, Outcome, Rejects, Report, Space, Status, StepReport};
use crate::Error;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plan only: check everything, count the data impact, write nothing.
    pub dry_run: bool,
    /// On failure, keep the staging file (and rejects) for inspection.
    pub keep_staging: bool,
    /// The command's name, for the report and the lock file.
    pub command: String,
}

/// What the caller hears while a deployment runs.
pub trait Events {
    /// A line worth logging: `level` is `info`, `warn` or `error`.
    fn event(&mut self, _level: &'static str, _step: Option<&str>, _message: &str, _file: Option<&Path>) {}
    /// A step starts (its 1-based index, name and operation).
    fn step_started(&mut self, _index: usize, _name: &str, _op: &'static str) {}
    /// A step ended.
    fn step_finished(&mut self, _step: &StepReport) {}
    /// What the running step is doing now (`copying the rows of orders (2500 rows)`).
    fn detail(&mut self, _message: &str) {}
    /// `done` of `total` bytes copied by the running step.
    fn progress(&mut self, _done: u64, _total: u64) {}
    /// Asked between steps and while copying: `true` stops the run, which cleans up.
    fn cancelled(&self) -> bool {
        false
    }
    /// The flag behind `cancelled`, for work that runs inside SQLite (a
    /// migration's statements are interrupted when it is set).
    fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        None
    }
}

/// Hears nothing, never cancels.
pub struct Silent;
impl Events for Silent {}

/// A file as the preflight found it on disk.
#[derive(Debug, Clone)]
struct OnDisk {
    header: Header,
    bytes: u64,
    wal_bytes: u64,
    mode: u32,
}

/// What the preflight learnt, for the steps and the report.
struct Prepared {
    disk: Vec<Option<OnDisk>>,
    /// Per step: the files whose data its source and its target hold when it runs.
    origins: Vec<(usize, usize)>,
    /// Files made and removed by this run (declared temporary, and each
    /// `replace` step's staging).
    temporaries: Vec<PathBuf>,
    locks: Vec<Lock>,
    /// Per apply step: the comparison made by the preflight.
    diffs: BTreeMap<usize, schema_diff::Report>,
    /// Per apply step that skips violating rows: the rejects file it makes.
    rejects: BTreeMap<usize, PathBuf>,
    /// Files a killed run recorded it made: removed once the lock is ours.
    leftovers: Vec<PathBuf>,
    /// Databases a killed run recorded it had open with no `-wal`/`-shm`.
    readers_left: Vec<PathBuf>,
    blockers: Vec<Error>,
}

/// Runs `deployment`, returning the report (whose `exit_code` says how it went).
pub fn run(deployment: &Deployment, options: &RunOptions, events: &mut dyn Events) -> Report {
    let started = Instant::now();
    let mut report = Report {
        command: options.command.clone(),
        deployment: deployment.origin.clone(),
        result: Outcome::Succeeded,
        exit_code: Exit::Done,
        dry_run: options.dry_run,
        error: None,
        failed_step: None,
        files: Vec::new(),
        preflight: Vec::new(),
        space: Vec::new(),
        steps: Vec::new(),
        changes: Vec::new(),
        plan: Vec::new(),
        data_impact: Vec::new(),
        backup: None,
        rejects: None,
        leftovers_removed: Vec::new(),
        removed: Vec::new(),
        kept: Vec::new(),
        seconds: 0.0,
    };
    let prepared = preflight(deployment, options, events, &mut report);
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(e) => {
            abort(&mut report, &e, events);
            report.steps = planned_steps(deployment, &BTreeMap::new(), Status::Skipped);
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    if options.dry_run {
        report.steps = planned_steps(deployment, &prepared.diffs, Status::Planned);
        summarize_first_diff(&mut report);
        if let Some(e) = prepared.blockers.first() {
            abort(&mut report, e, events);
        } else if report
            .steps
            .iter()
            .any(|s| s.diff.as_ref().is_some_and(|d| !d.identical))
        {
            report.exit_code = Exit::Differences;
        }
        report.seconds = started.elapsed().as_secs_f64();
        return report;
    }
    execute(deployment, options, events, &mut prepared, &mut report);
    drop(prepared.locks);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn abort(report: &mut Report, e: &Error, events: &mut dyn Events) {
    report.result = Outcome::Aborted;
    report.exit_code = e.exit();
    report.error = Some(e.to_string());
    events.event("error", None, &e.to_string(), None);
}

fn summarize_first_diff(report: &mut Report) {
    let first = report
        .steps
        .iter()
        .find_map(|s| s.apply.as_ref().map(|a| &a.diff).or(s.diff.as_ref()))
        .cloned();
    if let Some(d) = first {
        report.changes = d.changes;
        report.plan = d.plan;
        report.data_impact = d.data_impact;
    }
}

fn planned_steps(d: &Deployment, diffs: &BTreeMap<usize, schema_diff::Report>, status: Status) -> Vec<StepReport> {
    d.steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut sr = step_report(d, i, step, status);
            if status == Status::Planned {
                sr.operations = operations(d, &step.op, diffs.get(&i));
            }
            sr.diff = diffs.get(&i).cloned();
            sr
        })
        .collect()
}

/// A step's report before anything is known of how it went.
fn step_report(d: &Deployment, index: usize, step: &crate::Step, status: Status) -> StepReport {
    StepReport {
        index: index + 1,
        name: step.name.clone(),
        op: step.op.name(),
        from: d.files[step.op.source()].path.clone(),
        to: d.files[step.op.target()].path.clone(),
        status,
        seconds: 0.0,
        bytes: None,
        error: None,
        exit_code: None,
        operations: Vec::new(),
        snapshot: None,
        diff: None,
        apply: None,
        swap: None,
    }
}

/// The file operations a step makes, in words.
fn operations(d: &Deployment, op: &Operation, diff: Option<&schema_diff::Report>) -> Vec<String> {
    let p = |i: usize| d.files[i].path.display().to_string();
    let swap_ops = |from: &str, to: usize, swap: &SwapOptions| {
        let to_path = &d.files[to].path;
        let mut ops = vec![format!(
            "check {} is not in use, checkpoint its WAL into it (so it is self-contained)",
            p(to)
        )];
        if swap.backup {
            ops.push(format!(
                "keep the old {} as {}.bak-<UTC stamp> (a hard link), keep the newest {}",
                p(to),
                p(to),
                swap.keep_backups
            ));
        }
        ops.push(if swap.live {
            format!("write {from} into the open {} through SQLite in one transaction", p(to))
        } else {
            format!(
                "exchange {from} and {} atomically (renameat2 RENAME_EXCHANGE), fsync {}",
                p(to),
                parent_dir(to_path).display()
            )
        });
        ops
    };
    match op {
        Operation::Snapshot { from, to, .. } => vec![format!(
            "create {} as a point-in-time copy of {} (never written), with its permission bits",
            p(*to),
            p(*from)
        )],
        Operation::Apply {
            schema,
            to,
            on_violation,
            ..
        } => {
            let mut ops = vec![match diff {
                Some(d) if d.identical => format!("{} already has {}'s schema: nothing to change", p(*to), p(*schema)),
                Some(d) => format!(
                    "apply {}'s schema onto {} in one transaction: {} tables to create, {} to drop, {} altered, {} rebuilt",
                    p(*schema),
                    p(*to),
                    d.plan.iter().filter(|t| t.strategy == Strategy::Create).count(),
                    d.plan.iter().filter(|t| t.strategy == Strategy::Drop).count(),
                    d.plan.iter().filter(|t| t.strategy == Strategy::Alter).count(),
                    d.plan.iter().filter(|t| t.strategy == Strategy::Rebuild).count(),
                ),
                None => format!(
                    "apply {}'s schema onto {} in one transaction (counted on the copy when it is made)",
                    p(*schema),
                    p(*to)
                ),
            }];
            if *on_violation == OnViolation::Skip {
                ops.push(format!(
                    "rows breaking a new constraint go to {}.rejects-<UTC stamp>.sqlite",
                    p(*schema)
                ));
            }
            ops
        }
        Operation::Swap { from, to, swap } => swap_ops(&p(*from), *to, swap),
        Operation::Replace { from, to, swap, .. } => {
            let staging = sidefile::staging(&d.files[*to].path);
            let mut ops = vec![format!(
                "create {} as a point-in-time copy of {} (never written)",
                staging.display(),
                p(*from)
            )];
            ops.extend(swap_ops(&staging.display().to_string(), *to, swap));
            ops
        }
    }
}

fn check(report: &mut Report, name: &'static str, ok: bool, detail: String) {
    report.preflight.push(Check {
        check: name,
        ok,
        detail,
    });
}

/// A readable, regular SQLite file with a sound header.
fn read_database(path: &Path) -> Result<OnDisk, Error> {
    let found = sqlite_file::inspect(path, false).map_err(|e| match e {
        InputError::Missing => Error::Missing(path.to_owned()),
        InputError::IsDirectory => Error::IsDirectory(path.to_owned()),
        InputError::PermissionDenied => Error::PermissionDenied {
            path: path.to_owned(),
            action: "read",
        },
        e @ (InputError::NotADatabase(_) | InputError::NotRegular(_) | InputError::LinkLoop) => Error::NotADatabase {
            path: path.to_owned(),
            reason: e.to_string(),
        },
        InputError::Io(e) => Error::Io {
            path: path.to_owned(),
            action: "read the header",
            source: e,
        },
    })?;
    let sidecars = Sidecars::of(path).map_err(|e| Error::Io {
        path: path.to_owned(),
        action: "look for sidecars",
        source: e,
    })?;
    Ok(OnDisk {
        header: found.header,
        bytes: found.meta.len(),
        wal_bytes: sidecars.wal.unwrap_or(0),
        mode: found.meta.permissions().mode() & 0o777,
    })
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// The files whose lock a run takes: each file written once, and each
/// temporary file (a `replace` step's staging included).
fn lock_targets(d: &Deployment, temporaries: &[PathBuf]) -> Vec<PathBuf> {
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
fn temporaries(d: &Deployment) -> Vec<PathBuf> {
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
fn dead_records(targets: &[PathBuf], options: &RunOptions, prepared: &mut Prepared) -> Result<Vec<Record>, Error> {
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

fn preflight(
    d: &Deployment,
    options: &RunOptions,
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
        blockers: Vec::new(),
    };
    let targets = lock_targets(d, &prepared.temporaries);
    let records = dead_records(&targets, options, &mut prepared)?;
    let walk = walk(d, &records, report)?;
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
    // Cheap before costly: room for the copies, then the counts, then room
    // for the migrations' journals as the counts measured them.
    if !options.dry_run {
        free_space(d, None, options, report, &mut prepared)?;
    }
    let rebuilds = count_migrations(d, options, events, report, &mut prepared)?;
    report.space.clear();
    free_space(d, Some(&rebuilds), options, report, &mut prepared)?;
    Ok(prepared)
}

/// The files as the steps will find them.
struct Walk {
    disk: Vec<Option<OnDisk>>,
    /// On disk now (a temporary file, or one a killed run recorded it made,
    /// found there is a leftover, not present).
    present: Vec<bool>,
    origins: Vec<(usize, usize)>,
    /// The files the steps write, each once, in order.
    written: Vec<usize>,
}

/// Walks the steps: every input exists when its step runs, every new file
/// does not, every existing file touched is a readable database.
fn walk(d: &Deployment, records: &[Record], report: &mut Report) -> Result<Walk, Error> {
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
    let mut origins: Vec<(usize, usize)> = Vec::new();
    let mut will_exist = present.clone();
    let mut written: Vec<usize> = Vec::new();
    for (s, step) in d.steps.iter().enumerate() {
        let need = |i: usize, will_exist: &[bool]| -> Result<(), Error> {
            if will_exist[i] {
                Ok(())
            } else if present[i] || !d.steps[..s].iter().any(|p| p.op.target() == i) {
                Err(Error::Missing(d.files[i].path.clone()))
            } else {
                Err(Error::BadDeployment {
                    path: d.files[i].path.clone(),
                    why: format!("step {} needs it, and an earlier step consumed it", s + 1),
                })
            }
        };
        let (src, dst) = (step.op.source(), step.op.target());
        origins.push((origin[src], origin[dst]));
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
fn side_files(
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
        match &step.op {
            Operation::Snapshot { to, .. } if !d.files[*to].temporary => made.push((d.files[*to].path.clone(), false)),
            Operation::Apply {
                schema,
                on_violation: OnViolation::Skip,
                rejects,
                ..
            } => {
                let path = rejects
                    .clone()
                    .unwrap_or_else(|| sidefile::rejects(&d.files[*schema].path, &stamp));
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
fn lock_and_clean(
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
fn record_readers(d: &Deployment, prepared: &mut Prepared) -> Result<(), Error> {
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

/// Records in the run's locks, before it is made, that the run makes `path`.
fn record_made(prepared: &mut Prepared, path: &Path) -> Result<(), Error> {
    for lock in &mut prepared.locks {
        lock.record_made(path)?;
    }
    Ok(())
}

/// No two names for one file (links included).
fn distinct(d: &Deployment) -> Result<(), Error> {
    let mut ids: Vec<(usize, FileId)> = Vec::new();
    for (i, f) in d.files.iter().enumerate() {
        if let Some(b) = d.files[i + 1..].iter().find(|b| b.path == f.path) {
            return Err(Error::SameFile {
                a: f.path.clone(),
                b: b.path.clone(),
            });
        }
        if let Ok(id) = FileId::of(&f.path) {
            if let Some((j, _)) = ids.iter().find(|(_, other)| *other == id) {
                return Err(Error::SameFile {
                    a: d.files[*j].path.clone(),
                    b: f.path.clone(),
                });
            }
            ids.push((i, id));
        }
    }
    Ok(())
}

/// The schema and the data of each migration in one text encoding.
fn same_encodings(d: &Deployment, walk: &Walk) -> Result<(), Error> {
    for (s, step) in d.steps.iter().enumerate() {
        if !matches!(step.op, Operation::Apply { .. }) {
            continue;
        }
        let (a, b) = walk.origins[s];
        let encodings = |i: usize| walk.disk[i].as_ref().and_then(|o| o.header.encoding);
        if let (Some(x), Some(y)) = (encodings(a), encodings(b)) {
            if x != y {
                return Err(Error::Encodings {
                    a: d.files[a].path.clone(),
                    b: d.files[b].path.clone(),
                    a_encoding: x.as_str(),
                    b_encoding: y.as_str(),
                });
            }
        }
    }
    Ok(())
}

/// Every file on a local file system, every folder written there and writable.
fn local_and_writable(d: &Deployment, walk: &Walk, temporaries: &[PathBuf]) -> Result<(), Error> {
    for (i, f) in d.files.iter().enumerate() {
        let folder = parent_dir(&f.path);
        if !folder.is_dir() {
            return Err(Error::FolderMissing(folder.to_owned()));
        }
        let probe = if walk.present[i] { f.path.as_path() } else { folder };
        let kind = network_fs(probe).map_err(|e| Error::Io {
            path: f.path.clone(),
            action: "statfs",
            source: e,
        })?;
        if let Some(kind) = kind {
            return Err(Error::NetworkFs {
                path: f.path.clone(),
                kind,
            });
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
        let writable = dir_writable(&folder).map_err(|e| Error::Io {
            path: folder.clone(),
            action: "access",
            source: e,
        })?;
        if !writable {
            return Err(Error::PermissionDenied {
                path: folder,
                action: "create files in folder",
            });
        }
    }
    // A file the run changes must be writable before anything starts: the
    // checkpoint that makes DEV self-contained writes it, and failing there
    // would leave SQLite's sidecars beside it.
    for &i in &walk.written {
        let path = &d.files[i].path;
        if walk.present[i] && !sqlite_file::fs::file_writable(path).unwrap_or(false) {
            return Err(Error::PermissionDenied {
                path: path.clone(),
                action: "write: the run changes or replaces it",
            });
        }
    }
    Ok(())
}

/// The files to replace are not open by another process (unless `live`).
fn not_in_use(
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
        let users = swap::users(path).map_err(|e| Error::Io {
            path: path.clone(),
            action: "look for processes using it",
            source: e,
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

/// Each migration compared and its data impact counted before any write:
/// on PROD itself in WAL mode (its writers never wait for readers), on a
/// temporary snapshot when planning a rollback-mode PROD (its writers wait
/// for one copy at most); a run with a rollback-mode PROD counts on its
/// staging copy instead, before changing it. Returns, per apply step, the
/// bytes of the tables it rebuilds.
fn count_migrations(
    d: &Deployment,
    options: &RunOptions,
    events: &mut dyn Events,
    report: &mut Report,
    prepared: &mut Prepared,
) -> Result<BTreeMap<usize, (u64, String)>, Error> {
    let mut rebuilds = BTreeMap::new();
    for (s, step) in d.steps.iter().enumerate() {
        let Operation::Apply {
            to,
            on_violation,
            ref hints,
            ref extensions,
            ..
        } = step.op
        else {
            continue;
        };
        let (schema_file, data_file) = prepared.origins[s];
        let (Some(_), Some(data_disk)) = (&prepared.disk[schema_file], &prepared.disk[data_file]) else {
            continue;
        };
        let data_path = d.files[data_file].path.clone();
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
            let temp = sidefile::plan_copy(&d.files[to].path);
            // As long a wait for PROD's writer as the step making the copy allows.
            let timeout = d.steps[..s]
                .iter()
                .rev()
                .find_map(|p| match p.op {
                    Operation::Snapshot { to: made, timeout, .. } if made == to => Some(timeout),
                    _ => None,
                })
                .unwrap_or(Duration::from_secs(60));
            let options = snapshot::Options {
                timeout,
                ..snapshot::Options::default()
            };
            let copy = snapshot::Snapshot::new(&data_path, &temp, options);
            copy.run(&mut Adapter(events))?;
            temp
        };
        let diff = schema_diff::compare(&d.files[schema_file].path, &counted_on, hints, extensions);
        let rebuilt = diff
            .as_ref()
            .ok()
            .map(|diff| schema_diff::space::migration_bytes(&counted_on, diff));
        if counted_on != data_path {
            // Named after this process: provably its own.
            sidefile::remove_with_sidecars(&counted_on)?;
        }
        let diff = diff?;
        if let Some(measured) = rebuilt {
            rebuilds.insert(s, (measured.bytes, measured.why));
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
            "{} changes, counted on {}: {violating} rows break new constraints{}, {} values or rows not carried{}",
            diff.changes.len(),
            data_path.display(),
            if violating > 0 { " (skipped into rejects)" } else { "" },
            rows(ImpactKind::DataLoss),
            if not_counted.is_empty() {
                String::new()
            } else {
                format!("; not counted: {}", not_counted.join("; "))
            }
        );
        check(report, "schema", true, detail);
        prepared.diffs.insert(s, diff);
    }
    Ok(rebuilds)
}

/// Free space per file system: each copy made there and, once the
/// migrations are counted (`rebuilds`), each migration's journal and
/// temporary files (twice the tables it rebuilds; the whole copy where it
/// was not counted).
fn free_space(
    d: &Deployment,
    rebuilds: Option<&BTreeMap<usize, (u64, String)>>,
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
        let (src, _) = prepared.origins[s];
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
                let Some(rebuilds) = rebuilds else { continue };
                // A migration not counted yet is counted on the copy once it
                // is made, and its room checked there (`room_for_migration`).
                if let Some((bytes, why)) = rebuilds.get(&s) {
                    need(parent_dir(&d.files[to].path), 2 * bytes + (1 << 20), why.clone());
                }
            }
            Operation::Swap { .. } => {}
        }
    }
    for (_, (folder, needed, why)) in needs {
        let available = available_space(&folder).map_err(|e| Error::Io {
            path: folder.clone(),
            action: "statvfs",
            source: e,
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

fn list(users: &[swap::User]) -> String {
    users.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// A blocking finding: the run stops here; a plan notes it and goes on.
fn blocked(prepared: &mut Prepared, options: &RunOptions, e: Error) -> Result<(), Error> {
    if options.dry_run {
        prepared.blockers.push(e);
        Ok(())
    } else {
        Err(e)
    }
}

/// Room in `db`'s folder for the migration `diff` plans: the journal and
/// new pages (`schema_diff::space`), twice over, and 1 MiB.
fn room_for_migration(db: &Path, diff: &schema_diff::Report) -> Result<(), Error> {
    let measured = schema_diff::space::migration_bytes(db, diff);
    let folder = parent_dir(db);
    let needed = 2 * measured.bytes + (1 << 20);
    let available = available_space(folder).map_err(|e| Error::Io {
        path: folder.to_owned(),
        action: "statvfs",
        source: e,
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

/// Forwards a snapshot's progress and cancellation to [`Events`].
struct Adapter<'a>(&'a mut dyn Events);

impl snapshot::Observer for Adapter<'_> {
    fn progress(&mut self, done: u64, total: u64) {
        self.0.progress(done, total);
    }
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

fn execute(
    d: &Deployment,
    options: &RunOptions,
    events: &mut dyn Events,
    prepared: &mut Prepared,
    report: &mut Report,
) {
    // Files this run made that must go if it is aborted.
    let mut created: Vec<PathBuf> = Vec::new();
    let mut first_error: Option<Error> = None;
    let mut aborted = false;
    for (i, step) in d.steps.iter().enumerate() {
        let mut sr = step_report(d, i, step, Status::Skipped);
        if aborted {
            report.steps.push(sr);
            continue;
        }
        events.step_started(i + 1, &step.name, step.op.name());
        events.event("info", Some(&step.name), "started", Some(&sr.to));
        let started = Instant::now();
        let result = if events.cancelled() {
            Err(Error::Interrupted)
        } else {
            run_step(d, i, step, events, &mut *prepared, &mut sr, &mut created)
        };
        sr.seconds = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                sr.status = Status::Succeeded;
                events.event("info", Some(&step.name), "succeeded", Some(&sr.to));
            }
            Err(e) => {
                sr.status = Status::Failed;
                sr.error = Some(e.to_string());
                sr.exit_code = Some(e.exit());
                events.event("error", Some(&step.name), &e.to_string(), Some(&sr.to));
                report.failed_step.get_or_insert(i + 1);
                if step.abort_remaining || matches!(e, Error::Interrupted) {
                    aborted = true;
                }
                first_error.get_or_insert(e);
            }
        }
        events.step_finished(&sr);
        report.steps.push(sr);
    }
    summarize_first_diff(report);
    finish(report);

    // Cleanup: temporaries always; on abort, everything this run made.
    let mut to_remove: Vec<PathBuf> = Vec::new();
    let made_here = if aborted { created.as_slice() } else { &[] };
    for path in prepared.temporaries.iter().chain(made_here) {
        // A sidecar counts even where its database is gone (deleted under
        // the run): a stale -wal there would be replayed into the next copy.
        let there = exists(path) || sidefile::sidecars_present(path).is_ok_and(|s| !s.is_empty());
        if there && !to_remove.contains(path) {
            to_remove.push(path.clone());
        }
    }
    if aborted {
        report.rejects = None;
    }
    for path in to_remove {
        let keep = options.keep_staging && (aborted || first_error.is_some());
        if keep {
            events.event("info", None, "kept for inspection (--keep-staging)", Some(&path));
            report.kept.push(path);
        } else {
            match sidefile::remove_with_sidecars(&path) {
                Ok(removed) if !removed.is_empty() => {
                    events.event("info", None, "removed", Some(&path));
                    report.removed.push(path);
                }
                Ok(_) => {}
                Err(e) => events.event("warn", None, &format!("not removed: {e}"), Some(&path)),
            }
        }
    }
    if let Some(e) = first_error {
        report.result = if aborted { Outcome::Aborted } else { Outcome::Failed };
        report.exit_code = e.exit();
        report.error = Some(e.to_string());
    }
}

fn run_step(
    d: &Deployment,
    index: usize,
    step: &crate::Step,
    events: &mut dyn Events,
    prepared: &mut Prepared,
    sr: &mut StepReport,
    created: &mut Vec<PathBuf>,
) -> Result<(), Error> {
    let path = |i: usize| d.files[i].path.clone();
    // PROD's permission bits: the ceiling for every file holding its data.
    let ceiling = prepared.disk[prepared.origins[index].0].as_ref().map(|o| o.mode);
    match &step.op {
        Operation::Snapshot {
            from,
            to,
            verify,
            timeout,
        } => {
            record_made(prepared, &path(*to))?;
            let r = snapshot_into(&path(*from), &path(*to), *verify, *timeout, events)?;
            created.push(path(*to));
            sr.bytes = Some(r.bytes);
            sr.operations
                .push(format!("created {} ({})", r.dest.display(), size(r.bytes)));
            sr.snapshot = Some(r);
        }
        Operation::Apply {
            schema,
            to,
            on_violation,
            hints,
            rejects,
            extensions,
        } => {
            // Decided by the preflight, which checked nothing lies there.
            let rejects = prepared.rejects.get(&index).cloned().or_else(|| rejects.clone());
            if let Some(r) = &rejects {
                record_made(prepared, r)?;
            }
            if let std::collections::btree_map::Entry::Vacant(entry) = prepared.diffs.entry(index) {
                // Not counted by the preflight (a rollback-mode PROD is never
                // counted under its lock): count on the copy, before it
                // changes, and refuse here as the preflight would have.
                let diff = schema_diff::compare(&path(*schema), &path(*to), hints, extensions)?;
                if let Some(why) = diff.blocking(*on_violation) {
                    return Err(Error::Violations {
                        path: path(*to),
                        list: why,
                    });
                }
                room_for_migration(&path(*to), &diff)?;
                entry.insert(diff);
            }
            let planned = prepared.diffs.get(&index);
            let stop = events.stop_flag();
            let mut copying = |table: &str| {
                let rows = planned
                    .and_then(|d| d.plan.iter().find(|t| t.table.eq_ignore_ascii_case(table)))
                    .filter(|t| t.rows_touched > 0)
                    .map(|t| format!(" ({} rows)", t.rows_touched))
                    .unwrap_or_default();
                events.detail(&format!("copying the rows of {table}{rows}"));
            };
            let r = schema_diff::apply::apply_with_progress(
                &path(*schema),
                &path(*to),
                hints,
                extensions,
                *on_violation,
                rejects.as_deref(),
                schema_diff::apply::Progress {
                    copying: &mut copying,
                    stop,
                },
            );
            let r = match r {
                Err(_) if events.cancelled() => return Err(Error::Interrupted),
                r => r?,
            };
            if let Some(rejects) = &r.rejects {
                created.push(rejects.clone());
                sr.operations
                    .push(format!("rows left out went to {}", rejects.display()));
            }
            sr.operations.push(if r.changed {
                format!("{} now has {}'s schema", path(*to).display(), path(*schema).display())
            } else {
                format!(
                    "{} already had {}'s schema",
                    path(*to).display(),
                    path(*schema).display()
                )
            });
            if events.cancelled() {
                return Err(Error::Interrupted);
            }
            sr.apply = Some(r);
        }
        Operation::Swap { from, to, swap } => {
            if events.cancelled() {
                return Err(Error::Interrupted);
            }
            let r = swap_into(&path(*from), &path(*to), *swap, ceiling)?;
            created.retain(|c| *c != path(*from));
            sr.operations
                .push(format!("{} now holds {}", r.target.display(), r.new.display()));
            narrowed(prepared, index, *to, &path(*to), sr, events);
            sr.swap = Some(r);
        }
        Operation::Replace {
            from,
            to,
            swap,
            timeout,
        } => {
            let staging = sidefile::staging(&path(*to));
            record_made(prepared, &staging)?;
            let r = snapshot_into(&path(*from), &staging, false, *timeout, events)?;
            sr.bytes = Some(r.bytes);
            sr.operations
                .push(format!("created {} ({})", staging.display(), size(r.bytes)));
            sr.snapshot = Some(r);
            if events.cancelled() {
                return Err(Error::Interrupted);
            }
            let r = swap_into(&staging, &path(*to), *swap, ceiling)?;
            sr.operations
                .push(format!("{} now holds {}", r.target.display(), r.new.display()));
            narrowed(prepared, index, *to, &path(*to), sr, events);
            sr.swap = Some(r);
        }
    }
    Ok(())
}

/// Says so when the file a swap replaced had wider permission bits than
/// the data it now holds came with (PROD's): the new file got the narrower.
fn narrowed(prepared: &Prepared, step: usize, to: usize, path: &Path, sr: &mut StepReport, events: &mut dyn Events) {
    let (Some(before), Some(source)) = (&prepared.disk[to], &prepared.disk[prepared.origins[step].0]) else {
        return;
    };
    if before.mode & !source.mode != 0 {
        let message = format!(
            "{}: permission bits narrowed from {:04o} to {:04o}: it holds data of a file with {:04o}",
            path.display(),
            before.mode,
            before.mode & source.mode,
            source.mode
        );
        events.event("warn", Some(&sr.name), &message, Some(path));
        sr.operations.push(message);
    }
}

fn snapshot_into(
    from: &Path,
    to: &Path,
    verify: bool,
    timeout: Duration,
    events: &mut dyn Events,
) -> Result<snapshot::Report, Error> {
    let copy = snapshot::Snapshot::new(
        from,
        to,
        snapshot::Options {
            force: false,
            verify,
            timeout,
            method: snapshot::Method::Auto,
        },
    );
    let mut adapter = Adapter(events);
    Ok(copy.run(&mut adapter)?)
}

fn swap_into(from: &Path, to: &Path, options: SwapOptions, ceiling: Option<u32>) -> Result<swap::Report, Error> {
    let swap = swap::Swap::new(
        from,
        to,
        swap::Options {
            backup: options.backup,
            keep_backups: options.keep_backups.max(1),
            live: options.live,
            wait: Duration::ZERO,
            busy_timeout: Duration::from_secs(10),
            max_mode: ceiling,
        },
    );
    Ok(swap.run()?)
}

/// Report fields filled from the steps: the backup and the rejects.
fn finish(report: &mut Report) {
    for step in &report.steps {
        if let Some(b) = step.swap.as_ref().and_then(|s| s.backup.clone()) {
            report.backup = Some(b);
        }
        if let Some(a) = &step.apply {
            if let Some(path) = &a.rejects {
                report.rejects = Some(Rejects {
                    path: path.clone(),
                    rows: a.skipped.iter().map(|k| k.rows).sum(),
                    tables: a.skipped.clone(),
                });
            }
        }
    }
}
