//! Kubernetes resource arithmetic: a container's `resources` to its cgroup limits and the Pod's QoS
//! class to `oom_score_adj`, as the kubelet computes them with the cgroupfs driver.
//!
//! Sources: kubelet `kuberuntime.calculateLinuxResources`, `cm.MilliCPUToShares`,
//! `cm.MilliCPUToQuota` (`pkg/kubelet/cm/helpers_linux.go`), `qos.GetContainerOOMScoreAdjust`
//! (`pkg/kubelet/qos/policy.go`) and `GetPodQOS` (`pkg/apis/core/v1/helper/qos`).

use std::collections::BTreeMap;

use crate::manifest::{Container, Quantity};
use crate::spec::Resources;

/// cgroup v1 `cpu.shares` bounds (kubelet `MinShares`, `MaxShares`).
pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;
const SHARES_PER_CPU: i128 = 1024;
/// The CFS period the kubelet uses (`quotaPeriod`, µs), and the smallest quota it sets.
pub const QUOTA_PERIOD: u64 = 100_000;
pub const MIN_QUOTA: i64 = 1000;
/// kubelet `guaranteedOOMScoreAdj` and `besteffortOOMScoreAdj`.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// A Pod's quality-of-service class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// The quantity in thousandths, rounded up (apimachinery `MilliValue`); `None` if it does not fit.
pub fn milli_value(q: &Quantity) -> Option<i64> {
    let p = q.parse().ok()?;
    let milli = crate::manifest::quantity::ParsedQuantity {
        exp10: p.exp10.checked_add(3)?,
        ..p
    };
    milli.ceil_i64()
}

/// `MilliCPUToShares`: 1024 shares per CPU, at least 2 (also for no request), at most 262144.
pub fn milli_cpu_to_shares(milli: i64) -> u64 {
    if milli <= 0 {
        return MIN_SHARES;
    }
    let shares = i128::from(milli) * SHARES_PER_CPU / 1000;
    shares.clamp(MIN_SHARES as i128, MAX_SHARES as i128) as u64
}

/// `MilliCPUToQuota`: the CFS quota for a CPU limit over `period` µs, at least 1000 µs; `None`
/// (unlimited) for no limit.
pub fn milli_cpu_to_quota(milli: i64, period: u64) -> Option<i64> {
    if milli <= 0 {
        return None;
    }
    let quota = i128::from(milli) * i128::from(period) / 1000;
    Some(quota.clamp(i128::from(MIN_QUOTA), i128::from(i64::MAX)) as i64)
}

/// `GetPodQOS`: BestEffort when no container requests or limits cpu or memory; Guaranteed when
/// every container limits both and the Pod's summed requests equal its summed limits; otherwise
/// Burstable. Only cpu and memory count, and zero quantities count as unset.
pub fn pod_qos<'a>(containers: impl IntoIterator<Item = &'a Container>) -> Qos {
    let mut requests: BTreeMap<&str, i128> = BTreeMap::new();
    let mut limits: BTreeMap<&str, i128> = BTreeMap::new();
    let mut guaranteed = true;
    for c in containers {
        let Some(r) = &c.resources else {
            guaranteed = false;
            continue;
        };
        let positive = |list: &'a BTreeMap<String, Quantity>| {
            list.iter()
                .filter(|(name, _)| matches!(name.as_str(), "cpu" | "memory"))
                .filter_map(|(name, q)| Some((name.as_str(), milli_value(q)?)))
                .filter(|(_, v)| *v > 0)
        };
        for (name, v) in positive(&r.requests) {
            *requests.entry(name).or_default() += i128::from(v);
        }
        let mut found = 0;
        for (name, v) in positive(&r.limits) {
            *limits.entry(name).or_default() += i128::from(v);
            found += 1;
        }
        if found < 2 {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return Qos::BestEffort;
    }
    if guaranteed && requests == limits {
        return Qos::Guaranteed;
    }
    Qos::Burstable
}

/// `GetContainerOOMScoreAdjust`: -997 for Guaranteed, 1000 for BestEffort; a Burstable container
/// gets `1000 - 1000 * memory request / node memory`, kept in [3, 999] (above any Guaranteed
/// container using all its memory, below BestEffort).
pub fn oom_score_adj(qos: Qos, memory_request: i64, node_memory: i64) -> i32 {
    match qos {
        Qos::Guaranteed => GUARANTEED_OOM_SCORE_ADJ,
        Qos::BestEffort => BEST_EFFORT_OOM_SCORE_ADJ,
        Qos::Burstable => {
            let adj =
                1000 - 1000 * i128::from(memory_request.max(0)) / i128::from(node_memory.max(1));
            let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
            if adj < floor {
                floor as i32
            } else if adj >= i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
                BEST_EFFORT_OOM_SCORE_ADJ - 1
            } else {
                adj as i32
            }
        }
    }
}

/// `calculateLinuxResources` plus the QoS `oom_score_adj` for one container of a Pod of class
/// `qos`: memory limit; CPU shares from the request (from the limit when only that is set, 2 for
/// neither); CFS quota from the limit over the 100 ms period. Requests were already defaulted
/// from limits by the manifest module, as the API server does.
pub fn container_resources(c: &Container, qos: Qos, node_memory: i64) -> Resources {
    let empty = BTreeMap::new();
    let (limits, requests) = c
        .resources
        .as_ref()
        .map_or((&empty, &empty), |r| (&r.limits, &r.requests));
    let get =
        |list: &BTreeMap<String, Quantity>, name: &str, scale: fn(&Quantity) -> Option<i64>| {
            list.get(name).and_then(scale).unwrap_or(0)
        };
    let memory_limit = get(limits, "memory", Quantity::to_bytes);
    let memory_request = get(requests, "memory", Quantity::to_bytes);
    let cpu_limit = get(limits, "cpu", milli_value);
    let cpu_request = get(requests, "cpu", milli_value);
    let shares = if cpu_request == 0 && cpu_limit != 0 {
        milli_cpu_to_shares(cpu_limit)
    } else {
        milli_cpu_to_shares(cpu_request)
    };
    let quota = milli_cpu_to_quota(cpu_limit, QUOTA_PERIOD);
    Resources {
        memory_limit: (memory_limit > 0).then_some(memory_limit),
        memory_swap: None,
        cpu_shares: Some(shares),
        cpu_quota: quota,
        cpu_period: quota.map(|_| QUOTA_PERIOD),
        oom_score_adj: oom_score_adj(qos, memory_request, node_memory),
    }
}

/// The node's memory capacity in bytes (`MemTotal`, as cAdvisor reports it to the kubelet).
pub fn node_memory() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| mem_total(&t))
        .unwrap_or(i64::MAX)
}

/// `MemTotal:  24683572 kB` → bytes.
fn mem_total(meminfo: &str) -> Option<i64> {
    let kb: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kb.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ResourceRequirements;

    fn q(s: &str) -> Quantity {
        Quantity(s.into())
    }

    fn c(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        let map = |l: &[(&str, &str)]| l.iter().map(|(k, v)| (k.to_string(), q(v))).collect();
        let mut r = ResourceRequirements {
            limits: map(limits),
            requests: map(requests),
            ..Default::default()
        };
        // The API server's defaulting (SetDefaults_Pod): requests default to limits.
        for (k, v) in r.limits.clone() {
            r.requests.entry(k).or_insert(v);
        }
        Container {
            name: "c".into(),
            resources: Some(r),
            ..Default::default()
        }
    }

    #[test]
    fn milli_values_round_up() {
        assert_eq!(milli_value(&q("250m")), Some(250));
        assert_eq!(milli_value(&q("0.5")), Some(500));
        assert_eq!(milli_value(&q("2")), Some(2000));
        assert_eq!(milli_value(&q("1.0001")), Some(1001));
        assert_eq!(milli_value(&q("100u")), Some(1));
        assert_eq!(milli_value(&q("1Ki")), Some(1_024_000));
    }

    #[test]
    fn cpu_shares_and_quota_follow_the_kubelet() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), 262_144);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD), None);
        assert_eq!(milli_cpu_to_quota(500, QUOTA_PERIOD), Some(50_000));
        assert_eq!(milli_cpu_to_quota(1, QUOTA_PERIOD), Some(1000));
        assert_eq!(milli_cpu_to_quota(2500, QUOTA_PERIOD), Some(250_000));
    }

    #[test]
    fn qos_classes() {
        let none = Container::default();
        assert_eq!(pod_qos([&none]), Qos::BestEffort);
        let g = c(&[("memory", "64Mi"), ("cpu", "1")], &[]);
        assert_eq!(pod_qos([&g]), Qos::Guaranteed);
        // One container without limits makes the Pod Burstable.
        assert_eq!(pod_qos([&g, &none]), Qos::Burstable);
        let b = c(&[("memory", "32Mi"), ("cpu", "500m")], &[("cpu", "250m")]);
        assert_eq!(pod_qos([&b]), Qos::Burstable);
        assert_eq!(pod_qos([&c(&[("memory", "1Gi")], &[])]), Qos::Burstable);
        // Zero quantities and other resources do not count.
        let zero = c(&[], &[("cpu", "0"), ("ephemeral-storage", "1Gi")]);
        assert_eq!(pod_qos([&zero]), Qos::BestEffort);
        // "1" and "1000m" are the same amount.
        let same = c(&[("memory", "1Gi"), ("cpu", "1")], &[("cpu", "1000m")]);
        assert_eq!(pod_qos([&same]), Qos::Guaranteed);
    }

    #[test]
    fn oom_score_adj_by_class() {
        let gi = 1 << 30;
        assert_eq!(oom_score_adj(Qos::Guaranteed, gi, 8 * gi), -997);
        assert_eq!(oom_score_adj(Qos::BestEffort, 0, 8 * gi), 1000);
        assert_eq!(oom_score_adj(Qos::Burstable, 2 * gi, 8 * gi), 750);
        assert_eq!(oom_score_adj(Qos::Burstable, 0, 8 * gi), 999);
        assert_eq!(oom_score_adj(Qos::Burstable, 8 * gi, 8 * gi), 3);
        assert_eq!(oom_score_adj(Qos::Burstable, 16 * gi, 8 * gi), 3);
    }

    #[test]
    fn container_resources_as_the_kubelet_sets_them() {
        let gi = 1 << 30;
        let b = c(&[("memory", "32Mi"), ("cpu", "500m")], &[("cpu", "250m")]);
        let r = container_resources(&b, pod_qos([&b]), 8 * gi);
        assert_eq!(r.memory_limit, Some(32 << 20));
        assert_eq!(r.cpu_shares, Some(256));
        assert_eq!((r.cpu_quota, r.cpu_period), (Some(50_000), Some(100_000)));
        // Burstable, memory request defaulted from the 32Mi limit.
        assert_eq!(r.oom_score_adj, 997);
        let none = Container::default();
        let r = container_resources(&none, Qos::BestEffort, 8 * gi);
        assert_eq!(r.memory_limit, None);
        assert_eq!(r.cpu_shares, Some(2));
        assert_eq!((r.cpu_quota, r.cpu_period), (None, None));
        assert_eq!(r.oom_score_adj, 1000);
        // Only a CPU request: shares from it, no quota.
        let req = c(&[], &[("cpu", "2")]);
        let r = container_resources(&req, Qos::Burstable, 8 * gi);
        assert_eq!((r.cpu_shares, r.cpu_quota), (Some(2048), None));
    }

    #[test]
    fn node_memory_from_meminfo() {
        let text = "MemTotal:       24683572 kB\nMemFree:        21823024 kB\n";
        assert_eq!(mem_total(text), Some(24_683_572 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }
}
