//! `swap` driven as a real binary over temporary folders, with application
//! connections held by other processes (SQLite's POSIX locks are per process).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn swap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_swap"))
}

/// A database whose table `t` holds `rows` copies of `label`.
fn db(path: &Path, journal_mode: &str, label: &str, rows: u32) {
    make_db(
        path,
        journal_mode,
        &format!(
            "CREATE TABLE t(x TEXT, pad BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO t SELECT '{label}', zeroblob(100) FROM n;"
        ),
    );
}

/// What `t` holds: `label×count` per distinct label, in order.
fn contents(path: &Path) -> String {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row(
        "SELECT coalesce(group_concat(x || '×' || n, ' '), '') FROM (SELECT x, count(*) n FROM t GROUP BY x ORDER BY x)",
        [],
        |r| r.get(0),
    )
    .expect("contents")
}

fn backups(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .expect("read_dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".bak-"))
        })
        .collect();
    found.sort();
    found
}

fn assert_refused(dir: &Path, cmd: &mut Command, code: i32, words: &[&str]) -> String {
    let before = folder(dir);
    let (rc, stdout, stderr) = run(cmd);
    assert_eq!(rc, code, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("swap: error: "), "{stderr}");
    for word in words {
        assert!(stderr.contains(word), "message names {word}: {stderr}");
    }
    assert_eq!(folder(dir), before, "nothing changed");
    stderr
}

#[test]
fn plain_swap_keeps_a_byte_identical_backup_and_the_permissions() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "delete", "new", 10);
    db(&dev, "delete", "old", 5);
    std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let old_bytes = std::fs::read(&dev).expect("read");
    let (rc, stdout, stderr) = run(swap().arg("--json").arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["method"], "exchange");
    assert_eq!(contents(&dev), "new×10");
    let backups = backups(dir.path());
    assert_eq!(backups.len(), 1);
    assert_eq!(report["backup"].as_str().map(PathBuf::from), Some(backups[0].clone()));
    assert_eq!(
        std::fs::read(&backups[0]).expect("read"),
        old_bytes,
        "backup byte-identical"
    );
    let name = backups[0].file_name().expect("name").to_string_lossy().into_owned();
    let stamp = name.strip_prefix("dev.db.bak-").expect("backup name");
    assert!(
        stamp.len() == 16 && stamp.ends_with('Z') && &stamp[8..9] == "T",
        "{name}"
    );
    assert_eq!(
        std::fs::metadata(&dev).expect("stat").permissions().mode() & 0o777,
        0o640
    );
    assert!(!new.exists(), "NEW is consumed");
    assert_eq!(
        names(dir.path()),
        ["dev.db".to_owned(), name],
        "no sidecars, no temporary files"
    );
}

#[test]
fn a_stale_wal_goes_into_the_backup_not_the_new_file() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "wal", "new", 10);
    db(&dev, "wal", "old", 5);
    let (rc, _, err) = run(app().args([
        "crash",
        dev.to_str().expect("utf-8"),
        "PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES ('crashed', NULL)",
    ]));
    assert_eq!(rc, 0, "{err}");
    assert!(dir.path().join("dev.db-wal").exists());
    let (rc, stdout, stderr) = run(swap().arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    assert!(stdout.contains("checkpointed"), "{stdout}");
    assert_eq!(contents(&dev), "new×10");
    let backups = backups(dir.path());
    assert_eq!(
        contents(&backups[0]),
        "crashed×1 old×5",
        "the crashed writer's commit is kept"
    );
    assert!(!dir.path().join("dev.db-wal").exists() && !dir.path().join("dev.db-shm").exists());
    assert_eq!(integrity(&dev), "ok");
}

#[test]
fn a_stale_hot_journal_is_never_rolled_into_the_new_file() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "delete", "new", 3000);
    db(&dev, "delete", "old", 3000);
    let (rc, _, err) = run(app().args([
        "crash-mid",
        dev.to_str().expect("utf-8"),
        "PRAGMA cache_size=1; UPDATE t SET x = 'half-done'",
    ]));
    assert_eq!(rc, 0, "{err}");
    assert!(dir.path().join("dev.db-journal").exists());
    let (rc, stdout, stderr) = run(swap().arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    assert!(stdout.contains("rolled back"), "{stdout}");
    assert_eq!(contents(&dev), "new×3000", "no old page mixed in");
    assert_eq!(
        contents(&backups(dir.path())[0]),
        "old×3000",
        "the interrupted transaction rolled back"
    );
    assert!(!dir.path().join("dev.db-journal").exists());
}

#[test]
fn inactive_persist_and_truncate_journals_are_not_stale() {
    for mode in ["persist", "truncate"] {
        let dir = tempdir();
        let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
        db(&new, "delete", "new", 3);
        db(&dev, mode, "old", 3);
        assert!(dir.path().join("dev.db-journal").exists(), "{mode} leaves its journal");
        let old_bytes = std::fs::read(&dev).expect("read");
        let (rc, _, stderr) = run(swap().arg(&new).arg(&dev));
        assert_eq!(rc, 0, "{mode}: {stderr}");
        assert_eq!(contents(&dev), "new×3");
        assert_eq!(std::fs::read(&backups(dir.path())[0]).expect("read"), old_bytes);
        assert!(!dir.path().join("dev.db-journal").exists(), "{mode}");
    }
}

#[test]
fn an_app_connection_in_any_state_is_refused_and_live_works_where_sqlite_allows() {
    for mode in ["wal", "delete"] {
        for state in ["open", "idle", "read", "write"] {
            let dir = tempdir();
            let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
            db(&new, mode, "new", 10);
            db(&dev, mode, "old", 5);
            let mut app = HeldConnection::start(&dev, state);
            let pid = app.pid().to_string();
            let msg = assert_refused(dir.path(), swap().arg(&new).arg(&dev), 3, &["dev.db", &pid, "--live"]);
            assert!(msg.contains("in use"), "{mode}/{state}: {msg}");

            // --live: blocked by a writer, and by a reader in rollback mode.
            let blocked = state == "write" || (state == "read" && mode == "delete");
            let (rc, _, stderr) = run(swap().args(["--live", "--wait", "0.5"]).arg(&new).arg(&dev));
            if blocked {
                assert_eq!(rc, 3, "{mode}/{state}: {stderr}");
                assert!(stderr.contains("locked"), "{stderr}");
                assert_eq!(app.ask("end"), "ok");
                assert_eq!(
                    app.ask("sql SELECT count(*) FROM t"),
                    "5",
                    "{mode}/{state}: DEV untouched"
                );
                continue;
            }
            assert_eq!(rc, 0, "{mode}/{state}: {stderr}");
            assert_eq!(app.ask("end"), "ok");
            assert_eq!(
                app.ask("sql SELECT x || '×' || count(*) FROM t GROUP BY x"),
                "new×10",
                "{mode}/{state}: the app reads the new data"
            );
            let backups = backups(dir.path());
            assert_eq!(backups.len(), 1, "{mode}/{state}");
            assert_eq!(contents(&backups[0]), "old×5");
            assert!(!new.exists(), "NEW is consumed");
            drop(app);
            assert_eq!(contents(&dev), "new×10");
            assert_eq!(integrity(&dev), "ok");
        }
    }
}

#[test]
fn live_refuses_a_wal_target_with_another_page_size() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    make_db(
        &new,
        "delete",
        "PRAGMA page_size=8192; CREATE TABLE t(x TEXT, pad BLOB);",
    );
    db(&dev, "wal", "old", 5);
    let msg = assert_refused(dir.path(), swap().arg("--live").arg(&new).arg(&dev), 3, &["dev.db"]);
    assert!(msg.contains("page"), "{msg}");
}

#[test]
fn a_symlinked_target_is_replaced_where_it_points_and_the_link_stays() {
    let dir = tempdir();
    let real_dir = dir.path().join("real");
    std::fs::create_dir(&real_dir).expect("mkdir");
    let (new, real, link) = (
        dir.path().join("staging.db"),
        real_dir.join("dev.db"),
        dir.path().join("dev.db"),
    );
    db(&new, "delete", "new", 10);
    db(&real, "delete", "old", 5);
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let (rc, _, stderr) = run(swap().arg(&new).arg(&link));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(std::fs::read_link(&link).expect("still a link"), real);
    assert_eq!(contents(&real), "new×10");
    assert_eq!(contents(&backups(&real_dir)[0]), "old×5");
    let (rc, _, stderr) = run(swap().arg("--undo").arg(&link));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(contents(&real), "old×5");
    assert_eq!(std::fs::read_link(&link).expect("still a link"), real);
}

#[test]
fn undo_twice_returns_to_where_it_started() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "wal", "new", 10);
    db(&dev, "wal", "old", 5);
    let (rc, _, stderr) = run(swap().arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    let after_swap = folder(dir.path());
    let (rc, _, stderr) = run(swap().arg("--undo").arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(contents(&dev), "old×5");
    assert_eq!(contents(&backups(dir.path())[0]), "new×10");
    let (rc, _, stderr) = run(swap().arg("--undo").arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(folder(dir.path()), after_swap, "back where it started");

    let lonely = dir.path().join("lonely.db");
    db(&lonely, "delete", "x", 1);
    let msg = assert_refused(dir.path(), swap().arg("--undo").arg(&lonely), 2, &["lonely.db"]);
    assert!(msg.contains("no backup"), "{msg}");
}

#[test]
fn keeps_the_newest_backups() {
    let dir = tempdir();
    let dev = dir.path().join("dev.db");
    db(&dev, "delete", "v0", 1);
    for round in 1..=4 {
        let new = dir.path().join("staging.db");
        db(&new, "delete", &format!("v{round}"), 1);
        let (rc, _, stderr) = run(swap().args(["--keep-backups", "2"]).arg(&new).arg(&dev));
        assert_eq!(rc, 0, "{stderr}");
    }
    let kept: Vec<_> = backups(dir.path()).iter().map(|b| contents(b)).collect();
    assert_eq!(kept, ["v2×1", "v3×1"], "the two newest, oldest first");
    let new = dir.path().join("staging.db");
    db(&new, "delete", "v5", 1);
    let (rc, _, stderr) = run(swap().arg("--no-backup").arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(backups(dir.path()).len(), 2, "--no-backup adds none");
    assert_eq!(contents(&dev), "v5×1");
}

#[test]
fn a_missing_target_is_a_first_refresh() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "delete", "new", 2);
    let (rc, stdout, stderr) = run(swap().arg("--json").arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["method"], "first-refresh");
    assert!(report["backup"].is_null());
    assert_eq!(names(dir.path()), ["dev.db"]);
}

#[test]
fn bad_input_changes_nothing() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "delete", "new", 2);
    db(&dev, "wal", "old", 2);

    let msg = assert_refused(
        dir.path(),
        swap().arg(dir.path().join("nope.db")).arg(&dev),
        2,
        &["nope.db"],
    );
    assert!(msg.contains("no such file"), "{msg}");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database").expect("write");
    let msg = assert_refused(dir.path(), swap().arg(&text).arg(&dev), 2, &["notes.txt"]);
    assert!(msg.contains("not an SQLite database"), "{msg}");

    let mut bytes = std::fs::read(&new).expect("read");
    bytes[16] = 3; // page size 768: not a power of two
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, bytes).expect("write");
    let msg = assert_refused(dir.path(), swap().arg(&corrupt).arg(&dev), 2, &["corrupt.db"]);
    assert!(msg.contains("corrupt"), "{msg}");

    let soft = dir.path().join("soft.db");
    std::os::unix::fs::symlink(&dev, &soft).expect("symlink");
    let hard = dir.path().join("hard.db");
    std::fs::hard_link(&dev, &hard).expect("link");
    for other in [&dev, &soft, &hard] {
        let msg = assert_refused(dir.path(), swap().arg(other).arg(&dev), 2, &["dev.db"]);
        assert!(msg.contains("same file"), "{msg}");
    }
    std::fs::remove_file(&soft).expect("rm");
    std::fs::remove_file(&hard).expect("rm");

    let adir = dir.path().join("adir");
    std::fs::create_dir(&adir).expect("mkdir");
    let msg = assert_refused(dir.path(), swap().arg(&new).arg(&adir), 2, &["adir"]);
    assert!(msg.contains("directory"), "{msg}");

    let (rc, _, _) = run(swap().arg("--undo").arg(&new).arg(&dev));
    assert_eq!(rc, 2, "--undo takes one path");
    let (rc, _, _) = run(&mut swap());
    assert_eq!(rc, 2, "usage");
}

#[test]
#[ignore = "needs root"]
fn refuses_a_folder_without_permission() {
    if !is_root() {
        eprintln!("skipped: switching to an unprivileged user needs root");
        return;
    }
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "delete", "new", 2);
    db(&dev, "delete", "old", 2);
    for f in [&new, &dev] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    }
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_swap"));
    let msg = assert_refused(
        dir.path(),
        as_nobody(&bin).arg(&new).arg(&dev),
        2,
        &["permission denied"],
    );
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
}

#[test]
#[ignore = "needs root"]
fn disk_full_is_found_before_anything_changes() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempdir();
    let disk = Tmpfs::mount(dir.path(), "1m");
    let new = dir.path().join("staging.db");
    db(&new, "delete", "new", 20_000); // ~3 MB, on another file system than DEV
    let dev = disk.path.join("dev.db");
    db(&dev, "delete", "old", 2);
    let before_new = std::fs::read(&new).expect("read");
    let msg = assert_refused(&disk.path, swap().arg(&new).arg(&dev), 4, &["small-disk"]);
    assert!(msg.contains("disk full"), "{msg}");
    assert_eq!(std::fs::read(&new).expect("read"), before_new, "NEW untouched");
}

#[test]
#[ignore = "needs root"]
fn new_on_another_file_system_is_copied_then_consumed() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let dir = tempdir();
    let disk = Tmpfs::mount(dir.path(), "16m");
    let new = dir.path().join("staging.db");
    db(&new, "delete", "new", 100);
    let dev = disk.path.join("dev.db");
    db(&dev, "delete", "old", 2);
    let (rc, stdout, stderr) = run(swap().arg("--json").arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["copied_across_file_systems"], true);
    assert_eq!(contents(&dev), "new×100");
    assert!(!new.exists());
}

#[test]
fn a_new_file_with_wal_frames_is_checkpointed_first() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "wal", "new", 3);
    let (rc, _, err) = run(app().args([
        "crash",
        new.to_str().expect("utf-8"),
        "PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES ('new-wal', NULL)",
    ]));
    assert_eq!(rc, 0, "{err}");
    db(&dev, "delete", "old", 1);
    let (rc, _, stderr) = run(swap().arg(&new).arg(&dev));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(contents(&dev), "new×3 new-wal×1");
    assert_eq!(
        names(dir.path()).len(),
        2,
        "dev.db and its backup only: {:?}",
        names(dir.path())
    );
}

#[test]
fn wait_lets_the_app_finish_first() {
    let dir = tempdir();
    let (new, dev) = (dir.path().join("staging.db"), dir.path().join("dev.db"));
    db(&new, "wal", "new", 3);
    db(&dev, "wal", "old", 1);
    let app = HeldConnection::start(&dev, "idle");
    let swapping = swap()
        .args(["--wait", "60"])
        .arg(&new)
        .arg(&dev)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Give swap time to find DEV in use and start waiting (the outcome does
    // not depend on it: without --wait, swap would have refused).
    std::thread::sleep(std::time::Duration::from_millis(300));
    drop(app);
    let out = swapping.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(contents(&dev), "new×3");
}
