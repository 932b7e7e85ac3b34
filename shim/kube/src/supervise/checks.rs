//! Probes and hooks in the supervision loop: the kubelet's prober workers (startup gates
//! liveness and readiness; thresholds count consecutive results; a failed liveness or startup
//! probe kills the container) and the hook runs, each check a child process of the supervisor
//! reaped by the loop like the containers.

use std::ffi::OsString;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::probe::{Action, Checks, ProbePlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    Probe(Kind),
    PostStart,
    PreStop,
}

/// A check running as a child process.
#[derive(Debug, Clone)]
pub(super) struct Check {
    /// `None` for a sleep hook, which only waits for its deadline.
    pub pid: Option<Pid>,
    pub slot: usize,
    /// The container run it belongs to (results for an earlier run are dropped).
    pub run: u32,
    pub purpose: Purpose,
    /// Killed (and counted as a failure) at this instant.
    pub deadline: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Prober {
    plan: ProbePlan,
    next: Instant,
    busy: bool,
    successes: u32,
    failures: u32,
}

impl Prober {
    fn new(plan: &ProbePlan, started: Instant) -> Self {
        Prober {
            plan: plan.clone(),
            next: started + plan.initial_delay,
            busy: false,
            successes: 0,
            failures: 0,
        }
    }
}

/// What a probe result asks the loop to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Nothing,
    /// Readiness or the started state changed: the status must be rewritten.
    Changed,
    /// Kill the container (failed liveness or startup probe), with this grace period.
    Kill {
        why: String,
        grace: Option<Duration>,
    },
}

/// The probers of one container run.
#[derive(Debug, Clone)]
pub(super) struct Probes {
    startup: Option<Prober>,
    liveness: Option<Prober>,
    readiness: Option<Prober>,
    /// The startup probe succeeded (or there is none).
    pub started: bool,
    /// The readiness probe says ready (or there is none).
    pub ready: bool,
}

impl Probes {
    pub fn new(checks: &Checks, started: Instant) -> Self {
        let p = |plan: &Option<ProbePlan>| plan.as_ref().map(|pl| Prober::new(pl, started));
        Probes {
            startup: p(&checks.startup),
            liveness: p(&checks.liveness),
            readiness: p(&checks.readiness),
            started: checks.startup.is_none(),
            ready: checks.readiness.is_none(),
        }
    }

    fn get(&mut self, kind: Kind) -> Option<&mut Prober> {
        match kind {
            Kind::Startup => self.startup.as_mut(),
            Kind::Liveness => self.liveness.as_mut(),
            Kind::Readiness => self.readiness.as_mut(),
        }
    }

    /// The probes to run now (at most one of each kind at a time); liveness and readiness wait
    /// for the startup probe.
    pub fn due(&mut self, now: Instant) -> Vec<(Kind, Action, Duration)> {
        let started = self.started;
        let mut out = Vec::new();
        for kind in [Kind::Startup, Kind::Liveness, Kind::Readiness] {
            if kind != Kind::Startup && !started {
                continue;
            }
            if kind == Kind::Startup && started {
                continue;
            }
            if let Some(p) = self.get(kind) {
                if !p.busy && p.next <= now {
                    p.busy = true;
                    out.push((kind, p.plan.action.clone(), p.plan.timeout));
                }
            }
        }
        out
    }

    /// When the next probe is due.
    pub fn next_at(&self) -> Option<Instant> {
        [&self.startup, &self.liveness, &self.readiness]
            .into_iter()
            .flatten()
            .filter(|p| !p.busy)
            .map(|p| p.next)
            .min()
    }

    /// Count a result as the kubelet's worker does.
    pub fn result(&mut self, kind: Kind, ok: bool, now: Instant) -> Verdict {
        let Some(p) = self.get(kind) else {
            return Verdict::Nothing;
        };
        p.busy = false;
        p.next = now + p.plan.period;
        if ok {
            p.successes += 1;
            p.failures = 0;
        } else {
            p.failures += 1;
            p.successes = 0;
        }
        let (successes, failures) = (p.successes, p.failures);
        let (st, ft) = (p.plan.success_threshold, p.plan.failure_threshold);
        let grace = p.plan.termination_grace;
        match kind {
            Kind::Startup if ok && !self.started => {
                self.started = true;
                Verdict::Changed
            }
            Kind::Startup | Kind::Liveness if !ok && failures >= ft => {
                if let Some(p) = self.get(kind) {
                    p.failures = 0;
                }
                Verdict::Kill {
                    why: format!(
                        "Container failed {} probe {failures} times, will be restarted",
                        kind.name()
                    ),
                    grace,
                }
            }
            Kind::Readiness if ok && successes >= st && !self.ready => {
                self.ready = true;
                Verdict::Changed
            }
            Kind::Readiness if !ok && failures >= ft && self.ready => {
                self.ready = false;
                Verdict::Changed
            }
            _ => Verdict::Nothing,
        }
    }
}

/// How the supervisor starts check processes: podshim itself with the same global options.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    pub self_args: Vec<OsString>,
}

impl Runner {
    /// Start a check of `action` for container `container` of Pod `pod` (`namespace/name`);
    /// `None` for a `sleep` (no process: the caller waits).
    pub fn spawn(
        &self,
        action: &Action,
        pod: &str,
        container: &str,
        pod_ip: IpAddr,
        timeout: Duration,
    ) -> std::io::Result<Option<Pid>> {
        let mut cmd = Command::new("/proc/self/exe");
        cmd.args(&self.self_args);
        match action {
            Action::Sleep { .. } => return Ok(None),
            Action::Exec { command } => {
                cmd.args(["exec", "-c", container, pod, "--"]).args(command);
            }
            network => {
                let json = serde_json::to_string(network).unwrap_or_default();
                cmd.args(["probe", "--pod-ip"])
                    .arg(pod_ip.to_string())
                    .arg("--timeout-ms")
                    .arg(timeout.as_millis().to_string())
                    .arg(json);
            }
        }
        // Its own process group. A Ctrl-C on the terminal of a foreground `podshim run`
        // (SIGINT to the foreground group) stops the Pod through this supervisor, which runs
        // preStop hooks and ends checks itself; reaching a check directly, it would kill a
        // preStop hook the stop is waiting for, or fail a probe, and an exec check (`podshim
        // exec`, which passes the signals it gets on to its command) would forward it into
        // the container.
        podshim_cni::own_process_group(&mut cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        // The loop reaps it with waitpid(-1), like every child.
        Ok(Some(Pid::from_raw(child.id() as i32)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(st: u32, ft: u32) -> ProbePlan {
        ProbePlan {
            action: Action::TcpSocket {
                host: None,
                port: 80,
            },
            initial_delay: Duration::from_secs(5),
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: st,
            failure_threshold: ft,
            termination_grace: None,
        }
    }

    #[test]
    fn startup_gates_and_thresholds_count() {
        let t0 = Instant::now();
        let checks = Checks {
            startup: Some(plan(1, 2)),
            liveness: Some(plan(1, 3)),
            readiness: Some(plan(2, 1)),
            ..Default::default()
        };
        let mut p = Probes::new(&checks, t0);
        assert!(!p.started && !p.ready);
        // Nothing before the initial delay; then only the startup probe.
        assert!(p.due(t0).is_empty());
        let t1 = t0 + Duration::from_secs(5);
        let due: Vec<Kind> = p.due(t1).into_iter().map(|d| d.0).collect();
        assert_eq!(due, [Kind::Startup]);
        assert!(p.due(t1).is_empty(), "one probe of a kind at a time");
        assert_eq!(p.result(Kind::Startup, true, t1), Verdict::Changed);
        assert!(p.started);
        let due: Vec<Kind> = p.due(t1).into_iter().map(|d| d.0).collect();
        assert_eq!(due, [Kind::Liveness, Kind::Readiness]);
        // Readiness needs two successes in a row.
        assert_eq!(p.result(Kind::Readiness, true, t1), Verdict::Nothing);
        assert_eq!(p.result(Kind::Readiness, true, t1), Verdict::Changed);
        assert!(p.ready);
        assert_eq!(p.result(Kind::Readiness, false, t1), Verdict::Changed);
        assert!(!p.ready);
        // Liveness kills after three failures in a row; a success resets the count.
        assert_eq!(p.result(Kind::Liveness, false, t1), Verdict::Nothing);
        assert_eq!(p.result(Kind::Liveness, false, t1), Verdict::Nothing);
        assert_eq!(p.result(Kind::Liveness, true, t1), Verdict::Nothing);
        assert_eq!(p.result(Kind::Liveness, false, t1), Verdict::Nothing);
        assert_eq!(p.result(Kind::Liveness, false, t1), Verdict::Nothing);
        assert!(matches!(
            p.result(Kind::Liveness, false, t1),
            Verdict::Kill { .. }
        ));
        assert_eq!(p.next_at(), Some(t1 + Duration::from_secs(10)));
    }
}
