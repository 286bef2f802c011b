//! The logs a process writes with `--log-dir`, one line per fact, and their
//! parser (the integration test reads them back).
//!
//! - `{dir}/out-p{partition}.log`: one [`Handled`] line per event a
//!   worker handled, written through the [`FencedFileSink`](crate::sink::FencedFileSink)
//!   *before* the event is acked (so an acked event is always in a log even
//!   if the process is killed right after) and only if no newer lease epoch
//!   of the partition has written there (else the event is nakked).
//! - `{dir}/p{process}-leases.log`: one [`LeaseRecord`] line per lease the
//!   process acquired, released or lost (a lease lost by passing its
//!   deadline is logged at its deadline: when it stopped counting as held).
//!
//! Timestamps are nanoseconds of the system clock, which all processes on
//! one machine share.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, from the system clock.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The handled-event log of one partition (written by every process that
/// held it): the fenced sink's output file.
pub fn handled_log(dir: &Path, partition: u32) -> PathBuf {
    crate::sink::output_path(dir, partition)
}

/// The lease log of one process.
pub fn lease_log(dir: &Path, process: u32) -> PathBuf {
    dir.join(format!("p{process}-leases.log"))
}

/// One handled event:
/// `H {seq} {partition} {epoch} {key} {value} {process} {worker} {at_ns}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handled {
    /// The event's stream sequence (unique in the stream).
    pub seq: u64,
    /// Its partition.
    pub partition: u32,
    /// The lease epoch under which it was fetched and handled.
    pub epoch: u64,
    /// Its key.
    pub key: String,
    /// Its value.
    pub value: u64,
    /// The process that handled it.
    pub process: u32,
    /// The worker (index) that handled it.
    pub worker: usize,
    /// When it was handled.
    pub at_ns: u64,
}

impl Handled {
    /// Appends the line for these fields (without building a `Handled`).
    #[allow(clippy::too_many_arguments)]
    pub fn write(
        out: &mut String,
        seq: u64,
        partition: u32,
        epoch: u64,
        key: &str,
        value: u64,
        process: u32,
        worker: usize,
        at_ns: u64,
    ) {
        let _ = writeln!(
            out,
            "H {seq} {partition} {epoch} {key} {value} {process} {worker} {at_ns}"
        );
    }

    /// Parses a line written by [`Handled::write`].
    pub fn parse(line: &str) -> Option<Handled> {
        let mut f = line.split(' ');
        if f.next()? != "H" {
            return None;
        }
        let handled = Handled {
            seq: f.next()?.parse().ok()?,
            partition: f.next()?.parse().ok()?,
            epoch: f.next()?.parse().ok()?,
            key: f.next()?.to_string(),
            value: f.next()?.parse().ok()?,
            process: f.next()?.parse().ok()?,
            worker: f.next()?.parse().ok()?,
            at_ns: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(handled)
    }
}

/// What happened to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    /// Created in the bucket by this process (`A`).
    Acquired,
    /// Handed back on purpose, after its in-flight events were acked (`R`).
    Released,
    /// Lost: a refresh failed or came too late (`X`).
    Lost,
}

/// One lease change: `{A|R|X} {partition} {epoch} {at_ns}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseRecord {
    /// What happened.
    pub change: LeaseChange,
    /// The partition.
    pub partition: u32,
    /// The lease's epoch: the bucket revision that created it.
    pub epoch: u64,
    /// When.
    pub at_ns: u64,
}

impl LeaseRecord {
    /// The line for this record (with its newline).
    pub fn line(&self) -> String {
        let tag = match self.change {
            LeaseChange::Acquired => 'A',
            LeaseChange::Released => 'R',
            LeaseChange::Lost => 'X',
        };
        format!("{tag} {} {} {}\n", self.partition, self.epoch, self.at_ns)
    }

    /// Parses a line written from [`LeaseRecord::line`].
    pub fn parse(line: &str) -> Option<LeaseRecord> {
        let mut f = line.split(' ');
        let change = match f.next()? {
            "A" => LeaseChange::Acquired,
            "R" => LeaseChange::Released,
            "X" => LeaseChange::Lost,
            _ => return None,
        };
        let record = LeaseRecord {
            change,
            partition: f.next()?.parse().ok()?,
            epoch: f.next()?.parse().ok()?,
            at_ns: f.next()?.parse().ok()?,
        };
        f.next().is_none().then_some(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_round_trip() {
        let mut line = String::new();
        Handled::write(&mut line, 7, 3, 12, "k5", 4, 2, 1, 99);
        let parsed = Handled::parse(line.trim_end()).unwrap();
        assert_eq!(
            parsed,
            Handled {
                seq: 7,
                partition: 3,
                epoch: 12,
                key: "k5".into(),
                value: 4,
                process: 2,
                worker: 1,
                at_ns: 99
            }
        );
        assert_eq!(Handled::parse("H 7 3 12 k5 4 2 1"), None);
        assert_eq!(Handled::parse("H 7 3 12 k5 4 2 1 99 extra"), None);
    }

    #[test]
    fn lease_round_trip() {
        for change in [
            LeaseChange::Acquired,
            LeaseChange::Released,
            LeaseChange::Lost,
        ] {
            let record = LeaseRecord {
                change,
                partition: 2,
                epoch: 40,
                at_ns: 5,
            };
            assert_eq!(LeaseRecord::parse(record.line().trim_end()), Some(record));
        }
        assert_eq!(LeaseRecord::parse("Q 1 2 3"), None);
    }
}
