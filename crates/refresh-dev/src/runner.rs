//! Runs a [`Deployment`]: the preflight that decides every refusal before a
//! write, then the steps in order, then the cleanup.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use exit_code::Exit;
use schema_diff::apply::{ApplyOptions, OnViolation};
use schema_diff::plan::{ImpactKind, StrategyKind};
use schema_diff::space::MigrationBytes;
use sqlite_file::fs::{available_space, dir_writable, network_fs, parent_dir, FileId};
use sqlite_file::lock::{self, Lock, Record, State};
use sqlite_file::sidefile::{self, SideFileError};
use sqlite_file::{FileError, Header, JournalFlag, Sidecars};

use crate::deployment::{Deployment, Operation, SwapOptions};
use crate::report::{size, Check, FileInfo, Outcome, Rejects, Report, Space, Status, StepReport};
use crate::Error;

mod counted_remotely;
mod describe;
mod execute;
mod masking;
mod preflight;
mod space;

use describe::*;
use execute::*;
use preflight::*;
use space::*;

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Plan only: check everything, count the data impact, write nothing.
    pub dry_run: bool,
    /// On failure, keep the staging file (and rejects) for inspection.
    pub keep_staging: bool,
    /// The command's name, for the report and the lock file.
    pub command: String,
    /// A plan exits 1 (differences) when a schema would change, as
    /// `git diff --exit-code` does; without it a runnable plan exits 0.
    pub exit_code: bool,
    /// Refresh even where DEV's schema is behind the data's
    /// (`schema_diff::behind`): otherwise that is refused.
    pub allow_behind: bool,
    /// How a remote PROD is reached.
    pub remote: RemoteOptions,
}

/// `--ssh`, `--remote-exe`, `--upload-helper` and `--no-private-copy`.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// The ssh program and its options, split as a shell would.
    pub ssh: String,
    /// The helper's program on the remote host.
    pub remote_exe: String,
    /// Send this program to the remote host for the run instead.
    pub upload_helper: bool,
    /// `--no-private-copy`: the helper serves a WAL-mode PROD in place.
    pub in_place: bool,
}

impl RemoteOptions {
    /// How `remote::fetch` reads `remote`, its helper waiting up to `wait`
    /// for PROD's writers.
    pub fn fetch<'a>(&'a self, remote: &'a remote::RemoteFile, wait: Duration, job: &'a [u8]) -> remote::Fetch<'a> {
        remote::Fetch {
            remote,
            ssh: &self.ssh,
            remote_exe: &self.remote_exe,
            upload_helper: self.upload_helper,
            wait,
            job,
            in_place: self.in_place,
        }
    }
}

impl Default for RemoteOptions {
    fn default() -> RemoteOptions {
        RemoteOptions {
            ssh: "ssh".into(),
            remote_exe: "refresh-dev".into(),
            upload_helper: false,
            in_place: false,
        }
    }
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

/// Whose data a step's two files hold when the step runs: indexes of the
/// files the data first came from (a staging copy holds PROD's).
#[derive(Debug, Clone, Copy)]
struct Origins {
    /// The step's source (for `apply`, the schema's file).
    source: usize,
    /// The step's target.
    target: usize,
}

/// What the preflight learnt, for the steps and the report.
struct Prepared {
    disk: Vec<Option<OnDisk>>,
    /// Per step: the files whose data its source and its target hold when it runs.
    origins: Vec<Origins>,
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
    /// `RunOptions::allow_behind`, for the steps that check on a copy.
    allow_behind: bool,
    /// Per masked step (`--rules`): its key.
    masks: BTreeMap<usize, masking::Masked>,
    /// A plan of a remote PROD: what its helper counted.
    counted_remotely: Option<counted_remotely::CountedRemotely>,
    blockers: Vec<Error>,
}

/// Runs `deployment`, returning the report (whose `exit_code` says how it went).
pub fn run(deployment: &Deployment, options: &RunOptions, events: &mut dyn Events) -> Report {
    let started = Instant::now();
    let mut report = Report::new(&options.command, &deployment.built_by, options.dry_run);
    // `--rules`: the keys first (a remote helper masks with them).
    let mut masks = match masking::keys(deployment, options) {
        Ok(m) => m,
        Err(e) => return stopped(deployment, report, &e, events, started),
    };
    // A remote PROD first comes into its base beside DEV: every check and
    // step after reads that local copy. A plan instead has it counted on
    // its host, and moves no table data.
    let mut owned = None;
    let mut counted = None;
    if let Some((i, address)) = deployment.remote_source() {
        let address = address.clone();
        let mut d = deployment.clone();
        let job = match masking::remote_job(&d, i, &masks) {
            Ok(job) => job,
            Err(e) => return stopped(deployment, report, &e, events, started),
        };
        let transfer = match job {
            // A plan moves no table data: counted (and, with rules, previewed) there.
            _ if options.dry_run => {
                let mask = job.map(|(_, job, _)| job);
                counted_remotely::count_remotely(&mut d, i, &address, options, events, mask).map(|(t, c)| {
                    counted = Some(c);
                    t
                })
            }
            None => receive(&d, i, &address, options, events, &[]),
            // Masked and subset there, into the base named after the rules and key.
            Some((s, job, base)) => {
                d.files[i].path = base;
                crate::helper_job::HelperJob::Mask(job).to_bytes().and_then(|bytes| {
                    let t = receive(&d, i, &address, options, events, &bytes)?;
                    masking::remote_done(&d, s, &t, &mut masks, &mut report).map(|()| t)
                })
            }
        };
        match transfer {
            Ok(transfer) => report.transfer = Some(transfer),
            Err(e) => return stopped(deployment, report, &e, events, started),
        }
        owned = Some(d);
    }
    let deployment = owned.as_ref().unwrap_or(deployment);
    let shown_as = counted.as_ref().map(|c| {
        let address = deployment.files[c.file]
            .remote
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        (c.image.clone(), address)
    });
    let mut report = run_prepared(deployment, options, masks, counted, events, report, started);
    if let Some((image, address)) = shown_as {
        report.show_as(&image, &address);
    }
    report
}

/// The report of a run stopped by `e` before any step: every step skipped.
fn stopped(d: &Deployment, mut report: Report, e: &Error, events: &mut dyn Events, started: Instant) -> Report {
    abort(&mut report, e, events);
    report.steps = planned_steps(d, &BTreeMap::new(), Status::Skipped);
    report.seconds = started.elapsed().as_secs_f64();
    report
}

/// The preflight, then the steps (or, planned, the report of what they would do).
fn run_prepared(
    deployment: &Deployment,
    options: &RunOptions,
    masks: BTreeMap<usize, masking::Masked>,
    counted: Option<counted_remotely::CountedRemotely>,
    events: &mut dyn Events,
    mut report: Report,
    started: Instant,
) -> Report {
    let prepared = preflight(deployment, options, masks, counted, events, &mut report);
    let mut prepared = match prepared {
        Ok(p) => p,
        Err(e) => return stopped(deployment, report, &e, events, started),
    };
    if options.dry_run {
        report.steps = planned_steps(deployment, &prepared.diffs, Status::Planned);
        summarize_first_diff(&mut report);
        if let Some(e) = prepared.blockers.first() {
            abort(&mut report, e, events);
        } else if options.exit_code
            && report
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

/// Brings the remote file `i` (`address`) into its base (its `path`),
/// moving only the pages that changed since the base was made.
fn receive(
    deployment: &Deployment,
    i: usize,
    address: &remote::RemoteFile,
    options: &RunOptions,
    events: &mut dyn Events,
    job: &[u8],
) -> Result<remote::Transfer, Error> {
    struct Heard<'a>(&'a mut dyn Events);
    impl remote::Observer for Heard<'_> {
        fn received(&mut self, bytes: u64, pages: u64) {
            self.0.detail(&format!(
                "{} received, {}",
                cli_support::size(bytes),
                cli_support::plural(pages, "page", "pages")
            ));
        }
        fn cancelled(&mut self) -> bool {
            self.0.cancelled()
        }
    }
    let base = &deployment.files[i].path;
    // The helper waits for PROD's writers as long as the step copying it would.
    let wait = deployment.copy_timeout(i);
    events.event(
        "info",
        None,
        &format!("receiving {address} through `{}`", options.remote.ssh),
        Some(base),
    );
    events.step_started(0, &format!("receive {address}"), "receive");
    if let Some(home) = deployment.remote_home(i) {
        masking::discard_other_bases(&deployment.files[home].path, base, events);
    }
    let fetch = options.remote.fetch(address, wait, job);
    let started = Instant::now();
    let result = remote::fetch(&fetch, base, &mut Heard(events));
    let mut step = StepReport::new(
        0,
        format!("receive {address}"),
        "receive",
        PathBuf::from(address.to_string()),
        base.clone(),
        if result.is_ok() {
            Status::Succeeded
        } else {
            Status::Failed
        },
    );
    step.seconds = started.elapsed().as_secs_f64();
    events.step_finished(&step);
    let transfer = result?;
    events.event(
        "info",
        None,
        &format!(
            "{}: helper refresh-dev {}; {} of {} pages received ({} bytes), base {}",
            transfer.host,
            transfer.helper_version,
            transfer.pages_sent,
            transfer.pages_total,
            transfer.bytes_received,
            if transfer.base_used { "updated" } else { "made" }
        ),
        Some(base),
    );
    Ok(transfer)
}

fn abort(report: &mut Report, e: &Error, events: &mut dyn Events) {
    report.result = Outcome::Aborted;
    report.exit_code = e.exit();
    report.error = Some(e.into());
    events.event("error", None, &e.to_string(), None);
}

fn check(report: &mut Report, name: &'static str, ok: bool, detail: String) {
    report.preflight.push(Check {
        check: name,
        ok,
        detail,
    });
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
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
