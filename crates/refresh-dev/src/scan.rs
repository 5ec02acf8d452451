//! `refresh-dev scan --prod PROD`: a starting rules file on stdout, from the
//! columns of PROD that look like personal data (by name, and by sampled
//! values). PROD is only read, and its folder left as found.

use std::path::PathBuf;

use clap::Args;
use exit_code::Exit;

#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The database to scan (PROD): read, never written.
    #[arg(long, value_name = "PROD")]
    prod: PathBuf,
    /// The development database: the rules name the result's (DEV's) tables and columns, so
    /// a finding in a column DEV does not have (dropped by the migration) is left out, as a
    /// comment.
    #[arg(long, value_name = "DEV")]
    dev: Option<PathBuf>,
    /// Non-NULL values sampled per column.
    #[arg(long, value_name = "N", default_value = "200")]
    sample: usize,
    /// The findings as one JSON object instead of a rules file.
    #[arg(long)]
    json: bool,
}

pub fn scan(args: &ScanArgs) -> Exit {
    let fail = |exit: Exit, code: &str, message: &str| {
        cli_support::fail(args.json, "scan", exit.code(), code, message, Some(&args.prod));
        exit
    };
    if let Ok(remote::Address::Remote(r)) = remote::Address::of_path(&args.prod) {
        let message = format!("{r}: scan reads a local file; copy it first with `refresh-dev snapshot {r} LOCAL.db`");
        return fail(Exit::BadInput, "usage", &message);
    }
    let db = match schema_diff::open(&args.prod, &schema_diff::Reading::default()) {
        Ok((db, _)) => db,
        Err(e) => return fail(e.exit(), e.code(), &e.to_string()),
    };
    let found = mask::schema::tables(db.conn(), "main")
        .and_then(|tables| mask::scan::scan(db.conn(), "main", &tables, args.sample));
    let findings = match found {
        Ok(f) => f,
        Err(e) => {
            let e = sqlite_file::FileError::sqlite(&args.prod, "scan", e);
            return fail(e.exit(), e.code(), &e.to_string());
        }
    };
    // Only the columns the result (DEV) has can take a rule.
    let mut dropped = Vec::new();
    let findings = match &args.dev {
        None => findings,
        Some(dev) => {
            let dev_tables = match schema_diff::open(dev, &schema_diff::Reading::default()) {
                Ok((db, _)) => mask::schema::tables(db.conn(), "main"),
                Err(e) => {
                    cli_support::fail(args.json, "scan", e.exit().code(), e.code(), &e.to_string(), Some(dev));
                    return e.exit();
                }
            };
            let dev_tables = match dev_tables {
                Ok(t) => t,
                Err(e) => {
                    let e = sqlite_file::FileError::sqlite(dev, "read the schema", e);
                    cli_support::fail(args.json, "scan", e.exit().code(), e.code(), &e.to_string(), Some(dev));
                    return e.exit();
                }
            };
            let in_dev = |f: &mask::scan::Finding| {
                dev_tables.iter().any(|t| {
                    t.name.eq_ignore_ascii_case(&f.table)
                        && t.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&f.column))
                })
            };
            let (kept, gone): (Vec<_>, Vec<_>) = findings.into_iter().partition(in_dev);
            dropped = gone;
            kept
        }
    };
    if args.json {
        let value = serde_json::json!({
            "version": cli_support::JSON_VERSION,
            "command": "scan",
            "prod": args.prod,
            "findings": findings,
            "not_in_dev": dropped,
            "rules": mask::scan::starting_rules(&findings, &args.prod.display().to_string()),
        });
        println!("{value}");
    } else {
        print!(
            "{}",
            mask::scan::starting_rules(&findings, &args.prod.display().to_string())
        );
    }
    Exit::Done
}
