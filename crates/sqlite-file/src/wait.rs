//! Waiting for a database that someone else holds: deadlines that cannot
//! overflow, and the longest busy timeout SQLite can take.

use std::time::{Duration, Instant};

/// The instant `wait` from now; `None` (never) where that instant cannot be
/// represented, so no caller's arithmetic can panic on a huge wait.
pub fn deadline(wait: Duration) -> Option<Instant> {
    Instant::now().checked_add(wait)
}

/// Whether `deadline` has passed (`None` never does).
pub fn passed(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// `wait` as SQLite's busy timeout can hold it: at most `i32::MAX`
/// milliseconds (about 24.8 days; rusqlite panics beyond).
pub fn busy_timeout(wait: Duration) -> Duration {
    wait.min(Duration::from_millis(i32::MAX as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_waits_never_overflow() {
        assert!(!passed(deadline(Duration::MAX)));
        assert!(passed(deadline(Duration::ZERO)));
        assert_eq!(busy_timeout(Duration::MAX), Duration::from_millis(i32::MAX as u64));
        assert_eq!(busy_timeout(Duration::from_secs(3)), Duration::from_secs(3));
    }
}
