//! Asking a peer from inside a worker: `Context::ask`, `ask_keyed`,
//! `ask_all`, `Asked` and `AskError`. Every ask ends — with the answer,
//! `Timeout` or `NoReply` — exactly once, as one of the asker's own
//! messages; none hangs the asker or the pool.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

const LONG: Duration = Duration::from_secs(3600);

/// Messages `Mode::NoteFirst` sends the asker before answering: many
/// batches' worth, so the asker takes them over several loop passes.
const NOTES: usize = 50;

fn unpinned(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

/// What the askee does with a question.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Answer,
    /// Drops the `Asked` unanswered.
    Forget,
    /// Keeps the `Asked` in its state, unanswered.
    Hold,
    /// Panics while handling the question.
    Panic,
    /// Sends the asker a `Note` first, then answers.
    NoteFirst,
    /// Hands the `Asked` to a thread outside the pool, which answers later.
    Outside,
    /// Passes the `Asked` on to worker 2 (never asked by the asker), which
    /// sends the asker `NOTES` notes, then answers.
    PassOn,
}

enum Msg {
    /// From outside: ask worker `peer` in `mode`, with `deadline`.
    Go {
        peer: WorkerId,
        mode: Mode,
        deadline: Duration,
    },
    /// From outside: ask every worker.
    GoAll,
    Question(Mode, Asked<u64>),
    Outcome(Result<u64, AskError>),
    All(Vec<Result<u64, AskError>>),
    Note,
    /// An `Asked` passed on by the worker asked.
    Passed(Asked<u64>),
    /// Answers the held `Asked`, if any.
    Release,
    /// Panics (for restart tests).
    Boom,
    /// Reports how many `Asked`s this worker holds.
    Count(mpsc::Sender<usize>),
}

#[derive(Default)]
struct Node {
    id: usize,
    outcomes: Vec<(Result<u64, AskError>, Option<Endpoint>)>,
    alls: Vec<Vec<Result<u64, AskError>>>,
    /// What arrived, in order: "note" or "outcome".
    seen: Vec<&'static str>,
    held: Vec<Asked<u64>>,
    done: Option<mpsc::Sender<Result<u64, AskError>>>,
    outside: Option<mpsc::Sender<Asked<u64>>>,
}

impl Worker for Node {
    type Msg = Msg;
    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Go {
                peer,
                mode,
                deadline,
            } => {
                ctx.ask(
                    peer,
                    |asked| Msg::Question(mode, asked),
                    // `then` need not be Send: it captures an Rc.
                    {
                        let marker = std::rc::Rc::new(());
                        move |r| {
                            drop(marker);
                            Msg::Outcome(r)
                        }
                    },
                    deadline,
                )
                .unwrap_or_else(|_| panic!("ask refused"));
            }
            Msg::GoAll => ctx
                .ask_all(
                    |w, asked| Msg::Question(Mode::Answer, asked).with_worker(w),
                    Msg::All,
                    LONG,
                )
                .unwrap_or_else(|_| panic!("ask_all refused")),
            Msg::Question(mode, asked) => match mode {
                Mode::Answer => asked.send(100 + self.id as u64),
                Mode::Forget => drop(asked),
                Mode::Hold => self.held.push(asked),
                Mode::Panic => panic!("askee panics with the question"),
                Mode::NoteFirst => {
                    let asker = match ctx.source() {
                        Some(Endpoint::Worker(w)) => w,
                        other => panic!("question from {other:?}"),
                    };
                    for _ in 0..NOTES {
                        ctx.send_to(asker, Msg::Note).unwrap_or_else(|_| panic!());
                    }
                    asked.send(7);
                }
                Mode::Outside => {
                    let _ = self.outside.as_ref().unwrap().send(asked);
                }
                Mode::PassOn => ctx
                    .send_to(WorkerId::from(2), Msg::Passed(asked))
                    .unwrap_or_else(|_| panic!("pass on refused")),
            },
            Msg::Passed(asked) => {
                // The asker is worker 0 in the tests that pass one on.
                for _ in 0..NOTES {
                    ctx.send_to(WorkerId::from(0), Msg::Note)
                        .unwrap_or_else(|_| panic!());
                }
                asked.send(200 + self.id as u64);
            }
            Msg::Outcome(r) => {
                self.seen.push("outcome");
                if let Some(done) = &self.done {
                    let _ = done.send(r.clone());
                }
                self.outcomes.push((r, ctx.source()));
            }
            Msg::All(v) => {
                self.alls.push(v);
                if let Some(done) = &self.done {
                    let _ = done.send(Ok(0));
                }
            }
            Msg::Note => self.seen.push("note"),
            Msg::Release => {
                for a in self.held.drain(..) {
                    a.send(1);
                }
            }
            Msg::Boom => panic!("boom"),
            Msg::Count(reply) => {
                let _ = reply.send(self.held.len());
            }
        }
    }
}

impl Msg {
    /// The question of an `ask_all`, unchanged (keeps the closure honest
    /// about receiving the worker id).
    fn with_worker(self, _w: WorkerId) -> Msg {
        self
    }
}

fn node(id: WorkerId, done: &mpsc::Sender<Result<u64, AskError>>) -> Node {
    Node {
        id: id.index(),
        done: Some(done.clone()),
        ..Node::default()
    }
}

fn go(peer: usize, mode: Mode, deadline: Duration) -> Msg {
    Msg::Go {
        peer: WorkerId::from(peer),
        mode,
        deadline,
    }
}

/// Starts a pool of `n` workers, sends worker 0 `msg`, and waits for the
/// first outcome worker 0 reports.
type Outcomes = mpsc::Receiver<Result<u64, AskError>>;

fn ask_once(config: PoolConfig, msg: Msg) -> (Result<u64, AskError>, Pool<Node>, Outcomes) {
    let (tx, rx) = mpsc::channel();
    let pool = Pool::start(config, move |id| node(id, &tx)).unwrap();
    pool.sender().send_to(WorkerId::from(0), msg).unwrap();
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no outcome");
    (r, pool, rx)
}

#[test]
fn an_answer_comes_back_as_a_message_from_the_peer() {
    watchdog(60, || {
        let (r, pool, _rx) = ask_once(unpinned(2), go(1, Mode::Answer, LONG));
        assert_eq!(r, Ok(101));
        let workers = pool.shutdown().unwrap();
        assert_eq!(
            workers[0].outcomes,
            vec![(Ok(101), Some(Endpoint::Worker(WorkerId::from(1))))]
        );
    });
}

#[test]
fn asking_oneself_works() {
    watchdog(60, || {
        let (r, pool, _rx) = ask_once(unpinned(1), go(0, Mode::Answer, LONG));
        assert_eq!(r, Ok(100));
        let workers = pool.shutdown().unwrap();
        assert_eq!(
            workers[0].outcomes[0].1,
            Some(Endpoint::Worker(WorkerId::from(0)))
        );
    });
}

#[test]
fn a_dropped_asked_is_no_reply_at_once_not_at_the_deadline() {
    // The deadline is an hour: only the drop can end this ask in time.
    watchdog(60, || {
        let (r, pool, _rx) = ask_once(unpinned(2), go(1, Mode::Forget, LONG));
        assert_eq!(r, Err(AskError::NoReply));
        pool.shutdown().unwrap();
    });
}

#[test]
fn a_peer_that_panics_on_the_question_gives_no_reply() {
    watchdog(60, || {
        let (r, pool, _rx) = ask_once(unpinned(2), go(1, Mode::Panic, LONG));
        assert_eq!(r, Err(AskError::NoReply));
        let err = pool.shutdown().err().expect("worker 1 failed");
        assert!(matches!(err, Error::WorkerPanicked { worker, .. } if worker.index() == 1));
    });
}

/// Two workers under a restart policy; worker 0 has asked worker 1,
/// which holds the question unanswered.
fn restartable_with_a_held_ask() -> (Pool<Node>, Outcomes) {
    let config = unpinned(2).on_panic(PanicPolicy::Restart {
        max_restarts: 5,
        within: Duration::from_secs(60),
    });
    let (tx, rx) = mpsc::channel();
    let pool = Pool::start(config, move |id| node(id, &tx)).unwrap();
    pool.sender()
        .send_to(WorkerId::from(0), go(1, Mode::Hold, LONG))
        .unwrap();
    (pool, rx)
}

#[test]
fn a_restarted_peer_drops_the_asked_it_held() {
    watchdog(60, || {
        let (pool, rx) = restartable_with_a_held_ask();
        let s = pool.sender();
        // The question is held; the restart drops the instance holding it.
        std::thread::sleep(Duration::from_millis(50));
        s.send_to(WorkerId::from(1), Msg::Boom).unwrap();
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no outcome");
        assert_eq!(r, Err(AskError::NoReply));
        pool.shutdown().unwrap();
    });
}

#[test]
fn the_deadline_gives_timeout_once_and_a_late_answer_is_dropped() {
    watchdog(60, || {
        let (r, pool, rx) = ask_once(unpinned(2), go(1, Mode::Hold, Duration::from_millis(20)));
        assert_eq!(r, Err(AskError::Timeout));
        // Answer now: too late, dropped; `then` ran once.
        pool.sender()
            .send_to(WorkerId::from(1), Msg::Release)
            .unwrap();
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].outcomes.len(), 1, "then runs exactly once");
        assert!(rx.try_recv().is_err());
    });
}

#[test]
fn an_answer_never_overtakes_what_the_peer_sent_before_it() {
    watchdog(120, || {
        let (tx, rx) = mpsc::channel();
        // Small batches: the notes take the asker several passes.
        let config = unpinned(2).batch_size(4);
        let pool = Pool::start(config, move |id| node(id, &tx)).unwrap();
        let s = pool.sender();
        let asks = 50;
        for _ in 0..asks {
            s.send_to(WorkerId::from(0), go(1, Mode::NoteFirst, LONG))
                .unwrap();
        }
        for _ in 0..asks {
            assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(7));
        }
        let workers = pool.shutdown().unwrap();
        let seen = &workers[0].seen;
        assert_eq!(seen.len(), asks * (NOTES + 1));
        // The k-th answer comes after the notes sent before it.
        answers_follow_their_notes(seen);
    });
}

/// Whether every outcome in `seen` comes after the `NOTES` notes sent
/// before its answer.
fn answers_follow_their_notes(seen: &[&str]) {
    let (mut notes, mut outcomes) = (0, 0);
    for s in seen {
        if *s == "note" {
            notes += 1;
        } else {
            outcomes += 1;
            assert!(
                notes >= outcomes * NOTES,
                "answer {outcomes} overtook its notes ({notes} seen)"
            );
        }
    }
}

#[test]
fn an_asked_passed_on_is_answered_by_a_worker_never_asked_in_order() {
    // Worker 2 has no answer lane to worker 0 (0 never asked it): its
    // answers take the box, and still never overtake its notes.
    watchdog(120, || {
        let (tx, rx) = mpsc::channel();
        let pool = Pool::start(unpinned(3).batch_size(4), move |id| node(id, &tx)).unwrap();
        let asks = 20;
        for _ in 0..asks {
            pool.sender()
                .send_to(WorkerId::from(0), go(1, Mode::PassOn, LONG))
                .unwrap();
        }
        for _ in 0..asks {
            assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(202));
        }
        let workers = pool.shutdown().unwrap();
        let w0 = &workers[0];
        assert_eq!(w0.seen.len(), asks * (NOTES + 1));
        answers_follow_their_notes(&w0.seen);
        assert!(
            w0.outcomes
                .iter()
                .all(|(_, src)| *src == Some(Endpoint::Worker(WorkerId::from(1)))),
            "the source is the worker asked, not the one that answered"
        );
    });
}

#[test]
fn more_answers_at_once_than_a_lane_holds_all_arrive_once() {
    // Worker 1 holds a few thousand questions, then answers them all in
    // one handle call, twice: its lane to worker 0 fills and the rest go
    // through the box; every ask still ends exactly once, with the answer.
    watchdog(120, || {
        let (tx, rx) = mpsc::channel();
        let pool = Pool::start(unpinned(2), move |id| node(id, &tx)).unwrap();
        let asks = 3000;
        for round in 0..2 {
            for _ in 0..asks {
                pool.sender()
                    .send_to(WorkerId::from(0), go(1, Mode::Hold, LONG))
                    .unwrap();
            }
            // Released once worker 1 holds them all (the mesh is FIFO per
            // pair, but the questions come from worker 0's handling of
            // the inbox: wait until they are all asked).
            let held = loop {
                let (stx, srx) = mpsc::channel();
                pool.sender()
                    .send_to(WorkerId::from(1), Msg::Count(stx))
                    .unwrap();
                let held = srx.recv_timeout(Duration::from_secs(30)).unwrap();
                if held == asks {
                    break held;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(held, asks, "round {round}");
            pool.sender()
                .send_to(WorkerId::from(1), Msg::Release)
                .unwrap();
            for _ in 0..asks {
                assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(1));
            }
        }
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].outcomes.len(), 2 * asks);
        assert!(workers[0].outcomes.iter().all(|(r, _)| *r == Ok(1)));
    });
}

/// Two workers; worker 0 has asked worker 1, which handed the `Asked`
/// to this thread (returned).
fn asked_from_outside() -> (Pool<Node>, Asked<u64>, Outcomes) {
    let (tx, rx) = mpsc::channel();
    let (out_tx, out_rx) = mpsc::channel();
    let pool = Pool::start(unpinned(2), move |id| Node {
        outside: Some(out_tx.clone()),
        ..node(id, &tx)
    })
    .unwrap();
    pool.sender()
        .send_to(WorkerId::from(0), go(1, Mode::Outside, LONG))
        .unwrap();
    let asked = out_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (pool, asked, rx)
}

#[test]
fn an_answer_from_outside_the_pool_wakes_a_parked_asker() {
    watchdog(60, || {
        let (pool, asked, rx) = asked_from_outside();
        // Let the asker go idle and park.
        std::thread::sleep(Duration::from_millis(300));
        asked.send(42);
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(42));
        pool.shutdown().unwrap();
    });
}

#[test]
fn ask_all_gathers_every_worker_by_index() {
    watchdog(60, || {
        let (r, pool, _rx) = ask_once(unpinned(2), Msg::GoAll);
        assert_eq!(r, Ok(0));
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].alls, vec![vec![Ok(100), Ok(101)]]);
    });
}

#[test]
fn asking_a_failed_peer_hands_the_question_back() {
    struct Asker {
        verdict: mpsc::Sender<bool>,
    }
    #[allow(dead_code)]
    enum M {
        Boom,
        Go,
        Q(Asked<()>),
        A(Result<(), AskError>),
    }
    impl Worker for Asker {
        type Msg = M;
        fn handle(&mut self, m: M, ctx: &mut Context<'_, M>) {
            match m {
                M::Boom => panic!("fail for good"),
                M::Go => {
                    let r = ctx.ask(WorkerId::from(1), M::Q, M::A, LONG);
                    let _ = self
                        .verdict
                        .send(matches!(r, Err(SendError::Closed(M::Q(_)))));
                }
                M::Q(_) | M::A(_) => {}
            }
        }
    }
    watchdog(60, || {
        let (tx, rx) = mpsc::channel();
        let pool = Pool::start(unpinned(2), move |_| Asker {
            verdict: tx.clone(),
        })
        .unwrap();
        let s = pool.sender();
        s.send_to(WorkerId::from(1), M::Boom).unwrap();
        // Wait until worker 1 is seen failed from outside.
        while s.send_to(WorkerId::from(1), M::Q(never_answered())).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
        // Worker 0 sees the failure from its next iteration on: retry
        // until its ask is refused (an ask racing the failure may still
        // be accepted, as a send would be).
        let mut refused = false;
        for _ in 0..100 {
            s.send_to(WorkerId::from(0), M::Go).unwrap();
            if rx.recv_timeout(Duration::from_secs(30)).unwrap() {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(refused, "an ask to a failed worker hands the question back");
        assert!(pool.shutdown().is_err());
    });

    /// An `Asked` obtained by asking from a throwaway pool (the only way
    /// to get one outside a worker).
    fn never_answered() -> Asked<()> {
        struct Give(mpsc::Sender<Asked<()>>);
        #[allow(dead_code)]
        enum G {
            Go,
            Q(Asked<()>),
            A(Result<(), AskError>),
        }
        impl Worker for Give {
            type Msg = G;
            fn handle(&mut self, m: G, ctx: &mut Context<'_, G>) {
                match m {
                    G::Go => ctx
                        .ask(ctx.id(), G::Q, G::A, LONG)
                        .unwrap_or_else(|_| panic!()),
                    G::Q(a) => {
                        let _ = self.0.send(a);
                    }
                    G::A(_) => {}
                }
            }
        }
        let (tx, rx) = mpsc::channel();
        let pool = Pool::start(unpinned(1), move |_| Give(tx.clone())).unwrap();
        pool.sender().send_to(WorkerId::from(0), G::Go).unwrap();
        let a = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        pool.shutdown().unwrap();
        a
    }
}

#[test]
fn asks_from_on_stop_are_refused_and_shutdown_does_not_wait_for_deadlines() {
    struct Stopper {
        refused: bool,
        pending_then_ran: bool,
    }
    #[allow(dead_code)]
    enum M {
        Hold,
        Q(Asked<u8>),
        A(Result<u8, AskError>),
    }
    impl Worker for Stopper {
        type Msg = M;
        fn handle(&mut self, m: M, ctx: &mut Context<'_, M>) {
            match m {
                // Asks itself and never answers: held in the message below.
                M::Hold => ctx
                    .ask(ctx.id(), M::Q, M::A, LONG)
                    .unwrap_or_else(|_| panic!()),
                M::Q(asked) => std::mem::forget(asked),
                M::A(_) => self.pending_then_ran = true,
            }
        }
        fn on_stop(&mut self, ctx: &mut Context<'_, M>) {
            self.refused = matches!(
                ctx.ask(ctx.id(), M::Q, M::A, LONG),
                Err(SendError::Closed(M::Q(_)))
            );
        }
    }
    watchdog(60, || {
        let pool = Pool::start(unpinned(1), |_| Stopper {
            refused: false,
            pending_then_ran: false,
        })
        .unwrap();
        pool.sender().send_to(WorkerId::from(0), M::Hold).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let workers = pool.shutdown().unwrap();
        assert!(workers[0].refused, "ask from on_stop is refused");
        assert!(
            !workers[0].pending_then_ran,
            "a pending ask's then never runs at stop"
        );
    });
}

#[test]
fn a_restarted_asker_never_runs_its_old_continuations() {
    watchdog(60, || {
        let (pool, rx) = restartable_with_a_held_ask();
        let s = pool.sender();
        std::thread::sleep(Duration::from_millis(50));
        // The asker restarts; then the peer answers the old question.
        s.send_to(WorkerId::from(0), Msg::Boom).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.send_to(WorkerId::from(1), Msg::Release).unwrap();
        // A fresh ask from the new instance still works, and is the only
        // outcome reported.
        s.send_to(WorkerId::from(0), go(1, Mode::Answer, LONG))
            .unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)).unwrap(), Ok(101));
        let workers = pool.shutdown().unwrap();
        assert_eq!(workers[0].outcomes.len(), 1);
    });
}

#[test]
fn answers_to_a_failed_asker_do_not_hold_shutdown() {
    watchdog(60, || {
        let (pool, asked, rx) = asked_from_outside();
        let s = pool.sender();
        // The asker fails for good; then the answer comes.
        s.send_to(WorkerId::from(0), Msg::Boom).unwrap();
        while s.send_to(WorkerId::from(0), Msg::Note).is_ok() {
            std::thread::sleep(Duration::from_millis(5));
        }
        asked.send(1);
        assert!(pool.shutdown().is_err(), "worker 0 failed");
        assert!(rx.try_recv().is_err(), "the failed asker's then never ran");
    });
}

#[test]
fn a_peer_that_fails_for_good_releases_the_asked_it_held_at_once() {
    watchdog(60, || {
        let (tx, rx) = mpsc::channel();
        let pool = Pool::start(unpinned(2), move |id| node(id, &tx)).unwrap();
        let s = pool.sender();
        s.send_to(WorkerId::from(0), go(1, Mode::Hold, LONG))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Policy Stop: the failed worker's state goes when it fails, not
        // at shutdown, and the `Asked` it held with it.
        s.send_to(WorkerId::from(1), Msg::Boom).unwrap();
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no outcome before shutdown");
        assert_eq!(r, Err(AskError::NoReply));
        assert!(pool.shutdown().is_err());
    });
}

#[test]
fn pipelined_asks_both_ways_each_end_exactly_once() {
    // Two workers ask each other ASKS times each, WINDOW in flight at a
    // time, no deadline: every ask must end exactly once, with its own
    // answer (a lost answer hangs, turned into a failure by the watchdog;
    // a doubled one shows in the per-ask count).
    const ASKS: usize = 100_000;
    const WINDOW: usize = 256;
    struct Peer {
        me: usize,
        sent: usize,
        /// How many times each ask's `then` ran.
        ends: Vec<u8>,
        /// Asks that have ended at least once.
        ended: usize,
        /// Outcomes that were not the expected answer.
        wrong: usize,
        finished: mpsc::Sender<usize>,
    }
    #[allow(dead_code)]
    enum M {
        Go,
        Q(usize, Asked<u64>),
        A(usize, Result<u64, AskError>),
    }
    impl Peer {
        fn ask_next(&mut self, ctx: &mut Context<'_, M>) {
            let k = self.sent;
            self.sent += 1;
            let peer = WorkerId::from(1 - self.me);
            ctx.ask(peer, |a| M::Q(k, a), move |r| M::A(k, r), Duration::MAX)
                .unwrap_or_else(|_| panic!("ask refused"));
        }
    }
    impl Worker for Peer {
        type Msg = M;
        fn handle(&mut self, m: M, ctx: &mut Context<'_, M>) {
            match m {
                M::Go => {
                    while self.sent < WINDOW.min(ASKS) {
                        self.ask_next(ctx);
                    }
                }
                M::Q(k, asked) => asked.send(3 * k as u64 + self.me as u64),
                M::A(k, r) => {
                    let from = 1 - self.me;
                    if r != Ok(3 * k as u64 + from as u64)
                        || ctx.source() != Some(Endpoint::Worker(WorkerId::from(from)))
                    {
                        self.wrong += 1;
                    }
                    if self.ends[k] == 0 {
                        self.ended += 1;
                    }
                    self.ends[k] = self.ends[k].saturating_add(1);
                    if self.sent < ASKS {
                        self.ask_next(ctx);
                    }
                    if self.ended == ASKS {
                        let _ = self.finished.send(self.me);
                    }
                }
            }
        }
    }
    watchdog(600, || {
        let (tx, rx) = mpsc::channel();
        let pool = Pool::start(unpinned(2), move |id| Peer {
            me: id.index(),
            sent: 0,
            ends: vec![0; ASKS],
            ended: 0,
            wrong: 0,
            finished: tx.clone(),
        })
        .unwrap();
        for w in 0..2 {
            pool.sender().send_to(WorkerId::from(w), M::Go).unwrap();
        }
        let mut done = [false; 2];
        while !done.iter().all(|&d| d) {
            let w = rx
                .recv_timeout(Duration::from_secs(300))
                .expect("a worker's asks did not all end");
            done[w] = true;
        }
        let workers = pool.shutdown().unwrap();
        for w in &workers {
            assert_eq!(w.sent, ASKS);
            assert_eq!(w.wrong, 0, "worker {}: an outcome not its answer", w.me);
            assert!(
                w.ends.iter().all(|&e| e == 1),
                "worker {}: a then ran {} times",
                w.me,
                w.ends.iter().copied().find(|&e| e != 1).unwrap()
            );
        }
    });
}
