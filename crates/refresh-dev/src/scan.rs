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
    if args.json {
        let value = serde_json::json!({
            "version": cli_support::JSON_VERSION,
            "command": "scan",
            "prod": args.prod,
            "findings": findings,
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
