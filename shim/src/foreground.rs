//! `podshim run` in the foreground: start the Pods, copy every container's output to the
//! terminal line by line (prefixed with the container's name), restart containers by the Pod's
//! restart policy, stop everything on SIGINT/SIGTERM, tear down, and compute the exit code.
//!
//! The loop is single-threaded on purpose: libcontainer forks this process to (re)start
//! containers, and each container's init is this process's child.

use std::io;
use std::os::unix::net::UnixStream;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

mod output;

use output::Output;

use crate::config::Config;
use crate::plan::PodPlan;
use crate::pod::container::{oom_killed, remove_container, start};
use crate::pod::order::{self, Phase, Role};
use crate::pod::restart::{exit_code, Backoff};
use crate::pod::{chain, Sandbox};

/// How one container slot stands.
#[derive(Debug)]
enum State {
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

struct Slot {
    pod: usize,
    /// The container's index in `PodPlan::ordered`.
    index: usize,
    role: Role,
    out: Output,
    state: State,
    /// Whether it ever started (gates the containers after it until then).
    started_once: bool,
    /// Whether podshim sent the running container its stop signal.
    signalled: bool,
    restarts: u32,
    streak: u32,
    /// The last exit code.
    exit: Option<i32>,
    /// The last exit that counts for podshim's exit code (sequence number across the run, exit
    /// code): every exit but that of a sidecar podshim stopped.
    last_exit: Option<(u64, i32)>,
}

impl Slot {
    fn phase(&self) -> Phase {
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
fn view(slots: &[Slot], p: usize) -> Vec<(Role, Phase)> {
    slots
        .iter()
        .filter(|s| s.pod == p)
        .map(|s| (s.role, s.phase()))
        .collect()
}

struct PodRun {
    plan: PodPlan,
    sandbox: Option<Sandbox>,
    /// Set when the Pod failed as a whole (its pause process died).
    failed: Option<i32>,
    /// Set once the Pod is stopping (a stop signal, or nothing left to run but sidecars).
    stop: Option<Stop>,
}

/// A stopping Pod: containers get their stop signal in order, SIGKILL at the deadline.
struct Stop {
    deadline: Instant,
    killed: bool,
}

/// Options of the foreground run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub backoff: Backoff,
}

/// Run the Pods until they finish (or a signal stops them); returns podshim's exit code.
pub fn run(cfg: &Config, plans: Vec<PodPlan>, opts: Options) -> anyhow::Result<i32> {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let stop_sig = Arc::new(AtomicUsize::new(0));
    let (wake_r, wake_w) = UnixStream::pair()?;
    wake_r.set_nonblocking(true)?;
    wake_w.set_nonblocking(true)?;
    // SIGHUP too: a closed terminal must not leave the Pod behind.
    let stops = [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ];
    for sig in stops {
        signal_hook::flag::register_usize(sig, Arc::clone(&stop_sig), sig as usize)?;
    }
    // A reader of our output that goes away (`podshim run x | head`) must not kill podshim
    // before teardown: a handler (not SIG_IGN, which containers would inherit across exec)
    // turns SIGPIPE into EPIPE errors, which output copying ignores.
    signal_hook::flag::register(
        signal_hook::consts::SIGPIPE,
        Arc::new(AtomicBool::new(false)),
    )?;
    for sig in stops.into_iter().chain([signal_hook::consts::SIGCHLD]) {
        signal_hook::low_level::pipe::register(sig, wake_w.try_clone()?)?;
    }

    let mut pods: Vec<PodRun> = Vec::new();
    for plan in plans {
        if stop_sig.load(Ordering::SeqCst) != 0 {
            break;
        }
        match Sandbox::create(cfg, &plan.sandbox) {
            Ok(sb) => pods.push(PodRun {
                plan,
                sandbox: Some(sb),
                failed: None,
                stop: None,
            }),
            Err(e) => {
                let msg = format!(
                    "pod {}/{}: {}",
                    plan.sandbox.namespace,
                    plan.sandbox.name,
                    chain(&e)
                );
                let problems = teardown_all(&mut pods);
                for p in problems {
                    eprintln!("podshim: teardown: {p}");
                }
                anyhow::bail!(msg);
            }
        }
    }
    let many = pods.len() > 1;
    let now = Instant::now();
    let mut slots: Vec<Slot> = Vec::new();
    for (p, pod) in pods.iter().enumerate() {
        for (i, (role, c)) in pod.plan.ordered().enumerate() {
            let prefix = if many {
                format!("[{}/{}] ", pod.plan.sandbox.name, c.name)
            } else {
                format!("[{}] ", c.name)
            };
            slots.push(Slot {
                pod: p,
                index: i,
                role,
                out: Output::new(prefix),
                state: State::Waiting { at: now },
                started_once: false,
                signalled: false,
                restarts: 0,
                streak: 0,
                exit: None,
                last_exit: None,
            });
        }
    }

    // Whatever happens in the loop (even a panic), the Pods are torn down afterwards.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        supervise(cfg, &mut pods, &mut slots, &stop_sig, &wake_r, opts)
    }));
    for s in slots.iter_mut() {
        s.out.flush();
    }
    let problems = teardown_all(&mut pods);
    for p in &problems {
        eprintln!("podshim: teardown: {p}");
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.into()),
        Err(_) => anyhow::bail!("internal error while running the pods (they were torn down)"),
    }
    let code = result(&pods, &slots);
    if !problems.is_empty() && code == 0 {
        return Ok(1);
    }
    Ok(code)
}

/// The supervision loop: start what is due (in the Pod's container order), copy output, reap
/// exits, apply the restart policy, and stop Pods once a stop signal arrived or only their
/// sidecars are left. Returns when every container is done.
fn supervise(
    cfg: &Config,
    pods: &mut [PodRun],
    slots: &mut [Slot],
    stop_sig: &AtomicUsize,
    wake_r: &UnixStream,
    opts: Options,
) -> io::Result<()> {
    loop {
        let signalled = stop_sig.load(Ordering::SeqCst) != 0;
        for (p, pod) in pods.iter_mut().enumerate() {
            if pod.stop.is_none() && (signalled || order::finished(&view(slots, p))) {
                pod.stop = Some(Stop {
                    deadline: Instant::now() + grace(pod.plan.grace_period),
                    killed: false,
                });
            }
            if pod.stop.is_some() {
                stop_pod(pod, p, slots);
            }
        }
        // Start what is due.
        let now = Instant::now();
        for i in 0..slots.len() {
            if may_start(pods, slots, i).is_some_and(|at| at <= now) {
                start_slot(cfg, pods, &mut slots[i], opts.backoff);
            }
        }
        if slots.iter().all(|s| matches!(s.state, State::Done)) {
            return Ok(());
        }
        // Wait for output, a signal, or the next deadline.
        let mut next: Option<Instant> = None;
        let mut soonest = |at: Instant| next = Some(next.map_or(at, |n: Instant| n.min(at)));
        for (p, pod) in pods.iter().enumerate() {
            let running = slots
                .iter()
                .any(|s| s.pod == p && matches!(s.state, State::Running { .. }));
            match &pod.stop {
                Some(stop) if running && !stop.killed => soonest(stop.deadline),
                _ => {}
            }
        }
        for i in 0..slots.len() {
            if let Some(at) = may_start(pods, slots, i) {
                soonest(at);
            }
        }
        let timeout = next.map(|n| n.saturating_duration_since(Instant::now()));
        let mut ready = output::wait(wake_r, slots.iter().map(|s| &s.out), timeout)?;
        // A stream at EOF is removed from its slot: handle higher indexes first.
        ready.sort_by_key(|(slot, stream)| (*slot, std::cmp::Reverse(*stream)));
        for (slot, stream) in ready {
            slots[slot].out.pump(stream);
        }
        output::drain_wake(wake_r);
        reap(cfg, pods, slots, opts.backoff);
        // A Pod whose pause process died has lost its namespaces: stop it.
        for (p, pod) in pods.iter_mut().enumerate() {
            let dead = pod
                .sandbox
                .as_mut()
                .is_some_and(|sb| matches!(sb.pause.try_wait(), Ok(Some(_)) | Err(_)));
            if dead && pod.failed.is_none() && !signalled {
                eprintln!(
                    "podshim: pod {}: the pause process exited; stopping the pod",
                    pod.plan.sandbox.name
                );
                pod.failed = Some(1);
                let now = Instant::now();
                pod.stop = Some(Stop {
                    deadline: now,
                    killed: false,
                });
                stop_pod(pod, p, slots);
            }
        }
    }
}

/// When slot `i` may (re)start: `None` while it runs, is done, its Pod stops, or a container
/// before it has not completed (init container) or started (sidecar) yet.
fn may_start(pods: &[PodRun], slots: &[Slot], i: usize) -> Option<Instant> {
    let s = &slots[i];
    let State::Waiting { at } = s.state else {
        return None;
    };
    if pods[s.pod].stop.is_some() {
        return None;
    }
    (s.started_once || order::may_start(&view(slots, s.pod), s.index)).then_some(at)
}

/// The time from the stop signal to SIGKILL: the grace period, never under 2 s (kubelet
/// `minimumGracePeriodInSeconds`), except that 0 kills at once.
fn grace(period: Duration) -> Duration {
    if period.is_zero() {
        Duration::ZERO
    } else {
        period.max(Duration::from_secs(2))
    }
}

/// One step of stopping Pod `p`: nothing more starts; running containers get their stop signal
/// in the Pod's stop order (app and init containers, then sidecars in reverse); every one left
/// gets SIGKILL at the deadline.
fn stop_pod(pod: &mut PodRun, p: usize, slots: &mut [Slot]) {
    let Some(stop) = pod.stop.as_mut() else {
        return;
    };
    for s in slots.iter_mut().filter(|s| s.pod == p) {
        if let State::Waiting { .. } = s.state {
            s.state = State::Done;
        }
    }
    if stop.killed {
        return;
    }
    if Instant::now() >= stop.deadline {
        for s in slots.iter_mut().filter(|s| s.pod == p) {
            if let State::Running { pid, .. } = s.state {
                let _ = kill(pid, Signal::SIGKILL);
                s.signalled = true;
            }
        }
        stop.killed = true;
        return;
    }
    let first = slots.iter().position(|s| s.pod == p).unwrap_or(0);
    for i in order::to_signal(&view(slots, p)) {
        let s = &mut slots[first + i];
        if let State::Running { pid, .. } = s.state {
            let sig = if pod.plan.grace_period.is_zero() {
                Signal::SIGKILL
            } else {
                stop_signal(pod.plan.container(s.index).stop_signal.as_deref())
            };
            let _ = kill(pid, sig);
            s.signalled = true;
        }
    }
}

fn start_slot(cfg: &Config, pods: &mut [PodRun], s: &mut Slot, backoff: Backoff) {
    let pod = &mut pods[s.pod];
    let plan = pod.plan.container(s.index);
    let sandbox = pod.sandbox.as_mut().expect("live sandbox");
    match start(cfg, sandbox, plan) {
        Ok(started) => {
            s.out.attach(started.stdout, started.stderr);
            s.state = State::Running {
                pid: started.pid,
                started: Instant::now(),
            };
            s.started_once = true;
            s.signalled = false;
        }
        Err(e) => {
            // Kubernetes reports a container that could not be started as exit code 128
            // (reason StartError) and applies the restart policy to it.
            eprintln!(
                "{}podshim: cannot start container: {}",
                s.out.prefix,
                chain(&e)
            );
            let _ = remove_container(cfg, sandbox, &plan.name);
            after_exit(pod, s, 128, "StartError", Duration::ZERO, backoff);
        }
    }
}

/// The kubelet's reason for a terminated container: `OOMKilled` when the memory cgroup's OOM
/// killer fired in it, else `Completed` (0) or `Error`.
fn exit_reason(code: i32, oom_killed: bool) -> &'static str {
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
fn after_exit(
    pod: &mut PodRun,
    s: &mut Slot,
    code: i32,
    reason: &str,
    ran: Duration,
    backoff: Backoff,
) {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    s.exit = Some(code);
    if !(s.role == Role::Sidecar && s.signalled) {
        s.last_exit = Some((SEQ.fetch_add(1, Ordering::SeqCst) as u64, code));
    }
    let report = |then: &str| {
        if reason != "Completed" || !then.is_empty() {
            eprintln!(
                "{}podshim: container exited with code {code} ({reason}){then}",
                s.out.prefix
            );
        }
    };
    if pod.stop.is_some() || !s.role.restarts(pod.plan.restart, code) {
        report("");
        s.state = State::Done;
        return;
    }
    if ran >= backoff.reset_after {
        s.streak = 0;
    }
    let delay = backoff.delay(s.streak);
    s.streak += 1;
    s.restarts += 1;
    if delay.is_zero() {
        report("");
    } else {
        report(&format!(
            "; restarting in {:.1}s (back-off)",
            delay.as_secs_f64()
        ));
    }
    s.state = State::Waiting {
        at: Instant::now() + delay,
    };
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

/// Reap exited children; for a container init, print its remaining output, delete it and decide
/// on a restart.
fn reap(cfg: &Config, pods: &mut [PodRun], slots: &mut [Slot], backoff: Backoff) {
    loop {
        let status = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(s) => s,
        };
        let Some(pid) = status.pid() else { continue };
        let Some(code) = exit_code(status) else {
            continue;
        };
        let Some(s) = slots
            .iter_mut()
            .find(|s| matches!(s.state, State::Running { pid: p, .. } if p == pid))
        else {
            continue; // pause, or an orphan re-parented to us (we are a subreaper)
        };
        let ran = match s.state {
            State::Running { started, .. } => started.elapsed(),
            _ => Duration::ZERO,
        };
        s.out.flush();
        let pod = &mut pods[s.pod];
        let name = pod.plan.container(s.index).name.clone();
        let sandbox = pod.sandbox.as_mut().expect("live sandbox");
        // Before the delete, which removes the container's cgroup and its OOM count.
        let reason = exit_reason(code, oom_killed(sandbox, &name));
        if let Err(e) = remove_container(cfg, sandbox, &name) {
            eprintln!("{}podshim: {}", s.out.prefix, chain(&e));
        }
        after_exit(pod, s, code, reason, ran, backoff);
    }
}

/// podshim's exit code: 0 when every container's last exit was 0; otherwise the code of the
/// container whose final exit failed first (128+N for a signal); 1 for a Pod that failed as a
/// whole without a failing container.
fn result(pods: &[PodRun], slots: &[Slot]) -> i32 {
    slots
        .iter()
        .filter_map(|s| s.last_exit.filter(|(_, code)| *code != 0))
        .min_by_key(|(seq, _)| *seq)
        .map(|(_, code)| code)
        .or_else(|| pods.iter().find_map(|p| p.failed))
        .unwrap_or(0)
}

fn teardown_all(pods: &mut [PodRun]) -> Vec<String> {
    let mut problems = Vec::new();
    for pod in pods.iter_mut().rev() {
        if let Some(sb) = pod.sandbox.take() {
            problems.extend(
                sb.destroy()
                    .into_iter()
                    .map(|p| format!("pod {}: {p}", pod.plan.sandbox.name)),
            );
        }
    }
    problems
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
