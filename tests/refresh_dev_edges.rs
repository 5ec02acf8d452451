//! End to end, at the edges: what lies beside DEV and PROD (links, stale
//! sidecars, odd files, old backups, a killed run's leftovers), a live
//! application, and values no one should pass. Every test drives the real
//! `refresh-dev` binary over temporary folders and checks what a user would
//! look at: PROD's and DEV's bytes, the files left, the exit code, the message.

#[path = "support/pair.rs"]
mod pair;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pair::*;
use support::*;

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().expect("utf-8")).expect("cstring");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// Runs `refresh-dev deploy FILE`, with `--dry-run` when `dry`.
fn deploy(file: &Path, dry: bool) -> (i32, String, String) {
    let mut cmd = refresh_dev();
    cmd.arg("deploy").arg(file);
    if dry {
        cmd.arg("--dry-run");
    }
    run(&mut cmd)
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write");
}

#[test]
fn a_link_at_the_lock_files_name_is_refused_and_never_written_through() {
    let pair = Pair::new("delete");
    let prod_before = folder(&pair.prod_dir());
    let dev_before = folder(&pair.dev_dir());
    let lock = pair.dev_dir().join("shop.db.refresh-dev.lock");
    std::os::unix::fs::symlink(&pair.prod, &lock).expect("symlink");
    let dev_before_with_link = folder(&pair.dev_dir());
    for command in ["plan", "run"] {
        let (code, out, err) = pair.run(command, &[]);
        assert_eq!(code, 3, "{command}: {out}{err}");
        assert!(
            err.contains("refresh-dev.lock") && err.contains("symbolic link"),
            "{err}"
        );
        assert_eq!(folder(&pair.prod_dir()), prod_before, "{command}: PROD as it was");
        assert_eq!(
            folder(&pair.dev_dir()),
            dev_before_with_link,
            "{command}: DEV as it was"
        );
    }
    assert!(std::fs::symlink_metadata(&lock).is_ok_and(|m| m.file_type().is_symlink()));
    std::fs::remove_file(&lock).expect("rm");
    assert_eq!(folder(&pair.dev_dir()), dev_before);
}

#[test]
fn a_link_at_the_staging_name_is_refused_and_its_target_kept() {
    let pair = Pair::new("delete");
    let elsewhere = pair.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let important = elsewhere.join("important.db");
    make_db(
        &important,
        "delete",
        "CREATE TABLE keep(x); INSERT INTO keep VALUES (42);",
    );
    let important_bytes = std::fs::read(&important).expect("read");
    std::os::unix::fs::symlink("../elsewhere/important.db", pair.staging()).expect("symlink");
    let dev_before = folder(&pair.dev_dir());

    let (code, out, err) = pair.run("plan", &["--json"]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        !out.contains("important.db"),
        "the plan announces no removal there: {out}"
    );
    assert!(err.contains(".shop.refresh-staging.db"), "{err}");
    let (code, out, err) = pair.run("run", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&important).expect("still there"), important_bytes);
    assert_eq!(folder(&pair.dev_dir()), dev_before);
}

#[test]
fn a_stale_wal_at_the_staging_name_is_never_adopted() {
    let pair = Pair::new("delete");
    // A -wal with committed frames of another database (DEV-like rows).
    let other = pair.dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).expect("open");
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;")
        .expect("wal");
    conn.execute_batch(DEV_SQL).expect("sql");
    let wal = std::fs::read(sqlite_file_sidecar(&other, "-wal")).expect("the other -wal");
    drop(conn);
    let stale = sqlite_file_sidecar(&pair.staging(), "-wal");
    std::fs::write(&stale, &wal).expect("plant");
    let dev_before = folder(&pair.dev_dir());

    let (code, out, err) = pair.run("plan", &[]);
    assert_eq!(code, 3, "the plan predicts the refusal: {out}{err}");
    let (code, out, err) = pair.run("run", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains(".shop.refresh-staging.db-wal") && err.contains("stale"),
        "{err}"
    );
    assert_eq!(
        folder(&pair.dev_dir()),
        dev_before,
        "DEV and the stale file as they were"
    );

    // A killed run recorded that it made the staging file: its -wal is that
    // run's, so the next run removes it, and the copy is PROD's.
    let lock = pair.dev_dir().join("shop.db.refresh-dev.lock");
    write_file(
        &lock,
        &format!("pid 99999999 refresh-dev run\nmade {}\n", pair.staging().display()),
    );
    let (code, out, err) = pair.run("run", &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(pair.customers(&pair.dev), 600, "PROD's rows, not the stale -wal's");
    assert!(json(&out)["leftovers_removed"]
        .to_string()
        .contains("refresh-staging.db"));
    let left = names(&pair.dev_dir());
    assert_eq!(left.len(), 2, "DEV and its backup only: {left:?}");
}

#[test]
fn snapshot_never_adopts_a_stale_sidecar_at_dests_name() {
    let pair = Pair::new("delete");
    let dest = pair.dir.path().join("copy.db");
    std::fs::write(sqlite_file_sidecar(&dest, "-journal"), b"not ours").expect("plant");
    let (code, _, err) = run(refresh_dev().args(["snapshot"]).arg(&pair.prod).arg(&dest));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("copy.db-journal"), "{err}");
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read(sqlite_file_sidecar(&dest, "-journal")).expect("kept"),
        b"not ours"
    );
}

#[test]
fn a_deployment_never_deletes_an_existing_file_marked_temporary() {
    let pair = Pair::new("delete");
    let notes = pair.dir.path().join("notes.txt");
    write_file(&notes, "my notes");
    let prod_before = folder(&pair.prod_dir());
    let dev_before = folder(&pair.dev_dir());
    for (files, step) in [
        (
            "prod = \"prod/shop.db\"\ndev = { path = \"dev/shop.db\", temporary = true }",
            "op = \"replace\"\nfrom = \"prod\"\nto = \"dev\"",
        ),
        (
            "prod = \"prod/shop.db\"\nnotes = { path = \"notes.txt\", temporary = true }",
            "op = \"snapshot\"\nfrom = \"prod\"\nto = \"notes\"",
        ),
    ] {
        let file = pair.dir.path().join("deploy.toml");
        write_file(&file, &format!("[files]\n{files}\n\n[[step]]\n{step}\n"));
        for dry in [true, false] {
            let (code, out, err) = deploy(&file, dry);
            assert_eq!(code, 2, "{files} (dry run {dry}): {out}{err}");
            assert!(err.contains("temporary"), "{err}");
        }
    }
    assert_eq!(std::fs::read_to_string(&notes).expect("kept"), "my notes");
    assert_eq!(folder(&pair.prod_dir()), prod_before);
    assert_eq!(folder(&pair.dev_dir()), dev_before);
}

#[test]
fn retention_never_removes_the_backup_this_run_made() {
    let pair = Pair::new("delete");
    // A backup named while the clock was far ahead.
    let ahead = pair.dev_dir().join("shop.db.bak-20991231T235959Z");
    make_db(
        &ahead,
        "delete",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT);",
    );
    let (code, out, err) = pair.run("run", &["--keep-backups", "1", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    let backup = PathBuf::from(report["backup"].as_str().expect("backup"));
    assert!(
        backup.exists(),
        "the report names a file that exists: {}",
        backup.display()
    );
    assert_eq!(pair.customers(&backup), 2, "the backup holds DEV's own rows");
    assert!(!ahead.exists(), "keep 1: the older backup goes");
    // Rollback puts this run's backup back.
    let (code, out, err) = run(refresh_dev().args(["rollback", "--dev"]).arg(&pair.dev));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(pair.customers(&pair.dev), 2);
}

#[test]
fn live_keeps_every_commit_in_the_backup_or_the_new_dev() {
    for mode in ["wal", "delete"] {
        let pair = Pair::new(mode);
        let stop = pair.dir.path().join("stop");
        let mut app = KillOnDrop(Some(
            app()
                .args([
                    "insert",
                    pair.dev.to_str().expect("utf-8"),
                    stop.to_str().expect("utf-8"),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn app"),
        ));
        let mut stdout = std::io::BufReader::new(app.0.as_mut().and_then(|c| c.stdout.take()).expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).expect("read");
        assert_eq!(line.trim(), "started");
        let (code, out, err) = pair.run("run", &["--live", "--json"]);
        write_file(&stop, "");
        let mut committed = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut committed).expect("read");
        assert!(app.wait(), "the app ended cleanly");
        assert_eq!(code, 0, "{mode}: {out}{err}");
        let backup = PathBuf::from(json(&out)["backup"].as_str().expect("backup"));
        let ks = |db: &Path| -> std::collections::BTreeSet<i64> {
            let conn = rusqlite::Connection::open(db).expect("open");
            let mut stmt = conn.prepare("SELECT k FROM log").expect("prepare");
            stmt.query_map([], |r| r.get(0))
                .expect("query")
                .collect::<rusqlite::Result<_>>()
                .expect("rows")
        };
        let (in_backup, in_dev) = (ks(&backup), ks(&pair.dev));
        let lost: Vec<i64> = committed
            .split_whitespace()
            .map(|k| k.parse().expect("k"))
            .filter(|k| !in_backup.contains(k) && !in_dev.contains(k))
            .collect();
        assert!(lost.is_empty(), "{mode}: committed rows in neither file: {lost:?}");
        assert!(!in_backup.is_empty(), "{mode}: the app committed before the swap");
        assert_eq!(pair.customers(&pair.dev), 600, "{mode}: PROD's rows");
    }
}

#[test]
fn snapshot_force_never_replaces_a_fifo_or_a_device() {
    let pair = Pair::new("delete");
    let fifo = pair.dir.path().join("fifo");
    mkfifo(&fifo);
    let mut targets = vec![fifo.clone()];
    if is_root() {
        let null = pair.dir.path().join("null");
        let c = std::ffi::CString::new(null.to_str().expect("utf-8")).expect("cstring");
        // SAFETY: a valid path; makes a character device like /dev/null.
        let rc = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o666, libc::makedev(1, 3)) };
        assert_eq!(rc, 0, "mknod");
        targets.push(null);
    }
    for target in targets {
        let child = refresh_dev()
            .args(["snapshot", "--force"])
            .arg(&pair.prod)
            .arg(&target)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (code, err) = finish_within(child, Duration::from_secs(30));
        assert_eq!(code, 2, "{}: {err}", target.display());
        assert!(err.contains("not a regular file"), "{err}");
        let t = std::fs::symlink_metadata(&target).expect("still there").file_type();
        assert!(!t.is_file(), "{} was left as it was", target.display());
    }
}

#[test]
fn a_fifo_as_prod_or_dev_is_bad_input_at_once() {
    let pair = Pair::new("delete");
    let fifo = pair.dir.path().join("fifo.db");
    mkfifo(&fifo);
    let (p, d, f) = (
        pair.prod.display().to_string(),
        pair.dev.display().to_string(),
        fifo.display().to_string(),
    );
    let cases: Vec<Vec<&str>> = vec![
        vec!["run", "--prod", &f, "--dev", &d],
        vec!["run", "--prod", &p, "--dev", &f],
        vec!["plan", "--prod", &f, "--dev", &d],
        vec!["plan", "--prod", &p, "--dev", &f],
        vec!["diff", &f, &d],
        vec!["diff", &d, &f],
        vec!["swap", &f, &d],
        vec!["swap", &p, &f],
        vec!["snapshot", &f, "unused.db"],
    ];
    for args in cases {
        let child = refresh_dev()
            .args(&args)
            .current_dir(pair.dir.path())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (code, err) = finish_within(child, Duration::from_secs(30));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("FIFO") && err.contains("fifo.db"), "{args:?}: {err}");
    }
}

#[test]
fn a_log_that_names_a_file_of_the_run_is_bad_input() {
    let pair = Pair::new("wal");
    let prod_before = folder(&pair.prod_dir());
    let dev_before = folder(&pair.dev_dir());
    let staging = pair.staging();
    let names = [
        pair.prod.clone(),
        pair.dev.clone(),
        sqlite_file_sidecar(&pair.prod, "-wal"),
        sqlite_file_sidecar(&pair.dev, "-journal"),
        staging,
    ];
    for log in &names {
        for command in ["plan", "run"] {
            let (code, out, err) = pair.run(command, &["--log", log.to_str().expect("utf-8")]);
            assert_eq!(code, 2, "{command} --log {}: {out}{err}", log.display());
            assert!(err.contains("--log"), "{err}");
        }
    }
    assert_eq!(folder(&pair.prod_dir()), prod_before);
    assert_eq!(folder(&pair.dev_dir()), dev_before);
}

#[test]
fn a_killed_runs_empty_wal_and_shm_beside_prod_are_removed_by_the_next_run() {
    let pair = Pair::new("delete");
    let prod_before = folder(&pair.prod_dir());
    assert_eq!(prod_before.len(), 1, "an idle WAL-mode PROD: no -wal, no -shm");
    // Kill runs early, while PROD may be open; each next run cleans up.
    for attempt in 0..5 {
        let mut child = refresh_dev()
            .args(pair.args("run"))
            .args(["--quiet", "--keep-backups", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // Kill as soon as PROD's -wal appears (or the run ends first).
        let wal = sqlite_file_sidecar(&pair.prod, "-wal");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !wal.exists() && child.try_wait().expect("try_wait").is_none() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let _ = child.kill();
        let _ = child.wait();
        let (code, out, err) = pair.run("run", &["--quiet", "--keep-backups", "1"]);
        assert_eq!(code, 0, "attempt {attempt}: {out}{err}");
        assert_eq!(
            folder(&pair.prod_dir()),
            prod_before,
            "attempt {attempt}: PROD's folder as found"
        );
    }
    // The same from a planted record: the lock of a dead run that read PROD.
    std::fs::write(sqlite_file_sidecar(&pair.prod, "-wal"), b"").expect("wal");
    std::fs::write(sqlite_file_sidecar(&pair.prod, "-shm"), vec![0u8; 32768]).expect("shm");
    write_file(
        &pair.dev_dir().join("shop.db.refresh-dev.lock"),
        &format!("pid 99999999 refresh-dev run\nreads {}\n", pair.prod.display()),
    );
    let (code, out, err) = pair.run("run", &["--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(folder(&pair.prod_dir()), prod_before);
}

#[test]
fn a_wal_beside_prod_that_holds_frames_is_never_removed() {
    let pair = Pair::new("delete");
    // PROD's application left committed frames in its -wal (not checkpointed).
    let conn = rusqlite::Connection::open(&pair.prod).expect("open");
    conn.execute_batch("PRAGMA wal_autocheckpoint=0; INSERT INTO customers(name) VALUES ('late');")
        .expect("sql");
    // Leave the -wal behind as a crash would.
    std::mem::forget(conn);
    let wal = std::fs::read(sqlite_file_sidecar(&pair.prod, "-wal")).expect("-wal");
    assert!(wal.len() > 32);
    write_file(
        &pair.dev_dir().join("shop.db.refresh-dev.lock"),
        &format!("pid 99999999 refresh-dev run\nreads {}\n", pair.prod.display()),
    );
    let (code, out, err) = pair.run("run", &["--quiet"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read(sqlite_file_sidecar(&pair.prod, "-wal")).expect("-wal"),
        wal
    );
    assert_eq!(pair.customers(&pair.dev), 601, "the -wal's commit is in the copy");
}

#[test]
fn durations_beyond_the_bound_are_usage_errors_never_panics() {
    let pair = Pair::new("delete");
    let (p, d) = (pair.prod.display().to_string(), pair.dev.display().to_string());
    let cases: Vec<Vec<&str>> = vec![
        vec!["swap", "--wait", "1e20", &p, &d],
        vec!["swap", "--wait", "inf", &p, &d],
        vec!["swap", "--busy-timeout", "inf", &p, &d],
        vec!["swap", "--busy-timeout", "nan", &p, &d],
        vec!["snapshot", "--timeout", "2200000", &p, "copy.db"],
        vec!["run", "--prod", &p, "--dev", &d, "--timeout", "604801"],
        vec!["plan", "--prod", &p, "--dev", &d, "--timeout", "-1"],
    ];
    let before = folder(&pair.dev_dir());
    for args in cases {
        let (code, out, err) = run(refresh_dev().args(&args).current_dir(pair.dir.path()));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let file = pair.dir.path().join("deploy.toml");
    write_file(
        &file,
        "[files]\nprod = \"prod/shop.db\"\ncopy = \"copy.db\"\n\n[[step]]\nop = \"snapshot\"\nfrom = \"prod\"\nto = \"copy\"\ntimeout = 2.2e6\n",
    );
    let (code, out, err) = run(refresh_dev().arg("deploy").arg(&file));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("longest wait"), "{err}");
    assert_eq!(folder(&pair.dev_dir()), before);
    assert!(!pair.dir.path().join("copy.db").exists());
}

#[test]
fn glob_patterns_never_backtrack_exponentially() {
    let pair = Pair::new("delete");
    let child = refresh_dev()
        .args(pair.args("plan"))
        .args(["--dev-data", "*a*a*a*a*a*a*a*a*a*a*a*a*a*b"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The table names are short; a long one is the worst case for the matcher.
    let (code, err) = finish_within(child, Duration::from_secs(60));
    assert!(code == 0 || code == 1 || code == 2, "{err}");
    assert!(!schema_diff::glob_match(
        "*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
        &"a".repeat(40)
    ));
}

#[test]
fn wrong_exit_codes_are_right_now() {
    let pair = Pair::new("delete");
    // A link loop as DEV is bad input.
    let looped = pair.dev_dir().join("loop.db");
    std::os::unix::fs::symlink("loop.db", &looped).expect("symlink");
    let (code, _, err) = run(refresh_dev()
        .args(["run", "--prod"])
        .arg(&pair.prod)
        .arg("--dev")
        .arg(&looped));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("loop.db"), "{err}");
    std::fs::remove_file(&looped).expect("rm");

    // /dev/zero is a character device, not an empty file.
    let (code, _, err) = run(refresh_dev()
        .args(["run", "--prod", "/dev/zero", "--dev"])
        .arg(&pair.dev));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("character device"), "{err}");

    // An existing rejects file is a refusal, decided before anything changes.
    let rejects = pair.dir.path().join("rejects.sqlite");
    write_file(&rejects, "mine");
    let dev_before = folder(&pair.dev_dir());
    let file = pair.dir.path().join("deploy.toml");
    write_file(
        &file,
        "[files]\nprod = \"prod/shop.db\"\ndev = \"dev/shop.db\"\nstaging = { path = \"dev/.shop.refresh-staging.db\", temporary = true }\n\n\
         [[step]]\nop = \"snapshot\"\nfrom = \"prod\"\nto = \"staging\"\n\n\
         [[step]]\nop = \"apply\"\nschema = \"dev\"\nto = \"staging\"\non_violation = \"skip\"\nrejects = \"rejects.sqlite\"\n\n\
         [[step]]\nop = \"swap\"\nfrom = \"staging\"\nto = \"dev\"\n",
    );
    for dry in [true, false] {
        let (code, out, err) = deploy(&file, dry);
        assert_eq!(code, 3, "dry run {dry}: {out}{err}");
        assert!(err.contains("rejects.sqlite"), "{err}");
    }
    assert_eq!(std::fs::read_to_string(&rejects).expect("kept"), "mine");
    assert_eq!(folder(&pair.dev_dir()), dev_before);

    // snapshot --verify of a corrupt PROD names PROD as corrupt: bad input.
    let corrupt = pair.dir.path().join("corrupt.db");
    make_db(
        &corrupt,
        "delete",
        "CREATE TABLE t(x TEXT); CREATE INDEX t_x ON t(x);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
         INSERT INTO t SELECT hex(randomblob(40)) FROM n;",
    );
    let mut bytes = std::fs::read(&corrupt).expect("read");
    // A whole page in the middle of the index's b-tree, overwritten.
    let page = 4096;
    let middle = (bytes.len() / page / 2) * page;
    for b in &mut bytes[middle..middle + page] {
        *b = 0x5a;
    }
    std::fs::write(&corrupt, &bytes).expect("write");
    let copy = pair.dir.path().join("copy-of-corrupt.db");
    let (code, _, err) = run(refresh_dev().args(["snapshot", "--verify"]).arg(&corrupt).arg(&copy));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("corrupt.db") && err.contains("corrupt"), "{err}");
    assert!(!copy.exists());
}

#[test]
#[ignore = "needs root"]
fn a_dev_its_user_cannot_write_is_refused_before_anything_changes() {
    if !is_root() {
        eprintln!("skipped: needs root to run as nobody (root ignores permission bits)");
        return;
    }
    let pair = Pair::new("wal");
    let nobody = |p: &Path| {
        let c = std::ffi::CString::new(p.to_str().expect("utf-8")).expect("cstring");
        // SAFETY: a valid path.
        unsafe { libc::chown(c.as_ptr(), 65534, 65534) };
    };
    for p in [
        pair.dir.path(),
        &pair.prod_dir(),
        &pair.dev_dir(),
        &pair.prod,
        &pair.dev,
    ] {
        nobody(p);
    }
    std::fs::set_permissions(&pair.dev, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let dev_before = folder(&pair.dev_dir());
    let prod_before = folder(&pair.prod_dir());
    let (code, out, err) = run(as_nobody(Path::new(env!("CARGO_BIN_EXE_refresh-dev"))).args(pair.args("run")));
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("permission denied") && err.contains("shop.db"), "{err}");
    assert_eq!(folder(&pair.dev_dir()), dev_before, "no -wal or -shm left beside DEV");
    assert_eq!(folder(&pair.prod_dir()), prod_before);
}

#[test]
fn plan_predicts_what_run_refuses_and_skip_leaves_out_what_plan_counted() {
    // (PROD, DEV, rows that break DEV's schema, can skip leave them out?)
    let cases: &[(&str, &str, i64, bool)] = &[
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); INSERT INTO t(e) VALUES ('a'),('a'),('b'),('a');",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); CREATE UNIQUE INDEX t_e ON t(e);",
            2,
            true,
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); INSERT INTO t(e) VALUES ('a'),('A'),('b');",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); CREATE UNIQUE INDEX t_e ON t(e COLLATE NOCASE);",
            1,
            true,
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT, live INT); INSERT INTO t(e, live) VALUES ('a',1),('a',1),('a',0),('a',NULL);",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT, live INT); CREATE UNIQUE INDEX t_e ON t(e) WHERE live = 1;",
            1,
            true,
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); INSERT INTO t(e) VALUES ('a'),('A'),('b'),(NULL),(NULL);",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); CREATE UNIQUE INDEX t_e ON t(lower(e));",
            1,
            true,
        ),
        (
            "CREATE TABLE t(k INT, v TEXT); INSERT INTO t VALUES (1,'x'),(1,'y'),('1','z'),(2,'w');",
            "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);",
            2,
            true,
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT); INSERT INTO t(e) VALUES ('a'),('a'),('b');",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, e TEXT, z INT); CREATE UNIQUE INDEX t_e ON t(e);",
            1,
            true,
        ),
        (
            "CREATE TABLE t(k TEXT PRIMARY KEY, v INT) WITHOUT ROWID; INSERT INTO t VALUES ('a',-1),('b',2);",
            "CREATE TABLE t(k TEXT PRIMARY KEY, v INT CHECK (v > 0)) WITHOUT ROWID;",
            1,
            false,
        ),
        (
            "CREATE TABLE t(id INTEGER PRIMARY KEY, j TEXT); INSERT INTO t(j) VALUES ('{}'),('nope');",
            "CREATE TABLE t(id INTEGER PRIMARY KEY, j TEXT, x TEXT GENERATED ALWAYS AS (json_extract(j, '$.a')) STORED);",
            -1,
            false,
        ),
    ];
    for (prod_sql, dev_sql, breaking, skippable) in cases {
        let pair = small_pair(prod_sql, dev_sql);
        let prod_rows = query_i64(&pair.prod, "SELECT count(*) FROM t");
        let dev_before = folder(&pair.dev_dir());
        for skip in [false, true] {
            let extra: &[&str] = if skip { &["--on-violation", "skip"] } else { &[] };
            let (plan_code, plan_out, plan_err) = pair.run("plan", &[extra, &["--json"]].concat());
            let (run_code, run_out, run_err) = pair.run("run", &[extra, &["--json"]].concat());
            let refused = !skip || !skippable;
            let context = format!("{dev_sql} (skip {skip}): plan {plan_out}{plan_err} run {run_out}{run_err}");
            assert_eq!(plan_code, if refused { 3 } else { 0 }, "{context}");
            assert_eq!(run_code, if refused { 3 } else { 0 }, "{context}");
            // Every message names the rows; none advises what was already passed.
            if refused {
                assert!(!(skip && run_err.contains("pass --on-violation skip")), "{context}");
                assert!(
                    !run_err.contains("WITHOUT ROWID") || dev_sql.contains("WITHOUT ROWID"),
                    "{context}"
                );
                assert_eq!(folder(&pair.dev_dir()), dev_before, "{context}");
            } else {
                let predicted: i64 = json(&plan_out)["data_impact"]
                    .as_array()
                    .expect("impact")
                    .iter()
                    .filter(|i| i["kind"] == "violation")
                    .map(|i| i["rows"].as_i64().expect("rows"))
                    .sum();
                assert_eq!(predicted, *breaking, "{context}");
                let left = query_i64(&pair.dev, "SELECT count(*) FROM t");
                assert_eq!(left, prod_rows - breaking, "{context}");
                assert_eq!(json(&run_out)["rejects"]["rows"], *breaking, "{context}");
            }
        }
    }
}

#[test]
fn a_foreign_key_to_a_table_dev_lacks_is_a_warning_and_the_rows_are_carried() {
    // As vaultwarden's history leaves it: ciphers renamed to oldCiphers
    // (SQLite rewrote the reference), a new ciphers made, oldCiphers dropped.
    let pair = small_pair(
        "CREATE TABLE ciphers(uuid TEXT PRIMARY KEY, name TEXT);
         CREATE TABLE attachments(id TEXT PRIMARY KEY, cipher_uuid TEXT REFERENCES ciphers(uuid));
         INSERT INTO ciphers VALUES ('c1', 'a'), ('c2', 'b');
         INSERT INTO attachments VALUES ('a1', 'c1'), ('a2', 'c2');",
        "CREATE TABLE ciphers(uuid TEXT PRIMARY KEY, name TEXT);
         CREATE TABLE attachments(id TEXT PRIMARY KEY, cipher_uuid TEXT REFERENCES ciphers(uuid));
         ALTER TABLE ciphers RENAME TO oldCiphers;
         CREATE TABLE ciphers(uuid TEXT PRIMARY KEY, name TEXT, extra INT);
         DROP TABLE oldCiphers;",
    );
    let (code, out, err) = pair.run("plan", &["--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let warnings = json(&out)["steps"][1]["diff"]["warnings"].to_string();
    assert!(
        warnings.contains("attachments") && warnings.contains("oldCiphers"),
        "{warnings}"
    );
    let (code, out, err) = pair.run("run", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("warning: attachments"), "{out}");
    assert_eq!(query_i64(&pair.dev, "SELECT count(*) FROM attachments"), 2);
}

#[test]
fn migration_history_tables_take_devs_rows() {
    let pair = small_pair(
        "CREATE TABLE migrations(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO migrations(name) VALUES ('v1');
         CREATE TABLE my_versions(v INT); INSERT INTO my_versions VALUES (1);
         CREATE TABLE app_migration_log(v INT); INSERT INTO app_migration_log VALUES (1);
         CREATE TABLE \"__EFMigrationsHistory\"(id TEXT); INSERT INTO \"__EFMigrationsHistory\" VALUES ('v1');",
        "CREATE TABLE migrations(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO migrations(name) VALUES ('v1'), ('v2');
         CREATE TABLE my_versions(v INT); INSERT INTO my_versions VALUES (1), (2);
         CREATE TABLE app_migration_log(v INT); INSERT INTO app_migration_log VALUES (1), (2);
         CREATE TABLE \"__EFMigrationsHistory\"(id TEXT); INSERT INTO \"__EFMigrationsHistory\" VALUES ('v1'), ('v2');",
    );
    let (code, out, err) = pair.run("plan", &["--json"]);
    assert!(code <= 1, "{out}{err}");
    let warnings = json(&out)["steps"][1]["diff"]["warnings"].to_string();
    assert!(
        warnings.contains("app_migration_log") && warnings.contains("--migration-table"),
        "{warnings}"
    );
    let (code, out, err) = pair.run("run", &["--migration-table", "my_versions"]);
    assert_eq!(code, 0, "{out}{err}");
    for (table, rows) in [
        ("migrations", 2),
        ("\"__EFMigrationsHistory\"", 2),
        ("my_versions", 2),
        ("app_migration_log", 1),
    ] {
        assert_eq!(
            query_i64(&pair.dev, &format!("SELECT count(*) FROM {table}")),
            rows,
            "{table}"
        );
    }
}
