//! `schema-diff` driven as a real binary: one small schema pair per kind of
//! change, asserting the diff, the plan's strategy and the counted impact;
//! and every bad input.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::*;

fn schema_diff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_schema-diff"))
}

/// Builds TARGET from `target_sql` and DEV from `dev_sql`, runs
/// `schema-diff --json ARGS DEV TARGET`, checks that neither file nor folder
/// changed, and returns the exit code and the report.
fn case(target_sql: &str, dev_sql: &str, args: &[&str]) -> (i32, Value) {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(&target, "delete", target_sql);
    make_db(&dev, "wal", dev_sql);
    let before = folder(dir.path());
    let (rc, stdout, stderr) = run(schema_diff().arg("--json").args(args).arg(&dev).arg(&target));
    assert_eq!(folder(dir.path()), before, "schema-diff wrote nothing");
    assert!(rc == 0 || rc == 1, "exit {rc}: {stderr}");
    (rc, serde_json::from_str(&stdout).expect("json"))
}

fn plan_of<'a>(report: &'a Value, table: &str) -> &'a Value {
    report["plan"]
        .as_array()
        .and_then(|p| p.iter().find(|t| t["table"] == table))
        .unwrap_or_else(|| panic!("no plan for {table}: {report:#}"))
}

fn impacts<'a>(report: &'a Value, kind: &str) -> Vec<&'a Value> {
    report["data_impact"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["kind"] == kind).collect())
        .unwrap_or_default()
}

const ROWS: &str = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10)";

#[test]
fn identical_schemas_exit_0() {
    let sql = "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); CREATE INDEX t_b ON t(b);";
    let (rc, r) = case(sql, sql, &[]);
    assert_eq!(rc, 0);
    assert_eq!(r["identical"], true);
    assert_eq!(plan_of(&r, "t")["strategy"], "unchanged");
}

#[test]
fn file_settings_other_than_versions_are_reported_only() {
    let (rc, r) = case("PRAGMA page_size=8192; CREATE TABLE t(a);", "CREATE TABLE t(a);", &[]);
    assert_eq!(rc, 0, "{r:#}");
    let settings: Vec<&Value> = r["settings"].as_array().expect("settings").iter().collect();
    assert!(
        settings
            .iter()
            .any(|s| s["setting"] == "page_size" && s["counts"] == false),
        "{r:#}"
    );
    let (rc, r) = case("CREATE TABLE t(a);", "PRAGMA user_version=2; CREATE TABLE t(a);", &[]);
    assert_eq!(rc, 1);
    assert_eq!(r["settings"][0]["setting"], "user_version");
}

#[test]
fn an_added_column_is_an_alter() {
    let (rc, r) = case(
        &format!("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); {ROWS} INSERT INTO t(b) SELECT 'x' FROM n;"),
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c INTEGER NOT NULL DEFAULT 0 CHECK (c >= 0));",
        &[],
    );
    assert_eq!(rc, 1);
    let p = plan_of(&r, "t");
    assert_eq!(p["strategy"], "alter", "{r:#}");
    assert_eq!(p["reasons"][0], "ADD COLUMN \"c\"");
    assert_eq!(p["rows_touched"], 0, "no row is copied");
    assert!(impacts(&r, "violation").is_empty());
    assert_eq!(r["changes"][0]["columns"][0]["change"], "added");
}

#[test]
fn a_dropped_column_counts_its_values() {
    let (_, r) = case(
        &format!("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, gone TEXT); {ROWS} INSERT INTO t(b, gone) SELECT 'x', CASE WHEN i % 2 THEN 'v' END FROM n;"),
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);",
        &[],
    );
    assert_eq!(plan_of(&r, "t")["strategy"], "alter");
    let loss = impacts(&r, "lost");
    assert_eq!(loss.len(), 1, "{r:#}");
    assert_eq!(loss[0]["column"], "gone");
    assert_eq!(loss[0]["rows"], 5);
    assert_eq!(loss[0]["examples"], serde_json::json!(["1", "3", "5"]));
}

#[test]
fn dropping_an_indexed_column_needs_a_rebuild() {
    let (_, r) = case(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c TEXT); CREATE INDEX t_c ON t(c);",
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);",
        &[],
    );
    let p = plan_of(&r, "t");
    assert_eq!(p["strategy"], "rebuild");
    assert!(p["reasons"][0].as_str().is_some_and(|s| s.contains("indexed")), "{p:#}");
}

#[test]
fn a_type_change_needs_a_rebuild_that_touches_every_row() {
    let (_, r) = case(
        &format!("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); {ROWS} INSERT INTO t(b) SELECT i FROM n;"),
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b INTEGER);",
        &[],
    );
    let p = plan_of(&r, "t");
    assert_eq!(p["strategy"], "rebuild");
    assert_eq!(p["rows_touched"], 10);
}

#[test]
fn loosened_constraints_and_defaults_are_text_only() {
    let (_, r) = case(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT NOT NULL DEFAULT 'x' CHECK (length(b) > 0));",
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT DEFAULT 'y');",
        &[],
    );
    assert_eq!(plan_of(&r, "t")["strategy"], "text_only", "{r:#}");
}

#[test]
fn formatting_only_is_text_only_compared_by_ast() {
    let (rc, r) = case(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)",
        "create table T (\n  \"a\" integer primary key, -- the key\n  b text\n)",
        &[],
    );
    assert_eq!(rc, 1, "the stored text differs");
    assert_eq!(r["changes"][0]["change"], "text_only");
    assert_eq!(r["changes"][0]["compared_by"], "ast");
    assert_eq!(plan_of(&r, "T")["strategy"], "text_only");
}

#[test]
fn what_sqlparser_cannot_read_is_compared_as_text() {
    let (rc, r) = case(
        "CREATE TABLE t(a INTEGER, b TEXT, PRIMARY KEY(a) ON CONFLICT REPLACE)",
        "CREATE TABLE t(a INTEGER, b TEXT, c UNSIGNED BIG INT, PRIMARY KEY(a) ON CONFLICT REPLACE)",
        &[],
    );
    assert_eq!(rc, 1);
    assert_eq!(r["changes"][0]["compared_by"], "text");
    assert_eq!(plan_of(&r, "t")["strategy"], "alter");
}

#[test]
fn new_not_null_constraints_count_the_rows_that_break_them() {
    let (_, r) = case(
        &format!("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); {ROWS} INSERT INTO t(b) SELECT CASE WHEN i <= 3 THEN NULL ELSE 'x' END FROM n;"),
        "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT NOT NULL, c TEXT NOT NULL);",
        &[],
    );
    let v = impacts(&r, "violation");
    let b = v.iter().find(|i| i["column"] == "b").expect("b");
    assert_eq!(b["rows"], 3);
    assert_eq!(b["examples"], serde_json::json!(["1", "2", "3"]));
    let c = v.iter().find(|i| i["column"] == "c").expect("c");
    assert_eq!(c["rows"], 10, "a new NOT NULL column without a default");
    assert_eq!(plan_of(&r, "t")["strategy"], "rebuild");
}

#[test]
fn new_check_constraints_count_the_rows_they_reject() {
    let (_, r) = case(
        &format!("CREATE TABLE t(a INTEGER PRIMARY KEY, qty INTEGER); {ROWS} INSERT INTO t(qty) SELECT i - 3 FROM n;"),
        "CREATE TABLE t(a INTEGER PRIMARY KEY, qty INTEGER CHECK (qty > 0x0), pct INTEGER DEFAULT 150, CHECK (pct <= 100 OR qty ISNULL));",
        &[],
    );
    let v = impacts(&r, "violation");
    let qty = v.iter().find(|i| i["column"] == "qty").expect("qty");
    assert_eq!(qty["rows"], 3, "-2, -1 and 0 (the hex literal kept verbatim)");
    assert_eq!(qty["examples"], serde_json::json!(["1", "2", "3"]));
    let pct = v
        .iter()
        .find(|i| i["constraint"].as_str().is_some_and(|c| c.contains("pct")))
        .expect("pct");
    assert_eq!(pct["rows"], 10, "the new column's default 150 breaks it on every row");
}

#[test]
fn new_unique_keys_count_duplicates_with_the_new_collation() {
    let (_, r) = case(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, email TEXT); INSERT INTO t(email) VALUES ('a@x'), ('A@x'), ('b@x'), ('b@x'), ('b@x'), (NULL), (NULL);",
        "CREATE TABLE t(a INTEGER PRIMARY KEY, email TEXT UNIQUE COLLATE NOCASE);",
        &[],
    );
    let v = impacts(&r, "violation");
    assert_eq!(v.len(), 1, "{r:#}");
    assert_eq!(
        v[0]["rows"], 3,
        "one extra 'a@x' (NOCASE) and two extra 'b@x'; NULLs never collide"
    );
}

#[test]
fn new_foreign_keys_count_orphans() {
    let (_, r) = case(
        "CREATE TABLE p(id INTEGER PRIMARY KEY); INSERT INTO p VALUES (1), (2);
         CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER); INSERT INTO c(p_id) VALUES (1), (2), (3), (NULL), (9);",
        "CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));",
        &[],
    );
    let v = impacts(&r, "violation");
    assert_eq!(v.len(), 1, "{r:#}");
    assert_eq!(v[0]["rows"], 2);
    assert_eq!(plan_of(&r, "c")["strategy"], "rebuild");
}

#[test]
fn strict_tables_count_values_that_cannot_be_stored() {
    let (_, r) = case(
        "CREATE TABLE t(a INTEGER PRIMARY KEY, n); INSERT INTO t(n) VALUES (1), ('2'), ('three'), (4.5), (NULL);",
        "CREATE TABLE t(a INTEGER PRIMARY KEY, n INTEGER) STRICT;",
        &[],
    );
    let v = impacts(&r, "violation");
    assert_eq!(v.len(), 1, "{r:#}");
    assert_eq!(v[0]["rows"], 2, "'three' and 4.5; '2' converts");
}

#[test]
fn tables_only_in_one_file() {
    let (_, r) = case(
        &format!("CREATE TABLE old_stuff(x); {ROWS} INSERT INTO old_stuff SELECT i FROM n;"),
        "CREATE TABLE coupons(code TEXT PRIMARY KEY); INSERT INTO coupons VALUES ('WELCOME');",
        &[],
    );
    assert_eq!(plan_of(&r, "old_stuff")["strategy"], "drop");
    assert_eq!(impacts(&r, "lost")[0]["rows"], 10);
    let p = plan_of(&r, "coupons");
    assert_eq!(p["strategy"], "create");
    assert_eq!(p["rows_from"], "dev");
}

#[test]
fn migration_tables_take_devs_rows() {
    let (_, r) = case(
        "CREATE TABLE Schema_Migrations(version TEXT PRIMARY KEY); INSERT INTO Schema_Migrations VALUES ('1'), ('2');",
        "CREATE TABLE Schema_Migrations(version TEXT PRIMARY KEY); INSERT INTO Schema_Migrations VALUES ('1'), ('2'), ('3');",
        &[],
    );
    let p = plan_of(&r, "Schema_Migrations");
    assert_eq!(p["rows_from"], "dev");
    assert!(p["rows_from_reason"].as_str().is_some_and(|s| s.contains("migration")));
    assert_eq!(impacts(&r, "replaced")[0]["rows"], 2);
}

#[test]
fn rename_hints_keep_values_and_possible_renames_are_suggested() {
    let target = "CREATE TABLE \"order items\"(id INTEGER PRIMARY KEY, \"old col\" TEXT); INSERT INTO \"order items\"(\"old col\") VALUES ('kept');";
    let dev = "CREATE TABLE \"order items\"(id INTEGER PRIMARY KEY, \"new col\" TEXT);";
    let (_, r) = case(target, dev, &[]);
    assert_eq!(impacts(&r, "lost")[0]["rows"], 1);
    let hint = r["possible_renames"][0].as_str().expect("a hint");
    assert!(
        hint.contains("--rename '\"order items\".\"old col\"=\"new col\"'"),
        "{hint}"
    );

    let (_, r) = case(target, dev, &["--rename", "\"order items\".\"old col\"=\"new col\""]);
    assert!(impacts(&r, "lost").is_empty(), "{r:#}");
    let p = plan_of(&r, "order items");
    assert_eq!(p["strategy"], "alter");
    assert_eq!(p["reasons"][0], "RENAME COLUMN \"old col\" TO \"new col\"");
}

#[test]
fn quoted_keyword_and_unicode_names_work() {
    let (rc, r) = case(
        "CREATE TABLE \"group\"(\"select\" TEXT, \"naïve ü\" INT); INSERT INTO \"group\" VALUES ('x', 1);",
        "CREATE TABLE \"GROUP\"(\"select\" TEXT, \"naïve ü\" INT, \"from\" TEXT);",
        &[],
    );
    assert_eq!(rc, 1);
    assert_eq!(plan_of(&r, "GROUP")["strategy"], "alter", "{r:#}");
}

#[test]
fn human_report_has_a_summary_a_diff_and_the_plan() {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(
        &target,
        "delete",
        "CREATE TABLE t(a INTEGER PRIMARY KEY, gone TEXT); INSERT INTO t VALUES (1, 'v');",
    );
    make_db(&dev, "delete", "CREATE TABLE t(a INTEGER PRIMARY KEY, added TEXT);");
    let (rc, out, _) = run(schema_diff().arg(&dev).arg(&target));
    assert_eq!(rc, 1);
    assert!(out.starts_with("schema-diff: schemas differ"), "{out}");
    assert!(
        out.contains("-CREATE TABLE t(a INTEGER PRIMARY KEY, gone TEXT)"),
        "{out}"
    );
    assert!(
        out.contains("+CREATE TABLE t(a INTEGER PRIMARY KEY, added TEXT)"),
        "{out}"
    );
    assert!(out.contains("\nplan\n") && out.contains("lost"), "{out}");
    assert!(!out.contains('\x1b'), "no colour when piped");
}

fn assert_bad_input(dir: &Path, dev: &Path, target: &Path, words: &[&str]) {
    let before = folder(dir);
    let (rc, stdout, stderr) = run(schema_diff().arg(dev).arg(target));
    assert_eq!(rc, 2, "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for w in words {
        assert!(stderr.contains(w), "{w}: {stderr}");
    }
    assert_eq!(folder(dir), before, "nothing written, no sidecar left");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = tempdir();
    let good = dir.path().join("good.db");
    make_db(
        &good,
        "wal",
        "CREATE TABLE t(a); INSERT INTO t VALUES (zeroblob(9000));",
    );
    let text = dir.path().join("text.db");
    std::fs::write(&text, "hello").expect("write");
    assert_bad_input(dir.path(), &text, &good, &["text.db", "not an SQLite database"]);
    assert_bad_input(
        dir.path(),
        &good,
        &dir.path().join("missing.db"),
        &["missing.db", "no such file"],
    );
    let bytes = std::fs::read(&good).expect("read");
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..5000]).expect("write");
    assert_bad_input(dir.path(), &good, &truncated, &["truncated.db", "truncated"]);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    assert_bad_input(dir.path(), &sub, &good, &["sub", "directory"]);
    assert_bad_input(dir.path(), &good, &good, &["same file"]);
    let utf16 = dir.path().join("utf16.db");
    make_db(&utf16, "delete", "PRAGMA encoding='UTF-16le'; CREATE TABLE t(a);");
    assert_bad_input(dir.path(), &good, &utf16, &["UTF-16le", "encodings"]);
}

#[test]
fn what_devs_application_provides_is_named_with_the_flag_to_load_it() {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    // DEV's application registers a collation `by_length` and uses it.
    let (rc, _, err) = run(Command::new("python3").arg("-c").arg(format!(
        "import sqlite3\n\
         c = sqlite3.connect({dev:?})\n\
         c.create_collation('by_length', lambda a, b: len(a) - len(b))\n\
         c.execute('CREATE TABLE t(a TEXT UNIQUE COLLATE by_length)')\n\
         c.commit()",
        dev = dev.display().to_string()
    )));
    assert_eq!(rc, 0, "{err}");
    make_db(
        &target,
        "delete",
        "CREATE TABLE t(a TEXT); INSERT INTO t VALUES ('x'), ('y');",
    );
    assert_bad_input(dir.path(), &dev, &target, &["by_length", "--load-extension"]);

    let before = folder(dir.path());
    let (rc, _, stderr) = run(schema_diff()
        .args(["--load-extension", "/no/such/extension.so"])
        .arg(&dev)
        .arg(&target));
    assert_eq!(rc, 2, "{stderr}");
    assert!(stderr.contains("/no/such/extension.so"), "{stderr}");
    assert_eq!(folder(dir.path()), before);
}

#[test]
fn generated_columns_whose_expression_fails_are_violations() {
    let (_, r) = case(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, doc TEXT); INSERT INTO t(doc) VALUES ('{\"x\": 1}'), ('not json');",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, doc TEXT, x INT GENERATED ALWAYS AS (json_extract(doc, '$.x')) STORED);",
        &[],
    );
    let v = impacts(&r, "violation");
    assert_eq!(v.len(), 1, "{r:#}");
    assert_eq!(v[0]["column"], "x");
    assert!(v[0]["reason"].as_str().is_some_and(|s| s.contains("JSON")), "{r:#}");
    let (_, r) = case(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, doc TEXT); INSERT INTO t(doc) VALUES ('{\"x\": 1}');",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, doc TEXT, x INT GENERATED ALWAYS AS (json_extract(doc, '$.x')) STORED);",
        &[],
    );
    assert!(impacts(&r, "violation").is_empty(), "{r:#}");
}

#[test]
fn each_table_plan_carries_the_bytes_its_migration_writes() {
    let rows = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)";
    let (_, report) = case(
        &format!(
            "CREATE TABLE a(id INTEGER PRIMARY KEY, s TEXT); CREATE TABLE b(id INTEGER PRIMARY KEY, s TEXT);
             CREATE TABLE c(id INTEGER PRIMARY KEY, s TEXT);
             {rows} INSERT INTO a(s) SELECT hex(randomblob(40)) FROM n;
             {rows} INSERT INTO b(s) SELECT hex(randomblob(40)) FROM n;
             {rows} INSERT INTO c(s) SELECT hex(randomblob(40)) FROM n;"
        ),
        // a: rebuilt (a new CHECK); b: a new index; c: unchanged.
        "CREATE TABLE a(id INTEGER PRIMARY KEY, s TEXT CHECK (length(s) > 0));
         CREATE TABLE b(id INTEGER PRIMARY KEY, s TEXT); CREATE INDEX b_s ON b(s);
         CREATE TABLE c(id INTEGER PRIMARY KEY, s TEXT);",
        &[],
    );
    let bytes = |t: &str| plan_of(&report, t)["bytes_written"].as_u64().expect("bytes_written");
    assert_eq!(plan_of(&report, "a")["strategy"], "rebuild");
    // 2,000 rows of 80 hex characters: well over 160 KB of pages each.
    assert!(bytes("a") > 160_000, "{report:#}");
    assert!(bytes("b") > 160_000, "{report:#}");
    assert_eq!(bytes("c"), 0);
}
