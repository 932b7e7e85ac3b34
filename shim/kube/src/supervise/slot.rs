//! The state of each container slot of the Pods being run (one per container of each Pod, in
//! the Pod's start order) and of each Pod, and what follows from it: which container may start,
//! what its status is, what podshim's exit code is.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::checks::Probes;
use super::output::Output;
use super::track::Track;
use crate::plan::PodPlan;
use crate::pod::order::{self, Phase, Role};
use crate::pod::Sandbox;
use crate::status;

/// How one container slot stands.
#[derive(Debug)]
pub(super) enum State {
    Running {
        pid: Pid,
        started: Instant,
    },
    /// Waiting to be (re)started at this instant.
    Waiting {
        at: Instant,
    },
    Done,
}

pub(super) struct Slot {
    pub(super) pod: usize,
    /// The container's index in `PodPlan::ordered`.
    pub(super) index: usize,
    pub(super) role: Role,
    pub(super) out: Output,
    pub(super) state: State,
    /// Whether it ever started (gates the containers after it until then).
    pub(super) started_once: bool,
    /// Whether podshim sent the running container its stop signal.
    pub(super) signalled: bool,
    pub(super) restarts: u32,
    pub(super) streak: u32,
    /// The last exit code.
    pub(super) exit: Option<i32>,
    /// The last exit that counts for podshim's exit code (sequence number across the run, exit
    /// code): every exit but that of a sidecar podshim stopped.
    pub(super) last_exit: Option<(u64, i32)>,
    /// What the Pod's status says about this container.
    pub(super) track: Track,
    /// Counts the container's starts (checks of an earlier run are ignored).
    pub(super) run: u32,
    /// The probers of the current run.
    pub(super) probes: Option<Probes>,
    /// Its postStart hook has not finished yet (probes wait for it).
    pub(super) post_start: bool,
    /// The container is being killed: preStop, stop signal, SIGKILL.
    pub(super) kill: Option<Kill>,
    /// The image's STOPSIGNAL.
    pub(super) stop_signal: Option<String>,
    /// Being stopped for a resize whose policy is `RestartContainer`: started again at once,
    /// whatever its exit and the restart policy.
    pub(super) resize_restart: bool,
}

/// Killing one container as the kubelet does: the preStop hook, then the stop signal (after the
/// hook, or once the grace period is spent), then SIGKILL at the deadline, which comes no
/// sooner than 2 s after the signal.
#[derive(Debug, Clone, Copy)]
pub(super) struct Kill {
    pub(super) deadline: Instant,
    pub(super) immediate: bool,
    pub(super) hook_done: bool,
    pub(super) signal_sent: bool,
    pub(super) killed: bool,
}

impl Slot {
    pub(super) fn phase(&self) -> Phase {
        match self.state {
            State::Running { .. } => Phase::Running {
                signalled: self.signalled,
            },
            State::Waiting { .. } if self.started_once => Phase::Restarting,
            State::Waiting { .. } => Phase::NotStarted,
            State::Done => Phase::Done { code: self.exit },
        }
    }
}

/// How each container of Pod `p` stands, in `PodPlan::ordered` order.
pub(super) fn view(slots: &[Slot], p: usize) -> Vec<(Role, Phase)> {
    slots
        .iter()
        .filter(|s| s.pod == p)
        .map(|s| (s.role, s.phase()))
        .collect()
}

pub(super) struct PodRun {
    pub(super) plan: PodPlan,
    pub(super) object: serde_json::Value,
    pub(super) sandbox: Option<Sandbox>,
    /// Set when the Pod failed as a whole (its pause process died).
    pub(super) failed: Option<i32>,
    /// Set once the Pod is stopping (a stop signal, or nothing left to run but sidecars).
    pub(super) stop: Option<Stop>,
    /// `<log root>/<namespace>_<name>_<uid>`.
    pub(super) log_dir: PathBuf,
    pub(super) start_time: String,
    pub(super) host_ip: String,
    /// The record needs rewriting.
    pub(super) dirty: bool,
    /// Its sandbox is being made anew (pause died): its containers are being killed, and none
    /// starts until the new sandbox is ready.
    pub(super) recreating: bool,
    /// When the sandbox last became ready (or, while recreating, was lost): the
    /// `PodReadyToStartContainers` condition's transition time.
    pub(super) sandbox_since: String,
    /// When `activeDeadlineSeconds` runs out (counted from the Pod's start, as the kubelet
    /// counts from `status.startTime`).
    pub(super) active_deadline: Option<Instant>,
    /// Set when that deadline failed the Pod (status reason `DeadlineExceeded`).
    pub(super) deadline_exceeded: bool,
    /// When its projected service account tokens are next renewed (`super::tokens`).
    pub(super) token_due: Option<Instant>,
}

/// A stopping Pod: containers get their stop signal in order, SIGKILL at the deadline.
pub(super) struct Stop {
    pub(super) deadline: Instant,
    /// The grace period (the Pod's, or `podshim stop --grace-period`).
    pub(super) grace: Duration,
    pub(super) killed: bool,
}

/// When slot `i` may (re)start: `None` while it runs, is done, its Pod stops, or a container
/// before it has not completed (init container) or started (sidecar) yet.
pub(super) fn may_start(pods: &[PodRun], slots: &[Slot], i: usize) -> Option<Instant> {
    let s = &slots[i];
    let State::Waiting { at } = s.state else {
        return None;
    };
    if pods[s.pod].stop.is_some() || pods[s.pod].recreating {
        return None;
    }
    (s.started_once || order::may_start(&view(slots, s.pod), s.index)).then_some(at)
}

/// A container's status: started once its postStart hook finished and its startup probe
/// succeeded; ready once also its readiness probe says so (and it is not being killed).
pub(super) fn slot_status(s: &&Slot) -> status::ContainerStatus {
    let running = matches!(s.state, State::Running { .. });
    let probes = s.probes.as_ref();
    let started = running && !s.post_start && probes.is_none_or(|p| p.started);
    let ready = started && s.kill.is_none() && probes.is_none_or(|p| p.ready);
    s.track.status(s.phase(), s.restarts, ready, started)
}

/// podshim's exit code: 0 when every container's last exit was 0; otherwise the code of the
/// container whose final exit failed first (128+N for a signal); 1 for a Pod that failed as a
/// whole without a failing container.
pub(super) fn result(pods: &[PodRun], slots: &[Slot]) -> i32 {
    slots
        .iter()
        .filter_map(|s| s.last_exit.filter(|(_, code)| *code != 0))
        .min_by_key(|(seq, _)| *seq)
        .map(|(_, code)| code)
        .or_else(|| pods.iter().find_map(|p| p.failed))
        .unwrap_or(0)
}
