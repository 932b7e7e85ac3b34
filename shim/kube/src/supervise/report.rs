//! What the run reports about each Pod: its status as the kubelet would (phase, conditions,
//! container statuses), written to its record whenever it changed; and, for `run -d`, when the
//! Pod's start is over.

use std::fs::File;
use std::io::Write;

use podshim_engine::config::Config;

use super::notice::{Notice, Reporter, What};
use super::slot::{slot_status, PodRun, Slot, State};
use super::Options;
use crate::pod::order::Role;
use crate::pod::{chain, pod_key};
use crate::record::{self, Record, Supervisor};
use crate::status;

/// The kubelet's event message when a Pod's sandbox is not ready (its pause died).
pub(super) const SANDBOX_CHANGED: &str = "Pod sandbox changed, it will be killed and re-created.";

/// The Pod's status now, as the kubelet would report it.
pub(super) fn pod_status(pod: &PodRun, p: usize, slots: &[Slot]) -> status::PodStatus {
    let mine: Vec<&Slot> = slots.iter().filter(|s| s.pod == p).collect();
    let mut init: Vec<(Role, status::ContainerStatus)> = mine
        .iter()
        .filter(|s| s.role != Role::App)
        .map(|s| (s.role, slot_status(s)))
        .collect();
    let mut apps: Vec<status::ContainerStatus> = mine
        .iter()
        .filter(|s| s.role == Role::App)
        .map(slot_status)
        .collect();
    for s in init.iter_mut().map(|(_, s)| s).chain(apps.iter_mut()) {
        allocation(&pod.object, s);
    }
    let init_refs: Vec<(Role, &status::ContainerStatus)> =
        init.iter().map(|(r, s)| (*r, s)).collect();
    let app_refs: Vec<&status::ContainerStatus> = apps.iter().collect();
    let mut phase = status::phase(pod.plan.restart, &init_refs, &app_refs).to_string();
    // A stopped Pod is terminal (as the kubelet makes a deleted Pod): Succeeded when every
    // container's last exit was 0, else Failed.
    if pod.stop.is_some() && mine.iter().all(|s| matches!(s.state, State::Done)) {
        let all_ok = mine
            .iter()
            .filter(|s| s.role != Role::Sidecar)
            .all(|s| s.exit == Some(0));
        phase = if all_ok { "Succeeded" } else { "Failed" }.into();
    }
    if pod.failed.is_some() {
        phase = "Failed".into();
    }
    let mut conditions = status::conditions(&phase, &init_refs, &app_refs, &pod.start_time);
    // The kubelet's PodReadyToStartContainers: whether the sandbox (pause, network) is ready;
    // false, and why, while a sandbox whose pause died is being made anew.
    let sandbox_ready = !pod.recreating && pod.failed.is_none() && pod.sandbox.is_some();
    conditions.insert(
        0,
        status::Condition {
            kind: "PodReadyToStartContainers".into(),
            status: if sandbox_ready { "True" } else { "False" }.into(),
            last_transition_time: Some(pod.sandbox_since.clone()),
            reason: pod.recreating.then(|| "SandboxChanged".into()),
            message: pod.recreating.then(|| SANDBOX_CHANGED.into()),
        },
    );
    let ip = pod.sandbox.as_ref().map(|sb| sb.attachment.ip.to_string());
    status::PodStatus {
        phase,
        conditions,
        host_ip: Some(pod.host_ip.clone()),
        pod_ip: ip.clone(),
        pod_ips: ip.into_iter().map(|ip| status::PodIp { ip }).collect(),
        start_time: Some(pod.start_time.clone()),
        init_container_statuses: init.into_iter().map(|(_, s)| s).collect(),
        container_statuses: apps,
        qos_class: Some(pod.plan.qos_class.clone()).filter(|q| !q.is_empty()),
        reason: pod
            .deadline_exceeded
            .then(|| "DeadlineExceeded".to_string()),
        message: pod
            .deadline_exceeded
            .then(|| "Pod was active on the node longer than the specified deadline".to_string()),
    }
}

/// `allocatedResources` and `resources` of a container's status (shown for every container
/// since Kubernetes 1.33, when in-place resize came on by default): its cpu and memory requests
/// and limits as allocated now (the Pod's spec, which a resize changes).
fn allocation(object: &serde_json::Value, s: &mut status::ContainerStatus) {
    use serde_json::{Map, Value};
    let spec = &object["spec"];
    let c = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l)?.as_array())
        .flatten()
        .find(|c| c["name"] == s.name.as_str());
    let Some(r) = c.and_then(|c| c.get("resources")) else {
        return;
    };
    let pick = |list: &str| -> Map<String, Value> {
        r.get(list)
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| matches!(k.as_str(), "cpu" | "memory"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (requests, limits) = (pick("requests"), pick("limits"));
    s.allocated_resources = requests
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    if s.state.running.is_some() && !(requests.is_empty() && limits.is_empty()) {
        let mut m = Map::new();
        if !limits.is_empty() {
            m.insert("limits".into(), Value::Object(limits));
        }
        if !requests.is_empty() {
            m.insert("requests".into(), Value::Object(requests));
        }
        s.resources = Some(Value::Object(m));
    }
}

pub(super) fn write_record(
    cfg: &Config,
    pod: &mut PodRun,
    p: usize,
    slots: &[Slot],
    opts: &mut Options,
    terminating: bool,
) {
    if pod.sandbox.is_none() {
        return;
    }
    let path = record::path(
        cfg,
        &pod_key(&pod.plan.sandbox.namespace, &pod.plan.sandbox.name),
    );
    write_record_to(pod, p, slots, opts, terminating, &path);
}

pub(super) fn write_record_to(
    pod: &mut PodRun,
    p: usize,
    slots: &[Slot],
    opts: &mut Options,
    terminating: bool,
    path: &std::path::Path,
) {
    if !pod.dirty {
        return;
    }
    pod.dirty = false;
    let mut object = pod.object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.insert("uid".into(), pod.plan.sandbox.uid.clone().into());
        meta.insert("creationTimestamp".into(), pod.start_time.clone().into());
    }
    let rec = Record {
        namespace: pod.plan.sandbox.namespace.clone(),
        name: pod.plan.sandbox.name.clone(),
        uid: pod.plan.sandbox.uid.clone(),
        pod: object,
        status: pod_status(pod, p, slots),
        supervisor: Supervisor::current(),
        detached: opts.detached,
        log_dir: pod.log_dir.clone(),
        sidecars: pod.plan.init_containers.iter().map(|i| i.sidecar).collect(),
        terminating: terminating || pod.stop.is_some(),
    };
    if let Err(e) = rec.write(path) {
        report(opts.reporter.as_mut(), chain(&e));
    }
}

/// Whether the start of Pod `p` is over: every container started at least once, or the Pod is
/// stopping, or a container waits in back-off (it failed): `Some(problem)` in the last case.
pub(super) fn startup_over(pod: &PodRun, p: usize, slots: &[Slot]) -> Option<Result<(), String>> {
    if pod.stop.is_some() || pod.failed.is_some() {
        return Some(Err("the pod stopped".into()));
    }
    let mut waiting = false;
    for s in slots.iter().filter(|s| s.pod == p) {
        if let Some(problem) = s.track.failure() {
            return Some(Err(format!("container {}: {problem}", s.track.name)));
        }
        // Started means its postStart hook has finished, as for the kubelet.
        if !s.started_once || s.post_start {
            waiting = true;
        }
    }
    (!waiting).then_some(Ok(()))
}

/// Tell the `run -d` waiting for us how each Pod's start went (once every Pod's start is over).
pub(super) fn notify_ready(ready: &mut Option<File>, pods: &[PodRun], slots: &[Slot]) {
    let Some(f) = ready.as_mut() else { return };
    let mut lines = String::new();
    for (p, pod) in pods.iter().enumerate() {
        let name = &pod.plan.sandbox.name;
        match startup_over(pod, p, slots) {
            Some(Ok(())) => lines.push_str(&format!("ok {name}\n")),
            Some(Err(e)) => lines.push_str(&format!("failed {name} {e}\n")),
            None => lines.push_str(&format!(
                "failed {name} the pod stopped before it started\n"
            )),
        }
    }
    let _ = f.write_all(lines.as_bytes());
    *ready = None;
}

fn report(reporter: &mut dyn Reporter, message: String) {
    reporter.notice(&Notice::run(What::Record { message }));
}
