//! What every binary of the workspace shares and no library should carry.
//!
//! Today: [`seconds`], the one parser of durations for every command-line
//! flag (`--timeout`, `--wait`, `--busy-timeout`) and for deployment files.
//! Issue #11 moves the signal policy, progress styles and sizes here too.

use std::time::Duration;

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
