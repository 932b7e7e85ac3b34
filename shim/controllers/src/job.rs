//! The Job controller (`pkg/controller/job`): Pods run to completion, at most `parallelism` at
//! a time, until `completions` have succeeded (`NonIndexed`), or until each index
//! `0..completions` has a succeeded Pod (`Indexed`: the index in the
//! `batch.kubernetes.io/job-completion-index` annotation and label, `JOB_COMPLETION_INDEX` in
//! every container, hostname `<job>-<index>`). A failed Pod is replaced after the Job
//! controller's exponential back-off (10 s doubling to 6 min, scaled like the restart back-off
//! by `PODSHIM_BACKOFF_SCALE`); more failures than `backoffLimit` fail the Job
//! (`BackoffLimitExceeded`), as does running longer than `activeDeadlineSeconds`
//! (`DeadlineExceeded`). `suspend` stops the active Pods; `ttlSecondsAfterFinished` deletes a
//! finished Job with its Pods. A Job's ended Pods are kept (their records count what ended)
//! until the Job is deleted. `podFailurePolicy` (see `job_policy`) may ignore a failure or fail
//! the Job at once (`PodFailurePolicy`); an Indexed Job's `successPolicy` may complete it before
//! every index has succeeded (`SuccessPolicy`), stopping the Pods still running.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use podshim_kube::manifest::{EnvVar, EnvVarSource, ObjectFieldSelector};
use serde_json::{json, Value};

use crate::api::{Job, Kind, OwnerReference, Workload};
use crate::clock;
use crate::events;
use crate::job_policy::{self, Action};
use crate::names::random_suffix;
use crate::pods::{self, Context, NewPod, PodInfo};
use crate::process::Memory as All;
use crate::replicaset::{owned, put_status};

pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// What a Job's controller remembers between passes.
#[derive(Debug, Default)]
pub struct Memory {
    failed_seen: usize,
    retry_at: Option<Instant>,
    /// Pods asked to stop (not counted as active again).
    stopping: BTreeSet<String>,
}

/// A condition, keeping its transition time when its status does not change.
fn condition(kind: &str, reason: &str, message: &str, now: &str, prev: &Value) -> Value {
    let old = prev["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or(Value::Null);
    let t = if old["status"] == "True" {
        old["lastTransitionTime"].clone()
    } else {
        json!(now)
    };
    json!({"type": kind, "status": "True", "reason": reason, "message": message,
           "lastProbeTime": now, "lastTransitionTime": t})
}

fn index_of(p: &PodInfo) -> Option<i32> {
    p.annotations.get(INDEX).and_then(|i| i.parse().ok())
}

/// `completedIndexes` as the API writes it: `0-2,5`.
fn ranges(done: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = done.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end = it.next().unwrap_or(end);
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The Job controller's back-off before the next Pod after `failures` failures.
fn backoff(failures: usize, scale: f64) -> Duration {
    let secs = (10.0 * 2f64.powi(failures.saturating_sub(1).min(16) as i32)).min(360.0);
    Duration::from_secs_f64((secs * scale).max(0.0))
}

fn new_pod(job: &Job, ns: &str, index: Option<i32>) -> NewPod {
    let t = &job.spec.template;
    let mut labels = t.metadata.labels.clone();
    let mut annotations = t.metadata.annotations.clone();
    let mut spec = t.spec.clone();
    let name = match index {
        Some(i) => {
            annotations.insert(INDEX.into(), i.to_string());
            labels.insert(INDEX.into(), i.to_string());
            spec.hostname = Some(format!("{}-{i}", job.metadata.name));
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: format!("metadata.annotations['{INDEX}']"),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut())
            {
                c.env.retain(|e| e.name != "JOB_COMPLETION_INDEX");
                c.env.push(env.clone());
            }
            format!("{}-{i}-{}", job.metadata.name, random_suffix(5))
        }
        None => format!("{}-{}", job.metadata.name, random_suffix(5)),
    };
    NewPod {
        namespace: ns.into(),
        name,
        generate_name: Some(format!("{}-", job.metadata.name)),
        labels,
        annotations,
        spec,
        owner: OwnerReference::controller_of(Kind::Job, &job.metadata),
    }
}

/// One pass over a Job.
pub fn run(ctx: &Context, job: &Job, all: &mut All) -> Duration {
    let mem = &mut all.job;
    let now = ctx.clock.now();
    let t = clock::format(now);
    let ns = job
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let prev = ctx
        .store
        .status(Kind::Job, &ns, &job.metadata.name)
        .unwrap_or(Value::Null);
    let has = |kind: &str| {
        prev["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == kind && c["status"] == "True")
        })
    };
    let finished = has("Complete") || has("Failed");
    let (pods, _) = pods::list(ctx);
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let mine = owned(&pods, &uid);
    mem.stopping
        .retain(|k| mine.iter().any(|p| &p.key == k && p.active()));
    let active: Vec<&PodInfo> = mine
        .iter()
        .copied()
        .filter(|p| p.active() && !mem.stopping.contains(&p.key))
        .collect();
    let succeeded: Vec<&PodInfo> = mine
        .iter()
        .copied()
        .filter(|p| p.phase == "Succeeded")
        .collect();
    // Each failed Pod read against podFailurePolicy: Ignore'd ones are not counted (and bring
    // no back-off), the first FailJob match fails the Job.
    let policy = job.spec.pod_failure_policy.as_ref();
    let mut failed = 0;
    let mut fail_job = None;
    for p in mine.iter().filter(|p| p.phase == "Failed" || p.lost) {
        match job_policy::pod_failure(policy, p) {
            Action::Ignore => {}
            Action::FailJob(m) => {
                failed += 1;
                fail_job.get_or_insert(m);
            }
            Action::Count | Action::FailIndex => failed += 1,
        }
    }
    let indexed = job.spec.completion_mode.as_deref() == Some("Indexed");
    let done_indexes: BTreeSet<i32> = succeeded.iter().filter_map(|p| index_of(p)).collect();
    let completions = job.spec.completions;
    let n_succeeded = if indexed {
        done_indexes.len()
    } else {
        succeeded.len()
    };
    let start = prev["startTime"].as_str().and_then(clock::parse);
    let suspended = job.spec.suspend == Some(true);
    let start = if suspended {
        start
    } else {
        Some(start.unwrap_or(now))
    };

    let mut conditions: Vec<Value> = prev["conditions"].as_array().cloned().unwrap_or_default();
    let mut completion_time = prev["completionTime"].clone();
    let mut stop_all = false;
    if !finished {
        let complete = match completions {
            Some(c) => n_succeeded >= c.max(0) as usize,
            None => n_succeeded > 0 && active.is_empty(),
        };
        let deadline = job
            .spec
            .active_deadline_seconds
            .zip(start)
            .is_some_and(|(ads, s)| (now - s).num_seconds() >= ads);
        let success_policy = if indexed {
            job_policy::success(
                job.spec.success_policy.as_ref(),
                completions.unwrap_or(0),
                &done_indexes,
            )
        } else {
            None
        };
        if let Some(m) = fail_job {
            conditions = vec![
                condition("FailureTarget", "PodFailurePolicy", &m, &t, &prev),
                condition("Failed", "PodFailurePolicy", &m, &t, &prev),
            ];
            stop_all = true;
        } else if let Some(m) = success_policy {
            // The Job controller's SuccessCriteriaMet, then Complete with the same reason once
            // the Pods still running are stopped (here: at once, while they stop).
            conditions = vec![
                condition("SuccessCriteriaMet", "SuccessPolicy", &m, &t, &prev),
                condition("Complete", "SuccessPolicy", &m, &t, &prev),
            ];
            completion_time = json!(t);
            stop_all = true;
        } else if complete {
            let m = "Reached expected number of succeeded pods";
            conditions = vec![
                condition("SuccessCriteriaMet", "CompletionsReached", m, &t, &prev),
                condition("Complete", "CompletionsReached", m, &t, &prev),
            ];
            completion_time = json!(t);
        } else if failed > job.spec.backoff_limit.unwrap_or(6).max(0) as usize {
            let m = "Job has reached the specified backoff limit";
            conditions = vec![
                condition("FailureTarget", "BackoffLimitExceeded", m, &t, &prev),
                condition("Failed", "BackoffLimitExceeded", m, &t, &prev),
            ];
            stop_all = true;
        } else if deadline {
            let m = "Job was active longer than specified deadline";
            conditions = vec![
                condition("FailureTarget", "DeadlineExceeded", m, &t, &prev),
                condition("Failed", "DeadlineExceeded", m, &t, &prev),
            ];
            stop_all = true;
        } else if suspended {
            conditions = vec![condition(
                "Suspended",
                "JobSuspended",
                "Job suspended",
                &t,
                &prev,
            )];
            stop_all = true;
        } else {
            conditions.retain(|c| c["type"] != "Suspended");
            make_pods(
                ctx,
                job,
                &ns,
                mem,
                &active,
                &done_indexes,
                n_succeeded,
                failed,
            );
        }
    }
    // A finished Job's counts stay as they were when it finished (the Job controller counts no
    // Pod after that): a Pod stopped by a success policy is not a success, and the Pods a
    // failed Job still had running count as failed then, as "every non-terminated pod is
    // considered failed" there.
    let (mut n_succeeded, mut failed, mut done_indexes) = (n_succeeded, failed, done_indexes);
    if finished {
        n_succeeded = prev["succeeded"].as_u64().unwrap_or(0) as usize;
        failed = prev["failed"].as_u64().unwrap_or(0) as usize;
        done_indexes = prev["completedIndexes"]
            .as_str()
            .and_then(|t| job_policy::parse_indexes(t, completions.unwrap_or(0)))
            .unwrap_or_default();
    } else if stop_all && conditions.iter().any(|c| c["type"] == "Failed") {
        failed += active.len();
    }
    if !finished {
        // The Job controller's events when the Job finishes.
        let done = conditions
            .iter()
            .find(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True");
        if let Some(c) = done {
            let reason = c["reason"].as_str().unwrap_or_default();
            if c["type"] == "Complete" {
                events::normal(
                    ctx,
                    Kind::Job,
                    &ns,
                    &job.metadata.name,
                    "Completed",
                    "Job completed",
                );
            } else {
                let message = c["message"].as_str().unwrap_or_default();
                events::warning(ctx, Kind::Job, &ns, &job.metadata.name, reason, message);
            }
        }
    }
    // A finished Job's Pods are all stopped. One still starting (no record yet) cannot be asked
    // yet: it is left out of `stopping`, so a later pass stops it once it can be.
    let stop: Vec<&PodInfo> = if stop_all || finished {
        active.iter().copied().filter(|p| !p.starting).collect()
    } else {
        Vec::new()
    };
    if !stop.is_empty() {
        for p in &stop {
            events::normal(
                ctx,
                Kind::Job,
                &ns,
                &job.metadata.name,
                "SuccessfulDelete",
                &format!("Deleted pod: {}", p.name),
            );
        }
        pods::request_stop(ctx, &stop, None);
        mem.stopping.extend(stop.iter().map(|p| p.key.clone()));
    }
    let ready = active.iter().filter(|p| p.ready).count();
    let mut st = json!({
        "active": active.len(),
        "ready": ready,
        "succeeded": n_succeeded,
        "failed": failed,
        "terminating": mine.iter().filter(|p| p.terminating && !p.finished()).count(),
    });
    if let Some(s) = start {
        st["startTime"] = json!(prev["startTime"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| clock::format(s)));
    }
    if !completion_time.is_null() {
        st["completionTime"] = completion_time;
    }
    if indexed {
        st["completedIndexes"] = json!(ranges(&done_indexes));
    }
    if !conditions.is_empty() {
        st["conditions"] = Value::Array(conditions);
    }
    put_status(ctx, Kind::Job, &ns, &job.metadata.name, &st);
    ttl(ctx, job, &st, now);
    Duration::from_millis(500)
}

#[allow(clippy::too_many_arguments)]
fn make_pods(
    ctx: &Context,
    job: &Job,
    ns: &str,
    mem: &mut Memory,
    active: &[&PodInfo],
    done: &BTreeSet<i32>,
    n_succeeded: usize,
    failed: usize,
) {
    if failed > mem.failed_seen {
        mem.failed_seen = failed;
        mem.retry_at = Some(Instant::now() + backoff(failed, ctx.backoff_scale));
    }
    if mem.retry_at.is_some_and(|t| Instant::now() < t) {
        return;
    }
    let parallelism = job.spec.parallelism.unwrap_or(1).max(0) as usize;
    let indexed = job.spec.completion_mode.as_deref() == Some("Indexed");
    let mut new = Vec::new();
    if indexed {
        let running: BTreeMap<i32, ()> = active
            .iter()
            .filter_map(|p| Some((index_of(p)?, ())))
            .collect();
        let completions = job.spec.completions.unwrap_or(0).max(0);
        let free = parallelism.saturating_sub(active.len());
        for i in (0..completions)
            .filter(|i| !done.contains(i) && !running.contains_key(i))
            .take(free)
        {
            new.push(new_pod(job, ns, Some(i)));
        }
    } else {
        let want = match job.spec.completions {
            Some(c) => parallelism.min((c.max(0) as usize).saturating_sub(n_succeeded)),
            // No completions: parallel Pods until one succeeds.
            None if n_succeeded > 0 => 0,
            None => parallelism,
        };
        for _ in active.len()..want {
            new.push(new_pod(job, ns, None));
        }
    }
    for r in pods::create(ctx, &new) {
        if let Err(e) = r {
            eprintln!("job {ns}/{}: {e}", job.metadata.name);
        }
    }
}

/// `ttlSecondsAfterFinished`: the finished Job is deleted with its Pods.
fn ttl(ctx: &Context, job: &Job, st: &Value, now: DateTime<Utc>) {
    let Some(ttl) = job.spec.ttl_seconds_after_finished else {
        return;
    };
    let finished_at = st["conditions"]
        .as_array()
        .and_then(|cs| {
            cs.iter().find(|c| {
                (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True"
            })
        })
        .and_then(|c| c["lastTransitionTime"].as_str())
        .and_then(clock::parse);
    if finished_at.is_some_and(|f| (now - f).num_seconds() >= i64::from(ttl)) {
        let _ = crate::delete::mark(ctx, &Workload::Job(job.clone()), "Background");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_and_backoff() {
        let s: BTreeSet<i32> = [0, 1, 2, 5, 7, 8].into_iter().collect();
        assert_eq!(ranges(&s), "0-2,5,7-8");
        assert_eq!(backoff(1, 1.0), Duration::from_secs(10));
        assert_eq!(backoff(3, 1.0), Duration::from_secs(40));
        assert_eq!(backoff(20, 1.0), Duration::from_secs(360));
        assert_eq!(backoff(2, 0.05), Duration::from_secs(1));
    }
}
