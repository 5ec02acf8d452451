//! End to end: the `refresh-dev` binary over temporary folders, on the shop
//! fixtures and on small hand-made databases. Each test checks what a user
//! would look at: the rows and schema of DEV, its backup, PROD's bytes and
//! folder, the files left behind, the exit code and the message. What the
//! reports say is in `refresh_dev_output.rs`; kills, signals, locks and
//! writers in `refresh_dev_hard.rs`.

#[path = "support/shop.rs"]
mod shop;
mod support;

use std::path::{Path, PathBuf};

use shop::*;
use support::*;

#[test]
fn run_gives_dev_prods_rows_in_devs_exact_schema_and_keeps_the_old_dev() {
    let shop = Shop::new();
    let old_dev = std::fs::read(&shop.dev).expect("read");
    let old_schema = schema_rows(&shop.dev);
    let old_version = query_i64(&shop.dev, "PRAGMA user_version");
    let prod_before = folder(&shop.prod_dir());

    let (code, out, err) = shop.run("run", &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "succeeded");
    assert_eq!(report["steps"].as_array().expect("steps").len(), 3);
    for step in report["steps"].as_array().expect("steps") {
        assert_eq!(step["status"], "succeeded", "{step}");
    }

    // DEV's schema, exactly; PROD's rows, DEV's rows where DEV owns the table.
    assert_eq!(schema_rows(&shop.dev), old_schema);
    assert_eq!(query_i64(&shop.dev, "PRAGMA user_version"), old_version);
    assert_eq!(integrity(&shop.dev), "ok");
    let backups = shop.backups();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read(&backups[0]).expect("backup"),
        old_dev,
        "the backup is the old DEV"
    );
    assert_eq!(report["backup"], backups[0].display().to_string());
    let mut compared = 0;
    for table in report["plan"].as_array().expect("plan") {
        let name = table["table"].as_str().expect("name");
        let dev_columns = columns(&shop.dev, name);
        let (source, cols): (&Path, Vec<String>) = if table["rows_from"] == "dev" {
            (&backups[0], dev_columns)
        } else {
            let prod_columns = columns(&shop.prod, name);
            (
                &shop.prod,
                dev_columns.into_iter().filter(|c| prod_columns.contains(c)).collect(),
            )
        };
        assert_eq!(rows(&shop.dev, name, &cols), rows(source, name, &cols), "table {name}");
        compared += 1;
    }
    assert!(compared >= 6, "{compared} tables compared");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM customers"),
        query_i64(&shop.prod, "SELECT count(*) FROM customers")
    );

    // PROD and its folder as found; in DEV's folder, DEV and its backup only.
    assert_eq!(folder(&shop.prod_dir()), prod_before);
    let backup_name = backups[0].file_name().expect("name").to_string_lossy().into_owned();
    assert_eq!(names(&shop.dev_dir()), vec!["shop.db".to_owned(), backup_name]);
}

#[test]
fn a_second_run_keeps_devs_development_and_rollback_puts_the_old_dev_back() {
    let shop = Shop::new();
    let original = std::fs::read(&shop.dev).expect("read");
    assert_eq!(shop.run("run", &["--quiet"]).0, 0);
    let refreshed = std::fs::read(&shop.dev).expect("read");
    // DEV's development goes on: a new table, then a second refresh keeps it.
    make_db(
        &shop.dev,
        "delete",
        "CREATE TABLE wishlist(id INTEGER PRIMARY KEY, sku TEXT);",
    );
    let (code, out, err) = shop.run("run", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM sqlite_schema WHERE name = 'wishlist'"),
        1
    );
    assert_eq!(shop.backups().len(), 2);

    let (code, out, err) = run(refresh_dev().args(["rollback", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("is back from"), "{out}");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM sqlite_schema WHERE name = 'wishlist'"),
        1
    );
    assert_ne!(std::fs::read(&shop.dev).expect("read"), refreshed);
    // Backups hold the first refresh and the very first DEV.
    assert!(shop
        .backups()
        .iter()
        .any(|b| std::fs::read(b).expect("read") == original));
    assert!(!names(&shop.dev_dir()).iter().any(|n| n.contains("lock")));
}

#[test]
fn replace_makes_dev_a_copy_of_prod_with_a_backup() {
    let shop = Shop::new();
    let old_dev = std::fs::read(&shop.dev).expect("read");
    let prod_before = folder(&shop.prod_dir());
    let (code, out, err) = shop.run("replace", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("replace: done") && out.contains("undo: refresh-dev rollback"),
        "{out}"
    );
    assert_eq!(schema_rows(&shop.dev), schema_rows(&shop.prod));
    for (_, name, _, _) in schema_rows(&shop.prod).iter().filter(|r| r.0 == "table") {
        let cols = columns(&shop.prod, name);
        assert_eq!(rows(&shop.dev, name, &cols), rows(&shop.prod, name, &cols), "{name}");
    }
    let backups = shop.backups();
    assert_eq!(backups.len(), 1);
    assert_eq!(std::fs::read(&backups[0]).expect("read"), old_dev);
    assert_eq!(folder(&shop.prod_dir()), prod_before);
    assert_eq!(names(&shop.dev_dir()).len(), 2, "{:?}", names(&shop.dev_dir()));
}

#[test]
fn staging_holds_prods_rows_in_devs_schema_and_dev_is_byte_identical() {
    let shop = Shop::new();
    chmod(&shop.prod, 0o640);
    let out_dir = shop.dir.path().join("staging");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let staging = out_dir.join("shop-staging.db");
    let dev_before = folder(&shop.dev_dir());
    let prod_before = folder(&shop.prod_dir());
    let (code, out, err) = shop.run("staging", &["--out", staging.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(folder(&shop.dev_dir()), dev_before);
    assert_eq!(folder(&shop.prod_dir()), prod_before);
    assert_eq!(schema_rows(&staging), schema_rows(&shop.dev));
    let cols = columns(&shop.dev, "customers");
    let common: Vec<String> = cols
        .into_iter()
        .filter(|c| columns(&shop.prod, "customers").contains(c))
        .collect();
    assert_eq!(
        rows(&staging, "customers", &common),
        rows(&shop.prod, "customers", &common)
    );
    assert_eq!(mode(&staging), 0o640, "the staging copy has PROD's permission bits");
    assert_eq!(names(&out_dir), vec!["shop-staging.db".to_owned()]);

    // STAGING exists now: a second run refuses rather than overwrite it.
    let (code, _, err) = shop.run("staging", &["--out", staging.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("already exists"), "{err}");
}

#[test]
fn a_dev_open_by_its_application_makes_run_refuse_with_dev_untouched() {
    let shop = Shop::new();
    let app = HeldConnection::start(&shop.dev, "idle");
    let dev_before = folder(&shop.dev_dir());
    let (code, out, err) = shop.run("run", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("pid {}", app.pid())) && err.contains("in use"),
        "{err}"
    );
    assert_eq!(folder(&shop.dev_dir()), dev_before, "DEV untouched, no staging left");
    // `plan` tells the same, and `replace` refuses the same way.
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 3);
    assert!(err.contains("in use") && err.lines().count() == 1, "{err}");
    assert!(!out.contains("in use by"), "the error is printed once: {out}");
    assert_eq!(shop.run("replace", &[]).0, 3);
    assert_eq!(folder(&shop.dev_dir()), dev_before);
    drop(app);
}

#[test]
fn a_violation_aborts_before_any_write_when_prod_is_in_wal_mode() {
    let shop = Shop::with(PROD_WITH_NEGATIVES, DEV_WITH_CHECK, "wal");
    let dev_before = folder(&shop.dev_dir());
    let (code, out, err) = shop.run("run", &["--json"]);
    assert_eq!(code, 3, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "aborted");
    assert!(
        report["error"]["message"].as_str().expect("error").contains("2 rows"),
        "{report}"
    );
    assert!(err.contains("stock"), "{err}");
    for step in report["steps"].as_array().expect("steps") {
        assert_eq!(step["status"], "skipped");
    }
    assert_eq!(folder(&shop.dev_dir()), dev_before);
}

#[test]
fn a_violation_in_the_apply_step_aborts_the_remaining_ones_and_leaves_no_file() {
    // Rollback-mode PROD: the data impact is counted on the copy.
    let shop = Shop::with(PROD_WITH_NEGATIVES, DEV_WITH_CHECK, "delete");
    let dev_before = folder(&shop.dev_dir());
    let prod_before = folder(&shop.prod_dir());
    let (code, out, err) = shop.run("run", &["--json"]);
    assert_eq!(code, 3, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "aborted");
    assert_eq!(report["failed_step"], 2);
    let statuses: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["succeeded", "failed", "skipped"]);
    assert!(
        report["steps"][1]["error"]["message"]
            .as_str()
            .expect("error")
            .contains("qty"),
        "{report}"
    );
    assert_eq!(
        folder(&shop.dev_dir()),
        dev_before,
        "DEV byte-identical, staging removed"
    );
    assert_eq!(folder(&shop.prod_dir()), prod_before);

    // --keep-staging keeps the copy for inspection, and says where.
    let (code, out, _) = shop.run("run", &["--keep-staging", "--json"]);
    assert_eq!(code, 3);
    let kept = json(&out)["kept"][0].as_str().expect("kept").to_owned();
    assert!(Path::new(&kept).exists());
    assert_eq!(query_i64(Path::new(&kept), "SELECT count(*) FROM stock"), 4);
    std::fs::remove_file(&kept).expect("rm");
    assert_eq!(folder(&shop.dev_dir()), dev_before);
}

#[test]
fn skipped_rows_land_in_a_rejects_database_beside_dev_no_wider_than_prod() {
    let shop = Shop::with(PROD_WITH_NEGATIVES, DEV_WITH_CHECK, "wal");
    chmod(&shop.prod, 0o600);
    chmod(&shop.dev, 0o644);
    let (code, out, err) = shop.run("run", &["--on-violation", "skip", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    let rejects = PathBuf::from(report["rejects"]["path"].as_str().expect("rejects path"));
    assert_eq!(report["rejects"]["rows"], 2);
    assert_eq!(rejects.parent(), Some(shop.dev_dir().as_path()));
    let name = rejects.file_name().expect("name").to_string_lossy().into_owned();
    assert!(
        name.starts_with("shop.db.rejects-") && name.ends_with(".sqlite"),
        "{name}"
    );
    assert_eq!(query_i64(&rejects, "SELECT count(*) FROM stock"), 2);
    assert_eq!(query_i64(&shop.dev, "SELECT count(*) FROM stock"), 2);
    assert_eq!(query_i64(&shop.dev, "SELECT min(qty) FROM stock"), 5);
    // Every file holding PROD's rows: no wider than PROD's 0600.
    assert_eq!(mode(&rejects) & !0o600, 0, "rejects {:o}", mode(&rejects));
    assert_eq!(mode(&shop.dev) & !0o600, 0, "dev {:o}", mode(&shop.dev));
    let swap_ops = report["steps"][2]["operations"].to_string();
    assert!(swap_ops.contains("narrowed from 0644 to 0600"), "{swap_ops}");
    let (_, text, _) = shop.run("plan", &["--on-violation", "skip"]);
    assert!(text.contains("skipped into rejects"), "{text}");
}

#[test]
#[ignore = "needs root"]
fn not_enough_space_in_devs_folder_is_refused_before_copying() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let dir = tempdir();
    let disk = Tmpfs::mount(dir.path(), "2M");
    let prod = dir.path().join("prod.db");
    make_db(
        &prod,
        "wal",
        "CREATE TABLE blob(b BLOB); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
         INSERT INTO blob SELECT randomblob(8000) FROM n;",
    );
    let dev = disk.path.join("dev.db");
    make_db(&dev, "delete", "CREATE TABLE blob(b BLOB);");
    let before = folder(&disk.path);
    let (code, out, err) = run(refresh_dev().args(["run", "--prod"]).arg(&prod).arg("--dev").arg(&dev));
    assert_eq!(code, 4, "{out}{err}");
    assert!(
        err.contains("not enough free space") && err.contains("small-disk"),
        "{err}"
    );
    assert_eq!(folder(&disk.path), before);
}
