//! The `schema-diff` command line, shared by the `schema-diff` binary and
//! `refresh-dev diff`: argument definitions, output and exit codes only.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

use exit_code::Exit;

use crate::diff::ChangeKind;
use crate::plan::{ImpactKind, RowsFrom, Strategy};
use crate::{compare, Hints, Reading, Report};

/// Compare DEV's schema with TARGET's and preview what applying DEV's would do
/// to TARGET's data. Reads both files; writes neither.
#[derive(Debug, Clone, clap::Args)]
pub struct DiffArgs {
    /// The database whose schema is wanted (DEV).
    pub dev: PathBuf,
    /// The database whose data would be kept (the staging copy of PROD).
    pub target: PathBuf,
    #[command(flatten)]
    pub migration: MigrationArgs,
    /// Apply DEV's schema onto TARGET in one transaction, keeping every TARGET row that fits.
    #[arg(long)]
    pub apply: bool,
    /// Print the SQL that --apply would run (runnable with the sqlite3 CLI against TARGET);
    /// it is found on a temporary copy of TARGET, and TARGET is not written.
    #[arg(long, conflicts_with_all = ["apply", "json"])]
    pub sql: bool,
    /// With --on-violation skip: where the left-out rows go (default TARGET.rejects-<UTC stamp>.sqlite).
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,
    /// Seconds to wait for an application's lock on DEV or TARGET, reading or applying
    /// (0 to 604800).
    #[arg(long, visible_alias = "timeout", value_name = "SECONDS", default_value = "10", value_parser = cli_support::parse_seconds)]
    pub wait: std::time::Duration,
    #[command(flatten)]
    pub output: cli_support::OutputArgs,
}

/// The migration's flags, shared by `schema-diff` and `refresh-dev` (one
/// definition, one help text): the hints, what to do with rows breaking a
/// new constraint, and the extensions DEV's application provides.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrationArgs {
    /// A column renamed in DEV: TABLE.OLD=NEW (quote names holding dots, spaces or '=': '"order items"."old col"=new').
    #[arg(long, value_name = "TABLE.OLD=NEW")]
    pub rename: Vec<String>,
    /// A table renamed in DEV: OLD=NEW.
    #[arg(long, value_name = "OLD=NEW")]
    pub rename_table: Vec<String>,
    /// Take this table's rows from DEV, not from PROD (TARGET, for schema-diff): a glob; repeatable.
    #[arg(long, value_name = "TABLE")]
    pub dev_data: Vec<String>,
    /// Take this table's rows from PROD (TARGET) even where the defaults take DEV's: a glob; repeatable.
    #[arg(long, value_name = "TABLE")]
    pub prod_data: Vec<String>,
    /// A migration-history table beyond the known ones: its rows come from DEV (a glob; repeatable).
    #[arg(long, value_name = "TABLE")]
    pub migration_table: Vec<String>,
    /// Rows breaking a new constraint: abort (change nothing) or skip (leave them out, into a
    /// rejects database). Applies when the migration is applied.
    #[arg(long, value_enum, default_value_t = crate::apply::OnViolation::Abort)]
    pub on_violation: crate::apply::OnViolation,
    /// Load a SQLite extension (a collation, function or virtual table module DEV's application provides).
    #[arg(long, value_name = "PATH")]
    pub load_extension: Vec<PathBuf>,
}

impl MigrationArgs {
    /// The hints, parsed.
    pub fn hints(&self) -> Result<Hints, String> {
        Hints::parse(
            &self.rename_table,
            &self.rename,
            &self.dev_data,
            &self.prod_data,
            &self.migration_table,
        )
    }
}

/// What the command does with DEV and TARGET: one value, decided once from
/// the command line (`--apply`, `--sql`, or neither) and the command's own
/// default (`refresh-dev apply` applies unless told `--sql`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Compare and preview; write nothing.
    Diff,
    /// Apply DEV's schema onto TARGET.
    Apply,
    /// Print the statements `Apply` would run; write nothing.
    Sql,
}

impl DiffArgs {
    /// The mode these arguments ask for, `default` where they name none.
    pub fn mode(&self, default: Mode) -> Mode {
        match (self.apply, self.sql) {
            (_, true) => Mode::Sql,
            (true, false) => Mode::Apply,
            (false, false) => default,
        }
    }

    /// The hints, parsed.
    pub fn hints(&self) -> Result<Hints, String> {
        self.migration.hints()
    }

    /// How both files are read.
    pub fn reading(&self) -> Reading {
        Reading {
            extensions: self.migration.load_extension.clone(),
            wait: self.wait,
        }
    }
}

/// Runs `schema-diff` in `mode` and returns the exit status: 0 identical,
/// 1 different, 2 bad input, 3 refused, 4 an error.
pub fn run(args: &DiffArgs, mode: Mode) -> Exit {
    args.output.colour_errors();
    let hints = match args.hints() {
        Ok(r) => r,
        Err(e) => {
            let message = format!("bad rename hint {e}");
            cli_support::fail(args.output.json, "schema-diff", 2, "bad_hint", &message, None);
            return Exit::BadInput;
        }
    };
    if mode == Mode::Apply {
        return run_apply(args, &hints);
    }
    if args.migration.on_violation != crate::apply::OnViolation::Abort || args.rejects.is_some() {
        let message = "--on-violation and --rejects go with --apply";
        cli_support::fail(args.output.json, "schema-diff", 2, "usage", message, None);
        return Exit::BadInput;
    }
    if mode == Mode::Sql {
        return match crate::apply::sql(&args.dev, &args.target, &hints, &args.reading()) {
            Ok(statements) if statements.is_empty() => Exit::Done,
            Ok(statements) => {
                println!(
                    "-- schema-diff --sql: what --apply would run against {}",
                    args.target.display()
                );
                for statement in statements {
                    println!("{statement};");
                }
                Exit::Differences
            }
            Err(e) => failed(args.output.json, &e),
        };
    }
    match compare(&args.dev, &args.target, &hints, &args.reading()) {
        Ok(report) => {
            if args.output.json {
                if !print_json(&report) {
                    return Exit::Error;
                }
            } else if !args.output.quiet {
                print!(
                    "{}",
                    human(&report, args.output.colour(std::io::stdout().is_terminal()))
                );
            }
            if report.identical {
                Exit::Done
            } else {
                Exit::Differences
            }
        }
        Err(e) => failed(args.output.json, &e),
    }
}

fn run_apply(args: &DiffArgs, hints: &Hints) -> Exit {
    let options = crate::apply::ApplyOptions {
        hints: hints.clone(),
        reading: args.reading(),
        on_violation: args.migration.on_violation,
        rejects: args.rejects.clone(),
        subset: false,
    };
    match crate::apply::apply(&args.dev, &args.target, &options) {
        Ok(report) => {
            if args.output.json {
                if !print_json(&report) {
                    return Exit::Error;
                }
            } else if !args.output.quiet {
                if !report.changed {
                    println!(
                        "schema-diff --apply: {} already has DEV's schema: nothing to do",
                        args.target.display()
                    );
                } else {
                    println!(
                        "schema-diff --apply: {} now has DEV's schema ({} statements in one transaction, {:.2} s)",
                        args.target.display(),
                        report.statements.len(),
                        report.seconds
                    );
                    for t in report
                        .diff
                        .plan
                        .iter()
                        .filter(|t| t.strategy != Strategy::Unchanged || t.rows_from == RowsFrom::Dev)
                    {
                        println!(
                            "  {:<28} {:<10} rows from {}",
                            t.table,
                            t.strategy.kind().as_str(),
                            t.rows_from.as_str()
                        );
                    }
                    if let Some(path) = &report.rejects {
                        println!("  rows left out (--on-violation skip) are in {}", path.display());
                    }
                    for k in &report.skipped {
                        println!(
                            "  skipped {}: {}: {}",
                            k.table,
                            cli_support::plural(k.rows, "row", "rows"),
                            k.reason
                        );
                    }
                    for i in report
                        .diff
                        .data_impact
                        .iter()
                        .filter(|i| i.kind != ImpactKind::Violation)
                    {
                        let place = match &i.column {
                            Some(c) => format!("{}.{c}", i.table),
                            None => i.table.clone(),
                        };
                        let label = if i.kind == ImpactKind::Lost { "lost" } else { "replaced" };
                        println!("  {label}: {place}: {} rows: {}", i.rows, i.reason);
                    }
                }
            }
            Exit::Done
        }
        Err(e) => failed(args.output.json, &e),
    }
}

/// Prints `value` as JSON on stdout; says so on stderr if it cannot.
fn print_json(value: &impl serde::Serialize) -> bool {
    cli_support::print_json("schema-diff", value)
}

/// The human report: a summary line, the changes with unified diffs of the
/// stored SQL, the plan, and the data impact.
pub fn human(r: &Report, colour: bool) -> String {
    let p = cli_support::Paint(colour);
    let mut out = String::new();
    if r.identical {
        let _ = writeln!(out, "{}", p.green("schema-diff: identical schemas"));
        for s in &r.settings {
            let _ = writeln!(
                out,
                "  {} differs (not a schema difference): DEV {}, TARGET {}",
                s.setting, s.dev, s.target
            );
        }
        return out;
    }
    let count = |k: ChangeKind| r.changes.iter().filter(|c| c.change == k).count();
    let losses: i64 = r
        .data_impact
        .iter()
        .filter(|i| i.kind == ImpactKind::Lost)
        .map(|i| i.rows)
        .sum();
    let violations: i64 = r
        .data_impact
        .iter()
        .filter(|i| i.kind == ImpactKind::Violation)
        .map(|i| i.rows)
        .sum();
    let _ = writeln!(
        out,
        "{}",
        p.bold(&format!(
            "schema-diff: schemas differ: {} added, {} removed, {} changed, {} reformatted; {} lost, {} new constraints",
            count(ChangeKind::Added),
            count(ChangeKind::Removed),
            count(ChangeKind::Modified),
            count(ChangeKind::TextOnly),
            cli_support::plural(losses, "value or row", "values or rows"),
            cli_support::plural(violations, "row breaking", "rows breaking")
        ))
    );
    for s in &r.settings {
        let _ = writeln!(
            out,
            "  {}: DEV {}, TARGET {}{}",
            s.setting,
            s.dev,
            s.target,
            if s.counts { "" } else { " (reported only)" }
        );
    }
    for c in &r.changes {
        let sign = match c.change {
            ChangeKind::Added => p.green("+"),
            ChangeKind::Removed => p.red("-"),
            ChangeKind::Modified => p.yellow("~"),
            ChangeKind::TextOnly => p.yellow("="),
        };
        let _ = writeln!(
            out,
            "\n{sign} {} {}{}",
            c.object.as_str(),
            p.bold(&c.name),
            if c.compared_by == crate::diff::ComparedBy::Text {
                " (sqlparser cannot read it: compared as normalized text)"
            } else {
                ""
            }
        );
        for d in &c.details {
            let _ = writeln!(out, "    {d}");
        }
        for col in &c.columns {
            let _ = writeln!(
                out,
                "    column {} {}: {}",
                col.column,
                col.change.as_str(),
                col.details
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        let text = |sql: &Option<String>| sql.as_ref().map(|s| format!("{s}\n")).unwrap_or_default();
        let (old, new) = (text(&c.target_sql), text(&c.dev_sql));
        let diff = similar::TextDiff::from_lines(&old, &new);
        for line in diff
            .unified_diff()
            .context_radius(2)
            .header("TARGET", "DEV")
            .to_string()
            .lines()
        {
            let painted = if line.starts_with('+') && !line.starts_with("+++") {
                p.green(line)
            } else if line.starts_with('-') && !line.starts_with("---") {
                p.red(line)
            } else {
                line.to_owned()
            };
            let _ = writeln!(out, "      {painted}");
        }
    }
    for hint in &r.possible_renames {
        let _ = writeln!(out, "\n{} {hint}", p.yellow("hint:"));
    }
    let _ = writeln!(out, "\n{}", p.bold("plan"));
    for t in &r.plan {
        if t.strategy == Strategy::Unchanged && t.rows_from != RowsFrom::Dev {
            continue;
        }
        let _ = writeln!(
            out,
            "  {:<28} {:<10} rows from {:<6} {}",
            t.table,
            t.strategy.kind().as_str(),
            t.rows_from.as_str(),
            t.strategy.reasons().join("; ")
        );
    }
    let unchanged = r
        .plan
        .iter()
        .filter(|t| t.strategy == Strategy::Unchanged && t.rows_from != RowsFrom::Dev)
        .count();
    let _ = writeln!(out, "  ({unchanged} tables unchanged: nothing is done to them)");
    if !r.data_impact.is_empty() {
        let _ = writeln!(out, "\n{}", p.bold("data impact (counted on TARGET's rows)"));
        for i in &r.data_impact {
            let what = match i.kind {
                ImpactKind::Lost => p.red("lost"),
                ImpactKind::Violation => p.red("violation"),
                ImpactKind::Replaced => p.yellow("replaced"),
                ImpactKind::Existing => p.yellow("existing"),
            };
            let place = match &i.column {
                Some(c) => format!("{}.{c}", i.table),
                None => i.table.clone(),
            };
            let examples = if i.examples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", i.examples.join(", "))
            };
            let _ = writeln!(out, "  {what:<10} {place}: {} rows: {}{examples}", i.rows, i.reason);
        }
    }
    for u in &r.unreadable {
        let _ = writeln!(out, "\n{} {u}", p.yellow("could not describe:"));
    }
    for u in &r.not_counted {
        let _ = writeln!(out, "\n{} {u}", p.yellow("not counted:"));
    }
    for w in &r.warnings {
        let _ = writeln!(out, "\n{} {w}", p.yellow("warning:"));
    }
    out
}

/// An error, reported once (`cli_support::fail`), and its exit status.
fn failed(json: bool, e: &crate::Error) -> Exit {
    cli_support::fail(json, "schema-diff", e.exit().code(), e.code(), &e.to_string(), e.file());
    e.exit()
}
