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
use std::time::Instant;

use rusqlite::{params, Connection, OpenFlags};
use serde::Serialize;
use sqlite_file::{JournalFlag, Sidecars};

use crate::catalog::{key, quote, Catalog, Kind, Table};
use crate::plan::{rowid_alias, AlterStep, ImpactKind, RowsFrom, Strategy};
use crate::{compare, sqlite_error, Error, Hints, Report};

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

/// Runs DEV's schema onto TARGET. On any error TARGET is left as it was.
pub fn apply(
    dev_path: &Path,
    target_path: &Path,
    hints: &Hints,
    extensions: &[PathBuf],
    on_violation: OnViolation,
    rejects: Option<&Path>,
) -> Result<ApplyReport, Error> {
    let progress = Progress {
        copying: &mut |_| {},
        stop: None,
    };
    apply_with_progress(
        dev_path,
        target_path,
        hints,
        extensions,
        on_violation,
        rejects,
        progress,
    )
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
    hints: &Hints,
    extensions: &[PathBuf],
    on_violation: OnViolation,
    rejects: Option<&Path>,
    progress: Progress,
) -> Result<ApplyReport, Error> {
    let started = Instant::now();
    let diff = compare(dev_path, target_path, hints, extensions)?;
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
    let mut run = Runner {
        conn: &conn,
        path: target_path,
        statements: Vec::new(),
        copying: progress.copying,
    };
    // Outside the transaction: inside it, `foreign_keys` is silently ignored.
    run.exec("PRAGMA foreign_keys = OFF")?;
    run.exec("PRAGMA legacy_alter_table = ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| sqlite_error(target_path, "busy timeout", e))?;
    crate::load_extensions(&conn, extensions)?;
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
    let result = (|| {
        let dev = read_catalog(dev_path, extensions)?;
        let target = Catalog::read(&conn, "").map_err(|e| sqlite_error(target_path, "read schema", e))?;
        let fk_before = foreign_key_violations(&conn).map_err(|e| sqlite_error(target_path, "foreign_key_check", e))?;
        skipped = skip_rows(&mut run, &to_skip, &target, hints)?;
        let rebuilt = change(&mut run, &diff, &dev, &target, hints, &same_rows)?;
        verify(&mut run, &dev, &rebuilt, &diff)?;
        let fk_after = foreign_key_violations(&conn).map_err(|e| sqlite_error(target_path, "foreign_key_check", e))?;
        // A reference to a table DEV's schema does not have dangles in DEV
        // too: a property of DEV's schema, reported by the plan, not new.
        let new: Vec<String> = fk_after
            .iter()
            .filter(|((_, parent), _)| dev.table(parent).is_some())
            .filter(|(k, n)| fk_before.get(*k).is_none_or(|b| *n > b))
            .map(|((t, p), n)| format!("{t} -> {p}: {n} rows"))
            .collect();
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
    let left = Sidecars::of(target_path).map_err(|e| Error::Io {
        path: target_path.to_owned(),
        source: e,
    })?;
    if left.wal.is_some() || left.journal.is_some() {
        return Err(Error::Io {
            path: target_path.to_owned(),
            source: std::io::Error::other("a -wal or -journal was left after closing"),
        });
    }
    Ok(ApplyReport {
        diff,
        changed: true,
        rejects: rejects_path,
        skipped,
        statements,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Creates the rejects database (never replacing a file, with TARGET's
/// permission bits) and ATTACHes it as `rejects`.
fn create_rejects(run: &mut Runner, target: &Path, wanted: Option<&Path>) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = match wanted {
        Some(p) => p.to_owned(),
        None => sqlite_file::sidefile::rejects(target, &sqlite_file::fs::utc_stamp(std::time::SystemTime::now())),
    };
    let mode = std::fs::metadata(target)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    // Never a link, never over an existing file, never beside a stale sidecar.
    let file = sqlite_file::sidefile::create_new(&path, 0o600).map_err(|e| match e {
        sqlite_file::sidefile::SideFileError::Io { source, .. } => Error::Io {
            path: path.clone(),
            source,
        },
        e => Error::SideFile(e),
    })?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::Io {
            path: path.clone(),
            source: e,
        })?;
    drop(file);
    let attached = run
        .conn
        .execute("ATTACH DATABASE ?1 AS rejects", [path.to_string_lossy()])
        .map_err(|e| sqlite_error(&path, "attach", e));
    if let Err(e) = attached {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    run.statements.push(format!(
        "ATTACH DATABASE {} AS rejects",
        literal(&path.to_string_lossy())
    ));
    Ok(path)
}

/// Moves the rows that break a new constraint into `rejects` (one table per
/// source table, with the reason), and out of TARGET.
fn skip_rows(
    run: &mut Runner,
    violations: &[&crate::plan::Impact],
    target: &Catalog,
    hints: &Hints,
) -> Result<Vec<Skipped>, Error> {
    let mut out = Vec::new();
    for v in violations {
        let Some(condition) = &v.skip_condition else { continue };
        let name = hints.table_in_target(&v.table);
        let table = target
            .table(&name)
            .ok_or_else(|| Error::Internal(format!("{name}: not in TARGET")))?;
        let q = quote(&table.name);
        let rowid = if table.without_rowid {
            ""
        } else {
            "rowid AS refresh_dev_rowid, "
        };
        run.exec(&format!(
            "CREATE TABLE IF NOT EXISTS rejects.{q} AS SELECT {rowid}*, '' AS refresh_dev_reason FROM main.{q} WHERE 0"
        ))?;
        let reason = format!(
            "{}{}",
            v.constraint.as_ref().map(|c| format!("{c}: ")).unwrap_or_default(),
            v.reason
        );
        run.exec(&format!(
            "INSERT INTO rejects.{q} SELECT {rowid}*, {} FROM main.{q} WHERE {condition}",
            literal(&reason)
        ))?;
        let rows = run.conn.changes() as i64;
        run.exec(&format!("DELETE FROM main.{q} WHERE {condition}"))?;
        out.push(Skipped {
            table: table.name.clone(),
            constraint: v.constraint.clone(),
            reason,
            rows,
        });
    }
    Ok(out)
}

/// The statements `--apply` would run against TARGET, found by applying to
/// a temporary, consistent copy of TARGET in its folder (removed afterwards).
/// TARGET itself is only read. Empty when the schemas are identical.
pub fn sql(dev_path: &Path, target_path: &Path, hints: &Hints, extensions: &[PathBuf]) -> Result<Vec<String>, Error> {
    let folder = sqlite_file::fs::parent_dir(target_path);
    let (prefix, suffix) = sqlite_file::sidefile::pid_temp_pattern(target_path, "schema-diff-sql");
    for leftover in sqlite_file::sidefile::dead_pid_leftovers(folder, &prefix, &suffix) {
        let _ = sqlite_file::sidefile::remove_with_sidecars(&leftover);
    }
    let copy = sqlite_file::sidefile::pid_temp(target_path, "schema-diff-sql");
    let remove = |p: &Path| {
        let _ = sqlite_file::sidefile::remove_with_sidecars(p);
    };
    let result = (|| {
        {
            let (source, _) = crate::open(target_path, extensions)?;
            sqlite_file::sidefile::create_new(&copy, 0o600).map_err(|e| match e {
                sqlite_file::sidefile::SideFileError::Io { source, .. } => Error::Io {
                    path: copy.clone(),
                    source,
                },
                e => Error::SideFile(e),
            })?;
            let mut dest = Connection::open(&copy).map_err(|e| sqlite_error(&copy, "create", e))?;
            let _: String = dest
                .pragma_update_and_check(None, "journal_mode", "OFF", |r| r.get(0))
                .map_err(|e| sqlite_error(&copy, "pragma", e))?;
            let backup =
                rusqlite::backup::Backup::new(&source.conn, &mut dest).map_err(|e| sqlite_error(&copy, "copy", e))?;
            loop {
                match backup.step(-1).map_err(|e| sqlite_error(target_path, "copy", e))? {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    _ => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
        apply(dev_path, &copy, hints, extensions, OnViolation::Abort, None).map(|r| r.statements)
    })();
    remove(&copy);
    result
}

struct Runner<'a> {
    conn: &'a Connection,
    path: &'a Path,
    statements: Vec<String>,
    copying: &'a mut dyn FnMut(&str),
}

impl Runner<'_> {
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

/// An SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn read_catalog(path: &Path, extensions: &[PathBuf]) -> Result<Catalog, Error> {
    let (db, header) = crate::open(path, extensions)?;
    Catalog::read(&db.conn, header.journal.as_str()).map_err(|e| sqlite_error(path, "read schema", e))
}

/// `PRAGMA foreign_key_check` as violation counts per (table, parent).
fn foreign_key_violations(conn: &Connection) -> rusqlite::Result<BTreeMap<(String, String), i64>> {
    let mut out = BTreeMap::new();
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(2)?)))?;
    for row in rows {
        let (table, parent) = row?;
        *out.entry((key(&table), key(&parent))).or_insert(0) += 1;
    }
    Ok(out)
}

/// `INSERT INTO dest(cols) SELECT exprs FROM src`: DEV's stored columns,
/// each from the source column of the same name (or the hint), rowids kept.
fn copy_rows(
    run: &mut Runner,
    dev: &Table,
    from: &Table,
    from_schema: &str,
    from_name: &str,
    to: &str,
    hints: Option<&Hints>,
) -> Result<(), Error> {
    let mut into = Vec::new();
    let mut select = Vec::new();
    let alias = rowid_alias(dev);
    // A column becoming the rowid may hold NULLs, for which SQLite picks
    // max(rowid) + 1: copied after every explicit value, they never collide.
    let mut nulls_last = String::new();
    for c in dev.columns.iter().filter(|c| c.hidden < 2) {
        let source = match hints {
            None => from.column(&c.name),
            Some(r) => from.column(&r.column_in_target(&dev.name, &c.name)),
        };
        if let Some(s) = source {
            into.push(quote(&c.name));
            select.push(quote(&s.name));
            let becomes_rowid = alias.is_some_and(|a| a.eq_ignore_ascii_case(&c.name));
            if becomes_rowid && !rowid_alias(from).is_some_and(|a| a.eq_ignore_ascii_case(&s.name)) {
                nulls_last = format!(" ORDER BY {} IS NULL", quote(&s.name));
            }
        } else if alias.is_some_and(|a| a.eq_ignore_ascii_case(&c.name)) && !from.without_rowid {
            into.push(quote(&c.name));
            select.push("rowid".to_owned());
        }
    }
    if alias.is_none() && !dev.without_rowid && !from.without_rowid {
        into.push("rowid".to_owned());
        select.push("rowid".to_owned());
    }
    if into.is_empty() {
        return Ok(());
    }
    (run.copying)(&dev.name);
    run.exec(&format!(
        "INSERT INTO main.{to} ({}) SELECT {} FROM {from_schema}.{}{nulls_last}",
        into.join(", "),
        select.join(", "),
        quote(from_name)
    ))
}

/// Makes every change; returns the tables that were rebuilt or created.
fn change(
    run: &mut Runner,
    diff: &Report,
    dev: &Catalog,
    target: &Catalog,
    hints: &Hints,
    same_rows: &BTreeSet<String>,
) -> Result<BTreeSet<String>, Error> {
    let plans: BTreeMap<String, &crate::plan::TablePlan> = diff.plan.iter().map(|p| (key(&p.table), p)).collect();
    let touches_tables = diff
        .plan
        .iter()
        .any(|p| p.strategy != Strategy::Unchanged || p.rows_from == RowsFrom::Dev);
    let same_row = |o: &crate::catalog::Object| {
        dev.objects
            .iter()
            .any(|d| d.kind == o.kind && d.name == o.name && d.tbl_name == o.tbl_name && d.sql == o.sql)
    };

    // Triggers and views go first (they are recreated from DEV's text at the
    // end), so no trigger fires while rows are copied and no view blocks a
    // table's change.
    for o in target.objects.iter().rev() {
        if matches!(o.kind, Kind::Trigger | Kind::View) && (touches_tables || !same_row(o)) {
            let what = if o.kind == Kind::Trigger { "TRIGGER" } else { "VIEW" };
            run.exec(&format!("DROP {what} IF EXISTS main.{}", quote(&o.name)))?;
        }
    }
    // Indexes that differ or are gone from DEV.
    for o in target.objects.iter().filter(|o| o.kind == Kind::Index) {
        if !same_row(o) {
            run.exec(&format!("DROP INDEX IF EXISTS main.{}", quote(&o.name)))?;
        }
    }

    // Virtual tables that differ or are gone: renamed aside (their rows may be copied), dropped at the end.
    let mut old_vtabs = Vec::new();
    for o in target.objects.iter().filter(|o| o.kind == Kind::VirtualTable) {
        if !same_row(o) {
            let aside = format!("{}__refresh_old", o.name);
            run.exec(&format!(
                "ALTER TABLE main.{} RENAME TO {}",
                quote(&o.name),
                quote(&aside)
            ))?;
            old_vtabs.push((o.clone(), aside));
        }
    }

    // Tables only in TARGET.
    for p in diff.plan.iter().filter(|p| p.strategy == Strategy::Drop) {
        if target
            .object(Kind::Table, &p.table)
            .is_some_and(|o| o.kind == Kind::Table)
        {
            run.exec(&format!("DROP TABLE main.{}", quote(&p.table)))?;
            delete_stats(run, &p.table)?;
        }
    }

    let mut rebuilt = BTreeSet::new();
    for object in dev.objects.iter().filter(|o| o.kind == Kind::Table) {
        let Some(table) = dev.table(&object.name) else { continue };
        let Some(sql) = &object.sql else { continue };
        let Some(plan) = plans.get(&key(&table.name)) else {
            continue;
        };
        let old_name = hints.table_in_target(&table.name);
        let old = target.table(&old_name);
        match (&plan.strategy, plan.rows_from) {
            (Strategy::Unchanged, RowsFrom::Target) => {}
            (Strategy::Unchanged, RowsFrom::Dev) if same_rows.contains(&key(&table.name)) => {}
            (_, RowsFrom::Dev) => {
                if let Some(old) = old {
                    run.exec(&format!("DROP TABLE main.{}", quote(&old.name)))?;
                    delete_stats(run, &old.name)?;
                }
                run.exec(sql)?;
                copy_rows(run, table, table, "dev_source", &table.name, &quote(&table.name), None)?;
                copy_sequence_from_dev(run, &table.name)?;
                rebuilt.insert(key(&table.name));
            }
            (Strategy::TextOnly(_), _) => {
                run.set_schema_row("table", &object.name, &object.tbl_name, sql)?;
            }
            (Strategy::Alter(steps), _) => {
                let old = old.ok_or_else(|| Error::Internal(format!("{}: not in TARGET", table.name)))?;
                let mut current = quote(&old.name);
                if !old.name.eq(&table.name) && !key(&old.name).eq(&key(&table.name)) {
                    run.exec(&format!("ALTER TABLE main.{current} RENAME TO {}", quote(&table.name)))?;
                    current = quote(&table.name);
                }
                for step in steps {
                    match step {
                        AlterStep::AddColumn(column) => {
                            // DEV's own definition of the column, verbatim.
                            let definition = crate::parse::column_definition(sql, column)
                                .ok_or_else(|| Error::Internal(format!("{}: no definition of {column}", table.name)))?;
                            run.exec(&format!("ALTER TABLE main.{current} ADD COLUMN {definition}"))?;
                        }
                        AlterStep::DropColumn(_) | AlterStep::RenameColumn { .. } => {
                            run.exec(&format!("ALTER TABLE main.{current} {step}"))?;
                        }
                        // Written with DEV's text below.
                        AlterStep::TextOnly(_) => {}
                    }
                }
                run.set_schema_row("table", &object.name, &object.tbl_name, sql)?;
            }
            (Strategy::Rebuild(_) | Strategy::Create | Strategy::Unchanged | Strategy::Drop, _) => {
                match old {
                    None => run.exec(sql)?,
                    Some(old) => {
                        let aside = format!("{}__refresh_old", old.name);
                        let sequence: Option<i64> = run
                            .conn
                            .query_row("SELECT seq FROM sqlite_sequence WHERE name = ?1", [&old.name], |r| {
                                r.get(0)
                            })
                            .ok();
                        run.exec(&format!(
                            "ALTER TABLE main.{} RENAME TO {}",
                            quote(&old.name),
                            quote(&aside)
                        ))?;
                        run.exec(sql)?;
                        copy_rows(run, table, old, "main", &aside, &quote(&table.name), Some(hints))?;
                        run.exec(&format!("DROP TABLE main.{}", quote(&aside)))?;
                        delete_stats(run, &old.name)?;
                        delete_stats(run, &aside)?;
                        if let (Some(seq), true) = (sequence, table.details.as_ref().is_some_and(|d| d.autoincrement)) {
                            run.exec(&format!(
                                "UPDATE sqlite_sequence SET seq = max(seq, {seq}) WHERE name = {}",
                                literal(&table.name)
                            ))?;
                            run.exec(&format!(
                                "INSERT INTO sqlite_sequence(name, seq) SELECT {name}, {seq} WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = {name})",
                                name = literal(&table.name)
                            ))?;
                        }
                    }
                }
                rebuilt.insert(key(&table.name));
            }
        }
    }

    // Virtual tables: DEV's, with rows carried from the renamed old ones.
    for object in dev.objects.iter().filter(|o| o.kind == Kind::VirtualTable) {
        let Some(sql) = &object.sql else { continue };
        let existing = target
            .objects
            .iter()
            .find(|o| o.kind == Kind::VirtualTable && o.name.eq_ignore_ascii_case(&object.name));
        let content = external_content(sql);
        match existing {
            Some(o) if same_row(o) => {
                if content.as_ref().is_some_and(|c| rebuilt.contains(&key(c)))
                    || content
                        .as_ref()
                        .is_some_and(|c| plans.get(&key(c)).is_some_and(|p| p.strategy != Strategy::Unchanged))
                {
                    run.exec(&format!(
                        "INSERT INTO main.{0}({0}) VALUES ('rebuild')",
                        quote(&object.name)
                    ))?;
                }
            }
            _ => {
                run.exec(sql)?;
                match content {
                    Some(c) if !c.is_empty() => run.exec(&format!(
                        "INSERT INTO main.{0}({0}) VALUES ('rebuild')",
                        quote(&object.name)
                    ))?,
                    Some(_) => {}
                    None => {
                        if let Some((_, aside)) = old_vtabs
                            .iter()
                            .find(|(o, _)| o.name.eq_ignore_ascii_case(&object.name))
                        {
                            let new_cols = vtab_columns(run.conn, &object.name)?;
                            let old_cols = vtab_columns(run.conn, aside)?;
                            let shared: Vec<String> = new_cols
                                .iter()
                                .filter(|c| old_cols.iter().any(|o| o.eq_ignore_ascii_case(c)))
                                .map(|c| quote(c))
                                .collect();
                            if !shared.is_empty() {
                                run.exec(&format!(
                                    "INSERT INTO main.{}(rowid, {cols}) SELECT rowid, {cols} FROM main.{}",
                                    quote(&object.name),
                                    quote(aside),
                                    cols = shared.join(", ")
                                ))?;
                            }
                        }
                    }
                }
            }
        }
    }
    for (_, aside) in &old_vtabs {
        run.exec(&format!("DROP TABLE main.{}", quote(aside)))?;
    }

    // Indexes, then views and triggers, from DEV's text, in DEV's order.
    let now = Catalog::read(run.conn, "").map_err(|e| sqlite_error(run.path, "read schema", e))?;
    let present = |o: &crate::catalog::Object| {
        now.objects
            .iter()
            .any(|n| n.kind == o.kind && n.name == o.name && n.sql == o.sql)
    };
    for o in dev.objects.iter().filter(|o| o.kind == Kind::Index) {
        if let Some(sql) = &o.sql {
            if !present(o) {
                run.exec(&format!("DROP INDEX IF EXISTS main.{}", quote(&o.name)))?;
                run.exec(sql)?;
            }
        }
    }
    let mut pending: Vec<&crate::catalog::Object> = dev
        .objects
        .iter()
        .filter(|o| matches!(o.kind, Kind::View | Kind::Trigger) && !present(o))
        .collect();
    // A view may name a view created after it: retry until nothing moves.
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last_error = None;
        for o in &pending {
            let Some(sql) = &o.sql else { continue };
            match run.conn.execute_batch(sql) {
                Ok(()) => run.statements.push(sql.clone()),
                Err(e) => {
                    last_error = Some(sqlite_error(run.path, "create", e));
                    failed.push(*o);
                }
            }
        }
        if failed.len() == pending.len() {
            return Err(last_error.unwrap_or_else(|| Error::Internal("views and triggers".into())));
        }
        pending = failed;
    }

    // Text-only changes of indexes, views and triggers (e.g. a name's case).
    run.exec(&format!("PRAGMA user_version = {}", dev.settings.user_version))?;
    run.exec(&format!("PRAGMA application_id = {}", dev.settings.application_id))?;
    Ok(rebuilt)
}

/// Tables whose rows come from DEV, whose definition is unchanged, and whose
/// rows are already DEV's (so copying them again would change nothing but bytes).
fn tables_with_devs_rows_already(run: &Runner, diff: &Report) -> Result<BTreeSet<String>, Error> {
    let mut same = BTreeSet::new();
    for p in diff
        .plan
        .iter()
        .filter(|p| p.rows_from == RowsFrom::Dev && p.strategy == Strategy::Unchanged)
    {
        let q = quote(&p.table);
        let differing: i64 = run
            .conn
            .query_row(
                &format!(
                    "SELECT abs((SELECT count(*) FROM main.{q}) - (SELECT count(*) FROM dev_source.{q})) \
                     + (SELECT count(*) FROM (SELECT * FROM main.{q} EXCEPT SELECT * FROM dev_source.{q})) \
                     + (SELECT count(*) FROM (SELECT * FROM dev_source.{q} EXCEPT SELECT * FROM main.{q}))"
                ),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_error(run.path, "compare rows", e))?;
        if differing == 0 {
            same.insert(key(&p.table));
        }
    }
    Ok(same)
}

/// ATTACHes DEV read-only as `dev_source` (outside any transaction).
fn attach_dev(run: &mut Runner, dev_path: &Path) -> Result<(), Error> {
    let header = sqlite_file::Header::read(dev_path).map_err(|e| Error::NotADatabase {
        path: dev_path.to_owned(),
        reason: e.to_string(),
    })?;
    let sidecars = Sidecars::of(dev_path).map_err(|e| Error::Io {
        path: dev_path.to_owned(),
        source: e,
    })?;
    let absolute = std::fs::canonicalize(dev_path).map_err(|e| Error::Io {
        path: dev_path.to_owned(),
        source: e,
    })?;
    // Read-only; an idle WAL file without sidecars is its own whole state
    // (a read-only open would leave a -wal and -shm behind).
    let mode = if header.journal == JournalFlag::Wal && sidecars.wal.is_none() && sidecars.shm.is_none() {
        "immutable=1"
    } else {
        "mode=ro"
    };
    let uri = format!("file:{}?{mode}", crate::uri_path(&absolute));
    run.statements
        .push(format!("ATTACH DATABASE {} AS dev_source", literal(&uri)));
    run.conn
        .execute("ATTACH DATABASE ?1 AS dev_source", [&uri])
        .map_err(|e| sqlite_error(dev_path, "attach", e))?;
    Ok(())
}

/// The `content=` option of an FTS4/FTS5 table: `Some("")` for contentless,
/// `None` when the table keeps its own content.
fn external_content(sql: &str) -> Option<String> {
    let n = crate::parse::normalize(sql);
    if !n.contains("using fts") {
        return None;
    }
    let at = n.find("content=")?;
    if n[..at].ends_with('_') {
        return None; // content_rowid=
    }
    let rest = &n[at + "content=".len()..];
    let value: String = if let Some(r) = rest.strip_prefix('\'') {
        r.split('\'').next().unwrap_or_default().to_owned()
    } else {
        rest.split([',', ')', ' '])
            .next()
            .unwrap_or_default()
            .trim_matches('"')
            .to_owned()
    };
    Some(value)
}

fn vtab_columns(conn: &Connection, name: &str) -> Result<Vec<String>, Error> {
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1)")
        .map_err(|e| Error::Internal(e.to_string()))?;
    let rows = stmt
        .query_map([name], |r| r.get::<_, String>(0))
        .map_err(|e| Error::Internal(e.to_string()))?;
    rows.collect::<rusqlite::Result<_>>()
        .map_err(|e| Error::Internal(e.to_string()))
}

fn delete_stats(run: &mut Runner, table: &str) -> Result<(), Error> {
    for stat in ["sqlite_stat1", "sqlite_stat4"] {
        let exists: bool = run
            .conn
            .query_row("SELECT count(*) > 0 FROM sqlite_schema WHERE name = ?1", [stat], |r| {
                r.get(0)
            })
            .map_err(|e| sqlite_error(run.path, "stat", e))?;
        if exists {
            run.exec(&format!("DELETE FROM main.{stat} WHERE tbl = {}", literal(table)))?;
        }
    }
    Ok(())
}

fn copy_sequence_from_dev(run: &mut Runner, table: &str) -> Result<(), Error> {
    let has = |schema: &str| -> Result<bool, Error> {
        run.conn
            .query_row(
                &format!("SELECT count(*) > 0 FROM {schema}.sqlite_schema WHERE name = 'sqlite_sequence'"),
                [],
                |r| r.get(0),
            )
            .map_err(|e| sqlite_error(run.path, "sqlite_sequence", e))
    };
    if has("dev_source")? && has("main")? {
        run.exec(&format!(
            "DELETE FROM main.sqlite_sequence WHERE name = {}",
            literal(table)
        ))?;
        run.exec(&format!(
            "INSERT INTO main.sqlite_sequence(name, seq) SELECT name, seq FROM dev_source.sqlite_sequence WHERE name = {}",
            literal(table)
        ))?;
    }
    Ok(())
}

/// The result must be DEV's schema, byte for byte, and sound.
fn verify(run: &mut Runner, dev: &Catalog, rebuilt: &BTreeSet<String>, diff: &Report) -> Result<(), Error> {
    let now = Catalog::read(run.conn, "").map_err(|e| sqlite_error(run.path, "read schema", e))?;
    let rows = |c: &Catalog| -> BTreeSet<(Kind, String, String, Option<String>)> {
        c.objects
            .iter()
            .map(|o| (o.kind, o.name.clone(), o.tbl_name.clone(), o.sql.clone()))
            .collect()
    };
    let (want, have) = (rows(dev), rows(&now));
    if want != have {
        let missing: Vec<String> = want
            .difference(&have)
            .map(|o| format!("{} {}", o.0.as_str(), o.1))
            .collect();
        let extra: Vec<String> = have
            .difference(&want)
            .map(|o| format!("{} {}", o.0.as_str(), o.1))
            .collect();
        return Err(Error::Internal(format!(
            "the result is not DEV's schema (missing or different: {}; extra: {})",
            missing.join(", "),
            extra.join(", ")
        )));
    }
    // quick_check where cheap: it reads every page of the table again.
    const QUICK_CHECK_MAX_ROWS: i64 = 100_000;
    for table in rebuilt {
        if let Some(t) = now.tables.get(table) {
            let rows = diff
                .plan
                .iter()
                .find(|p| key(&p.table) == *table)
                .map_or(0, |p| p.rows_touched);
            if rows > QUICK_CHECK_MAX_ROWS {
                run.statements.push(format!(
                    "-- quick_check of {} left out: {rows} rows is not cheap",
                    t.name
                ));
                continue;
            }
            let result: String = run
                .conn
                .query_row(&format!("PRAGMA main.quick_check({})", quote(&t.name)), [], |r| {
                    r.get(0)
                })
                .map_err(|e| sqlite_error(run.path, "quick_check", e))?;
            if result != "ok" {
                return Err(Error::Internal(format!("quick_check of {}: {result}", t.name)));
            }
        }
    }
    Ok(())
}
