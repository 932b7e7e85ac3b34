//! Pod-level `spec.resources` (KEP-2837: alpha in Kubernetes 1.32, beta and on by default since
//! 1.34): the containers' aggregate requests and limits, the API server's defaulting of the
//! Pod's requests, the QoS class computed from the Pod's own resources, and the Pod cgroup's
//! limits as the kubelet sets them.
//!
//! Sources: `resourcehelper.AggregateContainerRequests`/`AggregateContainerLimits`
//! (`k8s.io/component-helpers/resource`), `defaultPodRequests` (`pkg/apis/core/v1/defaults.go`),
//! `ComputePodQOS` (`pkg/apis/core/v1/helper/qos`) and `ResourceConfigForPod`
//! (`pkg/kubelet/cm/helpers_linux.go`). Only cpu and memory count here: podshim refuses other
//! Pod-level resources (hugepages) as not supported yet.

use std::collections::BTreeMap;

use podshim_engine::cgroups::Limits;

use super::resources::{milli_cpu_to_quota, milli_cpu_to_shares, milli_value, Qos, QUOTA_PERIOD};
use crate::manifest::{Container, PodSpec, Quantity};

/// Amounts in thousandths of the unit (millicores, millibytes), by resource name.
pub type Amounts = BTreeMap<String, i128>;

/// The resources Pod-level `resources` may name that podshim implements.
pub const POD_LEVEL: &[&str] = &["cpu", "memory"];

fn amounts(list: &BTreeMap<String, Quantity>) -> Amounts {
    list.iter()
        .filter(|(n, _)| POD_LEVEL.contains(&n.as_str()))
        .filter_map(|(n, q)| Some((n.clone(), i128::from(milli_value(q)?))))
        .collect()
}

fn add(to: &mut Amounts, from: &Amounts) {
    for (n, v) in from {
        *to.entry(n.clone()).or_default() += v;
    }
}

fn max_into(to: &mut Amounts, from: &Amounts) {
    for (n, v) in from {
        let e = to.entry(n.clone()).or_default();
        *e = (*e).max(*v);
    }
}

fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

/// The Pod's effective container requests or limits: the app containers and sidecars together,
/// or an init container with the sidecars started before it, whichever is more.
fn aggregate(
    spec: &PodSpec,
    pick: fn(&Container) -> Option<&BTreeMap<String, Quantity>>,
) -> Amounts {
    let of = |c: &Container| pick(c).map(amounts).unwrap_or_default();
    let mut total = Amounts::new();
    for c in &spec.containers {
        add(&mut total, &of(c));
    }
    let mut sidecars = Amounts::new();
    let mut init = Amounts::new();
    for c in &spec.init_containers {
        let mine = of(c);
        if is_sidecar(c) {
            add(&mut total, &mine);
            add(&mut sidecars, &mine);
            max_into(&mut init, &sidecars);
        } else {
            let mut with = mine;
            add(&mut with, &sidecars);
            max_into(&mut init, &with);
        }
    }
    max_into(&mut total, &init);
    total
}

/// `AggregateContainerRequests` for cpu and memory.
pub fn aggregate_requests(spec: &PodSpec) -> Amounts {
    aggregate(spec, |c| c.resources.as_ref().map(|r| &r.requests))
}

/// `AggregateContainerLimits` for cpu and memory.
pub fn aggregate_limits(spec: &PodSpec) -> Amounts {
    aggregate(spec, |c| c.resources.as_ref().map(|r| &r.limits))
}

/// `IsPodLevelResourcesSet`: Pod-level requests or limits of a resource podshim implements.
pub fn is_set(spec: &PodSpec) -> bool {
    spec.resources.as_ref().is_some_and(|r| {
        r.requests
            .keys()
            .chain(r.limits.keys())
            .any(|n| POD_LEVEL.contains(&n.as_str()))
    })
}

/// A quantity of `resource` as Kubernetes prints a sum: millicores as `1500m` or `2`, bytes with
/// the largest binary suffix that divides them (the aggregate keeps the first operand's format;
/// podshim's is binary whenever the bytes allow it).
pub fn format(resource: &str, milli: i128) -> String {
    if milli % 1000 != 0 {
        return format!("{milli}m");
    }
    let n = milli / 1000;
    if resource != "memory" || n == 0 {
        return n.to_string();
    }
    let mut v = n;
    let mut suffix = "";
    for s in ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"] {
        if v % 1024 != 0 {
            break;
        }
        v /= 1024;
        suffix = s;
    }
    format!("{v}{suffix}")
}

/// `defaultPodRequests`: with Pod-level limits set, a Pod-level request missing for cpu or
/// memory takes the containers' aggregate request, or, when no container requests it, the
/// Pod-level limit. Runs after the containers' own defaults (their requests from their limits).
pub fn default_requests(spec: &mut PodSpec) {
    let aggregate = aggregate_requests(spec);
    let Some(r) = spec.resources.as_mut() else {
        return;
    };
    if r.limits.is_empty() {
        return;
    }
    for (name, milli) in &aggregate {
        if !r.requests.contains_key(name) {
            r.requests
                .insert(name.clone(), Quantity(format(name, *milli)));
        }
    }
    for (name, limit) in &r.limits {
        if POD_LEVEL.contains(&name.as_str()) && !r.requests.contains_key(name) {
            r.requests.insert(name.clone(), limit.clone());
        }
    }
}

/// `ComputePodQOS`: from the Pod-level resources when they are set (the containers' do not count
/// then), else from the containers' (`resources::pod_qos`).
pub fn pod_qos(spec: &PodSpec) -> Qos {
    let Some(r) = spec.resources.as_ref().filter(|_| is_set(spec)) else {
        return super::resources::pod_qos(spec.containers.iter().chain(&spec.init_containers));
    };
    let positive = |l| {
        amounts(l)
            .into_iter()
            .filter(|(_, v)| *v > 0)
            .collect::<Amounts>()
    };
    let (requests, limits) = (positive(&r.requests), positive(&r.limits));
    if requests.is_empty() && limits.is_empty() {
        return Qos::BestEffort;
    }
    let both_limited = POD_LEVEL.iter().all(|n| limits.contains_key(*n));
    let matching = requests.iter().all(|(n, v)| limits.get(n) == Some(v));
    if both_limited && matching && requests.len() == limits.len() {
        Qos::Guaranteed
    } else {
        Qos::Burstable
    }
}

/// `ResourceConfigForPod` for a Pod with Pod-level resources (`None` without: podshim leaves
/// such a Pod's cgroup to its containers' limits): CPU shares from the Pod's requests, and, for
/// a Guaranteed Pod or where a limit is declared (at Pod level, or by every container), the CFS
/// quota and the memory limit from the Pod's limits; BestEffort gets the minimum shares only.
pub fn cgroup_limits(spec: &PodSpec, qos: Qos) -> Option<Limits> {
    let r = spec.resources.as_ref().filter(|_| is_set(spec))?;
    let pod_requests = amounts(&r.requests);
    let pod_limits = amounts(&r.limits);
    let mut requests = aggregate_requests(spec);
    requests.extend(pod_requests);
    let mut limits = aggregate_limits(spec);
    let every = |name: &str| {
        spec.containers
            .iter()
            .chain(&spec.init_containers)
            .all(|c| {
                c.resources
                    .as_ref()
                    .and_then(|r| r.limits.get(name))
                    .and_then(milli_value)
                    .is_some_and(|v| v > 0)
            })
    };
    let cpu_declared = every("cpu") || pod_limits.get("cpu").is_some_and(|v| *v > 0);
    let memory_declared = every("memory") || pod_limits.get("memory").is_some_and(|v| *v > 0);
    limits.extend(pod_limits);
    let cpu_request = requests.get("cpu").copied().unwrap_or(0);
    let cpu_limit = limits.get("cpu").copied().unwrap_or(0);
    let memory_limit = limits.get("memory").copied().unwrap_or(0) / 1000;
    let to_i64 = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    let shares = milli_cpu_to_shares(to_i64(cpu_request));
    // MilliCPUToQuota gives no quota (-1 in the cgroup) for no limit.
    let quota = milli_cpu_to_quota(to_i64(cpu_limit), QUOTA_PERIOD).unwrap_or(-1);
    let memory = (memory_limit > 0).then(|| to_i64(memory_limit));
    let mut out = Limits {
        cpu_shares: Some(shares),
        ..Limits::default()
    };
    let (cpu, mem) = match qos {
        Qos::Guaranteed => (true, true),
        Qos::Burstable => (cpu_declared, memory_declared),
        Qos::BestEffort => (false, false),
    };
    if qos == Qos::BestEffort {
        out.cpu_shares = Some(super::resources::MIN_SHARES);
    }
    if cpu {
        out.cpu_quota = Some(quota);
        out.cpu_period = Some(QUOTA_PERIOD);
    }
    if mem {
        out.memory = memory;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ResourceRequirements;

    fn res(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Option<ResourceRequirements> {
        let map = |l: &[(&str, &str)]| {
            l.iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        };
        Some(ResourceRequirements {
            limits: map(limits),
            requests: map(requests),
            ..Default::default()
        })
    }

    fn c(name: &str, requests: &[(&str, &str)], sidecar: bool) -> Container {
        Container {
            name: name.into(),
            resources: res(&[], requests),
            restart_policy: sidecar.then(|| "Always".into()),
            ..Default::default()
        }
    }

    #[test]
    fn aggregate_counts_sidecars_and_the_largest_init_container() {
        let spec = PodSpec {
            containers: vec![
                c("a", &[("cpu", "500m")], false),
                c("b", &[("cpu", "1")], false),
            ],
            init_containers: vec![
                c("side", &[("cpu", "250m"), ("memory", "64Mi")], true),
                c("big", &[("cpu", "3")], false),
            ],
            ..Default::default()
        };
        let a = aggregate_requests(&spec);
        // max(0.5 + 1 + 0.25, 3 + 0.25) cores; the sidecar's memory.
        assert_eq!(a["cpu"], 3250);
        assert_eq!(a["memory"], (64i128 << 20) * 1000);
        assert_eq!(format("cpu", a["cpu"]), "3250m");
        assert_eq!(format("memory", a["memory"]), "64Mi");
        assert_eq!(format("cpu", 2000), "2");
        assert_eq!(format("memory", 1_536_000 * 1024 * 1024), "1536Mi");
        assert_eq!(format("memory", 1_000_000), "1000");
    }

    #[test]
    fn requests_default_from_containers_then_limits() {
        let mut spec = PodSpec {
            containers: vec![c("a", &[("cpu", "500m")], false)],
            resources: res(&[("cpu", "1"), ("memory", "128Mi")], &[]),
            ..Default::default()
        };
        default_requests(&mut spec);
        let r = spec.resources.as_ref().unwrap();
        assert_eq!(r.requests["cpu"].as_str(), "500m");
        assert_eq!(r.requests["memory"].as_str(), "128Mi");
        // Requests alone are not defaulted.
        let mut only = PodSpec {
            resources: res(&[], &[("cpu", "1")]),
            ..Default::default()
        };
        default_requests(&mut only);
        assert_eq!(only.resources.unwrap().requests.len(), 1);
    }

    #[test]
    fn qos_from_pod_level_resources() {
        let mut spec = PodSpec {
            // A container without resources would make the Pod BestEffort on its own.
            containers: vec![c("a", &[], false)],
            resources: res(&[("cpu", "1"), ("memory", "128Mi")], &[]),
            ..Default::default()
        };
        default_requests(&mut spec);
        assert_eq!(pod_qos(&spec), Qos::Guaranteed);
        spec.resources = res(&[("cpu", "1"), ("memory", "128Mi")], &[("cpu", "500m")]);
        assert_eq!(pod_qos(&spec), Qos::Burstable);
        spec.resources = res(&[("memory", "128Mi")], &[("memory", "128Mi")]);
        assert_eq!(pod_qos(&spec), Qos::Burstable);
        spec.resources = None;
        assert_eq!(pod_qos(&spec), Qos::BestEffort);
    }

    #[test]
    fn cgroup_limits_as_the_kubelet_sets_them() {
        let mut spec = PodSpec {
            containers: vec![c("a", &[("cpu", "250m")], false)],
            resources: res(&[("cpu", "500m"), ("memory", "64Mi")], &[]),
            ..Default::default()
        };
        default_requests(&mut spec);
        let qos = pod_qos(&spec);
        assert_eq!(qos, Qos::Burstable);
        let l = cgroup_limits(&spec, qos).unwrap();
        assert_eq!(l.cpu_shares, Some(256));
        assert_eq!((l.cpu_quota, l.cpu_period), (Some(50_000), Some(100_000)));
        assert_eq!(l.memory, Some(64 << 20));
        // Only a memory limit at Pod level, no container CPU limit: no quota.
        let mut spec = PodSpec {
            containers: vec![c("a", &[], false)],
            resources: res(&[("memory", "64Mi")], &[("cpu", "1")]),
            ..Default::default()
        };
        default_requests(&mut spec);
        let l = cgroup_limits(&spec, pod_qos(&spec)).unwrap();
        assert_eq!((l.cpu_shares, l.cpu_quota), (Some(1024), None));
        assert_eq!(l.memory, Some(64 << 20));
        spec.resources = None;
        assert_eq!(cgroup_limits(&spec, Qos::BestEffort), None);
    }
}
