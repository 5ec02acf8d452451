//! Tables: DEV's definitions onto TARGET's (create, drop, text-only,
//! ALTER steps, rebuild), rows copied where they come from, sequences and
//! statistics kept true.

use super::*;

pub(super) fn read_catalog(path: &Path, reading: &crate::Reading) -> Result<Catalog, Error> {
    let (db, header) = crate::open(path, reading)?;
    Catalog::read(db.conn(), header.journal.as_str()).map_err(|e| sqlite_error(path, "read schema", e))
}

/// `INSERT INTO dest(cols) SELECT exprs FROM src`: DEV's stored columns,
/// each from the source column of the same name (or the hint), rowids kept.
pub(super) fn copy_rows(
    run: &mut TargetWriter,
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
    for c in dev.columns.iter().filter(|c| !c.hidden.is_generated()) {
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
pub(super) fn change(
    run: &mut TargetWriter,
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
pub(super) fn tables_with_devs_rows_already(run: &TargetWriter, diff: &Report) -> Result<BTreeSet<String>, Error> {
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
pub(super) fn attach_dev(run: &mut TargetWriter, dev_path: &Path) -> Result<(), Error> {
    let header = sqlite_file::Header::read(dev_path).map_err(|e| {
        Error::File(sqlite_file::FileError::NotADatabase {
            path: dev_path.to_owned(),
            reason: e.to_string(),
        })
    })?;
    let sidecars = Sidecars::of(dev_path).map_err(|e| crate::io_error(dev_path, "look for sidecars", e))?;
    let absolute = std::fs::canonicalize(dev_path).map_err(|e| crate::io_error(dev_path, "resolve the path", e))?;
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

pub(super) fn delete_stats(run: &mut TargetWriter, table: &str) -> Result<(), Error> {
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

pub(super) fn copy_sequence_from_dev(run: &mut TargetWriter, table: &str) -> Result<(), Error> {
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
