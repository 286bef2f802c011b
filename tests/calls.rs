//! Request/response from outside the pool: `call`, `call_keyed`, `Reply`,
//! `CallError`, `broadcast_with` and `PoolSender::stats` (issue 14).
//! A call must end — with the answer, or with an error that hands the
//! message back, or with `NoReply` — and never hang.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;

use common::watchdog;
use shardpool::prelude::*;
use shardpool::Answer;

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// A key-value shard.
#[derive(Default)]
struct Kv {
    map: HashMap<String, u64>,
}

enum KvMsg {
    Put(String, u64),
    Get(String, Reply<Option<u64>>),
    /// Which worker am I talking to?
    Whoami(Reply<WorkerId>),
    /// Answers nothing: drops the reply.
    Forget(Reply<u64>),
    Panic(Reply<u64>),
    /// Blocks the handler until told to go on, then drops `reply`.
    Gate(mpsc::Receiver<()>),
}

struct Shard {
    id: WorkerId,
    kv: Kv,
}

impl Worker for Shard {
    type Msg = KvMsg;
    fn handle(&mut self, msg: KvMsg, _ctx: &mut Context<'_, KvMsg>) {
        match msg {
            KvMsg::Put(k, v) => {
                self.kv.map.insert(k, v);
            }
            KvMsg::Get(k, reply) => reply.send(self.kv.map.get(&k).copied()),
            KvMsg::Whoami(reply) => reply.send(self.id),
            KvMsg::Forget(reply) => drop(reply),
            KvMsg::Panic(_reply) => panic!("handler panicked holding a reply"),
            KvMsg::Gate(go) => {
                let _ = go.recv();
            }
        }
    }
}

fn start(workers: usize, config: PoolConfig) -> Pool<Shard> {
    Pool::start(config.workers(workers), |id| Shard {
        id,
        kv: Kv::default(),
    })
    .unwrap()
}

#[test]
fn call_and_call_keyed_get_their_answers() {
    watchdog(120, || {
        let pool = start(3, unpinned(3));
        let tx = pool.sender();
        for i in 0..300u64 {
            let key = format!("k{i}");
            tx.send_keyed(&key, KvMsg::Put(key.clone(), i)).unwrap();
        }
        for i in 0..300u64 {
            let key = format!("k{i}");
            let got = tx.call_keyed(&key, |r| KvMsg::Get(key.clone(), r)).unwrap();
            assert_eq!(got, Some(i), "the owner of {key} answers");
            let owner = tx.call_keyed(&key, KvMsg::Whoami).unwrap();
            assert_eq!(owner, tx.worker_for(&key));
        }
        for w in 0..3 {
            let id = WorkerId::from(w);
            assert_eq!(tx.call(id, KvMsg::Whoami).unwrap(), id);
        }
        pool.shutdown().unwrap();
    });
}

#[test]
fn many_threads_calling_through_a_tiny_inbox_each_get_their_own_answer() {
    watchdog(120, || {
        let pool = start(2, unpinned(2).queue_capacity(2));
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let tx = pool.sender();
                std::thread::spawn(move || {
                    for i in 0..500u64 {
                        let key = format!("t{t}-{i}");
                        tx.send_keyed(&key, KvMsg::Put(key.clone(), t * 1000 + i))
                            .unwrap();
                        let got = tx.call_keyed(&key, |r| KvMsg::Get(key.clone(), r));
                        assert_eq!(got.unwrap(), Some(t * 1000 + i));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        pool.shutdown().unwrap();
    });
}

#[test]
fn a_reply_dropped_unanswered_ends_the_call_with_no_reply() {
    watchdog(120, || {
        let pool = start(1, unpinned(1));
        let tx = pool.sender();
        let err = tx.call(WorkerId::from(0), KvMsg::Forget).unwrap_err();
        assert!(err.is_no_reply(), "{err:?}");
        assert_eq!(format!("{err:?}"), "NoReply");
        // The worker is fine and answers the next call.
        assert_eq!(
            tx.call(WorkerId::from(0), KvMsg::Whoami).unwrap(),
            WorkerId::from(0)
        );
        pool.shutdown().unwrap();
    });
}

#[test]
fn with_call_spin_calls_get_their_answers_early_late_or_no_reply() {
    watchdog(120, || {
        // A window far longer than the watchdog: a spin that missed the
        // dropped reply would hang here.
        let spin = std::time::Duration::from_secs(3600);
        let pool = start(1, unpinned(1).call_spin(spin));
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        tx.send_to(w0, KvMsg::Put("k".into(), 7)).unwrap();
        assert_eq!(tx.call(w0, |r| KvMsg::Get("k".into(), r)).unwrap(), Some(7));
        let err = tx.call(w0, KvMsg::Forget).unwrap_err();
        assert!(err.is_no_reply(), "{err:?}");
        pool.shutdown().unwrap();

        // An answer that comes after the window: the caller sleeps and is
        // woken by it.
        let pool = start(
            1,
            unpinned(1).call_spin(std::time::Duration::from_millis(1)),
        );
        let tx = pool.sender();
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, KvMsg::Gate(gate)).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            go.send(()).unwrap();
        });
        assert_eq!(tx.call(w0, KvMsg::Whoami).unwrap(), w0);
        release.join().unwrap();
        pool.shutdown().unwrap();
    });
}

#[test]
fn a_panicking_handler_ends_the_call_and_later_calls_get_their_message_back() {
    watchdog(120, || {
        let pool = start(2, unpinned(2));
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        assert!(tx.call(w0, KvMsg::Panic).unwrap_err().is_no_reply());
        // Worker 0 failed (PanicPolicy::Stop): its calls are refused with
        // the message, worker 1 keeps answering.
        match tx.call(w0, |r| KvMsg::Get("k".into(), r)) {
            Err(CallError::Send(SendError::Closed(KvMsg::Get(k, _)))) => assert_eq!(k, "k"),
            Err(CallError::NoReply) => {
                // Sent just before the failure became visible, then dropped
                // by the failed worker's drain: also an ending, not a hang.
            }
            other => panic!("expected Closed or NoReply, got {other:?}"),
        }
        let w1 = WorkerId::from(1);
        assert_eq!(tx.call(w1, KvMsg::Whoami).unwrap(), w1);
        match pool.shutdown() {
            Err(Error::WorkerPanicked { worker, message }) => {
                assert_eq!(worker, w0);
                assert!(message.contains("holding a reply"));
            }
            other => panic!("expected WorkerPanicked, got {:?}", other.map(|v| v.len())),
        }
    });
}

#[test]
fn calls_queued_behind_a_panic_end_with_no_reply() {
    watchdog(120, || {
        let pool = start(1, unpinned(1));
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        // Hold the worker inside a handler while calls queue up behind it.
        let (go, gate) = mpsc::channel();
        tx.send_to(w0, KvMsg::Gate(gate)).unwrap();
        let (panic_reply, panic_answer) = Reply::channel();
        tx.send_to(w0, KvMsg::Panic(panic_reply)).unwrap();
        let queued: Vec<Answer<Option<u64>>> = (0..10)
            .map(|i| {
                let (reply, answer) = Reply::channel();
                tx.send_to(w0, KvMsg::Get(format!("{i}"), reply)).unwrap();
                answer
            })
            .collect();
        go.send(()).unwrap();
        assert!(panic_answer.recv().unwrap_err().is_no_reply());
        for answer in queued {
            // Dropped, with their replies, by the failed worker's drain.
            assert!(answer.recv().unwrap_err().is_no_reply());
        }
        assert!(pool.shutdown().is_err());
    });
}

#[test]
fn with_restart_the_panicking_call_gets_no_reply_and_the_next_is_answered() {
    watchdog(120, || {
        let config = unpinned(1).on_panic(PanicPolicy::Restart {
            max_restarts: 5,
            within: std::time::Duration::from_secs(60),
        });
        let pool = start(1, config);
        let tx = pool.sender();
        let w0 = WorkerId::from(0);
        assert!(tx.call(w0, KvMsg::Panic).unwrap_err().is_no_reply());
        assert_eq!(tx.call(w0, KvMsg::Whoami).unwrap(), w0);
        pool.shutdown().unwrap();
    });
}

#[test]
fn calls_after_shutdown_are_closed_and_hand_the_message_back() {
    watchdog(120, || {
        let pool = start(2, unpinned(2));
        let tx = pool.sender();
        pool.shutdown().unwrap();
        let err = tx
            .call(WorkerId::from(1), |r| KvMsg::Get("late".into(), r))
            .unwrap_err();
        assert!(err.is_closed(), "{err:?}");
        assert_eq!(format!("{err:?}"), "Send(Closed(..))");
        assert!(matches!(err.into_inner(), Some(KvMsg::Get(k, _)) if k == "late"));
        let err = tx.call_keyed(&"x", KvMsg::Whoami).unwrap_err();
        assert!(err.is_closed());
    });
}

#[test]
fn a_call_to_a_worker_that_does_not_exist_hands_the_message_back() {
    let pool = start(1, unpinned(1));
    let err = pool
        .sender()
        .call(WorkerId::from(7), |r| KvMsg::Get("nope".into(), r))
        .unwrap_err();
    assert!(matches!(
        err,
        CallError::Send(SendError::NoSuchWorker(KvMsg::Get(..)))
    ));
    pool.shutdown().unwrap();
}

#[test]
fn broadcast_with_builds_one_message_per_worker_in_id_order() {
    watchdog(120, || {
        let pool = start(4, unpinned(4));
        let tx = pool.sender();
        let mut asked = Vec::new();
        let mut answers = Vec::new();
        tx.broadcast_with(|id| {
            asked.push(id);
            let (reply, answer) = Reply::channel();
            answers.push(answer);
            KvMsg::Whoami(reply)
        })
        .unwrap();
        assert_eq!(asked, (0..4).map(WorkerId::from).collect::<Vec<_>>());
        let who: Vec<WorkerId> = answers.into_iter().map(|a| a.recv().unwrap()).collect();
        assert_eq!(who, asked, "each worker got the message built for it");
        pool.shutdown().unwrap();

        // After shutdown: the first worker's message comes back, and `f`
        // is not called for the others.
        let mut calls = 0;
        let err = tx
            .broadcast_with(|id| {
                calls += 1;
                KvMsg::Put("k".into(), id.index() as u64)
            })
            .unwrap_err();
        assert_eq!(calls, 1);
        assert!(matches!(err, SendError::Closed(KvMsg::Put(_, 0))));
    });
}

#[test]
fn sender_stats_are_the_pools_snapshot() {
    watchdog(120, || {
        let pool = start(2, unpinned(2));
        let tx = pool.sender();
        for i in 0..100u64 {
            tx.send_keyed(&i, KvMsg::Put(i.to_string(), i)).unwrap();
        }
        let from_sender = tx.stats();
        let from_pool = pool.stats();
        assert_eq!(from_sender.workers.len(), from_pool.workers.len());
        assert_eq!(from_sender.channels.len(), from_pool.channels.len());
        let sent = |s: &PoolStats| -> u64 {
            s.channels
                .iter()
                .filter(|c| c.from == Endpoint::External)
                .map(|c| c.sent)
                .sum()
        };
        assert_eq!(sent(&from_sender), 100);
        assert_eq!(sent(&from_pool), 100);
        pool.shutdown().unwrap();
    });
}
