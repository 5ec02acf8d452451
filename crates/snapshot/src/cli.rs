//! The `snapshot` command line, shared by the `snapshot` binary and
//! `refresh-dev snapshot`: argument definitions, output and exit codes only.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use exit_code::Exit;

use crate::{Method, Observer, Options, Report, Snapshot};

/// Copy a live SQLite database to a new file: one consistent point in time,
/// the source never written.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// The database to copy (PROD). It is never written, and its folder is left as found.
    pub source: PathBuf,
    /// The file to create. It must not exist (unless --force); its folder must.
    pub dest: PathBuf,
    /// Replace DEST if it exists (refused when DEST has a -wal, -shm or live -journal).
    #[arg(long)]
    pub force: bool,
    /// Also run `PRAGMA quick_check` on the copy before putting it in place (~10 s per GiB).
    #[arg(long)]
    pub verify: bool,
    /// How to copy: a kernel copy of the file inside one read transaction (plus, in WAL mode,
    /// the pages the -wal names, read through SQLite), or SQLite's backup API; auto is byte-copy.
    #[arg(long, value_enum, default_value_t = Method::Auto)]
    pub method: Method,
    /// Seconds to wait for SOURCE's writers to release their lock.
    #[arg(long, visible_alias = "wait", value_name = "SECONDS", default_value = "60", value_parser = cli_support::parse_seconds)]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: cli_support::OutputArgs,
}

impl SnapshotArgs {
    /// The library's view of these arguments.
    pub fn to_snapshot(&self) -> Snapshot {
        Snapshot::new(
            &self.source,
            &self.dest,
            Options {
                force: self.force,
                verify: self.verify,
                timeout: self.timeout,
                method: self.method,
                durable: true,
            },
        )
    }
}

/// The byte bar, as the library's progress observer.
struct Terminal(cli_support::ByteBar);

impl Observer for Terminal {
    fn progress(&mut self, done: u64, total: u64) {
        self.0.progress(done, total);
    }

    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// Runs `snapshot` with parsed arguments: prints the summary or the one-line
/// error, and returns the exit status.
pub fn run(args: &SnapshotArgs) -> Exit {
    run_with(args, None)
}

/// [`run`], with `extra` fields (a caller's own, such as a remote source's
/// `transfer`) added to the `--json` report.
pub fn run_with(args: &SnapshotArgs, extra: Option<(&str, serde_json::Value)>) -> Exit {
    args.output.colour_errors();
    let show_bar = !args.output.quiet && !args.output.json && std::io::stderr().is_terminal();
    let mut terminal = Terminal(cli_support::ByteBar::new(show_bar, "snapshot"));
    let result = args.to_snapshot().run(&mut terminal);
    drop(terminal);
    match result {
        Ok(report) => {
            if args.output.json {
                // The report, with the caller's fields beside its own.
                #[derive(serde::Serialize)]
                struct WithExtra<'a> {
                    #[serde(flatten)]
                    report: &'a crate::Report,
                    #[serde(flatten)]
                    extra: serde_json::Map<String, serde_json::Value>,
                }
                let value = WithExtra {
                    report: &report,
                    extra: extra.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                };
                if !cli_support::print_json("snapshot", &value) {
                    return Exit::Error;
                }
            } else if !args.output.quiet {
                print!("{}", human(&report));
            }
            Exit::Done
        }
        Err(e) => failed(args.output.json, &e),
    }
}

/// The human summary of a finished snapshot.
pub fn human(r: &Report) -> String {
    let mut out = format!(
        "snapshot: {} -> {}: {} ({} pages of {} B), {} mode, {} in {:.2} s\n",
        r.source.display(),
        r.dest.display(),
        cli_support::size(r.bytes),
        r.pages,
        r.page_size,
        r.journal_mode,
        match (r.method, r.lock_held_seconds.is_some()) {
            (Method::ByteCopy, true) => "byte copy under a shared lock".to_owned(),
            (Method::ByteCopy, false) => format!(
                "byte copy + {} page{} from the WAL in one read transaction",
                r.pages_from_wal,
                if r.pages_from_wal == 1 { "" } else { "s" }
            ),
            _ => "backup API in one read transaction".to_owned(),
        },
        r.seconds,
    );
    match r.lock_held_seconds {
        Some(s) => out.push_str(&format!(
            "  source's writers were held back for at most {s:.3} s (shared lock)\n"
        )),
        None => out.push_str("  source's writers were never blocked (WAL readers do not block writers)\n"),
    }
    if r.verified {
        out.push_str("  quick_check: ok\n");
    }
    for path in &r.leftovers_removed {
        out.push_str(&format!("  removed a killed run's leftover {}\n", path.display()));
    }
    out
}

/// An error, reported once (`cli_support::fail`), and its exit status.
fn failed(json: bool, e: &crate::Error) -> Exit {
    cli_support::fail(json, "snapshot", e.exit().code(), e.code(), &e.to_string(), e.file());
    e.exit()
}
