//! `cargo xtask`: development tasks. Never needed by a user of the tools.
//!
//!     cargo xtask demo                  build the demo PROD and DEV, then `refresh-dev plan` and `refresh-dev run`
//!     cargo xtask refresh-dev -- ARGS   build and run the driver (`refresh-dev ARGS`)
//!     cargo xtask fixtures [DIR]        build prod.db and dev.db from fixtures/*.sql (default target/fixtures)
//!     cargo xtask ci                    what .ci/run runs: fmt, clippy, the tests
//!     cargo xtask man                   the man pages (refresh-dev.1, one per command) into target/man
//!     cargo xtask fuzz [CASES]          the no-panic properties of the schema reader and the
//!                                       deployment-file parser, long (default 200000 cases each)
//!     cargo xtask bench snapshot [MiB]  time `snapshot` beside cp, cat, sqlite3 .backup and VACUUM INTO
//!     cargo xtask bench apply [MiB]     time `schema-diff --apply` beside the same change as hand-written SQL
//!     cargo xtask bench run [MiB]       time `refresh-dev run` beside the same refresh by hand (cp/.backup, SQL, mv)
//!     cargo xtask bench remote [MiB]    a PROD behind a real sshd on 127.0.0.1: first copy beside ssh cat,
//!                                       a second refresh beside rsync --no-whole-file, a 100 Mbit/s link (default 64 MiB)
//!     cargo xtask bench mask [MiB]      masking 3 columns of 1M rows beside cp + a hand-written keyed-hash UPDATE;
//!                                       a 5% subset of a PROD of MiB (default 1024) beside the full refresh

mod bench;
mod bench_mask;
mod bench_remote;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

const USAGE: &str =
    "usage: cargo xtask <demo | refresh-dev -- ARGS | fixtures [DIR] | ci | man | fuzz [CASES] | bench [snapshot|apply|run|remote|mask] [SIZE_MIB]>";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["demo"] => demo(),
        ["fixtures"] => fixtures(&root().join("target/fixtures")).map(|_| ()),
        ["fixtures", dir] => fixtures(Path::new(dir)).map(|_| ()),
        ["ci"] => ci(),
        ["man"] => man(),
        ["fuzz"] => fuzz(200_000),
        ["fuzz", cases] => fuzz(cases.parse().context("CASES must be a number")?),
        ["refresh-dev", rest @ ..] => refresh_dev(rest),
        ["bench", "snapshot"] => bench::snapshot(1024),
        ["bench", "snapshot", mib] => bench::snapshot(mib.parse().context("SIZE_MIB must be a number")?),
        ["bench", "apply"] => bench::apply(1024),
        ["bench", "apply", mib] => bench::apply(mib.parse().context("SIZE_MIB must be a number")?),
        ["bench", "run"] => bench::run(1024),
        ["bench", "run", mib] => bench::run(mib.parse().context("SIZE_MIB must be a number")?),
        ["bench", "mask"] => bench_mask::mask(1024),
        ["bench", "mask", mib] => bench_mask::mask(mib.parse().context("SIZE_MIB must be a number")?),
        ["hand-mask", db] => bench_mask::hand_mask(Path::new(db)),
        ["bench", "remote"] => bench_remote::remote(64),
        ["bench", "remote", mib] => bench_remote::remote(mib.parse().context("SIZE_MIB must be a number")?),
        ["bench"] => bench::snapshot(1024)
            .and_then(|()| bench::apply(1024))
            .and_then(|()| bench::run(1024)),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_owned()
}

/// Runs a command from the workspace root, failing if it fails.
pub fn sh(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// Runs a command from the workspace root, accepting the listed non-zero
/// exit codes as well as 0.
pub fn sh_allowing(cmd: &mut Command, codes: &[i32]) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot run {shown}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(c) if codes.contains(&c) => Ok(()),
        _ => bail!("{shown} failed ({status})"),
    }
}

/// Builds the workspace's binaries (`profile`: "debug" or "release") and
/// returns the folder holding them.
pub fn build_binaries(release: bool) -> Result<PathBuf> {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args([
        "build",
        "--quiet",
        "--package",
        "snapshot",
        "--package",
        "swap",
        "--package",
        "schema-diff",
        "--package",
        "refresh-dev",
    ]);
    if release {
        cmd.arg("--release");
    }
    sh(&mut cmd)?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    Ok(target.join(if release { "release" } else { "debug" }))
}

/// Builds `prod.db` and `dev.db` in `dir` from the SQL fixtures (replacing
/// any earlier ones) and returns their paths.
fn fixtures(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = Vec::new();
    for name in ["prod", "dev"] {
        let sql_path = root().join("fixtures").join(format!("{name}.sql"));
        let sql = std::fs::read_to_string(&sql_path).with_context(|| format!("cannot read {}", sql_path.display()))?;
        let db = dir.join(format!("{name}.db"));
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        let conn = rusqlite::Connection::open(&db).with_context(|| format!("cannot create {}", db.display()))?;
        conn.execute_batch(&sql)
            .with_context(|| format!("{} failed on {}", sql_path.display(), db.display()))?;
        conn.close()
            .map_err(|(_, e)| e)
            .with_context(|| format!("cannot close {}", db.display()))?;
        out.push(db);
    }
    let dev = out.pop().context("dev.db")?;
    let prod = out.pop().context("prod.db")?;
    Ok((prod, dev))
}

fn count(db: &Path, sql: &str) -> Result<i64> {
    let conn = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.pragma_update(None, "query_only", true)?;
    conn.query_row(sql, [], |r| r.get(0))
        .with_context(|| format!("{sql} on {}", db.display()))
}

fn demo() -> Result<()> {
    let dir = root().join("target/demo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    println!("== building the demo databases from fixtures/ into {}", dir.display());
    let (prod, dev) = fixtures(&dir)?;
    for db in [&prod, &dev] {
        println!(
            "   {}: schema version {}, {} customers, {} orders",
            db.display(),
            count(db, "PRAGMA user_version")?,
            count(db, "SELECT count(*) FROM customers")?,
            count(db, "SELECT count(*) FROM orders")?
        );
    }
    let bin = build_binaries(false)?.join("refresh-dev");
    let prod_bytes = std::fs::read(&prod).context("read prod.db")?;
    let dev_before = std::fs::read(&dev).context("read dev.db")?;

    println!("\n== refresh-dev plan: what a run would do, writing nothing (exit 0: the run would proceed)");
    sh_allowing(
        Command::new(&bin)
            .arg("plan")
            .arg("--prod")
            .arg(&prod)
            .arg("--dev")
            .arg(&dev),
        &[0],
    )?;
    if std::fs::read(&dev).context("read dev.db")? != dev_before {
        bail!("plan changed DEV");
    }

    println!("\n== refresh-dev run: snapshot PROD beside DEV, apply DEV's schema onto it, swap it into DEV");
    sh(Command::new(&bin)
        .arg("run")
        .arg("--prod")
        .arg(&prod)
        .arg("--dev")
        .arg(&dev))?;
    let backup = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("dev.db.bak-"))
        .context("no backup of dev.db")?;

    println!("\n== the result: PROD's rows in DEV's schema");
    for (what, sql) in [
        ("schema version", "PRAGMA user_version"),
        ("customers (PROD's)", "SELECT count(*) FROM customers"),
        ("orders (PROD's)", "SELECT count(*) FROM orders"),
        (
            "customers.phone (DEV's new column)",
            "SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'phone'",
        ),
        (
            "customers.fax (dropped in DEV)",
            "SELECT count(*) FROM pragma_table_info('customers') WHERE name = 'fax'",
        ),
        ("coupons (DEV's new table, seed rows)", "SELECT count(*) FROM coupons"),
        ("schema_migrations (DEV's)", "SELECT count(*) FROM schema_migrations"),
        (
            "products matching 'mug' (FTS5)",
            "SELECT count(*) FROM products_fts WHERE products_fts MATCH 'mug'",
        ),
    ] {
        // PROD has no coupons table: a dash.
        let prod_count = count(&prod, sql).map_or_else(|_| "-".to_owned(), |n| n.to_string());
        println!(
            "   {what:<38} DEV now {:>5}   PROD {prod_count:>5}   backup of old DEV {:>5}",
            count(&dev, sql)?,
            count(&backup, sql)?
        );
    }
    if std::fs::read(&prod).context("read prod.db")? != prod_bytes {
        bail!("PROD changed");
    }
    if std::fs::read(&backup).context("read the backup")? != dev_before {
        bail!("the backup differs from the old DEV");
    }
    println!(
        "   PROD is byte-identical to before; the old DEV is kept, byte for byte, as {}",
        backup.display()
    );
    let mut left: Vec<String> = std::fs::read_dir(&dir)?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    println!("   files in {}: {}", dir.display(), left.join(", "));
    println!(
        "\n   `refresh-dev rollback --dev {}` puts the old DEV back.",
        dev.display()
    );

    println!("\n== refresh-dev run --rules: the same refresh, with personal data masked and only recent orders");
    let rules = root().join("fixtures/rules.toml");
    sh(Command::new(&bin)
        .arg("run")
        .arg("--prod")
        .arg(&prod)
        .arg("--dev")
        .arg(&dev)
        .arg("--rules")
        .arg(&rules))?;
    let emails: Vec<String> = {
        let conn = rusqlite::Connection::open(&prod)?;
        let mut st = conn.prepare("SELECT email FROM customers")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let bytes = std::fs::read(&dev).context("read dev.db")?;
    let left = emails
        .iter()
        .filter(|e| bytes.windows(e.len()).any(|w| w == e.as_bytes()))
        .count();
    println!(
        "   orders: DEV now {} of PROD's {}; PROD's {} customer emails found in DEV's bytes: {left}",
        count(&dev, "SELECT count(*) FROM orders")?,
        count(&prod, "SELECT count(*) FROM orders")?,
        emails.len()
    );
    if left > 0 {
        bail!("an original email is left in DEV");
    }
    Ok(())
}

/// `cargo xtask refresh-dev -- ARGS`: builds and runs the driver from the
/// caller's folder, with its exit code.
fn refresh_dev(args: &[&str]) -> Result<()> {
    let bin = build_binaries(false)?.join("refresh-dev");
    let args = match args.first() {
        Some(&"--") => &args[1..],
        _ => args,
    };
    let status = Command::new(&bin)
        .args(args)
        .status()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    std::process::exit(status.code().unwrap_or(4));
}

fn ci() -> Result<()> {
    let cargo = env!("CARGO");
    sh(Command::new(cargo).args(["fmt", "--all", "--", "--check"]))?;
    sh(Command::new(cargo).args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    sh(Command::new(cargo).args(["test", "--workspace", "--", "--include-ignored"]))
}

/// The man pages, from the command line's own definition (clap_mangen).
fn man() -> Result<()> {
    let bin = build_binaries(false)?.join("refresh-dev");
    let folder = root().join("target/man");
    sh(Command::new(&bin).arg("manpages").arg(&folder))?;
    println!(
        "man pages in {} (man -l {}/refresh-dev.1)",
        folder.display(),
        folder.display()
    );
    Ok(())
}

/// The fuzz properties (`tests/fuzz_inputs.rs`) with `cases` cases each, in release.
fn fuzz(cases: u32) -> Result<()> {
    sh(Command::new(env!("CARGO"))
        .args(["test", "--release", "-p", "refresh-dev", "--test", "fuzz_inputs"])
        .env("PROPTEST_CASES", cases.to_string()))
}
