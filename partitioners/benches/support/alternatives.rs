//! Reference implementations of the consistent-hashing schemes that
//! `JumpAnchor` was compared against. Used only by the bench and the
//! `measure` example; not part of the crate's API.

#![allow(dead_code)]

use shardpool_partitioners::derive_hash;

/// Consistent-hash ring with `vnodes` virtual nodes per shard.
pub struct Ring {
    points: Vec<u64>,
    owners: Vec<u32>,
}

impl Ring {
    pub fn new(shards: usize, vnodes: usize) -> Self {
        let mut v: Vec<(u64, u32)> = (0..shards)
            .flat_map(|s| {
                (0..vnodes).map(move |i| (derive_hash((s * vnodes + i) as u64, 7), s as u32))
            })
            .collect();
        v.sort_unstable();
        Ring {
            points: v.iter().map(|p| p.0).collect(),
            owners: v.iter().map(|p| p.1).collect(),
        }
    }

    /// Removes every virtual node of `shard`.
    pub fn without(&self, shard: usize) -> Self {
        let keep: Vec<usize> = (0..self.points.len())
            .filter(|&i| self.owners[i] as usize != shard)
            .collect();
        Ring {
            points: keep.iter().map(|&i| self.points[i]).collect(),
            owners: keep.iter().map(|&i| self.owners[i]).collect(),
        }
    }

    #[inline]
    pub fn shard_of(&self, h: u64) -> usize {
        let i = self.points.partition_point(|&p| p < h);
        let i = if i == self.points.len() { 0 } else { i };
        self.owners[i] as usize
    }
}

/// Rendezvous (highest random weight) hashing over shards `0..n`, skipping
/// removed ones.
pub struct Rendezvous {
    seeds: Vec<u64>,
    removed: Vec<bool>,
}

impl Rendezvous {
    pub fn new(shards: usize) -> Self {
        Rendezvous {
            seeds: (0..shards as u64).map(|s| derive_hash(s, 11)).collect(),
            removed: vec![false; shards],
        }
    }

    pub fn remove(&mut self, shard: usize) {
        self.removed[shard] = true;
    }

    #[inline]
    pub fn shard_of(&self, h: u64) -> usize {
        let mut best = 0;
        let mut best_w = 0;
        for (s, &seed) in self.seeds.iter().enumerate() {
            let w = derive_hash(h ^ seed, 0);
            if w >= best_w && !self.removed[s] {
                best = s;
                best_w = w;
            }
        }
        best
    }
}
