//! Failure containment: a worker that fails lets go of what it holds at
//! once, on its own thread; a restart drops the old instance with its
//! timers; `Pool::start` waits for every `on_start` and reports a failed
//! first start; restarts back off and never hold `shutdown`; a blocking
//! call into one's own pool panics instead of hanging; an awaited call
//! never keeps its executor busy.
//!
//! Each test failed or hung before these behaviours existed; every wait is
//! bounded by a watchdog, so a regression fails instead of hanging.

mod common;

use std::future::Future;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Poll, Wake, Waker};
use std::time::Duration;

use common::watchdog;
use shardpool::io::{Event, Interest, TcpListener, TcpStream, Token};
use shardpool::prelude::*;
use shardpool::Reply;

/// Generous: the machine may be loaded.
const WATCHDOG: u64 = 60;

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// Waits (bounded by the test's watchdog) until `done()`.
fn wait_for(done: impl Fn() -> bool) {
    while !done() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The panic message of a `WorkerPanicked` shutdown for `worker`.
fn panicked<T>(result: Result<Vec<T>, Error>, worker: usize) -> String {
    match result.map(|v| v.len()) {
        Err(Error::WorkerPanicked { worker: w, message }) => {
            assert_eq!(w, WorkerId::from(worker), "{message}");
            message
        }
        other => panic!("expected WorkerPanicked for worker {worker}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// A failed worker's sockets.

const LISTENER: Token = Token(0);

enum NetMsg {
    /// Listen on `addr` (with SO_REUSEPORT) and report the bound address.
    Listen(SocketAddr, mpsc::Sender<SocketAddr>),
    /// Panic (under `Stop`: the worker fails).
    Panic,
}

/// Answers every line of every connection with its worker's id.
struct LineServer {
    // Declared before `conns`, so it is dropped (closed) first: once a
    // client sees its connection end, the listener is gone.
    listener: Option<TcpListener>,
    conns: Vec<Option<TcpStream>>,
}

impl Worker for LineServer {
    type Msg = NetMsg;

    fn handle(&mut self, msg: NetMsg, ctx: &mut Context<'_, NetMsg>) {
        match msg {
            NetMsg::Listen(addr, reply) => {
                let mut listener = shardpool::io::reuseport_listener(addr).unwrap();
                ctx.io()
                    .register(&mut listener, LISTENER, Interest::READABLE)
                    .unwrap();
                reply.send(listener.local_addr().unwrap()).unwrap();
                self.listener = Some(listener);
            }
            NetMsg::Panic => panic!("[expected] the line server fails"),
        }
    }

    fn on_io(&mut self, event: &Event, ctx: &mut Context<'_, NetMsg>) {
        if event.token() == LISTENER {
            while let Some(Ok((mut stream, _))) = self.listener.as_ref().map(|l| l.accept()) {
                let token = Token(1 + self.conns.len());
                ctx.io()
                    .register(&mut stream, token, Interest::READABLE)
                    .unwrap();
                self.conns.push(Some(stream));
            }
            return;
        }
        let i = event.token().0 - 1;
        let Some(stream) = self.conns[i].as_mut() else {
            return;
        };
        let mut buf = [0u8; 256];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => {
                    self.conns[i] = None;
                    return;
                }
                Ok(n) => {
                    // One answer per line; lines are tiny, the buffer has room.
                    let lines = buf[..n].iter().filter(|&&b| b == b'\n').count();
                    for _ in 0..lines {
                        let answer = format!("{}\n", ctx.id().index());
                        stream.write_all(answer.as_bytes()).unwrap();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.conns[i] = None;
                    return;
                }
            }
        }
    }
}

/// Connects to `addr`, sends one line and returns the id of the worker
/// that answered.
fn ask_who(addr: SocketAddr) -> (usize, BufReader<std::net::TcpStream>) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A connection left in a dead listener's queue would wait here for
    // good: fail instead (generous for a loaded machine).
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(b"who\n").unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .unwrap_or_else(|e| panic!("no answer from the pool: {e}"));
    let who = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("answer {line:?}"));
    (who, reader)
}

/// Under `Stop`, a worker that panics drops its state at once: its
/// `SO_REUSEPORT` listener closes, so every new connection goes to the
/// live worker, and its own connections end (the clients see EOF). Before:
/// the failed worker kept its listener and its connections until shutdown;
/// new connections that the kernel queued on its listener hung, and so did
/// its clients.
#[test]
fn a_failed_worker_closes_its_listener_and_connections_at_once() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let pool = Pool::start(unpinned(2), |_| LineServer {
            listener: None,
            conns: vec![],
        })
        .unwrap();
        let tx = pool.sender();
        let listen = |w: usize, addr: SocketAddr| {
            let (reply, bound) = mpsc::channel();
            tx.send_to(WorkerId::from(w), NetMsg::Listen(addr, reply))
                .unwrap();
            bound.recv().unwrap()
        };
        let addr = listen(0, "127.0.0.1:0".parse().unwrap());
        listen(1, addr);
        // Connections served by worker 0 (the kernel spreads them by hash).
        let mut held = Vec::new();
        while held.len() < 2 {
            let (who, conn) = ask_who(addr);
            if who == 0 {
                held.push(conn);
            }
        }
        tx.send_to(WorkerId::from(0), NetMsg::Panic).unwrap();
        // Its clients see their connections end (EOF, or a reset).
        for mut conn in held {
            let mut rest = Vec::new();
            match conn.read_to_end(&mut rest) {
                Ok(_) => assert!(rest.is_empty(), "{rest:?}"),
                Err(e) => assert!(
                    !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                    "still open: {e}"
                ),
            }
        }
        // Its listener is closed: the live worker takes every connection.
        for _ in 0..40 {
            assert_eq!(ask_who(addr).0, 1, "served by the live worker");
        }
        assert!(pool.stats().workers[0].failed);
        let message = panicked(pool.shutdown(), 0);
        assert!(message.contains("the line server fails"), "{message}");
    });
}

// ---------------------------------------------------------------------------
// A failed worker's replies, and a Drop that panics.

enum HoldMsg {
    /// Keep this reply (answer later).
    Hold(Reply<u32>),
    Panic,
    Work,
}

struct Holder {
    held: Vec<Reply<u32>>,
    drops: Arc<AtomicU64>,
    /// Panic in `Drop`.
    bad_drop: bool,
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
        if self.bad_drop {
            panic!("[expected] the worker's Drop panicked");
        }
    }
}

impl Worker for Holder {
    type Msg = HoldMsg;
    fn handle(&mut self, msg: HoldMsg, _: &mut Context<'_, HoldMsg>) {
        match msg {
            HoldMsg::Hold(reply) => self.held.push(reply),
            HoldMsg::Panic => panic!("[expected] the holder fails"),
            HoldMsg::Work => {}
        }
    }
}

/// A `Reply` kept in a failed worker's state ends its call with `NoReply`
/// when the worker fails, not at shutdown. Before: the caller waited until
/// the pool was shut down (here: for good, the watchdog fired).
#[test]
fn a_reply_held_by_a_failed_worker_resolves_no_reply_before_shutdown() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let drops = Arc::new(AtomicU64::new(0));
        let d = drops.clone();
        let pool = Pool::start(unpinned(2), move |_| Holder {
            held: vec![],
            drops: d.clone(),
            bad_drop: false,
        })
        .unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        let (reply, answer) = Reply::channel();
        tx.send_to(w0, HoldMsg::Hold(reply)).unwrap();
        // A caller blocked in `call` on a held reply gets its answer too.
        let caller = {
            let tx = tx.clone();
            std::thread::spawn(move || tx.call(w0, HoldMsg::Hold))
        };
        wait_for(|| pool.stats().workers[0].handled >= 2);
        tx.send_to(w0, HoldMsg::Panic).unwrap();
        assert!(answer.recv().unwrap_err().is_no_reply());
        assert!(caller.join().unwrap().unwrap_err().is_no_reply());
        assert_eq!(drops.load(SeqCst), 1, "the failed instance is gone");
        let message = panicked(pool.shutdown(), 0);
        assert!(message.contains("the holder fails"), "{message}");
        assert_eq!(drops.load(SeqCst), 2, "the healthy one at shutdown");
    });
}

/// The failed instance's `Drop` runs at the failure; when it panics, the
/// thread survives and goes on draining (and counting) what was queued
/// behind the panic, and shutdown reports the first panic. Before: the
/// instance was dropped at shutdown (the wait for its drop never ended:
/// the watchdog fired).
#[test]
fn a_failed_worker_whose_drop_panics_keeps_draining() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let drops = Arc::new(AtomicU64::new(0));
        let d = drops.clone();
        let pool = Pool::start(unpinned(1), move |_| Holder {
            held: vec![],
            drops: d.clone(),
            bad_drop: true,
        })
        .unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        // One claim: all four are queued before the worker fails.
        let mut batch = vec![HoldMsg::Panic, HoldMsg::Work, HoldMsg::Work];
        batch.push(HoldMsg::Work);
        assert_eq!(tx.try_send_batch(w0, &mut batch), Ok(4));
        wait_for(|| drops.load(SeqCst) == 1);
        // After the panicking Drop, the same thread drains the rest.
        wait_for(|| pool.stats().workers[0].dropped == 3);
        assert!(tx.send_to(w0, HoldMsg::Work).unwrap_err().is_closed());
        let message = panicked(pool.shutdown(), 0);
        assert!(message.contains("the holder fails"), "{message}");
        assert_eq!(drops.load(SeqCst), 1, "dropped once, at the failure");
    });
}

// ---------------------------------------------------------------------------
// Starting.

/// Binds a listener in `on_start` (after a pause, as a real bind may
/// take), or panics there.
struct Starter {
    bound: Arc<Mutex<Option<SocketAddr>>>,
    listener: Option<TcpListener>,
    fail: bool,
    drops: Arc<AtomicU64>,
}

impl Drop for Starter {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

impl Worker for Starter {
    type Msg = ();
    fn on_start(&mut self, ctx: &mut Context<'_, ()>) {
        // Long enough that a `start` which does not wait returns first.
        std::thread::sleep(Duration::from_millis(200));
        if self.fail {
            panic!("[expected] on_start of worker {} failed", ctx.id());
        }
        let mut listener = shardpool::io::reuseport_listener("127.0.0.1:0".parse().unwrap())
            .expect("bind a listener");
        ctx.io()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .unwrap();
        *self.bound.lock().unwrap() = Some(listener.local_addr().unwrap());
        self.listener = Some(listener);
    }
    fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {}
    fn on_io(&mut self, _: &Event, _: &mut Context<'_, ()>) {
        // Greet every new connection.
        while let Some(Ok((mut stream, _))) = self.listener.as_ref().map(|l| l.accept()) {
            stream.write_all(b"ready\n").unwrap();
        }
    }
}

/// `Pool::start` returns once `on_start` has returned: the listener it
/// bound takes connections right away. Before: `start` returned before
/// `on_start` ran, and the address was not bound yet.
#[test]
fn a_listener_bound_in_on_start_is_ready_when_start_returns() {
    watchdog(WATCHDOG, || {
        let bound = Arc::new(Mutex::new(None));
        let b = bound.clone();
        let pool = Pool::start(unpinned(1), move |_| Starter {
            bound: b.clone(),
            listener: None,
            fail: false,
            drops: Arc::default(),
        })
        .unwrap();
        let addr = bound
            .lock()
            .unwrap()
            .expect("on_start has run when start returns");
        let stream = std::net::TcpStream::connect(addr).expect("the listener is up");
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        pool.shutdown().unwrap();
    });
}

/// An `on_start` that panics under `Stop` makes `start` fail with the
/// worker's id and message, after stopping the others. Before: `start`
/// returned `Ok` and the failure surfaced at shutdown.
#[test]
fn an_on_start_panic_fails_pool_start_naming_the_worker() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let drops = Arc::new(AtomicU64::new(0));
        let d = drops.clone();
        let result = Pool::start(unpinned(3), move |id| Starter {
            bound: Arc::default(),
            listener: None,
            fail: id.index() == 1,
            drops: d.clone(),
        });
        match result {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, WorkerId::from(1));
                assert!(message.contains("on_start of worker 1 failed"), "{message}");
            }
            Err(e) => panic!("expected WorkerPanicked, got {e}"),
            Ok(pool) => {
                drop(pool);
                panic!("expected WorkerPanicked, the pool started");
            }
        }
        assert_eq!(drops.load(SeqCst), 3, "every worker stopped and dropped");
    });
}

/// Under `Restart`, a first start whose restarts run out fails `start`
/// too; the restarts back off meanwhile. Before: `start` returned `Ok`.
#[test]
fn a_first_start_whose_restarts_run_out_fails_pool_start() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let builds = Arc::new(AtomicU64::new(0));
        let b = builds.clone();
        let config = unpinned(2).on_panic(PanicPolicy::Restart {
            max_restarts: 3,
            within: Duration::from_secs(3600),
        });
        let result = Pool::start(config, move |id| {
            if id.index() == 0 {
                b.fetch_add(1, SeqCst);
            }
            Starter {
                bound: Arc::default(),
                listener: None,
                fail: id.index() == 0,
                drops: Arc::default(),
            }
        });
        match result {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, WorkerId::from(0));
                assert!(message.contains("on_start of worker 0 failed"), "{message}");
                assert!(message.contains("budget of 3"), "{message}");
            }
            Err(e) => panic!("expected WorkerPanicked, got {e}"),
            Ok(pool) => {
                drop(pool);
                panic!("expected WorkerPanicked, the pool started");
            }
        }
        assert_eq!(builds.load(SeqCst), 4, "the first build and three restarts");
    });
}

// ---------------------------------------------------------------------------
// Restart loops.

/// Its first instance starts; a message makes it panic, and every later
/// instance's `on_start` panics: a worker that can never come back.
struct NeverBack {
    generation: u64,
}

impl Worker for NeverBack {
    type Msg = ();
    fn on_start(&mut self, _: &mut Context<'_, ()>) {
        if self.generation > 0 {
            panic!("[expected] on_start of a restarted instance");
        }
    }
    fn handle(&mut self, _: (), _: &mut Context<'_, ()>) {
        panic!("[expected] the first instance fails");
    }
}

/// Starts a [`NeverBack`] pool with a budget that never runs out and sets
/// its worker 0 restarting; returns once it has restarted twice, with the
/// restarts counted about a second later.
fn restarting_forever() -> (Pool<NeverBack>, u64) {
    let builds = Arc::new(AtomicU64::new(0));
    let config = unpinned(2).on_panic(PanicPolicy::Restart {
        max_restarts: u32::MAX,
        within: Duration::from_secs(3600),
    });
    let pool = Pool::start(config, move |id| NeverBack {
        generation: if id.index() == 0 {
            builds.fetch_add(1, SeqCst)
        } else {
            0
        },
    })
    .unwrap();
    pool.sender().send_to(WorkerId::from(0), ()).unwrap();
    wait_for(|| pool.stats().workers[0].restarts >= 2);
    std::thread::sleep(Duration::from_secs(1));
    let restarts = pool.stats().workers[0].restarts;
    (pool, restarts)
}

/// A worker that can never come back, with a budget of `u32::MAX`
/// restarts: the restarts back off (a handful in a second and a half,
/// where a tight loop makes hundreds of thousands), and `shutdown` returns
/// promptly. Before: the restarts ran in a tight loop that did not look at
/// the pool, and `shutdown` waited for the budget to run out (the
/// watchdog fired).
#[test]
fn restarts_back_off_and_never_hold_shutdown() {
    common::quiet_panics_containing("[expected]");
    let (pool, restarts) = watchdog(WATCHDOG, restarting_forever);
    // 0, 10, 20, 40, 80, 160, 320, 640 ms: about 8 within 1.3 s and more.
    let pool = assert_backed_off(pool, restarts);
    let message = watchdog(10, move || panicked(pool.shutdown(), 0));
    assert!(
        message.contains("on_start of a restarted instance"),
        "{message}"
    );
    assert!(message.contains("the pool is stopping"), "{message}");
}

/// The same, dropping the pool instead of shutting it down.
#[test]
fn restarts_never_hold_the_pools_drop() {
    common::quiet_panics_containing("[expected]");
    let (pool, restarts) = watchdog(WATCHDOG, restarting_forever);
    let pool = assert_backed_off(pool, restarts);
    watchdog(10, move || drop(pool));
}

/// Fails unless `restarts` (counted over about 1.5 s) is far below what a
/// tight loop makes. On failure the pool is leaked: dropping it while the
/// loop runs could hang the test instead of failing it.
fn assert_backed_off(pool: Pool<NeverBack>, restarts: u64) -> Pool<NeverBack> {
    if restarts >= 30 {
        std::mem::forget(pool);
        panic!("{restarts} restarts in about 1.5 s: not backed off");
    }
    pool
}

enum TimerMsg {
    /// Set three timers that fire at once, then panic (restart).
    ArmAndPanic,
    Fire,
    /// How many `Fire`s this instance received.
    Fired(Reply<u64>),
}

struct Timed {
    fired: u64,
}

impl Worker for Timed {
    type Msg = TimerMsg;
    fn handle(&mut self, msg: TimerMsg, ctx: &mut Context<'_, TimerMsg>) {
        match msg {
            TimerMsg::ArmAndPanic => {
                for _ in 0..3 {
                    ctx.send_after(Duration::ZERO, TimerMsg::Fire).unwrap();
                }
                panic!("[expected] the armed instance fails");
            }
            TimerMsg::Fire => self.fired += 1,
            TimerMsg::Fired(reply) => reply.send(self.fired),
        }
    }
}

/// The timers of a restarted instance are dropped with it, counted in
/// `timers_dropped`; their messages never reach the new instance. Before:
/// they survived the restart and fired into the new instance.
#[test]
fn a_restart_drops_the_old_instances_timers() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 5,
            within: Duration::from_secs(60),
        });
        let pool = Pool::start(config, |_| Timed { fired: 0 }).unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        tx.send_to(w0, TimerMsg::ArmAndPanic).unwrap();
        wait_for(|| pool.stats().workers[0].timers_dropped == 3);
        // Zero-delay timers are due at the next loop iteration: give a few
        // iterations the chance to deliver them, had they survived.
        for _ in 0..3 {
            assert_eq!(tx.call(w0, TimerMsg::Fired).unwrap(), 0);
            std::thread::sleep(Duration::from_millis(20));
        }
        let stats = pool.stats();
        assert_eq!(stats.workers[0].restarts, 1);
        assert_eq!(stats.workers[0].timers_dropped, 3);
        assert!(!stats.workers[0].failed);
        pool.shutdown().unwrap();
    });
}

/// Holds a listener bound without `SO_REUSEPORT` to one address: only one
/// instance at a time can exist.
struct Exclusive {
    _listener: std::net::TcpListener,
}

impl Worker for Exclusive {
    type Msg = Reply<()>;
    fn handle(&mut self, _: Reply<()>, _: &mut Context<'_, Reply<()>>) {
        panic!("[expected] restart me");
    }
}

/// The old instance is dropped at the restart, before its successor is
/// built: a successor that binds the same address (no `SO_REUSEPORT`)
/// succeeds. Before: the factory ran while the old instance still held
/// the address, failed with `AddrInUse`, and the worker stopped.
#[test]
fn a_restart_drops_the_old_instance_before_building_the_new_one() {
    watchdog(WATCHDOG, || {
        common::quiet_panics_containing("[expected]");
        let addr: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let a = addr.clone();
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 5,
            within: Duration::from_secs(60),
        });
        let pool = Pool::start(config, move |_| {
            let mut addr = a.lock().unwrap();
            let listener = std::net::TcpListener::bind(addr.unwrap_or(([127, 0, 0, 1], 0).into()))
                .unwrap_or_else(|e| panic!("[expected] bind: {e}"));
            *addr = Some(listener.local_addr().unwrap());
            Exclusive {
                _listener: listener,
            }
        })
        .unwrap();
        let tx = pool.sender();
        assert!(tx.call(WorkerId::from(0), |r| r).unwrap_err().is_no_reply());
        wait_for(|| pool.stats().workers[0].restarts == 1);
        assert!(!pool.stats().workers[0].failed, "the successor was built");
        pool.shutdown().unwrap();
    });
}

// ---------------------------------------------------------------------------
// Calls from inside the pool, and call_spin.

enum CallMsg {
    /// Call the target with a blocking call (keyed or by id) from inside
    /// the handler.
    CallFromInside {
        tx: PoolSender<CallMsg>,
        to_self: bool,
    },
    Echo(Reply<usize>),
}

struct Caller;

impl Worker for Caller {
    type Msg = CallMsg;
    fn handle(&mut self, msg: CallMsg, ctx: &mut Context<'_, CallMsg>) {
        match msg {
            CallMsg::CallFromInside { tx, to_self } => {
                let _ = if to_self {
                    tx.call(ctx.id(), CallMsg::Echo)
                } else {
                    // The other worker of a two-worker pool.
                    let key = (0u64..).find(|k| tx.worker_for(k) != ctx.id()).unwrap();
                    tx.call_keyed(&key, CallMsg::Echo)
                };
            }
            CallMsg::Echo(reply) => reply.send(ctx.id().index()),
        }
    }
}

/// A blocking `call` (or `call_keyed`) made inside a handler to its own
/// pool panics at once, naming `Context::ask`; the panic is the handler's.
/// Before: a call to the worker itself waited for good (the watchdog
/// fired), and one to a peer blocked the worker until answered.
#[test]
fn a_blocking_call_into_its_own_pool_panics_naming_ask() {
    for to_self in [true, false] {
        watchdog(WATCHDOG, move || {
            common::quiet_panics_containing("[expected]");
            let pool = Pool::start(unpinned(2), |_| Caller).unwrap();
            let tx = pool.sender();
            let w0 = WorkerId::from(0);
            tx.send_to(
                w0,
                CallMsg::CallFromInside {
                    tx: tx.clone(),
                    to_self,
                },
            )
            .unwrap();
            wait_for(|| pool.stats().workers[0].failed);
            // From outside the pool, calls still work.
            assert_eq!(tx.call(WorkerId::from(1), CallMsg::Echo).unwrap(), 1);
            let message = panicked(pool.shutdown(), 0);
            assert!(message.contains("Context::ask"), "{message}");
            assert!(message.contains("call"), "{message}");
        });
    }
}

/// Counts its wakes.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// Answers once `hold` is cleared.
struct Held {
    hold: Arc<AtomicBool>,
}

impl Worker for Held {
    type Msg = Reply<u32>;
    fn handle(&mut self, reply: Reply<u32>, _: &mut Context<'_, Reply<u32>>) {
        while self.hold.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        reply.send(7);
    }
}

/// With `call_spin` set, an awaited call whose answer is not there
/// returns `Pending` and does not wake itself: the executor's thread is
/// free to run other tasks or sleep, and the answer's arrival is what
/// wakes the task. Here a hand-driven poll with a counting waker stands
/// for the executor. Before: each poll within the spin window woke its own
/// task, so an executor with nothing else to do spun on it, and one with
/// 1,000 such tasks polled them round and round.
#[test]
fn an_awaited_call_with_call_spin_yields_instead_of_spinning() {
    watchdog(WATCHDOG, || {
        let hold = Arc::new(AtomicBool::new(true));
        let h = hold.clone();
        let config = unpinned(1).call_spin(Duration::from_secs(3600));
        let pool = Pool::start(config, move |_| Held { hold: h.clone() }).unwrap();
        let tx = pool.sender();
        let wakes = Arc::new(CountingWaker::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut call = std::pin::pin!(tx.call_async(WorkerId::from(0), |reply| reply));
        for _ in 0..3 {
            assert!(call.as_mut().poll(&mut cx).is_pending());
            assert_eq!(wakes.0.load(SeqCst), 0, "the call woke its own task");
        }
        hold.store(false, SeqCst);
        wait_for(|| wakes.0.load(SeqCst) > 0);
        match call.as_mut().poll(&mut cx) {
            Poll::Ready(Ok(v)) => assert_eq!(v, 7),
            other => panic!("expected the answer, got {:?}", other.map(|r| r.is_ok())),
        }
        pool.shutdown().unwrap();
    });
}
