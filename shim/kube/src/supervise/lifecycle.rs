//! Containers starting and exiting: create and start a container through the engine, attach its
//! output to its CRI log, start its postStart hook; reap its exit, read its termination message
//! and OOM count, delete it, and apply the restart policy with the kubelet's back-off.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::checks::{Probes, Purpose};
use super::notice::{Notice, What};
use super::slot::{PodRun, Slot, State};
use super::Supervision;
use crate::logs;
use crate::pod::chain;
use crate::pod::container::{
    exec_failure, oom_killed, remove_container, start_all, termination_message, ContainerPlan,
    Started,
};
use crate::pod::order::Role;
use crate::pod::restart::{exit_code, Backoff};
use crate::pod::PodError;
use crate::status::Terminated;

impl Supervision<'_> {
    /// Start the due containers `due` (slots of one Pod whose order does not matter) at once.
    pub(super) fn start_slots(&mut self, pods: &mut [PodRun], slots: &mut [Slot], due: &[usize]) {
        let Some(&first) = due.first() else { return };
        let pod = &mut pods[slots[first].pod];
        let plans: Vec<_> = due
            .iter()
            .map(|&i| pod.plan.container(slots[i].index).clone())
            .collect();
        let sandbox = pod.sandbox.as_mut().expect("live sandbox");
        let results = start_all(self.cfg, sandbox, &plans);
        for ((&i, plan), result) in due.iter().zip(plans).zip(results) {
            self.started(pods, slots, i, plan, result);
        }
    }

    /// What follows a container's start, or its failure to start.
    fn started(
        &mut self,
        pods: &mut [PodRun],
        slots: &mut [Slot],
        i: usize,
        plan: ContainerPlan,
        result: Result<Started, PodError>,
    ) {
        let s = &mut slots[i];
        let pod = &mut pods[s.pod];
        pod.dirty = true;
        let sandbox = pod.sandbox.as_mut().expect("live sandbox");
        match result {
            Ok(started) => {
                let path = logs::file(&pod.log_dir, &plan.name, s.restarts);
                let log = match logs::Writer::create(&path) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        self.opts.reporter.notice(&Notice::container(
                            &s.out.label,
                            What::LogCreate {
                                path: path.clone(),
                                message: e.to_string(),
                            },
                        ));
                        None
                    }
                };
                s.out.follow(started.stdout, started.stderr, log);
                // Every run takes attaches (its output); input only with `stdin: true`.
                let path = super::attach::socket_path(&sandbox.dir, &plan.name);
                let (w, tty) = (started.stdin, started.tty);
                s.out.attach =
                    match super::attach::Attach::open(path.clone(), w, tty, plan.stdin_once) {
                        Ok(attach) => Some(attach),
                        Err(e) => {
                            self.opts.reporter.notice(&Notice::container(
                                &s.out.label,
                                What::StartFailed {
                                    message: format!("cannot listen for attach on {path:?}: {e}"),
                                },
                            ));
                            None
                        }
                    };
                let now = Instant::now();
                s.state = State::Running {
                    pid: started.pid,
                    started: now,
                };
                s.track.started(&started.id, &started.user);
                s.started_once = true;
                s.signalled = false;
                s.run += 1;
                s.kill = None;
                s.probes = Some(Probes::new(&plan.checks, now));
                s.post_start = false;
                if let Some(action) = plan.checks.post_start.clone() {
                    let far = now + Duration::from_secs(365 * 86400);
                    let s = &slots[i];
                    let pod = &pods[s.pod];
                    let running = self.start_check(pod, s, i, &action, Purpose::PostStart, far);
                    slots[i].post_start = running;
                    if !running {
                        self.check_done(pods, slots, i, Purpose::PostStart, false);
                    }
                }
            }
            Err(e) => {
                // Kubernetes reports a container that could not be started as exit code 128
                // (reason StartError) and applies the restart policy to it.
                let msg = chain(&e);
                self.opts.reporter.notice(&Notice::container(
                    &s.out.label,
                    What::StartFailed {
                        message: msg.clone(),
                    },
                ));
                let _ = remove_container(self.cfg, sandbox, &plan.name);
                s.track.start_failed(&msg);
                if let Some(n) =
                    after_exit(pod, s, 128, "StartError", Duration::ZERO, self.opts.backoff)
                {
                    self.opts.reporter.notice(&n);
                }
            }
        }
    }

    /// Reap exited children: a check's result, or a container's exit (write its remaining
    /// output, read its termination message, delete it and decide on a restart).
    pub(super) fn reap(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
        loop {
            let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(s) => s,
            };
            let Some(pid) = status.pid() else { continue };
            let Some(code) = exit_code(status) else {
                continue;
            };
            if let Some(n) = self.checks.iter().position(|c| c.pid == Some(pid)) {
                let c = self.checks.remove(n);
                if slots[c.slot].run == c.run {
                    self.check_done(pods, slots, c.slot, c.purpose, code == 0);
                }
                continue;
            }
            let signal = match status {
                WaitStatus::Signaled(_, sig, _) => Some(sig as i32),
                _ => None,
            };
            let Some(i) = slots
                .iter()
                .position(|s| matches!(s.state, State::Running { pid: p, .. } if p == pid))
            else {
                continue; // pause, or an orphan re-parented to us (we are a subreaper)
            };
            // Its checks end with it.
            for c in self.checks.iter().filter(|c| c.slot == i) {
                if let Some(pid) = c.pid {
                    let _ = kill(pid, Signal::SIGKILL);
                }
            }
            self.checks.retain(|c| c.slot != i || c.pid.is_some());

            let s = &mut slots[i];
            s.kill = None;
            s.post_start = false;
            s.probes = None;
            let ran = match s.state {
                State::Running { started, .. } => started.elapsed(),
                _ => Duration::ZERO,
            };
            s.out.flush(self.opts.reporter.as_mut());
            let pod = &mut pods[s.pod];
            pod.dirty = true;
            let plan = pod.plan.container(s.index).clone();
            let sandbox = pod.sandbox.as_mut().expect("live sandbox");
            // Before the delete, which removes the container's cgroup and its OOM count.
            let mut reason = exit_reason(code, oom_killed(sandbox, &plan.name));
            let mut message = termination_message(sandbox, &plan.name);
            if message.is_none() && plan.termination_message_fallback && code != 0 {
                message = log_tail(&logs::file(&pod.log_dir, &plan.name, s.restarts));
            }
            let mut code = code;
            // execve failed after start (its init exited 255): a start failure, as the kubelet
            // reports runc's, with runc's words.
            if let Some(why) = exec_failure(sandbox, &plan.name) {
                (code, reason, message) = (128, "StartError", Some(why));
            }
            // Its attaches end with its exit code (`podshim attach` exits with it).
            s.out.end_attach(Some(code));
            s.track.exited(Terminated {
                exit_code: code,
                signal,
                reason: reason.to_string(),
                message,
                ..Default::default()
            });
            if let Some(n) = after_exit(pod, s, code, reason, ran, self.opts.backoff) {
                self.opts.reporter.notice(&n);
            }
            // After the last exit of the run, the container goes in the teardown that follows,
            // alongside the Pod's network (the slow part) rather than before it.
            if slots.iter().all(|s| matches!(s.state, State::Done)) {
                continue;
            }
            let (s, t) = (&slots[i], Instant::now());
            let sandbox = pods[s.pod].sandbox.as_mut().expect("live sandbox");
            if let Err(e) = remove_container(self.cfg, sandbox, &plan.name) {
                self.opts.reporter.notice(&Notice::container(
                    &s.out.label,
                    What::DeleteFailed { message: chain(&e) },
                ));
            }
            tracing::debug!(container = %plan.name, elapsed_us = t.elapsed().as_micros() as u64, "deleted");
        }
    }
}

/// `FallbackToLogsOnError`: the end of the container's log, at most 80 lines and 2048 bytes
/// (the kubelet's limits).
fn log_tail(path: &std::path::Path) -> Option<String> {
    let lines = logs::read(path).ok()?;
    let start = lines.len().saturating_sub(80);
    let mut text = String::new();
    for l in &lines[start..] {
        text.push_str(&String::from_utf8_lossy(&l.text));
        text.push('\n');
    }
    if text.len() > 2048 {
        let mut cut = text.len() - 2048;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = text[cut..].to_string();
    }
    (!text.is_empty()).then_some(text)
}

/// The kubelet's reason for a terminated container: `OOMKilled` when the memory cgroup's OOM
/// killer fired in it, else `Completed` (0) or `Error`.
pub(super) fn exit_reason(code: i32, oom_killed: bool) -> &'static str {
    match (oom_killed, code) {
        (true, _) => "OOMKilled",
        (false, 0) => "Completed",
        (false, _) => "Error",
    }
}

/// Decide what follows an exit, by the container's role and the Pod's restart policy: restart
/// (after the back-off) or done. An exit other than `Completed`, or one followed by a back-off,
/// is reported on stderr with its reason. A sidecar podshim stopped does not count for the exit
/// code.
pub(super) fn after_exit(
    pod: &mut PodRun,
    s: &mut Slot,
    code: i32,
    reason: &str,
    ran: Duration,
    backoff: Backoff,
) -> Option<Notice> {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    s.exit = Some(code);
    if !(s.role == Role::Sidecar && s.signalled) {
        s.last_exit = Some((SEQ.fetch_add(1, Ordering::SeqCst) as u64, code));
    }
    let report = |restart_in: Option<Duration>| {
        (reason != "Completed" || restart_in.is_some()).then(|| {
            Notice::container(
                &s.out.label,
                What::Exited {
                    code,
                    reason: reason.to_string(),
                    restart_in,
                },
            )
        })
    };
    // A resize that restarts the container (the kubelet's restart for a RestartContainer
    // policy): again at once, counted as a restart.
    if pod.stop.is_none() && std::mem::take(&mut s.resize_restart) {
        s.restarts += 1;
        s.state = State::Waiting { at: Instant::now() };
        return None;
    }
    if pod.stop.is_some() || !s.role.restarts(pod.plan.restart, code) {
        let notice = report(None);
        s.state = State::Done;
        return notice;
    }
    if ran >= backoff.reset_after {
        s.streak = 0;
    }
    let delay = backoff.delay(s.streak);
    s.streak += 1;
    s.restarts += 1;
    let notice = if delay.is_zero() {
        report(None)
    } else {
        s.track.backing_off(delay);
        report(Some(delay))
    };
    s.state = State::Waiting {
        at: Instant::now() + delay,
    };
    notice
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reasons_are_the_kubelets() {
        assert_eq!(exit_reason(0, false), "Completed");
        assert_eq!(exit_reason(1, false), "Error");
        assert_eq!(exit_reason(137, false), "Error");
        assert_eq!(exit_reason(137, true), "OOMKilled");
        // A child killed by the OOM killer while the init exits 0 still reports it.
        assert_eq!(exit_reason(0, true), "OOMKilled");
    }
}
