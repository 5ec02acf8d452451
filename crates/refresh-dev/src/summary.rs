//! The summary a person reads first: what happens to DEV's and PROD's data,
//! in their words, in a few lines. The full report is `Report::human`
//! (`--verbose`).

use std::fmt::Write as _;
use std::path::Path;

use schema_diff::plan::{ImpactKind, StrategyKind};

use crate::report::{Outcome, Report};
use cli_support::{plural, Paint};

/// At most this many entries of a list are shown; `-v` shows them all.
const SHOWN: usize = 5;

impl Report {
    /// The summary: the outcome, what DEV keeps and gets, what is lost (with
    /// the hint that would keep it), what of DEV's own data is replaced and
    /// where it stays, what blocks the run and how to fix it, what to run next.
    pub fn summary(&self, colour: bool) -> String {
        let paint = Paint(colour);
        let mut out = String::new();
        let verb = if self.dry_run { "plan" } else { &self.command };
        let refused = self.result != Outcome::Succeeded;
        let outcome = match (self.dry_run, refused, self.failed_step.is_some()) {
            (true, false, _) => paint.green("ready: nothing blocks the run"),
            (true, true, _) => paint.bold(&paint.red("the run would be refused")),
            (false, false, _) => paint.green("done"),
            (false, true, false) => paint.bold(&paint.red("refused: nothing was changed")),
            (false, true, true) => paint.bold(&paint.red("failed: DEV was not changed")),
        };
        let _ = writeln!(out, "refresh-dev {verb}: {outcome}");
        let prod = self.files.iter().find(|f| f.name == "prod").map(|f| f.path.as_path());
        let dev = self.files.iter().find(|f| f.name == "dev").map(|f| f.path.as_path());
        let shown = |p: Option<&Path>| p.map(cli_support::short).unwrap_or_else(|| "?".into());
        if let Some(t) = &self.transfer {
            let moved = cli_support::size(t.bytes_received + t.bytes_sent);
            if self.dry_run && t.pages_sent == 0 {
                let _ = writeln!(
                    out,
                    "  PROD is {}: counted on its host ({} pages); {moved} over the link, no table data",
                    t.from, t.pages_total
                );
            } else {
                let _ = writeln!(
                    out,
                    "  PROD is {}: {} of {} received ({moved} over the link), {} {}",
                    t.from,
                    t.pages_sent,
                    plural(t.pages_total, "page", "pages"),
                    if t.base_used {
                        "updating the copy kept in"
                    } else {
                        "into a new copy kept in"
                    },
                    shown(prod)
                );
            }
        }

        // Refresh Staging writes STAGING and leaves DEV as it is.
        let staging = (self.command == "staging")
            .then(|| self.files.iter().find(|f| f.name == "staging"))
            .flatten()
            .map(|f| cli_support::short(&f.path));
        if self.changes.is_empty() && !self.plan.is_empty() {
            let _ = match &staging {
                Some(s) => writeln!(
                    out,
                    "  schemas identical: {s} gets PROD's rows as they are; DEV is not touched"
                ),
                None if self.masking.is_some() => writeln!(
                    out,
                    "  schemas identical: DEV gets PROD's rows, masked and subset by the rules"
                ),
                None => writeln!(out, "  schemas identical: DEV gets PROD's rows as they are"),
            };
        } else if !self.plan.is_empty() || !self.changes.is_empty() {
            let count = |kind: StrategyKind| self.plan.iter().filter(|t| t.strategy.kind() == kind).count() as u64;
            let tables = |n: u64| plural(n, "table", "tables");
            let changes = format!(
                "{}: {} created, {} dropped, {} altered, {} rebuilt",
                plural(self.changes.len() as u64, "change", "changes"),
                tables(count(StrategyKind::Create)),
                tables(count(StrategyKind::Drop)),
                tables(count(StrategyKind::Alter)),
                tables(count(StrategyKind::Rebuild)),
            );
            let _ = match &staging {
                Some(s) => writeln!(
                    out,
                    "  {s} gets PROD's rows in DEV's schema ({changes}); DEV is not touched"
                ),
                None => writeln!(out, "  DEV keeps its schema ({changes}) and gets PROD's rows"),
            };
        }
        let place = |table: &str, column: &Option<String>| match column {
            Some(c) => format!("{table}.{c}"),
            None => table.to_owned(),
        };
        let lost: Vec<_> = self.data_impact.iter().filter(|i| i.kind == ImpactKind::Lost).collect();
        for i in lost.iter().take(SHOWN) {
            let rows = plural(i.rows, "value", "values");
            let _ = writeln!(
                out,
                "  {} {}: {rows} ({})",
                paint.yellow("lost:"),
                place(&i.table, &i.column),
                crate::report::in_prod_and_dev_words(&i.reason)
            );
        }
        let renames = self
            .steps
            .iter()
            .find_map(|s| s.apply.as_ref().map(|a| &a.diff).or(s.diff.as_ref()))
            .map(|d| d.possible_renames.clone())
            .unwrap_or_default();
        for hint in renames.iter().take(SHOWN) {
            let _ = writeln!(out, "  {} {hint}", paint.yellow("hint:"));
        }
        let replaced: Vec<String> = self
            .data_impact
            .iter()
            .filter(|i| i.kind == ImpactKind::Replaced && i.reason.starts_with("DEV's own rows"))
            .map(|i| format!("{} ({})", i.table, plural(i.rows, "row", "rows")))
            .collect();
        if staging.is_some() {
            // DEV's own rows stay in DEV.
        } else if !replaced.is_empty() {
            let where_it_stays = match &self.backup {
                Some(b) => format!("kept in the backup {}", cli_support::short(b)),
                None if self.dry_run => "kept in DEV's backup".to_owned(),
                None => "not kept (--no-backup)".to_owned(),
            };
            let _ = writeln!(
                out,
                "  DEV's own rows are replaced: {}{}; {where_it_stays}",
                replaced.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", "),
                if replaced.len() > SHOWN { ", …" } else { "" }
            );
        } else if let Some(b) = &self.backup {
            let _ = writeln!(out, "  the old DEV is kept as {}", cli_support::short(b));
        }
        if let Some(r) = &self.rejects {
            let _ = writeln!(
                out,
                "  left out: {} breaking DEV's constraints, in {}",
                plural(r.rows, "row", "rows"),
                cli_support::short(&r.path)
            );
        }
        for w in self
            .steps
            .iter()
            .filter_map(|s| s.apply.as_ref().map(|a| &a.diff).or(s.diff.as_ref()))
            .flat_map(|d| &d.warnings)
            .take(SHOWN)
        {
            let _ = writeln!(out, "  {} {w}", paint.yellow("warning:"));
        }
        if let Some(m) = &self.masking {
            self.masking_summary(m, &paint, &mut out);
        }
        // Every failed check but the error itself (printed once, on stderr).
        for c in self
            .preflight
            .iter()
            .filter(|c| !c.ok && self.error.as_ref().is_none_or(|e| e.message != c.detail))
        {
            let _ = writeln!(out, "  {} {}", paint.red("blocks:"), c.detail);
        }
        // One fix per blocker: a new NOT NULL column without a default wants
        // a DEFAULT in DEV's schema, not skipping every row.
        // Violations block only where the schema check failed (abort);
        // otherwise `--on-violation skip` leaves those rows out.
        let violations_block = self.preflight.iter().any(|c| c.check == "schema" && !c.ok)
            || self.error.as_ref().is_some_and(|e| e.code == "violations");
        for i in self
            .data_impact
            .iter()
            .filter(|i| i.kind == ImpactKind::Violation)
            .take(SHOWN)
        {
            if !violations_block {
                // Planned or done with --on-violation skip: left out, not blocking.
                let rows = plural(i.rows.max(0), "row", "rows");
                let what = place(&i.table, &i.column);
                let _ = writeln!(
                    out,
                    "  {} {what}: {rows}: {} (skipped into rejects)",
                    paint.yellow("left out:"),
                    crate::report::in_prod_and_dev_words(&i.reason)
                );
                continue;
            }
            let fix = if i.reason.starts_with("new NOT NULL column without a default") {
                "give the column a DEFAULT in DEV's schema".to_owned()
            } else if i.skip_condition.is_none() {
                "change DEV's schema or PROD's rows".to_owned()
            } else {
                "pass --on-violation skip to leave those rows out into a rejects file".to_owned()
            };
            let rows = cli_support::rows(i.rows);
            let _ = writeln!(
                out,
                "  {} {}: {rows}: {}; fix: {fix}",
                paint.red("blocks:"),
                place(&i.table, &i.column),
                crate::report::in_prod_and_dev_words(&i.reason)
            );
        }
        match (self.dry_run, refused, self.command.as_str()) {
            (true, false, "plan" | "run") => {
                let next = self
                    .next
                    .clone()
                    .unwrap_or_else(|| format!("refresh-dev run --prod {} --dev {}", shown(prod), shown(dev)));
                let _ = writeln!(out, "  next: {next}");
            }
            (false, false, "run" | "replace") => {
                let _ = writeln!(out, "  undo: refresh-dev rollback --dev {}", shown(dev));
            }
            _ => {}
        }
        let _ = writeln!(out, "  (-v for the full report)");
        out
    }

    /// `--rules`: the masked columns (with an example, planned), the rows
    /// the subset keeps, the columns that look personal and have no rule.
    fn masking_summary(&self, m: &crate::report::MaskingReport, paint: &Paint, out: &mut String) {
        let key = match m.key_state {
            "throwaway" => "no key yet: examples use a throwaway key; the run makes one",
            "new" => "a new key, mode 0600",
            _ => "the kept key",
        };
        let _ = writeln!(
            out,
            "  masking: rules {}, {key} ({})",
            cli_support::short(&m.rules),
            cli_support::short(&m.key)
        );
        if let Some(p) = &m.planned {
            for e in p.masked.iter().take(SHOWN) {
                let example = match (&e.example, &e.note) {
                    (Some(x), _) => format!("e.g. {x:?}"),
                    (None, Some(n)) => n.clone(),
                    (None, None) => String::new(),
                };
                let _ = writeln!(out, "    {}.{}: {}, {example}", e.table, e.column, e.rule);
            }
            if p.masked.len() > SHOWN {
                let _ = writeln!(out, "    … {} more masked columns", p.masked.len() - SHOWN);
            }
        }
        let subset = m
            .planned
            .as_ref()
            .map(|p| &p.subset)
            .or(m.built.as_ref().map(|b| &b.subset));
        // A plan shows every table's count; a run, the tables that lost rows.
        for t in subset.into_iter().flatten().filter(|t| self.dry_run || t.kept < t.rows) {
            let _ = writeln!(
                out,
                "  {} {}: {} of {} rows kept, {} left out ({})",
                paint.yellow("subset:"),
                t.table,
                t.kept,
                t.rows,
                t.rows - t.kept,
                t.why
            );
        }
        if let Some(b) = &m.built {
            let values: i64 = b.masked.iter().map(|c| c.values).sum();
            let _ = writeln!(
                out,
                "    masked {} in {}; no original value of them is left in DEV",
                plural(values.max(0), "value", "values"),
                plural(b.masked.len() as u64, "column", "columns")
            );
            for w in b.warnings.iter().take(SHOWN) {
                let _ = writeln!(out, "  {} {w}", paint.yellow("warning:"));
            }
        }
        if let Some(p) = &m.planned {
            for w in p.warnings.iter().chain(&p.not_counted).take(SHOWN) {
                let _ = writeln!(out, "  {} {w}", paint.yellow("warning:"));
            }
            let unruled: Vec<String> = p
                .unruled
                .iter()
                .map(|f| format!("{}.{} ({})", f.table, f.column, f.kind))
                .collect();
            if !unruled.is_empty() {
                let _ = writeln!(
                    out,
                    "  {} {}: copied as they are; give them a rule in {}",
                    paint.yellow("no rule:"),
                    unruled.join(", "),
                    cli_support::short(&m.rules)
                );
            }
        }
    }
}
