//! `podshim run` in the foreground: start the Pods, copy every container's output to the
//! terminal line by line (prefixed with the container's name), restart containers by the Pod's
//! restart policy, stop everything on SIGINT/SIGTERM, tear down, and compute the exit code.
//!
//! The loop is single-threaded on purpose: libcontainer forks this process to (re)start
//! containers, and each container's init is this process's child.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config::Config;
use crate::plan::PodPlan;
use crate::pod::container::{oom_killed, remove_container, start};
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

struct Stream {
    file: File,
    buf: Vec<u8>,
    to_stderr: bool,
}

struct Slot {
    pod: usize,
    index: usize,
    prefix: String,
    state: State,
    restarts: u32,
    streak: u32,
    streams: Vec<Stream>,
    /// The last exit (sequence number across the run, exit code).
    last_exit: Option<(u64, i32)>,
}

struct PodRun {
    plan: PodPlan,
    sandbox: Option<Sandbox>,
    /// Set when the Pod failed as a whole (its pause process died).
    failed: Option<i32>,
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
        for (i, c) in pod.plan.containers.iter().enumerate() {
            let prefix = if many {
                format!("[{}/{}] ", pod.plan.sandbox.name, c.name)
            } else {
                format!("[{}] ", c.name)
            };
            slots.push(Slot {
                pod: p,
                index: i,
                prefix,
                state: State::Waiting { at: now },
                restarts: 0,
                streak: 0,
                streams: vec![],
                last_exit: None,
            });
        }
    }

    // Whatever happens in the loop (even a panic), the Pods are torn down afterwards.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        supervise(cfg, &mut pods, &mut slots, &stop_sig, &wake_r, opts)
    }));
    for s in slots.iter_mut() {
        flush(s);
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

/// The supervision loop: start what is due, copy output, reap exits, apply the restart policy,
/// and stop everything once a stop signal arrived. Returns when every container is done.
fn supervise(
    cfg: &Config,
    pods: &mut [PodRun],
    slots: &mut [Slot],
    stop_sig: &AtomicUsize,
    wake_r: &UnixStream,
    opts: Options,
) -> io::Result<()> {
    let mut stopping: Option<Instant> = None; // SIGKILL deadline once stopping
    let mut killed = false;
    loop {
        let sig = stop_sig.load(Ordering::SeqCst);
        if sig != 0 && stopping.is_none() {
            stopping = Some(begin_stop(pods, slots));
        }
        if let Some(deadline) = stopping {
            if !killed && Instant::now() >= deadline {
                for s in slots.iter() {
                    if let State::Running { pid, .. } = s.state {
                        let _ = kill(pid, Signal::SIGKILL);
                    }
                }
                killed = true;
            }
        }
        // Start what is due.
        let now = Instant::now();
        for s in slots.iter_mut() {
            if let State::Waiting { at } = s.state {
                if stopping.is_some() {
                    s.state = State::Done;
                } else if at <= now {
                    start_slot(cfg, pods, s, opts.backoff);
                }
            }
        }
        if slots.iter().all(|s| matches!(s.state, State::Done)) {
            return Ok(());
        }
        // Wait for output, a signal, or the next deadline.
        let mut next: Option<Instant> = stopping.filter(|_| !killed);
        for s in slots.iter() {
            if let State::Waiting { at } = s.state {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let timeout = next.map(|n| n.saturating_duration_since(Instant::now()));
        let mut ready = wait(wake_r, slots, timeout)?;
        // A stream at EOF is removed from its slot: handle higher indexes first.
        ready.sort_by_key(|(slot, stream)| (*slot, std::cmp::Reverse(*stream)));
        for (slot, stream) in ready {
            pump(&mut slots[slot], stream);
        }
        drain_wake(wake_r);
        reap(cfg, pods, slots, stopping.is_some(), opts.backoff);
        // A Pod whose pause process died has lost its namespaces: stop it.
        for (p, pod) in pods.iter_mut().enumerate() {
            let dead = pod
                .sandbox
                .as_mut()
                .is_some_and(|sb| matches!(sb.pause.try_wait(), Ok(Some(_)) | Err(_)));
            if dead && stopping.is_none() {
                eprintln!(
                    "podshim: pod {}: the pause process exited; stopping the pod",
                    pod.plan.sandbox.name
                );
                pod.failed.get_or_insert(1);
                for s in slots.iter_mut().filter(|s| s.pod == p) {
                    match s.state {
                        State::Running { pid, .. } => {
                            let _ = kill(pid, Signal::SIGKILL);
                        }
                        State::Waiting { .. } => s.state = State::Done,
                        State::Done => {}
                    }
                }
            }
        }
    }
}

fn start_slot(cfg: &Config, pods: &mut [PodRun], s: &mut Slot, backoff: Backoff) {
    let pod = &mut pods[s.pod];
    let plan = &pod.plan.containers[s.index];
    let sandbox = pod.sandbox.as_mut().expect("live sandbox");
    match start(cfg, sandbox, plan) {
        Ok(started) => {
            s.streams = [(started.stdout, false), (started.stderr, true)]
                .into_iter()
                .map(|(file, to_stderr)| {
                    let _ = fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
                    Stream {
                        file,
                        buf: Vec::new(),
                        to_stderr,
                    }
                })
                .collect();
            s.state = State::Running {
                pid: started.pid,
                started: Instant::now(),
            };
        }
        Err(e) => {
            // Kubernetes reports a container that could not be started as exit code 128
            // (reason StartError) and applies the restart policy to it.
            eprintln!("{}podshim: cannot start container: {}", s.prefix, chain(&e));
            let _ = remove_container(cfg, sandbox, &plan.name);
            after_exit(pod, s, 128, "StartError", Duration::ZERO, false, backoff);
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

/// Decide what follows an exit, by the Pod's restart policy: restart (after the back-off) or done.
/// An exit other than `Completed`, or one followed by a back-off, is reported on stderr with its
/// reason.
fn after_exit(
    pod: &mut PodRun,
    s: &mut Slot,
    code: i32,
    reason: &str,
    ran: Duration,
    stopping: bool,
    backoff: Backoff,
) {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    s.last_exit = Some((SEQ.fetch_add(1, Ordering::SeqCst) as u64, code));
    let report = |then: &str| {
        if reason != "Completed" || !then.is_empty() {
            eprintln!(
                "{}podshim: container exited with code {code} ({reason}){then}",
                s.prefix
            );
        }
    };
    if stopping || !pod.plan.restart.restarts(code) {
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

fn begin_stop(pods: &mut [PodRun], slots: &mut [Slot]) -> Instant {
    let mut grace = Duration::ZERO;
    for s in slots.iter_mut() {
        let plan = &pods[s.pod].plan;
        match s.state {
            State::Running { pid, .. } => {
                let g = plan.grace_period;
                let sig = if g.is_zero() {
                    Signal::SIGKILL
                } else {
                    stop_signal(plan.containers[s.index].stop_signal.as_deref())
                };
                let _ = kill(pid, sig);
                // Never sooner than 2 s after the stop signal (kubelet `minimumGracePeriodInSeconds`).
                if !g.is_zero() {
                    grace = grace.max(g.max(Duration::from_secs(2)));
                }
            }
            State::Waiting { .. } => s.state = State::Done,
            State::Done => {}
        }
    }
    Instant::now() + grace
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

/// poll(2) the wake pipe and every open stream; returns the (slot, stream) pairs that are ready.
fn wait(
    wake: &UnixStream,
    slots: &[Slot],
    timeout: Option<Duration>,
) -> io::Result<Vec<(usize, usize)>> {
    let mut index = Vec::new();
    let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
    for (i, s) in slots.iter().enumerate() {
        for (j, st) in s.streams.iter().enumerate() {
            fds.push(PollFd::new(st.file.as_fd(), PollFlags::POLLIN));
            index.push((i, j));
        }
    }
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    let timeout = PollTimeout::try_from(ms.max(-1)).unwrap_or(PollTimeout::NONE);
    match poll(&mut fds, timeout) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(fds[1..]
        .iter()
        .zip(index)
        .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|(_, i)| i)
        .collect())
}

/// Read what a stream has, print whole lines; at EOF print the rest and close it.
fn pump(s: &mut Slot, j: usize) {
    let mut chunk = [0u8; 65536];
    let mut eof = false;
    {
        let st = &mut s.streams[j];
        loop {
            match st.file.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => st.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
    }
    emit(&s.prefix, &mut s.streams[j], eof);
    if eof {
        s.streams.remove(j);
    }
}

fn emit(prefix: &str, st: &mut Stream, all: bool) {
    let end = if all {
        st.buf.len()
    } else {
        st.buf
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
    };
    if end == 0 {
        return;
    }
    let text: Vec<u8> = st.buf.drain(..end).collect();
    let mut out: Vec<u8> = Vec::new();
    for line in text.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
        if !line.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    let _ = if st.to_stderr {
        io::stderr().write_all(&out)
    } else {
        io::stdout()
            .write_all(&out)
            .and_then(|_| io::stdout().flush())
    };
}

/// Read every stream of a slot to its end (after the container exited), printing everything.
fn flush(s: &mut Slot) {
    while !s.streams.is_empty() {
        let last = s.streams.len() - 1;
        let _ = fcntl(
            s.streams[last].file.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::empty()),
        );
        pump(s, last);
        if s.streams.len() > last {
            let mut st = s.streams.remove(last);
            emit(&s.prefix, &mut st, true);
        }
    }
}

fn drain_wake(wake: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
}

/// Reap exited children; for a container init, print its remaining output, delete it and decide
/// on a restart.
fn reap(cfg: &Config, pods: &mut [PodRun], slots: &mut [Slot], stopping: bool, backoff: Backoff) {
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
        flush(s);
        let pod = &mut pods[s.pod];
        let name = pod.plan.containers[s.index].name.clone();
        let sandbox = pod.sandbox.as_mut().expect("live sandbox");
        // Before the delete, which removes the container's cgroup and its OOM count.
        let reason = exit_reason(code, oom_killed(sandbox, &name));
        if let Err(e) = remove_container(cfg, sandbox, &name) {
            eprintln!("{}podshim: {}", s.prefix, chain(&e));
        }
        after_exit(pod, s, code, reason, ran, stopping, backoff);
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
