//! Hints checked against the two schemas before anything is counted: a
//! rename names a table or column that is there, a glob matches a table. A
//! typo would otherwise pass silently and lose the values it meant to keep.

use std::path::Path;

use crate::catalog::{key, Catalog, Kind};
use crate::{Error, Hints};

/// The names of `catalog`'s tables (virtual ones included).
fn tables(catalog: &Catalog) -> Vec<String> {
    catalog
        .objects
        .iter()
        .filter(|o| matches!(o.kind, Kind::Table | Kind::VirtualTable))
        .map(|o| o.name.clone())
        .collect()
}

/// ` (did you mean NAME?)` for the name among `names` closest to `wanted`,
/// where one is close enough to be a typo.
fn did_you_mean<'a>(wanted: &str, names: impl IntoIterator<Item = &'a String>) -> String {
    let wanted = key(wanted);
    names
        .into_iter()
        .map(|n| (strsim::levenshtein(&wanted, &key(n)), n))
        .filter(|(d, n)| *d <= 2.max(n.chars().count() / 3))
        .min()
        .map(|(_, n)| format!(" (did you mean {n}?)"))
        .unwrap_or_default()
}

/// Checks every hint against DEV's and TARGET's schemas: exit 2 naming the
/// hint, the file and the closest name.
pub(crate) fn check(
    dev: &Catalog,
    target: &Catalog,
    hints: &Hints,
    dev_path: &Path,
    target_path: &Path,
) -> Result<(), Error> {
    let bad = |hint: String, why: String| Error::BadHint { hint, why };
    let (dev_tables, target_tables) = (tables(dev), tables(target));
    let has = |names: &[String], name: &str| names.iter().any(|n| key(n) == key(name));
    for (old, new) in &hints.tables {
        let hint = format!("--rename-table {old}={new}");
        if !has(&target_tables, old) {
            let why = format!(
                "{} has no table {old}{}",
                target_path.display(),
                did_you_mean(old, &target_tables)
            );
            return Err(bad(hint, why));
        }
        if !has(&dev_tables, new) {
            let why = format!(
                "{} has no table {new}{}",
                dev_path.display(),
                did_you_mean(new, &dev_tables)
            );
            return Err(bad(hint, why));
        }
    }
    for (table, old, new) in &hints.columns {
        let hint = format!("--rename {table}.{old}={new}");
        // The hint's table may be named as in DEV or as in TARGET.
        let dev_table = dev.table(table).or_else(|| dev.table(&hints.table_in_dev(table)));
        let target_table = target
            .table(&hints.table_in_target(table))
            .or_else(|| target.table(table));
        let (Some(dev_table), Some(target_table)) = (dev_table, target_table) else {
            let all: Vec<String> = dev_tables.iter().chain(&target_tables).cloned().collect();
            let why = format!("neither file has a table {table}{}", did_you_mean(table, &all));
            return Err(bad(hint, why));
        };
        let columns = |t: &crate::catalog::Table| t.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        if target_table.column(old).is_none() {
            let why = format!(
                "{}'s table {} has no column {old}{}",
                target_path.display(),
                target_table.name,
                did_you_mean(old, &columns(target_table))
            );
            return Err(bad(hint, why));
        }
        if dev_table.column(new).is_none() {
            let why = format!(
                "{}'s table {} has no column {new}{}",
                dev_path.display(),
                dev_table.name,
                did_you_mean(new, &columns(dev_table))
            );
            return Err(bad(hint, why));
        }
    }
    let all: Vec<String> = dev_tables.iter().chain(&target_tables).cloned().collect();
    for (flag, patterns) in [
        ("--dev-data", &hints.dev_data),
        ("--prod-data", &hints.prod_data),
        ("--migration-table", &hints.migration_tables),
    ] {
        for pattern in patterns {
            if !all.iter().any(|t| crate::glob_match(pattern, t)) {
                let why = format!("no table of either file matches it{}", did_you_mean(pattern, &all));
                return Err(bad(format!("{flag} {pattern}"), why));
            }
        }
    }
    Ok(())
}
