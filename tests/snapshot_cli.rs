//! `snapshot` driven as a real binary over temporary folders: what a quiet
//! snapshot leaves behind, and every refusal.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn snapshot() -> Command {
    Command::new(env!("CARGO_BIN_EXE_snapshot"))
}

fn shop(path: &Path, journal_mode: &str) {
    make_db(
        path,
        journal_mode,
        "PRAGMA user_version = 42; PRAGMA application_id = 777;
         CREATE TABLE customer(id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE INDEX customer_name ON customer(name);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
         INSERT INTO customer(name) SELECT 'customer ' || i FROM n;",
    );
}

/// Asserts `cmd` fails with `code`, a one-line message naming `names`, and
/// leaves `dir` exactly as it was.
fn assert_refused(dir: &Path, cmd: &mut Command, code: i32, names: &[&str]) -> String {
    let before = folder(dir);
    let (rc, stdout, stderr) = run(cmd);
    assert_eq!(rc, code, "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("snapshot: error: "), "{stderr}");
    for name in names {
        assert!(stderr.contains(name), "message names {name}: {stderr}");
    }
    assert_eq!(folder(dir), before, "nothing created or changed");
    stderr
}

#[test]
fn copies_every_row_with_the_source_settings() {
    for (mode, method) in [
        ("wal", "auto"),
        ("wal", "backup-api"),
        ("delete", "auto"),
        ("delete", "backup-api"),
    ] {
        let dir = tempdir();
        let (prod, dest) = (dir.path().join("prod.db"), dir.path().join("copy.db"));
        shop(&prod, mode);
        std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let (rc, stdout, stderr) = run(snapshot().args(["--json", "--method", method]).arg(&prod).arg(&dest));
        assert_eq!(rc, 0, "{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
        assert_eq!(report["journal_mode"], if mode == "wal" { "wal" } else { "rollback" });
        assert_eq!(report["method"], if method == "auto" { "byte-copy" } else { method });
        assert_eq!(report["user_version"], 42);
        assert_eq!(report["bytes"], std::fs::metadata(&dest).expect("stat").len());
        assert_eq!(report["lock_held_seconds"].is_null(), mode == "wal");
        assert_eq!(query_i64(&dest, "SELECT count(*) FROM customer"), 2000);
        assert_eq!(query_i64(&dest, "PRAGMA user_version"), 42);
        assert_eq!(query_i64(&dest, "PRAGMA application_id"), 777);
        let header = std::fs::read(&dest).expect("read");
        assert_eq!(header[18], if mode == "wal" { 2 } else { 1 }, "WAL flag from SOURCE");
        let perms = std::fs::metadata(&dest).expect("stat").permissions().mode() & 0o777;
        assert_eq!(perms, 0o640, "SOURCE's permission bits");
        assert_eq!(
            names(dir.path()),
            ["copy.db", "prod.db"],
            "no sidecars, no temporary file"
        );
        if mode == "delete" && method == "auto" {
            assert_eq!(
                std::fs::read(&prod).expect("read"),
                header,
                "rollback mode: a byte copy"
            );
        }
    }
}

#[test]
fn includes_commits_still_only_in_the_wal() {
    let dir = tempdir();
    let (prod, dest) = (dir.path().join("prod.db"), dir.path().join("copy.db"));
    shop(&prod, "wal");
    // An app commits 500 more rows and dies without checkpointing.
    let (rc, _, err) = run(app().args([
        "crash",
        prod.to_str().expect("utf-8"),
        "PRAGMA wal_autocheckpoint=0; INSERT INTO customer(name) SELECT name || ' again' FROM customer WHERE id <= 500",
    ]));
    assert_eq!(rc, 0, "{err}");
    assert!(dir.path().join("prod.db-wal").exists());
    let before = folder(dir.path());
    let (rc, stdout, stderr) = run(snapshot().args(["--verify", "--json"]).arg(&prod).arg(&dest));
    assert_eq!(rc, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert!(report["pages_from_wal"].as_u64() > Some(0), "{report}");
    assert_eq!(report["verified"], true);
    assert_eq!(query_i64(&dest, "SELECT count(*) FROM customer"), 2500);
    assert!(!dir.path().join("copy.db-wal").exists(), "DEST needs no -wal");
    let mut after = folder(dir.path());
    after.remove("copy.db");
    assert_eq!(after, before, "PROD, its -wal and its folder unchanged");
}

#[test]
fn a_quiet_snapshot_leaves_the_source_byte_identical() {
    // An idle WAL file without sidecars, a rollback file, a PERSIST file.
    for mode in ["wal", "delete", "persist"] {
        let dir = tempdir();
        let prod_dir = dir.path().join("prod");
        std::fs::create_dir(&prod_dir).expect("mkdir");
        let prod = prod_dir.join("shop.db");
        shop(&prod, mode);
        if mode == "persist" {
            assert!(prod_dir.join("shop.db-journal").exists(), "PERSIST keeps its journal");
        }
        let before = folder(&prod_dir);
        let (rc, _, stderr) = run(snapshot().arg(&prod).arg(dir.path().join("copy.db")));
        assert_eq!(rc, 0, "{mode}: {stderr}");
        assert_eq!(folder(&prod_dir), before, "{mode}: PROD's folder as found");
    }
}

#[test]
fn a_quiet_snapshot_leaves_an_open_wal_source_byte_identical() {
    let dir = tempdir();
    let prod_dir = dir.path().join("prod");
    std::fs::create_dir(&prod_dir).expect("mkdir");
    let prod = prod_dir.join("shop.db");
    shop(&prod, "wal");
    let app = HeldConnection::start(&prod, "idle");
    assert!(prod_dir.join("shop.db-wal").exists() && prod_dir.join("shop.db-shm").exists());
    let before = folder(&prod_dir);
    let (rc, _, stderr) = run(snapshot().arg(&prod).arg(dir.path().join("copy.db")));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(
        folder(&prod_dir),
        before,
        "PROD and its -wal unchanged, -shm still there"
    );
    drop(app);
}

#[test]
fn refuses_a_missing_source() {
    let dir = tempdir();
    let missing = dir.path().join("nope.db");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg(&missing).arg(dir.path().join("c.db")),
        2,
        &["nope.db"],
    );
    assert!(msg.contains("no such file"), "{msg}");
}

#[test]
fn refuses_what_is_not_a_database() {
    let dir = tempdir();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "text.db",
            b"just some text, clearly not SQLite".to_vec(),
            "not an SQLite database",
        ),
        ("empty.db", Vec::new(), "empty"),
        ("short.db", b"SQLite format 3\0\x10\x00".to_vec(), "truncated"),
    ];
    for (name, bytes, why) in cases {
        std::fs::write(dir.path().join(name), bytes).expect("write");
        let msg = assert_refused(
            dir.path(),
            snapshot().arg(dir.path().join(name)).arg(dir.path().join("c.db")),
            2,
            &[name],
        );
        assert!(msg.contains(why), "{name}: {msg}");
    }
}

#[test]
fn refuses_a_truncated_or_corrupt_source() {
    let dir = tempdir();
    let good = dir.path().join("good.db");
    shop(&good, "delete");
    let bytes = std::fs::read(&good).expect("read");

    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg(&truncated).arg(dir.path().join("c.db")),
        2,
        &["truncated.db"],
    );
    assert!(msg.contains("truncated"), "{msg}");

    // A sound header over a schema page of garbage.
    let mut corrupt = bytes.clone();
    for b in &mut corrupt[100..4096] {
        *b = 0xA5;
    }
    let corrupt_path = dir.path().join("corrupt.db");
    std::fs::write(&corrupt_path, corrupt).expect("write");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg(&corrupt_path).arg(dir.path().join("c.db")),
        2,
        &["corrupt.db"],
    );
    assert!(msg.contains("corrupt") || msg.contains("malformed"), "{msg}");
}

#[test]
fn refuses_a_directory() {
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("adir")).expect("mkdir");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg(dir.path().join("adir")).arg(dir.path().join("c.db")),
        2,
        &["adir"],
    );
    assert!(msg.contains("directory"), "{msg}");
    let prod = dir.path().join("prod.db");
    shop(&prod, "delete");
    assert_refused(
        dir.path(),
        snapshot().arg(&prod).arg(dir.path().join("adir")),
        2,
        &["adir"],
    );
}

#[test]
fn refuses_the_same_file_by_path_symlink_or_hard_link() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    shop(&prod, "wal");
    let soft = dir.path().join("soft.db");
    std::os::unix::fs::symlink(&prod, &soft).expect("symlink");
    let hard = dir.path().join("hard.db");
    std::fs::hard_link(&prod, &hard).expect("link");
    for dest in [&prod, &soft, &hard] {
        let msg = assert_refused(
            dir.path(),
            snapshot().arg("--force").arg(&prod).arg(dest),
            2,
            &["prod.db"],
        );
        assert!(msg.contains("same file"), "{msg}");
    }
    let wal = dir.path().join("prod.db-wal");
    let msg = assert_refused(dir.path(), snapshot().arg(&prod).arg(&wal), 2, &["prod.db-wal"]);
    assert!(msg.contains("sidecar"), "{msg}");
}

#[test]
fn refuses_an_existing_dest_unless_forced() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    shop(&prod, "delete");
    let dest = dir.path().join("dest.db");
    std::fs::write(&dest, b"precious").expect("write");
    let msg = assert_refused(dir.path(), snapshot().arg(&prod).arg(&dest), 3, &["dest.db"]);
    assert!(msg.contains("--force"), "{msg}");

    // --force replaces it, but never a database with a live sidecar beside it.
    std::fs::write(dir.path().join("dest.db-wal"), b"someone's log").expect("write");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg("--force").arg(&prod).arg(&dest),
        3,
        &["dest.db"],
    );
    assert!(msg.contains("-wal"), "{msg}");
    std::fs::remove_file(dir.path().join("dest.db-wal")).expect("rm");
    let (rc, _, stderr) = run(snapshot().arg("--force").arg(&prod).arg(&dest));
    assert_eq!(rc, 0, "{stderr}");
    assert_eq!(std::fs::read(&dest).expect("read"), std::fs::read(&prod).expect("read"));
}

#[test]
fn refuses_a_missing_dest_folder() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    shop(&prod, "delete");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg(&prod).arg(dir.path().join("no-such-folder/c.db")),
        2,
        &["no-such-folder"],
    );
    assert!(msg.contains("folder does not exist"), "{msg}");
}

#[test]
fn refuses_a_hot_journal_without_repairing_it() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    shop(&prod, "delete");
    let (rc, _, err) = run(app().args([
        "crash-mid",
        prod.to_str().expect("utf-8"),
        "PRAGMA cache_size=1; UPDATE customer SET name = name || ' (changed)'",
    ]));
    assert_eq!(rc, 0, "{err}");
    let msg = assert_refused(
        dir.path(),
        snapshot().arg(&prod).arg(dir.path().join("c.db")),
        3,
        &["prod.db"],
    );
    assert!(msg.contains("hot journal"), "{msg}");
}

#[test]
#[ignore = "needs root"]
fn refuses_without_permission() {
    if !is_root() {
        eprintln!("skipped: switching to an unprivileged user needs root");
        return;
    }
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    shop(&prod, "delete");
    std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_snapshot"));
    let msg = assert_refused(
        dir.path(),
        as_nobody(&bin).arg(&prod).arg(dir.path().join("c.db")),
        2,
        &["prod.db"],
    );
    assert!(msg.contains("permission denied"), "{msg}");

    // Readable source, but a folder the user cannot write to.
    std::fs::set_permissions(&prod, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let msg = assert_refused(
        &locked,
        as_nobody(&bin).arg(&prod).arg(locked.join("c.db")),
        2,
        &["locked"],
    );
    assert!(msg.contains("permission denied"), "{msg}");
}

#[test]
#[ignore = "needs root"]
fn disk_full_leaves_nothing_behind() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempdir();
    let disk = Tmpfs::mount(dir.path(), "1m");

    // Found before copying: the source's main file alone does not fit.
    let big = dir.path().join("big.db");
    make_db(
        &big,
        "delete",
        "CREATE TABLE t(b BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO t SELECT randomblob(3000) FROM n;",
    );
    let msg = assert_refused(
        &disk.path,
        snapshot().arg(&big).arg(disk.path.join("c.db")),
        4,
        &["small-disk"],
    );
    assert!(msg.contains("disk full"), "{msg}");

    // Found while copying: a small main file whose commits are in its -wal.
    let prod = dir.path().join("prod.db");
    make_db(&prod, "wal", "CREATE TABLE t(b BLOB);");
    let (rc, _, err) = run(app().args([
        "crash",
        prod.to_str().expect("utf-8"),
        "PRAGMA wal_autocheckpoint=0; \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) \
         INSERT INTO t SELECT randomblob(3000) FROM n",
    ]));
    assert_eq!(rc, 0, "{err}");
    assert!(std::fs::metadata(&prod).expect("stat").len() < 64 << 10);
    let msg = assert_refused(
        &disk.path,
        snapshot().arg(&prod).arg(disk.path.join("c.db")),
        4,
        &["small-disk"],
    );
    assert!(
        msg.contains("disk full") && !msg.contains("needed"),
        "failed mid-copy: {msg}"
    );
}

#[test]
fn removes_a_killed_runs_leftovers_but_not_a_live_runs() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    shop(&prod, "delete");
    // pid 4194304 is above Linux's pid_max: no such process can exist.
    let dead = dir.path().join(".c.db.snapshot-4194304.tmp");
    std::fs::write(&dead, b"half a copy").expect("write");
    std::fs::write(dir.path().join(".c.db.snapshot-4194304.tmp-journal"), b"x").expect("write");
    let live = dir.path().join(format!(".c.db.snapshot-{}.tmp", std::process::id()));
    std::fs::write(&live, b"a copy in progress").expect("write");
    let (rc, stdout, stderr) = run(snapshot().arg("--json").arg(&prod).arg(dir.path().join("c.db")));
    assert_eq!(rc, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["leftovers_removed"].as_array().map(Vec::len), Some(1));
    let mut expected = vec![live.file_name().expect("name").to_string_lossy().into_owned()];
    expected.extend(["c.db".to_owned(), "prod.db".to_owned()]);
    expected.sort();
    assert_eq!(names(dir.path()), expected);
}

#[test]
fn usage_errors_exit_2() {
    let (rc, _, stderr) = run(snapshot().arg("only-one-argument"));
    assert_eq!(rc, 2, "{stderr}");
    let (rc, stdout, _) = run(snapshot().arg("--help"));
    assert_eq!(rc, 0);
    assert!(stdout.contains("--verify") && stdout.contains("Exit codes"));
}

#[test]
fn every_outcome_is_one_json_object_with_json() {
    let dir = tempdir();
    let missing = dir.path().join("missing.db");
    let (code, out, err) = run(Command::new(env!("CARGO_BIN_EXE_snapshot"))
        .arg("--json")
        .arg(&missing)
        .arg(dir.path().join("copy.db")));
    assert_eq!(code, 2, "{err}");
    let report = json(&out);
    assert_eq!(report["error"]["code"], "not_found");
    assert_eq!(report["error"]["file"], missing.to_str().expect("utf-8"));
    let (code, out, _) = run(Command::new(env!("CARGO_BIN_EXE_snapshot")).args(["--json", "--nonsense"]));
    assert_eq!(code, 2);
    assert_eq!(json(&out)["error"]["code"], "usage");
}
