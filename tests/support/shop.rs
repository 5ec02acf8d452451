//! The shop of `fixtures/` as PROD and DEV, for the `refresh-dev` binary's
//! tests. Included with `#[path]` by those tests only (it names the
//! refresh-dev binary, which only that package's tests may).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rusqlite::types::Value;

use super::support::*;

pub fn refresh_dev() -> Command {
    Command::new(env!("CARGO_BIN_EXE_refresh-dev"))
}

pub fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures").join(name);
    std::fs::read_to_string(&path).expect("fixture")
}

/// PROD (the shop at v3) in `prod/`, DEV (v4) in `dev/`, each its own folder.
pub struct Shop {
    pub dir: tempfile::TempDir,
    pub prod: PathBuf,
    pub dev: PathBuf,
}

impl ProdAndDev for Shop {
    fn prod(&self) -> &Path {
        &self.prod
    }
    fn dev(&self) -> &Path {
        &self.dev
    }
}

impl Shop {
    pub fn new() -> Shop {
        Shop::with(&fixture("prod.sql"), &fixture("dev.sql"), "wal")
    }

    /// PROD from `prod_sql` in `prod_mode` (`wal` or `delete`), DEV from `dev_sql`.
    pub fn with(prod_sql: &str, dev_sql: &str, prod_mode: &str) -> Shop {
        let dir = tempdir();
        for sub in ["prod", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let prod = dir.path().join("prod/shop.db");
        let dev = dir.path().join("dev/shop.db");
        make_db(&prod, prod_mode, prod_sql);
        if prod_mode != "wal" {
            // The fixture may switch the mode itself: put it back.
            make_db(&prod, prod_mode, "");
        }
        make_db(&dev, "delete", dev_sql);
        Shop { dir, prod, dev }
    }

    pub fn prod_dir(&self) -> PathBuf {
        self.dir.path().join("prod")
    }

    pub fn dev_dir(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    /// Runs `refresh-dev COMMAND --prod PROD --dev DEV EXTRA...`.
    pub fn run(&self, command: &str, extra: &[&str]) -> (i32, String, String) {
        run(refresh_dev().args(self.args(command)).args(extra))
    }

    pub fn backups(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = std::fs::read_dir(self.dev_dir())
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("shop.db.bak-"))
            })
            .collect();
        found.sort();
        found
    }
}

/// The columns of `table`, in order.
pub fn columns(db: &Path, table: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut stmt = conn
        .prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")
        .expect("prepare");
    stmt.query_map([table], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("columns")
}

/// Every row of `table` (those `columns`), sorted, as debug strings.
pub fn rows(db: &Path, table: &str, columns: &[String]) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let list = columns
        .iter()
        .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(", ");
    let mut stmt = conn
        .prepare(&format!("SELECT {list} FROM \"{table}\""))
        .expect("prepare");
    let mut out: Vec<String> = stmt
        .query_map([], |r| {
            (0..columns.len())
                .map(|i| r.get::<_, Value>(i))
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("query")
        .map(|r| format!("{:?}", r.expect("row")))
        .collect();
    out.sort();
    out
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

pub fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Negative quantities, which a CHECK in DEV forbids.
pub const PROD_WITH_NEGATIVES: &str = "CREATE TABLE stock(id INTEGER PRIMARY KEY, sku TEXT, qty INT);
    INSERT INTO stock(sku, qty) VALUES ('a', 5), ('b', -1), ('c', 7), ('d', -3);";
pub const DEV_WITH_CHECK: &str = "CREATE TABLE stock(id INTEGER PRIMARY KEY, sku TEXT, qty INT CHECK (qty >= 0));";
