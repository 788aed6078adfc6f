//! Bounds how often a kind of warning is logged: an unknown peer or a flood of bad handshakes
//! must not turn the node's log into noise (or into a disk-filling attack).

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets through at most `burst` events per `window`; the rest are counted and reported with the
/// first event of a later window.
#[derive(Debug)]
pub(crate) struct LogLimit {
    window: Duration,
    burst: u32,
    state: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    start: Option<Instant>,
    logged: u32,
    suppressed: u64,
}

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Log it; `suppressed` earlier events were not logged since the last one that was.
    Log { suppressed: u64 },
    /// Do not log it (it is counted).
    Skip,
}

impl LogLimit {
    /// At most `burst` (at least 1) logged events per `window`.
    pub(crate) fn new(window: Duration, burst: u32) -> Self {
        LogLimit {
            window,
            burst: burst.max(1),
            state: Mutex::new(Window {
                start: None,
                logged: 0,
                suppressed: 0,
            }),
        }
    }

    /// Whether an event happening at `now` is logged.
    pub(crate) fn check(&self, now: Instant) -> Verdict {
        let mut w = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let expired = w
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window);
        if expired {
            w.start = Some(now);
            w.logged = 0;
        }
        if w.logged < self.burst {
            w.logged += 1;
            Verdict::Log {
                suppressed: std::mem::take(&mut w.suppressed),
            }
        } else {
            w.suppressed += 1;
            Verdict::Skip
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_then_the_count_of_what_was_skipped() {
        let limit = LogLimit::new(Duration::from_secs(10), 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limit.check(t0), Verdict::Log { suppressed: 0 });
        }
        for i in 1..=5 {
            assert_eq!(limit.check(t0 + Duration::from_secs(i)), Verdict::Skip);
        }
        // A new window: the first event carries the count of the skipped ones, once.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(limit.check(t1), Verdict::Log { suppressed: 5 });
        assert_eq!(limit.check(t1), Verdict::Log { suppressed: 0 });
        assert_eq!(limit.check(t1), Verdict::Log { suppressed: 0 });
        assert_eq!(limit.check(t1), Verdict::Skip);
    }
}
