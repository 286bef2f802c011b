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
//! will come) given on a worker thread of the asker's pool travels the way
//! a message does: through an *answer lane*, an SPSC ring from the
//! answering worker to the asker like the pair's message ring, created by
//! the asker when it first asks that worker. The lane is published in the
//! same flush as the answerer's message rings and wakes the asker with
//! them, so an answer costs the cache lines a hand-written answer message
//! costs. Lanes carry a type-erased [`LaneAnswer`] of one cache line, not
//! the pool's message type: the value of an answer is the asker's own
//! business until its `then` turns it into a message.
//!
//! Everything else goes through the asker's [`AnswerBox`] — a bounded
//! MPSC queue built like the inbox, with an unbounded spill queue behind
//! it: answers given outside the pool's worker threads, by a worker the
//! asker never asked (an `Asked` passed on), or when the lane is full.
//!
//! Order: an answer given on a worker thread is *staged* on that thread
//! and published when the worker next publishes its rings (the flush after
//! its batch), tagged with the number of messages that worker had accepted
//! for the asker by then. The asker hands the answer to `handle` only once
//! it has taken that many from the answerer's ring. So an answer never
//! overtakes a message its answerer sent the asker before answering. An
//! answer given on a thread outside the pool is published at once,
//! untagged.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crossbeam_queue::SegQueue;

use crate::lockfree::inbox::{inbox, InboxReceiver, InboxSender, PushError};
use crate::lockfree::ring::{ring, Consumer, Producer};

pub(crate) use super::answer_value::Value;

use crate::lockfree::sync::{Arc, AtomicBool, Mutex};
use crate::{AskError, WorkerId};

/// What an answer carries: the value (type-erased, its type known to the
/// asker's `then`), or why none came.
pub(crate) type Outcome = Result<Value, AskError>;

/// A continuation: turns the outcome into the message the asker handles
/// (`None` for the parts of an `ask_all` that are not the last).
pub(crate) type Then<M> = super::continuation::Continuation<M>;

/// One answer on its way to the asker.
pub(crate) struct Answer {
    id: u64,
    outcome: Outcome,
    /// `(answering worker, messages it had sent the asker)`, when it was
    /// answered on a worker thread of the asker's pool.
    after: Option<(usize, u64)>,
}

/// One answer in a lane: exactly one cache line, so that taking it moves
/// one line from the answerer's core, as a small message does.
#[repr(align(64))]
pub(crate) struct LaneAnswer {
    id: u64,
    /// Messages the answerer had accepted for the asker when it published
    /// this answer (written at publication).
    after: u64,
    outcome: Outcome,
    /// The `Asked`'s reference to the asker's box, handed back with the
    /// answer: the asker lends it to its next ask, so neither thread
    /// touches the count's cache line, which would otherwise be
    /// incremented on the asker's core and decremented on the answerer's.
    to: Arc<AnswerBox>,
}

const _: () = assert!(std::mem::size_of::<LaneAnswer>() == 64);

impl LaneAnswer {
    /// The answer to ask `id`, for `to`'s asker, not tagged yet.
    fn new(to: Arc<AnswerBox>, id: u64, outcome: Outcome) -> Self {
        LaneAnswer {
            id,
            after: 0,
            outcome,
            to,
        }
    }

    /// The same answer for the box, with its tag (`None`: untagged) and
    /// the box it goes to.
    fn into_boxed(self, after: Option<(usize, u64)>) -> (Arc<AnswerBox>, Answer) {
        let answer = Answer {
            id: self.id,
            outcome: self.outcome,
            after,
        };
        (self.to, answer)
    }
}

/// Stages `answer` in `lane` (the lane to `asker`) and marks that lane for
/// the next publication; hands the answer back when the lane is full.
#[inline]
fn stage_in_lane(
    lane: &mut Producer<LaneAnswer>,
    dirty_lanes: &mut Vec<usize>,
    asker: usize,
    answer: LaneAnswer,
) -> Result<(), LaneAnswer> {
    lane.try_stage(answer)?;
    if !dirty_lanes.contains(&asker) {
        dirty_lanes.push(asker);
    }
    Ok(())
}

/// What the pool's registry does for the answer path: counts answers in
/// and out (so that shutdown's quiescence check sees answers in flight)
/// and wakes an asker that is not running.
pub(crate) trait WakeAsker: Send + Sync {
    /// One more answer from outside the pool's workers is about to be
    /// published for worker `asker`. (A worker counts its own answers in
    /// its pair counters.)
    fn counting_answer(&self, asker: usize);
    /// An answer was published for `asker`: wake it if it is not running.
    fn answer_published(&self, asker: usize);
    /// `asker` took `n` answers from its box.
    fn answer_taken(&self, asker: usize, n: u64);
    /// The pool's identity, to tell whether an answering worker thread
    /// belongs to the asker's pool.
    fn pool_id(&self) -> usize;
}

/// Answer slots in a worker's bounded answer queue; answers beyond them
/// wait in an unbounded spill queue.
const ANSWER_SLOTS: usize = 256;

/// Slots in one answer lane (64 bytes each). An answerer that finds its
/// lane full sends the answer through the box instead.
const LANE_SLOTS: usize = 128;

/// The producing side of the lane `answerer → asker`, waiting in the
/// asker's box for the answering thread to take it (once).
type LaneHandoff = Mutex<Option<Producer<LaneAnswer>>>;

/// The sending side of one asking worker's answers: a bounded MPSC queue
/// (the pool's inbox design: one claim and one stamp per answer, and the
/// asker's "anything there?" is one load), with an unbounded spill queue
/// behind it so that answering never fails or blocks.
pub(crate) struct AnswerBox {
    fast: InboxSender<Answer>,
    spill: SegQueue<Answer>,
    pool: Arc<dyn WakeAsker>,
    /// `pool.pool_id()`, read without a call.
    pool_id: usize,
    asker: usize,
    /// By answering worker: the producer of its lane to this asker, from
    /// the asker's first ask to it until that worker's thread takes it.
    lanes: Box<[LaneHandoff]>,
    /// The asker has stopped: answers are dropped instead of queued.
    closed: AtomicBool,
}

impl AnswerBox {
    /// Queues `answer` (the caller has counted it).
    #[inline]
    fn push(&self, answer: Answer) {
        match self.fast.try_push(answer) {
            Ok(()) => {}
            Err(PushError::Full(a)) => self.spill.push(a),
            Err(PushError::Closed(a)) => drop(a),
        }
    }

    /// Publishes an answer from outside the asker's pool: counted, queued,
    /// the asker woken.
    fn publish(&self, answer: Answer) {
        if self.closed.load(Relaxed) {
            return;
        }
        // Counted before it becomes visible: quiescence never misses it.
        self.pool.counting_answer(self.asker);
        self.push(answer);
        self.pool.answer_published(self.asker);
    }

    /// Refuses later answers and drops the queued ones (the asker
    /// stopped).
    pub(crate) fn close(&self) {
        self.closed.store(true, Relaxed);
        self.fast.close();
        while let Some(a) = self.spill.pop() {
            super::drop_contained(a);
        }
    }
}

/// What a worker thread keeps for the answer path.
struct Stage {
    /// Answers given since the last publication that could not go
    /// straight into a lane (this thread had not taken it yet, or it was
    /// full), in the order given.
    staged: Vec<LaneAnswer>,
    /// References to the boxes of this pool's askers that answers
    /// published through the box came with, released [`HELD`] at a time:
    /// each release is an atomic decrement of the asker's count, and the
    /// asker increments it at every ask, so releasing one per answer would
    /// move that count's cache line between the two cores on every round
    /// trip. (A lane answer hands its reference back to the asker.)
    held: Vec<Arc<AnswerBox>>,
    /// The pool whose lanes `lanes` are (its registry's address; 0: none).
    lanes_pool: usize,
    /// By asker: this thread's producer into the lane to it, once taken.
    lanes: Vec<Option<Producer<LaneAnswer>>>,
    /// Askers whose lanes have staged answers.
    dirty_lanes: Vec<usize>,
}

/// How many box references a worker thread holds before releasing them.
const HELD: usize = 32;

thread_local! {
    /// The answer path's state of this thread while it runs a pool's
    /// worker.
    static STAGED: RefCell<Stage> = const {
        RefCell::new(Stage {
            staged: Vec::new(),
            held: Vec::new(),
            lanes_pool: 0,
            lanes: Vec::new(),
            dirty_lanes: Vec::new(),
        })
    };
}

/// Sends the outcome of ask `id` to `to`: staged until the current
/// worker's next publication on a worker thread, at once elsewhere.
pub(crate) fn answer(to: Arc<AnswerBox>, id: u64, outcome: Outcome) {
    let mut item = Some(LaneAnswer::new(to, id, outcome));
    let _ = STAGED.try_with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.stage(&mut item);
        }
    });
    // Not on a worker thread, thread-locals being torn down, or staging
    // re-entered: publish at once rather than lose it.
    if let Some(answer) = item {
        let (to, answer) = answer.into_boxed(None);
        to.publish(answer);
    }
}

impl Stage {
    /// Stages the answer in `item` (taking it) if this is a worker thread:
    /// straight into the lane to its asker when this thread has taken that
    /// lane and no answer waits in `staged` before it, else in `staged`.
    /// (In place: an answer is a cache line, not moved more than needed.)
    #[inline]
    fn stage(&mut self, item: &mut Option<LaneAnswer>) {
        let Some(answer) = item.as_ref() else { return };
        let asker = answer.to.asker;
        if answer.to.pool_id == self.lanes_pool && self.staged.is_empty() {
            if let Some(Some(lane)) = self.lanes.get_mut(asker) {
                let answer = item.take().expect("checked above");
                match stage_in_lane(lane, &mut self.dirty_lanes, asker, answer) {
                    Ok(()) => return,
                    Err(full) => *item = Some(full),
                }
            }
        }
        if crate::runtime::on_worker_thread() {
            self.staged.extend(item.take());
        }
    }
}

/// Whether answers wait on this thread for the worker's publication.
#[inline]
pub(crate) fn any_staged() -> bool {
    STAGED
        .try_with(|s| {
            s.try_borrow()
                .is_ok_and(|s| !s.staged.is_empty() || !s.dirty_lanes.is_empty())
        })
        .unwrap_or(false)
}

/// Publishes the answers staged on this thread (the worker `me` of the
/// pool `pool`). `sent_to(asker)` gives how many messages this worker has
/// accepted for `asker` so far; `published(asker, n)` is called for `n`
/// answers to an asker of this pool before they can be seen: the caller
/// counts them in its own pair counters (single writer) and wakes the
/// asker after its barrier. Answers to askers of other pools are counted
/// and woken by their box.
pub(crate) fn publish_staged(
    pool: usize,
    me: usize,
    sent_to: impl Fn(usize) -> u64,
    mut published: impl FnMut(usize, u64),
) {
    let mut release = Vec::new();
    let _ = STAGED.try_with(|s| {
        let Ok(mut stage) = s.try_borrow_mut() else {
            return;
        };
        let Stage {
            staged,
            held,
            lanes_pool,
            lanes,
            dirty_lanes,
        } = &mut *stage;
        if *lanes_pool != pool {
            // A thread runs one pool's worker; this only happens once.
            lanes.clear();
            *lanes_pool = pool;
        }
        if !staged.is_empty() {
            publish_unlaned(
                staged,
                held,
                lanes,
                dirty_lanes,
                pool,
                me,
                &sent_to,
                &mut published,
            );
        }
        while let Some(asker) = dirty_lanes.pop() {
            if let Some(lane) = &mut lanes[asker] {
                let after = sent_to(asker);
                let n = lane.for_each_staged(|a| a.after = after);
                published(asker, n as u64);
                lane.publish();
            }
        }
        if held.len() >= HELD {
            // Released outside the borrow: a last reference may drop a
            // whole pool, and its messages' `Asked`s answer on drop.
            release = std::mem::replace(held, Vec::with_capacity(HELD));
        }
    });
    drop(release);
}

/// Publishes the answers staged before this thread had taken the lane to
/// their asker (or with that lane full): into the lane behind those staged
/// there directly, else into the box (tagged with this worker and its
/// count of messages for the asker).
#[allow(clippy::too_many_arguments)]
#[cold]
fn publish_unlaned(
    staged: &mut Vec<LaneAnswer>,
    held: &mut Vec<Arc<AnswerBox>>,
    lanes: &mut Vec<Option<Producer<LaneAnswer>>>,
    dirty_lanes: &mut Vec<usize>,
    pool: usize,
    me: usize,
    sent_to: &impl Fn(usize) -> u64,
    published: &mut impl FnMut(usize, u64),
) {
    for answer in staged.drain(..) {
        let asker = answer.to.asker;
        if answer.to.pool_id != pool {
            let (to, answer) = answer.into_boxed(None);
            to.publish(answer);
            continue;
        }
        let answer = match lane_to(lanes, &answer.to, me) {
            Some(lane) => match stage_in_lane(lane, dirty_lanes, asker, answer) {
                Ok(()) => continue,
                Err(full) => full,
            },
            None => answer,
        };
        if answer.to.closed.load(Relaxed) {
            continue;
        }
        published(asker, 1);
        let (to, answer) = answer.into_boxed(Some((me, sent_to(asker))));
        to.push(answer);
        held.push(to);
    }
}

/// This thread's producer into the lane to `to`'s asker: taken from the
/// box on first use. `None` while the asker has not asked this worker (an
/// `Asked` passed on to it): such answers go through the box.
fn lane_to<'a>(
    lanes: &'a mut Vec<Option<Producer<LaneAnswer>>>,
    to: &AnswerBox,
    me: usize,
) -> Option<&'a mut Producer<LaneAnswer>> {
    let asker = to.asker;
    if lanes.get(asker).is_none_or(Option::is_none) {
        let taken = to.lanes.get(me)?.lock().ok()?.take()?;
        if lanes.len() <= asker {
            lanes.resize_with(asker + 1, || None);
        }
        lanes[asker] = Some(taken);
    }
    lanes[asker].as_mut()
}

/// One place in the table: a pending ask's continuation and the worker
/// asked (the answer's `source`), 48 bytes with an inline continuation.
struct Slot<M> {
    generation: u32,
    peer: u32,
    then: Option<Then<M>>,
}

/// One worker's pending asks (owned by its thread, in its `Outbound`).
pub(crate) struct Asks<M> {
    inbox: Arc<AnswerBox>,
    /// The receiving side of `inbox`'s bounded queue.
    rx: InboxReceiver<Answer>,
    slots: Vec<Slot<M>>,
    free: Vec<u32>,
    live: usize,
    /// `Asked`s made and not yet heard back from: each ends in exactly
    /// one answer or `NoReply` (unless the pool is ending), so while this
    /// is zero no lane or box can hold anything for this worker, and the
    /// loop looks at none of them.
    outstanding: u64,
    /// Answers taken and not yet reported to the pool.
    unreported: u64,
    /// `(deadline, id)`; entries of asks answered since are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, u64)>>,
    /// Answers taken from the box whose answerer's earlier messages have
    /// not all been taken from its ring yet.
    waiting: VecDeque<Answer>,
    /// By asked worker: the consuming side of its answer lane, from the
    /// first ask to it on.
    lanes: Box<[Option<Consumer<LaneAnswer>>]>,
    /// The workers with a lane, in the order they were first asked.
    laned: Vec<usize>,
    /// References to `inbox` that lane answers brought back, lent again to
    /// the next asks: an ask then takes its `Asked`'s reference without an
    /// atomic increment, and an answer's is not released with a decrement.
    spare: Vec<Arc<AnswerBox>>,
}

/// Most spare box references an asker keeps.
const SPARE: usize = 1024;

impl<M> Asks<M> {
    /// The pending asks of worker `asker` of `pool` (of `workers`
    /// workers), none yet.
    pub(crate) fn new(pool: Arc<dyn WakeAsker>, asker: usize, workers: usize) -> Self {
        let (fast, rx) = inbox(ANSWER_SLOTS);
        let inbox = Arc::new(AnswerBox {
            fast,
            spill: SegQueue::new(),
            pool_id: pool.pool_id(),
            pool,
            asker,
            lanes: (0..workers).map(|_| Mutex::new(None)).collect(),
            closed: AtomicBool::new(false),
        });
        Asks {
            inbox,
            rx,
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            outstanding: 0,
            unreported: 0,
            deadlines: BinaryHeap::new(),
            waiting: VecDeque::new(),
            lanes: (0..workers).map(|_| None).collect(),
            laned: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// A reference to this worker's answer box for a fresh `Asked`.
    #[inline]
    pub(crate) fn lend_box(&mut self) -> Arc<AnswerBox> {
        self.spare.pop().unwrap_or_else(|| self.inbox.clone())
    }

    /// Makes sure worker `peer` has a lane to answer this worker through:
    /// called before every ask to it (a branch after the first).
    #[inline]
    pub(crate) fn open_lane(&mut self, peer: usize) {
        if self.lanes.get(peer).is_some_and(Option::is_none) {
            self.create_lane(peer);
        }
    }

    #[cold]
    #[inline(never)]
    fn create_lane(&mut self, peer: usize) {
        let (producer, consumer) = ring(LANE_SLOTS);
        if let Ok(mut handoff) = self.inbox.lanes[peer].lock() {
            *handoff = Some(producer);
            self.lanes[peer] = Some(consumer);
            self.laned.push(peer);
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

    /// Whether anything needs the loop's attention: an answer on its way
    /// or waiting (a pending ask, or a deadline to watch, has one on its
    /// way).
    #[inline]
    pub(crate) fn is_idle(&mut self) -> bool {
        self.outstanding == 0 && self.waiting.is_empty()
    }

    /// Whether an answer waits in a lane or the box (the idle path's
    /// check: nothing while no answer is on its way; else one load per
    /// lane, of the box's next slot, and of the spill queue's two indices).
    #[inline]
    pub(crate) fn answers_pending(&mut self) -> bool {
        if self.outstanding == 0 {
            return false;
        }
        let lanes = &mut self.lanes;
        self.laned
            .iter()
            .any(|&w| lanes[w].as_mut().is_some_and(Consumer::has_pending))
            || self.box_pending()
    }

    /// Counts `n` answers taken (from a lane or the box); the pool hears
    /// of them at [`report_taken`](Self::report_taken).
    #[inline]
    fn count_taken(&mut self, n: u64) {
        self.outstanding = self.outstanding.saturating_sub(n);
        self.unreported += n;
    }

    /// Tells the pool's quiescence count about the answers taken since the
    /// last report: once per loop iteration (at the flush), not once per
    /// answer.
    #[inline]
    pub(crate) fn report_taken(&mut self) {
        if self.unreported != 0 {
            self.inbox
                .pool
                .answer_taken(self.inbox.asker, std::mem::take(&mut self.unreported));
        }
    }

    /// Whether an answer waits in the box.
    #[inline]
    fn box_pending(&mut self) -> bool {
        self.rx.has_pending() || !self.inbox.spill.is_empty()
    }

    /// Moves what arrived in the box to `waiting`, counting it taken.
    fn take_arrived(&mut self) -> usize {
        let waiting = &mut self.waiting;
        let mut n = self.rx.pop_batch(usize::MAX, |a| waiting.push_back(a));
        while let Some(a) = self.inbox.spill.pop() {
            waiting.push_back(a);
            n += 1;
        }
        if n > 0 {
            self.count_taken(n as u64);
        }
        n
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
                    peer: 0,
                    then: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.peer = peer.index() as u32;
        slot.then = Some(then);
        self.live += 1;
        self.outstanding += 1;
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
        let then = slot.then.take()?;
        let peer = WorkerId::from(slot.peer as usize);
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index as u32);
        self.live -= 1;
        if self.live == 0 {
            self.deadlines.clear();
        } else if self.deadlines.len() > 2 * self.live + 32 {
            self.compact_deadlines();
        }
        Some((peer, then))
    }

    /// Drops the deadlines of asks no longer pending, so the heap stays
    /// bounded by the pending asks, not by the asks ever made.
    #[cold]
    fn compact_deadlines(&mut self) {
        let mut deadlines = std::mem::take(&mut self.deadlines);
        deadlines.retain(|Reverse((_, id))| self.is_pending(*id));
        self.deadlines = deadlines;
    }

    /// Whether the ask `id` is still pending.
    #[inline]
    fn is_pending(&self, id: u64) -> bool {
        self.slots
            .get((id & u64::from(u32::MAX)) as usize)
            .is_some_and(|s| s.generation == (id >> 32) as u32 && s.then.is_some())
    }

    /// Drops every pending ask unrun (a restart, a failure, the stop).
    /// Answers that come later find no ask and are dropped. Returns how
    /// many there were.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.live;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(then) = slot.then.take() {
                slot.generation = slot.generation.wrapping_add(1);
                self.free.push(i as u32);
                super::drop_contained(then);
            }
        }
        self.live = 0;
        self.deadlines.clear();
        self.waiting.drain(..).for_each(super::drop_contained);
        n
    }

    /// Takes every answer waiting in the box and drops it (a failed
    /// worker's loop: it has no asks left, but answers still count until
    /// taken). Returns how many.
    pub(crate) fn drop_arrived(&mut self) -> usize {
        let mut n = self.take_arrived();
        let mut from_lanes = 0;
        for lane in self.lanes.iter_mut().flatten() {
            while let Some(a) = lane.pop_if(|_| true) {
                from_lanes += 1;
                super::drop_contained(a);
            }
        }
        if from_lanes > 0 {
            self.count_taken(from_lanes);
            n += from_lanes as usize;
        }
        self.report_taken();
        self.waiting.drain(..).for_each(super::drop_contained);
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
    ///
    /// The lanes are looked at here, inline; the box and the deadlines,
    /// rarer, only when something is there.
    #[inline]
    pub(crate) fn next_ready(
        &mut self,
        now: &mut Option<Instant>,
        taken_from: impl Fn(usize) -> u64,
    ) -> Option<(WorkerId, Option<M>)> {
        while let Some((id, outcome)) = self.next_lane_answer(&taken_from) {
            if let Some((peer, then)) = self.remove(id) {
                return Some((peer, then.run(outcome)));
            }
            // Late (after a timeout) or for an ask dropped at a restart.
        }
        if self.waiting.is_empty() && self.deadlines.is_empty() && !self.box_pending() {
            return None;
        }
        self.next_boxed_or_due(now, &taken_from)
    }

    /// [`next_ready`](Self::next_ready) past the lanes: an answer from the
    /// box, or a deadline that passed.
    #[inline(never)]
    fn next_boxed_or_due(
        &mut self,
        now: &mut Option<Instant>,
        taken_from: &impl Fn(usize) -> u64,
    ) -> Option<(WorkerId, Option<M>)> {
        if !self.waiting.is_empty() || self.box_pending() {
            while let Some(answer) = self.next_answer(taken_from) {
                if let Some((peer, then)) = self.remove(answer.id) {
                    return Some((peer, then.run(answer.outcome)));
                }
                // Late (after a timeout) or for an ask dropped at a
                // restart.
            }
        }
        while let Some(Reverse((due, id))) = self.deadlines.peek().copied() {
            if !self.is_pending(id) {
                // Answered already: no need to read the clock for it.
                self.deadlines.pop();
                continue;
            }
            let t = *now.get_or_insert_with(Instant::now);
            if due > t {
                break;
            }
            self.deadlines.pop();
            if let Some((peer, then)) = self.remove(id) {
                return Some((peer, then.run(Err(AskError::Timeout))));
            }
        }
        None
    }

    /// The first answer in a lane whose answerer's earlier messages have
    /// all been taken. Answers in one lane are in tag order, so one not
    /// ready holds back only those behind it.
    #[inline]
    fn next_lane_answer(&mut self, taken_from: &impl Fn(usize) -> u64) -> Option<(u64, Outcome)> {
        let lanes = &mut self.lanes;
        let found = self.laned.iter().find_map(|&w| {
            let taken = taken_from(w);
            lanes[w]
                .as_mut()?
                .pop_if(|a| taken.wrapping_sub(a.after) as i64 >= 0)
        })?;
        self.count_taken(1);
        let LaneAnswer {
            id, outcome, to, ..
        } = found;
        if self.spare.len() < SPARE {
            self.spare.push(to);
        }
        Some((id, outcome))
    }

    fn next_answer(&mut self, taken_from: &impl Fn(usize) -> u64) -> Option<Answer> {
        let ready = |a: &Answer| match a.after {
            None => true,
            Some((w, n)) => taken_from(w).wrapping_sub(n) as i64 >= 0,
        };
        if let Some(i) = self.waiting.iter().position(ready) {
            return self.waiting.remove(i);
        }
        if !self.box_pending() || self.take_arrived() == 0 {
            return None;
        }
        let i = self.waiting.iter().position(ready)?;
        self.waiting.remove(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPool;
    impl WakeAsker for NoPool {
        fn counting_answer(&self, _: usize) {}
        fn answer_published(&self, _: usize) {}
        fn answer_taken(&self, _: usize, _: u64) {}
        fn pool_id(&self) -> usize {
            1
        }
    }

    fn asks() -> Asks<u32> {
        Asks::new(Arc::new(NoPool), 0, 4)
    }

    fn then(tag: u32) -> Then<u32> {
        Then::new(move |o: Outcome| {
            Some(match o {
                Ok(v) => tag + v.take::<u32>().unwrap(),
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
        answer(a.answer_box().clone(), y, Ok(Value::new(5u32)));
        answer(a.answer_box().clone(), x, Err(AskError::NoReply));
        answer(a.answer_box().clone(), x, Ok(Value::new(7u32)));
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
    fn a_slot_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 48);
        assert_eq!(std::mem::size_of::<Slot<[u64; 8]>>(), 48);
    }

    #[test]
    fn idle_only_while_no_answer_is_on_its_way() {
        let mut a = asks();
        assert!(a.is_idle() && !a.answers_pending());
        let x = a.insert(WorkerId::from(1), then(1), Some(Instant::now()));
        assert!(!a.is_idle());
        assert_eq!(
            a.next_ready(&mut None, |_| 0),
            Some((WorkerId::from(1), Some(1001))),
            "timed out"
        );
        assert!(!a.is_idle(), "its answer is still on its way");
        answer(a.answer_box().clone(), x, Ok(Value::new(1u32)));
        assert!(a.answers_pending());
        assert_eq!(a.next_ready(&mut None, |_| 0), None, "late: dropped");
        assert!(a.is_idle() && !a.answers_pending());
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
        answer(a.answer_box().clone(), x, Ok(Value::new(1u32)));
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
        a.inbox.push(Answer {
            id: x,
            outcome: Ok(Value::new(3u32)),
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
        let x = a.insert(WorkerId::from(1), Then::new(|_| panic!("never runs")), None);
        assert_eq!(a.clear(), 1);
        answer(a.answer_box().clone(), x, Ok(Value::new(1u32)));
        assert_eq!(a.next_ready(&mut None, |_| 0).map(|(w, _)| w), None);
    }
}
