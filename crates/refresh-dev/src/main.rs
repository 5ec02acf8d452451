//! The `refresh-dev` binary: argument parsing, progress, output and exit
//! codes. The work is the library's ([`refresh_dev::runner`]) and the tools'.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use exit_code::Exit;
use refresh_dev::deployment::{ApplyOptions, SwapOptions};
use refresh_dev::{runner, Deployment, Report, RunOptions};

mod remote_helper;
mod scan;
mod terminal;
use terminal::Terminal;

/// Refresh a DEV SQLite database with PROD's data, keeping DEV's schema:
/// snapshot PROD, apply DEV's schema onto the copy, swap it into DEV.
///
/// Exit codes: 0 done (plan: the run would proceed); 1 differences found (diff, and plan
/// --exit-code); 2 bad input or usage;
/// 3 refused or aborted to protect data (violations, DEV in use, another run,
/// a failed step with DEV untouched, interrupted); 4 an I/O or internal error.
#[derive(Debug, Parser)]
#[command(name = "refresh-dev", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The Refresh Dev pattern: snapshot PROD beside DEV, apply DEV's schema onto it, swap it into DEV.
    #[command(after_help = "Examples:
  refresh-dev run --prod /srv/shop/shop.db --dev ~/shop/dev.db
  refresh-dev run --prod prod.db --dev dev.db --rename customers.fax=phone
  refresh-dev run --prod prod.db --dev dev.db --on-violation skip --keep-backups 5
  refresh-dev run --prod prod.db --dev dev.db --live        # DEV's app keeps running
  refresh-dev run --prod prod.db --dev dev.db --json --log refresh.log")]
    Run(RunArgs),
    /// Everything `run` checks and counts, without writing: the schema diff, the data impact,
    /// the space needed, the in-use check and the file operations. Exit 0 when the run would
    /// proceed, 3 when it would be refused (with --exit-code: 1 when a schema would change).
    #[command(after_help = "Examples:
  refresh-dev plan --prod /srv/shop/shop.db --dev ~/shop/dev.db
  refresh-dev plan --prod prod.db --dev dev.db && refresh-dev run --prod prod.db --dev dev.db
  refresh-dev plan --prod prod.db --dev dev.db --exit-code   # 1 when a schema would change
  refresh-dev plan --prod prod.db --dev dev.db --json | jq .data_impact")]
    Plan(PlanArgs),
    /// DEV becomes a plain copy of PROD, schema and all: DEV's own schema is not kept (snapshot +
    /// swap, with a backup of DEV).
    #[command(after_help = "Examples:
  refresh-dev replace --prod /srv/shop/shop.db --dev ~/shop/dev.db
  refresh-dev replace --prod prod.db --dev dev.db --dry-run")]
    Replace(ReplaceArgs),
    /// Refresh Staging: PROD's data in DEV's schema, written to STAGING; DEV is not touched.
    #[command(after_help = "Examples:
  refresh-dev staging --prod /srv/shop/shop.db --dev ~/shop/dev.db --out ~/shop/staging.db")]
    Staging(StagingArgs),
    /// Run a deployment file: named files, then ordered steps (see the README).
    #[command(after_help = "Examples:
  refresh-dev deploy fixtures/deployments/refresh-dev.toml --dry-run
  refresh-dev deploy nightly.toml --json")]
    Deploy(DeployArgs),
    /// Put DEV's newest backup back (run it again to return).
    #[command(after_help = "Examples:
  refresh-dev rollback --dev ~/shop/dev.db     # run it again to return")]
    Rollback(RollbackArgs),
    /// Shell completions for refresh-dev, on stdout.
    #[command(after_help = "Examples:
  refresh-dev completions bash > ~/.local/share/bash-completion/completions/refresh-dev
  refresh-dev completions zsh > ~/.zfunc/_refresh-dev")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Writes the man pages (refresh-dev.1 and one per command) into FOLDER (`cargo xtask man`).
    #[command(hide = true)]
    Manpages {
        /// The folder to write them into.
        folder: PathBuf,
    },
    /// The `snapshot` tool.
    Snapshot(SnapshotCmd),
    /// The `schema-diff` tool: compare DEV's schema with TARGET's.
    Diff(schema_diff::cli::DiffArgs),
    /// `schema-diff --apply`: DEV's schema onto TARGET, keeping TARGET's rows.
    #[command(mut_arg("apply", |a| a.hide(true)))]
    Apply(schema_diff::cli::DiffArgs),
    /// The `swap` tool.
    Swap(swap::cli::SwapArgs),
    /// Writes a starting rules file (for --rules) to stdout: PROD's columns that look like
    /// personal data, by name (email, phone, name, address, birth, ssn, iban, card, ip…) and by
    /// sampled values (emails, phone numbers, Luhn-valid card numbers, IBANs, IP addresses).
    #[command(after_help = "Examples:
  refresh-dev scan --prod /srv/shop/shop.db --dev ~/shop/dev.db > rules.toml
  refresh-dev plan --prod /srv/shop/shop.db --dev ~/shop/dev.db --rules rules.toml")]
    Scan(scan::ScanArgs),
    /// Serves a remote PROD's copy over stdin and stdout: what `ssh HOST refresh-dev
    /// remote-helper` runs on PROD's host for a refresh on DEV's host.
    #[command(hide = true)]
    RemoteHelper,
}

#[derive(Debug, Clone, Args)]
struct Pair {
    /// The production database: read, never written. A local path, or a file on another host
    /// read through ssh: ssh://[user@]host[:port]/path or [user@]host:path (see --ssh).
    #[arg(long, value_name = "PROD")]
    prod: PathBuf,
    /// The development database: its schema is kept (but by replace), its old content is kept
    /// as a backup.
    #[arg(long, value_name = "DEV")]
    dev: PathBuf,
    /// Refresh even where DEV's schema is behind PROD's (PROD's user_version is higher, or its
    /// migration history holds versions DEV lacks): otherwise refused, as PROD and DEV may be swapped.
    #[arg(long)]
    allow_behind: bool,
}

/// The migration's flags are schema-diff's own (one definition, one help text).
type Migration = schema_diff::cli::MigrationArgs;

fn apply_options(migration: &Migration) -> Result<ApplyOptions, refresh_dev::Error> {
    let hints = migration
        .hints()
        .map_err(|e| refresh_dev::Error::Usage(format!("bad rename hint {e}")))?;
    Ok(ApplyOptions {
        on_violation: migration.on_violation,
        hints,
        rejects: None,
        subset: false,
        reading: schema_diff::Reading {
            extensions: migration.load_extension.clone(),
            ..schema_diff::Reading::default()
        },
    })
}

#[derive(Debug, Clone, Args)]
struct Swapping {
    #[command(flatten)]
    replacing: swap::cli::ReplacingArgs,
}

impl Swapping {
    fn options(&self) -> SwapOptions {
        SwapOptions {
            backup: !self.replacing.no_backup,
            keep_backups: self.replacing.keep_backups as usize,
            live: self.replacing.live,
        }
    }
}

#[derive(Debug, Clone, Args)]
struct Output {
    #[command(flatten)]
    print: cli_support::OutputArgs,
    /// Append one JSON line per event (level, step, elapsed, file) to FILE.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// The full report (every check, step and table) instead of the summary.
    #[arg(long, short)]
    verbose: bool,
}

/// `--dry-run`, for every command that writes.
#[derive(Debug, Clone, Args)]
struct DryRun {
    /// Plan only: every check, the counts and the file operations; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: exit 1 when a schema would change (as git diff --exit-code does);
    /// without it a runnable plan exits 0.
    #[arg(long, requires = "dry_run")]
    exit_code: bool,
}

impl DryRun {
    /// How a command with these flags runs.
    fn options(&self, command: &str, keep_staging: bool, allow_behind: bool, remote: &RemoteArgs) -> RunOptions {
        RunOptions {
            dry_run: self.dry_run,
            keep_staging,
            command: command.to_owned(),
            exit_code: self.exit_code,
            allow_behind,
            remote: remote.options(),
        }
    }
}

/// `--timeout`, and how a remote PROD is reached, for every command that copies PROD.
#[derive(Debug, Clone, Args)]
struct Timeout {
    /// Seconds to wait for PROD's writers to release their lock while copying it (0 to 604800).
    #[arg(long, visible_alias = "wait", value_name = "SECONDS", default_value = "60", value_parser = cli_support::parse_seconds)]
    timeout: Duration,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// How a remote PROD (`ssh://[user@]host[:port]/path`, or `[user@]host:path`) is reached.
#[derive(Debug, Clone, Args)]
struct RemoteArgs {
    /// For a remote PROD: the ssh program and its options, split as a shell would (like
    /// rsync's -e). `-o BatchMode=yes`, `-p PORT`, the host and the helper's command are appended.
    #[arg(long, value_name = "COMMAND", default_value = "ssh")]
    ssh: String,
    /// For a remote PROD: the refresh-dev program on PROD's host, which serves the copy.
    #[arg(long, value_name = "PATH", default_value = "refresh-dev")]
    remote_exe: String,
    /// For a remote PROD: send this refresh-dev to a private temporary folder on PROD's host
    /// (same OS and architecture, checked first), run it there and remove it, instead of
    /// --remote-exe.
    #[arg(long, conflicts_with = "remote_exe")]
    upload_helper: bool,
    /// For a remote WAL-mode PROD: serve its pages in place, in one read transaction held
    /// for the whole transfer, with no private copy on PROD's host (for hosts short of disk).
    /// Cost: PROD's -wal cannot be checkpointed past that transaction, so it grows by what
    /// PROD's writers commit meanwhile. A rollback-mode PROD is refused (exit 2).
    #[arg(long)]
    no_private_copy: bool,
}

impl RemoteArgs {
    fn options(&self) -> refresh_dev::RemoteOptions {
        refresh_dev::RemoteOptions {
            ssh: self.ssh.clone(),
            remote_exe: self.remote_exe.clone(),
            upload_helper: self.upload_helper,
            in_place: self.no_private_copy,
        }
    }
}

/// `--rules` and `--mask-key`, for every command that brings PROD's rows.
#[derive(Debug, Clone, Args)]
struct MaskArgs {
    /// Mask and subset PROD's rows with the rules in FILE (TOML): [mask] "TABLE.COLUMN" = RULE
    /// (email, name, first_name, last_name, phone, redact, hash, null, { keep_last = N },
    /// { keep_first = N }, { sql = "EXPR" }); [subset] TABLE = "WHERE …" or { percent = N }.
    /// Names are the result's (DEV's). The result is built fresh: no original value is left in it.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// The masking key: any file of at least 16 random bytes, made (mode 0600) by the first
    /// run that needs it. By default the hidden .DEV.refresh-mask-key beside DEV.
    #[arg(long, value_name = "FILE", requires = "rules")]
    mask_key: Option<PathBuf>,
}

impl MaskArgs {
    /// The deployment with its rules read (bad rules are bad input).
    fn apply(&self, deployment: Result<Deployment, refresh_dev::Error>) -> Result<Deployment, refresh_dev::Error> {
        let deployment = deployment?;
        match &self.rules {
            None => Ok(deployment),
            Some(rules) => {
                let masking = refresh_dev::deployment::Masking::read(rules, self.mask_key.as_deref())?;
                Ok(deployment.with_masking(Some(masking)))
            }
        }
    }
}

#[derive(Debug, Clone, Args)]
struct Running {
    /// On failure, keep the staging file (and rejects) for inspection.
    #[arg(long)]
    keep_staging: bool,
    #[command(flatten)]
    timeout: Timeout,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    pair: Pair,
    #[command(flatten)]
    dry_run: DryRun,
    #[command(flatten)]
    migration: Migration,
    #[command(flatten)]
    swapping: Swapping,
    #[command(flatten)]
    running: Running,
    #[command(flatten)]
    masking: MaskArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct PlanArgs {
    /// Exit 1 when a schema would change (as git diff --exit-code does); without it a
    /// runnable plan exits 0, a refused one 3.
    #[arg(long)]
    exit_code: bool,
    #[command(flatten)]
    pair: Pair,
    #[command(flatten)]
    migration: Migration,
    #[command(flatten)]
    swapping: Swapping,
    #[command(flatten)]
    timeout: Timeout,
    #[command(flatten)]
    masking: MaskArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct ReplaceArgs {
    #[command(flatten)]
    pair: Pair,
    #[command(flatten)]
    dry_run: DryRun,
    #[command(flatten)]
    swapping: Swapping,
    #[command(flatten)]
    running: Running,
    #[command(flatten)]
    masking: MaskArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct StagingArgs {
    #[command(flatten)]
    pair: Pair,
    /// The staging file to create (it must not exist); it keeps PROD's permission bits.
    #[arg(long, value_name = "STAGING")]
    out: PathBuf,
    #[command(flatten)]
    dry_run: DryRun,
    #[command(flatten)]
    migration: Migration,
    #[command(flatten)]
    running: Running,
    #[command(flatten)]
    masking: MaskArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct DeployArgs {
    /// The deployment file (TOML); its paths are relative to it.
    file: PathBuf,
    #[command(flatten)]
    dry_run: DryRun,
    /// On failure, keep staging files (and rejects) for inspection.
    #[arg(long)]
    keep_staging: bool,
    /// Apply a schema even where it is behind the data's (see run --allow-behind).
    #[arg(long)]
    allow_behind: bool,
    #[command(flatten)]
    remote: RemoteArgs,
    #[command(flatten)]
    output: Output,
}

#[derive(Debug, Args)]
struct RollbackArgs {
    /// The development database whose newest backup is put back.
    #[arg(long, value_name = "DEV")]
    dev: PathBuf,
    /// Wait up to SECONDS for DEV to be closed by its application (by default a DEV in use
    /// is refused at once).
    #[arg(long, visible_alias = "timeout", value_name = "SECONDS", default_value = "0", value_parser = cli_support::parse_seconds)]
    wait: Duration,
    #[command(flatten)]
    output: Output,
}

/// `diff`, `apply` and `swap` take local files only. Within refresh-dev, a
/// `:` before any `/` makes a path an address on another host, as with scp,
/// so `host:path` is refused here (exit 2) rather than read or written as a
/// local file of that name, which is `./host:path`.
fn local_only(command: &str, json: bool, paths: &[&Path]) -> Option<Exit> {
    let remote = paths.iter().find_map(|p| match remote::Address::of_path(p) {
        Ok(remote::Address::Remote(r)) => Some((r, *p)),
        _ => None,
    })?;
    let (r, path) = remote;
    let message = format!(
        "{r}: `refresh-dev {command}` takes local files only (./{} is a local file of that name); \
         bring a remote PROD here with `refresh-dev snapshot {r} LOCAL.db`",
        path.display()
    );
    cli_support::fail(json, command, Exit::BadInput.code(), "usage", &message, None);
    Some(Exit::BadInput)
}

fn main() -> ExitCode {
    let cli = match cli_support::parse::<Cli>("refresh-dev") {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let exit = match cli.command {
        Command::Snapshot(cmd) => snapshot_command(cmd),
        Command::Diff(args) => local_only("diff", args.output.json, &[&args.dev, &args.target])
            .unwrap_or_else(|| schema_diff::cli::run(&args, args.mode(schema_diff::cli::Mode::Diff))),
        // `apply` applies unless told `--sql`, which prints and writes nothing.
        Command::Apply(args) => local_only("apply", args.output.json, &[&args.dev, &args.target])
            .unwrap_or_else(|| schema_diff::cli::run(&args, args.mode(schema_diff::cli::Mode::Apply))),
        Command::Swap(args) => {
            let paths: Vec<&Path> = args.paths.iter().map(PathBuf::as_path).collect();
            local_only("swap", args.output.json, &paths).unwrap_or_else(|| swap::cli::run(&args))
        }
        Command::Rollback(args) => rollback(&args),
        Command::RemoteHelper => remote_helper::serve(),
        Command::Scan(args) => scan::scan(&args),
        Command::Completions { shell } => {
            use clap::CommandFactory as _;
            clap_complete::generate(shell, &mut Cli::command(), "refresh-dev", &mut std::io::stdout());
            Exit::Done
        }
        Command::Manpages { folder } => match manpages(&folder) {
            Ok(()) => Exit::Done,
            Err(e) => {
                cli_support::print_error("refresh-dev", &format!("{}: {e}", folder.display()));
                Exit::Error
            }
        },
        Command::Run(args) => {
            let command = if args.dry_run.dry_run { "plan" } else { "run" };
            let deployment = args.masking.apply(refresh_dev(
                &args.pair,
                &args.migration,
                &args.swapping,
                args.running.timeout.timeout,
            ));
            deploy(
                deployment,
                args.dry_run.options(
                    command,
                    args.running.keep_staging,
                    args.pair.allow_behind,
                    &args.running.timeout.remote,
                ),
                &args.output,
            )
        }
        Command::Plan(args) => {
            let deployment = args.masking.apply(refresh_dev(
                &args.pair,
                &args.migration,
                &args.swapping,
                args.timeout.timeout,
            ));
            let options = RunOptions {
                dry_run: true,
                keep_staging: false,
                command: "plan".to_owned(),
                exit_code: args.exit_code,
                allow_behind: args.pair.allow_behind,
                remote: args.timeout.remote.options(),
            };
            deploy(deployment, options, &args.output)
        }
        Command::Replace(args) => deploy(
            args.masking.apply(Ok(Deployment::replace(
                &args.pair.prod,
                &args.pair.dev,
                args.swapping.options(),
                args.running.timeout.timeout,
            ))),
            args.dry_run.options(
                "replace",
                args.running.keep_staging,
                args.pair.allow_behind,
                &args.running.timeout.remote,
            ),
            &args.output,
        ),
        Command::Staging(args) => {
            let deployment = args.masking.apply(apply_options(&args.migration).map(|apply| {
                Deployment::refresh_staging(
                    &args.pair.prod,
                    &args.pair.dev,
                    &args.out,
                    apply,
                    args.running.timeout.timeout,
                )
            }));
            deploy(
                deployment,
                args.dry_run.options(
                    "staging",
                    args.running.keep_staging,
                    args.pair.allow_behind,
                    &args.running.timeout.remote,
                ),
                &args.output,
            )
        }
        Command::Deploy(args) => {
            let options = args
                .dry_run
                .options("deploy", args.keep_staging, args.allow_behind, &args.remote);
            deploy(Deployment::from_file(&args.file), options, &args.output)
        }
    };
    exit.into()
}

/// The `snapshot` tool, whose SOURCE may be on another host.
#[derive(Debug, Args)]
struct SnapshotCmd {
    #[command(flatten)]
    args: snapshot::cli::SnapshotArgs,
    #[command(flatten)]
    remote: RemoteArgs,
}

/// `refresh-dev snapshot`: a remote SOURCE is first received into the base
/// beside DEST (only the pages that changed since the last time), which is
/// then copied to DEST by `snapshot`'s rules. DEST stays local.
fn snapshot_command(cmd: SnapshotCmd) -> Exit {
    let mut args = cmd.args;
    args.output.colour_errors();
    let fail = |e: &dyn std::fmt::Display, exit: Exit, code: &str, file: Option<&Path>| {
        cli_support::fail(args.output.json, "snapshot", exit.code(), code, &e.to_string(), file);
        exit
    };
    if let Ok(remote::Address::Remote(r)) = remote::Address::of_path(&args.dest) {
        let message = format!("{r}: a remote file can only be read; DEST stays local: run refresh-dev on its host");
        return fail(&message, Exit::BadInput, "usage", None);
    }
    let mut transfer = None;
    if let Ok(remote::Address::Remote(r)) = remote::Address::of_path(&args.source) {
        let base = sqlite_file::sidefile::base(&sqlite_file::fs::resolve_link(&args.dest));
        let options = cmd.remote.options();
        let show = !args.output.quiet && !args.output.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let mut receiving = match terminal::Receiving::new(show, &r.to_string()) {
            Ok(receiving) => receiving,
            Err(e) => return fail(&e, Exit::Error, "io", None),
        };
        let fetched = remote::fetch(&options.fetch(&r, args.timeout, &[]), &base, &mut receiving);
        drop(receiving);
        match fetched {
            Ok(t) => {
                if !args.output.quiet && !args.output.json {
                    eprintln!(
                        "snapshot: {} of {} received from {} into {}",
                        t.pages_sent,
                        cli_support::plural(t.pages_total, "page", "pages"),
                        t.from,
                        cli_support::short(&base)
                    );
                }
                args.source = base;
                transfer = serde_json::to_value(&t).ok().map(|t| ("transfer", t));
            }
            Err(e) => return fail(&e, e.exit(), e.code(), None),
        }
    }
    snapshot::cli::run_with(&args, transfer)
}

/// `refresh-dev.1` and `refresh-dev-COMMAND.1` for each visible command, into `folder`.
fn manpages(folder: &Path) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    std::fs::create_dir_all(folder)?;
    let cli = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cli.clone()).render(&mut page)?;
    std::fs::write(folder.join("refresh-dev.1"), page)?;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("refresh-dev-{}", sub.get_name());
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone())
            .title(name.clone())
            .render(&mut page)?;
        std::fs::write(folder.join(format!("{name}.1")), page)?;
    }
    Ok(())
}

/// The Refresh Dev pattern's deployment, for `run` and `plan`.
fn refresh_dev(
    pair: &Pair,
    migration: &Migration,
    swapping: &Swapping,
    timeout: Duration,
) -> Result<Deployment, refresh_dev::Error> {
    let apply = apply_options(migration)?;
    Ok(Deployment::refresh_dev(
        &pair.prod,
        &pair.dev,
        apply,
        swapping.options(),
        timeout,
    ))
}

/// Runs a deployment and prints its report.
fn deploy(deployment: Result<Deployment, refresh_dev::Error>, options: RunOptions, output: &Output) -> Exit {
    output.print.colour_errors();
    let (command, dry_run) = (options.command.as_str(), options.dry_run);
    let deployment = deployment.and_then(|mut d| {
        d.place_remote_bases()?;
        let names: Vec<PathBuf> = d.files.iter().map(|f| f.path.clone()).collect();
        log_is_not_a_file_of_the_run(output, &names).map(|()| d)
    });
    let deployment = match deployment {
        Ok(d) => d,
        // Scripts get an object whatever went wrong.
        Err(e) => return print_report(&refused(command, dry_run, &e), output),
    };
    let mut terminal = match Terminal::new(output) {
        Ok(t) => t,
        Err(e) => {
            cli_support::print_error("refresh-dev", &format!("{e:#}"));
            return Exit::BadInput;
        }
    };
    let mut report = runner::run(&deployment, &options, &mut terminal);
    if options.dry_run && matches!(options.command.as_str(), "plan" | "run") {
        report.next = Some(next_run());
    }
    terminal.done(&report);
    drop(terminal);
    print_report(&report, output)
}

/// `--log` must not name a database of the run, one of its sidecars, its
/// lock, or a file the run makes beside it: the log would be appended to it.
fn log_is_not_a_file_of_the_run(output: &Output, databases: &[PathBuf]) -> Result<(), refresh_dev::Error> {
    use sqlite_file::{lock, sidecar_path, sidefile, Sidecar};
    let Some(log) = &output.log else { return Ok(()) };
    let mut names: Vec<(PathBuf, String)> = Vec::new();
    for db in databases {
        let what = |kind: &str| format!("{kind} of the run ({})", db.display());
        names.push((db.clone(), format!("a database of the run ({})", db.display())));
        for kind in Sidecar::ALL {
            names.push((sidecar_path(db, kind), what(kind.suffix())));
        }
        names.push((lock::lock_path(db), what("the lock")));
        let staging = sidefile::staging(db);
        for kind in Sidecar::ALL {
            names.push((sidecar_path(&staging, kind), what("a staging sidecar")));
        }
        names.push((staging, what("the staging file")));
    }
    let same = |a: &Path, b: &Path| {
        sqlite_file::fs::same_file(a, b).unwrap_or(false) || lock::absolute(a) == lock::absolute(b)
    };
    match names.into_iter().find(|(name, _)| same(log, name)) {
        Some((_, what)) => Err(refresh_dev::Error::LogIsInput {
            path: log.clone(),
            what,
        }),
        None => Ok(()),
    }
}

/// This command line as the run it plans: `plan` (or `run --dry-run`)
/// becomes `run`, the plan-only flags go, every other word stays, quoted
/// for a shell where it needs to be.
fn next_run() -> String {
    let quote = |w: &str| {
        if !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,@+".contains(c)) {
            w.to_owned()
        } else {
            format!("'{}'", w.replace('\'', "'\\''"))
        }
    };
    let mut words = vec!["refresh-dev".to_owned()];
    for (i, word) in std::env::args().skip(1).enumerate() {
        match word.as_str() {
            "plan" if i == 0 => words.push("run".to_owned()),
            "--dry-run" | "--exit-code" | "--json" | "-v" | "--verbose" => {}
            w => words.push(quote(w)),
        }
    }
    words.join(" ")
}

/// The report of a command refused before it started.
fn refused(command: &str, dry_run: bool, e: &refresh_dev::Error) -> Report {
    let mut report = Report::new(command, command, dry_run);
    report.result = refresh_dev::report::Outcome::Aborted;
    report.exit_code = e.exit();
    report.error = Some(e.into());
    report
}

fn print_report(report: &Report, output: &Output) -> Exit {
    let folders = report.folders();
    if output.print.json {
        if !cli_support::print_json("refresh-dev", report) {
            return Exit::Error;
        }
    } else if !output.print.quiet {
        use std::io::IsTerminal as _;
        let colour = output.print.colour(std::io::stdout().is_terminal());
        let text = if output.verbose {
            report.human(colour)
        } else {
            report.summary(colour)
        };
        print!("{}", cli_support::shorten_paths(&text, &folders));
    }
    if let Some(e) = &report.error {
        let message = if output.print.json {
            e.message.clone()
        } else {
            cli_support::shorten_paths(&e.message, &folders)
        };
        cli_support::print_error("refresh-dev", &message);
    }
    report.exit_code
}

fn rollback(args: &RollbackArgs) -> Exit {
    args.output.print.colour_errors();
    let dev = sqlite_file::fs::resolve_link(&args.dev);
    let remote_dev = match remote::Address::of_path(&args.dev) {
        Ok(remote::Address::Remote(r)) => Err(refresh_dev::Error::Usage(format!(
            "{r}: a remote file can only be read; DEV stays local: run refresh-dev on DEV's host"
        ))),
        _ => Ok(()),
    };
    let report = match remote_dev.and_then(|()| log_is_not_a_file_of_the_run(&args.output, std::slice::from_ref(&dev)))
    {
        Err(e) => refused("rollback", false, &e),
        Ok(()) => match Terminal::new(&args.output) {
            Ok(mut terminal) => {
                let report = refresh_dev::rollback(&args.dev, args.wait, &mut terminal);
                terminal.done(&report);
                report
            }
            Err(e) => {
                cli_support::print_error("refresh-dev", &format!("{e:#}"));
                return Exit::BadInput;
            }
        },
    };
    if let (Some(r), false, false) = (&report.rollback, args.output.print.json, args.output.print.quiet) {
        println!(
            "refresh-dev rollback: {} is back from its backup {}, which now holds what it replaced (run rollback again to return)",
            r.target.display(),
            r.restored.display()
        );
    }
    if args.output.print.json {
        return print_report(&report, &args.output);
    }
    if let Some(e) = &report.error {
        cli_support::print_error("refresh-dev", &e.message);
    }
    report.exit_code
}
