//! The steps, run in order with the workspace's tools, then the cleanup of
//! what the run made.

use super::*;

/// Records in the run's locks, before it is made, that the run makes `path`.
pub(super) fn record_made(prepared: &mut Prepared, path: &Path) -> Result<(), Error> {
    for lock in &mut prepared.locks {
        lock.record_made(path)?;
    }
    Ok(())
}

pub(super) fn execute(
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
                sr.error = Some((&e).into());
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
        report.error = Some((&e).into());
    }
}

pub(super) fn run_step(
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
    let ceiling = prepared.disk[prepared.origins[index].source].as_ref().map(|o| o.mode);
    match &step.op {
        Operation::Snapshot {
            from,
            to,
            verify,
            timeout,
        } => {
            record_made(prepared, &path(*to))?;
            if step.masking.is_some() {
                let made = masking::snapshot(
                    d,
                    index,
                    &path(*from),
                    &path(*to),
                    *timeout,
                    events,
                    prepared,
                    sr,
                    created,
                );
                created.push(path(*to));
                return made;
            }
            let r = snapshot_into(&path(*from), &path(*to), *verify, *timeout, events)?;
            created.push(path(*to));
            sr.bytes = Some(r.bytes);
            sr.operations
                .push(format!("created {} ({})", r.dest.display(), size(r.bytes)));
            sr.snapshot = Some(r);
        }
        Operation::Apply { schema, to, options } => {
            // Decided by the preflight, which checked nothing lies there.
            let rejects = prepared
                .rejects
                .get(&index)
                .cloned()
                .or_else(|| options.rejects.clone());
            let options = ApplyOptions {
                rejects: rejects.clone(),
                subset: masking::migrates_a_subset(d, index),
                ..options.clone()
            };
            let (hints, reading) = (&options.hints, &options.reading);
            if let Some(r) = &rejects {
                record_made(prepared, r)?;
            }
            if let std::collections::btree_map::Entry::Vacant(entry) = prepared.diffs.entry(index) {
                // Not counted by the preflight (a rollback-mode PROD is never
                // counted under its lock): count on the copy, before it
                // changes, and refuse here as the preflight would have.
                let diff = schema_diff::compare(&path(*schema), &path(*to), hints, reading)?;
                // PROD was busy when the preflight asked: ask its copy.
                if !prepared.allow_behind {
                    if let Ok(Some(why)) = schema_diff::behind(&path(*schema), &path(*to), hints) {
                        return Err(Error::DevBehind {
                            dev: path(*schema),
                            why,
                        });
                    }
                }
                if let Some(why) = diff.blocking(options.on_violation) {
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
                    .map(|t| format!(" ({})", cli_support::plural(t.rows_touched, "row", "rows")))
                    .unwrap_or_default();
                events.detail(&format!("copying the rows of {table}{rows}"));
            };
            let r = schema_diff::apply::apply_with_progress(
                &path(*schema),
                &path(*to),
                &options,
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
            sr.operations.push(format!(
                "{} now holds the new content (the staging file is consumed)",
                r.target.display()
            ));
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
            if step.masking.is_some() {
                masking::snapshot(
                    d,
                    index,
                    &path(*from),
                    &staging,
                    *timeout,
                    events,
                    prepared,
                    sr,
                    created,
                )?;
            } else {
                let r = snapshot_into(&path(*from), &staging, false, *timeout, events)?;
                sr.bytes = Some(r.bytes);
                sr.operations
                    .push(format!("created {} ({})", staging.display(), size(r.bytes)));
                sr.snapshot = Some(r);
            }
            if events.cancelled() {
                return Err(Error::Interrupted);
            }
            let r = swap_into(&staging, &path(*to), *swap, ceiling)?;
            sr.operations.push(format!(
                "{} now holds the new content (the staging file is consumed)",
                r.target.display()
            ));
            narrowed(prepared, index, *to, &path(*to), sr, events);
            sr.swap = Some(r);
        }
    }
    Ok(())
}

/// Says so when the file a swap replaced had wider permission bits than
/// the data it now holds came with (PROD's): the new file got the narrower.
pub(super) fn narrowed(
    prepared: &Prepared,
    step: usize,
    to: usize,
    path: &Path,
    sr: &mut StepReport,
    events: &mut dyn Events,
) {
    let (Some(before), Some(source)) = (&prepared.disk[to], &prepared.disk[prepared.origins[step].source]) else {
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

pub(super) fn snapshot_into(
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
            durable: true,
        },
    );
    let mut adapter = Adapter(events);
    Ok(copy.run(&mut adapter)?)
}

pub(super) fn swap_into(
    from: &Path,
    to: &Path,
    options: SwapOptions,
    ceiling: Option<u32>,
) -> Result<swap::Report, Error> {
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
