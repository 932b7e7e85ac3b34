//! The parts of a container's resource usage beyond CPU, memory and pids that containerd's
//! metrics carry: hugetlb per page size and block I/O per device.

use std::collections::{BTreeMap, HashMap};

use libcgroups::stats::{BlkioStats, HugeTlbStats};

use crate::cgroups::Cgroups;

/// A cgroup's use of one huge page size.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HugeTlbUsage {
    /// Bytes in use.
    pub usage: u64,
    /// The limit in bytes (`u64::MAX` for none, as containerd reports "max").
    pub limit: u64,
    /// How often an allocation failed at the limit.
    pub failures: u64,
}

/// A cgroup's block I/O on one device (v2 `io.stat`, v1 `blkio.throttle.io_service_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoUsage {
    pub major: u64,
    pub minor: u64,
    pub read_bytes: u64,
    pub write_bytes: u64,
    pub read_ops: u64,
    pub write_ops: u64,
}

/// Per-device totals from libcgroups' blkio lists (op types `read`/`write` on v2, `Read`/`Write`
/// on v1; other op types such as v1's `Total` are not summed again).
pub fn io(b: &BlkioStats) -> Vec<IoUsage> {
    let mut by_dev = BTreeMap::<(u64, u64), IoUsage>::new();
    for (list, bytes) in [(&b.service_bytes, true), (&b.serviced, false)] {
        for e in list {
            let u = by_dev.entry((e.major, e.minor)).or_insert_with(|| IoUsage {
                major: e.major,
                minor: e.minor,
                ..IoUsage::default()
            });
            let op = e.op_type.as_deref().unwrap_or("").to_ascii_lowercase();
            match (op.as_str(), bytes) {
                ("read", true) => u.read_bytes += e.value,
                ("write", true) => u.write_bytes += e.value,
                ("read", false) => u.read_ops += e.value,
                ("write", false) => u.write_ops += e.value,
                _ => {}
            }
        }
    }
    by_dev.into_values().collect()
}

/// libcgroups' hugetlb figures of cgroup `rel` with each page size's limit, which it does not
/// read on v2 (`hugetlb.<size>.max`; v1 `hugetlb.<size>.limit_in_bytes`).
pub fn hugetlb(h: &HashMap<String, HugeTlbStats>, rel: &str) -> BTreeMap<String, HugeTlbUsage> {
    let cg = Cgroups::detect().ok();
    h.iter()
        .map(|(size, st)| {
            let limit = cg.as_ref().and_then(|cg| {
                cg.read("hugetlb", rel, &format!("hugetlb.{size}.max"))
                    .or_else(|| cg.read("hugetlb", rel, &format!("hugetlb.{size}.limit_in_bytes")))
            });
            let limit = match limit.as_deref() {
                Some("max") | None => u64::MAX,
                Some(v) => v.parse().unwrap_or(u64::MAX),
            };
            let u = HugeTlbUsage {
                usage: st.usage,
                limit,
                failures: st.fail_count,
            };
            (size.clone(), u)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use libcgroups::stats::BlkioDeviceStat;

    use super::*;

    fn dev(major: u64, op: &str, value: u64) -> BlkioDeviceStat {
        BlkioDeviceStat {
            major,
            minor: 0,
            op_type: Some(op.into()),
            value,
        }
    }

    #[test]
    fn io_sums_reads_and_writes_per_device_in_either_spelling() {
        let b = BlkioStats {
            service_bytes: vec![
                dev(8, "read", 4096),
                dev(8, "write", 512),
                dev(253, "Read", 1),
            ],
            serviced: vec![dev(8, "read", 2), dev(8, "write", 1), dev(253, "Total", 9)],
            ..BlkioStats::default()
        };
        let io = io(&b);
        assert_eq!(io.len(), 2);
        assert_eq!(
            (
                io[0].major,
                io[0].read_bytes,
                io[0].write_bytes,
                io[0].read_ops,
                io[0].write_ops
            ),
            (8, 4096, 512, 2, 1)
        );
        assert_eq!((io[1].major, io[1].read_bytes, io[1].read_ops), (253, 1, 0));
    }
}
