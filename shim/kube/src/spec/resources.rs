//! `linux.resources` of a container's spec: the device allow list's deny-all head, and the
//! memory and CPU limits worked out from the container's Kubernetes `resources`.

use std::collections::HashMap;

use libcontainer::oci_spec::runtime::{
    LinuxCpu, LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemory, LinuxMemoryBuilder,
    LinuxResources, LinuxResourcesBuilder,
};

use super::SpecError;

/// A container's cgroup limits and the `oom_score_adj` it should get, already worked out from its
/// Kubernetes `resources` (see `pod::resources`); `None` leaves the cgroup's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// `memory.limit_in_bytes` / `memory.max`.
    pub memory_limit: Option<i64>,
    /// Memory plus swap (v1 `memory.memsw.limit_in_bytes`; v2 `memory.swap.max` is this minus the
    /// limit): equal to the limit means no swap, as the kubelet's `ConfigureNoSwap` does.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// Before clamping to what the host allows.
    pub oom_score_adj: i32,
}

impl Default for Resources {
    /// No limits, and Kubernetes' BestEffort `oom_score_adj`.
    fn default() -> Self {
        Resources {
            memory_limit: None,
            memory_swap: None,
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            oom_score_adj: 1000,
        }
    }
}

fn memory(r: &Resources) -> Result<Option<LinuxMemory>, SpecError> {
    if r.memory_limit.is_none() && r.memory_swap.is_none() {
        return Ok(None);
    }
    let mut b = LinuxMemoryBuilder::default();
    if let Some(limit) = r.memory_limit {
        b = b.limit(limit);
    }
    if let Some(swap) = r.memory_swap {
        b = b.swap(swap);
    }
    b.build()
        .map(Some)
        .map_err(SpecError::builder("linux.resources.memory"))
}

fn cpu(r: &Resources) -> Result<Option<LinuxCpu>, SpecError> {
    if r.cpu_shares.is_none() && r.cpu_quota.is_none() && r.cpu_period.is_none() {
        return Ok(None);
    }
    let mut b = LinuxCpuBuilder::default();
    if let Some(shares) = r.cpu_shares {
        b = b.shares(shares);
    }
    if let Some(quota) = r.cpu_quota {
        b = b.quota(quota);
    }
    if let Some(period) = r.cpu_period {
        b = b.period(period);
    }
    b.build()
        .map(Some)
        .map_err(SpecError::builder("linux.resources.cpu"))
}

/// `linux.resources`: the deny-all device rule first (libcontainer adds the standard allow list),
/// or for a privileged container allow-all (containerd's `WithAllDevicesAllowed`), then the
/// memory and CPU limits that are set.
pub fn build(r: &Resources, privileged: bool) -> Result<LinuxResources, SpecError> {
    let head = LinuxDeviceCgroupBuilder::default()
        .allow(privileged)
        .access("rwm")
        .build()
        .map_err(SpecError::builder("linux.resources.devices"))?;
    let mut b = LinuxResourcesBuilder::default().devices(vec![head]);
    if let Some(m) = memory(r)? {
        b = b.memory(m);
    }
    // No swap (memory+swap equal to the limit): the kubelet asks cgroup v2 for it as
    // `memory.swap.max: 0` in `unified` (`ConfigureNoSwap`), because converting memory+swap to
    // v2's swap alone gives 0, which libcgroups 0.7 (`v2::memory::Memory::set`) does not write,
    // leaving swap unlimited. The v1 manager ignores `unified`.
    if r.memory_swap.is_some() && r.memory_swap == r.memory_limit {
        b = b.unified(HashMap::from([("memory.swap.max".into(), "0".into())]));
    }
    if let Some(c) = cpu(r)? {
        b = b.cpu(c);
    }
    b.build().map_err(SpecError::builder("linux.resources"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_limits_is_only_the_deny_all_device_rule() {
        let r = build(&Resources::default(), false).unwrap();
        let devices = r.devices().as_ref().unwrap();
        assert_eq!(devices.len(), 1);
        assert!(!devices[0].allow());
        assert_eq!(devices[0].access().as_deref(), Some("rwm"));
        assert_eq!(devices[0].typ(), None);
        assert!(r.memory().is_none() && r.cpu().is_none() && r.unified().is_none());
        assert!(r.pids().is_none() && r.block_io().is_none());
    }

    #[test]
    fn limits_become_cgroup_settings() {
        let r = build(
            &Resources {
                memory_limit: Some(32 << 20),
                memory_swap: Some(32 << 20),
                cpu_shares: Some(256),
                cpu_quota: Some(50_000),
                cpu_period: Some(100_000),
                oom_score_adj: -997,
            },
            false,
        )
        .unwrap();
        let mem = r.memory().as_ref().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(32 << 20), Some(32 << 20)));
        assert_eq!(mem.reservation(), None);
        let unified = r.unified().as_ref().unwrap();
        assert_eq!(
            unified.get("memory.swap.max").map(String::as_str),
            Some("0")
        );
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(256), Some(50_000), Some(100_000))
        );
    }

    #[test]
    fn swap_allowed_when_it_differs_from_the_limit_and_cpu_alone() {
        let r = build(
            &Resources {
                memory_limit: Some(64 << 20),
                memory_swap: None,
                cpu_shares: Some(2),
                ..Resources::default()
            },
            false,
        )
        .unwrap();
        assert!(r.unified().is_none());
        assert_eq!(r.memory().as_ref().unwrap().swap(), None);
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!((cpu.shares(), cpu.quota()), (Some(2), None));
    }
}
