//! The CronJob controller (`pkg/controller/cronjob`, v2): at each time its schedule names (in
//! the controller's clock, injectable: see `clock`), a Job from `jobTemplate` named
//! `<cronjob>-<scheduled time in minutes since the epoch>`, owned by the CronJob, each with a
//! controller process of its own. A start missed by more than `startingDeadlineSeconds` is
//! skipped; `concurrencyPolicy` Allow, Forbid (skip while one runs) or Replace (delete the
//! running ones first); `suspend`; finished Jobs beyond `successfulJobsHistoryLimit` and
//! `failedJobsHistoryLimit` deleted, oldest first.

use std::time::Duration;

use chrono::{DateTime, Utc};
use podshim_kube::manifest::ObjectMeta;
use serde_json::{json, Value};

use crate::api::{controller_of, defaults, CronJob, Job, Kind, OwnerReference, Workload};
use crate::clock;
use crate::cron::Schedule;
use crate::events;
use crate::pods::Context;
use crate::process::{self, Key, Memory as All};
use crate::replicaset::put_status;
use crate::zone::{Zone, ZoneError};

pub const SCHEDULED: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// What a CronJob's controller keeps between passes: its zone, loaded once per `timeZone`.
#[derive(Debug, Default)]
pub struct Memory {
    zone: Option<(Option<String>, Result<Zone, ZoneError>)>,
}

impl Memory {
    /// The zone the schedule is read in: `timeZone`, or the host's zone when it is unset
    /// (kube-controller-manager's `time.Local`).
    fn zone(&mut self, tz: &Option<String>) -> &Result<Zone, ZoneError> {
        if self.zone.as_ref().is_none_or(|(name, _)| name != tz) {
            let zone = match tz {
                Some(name) => Zone::load(name),
                None => Ok(Zone::local()),
            };
            self.zone = Some((tz.clone(), zone));
        }
        &self.zone.as_ref().expect("set above").1
    }
}

/// A finished Job's condition: `Complete` or `Failed`, with its time.
fn finished(ctx: &Context, job: &Job) -> Option<(bool, DateTime<Utc>)> {
    let ns = job.metadata.namespace.as_deref().unwrap_or("default");
    let st = ctx.store.status(Kind::Job, ns, &job.metadata.name)?;
    st["conditions"].as_array()?.iter().find_map(|c| {
        let kind = c["type"].as_str()?;
        if c["status"] != "True" || !matches!(kind, "Complete" | "Failed") {
            return None;
        }
        let t = c["lastTransitionTime"].as_str().and_then(clock::parse)?;
        Some((kind == "Complete", t))
    })
}

fn jobs_of(ctx: &Context, cj: &CronJob) -> Vec<Job> {
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    ctx.store
        .list(Kind::Job)
        .into_iter()
        .filter_map(|w| match w {
            Workload::Job(j) => Some(j),
            _ => None,
        })
        .filter(|j| controller_of(&j.metadata.owner_references).is_some_and(|o| o.uid == uid))
        .collect()
}

/// The most recent time the schedule named after `since` and at or before `now`, and how many
/// were missed before it (`mostRecentScheduleTime`).
fn most_recent(
    s: &Schedule,
    zone: &Zone,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, usize) {
    let mut t = since;
    let mut last = None;
    let mut missed = 0;
    // Bounded: a year of minutes, then the search starts a day before `now` (a clock moved
    // years ahead must not keep a controller busy).
    if (now - since).num_days() > 366 {
        t = now - chrono::Duration::days(1);
        missed = 101;
    }
    while let Some(n) = s.next_in(t, zone) {
        if n > now {
            break;
        }
        if last.is_some() {
            missed += 1;
        }
        last = Some(n);
        t = n;
    }
    (last, missed)
}

fn make_job(cj: &CronJob, at: DateTime<Utc>) -> Job {
    let ns = cj
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = format!("{}-{}", cj.metadata.name, at.timestamp() / 60);
    let uid = podshim_kube::pod::new_uid();
    let jt = &cj.spec.job_template;
    let mut metadata = ObjectMeta {
        name: name.clone(),
        namespace: Some(ns.clone()),
        uid: Some(uid.clone()),
        generation: Some(1),
        creation_timestamp: Some(Value::String(clock::format(Utc::now()))),
        labels: jt.metadata.labels.clone(),
        annotations: jt.metadata.annotations.clone(),
        owner_references: vec![
            OwnerReference::controller_of(Kind::CronJob, &cj.metadata).to_value()
        ],
        ..Default::default()
    };
    metadata
        .annotations
        .insert(SCHEDULED.into(), clock::format(at));
    let mut spec = jt.spec.clone();
    defaults::job_spec(&mut spec, &name, &uid, &ns);
    Job {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        metadata,
        spec,
        status: None,
    }
}

pub fn run(ctx: &Context, cj: &CronJob, all: &mut All) -> Duration {
    let now = ctx.clock.now();
    let ns = cj
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let prev = ctx
        .store
        .status(Kind::CronJob, &ns, &cj.metadata.name)
        .unwrap_or(Value::Null);
    let Ok(schedule) = Schedule::parse(&cj.spec.schedule) else {
        return Duration::from_secs(60);
    };
    let zone = match all.cron.zone(&cj.spec.time_zone) {
        Ok(z) => z.clone(),
        Err(e) => {
            // The controller's UnknownTimeZone: the zone went from the host after validation.
            let message = format!(
                "invalid timeZone: {:?}: {e}",
                cj.spec.time_zone.as_deref().unwrap_or_default()
            );
            eprintln!("cronjob {ns}/{}: {message}", cj.metadata.name);
            events::warning(
                ctx,
                Kind::CronJob,
                &ns,
                &cj.metadata.name,
                "UnknownTimeZone",
                &message,
            );
            return Duration::from_secs(60);
        }
    };
    let jobs = jobs_of(ctx, cj);
    let mut last_success = prev["lastSuccessfulTime"].as_str().and_then(clock::parse);
    let mut active: Vec<&Job> = Vec::new();
    let (mut ok_jobs, mut failed_jobs) = (Vec::new(), Vec::new());
    for j in &jobs {
        match finished(ctx, j) {
            None => active.push(j),
            Some((true, t)) => {
                last_success = Some(last_success.map_or(t, |l| l.max(t)));
                ok_jobs.push((t, j));
            }
            Some((false, t)) => failed_jobs.push((t, j)),
        }
    }
    let created = cj
        .metadata
        .creation_timestamp
        .as_ref()
        .and_then(Value::as_str)
        .and_then(clock::parse)
        .unwrap_or(now);
    let last_schedule = prev["lastScheduleTime"].as_str().and_then(clock::parse);
    let since = last_schedule.unwrap_or(created);
    let mut scheduled = last_schedule;
    if cj.spec.suspend != Some(true) {
        let (due, missed) = most_recent(&schedule, &zone, since, now);
        if missed > 100 {
            eprintln!(
                "cronjob {ns}/{}: too many missed start times ({missed}); check the clock",
                cj.metadata.name
            );
        }
        let too_late = |t: DateTime<Utc>| {
            cj.spec
                .starting_deadline_seconds
                .is_some_and(|d| (now - t).num_seconds() > d)
        };
        if let Some(t) = due.filter(|t| !too_late(*t)) {
            let policy = cj.spec.concurrency_policy.as_deref().unwrap_or("Allow");
            if policy == "Forbid" && !active.is_empty() {
                // Skipped: tried again at the next pass while the Job runs.
            } else {
                if policy == "Replace" {
                    for j in active.drain(..) {
                        let _ = crate::delete::mark(ctx, &Workload::Job(j.clone()), "Background");
                        process::ensure_one(ctx, &Key::of(&Workload::Job(j.clone())));
                    }
                }
                let job = make_job(cj, t);
                let w = Workload::Job(job);
                if ctx
                    .store
                    .get(Kind::Job, &ns, w.name())
                    .ok()
                    .flatten()
                    .is_none()
                {
                    match ctx.store.put(&w) {
                        Ok(()) => events::normal(
                            ctx,
                            Kind::CronJob,
                            &ns,
                            &cj.metadata.name,
                            "SuccessfulCreate",
                            &format!("Created job {}", w.name()),
                        ),
                        Err(e) => {
                            eprintln!("cronjob {ns}/{}: {e}", cj.metadata.name);
                            events::warning(
                                ctx,
                                Kind::CronJob,
                                &ns,
                                &cj.metadata.name,
                                "FailedCreate",
                                &format!("Error creating job: {e}"),
                            );
                        }
                    }
                    process::ensure_one(ctx, &Key::of(&w));
                }
                scheduled = Some(t);
            }
        } else if let Some(t) = due {
            // Missed by more than startingDeadlineSeconds: counted as scheduled, not run.
            scheduled = Some(t);
        }
    }
    // History limits, oldest first.
    for (mut list, limit) in [
        (ok_jobs, cj.spec.successful_jobs_history_limit.unwrap_or(3)),
        (failed_jobs, cj.spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        list.sort_by_key(|(t, _)| *t);
        let extra = list.len().saturating_sub(limit.max(0) as usize);
        for (_, j) in list.into_iter().take(extra) {
            events::normal(
                ctx,
                Kind::CronJob,
                &ns,
                &cj.metadata.name,
                "SuccessfulDelete",
                &format!("Deleted job {}", j.metadata.name),
            );
            let w = Workload::Job(j.clone());
            let _ = crate::delete::mark(ctx, &w, "Background");
            process::ensure_one(ctx, &Key::of(&w));
        }
    }
    let active_refs: Vec<Value> = jobs_of(ctx, cj)
        .iter()
        .filter(|j| finished(ctx, j).is_none() && j.metadata.deletion_timestamp.is_none())
        .map(|j| {
            json!({"apiVersion": "batch/v1", "kind": "Job", "name": j.metadata.name,
                        "namespace": ns, "uid": j.metadata.uid})
        })
        .collect();
    let mut st = json!({});
    if !active_refs.is_empty() {
        st["active"] = Value::Array(active_refs);
    }
    if let Some(t) = scheduled {
        st["lastScheduleTime"] = json!(clock::format(t));
    }
    if let Some(t) = last_success {
        st["lastSuccessfulTime"] = json!(clock::format(t));
    }
    put_status(ctx, Kind::CronJob, &ns, &cj.metadata.name, &st);
    Duration::from_millis(500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_recent_time_and_misses() {
        let s = Schedule::parse("* * * * *").unwrap();
        let t = |x: &str| clock::parse(x).unwrap();
        let (due, missed) = most_recent(
            &s,
            &Zone::utc(),
            t("2024-01-01T10:00:00Z"),
            t("2024-01-01T10:03:30Z"),
        );
        assert_eq!(due, Some(t("2024-01-01T10:03:00Z")));
        assert_eq!(missed, 2);
        let (due, _) = most_recent(
            &s,
            &Zone::utc(),
            t("2024-01-01T10:03:00Z"),
            t("2024-01-01T10:03:59Z"),
        );
        assert_eq!(due, None);
    }
}
