//! `cargo xtask bench remote [MiB]`: a PROD on "another host" (a real sshd
//! on 127.0.0.1, its own keys and configuration in target/bench/remote),
//! read by `refresh-dev` beside `ssh cat`, `rsync --no-whole-file`, and over
//! a link throttled to 100 Mbit/s. Figures from one run.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::bench::{measure, median_of_3, remove_db};
use crate::{build_binaries, root};

/// The sshd of the bench, killed when dropped.
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    fn start(dir: &Path) -> Result<Sshd> {
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("no sshd: install openssh-server")?;
        std::fs::create_dir_all(dir)?;
        for key in ["host", "user"] {
            let path = dir.join(key);
            if !path.exists() {
                let ok = Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                    .arg(&path)
                    .status()
                    .context("ssh-keygen")?
                    .success();
                if !ok {
                    bail!("ssh-keygen failed");
                }
            }
        }
        std::fs::copy(dir.join("user.pub"), dir.join("authorized_keys"))?;
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        std::fs::write(
            dir.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nPidFile {}\n\
                 SetEnv TMPDIR={}\n",
                dir.join("host").display(),
                dir.join("authorized_keys").display(),
                dir.join("sshd.pid").display(),
                // The helper's private copy on the bench's file system (reflinks where it has them).
                dir.parent().unwrap_or(dir).display()
            ),
        )?;
        let host_key = std::fs::read_to_string(dir.join("host.pub"))?;
        let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        std::fs::write(
            dir.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        )?;
        let child = Command::new(sshd)
            .arg("-f")
            .arg(dir.join("sshd_config"))
            .args(["-D", "-e"])
            .stderr(Stdio::null())
            .spawn()
            .context("start sshd")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("sshd did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Sshd {
            child,
            port,
            dir: dir.to_owned(),
        })
    }

    fn ssh(&self) -> String {
        format!(
            "ssh -F /dev/null -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -p {}",
            self.dir.join("user").display(),
            self.dir.join("known_hosts").display(),
            self.port
        )
    }
}

/// A PROD of about `mib` MiB that compresses as application data does:
/// words, numbers, and a random tail per row.
fn build_prod(path: &Path, mib: u64) -> Result<()> {
    remove_db(path);
    let conn = rusqlite::Connection::open(path)?;
    let rows = mib * 1024 * 1024 / 360;
    conn.execute_batch(&format!(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;
         CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, body TEXT, n INT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO items(name, body, n)
         SELECT 'item-' || i,
                printf('%s order %d for customer %d shipped to street %d, invoice %s pending',
                       CASE i % 4 WHEN 0 THEN 'alpha' WHEN 1 THEN 'beta' WHEN 2 THEN 'gamma' ELSE 'delta' END,
                       i, i % 977, i % 313, hex(randomblob(24))) || ' ' || hex(randomblob(40)),
                i
         FROM n;
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))?;
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// A shell script at `path`, executable.
fn executable(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// `refresh-dev … --json`'s `transfer` object.
fn transfer(argv: &[&str]) -> Result<serde_json::Value> {
    let out = Command::new(argv[0]).args(&argv[1..]).output()?;
    if !out.status.success() {
        bail!("{argv:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(report["transfer"].clone())
}

fn moved(t: &serde_json::Value) -> u64 {
    t["bytes_received"].as_u64().unwrap_or(0) + t["bytes_sent"].as_u64().unwrap_or(0)
}

/// `cargo xtask bench remote [MiB]`.
pub fn remote(mib: u64) -> Result<()> {
    let bin = build_binaries(true)?.join("refresh-dev");
    let exe = bin.to_str().context("non-UTF-8 path")?;
    // REFRESH_DEV_BENCH_DIR: a folder on another file system (one with
    // reflinks, say) instead of target/bench.
    let dir = std::env::var_os("REFRESH_DEV_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/bench"))
        .join("remote");
    std::fs::create_dir_all(dir.join("prodhost"))?;
    std::fs::create_dir_all(dir.join("dev"))?;
    let sshd = Sshd::start(&dir.join("sshd"))?;
    let prod = dir.join("prodhost/prod.db");
    println!("building {} ({mib} MiB)…", prod.display());
    build_prod(&prod, mib)?;
    let prod_bytes = std::fs::metadata(&prod)?.len();
    let user = String::from_utf8(Command::new("id").arg("-un").output()?.stdout)?;
    let address = format!("ssh://{}@127.0.0.1:{}{}", user.trim(), sshd.port, prod.display());
    let ssh = sshd.ssh();
    let (cat_copy, copy) = (dir.join("cat.db"), dir.join("dev/copy.db"));
    let base = dir.join("dev/.copy.refresh-base.db");
    let s = |p: &Path| p.display().to_string();

    // 1. The first copy, beside `ssh cat PROD > file && sync`.
    let cat_argv = format!(
        "{ssh} {}@127.0.0.1 cat {} > {} && sync",
        user.trim(),
        s(&prod),
        s(&cat_copy)
    );
    let cat_once = || -> Result<f64> {
        remove_db(&cat_copy);
        Command::new("sync").status().context("sync")?;
        Ok(measure("ssh cat PROD > file && sync", &["sh", "-c", &cat_argv])?.seconds)
    };
    // A first copy: no base beside DEST, nothing at DEST. The whole command
    // (then `sync`), and the part of it that brings PROD into the base (the
    // issue's "first copy"): the same, less the local copy of the base to
    // DEST, which the report times.
    let first_once = |ssh: &str, extra: &str, then: &str| -> Result<(f64, f64)> {
        remove_db(&copy);
        remove_db(&base);
        Command::new("sync").status().context("sync")?;
        let started = Instant::now();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{exe} snapshot {address} {} --ssh '{ssh}' --remote-exe {exe} --json{extra}{then}",
                s(&copy)
            ))
            .output()?;
        let seconds = started.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("first copy: {}", String::from_utf8_lossy(&out.stderr));
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let local = report["seconds"].as_f64().unwrap_or(0.0);
        Ok((seconds, seconds - local))
    };
    // Five rounds of the three, taken in turn so that the machine's drift
    // weighs on each alike; the median of each.
    let (mut cats, mut firsts, mut in_places) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        cats.push((cat_once()?, 0.0));
        firsts.push(first_once(&ssh, "", " && sync")?);
        in_places.push(first_once(&ssh, " --no-private-copy", " && sync")?);
    }
    let median = |mut runs: Vec<(f64, f64)>| {
        runs.sort_by(|a, b| a.0.total_cmp(&b.0));
        runs[runs.len() / 2]
    };
    let (cat, first, first_in_place) = (median(cats).0, median(firsts), median(in_places));

    // 2. About 1% of PROD's pages change: what a second refresh moves,
    // beside rsync --no-whole-file for the same change over the same link.
    let rows: i64 = rusqlite::Connection::open(&prod)?.query_row("SELECT max(id) FROM items", [], |r| r.get(0))?;
    let from = rows / 3;
    // About 1% of PROD's rows, from `first` on, change; PROD is checkpointed.
    let change = |first: i64| -> Result<()> {
        let conn = rusqlite::Connection::open(&prod)?;
        conn.execute(
            "UPDATE items SET n = n + 1 WHERE id BETWEEN ?1 AND ?2",
            [first, first + rows / 100],
        )?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
        Ok(())
    };
    change(from)?;
    std::fs::copy(&base, &cat_copy)?; // rsync's own copy of the last version
    let second_argv = [
        exe,
        "run",
        "--prod",
        &address,
        "--dev",
        &dir.join("dev/dev.db").display().to_string(),
        "--ssh",
        &ssh,
        "--remote-exe",
        exe,
        "--json",
    ];
    crate::bench::db_from_sql(
        &dir.join("dev/dev.db"),
        "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, body TEXT, n INT);",
    )?;
    // The run's base is beside dev.db: start it from the same last version.
    std::fs::copy(&base, dir.join("dev/.dev.refresh-base.db"))?;
    let started = Instant::now();
    let second = transfer(&second_argv)?;
    let second_seconds = started.elapsed().as_secs_f64();
    let rsync = Command::new("rsync")
        .args(["-I", "--no-whole-file", "--stats", "-e", &ssh])
        .arg(format!("{}@127.0.0.1:{}", user.trim(), s(&prod)))
        .arg(&cat_copy)
        .output();
    let rsync_bytes = match rsync {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let total = |what: &str| -> u64 {
                text.lines()
                    .find(|l| l.starts_with(what))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|v| v.trim().replace(',', ""))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            Some(total("Total bytes sent") + total("Total bytes received"))
        }
        _ => None,
    };

    // 3. Over a link of 100 Mbit/s (12.5 MB/s each way): a second refresh
    // beside a first copy.
    let relay = dir.join("throttle.py");
    std::fs::write(
        &relay,
        "import os, sys, time\nrate = 12.5e6\nstart = time.monotonic(); sent = 0\nwhile True:\n    b = os.read(0, 65536)\n    if not b:\n        break\n    os.write(1, b); sent += len(b)\n    ahead = sent / rate - (time.monotonic() - start)\n    if ahead > 0:\n        time.sleep(ahead)\n",
    )?;
    // `ssh` (the command) behind the relay: a script at `name`, returned as a path.
    let throttled = |name: &str, ssh: &str| -> Result<String> {
        let path = dir.join(name);
        executable(
            &path,
            &format!("#!/bin/sh\n{ssh} \"$@\" | python3 {}\n", relay.display()),
        )?;
        Ok(s(&path))
    };
    let slow = throttled("slow-ssh", &ssh)?;
    // Over the slow link, the median of three.
    let slow_first = median((0..3).map(|_| first_once(&slow, "", "")).collect::<Result<_>>()?).0;
    let slow_cat = median_of_3(
        "ssh cat PROD > file at 100 Mbit/s",
        &[
            "sh",
            "-c",
            &format!("{slow} {}@127.0.0.1 cat {} > {}", user.trim(), s(&prod), s(&cat_copy)),
        ],
        || {
            remove_db(&cat_copy);
            Ok(())
        },
    )?;
    // Change 1% again, then refresh over the slow link.
    change(2 * from)?;
    let slow_second = measure(
        "second refresh at 100 Mbit/s",
        &[
            "sh",
            "-c",
            &format!(
                "{exe} snapshot --force {address} {} --ssh {slow} --remote-exe {exe} --quiet",
                s(&copy)
            ),
        ],
    )?;
    // The same, through a connection kept open by ssh's ControlMaster (what
    // `--ssh` can ask of any ssh): the refresh no longer pays ssh's own
    // connection, key exchange and login.
    let shared = format!(
        "{ssh} -o ControlMaster=auto -o ControlPath={}/cm-%C -o ControlPersist=120",
        s(&dir)
    );
    let slow_shared = throttled("slow-ssh-shared", &shared)?;
    // The master: opened once, before the refresh.
    let opened = Command::new("sh")
        .arg("-c")
        .arg(format!("{shared} {}@127.0.0.1 true", user.trim()))
        .status()?;
    if !opened.success() {
        bail!("ssh ControlMaster: could not open the shared connection");
    }
    change(from / 2)?;
    let slow_second_shared = measure(
        "second refresh at 100 Mbit/s, shared connection",
        &[
            "sh",
            "-c",
            &format!(
                "{exe} snapshot --force {address} {} --ssh {slow_shared} --remote-exe {exe} --quiet",
                s(&copy)
            ),
        ],
    )?;
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!("{shared} -O exit {}@127.0.0.1 2>/dev/null", user.trim()))
        .status();
    // The helper's peak memory (PROD's side), through /usr/bin/time where
    // the machine has it: a first copy, where it sends every page.
    let helper_rss = dir.join("helper-rss");
    let timed_helper = dir.join("timed-helper");
    executable(
        &timed_helper,
        &format!(
            "#!/bin/sh\nexec /usr/bin/time -f %M -o {} {exe} \"$@\"\n",
            helper_rss.display()
        ),
    )?;
    let helper_peak_mib = if Path::new("/usr/bin/time").exists() {
        remove_db(&copy);
        remove_db(&base);
        let status = Command::new(exe)
            .args([
                "snapshot",
                &address,
                &s(&copy),
                "--ssh",
                &ssh,
                "--remote-exe",
                &s(&timed_helper),
                "--quiet",
            ])
            .status()?;
        let kib: Option<f64> = std::fs::read_to_string(&helper_rss)
            .ok()
            .and_then(|t| t.lines().last().and_then(|l| l.trim().parse().ok()));
        kib.filter(|_| status.success()).map(|k| k / 1024.0)
    } else {
        None
    };
    let client_rss = measure(
        "peak memory",
        &[
            exe,
            "snapshot",
            "--force",
            &address,
            &s(&copy),
            "--ssh",
            &ssh,
            "--remote-exe",
            exe,
            "--quiet",
        ],
    )?;

    println!(
        "\nPROD: {:.1} MiB on the other host (sshd on 127.0.0.1)",
        prod_bytes as f64 / 1048576.0
    );
    println!("| what | figure | against | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| first copy: `snapshot` to DEST, then sync | {:.3} s | ssh cat > file && sync: {:.3} s | {:.2}x |",
        first.0,
        cat,
        first.0 / cat
    );
    println!(
        "| first copy into the base (the same, less the local copy to DEST) | {:.3} s | ssh cat > file && sync: {:.3} s | {:.2}x |",
        first.1,
        cat,
        first.1 / cat
    );
    println!(
        "| the same with --no-private-copy: to DEST / into the base | {:.3} s / {:.3} s | ssh cat > file && sync: {:.3} s | {:.2}x / {:.2}x |",
        first_in_place.0,
        first_in_place.1,
        cat,
        first_in_place.0 / cat,
        first_in_place.1 / cat
    );
    let pages = format!(
        "{} of {} pages",
        second["pages_sent"].as_u64().unwrap_or(0),
        second["pages_total"].as_u64().unwrap_or(0)
    );
    match rsync_bytes {
        Some(r) => println!(
            "| second refresh, 1% of rows changed ({pages}) | {} B moved ({:.2}% of PROD), {second_seconds:.3} s | rsync --no-whole-file: {r} B | {:.2}x rsync's bytes |",
            moved(&second),
            100.0 * moved(&second) as f64 / prod_bytes as f64,
            moved(&second) as f64 / r as f64
        ),
        None => println!(
            "| second refresh, 1% of rows changed ({pages}) | {} B moved ({:.2}% of PROD) | rsync: not installed | |",
            moved(&second),
            100.0 * moved(&second) as f64 / prod_bytes as f64
        ),
    }
    println!(
        "| at 100 Mbit/s | second refresh {:.3} s | first copy (compressed) {:.3} s | {:.1}x faster |",
        slow_second.seconds,
        slow_first,
        slow_first / slow_second.seconds
    );
    println!(
        "| at 100 Mbit/s | second refresh {:.3} s | a full copy, ssh cat > file: {:.3} s | {:.1}x faster |",
        slow_second.seconds,
        slow_cat.seconds,
        slow_cat.seconds / slow_second.seconds
    );
    println!(
        "| at 100 Mbit/s, shared ssh connection (ControlMaster) | second refresh {:.3} s | first copy (compressed) {:.3} s | {:.1}x faster |",
        slow_second_shared.seconds,
        slow_first,
        slow_first / slow_second_shared.seconds
    );
    println!(
        "| peak memory (DEV's side, a refresh with nothing changed) | {:.1} MiB | PROD {:.1} MiB | |",
        client_rss.rss_mib,
        prod_bytes as f64 / 1048576.0
    );
    match helper_peak_mib {
        Some(mib) => println!(
            "| peak memory (PROD's side, the helper of a first copy) | {mib:.1} MiB | PROD {:.1} MiB | |",
            prod_bytes as f64 / 1048576.0
        ),
        None => println!("| peak memory (PROD's side) | not measured: no /usr/bin/time | | |"),
    }
    drop(sshd);
    Ok(())
}
