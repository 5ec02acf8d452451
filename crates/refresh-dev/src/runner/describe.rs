//! What a run's steps do, in words: the planned steps and their file
//! operations, and the report fields filled from the steps.

use super::*;

pub(super) fn summarize_first_diff(report: &mut Report) {
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

pub(super) fn planned_steps(
    d: &Deployment,
    diffs: &BTreeMap<usize, schema_diff::Report>,
    status: Status,
) -> Vec<StepReport> {
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
pub(super) fn step_report(d: &Deployment, index: usize, step: &crate::Step, status: Status) -> StepReport {
    StepReport::new(
        index + 1,
        step.name.clone(),
        step.op.name(),
        d.files[step.op.source()].path.clone(),
        d.files[step.op.target()].path.clone(),
        status,
    )
}

/// The file operations a step makes, in words.
pub(super) fn operations(d: &Deployment, op: &Operation, diff: Option<&schema_diff::Report>) -> Vec<String> {
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
                "put {from} at {}'s name in one atomic exchange (the old file stays whole until then), fsync {}",
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
        Operation::Apply { schema, to, options } => {
            let on_violation = &options.on_violation;
            let mut ops = vec![match diff {
                Some(d) if d.identical => format!("{} already has {}'s schema: nothing to change", p(*to), p(*schema)),
                Some(d) => {
                    let count = |kind: StrategyKind| d.plan.iter().filter(|t| t.strategy.kind() == kind).count();
                    let tables = |n: usize| cli_support::plural(n as u64, "table", "tables");
                    format!(
                        "apply {}'s schema onto {} in one transaction: {} to create, {} to drop, {} altered, {} rebuilt",
                        p(*schema),
                        p(*to),
                        tables(count(StrategyKind::Create)),
                        tables(count(StrategyKind::Drop)),
                        tables(count(StrategyKind::Alter)),
                        tables(count(StrategyKind::Rebuild)),
                    )
                }
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

/// Report fields filled from the steps: the backup, the rejects, the masking.
pub(super) fn finish(report: &mut Report) {
    for step in &report.steps {
        if let Some(m) = &step.masking {
            report.masking = Some(m.clone());
        }
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
