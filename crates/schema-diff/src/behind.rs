//! Whether DEV's schema is behind PROD's: PROD's `user_version` is higher,
//! or a migration-history table of PROD's holds versions DEV's lacks. A
//! refresh would then put an older schema on newer data: most often PROD and
//! DEV were named the wrong way round.

use std::collections::BTreeSet;
use std::path::Path;

use rusqlite::Connection;

use crate::catalog::{quote, Catalog, Table};
use crate::{Error, Hints};

/// Columns of a migration-history table that differ from one environment to
/// the next (when, how long, in which batch, a row id): not part of a
/// version's identity.
fn varies(column: &str) -> bool {
    let c = column.to_ascii_lowercase();
    c == "id"
        || [
            "time",
            "date",
            "_at",
            "_on",
            "applied",
            "installed",
            "execution",
            "checksum",
            "batch",
            "success",
            "logs",
            "count",
            "rank",
        ]
        .iter()
        .any(|w| c.contains(w))
}

/// The versions a migration table holds: each row's identifying columns.
fn versions(conn: &Connection, table: &Table, key: &[String]) -> rusqlite::Result<BTreeSet<String>> {
    let list: Vec<String> = key.iter().map(|c| format!("quote({})", quote(c))).collect();
    let sql = format!("SELECT {} FROM {}", list.join(" || ',' || "), quote(&table.name));
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    rows.collect()
}

/// Why DEV (`dev_path`) is behind the data's file (`prod_path`), if it is.
pub fn behind(dev_path: &Path, prod_path: &Path, hints: &Hints) -> Result<Option<String>, Error> {
    let (dev, dev_header) = crate::open_briefly(dev_path)?;
    let (prod, prod_header) = crate::open_briefly(prod_path)?;
    if prod_header.user_version > dev_header.user_version {
        return Ok(Some(format!(
            "{}'s user_version is {}, {}'s only {}",
            prod_path.display(),
            prod_header.user_version,
            dev_path.display(),
            dev_header.user_version
        )));
    }
    let read = |db: &Connection, path: &Path, journal: &str| {
        Catalog::read(db, journal).map_err(|e| crate::sqlite_error(path, "read schema", e))
    };
    let dev_catalog = read(dev.conn(), dev_path, dev_header.journal.as_str())?;
    let prod_catalog = read(prod.conn(), prod_path, prod_header.journal.as_str())?;
    for table in prod_catalog.tables.values() {
        let Some(dev_table) = dev_catalog.table(&table.name) else {
            continue;
        };
        if !crate::plan::is_migration_table(&table.name, hints) {
            continue;
        }
        let key: Vec<String> = table
            .columns
            .iter()
            .filter(|c| dev_table.column(&c.name).is_some() && !varies(&c.name))
            .map(|c| c.name.clone())
            .collect();
        if key.is_empty() {
            continue;
        }
        let prod_versions = versions(prod.conn(), table, &key)
            .map_err(|e| crate::sqlite_error(prod_path, "read migration history", e))?;
        let dev_versions = versions(dev.conn(), dev_table, &key)
            .map_err(|e| crate::sqlite_error(dev_path, "read migration history", e))?;
        let missing: Vec<&String> = prod_versions.difference(&dev_versions).collect();
        if let Some(first) = missing.first() {
            return Ok(Some(format!(
                "{}'s {} holds {} version{} that {}'s lacks (such as {first})",
                prod_path.display(),
                table.name,
                missing.len(),
                if missing.len() == 1 { "" } else { "s" },
                dev_path.display()
            )));
        }
    }
    Ok(None)
}
