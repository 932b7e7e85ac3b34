//! Memory and CPU limits written straight into a cgroup: the Pod cgroup's (Kubernetes' Pod-level
//! `spec.resources`, as the kubelet's `ResourceConfigForPod` sets the Pod cgroup) and a running
//! container's (in-place resize, as the kubelet's `UpdateContainerResources` asks the runtime).
//!
//! libcontainer only writes limits of cgroups it manages (a container's); the Pod cgroup is
//! podshim's, and a resize must not rebuild a container's whole cgroup configuration, so both
//! go through these few files. `None` leaves a file as it is.

use std::io;
use std::path::PathBuf;

use super::{create, join, write, CgroupError, Cgroups, Hierarchy, Mode};

/// Limits of one cgroup, in the OCI runtime spec's (cgroup v1) units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Bytes (v1 `memory.limit_in_bytes`, v2 `memory.max`).
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (v1 `memory.memsw.limit_in_bytes`; v2 `memory.swap.max` is this
    /// minus `memory`).
    pub memory_swap: Option<i64>,
    /// v1 `cpu.shares` (v2 `cpu.weight` converted as runc and libcgroups do).
    pub cpu_shares: Option<u64>,
    /// µs per period; `Some(-1)` is unlimited.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// One write: which v1 controller's hierarchy (ignored on v2), the file, the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

fn w(controller: &'static str, file: &'static str, value: String) -> Write {
    Write {
        controller,
        file,
        value,
    }
}

/// v1 `cpu.shares` to v2 `cpu.weight` as the OCI runtimes convert it since runc 1.3.2 (and
/// libcgroups 0.7, so a Pod cgroup agrees with its containers'): [2, 262144] onto [1, 10000] by
/// 10^((l² + 125 l) / 612 − 7/34) with l = log2(shares), rounded up, so 1024 shares give the
/// default weight 100.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let w = 10f64.powf((l * l + 125.0 * l) / 612.0 - 7.0 / 34.0);
            // Float error must not round an exact power (1024 → 100) up.
            (w - 1e-9).ceil() as u64
        }
    }
}

/// The writes that set `l`, in an order the kernel accepts from any earlier setting: `current`
/// is the cgroup's memory limit now (v1 refuses a memory limit above memory+swap, and memory+swap
/// below the memory limit, so a raise writes memory+swap first and a cut writes it last).
pub fn plan(l: &Limits, v2: bool, current_memory: Option<i64>) -> Vec<Write> {
    let mut out = Vec::new();
    let raise = match (l.memory, current_memory) {
        (Some(new), Some(now)) => new > now,
        _ => true,
    };
    if v2 {
        if let Some(m) = l.memory {
            out.push(w("memory", "memory.max", m.to_string()));
        }
        if let (Some(m), Some(s)) = (l.memory, l.memory_swap) {
            out.push(w("memory", "memory.swap.max", (s - m).max(0).to_string()));
        }
        if let Some(s) = l.cpu_shares {
            out.push(w("cpu", "cpu.weight", shares_to_weight(s).to_string()));
        }
        if l.cpu_quota.is_some() || l.cpu_period.is_some() {
            let quota = match l.cpu_quota {
                Some(q) if q > 0 => q.to_string(),
                _ => "max".into(),
            };
            let period = l.cpu_period.unwrap_or(100_000);
            out.push(w("cpu", "cpu.max", format!("{quota} {period}")));
        }
        return out;
    }
    let swap = l
        .memory_swap
        .map(|s| w("memory", "memory.memsw.limit_in_bytes", s.to_string()));
    if raise {
        out.extend(swap.clone());
    }
    if let Some(m) = l.memory {
        out.push(w("memory", "memory.limit_in_bytes", m.to_string()));
    }
    if !raise {
        out.extend(swap);
    }
    if let Some(s) = l.cpu_shares {
        out.push(w("cpu", "cpu.shares", s.to_string()));
    }
    // The period first: a quota is checked against the period in force.
    if let Some(p) = l.cpu_period {
        out.push(w("cpu", "cpu.cfs_period_us", p.to_string()));
    }
    if let Some(q) = l.cpu_quota {
        out.push(w("cpu", "cpu.cfs_quota_us", q.max(-1).to_string()));
    }
    out
}

impl Cgroups {
    /// The hierarchy holding `controller`: its v1 hierarchy, or the cgroup2 one on a unified host.
    fn hierarchy_of(&self, controller: &str) -> Option<&Hierarchy> {
        match self.mode {
            Mode::Unified => self.hierarchies.iter().find(|h| h.v2),
            _ => self
                .hierarchies
                .iter()
                .find(|h| !h.v2 && h.controllers.iter().any(|c| c == controller)),
        }
    }

    /// The directory of cgroup `rel` in `controller`'s hierarchy.
    pub fn dir_of(&self, controller: &str, rel: &str) -> Option<PathBuf> {
        self.hierarchy_of(controller).map(|h| join(&h.mount, rel))
    }

    /// Write `l` into cgroup `rel` (made where missing when `make`, as for the Pod cgroup, which
    /// libcontainer otherwise makes only when it places the first container).
    pub fn set_limits(&self, rel: &str, l: &Limits, make: bool) -> Result<(), CgroupError> {
        let v2 = self.mode == Mode::Unified;
        let current = self
            .dir_of("memory", rel)
            .map(|d| {
                d.join(if v2 {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                })
            })
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| t.trim().parse::<i64>().ok());
        for step in plan(l, v2, current) {
            let h = self
                .hierarchy_of(step.controller)
                .ok_or_else(|| CgroupError::Io {
                    what: "find the hierarchy of",
                    path: PathBuf::from(step.controller),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })?;
            if make {
                create(h, rel)?;
            }
            write(&join(&h.mount, rel).join(step.file), &step.value)?;
        }
        Ok(())
    }

    /// Read one file of cgroup `rel` in `controller`'s hierarchy, trimmed.
    pub fn read(&self, controller: &str, rel: &str, file: &str) -> Option<String> {
        let dir = self.dir_of(controller, rel)?;
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|t| t.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(ws: &[Write]) -> Vec<(&str, &str)> {
        ws.iter().map(|w| (w.file, w.value.as_str())).collect()
    }

    #[test]
    fn weight_from_shares() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(256), 35);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn v1_memory_order_follows_the_direction() {
        let l = Limits {
            memory: Some(128 << 20),
            memory_swap: Some(128 << 20),
            ..Limits::default()
        };
        // A raise: memory+swap first.
        assert_eq!(
            files(&plan(&l, false, Some(64 << 20))),
            [
                ("memory.memsw.limit_in_bytes", "134217728"),
                ("memory.limit_in_bytes", "134217728")
            ]
        );
        // A cut: the memory limit first.
        assert_eq!(
            files(&plan(&l, false, Some(256 << 20))),
            [
                ("memory.limit_in_bytes", "134217728"),
                ("memory.memsw.limit_in_bytes", "134217728")
            ]
        );
    }

    #[test]
    fn cpu_files_v1_and_v2() {
        let l = Limits {
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            ..Limits::default()
        };
        assert_eq!(
            files(&plan(&l, false, None)),
            [
                ("cpu.shares", "512"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000")
            ]
        );
        assert_eq!(
            files(&plan(&l, true, None)),
            [("cpu.weight", "59"), ("cpu.max", "50000 100000")]
        );
        let unlimited = Limits {
            cpu_quota: Some(-1),
            cpu_period: Some(100_000),
            memory: Some(1 << 30),
            memory_swap: Some(1 << 30),
            ..Limits::default()
        };
        assert_eq!(
            files(&plan(&unlimited, true, None)),
            [
                ("memory.max", "1073741824"),
                ("memory.swap.max", "0"),
                ("cpu.max", "max 100000")
            ]
        );
        assert!(plan(&Limits::default(), false, None).is_empty());
    }
}
