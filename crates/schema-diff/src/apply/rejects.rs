//! The rejects database: the rows `--on-violation skip` leaves out, moved
//! out of TARGET with their reason.

use super::*;

/// Creates the rejects database (never replacing a file, with TARGET's
/// permission bits) and ATTACHes it as `rejects`.
pub(super) fn create_rejects(run: &mut TargetWriter, target: &Path, wanted: Option<&Path>) -> Result<PathBuf, Error> {
    use std::os::unix::fs::PermissionsExt;
    let path = match wanted {
        Some(p) => p.to_owned(),
        None => sqlite_file::sidefile::rejects(target, &sqlite_file::fs::utc_stamp(std::time::SystemTime::now())),
    };
    let mode = std::fs::metadata(target)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0o600);
    // Never a link, never over an existing file, never beside a stale sidecar.
    let file = sqlite_file::sidefile::create_new(&path, 0o600)?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| crate::io_error(&path, "set permissions", e))?;
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
pub(super) fn skip_rows(
    run: &mut TargetWriter,
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
