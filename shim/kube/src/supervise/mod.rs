//! The supervision of running Pods, shared by `podshim run` in the foreground and the per-Pod
//! supervisor of `podshim run -d`: start the Pods, copy every container's output into its CRI
//! log (and, in the foreground, to the terminal, each line prefixed with the container's name),
//! restart containers by the Pod's restart policy with the kubelet's back-off, keep each Pod's
//! record (its Kubernetes status) up to date, stop a Pod on request (SIGUSR1 plus a stop file,
//! from `podshim stop`) or everything on SIGINT/SIGTERM/SIGHUP, tear down, and compute the exit
//! code.
//!
//! The loop is single-threaded on purpose: libcontainer forks this process to (re)start
//! containers, and each container's init is this process's child.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

mod checks;
mod output;
mod track;

pub use checks::Runner;
use checks::{Check, Probes, Purpose, Verdict};
use output::Output;
use track::Track;

use crate::logs;
use crate::plan::PodPlan;
use crate::pod::container::{oom_killed, remove_container, start, termination_message};
use crate::pod::order::{self, Phase, Role};
use crate::pod::restart::{exit_code, Backoff};
use crate::pod::{chain, pod_key, Sandbox};
use crate::record::{self, Record, Supervisor};
use crate::status::{self, Terminated};
use podshim_engine::config::Config;

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
    /// What the Pod's status says about this container.
    track: Track,
    /// Counts the container's starts (checks of an earlier run are ignored).
    run: u32,
    /// The probers of the current run.
    probes: Option<Probes>,
    /// Its postStart hook has not finished yet (probes wait for it).
    post_start: bool,
    /// The container is being killed: preStop, stop signal, SIGKILL.
    kill: Option<Kill>,
    /// The image's STOPSIGNAL.
    stop_signal: Option<String>,
}

/// Killing one container as the kubelet does: the preStop hook, then the stop signal (after the
/// hook, or once the grace period is spent), then SIGKILL at the deadline, which comes no
/// sooner than 2 s after the signal.
#[derive(Debug, Clone, Copy)]
struct Kill {
    deadline: Instant,
    immediate: bool,
    hook_done: bool,
    signal_sent: bool,
    killed: bool,
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

/// A Pod to run: its plan and its manifest as a Kubernetes object (for its record).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PodJob {
    pub plan: PodPlan,
    pub object: serde_json::Value,
}

struct PodRun {
    plan: PodPlan,
    object: serde_json::Value,
    sandbox: Option<Sandbox>,
    /// Set when the Pod failed as a whole (its pause process died).
    failed: Option<i32>,
    /// Set once the Pod is stopping (a stop signal, or nothing left to run but sidecars).
    stop: Option<Stop>,
    /// `<log root>/<namespace>_<name>_<uid>`.
    log_dir: PathBuf,
    start_time: String,
    host_ip: String,
    /// The record needs rewriting.
    dirty: bool,
}

/// A stopping Pod: containers get their stop signal in order, SIGKILL at the deadline.
struct Stop {
    deadline: Instant,
    /// The grace period (the Pod's, or `podshim stop --grace-period`).
    grace: Duration,
    killed: bool,
}

/// Options of a run.
#[derive(Debug, Default)]
pub struct Options {
    pub backoff: Backoff,
    /// Copy container output to podshim's stdout/stderr (the foreground).
    pub echo: bool,
    /// `run -d`: the Pod's record stays after it ends (until `podshim rm`).
    pub detached: bool,
    /// Where CRI logs go (`<log root>/<namespace>_<name>_<uid>/<container>/<n>.log`).
    pub log_root: PathBuf,
    /// Told once, with one line per Pod, when every container has started (or one cannot):
    /// `run -d` waits for it before it returns.
    pub ready: Option<File>,
    /// How probe and hook processes are started.
    pub runner: Runner,
}

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

/// Run the Pods until they finish (or a signal stops them); returns podshim's exit code.
pub fn run(cfg: &Config, jobs: Vec<PodJob>, mut opts: Options) -> anyhow::Result<i32> {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let stop_sig = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicBool::new(false));
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
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&requests))?;
    // A reader of our output that goes away (`podshim run x | head`) must not kill podshim
    // before teardown: a handler (not SIG_IGN, which containers would inherit across exec)
    // turns SIGPIPE into EPIPE errors, which output copying ignores.
    signal_hook::flag::register(
        signal_hook::consts::SIGPIPE,
        Arc::new(AtomicBool::new(false)),
    )?;
    let wakers = stops
        .into_iter()
        .chain([signal_hook::consts::SIGCHLD, signal_hook::consts::SIGUSR1]);
    for sig in wakers {
        signal_hook::low_level::pipe::register(sig, wake_w.try_clone()?)?;
    }

    let host_ip = crate::resolve::Node::detect().host_ip;
    let mut pods: Vec<PodRun> = Vec::new();
    for job in jobs {
        if stop_sig.load(Ordering::SeqCst) != 0 {
            break;
        }
        let start_time = status::time(Utc::now());
        let spec = &job.plan.sandbox;
        let log_dir = logs::pod_dir(&opts.log_root, &spec.namespace, &spec.name, &spec.uid);
        let key = pod_key(&spec.namespace, &spec.name);
        let created = match record::entry(cfg, &key) {
            // An ended detached Pod keeps its name until `podshim rm`.
            Some(e) if !e.live => Err(crate::pod::PodError::Engine(
                podshim_engine::Error::PodExists {
                    key,
                    dir: record::path(cfg, &e.key),
                },
            )),
            _ => Sandbox::create(cfg, spec),
        };
        match created {
            Ok(sb) => pods.push(PodRun {
                plan: job.plan,
                object: job.object,
                sandbox: Some(sb),
                failed: None,
                stop: None,
                log_dir,
                start_time,
                host_ip: host_ip.clone(),
                dirty: true,
            }),
            Err(e) => {
                let msg = format!("pod {}/{}: {}", spec.namespace, spec.name, chain(&e));
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
                out: Output::new(prefix, opts.echo),
                state: State::Waiting { at: now },
                started_once: false,
                signalled: false,
                restarts: 0,
                streak: 0,
                exit: None,
                last_exit: None,
                track: Track::new(c, role),
                run: 0,
                probes: None,
                post_start: false,
                kill: None,
                stop_signal: c.stop_signal.clone(),
            });
        }
    }

    // Whatever happens in the loop (even a panic), the Pods are torn down afterwards.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sv = Supervision {
            cfg,
            stop_sig: &stop_sig,
            requests: &requests,
            wake_r: &wake_r,
            opts: &mut opts,
            checks: Vec::new(),
            trim_at: None,
        };
        sv.supervise(&mut pods, &mut slots)
    }));
    for s in slots.iter_mut() {
        s.out.flush();
    }
    // Anyone still waiting for readiness learns the outcome now.
    notify_ready(&mut opts.ready, &pods, &slots);
    for (p, pod) in pods.iter_mut().enumerate() {
        pod.dirty = true;
        write_record(cfg, pod, p, &slots, &opts, true);
    }
    tracing::debug!("supervision over, tearing down");
    let problems = teardown_all(&mut pods);
    for p in &problems {
        eprintln!("podshim: teardown: {p}");
    }
    for (p, pod) in pods.iter_mut().enumerate() {
        let key = pod_key(&pod.plan.sandbox.namespace, &pod.plan.sandbox.name);
        if opts.detached {
            // The record outlives the Pod's resources, until `podshim rm`.
            let _ = fs::remove_file(stop_request_path(cfg, &key));
            pod.dirty = true;
            write_record_to(pod, p, &slots, &opts, false, &record::path(cfg, &key));
        } else if let Err(e) = record::remove(cfg, &key) {
            eprintln!("podshim: {}", chain(&e));
        }
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

/// The Pod's status now, as the kubelet would report it.
fn pod_status(pod: &PodRun, p: usize, slots: &[Slot]) -> status::PodStatus {
    let mine: Vec<&Slot> = slots.iter().filter(|s| s.pod == p).collect();
    let init: Vec<(Role, status::ContainerStatus)> = mine
        .iter()
        .filter(|s| s.role != Role::App)
        .map(|s| (s.role, slot_status(s)))
        .collect();
    let apps: Vec<status::ContainerStatus> = mine
        .iter()
        .filter(|s| s.role == Role::App)
        .map(slot_status)
        .collect();
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
    let conditions = status::conditions(&phase, &init_refs, &app_refs, &pod.start_time);
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
        ..Default::default()
    }
}

/// A container's status: started once its postStart hook finished and its startup probe
/// succeeded; ready once also its readiness probe says so (and it is not being killed).
fn slot_status(s: &&Slot) -> status::ContainerStatus {
    let running = matches!(s.state, State::Running { .. });
    let probes = s.probes.as_ref();
    let started = running && !s.post_start && probes.is_none_or(|p| p.started);
    let ready = started && s.kill.is_none() && probes.is_none_or(|p| p.ready);
    s.track.status(s.phase(), s.restarts, ready, started)
}

fn write_record(
    cfg: &Config,
    pod: &mut PodRun,
    p: usize,
    slots: &[Slot],
    opts: &Options,
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

fn write_record_to(
    pod: &mut PodRun,
    p: usize,
    slots: &[Slot],
    opts: &Options,
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
        eprintln!("podshim: {}", chain(&e));
    }
}

/// Whether the start of Pod `p` is over: every container started at least once, or the Pod is
/// stopping, or a container waits in back-off (it failed): `Some(problem)` in the last case.
fn startup_over(pod: &PodRun, p: usize, slots: &[Slot]) -> Option<Result<(), String>> {
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
fn notify_ready(ready: &mut Option<File>, pods: &[PodRun], slots: &[Slot]) {
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

struct Supervision<'a> {
    cfg: &'a Config,
    stop_sig: &'a AtomicUsize,
    requests: &'a AtomicBool,
    wake_r: &'a UnixStream,
    opts: &'a mut Options,
    /// Probe and hook processes (and sleep hooks) in flight.
    checks: Vec<Check>,
    /// When to trim the resident memory next (10 s after the loop last did some work).
    trim_at: Option<Instant>,
}

impl Supervision<'_> {
    /// The supervision loop: start what is due (in the Pod's container order), copy output,
    /// run probes and hooks, reap exits, apply the restart policy, and stop Pods once a stop
    /// signal or request arrived or only their sidecars are left. Returns when every container
    /// is done.
    fn supervise(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) -> io::Result<()> {
        loop {
            let signalled = self.stop_sig.load(Ordering::SeqCst) != 0;
            if self.requests.swap(false, Ordering::SeqCst) {
                self.take_stop_requests(pods);
            }
            for p in 0..pods.len() {
                let pod = &mut pods[p];
                if pod.stop.is_none() && (signalled || order::finished(&view(slots, p))) {
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
            // Start what is due.
            let now = Instant::now();
            let mut started = false;
            for i in 0..slots.len() {
                if may_start(pods, slots, i).is_some_and(|at| at <= now) {
                    self.start_slot(pods, slots, i);
                    started = true;
                }
            }
            self.run_probes(pods, slots);
            self.expire_checks(pods, slots);
            self.advance_kills(slots);
            for (p, pod) in pods.iter_mut().enumerate() {
                write_record(self.cfg, pod, p, slots, self.opts, false);
            }
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
                slots[slot].out.pump(stream);
            }
            output::drain_wake(self.wake_r);
            if self.opts.detached && self.trim_at.is_none() {
                self.trim_at = Some(Instant::now() + Duration::from_secs(10));
            }
            self.reap(pods, slots);
            // A Pod whose pause process died has lost its namespaces: stop it.
            for p in 0..pods.len() {
                let pod = &mut pods[p];
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
                    pod.dirty = true;
                    pod.stop = Some(Stop {
                        deadline: Instant::now(),
                        grace: Duration::ZERO,
                        killed: false,
                    });
                    self.stop_pod(pods, p, slots);
                }
            }
        }
    }

    /// The soonest thing the loop must do by itself: a stop deadline, a (re)start, a probe, a
    /// check timing out, a kill step.
    fn next_deadline(&self, pods: &[PodRun], slots: &[Slot]) -> Option<Instant> {
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

    /// `podshim stop` left a request file in the Pod's directory: stop that Pod, with the
    /// requested grace period.
    fn take_stop_requests(&self, pods: &mut [PodRun]) {
        for pod in pods.iter_mut() {
            let spec = &pod.plan.sandbox;
            let path = stop_request_path(self.cfg, &pod_key(&spec.namespace, &spec.name));
            let Ok(data) = fs::read(&path) else { continue };
            let _ = fs::remove_file(&path);
            let req: StopRequest = serde_json::from_slice(&data).unwrap_or_default();
            let grace = match req.grace_period_seconds {
                Some(s) => self::grace(Duration::from_secs(s)),
                None => self::grace(pod.plan.grace_period),
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
        }
    }

    /// One step of stopping Pod `p`: nothing more starts; running containers are killed (preStop,
    /// then the stop signal) in the Pod's stop order (app and init containers, then sidecars in
    /// reverse); every one left gets SIGKILL at the Pod's deadline.
    fn stop_pod(&mut self, pods: &mut [PodRun], p: usize, slots: &mut [Slot]) {
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
    fn begin_kill(&mut self, pods: &mut [PodRun], slots: &mut [Slot], i: usize, grace: Duration) {
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
    fn advance_kills(&mut self, slots: &mut [Slot]) {
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

    /// Start a probe or hook for slot `i`; false when it could not start (a failed check).
    fn start_check(
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
                eprintln!("{}podshim: cannot run a check: {e}", s.out.prefix);
                false
            }
        }
    }

    /// Start the probes that are due.
    fn run_probes(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
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
    fn expire_checks(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
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
    fn check_done(
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
                    Verdict::Kill { why, grace } => {
                        eprintln!("{}podshim: {why}", slots[i].out.prefix);
                        if slots[i].kill.is_none() {
                            self.begin_kill(
                                pods,
                                slots,
                                i,
                                self::grace(grace.unwrap_or(pod_grace)),
                            );
                        }
                    }
                }
            }
            Purpose::PostStart => {
                slots[i].post_start = false;
                pods[slots[i].pod].dirty = true;
                if !ok {
                    eprintln!(
                        "{}podshim: the postStart hook failed (FailedPostStartHook); killing the container",
                        slots[i].out.prefix
                    );
                    slots[i].track.hook_failed("PostStartHookError");
                    if slots[i].kill.is_none() {
                        self.begin_kill(pods, slots, i, self::grace(pod_grace));
                    }
                }
            }
            Purpose::PreStop => {
                if !ok {
                    eprintln!("{}podshim: the preStop hook failed", slots[i].out.prefix);
                }
                if let Some(k) = slots[i].kill.as_mut() {
                    k.hook_done = true;
                }
                self.advance_kills(slots);
            }
        }
    }

    fn start_slot(&mut self, pods: &mut [PodRun], slots: &mut [Slot], i: usize) {
        let s = &mut slots[i];
        let pod = &mut pods[s.pod];
        pod.dirty = true;
        let plan = pod.plan.container(s.index).clone();
        let sandbox = pod.sandbox.as_mut().expect("live sandbox");
        match start(self.cfg, sandbox, &plan) {
            Ok(started) => {
                let path = logs::file(&pod.log_dir, &plan.name, s.restarts);
                let log = match logs::Writer::create(&path) {
                    Ok(w) => Some(w),
                    Err(e) => {
                        eprintln!(
                            "{}podshim: cannot create the log {}: {e}",
                            s.out.prefix,
                            path.display()
                        );
                        None
                    }
                };
                s.out.attach(started.stdout, started.stderr, log);
                let now = Instant::now();
                s.state = State::Running {
                    pid: started.pid,
                    started: now,
                };
                s.track.started(&started.id);
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
                eprintln!("{}podshim: cannot start container: {msg}", s.out.prefix);
                let _ = remove_container(self.cfg, sandbox, &plan.name);
                s.track.start_failed(&msg);
                after_exit(pod, s, 128, "StartError", Duration::ZERO, self.opts.backoff);
            }
        }
    }

    /// Reap exited children: a check's result, or a container's exit (write its remaining
    /// output, read its termination message, delete it and decide on a restart).
    fn reap(&mut self, pods: &mut [PodRun], slots: &mut [Slot]) {
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
            s.out.flush();
            let pod = &mut pods[s.pod];
            pod.dirty = true;
            let plan = pod.plan.container(s.index).clone();
            let sandbox = pod.sandbox.as_mut().expect("live sandbox");
            // Before the delete, which removes the container's cgroup and its OOM count.
            let reason = exit_reason(code, oom_killed(sandbox, &plan.name));
            let mut message = termination_message(sandbox, &plan.name);
            if message.is_none() && plan.termination_message_fallback && code != 0 {
                message = log_tail(&logs::file(&pod.log_dir, &plan.name, s.restarts));
            }
            s.track.exited(Terminated {
                exit_code: code,
                signal,
                reason: reason.to_string(),
                message,
                ..Default::default()
            });
            after_exit(pod, s, code, reason, ran, self.opts.backoff);
            // After the last exit of the run, the container goes in the teardown that follows,
            // alongside the Pod's network (the slow part) rather than before it.
            if slots.iter().all(|s| matches!(s.state, State::Done)) {
                continue;
            }
            let (s, t) = (&slots[i], Instant::now());
            let sandbox = pods[s.pod].sandbox.as_mut().expect("live sandbox");
            if let Err(e) = remove_container(self.cfg, sandbox, &plan.name) {
                eprintln!("{}podshim: {}", s.out.prefix, chain(&e));
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
        s.track.backing_off(delay);
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
