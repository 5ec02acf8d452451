//! Snapshots of a live database: another process keeps committing transfers
//! between accounts while snapshots are taken. Every snapshot must be one
//! committed state: the total balance never changes, it passes
//! `integrity_check`, and it holds every commit made before it began.

mod support;

use std::path::Path;
use std::process::Command;

use std::time::{Duration, Instant};

use support::*;

const ACCOUNTS: i64 = 1000;
const BALANCE: i64 = 1000;

/// A database of at least 100 MB: accounts, a commit counter and padding.
fn bank(path: &Path, journal_mode: &str) {
    make_db(
        path,
        journal_mode,
        &format!(
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE meta(commits INTEGER NOT NULL);
             INSERT INTO meta VALUES (0);
             CREATE TABLE padding(id INTEGER PRIMARY KEY, b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ACCOUNTS})
             INSERT INTO accounts(balance) SELECT {BALANCE} FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 26000)
             INSERT INTO padding(b) SELECT randomblob(4000) FROM n;"
        ),
    );
    assert!(std::fs::metadata(path).expect("stat").len() >= 100 << 20);
}

fn commits(path: &Path) -> i64 {
    // A reader in this process, separate from the writer's and snapshot's.
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy_timeout");
    conn.query_row("SELECT commits FROM meta", [], |r| r.get(0))
        .expect("commits")
}

fn snapshots_under_a_busy_writer(journal_mode: &str, method: &str, checkpoints: bool) {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    bank(&prod, journal_mode);
    let stop = dir.path().join("stop-writer");
    let writer = transfer_writer(&prod, &stop, checkpoints);
    let started = Instant::now();
    while commits(&prod) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer never got going"
        );
        std::thread::yield_now();
    }

    for round in 0..3 {
        let dest = dir.path().join(format!("snap-{round}.db"));
        let before = commits(&prod);
        let (rc, rss_kib) = run_measuring_rss(
            Command::new(env!("CARGO_BIN_EXE_snapshot"))
                .args(["--method", method])
                .arg(&prod)
                .arg(&dest),
        );
        let after = commits(&prod);
        assert_eq!(rc, 0, "{journal_mode} round {round}: snapshot failed");
        assert!(
            after > before,
            "{journal_mode}: the writer committed during the snapshot"
        );
        assert!(rss_kib < 32 * 1024, "{journal_mode}: peak RSS {rss_kib} KiB");

        assert_eq!(integrity(&dest), "ok", "{journal_mode} round {round}");
        let total = query_i64(&dest, "SELECT sum(balance) FROM accounts");
        assert_eq!(total, ACCOUNTS * BALANCE, "{journal_mode} round {round}: a torn copy");
        let in_copy = query_i64(&dest, "SELECT commits FROM meta");
        assert!(
            (before..=after).contains(&in_copy),
            "{journal_mode} round {round}: copy holds {in_copy} commits, {before} were made before it began"
        );
        assert!(!dir.path().join(format!("snap-{round}.db-wal")).exists());
    }

    std::fs::write(&stop, b"").expect("stop");
    assert!(writer.wait(), "the writer failed");
    assert_eq!(
        query_i64(&prod, "SELECT sum(balance) FROM accounts"),
        ACCOUNTS * BALANCE
    );
}

#[test]
fn wal_mode_byte_copies_are_consistent_under_a_busy_writer() {
    // Commits pile up in the -wal (no checkpoint), as the issue asks.
    snapshots_under_a_busy_writer("wal", "byte-copy", false);
}

#[test]
fn wal_mode_byte_copies_are_consistent_while_checkpoints_run() {
    // The writer's automatic checkpoints write into the main file during the copy.
    snapshots_under_a_busy_writer("wal", "byte-copy", true);
}

#[test]
fn wal_mode_backups_are_consistent_under_a_busy_writer() {
    snapshots_under_a_busy_writer("wal", "backup-api", false);
}

#[test]
fn rollback_mode_snapshots_are_consistent_under_a_busy_writer() {
    snapshots_under_a_busy_writer("delete", "auto", false);
}
