//! Reading the topology through hwloc (feature `hwloc`, needs
//! `libhwloc-dev` and `pkg-config` at build time): the portable source,
//! for systems where sysfs is missing or incomplete.
//!
//! Two things differ from a plain walk of the `hwloc2` 2.2 API:
//!
//! - `objects_with_type(&ObjectType::NUMANode)` panics in `hwloc2` 2.2
//!   (the virtual depth −3 of memory objects is mapped wrongly), so NUMA
//!   nodes are never listed directly: each CPU's node is the lowest node of
//!   its core's `nodeset()` (a core next to both DRAM and a memory-only
//!   node, e.g. HBM or CXL, gets the DRAM node, which has the lower id as
//!   sysfs numbers them).
//! - `hwloc2` 2.2 does not bind the distance API, so node distances are
//!   taken from sysfs on Linux when its nodes are the same; otherwise they
//!   stay unknown.
//!
//! The topology is loaded with `IncludeDisallowed`, so it lists every
//! online CPU as sysfs does; [`allowed_cpus`](super::allowed_cpus) stays
//! the one source of what this process may use.

use std::path::Path;

use hwloc2::{ObjectType, TopologyFlag, TopologyObject};

use super::topology::{CoreKey, Node, RawCpu, Topology};

/// hwloc's "no OS index" marker (`HWLOC_UNKNOWN_INDEX`).
const UNKNOWN_INDEX: u32 = u32::MAX;

/// The first ancestor of `obj` of type `ty`.
fn ancestor(obj: &TopologyObject, ty: ObjectType) -> Option<&TopologyObject> {
    let mut p = obj.parent();
    while let Some(o) = p {
        if o.object_type() == ty {
            return Some(o);
        }
        p = o.parent();
    }
    None
}

/// The lowest NUMA node of `obj`'s nodeset; `None` when empty or infinite.
fn first_node(obj: &TopologyObject) -> Option<usize> {
    let set = obj.nodeset()?;
    if set.is_empty() || set.weight() < 0 {
        return None;
    }
    usize::try_from(set.first()).ok()
}

/// Reads the topology; `None` when hwloc cannot load one or reports no
/// processing unit.
pub(crate) fn read_topology() -> Option<Topology> {
    let topo = hwloc2::Topology::with_flags(vec![TopologyFlag::IncludeDisallowed])?;
    let pus = topo.objects_with_type(&ObjectType::PU).ok()?;
    let mut raw = Vec::with_capacity(pus.len());
    for pu in pus {
        if pu.os_index() == UNKNOWN_INDEX {
            continue;
        }
        let id = pu.os_index() as usize;
        let core_obj = ancestor(pu, ObjectType::Core);
        let core = match core_obj.and_then(|c| c.cpuset()) {
            Some(set) if set.first() >= 0 => CoreKey::FirstThread(set.first() as usize),
            _ => CoreKey::Alone(id),
        };
        let package = ancestor(pu, ObjectType::Package)
            .map(|p| p.os_index())
            .filter(|&i| i != UNKNOWN_INDEX)
            .map_or(0, |i| i as usize);
        let node = first_node(core_obj.unwrap_or(pu));
        raw.push(RawCpu {
            id,
            core,
            package,
            node,
        });
    }
    if raw.is_empty() {
        return None;
    }

    let mut ids: Vec<usize> = raw.iter().filter_map(|c| c.node).collect();
    ids.sort_unstable();
    ids.dedup();
    // Distances from sysfs, only when it numbers the same nodes.
    let sys = super::sysfs::read_topology(Path::new("/sys")).ok();
    let nodes = ids
        .iter()
        .map(|&id| {
            let distances = sys
                .as_ref()
                .filter(|s| s.nodes.iter().map(|n| n.id).eq(ids.iter().copied()))
                .and_then(|s| s.node(id))
                .map(|n| n.distances.clone())
                .unwrap_or_default();
            Node {
                id,
                cpus: Vec::new(),
                distances,
            }
        })
        .collect();
    Some(Topology::assemble(raw, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sources must describe this machine the same way.
    #[test]
    fn hwloc_agrees_with_sysfs() {
        let from_hwloc = Topology::from_hwloc().expect("hwloc loads a topology");
        let from_sysfs = Topology::from_sysfs(Path::new("/sys")).expect("sysfs is readable");
        assert_eq!(from_hwloc.cpus, from_sysfs.cpus);
        // sysfs may list memory-only nodes hwloc's core nodesets cannot see
        // (then hwloc has no distances, by design).
        let cpu_nodes: Vec<_> = from_sysfs
            .nodes
            .iter()
            .filter(|n| !n.cpus.is_empty())
            .collect();
        if cpu_nodes.len() == from_sysfs.nodes.len() {
            assert_eq!(from_hwloc.nodes, from_sysfs.nodes);
        } else {
            let ids = |nodes: Vec<&Node>| {
                nodes
                    .iter()
                    .map(|n| (n.id, n.cpus.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(from_hwloc.nodes.iter().collect()), ids(cpu_nodes));
        }
        assert_eq!(from_hwloc.core_count(), from_sysfs.core_count());
        assert_eq!(from_hwloc.package_count(), from_sysfs.package_count());
        eprintln!("hwloc: {from_hwloc}\nsysfs: {from_sysfs}");
    }

    #[test]
    fn discover_uses_hwloc() {
        assert_eq!(Some(Topology::discover()), Topology::from_hwloc());
    }
}
