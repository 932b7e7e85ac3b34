//! The supervision loop: one thread, woken by container output, signals (a stop signal,
//! SIGCHLD, SIGUSR1 for stop requests) or the next deadline; each turn it stops what must stop,
//! starts what is due, runs probes, moves kills along, writes records, reaps exits and watches
//! the pause processes. Single-threaded on purpose: libcontainer forks this process to (re)start
//! containers, and each container's init is its child.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use podshim_engine::config::Config;

use super::checks::{Check, Probes};
use super::notice::{Notice, What};
use super::output;
use super::report::{notify_ready, startup_over, write_record};
use super::slot::{may_start, view, PodRun, Slot, State, Stop};
use super::stopping::grace;
use super::Options;
use crate::pod::chain;
use crate::pod::order::{self, Role};
use crate::pod::restart::Policy;
use crate::status;

pub(super) struct Supervision<'a> {
    pub(super) cfg: &'a Config,
    pub(super) stop_sig: &'a AtomicUsize,
    pub(super) requests: &'a AtomicBool,
    pub(super) wake_r: &'a UnixStream,
    pub(super) opts: &'a mut Options,
    /// Probe and hook processes (and sleep hooks) in flight.
    pub(super) checks: Vec<Check>,
    /// When to trim the resident memory next (10 s after the loop last did some work).
    pub(super) trim_at: Option<Instant>,
}

impl Supervision<'_> {
    /// The supervision loop: start what is due (in the Pod's container order), copy output,
    /// run probes and hooks, reap exits, apply the restart policy, and stop Pods once a stop
    /// signal or request arrived or only their sidecars are left. Returns when every container
    /// is done.
    pub(super) fn supervise(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) -> io::Result<()> {
        loop {
            let signalled = self.stop_sig.load(Ordering::SeqCst) != 0;
            let mut stops_taken = Vec::new();
            if self.requests.swap(false, Ordering::SeqCst) {
                self.take_owner_requests(pods);
                stops_taken = self.take_stop_requests(pods);
                self.take_resize_requests(pods, slots);
            }
            for p in 0..pods.len() {
                let pod = &mut pods[p];
                // The kubelet's activeDeadlineHandler: past the deadline the Pod fails
                // (DeadlineExceeded) and its containers are stopped with its grace period.
                if pod.stop.is_none() && pod.active_deadline.is_some_and(|d| d <= Instant::now()) {
                    self.opts
                        .reporter
                        .notice(&Notice::run(What::DeadlineExceeded {
                            pod: pod.plan.sandbox.name.clone(),
                        }));
                    pod.deadline_exceeded = true;
                    pod.failed = Some(1);
                }
                if pod.stop.is_none()
                    && (signalled || pod.deadline_exceeded || order::finished(&view(slots, p)))
                {
                    let grace = grace(pod.plan.grace_period);
                    pod.stop = Some(Stop {
                        deadline: Instant::now() + grace,
                        grace,
                        killed: false,
                    });
                    pod.dirty = true;
                }
                if pods[p].stop.is_some() {
                    self.stop_pod(pods, p, slots);
                }
            }
            // Start what is due: init containers and sidecars one by one, in order (the next
            // may only start once they run or are done); app containers of a Pod that are due
            // together, at once, after them.
            let now = Instant::now();
            let mut started = false;
            let mut apps: Vec<usize> = Vec::new();
            for i in 0..slots.len() {
                if apps.first().is_some_and(|&a| slots[a].pod != slots[i].pod) {
                    self.start_slots(pods, slots, &std::mem::take(&mut apps));
                }
                if may_start(pods, slots, i).is_some_and(|at| at <= now) {
                    started = true;
                    if slots[i].role == Role::App {
                        apps.push(i);
                    } else {
                        self.start_slots(pods, slots, &[i]);
                    }
                }
            }
            self.start_slots(pods, slots, &apps);
            self.run_probes(pods, slots);
            self.rotate_tokens(pods);
            self.expire_checks(pods, slots);
            self.advance_kills(slots);
            for (p, pod) in pods.iter_mut().enumerate() {
                write_record(self.cfg, pod, p, slots, self.opts, false);
            }
            Self::forget_stop_requests(stops_taken);
            if self.opts.ready.is_some()
                && pods
                    .iter()
                    .enumerate()
                    .all(|(p, pod)| startup_over(pod, p, slots).is_some())
            {
                notify_ready(&mut self.opts.ready, pods, slots);
                started = true;
            }
            // A detached supervisor lives long: right after a (re)start it lets go of the pages
            // the start touched (libcontainer, the spec), and 10 s after other work of the
            // pages its loop touched, so an idle supervisor holds little (see `wait` below).
            let trim = self.opts.detached
                && self.opts.ready.is_none()
                && (started || self.trim_at.is_some_and(|t| t <= Instant::now()));
            if trim {
                self.trim_at = None;
            }
            if slots.iter().all(|s| matches!(s.state, State::Done)) {
                return Ok(());
            }
            // Wait for output, a signal, or the next deadline.
            let timeout = self
                .next_deadline(pods, slots)
                .map(|n| n.saturating_duration_since(Instant::now()));
            let mut ready =
                output::wait(self.wake_r, slots.iter().map(|s| &s.out), timeout, || {
                    if trim {
                        podshim_engine::sys::trim_resident_memory();
                    }
                })?;
            // A stream at EOF is removed from its slot: handle higher indexes first.
            ready.sort_by_key(|(slot, stream)| (*slot, std::cmp::Reverse(*stream)));
            for (slot, stream) in ready {
                slots[slot].out.pump(stream, self.opts.reporter.as_mut());
            }
            output::drain_wake(self.wake_r);
            if self.opts.detached && self.trim_at.is_none() {
                self.trim_at = Some(Instant::now() + Duration::from_secs(10));
            }
            self.reap(pods, slots);
            // A Pod whose pause process died has lost its namespaces: its sandbox is made anew
            // (or, if it will not restart its containers, it stops).
            for p in 0..pods.len() {
                let pod = &mut pods[p];
                let dead = !pod.recreating
                    && pod
                        .sandbox
                        .as_mut()
                        .is_some_and(|sb| matches!(sb.pause.try_wait(), Ok(Some(_)) | Err(_)));
                if dead && pod.failed.is_none() && pod.stop.is_none() && !signalled {
                    self.sandbox_died(pods, slots, p);
                }
                if pods[p].stop.is_some() {
                    // Stopping: no new sandbox.
                    pods[p].recreating = false;
                }
                if pods[p].recreating
                    && !slots
                        .iter()
                        .any(|s| s.pod == p && matches!(s.state, State::Running { .. }))
                {
                    self.recreate_sandbox(pods, slots, p);
                }
            }
        }
    }

    /// Pod `p`'s pause died, as the kubelet handles a sandbox that is not ready
    /// (`computePodActions`): its containers are killed and a new sandbox is made, unless the
    /// Pod would not restart them (`restartPolicy: Never` once a container was started), which
    /// then stops.
    ///
    /// The kill is the kubelet's `killPodWithSyncResult`: every running container at once,
    /// each with its preStop hook, its stop signal and the Pod's grace period before SIGKILL.
    /// The containers still hold their own namespaces (the network one too), so hooks and
    /// signal handlers run; with a shared PID namespace the kernel has already killed them
    /// with pause, its init.
    fn sandbox_died(&mut self, pods: &mut [PodRun], slots: &mut [Slot], p: usize) {
        let started = slots.iter().any(|s| s.pod == p && s.started_once);
        let pod = &mut pods[p];
        pod.dirty = true;
        let name = pod.plan.sandbox.name.clone();
        let grace = super::stopping::grace(pod.plan.grace_period);
        if pod.plan.restart == Policy::Never && started {
            self.opts
                .reporter
                .notice(&Notice::run(What::PauseExited { pod: name }));
            self.fail_pod(pods, slots, p, grace);
            return;
        }
        self.opts
            .reporter
            .notice(&Notice::run(What::SandboxChanged { pod: name }));
        pod.recreating = true;
        pod.sandbox_since = status::time(Utc::now());
        for i in 0..slots.len() {
            let s = &slots[i];
            if s.pod == p && matches!(s.state, State::Running { .. }) && s.kill.is_none() {
                self.begin_kill(pods, slots, i, grace);
            }
        }
    }

    /// Pod `p`'s containers are gone: make its sandbox anew and let them start again, init
    /// containers first (as the kubelet does after a new sandbox); the restart policy already
    /// decided which ones run again (their exits were reaped).
    fn recreate_sandbox(&mut self, pods: &mut [PodRun], slots: &mut [Slot], p: usize) {
        let pod = &mut pods[p];
        pod.dirty = true;
        let name = pod.plan.sandbox.name.clone();
        let Some(sandbox) = pod.sandbox.as_mut() else {
            return;
        };
        match sandbox.renew(self.cfg, &pod.plan.sandbox) {
            Ok(()) => {
                let ip = sandbox.attachment.ip.to_string();
                pod.recreating = false;
                pod.sandbox_since = status::time(Utc::now());
                self.opts
                    .reporter
                    .notice(&Notice::run(What::SandboxRecreated { pod: name, ip }));
                let now = Instant::now();
                for s in slots.iter_mut().filter(|s| s.pod == p) {
                    match s.state {
                        // Init containers run again, in order, before the others start.
                        State::Done if s.role == Role::Init => {
                            s.state = State::Waiting { at: now };
                            s.restarts += 1;
                        }
                        State::Done => {}
                        _ => {}
                    }
                    if !matches!(s.state, State::Done) {
                        s.started_once = false;
                    }
                }
            }
            Err(e) => {
                self.opts.reporter.notice(&Notice::run(What::SandboxFailed {
                    pod: name,
                    message: chain(&e),
                }));
                pods[p].recreating = false;
                self.fail_pod(pods, slots, p, Duration::ZERO);
            }
        }
    }

    /// Pod `p` failed as a whole: stop it, its containers getting `grace` before SIGKILL.
    fn fail_pod(&mut self, pods: &mut [PodRun], slots: &mut [Slot], p: usize, grace: Duration) {
        let pod = &mut pods[p];
        pod.failed = Some(1);
        pod.dirty = true;
        pod.stop = Some(Stop {
            deadline: Instant::now() + grace,
            grace,
            killed: false,
        });
        self.stop_pod(pods, p, slots);
    }

    /// Renews the projected service account tokens that are due (`super::tokens`).
    fn rotate_tokens(&mut self, pods: &mut [PodRun]) {
        let now = Instant::now();
        for pod in pods.iter_mut() {
            if pod.stop.is_some() || pod.recreating || pod.token_due.is_none_or(|d| d > now) {
                continue;
            }
            match super::tokens::rotate(self.cfg, pod) {
                None => pod.token_due = super::tokens::next_due(pod),
                Some(message) => {
                    self.opts.reporter.notice(&Notice::run(What::TokenRotation {
                        pod: pod.plan.sandbox.name.clone(),
                        message,
                    }));
                    pod.token_due = Some(now + Duration::from_secs(10));
                }
            }
        }
    }

    /// The soonest thing the loop must do by itself: a stop deadline, a (re)start, a probe, a
    /// check timing out, a kill step, a token renewal.
    fn next_deadline(&self, pods: &[PodRun], slots: &[Slot]) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        for (p, pod) in pods.iter().enumerate() {
            let running = slots
                .iter()
                .any(|s| s.pod == p && matches!(s.state, State::Running { .. }));
            match &pod.stop {
                Some(stop) if running && !stop.killed => soonest(stop.deadline),
                None => {
                    if let Some(d) = pod.active_deadline {
                        soonest(d);
                    }
                    if let Some(d) = pod.token_due.filter(|_| !pod.recreating) {
                        soonest(d);
                    }
                }
                _ => {}
            }
        }
        for (i, s) in slots.iter().enumerate() {
            if let Some(at) = may_start(pods, slots, i) {
                soonest(at);
            }
            if let Some(at) = s.probes.as_ref().and_then(Probes::next_at) {
                if matches!(s.state, State::Running { .. }) && !s.post_start && s.kill.is_none() {
                    soonest(at);
                }
            }
            if let Some(k) = &s.kill {
                if !k.killed && matches!(s.state, State::Running { .. }) {
                    soonest(k.deadline);
                }
            }
        }
        for c in &self.checks {
            if let Some(at) = c.deadline {
                soonest(at);
            }
        }
        if let Some(at) = self.trim_at {
            soonest(at);
        }
        next
    }
}
