//! `send_to_async`, `send_keyed_async`, `call_async` and `call_keyed_async`
//! driven by a minimal executor built on `std` alone (a thread that parks
//! until its waker unparks it): the futures need no runtime. The same
//! futures on tokio, `futures::executor` and smol are tested in the
//! `services` member (`services/tests/async_sender.rs`).

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::task::{Context as TaskContext, Poll, Wake, Waker};

use common::watchdog;
use shardpool::prelude::*;

/// Drives `f` to completion on this thread, parking between polls.
fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Polls `f` once with a waker that counts its wake-ups.
fn poll_once<F: Future + Unpin>(f: &mut F, wakes: &Arc<Wakes>) -> Poll<F::Output> {
    let waker = Waker::from(wakes.clone());
    std::pin::Pin::new(f).poll(&mut TaskContext::from_waker(&waker))
}

#[derive(Default)]
struct Wakes(AtomicUsize);
impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// Records what it handles, per sender tag, to check order and counts.
#[derive(Default)]
struct Log {
    seen: Vec<u64>,
}

enum Msg {
    Item(u64),
    /// Holds the handler until released.
    Gate(mpsc::Receiver<()>),
    /// A message whose drop is observable.
    Tracked(#[allow(dead_code)] Arc<()>),
    Sum(Reply<u64>),
    Forget(#[allow(dead_code)] Reply<u64>),
}

impl Worker for Log {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, _ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Item(v) => self.seen.push(v),
            Msg::Gate(go) => {
                let _ = go.recv();
            }
            Msg::Tracked(_) => self.seen.push(u64::MAX),
            Msg::Sum(reply) => reply.send(self.seen.iter().sum()),
            Msg::Forget(_) => {}
        }
    }
}

#[test]
fn async_senders_through_a_tiny_inbox_deliver_everything_in_order() {
    const SENDERS: u64 = 4;
    const N: u64 = 5_000;
    let workers = watchdog(240, || {
        let pool = Pool::start(unpinned(2).queue_capacity(2), |_| Log::default()).unwrap();
        let threads: Vec<_> = (0..SENDERS)
            .map(|s| {
                let tx = pool.sender();
                std::thread::spawn(move || {
                    block_on(async {
                        for i in 0..N {
                            let w = WorkerId::from((i % 2) as usize);
                            tx.send_to_async(w, Msg::Item(s << 32 | i)).await.unwrap();
                        }
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stats = pool.stats();
        let inbox_sent: u64 = stats
            .channels
            .iter()
            .filter(|c| c.from == Endpoint::External)
            .map(|c| c.sent)
            .sum();
        assert_eq!(inbox_sent, SENDERS * N);
        pool.shutdown().unwrap()
    });
    let mut per_sender = vec![Vec::new(); SENDERS as usize];
    for w in &workers {
        for v in &w.seen {
            per_sender[(v >> 32) as usize].push(v & 0xffff_ffff);
        }
    }
    for (s, got) in per_sender.iter().enumerate() {
        // Items i go to worker i % 2: each worker sees one sender's items
        // in order, and between them, all of them exactly once.
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..N).collect::<Vec<_>>(), "sender {s}");
    }
    for w in &workers {
        for s in 0..SENDERS {
            let mine: Vec<u64> = w
                .seen
                .iter()
                .filter(|v| *v >> 32 == s)
                .map(|v| v & 0xffff_ffff)
                .collect();
            assert!(mine.windows(2).all(|p| p[0] < p[1]), "FIFO per pair");
        }
    }
}

#[test]
fn a_pending_send_is_woken_by_the_worker_and_counted_full_once() {
    watchdog(120, || {
        let pool = Pool::start(unpinned(1).queue_capacity(2), |_| Log::default()).unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, Msg::Gate(gate)).unwrap();
        // Fill the single slot while the worker is held in the gate.
        while tx.try_send_to(w0, Msg::Item(1)).is_err() {
            std::thread::yield_now();
        }
        let full_before = pool.stats().channels[0].full;
        let wakes = Arc::new(Wakes::default());
        let mut send = Box::pin(tx.send_to_async(w0, Msg::Item(2)));
        assert!(poll_once(&mut send, &wakes).is_pending());
        assert_eq!(wakes.0.load(SeqCst), 0);
        go.send(()).unwrap();
        // The worker takes the gate's successor and wakes us; no timer.
        while wakes.0.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        loop {
            match poll_once(&mut send, &wakes) {
                Poll::Ready(r) => break r.unwrap(),
                Poll::Pending => {
                    let seen = wakes.0.load(SeqCst);
                    while wakes.0.load(SeqCst) == seen {
                        std::thread::yield_now();
                    }
                }
            }
        }
        assert_eq!(pool.stats().channels[0].full, full_before + 1);
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].seen, [1, 2]);
    });
}

#[test]
fn dropping_a_pending_send_drops_its_message_unsent() {
    watchdog(120, || {
        let pool = Pool::start(unpinned(1).queue_capacity(2), |_| Log::default()).unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, Msg::Gate(gate)).unwrap();
        while tx.try_send_to(w0, Msg::Item(1)).is_err() {
            std::thread::yield_now();
        }
        let token = Arc::new(());
        let wakes = Arc::new(Wakes::default());
        let mut send = Box::pin(tx.send_to_async(w0, Msg::Tracked(token.clone())));
        assert!(poll_once(&mut send, &wakes).is_pending());
        assert_eq!(Arc::strong_count(&token), 2, "the future holds the message");
        drop(send);
        assert_eq!(Arc::strong_count(&token), 1, "dropped with the future");
        // An unpolled future sends nothing either.
        drop(tx.send_to_async(w0, Msg::Tracked(token.clone())));
        assert_eq!(Arc::strong_count(&token), 1);
        go.send(()).unwrap();
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].seen, [1], "the dropped message never arrived");
    });
}

#[test]
fn a_second_waiter_gets_the_slot_when_the_first_gives_up() {
    watchdog(120, || {
        let pool = Pool::start(unpinned(1).queue_capacity(2), |_| Log::default()).unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, Msg::Gate(gate)).unwrap();
        while tx.try_send_to(w0, Msg::Item(1)).is_err() {
            std::thread::yield_now();
        }
        let (first_wakes, second_wakes) = (Arc::new(Wakes::default()), Arc::new(Wakes::default()));
        let mut first = Box::pin(tx.send_to_async(w0, Msg::Item(2)));
        let mut second = Box::pin(tx.send_to_async(w0, Msg::Item(3)));
        assert!(poll_once(&mut first, &first_wakes).is_pending());
        assert!(poll_once(&mut second, &second_wakes).is_pending());
        go.send(()).unwrap();
        while first_wakes.0.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        drop(first); // woken, but gives up without sending
        let sent = block_on(second);
        sent.unwrap();
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].seen, [1, 3]);
    });
}

#[test]
fn async_sends_after_shutdown_are_closed_with_the_message() {
    watchdog(120, || {
        let pool = Pool::start(unpinned(2), |_| Log::default()).unwrap();
        let tx = pool.sender();
        pool.shutdown().unwrap();
        let err = block_on(tx.send_to_async(WorkerId::from(1), Msg::Item(7))).unwrap_err();
        assert!(matches!(err, SendError::Closed(Msg::Item(7))));
        let err = block_on(tx.send_keyed_async(&"k", Msg::Item(8))).unwrap_err();
        assert!(matches!(err, SendError::Closed(Msg::Item(8))));
        let err = block_on(tx.call_async(WorkerId::from(0), Msg::Sum)).unwrap_err();
        assert!(err.is_closed());
        assert!(matches!(err.into_inner(), Some(Msg::Sum(_))));
        let err = block_on(tx.call_keyed_async(&"k", Msg::Sum)).unwrap_err();
        assert!(err.is_closed());
    });
}

#[test]
fn a_pending_send_is_released_by_shutdown() {
    watchdog(120, || {
        let pool = Pool::start(unpinned(1).queue_capacity(2), |_| Log::default()).unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, Msg::Gate(gate)).unwrap();
        while tx.try_send_to(w0, Msg::Item(1)).is_err() {
            std::thread::yield_now();
        }
        let waiting = std::thread::spawn(move || block_on(tx.send_to_async(w0, Msg::Item(2))));
        // Shut down while the send waits (the worker is still held, so the
        // inbox stays full until the close); release the gate once closing.
        let closer = std::thread::spawn(move || pool.shutdown());
        std::thread::sleep(std::time::Duration::from_millis(50));
        go.send(()).unwrap();
        let workers = closer.join().unwrap().unwrap();
        match waiting.join().unwrap() {
            // Closed before the worker freed the slot: handed back.
            Err(SendError::Closed(Msg::Item(2))) => assert_eq!(workers[0].seen, [1]),
            // Got in before the close: delivered, never lost.
            Ok(()) => assert_eq!(workers[0].seen, [1, 2]),
            Err(e) => panic!("unexpected {e:?}"),
        }
    });
}

#[test]
fn async_send_to_a_missing_worker_hands_the_message_back() {
    let pool = Pool::start(unpinned(1), |_| Log::default()).unwrap();
    let err = block_on(pool.sender().send_to_async(WorkerId::from(3), Msg::Item(1))).unwrap_err();
    assert!(matches!(err, SendError::NoSuchWorker(Msg::Item(1))));
    pool.shutdown().unwrap();
}

#[test]
fn call_async_gets_the_answer_or_no_reply() {
    watchdog(120, || {
        let pool = Pool::start(unpinned(2), |_| Log::default()).unwrap();
        let tx = pool.sender();
        let total = block_on(async {
            for i in 1..=10 {
                tx.send_keyed_async(&"same key", Msg::Item(i))
                    .await
                    .unwrap();
            }
            tx.call_keyed_async(&"same key", Msg::Sum).await
        });
        assert_eq!(total.unwrap(), 55);
        let err = block_on(tx.call_async(WorkerId::from(0), Msg::Forget)).unwrap_err();
        assert!(err.is_no_reply());
        pool.shutdown().unwrap();
    });
}

#[test]
fn the_futures_are_send_and_static() {
    fn spawnable<F: Future + Send + 'static>(_: &F) {}
    let pool = Pool::start(unpinned(1), |_| Log::default()).unwrap();
    let tx = pool.sender();
    let key = String::from("a key that dies before the future");
    let send = tx.send_keyed_async(key.as_str(), Msg::Item(1));
    let call = tx.call_keyed_async(&key, Msg::Sum);
    drop(key);
    spawnable(&send);
    spawnable(&call);
    block_on(send).unwrap();
    assert_eq!(block_on(call).unwrap(), 1);
    pool.shutdown().unwrap();
}

/// `call_spin` is for the blocking `call` only: an awaited call whose
/// answer is late returns `Pending` without waking itself (the executor's
/// thread is free), and the answer wakes it.
#[test]
fn with_call_spin_an_awaited_call_still_waits_to_be_woken() {
    watchdog(120, || {
        let window = std::time::Duration::from_secs(2);
        let pool = Pool::start(unpinned(1).call_spin(window), |_| Log::default()).unwrap();
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, Msg::Gate(gate)).unwrap();
        tx.send_to(w0, Msg::Item(55)).unwrap();
        let wakes = Arc::new(Wakes::default());
        let mut call = Box::pin(tx.call_async(w0, Msg::Sum));
        // Inside the window, the answer held up by the gate: no self-wake.
        for _ in 0..3 {
            assert!(poll_once(&mut call, &wakes).is_pending());
            assert_eq!(wakes.0.load(SeqCst), 0, "the task woke itself");
        }
        go.send(()).unwrap();
        while wakes.0.load(SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        match poll_once(&mut call, &wakes) {
            Poll::Ready(answer) => assert_eq!(answer.unwrap(), 55),
            Poll::Pending => panic!("woken, but no answer"),
        }
        // A reply dropped unanswered ends the call at once.
        let err = block_on(tx.call_async(w0, Msg::Forget)).unwrap_err();
        assert!(err.is_no_reply());
        // The blocking call still spins within the window, and is answered.
        tx.send_to(w0, Msg::Item(1)).unwrap();
        assert_eq!(tx.call(w0, Msg::Sum).unwrap(), 56);
        pool.shutdown().unwrap();
    });
}
