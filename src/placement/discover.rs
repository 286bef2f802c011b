//! Discovery: reading this machine's [`Topology`] from a source — hwloc
//! (feature `hwloc`), Linux sysfs, or a flat fallback.
//!
//! The sources ([`sysfs`](super::sysfs), [`hwloc`](super)) turn what they
//! read into [`RawCpu`](super::topology::RawCpu)s and call
//! `Topology::assemble`; this file picks the source. So the dependencies run
//! one way: `discover → sysfs/hwloc → topology`, and `topology` (plain data)
//! depends on none of them.

use std::io;
use std::path::Path;

use super::topology::Topology;

impl Topology {
    /// Reads this machine's topology. Never fails: with the `hwloc` feature
    /// hwloc is asked first; then Linux sysfs (`/sys`); when neither
    /// answers (another OS, a sandbox without `/sys`), a flat topology of
    /// [`std::thread::available_parallelism`] CPUs, one core each, no
    /// NUMA node.
    pub fn discover() -> Topology {
        #[cfg(feature = "hwloc")]
        {
            if let Some(t) = Topology::from_hwloc() {
                tracing::debug!(topology = %t, "topology read from hwloc");
                return t;
            }
            tracing::debug!("hwloc gave no topology; trying sysfs");
        }
        match Topology::from_sysfs(Path::new("/sys")) {
            Ok(t) => {
                tracing::debug!(topology = %t, "topology read from sysfs");
                t
            }
            Err(e) => {
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                tracing::debug!(error = %e, cpus = n, "no sysfs topology; assuming a flat machine");
                Topology::flat(n)
            }
        }
    }

    /// Reads the topology from a sysfs tree rooted at `root` (`/sys` on a
    /// real machine; a fixture directory in tests): online CPUs from
    /// `devices/system/cpu/online`, each CPU's `topology/` files, NUMA
    /// nodes from `devices/system/node/node*/{cpulist,distance}`.
    ///
    /// Offline CPUs are left out. Without `devices/system/node` every CPU's
    /// node is `None`. Fails when no online CPU can be found or a file is
    /// malformed.
    pub fn from_sysfs(root: &Path) -> io::Result<Topology> {
        super::sysfs::read_topology(root)
    }

    /// Reads the topology through hwloc (feature `hwloc`); `None` when
    /// hwloc cannot load it. Node distances are not bound by `hwloc2` 2.2,
    /// so they are taken from sysfs on Linux when its nodes match (else
    /// left empty).
    #[cfg(feature = "hwloc")]
    pub fn from_hwloc() -> Option<Topology> {
        super::hwloc::read_topology()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::super::sysfs;
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn discover_agrees_with_sysfs_on_this_machine() {
        let t = Topology::discover();
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
        let online = sysfs::parse_cpulist(&online).unwrap();
        assert_eq!(t.cpus.iter().map(|c| c.id).collect::<Vec<_>>(), online);
        // Cores: one per distinct sibling list.
        let mut lists = BTreeSet::new();
        for &id in &online {
            let p = format!("/sys/devices/system/cpu/cpu{id}/topology/thread_siblings_list");
            lists.insert(std::fs::read_to_string(p).unwrap_or_else(|_| id.to_string()));
        }
        assert_eq!(t.core_count(), lists.len());
        if std::path::Path::new("/sys/devices/system/node/node0").exists() {
            assert!(t.cpus.iter().all(|c| c.node.is_some()), "{t:?}");
            assert_eq!(t.distance(0, 0), Some(10));
        }
        eprintln!(
            "this machine: {t}; nodes {:?}",
            t.cpus.iter().map(|c| c.node).collect::<Vec<_>>()
        );
    }
}
