//! A sink that checks fencing tokens: the example's output store.
//!
//! A lease fences *handling* (the worker checks the deadline right before
//! each event), but not what a handled event *writes*: a process paused
//! between handling an event and writing its result resumes and writes
//! after its lease ended and another process took the partition over. The
//! remedy is the fencing token (Kleppmann, "How to do distributed
//! locking"): every write carries the epoch of the lease it was made under,
//! and the store refuses a write from an older epoch than the newest it has
//! seen for that partition.
//!
//! ```text
//! time ─────────────────────────────────────────────────────────────▶
//! process A  [lease epoch 7 ··· check ✓ handle]  ‖ stopped ‖ write(7) ✗ refused
//! process B                         (A's key expired) claim: epoch 9 ─ write(9) ✓
//! sink       newest[p] = 7 ·································· 9 ─────────▶
//! ```
//!
//! [`FencedFileSink`] is that store for processes on one host: per
//! partition an output file `{dir}/out-p{p}.log` and a fence file
//! `{dir}/out-p{p}.epoch` holding the newest epoch written. A write takes an
//! exclusive `flock` on the fence file, compares, raises the fence if the
//! epoch is newer, appends, and unlocks: so once an epoch's write is
//! accepted, no write of an older epoch is ever appended after it. A real
//! deployment does the same check in its database (a conditional write on
//! a per-partition epoch column, or a transaction).
//!
//! The worker nakks the events of a refused write: JetStream redelivers
//! them to the partition's current owner, which writes them under its own
//! epoch.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// The output file of `partition` in `dir`.
pub fn output_path(dir: &Path, partition: u32) -> PathBuf {
    dir.join(format!("out-p{partition}.log"))
}

/// The fence file of `partition` in `dir` (the newest epoch, 8 bytes
/// little-endian; absent or empty: none yet).
pub fn fence_path(dir: &Path, partition: u32) -> PathBuf {
    dir.join(format!("out-p{partition}.epoch"))
}

/// Why a write was not accepted.
#[derive(Debug)]
pub enum SinkError {
    /// The write's epoch is older than the newest this partition has seen:
    /// its lease has been superseded. Nothing was written.
    Stale {
        /// The write's epoch.
        epoch: u64,
        /// The newest epoch the sink has seen for the partition.
        newest: u64,
    },
    /// The files could not be opened, locked, read or written.
    Io(io::Error),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Stale { epoch, newest } => {
                write!(f, "epoch {epoch} is older than epoch {newest}: refused")
            }
            SinkError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SinkError {}

impl From<io::Error> for SinkError {
    fn from(e: io::Error) -> Self {
        SinkError::Io(e)
    }
}

#[derive(Debug)]
struct PartitionFiles {
    fence: File,
    output: File,
}

/// Per-partition output files guarded by their newest epoch; one per
/// writer (each pool worker has its own; any number of processes may
/// write to one directory).
#[derive(Debug)]
pub struct FencedFileSink {
    dir: PathBuf,
    files: HashMap<u32, PartitionFiles>,
    sync: bool,
}

impl FencedFileSink {
    /// A sink writing into `dir` (which must exist).
    pub fn new(dir: impl Into<PathBuf>) -> FencedFileSink {
        FencedFileSink {
            dir: dir.into(),
            files: HashMap::new(),
            sync: false,
        }
    }

    /// With `sync`, each accepted write is on disk (`fdatasync` of the
    /// output and the fence) before [`FencedFileSink::write`] returns, so
    /// an event acked after its write survives a power loss. Without it
    /// (the default) a write is in the page cache: it survives the process
    /// being killed, not the machine going down before the kernel writes
    /// it back (about 30 s on Linux by default).
    pub fn sync(mut self, sync: bool) -> FencedFileSink {
        self.sync = sync;
        self
    }

    fn files(&mut self, partition: u32) -> io::Result<&PartitionFiles> {
        if !self.files.contains_key(&partition) {
            let fence = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(fence_path(&self.dir, partition))?;
            let output = OpenOptions::new()
                .create(true)
                .append(true)
                .open(output_path(&self.dir, partition))?;
            self.files
                .insert(partition, PartitionFiles { fence, output });
        }
        Ok(&self.files[&partition])
    }

    /// Appends `bytes` to `partition`'s output under lease `epoch`, unless
    /// a newer epoch has written there already ([`SinkError::Stale`]).
    pub fn write(&mut self, partition: u32, epoch: u64, bytes: &[u8]) -> Result<(), SinkError> {
        let sync = self.sync;
        let files = self.files(partition)?;
        // An exclusive lock per partition, across processes: the compare,
        // the raise and the append happen as one step.
        files.fence.lock()?;
        let result = (|| {
            let newest = read_epoch(&files.fence)?;
            if epoch < newest {
                return Err(SinkError::Stale { epoch, newest });
            }
            if epoch > newest {
                files.fence.write_all_at(&epoch.to_le_bytes(), 0)?;
                if sync {
                    files.fence.sync_data()?;
                }
            }
            (&files.output).write_all(bytes)?;
            if sync {
                files.output.sync_data()?;
            }
            Ok(())
        })();
        files.fence.unlock()?;
        result
    }

    /// The newest epoch written to `partition` so far (0: none).
    pub fn newest(&mut self, partition: u32) -> Result<u64, SinkError> {
        let files = self.files(partition)?;
        files.fence.lock_shared()?;
        let newest = read_epoch(&files.fence);
        files.fence.unlock()?;
        Ok(newest?)
    }
}

fn read_epoch(fence: &File) -> io::Result<u64> {
    let mut buf = [0u8; 8];
    let mut read = 0;
    while read < buf.len() {
        match fence.read_at(&mut buf[read..], read as u64)? {
            0 => break,
            n => read += n,
        }
    }
    match read {
        0 => Ok(0),
        8 => Ok(u64::from_le_bytes(buf)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "fence file: a partial epoch",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("shardpool-sink-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_older_epoch_is_refused_after_a_newer_one() {
        let dir = temp_dir("older");
        // Two writers with their own file descriptions, as two processes.
        let mut old_owner = FencedFileSink::new(&dir).sync(true);
        let mut new_owner = FencedFileSink::new(&dir);
        old_owner.write(3, 7, b"a7\n").unwrap();
        old_owner.write(3, 7, b"b7\n").unwrap();
        new_owner.write(3, 9, b"c9\n").unwrap();
        match old_owner.write(3, 7, b"late7\n") {
            Err(SinkError::Stale {
                epoch: 7,
                newest: 9,
            }) => {}
            other => panic!("a stale write was not refused: {other:?}"),
        }
        // The same epoch again is fine (one lease, many batches), and other
        // partitions are independent.
        new_owner.write(3, 9, b"d9\n").unwrap();
        old_owner.write(4, 7, b"e7\n").unwrap();
        let out = std::fs::read_to_string(output_path(&dir, 3)).unwrap();
        assert_eq!(out, "a7\nb7\nc9\nd9\n");
        assert_eq!(new_owner.newest(3).unwrap(), 9);
        assert_eq!(new_owner.newest(4).unwrap(), 7);
        assert_eq!(new_owner.newest(5).unwrap(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_writers_never_append_an_older_epoch_after_a_newer() {
        let dir = temp_dir("concurrent");
        let writers: Vec<_> = (1..=4u64)
            .map(|w| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let mut sink = FencedFileSink::new(&dir);
                    let mut refused = 0;
                    for i in 0..200u64 {
                        let epoch = w + 4 * (i / 50);
                        match sink.write(0, epoch, format!("{epoch}\n").as_bytes()) {
                            Ok(()) => {}
                            Err(SinkError::Stale { .. }) => refused += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    refused
                })
            })
            .collect();
        let refused: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        let out = std::fs::read_to_string(output_path(&dir, 0)).unwrap();
        let epochs: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(epochs.len() as u64 + refused, 800);
        assert!(
            epochs.windows(2).all(|w| w[0] <= w[1]),
            "an older epoch after a newer one: {epochs:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
