//! Asking a peer from inside a worker: [`Context::ask`], its
//! [`Asked`] answering half and [`AskError`].
//!
//! A worker cannot block or await, so a question to another worker used to
//! mean a hand-written correlation table (ids, pending slots, timeouts).
//! `ask` is that table, kept by the runtime: the question goes out as an
//! ordinary message carrying an [`Asked<R>`]; the answer — or the certainty
//! that none will come — comes back as one of the asker's own messages,
//! built by the `then` continuation on the asker's thread. How an answer
//! travels, and what a pending ask costs, is in `docs/architecture.md`
//! ("Asking a peer").

use std::fmt;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::lockfree::sync::Arc;
use crate::mesh::asks::{self, AnswerBox, Outcome, Then};
use crate::{Context, SendError, WorkerId};

/// Why an ask has no answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// The deadline passed first; a later answer is dropped.
    Timeout,
    /// No answer can come: the [`Asked`] was dropped unanswered — the
    /// handler forgot it, the peer panicked, failed or restarted, or the
    /// question was dropped at shutdown. Delivered as soon as that happens,
    /// not at the deadline.
    NoReply,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Timeout => f.write_str("the ask's deadline passed before an answer came"),
            AskError::NoReply => f.write_str("the asked worker dropped the question unanswered"),
        }
    }
}

impl std::error::Error for AskError {}

/// The answering half of an ask: `Send`, movable into any message, to any
/// worker or thread. Answer with [`send`](Asked::send); dropping it
/// unanswered tells the asker [`AskError::NoReply`] at once.
///
/// ```
/// use shardpool::prelude::*;
/// use std::time::Duration;
///
/// enum Msg {
///     Start,
///     Get(Asked<u64>),
///     Got(Result<u64, AskError>),
/// }
///
/// #[derive(Default)]
/// struct Shard {
///     value: u64,
///     got: Option<u64>,
/// }
///
/// impl Worker for Shard {
///     type Msg = Msg;
///     fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
///         match msg {
///             // Worker 0 asks worker 1 for its value and carries on.
///             Msg::Start => ctx
///                 .ask(WorkerId::from(1), Msg::Get, Msg::Got, Duration::from_secs(5))
///                 .unwrap_or_else(|_| unreachable!()),
///             Msg::Get(asked) => asked.send(self.value),
///             // The answer, handled like any other message.
///             Msg::Got(answer) => self.got = answer.ok(),
///         }
///     }
/// }
///
/// let pool = Pool::start(PoolConfig::default().workers(2).affinity(Affinity::None), |id| {
///     Shard { value: 40 + id.index() as u64, got: None }
/// })?;
/// pool.sender().send_to(WorkerId::from(0), Msg::Start)?;
/// let workers = pool.shutdown()?;
/// assert_eq!(workers[0].got, Some(41));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Asked<R> {
    to: Option<Arc<AnswerBox>>,
    id: u64,
    _value: PhantomData<fn(R)>,
}

impl<R> fmt::Debug for Asked<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Asked").field("id", &self.id).finish()
    }
}

impl<R: Send + 'static> Asked<R> {
    /// Answers. Never blocks. On a worker thread the answer leaves with
    /// the worker's other sends after its batch, and reaches the
    /// asker after every message this worker sent it before answering.
    pub fn send(mut self, value: R) {
        if let Some(to) = self.to.take() {
            asks::answer(to, self.id, Ok(asks::Value::new(value)));
        }
    }
}

impl<R> Drop for Asked<R> {
    fn drop(&mut self) {
        if let Some(to) = self.to.take() {
            asks::answer(to, self.id, Err(AskError::NoReply));
        }
    }
}

/// The continuation of one ask, its answer's type erased.
fn erase<M, R: 'static>(then: impl FnOnce(Result<R, AskError>) -> M + 'static) -> Then<M> {
    Then::new(move |outcome: Outcome| Some(then(outcome.and_then(typed::<R>))))
}

/// The answer as the asker's `R`. An `Asked<R>` answers its ask's id
/// with an `R`, so a mismatch could only come from an id whose slot's
/// generation wrapped around while an old `Asked` lived: that one counts
/// as unanswered.
fn typed<R: 'static>(value: asks::Value) -> Result<R, AskError> {
    value.take::<R>().ok_or(AskError::NoReply)
}

/// A deadline `deadline` from now; `None` when it cannot be represented
/// (`Duration::MAX`: no deadline).
fn due_in(deadline: Duration) -> Option<Instant> {
    if deadline == Duration::MAX {
        return None;
    }
    Instant::now().checked_add(deadline)
}

impl<M: Send + 'static> Context<'_, M> {
    /// Sends `peer` (this worker itself allowed) the message `question`
    /// builds around a fresh [`Asked<R>`], and carries on. When the answer
    /// comes — or it is certain that none will — `then` turns the outcome
    /// into a message that this worker handles like any other, with
    /// [`source`](Self::source) `Some(Endpoint::Worker(peer))`.
    ///
    /// - `then` runs exactly once, on this worker's thread (it need not be
    ///   `Send`), unless this worker restarts, fails or stops first: pending
    ///   asks are dropped with the worker instance, `then` unrun.
    /// - The outcome is `Err(AskError::NoReply)` as soon as the `Asked` is
    ///   dropped unanswered (the peer forgot it, panicked, failed,
    ///   restarted, or the question was dropped at shutdown), and
    ///   `Err(AskError::Timeout)` when `deadline` passes first; an answer
    ///   after that is dropped. Any `deadline` is accepted (`Duration::MAX`:
    ///   none). Shutdown never waits for a deadline.
    /// - An answer given on the peer's thread arrives after every message
    ///   the peer sent this worker before answering.
    ///
    /// Never blocks. If the question cannot be sent, its message is handed
    /// back as [`send_to`](Self::send_to) hands it back, and `then` is
    /// dropped unrun (the `Asked` inside the message is then inert: its
    /// answer, or its drop, reaches nothing).
    ///
    /// Cost: one 48-byte slot in this worker's table of pending asks (a
    /// `then` capturing more than three words is boxed), and at the first
    /// ask to `peer` an answer lane from it (8 KiB). The answer comes back
    /// through that lane, published with `peer`'s rings; a value of up to
    /// four words travels inline, a larger one boxed (see
    /// `docs/architecture.md`, "Asking a peer").
    pub fn ask<R: Send + 'static>(
        &mut self,
        peer: WorkerId,
        question: impl FnOnce(Asked<R>) -> M,
        then: impl FnOnce(Result<R, AskError>) -> M + 'static,
        deadline: Duration,
    ) -> Result<(), SendError<M>> {
        self.ask_erased(peer, peer, question, erase(then), due_in(deadline))
            .map_err(|(id, e)| {
                // Removed first, so the drop of the `Asked` inside a
                // handed-back message that the caller discards reaches no
                // pending ask.
                drop(self.out.asks.remove(id));
                e
            })
    }

    /// [`ask`](Self::ask) the worker that owns `key` under the pool's
    /// partitioner (the one [`send_keyed`](Self::send_keyed) sends to).
    pub fn ask_keyed<K: Hash + ?Sized, R: Send + 'static>(
        &mut self,
        key: &K,
        question: impl FnOnce(Asked<R>) -> M,
        then: impl FnOnce(Result<R, AskError>) -> M + 'static,
        deadline: Duration,
    ) -> Result<(), SendError<M>> {
        let peer = self.out.worker_for(key);
        self.ask(peer, question, then, deadline)
    }

    /// Asks every worker (this one included) and hands `then` all the
    /// outcomes at once, indexed by worker id, when the last one is known.
    ///
    /// A worker that cannot be asked (it has failed, or its pair is full
    /// under an [`overflow_limit`](crate::PoolConfig::overflow_limit))
    /// gets `Err(AskError::NoReply)` in its place. Only when this worker
    /// cannot send at all (from `on_stop`) is the first question handed
    /// back, `then` dropped unrun. The message `then` builds is handled
    /// with [`source`](Self::source) `Some(Endpoint::Worker(me))`.
    ///
    /// ```
    /// use shardpool::prelude::*;
    /// use std::time::Duration;
    ///
    /// enum Msg {
    ///     /// From outside: add up every worker's count.
    ///     Total,
    ///     /// The question each worker gets.
    ///     Count(Asked<u64>),
    ///     /// Every worker's answer, indexed by worker id.
    ///     Counts(Vec<Result<u64, AskError>>),
    /// }
    ///
    /// struct Shard {
    ///     count: u64,
    ///     total: Option<u64>,
    ///     missing: usize,
    /// }
    ///
    /// impl Worker for Shard {
    ///     type Msg = Msg;
    ///     fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
    ///         match msg {
    ///             Msg::Total => ctx
    ///                 .ask_all(
    ///                     |_worker, asked| Msg::Count(asked),
    ///                     Msg::Counts,
    ///                     Duration::from_secs(1),
    ///                 )
    ///                 .unwrap_or_else(|_| unreachable!("asked from handle")),
    ///             Msg::Count(asked) => asked.send(self.count),
    ///             // One message, once every worker has answered (or is
    ///             // known not to, or the deadline passed).
    ///             Msg::Counts(counts) => {
    ///                 self.total = Some(counts.iter().flatten().sum());
    ///                 self.missing = counts.iter().filter(|c| c.is_err()).count();
    ///             }
    ///         }
    ///     }
    /// }
    ///
    /// let config = PoolConfig::default().workers(3).affinity(Affinity::None);
    /// let pool = Pool::start(config, |id| Shard {
    ///     count: 10 * (id.index() as u64 + 1),
    ///     total: None,
    ///     missing: 0,
    /// })?;
    /// pool.sender().send_to(WorkerId::from(0), Msg::Total)?;
    /// let workers = pool.shutdown()?;
    /// assert_eq!(workers[0].total, Some(10 + 20 + 30));
    /// assert_eq!(workers[0].missing, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ask_all<R: Send + 'static>(
        &mut self,
        mut question: impl FnMut(WorkerId, Asked<R>) -> M,
        then: impl FnOnce(Vec<Result<R, AskError>>) -> M + 'static,
        deadline: Duration,
    ) -> Result<(), SendError<M>> {
        let n = self.workers();
        let (me, due) = (self.id(), due_in(deadline));
        let gather = Gather::new(n, then);
        for peer in (0..n).map(WorkerId::from) {
            let part = gather.part(peer.index());
            let sent = self.ask_erased(peer, me, |asked| question(peer, asked), part, due);
            match sent {
                Ok(()) => {}
                // Not one question can go out: hand the first back.
                Err((id, SendError::Closed(msg))) if self.out.is_closed() => {
                    drop(self.out.asks.remove(id));
                    return Err(SendError::Closed(msg));
                }
                // Dropping the question drops its `Asked`, which fills
                // that worker's place with `NoReply`.
                Err((_, e)) => drop(e),
            }
        }
        Ok(())
    }

    /// `ask` with its continuation already erased; `source` is what the
    /// outcome's message is handled with. A failed send leaves the ask
    /// pending and hands its id back with the error.
    fn ask_erased<R: Send + 'static>(
        &mut self,
        peer: WorkerId,
        source: WorkerId,
        question: impl FnOnce(Asked<R>) -> M,
        then: Then<M>,
        due: Option<Instant>,
    ) -> Result<(), (u64, SendError<M>)> {
        self.out.asks.open_lane(peer.index());
        let id = self.out.asks.insert(source, then, due);
        let asked = Asked {
            to: Some(self.out.asks.lend_box()),
            id,
            _value: PhantomData,
        };
        let msg = question(asked);
        self.out.send_to(peer.index(), msg).map_err(|e| (id, e))
    }
}

/// The outcomes of an `ask_all`, gathered on the asker's thread.
struct Gather<R, M> {
    state: std::rc::Rc<std::cell::RefCell<GatherState<R, M>>>,
}

type GatherThen<R, M> = Box<dyn FnOnce(Vec<Result<R, AskError>>) -> M>;

struct GatherState<R, M> {
    outcomes: Vec<Option<Result<R, AskError>>>,
    missing: usize,
    then: Option<GatherThen<R, M>>,
}

impl<R: 'static, M: 'static> Gather<R, M> {
    fn new(n: usize, then: impl FnOnce(Vec<Result<R, AskError>>) -> M + 'static) -> Self {
        Gather {
            state: std::rc::Rc::new(std::cell::RefCell::new(GatherState {
                outcomes: (0..n).map(|_| None).collect(),
                missing: n,
                then: Some(Box::new(then)),
            })),
        }
    }

    /// The continuation of worker `i`'s question: records its outcome and,
    /// for the last one, builds the message.
    fn part(&self, i: usize) -> Then<M> {
        let state = self.state.clone();
        Then::new(move |outcome: Outcome| {
            let mut s = state.borrow_mut();
            let outcome = outcome.and_then(typed::<R>);
            if s.outcomes[i].replace(outcome).is_none() {
                s.missing -= 1;
            }
            if s.missing > 0 {
                return None;
            }
            let then = s.then.take()?;
            let outcomes = s
                .outcomes
                .iter_mut()
                .map(|o| o.take().unwrap_or(Err(AskError::NoReply)))
                .collect();
            drop(s);
            Some(then(outcomes))
        })
    }
}
