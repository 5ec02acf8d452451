//! How much room applying a plan takes on TARGET's file system, measured on
//! TARGET's own pages (`dbstat`) before anything is written, so a caller can
//! refuse a migration that would fill the disk.

use std::path::Path;

use crate::catalog::Kind;
use crate::diff::ChangeKind;
use crate::plan::Strategy;
use crate::Report;

/// The bytes a migration writes into TARGET's file and its journal, and
/// what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationBytes {
    /// What the new and journaled pages come to (the caller adds its margin).
    pub bytes: u64,
    pub why: String,
}

/// Measures, on TARGET (`target`, whose comparison `report` is), what
/// applying DEV's schema writes: each rebuilt table with its indexes (its
/// pages are written anew), and each index DEV adds or changes on a table
/// that is not rebuilt, counted as large as that table's b-tree (an index
/// entry holds part of a row, and the rowid). Where this SQLite cannot
/// measure (`dbstat` missing), the whole file.
pub fn migration_bytes(target: &Path, report: &Report) -> MigrationBytes {
    let rebuilt: Vec<&str> = report
        .plan
        .iter()
        .filter(|t| matches!(t.strategy, Strategy::Rebuild(_)))
        .map(|t| t.table.as_str())
        .collect();
    let new_indexes: Vec<&str> = report
        .changes
        .iter()
        .filter(|c| c.object == Kind::Index && matches!(c.change, ChangeKind::Added | ChangeKind::Modified))
        .map(|c| c.name.as_str())
        .collect();
    if rebuilt.is_empty() && new_indexes.is_empty() {
        return MigrationBytes {
            bytes: 0,
            why: "no table is rebuilt and no index made".into(),
        };
    }
    match measure(target, &report.dev, &rebuilt, &new_indexes) {
        Ok(bytes) => MigrationBytes {
            bytes,
            why: format!(
                "the journal and new pages of {} rebuilt tables and {} new indexes ({})",
                rebuilt.len(),
                new_indexes.len(),
                mib(bytes)
            ),
        },
        Err(_) => MigrationBytes {
            bytes: std::fs::metadata(target).map(|m| m.len()).unwrap_or(0),
            why: format!(
                "{} rebuilt tables and {} new indexes (dbstat missing: assumed the whole file)",
                rebuilt.len(),
                new_indexes.len()
            ),
        },
    }
}

fn sql(path: &Path) -> impl Fn(rusqlite::Error) -> crate::Error + '_ {
    move |e| crate::sqlite_error(path, "measure with dbstat", e)
}

fn measure(target: &Path, dev: &Path, rebuilt: &[&str], new_indexes: &[&str]) -> Result<u64, crate::Error> {
    // The table each new index is on, as DEV's schema says.
    let mut tables_of_new_indexes: Vec<String> = Vec::new();
    if !new_indexes.is_empty() {
        let (dev_db, _) = crate::open(dev, &crate::Reading::default())?;
        let mut stmt = dev_db
            .conn()
            .prepare("SELECT tbl_name FROM sqlite_schema WHERE type = 'index' AND name = ?1")
            .map_err(sql(dev))?;
        for index in new_indexes {
            let table: Option<String> = stmt.query_row([index], |r| r.get(0)).ok();
            tables_of_new_indexes.extend(table.filter(|t| !rebuilt.iter().any(|r| r.eq_ignore_ascii_case(t))));
        }
    }
    let (db, _) = crate::open(target, &crate::Reading::default())?;
    let mut objects = db
        .conn()
        .prepare("SELECT name FROM sqlite_schema WHERE tbl_name = ?1 COLLATE NOCASE")
        .map_err(sql(target))?;
    let mut pages = db
        .conn()
        .prepare("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1 COLLATE NOCASE")
        .map_err(sql(target))?;
    let mut total = 0u64;
    for table in rebuilt {
        let names: Vec<String> = objects
            .query_map([table], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(sql(target))?;
        for name in names {
            total += pages.query_row([&name], |r| r.get::<_, i64>(0)).map_err(sql(target))? as u64;
        }
    }
    for table in &tables_of_new_indexes {
        total += pages.query_row([table], |r| r.get::<_, i64>(0)).map_err(sql(target))? as u64;
    }
    Ok(total)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}
