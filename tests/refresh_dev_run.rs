//! End to end: the `refresh-dev` binary over temporary folders, on the shop
//! fixtures and on small hand-made databases. Each test checks what a user
//! would look at: the rows and schema of DEV, its backup, PROD's bytes and
//! folder, the files left behind, the exit code and the message.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use support::*;

fn refresh_dev() -> Command {
    Command::new(env!("CARGO_BIN_EXE_refresh-dev"))
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name);
    std::fs::read_to_string(&path).expect("fixture")
}

/// PROD (the shop at v3) in `prod/`, DEV (v4) in `dev/`, each its own folder.
struct Shop {
    dir: tempfile::TempDir,
    prod: PathBuf,
    dev: PathBuf,
}

impl Shop {
    fn new() -> Shop {
        Shop::with(&fixture("prod.sql"), &fixture("dev.sql"), "wal")
    }

    /// PROD from `prod_sql` in `prod_mode` (`wal` or `delete`), DEV from `dev_sql`.
    fn with(prod_sql: &str, dev_sql: &str, prod_mode: &str) -> Shop {
        let dir = tempdir();
        for sub in ["prod", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let prod = dir.path().join("prod/shop.db");
        let dev = dir.path().join("dev/shop.db");
        make_db(&prod, prod_mode, prod_sql);
        if prod_mode != "wal" {
            // The fixture may switch the mode itself: put it back.
            make_db(&prod, prod_mode, "");
        }
        make_db(&dev, "delete", dev_sql);
        Shop { dir, prod, dev }
    }

    fn prod_dir(&self) -> PathBuf {
        self.dir.path().join("prod")
    }

    fn dev_dir(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    fn args(&self, command: &str) -> Vec<String> {
        vec![
            command.to_owned(),
            "--prod".into(),
            self.prod.display().to_string(),
            "--dev".into(),
            self.dev.display().to_string(),
        ]
    }

    /// Runs `refresh-dev COMMAND --prod PROD --dev DEV EXTRA...`.
    fn run(&self, command: &str, extra: &[&str]) -> (i32, String, String) {
        run(refresh_dev().args(self.args(command)).args(extra))
    }

    fn backups(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.dev_dir())
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("shop.db.bak-"))
            })
            .collect();
        found.sort();
        found
    }
}

/// The columns of `table`, in order.
fn columns(db: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .expect("prepare");
    stmt.query_map([table], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("columns")
}

/// Every row of `table` (those `columns`), sorted, as debug strings.
fn rows(db: &Path, table: &str, columns: &[String]) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let list = columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn
        .prepare(&format!("SELECT {list} FROM \"{table}\""))
        .expect("prepare");
    let mut out: Vec<String> = stmt
        .query_map([], |r| {
            (0..columns.len())
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("query")
        .map(|r| format!("{:?}", r.expect("row")))
        .collect();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

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
fn plan_writes_nothing_and_says_what_would_happen() {
    for prod_mode in ["wal", "delete"] {
        let shop = Shop::with(&fixture("prod.sql"), &fixture("dev.sql"), prod_mode);
        let prod_before = folder(&shop.prod_dir());
        let dev_before = folder(&shop.dev_dir());
        // A runnable plan exits 0; --exit-code says the schemas differ (1), as git diff does.
        let (code, out, err) = shop.run("plan", &["--json", "--exit-code"]);
        assert_eq!(code, 1, "schemas differ: {out}{err}");
        let (code, out, err) = shop.run("plan", &["--json"]);
        assert_eq!(code, 0, "the run would proceed: {out}{err}");
        let report = json(&out);
        assert_eq!(report["dry_run"], true);
        assert_eq!(report["result"], "succeeded");
        assert!(!report["changes"].as_array().expect("changes").is_empty());
        let lost = report["data_impact"]
            .as_array()
            .expect("impact")
            .iter()
            .find(|i| i["kind"] == "lost")
            .expect("the fixtures drop customers.fax");
        assert_eq!(lost["column"], "fax");
        assert!(lost["rows"].as_i64().expect("rows") > 0);
        assert!(report["space"][0]["needed"].as_u64().expect("needed") > 0);
        assert!(report["preflight"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["check"] == "in use" && c["ok"] == true));
        for step in report["steps"].as_array().expect("steps") {
            assert_eq!(step["status"], "planned");
            assert!(!step["operations"].as_array().expect("ops").is_empty());
        }
        assert_eq!(folder(&shop.prod_dir()), prod_before, "{prod_mode}");
        assert_eq!(folder(&shop.dev_dir()), dev_before, "{prod_mode}");

        // `run --dry-run` is the same plan, in words.
        let (code, out, _) = shop.run("run", &["--dry-run", "-v"]);
        assert_eq!(code, 0);
        assert_eq!(shop.run("run", &["--dry-run", "--exit-code"]).0, 1);
        assert!(out.contains("would snapshot") && out.contains("customers.fax"), "{out}");
        assert_eq!(folder(&shop.dev_dir()), dev_before);
    }
}

#[test]
fn plan_of_identical_schemas_exits_zero() {
    let sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'), ('b');";
    let shop = Shop::with(sql, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);", "wal");
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("schemas identical"), "{out}");
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

const PROD_WITH_NEGATIVES: &str = "CREATE TABLE stock(id INTEGER PRIMARY KEY, sku TEXT, qty INT);
    INSERT INTO stock(sku, qty) VALUES ('a', 5), ('b', -1), ('c', 7), ('d', -3);";
const DEV_WITH_CHECK: &str = "CREATE TABLE stock(id INTEGER PRIMARY KEY, sku TEXT, qty INT CHECK (qty >= 0));";

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

/// Waits (polling, with a deadline) until the lock file `path` names `pid`:
/// the file exists a moment before its holder has it.
fn wait_for_lock(path: &Path, pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder = format!("pid {pid} ");
    while !std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(&holder)) {
        assert!(Instant::now() < deadline, "{} never named pid {pid}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_run_at_a_time_per_dev_and_the_second_says_who_holds_it() {
    let shop = Shop::with(
        PROD_WITH_NEGATIVES,
        "CREATE TABLE stock(id INTEGER PRIMARY KEY, sku TEXT, qty INT);",
        "delete",
    );
    // PROD's application holds an exclusive lock: the first run waits in its snapshot.
    let mut app = HeldConnection::start(&shop.prod, "exclusive");
    let log = shop.dir.path().join("first.log");
    let mut first = KillOnDrop(Some(
        refresh_dev()
            .args(shop.args("run"))
            .args(["--quiet", "--timeout", "60", "--log"])
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    ));
    let pid = first.0.as_ref().expect("child").id();
    let lock = shop.dev_dir().join("shop.db.refresh-dev.lock");
    wait_for_lock(&lock, pid);
    // Past its checks (DEV in use among them: a second refresh-dev reading
    // DEV at that instant would rightly stop it), it waits in its snapshot.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("\"message\":\"started\"")) {
        assert!(Instant::now() < deadline, "the first run never reached its snapshot");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (code, out, err) = shop.run("run", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(&format!("pid {pid}")) && err.contains("refresh-dev.lock"),
        "{err}"
    );
    // A plan says so too, without touching the lock.
    let (code, out, err) = shop.run("plan", &["--timeout", "0.2"]);
    assert_eq!(code, 3, "{out}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("refresh-dev.lock") && said.contains(&format!("pid {pid}")),
        "{said}"
    );
    assert_eq!(shop.run("rollback", &[]).0, 2, "rollback takes --dev only");
    let (code, _, err) = run(refresh_dev().args(["rollback", "--dev"]).arg(&shop.dev));
    if code != 3 {
        // Say why the first run let go of its lock, if it did.
        let status = first.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("rollback: {code}: {err}\nfirst run: {status:?}\nits log:\n{said}");
    }

    assert_eq!(app.ask("end"), "ok");
    assert!(first.wait(), "the first run finishes once PROD is free");
    assert_eq!(query_i64(&shop.dev, "SELECT count(*) FROM stock"), 4);
    assert!(!lock.exists());
    drop(app);
}

#[test]
fn sigterm_cleans_up_like_a_failure_and_exits_with_the_refusal_code() {
    let shop = Shop::with(
        PROD_WITH_NEGATIVES,
        "CREATE TABLE stock(id INTEGER PRIMARY KEY, sku TEXT, qty INT);",
        "delete",
    );
    let dev_before = folder(&shop.dev_dir());
    let prod_before = std::fs::read(&shop.prod).expect("read");
    let mut app = HeldConnection::start(&shop.prod, "exclusive");
    let mut child = refresh_dev()
        .args(shop.args("run"))
        .args(["--json", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_lock(&shop.dev_dir().join("shop.db.refresh-dev.lock"), child.id());
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    // PROD's writer still holds its lock: the run stops waiting for it.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the run did not stop");
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output().expect("output");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(status.code(), Some(3), "{out}{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert_eq!(json(&out)["result"], "aborted");
    assert_eq!(
        folder(&shop.dev_dir()),
        dev_before,
        "no staging, no lock, DEV untouched"
    );
    assert_eq!(app.ask("end"), "ok");
    drop(app);
    assert_eq!(std::fs::read(&shop.prod).expect("read"), prod_before);
}

#[test]
fn a_killed_runs_leftovers_go_only_once_its_process_is_gone() {
    let shop = Shop::new();
    let staging = shop.dev_dir().join(".shop.refresh-staging.db");
    let journal = shop.dev_dir().join(".shop.refresh-staging.db-journal");
    let lock = shop.dev_dir().join("shop.db.refresh-dev.lock");
    std::fs::write(&staging, b"half a copy").expect("write");
    std::fs::write(&journal, b"").expect("write");

    // The lock names a live process: its files stay, and the run refuses.
    let mut live = KillOnDrop(Some(Command::new("sleep").arg("60").spawn().expect("sleep")));
    let pid = live.0.as_ref().expect("child").id();
    std::fs::write(&lock, format!("pid {pid} refresh-dev run\n")).expect("write");
    let (code, _, err) = shop.run("run", &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert_eq!(std::fs::read(&staging).expect("still there"), b"half a copy");

    // The process is gone, but its lock records nothing it made: the
    // staging file is not provably a leftover, so it stays and the run refuses.
    if let Some(mut child) = live.0.take() {
        child.kill().expect("kill");
        child.wait().expect("wait");
    }
    let (code, _, err) = shop.run("run", &[]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(".shop.refresh-staging.db"), "{err}");
    assert_eq!(std::fs::read(&staging).expect("still there"), b"half a copy");

    // The dead run's lock records the staging file it made: the next run
    // takes the lock over and removes it, with its sidecar.
    std::fs::write(
        &lock,
        format!("pid {pid} refresh-dev run\nmade {}\n", staging.display()),
    )
    .expect("write");
    let (code, out, err) = shop.run("run", &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let removed = json(&out)["leftovers_removed"].to_string();
    assert!(removed.contains(".shop.refresh-staging.db"), "{removed}");
    let left = names(&shop.dev_dir());
    assert_eq!(left.len(), 2, "DEV and its backup only: {left:?}");
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

#[test]
fn bad_input_gets_one_clear_line_exit_2_and_changes_nothing() {
    let shop = Shop::new();
    let junk = shop.dir.path().join("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, just text that is long enough for a header.............................",
    )
    .expect("write");
    let truncated = shop.dir.path().join("truncated.db");
    let bytes = std::fs::read(&shop.dev).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let missing = shop.dir.path().join("missing.db");
    let folder_path = shop.dir.path().join("prod");
    let before = (folder(&shop.dev_dir()), folder(&shop.prod_dir()));
    let dev = shop.dev.display().to_string();
    let prod = shop.prod.display().to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec![
                "run".into(),
                "--prod".into(),
                missing.display().to_string(),
                "--dev".into(),
                dev.clone(),
            ],
            "no such file".into(),
        ),
        (
            vec![
                "run".into(),
                "--prod".into(),
                prod.clone(),
                "--dev".into(),
                missing.display().to_string(),
            ],
            "no such file".into(),
        ),
        (
            vec![
                "run".into(),
                "--prod".into(),
                folder_path.display().to_string(),
                "--dev".into(),
                dev.clone(),
            ],
            "is a directory".into(),
        ),
        (
            vec![
                "run".into(),
                "--prod".into(),
                junk.display().to_string(),
                "--dev".into(),
                dev.clone(),
            ],
            "not an SQLite database".into(),
        ),
        (
            vec![
                "run".into(),
                "--prod".into(),
                truncated.display().to_string(),
                "--dev".into(),
                dev.clone(),
            ],
            "truncated".into(),
        ),
        (
            vec!["run".into(), "--prod".into(), dev.clone(), "--dev".into(), dev.clone()],
            "same file".into(),
        ),
        (
            vec![
                "plan".into(),
                "--prod".into(),
                junk.display().to_string(),
                "--dev".into(),
                dev.clone(),
            ],
            "not an SQLite database".into(),
        ),
        (
            vec![
                "replace".into(),
                "--prod".into(),
                missing.display().to_string(),
                "--dev".into(),
                dev.clone(),
            ],
            "no such file".into(),
        ),
        (
            vec![
                "replace".into(),
                "--prod".into(),
                prod.clone(),
                "--dev".into(),
                missing.display().to_string(),
            ],
            "missing.db: no such file".into(),
        ),
        (
            vec![
                "staging".into(),
                "--prod".into(),
                prod.clone(),
                "--dev".into(),
                dev.clone(),
                "--out".into(),
                shop.dir.path().join("nowhere/x.db").display().to_string(),
            ],
            "folder does not exist".into(),
        ),
        (
            vec!["deploy".into(), missing.display().to_string()],
            "no such file".into(),
        ),
        (vec!["rollback".into(), "--dev".into(), dev.clone()], "no backup".into()),
        (
            vec![
                "run".into(),
                "--prod".into(),
                prod.clone(),
                "--dev".into(),
                dev.clone(),
                "--rename".into(),
                "nodot".into(),
            ],
            "TABLE.OLD=NEW".into(),
        ),
        (vec!["run".into(), "--prod".into(), prod.clone()], "--dev".into()),
        (
            vec![
                "run".into(),
                "--prod".into(),
                prod.clone(),
                "--dev".into(),
                dev.clone(),
                "--timeout".into(),
                "inf".into(),
            ],
            "expected a number of seconds".into(),
        ),
        (
            vec![
                "staging".into(),
                "--prod".into(),
                prod.clone(),
                "--dev".into(),
                dev.clone(),
                "--out".into(),
                dev.clone(),
            ],
            "same file".into(),
        ),
        (vec!["deploy".into(), junk.display().to_string()], "junk.db".into()),
        (
            vec![
                "snapshot".into(),
                missing.display().to_string(),
                shop.dir.path().join("x.db").display().to_string(),
            ],
            "no such file".into(),
        ),
        (
            vec!["diff".into(), dev.clone(), junk.display().to_string()],
            "not an SQLite database".into(),
        ),
        (
            vec!["apply".into(), dev.clone(), truncated.display().to_string()],
            "truncated".into(),
        ),
        (
            vec!["swap".into(), missing.display().to_string(), dev.clone()],
            "no such file".into(),
        ),
    ];
    for (args, expected) in cases {
        let (code, out, err) = run(refresh_dev().args(&args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(&expected), "{args:?}: {err}");
        // One line: `refresh-dev: error: ...`, or the tool's own `snapshot: error: ...`, or clap's.
        let first = err.lines().find(|l| l.contains("error:"));
        assert!(
            first.is_some_and(|l| l.contains(&expected) || l.contains("required")),
            "{args:?}: {err}"
        );
        assert_eq!((folder(&shop.dev_dir()), folder(&shop.prod_dir())), before, "{args:?}");
    }
}

#[test]
fn utf16_prod_and_utf8_dev_are_refused() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    let dev = dir.path().join("dev.db");
    make_db(&prod, "delete", "PRAGMA encoding = 'UTF-16le'; CREATE TABLE t(x);");
    make_db(&dev, "delete", "CREATE TABLE t(x);");
    let before = folder(dir.path());
    let (code, _, err) = run(refresh_dev().args(["run", "--prod"]).arg(&prod).arg("--dev").arg(&dev));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("encoding"), "{err}");
    assert_eq!(folder(dir.path()), before);
}

#[test]
fn the_log_has_one_json_line_per_event() {
    let shop = Shop::new();
    let log = shop.dir.path().join("refresh.log");
    let (code, _, err) = shop.run("run", &["--quiet", "--log", log.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).expect("log");
    let events: Vec<serde_json::Value> = text.lines().map(json).collect();
    assert!(events.len() >= 7, "{text}");
    for e in &events {
        for key in ["time", "elapsed", "level", "step", "message", "file"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    assert!(events
        .iter()
        .any(|e| e["step"] == "overwrite development with staging" && e["message"] == "succeeded"));
}

#[test]
fn run_live_refreshes_a_dev_its_application_has_open() {
    let shop = Shop::new();
    let mut app = HeldConnection::start(&shop.dev, "idle");
    let (code, out, err) = shop.run("run", &["--live"]);
    assert_eq!(code, 0, "{out}{err}");
    let prod_customers = query_i64(&shop.prod, "SELECT count(*) FROM customers");
    assert_eq!(
        app.ask("sql SELECT count(*) FROM customers"),
        prod_customers.to_string()
    );
    drop(app);
    assert_eq!(integrity(&shop.dev), "ok");
}

#[test]
fn the_tools_run_as_subcommands_with_their_own_arguments() {
    let shop = Shop::new();
    let copy = shop.dev_dir().join("copy.db");
    let (code, _, err) = run(refresh_dev().arg("snapshot").arg(&shop.prod).arg(&copy).arg("--quiet"));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(refresh_dev().arg("diff").arg(&shop.dev).arg(&copy));
    assert_eq!(code, 1, "{out}");
    let (code, out, err) = run(refresh_dev()
        .arg("apply")
        .arg(&shop.dev)
        .arg(&copy)
        .arg("--on-violation")
        .arg("abort"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_rows(&copy), schema_rows(&shop.dev));
    let (code, _, err) = run(refresh_dev().arg("swap").arg(&copy).arg(&shop.dev).arg("--quiet"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(shop.backups().len(), 1);
    let (code, _, _) = run(refresh_dev()
        .arg("diff")
        .arg(&shop.dev)
        .arg(&shop.backups()[0])
        .arg("--quiet"));
    assert_eq!(code, 0, "same schema");
}

/// PROD's application keeps committing transfers between accounts during the
/// run: DEV must hold one committed state of PROD (the total never changes).
fn run_under_a_busy_writer(prod_mode: &str) {
    const ACCOUNTS: i64 = 500;
    let prod_sql = format!(
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE meta(commits INTEGER NOT NULL);
         INSERT INTO meta VALUES (0);
         CREATE TABLE padding(id INTEGER PRIMARY KEY, b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ACCOUNTS})
         INSERT INTO accounts(balance) SELECT 1000 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
         INSERT INTO padding(b) SELECT randomblob(4000) FROM n;"
    );
    let dev_sql = "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, note TEXT);
         CREATE TABLE meta(commits INTEGER NOT NULL);
         CREATE TABLE padding(id INTEGER PRIMARY KEY, b BLOB);
         CREATE INDEX accounts_balance ON accounts(balance);";
    let shop = Shop::with(&prod_sql, dev_sql, prod_mode);
    let dev_schema = schema_rows(&shop.dev);
    let stop = shop.dir.path().join("stop-writer");
    let writer = KillOnDrop(Some(
        app()
            .args([
                "transfer",
                shop.prod.to_str().expect("utf-8"),
                stop.to_str().expect("utf-8"),
                "checkpoint",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn writer"),
    ));
    let started = Instant::now();
    while query_i64(&shop.prod, "SELECT commits FROM meta") < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer never got going"
        );
        std::thread::yield_now();
    }
    for round in 0..2 {
        let (code, out, err) = shop.run("run", &["--quiet", "--no-backup"]);
        assert_eq!(code, 0, "{prod_mode} round {round}: {out}{err}");
        assert_eq!(schema_rows(&shop.dev), dev_schema);
        assert_eq!(integrity(&shop.dev), "ok");
        assert_eq!(
            query_i64(&shop.dev, "SELECT sum(balance) FROM accounts"),
            ACCOUNTS * 1000,
            "{prod_mode} round {round}: a torn copy"
        );
        assert!(query_i64(&shop.dev, "SELECT commits FROM meta") >= 50);
    }
    std::fs::write(&stop, b"").expect("stop");
    assert!(writer.wait(), "the writer failed");
    assert_eq!(names(&shop.dev_dir()), vec!["shop.db".to_owned()]);
}

#[test]
fn run_gives_dev_one_committed_state_of_a_wal_prod_under_a_busy_writer() {
    run_under_a_busy_writer("wal");
}

#[test]
fn run_gives_dev_one_committed_state_of_a_rollback_prod_under_a_busy_writer() {
    run_under_a_busy_writer("delete");
}

#[test]
fn after_kill_9_at_any_moment_dev_is_old_or_new_and_the_next_run_cleans_up() {
    let big = "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB, n INT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 8000)
        INSERT INTO big(b, n) SELECT randomblob(3000), i FROM n;";
    let dev_sql = "CREATE TABLE big(id INTEGER PRIMARY KEY, b BLOB, n INT NOT NULL DEFAULT 0 CHECK (n >= 0));";
    let shop = Shop::with(big, dev_sql, "wal");
    let dev_schema = schema_rows(&shop.dev);
    let mut outcomes = (0, 0);
    // Kill points spread over the run: preflight, copy, migration, swap.
    for delay_ms in [0u64, 5, 20, 60, 100, 150, 200, 250, 300, 350, 400, 500, 700] {
        // PROD's application adds a row: a new DEV is told from the old by its count.
        make_db(&shop.prod, "wal", "INSERT INTO big(b, n) VALUES (x'00', 0);");
        let old = std::fs::read(&shop.dev).expect("read");
        let new_rows = query_i64(&shop.prod, "SELECT count(*) FROM big");
        let mut child = refresh_dev()
            .args(shop.args("run"))
            .args(["--quiet", "--keep-backups", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Wholly old or wholly new.
        assert_eq!(integrity(&shop.dev), "ok", "kill after {delay_ms} ms");
        if std::fs::read(&shop.dev).expect("read") == old {
            outcomes.0 += 1;
        } else {
            assert_eq!(schema_rows(&shop.dev), dev_schema, "kill after {delay_ms} ms");
            assert_eq!(query_i64(&shop.dev, "SELECT count(*) FROM big"), new_rows);
            outcomes.1 += 1;
        }
        // The next run takes over the dead run's lock and removes its leftovers.
        let (code, out, err) = shop.run("run", &["--quiet", "--keep-backups", "1"]);
        assert_eq!(code, 0, "after a kill at {delay_ms} ms: {out}{err}");
        assert_eq!(query_i64(&shop.dev, "SELECT count(*) FROM big"), new_rows);
        let left = names(&shop.dev_dir());
        assert_eq!(left.len(), 2, "after a kill at {delay_ms} ms: {left:?}");
        assert!(left[1].starts_with("shop.db.bak-"), "{left:?}");
    }
    // Which state each kill left depends on the machine's speed; both are fine.
    eprintln!("DEV was old after {} kills and new after {}", outcomes.0, outcomes.1);
}

#[test]
fn sigint_during_the_migration_interrupts_it_and_cleans_up() {
    let prod_sql = "CREATE TABLE big(id INTEGER PRIMARY KEY, s TEXT, n INT);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
        INSERT INTO big(s, n) SELECT hex(randomblob(16)), i FROM n;
        CREATE INDEX big_s ON big(s);";
    let dev_sql = "CREATE TABLE big(id INTEGER PRIMARY KEY, s TEXT, n INT NOT NULL DEFAULT 0 CHECK (n >= 0));
        CREATE INDEX big_s ON big(s);";
    let shop = Shop::with(prod_sql, dev_sql, "wal");
    let dev_before = folder(&shop.dev_dir());
    let log = shop.dir.path().join("run.log");
    let child = refresh_dev()
        .args(shop.args("run"))
        .args(["--json", "--log", log.to_str().expect("utf-8")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // Wait (polling the log, with a deadline) until the migration has started.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .is_ok_and(|t| t.contains(r#""message":"started","step":"migrate schema from development""#))
    {
        assert!(Instant::now() < deadline, "the migration never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let output = child.wait_with_output().expect("wait");
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(3), "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "aborted");
    assert_eq!(report["steps"][1]["status"], "failed");
    assert_eq!(report["steps"][1]["error"]["code"], "interrupted");
    assert!(report["steps"][1]["error"]["message"]
        .as_str()
        .expect("error")
        .contains("interrupted"));
    assert_eq!(report["steps"][2]["status"], "skipped");
    assert_eq!(
        folder(&shop.dev_dir()),
        dev_before,
        "DEV untouched, the staging copy gone"
    );
}

#[test]
fn a_dev_named_through_a_symbolic_link_is_refreshed_in_place_and_the_link_stays() {
    let shop = Shop::new();
    let real_dir = shop.dir.path().join("real");
    std::fs::create_dir(&real_dir).expect("mkdir");
    let real = real_dir.join("shop.db");
    std::fs::rename(&shop.dev, &real).expect("move DEV");
    std::os::unix::fs::symlink(&real, &shop.dev).expect("symlink");
    let old = std::fs::read(&real).expect("read");
    let (code, out, err) = shop.run("run", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::symlink_metadata(&shop.dev)
        .expect("link")
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_link(&shop.dev).expect("link"), real);
    assert_eq!(
        query_i64(&real, "SELECT count(*) FROM customers"),
        query_i64(&shop.prod, "SELECT count(*) FROM customers")
    );
    let left = names(&real_dir);
    assert_eq!(left.len(), 2, "the real file and its backup: {left:?}");
    assert_eq!(std::fs::read(real_dir.join(&left[1])).expect("backup"), old);
    assert_eq!(names(&shop.dev_dir()), vec!["shop.db".to_owned()], "only the link");
    // Rollback through the link puts the real file back.
    let (code, _, err) = run(refresh_dev().args(["rollback", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&real).expect("read"), old);
}

#[test]
#[ignore = "needs root"]
fn permission_denied_is_bad_input_and_changes_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root to run as nobody (root ignores permission bits)");
        return;
    }
    let shop = Shop::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_refresh-dev"));
    let before = (folder(&shop.dev_dir()), folder(&shop.prod_dir()));
    // PROD unreadable.
    chmod(&shop.prod, 0o600);
    let (code, out, err) = run(as_nobody(bin).args(shop.args("run")));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("prod/shop.db: permission denied"), "{err}");
    // PROD readable, DEV's folder not writable by this user.
    chmod(&shop.prod, 0o644);
    let (code, out, err) = run(as_nobody(bin).args(shop.args("run")));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("permission denied (create files in folder)"), "{err}");
    assert_eq!((folder(&shop.dev_dir()), folder(&shop.prod_dir())), before);
    // Writable for all, DEV open for all: the same user can refresh it.
    chmod(&shop.dev_dir(), 0o777);
    chmod(&shop.dev, 0o666);
    let (code, out, err) = run(as_nobody(bin).args(shop.args("run")));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(folder(&shop.prod_dir()), before.1, "PROD as found");
}

#[test]
fn run_passes_the_migration_hints_through() {
    let prod = "CREATE TABLE people(id INTEGER PRIMARY KEY, fullname TEXT);
        INSERT INTO people(fullname) VALUES ('Ada'), ('Grace');
        CREATE TABLE tags(id INTEGER PRIMARY KEY, tag TEXT);
        INSERT INTO tags(tag) VALUES ('prod-tag');
        CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT);
        INSERT INTO settings VALUES ('mode', 'prod');
        CREATE TABLE schema_migrations(version TEXT PRIMARY KEY);
        INSERT INTO schema_migrations VALUES ('1');";
    let dev = "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE labels(id INTEGER PRIMARY KEY, tag TEXT);
        CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT);
        INSERT INTO settings VALUES ('mode', 'dev');
        CREATE TABLE schema_migrations(version TEXT PRIMARY KEY);
        INSERT INTO schema_migrations VALUES ('1'), ('2');";
    let shop = Shop::with(prod, dev, "wal");
    let (code, out, err) = shop.run(
        "run",
        &[
            "--rename",
            "people.fullname=name",
            "--rename-table",
            "tags=labels",
            "--dev-data",
            "settings",
            "--prod-data",
            "schema_migrations",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM people WHERE name IN ('Ada', 'Grace')"),
        2
    );
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM labels WHERE tag = 'prod-tag'"),
        1
    );
    assert_eq!(query_i64(&shop.dev, "SELECT count(*) FROM settings WHERE v = 'dev'"), 1);
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM schema_migrations"),
        1,
        "PROD's, as asked"
    );
}

#[test]
fn apply_with_sql_prints_the_statements_and_writes_nothing() {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(&target, "delete", "CREATE TABLE t(a); INSERT INTO t VALUES (1);");
    make_db(&dev, "delete", "CREATE TABLE t(a, b);");
    let before = folder(dir.path());
    let (code, out, err) = run(refresh_dev().args(["apply", "--sql"]).arg(&dev).arg(&target));
    assert_eq!(code, 1, "the schemas differ: {out}{err}");
    assert!(out.contains("ALTER TABLE main.\"t\" ADD COLUMN b;"), "{out}");
    assert_eq!(folder(dir.path()), before, "nothing written, no copy left");
    // Without --sql, `apply` applies.
    let (code, out, err) = run(refresh_dev().arg("apply").arg(&dev).arg(&target));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_rows(&target), schema_rows(&dev));
}

#[test]
fn rollback_prints_one_json_object_on_every_outcome() {
    let shop = Shop::new();
    // No backup yet: an error, still one object.
    let (code, out, err) = run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 2, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["command"], "rollback");
    assert_eq!(report["exit_code"], 2);
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("no backup")),
        "{out}"
    );
    assert_eq!(err.lines().count(), 1, "the error once: {err}");
    // After a run, the backup goes back.
    assert_eq!(shop.run("run", &["--quiet"]).0, 0);
    let (code, out, err) = run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "succeeded");
    assert!(
        report["rollback"]["restored"]
            .as_str()
            .is_some_and(|p| p.contains("shop.db.bak-")),
        "{out}"
    );
}

#[test]
fn hints_that_name_nothing_are_bad_input_with_the_closest_name() {
    let shop = Shop::with(
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, fax TEXT); INSERT INTO customers(fax) VALUES ('1');
         CREATE TABLE coupons(code TEXT);",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, phone TEXT); CREATE TABLE coupons(code TEXT);",
        "delete",
    );
    let dev_before = folder(&shop.dev_dir());
    for (hint, words) in [
        (vec!["--rename", "customers.fx=phone"], vec!["fx", "did you mean fax?"]),
        (
            vec!["--rename", "customers.fax=phon"],
            vec!["phon", "did you mean phone?"],
        ),
        (
            vec!["--rename-table", "custmers=customers"],
            vec!["custmers", "did you mean customers?"],
        ),
        (vec!["--dev-data", "cupons"], vec!["cupons", "did you mean coupons?"]),
        (vec!["--prod-data", "nothing_*"], vec!["nothing_*"]),
        (vec!["--migration-table", "versions"], vec!["versions"]),
    ] {
        for command in ["plan", "run"] {
            let (code, out, err) = shop.run(command, &hint);
            assert_eq!(code, 2, "{command} {hint:?}: {out}{err}");
            for w in &words {
                assert!(err.contains(w), "{command} {hint:?}: {err}");
            }
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
    assert_eq!(folder(&shop.dev_dir()), dev_before, "nothing written");
    // Without hints the plan offers the rename, with the flag to pass.
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("customers.phone may be fax renamed") && out.contains("--rename"),
        "{out}"
    );
    // The plan's next command is the run, in full, hints included.
    let (_, out, _) = shop.run("plan", &["--rename", "customers.fax=phone", "--exit-code"]);
    let next = out.lines().find(|l| l.contains("next:")).unwrap_or_default();
    assert!(
        next.contains("refresh-dev run --prod") && next.contains("--rename customers.fax=phone"),
        "{out}"
    );
    assert!(!next.contains("--exit-code"), "{next}");
    let (code, out, err) = shop.run("run", &["--rename", "customers.fax=phone"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM customers WHERE phone = '1'"),
        1
    );
}

#[test]
fn a_swapped_prod_and_dev_is_caught_before_anything_changes() {
    // The fixtures the wrong way round: DEV (v4) named as PROD, PROD (v3) as DEV.
    let shop = Shop::new();
    let (real_prod, real_dev) = (folder(&shop.prod_dir()), folder(&shop.dev_dir()));
    let swapped = |command: &str, extra: &[&str]| {
        run(refresh_dev()
            .args([command, "--prod"])
            .arg(&shop.dev)
            .arg("--dev")
            .arg(&shop.prod)
            .args(extra))
    };
    for command in ["plan", "run", "staging"] {
        let out_file = shop.dir.path().join("out.db");
        let extra: Vec<&str> = if command == "staging" {
            vec!["--out", out_file.to_str().expect("utf-8")]
        } else {
            Vec::new()
        };
        let (code, out, err) = swapped(command, &extra);
        assert_eq!(code, 3, "{command}: {out}{err}");
        assert!(
            err.contains("behind") && err.contains("replace") && err.contains("--allow-behind"),
            "{err}"
        );
    }
    assert_eq!(folder(&shop.prod_dir()), real_prod, "the real PROD untouched");
    assert_eq!(folder(&shop.dev_dir()), real_dev);

    // Equal user_version, but PROD's migration history holds a version DEV lacks.
    let history = |versions: &str| {
        format!("CREATE TABLE t(a); CREATE TABLE schema_migrations(version TEXT); INSERT INTO schema_migrations VALUES {versions};")
    };
    let shop = Shop::with(&history("('1'), ('2'), ('3')"), &history("('1'), ('2')"), "wal");
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("schema_migrations") && err.contains("'3'"), "{err}");
    let (code, out, err) = shop.run("run", &["--allow-behind"]);
    assert_eq!(code, 0, "meant: {out}{err}");
}

#[test]
fn every_json_report_conforms_to_the_published_schema() {
    let schema = report_schema();
    let shop = Shop::new();
    let missing = shop.dir.path().join("missing.db");
    let outcomes = [
        shop.run("plan", &["--json"]).1,
        run(refresh_dev()
            .args(["plan", "--json", "--prod"])
            .arg(&missing)
            .arg("--dev")
            .arg(&shop.dev))
        .1,
        shop.run("run", &["--json"]).1,
        shop.run("replace", &["--json", "--dry-run"]).1,
        run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&shop.dev)).1,
        run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&missing)).1,
    ];
    for out in outcomes {
        let report = json(&out);
        assert_eq!(report["version"], 2, "{out}");
        if let Err(why) = conforms(&report, &schema, &schema, "report") {
            panic!("{why}\n{out}");
        }
    }
}

#[test]
fn colour_is_asked_for_with_color_and_never_sent_down_a_pipe_by_default() {
    let shop = Shop::new();
    let missing = shop.dir.path().join("missing.db");
    let plan = |extra: &[&str]| {
        run(refresh_dev()
            .args(["plan", "--prod"])
            .arg(&missing)
            .arg("--dev")
            .arg(&shop.dev)
            .args(extra))
    };
    let (_, out, err) = plan(&["--color", "always"]);
    assert!(
        out.contains("\x1b[") && err.contains("\x1b["),
        "a refusal stands out: {out}{err}"
    );
    for extra in [&[][..], &["--color", "never"][..], &["--color", "auto"][..]] {
        let (_, out, err) = plan(extra);
        assert!(!out.contains('\x1b') && !err.contains('\x1b'), "{extra:?}: {out}{err}");
    }
    let (_, out, _) = run(refresh_dev()
        .args(["diff", "--color", "always"])
        .arg(&shop.dev)
        .arg(&shop.prod));
    assert!(out.contains("\x1b["), "{out}");
}

#[test]
fn help_shows_examples_completions_and_man_pages_are_built() {
    for command in ["run", "plan", "replace", "staging", "deploy", "rollback", "completions"] {
        let (code, out, err) = run(refresh_dev().args([command, "--help"]));
        assert_eq!(code, 0, "{command}: {err}");
        assert!(
            out.contains("Examples:") && out.contains("refresh-dev"),
            "{command}: {out}"
        );
    }
    let (_, out, _) = run(refresh_dev().args(["replace", "--help"]));
    assert!(out.contains("not kept"), "replace says it discards DEV's schema: {out}");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(refresh_dev().args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("refresh-dev") && out.contains("prod"), "{shell}");
    }
    let dir = tempdir();
    let (code, _, err) = run(refresh_dev().arg("manpages").arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(dir.path().join("refresh-dev-run.1")).expect("a page per command");
    assert!(page.contains(".TH") && page.contains("prod"), "{page}");
    assert!(dir.path().join("refresh-dev.1").exists());
}

#[test]
fn a_usage_error_is_one_json_object_with_json_and_a_run_says_what_happened_in_a_few_lines() {
    let shop = Shop::new();
    let (code, out, err) = run(refresh_dev().args(["plan", "--json", "--bogus"]));
    assert_eq!(code, 2, "{err}");
    let report = json(&out);
    assert_eq!(
        (report["version"].as_u64(), report["exit_code"].as_u64()),
        (Some(2), Some(2)),
        "{out}"
    );
    assert_eq!(report["error"]["code"], "usage");
    // A successful run: a summary of at most about 15 lines, in PROD/DEV words.
    let (code, out, err) = shop.run("run", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().count() <= 15, "{out}");
    assert!(
        out.contains("DEV keeps its schema") && out.contains("lost: customers.fax: 66 values"),
        "{out}"
    );
    assert!(out.contains("rollback --dev"), "{out}");
    // The full report is there for who asks.
    let (_, out, _) = shop.run("plan", &["-v", "--allow-behind"]);
    assert!(out.contains("[1] would snapshot"), "{out}");
}

#[test]
fn the_drivers_json_says_prod_where_schema_diff_says_target() {
    let shop = Shop::new();
    for command in ["plan", "run"] {
        let (code, out, err) = shop.run(command, &["--json"]);
        assert_eq!(code, 0, "{command}: {err}");
        let report = json(&out);
        let mut migrations = vec![&report["plan"], &report["changes"], &report["data_impact"]];
        for step in report["steps"].as_array().expect("steps") {
            migrations.extend([&step["diff"], &step["apply"]]);
        }
        for part in migrations {
            let text = part.to_string();
            assert!(!text.contains("\"target"), "{command}: {text}");
            assert!(!text.contains("TARGET"), "{command}: {text}");
        }
        let from: Vec<&str> = report["plan"]
            .as_array()
            .expect("plan")
            .iter()
            .map(|t| t["rows_from"].as_str().expect("rows_from"))
            .collect();
        assert!(from.contains(&"prod"), "{command}: {from:?}");
        let diffs: Vec<&serde_json::Value> = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .flat_map(|s| [&s["diff"], &s["apply"]["diff"]])
            .filter(|d| !d.is_null())
            .collect();
        assert_eq!(diffs.len(), 1, "{command}: {report:#}");
        // PROD itself when planning; its copy, the staging file, when run.
        let prod = diffs[0]["prod"].as_str().expect("prod");
        assert!(
            prod.ends_with("prod/shop.db") || prod.ends_with(".shop.refresh-staging.db"),
            "{prod}"
        );
    }
}

#[test]
fn paths_under_the_current_folder_are_shown_relative() {
    let shop = Shop::new();
    let root = shop.dir.path().display().to_string();
    for verbose in [false, true] {
        let mut cmd = refresh_dev();
        cmd.current_dir(shop.dir.path()).args(shop.args("plan"));
        if verbose {
            cmd.arg("-v");
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("prod/shop.db") && out.contains("dev/shop.db"), "{out}");
        assert!(!out.contains(&format!("{root}/")), "verbose {verbose}: {out}");
    }
    // A refusal's one line, too.
    let blocker = shop.dev_dir().join(".shop.refresh-staging.db");
    std::fs::write(&blocker, b"not ours").expect("write");
    let (code, _, err) = run(refresh_dev().current_dir(shop.dir.path()).args(shop.args("run")));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("dev/.shop.refresh-staging.db") && !err.contains(&root),
        "{err}"
    );
}

#[test]
fn the_staging_summary_speaks_of_staging_and_leaves_dev_out_of_it() {
    let shop = Shop::new();
    let out = shop.dir.path().join("staged.db");
    for dry_run in [true, false] {
        let mut args = vec!["--out", out.to_str().expect("utf-8")];
        if dry_run {
            args.push("--dry-run");
        }
        let (code, said, err) = shop.run("staging", &args);
        assert_eq!(code, 0, "{err}");
        assert!(said.contains("staged.db gets PROD's rows in DEV's schema"), "{said}");
        assert!(said.contains("DEV is not touched"), "{said}");
        assert!(!said.contains("DEV's own rows are replaced"), "{said}");
        assert!(!said.contains("--no-backup"), "{said}");
    }
}

#[test]
fn rollback_waits_for_dev_to_be_closed_when_told_to() {
    let shop = Shop::new();
    let (code, _, err) = shop.run("run", &["--quiet"]);
    assert_eq!(code, 0, "{err}");
    let refreshed = std::fs::read(&shop.dev).expect("read");
    let app = HeldConnection::start(&shop.dev, "idle");
    let (code, _, err) = run(refresh_dev().args(["rollback", "--wait", "0", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("in use") || err.contains("open"), "{err}");
    assert_eq!(
        std::fs::read(&shop.dev).expect("read"),
        refreshed,
        "refused: DEV as it was"
    );
    let child = refresh_dev()
        .args(["rollback", "--wait", "60", "--quiet", "--dev"])
        .arg(&shop.dev)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    drop(app);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_ne!(
        std::fs::read(&shop.dev).expect("read"),
        refreshed,
        "the old DEV is back"
    );
}
