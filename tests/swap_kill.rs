//! `kill -9` of `swap` at moments spread across its whole length: TARGET must
//! always open, pass `integrity_check`, and hold exactly the old rows or
//! exactly the new ones (the rows are compared, not only the check).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const ROUNDS: u32 = 50;

fn contents(path: &Path) -> String {
    // Opening read-write lets SQLite recover a hot journal or a WAL, as the
    // developer's application would on its next start.
    let conn = rusqlite::Connection::open(path).expect("open");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    conn.query_row(
        "SELECT group_concat(x || '×' || n || '×' || s, ' ') FROM \
         (SELECT x, count(*) n, sum(length(pad)) s FROM t GROUP BY x ORDER BY x)",
        [],
        |r| r.get(0),
    )
    .expect("contents")
}

fn db(path: &Path, journal_mode: &str, label: &str, rows: u32) {
    make_db(
        path,
        journal_mode,
        &format!(
            "CREATE TABLE t(x TEXT, pad BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO t SELECT '{label}', randomblob(200) FROM n;"
        ),
    );
}

fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let src = format!("{}{suffix}", from.display());
        if Path::new(&src).exists() {
            std::fs::copy(&src, format!("{}{suffix}", to.display())).expect("copy");
        }
    }
}

/// Runs `swap ARGS NEW DEV` on fresh copies, killed after `delay` (None: not killed).
fn round(templates: &Path, work: &Path, args: &[&str], delay: Option<Duration>) -> Duration {
    if work.exists() {
        std::fs::remove_dir_all(work).expect("clean");
    }
    std::fs::create_dir(work).expect("mkdir");
    copy_db(&templates.join("new.db"), &work.join("new.db"));
    copy_db(&templates.join("dev.db"), &work.join("dev.db"));
    let started = Instant::now();
    let mut child = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_swap"))
            .args(args)
            .arg(work.join("new.db"))
            .arg(work.join("dev.db"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn swap"),
    ));
    match delay {
        Some(d) => {
            std::thread::sleep(d);
            // Dropping kills it with SIGKILL (if it has not finished yet).
            drop(child);
        }
        None => assert!(child.0.take().is_some_and(|mut c| c.wait().is_ok_and(|s| s.success()))),
    }
    started.elapsed()
}

fn kill_rounds(journal_mode: &str, args: &[&str]) {
    let dir = tempdir();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("mkdir");
    db(&templates.join("new.db"), "delete", "new", 120_000); // ~30 MB
    db(&templates.join("dev.db"), journal_mode, "old", 60_000);
    if journal_mode == "wal" {
        // A crashed app's commits wait in DEV's -wal: the swap checkpoints them first.
        let (rc, _, err) = run(app().args([
            "crash",
            templates.join("dev.db").to_str().expect("utf-8"),
            "PRAGMA wal_autocheckpoint=0; INSERT INTO t SELECT 'old-wal', pad FROM t WHERE rowid <= 20000",
        ]));
        assert_eq!(rc, 0, "{err}");
    }
    let work = dir.path().join("work");
    let (old, new) = {
        copy_db(&templates.join("dev.db"), &dir.path().join("probe-dev.db"));
        (
            contents(&dir.path().join("probe-dev.db")),
            contents(&templates.join("new.db")),
        )
    };
    let length = round(&templates, &work, args, None);
    assert_eq!(contents(&work.join("dev.db")), new, "an unkilled swap completes");

    let (mut saw_old, mut saw_new) = (0, 0);
    for i in 0..ROUNDS {
        // Spread over the whole run, process start-up included, and a bit past it.
        let delay = length.mul_f64(1.2 * f64::from(i) / f64::from(ROUNDS));
        round(&templates, &work, args, Some(delay));
        let now = contents(&work.join("dev.db"));
        if now == old {
            saw_old += 1;
        } else if now == new {
            saw_new += 1;
        } else {
            panic!("round {i} (killed after {delay:?}): DEV holds a mix: {now}");
        }
    }
    eprintln!("{journal_mode} {args:?}: {saw_old} rounds left DEV old, {saw_new} new (a swap takes {length:?})");
    assert!(saw_old > 0, "some kills landed before the swap");
}

#[test]
fn kill_9_during_the_rename_path_leaves_dev_old_or_new() {
    kill_rounds("wal", &[]);
}

#[test]
fn kill_9_during_a_live_swap_leaves_dev_old_or_new() {
    kill_rounds("delete", &["--live"]);
}
