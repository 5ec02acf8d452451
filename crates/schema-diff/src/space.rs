//! How much room applying a plan takes on TARGET's file system, measured on
//! TARGET's own pages (`dbstat`) while the plan is made, before anything is
//! written, so a caller can refuse a migration that would fill the disk.
//! Each table's share is in its plan ([`TablePlan::bytes_written`]);
//! [`migration_bytes`] adds them up.

use std::path::Path;

use rusqlite::Connection;

use crate::catalog::{Catalog, Kind};
use crate::diff::{Change, ChangeKind};
use crate::plan::{Strategy, TablePlan};
use crate::{Hints, Report};

/// The bytes a migration writes into TARGET's file and its journal, and
/// what they are.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MigrationBytes {
    /// What the new and journaled pages come to (the caller adds its margin).
    pub bytes: u64,
    pub why: String,
}

/// Fills each table's `bytes_written`, measured on TARGET's open
/// connection: each rebuilt table with its indexes (its pages are written
/// anew), and for each index DEV adds or changes on a table that is not
/// rebuilt, that table's b-tree (an index entry holds part of a row, and the
/// rowid). Where this SQLite cannot measure (`dbstat` missing), the tables
/// that write something get `None`.
pub(crate) fn measure(plan: &mut [TablePlan], changes: &[Change], dev: &Catalog, hints: &Hints, target: &Connection) {
    // How many indexes DEV adds or changes on each table (by DEV's name).
    let mut new_indexes: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    for c in changes.iter().filter(|c| builds_index(c)) {
        if let Some(index) = dev.objects.iter().find(|o| o.kind == Kind::Index && o.name == c.name) {
            *new_indexes.entry(index.tbl_name.to_ascii_lowercase()).or_default() += 1;
        }
    }
    let pages = |name: &str| -> rusqlite::Result<u64> {
        target
            .prepare_cached("SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1 COLLATE NOCASE")?
            .query_row([name], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
    };
    let objects = |table: &str| -> rusqlite::Result<Vec<String>> {
        target
            .prepare_cached("SELECT name FROM sqlite_schema WHERE tbl_name = ?1 COLLATE NOCASE")?
            .query_map([table], |r| r.get(0))?
            .collect()
    };
    for t in plan.iter_mut() {
        let in_target = hints.table_in_target(&t.table);
        let indexes = new_indexes.get(&t.table.to_ascii_lowercase()).copied().unwrap_or(0);
        let measured = match (&t.strategy, indexes) {
            (Strategy::Rebuild(_), _) => {
                objects(&in_target).and_then(|names| names.iter().map(|n| pages(n)).sum::<rusqlite::Result<u64>>())
            }
            (Strategy::Create | Strategy::Drop, _) | (_, 0) => Ok(0),
            (_, indexes) => pages(&in_target).map(|b| b * indexes),
        };
        t.bytes_written = measured.ok();
    }
}

/// Whether `c` is an index DEV adds or changes: one the migration builds.
fn builds_index(c: &Change) -> bool {
    c.object == Kind::Index && matches!(c.change, ChangeKind::Added | ChangeKind::Modified)
}

/// What applying DEV's schema writes into TARGET (`target`, whose
/// comparison `report` is): the sum of the tables' `bytes_written`. Where
/// one could not be measured, the whole file.
pub fn migration_bytes(target: &Path, report: &Report) -> MigrationBytes {
    let count = |f: fn(&TablePlan) -> bool| report.plan.iter().filter(|t| f(t)).count();
    let rebuilt = count(|t| matches!(t.strategy, Strategy::Rebuild(_)));
    let new_indexes = report.changes.iter().filter(|c| builds_index(c)).count();
    if rebuilt == 0 && new_indexes == 0 {
        return MigrationBytes {
            bytes: 0,
            why: "no table is rebuilt and no index made".into(),
        };
    }
    match report.plan.iter().map(|t| t.bytes_written).sum::<Option<u64>>() {
        Some(bytes) => MigrationBytes {
            bytes,
            why: format!(
                "the journal and new pages of {rebuilt} rebuilt tables and {new_indexes} new indexes ({})",
                mib(bytes)
            ),
        },
        None => MigrationBytes {
            bytes: std::fs::metadata(target).map(|m| m.len()).unwrap_or(0),
            why: format!(
                "{rebuilt} rebuilt tables and {new_indexes} new indexes (dbstat missing: assumed the whole file)"
            ),
        },
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}
