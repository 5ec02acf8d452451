//! Two small databases, PROD and DEV, in folders of their own, for the
//! edge-case tests of the `refresh-dev` binary. Included with `#[path]` by
//! those tests only (it names the refresh-dev binary).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::support::*;

pub fn refresh_dev() -> Command {
    Command::new(env!("CARGO_BIN_EXE_refresh-dev"))
}

/// PROD (600 customers, WAL mode) in `prod/`, DEV (2 customers and a new
/// column) in `dev/`, each its own folder.
pub struct Pair {
    pub dir: tempfile::TempDir,
    pub prod: PathBuf,
    pub dev: PathBuf,
}

pub const PROD_SQL: &str = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 600)
    INSERT INTO customers(name) SELECT 'customer ' || i FROM n;
    CREATE TABLE log(k INTEGER PRIMARY KEY);";

pub const DEV_SQL: &str = "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT);
    INSERT INTO customers(name, email) VALUES ('dev one', 'a@dev'), ('dev two', 'b@dev');
    CREATE TABLE log(k INTEGER PRIMARY KEY);";

impl ProdAndDev for Pair {
    fn prod(&self) -> &Path {
        &self.prod
    }
    fn dev(&self) -> &Path {
        &self.dev
    }
}

impl Pair {
    pub fn new(dev_mode: &str) -> Pair {
        let dir = tempdir();
        for sub in ["prod", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let prod = dir.path().join("prod/shop.db");
        let dev = dir.path().join("dev/shop.db");
        make_db(&prod, "wal", PROD_SQL);
        make_db(&dev, dev_mode, DEV_SQL);
        Pair { dir, prod, dev }
    }

    pub fn prod_dir(&self) -> PathBuf {
        self.dir.path().join("prod")
    }

    pub fn dev_dir(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    pub fn staging(&self) -> PathBuf {
        self.dev_dir().join(".shop.refresh-staging.db")
    }

    pub fn run(&self, command: &str, extra: &[&str]) -> (i32, String, String) {
        run(refresh_dev().args(self.args(command)).args(extra))
    }

    pub fn customers(&self, db: &Path) -> i64 {
        query_i64(db, "SELECT count(*) FROM customers")
    }
}

/// Waits for `child` with a deadline: a hang is a failure, never a pass.
pub fn finish_within(mut child: Child, limit: Duration) -> (i32, String) {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.code().unwrap_or(-1), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn sqlite_file_sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A pair of small databases, PROD in WAL mode, DEV in rollback mode.
pub fn small_pair(prod_sql: &str, dev_sql: &str) -> Pair {
    let dir = tempdir();
    for sub in ["prod", "dev"] {
        std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
    }
    let prod = dir.path().join("prod/shop.db");
    let dev = dir.path().join("dev/shop.db");
    make_db(&prod, "wal", prod_sql);
    make_db(&dev, "delete", dev_sql);
    Pair { dir, prod, dev }
}
