//! The tour: count the words of "a b a c" on one pinned worker per
//! physical core, wait until they are handled, print the per-channel
//! statistics, shut down and show which worker owns which word.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The three steps of every shardpool program: implement [`Worker`]
//! (state + `handle`), configure a [`PoolConfig`], read [`PoolStats`].
use shardpool::prelude::*; // Pool, PoolConfig, Worker, Context, WorkerId, Affinity, ...
use std::collections::HashMap;

#[derive(Default)]
struct WordCount {
    counts: HashMap<String, u64>,
}

impl Worker for WordCount {
    type Msg = String;
    fn handle(&mut self, word: String, _ctx: &mut Context<'_, String>) {
        *self.counts.entry(word).or_default() += 1;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = PoolConfig::default() // one pinned worker per physical core
        .affinity(Affinity::PhysicalCores)
        .queue_capacity(4096);
    let pool = Pool::start(config, |_id: WorkerId| WordCount::default())?;
    let tx = pool.sender();
    for w in "a b a c".split_whitespace() {
        tx.send_keyed(&w, w.to_string())?; // same key -> same worker, always
    }
    // Sends only queue the words: wait until the workers have handled all 4.
    while pool.stats().handled() < 4 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    println!("{}", pool.stats()); // per-channel table: 4 received, 0 in flight
    let workers: Vec<WordCount> = pool.shutdown()?; // drains every queue, joins, id order
    assert_eq!(
        workers
            .iter()
            .map(|w| w.counts.values().sum::<u64>())
            .sum::<u64>(),
        4
    );
    for (id, w) in workers.iter().enumerate() {
        let mut words: Vec<_> = w.counts.iter().collect();
        words.sort();
        println!("w{id} owns {words:?}");
    }
    Ok(())
}
