//! The machine as placement sees it: logical CPUs grouped into physical
//! cores, packages (sockets) and NUMA nodes, with the distances between
//! nodes.
//!
//! [`Topology`] is plain data so that [`plan`](super::plan) can be tested
//! on machines we do not have ([`Topology::uniform`], or a struct literal).
//! Where it comes from is decided here: [`Topology::discover`] reads Linux
//! sysfs (or hwloc with the `hwloc` feature) and falls back to a flat
//! topology ([`Topology::flat`]) when neither answers, so that discovering
//! never fails and never panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One logical CPU (hardware thread) of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    /// OS CPU id (the number `taskset`, `sched_setaffinity` and
    /// `/sys/devices/system/cpu/cpuN` use).
    pub id: usize,
    /// Physical core, unique across the machine: cores are numbered
    /// `0..core_count()` in the order of their lowest CPU id. The CPUs that
    /// share a `core` are SMT siblings (hyper-threads).
    pub core: usize,
    /// Package (socket), as the OS numbers it (`physical_package_id`).
    pub package: usize,
    /// NUMA node, `None` when the OS exposes no NUMA information.
    pub node: Option<usize>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// OS node id (`/sys/devices/system/node/nodeN`).
    pub id: usize,
    /// The online CPUs of this node, sorted (empty for a memory-only node).
    pub cpus: Vec<usize>,
    /// `distances[j]` is the ACPI SLIT distance from this node to
    /// `Topology::nodes[j]` (10 = local). Empty when unknown.
    pub distances: Vec<u32>,
}

/// The machine's CPUs and NUMA nodes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Topology {
    /// Every online CPU, sorted by id. Includes CPUs this process is not
    /// allowed to use (see [`allowed_cpus`](super::allowed_cpus)).
    pub cpus: Vec<Cpu>,
    /// The NUMA nodes, sorted by id; empty when the OS exposes none (then
    /// every [`Cpu::node`] is `None`).
    pub nodes: Vec<Node>,
}

/// How one source identifies the physical core of a CPU before cores are
/// renumbered densely: any value shared by exactly the CPUs of one core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum CoreKey {
    /// The lowest CPU id of the core's hardware threads.
    FirstThread(usize),
    /// `(physical_package_id, core_id)` when the sibling list is missing.
    PackageCore(usize, usize),
    /// Nothing known: the CPU is its own core.
    Alone(usize),
}

/// A CPU as a source reports it, before [`Topology::assemble`].
#[derive(Debug, Clone)]
pub(crate) struct RawCpu {
    pub(crate) id: usize,
    pub(crate) core: CoreKey,
    pub(crate) package: usize,
    pub(crate) node: Option<usize>,
}

impl Topology {
    /// A flat machine of `n` CPUs `0..n`: one core each, one package, no
    /// NUMA information. What [`discover`](Topology::discover) falls back
    /// to.
    pub fn flat(n: usize) -> Topology {
        Topology {
            cpus: (0..n)
                .map(|id| Cpu {
                    id,
                    core: id,
                    package: 0,
                    node: None,
                })
                .collect(),
            nodes: Vec::new(),
        }
    }

    /// A regular machine, numbered as Linux numbers x86 servers:
    /// `packages` × `nodes_per_package` NUMA nodes × `cores_per_node`
    /// cores × `threads_per_core` hardware threads. CPU ids run over the
    /// first thread of every core, then the second thread of every core
    /// (so with 16 cores × 2 threads, CPU 0 and CPU 16 are siblings).
    /// Distances: 10 local, 12 within a package, 20 across packages.
    /// Meant for tests and for planning a machine you do not have.
    pub fn uniform(
        packages: usize,
        nodes_per_package: usize,
        cores_per_node: usize,
        threads_per_core: usize,
    ) -> Topology {
        let node_count = packages * nodes_per_package;
        let core_count = node_count * cores_per_node;
        let mut cpus = Vec::with_capacity(core_count * threads_per_core);
        for thread in 0..threads_per_core {
            for core in 0..core_count {
                let node = core / cores_per_node;
                cpus.push(Cpu {
                    id: thread * core_count + core,
                    core,
                    package: node / nodes_per_package,
                    node: Some(node),
                });
            }
        }
        let nodes = (0..node_count)
            .map(|id| Node {
                id,
                cpus: cpus
                    .iter()
                    .filter(|c| c.node == Some(id))
                    .map(|c| c.id)
                    .collect(),
                distances: (0..node_count)
                    .map(|other| {
                        if other == id {
                            10
                        } else if other / nodes_per_package == id / nodes_per_package {
                            12
                        } else {
                            20
                        }
                    })
                    .collect(),
            })
            .collect();
        Topology { cpus, nodes }
    }

    /// The CPU with OS id `id`, if it is online.
    pub fn cpu(&self, id: usize) -> Option<&Cpu> {
        match self.cpus.binary_search_by_key(&id, |c| c.id) {
            Ok(i) => Some(&self.cpus[i]),
            // Not sorted (a hand-built topology): look everywhere.
            Err(_) => self.cpus.iter().find(|c| c.id == id),
        }
    }

    /// The NUMA node with OS id `id`.
    pub fn node(&self, id: usize) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The distance between NUMA nodes `a` and `b` (10 = local), if known.
    pub fn distance(&self, a: usize, b: usize) -> Option<u32> {
        let j = self.nodes.iter().position(|n| n.id == b)?;
        self.node(a)?.distances.get(j).copied()
    }

    /// The CPUs sharing `cpu`'s physical core, `cpu` included, sorted.
    /// Empty when `cpu` is not in the topology.
    pub fn siblings(&self, cpu: usize) -> Vec<usize> {
        match self.cpu(cpu) {
            Some(c) => self
                .cpus
                .iter()
                .filter(|o| o.core == c.core)
                .map(|o| o.id)
                .collect(),
            None => Vec::new(),
        }
    }

    /// Number of physical cores.
    pub fn core_count(&self) -> usize {
        self.cpus
            .iter()
            .map(|c| c.core)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Number of packages (sockets).
    pub fn package_count(&self) -> usize {
        self.cpus
            .iter()
            .map(|c| c.package)
            .collect::<BTreeSet<_>>()
            .len()
    }

    /// Builds a topology from what a source read: sorts CPUs, numbers
    /// cores densely in the order of their lowest CPU id, and fills each
    /// node's CPU list.
    pub(crate) fn assemble(mut raw: Vec<RawCpu>, mut nodes: Vec<Node>) -> Topology {
        raw.sort_by_key(|c| c.id);
        raw.dedup_by_key(|c| c.id);
        let mut core_ids: BTreeMap<CoreKey, usize> = BTreeMap::new();
        let cpus: Vec<Cpu> = raw
            .iter()
            .map(|c| {
                let next = core_ids.len();
                let core = *core_ids.entry(c.core).or_insert(next);
                Cpu {
                    id: c.id,
                    core,
                    package: c.package,
                    node: c.node,
                }
            })
            .collect();
        nodes.sort_by_key(|n| n.id);
        for node in &mut nodes {
            node.cpus = cpus
                .iter()
                .filter(|c| c.node == Some(node.id))
                .map(|c| c.id)
                .collect();
        }
        Topology { cpus, nodes }
    }
}

/// A one-line summary, e.g. `2 CPUs, 2 cores, 1 package, 1 NUMA node`.
impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn plural(n: usize, one: &str, many: &str) -> String {
            format!("{n} {}", if n == 1 { one } else { many })
        }
        write!(
            f,
            "{}, {}, {}, {}",
            plural(self.cpus.len(), "CPU", "CPUs"),
            plural(self.core_count(), "core", "cores"),
            plural(self.package_count(), "package", "packages"),
            if self.nodes.is_empty() {
                String::from("no NUMA information")
            } else {
                plural(self.nodes.len(), "NUMA node", "NUMA nodes")
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_numbers_like_linux() {
        let t = Topology::uniform(2, 2, 8, 2);
        assert_eq!(t.cpus.len(), 64);
        assert_eq!(t.core_count(), 32);
        assert_eq!(t.package_count(), 2);
        assert_eq!(t.nodes.len(), 4);
        assert_eq!(t.siblings(0), vec![0, 32]);
        assert_eq!(t.siblings(40), vec![8, 40]);
        assert_eq!(t.cpu(8).unwrap().node, Some(1));
        assert_eq!(t.cpu(16).unwrap().package, 1);
        assert_eq!(t.node(3).unwrap().cpus.len(), 16);
        assert_eq!(t.distance(0, 0), Some(10));
        assert_eq!(t.distance(0, 1), Some(12));
        assert_eq!(t.distance(1, 2), Some(20));
        assert_eq!(t.distance(0, 9), None);
        assert_eq!(t.to_string(), "64 CPUs, 32 cores, 2 packages, 4 NUMA nodes");
    }

    #[test]
    fn flat_has_no_numa() {
        let t = Topology::flat(3);
        assert_eq!(t.core_count(), 3);
        assert!(t.cpus.iter().all(|c| c.node.is_none()));
        assert_eq!(t.distance(0, 0), None);
        assert_eq!(
            t.to_string(),
            "3 CPUs, 3 cores, 1 package, no NUMA information"
        );
        assert_eq!(Topology::flat(0).cpus.len(), 0);
    }

    #[test]
    fn assemble_numbers_cores_by_lowest_cpu() {
        let raw = vec![
            RawCpu {
                id: 3,
                core: CoreKey::FirstThread(1),
                package: 0,
                node: Some(0),
            },
            RawCpu {
                id: 1,
                core: CoreKey::FirstThread(1),
                package: 0,
                node: Some(0),
            },
            RawCpu {
                id: 2,
                core: CoreKey::Alone(2),
                package: 0,
                node: None,
            },
            RawCpu {
                id: 0,
                core: CoreKey::PackageCore(0, 7),
                package: 0,
                node: Some(0),
            },
        ];
        let node = Node {
            id: 0,
            cpus: vec![],
            distances: vec![10],
        };
        let t = Topology::assemble(raw, vec![node]);
        let cores: Vec<_> = t.cpus.iter().map(|c| (c.id, c.core)).collect();
        assert_eq!(cores, vec![(0, 0), (1, 1), (2, 2), (3, 1)]);
        assert_eq!(t.nodes[0].cpus, vec![0, 1, 3]);
    }

    #[test]
    fn discover_never_panics_and_finds_cpus() {
        let t = Topology::discover();
        assert!(!t.cpus.is_empty());
        assert!(t.core_count() >= 1);
    }
}
