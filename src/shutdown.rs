//! Shutdown: closing the inboxes, and detecting that the whole pool is
//! quiescent while workers may still be sending to each other.
//!
//! Every channel counts on both ends, each end written by one thread:
//! a ring's `sent` (by its producer, at `send_to`, overflow included) and its
//! `received` (the consumer's head); an inbox's final tail (fixed once it is
//! closed) and its head. A message is in flight exactly while
//! `sent > received` somewhere, and a worker counts a message as received only
//! after the batch that handled it is done — so the sends it made while
//! handling it are already counted.
//!
//! Reading N² counters while workers run cannot by itself prove quiescence
//! (`tick` may send at any time). So the detector:
//!
//! 1. waits until the counters *look* quiescent;
//! 2. publishes a FREEZE control word (a new epoch) and rings every worker;
//!    each worker, at the top of its loop (nothing staged, nothing being
//!    handled), acks the epoch and waits;
//! 3. with every worker frozen, reads the counters again — now exact: if all
//!    channels are balanced it publishes STOP, else RUN and goes back to 1.

use std::sync::atomic::Ordering::SeqCst;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::pool::{control, Shared};

/// Whether every channel has received all that was sent into it.
/// `finals[w]` is worker `w`'s closed-inbox final tail.
fn balanced<M>(shared: &Shared<M>, finals: &[u64]) -> bool {
    shared.workers.iter().zip(finals).all(|(w, &fin)| {
        w.inbox.received() >= fin
            && w.inbound
                .iter()
                .all(|ring| ring.received() >= ring.tx.sent.get_acquire())
    })
}

/// Waits, with a backoff from spinning up to 1 ms sleeps, until `done`.
fn wait_until(mut done: impl FnMut() -> bool) {
    let mut round = 0u32;
    while !done() {
        round += 1;
        if round < 64 {
            std::hint::spin_loop();
        } else if round < 128 {
            std::thread::yield_now();
        } else {
            let us = (round - 127).min(20) as u64 * 50;
            std::thread::sleep(Duration::from_micros(us));
        }
    }
}

fn publish<M>(shared: &Shared<M>, word: u64) {
    shared.control.store(word, SeqCst);
    for w in shared.workers.iter() {
        w.signal.wake_now();
    }
}

/// Drives the pool to quiescence and then stops every worker. The inboxes
/// must be closed already; `finals` are their final tails.
pub(crate) fn quiesce<M, T>(shared: &Shared<M>, finals: &[u64], threads: &[JoinHandle<T>]) {
    let mut epoch = control::epoch(shared.control.load(SeqCst));
    loop {
        wait_until(|| balanced(shared, finals));
        epoch += 1;
        publish(shared, control::word(epoch, control::FREEZE));
        wait_until(|| {
            shared
                .workers
                .iter()
                .zip(threads)
                .all(|(w, t)| w.counters.ack.get_acquire() == epoch || t.is_finished())
        });
        if balanced(shared, finals) {
            publish(shared, control::word(epoch, control::STOP));
            return;
        }
        publish(shared, control::word(epoch, control::RUN));
    }
}
