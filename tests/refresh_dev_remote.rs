//! A PROD on another host, read through `ssh` and `refresh-dev
//! remote-helper`. Most cases stand ssh in with a small script that runs the
//! remote command here (so a cut link or a failing ssh is easy to make);
//! `a_real_sshd_*` start a real `sshd` on 127.0.0.1 with its own host key,
//! user key and configuration (nothing in /etc changes). The "remote" PROD
//! lives in another folder of this machine.

mod support;

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const EXE: &str = env!("CARGO_BIN_EXE_refresh-dev");

fn refresh_dev() -> Command {
    Command::new(EXE)
}

/// An executable shell script `name` in `dir`.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// PROD in `prodhost/` ("the other host"), DEV in `dev/`, and an ssh
/// stand-in that runs the remote command here.
struct Hosts {
    dir: tempfile::TempDir,
    prod: PathBuf,
    dev: PathBuf,
    ssh: PathBuf,
}

impl Hosts {
    fn new(prod_mode: &str, prod_sql: &str, dev_sql: &str) -> Hosts {
        let dir = tempdir();
        for sub in ["prodhost", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let prod = dir.path().join("prodhost/shop.db");
        let dev = dir.path().join("dev/shop.db");
        make_db(&prod, prod_mode, prod_sql);
        make_db(&dev, "delete", dev_sql);
        // Drops ssh's options and the host; runs the remote command here.
        let ssh = script(dir.path(), "fake-ssh", "for last; do :; done\nexec sh -c \"$last\"");
        Hosts { dir, prod, dev, ssh }
    }

    /// 20,000 rows in PROD; DEV adds a column.
    fn shop() -> Hosts {
        Hosts::new(
            "wal",
            "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO items(s) SELECT hex(randomblob(50)) FROM n;",
            "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT, note TEXT DEFAULT '');",
        )
    }

    /// 1,000 accounts of 1,000 each (their total holds in any committed
    /// state) and 2 MB of incompressible padding, so a transfer takes a while.
    fn bank(mode: &str) -> Hosts {
        Hosts::new(
            mode,
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE meta(commits INTEGER NOT NULL); INSERT INTO meta VALUES (0);
             CREATE TABLE padding(b BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO accounts(balance) SELECT 1000 FROM n;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO padding SELECT randomblob(4000) FROM n;",
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE meta(commits INTEGER NOT NULL); CREATE TABLE padding(b BLOB);",
        )
    }

    fn address(&self) -> String {
        format!("db1:{}", self.prod.display())
    }

    fn base(&self) -> PathBuf {
        self.dir.path().join("dev/.shop.refresh-base.db")
    }

    /// `refresh-dev COMMAND --prod db1:PROD --dev DEV --ssh SSH --remote-exe EXE --json EXTRA`.
    fn run_with(&self, command: &str, ssh: &Path, extra: &[&str]) -> (i32, serde_json::Value, String) {
        let (code, out, err) = run(refresh_dev()
            .args([command, "--prod", &self.address(), "--dev"])
            .arg(&self.dev)
            .arg("--ssh")
            .arg(ssh)
            .args(["--remote-exe", EXE, "--json"])
            .args(extra));
        (code, json(&out), err)
    }

    fn run(&self, command: &str) -> (i32, serde_json::Value, String) {
        self.run_with(command, &self.ssh, &[])
    }
}

#[test]
fn a_first_refresh_brings_every_page_and_a_second_only_the_changed_ones() {
    let hosts = Hosts::shop();
    let prod_folder = folder(hosts.prod.parent().expect("prodhost"));
    let (code, report, err) = hosts.run("run");
    assert_eq!(code, 0, "{err}");
    let schema = report_schema();
    conforms(&report, &schema, &schema, "report").unwrap_or_else(|why| panic!("{why}"));
    let t = &report["transfer"];
    assert_eq!(t["base_used"], false, "{t}");
    assert_eq!(t["pages_sent"], t["pages_total"], "{t}");
    assert_eq!(t["host"], "db1");
    assert_eq!(query_i64(&hosts.dev, "SELECT count(*) FROM items"), 20000);
    assert_eq!(
        query_i64(&hosts.dev, "SELECT count(*) FROM pragma_table_info('items')"),
        3
    );
    assert_eq!(
        folder(hosts.prod.parent().expect("prodhost")),
        prod_folder,
        "PROD's folder as found"
    );
    // The base keeps PROD's permission bits, and is PROD's content.
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&hosts.base()), mode(&hosts.prod));
    assert_eq!(
        std::fs::read(hosts.base()).expect("base"),
        std::fs::read(&hosts.prod).expect("prod")
    );

    // About 1% of PROD's pages change (200 neighbouring rows of 20,000).
    let conn = rusqlite::Connection::open(&hosts.prod).expect("open");
    conn.execute("UPDATE items SET s = 'changed' WHERE id BETWEEN 5000 AND 5199", [])
        .expect("update");
    drop(conn);
    let prod_bytes = std::fs::metadata(&hosts.prod).expect("stat").len();
    let log = hosts.dir.path().join("refresh.log");
    let (code, report, err) = hosts.run_with("run", &hosts.ssh, &["--log", &log.display().to_string()]);
    assert_eq!(code, 0, "{err}");
    let t = &report["transfer"];
    assert_eq!(t["base_used"], true, "{t}");
    // The log names the host and the helper's version.
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains(&format!("db1: helper refresh-dev {}", env!("CARGO_PKG_VERSION"))),
        "{logged}"
    );
    let (sent, total) = (
        t["pages_sent"].as_u64().expect("n"),
        t["pages_total"].as_u64().expect("n"),
    );
    assert!(sent > 0 && sent * 50 <= total, "{sent} of {total} pages");
    // Hashes both ways and the pages, compressed: at most 1.5% of PROD.
    let moved = t["bytes_received"].as_u64().expect("n") + t["bytes_sent"].as_u64().expect("n");
    assert!(
        moved * 1000 <= prod_bytes * 15,
        "{moved} bytes moved for a {prod_bytes}-byte PROD"
    );
    assert_eq!(
        query_i64(&hosts.dev, "SELECT count(*) FROM items WHERE s = 'changed'"),
        200
    );
    // Nothing left behind on either side but the base and the backups.
    let left: Vec<String> = names(&hosts.dev_dir())
        .into_iter()
        .filter(|n| !n.starts_with("shop.db.bak-"))
        .collect();
    assert_eq!(left, [".shop.refresh-base.db", "shop.db"]);
    let helpers = std::fs::read_dir(std::env::temp_dir())
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("refresh-dev-helper."))
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .rsplit('.')
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        })
        .count();
    assert_eq!(helpers, 0, "no dead helper's private copy left in the temporary folder");

    // The base is a cache, not flushed to disk: one a crash left torn (pages
    // zeroed, in the middle and in the last group) costs only those pages.
    let mut torn = std::fs::read(hosts.base()).expect("base");
    let page = 4096;
    let pages = torn.len() / page;
    for p in [3, pages / 2, pages - 1] {
        torn[p * page..(p + 1) * page].fill(0);
    }
    std::fs::write(hosts.base(), &torn).expect("tear the base");
    let (code, report, err) = hosts.run("run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["transfer"]["pages_sent"], 3, "{report}");
    assert_eq!(
        std::fs::read(hosts.base()).expect("base"),
        std::fs::read(&hosts.prod).expect("prod")
    );
    assert_eq!(integrity(&hosts.dev), "ok");
    assert_eq!(query_i64(&hosts.dev, "SELECT count(*) FROM items"), 20000);
}

impl Hosts {
    fn prod_dir(&self) -> PathBuf {
        self.dir.path().join("prodhost")
    }

    fn dev_dir(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    /// An ssh stand-in over a link of about 800 KB/s: 16 KB, then a pause.
    fn slow_ssh(&self) -> PathBuf {
        let relay = "import os, time\nwhile True:\n    b = os.read(0, 16384)\n    if not b:\n        break\n    os.write(1, b)\n    time.sleep(0.02)\n";
        let path = self.dir.path().join("slow.py");
        std::fs::write(&path, relay).expect("write");
        script(
            self.dir.path(),
            "slow-ssh",
            &format!("for last; do :; done\nsh -c \"$last\" | python3 {}", path.display()),
        )
    }

    /// PROD's application: transfers between accounts until `stop` exists.
    /// PROD's application (checkpointing or not), once it has committed
    /// `commits` times; it runs until `stop` exists.
    fn writer(&self, stop: &Path, checkpoint: bool, commits: i64) -> KillOnDrop {
        let writer = transfer_writer(&self.prod, stop, checkpoint);
        let started = Instant::now();
        while self.commits() < commits {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the writer never got going"
            );
            std::thread::yield_now();
        }
        writer
    }

    /// How many times PROD's application has committed.
    fn commits(&self) -> i64 {
        query_i64(&self.prod, "SELECT commits FROM meta")
    }

    /// Whether a transfer is running: the new base's temporary file exists.
    fn receiving(&self) -> bool {
        std::fs::read_dir(self.dev_dir()).expect("read_dir").flatten().any(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.contains(".refresh-base-") && name.ends_with(".tmp")
        })
    }
}

#[test]
fn the_copy_is_consistent_while_prods_application_writes() {
    for mode in ["wal", "delete"] {
        let hosts = Hosts::new(
            mode,
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE meta(commits INTEGER NOT NULL); INSERT INTO meta VALUES (0);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
             INSERT INTO accounts(balance) SELECT 1000 FROM n;",
            "CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE meta(commits INTEGER NOT NULL);",
        );
        let stop = hosts.dir.path().join("stop");
        let _writer = hosts.writer(&stop, false, 50);
        for round in 0..2 {
            let before = query_i64(&hosts.prod, "SELECT commits FROM meta");
            let (code, _, err) = hosts.run("run");
            assert_eq!(code, 0, "{mode} {round}: {err}");
            assert_eq!(
                query_i64(&hosts.dev, "SELECT sum(balance) FROM accounts"),
                1_000_000,
                "{mode} {round}: one committed state"
            );
            assert!(
                query_i64(&hosts.dev, "SELECT commits FROM meta") >= before,
                "{mode} {round}"
            );
        }
        std::fs::write(&stop, b"").expect("stop");
    }
}

#[test]
fn plan_with_a_remote_prod_counts_on_its_host_and_moves_no_table_data() {
    // DEV adds a CHECK that 1 row in 7 of PROD's breaks.
    let hosts = Hosts::new(
        "wal",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT, qty INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
         INSERT INTO items SELECT i, hex(randomblob(50)), i % 7 - 1 FROM n;",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT, qty INTEGER CHECK (qty >= 0), note TEXT DEFAULT '');",
    );
    let dev_folder = folder(&hosts.dev_dir());
    let prod_bytes = std::fs::metadata(&hosts.prod).expect("prod").len();
    let (code, report, err) = hosts.run_with("plan", &hosts.ssh, &["--on-violation", "skip"]);
    assert_eq!(code, 0, "{err}");
    let schema = report_schema();
    conforms(&report, &schema, &schema, "report").unwrap_or_else(|why| panic!("{why}"));
    let t = &report["transfer"];
    assert_eq!(t["pages_sent"], 0, "{t}");
    let moved = t["bytes_received"].as_u64().expect("n") + t["bytes_sent"].as_u64().expect("n");
    assert!(
        moved * 10 < prod_bytes,
        "{moved} bytes moved for a {prod_bytes}-byte PROD"
    );
    // Counted there as a local plan counts: the same data impact and room.
    let violation = violation_of(&report);
    assert_eq!(violation["rows"], 2857, "{violation}");
    assert_eq!(report["files"][0]["bytes"], prod_bytes);
    assert_eq!(report["files"][0]["path"], format!("ssh://db1{}", hosts.prod.display()));
    // DEV's folder as it was: no base, no image, nothing.
    assert_eq!(folder(&hosts.dev_dir()), dev_folder);
    // Without --on-violation skip, the plan says the run would be refused, naming PROD.
    let (code, _, err) = hosts.run("plan");
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("ssh://db1") && err.contains("2857 rows"), "{err}");
    assert_eq!(folder(&hosts.dev_dir()), dev_folder);
}

/// A plan's data impact of kind `violation`.
fn violation_of(report: &serde_json::Value) -> &serde_json::Value {
    report["data_impact"]
        .as_array()
        .expect("impact")
        .iter()
        .find(|i| i["kind"] == "violation")
        .expect("a violation")
}

/// DEV byte for byte, its folder with nothing new but possibly the base.
fn assert_dev_untouched(hosts: &Hosts, dev_before: &[u8], what: &str) {
    assert_eq!(
        std::fs::read(&hosts.dev).expect("read"),
        dev_before,
        "{what}: DEV as it was"
    );
    let left: Vec<String> = names(&hosts.dev_dir())
        .into_iter()
        .filter(|n| n != ".shop.refresh-base.db" && !n.starts_with("shop.db.bak-"))
        .collect();
    assert_eq!(left, ["shop.db"], "{what}: no stray file");
}

#[test]
fn a_link_cut_mid_transfer_is_exit_4_with_dev_and_the_base_whole() {
    let hosts = Hosts::shop();
    let dev_before = std::fs::read(&hosts.dev).expect("read");
    // The link carries 100 KB of the helper's answer (of about 1.2 MB), then
    // breaks. The relay writes as it reads: no buffer holds bytes back.
    let relay = "import os\nn = 100000\nwhile n > 0:\n    b = os.read(0, min(65536, n))\n    if not b:\n        break\n    os.write(1, b)\n    n -= len(b)\n";
    std::fs::write(hosts.dir.path().join("relay.py"), relay).expect("write");
    let cut = script(
        hosts.dir.path(),
        "cut-ssh",
        &format!(
            "for last; do :; done\nsh -c \"$last\" | python3 {}",
            hosts.dir.path().join("relay.py").display()
        ),
    );
    let (code, report, err) = hosts.run_with("run", &cut, &[]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(report["error"]["code"], "remote_cut", "{report:#}");
    assert!(!hosts.base().exists(), "no half base");
    assert_dev_untouched(&hosts, &dev_before, "first refresh cut");
    // With a base from a whole refresh, a cut one leaves that base as it was.
    let (code, _, err) = hosts.run("run");
    assert_eq!(code, 0, "{err}");
    let dev_before = std::fs::read(&hosts.dev).expect("read");
    let base_before = std::fs::read(hosts.base()).expect("base");
    let conn = rusqlite::Connection::open(&hosts.prod).expect("open");
    conn.execute("UPDATE items SET s = hex(randomblob(50))", [])
        .expect("update");
    drop(conn);
    let (code, _, err) = hosts.run_with("run", &cut, &[]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(std::fs::read(hosts.base()).expect("base"), base_before, "the old base");
    assert_dev_untouched(&hosts, &dev_before, "second refresh cut");
    // The next run succeeds.
    let (code, _, err) = hosts.run("run");
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(hosts.base()).expect("base"),
        std::fs::read(&hosts.prod).expect("prod")
    );
    // PROD served in place, cut: the same, and once the helper has seen the
    // broken pipe and ended, PROD's folder is as it was found.
    let conn = rusqlite::Connection::open(&hosts.prod).expect("open");
    conn.execute("UPDATE items SET s = hex(randomblob(50))", [])
        .expect("update");
    drop(conn);
    let prod_folder = folder(&hosts.prod_dir());
    let dev_before = std::fs::read(&hosts.dev).expect("read");
    let base_before = std::fs::read(hosts.base()).expect("base");
    let (code, report, err) = hosts.run_with("run", &cut, &["--no-private-copy"]);
    assert_eq!(code, 4, "{err}");
    assert_eq!(report["error"]["code"], "remote_cut", "{report:#}");
    assert_eq!(std::fs::read(hosts.base()).expect("base"), base_before, "the old base");
    assert_dev_untouched(&hosts, &dev_before, "in place, cut");
    let deadline = Instant::now() + Duration::from_secs(30);
    while names(&hosts.prod_dir()) != ["shop.db"] {
        assert!(
            Instant::now() < deadline,
            "PROD's folder: {:?}",
            names(&hosts.prod_dir())
        );
        std::thread::yield_now();
    }
    assert_eq!(folder(&hosts.prod_dir()), prod_folder);
}

#[test]
fn failures_before_the_handshake_are_bad_input_with_dev_untouched() {
    let hosts = Hosts::shop();
    let dev_before = std::fs::read(&hosts.dev).expect("read");
    let dir = hosts.dir.path();
    let denied = script(
        dir,
        "denied-ssh",
        "echo 'me@db1: Permission denied (publickey).' >&2\nexit 255",
    );
    // An old helper: a hello in protocol 99.
    let old = script(
        dir,
        "old-helper-ssh",
        "python3 -c \"import sys,struct; p=b'refresh-dev remote\\x00\\x01'+struct.pack('<I',99)+struct.pack('<I',5)+b'9.9.9'; sys.stdout.buffer.write(bytes([1])+struct.pack('<I',len(p))+p)\"",
    );
    // What is said, the ssh, the helper (if not this one), the code, the words.
    let cases: [(&str, PathBuf, Vec<&str>, &str, &str); 4] = [
        (
            "ssh refused",
            denied,
            vec![],
            "remote_unreachable",
            "Permission denied (publickey)",
        ),
        (
            "no helper",
            hosts.ssh.clone(),
            vec!["/no/such/refresh-dev"],
            "remote_helper_missing",
            "--remote-exe",
        ),
        ("old helper", old, vec![], "remote_version", "protocol 99"),
        ("missing PROD", hosts.ssh.clone(), vec![], "not_found", "no such file"),
    ];
    for (what, ssh, extra, code_word, says) in cases {
        let mut args = vec![];
        let prod = if what == "missing PROD" {
            format!("db1:{}", hosts.dir.path().join("prodhost/nope.db").display())
        } else {
            hosts.address()
        };
        args.extend(["run", "--prod", prod.as_str()]);
        let (code, out, err) = run(refresh_dev()
            .args(&args)
            .arg("--dev")
            .arg(&hosts.dev)
            .arg("--ssh")
            .arg(&ssh)
            .arg("--remote-exe")
            .arg(extra.first().copied().unwrap_or(EXE))
            .arg("--json"));
        assert_eq!(code, 2, "{what}: {err}");
        let report = json(&out);
        assert_eq!(report["error"]["code"], code_word, "{what}: {report:#}");
        assert!(err.contains(says), "{what}: {err}");
        assert!(!hosts.base().exists(), "{what}: no base");
        assert_dev_untouched(&hosts, &dev_before, what);
    }
}

#[test]
fn a_remote_file_is_only_ever_read() {
    let hosts = Hosts::shop();
    let remote = hosts.address();
    let prod = hosts.prod.display().to_string();
    let dev = hosts.dev.display().to_string();
    let out = hosts.dir.path().join("dev/staged.db").display().to_string();
    for args in [
        vec!["run", "--prod", &prod, "--dev", &remote],
        vec!["replace", "--prod", &prod, "--dev", &remote],
        vec!["staging", "--prod", &prod, "--dev", &dev, "--out", &remote],
        vec!["staging", "--prod", &prod, "--dev", &remote, "--out", &out],
    ] {
        let (code, _, err) = run(refresh_dev().args(&args).arg("--ssh").arg(&hosts.ssh));
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("can only be read") && err.contains("DEV's host"), "{err}");
    }
    // ./a:b is a local file, as for scp.
    let (code, _, err) =
        run(refresh_dev()
            .current_dir(hosts.dir.path())
            .args(["run", "--prod", "./db1:x.db", "--dev", &dev]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("db1:x.db: no such file"), "{err}");
}

/// A real sshd on 127.0.0.1, with its own host key, user key, known_hosts
/// and configuration in a temporary folder. Killed when dropped.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    _process: KillOnDrop,
}

impl Sshd {
    fn start() -> Sshd {
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("sshd is missing: install openssh-server (.ci/run does)");
        let dir = tempdir();
        let d = dir.path();
        for key in ["host", "user", "stranger"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .expect("ssh-keygen (openssh-client)");
            assert!(status.success());
        }
        std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).expect("copy");
        if is_root() {
            // sshd's privilege separation folder, which a fresh container may lack.
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                 PermitRootLogin prohibit-password\nPidFile {pid}\n",
                host = d.join("host").display(),
                keys = d.join("authorized_keys").display(),
                pid = d.join("sshd.pid").display(),
            );
            std::fs::write(d.join("sshd_config"), config).expect("write");
            let host_key = std::fs::read_to_string(d.join("host.pub")).expect("read");
            let key: Vec<&str> = host_key.split_whitespace().take(2).collect();
            std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {}\n", key.join(" "))).expect("write");
            let mut child = Command::new(sshd)
                .arg("-f")
                .arg(d.join("sshd_config"))
                .args(["-D", "-e"])
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Sshd {
                        dir,
                        port,
                        _process: KillOnDrop(Some(child)),
                    };
                }
                if child.try_wait().ok().flatten().is_some() {
                    break; // the port was taken meanwhile: another one
                }
                std::thread::yield_now();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("sshd did not start");
    }

    /// `ssh` with this server's keys: the user's own options, as `--ssh` takes them.
    fn ssh(&self, key: &str, known_hosts: &Path) -> String {
        format!(
            "ssh -F /dev/null -i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o ConnectTimeout=10",
            self.dir.path().join(key).display(),
            known_hosts.display()
        )
    }

    fn address(&self, path: &Path) -> String {
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout).expect("utf-8");
        format!("ssh://{}@127.0.0.1:{}{}", user.trim(), self.port, path.display())
    }
}

#[test]
fn a_real_sshd_serves_a_refresh_and_refuses_a_wrong_key_or_an_unknown_host() {
    let sshd = Sshd::start();
    let hosts = Hosts::shop();
    let known = sshd.dir.path().join("known_hosts");
    let refresh = |ssh: String| {
        run(refresh_dev()
            .args(["run", "--prod", &sshd.address(&hosts.prod), "--dev"])
            .arg(&hosts.dev)
            .args(["--ssh", &ssh, "--remote-exe", EXE, "--json"]))
    };
    let dev_before = std::fs::read(&hosts.dev).expect("read");
    for (what, ssh, says) in [
        ("wrong key", sshd.ssh("stranger", &known), "Permission denied"),
        (
            "unknown host key",
            sshd.ssh("user", Path::new("/dev/null")),
            "Host key verification failed",
        ),
    ] {
        let (code, out, err) = refresh(ssh);
        assert_eq!(code, 2, "{what}: {err}");
        assert_eq!(json(&out)["error"]["code"], "remote_unreachable", "{what}");
        assert!(err.contains(says), "{what}: {err}");
        assert_dev_untouched(&hosts, &dev_before, what);
    }
    let (code, out, err) = refresh(sshd.ssh("user", &known));
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["transfer"]["host"], "127.0.0.1");
    assert_eq!(query_i64(&hosts.dev, "SELECT count(*) FROM items"), 20000);
    let (code, out, err) = refresh(sshd.ssh("user", &known));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&out)["transfer"]["pages_sent"],
        0,
        "nothing changed, nothing moved"
    );
}

#[test]
fn a_deployment_file_takes_a_remote_source_and_refuses_a_remote_target() {
    let hosts = Hosts::shop();
    let deployment = |prod: &str, dev: &str| {
        format!(
            "[files]\nprod = \"{prod}\"\ndev = \"{dev}\"\n\
             staging = {{ path = \"dev/.shop.refresh-staging.db\", temporary = true }}\n\
             [[step]]\nname = \"copy\"\nop = \"snapshot\"\nfrom = \"prod\"\nto = \"staging\"\n\
             [[step]]\nname = \"migrate\"\nop = \"apply\"\nschema = \"dev\"\nto = \"staging\"\n\
             [[step]]\nname = \"swap\"\nop = \"swap\"\nfrom = \"staging\"\nto = \"dev\"\n"
        )
    };
    let file = hosts.dir.path().join("refresh.toml");
    let deploy = |text: String| {
        std::fs::write(&file, text).expect("write");
        run(refresh_dev()
            .arg("deploy")
            .arg(&file)
            .arg("--ssh")
            .arg(&hosts.ssh)
            .args(["--remote-exe", EXE, "--json"]))
    };
    let (code, out, err) = deploy(deployment(&hosts.address(), "dev/shop.db"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        json(&out)["transfer"]["pages_sent"],
        json(&out)["transfer"]["pages_total"]
    );
    assert_eq!(query_i64(&hosts.dev, "SELECT count(*) FROM items"), 20000);
    // The base lies beside DEV, where the staging copy is swapped in.
    assert!(hosts.base().exists());
    let (code, _, err) = deploy(deployment("prodhost/shop.db", &hosts.address()));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("can only be read"), "{err}");
}

#[test]
fn the_snapshot_tool_takes_a_remote_source_into_a_local_dest() {
    let hosts = Hosts::shop();
    let copy = hosts.dir.path().join("dev/copy.db");
    let snapshot = |source: &str, dest: &str, extra: &[&str]| {
        run(refresh_dev()
            .args(["snapshot", source, dest, "--ssh"])
            .arg(&hosts.ssh)
            .args(["--remote-exe", EXE])
            .args(extra))
    };
    let (code, out, err) = snapshot(&hosts.address(), &copy.display().to_string(), &["--json"]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert!(report["pages"].as_u64().is_some_and(|p| p > 0), "{out}");
    assert_eq!(report["transfer"]["base_used"], false, "{out}");
    assert_eq!(report["transfer"]["pages_sent"], report["pages"], "{out}");
    assert_eq!(
        report["transfer"]["from"],
        format!("ssh://db1{}", hosts.prod.display()),
        "{out}"
    );
    assert_eq!(query_i64(&copy, "SELECT count(*) FROM items"), 20000);
    assert!(
        hosts.dir.path().join("dev/.copy.refresh-base.db").exists(),
        "the base beside DEST"
    );
    // Again: nothing changed, so no page moves.
    let (code, out, err) = snapshot(&hosts.address(), &copy.display().to_string(), &["--json", "--force"]);
    assert_eq!(code, 0, "{err}");
    let report = json(&out);
    assert_eq!(report["transfer"]["base_used"], true, "{out}");
    assert_eq!(report["transfer"]["pages_sent"], 0, "{out}");
    // DEST stays local.
    let (code, out, err) = snapshot(&hosts.prod.display().to_string(), "db1:/tmp/x.db", &["--json"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(json(&out)["error"]["code"], "usage");
}

#[test]
fn a_rollback_mode_prods_writers_go_on_while_a_slow_link_carries_the_copy() {
    let hosts = Hosts::bank("delete");
    let slow = hosts.slow_ssh();
    let stop = hosts.dir.path().join("stop");
    let _writer = hosts.writer(&stop, false, 20);
    let commits = || hosts.commits();
    let mut child = refresh_dev()
        .args(["run", "--prod", &hosts.address(), "--dev"])
        .arg(&hosts.dev)
        .arg("--ssh")
        .arg(&slow)
        .args(["--remote-exe", EXE, "--quiet"])
        .spawn()
        .expect("spawn");
    let receiving = || hosts.receiving();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !receiving() && child.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "the transfer never started");
        std::thread::yield_now();
    }
    let at_start = commits();
    while receiving() && child.try_wait().expect("wait").is_none() {
        std::thread::yield_now();
    }
    let during = commits() - at_start;
    let status = child.wait().expect("wait");
    std::fs::write(&stop, b"").expect("stop");
    assert!(status.success());
    assert!(
        during >= 20,
        "PROD's writer committed {during} times while the link carried the copy"
    );
    assert_eq!(query_i64(&hosts.dev, "SELECT sum(balance) FROM accounts"), 1_000_000);
}

#[test]
fn ctrl_c_stops_a_transfer_and_leaves_nothing_behind() {
    let hosts = Hosts::shop();
    let copy = hosts.dir.path().join("dev/copy.db").display().to_string();
    let address = hosts.address();
    let dev = hosts.dev.display().to_string();
    // `run`, then `snapshot HOST:PATH DEST`: no base, no DEST, no temporary file.
    for args in [
        vec!["run", "--prod", &address, "--dev", &dev],
        vec!["snapshot", &address, &copy],
    ] {
        let dev_folder = folder(&hosts.dev_dir());
        let child = refresh_dev()
            .args(&args)
            .arg("--ssh")
            .arg(hosts.slow_ssh())
            .args(["--remote-exe", EXE, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        interrupt_when(child, "the transfer", || hosts.receiving());
        assert_eq!(folder(&hosts.dev_dir()), dev_folder, "{args:?}: DEV's folder as it was");
    }
}

#[test]
#[ignore = "needs root"]
fn no_room_for_the_base_is_refused_before_a_page_moves() {
    if !is_root() {
        eprintln!("skipped: needs root to mount a tmpfs");
        return;
    }
    let hosts = Hosts::shop(); // about 2 MiB
    let disk = Tmpfs::mount(hosts.dir.path(), "1m");
    let dev = disk.path.join("shop.db");
    make_db(
        &dev,
        "delete",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT, note TEXT DEFAULT '');",
    );
    let before = folder(&disk.path);
    let (code, out, err) = run(refresh_dev()
        .args(["run", "--prod", &hosts.address(), "--dev"])
        .arg(&dev)
        .arg("--ssh")
        .arg(&hosts.ssh)
        .args(["--remote-exe", EXE, "--json"]));
    assert_eq!(code, 4, "{err}");
    assert_eq!(json(&out)["error"]["code"], "disk_full", "{out}");
    assert!(err.contains("disk full") && err.contains("bytes needed"), "{err}");
    assert_eq!(folder(&disk.path), before, "nothing written beside DEV");
}

#[test]
fn upload_helper_runs_this_program_there_and_leaves_nothing() {
    let hosts = Hosts::shop();
    let remote_tmp = hosts.dir.path().join("remote-tmp");
    std::fs::create_dir(&remote_tmp).expect("mkdir");
    let upload = |path: &std::ffi::OsStr| {
        run(refresh_dev()
            .env("TMPDIR", &remote_tmp)
            .env("PATH", path)
            .args(["run", "--prod", &hosts.address(), "--dev"])
            .arg(&hosts.dev)
            .arg("--ssh")
            .arg(&hosts.ssh)
            .args(["--upload-helper", "--json"]))
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    let (code, out, err) = upload(&path);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&out)["transfer"]["pages_sent"],
        json(&out)["transfer"]["pages_total"]
    );
    assert_eq!(query_i64(&hosts.dev, "SELECT count(*) FROM items"), 20000);
    assert!(
        names(&remote_tmp).is_empty(),
        "the uploaded helper and its copy are gone"
    );
    // Another OS or architecture there: refused before anything runs.
    let bin = hosts.dir.path().join("other-host-bin");
    std::fs::create_dir(&bin).expect("mkdir");
    script(&bin, "uname", "case \"$1\" in -s) echo Darwin;; -m) echo arm64;; esac");
    let mut other = std::ffi::OsString::from(&bin);
    other.push(":");
    other.push(&path);
    let dev_before = std::fs::read(&hosts.dev).expect("read");
    let (code, out, err) = upload(&other);
    assert_eq!(code, 2, "{err}");
    assert_eq!(json(&out)["error"]["code"], "remote_unreachable");
    assert!(err.contains("Darwin arm64") && err.contains("built for"), "{err}");
    assert_eq!(std::fs::read(&hosts.dev).expect("read"), dev_before);
    assert!(names(&remote_tmp).is_empty());
}

#[test]
fn no_private_copy_serves_a_wal_prod_in_place_under_its_writer_and_writes_nothing_there() {
    let hosts = Hosts::bank("wal");
    // The helper's temporary folder cannot be made: a private copy would fail.
    let no_tmp = script(
        hosts.dir.path(),
        "ssh-no-tmp",
        "for last; do :; done\nexec env TMPDIR=/nonexistent/refresh-dev-tmp sh -c \"$last\"",
    );
    let (code, _, _) = hosts.run_with("run", &no_tmp, &[]);
    assert_ne!(code, 0, "a private copy needs the helper's temporary folder");

    // PROD's folder as found: no -wal or -shm left where there was none.
    let prod_folder = folder(&hosts.prod_dir());
    let (code, report, err) = hosts.run_with("run", &no_tmp, &["--no-private-copy"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["transfer"]["served_from"], "in place", "{report}");
    assert_eq!(folder(&hosts.prod_dir()), prod_folder);

    // Under a writer that checkpoints, over a slow link (the read transaction
    // is held for the whole transfer): one committed state each time, and a
    // second refresh that moves only what changed.
    let stop = hosts.dir.path().join("stop");
    let _writer = hosts.writer(&stop, true, 50);
    let commits = || hosts.commits();
    std::fs::remove_file(hosts.base()).expect("start without a base");
    let slow = hosts.slow_ssh();
    for (round, ssh) in [(0, &slow), (1, &no_tmp)] {
        let before = commits();
        let (code, report, err) = hosts.run_with("run", ssh, &["--no-private-copy"]);
        assert_eq!(code, 0, "round {round}: {err}");
        assert_eq!(report["transfer"]["base_used"], round == 1, "{report}");
        assert_eq!(
            query_i64(&hosts.dev, "SELECT sum(balance) FROM accounts"),
            1_000_000,
            "round {round}: one committed state"
        );
        assert!(query_i64(&hosts.dev, "SELECT commits FROM meta") >= before);
        assert_eq!(integrity(&hosts.dev), "ok");
    }
    std::fs::write(&stop, b"").expect("stop");
}

#[test]
fn no_private_copy_refuses_a_rollback_mode_prod_in_plan_and_run_alike() {
    let hosts = Hosts::new(
        "delete",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT); INSERT INTO items(s) VALUES ('a');",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, s TEXT);",
    );
    let dev_folder = folder(&hosts.dev_dir());
    let prod_folder = folder(&hosts.prod_dir());
    for command in ["plan", "run", "replace"] {
        let (code, report, err) = hosts.run_with(command, &hosts.ssh, &["--no-private-copy"]);
        assert_eq!(code, 2, "{command}: {err}");
        assert_eq!(report["error"]["code"], "not_wal", "{command}: {report}");
        assert!(
            err.contains("rollback-journal mode") && err.contains("shop.db"),
            "{command}: {err}"
        );
        assert_eq!(folder(&hosts.dev_dir()), dev_folder, "{command}");
        assert_eq!(folder(&hosts.prod_dir()), prod_folder, "{command}");
    }
    // Without the option the same PROD is copied privately first.
    let (code, _, err) = hosts.run("run");
    assert_eq!(code, 0, "{err}");
}

#[test]
fn plan_with_no_private_copy_counts_a_wal_prod_in_place() {
    let hosts = Hosts::new(
        "wal",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, qty INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 700)
         INSERT INTO items SELECT i, i % 7 - 1 FROM n;",
        "CREATE TABLE items(id INTEGER PRIMARY KEY, qty INTEGER CHECK (qty >= 0));",
    );
    let prod_folder = folder(&hosts.prod_dir());
    let (code, report, err) = hosts.run_with("plan", &hosts.ssh, &["--no-private-copy", "--on-violation", "skip"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["transfer"]["served_from"], "in place", "{report}");
    let violation = violation_of(&report);
    assert_eq!(violation["rows"], 100, "{violation}");
    assert_eq!(folder(&hosts.prod_dir()), prod_folder);
}

#[test]
fn ssh_gets_the_commands_words_then_batch_mode_the_port_the_host_and_the_helper() {
    let hosts = Hosts::shop();
    // Records its arguments, one per line, then runs the remote command here.
    let argv = hosts.dir.path().join("argv");
    let recording = script(
        hosts.dir.path(),
        "recording-ssh",
        &format!(
            "printf '%s\\n' \"$@\" > {}\nfor last; do :; done\nexec sh -c \"$last\"",
            argv.display()
        ),
    );
    let ssh = format!("{} -i 'my key' -o ServerAliveInterval=5", recording.display());
    let exe_quoted = format!("{EXE} remote-helper");
    for (address, port, destination) in [
        (
            format!("ssh://me@db1:2222{}", hosts.prod.display()),
            Some("2222"),
            "me@db1",
        ),
        (format!("ssh://[::1]:2200{}", hosts.prod.display()), Some("2200"), "::1"),
        (format!("me@[fe80::1]:{}", hosts.prod.display()), None, "me@fe80::1"),
    ] {
        let (code, out, err) = run(refresh_dev()
            .args(["plan", "--prod", &address, "--dev"])
            .arg(&hosts.dev)
            .args(["--ssh", &ssh, "--remote-exe", EXE, "--json"]));
        assert!(code == 0 || code == 1, "{address}: {err}");
        assert_eq!(
            json(&out)["transfer"]["host"],
            destination.rsplit('@').next().expect("host")
        );
        let got: Vec<String> = std::fs::read_to_string(&argv)
            .expect("argv")
            .lines()
            .map(str::to_owned)
            .collect();
        let mut want = vec!["-i", "my key", "-o", "ServerAliveInterval=5", "-o", "BatchMode=yes"];
        if let Some(port) = port {
            want.extend(["-p", port]);
        }
        want.extend([destination, &exe_quoted]);
        assert_eq!(got, want, "{address}");
    }
}

#[test]
fn every_command_refuses_to_write_a_remote_file_and_the_tools_take_local_files_only() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    make_db(&prod, "wal", "CREATE TABLE t(a); INSERT INTO t VALUES (1);");
    // An ssh that leaves a mark if it is ever started.
    let mark = dir.path().join("ssh-started");
    let ssh = script(dir.path(), "ssh", &format!("touch '{}'; exit 255", mark.display()));
    let p = prod.to_str().expect("utf-8");
    let (written, local_only) = ("can only be read", "takes local files only (./devhost:dev.db");
    let staging = [
        "staging",
        "--prod",
        p,
        "--dev",
        "ssh://devhost/srv/dev.db",
        "--out",
        "s.db",
    ];
    let cases: [(&[&str], &str); 9] = [
        (&["run", "--prod", p, "--dev", "devhost:dev.db"], written),
        (&staging, written),
        (&["replace", "--prod", p, "--dev", "me@devhost:dev.db"], written),
        (&["rollback", "--dev", "devhost:dev.db"], written),
        (&["snapshot", p, "devhost:copy.db"], written),
        (&["plan", "--prod", p, "--dev", "devhost:dev.db"], written),
        (&["swap", p, "devhost:dev.db"], local_only),
        (&["apply", p, "devhost:dev.db"], local_only),
        (&["diff", p, "devhost:dev.db"], local_only),
    ];
    for (args, says) in cases {
        let mut command = refresh_dev();
        command.current_dir(dir.path()).args(args);
        if ["run", "staging", "replace", "snapshot", "plan"].contains(&args[0]) {
            command.arg("--ssh").arg(&ssh);
        }
        let (code, _, err) = run(&mut command);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!mark.exists(), "{args:?}: ssh was started");
    }
    assert_eq!(names(dir.path()), ["prod.db", "ssh"], "nothing else made");
}
