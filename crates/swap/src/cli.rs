//! The `swap` command line, shared by the `swap` binary and `refresh-dev
//! swap`/`rollback`: argument definitions, output and exit codes only.

use std::path::PathBuf;
use std::time::Duration;

use exit_code::Exit;

use crate::{undo, Options, Swap};

/// Replace a database file atomically with a new one, keeping a backup of the
/// old one; or put the newest backup back (--undo).
#[derive(Debug, Clone, clap::Args)]
pub struct SwapArgs {
    /// NEW then TARGET: NEW (a complete, closed database) replaces TARGET and is consumed.
    /// With --undo, only TARGET.
    #[arg(value_name = "NEW TARGET", num_args = 1..=2, required = true)]
    pub paths: Vec<PathBuf>,
    /// Put TARGET's newest backup back, exchanging the two (run it again to return).
    #[arg(long, conflicts_with_all = ["no_backup", "live"])]
    pub undo: bool,
    #[command(flatten)]
    pub replacing: ReplacingArgs,
    /// Wait up to SECONDS for other processes: for TARGET to be closed (by default swap
    /// refuses at once while a process has it open) and for an application's lock during a
    /// checkpoint or a --live write (10 seconds by default).
    #[arg(long, visible_alias = "timeout", alias = "busy-timeout", value_name = "SECONDS", value_parser = cli_support::parse_seconds)]
    pub wait: Option<Duration>,
    #[command(flatten)]
    pub output: cli_support::OutputArgs,
}

/// How the file is replaced, shared by `swap` and `refresh-dev` (one
/// definition, one help text).
#[derive(Debug, Clone, clap::Args)]
pub struct ReplacingArgs {
    /// The file replaced is open by its application: write the new content into it through
    /// SQLite in one transaction, under one write lock.
    #[arg(long)]
    pub live: bool,
    /// How many backups of the file replaced to keep, the new one included.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_backups: u64,
    /// Keep no backup of the file replaced.
    #[arg(long, conflicts_with = "keep_backups")]
    pub no_backup: bool,
}

impl SwapArgs {
    /// The library's options.
    pub fn options(&self) -> Options {
        Options {
            backup: !self.replacing.no_backup,
            keep_backups: self.replacing.keep_backups as usize,
            live: self.replacing.live,
            wait: self.wait.unwrap_or(Duration::ZERO),
            busy_timeout: self.wait.unwrap_or(Duration::from_secs(10)),
            max_mode: None,
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Exit {
    if cli_support::print_json("swap", value) {
        Exit::Done
    } else {
        Exit::Error
    }
}

/// Runs `swap` with parsed arguments: prints the summary or the one-line
/// error, and returns the exit status.
pub fn run(args: &SwapArgs) -> Exit {
    args.output.colour_errors();
    let options = args.options();
    match (args.undo, args.paths.as_slice()) {
        (true, [target]) => match undo(target, &options) {
            Ok(r) if args.output.json => print_json(&r),
            Ok(r) => {
                if !args.output.quiet {
                    println!(
                        "swap --undo: {} is back from {}; what it replaced is now kept as {}",
                        r.target.display(),
                        r.restored.display(),
                        r.replaced_kept_as.display()
                    );
                    for step in &r.old_target {
                        println!("  first: {step}");
                    }
                }
                Exit::Done
            }
            Err(e) => failed(args.output.json, &e),
        },
        (false, [new, target]) => match Swap::new(new, target, options).run() {
            Ok(r) if args.output.json => print_json(&r),
            Ok(r) => {
                if !args.output.quiet {
                    println!(
                        "swap: {} now holds {} ({}, {:.2} s)",
                        r.target.display(),
                        r.new.display(),
                        match r.method {
                            crate::Method::Exchange => "atomic exchange",
                            crate::Method::Rename => "atomic rename",
                            crate::Method::FirstRefresh => "first refresh: nothing to replace",
                            crate::Method::Live => "written live through SQLite",
                        },
                        r.seconds
                    );
                    for step in &r.old_target {
                        println!("  old file first: {step}");
                    }
                    match &r.backup {
                        Some(b) => println!("  backup of the old file: {}", b.display()),
                        None if r.method != crate::Method::FirstRefresh => println!("  no backup kept (--no-backup)"),
                        None => {}
                    }
                    for old in &r.backups_removed {
                        println!("  removed an old backup: {}", old.display());
                    }
                }
                Exit::Done
            }
            Err(e) => failed(args.output.json, &e),
        },
        (true, _) => {
            let message = "--undo takes one path, TARGET";
            cli_support::fail(args.output.json, "swap", 2, "usage", message, None);
            Exit::BadInput
        }
        (false, _) => {
            let message = "give NEW and TARGET (or --undo TARGET)";
            cli_support::fail(args.output.json, "swap", 2, "usage", message, None);
            Exit::BadInput
        }
    }
}

/// An error, reported once (`cli_support::fail`), and its exit status.
fn failed(json: bool, e: &crate::Error) -> Exit {
    cli_support::fail(json, "swap", e.exit().code(), e.code(), &e.to_string(), e.file());
    e.exit()
}
