//! [`PoolConfig`]: how many workers, where they run, how big their queues
//! are, how they batch, idle and route. Validated by [`Pool::start`](crate::Pool::start).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::partitioners::{HashPartitioner, Partitioner};
use crate::Error;

/// Where worker threads run.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Affinity {
    /// One worker per physical core of the CPUs this process may use, SMT
    /// siblings skipped, filling NUMA node by NUMA node (see
    /// [`PoolConfig::numa_fill`]). The default.
    #[default]
    PhysicalCores,
    /// Pin worker `i` to OS CPU `list[i]`. Every CPU must exist and be in
    /// this process's allowed set.
    Cpus(Vec<usize>),
    /// Do not pin: the OS scheduler places the threads.
    None,
}

/// How [`Affinity::PhysicalCores`] spreads workers over NUMA nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NumaFill {
    /// Fill one NUMA node's cores before moving to the next (keeps traffic
    /// between neighbouring workers on one node). The default.
    #[default]
    Compact,
    /// Take cores from the nodes in turn (spreads memory bandwidth).
    Spread,
}

/// What a worker does when a loop iteration found nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Spin `spins` times (with a CPU pause hint), then yield the CPU
    /// `yields` times, then park until a message arrives or the next tick is
    /// due. An idle worker costs no CPU; waking it costs one syscall. The
    /// default (`spins: 64, yields: 256`): with ~10-40 ns pauses and
    /// ~0.2 µs yields, about 50 µs awake before parking (Seastar polls
    /// 200 µs by default), most of it yielding, so a thread that shares the
    /// worker's CPU gets to run.
    ///
    /// Any `spins` and `yields` work, 0 included (park at once). Both
    /// phases end when the next tick is due, so with a long
    /// `tick_interval` large values keep an idle worker's CPU busy that
    /// long before it parks.
    Backoff {
        /// Pause-hinted polls of the worker's doorbell before yielding.
        spins: u32,
        /// `thread::yield_now` calls before parking (fewer if the next tick
        /// comes first: on a busy CPU one yield can last a time slice).
        yields: u32,
    },
    /// Never park: poll forever. The lowest wake-up latency, at the price of
    /// one core at 100% even while idle.
    BusyPoll,
}

impl Default for IdleStrategy {
    fn default() -> Self {
        IdleStrategy::Backoff {
            spins: 64,
            yields: 256,
        }
    }
}

/// What happens to a worker whose `on_start`, `handle` or `tick` panics.
///
/// The default is [`PanicPolicy::Stop`]: a panic means the worker's state may
/// be half-updated, and silently replacing it with a fresh one would lose
/// that state without anyone deciding to. Choose `Restart` when the worker's
/// state is a cache or can be rebuilt by its factory.
///
/// Panics are caught with `catch_unwind`: with `panic = "abort"` in the
/// profile, a panic aborts the process and none of this applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PanicPolicy {
    /// The worker is marked failed: sends to it return
    /// [`SendError::Closed`](crate::SendError::Closed), messages already
    /// queued to it are dropped and counted in
    /// [`WorkerStats::dropped`](crate::WorkerStats::dropped), and
    /// [`Pool::shutdown`](crate::Pool::shutdown) returns
    /// [`Error::WorkerPanicked`]. The default.
    ///
    /// The failed worker lets go of its state at once, on its own thread:
    /// the instance is dropped when it fails (the sockets and listeners it
    /// owns close, the [`Reply`](crate::Reply)s it holds end their calls
    /// with `NoReply`), with its pending `send_after` timers (counted in
    /// [`WorkerStats::timers_dropped`](crate::WorkerStats::timers_dropped)).
    /// A panic in its `Drop` is caught. A failure during the first start
    /// makes [`Pool::start`](crate::Pool::start) return the error.
    #[default]
    Stop,
    /// The factory builds a fresh worker on the same pinned thread and its
    /// `on_start` runs; its queues are kept, so messages queued behind the
    /// one that panicked are not lost (that one is). Restarts are counted in
    /// [`WorkerStats::restarts`](crate::WorkerStats::restarts). More than
    /// `max_restarts` panics within `within` (or a panicking factory) falls
    /// back to `Stop`.
    ///
    /// The instance that panicked is dropped at the restart, before its
    /// successor is built, together with the timers it set with
    /// `send_after` (counted in
    /// [`WorkerStats::timers_dropped`](crate::WorkerStats::timers_dropped);
    /// its queued messages are kept, as said).
    ///
    /// **Backoff.** Consecutive restarts of one worker wait: the first
    /// restart of a row happens at once, the second after 10 ms, and each
    /// further one waits twice as long as the one before, up to 1 s (0,
    /// 10 ms, 20 ms, 40 ms, … 640 ms, then 1 s each). A worker that has run
    /// for a second since its `on_start` returned starts a new row. The
    /// wait does not hold the pool: once [`Pool::shutdown`](crate::Pool::shutdown)
    /// (or a drop) begins, a waiting worker restarts at once, and a restart
    /// whose `on_start` panics then is not retried (the worker fails), so
    /// shutdown returns within about a second whatever the budget.
    Restart {
        /// Restarts allowed within the window (0: behave as `Stop`).
        max_restarts: u32,
        /// The sliding window: longer than zero. `Duration::MAX` means the
        /// budget never refills (at most `max_restarts` restarts, ever).
        within: Duration,
    },
}

/// A shared, type-erased [`Partitioner`] as stored in a [`PoolConfig`].
///
/// The default, [`HashPartitioner`], is recognised and called directly
/// (one multiply, inlined into `send_keyed`) instead of through the trait
/// object: a keyed send pays no indirect call for the common case.
#[derive(Clone)]
pub(crate) struct SharedPartitioner {
    dynamic: Arc<dyn Partitioner>,
    is_hash: bool,
}

impl SharedPartitioner {
    pub(crate) fn new<P: Partitioner>(partitioner: P) -> Self {
        SharedPartitioner {
            is_hash: std::any::TypeId::of::<P>() == std::any::TypeId::of::<HashPartitioner>(),
            dynamic: Arc::new(partitioner),
        }
    }

    /// The shard of a key of hash `hash` among `shards`.
    #[inline]
    pub(crate) fn shard(&self, hash: u64, shards: usize) -> usize {
        if self.is_hash {
            HashPartitioner.shard(hash, shards)
        } else {
            self.dynamic.shard(hash, shards)
        }
    }
}

impl fmt::Debug for SharedPartitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Partitioner")
    }
}

/// The configuration of a [`Pool`](crate::Pool): start from
/// [`PoolConfig::default()`] and chain the builder methods.
///
/// ```
/// use shardpool::prelude::*;
/// use std::time::Duration;
/// let config = PoolConfig::default()
///     .workers(2)
///     .affinity(Affinity::None)
///     .queue_capacity(4096)
///     .batch_size(64)
///     .tick_interval(Duration::from_millis(5))
///     .name("ingest");
/// assert_eq!(config.get_ring_capacity(), 4096);
/// ```
///
/// Nothing is checked here: [`Pool::start`](crate::Pool::start) refuses an
/// invalid value with [`Error::InvalidConfig`] naming the field.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    pub(crate) workers: Option<usize>,
    pub(crate) affinity: Affinity,
    pub(crate) numa_fill: NumaFill,
    pub(crate) inbox_capacity: usize,
    pub(crate) ring_capacity: usize,
    pub(crate) batch_size: usize,
    pub(crate) idle: IdleStrategy,
    pub(crate) tick_interval: Duration,
    pub(crate) partitioner: SharedPartitioner,
    pub(crate) name: String,
    pub(crate) on_panic: PanicPolicy,
    pub(crate) overflow_limit: Option<usize>,
    pub(crate) overflow_pause: Option<usize>,
    pub(crate) inbox_coalesce: Duration,
    pub(crate) io_poll_interval: Duration,
    pub(crate) stall: crate::runtime::stall::StallConfig,
    pub(crate) call_spin: Duration,
}

/// Default inbox and ring capacity.
pub const DEFAULT_CAPACITY: usize = 1024;
/// Default number of messages taken from one queue per loop iteration.
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Default time a worker leaves its inbox alone after a batch that emptied
/// it; see [`PoolConfig::inbox_coalesce`].
pub const DEFAULT_INBOX_COALESCE: Duration = Duration::from_micros(1);
/// The longest [`PoolConfig::inbox_coalesce`] accepted.
pub const MAX_INBOX_COALESCE: Duration = Duration::from_micros(100);
/// Default longest time a busy worker goes without polling its I/O; see
/// [`PoolConfig::io_poll_interval`].
pub const DEFAULT_IO_POLL_INTERVAL: Duration = Duration::from_micros(100);
/// Default longest time between two `tick`s of an idle worker: 100 ms.
///
/// Each idle tick wakes a parked worker. On a VM a timed wake-up costs tens
/// of microseconds of CPU, so at 10 ms two idle workers used about 1 % of a
/// core in wake-ups alone (docs/performance-log.md, "Idle CPU"); at 100 ms they use
/// a tenth of that. Work that must happen at a time belongs in
/// [`Context::send_after`](crate::Context::send_after), which wakes a parked
/// worker at its deadline whatever this interval is.
pub const DEFAULT_TICK_INTERVAL: Duration = Duration::from_millis(100);

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            workers: None,
            affinity: Affinity::PhysicalCores,
            numa_fill: NumaFill::Compact,
            inbox_capacity: DEFAULT_CAPACITY,
            ring_capacity: DEFAULT_CAPACITY,
            batch_size: DEFAULT_BATCH_SIZE,
            idle: IdleStrategy::default(),
            tick_interval: DEFAULT_TICK_INTERVAL,
            partitioner: SharedPartitioner::new(HashPartitioner),
            name: String::from("shardpool"),
            on_panic: PanicPolicy::Stop,
            overflow_limit: None,
            overflow_pause: None,
            inbox_coalesce: DEFAULT_INBOX_COALESCE,
            io_poll_interval: DEFAULT_IO_POLL_INTERVAL,
            stall: Default::default(),
            call_spin: Duration::ZERO,
        }
    }
}

impl PoolConfig {
    /// The number of workers. Default: one per physical core the process may
    /// use (with [`Affinity::Cpus`], one per listed CPU).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Where the workers run. Default: [`Affinity::PhysicalCores`].
    pub fn affinity(mut self, affinity: Affinity) -> Self {
        self.affinity = affinity;
        self
    }

    /// How [`Affinity::PhysicalCores`] fills NUMA nodes. Default:
    /// [`NumaFill::Compact`].
    pub fn numa_fill(mut self, fill: NumaFill) -> Self {
        self.numa_fill = fill;
        self
    }

    /// Sets both the inbox and the ring capacity (rounded up to a power of
    /// two). Default: 1024.
    pub fn queue_capacity(self, n: usize) -> Self {
        self.inbox_capacity(n).ring_capacity(n)
    }

    /// Capacity of each worker's inbox from threads outside the pool
    /// (rounded up to a power of two).
    pub fn inbox_capacity(mut self, n: usize) -> Self {
        self.inbox_capacity = n;
        self
    }

    /// Capacity of each worker-to-worker ring (rounded up to a power of
    /// two). A full ring never blocks the sender: the message waits in that
    /// pair's overflow.
    pub fn ring_capacity(mut self, n: usize) -> Self {
        self.ring_capacity = n;
        self
    }

    /// The most messages a worker takes from one queue per loop iteration.
    /// Default: 64. Any value from 1 up: a batch never exceeds what the
    /// queue holds, so a `batch_size` above the capacity (`usize::MAX`
    /// included) means "everything that is there". 0 is refused.
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// What an idle worker does. Default: [`IdleStrategy::Backoff`].
    pub fn idle(mut self, idle: IdleStrategy) -> Self {
        self.idle = idle;
        self
    }

    /// The longest time between two `tick`s while a worker is idle.
    /// Default: [100 ms](DEFAULT_TICK_INTERVAL). Shorten it if your `tick`
    /// polls something outside the pool while idle; for deadlines use
    /// [`Context::send_after`](crate::Context::send_after) instead.
    ///
    /// Any duration longer than zero. `Duration::MAX` (or any interval too
    /// long for the clock) means no idle ticks: `tick` then runs only after
    /// each batch, and an idle worker parks until a message arrives. Zero
    /// is refused.
    pub fn tick_interval(mut self, interval: Duration) -> Self {
        self.tick_interval = interval;
        self
    }

    /// How keys map to workers for `send_keyed` and `worker_for`. Default:
    /// [`HashPartitioner`].
    pub fn partitioner<P: Partitioner>(mut self, partitioner: P) -> Self {
        self.partitioner = SharedPartitioner::new(partitioner);
        self
    }

    /// Prefix of the worker threads' names (`{prefix}-{id}`). Default:
    /// `"shardpool"`. A name with a NUL byte is refused (the OS cannot
    /// name a thread so); a long one is cut by the OS (15 bytes on Linux).
    pub fn name(mut self, prefix: impl Into<String>) -> Self {
        self.name = prefix.into();
        self
    }

    /// What happens when a worker panics. Default: [`PanicPolicy::Stop`].
    pub fn on_panic(mut self, policy: PanicPolicy) -> Self {
        self.on_panic = policy;
        self
    }

    /// Caps each (sender, receiver) pair's overflow at `limit` messages.
    /// When a ring is full and its overflow holds `limit` messages,
    /// `ctx.send_to` returns [`SendError::Full`](crate::SendError::Full) with
    /// the message instead of queueing it — the worker still never blocks,
    /// and decides itself (drop, retry on a later tick, handle locally).
    /// `0` means no overflow at all; `usize::MAX` is the same as
    /// unbounded. Default: unbounded, which can never
    /// deadlock two workers that send to each other but lets memory grow
    /// while a receiver is slower than its senders.
    pub fn overflow_limit(mut self, limit: usize) -> Self {
        self.overflow_limit = Some(limit);
        self
    }

    /// Bounded memory: a worker stops taking from its inbox while more than
    /// `n` of its own sends wait in its overflows (all peers together), and
    /// resumes when they have drained to `n` or fewer. Default: the batch
    /// size (64 by default): once more than one batch of its own sends is
    /// waiting, taking more input only grows memory — the rings ahead of
    /// the overflow still hold a full capacity of work for the peers.
    ///
    /// Worker-to-worker sends never block, so without this a handler that
    /// fans one message out into thousands would pile them up in the
    /// overflow for as long as input keeps coming. With it, the pressure
    /// reaches the outside as a full inbox: `send_to` waits, `try_send_to`
    /// returns `Full`. Rings are always drained, so this cannot deadlock.
    ///
    /// The messages queued in a pool of `N` workers (inboxes, rings and
    /// overflows; timers not included) then stay at or below
    ///
    /// ```text
    /// N·inbox_capacity + N²·ring_capacity + N·(overflow_pause + batch_size·F)
    /// ```
    ///
    /// where `F` is the most messages one `handle` of an inbox message
    /// sends, as long as handling a message from a peer (or a `tick`, or a
    /// timer) sends nothing on that would itself need the overflow — see
    /// `docs/tuning.md` ("Bounded memory") for pipelines of several hops.
    ///
    /// Any value works: `0` pauses the inbox whenever any send waits in an
    /// overflow; `usize::MAX` never pauses (the first stage's unbounded
    /// behaviour).
    pub fn overflow_pause(mut self, n: usize) -> Self {
        self.overflow_pause = Some(n);
        self
    }

    /// The [`overflow_pause`](Self::overflow_pause) the pool will use: the
    /// configured value, or the batch size.
    pub fn get_overflow_pause(&self) -> usize {
        self.overflow_pause.unwrap_or(self.batch_size)
    }

    /// After a batch of two or more messages that emptied its inbox, a
    /// worker waits about this long before it polls the inbox again (it
    /// keeps polling its rings and reacting to shutdown meanwhile).
    /// Default: 1 µs.
    ///
    /// A worker that re-reads the inbox slot a sender is writing takes the
    /// cache line away from that sender, whose next send then stalls for a
    /// cross-core round trip — one per message when the worker keeps up.
    /// Pausing briefly lets messages from a steady stream land a cache line
    /// at a time: on the reference machine `send_to` goes from ~30 to ~80 M
    /// messages/s (docs/performance-log.md, "Inbox"). The cost is latency, up to the
    /// window, for a message that arrives right after a batch; a lone
    /// message (request/response) or one that finds the worker idle is
    /// picked up at once, and worker-to-worker messages are never delayed.
    /// `Duration::ZERO` turns it off; more than [`MAX_INBOX_COALESCE`] is
    /// refused.
    pub fn inbox_coalesce(mut self, window: Duration) -> Self {
        self.inbox_coalesce = window;
        self
    }

    /// The longest a worker busy with messages goes without checking its
    /// I/O readiness (only for a worker that registered sources through
    /// [`Context::io`](crate::Context::io)). Default: 100 µs
    /// ([`DEFAULT_IO_POLL_INTERVAL`]).
    ///
    /// A busy worker does not pay an `epoll_wait` per loop iteration: it
    /// reads the clock once per iteration and polls readiness, without
    /// blocking, once this interval has passed since its last poll, and
    /// also each time its queues run dry. The trade: while messages keep
    /// it busy, a socket that became ready waits up to this interval (plus
    /// the batch in hand) before its `on_io` runs. An idle worker is not
    /// affected: while it yields it polls after every yield, and then it
    /// sleeps in the OS poll and wakes at once. Shorter means
    /// lower I/O latency under message load and more system calls;
    /// `Duration::ZERO` polls on every iteration, `Duration::MAX` only when
    /// the queues run dry. Every value is accepted.
    pub fn io_poll_interval(mut self, interval: Duration) -> Self {
        self.io_poll_interval = interval;
        self
    }

    /// A worker that spends longer than this inside one callback
    /// (`on_start`, `handle`, `tick`, `on_io`, `on_stop`, a due timer's
    /// `handle`) is reported as stalled. Default:
    /// [`DEFAULT_STALL_THRESHOLD`](crate::DEFAULT_STALL_THRESHOLD), 100 ms;
    /// `Duration::MAX` turns detection off (no watchdog thread). Zero is
    /// refused by [`Pool::start`](crate::Pool::start).
    ///
    /// Each stall is reported once, while it lasts: a `tracing` warning
    /// naming the worker, the callback and how long it has run so far,
    /// with the stalled thread's backtrace, taken while it is stalled (on
    /// Linux, x86_64 and aarch64; function names need the `backtrace`
    /// cargo feature, else each frame is `file+offset`); then the
    /// [`on_stall`](Self::on_stall) hook, if any. Every worker's
    /// [`stalls`](crate::WorkerStats::stalls) and
    /// [`longest_stall`](crate::WorkerStats::longest_stall) count them.
    ///
    /// What it costs: a worker stores a word (relaxed) when it enters and
    /// leaves each callback phase — a few stores per loop iteration, not
    /// per message, and no clock read; one watchdog thread per pool, named
    /// `<name>-stall`, wakes four times per threshold (twice while every
    /// worker is idle; at most every 1 ms, at least every second) and reads
    /// those words, so a stall is reported within 1.75 thresholds of its
    /// start (unless the watchdog itself is kept from running). A `handle` phase is
    /// one pass over the worker's queues (up to `batch_size` messages from
    /// each), so many quick messages that together keep the worker from
    /// its loop for longer than the threshold are reported too. Only time
    /// inside a callback counts: an idle or parked worker is never
    /// stalled. A worker the OS takes the CPU from in a callback looks
    /// stalled too (for its peers it is): on a crowded machine, keep the
    /// threshold well above the scheduler's time slice. `docs/tuning.md`
    /// shows a report and how to choose the value.
    ///
    /// On Linux the backtrace is taken by signalling the stalled thread
    /// with the real-time signal `SIGRTMIN + 4`; if the program already
    /// handles that signal, reports come without a backtrace.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardpool::PoolConfig;
    ///
    /// let config = PoolConfig::default().stall_threshold(Duration::from_millis(20));
    /// let off = PoolConfig::default().stall_threshold(Duration::MAX);
    /// # let _ = (config, off);
    /// ```
    pub fn stall_threshold(mut self, threshold: Duration) -> Self {
        self.stall.threshold = threshold;
        self
    }

    /// Calls `hook` with each stall's [`StallReport`](crate::StallReport),
    /// once per stall, after its warning is logged (see
    /// [`stall_threshold`](Self::stall_threshold)). It runs on the pool's
    /// watchdog thread while the worker is still stalled: it should return
    /// quickly (hand the report to a channel, bump a metric), since the
    /// other workers are not watched meanwhile. A panic in it is caught and
    /// logged. Default: none.
    ///
    /// ```
    /// use std::sync::mpsc;
    /// use shardpool::PoolConfig;
    ///
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let config = PoolConfig::default().on_stall(move |report| {
    ///     let _ = tx.lock().unwrap().send((report.worker, report.callback, report.elapsed));
    /// });
    /// # let _ = (config, rx);
    /// ```
    pub fn on_stall(mut self, hook: impl Fn(&crate::StallReport) + Send + Sync + 'static) -> Self {
        self.stall.hook = Some(std::sync::Arc::new(hook));
        self
    }

    /// How long a thread blocked in [`call`](crate::PoolSender::call)
    /// checks for its answer before it sleeps. Default: zero — the caller
    /// sleeps at once, and the handler's [`Reply::send`](crate::Reply::send)
    /// wakes it (no polling).
    ///
    /// Waking a sleeping thread costs the OS a few microseconds, more than
    /// the whole round trip to an idle worker and back (a few hundred
    /// nanoseconds); a caller that checks while the answer is on its way
    /// does not pay it. The cost is CPU: up to this long per call whose
    /// answer is late. After the window the caller sleeps until answered.
    ///
    /// It never applies to an awaited call
    /// ([`call_async`](crate::PoolSender::call_async)): a poll that finds no
    /// answer returns at once and yields the executor's thread, so many
    /// tasks awaiting calls do not keep it busy polling each other. Every
    /// value is accepted.
    ///
    /// ```
    /// use std::time::Duration;
    /// use shardpool::PoolConfig;
    ///
    /// let config = PoolConfig::default().call_spin(Duration::from_micros(20));
    /// # let _ = config;
    /// ```
    pub fn call_spin(mut self, window: Duration) -> Self {
        self.call_spin = window;
        self
    }

    /// The configured ring capacity, rounded up to a power of two as the
    /// pool will use it (0 stays 0 and is refused at start).
    pub fn get_ring_capacity(&self) -> usize {
        round_capacity(self.ring_capacity)
    }

    /// The configured inbox capacity, rounded up to a power of two.
    pub fn get_inbox_capacity(&self) -> usize {
        round_capacity(self.inbox_capacity)
    }

    /// Checks every value that does not depend on the machine.
    ///
    /// Every duration and size is either refused here (or, for `workers`
    /// and the CPU list, by placement) or works:
    ///
    /// | field | refused | works |
    /// |---|---|---|
    /// | `workers` | 0, above `placement::MAX_WORKERS` | the rest |
    /// | `inbox_capacity`, `ring_capacity` | 0, above [`MAX_CAPACITY`] | the rest, rounded up to a power of two |
    /// | `batch_size` | 0 | the rest (a batch is at most the queue's contents) |
    /// | `tick_interval` | zero | the rest; too long for the clock = no idle ticks |
    /// | `inbox_coalesce` | above [`MAX_INBOX_COALESCE`] | zero (off) and the rest |
    /// | `idle` spins, yields | — | any `u32` (both phases end at the next tick) |
    /// | `on_panic` `within` | zero | the rest; `Duration::MAX` = never refills |
    /// | `on_panic` `max_restarts` | — | any `u32` |
    /// | `overflow_limit` | — | any `usize` (0: no overflow) |
    /// | `overflow_pause` | — | any `usize` (0: pause on any overflow; `usize::MAX`: never) |
    /// | `io_poll_interval`, `call_spin` | — | any `Duration` |
    /// | `stall_threshold` | zero | the rest; `Duration::MAX` = no detection |
    /// | `name` | a NUL byte | the rest |
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.workers == Some(0) {
            return Err(Error::invalid("workers", "must be at least 1"));
        }
        for (field, value) in [
            ("inbox_capacity", self.inbox_capacity),
            ("ring_capacity", self.ring_capacity),
        ] {
            if value == 0 {
                return Err(Error::invalid(field, "must be at least 1"));
            }
            if value > MAX_CAPACITY {
                return Err(Error::invalid(
                    field,
                    format!("{value} is more than the largest capacity, {MAX_CAPACITY}"),
                ));
            }
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be at least 1"));
        }
        if self.inbox_coalesce > MAX_INBOX_COALESCE {
            return Err(Error::invalid(
                "inbox_coalesce",
                format!(
                    "{:?} is more than {MAX_INBOX_COALESCE:?}; a longer pause only delays \
                     inbox messages (use a larger inbox_capacity for throughput)",
                    self.inbox_coalesce
                ),
            ));
        }
        if let PanicPolicy::Restart { within, .. } = self.on_panic {
            if within.is_zero() {
                return Err(Error::invalid(
                    "on_panic",
                    "the restart window `within` must be longer than zero",
                ));
            }
        }
        if self.tick_interval.is_zero() {
            return Err(Error::invalid("tick_interval", "must be longer than zero"));
        }
        self.stall.validate()?;
        if self.name.contains('\0') {
            return Err(Error::invalid(
                "name",
                "contains a NUL byte, which a thread name cannot hold",
            ));
        }
        if let Affinity::Cpus(list) = &self.affinity {
            check_cpu_list(list, self.workers)?;
        }
        Ok(())
    }
}

/// The checks of an [`Affinity::Cpus`] list that need no machine: not
/// empty, no CPU twice, and as long as `workers` if that is set. Shared by
/// [`PoolConfig`]'s validation and [`crate::placement::plan`].
pub(crate) fn check_cpu_list(list: &[usize], workers: Option<usize>) -> Result<(), Error> {
    if list.is_empty() {
        return Err(Error::invalid("affinity", "the CPU list is empty"));
    }
    if let Some(n) = workers {
        if n != list.len() {
            return Err(Error::invalid(
                "workers",
                format!(
                    "{n} workers but Affinity::Cpus lists {} CPUs; \
                     leave `workers` unset or make them equal",
                    list.len()
                ),
            ));
        }
    }
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::invalid(
            "affinity",
            format!("CPU {} is listed twice", w[0]),
        ));
    }
    Ok(())
}

/// The largest queue capacity accepted (2^30 slots).
pub const MAX_CAPACITY: usize = 1 << 30;

fn round_capacity(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.checked_next_power_of_two().unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_partitioner_hashes_and_a_custom_one_is_called() {
        struct Last;
        impl Partitioner for Last {
            fn shard(&self, _: u64, shards: usize) -> usize {
                shards - 1
            }
        }
        let custom = PoolConfig::default().partitioner(Last).partitioner;
        assert_eq!(custom.shard(0, 4), 3);
        assert_eq!(custom.shard(u64::MAX, 2), 1);
        for p in [
            PoolConfig::default().partitioner,
            SharedPartitioner::new(HashPartitioner),
        ] {
            for hash in [0, 1, 1 << 63, u64::MAX] {
                for shards in [1, 2, 5] {
                    assert_eq!(p.shard(hash, shards), HashPartitioner.shard(hash, shards));
                }
            }
        }
    }

    fn field_of(c: PoolConfig) -> &'static str {
        match c.validate() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_valid() {
        PoolConfig::default().validate().unwrap();
    }

    #[test]
    fn invalid_values_name_their_field() {
        assert_eq!(field_of(PoolConfig::default().workers(0)), "workers");
        assert_eq!(
            field_of(PoolConfig::default().queue_capacity(0)),
            "inbox_capacity"
        );
        assert_eq!(
            field_of(PoolConfig::default().ring_capacity(0)),
            "ring_capacity"
        );
        assert_eq!(field_of(PoolConfig::default().batch_size(0)), "batch_size");
        assert_eq!(
            field_of(PoolConfig::default().tick_interval(Duration::ZERO)),
            "tick_interval"
        );
        assert_eq!(
            field_of(PoolConfig::default().on_panic(PanicPolicy::Restart {
                max_restarts: 1,
                within: Duration::ZERO
            })),
            "on_panic"
        );
        assert_eq!(
            field_of(PoolConfig::default().affinity(Affinity::Cpus(vec![]))),
            "affinity"
        );
        assert_eq!(
            field_of(PoolConfig::default().affinity(Affinity::Cpus(vec![0, 0]))),
            "affinity"
        );
        assert_eq!(
            field_of(
                PoolConfig::default()
                    .affinity(Affinity::Cpus(vec![0]))
                    .workers(2)
            ),
            "workers"
        );
        assert_eq!(
            field_of(PoolConfig::default().inbox_coalesce(MAX_INBOX_COALESCE * 2)),
            "inbox_coalesce"
        );
        for ok in [Duration::ZERO, MAX_INBOX_COALESCE] {
            PoolConfig::default().inbox_coalesce(ok).validate().unwrap();
        }
        assert_eq!(field_of(PoolConfig::default().name("a\0b")), "name");
    }

    /// The extremes that work are accepted (tests/config_limits.rs runs a
    /// pool with each).
    #[test]
    fn extreme_values_that_work_are_accepted() {
        for c in [
            PoolConfig::default().tick_interval(Duration::MAX),
            PoolConfig::default().tick_interval(Duration::from_nanos(1)),
            PoolConfig::default().batch_size(usize::MAX),
            PoolConfig::default().batch_size(usize::MAX / 2 + 1),
            PoolConfig::default().queue_capacity(MAX_CAPACITY),
            PoolConfig::default().overflow_limit(usize::MAX),
            PoolConfig::default().overflow_limit(0),
            PoolConfig::default().idle(IdleStrategy::Backoff {
                spins: u32::MAX,
                yields: u32::MAX,
            }),
            PoolConfig::default().idle(IdleStrategy::Backoff {
                spins: 0,
                yields: 0,
            }),
            PoolConfig::default().on_panic(PanicPolicy::Restart {
                max_restarts: u32::MAX,
                within: Duration::MAX,
            }),
        ] {
            c.validate().unwrap();
        }
    }

    #[test]
    fn capacities_round_up_to_powers_of_two() {
        let c = PoolConfig::default().queue_capacity(3);
        assert_eq!(c.get_ring_capacity(), 4);
        assert_eq!(c.get_inbox_capacity(), 4);
        assert_eq!(
            PoolConfig::default().ring_capacity(1).get_ring_capacity(),
            1
        );
        assert_eq!(
            PoolConfig::default()
                .ring_capacity(1024)
                .get_ring_capacity(),
            1024
        );
    }
}
