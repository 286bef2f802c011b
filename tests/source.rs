//! `Context::source` (who sent the message being handled) and
//! `Context::broadcast_with` (a message built per worker).

mod common;

use std::time::Duration;

use common::watchdog;
use shardpool::prelude::*;

fn pool_of(workers: usize) -> PoolConfig {
    PoolConfig::default()
        .workers(workers)
        .affinity(Affinity::None)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Msg {
    /// From outside: worker 0 sends `Hop` to worker 1 and to itself, and
    /// sets a timer.
    Start,
    Hop,
    Timer,
}

/// Records (message, source) for every message, and the source seen in
/// the other callbacks.
#[derive(Default)]
struct Recorder {
    got: Vec<(Msg, Option<Endpoint>)>,
    in_start: Option<Option<Endpoint>>,
    in_tick: Vec<Option<Endpoint>>,
    in_stop: Option<Option<Endpoint>>,
}

impl Worker for Recorder {
    type Msg = Msg;
    fn on_start(&mut self, ctx: &mut Context<'_, Msg>) {
        self.in_start = Some(ctx.source());
    }
    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        self.got.push((msg, ctx.source()));
        if msg == Msg::Start {
            ctx.send_to(WorkerId::from(1), Msg::Hop).unwrap();
            ctx.send_to(ctx.id(), Msg::Hop).unwrap();
            ctx.send_after(Duration::from_millis(1), Msg::Timer)
                .unwrap();
        }
    }
    fn tick(&mut self, ctx: &mut Context<'_, Msg>) {
        self.in_tick.push(ctx.source());
    }
    fn on_stop(&mut self, ctx: &mut Context<'_, Msg>) {
        self.in_stop = Some(ctx.source());
    }
}

#[test]
fn source_names_the_queue_the_message_came_from() {
    watchdog(60, || {
        let pool = Pool::start(pool_of(2), |_| Recorder::default()).unwrap();
        let tx = pool.sender();
        tx.send_to(WorkerId::from(0), Msg::Start).unwrap();
        while pool.stats().handled() < 4 {
            std::thread::sleep(Duration::from_millis(1));
        }
        let w = pool.shutdown().unwrap();
        let w0 = Endpoint::Worker(WorkerId::from(0));
        assert_eq!(w[0].got[0], (Msg::Start, Some(Endpoint::External)));
        assert!(w[0].got.contains(&(Msg::Hop, Some(w0))), "{:?}", w[0].got);
        assert!(w[0].got.contains(&(Msg::Timer, Some(w0))), "{:?}", w[0].got);
        assert_eq!(w[0].got.len(), 3);
        assert_eq!(w[1].got, [(Msg::Hop, Some(w0))]);
        for w in &w {
            assert_eq!(w.in_start, Some(None));
            assert_eq!(w.in_stop, Some(None));
            assert!(!w.in_tick.is_empty());
            assert!(w.in_tick.iter().all(Option::is_none), "{:?}", w.in_tick);
        }
    });
}

/// A message that is not `Clone` (it owns a one-off resource).
struct Token {
    for_worker: WorkerId,
    _not_clone: Box<u8>,
}

#[derive(Default)]
struct Collector {
    tokens: Vec<WorkerId>,
    on_stop_refused: Option<(bool, usize)>,
}

impl Worker for Collector {
    type Msg = Token;
    fn handle(&mut self, t: Token, ctx: &mut Context<'_, Token>) {
        if ctx.source() == Some(Endpoint::External) {
            let mut order = vec![];
            ctx.broadcast_with(|peer| {
                order.push(peer);
                Token {
                    for_worker: peer,
                    _not_clone: Box::new(0),
                }
            })
            .unwrap();
            assert_eq!(order, (0..3).map(WorkerId::from).collect::<Vec<_>>());
        } else {
            assert_eq!(t.for_worker, ctx.id(), "each worker gets its own");
            self.tokens.push(t.for_worker);
        }
    }
    fn on_stop(&mut self, ctx: &mut Context<'_, Token>) {
        // Refused at the first worker; `f` is not called again.
        let mut calls = 0;
        let r = ctx.broadcast_with(|peer| {
            calls += 1;
            Token {
                for_worker: peer,
                _not_clone: Box::new(1),
            }
        });
        let handed_back =
            matches!(&r, Err(SendError::Closed(t)) if t.for_worker == WorkerId::from(0));
        self.on_stop_refused = Some((handed_back, calls));
    }
}

#[test]
fn broadcast_with_builds_one_message_per_worker_in_id_order() {
    watchdog(60, || {
        let pool = Pool::start(pool_of(3), |_| Collector::default()).unwrap();
        let tx = pool.sender();
        tx.send_to(
            WorkerId::from(2),
            Token {
                for_worker: WorkerId::from(2),
                _not_clone: Box::new(9),
            },
        )
        .unwrap();
        let w = pool.shutdown().unwrap();
        for (i, w) in w.iter().enumerate() {
            assert_eq!(w.tokens, [WorkerId::from(i)]);
            assert_eq!(w.on_stop_refused, Some((true, 1)));
        }
    });
}
