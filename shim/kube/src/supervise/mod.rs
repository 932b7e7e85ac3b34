//! The supervision of running Pods, shared by `podshim run` in the foreground and the per-Pod
//! supervisor of `podshim run -d`: a loop over engine calls with the kubelet's policy. It starts
//! the Pods' containers in order, copies their output into CRI logs, restarts them by the
//! restart policy with the kubelet's back-off, runs probes and hooks, keeps each Pod's record
//! (its Kubernetes status) up to date, stops a Pod on request or everything on a stop signal,
//! tears down, and computes the exit code. It prints nothing: what the user sees goes through the
//! front-end's [`Reporter`].
//!
//! - `slot`: the state of each container and Pod, and what follows from it;
//! - `supervision`: the loop; `lifecycle`: starts and exits; `stopping`: stop requests, kills;
//!   `probing`: probes and hooks; `report`: statuses and records; `signals`: what wakes the loop;
//! - `checks`: the probers' timing; `output`: container output; `track`: container statuses.

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use podshim_engine::config::Config;

pub mod attach;
mod checks;
mod lifecycle;
mod notice;
mod output;
mod owners;
mod probing;
mod report;
mod resizing;
mod signals;
mod slot;
mod stopping;
mod supervision;
mod tokens;
pub use tokens::TEST_REFRESH_ENV as TEST_TOKEN_REFRESH_ENV;
mod track;

pub use attach::socket_path as attach_socket;
pub use checks::Runner;
pub use notice::{Notice, Reporter, Silent, What};
pub use owners::{owners_request_path, set_owner_references};
pub use stopping::{stop_request_path, stop_signal, StopRequest};

use output::Output;
use report::{notify_ready, write_record, write_record_to};
use signals::Signals;
use slot::{result, PodRun, Slot, State};
use supervision::Supervision;
use track::Track;

use crate::logs;
use crate::plan::PodPlan;
use crate::pod::restart::Backoff;
use crate::pod::{chain, pod_key, PodError, Sandbox};
use crate::record;
use crate::status;

/// A Pod to run: its plan and its manifest as a Kubernetes object (for its record).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PodJob {
    pub plan: PodPlan,
    pub object: serde_json::Value,
}

/// What a detached supervisor (`podshim supervise`) reads on its stdin, from `podshim run -d`
/// and from the controllers alike: the Pod to run and the restart back-off scale. Borrowed when
/// written (a controller keeps its job), owned when read.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SupervisorInput<'a> {
    pub job: std::borrow::Cow<'a, PodJob>,
    pub backoff_scale: f64,
}

/// Options of a run.
pub struct Options {
    pub backoff: Backoff,
    /// Where container output and notices go (the front-end decides what is shown).
    pub reporter: Box<dyn Reporter>,
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

/// Why a run could not run (a failure of a container is not one: it is in the exit code).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot handle signals")]
    Signals(#[source] io::Error),
    #[error("pod {pod}")]
    Pod {
        pod: String,
        #[source]
        source: PodError,
    },
    #[error("the supervision loop")]
    Loop(#[source] io::Error),
    #[error("internal error while running the pods (they were torn down)")]
    Panicked,
}

/// Run the Pods until they finish (or a signal stops them); returns podshim's exit code.
pub fn run(cfg: &Config, jobs: Vec<PodJob>, mut opts: Options) -> Result<i32, RunError> {
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let signals = Signals::install().map_err(RunError::Signals)?;

    let host_ip = crate::resolve::Node::detect().host_ip;
    let mut pods: Vec<PodRun> = Vec::new();
    for job in jobs {
        if signals.stopping() {
            break;
        }
        let start_time = status::time(Utc::now());
        let spec = &job.plan.sandbox;
        let log_dir = logs::pod_dir(&opts.log_root, &spec.namespace, &spec.name, &spec.uid);
        let created = check_free(cfg, &spec.namespace, &spec.name)
            .map_err(PodError::Engine)
            .and_then(|()| Sandbox::create(cfg, spec));
        match created {
            Ok(sb) => pods.push(PodRun {
                active_deadline: job.plan.active_deadline.map(|d| Instant::now() + d),
                deadline_exceeded: false,
                token_due: None,
                plan: job.plan,
                object: job.object,
                sandbox: Some(sb),
                failed: None,
                stop: None,
                log_dir,
                sandbox_since: start_time.clone(),
                start_time,
                host_ip: host_ip.clone(),
                dirty: true,
                recreating: false,
            }),
            Err(source) => {
                for problem in teardown_all(&mut pods) {
                    opts.reporter
                        .notice(&Notice::run(What::Teardown { problem }));
                }
                return Err(RunError::Pod {
                    pod: format!("{}/{}", spec.namespace, spec.name),
                    source,
                });
            }
        }
    }
    for pod in pods.iter_mut() {
        pod.token_due = tokens::next_due(pod);
    }
    let many = pods.len() > 1;
    let now = Instant::now();
    let mut slots: Vec<Slot> = Vec::new();
    for (p, pod) in pods.iter().enumerate() {
        for (i, (role, c)) in pod.plan.ordered().enumerate() {
            let label = if many {
                format!("{}/{}", pod.plan.sandbox.name, c.name)
            } else {
                c.name.clone()
            };
            slots.push(Slot {
                pod: p,
                index: i,
                role,
                out: Output::new(label),
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
                resize_restart: false,
            });
        }
    }

    // Whatever happens in the loop (even a panic), the Pods are torn down afterwards.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sv = Supervision {
            cfg,
            stop_sig: &signals.stop,
            requests: &signals.requests,
            wake_r: &signals.wake,
            opts: &mut opts,
            checks: Vec::new(),
            trim_at: None,
        };
        sv.supervise(&mut pods, &mut slots)
    }));
    for s in slots.iter_mut() {
        s.out.flush(opts.reporter.as_mut());
        s.out.end_attach(None);
    }
    // Anyone still waiting for readiness learns the outcome now.
    notify_ready(&mut opts.ready, &pods, &slots);
    for (p, pod) in pods.iter_mut().enumerate() {
        pod.dirty = true;
        write_record(cfg, pod, p, &slots, &mut opts, true);
    }
    tracing::debug!("supervision over, tearing down");
    let problems = teardown_all(&mut pods);
    for problem in &problems {
        opts.reporter.notice(&Notice::run(What::Teardown {
            problem: problem.clone(),
        }));
    }
    for (p, pod) in pods.iter_mut().enumerate() {
        let key = pod_key(&pod.plan.sandbox.namespace, &pod.plan.sandbox.name);
        if opts.detached {
            // The record outlives the Pod's resources, until `podshim rm`.
            let _ = fs::remove_file(stop_request_path(cfg, &key));
            pod.dirty = true;
            write_record_to(pod, p, &slots, &mut opts, false, &record::path(cfg, &key));
        } else if let Err(e) = record::remove(cfg, &key) {
            opts.reporter
                .notice(&Notice::run(What::Record { message: chain(&e) }));
        }
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(RunError::Loop(e)),
        Err(_) => return Err(RunError::Panicked),
    }
    let code = result(&pods, &slots);
    if !problems.is_empty() && code == 0 {
        return Ok(1);
    }
    Ok(code)
}

/// Whether the name of Pod `namespace/name` is free: no Pod of that name runs, and no ended
/// detached Pod keeps it (until `podshim rm`; a killed foreground run's leftover record does
/// not). `run -d` asks before it creates anything (the Pod's log directory); creating the
/// Pod's directory is the real lock, which [`Sandbox::create`] takes.
pub fn check_free(cfg: &Config, namespace: &str, name: &str) -> Result<(), podshim_engine::Error> {
    let key = pod_key(namespace, name);
    let dir = cfg.pod_dir(&key);
    if let Some(e) = record::entry(cfg, &key) {
        if !e.live && !crate::collect::stale(&e) {
            let dir = record::path(cfg, &e.key);
            return Err(podshim_engine::Error::PodExists { key, dir });
        }
    }
    if dir.exists() {
        let owner = podshim_engine::journal::Journal::load(&dir.join("journal.json"))
            .ok()
            .map(|j| j.pod);
        return Err(match owner {
            Some(pod) if !podshim_engine::gc::owner_alive(&pod) => {
                podshim_engine::Error::Orphaned {
                    key,
                    pid: pod.owner_pid,
                }
            }
            _ => podshim_engine::Error::PodExists { key, dir },
        });
    }
    Ok(())
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
