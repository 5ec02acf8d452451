//! `--apply`: put DEV's exact schema onto TARGET in one transaction, keeping
//! every TARGET row that fits.
//!
//! Every statement that creates an object is DEV's stored text, verbatim.
//! Where a cheap path (`ALTER TABLE`, a text-only change) leaves a different
//! stored text, DEV's text is written through the documented
//! `writable_schema` procedure; that happens only where the plan proved the
//! on-disk format the same. Before COMMIT the result is checked: every
//! object's stored text equals DEV's, `foreign_key_check` finds no violation
//! TARGET did not already have, and `quick_check` passes on rebuilt tables.
//! Any failure rolls the transaction back: TARGET is left as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::Reading;
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use sqlite_file::{JournalFlag, Sidecars};

use crate::catalog::{key, quote, Catalog, Kind, Table};
use crate::plan::{rowid_alias, AlterStep, ImpactKind, RowsFrom, Strategy};
use crate::{compare, sqlite_error, Error, Hints, Report};

mod rejects;
mod sql;
mod tables;
mod verify;
mod vtables;

use rejects::*;
use sql::literal;
pub use sql::sql;
use tables::*;
use verify::*;
use vtables::*;

/// What `--on-violation` says to do with rows that break a new constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Change nothing and report every violated constraint (the default).
    #[default]
    Abort,
    /// Leave the violating rows out, into a rejects database.
    Skip,
}

/// Rows `--on-violation skip` left out of one table, into the rejects database.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub table: String,
    pub constraint: Option<String>,
    pub reason: String,
    pub rows: i64,
}

/// What an apply did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// The comparison made before anything was written.
    pub diff: Report,
    /// Whether TARGET was changed (false when it was already identical).
    pub changed: bool,
    /// With `--on-violation skip`: where the left-out rows are, and how many.
    pub rejects: Option<PathBuf>,
    pub skipped: Vec<Skipped>,
    /// The statements run, in order.
    pub statements: Vec<String>,
    pub seconds: f64,
}

impl ApplyReport {
    /// TARGET already had DEV's schema (and DEV's rows where they are due).
    fn unchanged(diff: Report, started: Instant) -> ApplyReport {
        ApplyReport {
            diff,
            changed: false,
            rejects: None,
            skipped: Vec::new(),
            statements: Vec::new(),
            seconds: started.elapsed().as_secs_f64(),
        }
    }
}

/// How DEV's schema is applied onto TARGET: one struct for the binary, the
/// driver's apply step and the tests.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Renames, and the tables whose rows come from DEV or PROD.
    pub hints: Hints,
    /// The extensions to load, and how long to wait for a lock.
    pub reading: Reading,
    /// What to do with TARGET's rows that break a new constraint.
    pub on_violation: OnViolation,
    /// Where rows left out by [`OnViolation::Skip`] go (default
    /// `DEV.rejects-<UTC stamp>.sqlite`, beside DEV).
    pub rejects: Option<PathBuf>,
    /// TARGET is a subset of the data: DEV's own rows (of tables whose rows
    /// come from DEV) may reference parents it left out. Those rows are kept
    /// and reported in the diff's warnings, not refused.
    pub subset: bool,
}

/// Runs DEV's schema onto TARGET. On any error TARGET is left as it was.
pub fn apply(dev_path: &Path, target_path: &Path, options: &ApplyOptions) -> Result<ApplyReport, Error> {
    let progress = Progress {
        copying: &mut |_| {},
        stop: None,
    };
    apply_with_progress(dev_path, target_path, options, progress)
}

/// What [`apply_with_progress`] tells while it works, and how to stop it.
pub struct Progress<'a> {
    /// Called before the rows of each table are copied (a rebuild, or DEV's rows).
    pub copying: &'a mut dyn FnMut(&str),
    /// Once set, the running statement is interrupted and TARGET rolled back
    /// (`Error::Sqlite` with SQLite's "interrupted").
    pub stop: Option<Arc<AtomicBool>>,
}

/// [`apply`], for progress displays and Ctrl-C.
pub fn apply_with_progress(
    dev_path: &Path,
    target_path: &Path,
    options: &ApplyOptions,
    progress: Progress,
) -> Result<ApplyReport, Error> {
    let ApplyOptions {
        hints,
        reading,
        on_violation,
        rejects,
        subset,
    } = options;
    let (on_violation, rejects) = (*on_violation, rejects.as_deref());
    let started = Instant::now();
    let diff = compare(dev_path, target_path, hints, reading)?;
    let needs_dev = diff.plan.iter().any(|p| p.rows_from == RowsFrom::Dev);
    if diff.identical && !needs_dev {
        return Ok(ApplyReport::unchanged(diff, started));
    }
    if let Some(why) = diff.blocking(on_violation) {
        return Err(Error::Violations {
            path: target_path.to_owned(),
            list: why,
        });
    }
    let to_skip: Vec<&crate::plan::Impact> = diff
        .data_impact
        .iter()
        .filter(|i| i.kind == ImpactKind::Violation)
        .collect();

    let mut conn = Connection::open_with_flags(
        target_path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| sqlite_error(target_path, "open", e))?;
    if let Some(stop) = progress.stop {
        // Checked every thousand VM steps: a long copy stops within
        // microseconds; a ROLLBACK (a few steps) is never cut short.
        conn.progress_handler(1000, Some(move || stop.load(Ordering::Relaxed)))
            .map_err(|e| sqlite_error(target_path, "progress handler", e))?;
    }
    let mut run = TargetWriter {
        conn: &conn,
        path: target_path,
        statements: Vec::new(),
        copying: progress.copying,
    };
    // Outside the transaction: inside it, `foreign_keys` is silently ignored.
    run.exec("PRAGMA foreign_keys = OFF")?;
    run.exec("PRAGMA legacy_alter_table = ON")?;
    conn.busy_timeout(sqlite_file::wait::busy_timeout(reading.wait))
        .map_err(|e| sqlite_error(target_path, "busy timeout", e))?;
    crate::load_extensions(&conn, &reading.extensions)?;
    // ATTACH and DETACH cannot happen inside the transaction.
    let mut same_rows = BTreeSet::new();
    if needs_dev {
        attach_dev(&mut run, dev_path)?;
        same_rows = tables_with_devs_rows_already(&run, &diff)?;
        let all_same = diff
            .plan
            .iter()
            .filter(|p| p.rows_from == RowsFrom::Dev)
            .all(|p| same_rows.contains(&key(&p.table)));
        if diff.identical && all_same {
            drop(run);
            conn.close().map_err(|(_, e)| sqlite_error(target_path, "close", e))?;
            return Ok(ApplyReport::unchanged(diff, started));
        }
    }
    let rejects_path = if to_skip.is_empty() {
        None
    } else {
        Some(create_rejects(&mut run, target_path, rejects)?)
    };
    let cleanup = |path: &Option<PathBuf>| {
        if let Some(p) = path {
            let _ = sqlite_file::sidefile::remove_with_sidecars(p);
        }
    };
    if let Err(e) = run.exec("BEGIN IMMEDIATE") {
        cleanup(&rejects_path);
        return Err(e);
    }
    let mut skipped = Vec::new();
    let mut dangling = Vec::new();
    let result = (|| {
        let dev = read_catalog(dev_path, reading)?;
        let target = Catalog::read(&conn, "").map_err(|e| sqlite_error(target_path, "read schema", e))?;
        let fk_before = foreign_key_violations(&conn).map_err(|e| sqlite_error(target_path, "foreign_key_check", e))?;
        skipped = skip_rows(&mut run, &to_skip, &target, hints)?;
        let rebuilt = change(&mut run, &diff, &dev, &target, hints, &same_rows)?;
        verify(&mut run, &dev, &rebuilt, &diff)?;
        let fk_after = foreign_key_violations(&conn).map_err(|e| sqlite_error(target_path, "foreign_key_check", e))?;
        // A reference to a table DEV's schema does not have dangles in DEV
        // too: a property of DEV's schema, reported by the plan, not new.
        let dev_rows = |t: &str| {
            diff.plan
                .iter()
                .any(|p| p.rows_from == RowsFrom::Dev && crate::catalog::key(&p.table) == *t)
        };
        let mut new = Vec::new();
        for ((t, p), n) in fk_after
            .iter()
            .filter(|((_, parent), _)| dev.table(parent).is_some())
            .filter(|(k, n)| fk_before.get(*k).is_none_or(|b| **n > *b))
        {
            if *subset && dev_rows(t) {
                dangling.push(format!(
                    "{t} -> {p}: {n} of DEV's rows reference a row the subset left out: kept"
                ));
            } else {
                new.push(format!("{t} -> {p}: {n} rows"));
            }
        }
        if !new.is_empty() {
            return Err(Error::Violations {
                path: target_path.to_owned(),
                list: format!("new foreign key violations: {}", new.join("; ")),
            });
        }
        Ok(())
    })();
    if let Err(e) = result {
        let _ = conn.execute_batch("ROLLBACK");
        let _ = conn.execute_batch("DETACH DATABASE rejects");
        cleanup(&rejects_path);
        return Err(e);
    }
    run.exec("COMMIT")?;
    if needs_dev {
        run.exec("DETACH DATABASE dev_source")?;
    }
    if rejects_path.is_some() {
        run.exec("DETACH DATABASE rejects")?;
    }
    // `journal_mode` is ignored inside a transaction: set DEV's after it.
    let dev_journal = sqlite_file::Header::read(dev_path)
        .map(|h| h.journal)
        .unwrap_or(JournalFlag::Rollback);
    let target_journal = sqlite_file::Header::read(target_path)
        .map(|h| h.journal)
        .unwrap_or(JournalFlag::Rollback);
    if dev_journal != target_journal {
        let mode = match dev_journal {
            JournalFlag::Wal => "WAL",
            JournalFlag::Rollback => "DELETE",
        };
        let _: String = conn
            .query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| r.get(0))
            .map_err(|e| sqlite_error(target_path, "journal_mode", e))?;
        run.statements.push(format!("PRAGMA journal_mode = {mode}"));
    }
    let statements = run.statements;
    conn.close().map_err(|(_, e)| sqlite_error(target_path, "close", e))?;
    let left = Sidecars::of(target_path).map_err(|e| crate::io_error(target_path, "look for sidecars", e))?;
    if left.wal.is_some() || left.journal.is_some() {
        return Err(crate::io_error(
            target_path,
            "close",
            std::io::Error::other("a -wal or -journal was left after closing"),
        ));
    }
    let mut diff = diff;
    diff.warnings.extend(dangling);
    Ok(ApplyReport {
        diff,
        changed: true,
        rejects: rejects_path,
        skipped,
        statements,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// TARGET's connection while it is written: runs each statement and keeps
/// it (for `--sql`), and tells the progress callback which table it copies.
struct TargetWriter<'a> {
    conn: &'a Connection,
    path: &'a Path,
    statements: Vec<String>,
    copying: &'a mut dyn FnMut(&str),
}

impl TargetWriter<'_> {
    fn exec(&mut self, sql: &str) -> Result<(), Error> {
        self.statements.push(sql.to_owned());
        self.conn
            .execute_batch(sql)
            .map_err(|e| sqlite_error(self.path, "apply", e))
    }

    /// Sets one object's stored row to DEV's through `writable_schema`.
    fn set_schema_row(&mut self, kind: &str, name: &str, tbl_name: &str, sql: &str) -> Result<(), Error> {
        let err = |e| sqlite_error(self.path, "writable_schema", e);
        let version: i64 = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(err)?;
        self.conn.execute_batch("PRAGMA writable_schema = ON").map_err(err)?;
        let changed = self
            .conn
            .execute(
                "UPDATE sqlite_schema SET sql = ?1, name = ?2, tbl_name = ?3 WHERE type = ?4 AND name = ?2 COLLATE NOCASE",
                params![sql, name, tbl_name, kind],
            )
            .map_err(err)?;
        self.conn
            .execute_batch(&format!("PRAGMA schema_version = {}", version + 1))
            .map_err(err)?;
        self.conn.execute_batch("PRAGMA writable_schema = OFF").map_err(err)?;
        self.statements.push(format!(
            "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = {}, name = {}, tbl_name = {} WHERE type = {} AND name = {} COLLATE NOCASE; PRAGMA schema_version = {}; PRAGMA writable_schema = OFF",
            literal(sql),
            literal(name),
            literal(tbl_name),
            literal(kind),
            literal(name),
            version + 1
        ));
        if changed != 1 {
            return Err(Error::Internal(format!("writable_schema: {kind} {name} not found")));
        }
        Ok(())
    }
}
