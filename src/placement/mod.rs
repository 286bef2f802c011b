//! Placement: which CPU and NUMA node each worker runs on.
//!
//! A thread-per-core pool is only as good as its placement: two workers on
//! the SMT siblings of one core share its execution units and caches, and a
//! worker whose neighbours sit on another NUMA node pays remote-memory
//! latency on every ring it reads. This module
//!
//! 1. describes the machine ([`Topology`]: CPUs, physical cores, packages,
//!    NUMA nodes and their distances), read from Linux sysfs by default or
//!    from hwloc with the `hwloc` feature, falling back to a flat machine
//!    elsewhere (`topology.rs` the data, `discover.rs` the choice of
//!    source, `sysfs.rs` and `hwloc.rs` the sources);
//! 2. finds the CPUs this process may use ([`allowed_cpus`], which reflects
//!    `taskset` and container cpusets — `os.rs`);
//! 3. decides, as a pure function of those two and the configuration,
//!    one [`Slot`] per worker ([`plan`] — `plan.rs`), so every policy can be
//!    tested on machines we do not have;
//! 4. pins a worker thread to its slot ([`pin_current_thread`]) and tells
//!    where a thread runs ([`current_cpu`] — `os.rs`).
//!
//! # Policies
//!
//! - [`Affinity::PhysicalCores`] (default): one worker per physical core
//!   among the allowed CPUs, SMT siblings skipped. [`NumaFill::Compact`]
//!   takes every core of one NUMA node before moving on to the node
//!   nearest to it; [`NumaFill::Spread`] takes one core from each node in
//!   turn, visiting the nodes farthest-first (so the first workers of a
//!   2-socket machine alternate sockets). Asking more workers than allowed
//!   physical cores uses the SMT siblings next (in the same node order). Asking more workers than
//!   allowed CPUs is refused with [`Error::InvalidConfig`] on `"workers"`:
//!   two pinned workers on one CPU would starve each other, so that has to
//!   be asked for explicitly with [`Affinity::None`] (unpinned, any count).
//! - [`Affinity::Cpus`]: worker `i` on `list[i]`; every CPU must exist and
//!   be allowed, and the error names the first one that is not.
//! - [`Affinity::None`]: unpinned workers, no NUMA node.
//!
//! Default worker count: the number of allowed physical cores
//! (`PhysicalCores`, `None`) or the length of the list (`Cpus`).
//!
//! ```
//! use shardpool::placement::{Placement, Slot, Topology};
//! let machine = Topology::uniform(1, 2, 2, 2); // 2 nodes × 2 cores × 2 SMT
//! assert_eq!(machine.siblings(1), vec![1, 5]);
//! assert_eq!(machine.distance(0, 1), Some(12));
//! let slots = [Slot { cpu: Some(0), numa_node: Some(0) }, Slot::UNPINNED];
//! assert_eq!(Placement::new(&slots).to_string(), "2 workers: w0→cpu0/node0, w1→unpinned");
//! ```
//!
//! [`Affinity::PhysicalCores`]: crate::Affinity::PhysicalCores
//! [`Affinity::Cpus`]: crate::Affinity::Cpus
//! [`Affinity::None`]: crate::Affinity::None
//! [`NumaFill::Compact`]: crate::NumaFill::Compact
//! [`NumaFill::Spread`]: crate::NumaFill::Spread
//! [`Error::InvalidConfig`]: crate::Error::InvalidConfig

mod discover;
#[cfg(feature = "hwloc")]
mod hwloc;
mod os;
mod plan;
mod sysfs;
mod topology;

pub use os::{allowed_cpus, current_cpu, pin_current_thread};
pub use plan::{plan, Placement, Slot, MAX_WORKERS};
pub use topology::{Cpu, Node, Topology};
