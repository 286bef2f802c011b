//! The inbox's wait list: senders waiting for a full inbox to free a slot,
//! both threads (blocked in `push_blocking`) and tasks (an async push that
//! returned `Pending`), in one place.
//!
//! The consumer's side costs one relaxed load after each batch it takes
//! ([`WaitList::any`], behind the light barrier in `pop_batch`); only when
//! someone waits does it take the lock and call [`WaitList::wake`]. The
//! waiting side pays the heavy barrier (see [`crate::lockfree::barrier`]):
//! it registers here, issues the barrier, re-checks for space, and only then
//! sleeps (a thread) or returns `Pending` (a task). Either the re-check sees
//! the space or the consumer sees the registration — the same Dekker
//! handshake for both kinds of waiter, so one count covers them both.
//!
//! **Threads** wait on a condition variable and are all woken when the
//! consumer frees slots, with a timeout as a safety net (see
//! `Inbox::until_done`).
//!
//! **Tasks** are kept in first-come order, keyed by a ticket taken at their
//! first registration. When the consumer frees `k` slots it wakes the first
//! `k` tasks that are not already woken (a woken task's waker is taken out
//! of its entry, so "woken" is "no waker"). A task that is polled again and
//! still finds the inbox full re-registers under its old ticket and keeps
//! its place; a task that leaves without pushing (its future was dropped, or
//! the worker failed) passes a wake it got on to the next task in line, so a
//! freed slot is never left with nobody told about it. Nothing polls on a
//! timer: the wake-up is the only way a waiting task makes progress. (The one
//! exception is the barrier's switch away from membarrier, see
//! [`crate::lockfree::barrier`]: a wake-up lost in that window leaves a task
//! waiting until the consumer next frees a slot, where a thread would
//! re-check after its timeout.)
//!
//! Fairness: the order of wake-ups is first-come, but a newcomer's first try
//! does not look at the list, so a woken task may lose the slot to it and
//! wait again (at the front).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::task::Waker;

use crossbeam_utils::CachePadded;

use crate::lockfree::barrier;
use crate::lockfree::sync::{AtomicUsize, Condvar, Mutex};

/// Everyone waiting for space in one inbox.
pub(crate) struct WaitList {
    /// Threads and tasks registered; the consumer's one-load check.
    count: CachePadded<AtomicUsize>,
    state: Mutex<Waiting>,
    space: Condvar,
}

/// The part behind the lock.
#[derive(Debug, Default)]
struct Waiting {
    /// Threads inside [`WaitList::park_thread`].
    threads: usize,
    /// Tasks by ticket (so in first-come order); `None` once woken.
    tasks: BTreeMap<u64, Option<Waker>>,
    /// The next ticket.
    next: u64,
}

/// A task's place in the wait list, kept by its future between polls.
#[derive(Debug, Default)]
pub(crate) struct Ticket(Option<u64>);

impl Ticket {
    /// Whether the task holding it is in the wait list.
    pub(crate) fn is_waiting(&self) -> bool {
        self.0.is_some()
    }
}

impl std::fmt::Debug for WaitList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitList")
            .field("count", &self.count.load(Relaxed))
            .finish_non_exhaustive()
    }
}

impl WaitList {
    pub(crate) fn new() -> Self {
        WaitList {
            count: CachePadded::new(AtomicUsize::new(0)),
            state: Mutex::new(Waiting::default()),
            space: Condvar::new(),
        }
    }

    /// The consumer's check, after it published its head behind a light
    /// barrier: is anyone registered?
    #[inline]
    pub(crate) fn any(&self) -> bool {
        self.count.load(Relaxed) > 0
    }

    /// After `freed` slots were freed: wakes every waiting thread and the
    /// first `freed` tasks not woken yet.
    #[cold]
    pub(crate) fn wake(&self, freed: usize) {
        self.wake_tasks(freed);
    }

    /// At close: wakes everyone (they will find the inbox closed).
    #[cold]
    pub(crate) fn wake_all(&self) {
        self.wake_tasks(usize::MAX);
    }

    fn wake_tasks(&self, limit: usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.threads > 0 {
            self.space.notify_all();
        }
        let wakers = take_wakers(&mut state, limit);
        drop(state);
        // Outside the lock: a waker may run code that polls the future
        // again at once, and that poll takes the lock.
        for w in wakers {
            w.wake();
        }
    }

    /// A thread waits for space: registers, pays the heavy barrier, runs
    /// `recheck`, and sleeps (until woken, or at most
    /// [`barrier::LOST_WAKEUP_BOUND`]) if `still_full` says so. Returns the
    /// re-check's result. The lock is held from the registration to the
    /// sleep, so a wake-up cannot fall between the re-check and the wait.
    pub(crate) fn park_thread<A>(
        &self,
        recheck: impl FnOnce() -> A,
        still_full: impl FnOnce(&A) -> bool,
    ) -> A {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.threads += 1;
        self.count.fetch_add(1, SeqCst);
        // Registering before the re-check pairs with the consumer's check
        // after it publishes its head: either our re-check sees the space or
        // the consumer sees us. The re-check's loads are not SeqCst, so
        // without a barrier both sides could miss each other (found by the
        // loom model). This is the cold side: it pays the heavy barrier so
        // the consumer's check after every batch costs only a light one.
        barrier::heavy();
        let step = recheck();
        if still_full(&step) {
            state = self
                .space
                .wait_timeout(state, barrier::LOST_WAKEUP_BOUND)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.threads -= 1;
        self.count.fetch_sub(1, SeqCst);
        step
    }

    /// Registers a task (or, polled again, refreshes its waker and keeps its
    /// place). The caller then issues [`barrier::heavy`] and re-checks for
    /// space before returning `Pending`, as a thread does before it sleeps.
    pub(crate) fn register(&self, ticket: &mut Ticket, waker: &Waker) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let key = match ticket.0 {
            Some(key) => key,
            None => {
                let key = state.next;
                state.next += 1;
                ticket.0 = Some(key);
                self.count.fetch_add(1, SeqCst);
                key
            }
        };
        let slot = state.tasks.entry(key).or_insert(None);
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Takes a task out of the list. A task that leaves without having
    /// pushed (`pushed == false`: dropped, or refused) hands a wake-up it
    /// had received on to the next task in line.
    pub(crate) fn leave(&self, ticket: &mut Ticket, pushed: bool) {
        let Some(key) = ticket.0.take() else {
            return;
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state.tasks.remove(&key);
        self.count.fetch_sub(1, SeqCst);
        let was_woken = matches!(entry, Some(None));
        let next = if was_woken && !pushed {
            take_wakers(&mut state, 1)
        } else {
            Vec::new()
        };
        drop(state);
        for w in next {
            w.wake();
        }
    }

    /// Threads and tasks registered now (for tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn count(&self) -> usize {
        self.count.load(SeqCst)
    }

    /// Runs `f` with the list locked and one waiter hidden from
    /// [`any`](Self::any), as a consumer that missed it in the handshake would
    /// see it (for tests of the safety nets).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn hidden<R>(&self, f: impl FnOnce() -> R) -> R {
        let _state = self.state.lock().unwrap();
        self.count.fetch_sub(1, SeqCst);
        let result = f();
        self.count.fetch_add(1, SeqCst);
        result
    }
}

/// Takes the wakers of the first `limit` tasks not woken yet, in ticket
/// order, marking them woken.
fn take_wakers(state: &mut Waiting, limit: usize) -> Vec<Waker> {
    state
        .tasks
        .values_mut()
        .filter_map(Option::take)
        .take(limit)
        .collect()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::task::{Poll, Wake, Waker};
    use std::time::Duration;

    use crate::lockfree::inbox::{inbox, InboxReceiver, InboxSender, PushError};

    use super::Ticket;

    /// A waker that counts its wake-ups.
    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    fn counting() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count::default());
        (c.clone(), c.into())
    }
    fn wakes(c: &Count) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// One hand-driven async push: its message slot and its ticket.
    struct Push {
        value: Option<u32>,
        ticket: Ticket,
    }
    impl Push {
        fn new(v: u32) -> Self {
            Push {
                value: Some(v),
                ticket: Ticket::default(),
            }
        }
        fn poll(&mut self, q: &InboxSender<u32>, w: &Waker) -> Poll<Result<(), PushError<u32>>> {
            q.poll_push(&mut self.value, &mut self.ticket, w)
        }
    }

    fn full_inbox() -> (InboxSender<u32>, InboxReceiver<u32>) {
        let (q, rx) = inbox(1);
        q.try_push(0).unwrap();
        (q, rx)
    }

    fn pop(rx: &mut InboxReceiver<u32>, n: usize) -> Vec<u32> {
        let mut v = vec![];
        rx.pop_batch(n, |m| v.push(m));
        v
    }

    #[test]
    fn a_push_with_room_never_registers() {
        let (q, mut rx) = inbox(2);
        let (c, w) = counting();
        let mut p = Push::new(1);
        assert_eq!(p.poll(&q, &w), Poll::Ready(Ok(())));
        assert!(!p.ticket.is_waiting());
        assert_eq!(q.full_count(), 0);
        assert_eq!(pop(&mut rx, 8), [1]);
        assert_eq!(wakes(&c), 0);
    }

    #[test]
    fn a_full_inbox_parks_the_task_until_the_consumer_frees_a_slot() {
        let (q, mut rx) = full_inbox();
        let (c, w) = counting();
        let mut p = Push::new(1);
        assert_eq!(p.poll(&q, &w), Poll::Pending);
        assert!(p.ticket.is_waiting());
        assert_eq!(p.value, Some(1), "the message stays with the future");
        assert_eq!(q.full_count(), 1);
        assert_eq!(wakes(&c), 0, "no wake-up before space");
        assert_eq!(pop(&mut rx, 8), [0]);
        assert_eq!(wakes(&c), 1, "the consumer's batch woke the task");
        assert_eq!(p.poll(&q, &w), Poll::Ready(Ok(())));
        assert!(!p.ticket.is_waiting());
        assert_eq!(q.full_count(), 1, "one send that waited counts once");
        assert_eq!(pop(&mut rx, 8), [1]);
    }

    #[test]
    fn tasks_are_woken_first_come_one_per_freed_slot() {
        let (q, mut rx) = inbox(2);
        q.try_push(0).unwrap();
        q.try_push(0).unwrap();
        let waiters: Vec<_> = (1..=3).map(|i| (Push::new(i), counting())).collect();
        let mut waiters = waiters;
        for (p, (_, w)) in waiters.iter_mut() {
            assert_eq!(p.poll(&q, w), Poll::Pending);
        }
        assert_eq!(pop(&mut rx, 1), [0]);
        let woken: Vec<usize> = waiters.iter().map(|(_, (c, _))| wakes(c)).collect();
        assert_eq!(woken, [1, 0, 0], "one slot: the first waiter only");
        assert_eq!(pop(&mut rx, 1), [0]);
        let woken: Vec<usize> = waiters.iter().map(|(_, (c, _))| wakes(c)).collect();
        assert_eq!(
            woken,
            [1, 1, 0],
            "the next slot: the next waiter, not the first again"
        );
    }

    #[test]
    fn a_woken_task_that_loses_the_race_keeps_its_place() {
        let (q, mut rx) = full_inbox();
        let (c1, w1) = counting();
        let (c2, w2) = counting();
        let mut first = Push::new(1);
        let mut second = Push::new(2);
        assert_eq!(first.poll(&q, &w1), Poll::Pending);
        assert_eq!(second.poll(&q, &w2), Poll::Pending);
        assert_eq!(pop(&mut rx, 8), [0]);
        assert_eq!((wakes(&c1), wakes(&c2)), (1, 0));
        // A newcomer takes the slot before the woken task runs (barging).
        q.try_push(9).unwrap();
        assert_eq!(first.poll(&q, &w1), Poll::Pending, "lost the race");
        assert_eq!(pop(&mut rx, 8), [9]);
        assert_eq!(
            (wakes(&c1), wakes(&c2)),
            (2, 0),
            "the first waiter is still first in line"
        );
        assert_eq!(first.poll(&q, &w1), Poll::Ready(Ok(())));
    }

    #[test]
    fn a_repoll_replaces_the_waker() {
        let (q, mut rx) = full_inbox();
        let (old, w_old) = counting();
        let (new, w_new) = counting();
        let mut p = Push::new(1);
        assert_eq!(p.poll(&q, &w_old), Poll::Pending);
        assert_eq!(p.poll(&q, &w_new), Poll::Pending, "moved to another task");
        assert_eq!(pop(&mut rx, 8), [0]);
        assert_eq!((wakes(&old), wakes(&new)), (0, 1));
    }

    #[test]
    fn a_cancelled_task_hands_its_wakeup_on() {
        let (q, mut rx) = full_inbox();
        let (c1, w1) = counting();
        let (c2, w2) = counting();
        let mut first = Push::new(1);
        let mut second = Push::new(2);
        assert_eq!(first.poll(&q, &w1), Poll::Pending);
        assert_eq!(second.poll(&q, &w2), Poll::Pending);
        assert_eq!(pop(&mut rx, 8), [0]);
        assert_eq!((wakes(&c1), wakes(&c2)), (1, 0));
        // The first future is dropped before it runs: its message goes with
        // it, and the freed slot must not go unannounced.
        q.cancel_wait(&mut first.ticket);
        assert_eq!(wakes(&c2), 1, "the wake-up passed to the next in line");
        assert_eq!(second.poll(&q, &w2), Poll::Ready(Ok(())));
        assert_eq!(pop(&mut rx, 8), [2]);
        // Cancelling a task that was never woken wakes nobody.
        q.try_push(0).unwrap();
        let (c3, w3) = counting();
        let (c4, w4) = counting();
        let mut third = Push::new(3);
        let mut fourth = Push::new(4);
        assert_eq!(third.poll(&q, &w3), Poll::Pending);
        assert_eq!(fourth.poll(&q, &w4), Poll::Pending);
        q.cancel_wait(&mut third.ticket);
        assert_eq!((wakes(&c3), wakes(&c4)), (0, 0));
        assert_eq!(pop(&mut rx, 8), [0]);
        assert_eq!(wakes(&c4), 1);
    }

    #[test]
    fn close_wakes_every_task_and_they_get_their_message_back() {
        let (q, _rx) = full_inbox();
        let mut tasks: Vec<_> = (1..=3).map(|i| (Push::new(i), counting())).collect();
        for (p, (_, w)) in tasks.iter_mut() {
            assert_eq!(p.poll(&q, w), Poll::Pending);
        }
        q.close();
        for (i, (p, (c, w))) in tasks.iter_mut().enumerate() {
            assert_eq!(wakes(c), 1);
            assert_eq!(
                p.poll(&q, w),
                Poll::Ready(Err(PushError::Closed(i as u32 + 1)))
            );
            assert!(!p.ticket.is_waiting());
        }
    }

    #[test]
    fn threads_and_tasks_wait_in_the_same_list() {
        let (q, mut rx) = full_inbox();
        let (c, w) = counting();
        let mut task = Push::new(1);
        assert_eq!(task.poll(&q, &w), Poll::Pending);
        let q2 = q.clone();
        let thread = std::thread::spawn(move || q2.push_blocking(2));
        while q.inbox_wait_count() < 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut got = pop(&mut rx, 8);
        // The thread and the task were both woken; whichever claims the
        // slot first gets in, the other waits for the next one.
        assert_eq!(wakes(&c), 1);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while got.len() < 3 {
            assert!(
                std::time::Instant::now() < deadline,
                "a waiter was lost: {got:?}"
            );
            if task.value.is_some() && task.poll(&q, &w).is_ready() {
                continue;
            }
            got.extend(pop(&mut rx, 8));
            std::thread::yield_now();
        }
        thread.join().unwrap().unwrap();
        got.sort();
        assert_eq!(got, [0, 1, 2]);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;
    use std::task::Poll;

    use loom::future::block_on;

    use crate::lockfree::inbox::{inbox, InboxSender, PushError};
    use crate::lockfree::sync::thread;

    use super::Ticket;

    /// Pushes `v` the async way, driven by loom's `block_on`.
    fn push_async(q: &InboxSender<u32>, v: u32) -> Result<(), PushError<u32>> {
        let mut value = Some(v);
        let mut ticket = Ticket::default();
        block_on(poll_fn(|cx| {
            q.poll_push(&mut value, &mut ticket, cx.waker())
        }))
    }

    /// A task waiting on a full inbox is woken when the consumer frees the
    /// slot: were the register / heavy barrier / re-check handshake able to
    /// miss the consumer's check, the task would never be woken and loom
    /// would report a deadlock at the join.
    #[test]
    fn waiting_task_wakes() {
        loom::model(|| {
            let (q, mut rx) = inbox(1);
            q.try_push(0u32).unwrap();
            let q2 = q.clone();
            let t = thread::spawn(move || push_async(&q2, 1));
            let mut got = vec![];
            rx.pop_batch(1, |m| got.push(m));
            t.join().unwrap().unwrap();
            rx.pop_batch(1, |m| got.push(m));
            assert_eq!(got, [0, 1]);
        });
    }

    /// Closing wakes a waiting task, which gets its message back.
    #[test]
    fn close_wakes_waiting_task() {
        loom::model(|| {
            let (q, _rx) = inbox(1);
            q.try_push(0u32).unwrap();
            let q2 = q.clone();
            let t = thread::spawn(move || push_async(&q2, 1));
            q.close();
            assert_eq!(t.join().unwrap(), Err(PushError::Closed(1)));
        });
    }

    /// A task that gives up (its future dropped) after the consumer woke
    /// it for the slot it freed hands the wake-up on, so the other waiting
    /// task still gets the slot: without the hand-on, `b` would wait
    /// forever and loom would report a deadlock at the join.
    #[test]
    fn cancelled_task_hands_the_wakeup_on() {
        loom::model(|| {
            let (q, mut rx) = inbox(1);
            q.try_push(0u32).unwrap();
            // `a` waits first (the inbox is full, so its poll is Pending).
            let mut a_value = Some(1);
            let mut a_ticket = Ticket::default();
            let first = block_on(poll_fn(|cx| {
                Poll::Ready(q.poll_push(&mut a_value, &mut a_ticket, cx.waker()))
            }));
            assert!(first.is_pending());
            let qb = q.clone();
            let b = thread::spawn(move || push_async(&qb, 2));
            let mut got = vec![];
            rx.pop_batch(1, |m| got.push(m)); // wakes `a`, first in line
            q.cancel_wait(&mut a_ticket); // `a`'s future is dropped
            b.join().unwrap().unwrap();
            rx.pop_batch(1, |m| got.push(m));
            assert_eq!(got, [0, 2]);
        });
    }
}
