//! Stopping: a Pod stops on a stop request from `podshim stop` (a request file plus SIGUSR1) or
//! a stop signal, or when nothing but sidecars is left. Its containers are killed as the kubelet
//! kills them: the preStop hook, then the stop signal (the image's STOPSIGNAL or SIGTERM), then
//! SIGKILL at the deadline, in the Pod's stop order.

use std::fs;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use podshim_engine::config::Config;

use super::checks::Purpose;
use super::slot::{view, Kill, PodRun, Slot, State, Stop};
use super::Supervision;
use crate::pod::order;
use crate::pod::pod_key;
use crate::record;

/// The file `podshim stop` writes next to the Pod's record (not into the Pod's directory, which
/// its teardown removes) before it sends SIGUSR1 to the supervisor.
pub fn stop_request_path(cfg: &Config, key: &str) -> PathBuf {
    record::dir(cfg).join(format!("{key}.stop"))
}

/// A request to stop one Pod.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StopRequest {
    /// Overrides the Pod's `terminationGracePeriodSeconds`.
    pub grace_period_seconds: Option<u64>,
}

/// The time from the stop signal to SIGKILL: the grace period, never under 2 s (kubelet
/// `minimumGracePeriodInSeconds`), except that 0 kills at once.
pub(super) fn grace(period: Duration) -> Duration {
    if period.is_zero() {
        Duration::ZERO
    } else {
        period.max(Duration::from_secs(2))
    }
}

/// The image's STOPSIGNAL ("SIGQUIT", "QUIT" or "3"), else SIGTERM.
pub fn stop_signal(name: Option<&str>) -> Signal {
    let Some(name) = name else {
        return Signal::SIGTERM;
    };
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).unwrap_or(Signal::SIGTERM);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).unwrap_or(Signal::SIGTERM)
}

impl Supervision<'_> {
    /// `podshim stop` left a request file next to the Pod's record: stop that Pod, with the
    /// requested grace period. The files are not removed here but by `forget_stop_requests`
    /// once the records say the Pods are terminating: a controller that lists the Pods in
    /// between must see either the request or the record's `terminating`, or it counts a Pod
    /// already being stopped as available and stops one more (a Deployment with
    /// `maxUnavailable: 0` dropped to 2 Ready Pods of 4 under emulation, where that gap is long).
    pub(super) fn take_stop_requests(&self, pods: &mut [PodRun]) -> Vec<(PathBuf, Vec<u8>)> {
        let mut taken = Vec::new();
        for pod in pods.iter_mut() {
            let spec = &pod.plan.sandbox;
            let path = stop_request_path(self.cfg, &pod_key(&spec.namespace, &spec.name));
            let Ok(data) = fs::read(&path) else { continue };
            let req: StopRequest = serde_json::from_slice(&data).unwrap_or_default();
            let grace = match req.grace_period_seconds {
                Some(s) => grace(Duration::from_secs(s)),
                None => grace(pod.plan.grace_period),
            };
            match pod.stop.as_mut() {
                // Already stopping: a shorter grace period brings the kill forward.
                Some(stop) => stop.deadline = stop.deadline.min(Instant::now() + grace),
                None => {
                    pod.stop = Some(Stop {
                        deadline: Instant::now() + grace,
                        grace,
                        killed: false,
                    })
                }
            }
            pod.dirty = true;
            taken.push((path, data));
        }
        taken
    }

    /// Removes the request files `take_stop_requests` applied, now that the records say so. A
    /// file rewritten since (another request, e.g. a shorter grace period) stays for the next
    /// pass, which its SIGUSR1 brings.
    pub(super) fn forget_stop_requests(taken: Vec<(PathBuf, Vec<u8>)>) {
        for (path, data) in taken {
            if fs::read(&path).is_ok_and(|now| now == data) {
                let _ = fs::remove_file(&path);
            }
        }
    }

    /// One step of stopping Pod `p`: nothing more starts; running containers are killed (preStop,
    /// then the stop signal) in the Pod's stop order (app and init containers, then sidecars in
    /// reverse); every one left gets SIGKILL at the Pod's deadline.
    pub(super) fn stop_pod(&mut self, pods: &mut [PodRun], p: usize, slots: &mut [Slot]) {
        let Some(stop) = pods[p].stop.as_ref() else {
            return;
        };
        let (deadline, killed) = (stop.deadline, stop.killed);
        for s in slots.iter_mut().filter(|s| s.pod == p) {
            if let State::Waiting { .. } = s.state {
                s.state = State::Done;
                pods[p].dirty = true;
            }
        }
        if killed {
            return;
        }
        if Instant::now() >= deadline {
            for s in slots.iter_mut().filter(|s| s.pod == p) {
                if let State::Running { pid, .. } = s.state {
                    let _ = kill(pid, Signal::SIGKILL);
                    s.signalled = true;
                }
            }
            if let Some(stop) = pods[p].stop.as_mut() {
                stop.killed = true;
            }
            return;
        }
        let first = slots.iter().position(|s| s.pod == p).unwrap_or(0);
        for i in order::to_signal(&view(slots, p)) {
            let idx = first + i;
            if matches!(slots[idx].state, State::Running { .. }) && slots[idx].kill.is_none() {
                let grace = deadline.saturating_duration_since(Instant::now());
                self.begin_kill(pods, slots, idx, grace);
            }
        }
    }

    /// Start killing container `i`: its preStop hook first (when the grace period allows),
    /// then its stop signal.
    pub(super) fn begin_kill(
        &mut self,
        pods: &mut [PodRun],
        slots: &mut [Slot],
        i: usize,
        grace: Duration,
    ) {
        let s = &mut slots[i];
        let pod = &mut pods[s.pod];
        pod.dirty = true;
        let now = Instant::now();
        let immediate = grace.is_zero() || pod.stop.as_ref().is_some_and(|st| st.grace.is_zero());
        s.signalled = true;
        let mut hook_done = true;
        if !immediate {
            if let Some(action) = pod.plan.container(s.index).checks.pre_stop.clone() {
                hook_done = !self.start_check(pod, s, i, &action, Purpose::PreStop, now + grace);
            }
        }
        s.kill = Some(Kill {
            deadline: now + grace,
            immediate,
            hook_done,
            signal_sent: false,
            killed: false,
        });
        self.advance_kills(slots);
    }

    /// Move every kill along: the stop signal once the hook is done (or the grace period is
    /// spent), SIGKILL at the deadline.
    pub(super) fn advance_kills(&mut self, slots: &mut [Slot]) {
        let now = Instant::now();
        for s in slots.iter_mut() {
            let State::Running { pid, .. } = s.state else {
                continue;
            };
            let Some(k) = s.kill.as_mut() else { continue };
            if !k.signal_sent && (k.hook_done || now >= k.deadline) {
                k.signal_sent = true;
                if k.immediate {
                    let _ = kill(pid, Signal::SIGKILL);
                    k.killed = true;
                    continue;
                }
                let _ = kill(pid, stop_signal(s.stop_signal.as_deref()));
                // The kubelet gives the signal at least 2 s, even after a long preStop.
                k.deadline = k.deadline.max(now + Duration::from_secs(2));
            } else if k.signal_sent && !k.killed && now >= k.deadline {
                let _ = kill(pid, Signal::SIGKILL);
                k.killed = true;
            }
        }
    }
}
