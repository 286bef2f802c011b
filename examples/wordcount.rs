//! Word count on every core: the shardpool demo.
//!
//! ```text
//! cargo run --release --example wordcount                       # 20 M words
//! cargo run --release --example wordcount -- --words 2000000 --verify
//! cargo run --example wordcount -- --small --verify             # CI-sized
//! ```
//!
//! Flags: `--words N` (corpus size, default 20 000 000), `--small` (200 000
//! words), `--workers N`, `--unpinned`, `--inbox N` (inbox slots, in
//! chunks, default 32), `--capacity N` (ring slots, default 1024),
//! `--batch N` (words per mesh message, default 256),
//! `--chunk N` (words per feeder message, default 4096),
//! `--partitioner hash|jump|anchor` (`rr` is refused, see below),
//! `--no-combine` (forward every occurrence, see below), `--seed N`,
//! `--verify` (also count on one thread and compare), `--quiet` (no
//! progress line).
//!
//! # How it works
//!
//! ```text
//!   feeder thread ── Text(chunk of ~4096 words), round-robin ──▶ inbox(w_i)
//!   w_i: split the chunk and count it locally (the "combiner": a small map
//!        of &str borrowed from the chunk, no allocation per word);
//!        for each distinct (word, n): owner = ctx.worker_for(word)
//!        owner == me  -> add n here
//!        otherwise    -> append (word, n) to the batch for `owner`;
//!                        a full batch (256 entries) -> ctx.send_to(owner, Words(batch))
//!   w_i.tick(): send every partial batch (tick runs after each loop batch)
//!   w_owner: Words(batch) -> add each (word, n)
//! ```
//!
//! Every word is counted by exactly one worker, its *owner* under the
//! pool's partitioner, so each worker's `HashMap` holds a disjoint slice of
//! the vocabulary and no map is ever shared or locked.
//!
//! **Why batches.** A message through a ring costs a few nanoseconds of
//! queue work plus the cache misses of moving it between cores; a word
//! costs about as much to count. Sending one word per message would spend
//! most of the time in the queues. So the feeder sends chunks of text and
//! the workers forward *batches* of words (one `String`, words separated by
//! spaces, one allocation per batch), which cuts the per-message cost by
//! the batch size. Try `--batch 1` to see the difference in the stats.
//!
//! **Why a combiner.** Natural text repeats itself (Zipf): a 4096-word
//! chunk holds only about a third as many distinct words. Counting the
//! chunk locally first and forwarding `(word, n)` pairs sends about a third
//! as much data through the mesh, and the per-chunk map is small enough to
//! stay in L1/L2. `--no-combine` forwards every occurrence instead, which
//! is the textbook shuffle and roughly doubles the work per word.
//!
//! **Why not `rr`.** [`RoundRobin`](shardpool::partitioners::RoundRobin)
//! ignores the key: the same word would be sent to a different worker each
//! time, so no worker owns a word and every worker would end up with a copy
//! of the whole vocabulary. Keyed counting needs a partitioner that is a
//! function of the key (`hash`, `jump`, `anchor`), so `--partitioner rr` is
//! refused.
//!
//! **Why a small inbox.** A chunk is a lot of work (4096 words, tens of
//! microseconds), so a worker needs only a few of them queued to never go
//! hungry. The inbox is the feeder's lookahead: 32 chunks keep each worker
//! busy for about a millisecond, while the pool's default of 1024 would let
//! the feeder park almost half of the corpus in the inboxes (and let one
//! loop iteration take 64 chunks at once, whose word batches then burst
//! into the rings). The summary prints the peak of queued messages; try
//! `--inbox 1024` to see it grow about tenfold, with no gain in speed.
//!
//! **Reading the stats.** `overflowed` on the `w0 → w1` and `w1 → w0`
//! rings counts word batches that found the peer's ring full: a burst of
//! chunks yields more batches for the peer than its ring takes in one go.
//! The overflow absorbs the burst without ever blocking a worker (no
//! deadlock between two workers feeding each other) and is drained in
//! order; while a worker's own sends wait there beyond
//! `PoolConfig::overflow_pause`, it takes nothing more from its inbox, so
//! the feeder waits instead of the overflow growing.
//!
//! The corpus is synthetic and deterministic: `--seed` picks it. Words are
//! drawn from a 50 000-word vocabulary with Zipf's law (the `k`-th most
//! common word has frequency ∝ 1/k, as in natural text), so the owner of
//! the most common words gets more work: the per-worker `handled` column of
//! the final table shows the skew.
//!
//! `tests/examples.rs` compiles this file as a module and checks
//! [`count_parallel`] against [`count_reference`].
#![allow(dead_code)] // also compiled as a module of tests/examples.rs

use std::collections::HashMap;
use std::error::Error;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write as _;
use std::time::{Duration, Instant};

use shardpool::partitioners::{HashPartitioner, JumpAnchor, JumpHash};
use shardpool::placement::{allowed_cpus, plan, Topology};
use shardpool::prelude::*;

/// Size of the synthetic vocabulary.
pub const VOCABULARY: usize = 50_000;

/// Which key → worker function the pool uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// [`HashPartitioner`] (the default).
    Hash,
    /// [`JumpHash`].
    Jump,
    /// [`JumpAnchor`] over all workers.
    Anchor,
}

/// Everything the flags set.
#[derive(Debug, Clone)]
pub struct Options {
    /// Words in the corpus.
    pub words: usize,
    /// Words per feeder message.
    pub chunk: usize,
    /// Words per worker-to-worker message.
    pub batch: usize,
    /// Inbox capacity (chunks the feeder may queue per worker).
    pub inbox: usize,
    /// Ring capacity (word batches in flight per pair of workers).
    pub capacity: usize,
    /// Worker count (`None`: one per physical core).
    pub workers: Option<usize>,
    /// Where the workers run.
    pub affinity: Affinity,
    /// The partitioner.
    pub routing: Routing,
    /// The corpus seed.
    pub seed: u64,
    /// Count each chunk locally before routing.
    pub combine: bool,
    /// Print a live progress line on stderr.
    pub progress: bool,
    /// Also count on one thread and compare.
    pub verify: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            words: 20_000_000,
            chunk: 4096,
            batch: 256,
            inbox: 32,
            capacity: 1024,
            workers: None,
            affinity: Affinity::PhysicalCores,
            routing: Routing::Hash,
            seed: 42,
            combine: true,
            progress: true,
            verify: false,
        }
    }
}

// ---------------------------------------------------------------------------
// The corpus

/// SplitMix64: a tiny, fast, deterministic generator.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The `rank`-th word of the vocabulary: `rank + 1` written in base 16
/// with a two-letter syllable per digit (so every word is distinct and the
/// most common words are the shortest).
pub fn word(rank: usize) -> String {
    const SYLLABLES: [&str; 16] = [
        "ka", "ri", "to", "mu", "se", "na", "lo", "pe", "di", "zu", "fa", "go", "bi", "ve", "ho",
        "ty",
    ];
    let mut digits = Vec::new();
    let mut n = rank + 1;
    while n > 0 {
        digits.push(n % 16);
        n /= 16;
    }
    digits.iter().rev().map(|&d| SYLLABLES[d]).collect()
}

/// `words` Zipf-distributed words, as chunks of `chunk` space-separated
/// words (the last one shorter). Deterministic for a given `seed`.
pub fn corpus(words: usize, chunk: usize, seed: u64) -> Vec<String> {
    let chunk = chunk.max(1);
    let vocabulary: Vec<String> = (0..VOCABULARY).map(word).collect();
    // Cumulative Zipf(s = 1) distribution over the ranks.
    let mut cdf = Vec::with_capacity(VOCABULARY);
    let mut total = 0.0;
    for k in 1..=VOCABULARY {
        total += 1.0 / k as f64;
        cdf.push(total);
    }
    // A guide table: for each of 2^16 equal slices of [0, total), the
    // first rank whose cumulative weight passes the slice's start. A draw
    // starts its search there and walks a few ranks at most, instead of a
    // binary search over the whole 400 KB table (same ranks; generating
    // the default corpus went from 3.7 s to 2.1 s).
    const SLICES: usize = 1 << 16;
    let guide: Vec<usize> = (0..SLICES)
        .map(|b| {
            let start = b as f64 * total / SLICES as f64;
            cdf.partition_point(|&c| c <= start)
        })
        .collect();
    let mut rng = Rng(seed);
    let mut chunks = Vec::with_capacity(words.div_ceil(chunk));
    let mut left = words;
    while left > 0 {
        let n = left.min(chunk);
        left -= n;
        let mut text = String::with_capacity(n * 8);
        for i in 0..n {
            let u = rng.next_f64() * total;
            let mut rank = guide[((u / total * SLICES as f64) as usize).min(SLICES - 1)];
            while rank < VOCABULARY - 1 && cdf[rank] <= u {
                rank += 1;
            }
            if i > 0 {
                text.push(' ');
            }
            text.push_str(&vocabulary[rank]);
        }
        chunks.push(text);
    }
    chunks
}

// ---------------------------------------------------------------------------
// Counting

/// The Fx hash (rustc's): a few cycles per word, good enough for short
/// ASCII keys in a private map.
#[derive(Default, Clone, Copy)]
pub struct Fx(u64);

impl Fx {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for Fx {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ rest.len() as u64);
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Word → count.
pub type Counts = HashMap<Box<str>, u64, BuildHasherDefault<Fx>>;

#[inline]
fn bump(counts: &mut Counts, word: &str, n: u64) {
    match counts.get_mut(word) {
        Some(c) => *c += n,
        None => {
            counts.insert(word.into(), n);
        }
    }
}

/// Counts every word on the calling thread: the reference result.
pub fn count_reference(chunks: &[String]) -> Counts {
    let mut counts = Counts::default();
    for chunk in chunks {
        for w in chunk.split_ascii_whitespace() {
            bump(&mut counts, w, 1);
        }
    }
    counts
}

/// The messages of the pool.
pub enum Msg {
    /// Raw text from the feeder: split it and route each word to its owner.
    Text(String),
    /// Words this worker owns, space-separated, and how many times each
    /// was seen (same order): add them.
    Words(String, Vec<u32>),
}

/// One shard of the count.
pub struct Counter {
    /// The words this worker owns.
    counts: Counts,
    /// Per owner, the batch being filled: words and their counts.
    batches: Vec<(String, Vec<u32>)>,
    batch: usize,
    combine: bool,
    /// The most distinct words seen in one chunk: the combiner's map is
    /// created with that capacity, so it never grows.
    chunk_hint: usize,
}

impl Counter {
    fn new(batch: usize, combine: bool) -> Self {
        Counter {
            counts: Counts::default(),
            batches: Vec::new(),
            batch: batch.max(1),
            combine,
            chunk_hint: 0,
        }
    }

    /// Counts `n` occurrences of `w` here or queues them for their owner.
    #[inline]
    fn route(&mut self, w: &str, n: u32, ctx: &mut Context<'_, Msg>) {
        let owner = ctx.worker_for(w).index();
        if owner == ctx.id().index() {
            bump(&mut self.counts, w, n as u64); // no message needed
            return;
        }
        let (text, counts) = &mut self.batches[owner];
        if !counts.is_empty() {
            text.push(' ');
        }
        text.push_str(w);
        counts.push(n);
        if counts.len() == self.batch {
            self.send_batch(owner, ctx);
        }
    }

    fn send_batch(&mut self, owner: usize, ctx: &mut Context<'_, Msg>) {
        let (text, counts) = &mut self.batches[owner];
        if counts.is_empty() {
            return;
        }
        let text = std::mem::replace(text, String::with_capacity(self.batch * 8));
        let counts = std::mem::replace(counts, Vec::with_capacity(self.batch));
        // Never blocks: a full ring spills into the pair's overflow.
        if let Err(e) = ctx.send_to(WorkerId::from(owner), Msg::Words(text, counts)) {
            // Only if the owner panicked: this demo has no recovery.
            panic!("worker {owner} is gone: {e}");
        }
    }
}

impl Worker for Counter {
    type Msg = Msg;

    fn on_start(&mut self, ctx: &mut Context<'_, Msg>) {
        // Allocated here, on the worker's own (pinned) thread.
        self.batches = (0..ctx.workers())
            .map(|_| {
                (
                    String::with_capacity(self.batch * 8),
                    Vec::with_capacity(self.batch),
                )
            })
            .collect();
    }

    fn handle(&mut self, msg: Msg, ctx: &mut Context<'_, Msg>) {
        match msg {
            Msg::Text(text) if self.combine => {
                // The combiner: count the chunk first, keyed by slices of
                // the chunk itself, then route each distinct word once.
                let mut local: HashMap<&str, u32, BuildHasherDefault<Fx>> =
                    HashMap::with_capacity_and_hasher(self.chunk_hint, Default::default());
                for w in text.split_ascii_whitespace() {
                    *local.entry(w).or_default() += 1;
                }
                self.chunk_hint = self.chunk_hint.max(local.len());
                for (w, n) in local {
                    self.route(w, n, ctx);
                }
            }
            Msg::Text(text) => {
                for w in text.split_ascii_whitespace() {
                    self.route(w, 1, ctx);
                }
            }
            Msg::Words(words, counts) => {
                for (w, n) in words.split_ascii_whitespace().zip(counts) {
                    bump(&mut self.counts, w, n as u64);
                }
            }
        }
    }

    /// Runs after every batch of messages the loop handled (and when idle):
    /// send the partial batches, so no word waits long. This is also what
    /// makes `shutdown` exact: the freeze protocol only stops a worker at
    /// the top of its loop, after `tick` has sent these.
    fn tick(&mut self, ctx: &mut Context<'_, Msg>) {
        for owner in 0..self.batches.len() {
            self.send_batch(owner, ctx);
        }
    }
}

/// What [`count_parallel`] found.
pub struct Outcome {
    /// The merged counts.
    pub counts: Counts,
    /// Whether every word was counted by one worker only (always true for a
    /// key-consistent partitioner).
    pub disjoint: bool,
    /// The pool's statistics, taken once every queue had drained.
    pub stats: PoolStats,
    /// The most messages queued in the pool (inboxes, rings, overflows) in
    /// any of the 10 ms snapshots taken while it ran, and the most of them
    /// waiting in the workers' overflows.
    pub peak_queued: usize,
    /// See `peak_queued`.
    pub peak_overflow: u64,
    /// From the first send to the end of `shutdown`.
    pub elapsed: Duration,
}

fn start_pool(opts: &Options) -> Result<Pool<Counter>, Box<dyn Error>> {
    let mut config = PoolConfig::default()
        .affinity(opts.affinity.clone())
        .inbox_capacity(opts.inbox)
        .ring_capacity(opts.capacity)
        .name("wordcount");
    if let Some(n) = opts.workers {
        config = config.workers(n);
    }
    config = match opts.routing {
        Routing::Hash => config.partitioner(HashPartitioner),
        Routing::Jump => config.partitioner(JumpHash),
        Routing::Anchor => {
            // JumpAnchor is sized to the membership: resolve the default
            // worker count the way the pool will.
            let n = match opts.workers {
                Some(n) => n,
                None => plan(
                    &Topology::discover(),
                    &allowed_cpus(),
                    &opts.affinity,
                    NumaFill::Compact,
                    None,
                )?
                .len(),
            };
            config.partitioner(JumpAnchor::new(n))
        }
    };
    let (batch, combine) = (opts.batch, opts.combine);
    Ok(Pool::start(config, move |_id| {
        Counter::new(batch, combine)
    })?)
}

/// Counts the words of `chunks` on a pool: a feeder thread sends the
/// chunks round-robin, the workers route every word to its owner.
pub fn count_parallel(chunks: Vec<String>, opts: &Options) -> Result<Outcome, Box<dyn Error>> {
    let pool = start_pool(opts)?;
    let n = pool.workers();
    let chunk_count = chunks.len() as u64;
    let tx = pool.sender();
    let start = Instant::now();
    let (mut peak_queued, mut peak_overflow) = (0, 0);
    let stats = std::thread::scope(|s| -> Result<PoolStats, Box<dyn Error>> {
        let feeder = s.spawn(move || {
            for (i, chunk) in chunks.into_iter().enumerate() {
                // Blocks (backs off, then parks) while that inbox is full.
                tx.send_to(WorkerId::from(i % n), Msg::Text(chunk))
                    .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
        // The main thread watches: a snapshot every 10 ms, a progress line
        // every 200 ms, until the feeder is done and every queue is empty.
        let (mut prev, mut prev_at, mut prev_fed) = (pool.stats(), Instant::now(), 0u64);
        loop {
            std::thread::sleep(Duration::from_millis(10));
            let now = pool.stats();
            peak_queued = peak_queued.max(now.depth());
            peak_overflow = peak_overflow.max(now.workers.iter().map(|w| w.overflow_queued).sum());
            let done = feeder.is_finished() && now.depth() == 0;
            if opts.progress && (done || prev_at.elapsed() >= Duration::from_millis(200)) {
                let window = now.delta(&prev);
                let dt = prev_at.elapsed();
                let fed: u64 = (0..n)
                    .filter_map(|w| now.inbox(WorkerId::from(w)))
                    .map(|c| c.received)
                    .sum();
                let words_in = (fed - prev_fed) as f64 * opts.chunk as f64;
                let mut line = format!(
                    "\r[{:5.1} s] chunks {fed}/{chunk_count}  {:>6.1} M words/s in  {:>6.3} M msg/s  handled:",
                    start.elapsed().as_secs_f64(),
                    words_in / dt.as_secs_f64().max(1e-9) / 1e6,
                    window.handled_per_sec(dt) / 1e6,
                );
                for w in &now.workers {
                    line.push_str(&format!(" w{}={}", w.id, w.handled));
                }
                line.push_str(&format!("  in flight {}   ", now.depth()));
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(line.as_bytes());
                let _ = err.flush();
                (prev, prev_at, prev_fed) = (now.clone(), Instant::now(), fed);
            }
            if done {
                if opts.progress {
                    eprintln!();
                }
                feeder.join().expect("the feeder panicked")?;
                return Ok(now);
            }
        }
    })?;
    // Drains whatever is still in flight (exactly), stops, joins.
    let workers = pool.shutdown()?;
    let elapsed = start.elapsed();

    let mut counts = Counts::default();
    let mut disjoint = true;
    for w in workers {
        for (word, c) in w.counts {
            match counts.get_mut(&word) {
                Some(total) => {
                    disjoint = false;
                    *total += c;
                }
                None => {
                    counts.insert(word, c);
                }
            }
        }
    }
    Ok(Outcome {
        counts,
        disjoint,
        stats,
        peak_queued,
        peak_overflow,
        elapsed,
    })
}

/// The `k` most common words, most common first (ties by word).
pub fn top(counts: &Counts, k: usize) -> Vec<(&str, u64)> {
    let mut all: Vec<(&str, u64)> = counts.iter().map(|(w, &c)| (&**w, c)).collect();
    all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    all.truncate(k);
    all
}

// ---------------------------------------------------------------------------
// The command line

fn usage() -> ! {
    eprintln!(
        "usage: wordcount [--words N | --small] [--workers N] [--unpinned] [--inbox N]\n\
         \x20                [--capacity N] [--batch N] [--chunk N] [--partitioner hash|jump|anchor]\n\
         \x20                [--no-combine] [--seed N] [--verify] [--quiet]"
    );
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut number = |name: &str| -> usize {
            let v = args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value");
                usage()
            });
            v.replace('_', "").parse().unwrap_or_else(|_| {
                eprintln!("{name}: `{v}` is not a number");
                usage()
            })
        };
        match flag.as_str() {
            "--words" => opts.words = number("--words"),
            "--small" => opts.words = 200_000,
            "--workers" => opts.workers = Some(number("--workers")),
            "--inbox" => opts.inbox = number("--inbox"),
            "--capacity" => opts.capacity = number("--capacity"),
            "--batch" => opts.batch = number("--batch"),
            "--chunk" => opts.chunk = number("--chunk"),
            "--seed" => opts.seed = number("--seed") as u64,
            "--unpinned" => opts.affinity = Affinity::None,
            "--verify" => opts.verify = true,
            "--quiet" => opts.progress = false,
            "--no-combine" => opts.combine = false,
            "--partitioner" => {
                opts.routing = match args.next().as_deref() {
                    Some("hash") => Routing::Hash,
                    Some("jump") => Routing::Jump,
                    Some("anchor") => Routing::Anchor,
                    Some("rr") => {
                        eprintln!(
                            "--partitioner rr: round-robin ignores the key, so the same word \
                             would go to a different worker each time and no worker would own \
                             it (every worker would hold a copy of the vocabulary). Counting by \
                             key needs a key-consistent partitioner: hash, jump or anchor."
                        );
                        std::process::exit(2)
                    }
                    other => {
                        eprintln!("--partitioner: unknown {other:?}");
                        usage()
                    }
                }
            }
            "-h" | "--help" => usage(),
            other => {
                eprintln!("unknown argument `{other}`");
                usage()
            }
        }
    }
    opts
}

fn main() -> Result<(), Box<dyn Error>> {
    let opts = parse_args();
    if opts.batch == 0 || opts.chunk == 0 {
        eprintln!("--batch and --chunk must be at least 1");
        usage();
    }

    let t = Instant::now();
    let chunks = corpus(opts.words, opts.chunk, opts.seed);
    let bytes: usize = chunks.iter().map(|c| c.len() + 1).sum();
    println!(
        "corpus: {} words, {:.1} MB, {} chunks (generated in {:.2} s)",
        opts.words,
        bytes as f64 / 1e6,
        chunks.len(),
        t.elapsed().as_secs_f64()
    );
    let reference = opts.verify.then(|| {
        let t = Instant::now();
        let r = count_reference(&chunks);
        let s = t.elapsed().as_secs_f64();
        println!(
            "single thread: {s:.2} s ({:.1} M words/s)",
            opts.words as f64 / s / 1e6
        );
        r
    });

    let out = count_parallel(chunks, &opts)?;
    let secs = out.elapsed.as_secs_f64();
    println!(
        "{} workers: {secs:.2} s, {:.1} M words/s, {:.1} MB/s",
        out.stats.workers.len(),
        opts.words as f64 / secs / 1e6,
        bytes as f64 / secs / 1e6,
    );
    // A message is a chunk of text or a batch of (word, count) pairs, never
    // a single word: that is why messages/s is far below words/s.
    let (mut chunks_in, mut batches) = (0u64, 0u64);
    for c in &out.stats.channels {
        if c.from == Endpoint::External {
            chunks_in += c.received; // the feeder's chunks, through the inboxes
        } else {
            batches += c.received; // word batches, worker to worker
        }
    }
    println!(
        "messages: {chunks_in} chunks of up to {} words into the inboxes, {batches} batches of \
         up to {} (word, count) pairs between workers ({:.1} k messages/s; a message is a \
         chunk or a batch, not a word)",
        opts.chunk,
        opts.batch,
        (chunks_in + batches) as f64 / secs / 1e3
    );
    println!(
        "peak queued messages: {} (inboxes, rings and overflows; of them in overflow: {}; 10 ms snapshots)",
        out.peak_queued, out.peak_overflow
    );
    println!("\ntop 10 of {} distinct words:", out.counts.len());
    let total: u64 = out.counts.values().sum();
    for (i, (w, c)) in top(&out.counts, 10).into_iter().enumerate() {
        println!(
            "{:>3}. {w:<10} {c:>12} {:>6.2}%",
            i + 1,
            100.0 * c as f64 / total.max(1) as f64
        );
    }
    println!("\n{}", out.stats);

    if let Some(reference) = reference {
        if out.counts == reference && out.disjoint && total == opts.words as u64 {
            println!("verify: OK, identical to the single-threaded count");
        } else {
            eprintln!(
                "verify: MISMATCH (equal maps: {}, one owner per word: {}, {total} of {} words)",
                out.counts == reference,
                out.disjoint,
                opts.words
            );
            std::process::exit(1);
        }
    }
    Ok(())
}
