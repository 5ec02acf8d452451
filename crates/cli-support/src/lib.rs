//! What every binary of the workspace shares and no library should carry:
//! [`seconds`], the one parser of durations for every command-line flag
//! (`--wait`, also spelled `--timeout`) and for deployment files; the
//! signal policy ([`stop_on_signals`]); the byte bar of long copies
//! ([`ByteBar`]); sizes in words ([`size`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What every command prints: a human summary, or one JSON object, or nothing.
#[derive(Debug, Clone, clap::Args)]
pub struct OutputArgs {
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary (errors are still printed).
    #[arg(long, short)]
    pub quiet: bool,
    /// Colour: auto (on a terminal, unless NO_COLOR is set), always or never.
    #[arg(long, value_enum, value_name = "WHEN", default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set to something.
    #[default]
    Auto,
    Always,
    Never,
}

impl OutputArgs {
    /// Whether to colour a stream that is (`terminal`) or is not a terminal.
    pub fn colour(&self, terminal: bool) -> bool {
        match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        }
    }

    /// Decides, once, whether error lines on stderr are coloured.
    pub fn colour_errors(&self) {
        use std::io::IsTerminal;
        COLOUR_ERRORS.store(self.colour(std::io::stderr().is_terminal()), Ordering::Relaxed);
    }
}

static COLOUR_ERRORS: AtomicBool = AtomicBool::new(false);

/// ANSI colours where `.0` says so, plain text elsewhere.
#[derive(Debug, Clone, Copy)]
pub struct Paint(pub bool);

impl Paint {
    fn code(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    pub fn bold(&self, s: &str) -> String {
        self.code("1", s)
    }
    pub fn red(&self, s: &str) -> String {
        self.code("31", s)
    }
    pub fn green(&self, s: &str) -> String {
        self.code("32", s)
    }
    pub fn yellow(&self, s: &str) -> String {
        self.code("33", s)
    }
}

/// `COMMAND: error: MESSAGE` on stderr, once; `error:` in red where colour
/// is on ([`OutputArgs::colour_errors`]).
pub fn print_error(command: &str, message: &str) {
    let paint = Paint(COLOUR_ERRORS.load(Ordering::Relaxed));
    eprintln!("{command}: {} {message}", paint.red(&paint.bold("error:")));
}

/// The `version` of every `--json` object the workspace's binaries print.
pub const JSON_VERSION: u32 = 2;

/// One `--json` object for an error that ended `command`:
/// `{"version", "command", "result": "aborted", "exit_code", "error": {"code", "message", "file"}}`.
pub fn error_json(command: &str, exit_code: u8, code: &str, message: &str, file: Option<&std::path::Path>) -> String {
    let value = serde_json::json!({
        "version": JSON_VERSION,
        "command": command,
        "result": "aborted",
        "exit_code": exit_code,
        "error": { "code": code, "message": message, "file": file },
    });
    serde_json::to_string_pretty(&value).unwrap_or_default()
}

/// Prints `value` as one pretty JSON object on stdout, with `version`
/// ([`JSON_VERSION`]) added where the object has none. `false` (and a line on
/// stderr naming `command`) if it cannot be printed.
pub fn print_json(command: &str, value: &impl serde::Serialize) -> bool {
    let printed = serde_json::to_value(value).and_then(|mut v| {
        if let Some(object) = v.as_object_mut() {
            object.entry("version").or_insert(JSON_VERSION.into());
        }
        to_millis(&mut v);
        serde_json::to_string_pretty(&v)
    });
    let written = printed.map_err(std::io::Error::from).and_then(|json| {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{json}").and_then(|()| out.flush())
    });
    match written {
        Ok(()) => true,
        // The reader went away (`| head`): nothing is owed to it.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => true,
        Err(e) => {
            eprintln!("{command}: error: cannot print the report: {e}");
            false
        }
    }
}

/// Every `…seconds` number, at any depth, to the millisecond: finer is noise.
fn to_millis(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(object) => {
            for (key, v) in object.iter_mut() {
                match v {
                    serde_json::Value::Number(n) if key.ends_with("seconds") && n.is_f64() => {
                        let rounded = (n.as_f64().unwrap_or_default() * 1000.0).round() / 1000.0;
                        if let Some(r) = serde_json::Number::from_f64(rounded) {
                            *n = r;
                        }
                    }
                    v => to_millis(v),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(to_millis),
        _ => {}
    }
}

/// Reports an error once: as one JSON object on stdout with `--json`, and
/// always as one line on stderr (`COMMAND: error: MESSAGE`). Returns `exit_code`.
pub fn fail(json: bool, command: &str, exit_code: u8, code: &str, message: &str, file: Option<&std::path::Path>) -> u8 {
    if json {
        println!("{}", error_json(command, exit_code, code, message, file));
    }
    print_error(command, message);
    exit_code
}

/// Parses the command line; a usage error is also one JSON object on stdout
/// where the arguments ask for `--json`. `Err` holds the exit code: 2 for a
/// usage error, 0 for `--help` and `--version`.
pub fn parse<T: clap::Parser>(command: &str) -> Result<T, u8> {
    T::try_parse().map_err(|e| {
        let usage = e.use_stderr();
        if usage && std::env::args().any(|a| a == "--json") {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or_default();
            let message = first.strip_prefix("error: ").unwrap_or(first);
            println!("{}", error_json(command, 2, "usage", message, None));
        }
        let _ = e.print();
        if usage {
            2
        } else {
            0
        }
    })
}

/// The exit code of a process ended by a second SIGINT/SIGTERM: refused.
const INTERRUPTED: i32 = 3;

/// SIGINT and SIGTERM as a cancellation: the first sets the returned flag
/// (the work stops and cleans up), a second ends the process at once with
/// the refusal code (the next run removes what it left).
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, INTERRUPTED, stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

/// Copies smaller than this are done before a progress bar would be readable.
pub const BAR_FROM_BYTES: u64 = 32 << 20;

/// The byte bar of a copy, `width` columns wide.
pub fn bytes_bar_style(width: u16) -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{msg}} [{{bar:{width}}}] {{bytes}}/{{total_bytes}} {{bytes_per_sec}} {{eta}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// A byte bar on stderr (drawn only when `show`, and only for copies of
/// [`BAR_FROM_BYTES`] and more), with SIGINT/SIGTERM as its cancellation.
pub struct ByteBar {
    bar: Option<ProgressBar>,
    stop: Arc<AtomicBool>,
}

impl ByteBar {
    pub fn new(show: bool, label: &str) -> ByteBar {
        // Without handlers a signal still ends the work, only less tidily.
        let stop = stop_on_signals().unwrap_or_default();
        let bar = show.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(bytes_bar_style(40));
            bar.set_message(label.to_owned());
            bar
        });
        ByteBar { bar, stop }
    }

    pub fn progress(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            if total >= BAR_FROM_BYTES {
                bar.set_length(total);
                bar.set_position(done);
            }
        }
    }

    /// Whether SIGINT or SIGTERM came.
    pub fn cancelled(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl Drop for ByteBar {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// `1 row`, `2 rows`, `0 rows`: a count with its noun (`plural(n, "row", "rows")`).
pub fn plural(n: impl Into<i128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `path` as a person would type it here: relative to the current folder
/// where that is shorter, as given elsewhere.
pub fn short(path: &std::path::Path) -> String {
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(std::path::Path::to_path_buf))
        .filter(|r| !r.as_os_str().is_empty());
    match relative {
        Some(r) if r.as_os_str().len() < path.as_os_str().len() => r.display().to_string(),
        _ => path.display().to_string(),
    }
}

/// `text` with every absolute path in one of `folders` written as [`short`]
/// would: `/home/me/app/dev.db` read from `/home/me/app` is `dev.db`. Only
/// whole paths are touched (an occurrence preceded by a path character,
/// as in `/other/home/me/app/x`, is left as it is).
pub fn shorten_paths(text: &str, folders: &[std::path::PathBuf]) -> String {
    let Ok(cwd) = std::env::current_dir() else {
        return text.to_owned();
    };
    let mut folders: Vec<(String, String)> = folders
        .iter()
        .filter(|f| f.is_absolute())
        .filter_map(|f| {
            let relative = f.strip_prefix(&cwd).ok()?;
            let from = format!("{}/", f.display()).replace("//", "/");
            let to = if relative.as_os_str().is_empty() {
                String::new()
            } else {
                format!("{}/", relative.display())
            };
            Some((from, to))
        })
        .collect();
    // Deeper folders first; each folder once.
    folders.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    folders.dedup();
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'scan: while !rest.is_empty() {
        let before = out.chars().next_back();
        let starts_path = before.is_none_or(|c| c.is_whitespace() || "'\"(=:,[".contains(c));
        if starts_path && rest.starts_with('/') {
            for (from, to) in &folders {
                if rest.starts_with(from.as_str()) {
                    out.push_str(to);
                    rest = &rest[from.len()..];
                    continue 'scan;
                }
                // The folder itself, ended by what cannot be in a path here.
                let bare = &from[..from.len() - 1];
                let after = rest.get(bare.len()..).and_then(|r| r.chars().next());
                if rest.starts_with(bare) && after.is_none_or(|c| c.is_whitespace() || "'\"):,;".contains(c)) {
                    out.push_str(if to.is_empty() { "." } else { &to[..to.len() - 1] });
                    rest = &rest[bare.len()..];
                    continue 'scan;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A count of rows where -1 means "some": SQL could not count them one by one.
pub fn rows(n: i64) -> String {
    if n < 0 {
        "some rows".to_owned()
    } else {
        plural(n, "row", "rows")
    }
}

/// `1.5 GiB`, `12.0 MiB`, `800 B`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The longest wait any flag or deployment file accepts: 7 days. Beyond it a
/// value is refused, never clamped (SQLite's busy timeout itself ends at
/// about 24.8 days of milliseconds, and a deadline must stay representable).
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

/// A number of seconds: finite, 0 or more, and at most [`MAX_SECONDS`].
/// `inf`, `nan`, negative and larger values are errors that say so.
pub fn seconds(value: f64) -> Result<Duration, String> {
    if !value.is_finite() || value < 0.0 {
        return Err(format!("{value}: expected a number of seconds, 0 or more"));
    }
    if value > MAX_SECONDS as f64 {
        return Err(format!(
            "{value}: more than the longest wait accepted ({MAX_SECONDS} s, 7 days)"
        ));
    }
    Duration::try_from_secs_f64(value).map_err(|e| format!("{value}: {e}"))
}

/// [`seconds`] of a command-line word, for clap's `value_parser`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text}: expected a number of seconds"))?;
    seconds(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_the_current_folder_are_shortened_whole_paths_only() {
        let cwd = std::env::current_dir().expect("cwd");
        let c = cwd.display();
        let text = format!("copy {c}/a.db to '{c}/sub/b.db' (not /other{c}/c.db); {c}/sub/x, {c}/sub: {c}");
        let short = shorten_paths(&text, &[cwd.clone(), cwd.join("sub"), "rel".into()]);
        assert_eq!(
            short,
            format!("copy a.db to 'sub/b.db' (not /other{c}/c.db); sub/x, sub: .")
        );
        assert_eq!(
            shorten_paths(&format!("{c}x/a"), std::slice::from_ref(&cwd)),
            format!("{c}x/a")
        );
        assert_eq!(shorten_paths("/elsewhere/a.db", &[cwd]), "/elsewhere/a.db");
    }

    #[test]
    fn accepts_what_a_wait_can_be_and_refuses_the_rest() {
        assert_eq!(parse_seconds("0"), Ok(Duration::ZERO));
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_seconds("604800"), Ok(Duration::from_secs(MAX_SECONDS)));
        for bad in [
            "inf", "-inf", "nan", "-1", "604801", "2200000", "1e20", "1e309", "", "soon",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
        assert!(seconds(2.2e6).is_err());
    }
}
