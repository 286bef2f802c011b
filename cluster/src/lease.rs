//! Partition leases in a JetStream key-value bucket: the engine's
//! primitives, no consensus of our own.
//!
//! - The bucket's `max_age` is the lease TTL: an entry not rewritten for
//!   that long disappears.
//! - **Claim**: `create("partition.{p}")`, which succeeds only if the key is
//!   absent. The revision it returns is the lease's *epoch*.
//! - **Refresh**: `update(key, revision)` every TTL/4; it fails if anyone
//!   else wrote the key since.
//! - **Deadline**: a lease counts as held only until its *deadline*,
//!   `sent + TTL - margin`, where `sent` is when its last successful create
//!   or refresh was *sent* (the server stored it later, so its `max_age`
//!   runs out later) and the [drift margin](LeaseConfig::margin) is TTL/3:
//!   it absorbs the server's expiry running early against our clock (rates
//!   differing by up to a third) and the time between a worker's check and
//!   its handling. The clock is `CLOCK_BOOTTIME` ([`clock_ns`]): monotonic,
//!   and unlike `Instant` it keeps counting while the machine is suspended.
//! - **Fencing at the point of use**: the deadline is in the
//!   [`LeaseTable`] the workers read, and a worker checks it
//!   ([`LeaseTable::is_current`]) before handling *each* event, not only
//!   the lease round. After any pause past the deadline (a stopped process,
//!   a GC pause, a slow host) the workers handle nothing of that partition:
//!   what was fetched is nakked and redelivered. The next round sees the
//!   deadline passed, reports the lease [`Change::Lost`] and deletes its
//!   key if nobody else wrote it since; the partition is then claimed
//!   afresh, under a new epoch, by whoever comes first.
//! - **Membership**: each process holds `member.{i}` the same way. Process
//!   `i` of `n` is the *home* of partitions `p % n == i` and claims them
//!   whenever they are free. After one TTL of its own life it also claims
//!   partitions whose home is not a member (dead, or not started), up to
//!   its share `⌈partitions / live members⌉`; it hands such a partition back
//!   when its home is alive again.
//! - **Handing back** ([`Change::Releasing`]): the partition is fenced first
//!   (workers stop handling its events and nak them), its consumer stops,
//!   and the key is deleted only once every event already sent to the pool
//!   is acked or nakked, so two processes never handle a partition at once.
//!
//! Workers check [`LeaseTable::is_current`] before handling each event: an
//! event fetched under a lease the process no longer holds, or whose
//! deadline has passed, is nakked, not handled, and JetStream redelivers it
//! to the partition's owner. What a handled event *writes* can still land
//! after the deadline (a pause between handling and writing): outputs carry
//! the epoch as a fencing token for the sink to check.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::record;

use async_nats::jetstream::kv;

/// Nanoseconds of `CLOCK_BOOTTIME`: monotonic (never steps back, not set
/// by NTP or an administrator) and, unlike `Instant` on Linux, counting the
/// time the machine spends suspended, so a resumed laptop or a VM thawed
/// after a live migration sees its leases as expired.
pub fn clock_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_BOOTTIME exists on
    // every Linux since 2.6.39, and clock_gettime only writes `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[derive(Debug)]
struct Slot {
    epoch: AtomicU64,
    deadline_ns: AtomicU64,
}

/// The epoch and the deadline ([`clock_ns`]) of each partition's lease
/// this process holds (epoch 0: not held), shared with the workers for
/// fencing at the point of use.
#[derive(Debug)]
pub struct LeaseTable {
    slots: Box<[Slot]>,
}

impl LeaseTable {
    /// A table of `partitions` leases, none held.
    pub fn new(partitions: u32) -> LeaseTable {
        LeaseTable {
            slots: (0..partitions)
                .map(|_| Slot {
                    epoch: AtomicU64::new(0),
                    deadline_ns: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// The epoch of the lease on `partition` this process holds, 0 if none
    /// (whether or not its deadline has passed).
    pub fn epoch(&self, partition: u32) -> u64 {
        self.slots
            .get(partition as usize)
            .map_or(0, |s| s.epoch.load(Ordering::Acquire))
    }

    /// Whether this process holds `partition` under `epoch` *now*: the
    /// lease is still this process's and its deadline has not passed at
    /// this moment. Call it right before handling an event.
    pub fn is_current(&self, partition: u32, epoch: u64) -> bool {
        self.is_current_at(partition, epoch, clock_ns())
    }

    /// [`LeaseTable::is_current`] at clock time `now_ns`.
    pub fn is_current_at(&self, partition: u32, epoch: u64, now_ns: u64) -> bool {
        let Some(slot) = self.slots.get(partition as usize) else {
            return false;
        };
        if epoch == 0 || slot.epoch.load(Ordering::Acquire) != epoch {
            return false;
        }
        let deadline = slot.deadline_ns.load(Ordering::Acquire);
        // Read the epoch again: a deadline read between a loss and a new
        // claim of the same partition belongs to the new epoch (the writer
        // clears the epoch before it stores a new epoch's deadline).
        slot.epoch.load(Ordering::Acquire) == epoch && now_ns < deadline
    }

    /// Holds `partition` under `epoch` until `deadline_ns`; epoch 0 fences it.
    fn set(&self, partition: u32, epoch: u64, deadline_ns: u64) {
        let slot = &self.slots[partition as usize];
        if epoch != slot.epoch.load(Ordering::Acquire) {
            slot.epoch.store(0, Ordering::Release);
        }
        slot.deadline_ns.store(deadline_ns, Ordering::Release);
        slot.epoch.store(epoch, Ordering::Release);
    }

    fn fence(&self, partition: u32) {
        self.slots[partition as usize]
            .epoch
            .store(0, Ordering::Release);
    }
}

/// Events sent into the pool and not yet acked or nakked, per partition.
#[derive(Debug)]
pub struct InFlight {
    counts: Box<[AtomicU64]>,
}

impl InFlight {
    /// Zero for each of `partitions`.
    pub fn new(partitions: u32) -> InFlight {
        InFlight {
            counts: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// One more event of `partition` in flight.
    pub fn add(&self, partition: u32) {
        self.counts[partition as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// One event of `partition` acked or nakked.
    pub fn done(&self, partition: u32) {
        self.counts[partition as usize].fetch_sub(1, Ordering::AcqRel);
    }

    /// Events of `partition` in flight now.
    pub fn get(&self, partition: u32) -> u64 {
        self.counts[partition as usize].load(Ordering::Acquire)
    }

    /// Events in flight in all partitions.
    pub fn total(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Acquire)).sum()
    }
}

/// Who this process is among how many, over how many partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// This process's index, `0..processes`.
    pub process: u32,
    /// How many processes share the stream.
    pub processes: u32,
    /// Number of partitions.
    pub partitions: u32,
    /// The bucket's `max_age`.
    pub ttl: Duration,
}

impl LeaseConfig {
    /// The drift margin, TTL/3: a lease counts as held until
    /// `sent + ttl - margin`, `sent` being when its last create or refresh
    /// was sent.
    pub fn margin(&self) -> Duration {
        self.ttl / 3
    }

    /// How long after a create or refresh is sent the lease counts as held.
    pub fn valid_for(&self) -> Duration {
        self.ttl - self.margin()
    }

    /// The process whose home `partition` is.
    pub fn home(&self, partition: u32) -> u32 {
        partition % self.processes
    }
}

/// A change to the leases this process holds, for the caller to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Claimed: start consuming the partition.
    Acquired {
        /// The partition.
        partition: u32,
        /// The lease's epoch.
        epoch: u64,
        /// When the server's reply arrived, on the system clock
        /// ([`record::now_ns`]): the lease surely existed from then on.
        at_ns: u64,
    },
    /// Lost (refresh failed, or its deadline passed), already fenced: stop
    /// consuming.
    Lost {
        /// The partition.
        partition: u32,
        /// The lease's epoch.
        epoch: u64,
        /// When it stopped counting as held, on the system clock
        /// ([`record::now_ns`]): its deadline if that has passed, else now.
        at_ns: u64,
    },
    /// Being handed back, already fenced: stop consuming. The key is
    /// deleted in a later round, once the partition has nothing in flight.
    Releasing {
        /// The partition.
        partition: u32,
        /// The lease's epoch.
        epoch: u64,
    },
    /// Handed back: the key is deleted, anyone may claim it.
    Released {
        /// The partition.
        partition: u32,
        /// The lease's epoch.
        epoch: u64,
        /// When the delete was sent, on the system clock
        /// ([`record::now_ns`]): from then on another process may hold it.
        at_ns: u64,
    },
}

#[derive(Debug)]
struct Held {
    epoch: u64,
    revision: u64,
    /// The deadline on [`clock_ns`].
    deadline_ns: u64,
    /// The same deadline on the system clock, for the lease log.
    deadline_wall_ns: u64,
    releasing: bool,
}

/// When a create or refresh is sent, on both clocks.
#[derive(Debug, Clone, Copy)]
struct Sent {
    clock_ns: u64,
    wall_ns: u64,
}

impl Sent {
    fn now() -> Sent {
        Sent {
            clock_ns: clock_ns(),
            wall_ns: record::now_ns(),
        }
    }

    fn held(self, revision: u64, epoch: u64, valid_for: Duration) -> Held {
        let valid_for = valid_for.as_nanos() as u64;
        Held {
            epoch,
            revision,
            deadline_ns: self.clock_ns + valid_for,
            deadline_wall_ns: self.wall_ns + valid_for,
            releasing: false,
        }
    }
}

/// This process's leases and membership.
pub struct Leases {
    kv: kv::Store,
    config: LeaseConfig,
    table: Arc<LeaseTable>,
    held: BTreeMap<u32, Held>,
    member: Option<Held>,
    started: Instant,
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("config", &self.config)
            .field("held", &self.held)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

fn lease_key(partition: u32) -> String {
    format!("partition.{partition}")
}

fn member_key(process: u32) -> String {
    format!("member.{process}")
}

impl Leases {
    /// Leases in bucket `kv` (whose `max_age` must be `config.ttl`).
    pub fn new(kv: kv::Store, config: LeaseConfig) -> Leases {
        Leases {
            table: Arc::new(LeaseTable::new(config.partitions)),
            kv,
            config,
            held: BTreeMap::new(),
            member: None,
            started: Instant::now(),
        }
    }

    /// The fencing table the workers read.
    pub fn table(&self) -> Arc<LeaseTable> {
        Arc::clone(&self.table)
    }

    /// How often to call [`Leases::round`]: TTL/4.
    pub fn refresh_interval(&self) -> Duration {
        self.config.ttl / 4
    }

    fn valid_for(&self) -> Duration {
        self.config.valid_for()
    }

    /// The partitions held now (including those being handed back).
    pub fn held(&self) -> Vec<u32> {
        self.held.keys().copied().collect()
    }

    fn value(&self) -> bytes::Bytes {
        bytes::Bytes::from(self.config.process.to_string())
    }

    /// One round: refresh membership and leases, hand back partitions whose
    /// home came back (once `in_flight` is zero for them), claim free ones.
    pub async fn round(&mut self, in_flight: &InFlight) -> Vec<Change> {
        let mut changes = Vec::new();
        self.refresh_member().await;
        self.refresh_leases(&mut changes).await;
        let alive = self.alive().await;
        self.release(&alive, in_flight, &mut changes).await;
        if self.member.is_some() {
            self.claim(&alive, &mut changes).await;
        }
        changes
    }

    async fn refresh_member(&mut self) {
        let key = member_key(self.config.process);
        let sent = Sent::now();
        let result = match &self.member {
            Some(member) if sent.clock_ns < member.deadline_ns => self
                .kv
                .update(&key, self.value(), member.revision)
                .await
                .ok(),
            // First round, or our membership lapsed: (re)join once the old
            // key is gone.
            _ => self.kv.create(&key, self.value()).await.ok(),
        };
        let valid_for = self.valid_for();
        self.member = result.map(|revision| sent.held(revision, revision, valid_for));
    }

    /// Refreshes every held lease at once (one round trip for all, not one
    /// per lease: on a loaded host a sequential round could outlast the
    /// deadlines it is meant to extend).
    async fn refresh_leases(&mut self, changes: &mut Vec<Change>) {
        let value = self.value();
        let kv = &self.kv;
        let attempts = self.held.iter().map(|(&partition, held)| {
            let (deadline_ns, revision) = (held.deadline_ns, held.revision);
            let value = value.clone();
            async move {
                let sent = Sent::now();
                let refreshed = if sent.clock_ns < deadline_ns {
                    kv.update(lease_key(partition), value, revision).await.ok()
                } else {
                    // Past its deadline (the process stalled, or rounds ran
                    // late): the workers already refuse it. Hand the key
                    // back unless someone else wrote it since, so that the
                    // partition is claimed afresh now rather than after
                    // the TTL.
                    let _ = kv
                        .delete_expect_revision(lease_key(partition), Some(revision))
                        .await;
                    None
                };
                (partition, sent, refreshed)
            }
        });
        let results = futures_util::future::join_all(attempts).await;
        let valid_for = self.valid_for();
        for (partition, sent, refreshed) in results {
            match refreshed {
                Some(revision) => {
                    let held = self.held.get_mut(&partition).expect("held");
                    let renewed = sent.held(revision, held.epoch, valid_for);
                    held.revision = revision;
                    held.deadline_ns = renewed.deadline_ns;
                    held.deadline_wall_ns = renewed.deadline_wall_ns;
                    if !held.releasing {
                        self.table.set(partition, held.epoch, held.deadline_ns);
                    }
                }
                None => {
                    let held = self.held.remove(&partition).expect("held");
                    self.table.fence(partition);
                    changes.push(Change::Lost {
                        partition,
                        epoch: held.epoch,
                        at_ns: held.deadline_wall_ns.min(record::now_ns()),
                    });
                }
            }
        }
    }

    /// Which processes hold their `member.{i}` key.
    async fn alive(&self) -> Vec<bool> {
        let mut alive = Vec::with_capacity(self.config.processes as usize);
        for process in 0..self.config.processes {
            alive.push(if process == self.config.process {
                self.member.is_some()
            } else {
                matches!(
                    self.kv.entry(member_key(process)).await,
                    Ok(Some(kv::Entry {
                        operation: kv::Operation::Put,
                        ..
                    }))
                )
            });
        }
        alive
    }

    async fn release(&mut self, alive: &[bool], in_flight: &InFlight, changes: &mut Vec<Change>) {
        for (&partition, held) in self.held.iter_mut() {
            let home = self.config.home(partition);
            if !held.releasing && home != self.config.process && alive[home as usize] {
                held.releasing = true;
                self.table.fence(partition);
                changes.push(Change::Releasing {
                    partition,
                    epoch: held.epoch,
                });
            }
        }
        let drained: Vec<u32> = self
            .held
            .iter()
            .filter(|(&p, h)| h.releasing && in_flight.get(p) == 0)
            .map(|(&p, _)| p)
            .collect();
        for partition in drained {
            changes.push(self.delete(partition).await);
        }
    }

    /// Deletes a fenced lease's key (if it is still ours) and forgets it.
    async fn delete(&mut self, partition: u32) -> Change {
        let held = self.held.remove(&partition).expect("held");
        self.table.fence(partition);
        let at_ns = record::now_ns();
        // If the delete fails the key simply expires after the TTL.
        let _ = self
            .kv
            .delete_expect_revision(lease_key(partition), Some(held.revision))
            .await;
        Change::Released {
            partition,
            epoch: held.epoch,
            at_ns,
        }
    }

    async fn claim(&mut self, alive: &[bool], changes: &mut Vec<Change>) {
        let live = alive.iter().filter(|&&a| a).count().max(1) as u32;
        let share = self.config.partitions.div_ceil(live) as usize;
        let settled = self.started.elapsed() >= self.config.ttl;
        for partition in 0..self.config.partitions {
            if self.held.contains_key(&partition) {
                continue;
            }
            let home = self.config.home(partition);
            let mine = home == self.config.process;
            let orphan = !mine && settled && !alive[home as usize] && self.held.len() < share;
            if !(mine || orphan) {
                continue;
            }
            let sent = Sent::now();
            match self.kv.create(lease_key(partition), self.value()).await {
                Ok(revision) => {
                    let at_ns = record::now_ns();
                    let held = sent.held(revision, revision, self.valid_for());
                    self.table.set(partition, revision, held.deadline_ns);
                    self.held.insert(partition, held);
                    changes.push(Change::Acquired {
                        partition,
                        epoch: revision,
                        at_ns,
                    });
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
                Err(e) => eprintln!("lease: claiming partition {partition}: {e}"),
            }
        }
    }

    /// At exit: fences every lease and deletes its key. Call once nothing
    /// is in flight any more. With `keep_membership` the `member.{i}` key
    /// is left to expire by itself (use it when the stream is done: the
    /// others, about to see the end too, then do not claim the partitions
    /// just released); without it the others may claim them at once.
    pub async fn release_all(&mut self, keep_membership: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        for partition in self.held() {
            changes.push(self.delete(partition).await);
        }
        if let Some(member) = self.member.take().filter(|_| !keep_membership) {
            let _ = self
                .kv
                .delete_expect_revision(member_key(self.config.process), Some(member.revision))
                .await;
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_fences_old_epochs() {
        let table = LeaseTable::new(4);
        assert!(!table.is_current(1, 0), "epoch 0 is never current");
        table.set(1, 7, 1_000);
        assert!(table.is_current_at(1, 7, 999));
        assert!(!table.is_current_at(1, 6, 999));
        table.fence(1);
        assert!(!table.is_current_at(1, 7, 999));
        assert_eq!(table.epoch(9), 0, "out of range: not held");
        assert!(!table.is_current(9, 7), "out of range: not held");
    }

    #[test]
    fn table_fences_past_the_deadline() {
        let table = LeaseTable::new(2);
        let now = clock_ns();
        table.set(0, 3, now + 60_000_000_000);
        assert!(table.is_current(0, 3));
        assert!(!table.is_current_at(0, 3, now + 60_000_000_000));
        // A refresh moves the deadline; a new epoch replaces the old one.
        table.set(0, 3, now + 120_000_000_000);
        assert!(table.is_current_at(0, 3, now + 60_000_000_000));
        table.set(0, 4, now + 1);
        assert!(!table.is_current_at(0, 3, now));
        assert!(table.is_current_at(0, 4, now));
        assert!(!table.is_current_at(0, 4, now + 1));
    }

    #[test]
    fn clock_is_monotonic() {
        let a = clock_ns();
        std::thread::sleep(Duration::from_millis(2));
        let b = clock_ns();
        assert!(b >= a + 2_000_000, "{a} then {b}");
    }

    #[test]
    fn homes_are_round_robin() {
        let config = LeaseConfig {
            process: 0,
            processes: 3,
            partitions: 16,
            ttl: Duration::from_secs(3),
        };
        let homes: Vec<u32> = (0..6).map(|p| config.home(p)).collect();
        assert_eq!(homes, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn in_flight_counts() {
        let f = InFlight::new(2);
        f.add(0);
        f.add(0);
        f.add(1);
        f.done(0);
        assert_eq!((f.get(0), f.get(1), f.total()), (1, 1, 2));
    }
}
