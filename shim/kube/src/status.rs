//! A Pod's status as the kubelet reports it (`v1.PodStatus`): the JSON shape `podshim inspect`
//! prints, and the phase and conditions worked out from the containers' states the way the
//! kubelet's `getPhase` and its condition generators do.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::pod::order::Role;
use crate::pod::restart::Policy;

/// `metav1.Time`: RFC 3339 in UTC with whole seconds.
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    pub phase: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "hostIP")]
    pub host_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "podIP")]
    pub pod_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", rename = "podIPs")]
    pub pod_ips: Vec<PodIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_class: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodIp {
    pub ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: String,
    /// "True" or "False".
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    pub name: String,
    pub state: ContainerState,
    pub last_state: ContainerState,
    pub ready: bool,
    pub restart_count: u32,
    pub image: String,
    #[serde(rename = "imageID")]
    pub image_id: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "containerID"
    )]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    /// The requests allocated to the container (changed by an in-place resize).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub allocated_resources: std::collections::BTreeMap<String, String>,
    /// The requests and limits the running container's cgroup has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<serde_json::Value>,
    /// The identity its first process runs with, once it was started (`ContainerUser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<ContainerUser>,
}

/// `status.containerStatuses[].user`: the IDs the container's first process was given.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerUser {
    pub linux: LinuxContainerUser,
}

/// `LinuxContainerUser`: `supplementalGroups` holds every group the process has, its primary
/// group included, as the kubelet reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxContainerUser {
    pub uid: i64,
    pub gid: i64,
    #[serde(default)]
    pub supplemental_groups: Vec<i64>,
}

/// Exactly one of the three is set (none in an empty `lastState`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<Running>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminated: Option<Terminated>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub started_at: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Terminated {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    pub finished_at: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "containerID"
    )]
    pub container_id: Option<String>,
}

impl ContainerState {
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        ContainerState {
            waiting: Some(Waiting {
                reason: reason.to_string(),
                message,
            }),
            ..Default::default()
        }
    }
}

/// The Pod phase from its containers' statuses, as the kubelet's `getPhase` (with sidecars, the
/// restartable init containers, counted like app containers once initialization is done).
pub fn phase(
    policy: Policy,
    init: &[(Role, &ContainerStatus)],
    containers: &[&ContainerStatus],
) -> &'static str {
    let exited = |s: &ContainerStatus| s.state.terminated.clone();
    // Regular init containers: each must have completed.
    let mut pending_init = false;
    for (role, s) in init {
        if *role == Role::Sidecar {
            if s.state.running.is_none() && s.restart_count == 0 && s.state.terminated.is_none() {
                pending_init = true;
            }
            continue;
        }
        match exited(s) {
            Some(t) if t.exit_code == 0 => {}
            Some(_) if policy == Policy::Never => return "Failed",
            _ => pending_init = true,
        }
    }
    if pending_init {
        return "Pending";
    }
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in containers {
        if s.state.running.is_some() {
            running += 1;
        } else if let Some(t) = &s.state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s.last_state.terminated.is_some() {
            stopped += 1; // waiting to restart (CrashLoopBackOff)
        } else {
            waiting += 1;
        }
    }
    match () {
        _ if waiting > 0 => "Pending",
        _ if running > 0 => "Running",
        _ if stopped > 0 => {
            if policy == Policy::Always {
                "Running"
            } else if stopped == succeeded {
                "Succeeded"
            } else if policy == Policy::Never
                || containers.iter().all(|s| s.state.terminated.is_some())
            {
                "Failed"
            } else {
                "Running"
            }
        }
        _ => "Pending",
    }
}

/// The four conditions the kubelet sets: PodScheduled, Initialized, ContainersReady, Ready.
pub fn conditions(
    phase: &str,
    init: &[(Role, &ContainerStatus)],
    containers: &[&ContainerStatus],
    since: &str,
) -> Vec<Condition> {
    let initialized = init.iter().all(|(role, s)| match role {
        Role::Sidecar => s.started == Some(true) || s.restart_count > 0,
        _ => s
            .state
            .terminated
            .as_ref()
            .is_some_and(|t| t.exit_code == 0),
    });
    let terminal = phase == "Succeeded" || phase == "Failed";
    let sidecars_ready = init
        .iter()
        .filter(|(r, _)| *r == Role::Sidecar)
        .all(|(_, s)| s.ready);
    let ready = !terminal && sidecars_ready && containers.iter().all(|s| s.ready);
    let cond = |kind: &str, ok: bool, reason: Option<&str>| Condition {
        kind: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        last_transition_time: Some(since.to_string()),
        reason: if ok { None } else { reason.map(str::to_string) },
        message: None,
    };
    let not_ready = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    vec![
        cond("PodScheduled", true, None),
        cond(
            "Initialized",
            initialized || terminal,
            Some("ContainersNotInitialized"),
        ),
        cond("ContainersReady", ready, Some(not_ready)),
        cond("Ready", ready, Some(not_ready)),
    ]
}

/// What `kubectl get pods` shows in STATUS (its `printPod`): the phase, or the reason of the
/// container that explains it (`Init:1/2`, `CrashLoopBackOff`, `Completed`, `Error`, ...).
/// `sidecar[i]` says whether init container `i` is a sidecar (`restartPolicy: Always`).
pub fn display(status: &PodStatus, sidecar: &[bool], terminating: bool) -> String {
    if status.reason.as_deref() == Some("SupervisorLost") {
        return "SupervisorLost".into();
    }
    let mut reason = status
        .reason
        .clone()
        .unwrap_or_else(|| status.phase.clone());
    let total_init = status.init_container_statuses.len();
    let mut initializing = false;
    for (i, s) in status.init_container_statuses.iter().enumerate() {
        if let Some(t) = &s.state.terminated {
            if t.exit_code == 0 {
                continue;
            }
            reason = if t.reason.is_empty() {
                format!("Init:ExitCode:{}", t.exit_code)
            } else {
                format!("Init:{}", t.reason)
            };
            initializing = true;
        } else if sidecar.get(i) == Some(&true)
            && s.started == Some(true)
            && s.state.running.is_some()
        {
            continue; // a running sidecar
        } else if let Some(w) = s
            .state
            .waiting
            .as_ref()
            .filter(|w| w.reason != "PodInitializing")
        {
            reason = format!("Init:{}", w.reason);
            initializing = true;
        } else {
            reason = format!("Init:{i}/{total_init}");
            initializing = true;
        }
        break;
    }
    if !initializing {
        let mut has_running = false;
        for s in status.container_statuses.iter().rev() {
            if let Some(w) = &s.state.waiting {
                if !w.reason.is_empty() {
                    reason = w.reason.clone();
                }
            } else if let Some(t) = &s.state.terminated {
                reason = if !t.reason.is_empty() {
                    t.reason.clone()
                } else if let Some(sig) = t.signal {
                    format!("Signal:{sig}")
                } else {
                    format!("ExitCode:{}", t.exit_code)
                };
            } else if s.ready && s.state.running.is_some() {
                has_running = true;
            }
        }
        if reason == "Completed" && has_running {
            reason = if status
                .conditions
                .iter()
                .any(|c| c.kind == "Ready" && c.status == "True")
            {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }
    if terminating && status.phase != "Succeeded" && status.phase != "Failed" {
        reason = "Terminating".into();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running() -> ContainerStatus {
        ContainerStatus {
            state: ContainerState {
                running: Some(Running {
                    started_at: "t".into(),
                }),
                ..Default::default()
            },
            ready: true,
            started: Some(true),
            ..Default::default()
        }
    }

    fn exited(code: i32) -> ContainerStatus {
        ContainerStatus {
            state: ContainerState {
                terminated: Some(Terminated {
                    exit_code: code,
                    reason: if code == 0 { "Completed" } else { "Error" }.into(),
                    finished_at: "t".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn backing_off() -> ContainerStatus {
        let mut s = ContainerStatus {
            state: ContainerState::waiting("CrashLoopBackOff", None),
            restart_count: 2,
            ..Default::default()
        };
        s.last_state = exited(1).state;
        s
    }

    #[test]
    fn phases_follow_get_phase() {
        let (r, e0, e1, w) = (running(), exited(0), exited(1), backing_off());
        let created = ContainerStatus {
            state: ContainerState::waiting("ContainerCreating", None),
            ..Default::default()
        };
        assert_eq!(phase(Policy::Always, &[], &[&r, &e0]), "Running");
        assert_eq!(phase(Policy::Never, &[], &[&e0, &e0]), "Succeeded");
        assert_eq!(phase(Policy::Never, &[], &[&e0, &e1]), "Failed");
        assert_eq!(phase(Policy::OnFailure, &[], &[&e0, &w]), "Running");
        assert_eq!(phase(Policy::Always, &[], &[&w]), "Running");
        assert_eq!(phase(Policy::Always, &[], &[&created, &r]), "Pending");
        // An init container that has not completed keeps the Pod Pending; with Never, its
        // failure fails the Pod.
        assert_eq!(
            phase(Policy::Always, &[(Role::Init, &e1)], &[&created]),
            "Pending"
        );
        assert_eq!(
            phase(Policy::Never, &[(Role::Init, &e1)], &[&created]),
            "Failed"
        );
        assert_eq!(phase(Policy::Never, &[(Role::Init, &e0)], &[&r]), "Running");
    }

    #[test]
    fn conditions_and_display() {
        let (r, w) = (running(), backing_off());
        let c = conditions("Running", &[], &[&r], "t");
        assert!(c.iter().all(|c| c.status == "True"), "{c:?}");
        let c = conditions("Running", &[], &[&r, &w], "t");
        let ready = c.iter().find(|c| c.kind == "Ready").unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
        let status = PodStatus {
            phase: "Running".into(),
            container_statuses: vec![r.clone(), w.clone()],
            conditions: c,
            ..Default::default()
        };
        assert_eq!(display(&status, &[], false), "CrashLoopBackOff");
        assert_eq!(display(&status, &[], true), "Terminating");
        let init = PodStatus {
            phase: "Pending".into(),
            init_container_statuses: vec![exited(0), running()],
            container_statuses: vec![ContainerStatus {
                state: ContainerState::waiting("PodInitializing", None),
                ..Default::default()
            }],
            ..Default::default()
        };
        // A running plain init container shows Init:1/2; a running sidecar lets the app
        // containers' state through.
        assert_eq!(display(&init, &[false, false], false), "Init:1/2");
        assert_eq!(display(&init, &[false, true], false), "PodInitializing");
        let done = PodStatus {
            phase: "Succeeded".into(),
            container_statuses: vec![exited(0)],
            ..Default::default()
        };
        assert_eq!(display(&done, &[], false), "Completed");
    }
}
