//! A shard-local store: keys to values with optional expiry.
//!
//! One `Store` per shard, owned by one thread (a worker) or behind one lock
//! (the tokio peer). Keys and values are copied out of the request buffer
//! on write, so a stored value never pins a connection's read buffer, and
//! kept as [`SmallBytes`], inline in the table's slots when short: a GET
//! then touches one slot instead of the slot, the key and the value.
//!
//! Expiry is lazy, as in Redis: a read or write of an expired key removes
//! it first. [`Store::expire_some`] removes up to a budget of keys whose
//! time has passed, for a worker's `tick`; it pops a deadline heap, so it
//! never scans live keys. A rewrite pushes a new deadline and leaves the
//! old one in the heap, skipped when popped; once the heap holds more than
//! twice as many deadlines as there are keys (plus a small slack), it is
//! rebuilt from the keys' own deadlines, so its size is bounded by the
//! number of keys, not of writes, at an amortized O(1) per write. Time
//! comes from a [`Clock`], so tests advance a [`ManualClock`] instead of
//! sleeping.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::command::{parse_i64, Command, Expiry, SetCondition, COMMAND_COUNT, NOT_AN_INTEGER};
use super::small::SmallBytes;
use super::Reply;

/// Where a [`Store`] reads the time.
pub trait Clock {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    start: Instant,
    elapsed_nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock stopped at the current instant.
    pub fn new() -> Self {
        ManualClock {
            start: Instant::now(),
            elapsed_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock (and every clone) forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.elapsed_nanos
            .fetch_add(by.as_nanos() as u64, Ordering::Relaxed);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + Duration::from_nanos(self.elapsed_nanos.load(Ordering::Relaxed))
    }
}

/// One stored value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: SmallBytes,
    /// When the key stops existing, if ever.
    pub expires_at: Option<Instant>,
}

impl Entry {
    /// Whether the entry no longer exists at `now`.
    #[inline]
    pub fn expired_at(&self, now: Instant) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// Deadlines the heap may hold beyond twice the number of keys before it
/// is rebuilt.
const DEADLINE_SLACK: usize = 64;

/// The time for one command, read from the clock only if an entry with an
/// expiry is looked at, and then once: most keys have none, and a clock
/// read was 2 % of the kv server's CPU under pipelined GETs.
#[derive(Default)]
struct LazyNow(Option<Instant>);

impl LazyNow {
    fn get<C: Clock>(&mut self, clock: &C) -> Instant {
        *self.0.get_or_insert_with(|| clock.now())
    }

    /// Whether `entry` no longer exists now ([`Entry::expired_at`], with
    /// the clock read only for an entry that has an expiry).
    fn expired<C: Clock>(&mut self, entry: &Entry, clock: &C) -> bool {
        entry.expires_at.is_some() && entry.expired_at(self.get(clock))
    }
}

/// A shard's keys and values.
#[derive(Debug)]
pub struct Store<C: Clock = SystemClock> {
    map: HashMap<SmallBytes, Entry, ahash::RandomState>,
    /// (deadline, key) for every key's current expiry, and stale pairs
    /// (the key was rewritten or deleted since), skipped when popped;
    /// rebuilt when a write with an expiry finds it above
    /// [`Store::max_expiry_entries`].
    deadlines: BinaryHeap<Reverse<(Instant, Bytes)>>,
    clock: C,
    expired: u64,
}

impl Store<SystemClock> {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(SystemClock)
    }
}

impl Default for Store<SystemClock> {
    fn default() -> Self {
        Self::new()
    }
}

/// An aHash state with keys drawn from std's per-process random keys: as
/// hard to flood as std's `HashMap`, cheaper per short key than SipHash.
fn seeded_hasher() -> ahash::RandomState {
    use std::hash::BuildHasher;
    let std_keys = std::collections::hash_map::RandomState::new();
    let seed = |i: u64| std_keys.hash_one(i);
    ahash::RandomState::with_seeds(seed(0), seed(1), seed(2), seed(3))
}

impl<C: Clock> Store<C> {
    /// An empty store reading time from `clock`.
    pub fn with_clock(clock: C) -> Self {
        Store {
            map: HashMap::with_hasher(seeded_hasher()),
            deadlines: BinaryHeap::new(),
            clock,
            expired: 0,
        }
    }

    /// Keys stored, counting expired keys not removed yet (as Redis's
    /// `DBSIZE` does).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is stored.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Keys removed because they expired, so far.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Deadlines the expiry bookkeeping holds, stale ones included. After
    /// every write with an expiry it is at most
    /// [`Store::max_expiry_entries`], however often keys are rewritten
    /// (deletes shrink the keys, not the heap: their deadlines go when
    /// [`Store::expire_some`] reaches them or at the next rebuild).
    pub fn expiry_entries(&self) -> usize {
        self.deadlines.len()
    }

    /// The bound on [`Store::expiry_entries`]: twice the keys stored, plus
    /// a slack of 64 so a small store is not rebuilt at every write.
    pub fn max_expiry_entries(&self) -> usize {
        2 * self.map.len() + DEADLINE_SLACK
    }

    /// Rebuilds the deadline heap from the keys' current expiries, leaving
    /// no stale pair: O(keys), and done only when the stale pairs
    /// outnumber the keys, so amortized O(1) per write.
    fn rebuild_deadlines(&mut self) {
        let current: Vec<_> = self
            .map
            .iter()
            .filter_map(|(key, entry)| {
                entry
                    .expires_at
                    .map(|at| Reverse((at, Bytes::copy_from_slice(key))))
            })
            .collect();
        self.deadlines = BinaryHeap::from(current);
    }

    /// The live entry at `key` (an expired one is removed first).
    pub fn get(&mut self, key: &[u8]) -> Option<&Entry> {
        self.remove_if_expired(key, &mut LazyNow::default());
        self.map.get(key)
    }

    /// Removes up to `budget` keys whose expiry has passed; returns how
    /// many it removed. Call it from a worker's `tick`.
    pub fn expire_some(&mut self, budget: usize) -> usize {
        let now = self.clock.now();
        let mut removed = 0;
        while removed < budget {
            match self.deadlines.peek() {
                Some(Reverse((deadline, _))) if *deadline <= now => {}
                _ => break,
            }
            let Some(Reverse((deadline, key))) = self.deadlines.pop() else {
                break;
            };
            if self
                .map
                .get(&key[..])
                .is_some_and(|e| e.expires_at == Some(deadline))
            {
                self.map.remove(&key[..]);
                self.expired += 1;
                removed += 1;
            }
        }
        removed
    }

    fn remove_if_expired(&mut self, key: &[u8], now: &mut LazyNow) {
        if self
            .map
            .get(key)
            .is_some_and(|e| now.expired(e, &self.clock))
        {
            self.remove_expired(key);
        }
    }

    fn remove_expired(&mut self, key: &[u8]) {
        self.map.remove(key);
        self.expired += 1;
    }

    /// Stores `value` at `key`. An existing key keeps its allocation (the
    /// hot path of SET on a populated keyspace allocates only the value).
    /// Keys and values are copied out of the request: a slice of it would
    /// keep the whole pipelined request buffer alive.
    fn insert(&mut self, key: &[u8], value: SmallBytes, expires_at: Option<Instant>) {
        if let Some(at) = expires_at {
            self.deadlines
                .push(Reverse((at, Bytes::copy_from_slice(key))));
        }
        let entry = Entry { value, expires_at };
        match self.map.get_mut(key) {
            Some(slot) => *slot = entry,
            None => {
                self.map.insert(SmallBytes::copy_from_slice(key), entry);
            }
        }
        if expires_at.is_some() && self.deadlines.len() > self.max_expiry_entries() {
            self.rebuild_deadlines();
        }
    }

    /// Runs `command` against this store (all its keys are taken to live
    /// here) and returns the reply. Keyless commands are answered too.
    pub fn execute(&mut self, command: Command) -> Reply {
        let mut now = LazyNow::default();
        match command {
            // One lookup when the key is live.
            Command::Get(key) => match self.map.get(&key[..]) {
                Some(entry) if !now.expired(entry, &self.clock) => Reply::bulk_from(&entry.value),
                Some(_) => {
                    self.remove_expired(&key);
                    Reply::Nil
                }
                None => Reply::Nil,
            },
            Command::Set {
                key,
                value,
                expiry,
                condition,
                get,
            } => {
                let old = match self.map.get(&key[..]) {
                    Some(entry) if now.expired(entry, &self.clock) => {
                        self.remove_expired(&key);
                        None
                    }
                    old => old,
                };
                // Copied out only for `SET ... GET`, the one form that
                // returns it.
                let old_value = match (get, old) {
                    (true, Some(e)) => Reply::bulk_from(&e.value),
                    _ => Reply::Nil,
                };
                let old_expiry = old.and_then(|e| e.expires_at);
                let write = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => old.is_none(),
                    SetCondition::IfPresent => old.is_some(),
                };
                if write {
                    let expires_at = match expiry {
                        None => None,
                        Some(Expiry::Keep) => old_expiry,
                        Some(Expiry::After(after)) => Some(now.get(&self.clock) + after),
                    };
                    self.insert(&key, SmallBytes::copy_from_slice(&value), expires_at);
                }
                match (get, write) {
                    (true, _) => old_value,
                    (false, true) => Reply::ok(),
                    (false, false) => Reply::Nil,
                }
            }
            Command::Del(keys) => {
                let mut removed = 0;
                for key in keys {
                    self.remove_if_expired(&key, &mut now);
                    removed += i64::from(self.map.remove(&key[..]).is_some());
                }
                Reply::Integer(removed)
            }
            Command::Exists(keys) => {
                let mut found = 0;
                for key in keys {
                    self.remove_if_expired(&key, &mut now);
                    found += i64::from(self.map.contains_key(&key[..]));
                }
                Reply::Integer(found)
            }
            Command::IncrBy { key, delta } => {
                let (current, expires_at) = match self.map.get(&key[..]) {
                    None => (0, None),
                    Some(entry) if now.expired(entry, &self.clock) => {
                        self.remove_expired(&key);
                        (0, None)
                    }
                    Some(entry) => match parse_i64(&entry.value) {
                        Some(n) => (n, entry.expires_at),
                        None => return NOT_AN_INTEGER,
                    },
                };
                let Some(next) = current.checked_add(delta) else {
                    return Reply::error("ERR increment or decrement would overflow");
                };
                let mut digits = itoa::Buffer::new();
                let text = SmallBytes::copy_from_slice(digits.format(next).as_bytes());
                // INCR keeps the key's expiry; the deadline is already
                // queued, so not through `insert`.
                let entry = Entry {
                    value: text,
                    expires_at,
                };
                match self.map.get_mut(&key[..]) {
                    Some(slot) => *slot = entry,
                    None => {
                        self.map.insert(SmallBytes::copy_from_slice(&key), entry);
                    }
                }
                Reply::Integer(next)
            }
            Command::MGet(keys) => Reply::Array(
                keys.into_iter()
                    .map(|key| {
                        self.remove_if_expired(&key, &mut now);
                        self.map
                            .get(&key[..])
                            .map_or(Reply::Nil, |e| Reply::bulk_from(&e.value))
                    })
                    .collect(),
            ),
            Command::MSet(pairs) => {
                for (key, value) in pairs {
                    self.insert(&key, SmallBytes::copy_from_slice(&value), None);
                }
                Reply::ok()
            }
            Command::DbSize => Reply::Integer(self.map.len() as i64),
            keyless => execute_keyless(keyless),
        }
    }
}

/// Answers a command that touches no key (`PING`, `ECHO`, `CONFIG GET`,
/// `COMMAND`, `CLIENT SETINFO`, `SELECT`, `QUIT`). A keyed command or
/// `DBSIZE` gets an error: those need a [`Store`].
pub fn execute_keyless(command: Command) -> Reply {
    match command {
        Command::Ping(None) => Reply::Status("PONG".into()),
        Command::Ping(Some(message)) | Command::Echo(message) => Reply::Bulk(message),
        Command::ConfigGet(patterns) => config_get(&patterns),
        Command::CommandList => Reply::Array(Vec::new()),
        Command::CommandCount => Reply::Integer(COMMAND_COUNT),
        Command::ClientSetInfo | Command::Quit => Reply::ok(),
        Command::Select(db) => match parse_i64(&db) {
            Some(0) => Reply::ok(),
            Some(_) => Reply::error("ERR DB index is out of range"),
            None => NOT_AN_INTEGER,
        },
        _ => Reply::error("ERR internal: command needs a store"),
    }
}

/// The configuration this engine reports: no persistence, one database.
const CONFIG: &[(&str, &str)] = &[("appendonly", "no"), ("databases", "1"), ("save", "")];

/// `CONFIG GET`: name/value pairs of every parameter matching any pattern
/// (Redis's globs, case-insensitive: see [`glob_match`]), each parameter
/// once.
fn config_get(patterns: &[Bytes]) -> Reply {
    let mut out = Vec::new();
    for (name, value) in CONFIG {
        if patterns
            .iter()
            .any(|p| glob_match(p, name.as_bytes(), true))
        {
            out.push(Reply::Bulk(Bytes::from_static(name.as_bytes())));
            out.push(Reply::Bulk(Bytes::from_static(value.as_bytes())));
        }
    }
    Reply::Array(out)
}

/// Whether `text` matches the glob `pattern`, with the syntax of Redis's
/// `stringmatchlen` (`KEYS`, `CONFIG GET`, `SCAN MATCH`): `*` any run of
/// bytes, `?` any one byte, `[abc]`, `[^abc]`, `[a-z]` (bounds in either
/// order; `\` escapes a byte inside a class; an unclosed class runs to
/// the end of the pattern), `\x` the byte `x`. With `nocase`, ASCII
/// letters match either case (escaped bytes inside a class excepted, as in
/// Redis). An empty text matches a pattern of stars only.
///
/// At most about `(pattern + 1) × (text + 1)` steps, whatever the stars:
/// every piece but `*` consumes exactly one byte, so a run of `*` counts
/// as one and a mismatch only retries from the last star, one byte
/// further (the two-pointer wildcard match). A recursion per `*` would be
/// exponential in the stars: 200 of them before a byte the text lacks
/// would never finish.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    glob_match_counted(pattern, text, nocase).0
}

/// [`glob_match`], and how many steps it took (for the tests' bound).
fn glob_match_counted(pattern: &[u8], text: &[u8], nocase: bool) -> (bool, usize) {
    let (mut p, mut t) = (0, 0);
    // Where to resume after a mismatch: the pattern just past the last run
    // of stars, and the text byte that run would take next.
    let mut star: Option<(usize, usize)> = None;
    let mut steps = 0;
    loop {
        steps += 1;
        if pattern.get(p) == Some(&b'*') {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
            if p == pattern.len() {
                return (true, steps);
            }
            star = Some((p, t));
            continue;
        }
        let Some(&c) = text.get(t) else {
            // Starting the last star's match later only leaves less text.
            return (p == pattern.len(), steps);
        };
        if p < pattern.len() {
            let (matched, next) = glob_piece(pattern, p, c, nocase);
            if matched {
                p = next;
                t += 1;
                continue;
            }
        }
        match star {
            Some((after_star, from)) => {
                star = Some((after_star, from + 1));
                p = after_star;
                t = from + 1;
            }
            None => return (false, steps),
        }
    }
}

/// Matches the one-byte piece of `pattern` at `p` (not `*`) against `c`:
/// whether it matches, and where the next piece starts.
fn glob_piece(pattern: &[u8], p: usize, c: u8, nocase: bool) -> (bool, usize) {
    let same = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    match pattern[p] {
        b'?' => (true, p + 1),
        b'\\' if p + 1 < pattern.len() => (same(pattern[p + 1], c), p + 2),
        b'[' => {
            let mut p = p + 1;
            let negate = pattern.get(p) == Some(&b'^');
            if negate {
                p += 1;
            }
            let mut matched = false;
            loop {
                let rest = pattern.len() - p;
                if rest >= 2 && pattern[p] == b'\\' {
                    matched |= pattern[p + 1] == c;
                    p += 2;
                } else if rest == 0 {
                    break;
                } else if pattern[p] == b']' {
                    p += 1;
                    break;
                } else if rest >= 3 && pattern[p + 1] == b'-' {
                    let (mut lo, mut hi, mut c) = (pattern[p], pattern[p + 2], c);
                    if lo > hi {
                        std::mem::swap(&mut lo, &mut hi);
                    }
                    if nocase {
                        lo = lo.to_ascii_lowercase();
                        hi = hi.to_ascii_lowercase();
                        c = c.to_ascii_lowercase();
                    }
                    matched |= (lo..=hi).contains(&c);
                    p += 3;
                } else {
                    matched |= same(pattern[p], c);
                    p += 1;
                }
            }
            (matched != negate, p)
        }
        literal => (same(literal, c), p + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<C: Clock>(store: &mut Store<C>, words: &[&str]) -> Reply {
        match Command::parse(
            words
                .iter()
                .map(|w| Bytes::copy_from_slice(w.as_bytes()))
                .collect(),
        ) {
            Ok(cmd) => store.execute(cmd),
            Err(reply) => reply,
        }
    }

    fn bulk(s: &str) -> Reply {
        Reply::bulk_from(s.as_bytes())
    }

    fn err(s: &'static str) -> Reply {
        Reply::error(s)
    }

    #[test]
    fn get_set_del_exists() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, &["GET", "k"]), Reply::Nil);
        assert_eq!(run(&mut s, &["SET", "k", "v"]), Reply::ok());
        assert_eq!(run(&mut s, &["GET", "k"]), bulk("v"));
        assert_eq!(run(&mut s, &["SET", "k", "w"]), Reply::ok());
        assert_eq!(run(&mut s, &["GET", "k"]), bulk("w"));
        assert_eq!(
            run(&mut s, &["EXISTS", "k", "k", "nope"]),
            Reply::Integer(2)
        );
        assert_eq!(run(&mut s, &["DEL", "k", "nope", "k"]), Reply::Integer(1));
        assert_eq!(run(&mut s, &["EXISTS", "k"]), Reply::Integer(0));
        assert_eq!(run(&mut s, &["DBSIZE"]), Reply::Integer(0));
    }

    #[test]
    fn set_conditions_and_get_option() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, &["SET", "k", "1", "XX"]), Reply::Nil);
        assert_eq!(run(&mut s, &["SET", "k", "1", "NX"]), Reply::ok());
        assert_eq!(run(&mut s, &["SET", "k", "2", "NX"]), Reply::Nil);
        assert_eq!(run(&mut s, &["SET", "k", "3", "XX", "GET"]), bulk("1"));
        assert_eq!(run(&mut s, &["SET", "new", "x", "GET"]), Reply::Nil);
        assert_eq!(
            run(&mut s, &["MGET", "k", "new"]),
            Reply::Array(vec![bulk("3"), bulk("x")])
        );
    }

    #[test]
    fn incr_family() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, &["INCR", "c"]), Reply::Integer(1));
        assert_eq!(run(&mut s, &["INCRBY", "c", "41"]), Reply::Integer(42));
        assert_eq!(run(&mut s, &["DECR", "c"]), Reply::Integer(41));
        assert_eq!(run(&mut s, &["DECRBY", "c", "50"]), Reply::Integer(-9));
        assert_eq!(run(&mut s, &["GET", "c"]), bulk("-9"));
        assert_eq!(run(&mut s, &["SET", "c", " 1"]), Reply::ok());
        assert_eq!(
            run(&mut s, &["INCR", "c"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&mut s, &["SET", "c", "abc"]), Reply::ok());
        assert_eq!(
            run(&mut s, &["INCR", "c"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&mut s, &["GET", "c"]),
            bulk("abc"),
            "a failed INCR changes nothing"
        );
        assert_eq!(
            run(&mut s, &["SET", "big", "9223372036854775807"]),
            Reply::ok()
        );
        assert_eq!(
            run(&mut s, &["INCR", "big"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(
            run(&mut s, &["SET", "small", "-9223372036854775808"]),
            Reply::ok()
        );
        assert_eq!(
            run(&mut s, &["DECR", "small"]),
            err("ERR increment or decrement would overflow")
        );
        assert_eq!(run(&mut s, &["GET", "big"]), bulk("9223372036854775807"));
    }

    #[test]
    fn mset_mget_dbsize() {
        let mut s = Store::new();
        assert_eq!(
            run(&mut s, &["MSET", "a", "1", "b", "2", "a", "3"]),
            Reply::ok()
        );
        assert_eq!(
            run(&mut s, &["MGET", "a", "x", "b"]),
            Reply::Array(vec![bulk("3"), Reply::Nil, bulk("2")])
        );
        assert_eq!(run(&mut s, &["DBSIZE"]), Reply::Integer(2));
    }

    #[test]
    fn keyless_commands() {
        let mut s = Store::new();
        assert_eq!(run(&mut s, &["PING"]), Reply::Status("PONG".into()));
        assert_eq!(run(&mut s, &["PING", "hi"]), bulk("hi"));
        assert_eq!(run(&mut s, &["ECHO", "x y"]), bulk("x y"));
        assert_eq!(run(&mut s, &["SELECT", "0"]), Reply::ok());
        assert_eq!(
            run(&mut s, &["SELECT", "1"]),
            err("ERR DB index is out of range")
        );
        assert_eq!(
            run(&mut s, &["SELECT", "x"]),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(run(&mut s, &["COMMAND", "DOCS"]), Reply::Array(vec![]));
        assert_eq!(
            run(&mut s, &["COMMAND", "COUNT"]),
            Reply::Integer(COMMAND_COUNT)
        );
        assert_eq!(
            run(&mut s, &["CLIENT", "SETINFO", "LIB-VER", "1"]),
            Reply::ok()
        );
    }

    #[test]
    fn config_get_answers_what_redis_benchmark_reads() {
        let mut s = Store::new();
        assert_eq!(
            run(&mut s, &["CONFIG", "GET", "save"]),
            Reply::Array(vec![bulk("save"), bulk("")])
        );
        assert_eq!(
            run(&mut s, &["CONFIG", "GET", "APPENDONLY"]),
            Reply::Array(vec![bulk("appendonly"), bulk("no")])
        );
        assert_eq!(
            run(&mut s, &["CONFIG", "GET", "nosuch"]),
            Reply::Array(vec![])
        );
        assert_eq!(
            run(&mut s, &["CONFIG", "GET", "*a*", "save"]),
            Reply::Array(vec![
                bulk("appendonly"),
                bulk("no"),
                bulk("databases"),
                bulk("1"),
                bulk("save"),
                bulk("")
            ])
        );
        assert_eq!(
            run(&mut s, &["CONFIG", "GET", "s?ve"]),
            Reply::Array(vec![bulk("save"), bulk("")])
        );
    }

    /// Redis's `stringmatchlen` as written there (a recursion per `*`,
    /// exponential on hostile patterns), kept only as the tests' reference;
    /// the one difference is that stars match an empty text, as
    /// [`glob_match`] documents.
    fn reference_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
        let (mut p, mut t) = (0, 0);
        while p < pattern.len() && t < text.len() {
            if pattern[p] == b'*' {
                while pattern.get(p + 1) == Some(&b'*') {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                return (t..text.len())
                    .any(|from| reference_match(&pattern[p + 1..], &text[from..], nocase));
            }
            let (matched, next) = glob_piece(pattern, p, text[t], nocase);
            if !matched {
                return false;
            }
            p = next;
            t += 1;
        }
        if t == text.len() {
            while pattern.get(p) == Some(&b'*') {
                p += 1;
            }
        }
        p == pattern.len() && t == text.len()
    }

    #[test]
    fn glob_pieces_follow_redis_stringmatchlen() {
        let yes = |p: &str, t: &str| {
            assert!(
                glob_match(p.as_bytes(), t.as_bytes(), false),
                "{p:?} ~ {t:?}"
            )
        };
        let no = |p: &str, t: &str| {
            assert!(
                !glob_match(p.as_bytes(), t.as_bytes(), false),
                "{p:?} !~ {t:?}"
            )
        };
        yes("save", "save");
        no("save", "saves");
        no("saves", "save");
        yes("*", "");
        yes("**", "");
        no("?", "");
        yes("s?ve", "save");
        yes("*a*", "databases");
        yes("a*o*y", "appendonly");
        no("a*o*x", "appendonly");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        no("h[^e]llo", "hello");
        yes("h[a-b]llo", "hbllo");
        yes("h[b-a]llo", "hallo");
        no("h[a-b]llo", "hcllo");
        yes("[\\]]", "]");
        yes("[\\-]", "-");
        yes("\\*", "*");
        no("\\*", "x");
        yes("\\?x", "?x");
        yes("a\\", "a\\");
        yes("[abc", "c");
        no("[abc", "d");
        // Redis reads `[a-]` as the range ']'..='a', then runs unclosed
        // (checked with KEYS against redis-server 7.0.15, as the rest).
        yes("[a-]", "^");
        yes("[a-]", "]");
        no("[a-]", "b");
        no("[]", "]");
        no("[]", "a");
        // Case: only with nocase.
        assert!(!glob_match(b"SAVE", b"save", false));
        assert!(glob_match(b"SAVE", b"save", true));
        assert!(glob_match(b"[A-C]ppend*", b"appendonly", true));
        assert!(glob_match(b"[^B]*", b"bx", false));
        assert!(!glob_match(b"[^B]*", b"bx", true));
        assert!(
            !glob_match(b"[\\A]", b"a", true),
            "escaped in a class: exact, as in Redis"
        );
    }

    #[test]
    fn glob_agrees_with_the_recursive_reference_on_every_small_input() {
        let pattern_bytes = b"ab*?[]^-\\A";
        let text_bytes = b"ab-]A";
        let all = |alphabet: &[u8], max: usize| {
            let mut out = vec![Vec::new()];
            let mut last = vec![Vec::new()];
            for _ in 0..max {
                let next: Vec<Vec<u8>> = last
                    .iter()
                    .flat_map(|s: &Vec<u8>| {
                        alphabet.iter().map(move |&c| {
                            let mut s = s.clone();
                            s.push(c);
                            s
                        })
                    })
                    .collect();
                out.extend(next.iter().cloned());
                last = next;
            }
            out
        };
        let texts = all(text_bytes, 3);
        let mut checked = 0;
        for pattern in all(pattern_bytes, 4) {
            for text in &texts {
                for nocase in [false, true] {
                    assert_eq!(
                        glob_match(&pattern, text, nocase),
                        reference_match(&pattern, text, nocase),
                        "pattern {:?} text {:?} nocase {nocase}",
                        String::from_utf8_lossy(&pattern),
                        String::from_utf8_lossy(text)
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 1_000_000);
    }

    #[test]
    fn glob_steps_stay_within_pattern_times_text_on_hostile_patterns() {
        let stars = format!("{}x", "*".repeat(200));
        let alternating = "a*".repeat(100) + "b";
        let long_text = "a".repeat(300);
        for (pattern, text) in [
            (stars.as_str(), "appendonly"),
            (stars.as_str(), long_text.as_str()),
            (alternating.as_str(), long_text.as_str()),
            ("*a*a*a*a*a*a*a*a*a*a*a*a*b", long_text.as_str()),
            ("*?*?*?*?*?*?*?*?*?*?*?*?*[b]", long_text.as_str()),
        ] {
            let (matched, steps) = glob_match_counted(pattern.as_bytes(), text.as_bytes(), true);
            assert!(!matched, "{pattern:?}");
            let bound = (pattern.len() + 1) * (text.len() + 1);
            assert!(steps <= bound, "{pattern:?}: {steps} steps > {bound}");
        }
    }

    #[test]
    fn config_get_with_200_stars_answers_at_once() {
        // A generous watchdog, not a timing assert: the recursive glob
        // never returned on this pattern.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut s = Store::new();
            let pattern = format!("{}x", "*".repeat(200));
            let _ = tx.send(run(&mut s, &["CONFIG", "GET", &pattern]));
        });
        let reply = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("CONFIG GET with 200 stars did not answer within 60 s");
        assert_eq!(reply, Reply::Array(vec![]));
    }

    #[test]
    fn expiry_is_lazy_and_exact_with_an_injected_clock() {
        let clock = ManualClock::new();
        let mut s = Store::with_clock(clock.clone());
        assert_eq!(run(&mut s, &["SET", "k", "v", "PX", "100"]), Reply::ok());
        assert_eq!(run(&mut s, &["SET", "forever", "v"]), Reply::ok());
        clock.advance(Duration::from_millis(99));
        assert_eq!(run(&mut s, &["GET", "k"]), bulk("v"));
        clock.advance(Duration::from_millis(1));
        assert_eq!(s.len(), 2, "not removed until touched or swept");
        assert_eq!(run(&mut s, &["GET", "k"]), Reply::Nil);
        assert_eq!(run(&mut s, &["EXISTS", "k"]), Reply::Integer(0));
        assert_eq!(s.len(), 1);
        assert_eq!(s.expired(), 1);
        assert_eq!(run(&mut s, &["GET", "forever"]), bulk("v"));
    }

    #[test]
    fn ex_counts_seconds_and_set_clears_or_keeps_the_ttl() {
        let clock = ManualClock::new();
        let mut s = Store::with_clock(clock.clone());
        run(&mut s, &["SET", "a", "1", "EX", "2"]);
        run(&mut s, &["SET", "b", "1", "EX", "2"]);
        run(&mut s, &["SET", "c", "1", "EX", "2"]);
        assert_eq!(
            run(&mut s, &["SET", "a", "2"]),
            Reply::ok(),
            "plain SET clears the expiry"
        );
        assert_eq!(run(&mut s, &["SET", "b", "2", "KEEPTTL"]), Reply::ok());
        assert_eq!(
            run(&mut s, &["INCR", "c"]),
            Reply::Integer(2),
            "INCR keeps the expiry"
        );
        clock.advance(Duration::from_millis(1999));
        assert_eq!(
            run(&mut s, &["MGET", "a", "b", "c"]),
            Reply::Array(vec![bulk("2"), bulk("2"), bulk("2")])
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            run(&mut s, &["MGET", "a", "b", "c"]),
            Reply::Array(vec![bulk("2"), Reply::Nil, Reply::Nil])
        );
    }

    #[test]
    fn expired_keys_behave_as_absent_for_writes() {
        let clock = ManualClock::new();
        let mut s = Store::with_clock(clock.clone());
        run(&mut s, &["SET", "k", "5", "EX", "1"]);
        clock.advance(Duration::from_secs(1));
        assert_eq!(run(&mut s, &["SET", "k", "x", "XX"]), Reply::Nil);
        assert_eq!(run(&mut s, &["INCR", "k"]), Reply::Integer(1));
        run(&mut s, &["SET", "d", "5", "EX", "1"]);
        clock.advance(Duration::from_secs(1));
        assert_eq!(run(&mut s, &["DEL", "d"]), Reply::Integer(0));
    }

    #[test]
    fn expire_some_sweeps_within_budget_and_skips_rewritten_keys() {
        let clock = ManualClock::new();
        let mut s = Store::with_clock(clock.clone());
        for i in 0..10 {
            run(&mut s, &["SET", &format!("k{i}"), "v", "PX", "10"]);
        }
        run(&mut s, &["SET", "k0", "v", "PX", "1000"]); // rewritten: a later deadline
        run(&mut s, &["SET", "k1", "v"]); // rewritten: no expiry
        run(&mut s, &["SET", "late", "v", "PX", "50"]);
        assert_eq!(s.expire_some(100), 0, "nothing is due yet");
        clock.advance(Duration::from_millis(10));
        assert_eq!(s.expire_some(3), 3, "the budget bounds one sweep");
        assert_eq!(s.expire_some(100), 5);
        assert_eq!(s.expire_some(100), 0);
        assert_eq!(s.len(), 3, "k0, k1 and late remain");
        assert_eq!(
            run(&mut s, &["MGET", "k0", "k1", "late"]),
            Reply::Array(vec![bulk("v"), bulk("v"), bulk("v")])
        );
        clock.advance(Duration::from_millis(990));
        assert_eq!(s.expire_some(100), 2);
        assert_eq!(s.len(), 1);
        assert_eq!(s.expired(), 10);
    }

    #[test]
    fn one_key_rewritten_with_an_expiry_keeps_o1_deadlines() {
        // A frozen clock (every rewrite has the same deadline) and a
        // moving one (each has its own): the bookkeeping follows the keys.
        for step in [Duration::ZERO, Duration::from_micros(1)] {
            let clock = ManualClock::new();
            let mut s = Store::with_clock(clock.clone());
            let mut most = 0;
            for _ in 0..500_000 {
                s.execute(Command::Set {
                    key: Bytes::from_static(b"k"),
                    value: Bytes::from_static(b"v"),
                    expiry: Some(Expiry::After(Duration::from_secs(100_000))),
                    condition: SetCondition::Always,
                    get: false,
                });
                clock.advance(step);
                most = most.max(s.expiry_entries());
            }
            assert_eq!(s.len(), 1);
            assert_eq!(s.max_expiry_entries(), 2 + DEADLINE_SLACK);
            assert!(
                most <= s.max_expiry_entries(),
                "{most} deadlines held for one key (step {step:?})"
            );
            clock.advance(Duration::from_secs(100_000));
            assert_eq!(s.expire_some(usize::MAX), 1);
            assert_eq!((s.len(), s.expired()), (0, 1));
        }
    }

    #[test]
    fn expiry_is_exact_across_rebuilds_of_the_deadline_heap() {
        let clock = ManualClock::new();
        let mut s = Store::with_clock(clock.clone());
        // 100 keys, each rewritten 20 times with a later deadline (many
        // rebuilds), then: k0..k9 lose their expiry, k10..k19 are deleted,
        // k20..k29 keep theirs through KEEPTTL rewrites.
        for round in 1..=20u64 {
            for i in 0..100 {
                let ms = (round * 1000 + i).to_string();
                run(&mut s, &["SET", &format!("k{i}"), "v", "PX", &ms]);
            }
        }
        assert!(s.expiry_entries() <= s.max_expiry_entries());
        for i in 0..10 {
            run(&mut s, &["SET", &format!("k{i}"), "plain"]);
        }
        for i in 10..20 {
            run(&mut s, &["DEL", &format!("k{i}")]);
        }
        for i in 20..30 {
            run(&mut s, &["SET", &format!("k{i}"), "kept", "KEEPTTL"]);
        }
        // Every remaining deadline is 20_000 + i ms; none earlier fires.
        clock.advance(Duration::from_millis(19_999));
        assert_eq!(
            s.expire_some(usize::MAX),
            0,
            "only stale deadlines were due"
        );
        assert_eq!(s.len(), 90);
        clock.advance(Duration::from_millis(50));
        assert_eq!(s.expire_some(usize::MAX), 30, "k20..k49 are due");
        clock.advance(Duration::from_millis(100));
        assert_eq!(s.expire_some(usize::MAX), 50, "k50..k99 are due");
        assert_eq!(s.len(), 10, "only the keys without expiry remain");
        assert_eq!(run(&mut s, &["GET", "k3"]), bulk("plain"));
        assert_eq!(s.expiry_entries(), 0, "every deadline was popped");
    }

    #[test]
    fn stored_values_do_not_pin_the_request_buffer() {
        let mut s = Store::new();
        let request = Bytes::from(vec![b'x'; 4096]);
        let key = request.slice(0..4);
        let value = request.slice(4..8);
        s.execute(Command::Set {
            key,
            value,
            expiry: None,
            condition: SetCondition::Always,
            get: false,
        });
        assert!(request.is_unique(), "the store copied what it kept");
    }
}
