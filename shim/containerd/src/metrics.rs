//! A container's resource usage as the metrics containerd decodes: `io.containerd.cgroups.v1.Metrics`
//! on cgroup v1 (and hybrid) hosts, `io.containerd.cgroups.v2.Metrics` on cgroup v2 ones, both
//! filled from the engine's [`Stats`] (read from the container's cgroups by libcgroups).

use containerd_shim_protos::cgroups::metrics as v1;
use containerd_shim_protos::cgroups_v2::metrics as v2;
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};
use podshim_engine::container::Stats;

fn stat(s: &Stats, key: &str) -> u64 {
    s.memory_stat.get(key).copied().unwrap_or(0)
}

/// The cgroup v1 metrics message.
pub fn v1(s: &Stats) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    let mut pids = v1::PidsStat::new();
    pids.current = s.pids_current;
    pids.limit = s.pids_limit;
    m.pids = MessageField::some(pids);

    let mut usage = v1::CPUUsage::new();
    usage.total = s.cpu_usage_ns;
    usage.user = s.cpu_user_ns;
    usage.kernel = s.cpu_kernel_ns;
    let mut throttling = v1::Throttle::new();
    throttling.throttled_periods = s.cpu_throttled_periods;
    let mut cpu = v1::CPUStat::new();
    cpu.usage = MessageField::some(usage);
    cpu.throttling = MessageField::some(throttling);
    m.cpu = MessageField::some(cpu);

    let mut mem = v1::MemoryStat::new();
    mem.cache = stat(s, "cache").max(s.memory_cache);
    mem.rss = stat(s, "rss");
    mem.rss_huge = stat(s, "rss_huge");
    mem.mapped_file = stat(s, "mapped_file");
    mem.dirty = stat(s, "dirty");
    mem.writeback = stat(s, "writeback");
    mem.pg_pg_in = stat(s, "pgpgin");
    mem.pg_pg_out = stat(s, "pgpgout");
    mem.pg_fault = stat(s, "pgfault");
    mem.pg_maj_fault = stat(s, "pgmajfault");
    mem.inactive_anon = stat(s, "inactive_anon");
    mem.active_anon = stat(s, "active_anon");
    mem.inactive_file = stat(s, "inactive_file");
    mem.active_file = stat(s, "active_file");
    mem.unevictable = stat(s, "unevictable");
    mem.hierarchical_memory_limit = stat(s, "hierarchical_memory_limit");
    mem.hierarchical_swap_limit = stat(s, "hierarchical_memsw_limit");
    mem.total_cache = stat(s, "total_cache");
    mem.total_rss = stat(s, "total_rss");
    mem.total_rss_huge = stat(s, "total_rss_huge");
    mem.total_mapped_file = stat(s, "total_mapped_file");
    mem.total_dirty = stat(s, "total_dirty");
    mem.total_writeback = stat(s, "total_writeback");
    mem.total_pg_pg_in = stat(s, "total_pgpgin");
    mem.total_pg_pg_out = stat(s, "total_pgpgout");
    mem.total_pg_fault = stat(s, "total_pgfault");
    mem.total_pg_maj_fault = stat(s, "total_pgmajfault");
    mem.total_inactive_anon = stat(s, "total_inactive_anon");
    mem.total_active_anon = stat(s, "total_active_anon");
    mem.total_inactive_file = stat(s, "total_inactive_file");
    mem.total_active_file = stat(s, "total_active_file");
    mem.total_unevictable = stat(s, "total_unevictable");
    let mut usage = v1::MemoryEntry::new();
    usage.usage = s.memory_usage;
    usage.limit = s.memory_limit;
    mem.usage = MessageField::some(usage);
    mem.swap = MessageField::some(v1::MemoryEntry::new());
    mem.kernel = MessageField::some(v1::MemoryEntry::new());
    mem.kernel_tcp = MessageField::some(v1::MemoryEntry::new());
    m.memory = MessageField::some(mem);

    // containerd-shim-runc-v2 always sends these two, even empty.
    m.blkio = MessageField::some(v1::BlkIOStat::new());
    let mut oom = v1::MemoryOomControl::new();
    oom.oom_kill = s.oom_kills;
    m.memory_oom_control = MessageField::some(oom);
    m
}

/// The cgroup v2 metrics message.
pub fn v2(s: &Stats) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let mut pids = v2::PidsStat::new();
    pids.current = s.pids_current;
    pids.limit = s.pids_limit;
    m.pids = MessageField::some(pids);
    let mut cpu = v2::CPUStat::new();
    // libcgroups reports nanoseconds; v2 metrics are in microseconds (cpu.stat's unit).
    cpu.usage_usec = s.cpu_usage_ns / 1000;
    cpu.user_usec = s.cpu_user_ns / 1000;
    cpu.system_usec = s.cpu_kernel_ns / 1000;
    cpu.nr_throttled = s.cpu_throttled_periods;
    m.cpu = MessageField::some(cpu);
    let mut mem = v2::MemoryStat::new();
    mem.anon = stat(s, "anon");
    mem.file = stat(s, "file");
    mem.kernel_stack = stat(s, "kernel_stack");
    mem.slab = stat(s, "slab");
    mem.sock = stat(s, "sock");
    mem.shmem = stat(s, "shmem");
    mem.file_mapped = stat(s, "file_mapped");
    mem.file_dirty = stat(s, "file_dirty");
    mem.file_writeback = stat(s, "file_writeback");
    mem.inactive_anon = stat(s, "inactive_anon");
    mem.active_anon = stat(s, "active_anon");
    mem.inactive_file = stat(s, "inactive_file");
    mem.active_file = stat(s, "active_file");
    mem.unevictable = stat(s, "unevictable");
    mem.pgfault = stat(s, "pgfault");
    mem.pgmajfault = stat(s, "pgmajfault");
    mem.usage = s.memory_usage;
    mem.usage_limit = s.memory_limit;
    m.memory = MessageField::some(mem);
    let mut events = v2::MemoryEvents::new();
    events.oom_kill = s.oom_kills;
    m.memory_events = MessageField::some(events);
    // As containerd's own cgroup v2 manager (and so runc's shim) reports them: every huge page
    // size the host has, the io of every device, and an rdma entry (empty without devices).
    m.hugetlb = s
        .hugetlb
        .iter()
        .map(|(size, h)| {
            let mut e = v2::HugeTlbStat::new();
            e.pagesize = size.clone();
            e.current = h.usage;
            e.max = h.limit;
            e.failcnt = h.failures;
            e
        })
        .collect();
    let mut io = v2::IOStat::new();
    io.usage =
        s.io.iter()
            .map(|d| {
                let mut e = v2::IOEntry::new();
                e.major = d.major;
                e.minor = d.minor;
                e.rbytes = d.read_bytes;
                e.wbytes = d.write_bytes;
                e.rios = d.read_ops;
                e.wios = d.write_ops;
                e
            })
            .collect();
    m.io = MessageField::some(io);
    m.rdma = MessageField::some(v2::RdmaStat::new());
    m
}

/// The metrics for this host's cgroup version, as an `Any` containerd's typeurl registry knows.
pub fn to_any(s: &Stats, unified: bool) -> Any {
    let mut any = Any::new();
    if unified {
        any.type_url = "io.containerd.cgroups.v2.Metrics".into();
        any.value = v2(s).write_to_bytes().unwrap_or_default();
    } else {
        any.type_url = "io.containerd.cgroups.v1.Metrics".into();
        any.value = v1(s).write_to_bytes().unwrap_or_default();
    }
    any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_versions_carry_usage() {
        let mut s = Stats {
            cpu_usage_ns: 5_000_000,
            memory_usage: 4096,
            memory_limit: 1 << 20,
            pids_current: 1,
            ..Stats::default()
        };
        s.memory_stat.insert("total_rss".into(), 100);
        s.hugetlb.insert(
            "2MB".into(),
            podshim_engine::container::HugeTlbUsage {
                usage: 0,
                limit: u64::MAX,
                failures: 0,
            },
        );
        s.io.push(podshim_engine::container::IoUsage {
            major: 8,
            read_bytes: 4096,
            ..Default::default()
        });
        let a = to_any(&s, false);
        assert_eq!(a.type_url, "io.containerd.cgroups.v1.Metrics");
        let m = v1::Metrics::parse_from_bytes(&a.value).unwrap();
        assert_eq!(m.cpu.usage.total, 5_000_000);
        assert_eq!(m.memory.usage.usage, 4096);
        assert_eq!(m.memory.total_rss, 100);
        assert!(m.blkio.is_some() && m.memory_oom_control.is_some());
        let b = v2::Metrics::parse_from_bytes(&to_any(&s, true).value).unwrap();
        assert_eq!(
            (b.cpu.usage_usec, b.memory.usage, b.pids.current),
            (5000, 4096, 1)
        );
        assert!(b.rdma.is_some() && b.memory_events.is_some());
        assert_eq!((b.io.usage[0].major, b.io.usage[0].rbytes), (8, 4096));
        assert_eq!(
            (b.hugetlb[0].pagesize.as_str(), b.hugetlb[0].max),
            ("2MB", u64::MAX)
        );
    }
}
