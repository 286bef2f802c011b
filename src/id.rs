//! [`WorkerId`], the index of a worker, and [`Endpoint`], one end of a
//! channel (a worker or the outside). A leaf: errors, statistics, the
//! registry, the mesh and the worker API all name workers by it.

use std::fmt;

/// The index of a worker, `0..workers`.
///
/// ```
/// use shardpool::WorkerId;
/// let id = WorkerId::from(3);
/// assert_eq!(usize::from(id), 3);
/// assert_eq!(id.to_string(), "3");
/// ```
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct WorkerId(usize);

impl WorkerId {
    /// The index as a `usize`.
    #[inline]
    pub const fn index(self) -> usize {
        self.0
    }
}

impl From<usize> for WorkerId {
    #[inline]
    fn from(index: usize) -> Self {
        WorkerId(index)
    }
}

impl From<WorkerId> for usize {
    #[inline]
    fn from(id: WorkerId) -> usize {
        id.0
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// One end of a channel.
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// Threads outside the pool, through a [`PoolSender`](crate::PoolSender).
    External,
    /// A worker of the pool.
    Worker(WorkerId),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::External => f.write_str("ext"),
            Endpoint::Worker(id) => write!(f, "w{id}"),
        }
    }
}
