//! The windowed example job: per key, events counted per tumbling window of
//! an event timestamp carried in the payload (not the wall clock, so every
//! run gives the same answers), one answer per (key, window) when the
//! window closes.
//!
//! Its state moves with its partitions: on acquiring a partition the job
//! asks for a replay from the partition's first message
//! ([`Job::replay_from`]), so the worker that takes a key over knows the
//! key's open window and counts on from it. Without that replay a window
//! open when its partition moved would be answered with the events after
//! the move only.
//!
//! # Input
//!
//! A payload is `"{key} {n} {ts}"`: `n` numbers the key's events `0, 1, 2,
//! …` in the order they are published, `ts` is the event's timestamp
//! (non-decreasing per key); `"{key} {n} end"` is the key's last event and
//! closes its last window. [`nth`] and [`end`] make the deterministic input
//! the example's publisher and its test use.
//!
//! # Order and duplicates
//!
//! A key's events are applied in the order of `n`: an event that arrives
//! before its predecessors (a redelivery overtaken by later events) waits
//! in a small per-key buffer, and an event whose `n` was applied already
//! (a redelivery, or a live copy of a replayed event) is dropped. A window
//! closes when the key's first event of a later window (or its end) is
//! applied.
//!
//! # Outputs
//!
//! An answer `A {key} {window} {count} {epoch} {process}` is written
//! through the [`FencedFileSink`] under the lease epoch of the event that
//! closed the window; [`read_answers`] reads them back de-duplicated by
//! (key, window), so an answer written twice counts once, and two
//! different counts for one window are an error.
//!
//! Replayed events rebuild state. Those at or below the consumer's ack
//! floor were acked, so their answers were written before the ack: they
//! emit nothing. Those above it were delivered but not acked (the previous
//! holder may have died between handling and writing): their answers are
//! written again, which the (key, window) de-duplication makes harmless
//! and which a crash between handling and writing makes necessary: the
//! live copy of such an event is a duplicate and is dropped.
//!
//! A real job replays from a checkpoint (a snapshot of its windows with the
//! stream sequence it covers) rather than from the partition's first
//! message; the example keeps the whole partition for clarity.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::job::{Delivery, Event, Job, JobWorker, Position, Refusals};
use crate::process::{self, JobReport, ProcessConfig};
use crate::sink::{output_path, FencedFileSink, SinkError};
use crate::worker::RunnerStats;
use crate::Error;

/// The timestamp of a key's end event: closes its last window.
pub const END: u64 = u64::MAX;

/// One event of the windowed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// The key.
    pub key: String,
    /// The key's event number, from 0.
    pub n: u64,
    /// The event's timestamp, or [`END`].
    pub ts: u64,
}

/// The payload of `tick`.
pub fn encode(tick: &Tick) -> Bytes {
    if tick.ts == END {
        Bytes::from(format!("{} {} end", tick.key, tick.n))
    } else {
        Bytes::from(format!("{} {} {}", tick.key, tick.n, tick.ts))
    }
}

/// The event of a payload, or why it is malformed.
pub fn decode(payload: &[u8]) -> Result<Tick, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8".to_string())?;
    let mut fields = text.split(' ');
    let (Some(key), Some(n), Some(ts), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(format!("{text:?}: not \"key n ts\""));
    };
    if key.is_empty() {
        return Err("empty key".into());
    }
    let n = n
        .parse()
        .map_err(|_| format!("{text:?}: bad event number"))?;
    let ts = match ts {
        "end" => END,
        ts => match ts.parse() {
            Ok(END) | Err(_) => return Err(format!("{text:?}: bad timestamp")),
            Ok(ts) => ts,
        },
    };
    Ok(Tick {
        key: key.to_string(),
        n,
        ts,
    })
}

/// The `i`-th event of the deterministic input over `keys` keys: keys
/// `w0 … w{keys-1}` in turn, each key's timestamps rising by 1 to 10 per
/// event.
pub fn nth(i: u64, keys: u64) -> Tick {
    let keys = keys.max(1);
    let n = i / keys;
    Tick {
        key: format!("w{}", i % keys),
        n,
        ts: n * 10 + i.wrapping_mul(7919) % 10,
    }
}

/// The end event of key `k` after `events` events of the input of [`nth`].
pub fn end(k: u64, keys: u64, events: u64) -> Tick {
    let keys = keys.max(1);
    Tick {
        key: format!("w{k}"),
        n: events / keys + u64::from(k < events % keys),
        ts: END,
    }
}

/// The answers of `ticks` (in any order) with windows `width` wide: the
/// reference a run must give, computed in one place with no windows
/// closing.
pub fn reference(
    ticks: impl IntoIterator<Item = Tick>,
    width: u64,
) -> BTreeMap<(String, u64), u64> {
    let mut answers = BTreeMap::new();
    for tick in ticks {
        if tick.ts != END {
            *answers.entry((tick.key, tick.ts / width)).or_default() += 1;
        }
    }
    answers
}

/// The windowed job: decodes [`Tick`]s, replays a partition on acquiring it
/// (unless built without), and tells the workers each acquired partition's
/// ack floor.
#[derive(Debug, Clone)]
pub struct WindowedJob {
    replay: bool,
    floors: Floors,
}

/// The ack floor of each partition as acquired: (epoch, floor).
type Floors = Arc<Mutex<HashMap<u32, (u64, u64)>>>;

impl Job for WindowedJob {
    type Key = String;
    type Msg = Tick;

    fn decode(&self, delivery: &Delivery<'_>) -> Result<(String, Tick), String> {
        let tick = decode(delivery.payload)?;
        Ok((tick.key.clone(), tick))
    }

    fn on_acquire(&self, partition: u32, epoch: u64, position: Option<Position>) {
        let floor = position.map_or(0, |p| p.ack_floor);
        let mut floors = self.floors.lock().unwrap_or_else(|e| e.into_inner());
        floors.insert(partition, (epoch, floor));
    }

    fn replay_from(&self, _partition: u32, _position: Position) -> Option<u64> {
        self.replay.then_some(1)
    }
}

/// One key's state.
#[derive(Debug)]
struct KeyState {
    partition: u32,
    /// The next event number to apply.
    next: u64,
    /// Events that came before their predecessors, by number.
    waiting: BTreeMap<u64, u64>,
    /// The open window and its count, if any.
    open: Option<(u64, u64)>,
}

/// A worker of the windowed job: the windows of the keys it owns.
pub struct WindowedWorker {
    process: u32,
    width: u64,
    floors: Floors,
    keys: HashMap<String, KeyState>,
    sink: FencedFileSink,
    /// The batch's answer lines by (partition, epoch).
    lines: BTreeMap<(u32, u64), String>,
    /// Answers whose write failed (not refused): written again next batch.
    retry: BTreeMap<(u32, u64), String>,
}

impl WindowedWorker {
    fn emit(&mut self, key: &str, partition: u32, epoch: u64, window: u64, count: u64) {
        use std::fmt::Write as _;
        let line = self.lines.entry((partition, epoch)).or_default();
        let _ = writeln!(line, "A {key} {window} {count} {epoch} {}", self.process);
    }
}

impl JobWorker for WindowedWorker {
    type Msg = Tick;

    fn handle(&mut self, event: Event<Tick>) {
        let emit = !event.replay || {
            let floors = self.floors.lock().unwrap_or_else(|e| e.into_inner());
            floors
                .get(&event.partition)
                .is_none_or(|&(epoch, floor)| epoch != event.epoch || event.seq > floor)
        };
        let Tick { key, n, ts } = event.msg;
        let state = self.keys.entry(key.clone()).or_insert(KeyState {
            partition: event.partition,
            next: 0,
            waiting: BTreeMap::new(),
            open: None,
        });
        if n < state.next || state.waiting.contains_key(&n) {
            return; // applied (or waiting) already
        }
        state.waiting.insert(n, ts);
        let mut closed = Vec::new();
        while let Some(ts) = state.waiting.remove(&state.next) {
            state.next += 1;
            let window = (ts != END).then(|| ts / self.width);
            match (state.open, window) {
                (Some((open, count)), Some(w)) if open == w => state.open = Some((w, count + 1)),
                (open, window) => {
                    if let Some((open, count)) = open {
                        closed.push((open, count));
                    }
                    state.open = window.map(|w| (w, 1));
                }
            }
        }
        if emit {
            for (window, count) in closed {
                self.emit(&key, event.partition, event.epoch, window, count);
            }
        }
    }

    fn flush(&mut self, refused: &mut Refusals) {
        let mut lines = std::mem::take(&mut self.retry);
        for (at, text) in std::mem::take(&mut self.lines) {
            lines.entry(at).or_default().push_str(&text);
        }
        for ((partition, epoch), text) in lines {
            match self.sink.write(partition, epoch, text.as_bytes()) {
                Ok(()) => {}
                // A newer holder has the partition: it answers from its
                // replay of these (unacked) events.
                Err(SinkError::Stale { .. }) => refused.refuse(partition, epoch),
                Err(e) => {
                    eprintln!("windowed: answers of partition {partition} not written ({e})");
                    refused.refuse(partition, epoch);
                    self.retry.insert((partition, epoch), text);
                }
            }
        }
    }

    fn release(&mut self, partition: u32) {
        self.keys.retain(|_, state| state.partition != partition);
        self.retry.retain(|&(p, _), _| p != partition);
    }
}

/// Runs one process of the windowed job with windows `width` wide, writing
/// answers into `config.log_dir` (required), until the stream is done or
/// `stop` resolves. With `replay` false, partitions are not replayed on
/// acquiring them: the answers are then wrong after a partition moves (the
/// test shows it).
pub async fn run(
    config: ProcessConfig,
    width: u64,
    replay: bool,
    stop: impl Future<Output = ()>,
) -> Result<JobReport<WindowedWorker>, Error> {
    let dir: PathBuf = config
        .log_dir
        .clone()
        .ok_or("the windowed job needs an output directory")?;
    std::fs::create_dir_all(&dir)?;
    let floors = Floors::default();
    let job = WindowedJob {
        replay,
        floors: Arc::clone(&floors),
    };
    let process = config.process;
    let width = width.max(1);
    let make_worker = move |_id| WindowedWorker {
        process,
        width,
        floors: Arc::clone(&floors),
        keys: HashMap::new(),
        sink: FencedFileSink::new(dir.clone()),
        lines: BTreeMap::new(),
        retry: BTreeMap::new(),
    };
    process::run_job(config, job, make_worker, stop).await
}

/// What [`read_answers`] found.
#[derive(Debug, Default)]
pub struct Answers {
    /// (key, window) → count, each once.
    pub answers: BTreeMap<(String, u64), u64>,
    /// Answer lines in all (an answer written twice counts twice here).
    pub lines: u64,
    /// Which processes wrote answers, and how many lines each.
    pub by_process: BTreeMap<u32, u64>,
}

/// Reads the answers of `partitions` partitions from `dir`, de-duplicated
/// by (key, window); an error names a malformed line or a window answered
/// with two different counts.
pub fn read_answers(dir: &Path, partitions: u32) -> Result<Answers, String> {
    let mut found = Answers::default();
    for p in 0..partitions {
        let path = output_path(dir, p);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let parsed = match fields[..] {
                ["A", key, window, count, _epoch, process] => {
                    match (window.parse(), count.parse(), process.parse()) {
                        (Ok(w), Ok(c), Ok(p)) => Some((key, w, c, p)),
                        _ => None,
                    }
                }
                _ => None,
            };
            let Some((key, window, count, process)) = parsed else {
                return Err(format!("{}: bad line {line:?}", path.display()));
            };
            found.lines += 1;
            *found.by_process.entry(process).or_default() += 1;
            let earlier = *found
                .answers
                .entry((key.to_string(), window))
                .or_insert(count);
            if earlier != count {
                return Err(format!(
                    "key {key} window {window}: answered {earlier} and {count}"
                ));
            }
        }
    }
    Ok(found)
}

/// Events each worker handled, summed (the library's counts).
pub fn handled(report: &JobReport<WindowedWorker>) -> u64 {
    report
        .workers
        .iter()
        .map(|(_, stats): &(WindowedWorker, RunnerStats)| stats.handled)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_bad_ones_are_named() {
        for tick in [nth(12, 5), end(3, 5, 12)] {
            assert_eq!(decode(&encode(&tick)), Ok(tick));
        }
        for bad in [
            &b""[..],
            b"w1 2",
            b"w1 x 3",
            b"w1 2 x",
            b" 2 3",
            b"w1 2 3 4",
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_input_is_numbered_per_key_with_rising_timestamps() {
        let (keys, events) = (7, 100);
        let mut next: HashMap<String, (u64, u64)> = HashMap::new();
        for tick in (0..events).map(|i| nth(i, keys)) {
            let (n, ts) = next.entry(tick.key.clone()).or_default();
            assert_eq!(tick.n, *n);
            assert!(tick.ts >= *ts);
            (*n, *ts) = (tick.n + 1, tick.ts);
        }
        for k in 0..keys {
            let end = end(k, keys, events);
            assert_eq!(next[&end.key].0, end.n, "{}", end.key);
        }
    }
}
