//! The `schema-diff` binary: a thin shell around [`schema_diff::cli`].

use std::process::ExitCode;

#[derive(clap::Parser)]
#[command(name = "schema-diff", version, about, long_about = None)]
#[command(after_help = "Examples:
  schema-diff dev.db staging.db                       # what applying dev.db's schema would do
  schema-diff --rename customers.fax=phone dev.db staging.db
  schema-diff --apply --on-violation skip dev.db staging.db
  schema-diff --sql dev.db staging.db | sqlite3 staging.db

Exit codes (like diff(1)): 0 identical (with --apply: done), 1 different, \
2 bad input or usage, 3 refused to protect data (a hot journal; with --apply, constraint violations), \
4 I/O or internal error.")]
struct Cli {
    #[command(flatten)]
    args: schema_diff::cli::DiffArgs,
}

fn main() -> ExitCode {
    let cli = match cli_support::parse::<Cli>("schema-diff") {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let mode = cli.args.mode(schema_diff::cli::Mode::Diff);
    schema_diff::cli::run(&cli.args, mode).into()
}
