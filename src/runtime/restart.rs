//! The restart budget of [`PanicPolicy::Restart`](crate::PanicPolicy::Restart):
//! at most `max_restarts` within any window of `within`, counted over a
//! sliding window of the recent restarts' times; and the backoff between
//! consecutive restarts of one worker ([`Backoff`]), so that a worker that
//! keeps failing cannot spin its thread or hold the pool.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When the recent restarts happened, against the policy's limit.
#[derive(Debug)]
pub(super) struct RestartBudget {
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub(super) fn new() -> Self {
        RestartBudget {
            recent: VecDeque::new(),
        }
    }

    /// Takes one restart at `now` if fewer than `max_restarts` happened
    /// within `within` before it; returns whether it was allowed.
    pub(super) fn take(&mut self, now: Instant, max_restarts: u32, within: Duration) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() < max_restarts as usize {
            self.recent.push_back(now);
            true
        } else {
            false
        }
    }
}

/// The delay before the second restart in a row; each further one doubles.
pub(super) const BACKOFF_FIRST: Duration = Duration::from_millis(10);
/// The longest delay between two restarts of one worker.
pub(super) const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A worker that has run this long since it last started begins a new row
/// of restarts (its next restart happens at once again).
pub(super) const BACKOFF_RESET: Duration = BACKOFF_MAX;

/// The delays between consecutive restarts of one worker: none before the
/// first restart of a row, then [`BACKOFF_FIRST`], doubling up to
/// [`BACKOFF_MAX`]. A row ends when the worker ran for [`BACKOFF_RESET`]
/// after its `on_start` returned. (The schedule is documented on
/// [`PanicPolicy`](crate::PanicPolicy).)
#[derive(Debug, Default)]
pub(super) struct Backoff {
    /// Restarts in the current row.
    row: u32,
    /// When the running instance's `on_start` returned, if it did.
    started: Option<Instant>,
}

impl Backoff {
    /// The running instance's `on_start` returned at `now`.
    pub(super) fn started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// A restart is about to happen at `now`: how long to wait before it.
    pub(super) fn next_delay(&mut self, now: Instant) -> Duration {
        if self
            .started
            .take()
            .is_some_and(|t| now.saturating_duration_since(t) >= BACKOFF_RESET)
        {
            self.row = 0;
        }
        self.row = self.row.saturating_add(1);
        delay_of(self.row)
    }
}

/// The delay before restart number `k` (from 1) of a row.
fn delay_of(k: u32) -> Duration {
    if k <= 1 {
        return Duration::ZERO;
    }
    // 10 ms · 2^(k-2), capped: 2^7 · 10 ms > 1 s already.
    let doublings = (k - 2).min(7);
    (BACKOFF_FIRST * (1u32 << doublings)).min(BACKOFF_MAX)
}

/// The message of a caught panic.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        String::from("(a panic payload that is not a string)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_slides_with_time() {
        let mut b = RestartBudget::new();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        assert!(b.take(t0, 2, w));
        assert!(b.take(t0 + Duration::from_secs(1), 2, w));
        assert!(
            !b.take(t0 + Duration::from_secs(2), 2, w),
            "two within 10 s"
        );
        // The first restart leaves the window: one more is allowed.
        assert!(b.take(t0 + Duration::from_secs(10), 2, w));
        assert!(!b.take(t0 + Duration::from_secs(10), 2, w));
    }

    #[test]
    fn zero_budget_never_restarts() {
        let mut b = RestartBudget::new();
        assert!(!b.take(Instant::now(), 0, Duration::from_secs(1)));
    }

    #[test]
    fn backoff_grows_to_its_cap_and_resets_after_a_good_run() {
        let ms = Duration::from_millis;
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let row: Vec<Duration> = (0..12).map(|_| b.next_delay(t0)).collect();
        assert_eq!(
            row,
            [0, 10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000].map(ms)
        );
        // An instance that started but failed within the reset time: the
        // row goes on.
        b.started(t0);
        assert_eq!(b.next_delay(t0 + ms(999)), BACKOFF_MAX);
        // One that ran long enough: a new row, restarted at once.
        b.started(t0);
        assert_eq!(b.next_delay(t0 + BACKOFF_RESET), Duration::ZERO);
        assert_eq!(b.next_delay(t0 + BACKOFF_RESET), ms(10));
        // Far into a row the delay stays at the cap (no overflow).
        let mut b = Backoff {
            row: u32::MAX - 1,
            started: None,
        };
        assert_eq!(b.next_delay(t0), BACKOFF_MAX);
        assert_eq!(b.next_delay(t0), BACKOFF_MAX);
    }

    #[test]
    fn panic_messages() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(
            panic_message(Box::new(3u8)),
            "(a panic payload that is not a string)"
        );
    }
}
