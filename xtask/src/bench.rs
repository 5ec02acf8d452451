//! `cargo xtask bench`: speed goals live here, not in timed tests. Every
//! figure is measured in the same run as the tools it is compared with.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::{build_binaries, root};

/// Wall time and peak RSS of one command.
pub(crate) struct Measure {
    pub label: String,
    pub seconds: f64,
    pub rss_mib: f64,
}

/// Runs `argv` once, returning its wall time and peak RSS (wait4).
pub(crate) fn measure(label: &str, argv: &[&str]) -> Result<Measure> {
    let started = Instant::now();
    let child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot run {}", argv[0]))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: waiting for our own child with valid out-pointers.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, usage.as_mut_ptr()) };
    let seconds = started.elapsed().as_secs_f64();
    std::mem::forget(child);
    if rc != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{label}: {argv:?} failed (status {status})");
    }
    // SAFETY: wait4 succeeded and filled the struct.
    let usage = unsafe { usage.assume_init() };
    Ok(Measure {
        label: label.to_owned(),
        seconds,
        rss_mib: usage.ru_maxrss as f64 / 1024.0,
    })
}

/// The median of three runs of `argv`, each after `reset` and a `sync`
/// (so no run pays for another's dirty pages).
pub(crate) fn median_of_3(label: &str, argv: &[&str], mut reset: impl FnMut() -> Result<()>) -> Result<Measure> {
    let mut runs = Vec::new();
    for _ in 0..3 {
        reset()?;
        Command::new("sync").status().context("sync")?;
        runs.push(measure(label, argv)?);
    }
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    Ok(runs.swap_remove(1))
}

/// A new database at `path` made by `sql`.
pub(crate) fn db_from_sql(path: &Path, sql: &str) -> Result<()> {
    remove_db(path);
    let conn = rusqlite::Connection::open(path)?;
    conn.execute_batch(sql)?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

pub(crate) fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// A database of about `mib` MiB in `journal_mode`, rebuilt only when missing.
fn build_db(path: &Path, mib: u64, journal_mode: &str) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    println!("building {} ({mib} MiB, {journal_mode})…", path.display());
    let tmp = PathBuf::from(format!("{}.building", path.display()));
    remove_db(&tmp);
    let conn = rusqlite::Connection::open(&tmp)?;
    let rows = mib * 1024 * 1024 / 4200;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=DELETE; PRAGMA synchronous=OFF;
         CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL, note BLOB);
         CREATE INDEX accounts_owner ON accounts(owner);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO accounts(owner, balance, note) SELECT 'owner ' || (i % 5000), i % 1000, randomblob(4000) FROM n;
         PRAGMA journal_mode={journal_mode};"
    ))?;
    conn.close().map_err(|(_, e)| e)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `cargo xtask bench snapshot [MiB]`.
pub fn snapshot(mib: u64) -> Result<()> {
    let bin = build_binaries(true)?.join("snapshot");
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let have_sqlite3 = Command::new("sqlite3").arg("--version").output().is_ok();
    if !have_sqlite3 {
        println!("note: no sqlite3 CLI on PATH: .backup and VACUUM INTO are left out");
    }
    for mode in ["delete", "wal"] {
        let src = dir.join(format!("bench-{mode}-{mib}.db"));
        build_db(&src, mib, mode)?;
        let dest = dir.join("copy.db");
        let s = |p: &Path| p.to_str().map(str::to_owned).context("non-UTF-8 path");
        let (src_s, dest_s) = (s(&src)?, s(&dest)?);
        let size = std::fs::metadata(&src)?.len();
        // Warm the page cache so every tool reads from memory alike.
        measure("warm-up", &["cat", &src_s])?;

        let mut rows = Vec::new();
        // Each tool runs three times from a clean state (the previous copy
        // removed and written back, so no run pays for another's dirty
        // pages); the median is kept.
        let mut run = |label: &str, argv: &[&str]| -> Result<()> {
            rows.push(median_of_3(label, argv, || {
                remove_db(&dest);
                Ok(())
            })?);
            Ok(())
        };
        run("cat > /dev/null (read limit)", &["cat", &src_s])?;
        run("cp", &["cp", &src_s, &dest_s])?;
        run(
            "cp + sync",
            &["sh", "-c", &format!("cp '{src_s}' '{dest_s}' && sync '{dest_s}'")],
        )?;
        if have_sqlite3 {
            run("sqlite3 .backup", &["sqlite3", &src_s, &format!(".backup '{dest_s}'")])?;
            run(
                "sqlite3 VACUUM INTO",
                &["sqlite3", &src_s, &format!("VACUUM INTO '{dest_s}'")],
            )?;
        }
        let snap = bin.to_str().context("non-UTF-8 path")?;
        run(
            "snapshot --method backup-api",
            &[snap, "--quiet", "--method", "backup-api", &src_s, &dest_s],
        )?;
        run("snapshot (byte-copy, the default)", &[snap, "--quiet", &src_s, &dest_s])?;
        remove_db(&dest);

        let find = |label: &str| rows.iter().find(|m| m.label == label).map(|m| m.seconds);
        let (cp_sync, backup) = (find("cp + sync"), find("sqlite3 .backup"));
        println!(
            "\n{mode} mode, {:.0} MiB, warm cache, median of 3 runs",
            size as f64 / (1024.0 * 1024.0)
        );
        println!(
            "{:<34} {:>8} {:>10} {:>12} {:>12}",
            "tool", "seconds", "peak RSS", "÷ cp+sync", "÷ .backup"
        );
        for m in &rows {
            let ratio = |base: Option<f64>| base.map_or("-".to_owned(), |b| format!("{:.2}x", m.seconds / b));
            println!(
                "{:<34} {:>8.3} {:>7.1} MiB {:>12} {:>12}",
                m.label,
                m.seconds,
                m.rss_mib,
                ratio(cp_sync),
                ratio(backup)
            );
        }
    }
    println!(
        "\nGoals: rollback mode within 1.1x of cp + sync; WAL mode at least 2x faster than .backup \
         (÷ .backup at most 0.5x); peak RSS under 32 MiB."
    );
    Ok(())
}

/// `cargo xtask bench apply [MiB]`: the same schema change applied by
/// `schema-diff --apply` and as hand-written SQL run by the sqlite3 CLI, each
/// on a fresh copy of the same database (the copying is not timed).
pub fn apply(mib: u64) -> Result<()> {
    let bin = build_binaries(true)?.join("schema-diff");
    let bin = bin.to_str().context("non-UTF-8 path")?.to_owned();
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    if Command::new("sqlite3").arg("--version").output().is_err() {
        bail!("bench apply needs the sqlite3 CLI for the hand-written SQL");
    }
    let src = dir.join(format!("bench-delete-{mib}.db"));
    build_db(&src, mib, "delete")?;
    let work = dir.join("apply-target.db");
    let dev = dir.join("apply-dev.db");
    let s = |p: &Path| p.to_str().map(str::to_owned).context("non-UTF-8 path");
    let (work_s, dev_s) = (s(&work)?, s(&dev)?);
    let table =
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL, note BLOB)";
    let cases: [(&str, String, String); 3] = [
        (
            "rebuild (a new CHECK)",
            format!("{}; CREATE INDEX accounts_owner ON accounts(owner);",
                table.replace("balance INTEGER NOT NULL", "balance INTEGER NOT NULL CHECK (balance >= 0)")),
            format!(
                "PRAGMA foreign_keys=OFF; BEGIN; {}; INSERT INTO new_accounts SELECT * FROM accounts; \
                 DROP TABLE accounts; ALTER TABLE new_accounts RENAME TO accounts; \
                 CREATE INDEX accounts_owner ON accounts(owner); COMMIT;",
                table
                    .replace("accounts(", "new_accounts(")
                    .replace("balance INTEGER NOT NULL", "balance INTEGER NOT NULL CHECK (balance >= 0)")
            ),
        ),
        (
            "added column (no rebuild)",
            format!("{}; CREATE INDEX accounts_owner ON accounts(owner);", table.replace("note BLOB)", "note BLOB, flag INTEGER)")),
            "ALTER TABLE accounts ADD COLUMN flag INTEGER;".to_owned(),
        ),
        (
            "dropped NOT NULL (text only)",
            format!("{}; CREATE INDEX accounts_owner ON accounts(owner);", table.replace("owner TEXT NOT NULL", "owner TEXT")),
            "PRAGMA writable_schema=ON; UPDATE sqlite_schema SET sql = replace(sql, 'owner TEXT NOT NULL', 'owner TEXT') \
             WHERE name = 'accounts'; PRAGMA schema_version = 1000; PRAGMA writable_schema=OFF;"
                .to_owned(),
        ),
    ];
    // The bench database's own definition must match the one assumed here.
    println!("\nschema-diff --apply, {mib} MiB table, warm cache, median of 3 runs");
    println!(
        "{:<30} {:>14} {:>14} {:>8} {:>12}",
        "change", "hand SQL (s)", "apply (s)", "ratio", "apply RSS"
    );
    for (label, dev_sql, hand_sql) in cases {
        db_from_sql(&dev, &dev_sql)?;
        let timed = |argv: &[&str]| {
            median_of_3(label, argv, || {
                remove_db(&work);
                std::fs::copy(&src, &work)?;
                Ok(())
            })
        };
        let hand = timed(&["sqlite3", &work_s, &hand_sql])?;
        let ours = timed(&[&bin, "--apply", "--quiet", &dev_s, &work_s])?;
        println!(
            "{label:<30} {:>14.3} {:>14.3} {:>7.2}x {:>8.1} MiB",
            hand.seconds,
            ours.seconds,
            ours.seconds / hand.seconds,
            ours.rss_mib
        );
    }
    remove_db(&work);
    remove_db(&dev);
    println!("\nGoals: a rebuild within 1.1x of the hand-written SQL; changes without a rebuild O(1) (not growing with the table).");
    Ok(())
}

/// `cargo xtask bench run [MiB]`: a whole `refresh-dev run` (WAL-mode PROD)
/// beside the same refresh done by hand in the shell: copy PROD (`cp` + sync,
/// or the sqlite3 CLI's `.backup`), the hand-written migration with the
/// sqlite3 CLI, `mv` into DEV. DEV is reset before each run (not timed).
pub fn run(mib: u64) -> Result<()> {
    let bin = build_binaries(true)?.join("refresh-dev");
    let bin = bin.to_str().context("non-UTF-8 path")?.to_owned();
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    if Command::new("sqlite3").arg("--version").output().is_err() {
        bail!("bench run needs the sqlite3 CLI for the hand-made refresh");
    }
    let prod = dir.join(format!("bench-wal-{mib}.db"));
    build_db(&prod, mib, "wal")?;
    let dev = dir.join("run-dev.db");
    let template = dir.join("run-dev-template.db");
    let staging = dir.join("run-staging.db");
    let s = |p: &Path| p.to_str().map(str::to_owned).context("non-UTF-8 path");
    let (prod_s, dev_s, staging_s) = (s(&prod)?, s(&dev)?, s(&staging)?);
    let table =
        "CREATE TABLE accounts(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, balance INTEGER NOT NULL, note BLOB)";
    let index = "CREATE INDEX accounts_owner ON accounts(owner);";
    let cases: [(&str, String, String); 2] = [
        (
            "added column",
            format!("{}; {index}", table.replace("note BLOB)", "note BLOB, flag INTEGER)")),
            "PRAGMA journal_mode=DELETE; ALTER TABLE accounts ADD COLUMN flag INTEGER;".to_owned(),
        ),
        (
            "rebuild (a new CHECK)",
            format!(
                "{}; {index}",
                table.replace(
                    "balance INTEGER NOT NULL",
                    "balance INTEGER NOT NULL CHECK (balance >= 0)"
                )
            ),
            format!(
                "PRAGMA journal_mode=DELETE; PRAGMA foreign_keys=OFF; BEGIN; {}; \
                 INSERT INTO new_accounts SELECT * FROM accounts; DROP TABLE accounts; \
                 ALTER TABLE new_accounts RENAME TO accounts; {index} COMMIT;",
                table.replace("accounts(", "new_accounts(").replace(
                    "balance INTEGER NOT NULL",
                    "balance INTEGER NOT NULL CHECK (balance >= 0)"
                )
            ),
        ),
    ];
    measure("warm-up", &["cat", &prod_s])?;
    println!("\nrefresh-dev run, {mib} MiB WAL-mode PROD, warm cache, median of 3 runs");
    println!(
        "{:<24} {:>14} {:>16} {:>12} {:>10} {:>10}",
        "change", "cp+sql+mv (s)", ".backup+sql+mv", "run (s)", "÷ cp", "÷ .backup"
    );
    for (label, dev_sql, hand_sql) in cases {
        db_from_sql(&template, &dev_sql)?;
        let timed = |argv: &[&str]| {
            median_of_3(label, argv, || {
                remove_db(&dev);
                remove_db(&staging);
                std::fs::copy(&template, &dev)?;
                Ok(())
            })
        };
        let by_cp = timed(&[
            "sh",
            "-c",
            &format!(
                "cp '{prod_s}' '{staging_s}' && sqlite3 '{staging_s}' \"{hand_sql}\" && sync '{staging_s}' && mv '{staging_s}' '{dev_s}'"
            ),
        ])?;
        let by_backup = timed(&[
            "sh",
            "-c",
            &format!(
                "sqlite3 '{prod_s}' \".backup '{staging_s}'\" && sqlite3 '{staging_s}' \"{hand_sql}\" && mv '{staging_s}' '{dev_s}'"
            ),
        ])?;
        let ours = timed(&[
            &bin,
            "run",
            "--quiet",
            "--no-backup",
            "--prod",
            &prod_s,
            "--dev",
            &dev_s,
        ])?;
        println!(
            "{label:<24} {:>14.3} {:>16.3} {:>12.3} {:>9.2}x {:>9.2}x",
            by_cp.seconds,
            by_backup.seconds,
            ours.seconds,
            ours.seconds / by_cp.seconds,
            ours.seconds / by_backup.seconds
        );
    }
    remove_db(&dev);
    remove_db(&staging);
    remove_db(&template);
    println!(
        "\nThe hand-made refresh checks nothing (a copy by cp of a live WAL database can be torn, \
         rows may be lost silently, DEV is not backed up). Goal: refresh-dev within 1.2x of cp+sql+mv."
    );
    Ok(())
}
