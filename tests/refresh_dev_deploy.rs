//! End to end: `refresh-dev deploy FILE.toml`, with the example files of
//! `fixtures/deployments/` and hand-written ones (alternate sources,
//! `abort_remaining`, validation before anything runs).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn refresh_dev() -> Command {
    Command::new(env!("CARGO_BIN_EXE_refresh-dev"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A folder with the shop's prod.db (WAL) and dev.db beside `toml` (written as deploy.toml).
fn folder_with(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    let read = |name: &str| std::fs::read_to_string(fixtures().join(name)).expect("fixture");
    make_db(&dir.path().join("prod.db"), "wal", &read("prod.sql"));
    make_db(&dir.path().join("dev.db"), "delete", &read("dev.sql"));
    let file = dir.path().join("deploy.toml");
    std::fs::write(&file, toml).expect("write");
    (dir, file)
}

fn deploy(file: &Path, extra: &[&str]) -> (i32, String, String) {
    run(refresh_dev().arg("deploy").arg(file).args(extra))
}

fn example(name: &str) -> String {
    std::fs::read_to_string(fixtures().join("deployments").join(name)).expect("example")
}

fn backups(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("dev.db.bak-"))
        .collect()
}

#[test]
fn the_refresh_dev_example_keeps_devs_schema_with_prods_rows() {
    let (dir, file) = folder_with(&example("refresh-dev.toml"));
    let (dev, prod) = (dir.path().join("dev.db"), dir.path().join("prod.db"));
    let old_dev = std::fs::read(&dev).expect("read");
    let old_schema = schema_rows(&dev);
    let prod_bytes = std::fs::read(&prod).expect("read");
    let (code, out, err) = deploy(&file, &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "succeeded");
    assert!(report["deployment"]
        .as_str()
        .expect("name")
        .starts_with("refresh dev from production"));
    assert_eq!(report["steps"][2]["name"], "overwrite development with staging");
    assert_eq!(schema_rows(&dev), old_schema);
    assert_eq!(
        query_i64(&dev, "SELECT count(*) FROM orders"),
        query_i64(&prod, "SELECT count(*) FROM orders")
    );
    let backups = backups(dir.path());
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read(dir.path().join(&backups[0])).expect("read"), old_dev);
    assert_eq!(std::fs::read(&prod).expect("read"), prod_bytes);
    let mut expected = vec!["deploy.toml", "dev.db", &backups[0], "prod.db"];
    expected.sort();
    assert_eq!(names(dir.path()), expected, "no stray files");
}

#[test]
fn the_replace_example_makes_dev_a_copy_of_prod() {
    let (dir, file) = folder_with(&example("replace.toml"));
    let (dev, prod) = (dir.path().join("dev.db"), dir.path().join("prod.db"));
    let (code, out, err) = deploy(&file, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_rows(&dev), schema_rows(&prod));
    assert_eq!(
        query_i64(&dev, "SELECT count(*) FROM customers"),
        query_i64(&prod, "SELECT count(*) FROM customers")
    );
    assert_eq!(backups(dir.path()).len(), 1);
    assert_eq!(names(dir.path()).len(), 4, "{:?}", names(dir.path()));
}

#[test]
fn the_refresh_staging_example_leaves_dev_byte_identical() {
    let (dir, file) = folder_with(&example("refresh-staging.toml"));
    let dev = dir.path().join("dev.db");
    let staging = dir.path().join("staging.db");
    let dev_bytes = std::fs::read(&dev).expect("read");
    let (code, out, err) = deploy(&file, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::read(&dev).expect("read"), dev_bytes);
    assert_eq!(schema_rows(&staging), schema_rows(&dev));
    assert_eq!(
        query_i64(&staging, "SELECT count(*) FROM customers"),
        query_i64(&dir.path().join("prod.db"), "SELECT count(*) FROM customers")
    );
}

#[test]
fn each_step_takes_its_own_source() {
    // Data from a nightly copy rather than PROD, schema from a release file rather than DEV.
    let toml = r#"
        [files]
        nightly = "backups/nightly.db"
        release = "release/v5.db"
        dev     = "dev.db"
        staging = { path = "work/.staging.db", temporary = true }

        [[step]]
        name = "data from last night's copy"
        op = "snapshot"
        from = "nightly"
        to = "staging"

        [[step]]
        name = "schema of the release"
        op = "apply"
        schema = "release"
        to = "staging"

        [[step]]
        op = "swap"
        from = "staging"
        to = "dev"
        backup = false
    "#;
    let (dir, file) = folder_with(toml);
    for sub in ["backups", "release", "work"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    make_db(
        &dir.path().join("backups/nightly.db"),
        "delete",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT); INSERT INTO notes(body) VALUES ('one'), ('two'), ('three');",
    );
    make_db(
        &dir.path().join("release/v5.db"),
        "delete",
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, pinned INT NOT NULL DEFAULT 0);",
    );
    let prod_bytes = std::fs::read(dir.path().join("prod.db")).expect("read");
    let (code, out, err) = deploy(&file, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let dev = dir.path().join("dev.db");
    assert_eq!(query_i64(&dev, "SELECT count(*) FROM notes WHERE pinned = 0"), 3);
    assert_eq!(schema_rows(&dev), schema_rows(&dir.path().join("release/v5.db")));
    assert!(backups(dir.path()).is_empty(), "backup = false");
    assert!(
        names(&dir.path().join("work")).is_empty(),
        "the temporary staging is gone"
    );
    assert_eq!(std::fs::read(dir.path().join("prod.db")).expect("read"), prod_bytes);
}

const PROD_WITH_NEGATIVES: &str = "CREATE TABLE stock(id INTEGER PRIMARY KEY, qty INT);
    INSERT INTO stock(qty) VALUES (5), (-1), (7);";
const DEV_WITH_CHECK: &str = "CREATE TABLE stock(id INTEGER PRIMARY KEY, qty INT CHECK (qty >= 0));";

/// PROD (rollback mode, so violations are found on the copy) and DEV in a folder.
fn violating_pair(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempdir();
    make_db(&dir.path().join("prod.db"), "delete", PROD_WITH_NEGATIVES);
    make_db(&dir.path().join("dev.db"), "delete", DEV_WITH_CHECK);
    let file = dir.path().join("deploy.toml");
    std::fs::write(&file, toml).expect("write");
    (dir, file)
}

#[test]
fn a_failed_step_aborts_the_remaining_ones_and_removes_what_the_run_made() {
    let (dir, file) = violating_pair(
        r#"
        [files]
        prod = "prod.db"
        dev = "dev.db"
        copy = "copy.db"
        [[step]]
        op = "snapshot"
        from = "prod"
        to = "copy"
        [[step]]
        op = "apply"
        schema = "dev"
        to = "copy"
        [[step]]
        op = "swap"
        from = "copy"
        to = "dev"
    "#,
    );
    let before = folder(dir.path());
    let (code, out, err) = deploy(&file, &["--json"]);
    assert_eq!(code, 3, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "aborted");
    assert_eq!(report["failed_step"], 2);
    assert_eq!(report["steps"][2]["status"], "skipped");
    assert!(report["error"]["message"].as_str().expect("error").contains("qty"));
    assert_eq!(folder(dir.path()), before, "copy.db removed, DEV byte-identical");
}

#[test]
fn abort_remaining_false_reports_the_failure_runs_the_next_steps_and_fails_overall() {
    let (dir, file) = violating_pair(
        r#"
        [files]
        prod = "prod.db"
        dev = "dev.db"
        staging = { path = ".staging.db", temporary = true }
        copy = "copy.db"
        [[step]]
        op = "snapshot"
        from = "prod"
        to = "staging"
        [[step]]
        name = "try the new schema"
        op = "apply"
        schema = "dev"
        to = "staging"
        abort_remaining = false
        [[step]]
        name = "keep a plain copy anyway"
        op = "snapshot"
        from = "prod"
        to = "copy"
    "#,
    );
    let dev_bytes = std::fs::read(dir.path().join("dev.db")).expect("read");
    let (code, out, err) = deploy(&file, &["--json"]);
    assert_eq!(code, 3, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "failed");
    let statuses: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["succeeded", "failed", "succeeded"]);
    assert_eq!(query_i64(&dir.path().join("copy.db"), "SELECT count(*) FROM stock"), 3);
    assert!(!dir.path().join(".staging.db").exists());
    assert_eq!(std::fs::read(dir.path().join("dev.db")).expect("read"), dev_bytes);
}

#[test]
fn the_whole_file_and_every_path_are_validated_before_anything_runs() {
    let steps = |third: &str| {
        format!(
            r#"
            [files]
            prod = "prod.db"
            dev = "dev.db"
            ghost = "nowhere/ghost.db"
            staging = {{ path = ".staging.db", temporary = true }}
            [[step]]
            op = "snapshot"
            from = "prod"
            to = "staging"
            [[step]]
            op = "apply"
            schema = "dev"
            to = "staging"
            {third}
            "#
        )
    };
    let cases = [
        // A missing source for the last step: nothing is copied first.
        (
            steps("[[step]]\nop = \"snapshot\"\nfrom = \"ghost\"\nto = \"dev\""),
            "ghost.db",
        ),
        (steps("[[step]]\nop = \"swap\"\nfrom = \"staging\"\nto = \"typo\""), "names no file"),
        (steps("[[step]]\nop = \"swap\"\nfrom = \"staging\"\nto = \"dev\"\nkeep = 2"), "unknown field"),
        (steps("[[step]]\nop = \"swap\"\nfrom = \"staging\"\nto = \"dev\"\n[[step]]\nop = \"swap\"\nfrom = \"staging\"\nto = \"dev\""), "consumed"),
        (steps("[[step]\nop = \"swap\""), "deploy.toml: line 15: "),
    ];
    for (toml, expected) in cases {
        let (dir, file) = folder_with(&toml);
        let before = folder(dir.path());
        let (code, out, err) = deploy(&file, &[]);
        assert_eq!(code, 2, "{toml}\n{out}{err}");
        assert!(err.contains(expected), "{expected}: {err}");
        assert_eq!(folder(dir.path()), before, "{toml}");
        // Scripts get a report object whatever went wrong.
        let (code, out, _) = deploy(&file, &["--json"]);
        assert_eq!(code, 2);
        let report = json(&out);
        assert_eq!(report["result"], "aborted");
        assert_eq!(report["exit_code"], 2);
        assert!(
            report["error"]["message"].as_str().expect("error").contains(expected),
            "{report}"
        );
    }
}

#[test]
fn deploy_dry_run_writes_nothing() {
    let (dir, file) = folder_with(&example("refresh-dev.toml"));
    let before = folder(dir.path());
    let (code, out, err) = deploy(&file, &["--dry-run", "-v"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, _) = deploy(&file, &["--dry-run", "--exit-code"]);
    assert_eq!(code, 1, "--exit-code: the schemas differ");
    assert!(out.contains("would swap"), "{out}");
    assert_eq!(folder(dir.path()), before);
}

#[test]
fn a_file_written_by_steps_apart_is_locked_once() {
    let toml = r#"
        [files]
        prod = "prod.db"
        dev = "dev.db"
        a = "a.db"
        b = "b.db"
        [[step]]
        op = "snapshot"
        from = "prod"
        to = "a"
        [[step]]
        op = "snapshot"
        from = "prod"
        to = "b"
        [[step]]
        op = "apply"
        schema = "dev"
        to = "a"
    "#;
    let (dir, file) = folder_with(toml);
    let (code, out, err) = deploy(&file, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        schema_rows(&dir.path().join("a.db")),
        schema_rows(&dir.path().join("dev.db"))
    );
    assert_eq!(
        schema_rows(&dir.path().join("b.db")),
        schema_rows(&dir.path().join("prod.db"))
    );
    assert!(!names(dir.path()).iter().any(|n| n.ends_with(".lock")));
}
