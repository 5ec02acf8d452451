//! `schema-diff --apply` on real files: DEV's exact schema, TARGET's rows.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::Connection;
use support::*;

fn schema_diff() -> Command {
    Command::new(env!("CARGO_BIN_EXE_schema-diff"))
}

struct Pair {
    _dir: tempfile::TempDir,
    dev: PathBuf,
    target: PathBuf,
}

fn pair(target_sql: &str, dev_sql: &str) -> Pair {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(&target, "delete", target_sql);
    make_db(&dev, "delete", dev_sql);
    Pair { _dir: dir, dev, target }
}

fn apply(p: &Pair, args: &[&str]) -> (i32, String, String) {
    run(schema_diff().arg("--apply").args(args).arg(&p.dev).arg(&p.target))
}

fn strings(path: &Path, sql: &str) -> Vec<String> {
    let conn = Connection::open(path).expect("open");
    let mut stmt = conn.prepare(sql).expect(sql);
    stmt.query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

/// Applies, then asserts the result's schema rows equal DEV's byte for byte
/// and a second apply changes no byte.
fn assert_applied(p: &Pair) {
    let (rc, out, err) = apply(p, &[]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(
        schema_rows(&p.target),
        schema_rows(&p.dev),
        "DEV's schema, byte for byte"
    );
    assert_eq!(integrity(&p.target), "ok");
    let before = std::fs::read(&p.target).expect("read");
    let (rc, out, _) = apply(p, &[]);
    assert_eq!(rc, 0);
    assert!(out.contains("nothing to do"), "{out}");
    assert_eq!(std::fs::read(&p.target).expect("read"), before, "idempotent");
}

#[test]
fn the_shop_fixtures_migrate_with_every_prod_row() {
    let dir = tempdir();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(
        &target,
        "wal",
        &std::fs::read_to_string(fixtures.join("prod.sql")).expect("prod.sql"),
    );
    make_db(
        &dev,
        "wal",
        &std::fs::read_to_string(fixtures.join("dev.sql")).expect("dev.sql"),
    );
    let p = Pair { _dir: dir, dev, target };
    let orders_before = query_i64(&p.target, "SELECT count(*) FROM order_items");
    assert_applied(&p);
    assert_eq!(query_i64(&p.target, "SELECT count(*) FROM customers"), 600);
    assert_eq!(query_i64(&p.target, "SELECT count(*) FROM order_items"), orders_before);
    assert_eq!(
        query_i64(&p.target, "SELECT count(*) FROM coupons"),
        3,
        "DEV's seed rows"
    );
    assert_eq!(
        query_i64(&p.target, "SELECT count(*) FROM schema_migrations"),
        4,
        "DEV's migrations"
    );
    assert_eq!(query_i64(&p.target, "PRAGMA user_version"), 4);
    assert_eq!(
        query_i64(
            &p.target,
            "SELECT count(*) FROM products_fts WHERE products_fts MATCH 'mug'"
        ),
        15
    );
    assert_eq!(std::fs::read(&p.target).expect("read")[18], 2, "DEV's WAL mode");
}

#[test]
fn unchanged_tables_keep_their_pages_and_an_added_column_writes_little() {
    let p = pair(
        "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB); CREATE INDEX big_b ON big(length(b));
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 27000)
         INSERT INTO big(b) SELECT randomblob(4000) FROM n;
         CREATE TABLE small(x);",
        "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB); CREATE INDEX big_b ON big(length(b));
         CREATE TABLE small(x, y TEXT DEFAULT 'new');",
    );
    // The other way round: `big` unchanged, `small` altered; then `big` gets a column.
    let roots = |path: &Path| strings(path, "SELECT name || '=' || rootpage FROM sqlite_schema ORDER BY name");
    let before = roots(&p.target);
    assert_applied(&p);
    assert_eq!(roots(&p.target), before, "no table or index moved");

    let size = std::fs::metadata(&p.target).expect("stat").len();
    assert!(size > 100 << 20);
    make_db(&p.dev, "delete", "ALTER TABLE big ADD COLUMN note TEXT;");
    let (rc, _, err) = apply(&p, &["--json"]);
    assert_eq!(rc, 0, "{err}");
    let grown = std::fs::metadata(&p.target).expect("stat").len() - size;
    assert!(grown < 1 << 20, "an added column wrote {grown} bytes");
    assert_eq!(schema_rows(&p.target), schema_rows(&p.dev));
    assert_eq!(roots(&p.target).len(), before.len());
}

#[test]
fn triggers_do_not_fire_and_cascades_do_not_run_during_a_rebuild() {
    let p = pair(
        "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);
         CREATE TABLE audit(what TEXT);
         CREATE TRIGGER parent_audit AFTER INSERT ON parent BEGIN INSERT INTO audit VALUES ('insert ' || new.id); END;
         INSERT INTO parent VALUES (1, 'a'), (2, 'b');
         INSERT INTO child(parent_id) VALUES (1), (1), (2);
         CREATE VIEW parent_names AS SELECT name FROM parent;",
        "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT NOT NULL, born TEXT CHECK (born IS NULL OR born > '1900'));
         CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE);
         CREATE TABLE audit(what TEXT);
         CREATE TRIGGER parent_audit AFTER INSERT ON parent BEGIN INSERT INTO audit VALUES ('insert ' || new.id); END;
         CREATE VIEW parent_names AS SELECT name FROM parent;",
    );
    let audit_before = query_i64(&p.target, "SELECT count(*) FROM audit");
    assert_applied(&p);
    assert_eq!(
        query_i64(&p.target, "SELECT count(*) FROM audit"),
        audit_before,
        "no trigger fired"
    );
    assert_eq!(query_i64(&p.target, "SELECT count(*) FROM child"), 3, "no cascade ran");
    assert_eq!(
        query_i64(&p.target, "SELECT count(*) FROM parent_names"),
        2,
        "the view works"
    );
}

#[test]
fn external_content_fts_answers_match_after_its_table_is_rebuilt() {
    let p = pair(
        "CREATE TABLE doc(id INTEGER PRIMARY KEY, body TEXT);
         CREATE VIRTUAL TABLE doc_fts USING fts5(body, content='doc', content_rowid='id');
         INSERT INTO doc VALUES (10, 'hello world'), (20, 'goodbye moon');
         INSERT INTO doc_fts(doc_fts) VALUES ('rebuild');",
        "CREATE TABLE doc(id INTEGER PRIMARY KEY, body TEXT NOT NULL, lang TEXT DEFAULT 'en');
         CREATE VIRTUAL TABLE doc_fts USING fts5(body, content='doc', content_rowid='id');",
    );
    assert_applied(&p);
    assert_eq!(
        query_i64(&p.target, "SELECT rowid FROM doc_fts WHERE doc_fts MATCH 'moon'"),
        20
    );
}

#[test]
fn autoincrement_continues_after_prods_highest() {
    let p = pair(
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, x TEXT);
         INSERT INTO t(x) VALUES ('a'), ('b'), ('c'); DELETE FROM t WHERE id = 3;",
        "CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, x TEXT NOT NULL);",
    );
    assert_applied(&p);
    assert_eq!(
        query_i64(&p.target, "SELECT seq FROM sqlite_sequence WHERE name = 't'"),
        3
    );
}

#[test]
fn values_keep_their_exact_type_and_bytes_through_a_rebuild() {
    let p = pair(
        "CREATE TABLE v(id INTEGER PRIMARY KEY, i INTEGER, r REAL, b BLOB, t TEXT, anything);
         INSERT INTO v VALUES (1, 9223372036854775807, 0.1, x'00ff00', 'naïve 日本 🎉', x'');
         INSERT INTO v VALUES (2, -9223372036854775808, 1e308, zeroblob(3), '', 1.5);",
        "CREATE TABLE v(id INTEGER PRIMARY KEY, i INTEGER NOT NULL, r REAL, b BLOB, t TEXT, anything, added TEXT);
         CREATE INDEX v_t ON v(t);",
    );
    let dump = "SELECT quote(id) || ' ' || quote(i) || ' ' || quote(r) || ' ' || quote(b) || ' ' || quote(t) || ' ' || quote(anything) || ' ' || typeof(anything) FROM v ORDER BY id";
    let before = strings(&p.target, dump);
    assert_applied(&p);
    assert_eq!(strings(&p.target, dump), before);
}

#[test]
fn violations_abort_and_leave_target_byte_identical() {
    let p = pair(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT); INSERT INTO t(email) VALUES ('a'), ('a'), (NULL);",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE);",
    );
    let before = std::fs::read(&p.target).expect("read");
    let (rc, _, err) = apply(&p, &[]);
    assert_eq!(rc, 3, "{err}");
    assert!(err.contains("NOT NULL") || err.contains("UNIQUE"), "{err}");
    assert!(err.contains("t.email"), "{err}");
    assert_eq!(std::fs::read(&p.target).expect("read"), before);
    assert_eq!(names(p.target.parent().expect("dir")), ["dev.db", "target.db"]);
}

#[test]
fn skip_leaves_violating_rows_out_into_a_rejects_database() {
    let p = pair(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT, qty INTEGER);
         INSERT INTO t(email, qty) VALUES ('a', 1), ('a', 2), (NULL, 3), ('b', -1), ('c', 5);",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, qty INTEGER CHECK (qty > 0));",
    );
    std::fs::set_permissions(&p.target, std::os::unix::fs::PermissionsExt::from_mode(0o640)).expect("chmod");
    let rejects = p.target.with_file_name("left-out.sqlite");
    let (rc, out, err) = apply(
        &p,
        &["--on-violation", "skip", "--rejects", rejects.to_str().expect("utf-8")],
    );
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(schema_rows(&p.target), schema_rows(&p.dev));
    assert_eq!(
        strings(&p.target, "SELECT email FROM t ORDER BY id"),
        ["a", "c"],
        "the first 'a' stays"
    );
    assert_eq!(
        query_i64(&rejects, "SELECT count(*) FROM t"),
        3,
        "the second 'a', the NULL and qty -1"
    );
    assert_eq!(
        strings(
            &rejects,
            "SELECT refresh_dev_rowid || ' ' || refresh_dev_reason FROM t ORDER BY refresh_dev_rowid"
        )
        .iter()
        .map(|r| r.split(' ').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>(),
        ["2", "3", "4"]
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&rejects).expect("stat").permissions());
    assert_eq!(mode & 0o777, 0o640, "no wider than TARGET");
    assert!(out.contains("left-out.sqlite"), "{out}");
}

#[test]
fn rename_hints_carry_the_values() {
    let p = pair(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, old_name TEXT); INSERT INTO t(old_name) VALUES ('kept');",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, new_name TEXT);",
    );
    let (rc, _, err) = apply(&p, &["--rename", "t.old_name=new_name"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(schema_rows(&p.target), schema_rows(&p.dev));
    assert_eq!(strings(&p.target, "SELECT new_name FROM t"), ["kept"]);
}

#[test]
fn quoted_names_strict_without_rowid_and_generated_columns() {
    let p = pair(
        "CREATE TABLE \"order items\"(\"group\" TEXT PRIMARY KEY, qty INTEGER) WITHOUT ROWID;
         INSERT INTO \"order items\" VALUES ('a', 1), ('b', 2);
         CREATE TABLE s(id INTEGER PRIMARY KEY, n);
         INSERT INTO s(n) VALUES (1), ('2');",
        "CREATE TABLE \"order items\"(\"group\" TEXT PRIMARY KEY, qty INTEGER, double_qty INTEGER GENERATED ALWAYS AS (qty * 2) VIRTUAL) WITHOUT ROWID;
         CREATE TABLE s(id INTEGER PRIMARY KEY, n INTEGER) STRICT;",
    );
    assert_applied(&p);
    assert_eq!(query_i64(&p.target, "SELECT sum(double_qty) FROM \"order items\""), 6);
    assert_eq!(
        query_i64(&p.target, "SELECT sum(n) FROM s WHERE typeof(n) = 'integer'"),
        3
    );
}

#[test]
fn dev_data_and_prod_data_choose_where_rows_come_from() {
    let p = pair(
        "CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT); INSERT INTO settings VALUES ('mode', 'prod');
         CREATE TABLE schema_migrations(version TEXT PRIMARY KEY); INSERT INTO schema_migrations VALUES ('1');",
        "CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT); INSERT INTO settings VALUES ('mode', 'dev'), ('debug', '1');
         CREATE TABLE schema_migrations(version TEXT PRIMARY KEY); INSERT INTO schema_migrations VALUES ('1'), ('2');",
    );
    let (rc, _, err) = apply(&p, &["--dev-data", "sett*", "--prod-data", "SCHEMA_MIGRATIONS"]);
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        strings(&p.target, "SELECT v FROM settings ORDER BY k"),
        ["1", "dev"],
        "DEV's rows"
    );
    assert_eq!(
        strings(&p.target, "SELECT version FROM schema_migrations"),
        ["1"],
        "TARGET's rows"
    );
}

#[test]
fn sql_prints_what_apply_would_run_and_the_sqlite3_cli_runs_it() {
    let p = pair(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, gone TEXT); INSERT INTO t(a, gone) VALUES ('x', 'y');
         CREATE TABLE seeded(k TEXT);",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT NOT NULL, b INTEGER DEFAULT 7);
         CREATE TABLE seeded(k TEXT); INSERT INTO seeded VALUES ('from dev');
         CREATE TABLE fresh(z); INSERT INTO fresh VALUES (1);",
    );
    let dir = p.target.parent().expect("dir").to_owned();
    let before = folder(&dir);
    let (rc, sql, err) = run(schema_diff().arg("--sql").arg(&p.dev).arg(&p.target));
    assert_eq!(rc, 1, "{err}");
    assert_eq!(folder(&dir), before, "TARGET not written, no copy left");
    assert!(sql.contains(&format!(
        "ATTACH DATABASE 'file:{}",
        std::fs::canonicalize(&p.dev).expect("abs").display()
    )));
    let mut cli = Command::new("sqlite3")
        .arg(&p.target)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("the sqlite3 CLI");
    std::io::Write::write_all(cli.stdin.as_mut().expect("stdin"), sql.as_bytes()).expect("write");
    drop(cli.stdin.take());
    assert!(cli.wait().expect("wait").success());
    assert_eq!(schema_rows(&p.target), schema_rows(&p.dev));
    assert_eq!(strings(&p.target, "SELECT a || b FROM t"), ["x7"]);
    assert_eq!(strings(&p.target, "SELECT CAST(z AS TEXT) FROM fresh"), ["1"]);
    let (rc, out, _) = run(schema_diff().arg("--sql").arg(&p.dev).arg(&p.target));
    assert_eq!((rc, out.as_str()), (0, ""), "identical: nothing to run");
}

#[test]
fn violations_prod_already_had_are_carried_and_reported_and_stale_stats_go() {
    let p = pair(
        "PRAGMA foreign_keys = OFF; -- PROD's app never enforced them
         CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id), note TEXT);
         INSERT INTO p VALUES (1); INSERT INTO c(p_id, note) VALUES (1, 'a'), (42, 'b');
         CREATE INDEX c_p ON c(p_id); ANALYZE;",
        "CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE c(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id), note TEXT NOT NULL DEFAULT '');
         CREATE INDEX c_p ON c(p_id);",
    );
    assert!(query_i64(&p.target, "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'c'") > 0);
    let (rc, out, err) = apply(&p, &["--json"]);
    assert_eq!(rc, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    let existing: Vec<_> = report["diff"]["data_impact"]
        .as_array()
        .expect("impact")
        .iter()
        .filter(|i| i["kind"] == "existing")
        .collect();
    assert_eq!(existing.len(), 1, "{report:#}");
    assert_eq!(existing[0]["rows"], 1);
    assert_eq!(
        query_i64(&p.target, "SELECT count(*) FROM c WHERE p_id = 42"),
        1,
        "carried as it was"
    );
    assert_eq!(
        query_i64(&p.target, "SELECT count(*) FROM sqlite_stat1 WHERE tbl = 'c'"),
        0,
        "stale stats gone"
    );
}

#[test]
#[ignore = "needs root"]
fn a_full_disk_leaves_target_as_it_was() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempdir();
    let disk = Tmpfs::mount(dir.path(), "6m");
    let (dev, target) = (disk.path.join("dev.db"), disk.path.join("target.db"));
    make_db(
        &target,
        "delete",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO t(b) SELECT randomblob(3000) FROM n;",
    );
    make_db(
        &dev,
        "delete",
        "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB NOT NULL);",
    );
    let before = folder(&disk.path);
    let (rc, _, err) = run(schema_diff().arg("--apply").arg(&dev).arg(&target));
    assert_eq!(rc, 4, "a rebuild needs a second copy of the table: {err}");
    assert!(err.contains("full"), "{err}");
    assert_eq!(folder(&disk.path), before, "TARGET byte-identical, nothing left");
}

#[test]
fn every_violation_kind_under_abort_and_skip() {
    let target = "PRAGMA foreign_keys = OFF;
         CREATE TABLE p(id INTEGER PRIMARY KEY); INSERT INTO p VALUES (1);
         CREATE TABLE fk(id INTEGER PRIMARY KEY, p_id INTEGER); INSERT INTO fk(p_id) VALUES (1), (7);
         CREATE TABLE st(id INTEGER PRIMARY KEY, n); INSERT INTO st(n) VALUES (1), ('two');
         CREATE TABLE ipk(k TEXT, v TEXT); INSERT INTO ipk VALUES ('5', 'a'), ('five', 'b');
         CREATE TABLE nn(id INTEGER PRIMARY KEY, a TEXT); INSERT INTO nn(a) VALUES ('x');";
    let dev = "CREATE TABLE p(id INTEGER PRIMARY KEY);
         CREATE TABLE fk(id INTEGER PRIMARY KEY, p_id INTEGER REFERENCES p(id));
         CREATE TABLE st(id INTEGER PRIMARY KEY, n INTEGER) STRICT;
         CREATE TABLE ipk(k INTEGER PRIMARY KEY, v TEXT);
         CREATE TABLE nn(id INTEGER PRIMARY KEY, a TEXT, b TEXT NOT NULL);";
    let p = pair(target, dev);
    let before = std::fs::read(&p.target).expect("read");
    let (rc, _, err) = apply(&p, &[]);
    assert_eq!(rc, 3, "{err}");
    for table in ["fk.p_id", "st.n", "ipk.k", "nn.b"] {
        assert!(err.contains(table), "{table}: {err}");
    }
    assert_eq!(std::fs::read(&p.target).expect("read"), before, "abort: byte-identical");

    let (rc, out, err) = apply(&p, &["--on-violation", "skip", "--json"]);
    assert_eq!(rc, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    let rejects = PathBuf::from(report["rejects"].as_str().expect("rejects path"));
    assert!(rejects
        .file_name()
        .expect("name")
        .to_string_lossy()
        .starts_with("target.db.rejects-"));
    assert_eq!(schema_rows(&p.target), schema_rows(&p.dev));
    for (table, rejected, kept) in [("fk", 1, 1), ("st", 1, 1), ("ipk", 1, 1), ("nn", 1, 0)] {
        assert_eq!(
            query_i64(&rejects, &format!("SELECT count(*) FROM {table}")),
            rejected,
            "{table}"
        );
        assert_eq!(
            query_i64(&p.target, &format!("SELECT count(*) FROM {table}")),
            kept,
            "{table}"
        );
    }
    assert_eq!(
        query_i64(&p.target, "SELECT k FROM ipk"),
        5,
        "'5' became the integer key 5"
    );
}

#[test]
fn columns_named_with_quotes_at_either_end_work_in_every_strategy() {
    // `"a` and `b"`: a double quote is part of each name (doubled inside the quotes).
    let target = "CREATE TABLE t(id INTEGER PRIMARY KEY, \"\"\"a\" TEXT, \"b\"\"\" TEXT, keep TEXT);
         INSERT INTO t VALUES (1, 'x', 'y', 'k'), (2, 'x2', 'y2', 'k2');";
    let cases = [
        // alter: add a quoted column, drop one
        "CREATE TABLE t(id INTEGER PRIMARY KEY, \"\"\"a\" TEXT, keep TEXT, \"c\"\"\" TEXT DEFAULT 'd')",
        // alter: rename (with a hint below)
        "CREATE TABLE t(id INTEGER PRIMARY KEY, \"\"\"a\" TEXT, \"z\"\"\" TEXT, keep TEXT)",
        // rebuild: a type change beside the quoted columns
        "CREATE TABLE t(id INTEGER PRIMARY KEY, \"\"\"a\" BLOB, \"b\"\"\" TEXT, keep TEXT)",
        // text only: a new default
        "CREATE TABLE t(id INTEGER PRIMARY KEY, \"\"\"a\" TEXT, \"b\"\"\" TEXT DEFAULT 'n', keep TEXT)",
    ];
    let strategies = ["alter", "alter", "rebuild", "text_only"];
    for (i, dev) in cases.iter().enumerate() {
        let p = pair(target, dev);
        let mut diff = schema_diff();
        diff.arg("--json");
        if i == 1 {
            diff.args(["--rename", "t.\"b\"\"\"=\"z\"\"\""]);
        }
        let (_, out, _) = run(diff.arg(&p.dev).arg(&p.target));
        assert_eq!(json(&out)["plan"][0]["strategy"], strategies[i], "{dev}: {out}");
        if i == 1 {
            let (rc, out, err) = apply(&p, &["--rename", "t.\"b\"\"\"=\"z\"\"\""]);
            assert_eq!(rc, 0, "{dev}: {out}{err}");
            assert_eq!(schema_rows(&p.target), schema_rows(&p.dev), "{dev}");
            assert_eq!(strings(&p.target, "SELECT \"z\"\"\" FROM t ORDER BY id"), ["y", "y2"]);
        } else {
            assert_applied(&p);
        }
        assert_eq!(
            strings(&p.target, "SELECT \"\"\"a\" FROM t ORDER BY id"),
            ["x", "x2"],
            "{dev}"
        );
        assert_eq!(
            strings(&p.target, "SELECT keep FROM t ORDER BY id"),
            ["k", "k2"],
            "{dev}"
        );
    }
}

#[test]
fn a_lock_held_by_an_application_is_waited_for_up_to_wait_seconds() {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(&dev, "delete", "CREATE TABLE t(x, y);");
    make_db(&target, "delete", "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
    // An application in the middle of a write: no reader may start.
    let mut app = HeldConnection::start(&target, "exclusive");
    let before = folder(dir.path());
    for args in [vec!["--wait", "0"], vec!["--apply", "--timeout", "0"]] {
        let (code, _, err) = run(schema_diff().args(&args).arg(&dev).arg(&target));
        assert_eq!(code, 3, "{args:?}: {err}");
        assert!(err.contains("target.db") && err.contains("--wait"), "{err}");
        assert_eq!(folder(dir.path()), before, "{args:?}: nothing changed");
    }
    // Given time, it waits for the application's commit, then applies.
    let child = schema_diff()
        .args(["--apply", "--wait", "60"])
        .arg(&dev)
        .arg(&target)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    assert_eq!(app.ask("end"), "ok");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(query_i64(&target, "SELECT count(*) FROM t"), 1);
    assert_eq!(
        query_i64(&target, "SELECT count(*) FROM pragma_table_info('t') WHERE name = 'y'"),
        1
    );
}
