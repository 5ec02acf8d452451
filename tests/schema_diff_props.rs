//! Property: for random pairs of schemas with random rows, `--apply` either
//! leaves TARGET with DEV's exact schema and every row of the shared columns
//! kept (or reported as not carried), or refuses and leaves TARGET
//! byte-identical with the violations reported.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use rusqlite::Connection;
use schema_diff::apply::{apply, ApplyOptions, OnViolation};
use schema_diff::plan::ImpactKind;
use schema_diff::Hints;
use support::*;

const TYPES: [&str; 5] = ["INTEGER", "TEXT", "REAL", "BLOB", ""];

#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: &'static str,
    not_null: bool,
    default: Option<i64>,
}

#[derive(Debug, Clone)]
struct Table {
    name: String,
    columns: Vec<Column>,
    index: bool,
    view: bool,
    trigger: bool,
}

fn column(i: usize) -> impl Strategy<Value = Column> {
    (0..TYPES.len(), any::<bool>(), proptest::option::of(0i64..5)).prop_map(move |(t, not_null, default)| Column {
        name: format!("c{i}"),
        ty: TYPES[t],
        // NOT NULL only with a default, as a sound schema would have it.
        not_null: not_null && default.is_some(),
        default,
    })
}

fn table(i: usize) -> impl Strategy<Value = Table> {
    (
        proptest::sample::subsequence((0..6).collect::<Vec<usize>>(), 1..5),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(move |(picked, index, view, trigger)| {
            let columns: Vec<_> = picked.into_iter().map(column).collect();
            (columns, Just(index), Just(view), Just(trigger)).prop_map(move |(columns, index, view, trigger)| Table {
                name: format!("t{i}"),
                columns,
                index,
                view,
                trigger,
            })
        })
}

fn schema() -> impl Strategy<Value = Vec<Table>> {
    proptest::sample::subsequence(vec![0usize, 1, 2], 1..=3)
        .prop_flat_map(|ids| ids.into_iter().map(table).collect::<Vec<_>>())
}

fn ddl(tables: &[Table]) -> String {
    let mut sql = String::new();
    for t in tables {
        let cols: Vec<String> = std::iter::once("id INTEGER PRIMARY KEY".to_owned())
            .chain(t.columns.iter().map(|c| {
                let mut s = format!("{} {}", c.name, c.ty);
                if c.not_null {
                    s.push_str(" NOT NULL");
                }
                if let Some(d) = c.default {
                    s.push_str(&format!(" DEFAULT {d}"));
                }
                s
            }))
            .collect();
        sql.push_str(&format!("CREATE TABLE {}({});\n", t.name, cols.join(", ")));
        let first = &t.columns[0].name;
        if t.index {
            sql.push_str(&format!("CREATE INDEX {0}_idx ON {0}({first});\n", t.name));
        }
        if t.view {
            sql.push_str(&format!("CREATE VIEW {0}_v AS SELECT id, {first} FROM {0};\n", t.name));
        }
        if t.trigger {
            sql.push_str(&format!(
                "CREATE TRIGGER {0}_tr AFTER DELETE ON {0} BEGIN SELECT 1; END;\n",
                t.name
            ));
        }
    }
    sql
}

/// Rows: small integers, non-numeric text, NULL and blobs.
fn rows(tables: &[Table], seed: u64) -> String {
    let mut sql = String::new();
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for t in tables {
        for _ in 0..(next() % 6) {
            let values: Vec<String> = t
                .columns
                .iter()
                .map(|c| match (next() % 4, c.not_null) {
                    (0, false) => "NULL".to_owned(),
                    (0 | 1, _) => (next() % 100).to_string(),
                    (2, _) => format!("'v{}x'", next() % 100),
                    _ => format!("x'{:02x}00'", next() % 256),
                })
                .collect();
            let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            sql.push_str(&format!(
                "INSERT INTO {}({}) VALUES ({});\n",
                t.name,
                names.join(", "),
                values.join(", ")
            ));
        }
    }
    sql
}

fn dump(path: &Path, table: &str, column: &str) -> BTreeMap<i64, String> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare(&format!("SELECT id, quote({column}) FROM {table}"))
        .expect("prepare");
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn apply_keeps_or_reports_every_row(target in schema(), dev in schema(), seed in any::<u64>()) {
        let dir = tempdir();
        let (dev_path, target_path) = (dir.path().join("dev.db"), dir.path().join("target.db"));
        make_db(&target_path, "delete", &(ddl(&target) + &rows(&target, seed)));
        make_db(&dev_path, "delete", &ddl(&dev));
        let before = std::fs::read(&target_path).expect("read");
        let mut values = BTreeMap::new();
        for t in &target {
            for c in &t.columns {
                values.insert((t.name.clone(), c.name.clone()), dump(&target_path, &t.name, &c.name));
            }
        }
        let count = |path: &Path, table: &str| -> i64 {
            Connection::open(path).expect("open")
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)).expect("count")
        };
        let counts: BTreeMap<String, i64> = target.iter().map(|t| (t.name.clone(), count(&target_path, &t.name))).collect();
        match apply(&dev_path, &target_path, &ApplyOptions::default()) {
            Ok(report) => {
                prop_assert_eq!(schema_rows(&target_path), schema_rows(&dev_path));
                for old in &target {
                    let non_null = |c: &Column| values[&(old.name.clone(), c.name.clone())].values().filter(|v| *v != "NULL").count() as i64;
                    let lost = |column: Option<&str>, rows: i64| report.diff.data_impact.iter().any(|i| {
                        i.kind == ImpactKind::Lost && i.table == old.name && i.column.as_deref() == column && i.rows == rows
                    });
                    let Some(t) = dev.iter().find(|d| d.name == old.name) else {
                        // A dropped table: its rows are reported.
                        if counts[&old.name] > 0 {
                            prop_assert!(lost(None, counts[&old.name]), "dropped {} reported", old.name);
                        }
                        continue;
                    };
                    prop_assert_eq!(count(&target_path, &t.name), counts[&old.name], "every row of {} kept", t.name);
                    for oc in &old.columns {
                        let was = &values[&(old.name.clone(), oc.name.clone())];
                        match t.columns.iter().find(|c| c.name == oc.name) {
                            Some(c) if c.ty == oc.ty => {
                                prop_assert_eq!(&dump(&target_path, &t.name, &c.name), was, "{}.{} values", t.name, c.name);
                            }
                            Some(c) => {
                                let now = dump(&target_path, &t.name, &c.name);
                                let nulls = |m: &BTreeMap<i64, String>| m.iter().filter(|(_, v)| *v == "NULL").map(|(k, _)| *k).collect::<Vec<_>>();
                                prop_assert_eq!(nulls(&now), nulls(was), "{}.{} converted, NULLs kept", t.name, c.name);
                            }
                            None => {
                                let n = non_null(oc);
                                if n > 0 {
                                    prop_assert!(lost(Some(oc.name.as_str()), n), "dropped {}.{} reported", old.name, oc.name);
                                }
                            }
                        }
                    }
                }
            }
            Err(e) => {
                prop_assert_eq!(std::fs::read(&target_path).expect("read"), before, "refused: {}", e);
                prop_assert_eq!(e.exit(), exit_code::Exit::Refused, "only refusals to protect data: {}", e);
            }
        }
    }
}

/// One column's constraint in DEV's version of the table.
const COLUMN_RULES: [&str; 7] = [
    "",
    " NOT NULL DEFAULT 0",
    " NOT NULL",
    " CHECK ({x} > 0)",
    " UNIQUE",
    " COLLATE NOCASE UNIQUE",
    " DEFAULT 7",
];

/// A unique index DEV adds (`{x}`, `{y}`: two of the columns).
const INDEXES: [&str; 6] = [
    "",
    "CREATE UNIQUE INDEX u ON t({x});",
    "CREATE UNIQUE INDEX u ON t(lower({x}));",
    "CREATE UNIQUE INDEX u ON t({x}) WHERE {y} > 0;",
    "CREATE UNIQUE INDEX u ON t({x}, {y});",
    "CREATE UNIQUE INDEX u ON t({x} COLLATE NOCASE DESC);",
];

/// The table's shape in DEV: a plain rowid table, `a` as the INTEGER
/// PRIMARY KEY, STRICT, or WITHOUT ROWID.
const SHAPES: [&str; 4] = ["plain", "a_is_rowid", "strict", "without_rowid"];

/// DEV's schema for one table `t(id, a, b, c)`: rules per column, an index, a shape.
fn constrained_dev(rules: &[usize; 3], index: usize, shape: usize) -> String {
    let names = ["a", "b", "c"];
    let strict = SHAPES[shape] == "strict";
    let mut cols: Vec<String> = Vec::new();
    match SHAPES[shape] {
        "a_is_rowid" => {}
        "without_rowid" => cols.push("id INTEGER NOT NULL PRIMARY KEY".into()),
        _ => cols.push("id INTEGER PRIMARY KEY".into()),
    }
    for (i, n) in names.iter().enumerate() {
        let ty = match (SHAPES[shape], i) {
            ("a_is_rowid", 0) => "INTEGER PRIMARY KEY".to_owned(),
            (_, _) if strict => ["INTEGER", "TEXT", "ANY"][i].to_owned(),
            _ => ["INTEGER", "TEXT", ""][i].to_owned(),
        };
        let rule = if SHAPES[shape] == "a_is_rowid" && i == 0 {
            String::new()
        } else {
            COLUMN_RULES[rules[i]].replace("{x}", n)
        };
        cols.push(format!("{n} {ty}{rule}"));
    }
    let tail = match SHAPES[shape] {
        "strict" => " STRICT",
        "without_rowid" => " WITHOUT ROWID",
        _ => "",
    };
    let (x, y) = (names[index % 3], names[(index + 1) % 3]);
    format!(
        "CREATE TABLE t({}){tail};\n{}",
        cols.join(", "),
        INDEXES[index].replace("{x}", x).replace("{y}", y)
    )
}

/// TARGET's `t(id, a, b, c)` with rows from a small domain, so duplicates,
/// NULLs, case twins and non-integers are common.
fn constrained_target(values: &[[usize; 3]]) -> String {
    const DOMAIN: [&str; 9] = ["NULL", "0", "1", "2", "-1", "'x'", "'X'", "'y'", "1.5"];
    let mut sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, a, b, c);\n".to_owned();
    for row in values {
        let v: Vec<&str> = row.iter().map(|&i| DOMAIN[i % DOMAIN.len()]).collect();
        sql.push_str(&format!("INSERT INTO t(a, b, c) VALUES ({});\n", v.join(", ")));
    }
    sql
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// What `plan` predicts is what `apply` does: the same verdict under
    /// `abort` and `skip`, and under `skip` exactly the rows it counted left
    /// out (a row breaking two constraints is left out once).
    #[test]
    fn plan_predicts_apply(
        rules in proptest::array::uniform3(0..COLUMN_RULES.len()),
        index in 0..INDEXES.len(),
        shape in 0..SHAPES.len(),
        values in proptest::collection::vec(proptest::array::uniform3(0usize..9), 0..12),
    ) {
        let dir = tempdir();
        let dev = dir.path().join("dev.db");
        let dev_sql = constrained_dev(&rules, index, shape);
        make_db(&dev, "delete", &dev_sql);
        let target_sql = constrained_target(&values);
        let report = {
            let target = dir.path().join("plan.db");
            make_db(&target, "delete", &target_sql);
            schema_diff::compare(&dev, &target, &Hints::default(), &schema_diff::Reading::default()).expect("compare")
        };
        let violations: Vec<_> = report.data_impact.iter().filter(|i| i.kind == ImpactKind::Violation).collect();
        for on_violation in [OnViolation::Abort, OnViolation::Skip] {
            let target = dir.path().join(format!("{on_violation:?}.db"));
            make_db(&target, "delete", &target_sql);
            let before = std::fs::read(&target).expect("read");
            let predicted = report.blocking(on_violation);
            let rejects = dir.path().join(format!("{on_violation:?}.rejects"));
            let result = apply(
                &dev,
                &target,
                &ApplyOptions {
                    on_violation,
                    rejects: Some(rejects.clone()),
                    subset: false,
                    ..ApplyOptions::default()
                },
            );
            let context = format!("{dev_sql}\n{target_sql}\n{on_violation:?}: plan {predicted:?}");
            match result {
                Ok(applied) => {
                    prop_assert!(predicted.is_none(), "{}: applied", context);
                    prop_assert_eq!(schema_rows(&target), schema_rows(&dev), "{}", context);
                    let skipped: i64 = applied.skipped.iter().map(|s| s.rows).sum();
                    let left = Connection::open(&target).expect("open")
                        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0)).expect("count");
                    prop_assert_eq!(left + skipped, values.len() as i64, "{}: every row kept or left out", context);
                    let counted: i64 = violations.iter().map(|i| i.rows).sum();
                    if violations.len() == 1 {
                        prop_assert_eq!(skipped, counted, "{}: left out what plan counted", context);
                    } else {
                        prop_assert!(skipped <= counted, "{}: {} left out, {} counted", context, skipped, counted);
                        prop_assert_eq!(skipped == 0, counted == 0, "{}", context);
                    }
                }
                Err(e) => {
                    prop_assert!(predicted.is_some(), "{}: refused unpredicted: {}", context, e);
                    prop_assert_eq!(e.exit(), exit_code::Exit::Refused, "{}: {}", context, e);
                    prop_assert_eq!(std::fs::read(&target).expect("read"), before, "{}", context);
                }
            }
        }
    }
}
