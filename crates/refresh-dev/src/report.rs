//! What a deployment did (or, planned, would do): the `--json` shape and the
//! human summary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use exit_code::Exit;
use serde::Serialize;

use schema_diff::plan::{ImpactKind, RowsFrom, Strategy};

/// The overall result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step succeeded (planned: nothing blocks the run).
    Succeeded,
    /// A step with `abort_remaining = false` failed; the later steps ran.
    Failed,
    /// Refused before any write, interrupted, or a step failed and the
    /// remaining ones were not run.
    Aborted,
}

/// One step's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Succeeded,
    Failed,
    /// Not run: an earlier step failed and aborted the remaining ones.
    Skipped,
    /// `plan` / `--dry-run`: what would run.
    Planned,
}

/// The version of the `--json` report's shape: raised when a field changes
/// meaning or type (new fields may appear without it).
pub const REPORT_VERSION: u32 = 2;

/// An error, for scripts: a stable code (listed in the README), the message
/// a person reads, and the file it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    pub code: &'static str,
    pub message: String,
    pub file: Option<PathBuf>,
}

impl From<&crate::Error> for ErrorInfo {
    fn from(e: &crate::Error) -> Self {
        ErrorInfo {
            code: e.code(),
            message: e.to_string(),
            file: e.file().map(Path::to_owned),
        }
    }
}

/// Seconds to the millisecond: finer is noise.
fn millis<S: serde::Serializer>(seconds: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((seconds * 1000.0).round() / 1000.0)
}

/// One preflight check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Free space needed in one folder.
#[derive(Debug, Clone, Serialize)]
pub struct Space {
    pub folder: PathBuf,
    pub needed: u64,
    pub available: u64,
    pub why: String,
}

/// A file the deployment names, as found before it ran.
#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub name: String,
    pub path: PathBuf,
    pub temporary: bool,
    pub existed: bool,
    pub bytes: Option<u64>,
    /// Permission bits, octal (`"0644"`).
    pub mode: Option<String>,
    /// `wal` or `rollback`.
    pub journal_mode: Option<&'static str>,
}

/// Rows `--on-violation skip` left out, and where they are.
#[derive(Debug, Clone, Serialize)]
pub struct Rejects {
    pub path: PathBuf,
    pub rows: i64,
    pub tables: Vec<schema_diff::apply::Skipped>,
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// 1-based position in the deployment.
    pub index: usize,
    pub name: String,
    pub op: &'static str,
    pub from: PathBuf,
    pub to: PathBuf,
    pub status: Status,
    #[serde(serialize_with = "millis")]
    pub seconds: f64,
    /// Bytes written (the snapshot's size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "exit_or_none")]
    pub exit_code: Option<Exit>,
    /// The file operations of this step (planned, or done).
    pub operations: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<snapshot::Report>,
    /// The schema comparison (planned) or the apply (run), whose `diff` holds it.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "in_prod_words")]
    pub diff: Option<schema_diff::Report>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "in_prod_words")]
    pub apply: Option<schema_diff::apply::ApplyReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap: Option<swap::Report>,
    /// `--rules`: what the step masked and kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masking: Option<MaskingReport>,
}

/// `--rules`: the rules, the key, and what they do (planned) or did (run).
#[derive(Debug, Clone, Serialize)]
pub struct MaskingReport {
    pub rules: PathBuf,
    /// The masking key file (mode 0600).
    pub key: PathBuf,
    /// `existing` (kept from an earlier run), `new` (made by this run), or
    /// `throwaway` (a plan with no key yet: its examples use a key never kept).
    pub key_state: &'static str,
    /// A plan: one masked example per column (never an original), the rows
    /// the subset keeps per table against PROD's, the constraints masked
    /// values break, and the columns that look personal but have no rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub planned: Option<mask::Preview>,
    /// A run: the values masked per column and the rows kept per table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built: Option<mask::Built>,
}

/// The whole deployment.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// `run`, `plan`, `replace`, `staging`, `deploy`, `rollback`.
    pub command: String,
    /// What built the deployment: a command, or the deployment file's path.
    pub deployment: String,
    pub result: Outcome,
    #[serde(serialize_with = "exit")]
    pub exit_code: Exit,
    pub dry_run: bool,
    /// Why it was aborted or failed (the first error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// The step that failed first (1-based), if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<usize>,
    pub files: Vec<FileInfo>,
    pub preflight: Vec<Check>,
    pub space: Vec<Space>,
    pub steps: Vec<StepReport>,
    /// The schema changes, the per-table plan and the data impact of the
    /// first `apply` step (the migration), for scripts that want just that.
    #[serde(serialize_with = "in_prod_words")]
    pub changes: Vec<schema_diff::diff::Change>,
    #[serde(serialize_with = "in_prod_words")]
    pub plan: Vec<schema_diff::plan::TablePlan>,
    #[serde(serialize_with = "in_prod_words")]
    pub data_impact: Vec<schema_diff::plan::Impact>,
    pub backup: Option<PathBuf>,
    pub rejects: Option<Rejects>,
    /// A killed run's files that were removed (planned: would be removed).
    pub leftovers_removed: Vec<PathBuf>,
    /// Files this run made and removed when it ended (staging).
    pub removed: Vec<PathBuf>,
    /// Files kept for inspection (`--keep-staging`).
    pub kept: Vec<PathBuf>,
    /// `rollback`: what it put back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<swap::UndoReport>,
    /// A remote PROD: what was moved over the link, into which base.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<remote::Transfer>,
    /// `--rules`: masking and subsetting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masking: Option<MaskingReport>,
    /// The command to run next, in full (a plan's run), for the summary.
    #[serde(skip)]
    pub next: Option<String>,
    #[serde(serialize_with = "millis")]
    pub seconds: f64,
}

impl Report {
    /// Names `local` as `shown` in what the report says: a remote PROD's
    /// local stand-in (the image of its schema a plan counts with) is shown
    /// by its address.
    pub fn show_as(&mut self, local: &Path, shown: &str) {
        let local_text = local.display().to_string();
        let fix = |text: &mut String| {
            if text.contains(&local_text) {
                *text = text.replace(&local_text, shown);
            }
        };
        let fix_path = |path: &mut PathBuf| {
            if path == local {
                *path = PathBuf::from(shown);
            }
        };
        for c in &mut self.preflight {
            fix(&mut c.detail);
        }
        for s in &mut self.space {
            fix(&mut s.why);
        }
        if let Some(e) = &mut self.error {
            fix(&mut e.message);
            if let Some(f) = &mut e.file {
                fix_path(f);
            }
        }
        for f in &mut self.files {
            fix_path(&mut f.path);
        }
        for step in &mut self.steps {
            fix_path(&mut step.from);
            fix_path(&mut step.to);
            step.operations.iter_mut().for_each(fix);
            if let Some(e) = &mut step.error {
                fix(&mut e.message);
            }
            if let Some(d) = &mut step.diff {
                fix_path(&mut d.target);
                d.unreadable.iter_mut().for_each(fix);
                d.not_counted.iter_mut().for_each(fix);
            }
        }
    }
}

impl StepReport {
    /// A step's report with nothing done yet: `index` is 1-based (0 for the
    /// receiving of a remote PROD that comes before the steps).
    pub fn new(index: usize, name: String, op: &'static str, from: PathBuf, to: PathBuf, status: Status) -> StepReport {
        StepReport {
            index,
            name,
            op,
            from,
            to,
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
            masking: None,
        }
    }
}

impl Report {
    /// The folders of the run's files, for paths shown relative to the
    /// current folder ([`cli_support::shorten_paths`]).
    pub fn folders(&self) -> Vec<PathBuf> {
        let mut folders: Vec<PathBuf> = self
            .files
            .iter()
            .map(|f| sqlite_file::fs::parent_dir(&f.path).to_path_buf())
            .collect();
        folders.sort();
        folders.dedup();
        folders
    }
}

/// An exit status as its number (`3`).
fn exit<S: serde::Serializer>(exit: &Exit, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u8(exit.code())
}

/// schema-diff's JSON in the driver's words: the file whose data is kept
/// is PROD (`target` -> `prod`, `target_sql` -> `prod_sql`, `rows_from:
/// "target"` -> `"prod"`, TARGET -> PROD in the prose). SQL text, names and
/// paths are left exactly as they are.
fn in_prod_words<T: Serialize, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    use serde_json::Value;
    const PROSE: [&str; 8] = [
        "details",
        "reason",
        "reasons",
        "rows_from_reason",
        "warnings",
        "not_counted",
        "unreadable",
        "why",
    ];
    fn prose(v: &mut Value) {
        match v {
            Value::String(text) => *text = in_prod_and_dev_words(text),
            Value::Array(items) => items.iter_mut().for_each(prose),
            _ => {}
        }
    }
    fn walk(v: &mut Value) {
        match v {
            Value::Array(items) => items.iter_mut().for_each(walk),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut value) in entries {
                    let key = match key.as_str() {
                        "target" => "prod".to_owned(),
                        "target_sql" => "prod_sql".to_owned(),
                        _ => key,
                    };
                    if key == "rows_from" && value == "target" {
                        value = Value::from("prod");
                    } else if PROSE.contains(&key.as_str()) {
                        prose(&mut value);
                    } else {
                        walk(&mut value);
                    }
                    map.insert(key, value);
                }
            }
            _ => {}
        }
    }
    let mut v = serde_json::to_value(value).map_err(serde::ser::Error::custom)?;
    walk(&mut v);
    v.serialize(s)
}

fn exit_or_none<S: serde::Serializer>(exit: &Option<Exit>, s: S) -> Result<S::Ok, S::Error> {
    match exit {
        Some(e) => s.serialize_u8(e.code()),
        None => s.serialize_none(),
    }
}

/// `1.5 GiB`, `12.0 MiB`, `800 B`.
pub use cli_support::size;

impl Report {
    /// An empty report of `command` that succeeded, before anything ran.
    pub fn new(command: &str, deployment: &str, dry_run: bool) -> Report {
        Report {
            version: REPORT_VERSION,
            command: command.to_owned(),
            deployment: deployment.to_owned(),
            result: Outcome::Succeeded,
            exit_code: Exit::Done,
            dry_run,
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
            rollback: None,
            transfer: None,
            masking: None,
            next: None,
            seconds: 0.0,
        }
    }

    /// The human summary: one block per step, then what stays behind.
    pub fn human(&self, colour: bool) -> String {
        let paint = cli_support::Paint(colour);
        let mut out = String::new();
        let verb = if self.dry_run { "plan" } else { &self.command };
        let outcome = match (self.dry_run, self.result) {
            (true, Outcome::Succeeded) => "ready: nothing blocks the run",
            (true, _) => "the run would be refused",
            (false, Outcome::Succeeded) => "succeeded",
            (false, Outcome::Failed) => "failed (later steps ran: abort_remaining = false)",
            (false, Outcome::Aborted) if self.failed_step.is_none() => "refused before anything was written",
            (false, Outcome::Aborted) => "aborted: the failed step changed nothing, later steps did not run",
        };
        // A refusal stands out.
        let outcome = if self.result == Outcome::Succeeded {
            paint.green(outcome)
        } else {
            paint.bold(&paint.red(outcome))
        };
        let _ = writeln!(
            out,
            "refresh-dev {verb}: {outcome} ({}, {:.2} s)",
            self.deployment, self.seconds
        );
        // The error itself is printed once, by the caller (on stderr).
        let is_the_error = |detail: &String| self.error.as_ref().is_some_and(|e| &e.message == detail);
        for c in self
            .preflight
            .iter()
            .filter(|c| (!c.ok || self.dry_run) && !is_the_error(&c.detail))
        {
            let _ = writeln!(
                out,
                "  {} {:<10} {}",
                if c.ok { "ok ".to_owned() } else { paint.red("NO ") },
                c.check,
                c.detail
            );
        }
        for s in &self.space {
            let _ = writeln!(
                out,
                "  space      {}: {} needed ({}), {} free",
                s.folder.display(),
                size(s.needed),
                s.why,
                size(s.available)
            );
        }
        let refused = self.result == Outcome::Aborted && self.failed_step.is_none() && !self.dry_run;
        for step in self.steps.iter().filter(|_| !refused) {
            let mark = match step.status {
                Status::Succeeded => "done",
                Status::Failed => "FAILED",
                Status::Skipped => "skipped",
                Status::Planned => "would",
            };
            let mut line = format!("\n[{}] {} {}: {}", step.index, mark, step.op, step.name);
            if step.status != Status::Planned && step.status != Status::Skipped {
                let _ = write!(line, " ({:.2} s", step.seconds);
                if let Some(b) = step.bytes {
                    let _ = write!(line, ", {}", size(b));
                }
                line.push(')');
            }
            let _ = writeln!(out, "{line}");
            for op in &step.operations {
                let _ = writeln!(out, "    {op}");
            }
            if let (Some(e), false) = (&step.error, step.error == self.error) {
                let _ = writeln!(out, "    error: {}", e.message);
            }
            let diff = step.apply.as_ref().map(|a| &a.diff).or(step.diff.as_ref());
            if let Some(d) = diff {
                write_diff(&mut out, d, step.apply.is_some());
            }
            if let Some(a) = &step.apply {
                if a.changed {
                    let _ = writeln!(out, "    {} statements in one transaction", a.statements.len());
                }
                for k in &a.skipped {
                    let rows = cli_support::plural(k.rows, "row", "rows");
                    let _ = writeln!(out, "    left out of {}: {rows}: {}", k.table, k.reason);
                }
            }
            if let Some(s) = &step.swap {
                match &s.backup {
                    Some(b) => {
                        let _ = writeln!(out, "    backup of the old file: {}", b.display());
                    }
                    None => {
                        let _ = writeln!(out, "    no backup kept");
                    }
                }
            }
        }
        if let Some(r) = &self.rejects {
            let _ = writeln!(out, "\nrows left out: {} in {}", r.rows, r.path.display());
        }
        if let Some(b) = &self.backup {
            let _ = writeln!(out, "backup: {} (refresh-dev rollback puts it back)", b.display());
        }
        for p in &self.leftovers_removed {
            let _ = writeln!(
                out,
                "{} a killed run's leftover: {}",
                if self.dry_run { "would remove" } else { "removed" },
                p.display()
            );
        }
        for p in &self.kept {
            let _ = writeln!(out, "kept for inspection: {}", p.display());
        }
        out
    }
}

/// schema-diff's words (TARGET, the file whose data is kept) in the
/// driver's (PROD, where that data comes from).
pub(crate) fn in_prod_and_dev_words(text: &str) -> String {
    text.replace("TARGET's", "PROD's").replace("TARGET", "PROD")
}

fn write_diff(out: &mut String, d: &schema_diff::Report, applied: bool) {
    if d.identical {
        let _ = writeln!(out, "    schemas identical: no change");
        return;
    }
    let _ = writeln!(out, "    {} schema changes", d.changes.len());
    for c in &d.changes {
        let _ = writeln!(out, "      {:?} {} {}", c.change, c.object.as_str(), c.name);
    }
    for t in d
        .plan
        .iter()
        .filter(|t| t.strategy != Strategy::Unchanged || t.rows_from == RowsFrom::Dev)
    {
        let _ = writeln!(
            out,
            "      table {:<24} {:<10} rows from {:<6}{}",
            t.table,
            t.strategy.kind().as_str(),
            match t.rows_from {
                RowsFrom::Target => "prod",
                RowsFrom::Dev => "dev",
                RowsFrom::None => "none",
            },
            match t.rows_touched {
                0 => String::new(),
                n => format!(" (copies {})", cli_support::plural(n, "row", "rows")),
            }
        );
    }
    for i in &d.data_impact {
        let what = match (i.kind, applied) {
            (ImpactKind::Lost, _) => "lost",
            (ImpactKind::Violation, true) => "left out",
            (ImpactKind::Violation, false) => "violation",
            (ImpactKind::Replaced, _) => "replaced",
            (ImpactKind::Existing, _) => "existing",
        };
        let place = match &i.column {
            Some(c) => format!("{}.{c}", i.table),
            None => i.table.clone(),
        };
        let rows = cli_support::rows(i.rows);
        let _ = writeln!(
            out,
            "      {what}: {place}: {rows}: {}",
            in_prod_and_dev_words(&i.reason)
        );
    }
    for w in &d.warnings {
        let _ = writeln!(out, "      warning: {}", in_prod_and_dev_words(w));
    }
    for hint in &d.possible_renames {
        let _ = writeln!(out, "      hint: {hint}");
    }
}
