//! The `snapshot` binary: a thin shell around [`snapshot::cli`].

use std::process::ExitCode;

#[derive(clap::Parser)]
#[command(name = "snapshot", version, about, long_about = None)]
#[command(after_help = "Examples:
  snapshot /srv/shop/shop.db ~/shop/staging.db
  snapshot --verify --json prod.db copy.db
  snapshot --method backup-api --wait 120 prod.db copy.db

Exit codes: 0 done, 2 bad input or usage, 3 refused to protect data, 4 I/O or internal error.")]
struct Cli {
    #[command(flatten)]
    args: snapshot::cli::SnapshotArgs,
}

fn main() -> ExitCode {
    let cli = match cli_support::parse::<Cli>("snapshot") {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    snapshot::cli::run(&cli.args).into()
}
