//! [`WorkerId`], the index of a worker. A leaf: errors, statistics, the
//! registry and the worker API all name workers by it.

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
