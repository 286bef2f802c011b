//! Per-worker counters for a key-value server.
//!
//! Each worker (or connection task) owns one [`KvStats`] and is its only
//! writer, so the counters are plain integers; a server that wants a total
//! adds snapshots with [`KvStats::add`].

use std::fmt;

/// What one worker of a key-value server has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvStats {
    /// Connections accepted.
    pub connections_accepted: u64,
    /// Connections closed (by either side).
    pub connections_closed: u64,
    /// Commands answered (invalid ones included).
    pub commands: u64,
    /// Commands that needed another shard (routed to it or split).
    pub cross_shard: u64,
    /// Connections closed for malformed input.
    pub protocol_errors: u64,
    /// Times a connection's reading was paused because its unsent replies
    /// reached the output limit (a client that sends and does not read).
    pub reads_paused: u64,
    /// Times a connection's reading stopped at its per-event read budget,
    /// the rest left for its next turn (a client sending faster than it is
    /// served).
    pub reads_yielded: u64,
    /// Connections accepted past `maxclients`: sent Redis's error and
    /// closed (not counted in `connections_accepted`).
    pub clients_refused: u64,
    /// Times `accept` failed for want of file descriptors (`EMFILE`,
    /// `ENFILE`) and was retried later.
    pub accept_retries: u64,
}

impl KvStats {
    /// Connections open now.
    pub fn connections_open(&self) -> u64 {
        self.connections_accepted
            .saturating_sub(self.connections_closed)
    }

    /// Share of commands that needed another shard, 0.0 to 1.0.
    pub fn cross_shard_share(&self) -> f64 {
        if self.commands == 0 {
            0.0
        } else {
            self.cross_shard as f64 / self.commands as f64
        }
    }

    /// Adds `other`'s counters to these (for a total over workers).
    pub fn add(&mut self, other: &KvStats) {
        self.connections_accepted += other.connections_accepted;
        self.connections_closed += other.connections_closed;
        self.commands += other.commands;
        self.cross_shard += other.cross_shard;
        self.protocol_errors += other.protocol_errors;
        self.reads_paused += other.reads_paused;
        self.reads_yielded += other.reads_yielded;
        self.clients_refused += other.clients_refused;
        self.accept_retries += other.accept_retries;
    }
}

impl fmt::Display for KvStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connections {} open / {} accepted, commands {}, cross-shard {:.1}%, protocol errors {}, \
             reads paused {}, reads yielded {}, clients refused {}, accept retries {}",
            self.connections_open(),
            self.connections_accepted,
            self.commands,
            100.0 * self.cross_shard_share(),
            self.protocol_errors,
            self.reads_paused,
            self.reads_yielded,
            self.clients_refused,
            self.accept_retries
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_open_and_total() {
        let mut a = KvStats {
            connections_accepted: 3,
            connections_closed: 1,
            commands: 10,
            cross_shard: 4,
            protocol_errors: 1,
            ..KvStats::default()
        };
        assert_eq!(a.connections_open(), 2);
        assert!((a.cross_shard_share() - 0.4).abs() < 1e-9);
        assert_eq!(KvStats::default().cross_shard_share(), 0.0);
        a.add(&KvStats {
            commands: 10,
            connections_accepted: 1,
            ..KvStats::default()
        });
        assert_eq!(
            (a.commands, a.cross_shard, a.connections_open()),
            (20, 4, 3)
        );
        assert_eq!(
            a.to_string(),
            "connections 3 open / 4 accepted, commands 20, cross-shard 20.0%, protocol errors 1, \
             reads paused 0, reads yielded 0, clients refused 0, accept retries 0"
        );
    }
}
