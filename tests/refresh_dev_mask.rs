//! End to end: `--rules` (masking and subsetting) and `refresh-dev scan`,
//! on real files: no original value left in any byte of DEV's folder,
//! deterministic masks that keep joins, subsets closed over foreign keys,
//! and bad rules refused with nothing changed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

fn refresh_dev() -> Command {
    Command::new(env!("CARGO_BIN_EXE_refresh-dev"))
}

const SCHEMA: &str = "
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT UNIQUE, card TEXT, phone TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES customers(id), placed_at TEXT, ship_email TEXT);
CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL REFERENCES orders(id), sku TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id), kind TEXT);
CREATE INDEX orders_customer ON orders(customer_id);
CREATE INDEX customers_name ON customers(name);
";

const RULES: &str = r#"[mask]
"customers.email"   = "email"
"customers.name"    = "name"
"orders.ship_email" = "email"
"customers.card"    = { keep_last = 4 }

[subset]
orders = "placed_at >= '2026-10-01'"
events = { percent = 5 }
"#;

/// The original personal values PROD holds: none may be found in DEV's folder.
fn originals() -> Vec<String> {
    let mut v: Vec<String> = (1..=60).map(|i| format!("person{i:03}@realmail.example")).collect();
    v.extend((1..=60).map(|i| format!("Original Person {i:03}")));
    v.push("ghost-original@realmail.example".into());
    v.push("4111111111".into());
    v
}

/// PROD (WAL, with deleted personal rows left in its free pages) and DEV
/// (the same schema), and the rules beside DEV.
struct Pii {
    dir: tempfile::TempDir,
    prod: PathBuf,
    dev: PathBuf,
    rules: PathBuf,
}

impl Pii {
    fn new(prod_mode: &str) -> Pii {
        let dir = tempdir();
        for sub in ["prod", "dev"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        let (prod, dev) = (dir.path().join("prod/shop.db"), dir.path().join("dev/shop.db"));
        let mut sql = String::from(SCHEMA);
        sql.push_str("PRAGMA secure_delete = OFF;\n");
        for i in 1..=60 {
            sql.push_str(&format!(
                "INSERT INTO customers VALUES ({i}, 'Original Person {i:03}', 'person{i:03}@realmail.example', '4111111111111111', '+1 212 555 {i:04}');\n"
            ));
        }
        for i in 1..=300 {
            let c = i % 60 + 1;
            sql.push_str(&format!(
                "INSERT INTO orders VALUES ({i}, {c}, '2026-{:02}-01', 'person{c:03}@realmail.example');\n",
                i % 12 + 1
            ));
            sql.push_str(&format!("INSERT INTO items VALUES ({i}, {i}, 'sku-{i}');\n"));
        }
        for i in 1..=1000 {
            sql.push_str(&format!("INSERT INTO events VALUES ({i}, {}, 'view');\n", i % 300 + 1));
        }
        // A deleted row: its bytes stay in PROD's free pages.
        sql.push_str("INSERT INTO customers VALUES (999, 'Ghost', 'ghost-original@realmail.example', NULL, NULL);\n");
        sql.push_str("DELETE FROM customers WHERE id = 999;\n");
        make_db(&prod, prod_mode, &sql);
        make_db(&dev, "delete", SCHEMA);
        let rules = dir.path().join("dev/rules.toml");
        std::fs::write(&rules, RULES).expect("rules");
        Pii { dir, prod, dev, rules }
    }

    fn dev_dir(&self) -> PathBuf {
        self.dir.path().join("dev")
    }

    fn command(&self, command: &str, extra: &[&str]) -> Command {
        let mut cmd = refresh_dev();
        cmd.arg(command)
            .arg("--prod")
            .arg(&self.prod)
            .arg("--dev")
            .arg(&self.dev)
            .args(extra);
        cmd
    }

    /// `command` with `--rules` and `extra`, to run or spawn.
    fn command_with_rules(&self, command: &str, extra: &[&str]) -> Command {
        let rules = self.rules.to_string_lossy().into_owned();
        let mut args = vec!["--rules", rules.as_str()];
        args.extend_from_slice(extra);
        self.command(command, &args)
    }

    fn with_rules(&self, command: &str, extra: &[&str]) -> (i32, String, String) {
        run(&mut self.command_with_rules(command, extra))
    }

    /// More customers in PROD, ids 1000 to `last`: a masked copy that takes a while.
    fn grow(&self, last: u32) {
        let conn = rusqlite::Connection::open(&self.prod).expect("open");
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO customers SELECT i, 'Original Person ' || i, 'person' || i || '@realmail.example', NULL, NULL FROM n",
            [last],
        )
        .expect("rows");
    }

    fn key(&self) -> PathBuf {
        self.dev_dir().join(".shop.db.refresh-mask-key")
    }
}

/// Every file under `dir` (not backups of an earlier DEV) whose raw bytes
/// hold one of `needles`, with the needle.
fn holding(dir: &Path, needles: &[String]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.contains(".bak-") || path.is_dir() {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read");
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                found.push((name.clone(), n.clone()));
            }
        }
    }
    found
}

fn strings(db: &Path, sql: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(db).expect("open");
    let mut st = conn.prepare(sql).expect("prepare");
    st.query_map([], |r| r.get::<_, Option<String>>(0).map(|v| v.unwrap_or_default()))
        .expect("query")
        .collect::<rusqlite::Result<_>>()
        .expect("rows")
}

#[test]
fn run_leaves_no_original_byte_and_masks_deterministically() {
    let pii = Pii::new("wal");
    // The ghost row is really in PROD's free pages: the test can fail.
    assert!(!holding(
        &pii.dir.path().join("prod"),
        &["ghost-original@realmail.example".to_owned()]
    )
    .is_empty());
    let prod_before = folder(&pii.dir.path().join("prod"));
    let (code, out, err) = pii.with_rules("run", &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report = json(&out);
    let schema = report_schema();
    conforms(&report, &schema, &schema, "").expect("report conforms to its schema");
    assert_eq!(report["masking"]["key_state"], "new");
    assert_eq!(folder(&pii.dir.path().join("prod")), prod_before, "PROD untouched");
    assert_eq!(holding(&pii.dev_dir(), &originals()), Vec::<(String, String)>::new());
    assert_eq!(integrity(&pii.dev), "ok");
    // The key: made beside DEV, mode 0600.
    assert_eq!(
        std::fs::metadata(pii.key()).expect("key").permissions().mode() & 0o777,
        0o600
    );
    // Joins on masked columns still match; NULL stays NULL; the card keeps its last 4.
    let matched = query_i64(
        &pii.dev,
        "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.ship_email = c.email",
    );
    assert_eq!(matched, query_i64(&pii.dev, "SELECT count(*) FROM orders"));
    assert!(strings(&pii.dev, "SELECT card FROM customers")
        .iter()
        .all(|c| c.ends_with("1111") && c.len() == 16));
    let emails = strings(&pii.dev, "SELECT email FROM customers ORDER BY id");
    assert_eq!(emails.len(), 60);
    let distinct: std::collections::BTreeSet<_> = emails.iter().map(|e| e.to_lowercase()).collect();
    assert_eq!(distinct.len(), 60, "distinct inputs give distinct outputs");
    // The same input, the same key: the same output on the next refresh.
    let (code, out, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(strings(&pii.dev, "SELECT email FROM customers ORDER BY id"), emails);
    assert_eq!(holding(&pii.dev_dir(), &originals()), Vec::<(String, String)>::new());
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn subset_is_closed_over_foreign_keys_and_the_sample_is_stable() {
    let pii = Pii::new("delete");
    let (code, out, err) = pii.with_rules("run", &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report = json(&out);
    // No foreign-key violation PROD did not have.
    assert_eq!(
        strings(&pii.dev, "SELECT \"table\" FROM pragma_foreign_key_check"),
        Vec::<String>::new()
    );
    // Every kept order matches the filter or is the parent of a kept event.
    let stray = query_i64(
        &pii.dev,
        "SELECT count(*) FROM orders o WHERE placed_at < '2026-10-01' AND NOT EXISTS (SELECT 1 FROM events e WHERE e.order_id = o.id)",
    );
    assert_eq!(stray, 0);
    // Every order matching the filter is kept (300 orders, 3 months of 12).
    assert_eq!(
        query_i64(&pii.dev, "SELECT count(*) FROM orders WHERE placed_at >= '2026-10-01'"),
        75
    );
    // Items (no filter) follow their orders out; customers (no filter) all stay.
    assert_eq!(
        query_i64(&pii.dev, "SELECT count(*) FROM items"),
        query_i64(&pii.dev, "SELECT count(*) FROM orders")
    );
    assert_eq!(query_i64(&pii.dev, "SELECT count(*) FROM customers"), 60);
    let events = query_i64(&pii.dev, "SELECT count(*) FROM events");
    assert!(events > 10 && events < 120, "about 5% of 1000: {events}");
    // The report names what was left out, per table, against PROD's count.
    let subset = report["masking"]["built"]["subset"].as_array().expect("subset").clone();
    let of = |t: &str| subset.iter().find(|s| s["table"] == t).expect("table").clone();
    assert_eq!(of("orders")["rows"], 300);
    assert_eq!(of("orders")["kept"], query_i64(&pii.dev, "SELECT count(*) FROM orders"));
    assert_eq!(of("events")["kept"], events);
    assert_eq!(of("items")["rows"], 300);
    // A stable sample: the same events on the next refresh.
    let ids = strings(&pii.dev, "SELECT CAST(id AS TEXT) FROM events ORDER BY id");
    let (code, _, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        strings(&pii.dev, "SELECT CAST(id AS TEXT) FROM events ORDER BY id"),
        ids
    );
}

#[test]
fn plan_shows_masked_examples_kept_rows_and_unruled_columns_and_makes_no_key() {
    let pii = Pii::new("wal");
    let dev_before = folder(&pii.dev_dir());
    let (code, out, err) = pii.with_rules("plan", &["--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report = json(&out);
    let schema = report_schema();
    conforms(&report, &schema, &schema, "").expect("report conforms to its schema");
    let m = &report["masking"];
    assert_eq!(m["key_state"], "throwaway");
    let masked = m["planned"]["masked"].as_array().expect("masked");
    assert_eq!(masked.len(), 4);
    for e in masked {
        let example = e["example"].as_str().expect("an example");
        assert!(
            !example.contains("realmail") && !example.contains("Original"),
            "{example}"
        );
    }
    let email = masked.iter().find(|e| e["column"] == "email").expect("email");
    assert!(email["example"].as_str().is_some_and(|x| x.contains('@')));
    let subset = m["planned"]["subset"].as_array().expect("subset");
    let orders = subset.iter().find(|s| s["table"] == "orders").expect("orders");
    assert_eq!(orders["rows"], 300);
    assert!(orders["kept"].as_i64().is_some_and(|k| (75..300).contains(&k)));
    let unruled: Vec<String> = m["planned"]["unruled"]
        .as_array()
        .expect("unruled")
        .iter()
        .map(|f| {
            format!(
                "{}.{}",
                f["table"].as_str().unwrap_or(""),
                f["column"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(unruled, ["customers.phone"]);
    assert_eq!(
        folder(&pii.dev_dir()),
        dev_before,
        "a plan writes nothing, not even a key"
    );
    // The human plan says the same, with no original value.
    let (code, out, _) = pii.with_rules("plan", &[]);
    assert_eq!(code, 0);
    assert!(out.contains("customers.email: email, e.g."), "{out}");
    assert!(out.contains("orders:") && out.contains("of 300 rows kept"), "{out}");
    assert!(out.contains("customers.phone"), "{out}");
    assert!(!out.contains("realmail"), "{out}");
}

#[test]
fn bad_rules_exit_2_naming_the_line_and_change_nothing() {
    let pii = Pii::new("wal");
    let dev_before = folder(&pii.dev_dir());
    let cases = [
        (
            "[mask]\n\"customers.email\" = \"email\"\n\"nosuch.email\" = \"email\"\n",
            ": line 3:",
            "no table nosuch",
        ),
        (
            "[mask]\n\"customers.mail\" = \"email\"\n",
            ": line 2:",
            "no column mail",
        ),
        ("[mask]\n\"customers.email\" = \"emial\"\n", ": line 2:", "unknown rule"),
        (
            "\n[subset]\norders = \"placed_at >>= 1\"\n",
            ": line 3:",
            "not a valid WHERE",
        ),
        ("[subset]\nevents = { percent = 500 }\n", ": line 2:", "percent"),
        ("[mask\n", ": line 1:", ""),
        // A reference masked apart from what it references would break.
        (
            "[mask]\n\"customers.id\" = { keep_last = 1 }\n",
            ": line 2:",
            "masked alike",
        ),
    ];
    for (text, line, words) in cases {
        std::fs::write(&pii.rules, text).expect("write");
        for command in ["run", "plan"] {
            let (code, out, err) = pii.with_rules(command, &[]);
            assert_eq!(code, 2, "{command} {text}: {out}\n{err}");
            assert!(
                err.contains(&format!("rules.toml{line}")) && err.contains(words),
                "{text}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
        let mut now = folder(&pii.dev_dir());
        now.insert("rules.toml".into(), dev_before["rules.toml"].clone());
        assert_eq!(now, dev_before, "nothing changed: {text}");
    }
}

#[test]
fn masked_values_breaking_a_check_are_found_by_plan_and_refused_by_run() {
    let pii = Pii::new("wal");
    let dev_schema = SCHEMA.replace("name TEXT NOT NULL,", "name TEXT NOT NULL CHECK (length(name) <= 20),");
    std::fs::remove_file(&pii.dev).expect("rm");
    make_db(&pii.dev, "delete", &dev_schema);
    let dev_before = folder(&pii.dev_dir());
    let (code, out, err) = pii.with_rules("plan", &[]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert!(
        err.contains("customers") && err.contains("CHECK") && err.contains("\"customers.name\" = name"),
        "{err}"
    );
    assert!(err.contains("sql ="), "suggests an sql rule: {err}");
    let (code, out, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 3, "{out}\n{err}");
    assert_eq!(
        folder(&pii.dev_dir()),
        dev_before,
        "DEV, its folder and no key: as they were"
    );
    // An sql rule that keeps the constraint passes.
    let rules = RULES.replace(
        "\"customers.name\"    = \"name\"",
        "\"customers.name\" = { sql = \"'person ' || id\" }",
    );
    std::fs::write(&pii.rules, rules).expect("write");
    let (code, out, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        strings(&pii.dev, "SELECT name FROM customers WHERE id = 7"),
        ["person 7"]
    );
}

#[test]
fn rejects_and_reports_show_only_masked_values() {
    let pii = Pii::new("wal");
    // DEV refuses odd leads: those rows go to the rejects file, with their emails.
    let leads = "CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT);";
    let conn = rusqlite::Connection::open(&pii.prod).expect("open");
    conn.execute_batch(leads).expect("leads");
    for i in 1..=20 {
        conn.execute(
            "INSERT INTO leads VALUES (?1, ?2)",
            (i, format!("lead{i:03}@realmail.example")),
        )
        .expect("lead");
    }
    drop(conn);
    std::fs::remove_file(&pii.dev).expect("rm");
    make_db(
        &pii.dev,
        "delete",
        &format!("{SCHEMA}CREATE TABLE leads (id INTEGER PRIMARY KEY, email TEXT CHECK (id % 2 = 0));"),
    );
    std::fs::write(
        &pii.rules,
        RULES.replace("[subset]", "\"leads.email\" = \"email\"\n\n[subset]"),
    )
    .expect("rules");
    let log = pii.dir.path().join("run.log");
    let (code, out, err) = pii.with_rules(
        "run",
        &[
            "--on-violation",
            "skip",
            "--json",
            "--log",
            log.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report = json(&out);
    let rejects = PathBuf::from(report["rejects"]["path"].as_str().expect("rejects"));
    assert_eq!(query_i64(&rejects, "SELECT count(*) FROM leads"), 10);
    let mut needles = originals();
    needles.extend((1..=20).map(|i| format!("lead{i:03}@realmail.example")));
    assert_eq!(holding(&pii.dev_dir(), &needles), Vec::<(String, String)>::new());
    assert!(strings(&rejects, "SELECT email FROM leads")
        .iter()
        .all(|e| e.contains("@example.")));
    for text in [out, err, std::fs::read_to_string(&log).expect("log")] {
        assert!(!text.contains("realmail"), "{text}");
    }
}

#[test]
fn replace_and_staging_mask_too_and_a_renamed_column_is_followed() {
    let pii = Pii::new("delete");
    let (code, out, err) = pii.with_rules("replace", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(holding(&pii.dev_dir(), &originals()), Vec::<(String, String)>::new());
    assert_eq!(query_i64(&pii.dev, "SELECT count(*) FROM customers"), 60);

    // DEV renamed customers.email to contact; the rules use DEV's name.
    let pii = Pii::new("wal");
    std::fs::remove_file(&pii.dev).expect("rm");
    make_db(
        &pii.dev,
        "delete",
        &SCHEMA.replace("email TEXT UNIQUE", "contact TEXT UNIQUE"),
    );
    std::fs::write(&pii.rules, RULES.replace("customers.email", "customers.contact")).expect("rules");
    let (code, out, err) = pii.with_rules("plan", &["--rename", "customers.email=contact", "--json"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let masked = json(&out)["masking"]["planned"]["masked"].clone();
    let contact = masked
        .as_array()
        .expect("masked")
        .iter()
        .find(|e| e["column"] == "contact")
        .expect("contact")
        .clone();
    assert!(
        contact["example"].as_str().is_some_and(|x| x.contains("@example.")),
        "{contact}"
    );
    let out_file = pii.dir.path().join("dev/staged.db");
    let (code, out, err) = pii.with_rules(
        "staging",
        &[
            "--rename",
            "customers.email=contact",
            "--out",
            out_file.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(strings(&out_file, "SELECT contact FROM customers")
        .iter()
        .all(|c| c.contains("@example.")));
    // One DEV, one key, whichever command refreshes it.
    assert!(pii.key().exists());
    assert!(!pii.dev_dir().join(".staged.db.refresh-mask-key").exists());
    // A filter runs on PROD's rows as they are copied, before the migration:
    // over a name only DEV has, it is bad input, found by plan and run alike.
    std::fs::write(&pii.rules, "[subset]\ncustomers = \"contact LIKE 'person0%'\"\n").expect("rules");
    for command in ["plan", "run"] {
        let (code, _, err) = pii.with_rules(command, &["--rename", "customers.email=contact"]);
        assert_eq!(code, 2, "{command}: {err}");
        assert!(
            err.contains("rules.toml: line 2") && err.contains("before the migration"),
            "{err}"
        );
    }
    assert_eq!(holding(&pii.dev_dir(), &originals()), Vec::<(String, String)>::new());
}

#[test]
fn a_deployment_file_masks_its_step() {
    let pii = Pii::new("wal");
    let toml = format!(
        "[files]\nprod = \"{}\"\ndev = \"shop.db\"\nstaging = {{ path = \"stage.db\", temporary = true }}\n\n\
         [[step]]\nop = \"snapshot\"\nfrom = \"prod\"\nto = \"staging\"\nrules = \"rules.toml\"\n\n\
         [[step]]\nop = \"apply\"\nschema = \"dev\"\nto = \"staging\"\n\n\
         [[step]]\nop = \"swap\"\nfrom = \"staging\"\nto = \"dev\"\n",
        pii.prod.display()
    );
    let file = pii.dev_dir().join("deploy.toml");
    let deploy = |text: &str| {
        std::fs::write(&file, text).expect("write");
        run(refresh_dev().arg("deploy").arg(&file))
    };
    let masked = |what: &str, (code, out, err): (i32, String, String)| {
        assert_eq!(code, 0, "{what}: {out}\n{err}");
        assert_eq!(
            holding(&pii.dev_dir(), &originals()),
            Vec::<(String, String)>::new(),
            "{what}"
        );
        assert!(pii.key().exists(), "the key lives beside the file the data ends in");
    };
    let bare = toml.replace("to = \"staging\"\nrules = \"rules.toml\"\n", "to = \"staging\"\n");
    // On the copy's step, on the migration's (its copy is masked), or for the whole file.
    masked("on the snapshot step", deploy(&toml));
    masked(
        "on the apply step",
        deploy(&bare.replace(
            "schema = \"dev\"\nto = \"staging\"\n",
            "schema = \"dev\"\nto = \"staging\"\nrules = \"rules.toml\"\n",
        )),
    );
    masked("for the whole file", deploy(&format!("rules = \"rules.toml\"\n{bare}")));
    // Not on a swap, which copies no row.
    let (code, _, err) = deploy(&bare.replace(
        "from = \"staging\"\nto = \"dev\"\n",
        "from = \"staging\"\nto = \"dev\"\nrules = \"rules.toml\"\n",
    ));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("step 3") && err.contains("swap"), "{err}");
}

#[test]
fn scan_writes_a_starting_rules_file_that_plan_accepts() {
    let pii = Pii::new("wal");
    // Columns whose names say nothing: found by their values.
    let conn = rusqlite::Connection::open(&pii.prod).expect("open");
    conn.execute_batch(
        "CREATE TABLE misc (id INTEGER PRIMARY KEY, a TEXT, b TEXT, c TEXT, d TEXT);
         INSERT INTO misc VALUES (1, '4111 1111 1111 1111', '10.0.0.1', 'DE89 3704 0044 0532 0130 00', '2026-10-01');
         INSERT INTO misc VALUES (2, '5500 0000 0000 0004', '192.168.7.9', 'GB82 WEST 1234 5698 7654 32', '2026-11-01');",
    )
    .expect("misc");
    drop(conn);
    let prod_before = folder(&pii.dir.path().join("prod"));
    let (code, out, err) = run(refresh_dev().arg("scan").arg("--prod").arg(&pii.prod));
    assert_eq!(code, 0, "{err}");
    for line in [
        "\"customers.email\"",
        "\"customers.name\"",
        "\"customers.phone\"",
        "\"customers.card\"",
        "\"orders.ship_email\"",
        "\"misc.a\"",
        "\"misc.b\"",
        "\"misc.c\"",
    ] {
        assert!(out.contains(line), "{line} in\n{out}");
    }
    assert!(
        !out.contains("\"misc.d\"") && !out.contains("orders.placed_at"),
        "dates are not phones:\n{out}"
    );
    assert_eq!(
        folder(&pii.dir.path().join("prod")),
        prod_before,
        "PROD's folder as found"
    );
    // The starting file is a valid rules file for DEV (which has no misc: drop those lines).
    let rules: String = out
        .lines()
        .filter(|l| !l.starts_with("\"misc."))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&pii.rules, rules).expect("write");
    let (code, out, err) = pii.with_rules("plan", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains("no rule:"), "{out}");
}

/// An ssh stand-in in `dir` that drops ssh's options and the host and runs
/// the remote command here: "PROD's host" is another folder.
fn fake_ssh(dir: &Path) -> PathBuf {
    let path = dir.join("fake-ssh");
    let log = dir.join("ssh-args.log");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nfor last; do :; done\nexec sh -c \"$last\"\n",
            log.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

#[test]
fn with_a_remote_prod_the_rows_are_masked_and_subset_on_its_host() {
    let pii = Pii::new("wal");
    let ssh = fake_ssh(pii.dir.path());
    let address = format!("db1:{}", pii.prod.display());
    let remote = |extra: &[&str]| {
        run(refresh_dev()
            .args(["run", "--prod", &address, "--dev"])
            .arg(&pii.dev)
            .arg("--ssh")
            .arg(&ssh)
            .args(["--remote-exe", env!("CARGO_BIN_EXE_refresh-dev"), "--json"])
            .args(extra))
    };
    let rules = pii.rules.to_string_lossy().into_owned();
    // A plan previews the rules on PROD's host: no row moves, nothing is written here.
    let dev_folder = folder(&pii.dev_dir());
    let (code, out, err) = run(refresh_dev()
        .args(["plan", "--prod", &address, "--dev"])
        .arg(&pii.dev)
        .arg("--ssh")
        .arg(&ssh)
        .args([
            "--remote-exe",
            env!("CARGO_BIN_EXE_refresh-dev"),
            "--json",
            "--rules",
            &rules,
        ]));
    assert_eq!(code, 0, "{out}\n{err}");
    let plan = json(&out);
    assert_eq!(plan["transfer"]["pages_sent"], 0);
    assert_eq!(plan["masking"]["planned"]["masked"].as_array().map(Vec::len), Some(4));
    let orders = plan["masking"]["planned"]["subset"]
        .as_array()
        .expect("subset")
        .iter()
        .find(|t| t["table"] == "orders")
        .expect("orders")
        .clone();
    assert_eq!(orders["rows"], 300, "counted against PROD's rows: {orders}");
    assert!(!out.contains("realmail"), "{out}");
    assert_eq!(folder(&pii.dev_dir()), dev_folder, "no base, no key, nothing");
    let (code, out, err) = remote(&["--rules", &rules]);
    assert_eq!(code, 0, "{out}\n{err}");
    let report = json(&out);
    let schema = report_schema();
    conforms(&report, &schema, &schema, "").expect("report conforms to its schema");
    // The base is the masked subset: no original crossed, and fewer rows did.
    let bases: Vec<String> = names(&pii.dev_dir())
        .into_iter()
        .filter(|n| n.starts_with(".shop.refresh-base"))
        .collect();
    assert_eq!(bases.len(), 1, "{bases:?}");
    assert!(
        bases[0].starts_with(".shop.refresh-base-"),
        "named after the rules and key: {bases:?}"
    );
    assert_eq!(holding(&pii.dev_dir(), &originals()), Vec::<(String, String)>::new());
    let base = pii.dev_dir().join(&bases[0]);
    assert_eq!(
        query_i64(&base, "SELECT count(*) FROM orders"),
        query_i64(&pii.dev, "SELECT count(*) FROM orders")
    );
    assert!(query_i64(&pii.dev, "SELECT count(*) FROM events") < 200);
    let subset = report["masking"]["built"]["subset"]
        .as_array()
        .expect("subset counted on PROD's host");
    assert!(subset.iter().any(|t| t["table"] == "orders" && t["rows"] == 300));
    let received = report["transfer"]["bytes_received"].as_u64().expect("bytes");
    assert!(
        received < std::fs::metadata(&pii.prod).expect("prod").len(),
        "{received}"
    );
    // The key stayed here, and the same values come back on the next refresh.
    assert!(pii.key().exists());
    let emails = strings(&pii.dev, "SELECT email FROM customers ORDER BY id");
    let (code, out, err) = remote(&["--rules", &rules]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(strings(&pii.dev, "SELECT email FROM customers ORDER BY id"), emails);
    // Other rules: the base of the old ones is discarded, not reused.
    std::fs::write(
        &pii.rules,
        "[mask]\n\"customers.email\" = \"hash\"\n\"orders.ship_email\" = \"hash\"\n",
    )
    .expect("rules");
    let (code, out, err) = remote(&["--rules", &rules]);
    assert_eq!(code, 0, "{out}\n{err}");
    let now: Vec<String> = names(&pii.dev_dir())
        .into_iter()
        .filter(|n| n.starts_with(".shop.refresh-base"))
        .collect();
    assert_eq!(now.len(), 1, "{now:?}");
    assert_ne!(now, bases);
    assert_eq!(json(&out)["transfer"]["base_used"], false);
    assert_eq!(
        holding(&pii.dev_dir(), &originals()[..60]),
        Vec::<(String, String)>::new()
    );
    // --no-private-copy: the masked subset is built from PROD read in place,
    // with the same values, and PROD's folder is left as found.
    let hashed = strings(&pii.dev, "SELECT email FROM customers ORDER BY id");
    let prod_folder = folder(&pii.dir.path().join("prod"));
    let (code, out, err) = remote(&["--rules", &rules, "--no-private-copy"]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(json(&out)["transfer"]["served_from"], "in place", "{out}");
    assert_eq!(strings(&pii.dev, "SELECT email FROM customers ORDER BY id"), hashed);
    assert_eq!(
        holding(&pii.dev_dir(), &originals()[..60]),
        Vec::<(String, String)>::new()
    );
    let after = folder(&pii.dir.path().join("prod"));
    assert_eq!(after.keys().collect::<Vec<_>>(), prod_folder.keys().collect::<Vec<_>>());
    for (name, bytes) in &after {
        assert!(*bytes == prod_folder[name], "{name} changed");
    }
}

#[test]
fn devs_own_rows_that_reference_rows_the_subset_left_out_are_kept_and_reported() {
    let pii = Pii::new("wal");
    // A table only in DEV, whose rows reference orders: some of them left out.
    std::fs::remove_file(&pii.dev).expect("rm");
    make_db(
        &pii.dev,
        "delete",
        &format!(
            "PRAGMA foreign_keys = OFF; {SCHEMA}CREATE TABLE dev_notes (id INTEGER PRIMARY KEY, order_id INTEGER REFERENCES orders(id), note TEXT);
             INSERT INTO dev_notes VALUES (1, 1, 'about order 1'), (2, 2, 'about order 2'), (3, 299, 'late');"
        ),
    );
    std::fs::write(&pii.rules, "[subset]\norders = \"id >= 290\"\n").expect("rules");
    let (code, out, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        query_i64(&pii.dev, "SELECT count(*) FROM dev_notes"),
        3,
        "DEV's rows are kept"
    );
    assert!(
        out.contains("dev_notes -> orders: 2 of DEV's rows reference a row the subset left out: kept"),
        "{out}"
    );
    // A filter on a table whose rows are DEV's is not used (they are never subset), and said so.
    std::fs::write(&pii.rules, "[subset]\ndev_notes = \"id = 1\"\n").expect("rules");
    let (code, out, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(query_i64(&pii.dev, "SELECT count(*) FROM dev_notes"), 3);
    assert!(
        out.contains("rules.toml: line 2") && out.contains("never subset"),
        "{out}"
    );
}

#[test]
fn a_shared_mask_key_masks_two_devs_alike_and_is_made_once_with_mode_0600() {
    let (one, two) = (Pii::new("wal"), Pii::new("delete"));
    let key = one.dir.path().join("team.key");
    let key_s = key.to_string_lossy().into_owned();
    let (code, _, err) = one.with_rules("plan", &["--mask-key", &key_s]);
    assert_eq!(code, 0, "{err}");
    assert!(!key.exists(), "a plan makes no key");
    let (code, _, err) = one.with_rules("run", &["--mask-key", &key_s]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    assert!(!one.key().exists(), "no key beside DEV when another is named");
    let (code, _, err) = two.with_rules("run", &["--mask-key", &key_s]);
    assert_eq!(code, 0, "{err}");
    let emails = |p: &Pii| strings(&p.dev, "SELECT email FROM customers ORDER BY id");
    assert_eq!(emails(&one), emails(&two));
    // A key file too short to be a key is bad input, with nothing changed.
    std::fs::write(&key, b"short").expect("write");
    let before = folder(&one.dev_dir());
    let (code, _, err) = one.with_rules("run", &["--mask-key", &key_s]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("team.key") && err.contains("16"), "{err}");
    assert_eq!(folder(&one.dev_dir()), before);
}

#[test]
fn ctrl_c_stops_a_masked_copy_and_leaves_nothing_behind() {
    let pii = Pii::new("wal");
    // Enough rows that the masked copy is still being built when the signal comes.
    pii.grow(400_000);
    let dev_folder = folder(&pii.dev_dir());
    let child = pii
        .command_with_rules("run", &["--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let staging = pii.dev_dir().join(".shop.refresh-staging.db");
    interrupt_when(child, "the masked copy", || staging.exists());
    assert_eq!(
        folder(&pii.dev_dir()),
        dev_folder,
        "DEV and its folder as they were, no key, no copy"
    );
}

#[test]
fn after_kill_9_mid_masked_copy_dev_is_whole_and_the_next_run_cleans_up_and_keeps_the_key() {
    // A rollback-mode PROD: the run first copies it privately beside DEV.
    let pii = Pii::new("delete");
    pii.grow(150_000);
    let dev_before = std::fs::read(&pii.dev).expect("dev");
    let mut child = pii.command_with_rules("run", &["--quiet"]).spawn().expect("spawn");
    let started = |name: &str| names(&pii.dev_dir()).iter().any(|n| n.contains(name));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !(started("refresh-mask-source") || started("refresh-staging")) {
        assert!(child.try_wait().expect("wait").is_none(), "ended before the copy");
        assert!(std::time::Instant::now() < deadline, "the copy never started");
        std::thread::yield_now();
    }
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    assert_eq!(std::fs::read(&pii.dev).expect("dev"), dev_before, "DEV is whole");
    let (code, out, err) = pii.with_rules("run", &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    let left: Vec<String> = names(&pii.dev_dir())
        .into_iter()
        .filter(|n| !n.starts_with("shop.db.bak-"))
        .collect();
    assert_eq!(left, [".shop.db.refresh-mask-key", "rules.toml", "shop.db"]);
    assert_eq!(
        query_i64(&pii.dev, "SELECT count(*) FROM customers WHERE email LIKE '%realmail%'"),
        0
    );
}
