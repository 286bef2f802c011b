//! Model-based property tests: random operation sequences on the ring and
//! the inbox, checked step by step against a `VecDeque` model (the
//! "fuzzing against a model" of the reliability requirements).

use std::collections::VecDeque;

use proptest::prelude::*;

use crate::lockfree::inbox::{inbox, PushError};
use crate::lockfree::ring::ring;

#[derive(Debug, Clone)]
enum RingOp {
    Stage(u16),
    StageFrom(Vec<u16>),
    Publish,
    Pop(usize),
}

fn ring_op() -> impl Strategy<Value = RingOp> {
    prop_oneof![
        4 => any::<u16>().prop_map(RingOp::Stage),
        2 => proptest::collection::vec(any::<u16>(), 0..24).prop_map(RingOp::StageFrom),
        2 => Just(RingOp::Publish),
        3 => (1usize..6).prop_map(RingOp::Pop),
    ]
}

#[derive(Debug, Clone)]
enum InboxOp {
    Push(u16),
    PushBatch(Vec<u16>),
    Pop(usize),
    Close,
}

fn inbox_op() -> impl Strategy<Value = InboxOp> {
    prop_oneof![
        5 => any::<u16>().prop_map(InboxOp::Push),
        2 => proptest::collection::vec(any::<u16>(), 0..12).prop_map(InboxOp::PushBatch),
        4 => (1usize..6).prop_map(InboxOp::Pop),
        1 => Just(InboxOp::Close),
    ]
}

/// One run of [`ring_matches_model`] with messages made by `make`.
fn check_ring<V: Clone + PartialEq + std::fmt::Debug>(
    cap: usize,
    ops: &[RingOp],
    make: impl Fn(u16) -> V,
) -> Result<(), TestCaseError> {
    let (mut p, mut c) = ring::<V>(cap);
    let mut published: VecDeque<V> = VecDeque::new();
    let mut staged: VecDeque<V> = VecDeque::new();
    let mut popped = 0u64;
    for op in ops {
        match *op {
            RingOp::Stage(v) => {
                let v = make(v);
                let full = published.len() + staged.len() == cap;
                match p.try_stage(v.clone()) {
                    Ok(()) => {
                        prop_assert!(!full);
                        staged.push_back(v);
                    }
                    Err(back) => {
                        prop_assert!(full);
                        prop_assert_eq!(back, v);
                    }
                }
            }
            RingOp::StageFrom(ref vs) => {
                // As many as there is room for move, from the front; the
                // rest stay behind in order.
                let mut src: Vec<V> = vs.iter().map(|&v| make(v)).collect();
                let room = cap - published.len() - staged.len();
                let n = p.stage_from(&mut src);
                prop_assert_eq!(n, room.min(vs.len()));
                // The cached view may understate the room, never overstate.
                prop_assert!(p.free() <= room - n);
                let expect_rest: Vec<V> = vs[n..].iter().map(|&v| make(v)).collect();
                prop_assert_eq!(&src, &expect_rest);
                staged.extend(vs[..n].iter().map(|&v| make(v)));
            }
            RingOp::Publish => {
                prop_assert_eq!(p.publish(), !staged.is_empty());
                published.extend(staged.drain(..));
            }
            RingOp::Pop(max) => {
                let mut got = vec![];
                let n = c.pop_batch(max, |v| got.push(v));
                let expect: Vec<V> = (0..max.min(published.len()))
                    .map(|_| published.pop_front().unwrap())
                    .collect();
                prop_assert_eq!(n, expect.len());
                prop_assert_eq!(got, expect);
                popped += n as u64;
            }
        }
        prop_assert_eq!(c.has_pending(), !published.is_empty());
        prop_assert_eq!(c.ring().received(), popped);
    }
    Ok(())
}

/// proptest runs with only its `alloc` feature here (its default features
/// would be unified into every example build of the workspace: see
/// Cargo.toml), so it has no failure file and no entropy of its own. The
/// seed comes from `PROPTEST_RNG_SEED` or the clock and is printed, so each
/// run explores new cases and a failing one can be replayed; a regression
/// is kept as a plain test.
fn proptest_config(cases: u32) -> ProptestConfig {
    let seed = std::env::var("PROPTEST_RNG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    eprintln!("proptest seed: PROPTEST_RNG_SEED={seed}");
    ProptestConfig {
        cases,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(proptest_config(256))]

    /// Staged values are invisible until published; pops return published
    /// values in order, at most the batch asked; a full ring hands the value
    /// back; the indices count exactly what went through. Run with message
    /// sizes that put 28, 7, 2 and 1 slots in a line (the lines wrap at a
    /// different period than the capacity, or at the same one).
    #[test]
    fn ring_matches_model(cap_log in 0u32..5, ops in proptest::collection::vec(ring_op(), 1..200)) {
        let cap = 1usize << cap_log;
        check_ring(cap, &ops, |v| v)?;
        check_ring(cap, &ops, u64::from)?;
        check_ring(cap, &ops, |v| [u64::from(v); 3])?;
        check_ring(cap, &ops, |v| [u64::from(v); 9])?;
    }

    /// Pushes succeed exactly while there is room and the inbox is open;
    /// pops return values in order; close reports the exact final count and
    /// keeps what was queued.
    #[test]
    fn inbox_matches_model(cap_log in 0u32..4, ops in proptest::collection::vec(inbox_op(), 1..200)) {
        let cap = 1usize << cap_log;
        let (q, mut rx) = inbox::<u16>(cap);
        let mut model: VecDeque<u16> = VecDeque::new();
        let mut closed = false;
        let mut pushed = 0u64;
        let mut popped = 0u64;
        for op in ops {
            match op {
                InboxOp::Push(v) => match q.try_push(v) {
                    Ok(()) => {
                        prop_assert!(!closed && model.len() < cap);
                        model.push_back(v);
                        pushed += 1;
                    }
                    Err(PushError::Full(back)) => {
                        prop_assert!(!closed && model.len() == cap);
                        prop_assert_eq!(back, v);
                    }
                    Err(PushError::Closed(back)) => {
                        prop_assert!(closed);
                        prop_assert_eq!(back, v);
                    }
                },
                InboxOp::PushBatch(values) => {
                    let mut batch = values.clone();
                    match q.try_push_batch(&mut batch) {
                        Ok(k) => {
                            prop_assert!(!closed || values.is_empty());
                            let room = cap - model.len();
                            prop_assert!(k <= room && (k > 0 || room == 0 || values.is_empty()));
                            prop_assert_eq!(&batch[..], &values[k..], "the rest stays, in order");
                            model.extend(values[..k].iter().copied());
                            pushed += k as u64;
                        }
                        Err(PushError::Closed(())) => {
                            prop_assert!(closed);
                            prop_assert_eq!(batch, values);
                        }
                        Err(PushError::Full(())) => prop_assert!(false, "batches never report Full"),
                    }
                }
                InboxOp::Pop(max) => {
                    let mut got = vec![];
                    let n = rx.pop_batch(max, |v| got.push(v));
                    let expect: Vec<u16> = (0..max.min(model.len()))
                        .map(|_| model.pop_front().unwrap())
                        .collect();
                    prop_assert_eq!(n, expect.len());
                    prop_assert_eq!(got, expect);
                    popped += n as u64;
                }
                InboxOp::Close => {
                    let final_tail = q.close();
                    prop_assert_eq!(final_tail, pushed);
                    closed = true;
                }
            }
            prop_assert_eq!(q.sent(), pushed);
            prop_assert_eq!(q.received(), popped);
            prop_assert_eq!(q.is_closed(), closed);
            prop_assert_eq!(rx.has_pending(), !model.is_empty());
        }
    }
}

/// Cases proptest once shrank a failure to, kept as plain tests (there is
/// no failure file: see [`proptest_config`]).
#[test]
fn regressions() {
    // A batch push of nothing into a closed inbox is not a refusal.
    let (q, _rx) = inbox::<u16>(1);
    q.close();
    assert_eq!(q.try_push_batch(&mut vec![]), Ok(0));
    // `stage_from` of nothing into a ring whose consumer freed one slot:
    // the cached view may understate the room, never overstate it.
    check_ring(
        4,
        &[
            RingOp::Stage(0),
            RingOp::Stage(0),
            RingOp::Stage(0),
            RingOp::Stage(0),
            RingOp::Stage(0),
            RingOp::Publish,
            RingOp::Pop(1),
            RingOp::StageFrom(vec![]),
        ],
        |v| v,
    )
    .unwrap();
}
