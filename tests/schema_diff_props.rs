//! Property: for random pairs of schemas with random rows, `--apply` either
//! leaves TARGET with DEV's exact schema and every row of the shared columns
//! kept (or reported as not carried), or refuses and leaves TARGET
//! byte-identical with the violations reported.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use rusqlite::Connection;
use schema_diff::apply::{apply, OnViolation};
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
        match apply(&dev_path, &target_path, &Hints::default(), &[], OnViolation::Abort, None) {
            Ok(report) => {
                prop_assert_eq!(schema_rows(&target_path), schema_rows(&dev_path));
                for old in &target {
                    let non_null = |c: &Column| values[&(old.name.clone(), c.name.clone())].values().filter(|v| *v != "NULL").count() as i64;
                    let lost = |column: Option<&str>, rows: i64| report.diff.data_impact.iter().any(|i| {
                        i.kind == ImpactKind::DataLoss && i.table == old.name && i.column.as_deref() == column && i.rows == rows
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
