//! In-place resize requests (`podshim resize`): checked (`crate::resize::decide`), then applied
//! as the kubelet applies them: the container's cgroup limits written live for a
//! `NotRequired` policy, or the container stopped and started again at once with its new
//! resources for `RestartContainer`; the Pod's spec and its containers' statuses then show the new
//! allocation. The answer goes to a reply file the CLI waits for.

use std::fs;

use podshim_engine::cgroups::{Cgroups, Limits};

use super::slot::{PodRun, Slot, State};
use super::stopping::grace;
use super::Supervision;
use crate::manifest::{Pod, ResourceRequirements};
use crate::pod::container::container_cgroup;
use crate::pod::pod_key;
use crate::pod::resources::{container_resources, node_memory, QUOTA_PERIOD};
use crate::resize::{decide, reply_path, request_path, Reply, Request};

impl Supervision<'_> {
    /// Take every waiting resize request and answer it.
    pub(super) fn take_resize_requests(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
        for p in 0..pods.len() {
            let spec = &pods[p].plan.sandbox;
            let key = pod_key(&spec.namespace, &spec.name);
            let path = request_path(self.cfg, &key);
            let Ok(data) = fs::read(&path) else { continue };
            let _ = fs::remove_file(&path);
            let reply = match serde_json::from_slice::<Request>(&data) {
                Ok(req) => self.resize(pods, slots, p, &req),
                Err(e) => Reply {
                    error: Some(format!("unreadable resize request: {e}")),
                    ..Reply::default()
                },
            };
            let out = reply_path(self.cfg, &key);
            let tmp = out.with_extension("tmp");
            let written = serde_json::to_vec(&reply)
                .ok()
                .and_then(|b| fs::write(&tmp, b).ok())
                .and_then(|()| fs::rename(&tmp, &out).ok());
            if written.is_none() {
                let _ = fs::remove_file(&tmp);
            }
        }
    }

    fn resize(
        &mut self,
        pods: &mut [PodRun],
        slots: &mut [Slot],
        p: usize,
        req: &Request,
    ) -> Reply {
        let refuse = |error: String| Reply {
            error: Some(error),
            ..Reply::default()
        };
        let pod: Pod = match serde_json::from_value(pods[p].object.clone()) {
            Ok(pod) => pod,
            Err(e) => return refuse(format!("the pod's record is unreadable: {e}")),
        };
        let d = match decide(&pod.spec, req) {
            Ok(d) => d,
            Err(e) => return refuse(e),
        };
        let Some(i) = slots
            .iter()
            .position(|s| s.pod == p && pods[p].plan.container(s.index).name == req.container)
        else {
            return refuse(format!("container {:?} is not in the pod", req.container));
        };
        if !matches!(slots[i].state, State::Running { .. }) || slots[i].kill.is_some() {
            return refuse(format!(
                "container {:?} is not running: only a running container is resized in place",
                req.container
            ));
        }
        let mut after = pod.spec.clone();
        let list = match d.at.0 {
            "containers" => &mut after.containers,
            _ => &mut after.init_containers,
        };
        list[d.at.1].resources = Some(d.resources.clone());
        let container = list[d.at.1].clone();
        let qos = crate::pod::pod_level::pod_qos(&after);
        let mut resources = container_resources(&container, qos, node_memory());
        // The oom_score_adj stays what the container started with (the kubelet does not change it).
        resources.oom_score_adj = pods[p]
            .plan
            .container(slots[i].index)
            .resources
            .oom_score_adj;
        if !d.changed.is_empty() && !d.restart {
            let Some(sandbox) = pods[p].sandbox.as_ref() else {
                return refuse("the pod has no sandbox".into());
            };
            // A directory path: the systemd driver's `slice:prefix:name` is not one.
            let cgroup =
                podshim_engine::cgroups::cgroupfs_path(&container_cgroup(sandbox, &req.container));
            let cgroups = match Cgroups::detect() {
                Ok(c) => c,
                Err(e) => return refuse(crate::pod::chain(&e)),
            };
            let swap = cgroups.swap_limit_supported(&sandbox.cgroup);
            let limits = Limits {
                memory: resources.memory_limit,
                memory_swap: resources.memory_limit.filter(|_| swap),
                cpu_shares: resources.cpu_shares,
                cpu_quota: Some(resources.cpu_quota.unwrap_or(-1)),
                cpu_period: Some(QUOTA_PERIOD),
            };
            // The kubelet refuses to cut a memory limit below what the container uses (a v1
            // cgroup would refuse the write, a v2 one would reclaim or OOM-kill).
            if let Some(new) = limits.memory {
                let usage = cgroups
                    .read("memory", &cgroup, "memory.usage_in_bytes")
                    .or_else(|| cgroups.read("memory", &cgroup, "memory.current"))
                    .and_then(|u| u.parse::<i64>().ok());
                if let Some(used) = usage.filter(|u| *u > new) {
                    return refuse(format!(
                        "Infeasible: attempting to resize the memory limit ({new}) below the \
                         memory usage ({used})"
                    ));
                }
            }
            if let Err(e) = cgroups.set_limits(&cgroup, &limits, false) {
                return refuse(crate::pod::chain(&e));
            }
        }
        // The new allocation: what a restart starts with, and what the Pod's record shows.
        let index = slots[i].index;
        let plan = &mut pods[p].plan;
        let n_init = plan.init_containers.len();
        let target = if index < n_init {
            &mut plan.init_containers[index].container
        } else {
            &mut plan.containers[index - n_init]
        };
        target.resources = resources;
        set_spec_resources(&mut pods[p].object, d.at, &d.resources);
        pods[p].dirty = true;
        if d.restart {
            slots[i].resize_restart = true;
            let g = grace(pods[p].plan.grace_period);
            self.begin_kill(pods, slots, i, g);
        }
        Reply {
            error: None,
            restarted: d.restart,
            resources: Some(d.resources),
        }
    }
}

/// Write the container's new `resources` into the Pod object the record shows.
fn set_spec_resources(
    object: &mut serde_json::Value,
    at: (&str, usize),
    resources: &ResourceRequirements,
) {
    if let Some(c) = object
        .get_mut("spec")
        .and_then(|s| s.get_mut(at.0))
        .and_then(|l| l.get_mut(at.1))
        .and_then(|c| c.as_object_mut())
    {
        if let Ok(v) = serde_json::to_value(resources) {
            c.insert("resources".into(), v);
        }
    }
}
