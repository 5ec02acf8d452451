//! What `refresh-dev` says: the plan, the summary, `--json` and its schema,
//! errors on bad input (one line, exit 2, nothing changed), hints, colour,
//! help, the log, and the words it uses.

#[path = "support/shop.rs"]
mod shop;
mod support;

use shop::*;
use support::*;

#[test]
fn plan_writes_nothing_and_says_what_would_happen() {
    for prod_mode in ["wal", "delete"] {
        let shop = Shop::with(&fixture("prod.sql"), &fixture("dev.sql"), prod_mode);
        let prod_before = folder(&shop.prod_dir());
        let dev_before = folder(&shop.dev_dir());
        // A runnable plan exits 0; --exit-code says the schemas differ (1), as git diff does.
        let (code, out, err) = shop.run("plan", &["--json", "--exit-code"]);
        assert_eq!(code, 1, "schemas differ: {out}{err}");
        let (code, out, err) = shop.run("plan", &["--json"]);
        assert_eq!(code, 0, "the run would proceed: {out}{err}");
        let report = json(&out);
        assert_eq!(report["dry_run"], true);
        assert_eq!(report["result"], "succeeded");
        assert!(!report["changes"].as_array().expect("changes").is_empty());
        let lost = report["data_impact"]
            .as_array()
            .expect("impact")
            .iter()
            .find(|i| i["kind"] == "lost")
            .expect("the fixtures drop customers.fax");
        assert_eq!(lost["column"], "fax");
        assert!(lost["rows"].as_i64().expect("rows") > 0);
        assert!(report["space"][0]["needed"].as_u64().expect("needed") > 0);
        assert!(report["preflight"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["check"] == "in use" && c["ok"] == true));
        for step in report["steps"].as_array().expect("steps") {
            assert_eq!(step["status"], "planned");
            assert!(!step["operations"].as_array().expect("ops").is_empty());
        }
        assert_eq!(folder(&shop.prod_dir()), prod_before, "{prod_mode}");
        assert_eq!(folder(&shop.dev_dir()), dev_before, "{prod_mode}");

        // `run --dry-run` is the same plan, in words.
        let (code, out, _) = shop.run("run", &["--dry-run", "-v"]);
        assert_eq!(code, 0);
        assert_eq!(shop.run("run", &["--dry-run", "--exit-code"]).0, 1);
        assert!(out.contains("would snapshot") && out.contains("customers.fax"), "{out}");
        assert_eq!(folder(&shop.dev_dir()), dev_before);
    }
}

#[test]
fn plan_of_identical_schemas_exits_zero() {
    let sql = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'), ('b');";
    let shop = Shop::with(sql, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);", "wal");
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("schemas identical"), "{out}");
}

#[test]
fn bad_input_gets_one_clear_line_exit_2_and_changes_nothing() {
    let shop = Shop::new();
    let junk = shop.dir.path().join("junk.db");
    std::fs::write(
        &junk,
        "this is not a database, just text that is long enough for a header.............................",
    )
    .expect("write");
    let truncated = shop.dir.path().join("truncated.db");
    let bytes = std::fs::read(&shop.dev).expect("read");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write");
    let missing = shop.dir.path().join("missing.db");
    let folder_path = shop.dir.path().join("prod");
    let before = (folder(&shop.dev_dir()), folder(&shop.prod_dir()));
    let text = |p: &std::path::Path| p.display().to_string();
    let (dev, prod, missing, junk, truncated) = (
        text(&shop.dev),
        text(&shop.prod),
        text(&missing),
        text(&junk),
        text(&truncated),
    );
    let (folder_path, nowhere, x) = (
        text(&folder_path),
        text(&shop.dir.path().join("nowhere/x.db")),
        text(&shop.dir.path().join("x.db")),
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["run", "--prod", &missing, "--dev", &dev], "no such file"),
        (vec!["run", "--prod", &prod, "--dev", &missing], "no such file"),
        (vec!["run", "--prod", &folder_path, "--dev", &dev], "is a directory"),
        (vec!["run", "--prod", &junk, "--dev", &dev], "not an SQLite database"),
        (vec!["run", "--prod", &truncated, "--dev", &dev], "truncated"),
        (vec!["run", "--prod", &dev, "--dev", &dev], "same file"),
        (vec!["plan", "--prod", &junk, "--dev", &dev], "not an SQLite database"),
        (vec!["replace", "--prod", &missing, "--dev", &dev], "no such file"),
        (
            vec!["replace", "--prod", &prod, "--dev", &missing],
            "missing.db: no such file",
        ),
        (
            vec!["staging", "--prod", &prod, "--dev", &dev, "--out", &nowhere],
            "folder does not exist",
        ),
        (vec!["deploy", &missing], "no such file"),
        (vec!["rollback", "--dev", &dev], "no backup"),
        (
            vec!["run", "--prod", &prod, "--dev", &dev, "--rename", "nodot"],
            "TABLE.OLD=NEW",
        ),
        (vec!["run", "--prod", &prod], "--dev"),
        (
            vec!["run", "--prod", &prod, "--dev", &dev, "--timeout", "inf"],
            "expected a number of seconds",
        ),
        (
            vec!["staging", "--prod", &prod, "--dev", &dev, "--out", &dev],
            "same file",
        ),
        (vec!["deploy", &junk], "junk.db"),
        (vec!["snapshot", &missing, &x], "no such file"),
        (vec!["diff", &dev, &junk], "not an SQLite database"),
        (vec!["apply", &dev, &truncated], "truncated"),
        (vec!["swap", &missing, &dev], "no such file"),
    ];
    for (args, expected) in cases {
        let (code, out, err) = run(refresh_dev().args(&args));
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(err.contains(expected), "{args:?}: {err}");
        // One line: `refresh-dev: error: ...`, or the tool's own `snapshot: error: ...`, or clap's.
        let first = err.lines().find(|l| l.contains("error:"));
        assert!(
            first.is_some_and(|l| l.contains(expected) || l.contains("required")),
            "{args:?}: {err}"
        );
        assert_eq!((folder(&shop.dev_dir()), folder(&shop.prod_dir())), before, "{args:?}");
    }
}

#[test]
fn utf16_prod_and_utf8_dev_are_refused() {
    let dir = tempdir();
    let prod = dir.path().join("prod.db");
    let dev = dir.path().join("dev.db");
    make_db(&prod, "delete", "PRAGMA encoding = 'UTF-16le'; CREATE TABLE t(x);");
    make_db(&dev, "delete", "CREATE TABLE t(x);");
    let before = folder(dir.path());
    let (code, _, err) = run(refresh_dev().args(["run", "--prod"]).arg(&prod).arg("--dev").arg(&dev));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("encoding"), "{err}");
    assert_eq!(folder(dir.path()), before);
}

#[test]
fn the_log_has_one_json_line_per_event() {
    let shop = Shop::new();
    let log = shop.dir.path().join("refresh.log");
    let (code, _, err) = shop.run("run", &["--quiet", "--log", log.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&log).expect("log");
    let events: Vec<serde_json::Value> = text.lines().map(json).collect();
    assert!(events.len() >= 7, "{text}");
    for e in &events {
        for key in ["time", "elapsed", "level", "step", "message", "file"] {
            assert!(e.get(key).is_some(), "{key} missing in {e}");
        }
    }
    assert!(events
        .iter()
        .any(|e| e["step"] == "overwrite development with staging" && e["message"] == "succeeded"));
}

#[test]
fn the_tools_run_as_subcommands_with_their_own_arguments() {
    let shop = Shop::new();
    let copy = shop.dev_dir().join("copy.db");
    let (code, _, err) = run(refresh_dev().arg("snapshot").arg(&shop.prod).arg(&copy).arg("--quiet"));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run(refresh_dev().arg("diff").arg(&shop.dev).arg(&copy));
    assert_eq!(code, 1, "{out}");
    let (code, out, err) = run(refresh_dev()
        .arg("apply")
        .arg(&shop.dev)
        .arg(&copy)
        .arg("--on-violation")
        .arg("abort"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_rows(&copy), schema_rows(&shop.dev));
    let (code, _, err) = run(refresh_dev().arg("swap").arg(&copy).arg(&shop.dev).arg("--quiet"));
    assert_eq!(code, 0, "{err}");
    assert_eq!(shop.backups().len(), 1);
    let (code, _, _) = run(refresh_dev()
        .arg("diff")
        .arg(&shop.dev)
        .arg(&shop.backups()[0])
        .arg("--quiet"));
    assert_eq!(code, 0, "same schema");
}

#[test]
fn run_passes_the_migration_hints_through() {
    let prod = "CREATE TABLE people(id INTEGER PRIMARY KEY, fullname TEXT);
        INSERT INTO people(fullname) VALUES ('Ada'), ('Grace');
        CREATE TABLE tags(id INTEGER PRIMARY KEY, tag TEXT);
        INSERT INTO tags(tag) VALUES ('prod-tag');
        CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT);
        INSERT INTO settings VALUES ('mode', 'prod');
        CREATE TABLE schema_migrations(version TEXT PRIMARY KEY);
        INSERT INTO schema_migrations VALUES ('1');";
    let dev = "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT);
        CREATE TABLE labels(id INTEGER PRIMARY KEY, tag TEXT);
        CREATE TABLE settings(k TEXT PRIMARY KEY, v TEXT);
        INSERT INTO settings VALUES ('mode', 'dev');
        CREATE TABLE schema_migrations(version TEXT PRIMARY KEY);
        INSERT INTO schema_migrations VALUES ('1'), ('2');";
    let shop = Shop::with(prod, dev, "wal");
    let (code, out, err) = shop.run(
        "run",
        &[
            "--rename",
            "people.fullname=name",
            "--rename-table",
            "tags=labels",
            "--dev-data",
            "settings",
            "--prod-data",
            "schema_migrations",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM people WHERE name IN ('Ada', 'Grace')"),
        2
    );
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM labels WHERE tag = 'prod-tag'"),
        1
    );
    assert_eq!(query_i64(&shop.dev, "SELECT count(*) FROM settings WHERE v = 'dev'"), 1);
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM schema_migrations"),
        1,
        "PROD's, as asked"
    );
}

#[test]
fn apply_with_sql_prints_the_statements_and_writes_nothing() {
    let dir = tempdir();
    let (dev, target) = (dir.path().join("dev.db"), dir.path().join("target.db"));
    make_db(&target, "delete", "CREATE TABLE t(a); INSERT INTO t VALUES (1);");
    make_db(&dev, "delete", "CREATE TABLE t(a, b);");
    let before = folder(dir.path());
    let (code, out, err) = run(refresh_dev().args(["apply", "--sql"]).arg(&dev).arg(&target));
    assert_eq!(code, 1, "the schemas differ: {out}{err}");
    assert!(out.contains("ALTER TABLE main.\"t\" ADD COLUMN b;"), "{out}");
    assert_eq!(folder(dir.path()), before, "nothing written, no copy left");
    // Without --sql, `apply` applies.
    let (code, out, err) = run(refresh_dev().arg("apply").arg(&dev).arg(&target));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(schema_rows(&target), schema_rows(&dev));
}

#[test]
fn rollback_prints_one_json_object_on_every_outcome() {
    let shop = Shop::new();
    // No backup yet: an error, still one object.
    let (code, out, err) = run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 2, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["command"], "rollback");
    assert_eq!(report["exit_code"], 2);
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|e| e.contains("no backup")),
        "{out}"
    );
    assert_eq!(err.lines().count(), 1, "the error once: {err}");
    // After a run, the backup goes back.
    assert_eq!(shop.run("run", &["--quiet"]).0, 0);
    let (code, out, err) = run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&shop.dev));
    assert_eq!(code, 0, "{out}{err}");
    let report = json(&out);
    assert_eq!(report["result"], "succeeded");
    assert!(
        report["rollback"]["restored"]
            .as_str()
            .is_some_and(|p| p.contains("shop.db.bak-")),
        "{out}"
    );
}

#[test]
fn hints_that_name_nothing_are_bad_input_with_the_closest_name() {
    let shop = Shop::with(
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, fax TEXT); INSERT INTO customers(fax) VALUES ('1');
         CREATE TABLE coupons(code TEXT);",
        "CREATE TABLE customers(id INTEGER PRIMARY KEY, phone TEXT); CREATE TABLE coupons(code TEXT);",
        "delete",
    );
    let dev_before = folder(&shop.dev_dir());
    for (hint, words) in [
        (vec!["--rename", "customers.fx=phone"], vec!["fx", "did you mean fax?"]),
        (
            vec!["--rename", "customers.fax=phon"],
            vec!["phon", "did you mean phone?"],
        ),
        (
            vec!["--rename-table", "custmers=customers"],
            vec!["custmers", "did you mean customers?"],
        ),
        (vec!["--dev-data", "cupons"], vec!["cupons", "did you mean coupons?"]),
        (vec!["--prod-data", "nothing_*"], vec!["nothing_*"]),
        (vec!["--migration-table", "versions"], vec!["versions"]),
    ] {
        for command in ["plan", "run"] {
            let (code, out, err) = shop.run(command, &hint);
            assert_eq!(code, 2, "{command} {hint:?}: {out}{err}");
            for w in &words {
                assert!(err.contains(w), "{command} {hint:?}: {err}");
            }
            assert_eq!(err.lines().count(), 1, "one line: {err}");
        }
    }
    assert_eq!(folder(&shop.dev_dir()), dev_before, "nothing written");
    // Without hints the plan offers the rename, with the flag to pass.
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("customers.phone may be fax renamed") && out.contains("--rename"),
        "{out}"
    );
    // The plan's next command is the run, in full, hints included.
    let (_, out, _) = shop.run("plan", &["--rename", "customers.fax=phone", "--exit-code"]);
    let next = out.lines().find(|l| l.contains("next:")).unwrap_or_default();
    assert!(
        next.contains("refresh-dev run --prod") && next.contains("--rename customers.fax=phone"),
        "{out}"
    );
    assert!(!next.contains("--exit-code"), "{next}");
    let (code, out, err) = shop.run("run", &["--rename", "customers.fax=phone"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        query_i64(&shop.dev, "SELECT count(*) FROM customers WHERE phone = '1'"),
        1
    );
}

#[test]
fn a_swapped_prod_and_dev_is_caught_before_anything_changes() {
    // The fixtures the wrong way round: DEV (v4) named as PROD, PROD (v3) as DEV.
    let shop = Shop::new();
    let (real_prod, real_dev) = (folder(&shop.prod_dir()), folder(&shop.dev_dir()));
    let swapped = |command: &str, extra: &[&str]| {
        run(refresh_dev()
            .args([command, "--prod"])
            .arg(&shop.dev)
            .arg("--dev")
            .arg(&shop.prod)
            .args(extra))
    };
    for command in ["plan", "run", "staging"] {
        let out_file = shop.dir.path().join("out.db");
        let extra: Vec<&str> = if command == "staging" {
            vec!["--out", out_file.to_str().expect("utf-8")]
        } else {
            Vec::new()
        };
        let (code, out, err) = swapped(command, &extra);
        assert_eq!(code, 3, "{command}: {out}{err}");
        assert!(
            err.contains("behind") && err.contains("replace") && err.contains("--allow-behind"),
            "{err}"
        );
    }
    assert_eq!(folder(&shop.prod_dir()), real_prod, "the real PROD untouched");
    assert_eq!(folder(&shop.dev_dir()), real_dev);

    // Equal user_version, but PROD's migration history holds a version DEV lacks.
    let history = |versions: &str| {
        format!("CREATE TABLE t(a); CREATE TABLE schema_migrations(version TEXT); INSERT INTO schema_migrations VALUES {versions};")
    };
    let shop = Shop::with(&history("('1'), ('2'), ('3')"), &history("('1'), ('2')"), "wal");
    let (code, out, err) = shop.run("plan", &[]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("schema_migrations") && err.contains("'3'"), "{err}");
    let (code, out, err) = shop.run("run", &["--allow-behind"]);
    assert_eq!(code, 0, "meant: {out}{err}");
}

#[test]
fn every_json_report_conforms_to_the_published_schema() {
    let schema = report_schema();
    let shop = Shop::new();
    let missing = shop.dir.path().join("missing.db");
    let outcomes = [
        shop.run("plan", &["--json"]).1,
        run(refresh_dev()
            .args(["plan", "--json", "--prod"])
            .arg(&missing)
            .arg("--dev")
            .arg(&shop.dev))
        .1,
        shop.run("run", &["--json"]).1,
        shop.run("replace", &["--json", "--dry-run"]).1,
        run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&shop.dev)).1,
        run(refresh_dev().args(["rollback", "--json", "--dev"]).arg(&missing)).1,
    ];
    for out in outcomes {
        let report = json(&out);
        assert_eq!(report["version"], 2, "{out}");
        if let Err(why) = conforms(&report, &schema, &schema, "report") {
            panic!("{why}\n{out}");
        }
    }
}

#[test]
fn colour_is_asked_for_with_color_and_never_sent_down_a_pipe_by_default() {
    let shop = Shop::new();
    let missing = shop.dir.path().join("missing.db");
    let plan = |extra: &[&str]| {
        run(refresh_dev()
            .args(["plan", "--prod"])
            .arg(&missing)
            .arg("--dev")
            .arg(&shop.dev)
            .args(extra))
    };
    let (_, out, err) = plan(&["--color", "always"]);
    assert!(
        out.contains("\x1b[") && err.contains("\x1b["),
        "a refusal stands out: {out}{err}"
    );
    for extra in [&[][..], &["--color", "never"][..], &["--color", "auto"][..]] {
        let (_, out, err) = plan(extra);
        assert!(!out.contains('\x1b') && !err.contains('\x1b'), "{extra:?}: {out}{err}");
    }
    let (_, out, _) = run(refresh_dev()
        .args(["diff", "--color", "always"])
        .arg(&shop.dev)
        .arg(&shop.prod));
    assert!(out.contains("\x1b["), "{out}");
}

#[test]
fn help_shows_examples_completions_and_man_pages_are_built() {
    for command in ["run", "plan", "replace", "staging", "deploy", "rollback", "completions"] {
        let (code, out, err) = run(refresh_dev().args([command, "--help"]));
        assert_eq!(code, 0, "{command}: {err}");
        assert!(
            out.contains("Examples:") && out.contains("refresh-dev"),
            "{command}: {out}"
        );
    }
    let (_, out, _) = run(refresh_dev().args(["replace", "--help"]));
    assert!(out.contains("not kept"), "replace says it discards DEV's schema: {out}");
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, err) = run(refresh_dev().args(["completions", shell]));
        assert_eq!(code, 0, "{shell}: {err}");
        assert!(out.contains("refresh-dev") && out.contains("prod"), "{shell}");
    }
    let dir = tempdir();
    let (code, _, err) = run(refresh_dev().arg("manpages").arg(dir.path()));
    assert_eq!(code, 0, "{err}");
    let page = std::fs::read_to_string(dir.path().join("refresh-dev-run.1")).expect("a page per command");
    assert!(page.contains(".TH") && page.contains("prod"), "{page}");
    assert!(dir.path().join("refresh-dev.1").exists());
}

#[test]
fn a_usage_error_is_one_json_object_with_json_and_a_run_says_what_happened_in_a_few_lines() {
    let shop = Shop::new();
    let (code, out, err) = run(refresh_dev().args(["plan", "--json", "--bogus"]));
    assert_eq!(code, 2, "{err}");
    let report = json(&out);
    assert_eq!(
        (report["version"].as_u64(), report["exit_code"].as_u64()),
        (Some(2), Some(2)),
        "{out}"
    );
    assert_eq!(report["error"]["code"], "usage");
    // A successful run: a summary of at most about 15 lines, in PROD/DEV words.
    let (code, out, err) = shop.run("run", &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().count() <= 15, "{out}");
    assert!(
        out.contains("DEV keeps its schema") && out.contains("lost: customers.fax: 66 values"),
        "{out}"
    );
    assert!(out.contains("rollback --dev"), "{out}");
    // The full report is there for who asks.
    let (_, out, _) = shop.run("plan", &["-v", "--allow-behind"]);
    assert!(out.contains("[1] would snapshot"), "{out}");
}

#[test]
fn the_drivers_json_says_prod_where_schema_diff_says_target() {
    let shop = Shop::new();
    for command in ["plan", "run"] {
        let (code, out, err) = shop.run(command, &["--json"]);
        assert_eq!(code, 0, "{command}: {err}");
        let report = json(&out);
        let mut migrations = vec![&report["plan"], &report["changes"], &report["data_impact"]];
        for step in report["steps"].as_array().expect("steps") {
            migrations.extend([&step["diff"], &step["apply"]]);
        }
        for part in migrations {
            let text = part.to_string();
            assert!(!text.contains("\"target"), "{command}: {text}");
            assert!(!text.contains("TARGET"), "{command}: {text}");
        }
        let from: Vec<&str> = report["plan"]
            .as_array()
            .expect("plan")
            .iter()
            .map(|t| t["rows_from"].as_str().expect("rows_from"))
            .collect();
        assert!(from.contains(&"prod"), "{command}: {from:?}");
        let diffs: Vec<&serde_json::Value> = report["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .flat_map(|s| [&s["diff"], &s["apply"]["diff"]])
            .filter(|d| !d.is_null())
            .collect();
        assert_eq!(diffs.len(), 1, "{command}: {report:#}");
        // PROD itself when planning; its copy, the staging file, when run.
        let prod = diffs[0]["prod"].as_str().expect("prod");
        assert!(
            prod.ends_with("prod/shop.db") || prod.ends_with(".shop.refresh-staging.db"),
            "{prod}"
        );
    }
}

#[test]
fn paths_under_the_current_folder_are_shown_relative() {
    let shop = Shop::new();
    let root = shop.dir.path().display().to_string();
    for verbose in [false, true] {
        let mut cmd = refresh_dev();
        cmd.current_dir(shop.dir.path()).args(shop.args("plan"));
        if verbose {
            cmd.arg("-v");
        }
        let (code, out, err) = run(&mut cmd);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("prod/shop.db") && out.contains("dev/shop.db"), "{out}");
        assert!(!out.contains(&format!("{root}/")), "verbose {verbose}: {out}");
    }
    // A refusal's one line, too.
    let blocker = shop.dev_dir().join(".shop.refresh-staging.db");
    std::fs::write(&blocker, b"not ours").expect("write");
    let (code, _, err) = run(refresh_dev().current_dir(shop.dir.path()).args(shop.args("run")));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("dev/.shop.refresh-staging.db") && !err.contains(&root),
        "{err}"
    );
}

#[test]
fn the_staging_summary_speaks_of_staging_and_leaves_dev_out_of_it() {
    let shop = Shop::new();
    let out = shop.dir.path().join("staged.db");
    for dry_run in [true, false] {
        let mut args = vec!["--out", out.to_str().expect("utf-8")];
        if dry_run {
            args.push("--dry-run");
        }
        let (code, said, err) = shop.run("staging", &args);
        assert_eq!(code, 0, "{err}");
        assert!(said.contains("staged.db gets PROD's rows in DEV's schema"), "{said}");
        assert!(said.contains("DEV is not touched"), "{said}");
        assert!(!said.contains("DEV's own rows are replaced"), "{said}");
        assert!(!said.contains("--no-backup"), "{said}");
    }
}
