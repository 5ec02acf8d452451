//! The `swap` binary: a thin shell around [`swap::cli`].

use std::process::ExitCode;

#[derive(clap::Parser)]
#[command(name = "swap", version, about, long_about = None)]
#[command(after_help = "Examples:
  swap staging.db dev.db                 # dev.db becomes staging.db, the old one kept as a backup
  swap --live --keep-backups 5 staging.db dev.db
  swap --undo dev.db                     # the newest backup back (run it again to return)

Exit codes: 0 done, 2 bad input or usage, 3 refused to protect data (TARGET in use, locked), \
4 I/O or internal error.")]
struct Cli {
    #[command(flatten)]
    args: swap::cli::SwapArgs,
}

fn main() -> ExitCode {
    let cli = match cli_support::parse::<Cli>("swap") {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    swap::cli::run(&cli.args).into()
}
