//! One worker's pending [`Context::ask`](crate::Context::ask)s, and the
//! path an answer takes back to the asker.
//!
//! The asker keeps a table of questions waiting for an answer
//! ([`Asks`]): a slab of `then` continuations, indexed by an id whose
//! upper half is the slot's generation (so an id is never reused while an
//! [`Asked`](crate::Asked) for it may still exist), and a min-heap of the
//! deadlines still to watch.
//!
//! An answer (or, when the `Asked` is dropped, the certainty that none
//! will come) travels through the asker's [`AnswerBox`], a lock-free MPSC
//! queue, rather than through the mesh: the ring `peer → asker` carries the
//! pool's message type, and the value of an answer is the asker's own
//! business until its `then` turns it into a message.
//!
//! Order: an answer given on a worker thread is *staged* on that thread
//! and published when the worker publishes its rings (at the end of the
//! callback), tagged with the number of messages that worker had sent the
//! asker by then. The asker hands the answer to `handle` only once it has
//! taken that many from the answerer's ring. So an answer never overtakes
//! a message its answerer sent the asker before answering. An answer
//! given on a thread outside the pool is published at once, untagged.

use std::any::Any;
use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use crossbeam_queue::SegQueue;

use crate::lockfree::sync::Arc;
use crate::{AskError, WorkerId};

/// What an answer carries: the value (boxed, its type known to the
/// asker's `then`), or why none came.
pub(crate) type Outcome = Result<Box<dyn Any + Send>, AskError>;

/// A continuation: turns the outcome into the message the asker handles
/// (`None` for the parts of an `ask_all` that are not the last).
pub(crate) type Then<M> = Box<dyn FnOnce(Outcome) -> Option<M>>;

/// One answer on its way to the asker.
pub(crate) struct Answer {
    id: u64,
    outcome: Outcome,
    /// `(answering worker, messages it had sent the asker)`, when it was
    /// answered on a worker thread of the asker's pool.
    after: Option<(usize, u64)>,
}

/// What the pool's registry does for the answer path: counts answers in
/// and out (so that shutdown's quiescence check sees answers in flight)
/// and wakes an asker that is not running.
pub(crate) trait WakeAsker: Send + Sync {
    /// One more answer is about to be published for worker `asker`.
    fn counting_answer(&self, asker: usize);
    /// An answer was published for `asker`: wake it if it is not running.
    fn answer_published(&self, asker: usize);
    /// `asker` took one answer from its box.
    fn answer_taken(&self, asker: usize);
    /// The pool's identity, to tell whether an answering worker thread
    /// belongs to the asker's pool.
    fn pool_id(&self) -> usize;
}

/// The queue of answers for one asking worker.
pub(crate) struct AnswerBox {
    queue: SegQueue<Answer>,
    pool: Arc<dyn WakeAsker>,
    asker: usize,
}

impl AnswerBox {
    pub(crate) fn new(pool: Arc<dyn WakeAsker>, asker: usize) -> Self {
        AnswerBox {
            queue: SegQueue::new(),
            pool,
            asker,
        }
    }

    /// Whether an answer waits (the idle path's check).
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        !self.queue.is_empty()
    }

    fn publish(&self, answer: Answer) {
        // Counted before it becomes visible: quiescence never misses it.
        self.pool.counting_answer(self.asker);
        self.queue.push(answer);
        self.pool.answer_published(self.asker);
    }
}

/// An answer given on a worker thread, waiting for that worker's next
/// publication.
struct Staged {
    to: Arc<AnswerBox>,
    answer: Answer,
}

thread_local! {
    /// Answers given on this thread while it runs a pool's worker.
    static STAGED: RefCell<Vec<Staged>> = const { RefCell::new(Vec::new()) };
}

/// Sends the outcome of ask `id` to `to`: staged until the current
/// worker's next publication on a worker thread, at once elsewhere.
pub(crate) fn answer(to: Arc<AnswerBox>, id: u64, outcome: Outcome) {
    let answer = Answer {
        id,
        outcome,
        after: None,
    };
    if crate::runtime::on_worker_thread() {
        let mut item = Some(Staged { to, answer });
        let _ = STAGED.try_with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.extend(item.take());
            }
        });
        // Thread-locals being torn down, or staging re-entered: publish
        // at once rather than lose it.
        if let Some(Staged { to, answer }) = item {
            to.publish(answer);
        }
    } else {
        to.publish(answer);
    }
}

/// Whether answers wait on this thread for the worker's publication.
#[inline]
pub(crate) fn any_staged() -> bool {
    STAGED
        .try_with(|s| s.try_borrow().is_ok_and(|s| !s.is_empty()))
        .unwrap_or(false)
}

/// Publishes the answers staged on this thread. `sent_to(asker)` gives how
/// many messages this worker (`me`, of the pool `pool`) has accepted for
/// `asker` so far.
pub(crate) fn publish_staged(pool: usize, me: usize, sent_to: impl Fn(usize) -> u64) {
    let staged = STAGED
        .try_with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    for Staged { to, mut answer } in staged {
        if to.pool.pool_id() == pool {
            answer.after = Some((me, sent_to(to.asker)));
        }
        to.publish(answer);
    }
}

/// A pending ask.
struct Entry<M> {
    /// The worker asked: the answer's `source`.
    peer: WorkerId,
    then: Then<M>,
}

struct Slot<M> {
    generation: u32,
    entry: Option<Entry<M>>,
}

/// One worker's pending asks (owned by its thread, in its `Outbound`).
pub(crate) struct Asks<M> {
    inbox: Arc<AnswerBox>,
    slots: Vec<Slot<M>>,
    free: Vec<u32>,
    live: usize,
    /// `(deadline, id)`; entries of asks answered since are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Answers taken from the box whose answerer's earlier messages have
    /// not all been taken from its ring yet.
    waiting: VecDeque<Answer>,
}

impl<M> Asks<M> {
    pub(crate) fn new(inbox: Arc<AnswerBox>) -> Self {
        Asks {
            inbox,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            deadlines: BinaryHeap::new(),
            waiting: VecDeque::new(),
        }
    }

    /// This worker's answer box, for a fresh `Asked`.
    pub(crate) fn answer_box(&self) -> &Arc<AnswerBox> {
        &self.inbox
    }

    /// How many asks are pending.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Whether anything needs the loop's attention: an answer in the box
    /// or waiting, or a deadline to watch. One load while nothing is
    /// pending.
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.live == 0 && self.waiting.is_empty() && !self.inbox.has_pending()
    }

    /// Records a pending ask and returns its id.
    pub(crate) fn insert(
        &mut self,
        peer: WorkerId,
        then: Then<M>,
        deadline: Option<Instant>,
    ) -> u64 {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    entry: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.entry = Some(Entry { peer, then });
        self.live += 1;
        let id = (u64::from(slot.generation) << 32) | u64::from(index);
        if let Some(due) = deadline {
            self.deadlines.push(Reverse((due, id)));
        }
        id
    }

    /// Removes the ask `id` if it is still pending.
    pub(crate) fn remove(&mut self, id: u64) -> Option<(WorkerId, Then<M>)> {
        let index = (id & u64::from(u32::MAX)) as usize;
        let generation = (id >> 32) as u32;
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        if self.live == 0 {
            self.deadlines.clear();
        } else if self.deadlines.len() > 2 * self.live + 32 {
            self.compact_deadlines();
        }
        Some((entry.peer, entry.then))
    }

    /// Drops the deadlines of asks no longer pending, so the heap stays
    /// bounded by the pending asks, not by the asks ever made.
    #[cold]
    fn compact_deadlines(&mut self) {
        let slots = &self.slots;
        let live = |id: u64| {
            let s = &slots[(id & u64::from(u32::MAX)) as usize];
            s.generation == (id >> 32) as u32 && s.entry.is_some()
        };
        self.deadlines.retain(|Reverse((_, id))| live(*id));
    }

    /// Drops every pending ask unrun (a restart, a failure, the stop).
    /// Answers that come later find no ask and are dropped. Returns how
    /// many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.live;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(entry) = slot.entry.take() {
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(i as u32);
                // A `then` whose captures panic on drop must not take the
                // thread down.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(entry)));
            }
        }
        self.live = 0;
        self.deadlines.clear();
        self.waiting.clear();
        n
    }

    /// Takes every answer waiting in the box and drops it (a failed
    /// worker's loop: it has no asks left, but answers still count until
    /// taken). Returns how many.
    pub(crate) fn drop_arrived(&mut self) -> usize {
        let mut n = 0;
        while let Some(a) = self.inbox.queue.pop() {
            self.inbox.pool.answer_taken(self.inbox.asker);
            // A value whose Drop panics must not take the thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(a)));
            n += 1;
        }
        n
    }

    /// The earliest deadline still watched.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((due, _))| *due)
    }

    /// The next outcome ready for the asker: an answer whose answerer's
    /// earlier messages have all been taken (`taken_from(w)`: messages
    /// taken so far from worker `w`'s ring), or a deadline that passed.
    /// Returns the asked worker and the continuation's result.
    pub(crate) fn next_ready(
        &mut self,
        now: &mut Option<Instant>,
        taken_from: impl Fn(usize) -> u64,
    ) -> Option<(WorkerId, Option<M>)> {
        loop {
            let answer = self.next_answer(&taken_from);
            let Some(answer) = answer else { break };
            if let Some((peer, then)) = self.remove(answer.id) {
                return Some((peer, then(answer.outcome)));
            }
            // Late (after a timeout) or for an ask dropped at a restart.
        }
        while let Some(Reverse((due, id))) = self.deadlines.peek().copied() {
            let t = *now.get_or_insert_with(Instant::now);
            if due > t {
                break;
            }
            self.deadlines.pop();
            if let Some((peer, then)) = self.remove(id) {
                return Some((peer, then(Err(AskError::Timeout))));
            }
        }
        None
    }

    fn next_answer(&mut self, taken_from: &impl Fn(usize) -> u64) -> Option<Answer> {
        let ready = |a: &Answer| match a.after {
            None => true,
            Some((w, n)) => taken_from(w).wrapping_sub(n) as i64 >= 0,
        };
        if let Some(i) = self.waiting.iter().position(ready) {
            return self.waiting.remove(i);
        }
        while let Some(a) = self.inbox.queue.pop() {
            self.inbox.pool.answer_taken(self.inbox.asker);
            if ready(&a) {
                return Some(a);
            }
            self.waiting.push_back(a);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPool;
    impl WakeAsker for NoPool {
        fn counting_answer(&self, _: usize) {}
        fn answer_published(&self, _: usize) {}
        fn answer_taken(&self, _: usize) {}
        fn pool_id(&self) -> usize {
            1
        }
    }

    fn asks() -> Asks<u32> {
        let b = Arc::new(AnswerBox::new(Arc::new(NoPool), 0));
        Asks::new(b)
    }

    fn then(tag: u32) -> Then<u32> {
        Box::new(move |o: Outcome| {
            Some(match o {
                Ok(v) => tag + *v.downcast::<u32>().unwrap(),
                Err(AskError::Timeout) => 1000 + tag,
                Err(_) => 2000 + tag,
            })
        })
    }

    #[test]
    fn answers_match_their_ask_once() {
        let mut a = asks();
        let x = a.insert(WorkerId::from(1), then(10), None);
        let y = a.insert(WorkerId::from(2), then(20), None);
        answer(a.answer_box().clone(), y, Ok(Box::new(5u32)));
        answer(a.answer_box().clone(), x, Err(AskError::NoReply));
        answer(a.answer_box().clone(), x, Ok(Box::new(7u32)));
        let mut now = None;
        assert_eq!(
            a.next_ready(&mut now, |_| 0),
            Some((WorkerId::from(2), Some(25)))
        );
        assert_eq!(
            a.next_ready(&mut now, |_| 0),
            Some((WorkerId::from(1), Some(2010)))
        );
        assert_eq!(
            a.next_ready(&mut now, |_| 0),
            None,
            "the second answer is dropped"
        );
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn ids_are_not_reused() {
        let mut a = asks();
        let x = a.insert(WorkerId::from(0), then(0), None);
        assert!(a.remove(x).is_some());
        let y = a.insert(WorkerId::from(0), then(0), None);
        assert_ne!(x, y, "same slot, new generation");
        assert!(a.remove(x).is_none());
        assert!(a.remove(y).is_some());
    }

    #[test]
    fn deadlines_time_out_and_stay_bounded() {
        let mut a = asks();
        let past = Instant::now();
        let x = a.insert(WorkerId::from(3), then(1), Some(past));
        let mut now = None;
        assert_eq!(
            a.next_ready(&mut now, |_| 0),
            Some((WorkerId::from(3), Some(1001)))
        );
        answer(a.answer_box().clone(), x, Ok(Box::new(1u32)));
        assert_eq!(a.next_ready(&mut now, |_| 0), None, "late answer dropped");
        let far = Instant::now() + std::time::Duration::from_secs(3600);
        for _ in 0..10_000 {
            let id = a.insert(WorkerId::from(0), then(0), Some(far));
            a.remove(id);
        }
        let _keep = a.insert(WorkerId::from(0), then(0), Some(far));
        assert!(
            a.deadlines.len() <= 2 * a.len() + 33,
            "{}",
            a.deadlines.len()
        );
    }

    #[test]
    fn an_answer_waits_for_the_answerers_earlier_messages() {
        let mut a = asks();
        let x = a.insert(WorkerId::from(1), then(0), None);
        a.inbox.publish(Answer {
            id: x,
            outcome: Ok(Box::new(3u32)),
            after: Some((1, 5)),
        });
        let mut now = None;
        assert_eq!(
            a.next_ready(&mut now, |_| 4),
            None,
            "one message still in the ring"
        );
        assert_eq!(
            a.next_ready(&mut now, |_| 5),
            Some((WorkerId::from(1), Some(3)))
        );
    }

    #[test]
    fn clear_drops_every_pending_ask_unrun() {
        let mut a = asks();
        let x = a.insert(WorkerId::from(1), Box::new(|_| panic!("never runs")), None);
        assert_eq!(a.clear(), 1);
        answer(a.answer_box().clone(), x, Ok(Box::new(1u32)));
        assert_eq!(a.next_ready(&mut None, |_| 0).map(|(w, _)| w), None);
    }
}
