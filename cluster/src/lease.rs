//! Partition leases in a JetStream key-value bucket: the engine's
//! primitives, no consensus of our own.
//!
//! - The bucket's `max_age` is the lease TTL: an entry not rewritten for
//!   that long disappears.
//! - **Claim**: `create("partition.{p}")`, which succeeds only if the key is
//!   absent. The revision it returns is the lease's *epoch*.
//! - **Refresh**: `update(key, revision)` every TTL/4; it fails if anyone
//!   else wrote the key since. A lease counts as held only until
//!   `sent + 2/3 TTL` after its last successful refresh was *sent*, a third
//!   of the TTL before the server can let it expire, so a process that
//!   stalls stops handling before another can claim.
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
//! event fetched under a lease the process no longer holds is nakked, not
//! handled, and JetStream redelivers it to the partition's new owner.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;

/// The epoch of each partition's lease this process holds (0: not held),
/// shared with the workers for fencing.
#[derive(Debug)]
pub struct LeaseTable {
    epochs: Box<[AtomicU64]>,
}

impl LeaseTable {
    /// A table of `partitions` leases, none held.
    pub fn new(partitions: u32) -> LeaseTable {
        LeaseTable {
            epochs: (0..partitions).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The epoch of the lease on `partition` this process holds, 0 if none.
    pub fn epoch(&self, partition: u32) -> u64 {
        self.epochs
            .get(partition as usize)
            .map_or(0, |e| e.load(Ordering::Acquire))
    }

    /// Whether this process still holds `partition` under `epoch`.
    pub fn is_current(&self, partition: u32, epoch: u64) -> bool {
        epoch != 0 && self.epoch(partition) == epoch
    }

    fn set(&self, partition: u32, epoch: u64) {
        self.epochs[partition as usize].store(epoch, Ordering::Release);
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
    },
    /// Lost (refresh failed or too late), already fenced: stop consuming.
    Lost {
        /// The partition.
        partition: u32,
        /// The lease's epoch.
        epoch: u64,
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
    },
}

#[derive(Debug)]
struct Held {
    epoch: u64,
    revision: u64,
    valid_until: Instant,
    releasing: bool,
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

    /// How long after a refresh is sent the lease counts as held.
    fn valid_for(&self) -> Duration {
        self.config.ttl - self.config.ttl / 3
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
        let sent = Instant::now();
        let result = match &self.member {
            Some(member) if sent < member.valid_until => self
                .kv
                .update(&key, self.value(), member.revision)
                .await
                .ok(),
            // First round, or our membership lapsed: (re)join once the old
            // key is gone.
            _ => self.kv.create(&key, self.value()).await.ok(),
        };
        self.member = result.map(|revision| Held {
            epoch: revision,
            revision,
            valid_until: sent + self.valid_for(),
            releasing: false,
        });
    }

    async fn refresh_leases(&mut self, changes: &mut Vec<Change>) {
        let partitions: Vec<u32> = self.held.keys().copied().collect();
        for partition in partitions {
            let sent = Instant::now();
            let held = &self.held[&partition];
            let refreshed = if sent < held.valid_until {
                self.kv
                    .update(lease_key(partition), self.value(), held.revision)
                    .await
                    .ok()
            } else {
                None
            };
            match refreshed {
                Some(revision) => {
                    let valid_for = self.valid_for();
                    let held = self.held.get_mut(&partition).expect("held");
                    held.revision = revision;
                    held.valid_until = sent + valid_for;
                }
                None => {
                    let held = self.held.remove(&partition).expect("held");
                    self.table.set(partition, 0);
                    changes.push(Change::Lost {
                        partition,
                        epoch: held.epoch,
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
                self.table.set(partition, 0);
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
        self.table.set(partition, 0);
        // If the delete fails the key simply expires after the TTL.
        let _ = self
            .kv
            .delete_expect_revision(lease_key(partition), Some(held.revision))
            .await;
        Change::Released {
            partition,
            epoch: held.epoch,
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
            let sent = Instant::now();
            match self.kv.create(lease_key(partition), self.value()).await {
                Ok(revision) => {
                    self.held.insert(
                        partition,
                        Held {
                            epoch: revision,
                            revision,
                            valid_until: sent + self.valid_for(),
                            releasing: false,
                        },
                    );
                    self.table.set(partition, revision);
                    changes.push(Change::Acquired {
                        partition,
                        epoch: revision,
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
        table.set(1, 7);
        assert!(table.is_current(1, 7));
        assert!(!table.is_current(1, 6));
        table.set(1, 0);
        assert!(!table.is_current(1, 7));
        assert_eq!(table.epoch(9), 0, "out of range: not held");
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
