//! `cargo xtask bench mask`: masking and subsetting beside the same work by
//! hand, measured in the same run.
//!
//! 1. Three columns of a 1M-row table masked by `refresh-dev replace --rules`
//!    beside `cp` + a hand-written `UPDATE` with a keyed-hash SQL function
//!    (BLAKE3, keyed, in hex: what the `hash` rule writes) + `mv`.
//! 2. A 5% subset of a PROD of SIZE MiB (default 1024) by `refresh-dev run
//!    --rules` beside the full refresh: seconds, and bytes written.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::bench::{db_from_sql, measure, median_of_3, remove_db, Measure};
use crate::{build_binaries, root};

/// `xtask hand-mask DB`: the hand-written masking the bench compares with.
pub fn hand_mask(db: &Path) -> Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    let key = *blake3::hash(b"bench key").as_bytes();
    conn.create_scalar_function(
        "khash",
        1,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8 | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let v: Option<String> = ctx.get(0)?;
            Ok(v.map(|v| blake3::keyed_hash(&key, v.as_bytes()).to_hex()[..32].to_owned()))
        },
    )?;
    conn.execute_batch(
        "BEGIN; UPDATE people SET name = khash(name), email = khash(email), phone = khash(phone); COMMIT;",
    )?;
    Ok(())
}

/// Bytes the command wrote to disk (`ru_oublock`, in 512-byte blocks), and
/// its time: one run after `reset` and a `sync`.
fn written(label: &str, argv: &[&str], reset: impl Fn() -> Result<()>) -> Result<(Measure, u64)> {
    reset()?;
    Command::new("sync").status().context("sync")?;
    let before = children_oublock();
    let m = measure(label, argv)?;
    Ok((m, (children_oublock() - before) * 512))
}

/// Blocks written by this process's waited-for children so far.
fn children_oublock() -> u64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage succeeded.
    unsafe { usage.assume_init() }.ru_oublock.max(0) as u64
}

pub fn mask(mib: u64) -> Result<()> {
    let bin = build_binaries(true)?.join("refresh-dev");
    let bin = bin.to_str().context("non-UTF-8 path")?.to_owned();
    let xtask = std::env::current_exe()?;
    let xtask = xtask.to_str().context("non-UTF-8 path")?.to_owned();
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let s = |p: &Path| p.to_str().map(str::to_owned).context("non-UTF-8 path");

    // 1. Three columns of a 1M-row table.
    let people = dir.join("mask-people.db");
    let schema =
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, email TEXT, phone TEXT, city TEXT, note TEXT);";
    if !people.exists() {
        println!("building {} (1M rows)…", people.display());
        db_from_sql(
            &people,
            &format!(
                "PRAGMA journal_mode=WAL; {schema}
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
                 INSERT INTO people SELECT i, 'Person ' || i, 'person' || i || '@mail.example', '+1 555 ' || (1000000 + i),
                   'City ' || (i % 500), hex(randomblob(20)) FROM n;"
            ),
        )?;
    }
    let dev = dir.join("mask-dev.db");
    let staging = dir.join("mask-staging.db");
    let (people_s, dev_s, staging_s) = (s(&people)?, s(&dev)?, s(&staging)?);
    let reset = || {
        remove_db(&dev);
        remove_db(&staging);
        db_from_sql(&dev, schema)
    };
    let rules = |name: &str, text: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::write(&path, text)?;
        s(&path)
    };
    let hashed = rules(
        "mask-hash.toml",
        "[mask]\n\"people.name\" = \"hash\"\n\"people.email\" = \"hash\"\n\"people.phone\" = \"hash\"\n",
    )?;
    let realistic = rules(
        "mask-fake.toml",
        "[mask]\n\"people.name\" = \"name\"\n\"people.email\" = \"email\"\n\"people.phone\" = \"phone\"\n",
    )?;
    let key = dir.join("mask-key");
    std::fs::write(&key, [7u8; 32])?;
    let key_s = s(&key)?;
    measure("warm-up", &["cat", &people_s])?;
    let hand = median_of_3(
        "hand",
        &[
            "sh",
            "-c",
            &format!("cp '{people_s}' '{staging_s}' && '{xtask}' hand-mask '{staging_s}' && sync '{staging_s}' && mv '{staging_s}' '{dev_s}'"),
        ],
        reset,
    )?;
    let ours = |rules: &str| {
        median_of_3(
            "replace --rules",
            &[
                &bin,
                "replace",
                "--quiet",
                "--no-backup",
                "--prod",
                &people_s,
                "--dev",
                &dev_s,
                "--rules",
                rules,
                "--mask-key",
                &key_s,
            ],
            reset,
        )
    };
    let (by_hash, by_fakes) = (ours(&hashed)?, ours(&realistic)?);
    println!("\nmasking 3 columns of a 1M-row table (WAL PROD), warm cache, median of 3 runs");
    println!("{:<56} {:>10} {:>10} {:>10}", "how", "seconds", "peak RSS", "÷ hand");
    for (label, m) in [
        ("cp + UPDATE with a keyed-hash function + mv (by hand)", &hand),
        ("refresh-dev replace --rules, hash rules", &by_hash),
        ("refresh-dev replace --rules, email/name/phone fakes", &by_fakes),
    ] {
        println!(
            "{label:<56} {:>10.3} {:>7.1} MiB {:>9.2}x",
            m.seconds,
            m.rss_mib,
            m.seconds / hand.seconds
        );
    }
    println!(
        "Goal: the hash rules within 1.5x of the hand-written UPDATE (which leaves every original in \
         the free pages and the journal; refresh-dev writes a fresh file with none)."
    );

    // 2. A 5% subset of a PROD of `mib` MiB.
    let prod = dir.join(format!("mask-shop-{mib}.db"));
    let shop_schema = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
        CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), placed_at TEXT, payload TEXT);
        CREATE TABLE events(id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id), payload TEXT);
        CREATE INDEX orders_customer ON orders(customer_id); CREATE INDEX events_order ON events(order_id);";
    if !prod.exists() {
        // About 1 KiB per order with its two events.
        let orders = mib * 1024;
        println!("\nbuilding {} ({mib} MiB)…", prod.display());
        db_from_sql(
            &prod,
            &format!(
                "PRAGMA journal_mode=WAL; {shop_schema}
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {c})
                 INSERT INTO customers SELECT i, 'Person ' || i, 'p' || i || '@mail.example' FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {orders})
                 INSERT INTO orders SELECT i, 1 + i % {c}, '2026-' || (1 + i % 12), hex(randomblob(150)) FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {events})
                 INSERT INTO events SELECT i, 1 + i % {orders}, hex(randomblob(150)) FROM n;",
                c = (orders / 20).max(1),
                events = orders * 2
            ),
        )?;
    }
    let prod_s = s(&prod)?;
    let prod_bytes = std::fs::metadata(&prod)?.len();
    let subset = rules(
        "subset.toml",
        "[mask]\n\"customers.email\" = \"email\"\n\n[subset]\ncustomers = { percent = 5 }\n",
    )?;
    let reset = || {
        remove_db(&dev);
        db_from_sql(&dev, shop_schema)
    };
    measure("warm-up", &["cat", &prod_s])?;
    let run = |extra: &[&str]| {
        let mut argv = vec![
            bin.as_str(),
            "run",
            "--quiet",
            "--no-backup",
            "--prod",
            &prod_s,
            "--dev",
            &dev_s,
        ];
        argv.extend_from_slice(extra);
        written("run", &argv, reset)
    };
    let (full, full_bytes) = run(&[])?;
    let (part, part_bytes) = run(&["--rules", &subset, "--mask-key", &key_s])?;
    let result_bytes = std::fs::metadata(&dev)?.len();
    println!("\na 5% subset (customers 5%, their orders and events follow) of a {mib} MiB WAL PROD, one run each");
    println!(
        "{:<36} {:>10} {:>16} {:>12}",
        "how", "seconds", "bytes written", "÷ PROD"
    );
    for (label, m, bytes) in [
        ("refresh-dev run (full)", &full, full_bytes),
        ("refresh-dev run --rules (5%)", &part, part_bytes),
    ] {
        println!(
            "{label:<36} {:>10.3} {:>16} {:>11.1}%",
            m.seconds,
            bytes,
            100.0 * bytes as f64 / prod_bytes as f64
        );
    }
    println!(
        "result: {result_bytes} bytes ({:.1}% of PROD's {prod_bytes}); subset time {:.2}x the full refresh",
        100.0 * result_bytes as f64 / prod_bytes as f64,
        part.seconds / full.seconds
    );
    println!("Goals: the subset writes at most 10% of PROD's bytes, and takes no longer than the full refresh.");
    if full_bytes == 0 {
        println!("(this file system does not count written blocks per process: see the result's size)");
    }
    remove_db(&dev);
    remove_db(&staging);
    if !Path::new(&bin).exists() {
        bail!("{bin} is gone");
    }
    Ok(())
}
