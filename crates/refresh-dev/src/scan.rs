//! `refresh-dev scan --prod PROD`: a starting rules file on stdout, from the
//! columns of PROD that look like personal data (by name, and by sampled
//! values). PROD is only read, and its folder left as found.

use std::path::{Path, PathBuf};

use clap::Args;
use exit_code::Exit;
use mask::scan::Finding;
use refresh_dev::Error;

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
    match findings(args) {
        Ok((findings, dropped)) => {
            print_rules(args, &findings, &dropped);
            Exit::Done
        }
        Err(e) => {
            let file = e.file().unwrap_or(&args.prod);
            cli_support::fail(args.json, "scan", e.exit().code(), e.code(), &e.to_string(), Some(file));
            e.exit()
        }
    }
}

/// The tables of the database at `path`, read as `schema-diff` reads it.
fn tables(path: &Path) -> Result<(sqlite_file::ReadOnlyDb, Vec<mask::schema::Table>), Error> {
    let (db, _) = schema_diff::open(path, &schema_diff::Reading::default())?;
    let tables = mask::schema::tables(db.conn(), "main")
        .map_err(|e| sqlite_file::FileError::sqlite(path, "read the schema", e))?;
    Ok((db, tables))
}

/// PROD's findings, and (with `--dev`) those in columns DEV does not have.
fn findings(args: &ScanArgs) -> Result<(Vec<Finding>, Vec<Finding>), Error> {
    if let Ok(remote::Address::Remote(r)) = remote::Address::of_path(&args.prod) {
        return Err(Error::Usage(format!(
            "{r}: scan reads a local file; copy it first with `refresh-dev snapshot {r} LOCAL.db`"
        )));
    }
    let (db, prod_tables) = tables(&args.prod)?;
    let findings = mask::scan::scan(db.conn(), "main", &prod_tables, args.sample)
        .map_err(|e| sqlite_file::FileError::sqlite(&args.prod, "scan", e))?;
    // Only the columns the result (DEV) has can take a rule.
    let Some(dev) = &args.dev else {
        return Ok((findings, Vec::new()));
    };
    let (_, dev_tables) = tables(dev)?;
    let in_dev = |f: &Finding| {
        dev_tables.iter().any(|t| {
            t.name.eq_ignore_ascii_case(&f.table) && t.columns.iter().any(|c| c.name.eq_ignore_ascii_case(&f.column))
        })
    };
    Ok(findings.into_iter().partition(in_dev))
}

fn print_rules(args: &ScanArgs, findings: &[Finding], dropped: &[Finding]) {
    let rules = mask::scan::starting_rules(findings, &args.prod.display().to_string());
    if args.json {
        let value = serde_json::json!({
            "version": cli_support::JSON_VERSION,
            "command": "scan",
            "prod": args.prod,
            "findings": findings,
            "not_in_dev": dropped,
            "rules": rules,
        });
        println!("{value}");
        return;
    }
    print!("{rules}");
    for f in dropped {
        println!(
            "# not in DEV's schema, so no rule: \"{}.{}\" ({}: {})",
            f.table, f.column, f.kind, f.why
        );
    }
}
