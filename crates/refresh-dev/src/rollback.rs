//! `rollback`: DEV's newest backup put back, under the same lock as a run.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::report::{Outcome, Report};
use crate::runner::Events;
use crate::Error;

/// Puts DEV's newest backup back by exchanging the two (`swap::undo`), holding
/// DEV's lock as a run would, waiting up to `wait` for DEV to be closed. The
/// report says what happened, an error included.
pub fn rollback(dev: &Path, wait: Duration, events: &mut dyn Events) -> Report {
    let started = Instant::now();
    let mut report = Report::new("rollback", "rollback", false);
    // The file a symbolic link names, whose lock `run` takes.
    let dev = sqlite_file::fs::resolve_link(dev);
    let result = sqlite_file::lock::Lock::take(&dev, "rollback")
        .map_err(Error::from)
        .and_then(|lock| {
            let options = swap::Options {
                wait,
                ..swap::Options::default()
            };
            let undone = swap::undo(&dev, &options).map_err(Error::from);
            drop(lock);
            undone
        });
    match result {
        Ok(r) => {
            events.event("info", Some("rollback"), "succeeded", Some(&r.target));
            report.backup = Some(r.replaced_kept_as.clone());
            report.rollback = Some(r);
        }
        Err(e) => {
            events.event("error", Some("rollback"), &e.to_string(), Some(&dev));
            report.result = Outcome::Aborted;
            report.exit_code = e.exit();
            report.error = Some((&e).into());
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report
}
