//! The data impact, counted on TARGET's real rows with SQL (one scan per
//! question, never a Rust loop over rows): values lost, rows breaking a new
//! constraint, with the condition that singles them out for `skip`.

use super::*;

/// TARGET's rows of `old` as DEV's table `dev` will hold them, as a
/// subquery: DEV's column names (a column DEV adds takes its default), and
/// the rowid as `refresh_dev_row_id` (NULL in a WITHOUT ROWID table).
pub(super) fn rows_as_dev(dev: &Table, old: &Table, hints: &Hints) -> String {
    let mut select: Vec<String> = Vec::new();
    for c in dev.columns.iter().filter(|c| !c.hidden.is_generated()) {
        let value = match old.column(&hints.column_in_target(&dev.name, &c.name)) {
            Some(o) => quote(&o.name),
            None => format!("({})", c.default.as_deref().unwrap_or("NULL")),
        };
        select.push(format!("{value} AS {}", quote(&c.name)));
    }
    let id = if old.without_rowid { "NULL" } else { "rowid" };
    format!(
        "(SELECT {id} AS refresh_dev_row_id, {} FROM {})",
        select.join(", "),
        quote(&old.name)
    )
}

/// A unique key's parts: the key items (quoted column names or verbatim
/// expressions), each with its collation, and a partial index's condition.
pub(super) struct UniqueKey {
    items: Vec<(String, String)>,
    condition: Option<String>,
}

/// The parts of `index`, a unique index of `catalog`'s. `None` where the
/// stored text cannot be cut into them.
pub(super) fn unique_key(index: &crate::catalog::Index, catalog: &Catalog) -> Option<UniqueKey> {
    if index.origin == "c" {
        let sql = catalog.object(Kind::Index, &index.name)?.sql.as_deref()?;
        let parts = crate::parse::index_parts(sql)?;
        if parts.items.len() != index.columns.len() {
            return None;
        }
        let items = parts
            .items
            .into_iter()
            .zip(&index.columns)
            .map(|(item, (_, coll))| (item, coll.clone()))
            .collect();
        Some(UniqueKey {
            items,
            condition: parts.condition,
        })
    } else {
        let items = index
            .columns
            .iter()
            .map(|(name, coll)| name.as_ref().map(|n| (quote(n), coll.clone())))
            .collect::<Option<Vec<_>>>()?;
        Some(UniqueKey { items, condition: None })
    }
}

/// New UNIQUE keys (constraints and unique indexes, partial, on
/// expressions, with DEV's collations) that TARGET's rows break, counted
/// over the rows as DEV's table will hold them. A key TARGET already has
/// (the same items, collations and condition) costs nothing, so an
/// unchanged table with no new unique index is not read at all.
pub(super) fn unique_impact(
    plan: &mut Plan,
    dev: &Table,
    old: &Table,
    catalogs: (&Catalog, &Catalog),
    conn: &Connection,
    hints: &Hints,
) -> rusqlite::Result<()> {
    use crate::parse::normalize;
    let (dev_catalog, target_catalog) = catalogs;
    let same = |a: &UniqueKey, b: &UniqueKey| {
        a.items.len() == b.items.len()
            && a.items
                .iter()
                .zip(&b.items)
                .all(|((x, cx), (y, cy))| normalize(x) == normalize(y) && cx.eq_ignore_ascii_case(cy))
            && a.condition.as_deref().map(normalize) == b.condition.as_deref().map(normalize)
    };
    let had: Vec<_> = old
        .indexes
        .iter()
        .filter(|i| i.unique)
        .filter_map(|i| unique_key(i, target_catalog))
        .map(|UniqueKey { items, condition }| {
            // In DEV's column names, where a hint renamed them.
            let items = items
                .into_iter()
                .map(|(item, coll)| {
                    let named = old.column(item.trim_matches('"')).map(|c| c.name.clone());
                    match named {
                        Some(n) => (quote(&hints.column_in_dev(&old.name, &n)), coll),
                        None => (item, coll),
                    }
                })
                .collect();
            UniqueKey { items, condition }
        })
        .collect();
    let rows = rows_as_dev(dev, old, hints);
    for index in dev.indexes.iter().filter(|i| i.unique) {
        let Some(key) = unique_key(index, dev_catalog) else {
            plan.not_counted.push(format!(
                "{}: UNIQUE index {}: its definition could not be read",
                dev.name, index.name
            ));
            continue;
        };
        if had.iter().any(|h| same(h, &key)) {
            continue; // TARGET's rows already satisfy it
        }
        let UniqueKey { items, condition } = &key;
        let keys: Vec<String> = items.iter().map(|(e, coll)| format!("({e}) COLLATE {coll}")).collect();
        let mut filter: Vec<String> = items.iter().map(|(e, _)| format!("({e}) IS NOT NULL")).collect();
        if let Some(c) = condition {
            filter.push(format!("({c})"));
        }
        let (filter, group) = (filter.join(" AND "), keys.join(", "));
        let duplicates = format!(
            "SELECT refresh_dev_row_id FROM {rows} WHERE {filter} AND refresh_dev_row_id NOT IN \
             (SELECT min(refresh_dev_row_id) FROM {rows} WHERE {filter} GROUP BY {group})"
        );
        let counted = conn
            .query_row(
                &format!(
                    "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {rows} WHERE {filter} GROUP BY {group} HAVING count(*) > 1)"
                ),
                [],
                |r| r.get::<_, i64>(0),
            )
            .and_then(|n| {
                if n == 0 || old.without_rowid {
                    return Ok((n, Vec::new()));
                }
                let mut stmt = conn.prepare(&format!("{duplicates} ORDER BY 1 LIMIT 3"))?;
                let examples = stmt
                    .query_map([], |r| r.get::<_, i64>(0))?
                    .map(|r| r.map(|i| i.to_string()))
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((n, examples))
            });
        // Column names as they are; expressions as DEV wrote them.
        let names: Vec<&str> = items
            .iter()
            .zip(&index.columns)
            .map(|((e, _), (name, _))| match (index.origin.as_str(), name) {
                ("c", _) | (_, None) => e.as_str(),
                (_, Some(n)) => n.as_str(),
            })
            .collect();
        let constraint = format!(
            "UNIQUE ({}){}",
            names.join(", "),
            condition.as_ref().map(|c| format!(" WHERE {c}")).unwrap_or_default()
        );
        match counted {
            Ok((0, _)) => {}
            Ok((n, examples)) => plan.data_impact.push(Impact {
                table: dev.name.clone(),
                column: Some(names.join(", ")),
                constraint: Some(constraint),
                kind: ImpactKind::Violation,
                reason: "new UNIQUE key: these rows repeat an earlier row's key (the first, lowest rowid, stays)"
                    .to_owned(),
                rows: n,
                examples,
                // The first row (lowest rowid) of each group stays.
                skip_condition: (!old.without_rowid).then(|| format!("rowid IN ({duplicates})")),
                unskippable: None,
            }),
            // What DEV's application provides (a collation, a function) is
            // asked for by name, as everywhere: the caller says how to load it.
            Err(e) if needs_extension(&e) => return Err(e),
            Err(e) => plan.not_counted.push(format!("{}: {constraint}: {e}", dev.name)),
        }
    }
    Ok(())
}

/// SQLite's word that something DEV's application registers is missing.
pub(super) fn needs_extension(e: &rusqlite::Error) -> bool {
    let message = e.to_string();
    ["no such collation sequence", "no such module", "no such function"]
        .iter()
        .any(|m| message.contains(m))
}

/// New CHECK constraints: TARGET's rows, seen through DEV's column names
/// (missing columns take DEV's default), for which the constraint is false.
/// The expression is DEV's stored text, verbatim.
pub(super) fn check_impact(plan: &mut Plan, dev: &Table, old: &Table, conn: &Connection, hints: &Hints) {
    use crate::parse::{check_constraints, normalize};
    let (Some(dev_sql), Some(old_sql)) = (&dev.sql, &old.sql) else {
        return;
    };
    let had: Vec<String> = check_constraints(old_sql).iter().map(|(_, e)| normalize(e)).collect();
    let rows = rows_as_dev(dev, old, hints);
    // Generated columns that are new or whose expression changed: evaluate
    // the expression over every row once; an error means some row fails.
    for c in dev.columns.iter().filter(|c| c.hidden.is_generated()) {
        let Some(expr) = crate::parse::generated_expression(dev_sql, &c.name) else {
            continue;
        };
        let before = crate::parse::generated_expression(old_sql, &hints.column_in_target(&dev.name, &c.name));
        if before.as_deref().map(normalize) == Some(normalize(&expr)) {
            continue;
        }
        if let Err(e) = conn.query_row(&format!("SELECT count(({expr})) FROM {rows}"), [], |r| {
            r.get::<_, i64>(0)
        }) {
            plan.data_impact.push(Impact {
                table: dev.name.clone(),
                column: Some(c.name.clone()),
                constraint: Some(format!("GENERATED AS ({expr})")),
                kind: ImpactKind::Violation,
                reason: format!("generated column: its expression fails on TARGET's rows ({e}); the failing rows cannot be counted one by one"),
                rows: -1,
                examples: Vec::new(),
                skip_condition: None,
                unskippable: None,
            });
        }
    }
    for (column, expr) in check_constraints(dev_sql) {
        if had.contains(&normalize(&expr)) {
            continue; // TARGET's rows already satisfy it
        }
        let counted = conn
            .query_row(&format!("SELECT count(*) FROM {rows} WHERE NOT ({expr})"), [], |r| {
                r.get::<_, i64>(0)
            })
            .and_then(|n| {
                let mut stmt = conn.prepare(&format!(
                    "SELECT refresh_dev_row_id FROM {rows} WHERE NOT ({expr}) ORDER BY 1 LIMIT 3"
                ))?;
                let examples = stmt
                    .query_map([], |r| r.get::<_, Option<i64>>(0))?
                    .filter_map(|r| r.ok().flatten().map(|i| i.to_string()))
                    .collect::<Vec<_>>();
                Ok((n, examples))
            });
        match counted {
            Ok((0, _)) => {}
            Ok((n, examples)) => plan.data_impact.push(Impact {
                table: dev.name.clone(),
                column: column.clone(),
                constraint: Some(format!("CHECK ({expr})")),
                kind: ImpactKind::Violation,
                reason: "new CHECK constraint: false for these rows".to_owned(),
                rows: n,
                examples,
                skip_condition: (!old.without_rowid)
                    .then(|| format!("rowid IN (SELECT refresh_dev_row_id FROM {rows} WHERE NOT ({expr}))")),
                unskippable: None,
            }),
            Err(e) => plan.not_counted.push(format!("{}: CHECK ({expr}): {e}", dev.name)),
        }
    }
}

/// Up to three rowids (or primary keys) of TARGET's rows matching `condition`.
pub(super) fn examples(conn: &Connection, table: &Table, condition: &str) -> rusqlite::Result<Vec<String>> {
    let key_expr = if table.without_rowid {
        let pk: Vec<String> = {
            let mut cols: Vec<_> = table.columns.iter().filter(|c| c.pk > 0).collect();
            cols.sort_by_key(|c| c.pk);
            cols.iter().map(|c| format!("quote({})", quote(&c.name))).collect()
        };
        if pk.is_empty() {
            return Ok(Vec::new());
        }
        pk.join(" || ', ' || ")
    } else {
        "rowid".to_owned()
    };
    let sql = format!(
        "SELECT {key_expr} FROM {} WHERE {condition} ORDER BY 1 LIMIT 3",
        quote(&table.name)
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok(match r.get_ref(0)? {
            rusqlite::types::ValueRef::Integer(i) => i.to_string(),
            rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            other => format!("{other:?}"),
        })
    })?;
    rows.collect()
}

/// The data impact of changing TARGET's table `old` into DEV's `dev`.
pub(super) fn impact_of_table(
    out: &mut Vec<Impact>,
    dev: &Table,
    old: &Table,
    target: &Catalog,
    conn: &Connection,
    hints: &Hints,
) -> rusqlite::Result<()> {
    let count = |sql: String| conn.query_row(&sql, [], |r| r.get::<_, i64>(0));
    let t = quote(&old.name);
    let mut rows_cache = None;
    let mut rows = || -> rusqlite::Result<i64> {
        if let Some(n) = rows_cache {
            return Ok(n);
        }
        let n = conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get::<_, i64>(0))?;
        rows_cache = Some(n);
        Ok(n)
    };
    // Columns dropped: their non-NULL values are lost.
    for c in &old.columns {
        let dev_name = hints.column_in_dev(&old.name, &c.name);
        if dev.column(&dev_name).is_none() && !c.hidden.is_generated() {
            let condition = format!("{} IS NOT NULL", quote(&c.name));
            let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
            if n > 0 {
                out.push(Impact {
                    table: dev.name.clone(),
                    column: Some(c.name.clone()),
                    constraint: None,
                    kind: ImpactKind::Lost,
                    reason: "column dropped: DEV has no such column".to_owned(),
                    rows: n,
                    examples: examples(conn, old, &condition)?,
                    skip_condition: None,
                    unskippable: None,
                });
            }
        }
    }
    for c in &dev.columns {
        let old_name = hints.column_in_target(&dev.name, &c.name);
        match old.column(&old_name) {
            None if c.not_null && c.default.is_none() && !c.hidden.is_generated() && c.pk == 0 && rows()? > 0 => out
                .push(Impact {
                    table: dev.name.clone(),
                    column: Some(c.name.clone()),
                    constraint: Some("NOT NULL".to_owned()),
                    kind: ImpactKind::Violation,
                    reason: "new NOT NULL column without a default: every existing row would be NULL".to_owned(),
                    rows: rows()?,
                    examples: examples(conn, old, "1")?,
                    skip_condition: Some("1".to_owned()),
                    unskippable: None,
                }),
            Some(o) if c.not_null && !o.not_null && c.pk == 0 => {
                let condition = format!("{} IS NULL", quote(&o.name));
                let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
                if n > 0 {
                    out.push(Impact {
                        table: dev.name.clone(),
                        column: Some(c.name.clone()),
                        constraint: Some("NOT NULL".to_owned()),
                        kind: ImpactKind::Violation,
                        reason: "now NOT NULL: these rows hold NULL".to_owned(),
                        rows: n,
                        examples: examples(conn, old, &condition)?,
                        skip_condition: Some(condition),
                        unskippable: None,
                    });
                }
            }
            _ => {}
        }
    }
    // New foreign keys whose parent is a table TARGET has: orphans.
    for fk in &dev.foreign_keys {
        if old.foreign_keys.iter().any(|o| same_fk(o, fk)) {
            continue; // violations TARGET already had under the same constraint are carried as they are
        }
        let parent_old = hints.table_in_target(&fk.table);
        let Some(parent) = target.table(&parent_old) else {
            continue;
        };
        let parent_key: Vec<String> = if fk.to.iter().all(Option::is_some) {
            fk.to.iter().flatten().cloned().collect()
        } else {
            let mut pk: Vec<_> = parent.columns.iter().filter(|c| c.pk > 0).collect();
            pk.sort_by_key(|c| c.pk);
            pk.iter().map(|c| c.name.clone()).collect()
        };
        let child: Option<Vec<String>> = fk
            .from
            .iter()
            .map(|n| {
                old.column(&hints.column_in_target(&dev.name, n))
                    .map(|c| c.name.clone())
            })
            .collect();
        let Some(child) = child else { continue };
        if parent_key.len() != child.len() || parent_key.is_empty() {
            continue;
        }
        let not_null: Vec<String> = child.iter().map(|c| format!("c.{} IS NOT NULL", quote(c))).collect();
        let joins: Vec<String> = child
            .iter()
            .zip(&parent_key)
            .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
            .collect();
        let condition = format!(
            "{} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})",
            not_null.join(" AND "),
            quote(&parent.name),
            joins.join(" AND ")
        );
        let n = count(format!("SELECT count(*) FROM {t} c WHERE {condition}"))?;
        if n > 0 {
            out.push(Impact {
                table: dev.name.clone(),
                column: Some(child.join(", ")),
                constraint: Some(format!("FOREIGN KEY ({}) REFERENCES {}", child.join(", "), fk.table)),
                kind: ImpactKind::Violation,
                reason: "new foreign key: these rows point at no parent row".to_owned(),
                rows: n,
                examples: Vec::new(),
                skip_condition: (!old.without_rowid)
                    .then(|| format!("rowid IN (SELECT c.rowid FROM {t} c WHERE {condition})")),
                unskippable: None,
            });
        }
    }
    // A new INTEGER PRIMARY KEY (the rowid) takes integers only.
    if let Some(alias) = rowid_alias(dev) {
        let source = old.column(&hints.column_in_target(&dev.name, alias));
        if let (Some(o), false) = (source, rowid_alias(old).is_some_and(|a| a.eq_ignore_ascii_case(alias))) {
            let col = quote(&o.name);
            let condition = format!(
                "{col} IS NOT NULL AND NOT (typeof({col}) = 'integer' OR (typeof({col}) IN ('text', 'real') AND CAST({col} AS INTEGER) = {col}))"
            );
            let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
            // A violation of the new rowid alias.
            let violation = |reason: &str, rows: i64, examples: Vec<_>, skip_condition: Option<String>| Impact {
                table: dev.name.clone(),
                column: Some(alias.to_owned()),
                constraint: Some("INTEGER PRIMARY KEY".to_owned()),
                kind: ImpactKind::Violation,
                reason: format!("now the INTEGER PRIMARY KEY (the rowid): {reason}"),
                rows,
                examples,
                skip_condition,
                unskippable: None,
            };
            if n > 0 {
                out.push(violation(
                    "these values are not integers",
                    n,
                    examples(conn, old, &condition)?,
                    Some(condition.clone()),
                ));
            }
            // Integer values that repeat: the rowid holds each once.
            let integral = format!("{col} IS NOT NULL AND NOT ({condition})");
            let repeats = format!(
                "{integral} AND rowid NOT IN (SELECT min(rowid) FROM {t} WHERE {integral} GROUP BY CAST({col} AS INTEGER))"
            );
            let n = if old.without_rowid {
                count(format!(
                    "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {t} WHERE {integral} GROUP BY CAST({col} AS INTEGER) HAVING count(*) > 1)"
                ))?
            } else {
                count(format!("SELECT count(*) FROM {t} WHERE {repeats}"))?
            };
            if n > 0 {
                out.push(violation(
                    "these rows repeat an earlier row's value (the first, lowest rowid, stays)",
                    n,
                    if old.without_rowid {
                        Vec::new()
                    } else {
                        examples(conn, old, &repeats)?
                    },
                    (!old.without_rowid).then_some(repeats),
                ));
            }
        }
    }
    if dev.strict && !old.strict {
        for c in &dev.columns {
            let Some(o) = old.column(&hints.column_in_target(&dev.name, &c.name)) else {
                continue;
            };
            let allowed = match affinity(&c.decl_type) {
                "INTEGER" => "'integer'",
                "REAL" => "'integer', 'real'",
                "TEXT" => "'text'",
                _ => continue, // ANY or BLOB accept everything
            };
            let condition = format!(
                "{col} IS NOT NULL AND typeof({col}) NOT IN ({allowed}) AND NOT (typeof({col}) IN ('text', 'integer', 'real') AND typeof(CAST({col} AS {ty})) IN ({allowed}) AND CAST(CAST({col} AS {ty}) AS TEXT) = CAST({col} AS TEXT))",
                col = quote(&o.name),
                ty = affinity(&c.decl_type),
            );
            let n = count(format!("SELECT count(*) FROM {t} WHERE {condition}"))?;
            if n > 0 {
                out.push(Impact {
                    table: dev.name.clone(),
                    column: Some(c.name.clone()),
                    constraint: Some(format!("STRICT {}", c.decl_type)),
                    kind: ImpactKind::Violation,
                    reason: "STRICT table: these values cannot be stored as the declared type".to_owned(),
                    rows: n,
                    examples: examples(conn, old, &condition)?,
                    skip_condition: Some(condition),
                    unskippable: None,
                });
            }
        }
    }
    Ok(())
}
