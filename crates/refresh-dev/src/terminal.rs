//! The binary's progress display, its `--log` file and its signal policy.

use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use refresh_dev::report::StepReport;
use refresh_dev::{Events, Report};

use crate::Output;

/// Progress on a terminal, the `--log` file, and SIGINT/SIGTERM as a
/// cancellation (a second signal ends the process at once; the next run
/// removes what it left).
pub(crate) struct Terminal {
    show: bool,
    bar: Option<ProgressBar>,
    /// The running step's label.
    step: Option<String>,
    log: Option<(PathBuf, File)>,
    started: Instant,
    stop: Arc<AtomicBool>,
}

impl Terminal {
    pub(crate) fn new(output: &Output) -> anyhow::Result<Terminal> {
        use anyhow::Context as _;
        let stop = cli_support::stop_on_signals().context("install the signal handler")?;
        let log = match &output.log {
            Some(path) => Some((
                path.clone(),
                File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("{}: cannot open the log file", path.display()))?,
            )),
            None => None,
        };
        Ok(Terminal {
            show: !output.print.quiet && !output.print.json && std::io::stderr().is_terminal(),
            bar: None,
            step: None,
            log,
            started: Instant::now(),
            stop,
        })
    }

    pub(crate) fn done(&mut self, report: &Report) {
        let message = format!("{:?}", report.result).to_lowercase();
        let level = if report.exit_code.code() >= 2 { "error" } else { "info" };
        self.write_log(level, None, &format!("{} {message}", report.command), None);
    }

    fn write_log(&mut self, level: &str, step: Option<&str>, message: &str, file: Option<&Path>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        if let Some((path, log)) = &mut self.log {
            let line = serde_json::json!({
                "time": sqlite_file::fs::utc_rfc3339(std::time::SystemTime::now()),
                "elapsed": (elapsed * 1000.0).round() / 1000.0,
                "level": level,
                "step": step,
                "message": message,
                "file": file.map(|f| f.display().to_string()),
            });
            if writeln!(log, "{line}").is_err() {
                eprintln!("refresh-dev: warning: {}: cannot write the log", path.display());
                self.log = None;
            }
        }
    }
}

impl Events for Terminal {
    fn event(&mut self, level: &'static str, step: Option<&str>, message: &str, file: Option<&Path>) {
        self.write_log(level, step, message, file);
    }

    fn step_started(&mut self, index: usize, name: &str, op: &'static str) {
        if !self.show {
            return;
        }
        let label = format!("[{index}] {op}: {name}");
        self.bar = Some(spinner(&label));
        self.step = Some(label);
    }

    fn detail(&mut self, message: &str) {
        if let (Some(bar), Some(step)) = (&self.bar, &self.step) {
            bar.set_message(format!("{step}: {message}"));
        }
    }

    fn progress(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if total >= cli_support::BAR_FROM_BYTES && bar.length() != Some(total) {
                bar.set_style(cli_support::bytes_bar_style(30));
                bar.set_length(total);
            }
            bar.set_position(done);
        }
    }

    fn step_finished(&mut self, step: &StepReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
            let status = match step.status {
                refresh_dev::report::Status::Succeeded => "done",
                refresh_dev::report::Status::Failed => "FAILED",
                _ => "skipped",
            };
            eprintln!(
                "[{}] {status} {}: {} ({:.2} s)",
                step.index, step.op, step.name, step.seconds
            );
        }
    }

    fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        Some(self.stop.clone())
    }
}

/// A spinner for `snapshot HOST:PATH DEST`'s transfer (bytes received,
/// pages changed), drawn only when `show`; SIGINT/SIGTERM cancel it.
pub(crate) struct Receiving {
    bar: Option<ProgressBar>,
    label: String,
    stop: Arc<AtomicBool>,
}

impl Receiving {
    pub(crate) fn new(show: bool, from: &str) -> std::io::Result<Receiving> {
        let stop = cli_support::stop_on_signals()?;
        let label = format!("receive {from}");
        let bar = show.then(|| spinner(&label));
        Ok(Receiving { bar, label, stop })
    }
}

impl remote::Observer for Receiving {
    fn received(&mut self, bytes: u64, pages: u64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{}: {} received, {}",
                self.label,
                cli_support::size(bytes),
                cli_support::plural(pages, "page", "pages")
            ));
        }
    }
    fn cancelled(&mut self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Drop for Receiving {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// A spinner on stderr: `label`, then the time it has been running.
fn spinner(label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(label.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
