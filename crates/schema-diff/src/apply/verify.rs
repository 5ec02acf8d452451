//! The checks before COMMIT: the stored texts equal DEV's, no new
//! foreign-key violation, `quick_check` of what was rebuilt.

use super::*;

/// `PRAGMA foreign_key_check` as violation counts per (table, parent).
pub(super) fn foreign_key_violations(conn: &Connection) -> rusqlite::Result<BTreeMap<(String, String), i64>> {
    let mut out = BTreeMap::new();
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(2)?)))?;
    for row in rows {
        let (table, parent) = row?;
        *out.entry((key(&table), key(&parent))).or_insert(0) += 1;
    }
    Ok(out)
}

/// The result must be DEV's schema, byte for byte, and sound.
pub(super) fn verify(
    run: &mut TargetWriter,
    dev: &Catalog,
    rebuilt: &BTreeSet<String>,
    diff: &Report,
) -> Result<(), Error> {
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
