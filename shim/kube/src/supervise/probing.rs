//! Probes and hooks of running containers: start what is due, kill what exceeds its timeout,
//! and act on the result (a liveness or startup failure kills the container; readiness changes
//! its status; a failed postStart kills it; a finished preStop lets the stop signal go).

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};

use super::checks::{Check, Purpose, Verdict};
use super::notice::{Notice, What};
use super::slot::{PodRun, Slot, State};
use super::stopping::grace;
use super::Supervision;

impl Supervision<'_> {
    /// Start a probe or hook for slot `i`; false when it could not start (a failed check).
    pub(super) fn start_check(
        &mut self,
        pod: &PodRun,
        s: &Slot,
        i: usize,
        action: &crate::probe::Action,
        purpose: Purpose,
        deadline: Instant,
    ) -> bool {
        let key = format!("{}/{}", pod.plan.sandbox.namespace, pod.plan.sandbox.name);
        let ip = pod
            .sandbox
            .as_ref()
            .map(|sb| std::net::IpAddr::V4(sb.attachment.ip))
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self
            .opts
            .runner
            .spawn(action, &key, &s.track.name, ip, timeout)
        {
            Ok(pid) => {
                let deadline = match (action, purpose) {
                    (crate::probe::Action::Sleep { seconds }, _) => {
                        Some(deadline.min(Instant::now() + Duration::from_secs(*seconds)))
                    }
                    (_, Purpose::PostStart) => None,
                    _ => Some(deadline),
                };
                self.checks.push(Check {
                    pid,
                    slot: i,
                    run: s.run,
                    purpose,
                    deadline,
                });
                true
            }
            Err(e) => {
                self.opts.reporter.notice(&Notice::container(
                    &s.out.label,
                    What::CheckNotStarted {
                        message: e.to_string(),
                    },
                ));
                false
            }
        }
    }

    /// Start the probes that are due.
    pub(super) fn run_probes(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
        let now = Instant::now();
        for i in 0..slots.len() {
            let s = &mut slots[i];
            if !matches!(s.state, State::Running { .. })
                || s.post_start
                || s.kill.is_some()
                || pods[s.pod].stop.is_some()
            {
                continue;
            }
            let Some(probes) = s.probes.as_mut() else {
                continue;
            };
            for (kind, action, timeout) in probes.due(now) {
                let pod = &pods[slots[i].pod];
                if !self.start_check(
                    pod,
                    &slots[i],
                    i,
                    &action,
                    Purpose::Probe(kind),
                    now + timeout,
                ) {
                    self.check_done(pods, slots, i, Purpose::Probe(kind), false);
                }
            }
        }
    }

    /// Kill checks past their deadline (their exit counts as a failure); finish sleep hooks.
    pub(super) fn expire_checks(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
        let now = Instant::now();
        let mut i = 0;
        while i < self.checks.len() {
            let c = self.checks[i].clone();
            if c.deadline.is_none_or(|d| d > now) {
                i += 1;
                continue;
            }
            match c.pid {
                Some(pid) => {
                    let _ = kill(pid, Signal::SIGKILL);
                    self.checks[i].deadline = None; // reaped as a failure
                    i += 1;
                }
                None => {
                    self.checks.remove(i);
                    if slots[c.slot].run == c.run {
                        self.check_done(pods, slots, c.slot, c.purpose, true);
                    }
                }
            }
        }
    }

    /// A check finished: count the probe result or move the hook's container along.
    pub(super) fn check_done(
        &mut self,
        pods: &mut [PodRun],
        slots: &mut [Slot],
        i: usize,
        purpose: Purpose,
        ok: bool,
    ) {
        let now = Instant::now();
        if !matches!(slots[i].state, State::Running { .. }) {
            return;
        }
        let pod_grace = pods[slots[i].pod].plan.grace_period;
        match purpose {
            Purpose::Probe(kind) => {
                let Some(probes) = slots[i].probes.as_mut() else {
                    return;
                };
                match probes.result(kind, ok, now) {
                    Verdict::Nothing => {}
                    Verdict::Changed => pods[slots[i].pod].dirty = true,
                    Verdict::Kill {
                        why,
                        grace: probe_grace,
                    } => {
                        self.opts.reporter.notice(&Notice::container(
                            &slots[i].out.label,
                            What::ProbeKill {
                                why: why.to_string(),
                            },
                        ));
                        if slots[i].kill.is_none() {
                            self.begin_kill(
                                pods,
                                slots,
                                i,
                                grace(probe_grace.unwrap_or(pod_grace)),
                            );
                        }
                    }
                }
            }
            Purpose::PostStart => {
                slots[i].post_start = false;
                pods[slots[i].pod].dirty = true;
                if !ok {
                    self.opts.reporter.notice(&Notice::container(
                        &slots[i].out.label,
                        What::PostStartFailed,
                    ));
                    slots[i].track.hook_failed("PostStartHookError");
                    if slots[i].kill.is_none() {
                        self.begin_kill(pods, slots, i, grace(pod_grace));
                    }
                }
            }
            Purpose::PreStop => {
                if !ok {
                    self.opts
                        .reporter
                        .notice(&Notice::container(&slots[i].out.label, What::PreStopFailed));
                }
                if let Some(k) = slots[i].kill.as_mut() {
                    k.hook_done = true;
                }
                self.advance_kills(slots);
            }
        }
    }
}
