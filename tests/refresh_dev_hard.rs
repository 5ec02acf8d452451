//! `refresh-dev` when things get hard: another run, a busy writer on PROD,
//! `kill -9` at any moment, SIGINT and SIGTERM, an application with DEV
//! open, links and permissions.

#[path = "support/shop.rs"]
mod shop;
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shop::*;
use support::*;

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
    let writer = transfer_writer(&shop.prod, &stop, true);
    let started = Instant::now();
    while query_i64(&shop.prod, "SELECT commits FROM meta") < 50 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer never got going"
        );
        std::thread::yield_now();
    }
    // The last round masks as it copies (one read transaction of PROD, or
    // a private copy of a rollback-mode one): the same one committed state.
    let rules = shop.dir.path().join("rules.toml");
    std::fs::write(&rules, "[mask]\n\"padding.b\" = \"hash\"\n").expect("rules");
    let key = shop.dir.path().join("mask.key");
    let masked = [
        "--rules",
        rules.to_str().expect("utf-8"),
        "--mask-key",
        key.to_str().expect("utf-8"),
    ];
    for round in 0..3 {
        let mut args = vec!["--quiet", "--no-backup"];
        if round == 2 {
            args.extend_from_slice(&masked);
        }
        let (code, out, err) = shop.run("run", &args);
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
