//! The restart budget of [`PanicPolicy::Restart`](crate::PanicPolicy::Restart):
//! at most `max_restarts` within any window of `within`, counted over a
//! sliding window of the recent restarts' times.

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
    fn panic_messages() {
        assert_eq!(panic_message(Box::new("static")), "static");
        assert_eq!(panic_message(Box::new(String::from("owned"))), "owned");
        assert_eq!(
            panic_message(Box::new(3u8)),
            "(a panic payload that is not a string)"
        );
    }
}
