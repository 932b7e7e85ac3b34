//! The Deployment controller (`pkg/controller/deployment`): ReplicaSets named
//! `<name>-<pod-template-hash>`, one per template (the *new* one follows the current
//! template, the *old* ones are scaled away), `RollingUpdate` within `maxSurge` and
//! `maxUnavailable` counted on available Pods (`rolling.go`: `reconcileNewReplicaSet`,
//! `reconcileOldReplicaSets`, `cleanupUnhealthyReplicas`, `scaleDownOldReplicaSetsForRollingUpdate`),
//! or `Recreate`; revisions in `deployment.kubernetes.io/revision`, old ReplicaSets beyond
//! `revisionHistoryLimit` removed; the status and the `Available` and `Progressing` conditions
//! as Kubernetes reports them. The Deployment's controller process also runs its ReplicaSets.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use podshim_kube::manifest::{IntOrString, ObjectMeta};
use serde_json::{json, Value};

use crate::api::{
    controller_of, Deployment, Kind, OwnerReference, PodTemplateSpec, ReplicaSet, Workload,
};
use crate::clock;
use crate::names::template_hash;
use crate::pods::{self, Context, PodInfo};
use crate::process::Memory;
use crate::replicaset;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const HASH_LABEL: &str = "pod-template-hash";

/// The template without the `pod-template-hash` label (`EqualIgnoreHash`).
pub fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    t.metadata.labels.remove(HASH_LABEL);
    t
}

pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The Deployment's ReplicaSets, oldest revision first.
pub fn replica_sets(ctx: &Context, d: &Deployment) -> Vec<ReplicaSet> {
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let mut out: Vec<ReplicaSet> = ctx
        .store
        .list(Kind::ReplicaSet)
        .into_iter()
        .filter_map(|w| match w {
            Workload::ReplicaSet(rs) => Some(rs),
            _ => None,
        })
        .filter(|rs| controller_of(&rs.metadata.owner_references).is_some_and(|o| o.uid == uid))
        .collect();
    out.sort_by_key(revision);
    out
}

/// `intstr.GetScaledValueFromIntOrPercent`, rounding up (surge) or down (unavailable).
pub(crate) fn scaled(v: Option<&IntOrString>, total: i32, round_up: bool) -> i32 {
    match v {
        None => 0,
        Some(IntOrString::Int(i)) => *i,
        Some(IntOrString::String(s)) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let n = pct * i64::from(total);
            (if round_up { (n + 99) / 100 } else { n / 100 }) as i32
        }
    }
}

/// `ResolveFenceposts`: (maxSurge, maxUnavailable); both zero is one unavailable.
fn fenceposts(d: &Deployment, replicas: i32) -> (i32, i32) {
    let ru = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let surge = scaled(ru.max_surge.as_ref(), replicas, true);
    let unavailable = scaled(ru.max_unavailable.as_ref(), replicas, false);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Counts of one ReplicaSet's Pods.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    active: i32,
    ready: i32,
    available: i32,
}

/// Pods the ReplicaSet's sync asked to stop (`stopping`) count no more, as in that sync (the
/// Kubernetes controllers' expectations): a record read before the Pod's supervisor took the
/// request still shows it Ready, and counting it available would scale the old ReplicaSets
/// down once more, below `maxUnavailable`.
fn counts(
    rs: &ReplicaSet,
    pods: &[PodInfo],
    stopping: Option<&BTreeSet<String>>,
    min_ready: i32,
    now: DateTime<Utc>,
) -> Counts {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let mut c = Counts::default();
    for p in replicaset::owned(pods, &uid) {
        if p.active() && !stopping.is_some_and(|s| s.contains(&p.key)) {
            c.active += 1;
            c.ready += i32::from(p.ready);
            c.available += i32::from(p.available(min_ready, now));
        }
    }
    c
}

/// A new ReplicaSet for the current template (`getNewReplicaSet`).
fn new_replica_set(d: &Deployment, hash: &str, revision: i64) -> ReplicaSet {
    let ns = d
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut template = d.spec.template.clone();
    template
        .metadata
        .labels
        .insert(HASH_LABEL.into(), hash.into());
    let mut selector = d.spec.selector.clone().unwrap_or_default();
    selector.match_labels.insert(HASH_LABEL.into(), hash.into());
    let mut metadata = ObjectMeta {
        name: format!("{}-{hash}", d.metadata.name),
        namespace: Some(ns),
        uid: Some(podshim_kube::pod::new_uid()),
        generation: Some(1),
        creation_timestamp: Some(Value::String(clock::format(Utc::now()))),
        labels: template.metadata.labels.clone(),
        owner_references: vec![
            OwnerReference::controller_of(Kind::Deployment, &d.metadata).to_value()
        ],
        ..Default::default()
    };
    metadata
        .annotations
        .insert(REVISION.into(), revision.to_string());
    ReplicaSet {
        api_version: "apps/v1".into(),
        kind: "ReplicaSet".into(),
        metadata,
        spec: crate::api::ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: d.spec.min_ready_seconds,
            selector: Some(selector),
            template,
        },
        status: None,
    }
}

/// One pass over a Deployment.
pub fn run(ctx: &Context, d: &Deployment, memory: &mut Memory) -> Duration {
    let now = ctx.clock.now();
    let ns = d
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let (pods, failures) = pods::list(ctx);
    let mut rss = replica_sets(ctx, d);
    let paused = d.spec.paused == Some(true);
    let replicas = d.spec.replicas.unwrap_or(1).max(0);
    let min_ready = d.spec.min_ready_seconds.unwrap_or(0);
    let mut created_new = None;
    let mut new_idx = rss
        .iter()
        .position(|rs| without_hash(&rs.spec.template) == d.spec.template);
    let max_rev = rss.iter().map(revision).max().unwrap_or(0);
    if !paused {
        match new_idx {
            None => {
                let t = serde_json::to_value(&d.spec.template).unwrap_or_default();
                let hash = template_hash(&t, None);
                let rs = new_replica_set(d, &hash, max_rev + 1);
                if let Err(e) = ctx.store.put(&Workload::ReplicaSet(rs.clone())) {
                    eprintln!("deployment {ns}/{}: {e}", d.metadata.name);
                }
                created_new = Some(rs.metadata.name.clone());
                rss.push(rs);
                new_idx = Some(rss.len() - 1);
            }
            // A rollback makes an old ReplicaSet the new one: it gets the next revision.
            Some(i) if revision(&rss[i]) < max_rev => {
                rss[i]
                    .metadata
                    .annotations
                    .insert(REVISION.into(), (max_rev + 1).to_string());
                let _ = ctx.store.put(&Workload::ReplicaSet(rss[i].clone()));
            }
            Some(_) => {}
        }
    }
    let c: Vec<Counts> = rss
        .iter()
        .map(|rs| {
            let uid = rs.metadata.uid.as_deref().unwrap_or_default();
            let stopping = memory.replica_sets.get(uid).map(|p| &p.stopping);
            counts(rs, &pods, stopping, min_ready, now)
        })
        .collect();
    let mut want: Vec<i32> = rss.iter().map(|rs| rs.spec.replicas.unwrap_or(0)).collect();
    if !paused {
        if let Some(n) = new_idx {
            let recreate =
                d.spec.strategy.as_ref().and_then(|s| s.kind.as_deref()) == Some("Recreate");
            if recreate {
                recreate_step(n, replicas, &c, &mut want);
            } else {
                rolling_step(d, n, replicas, &c, &mut want);
            }
        }
    } else if let Some(n) = new_idx {
        // Paused: scaling still applies to the current ReplicaSet (no rollout).
        let others: i32 = (0..rss.len()).filter(|i| *i != n).map(|i| want[i]).sum();
        want[n] = (replicas - others).max(0);
    }
    for (i, rs) in rss.iter_mut().enumerate() {
        if rs.spec.replicas != Some(want[i]) {
            let from = rs.spec.replicas.unwrap_or(0);
            let way = if want[i] > from { "up" } else { "down" };
            crate::events::normal(
                ctx,
                Kind::Deployment,
                &ns,
                &d.metadata.name,
                "ScalingReplicaSet",
                &format!(
                    "Scaled {way} replica set {} from {from} to {}",
                    rs.metadata.name, want[i]
                ),
            );
            rs.spec.replicas = Some(want[i]);
            rs.metadata.annotations.insert(
                "deployment.kubernetes.io/desired-replicas".into(),
                replicas.to_string(),
            );
            if let Err(e) = ctx.store.put(&Workload::ReplicaSet(rs.clone())) {
                eprintln!("deployment {ns}/{}: {e}", d.metadata.name);
            }
        }
    }
    for rs in &rss {
        let uid = rs.metadata.uid.clone().unwrap_or_default();
        let pace = memory.replica_sets.entry(uid).or_default();
        let st = replicaset::sync(ctx, rs, &pods, &failures, pace);
        replicaset::put_status(ctx, Kind::ReplicaSet, &ns, &rs.metadata.name, &st);
    }
    cleanup(ctx, d, &rss, &c, new_idx);
    let st = status(ctx, d, &rss, &c, new_idx, created_new, now);
    replicaset::put_status(ctx, Kind::Deployment, &ns, &d.metadata.name, &st);
    Duration::from_millis(500)
}

/// `rolloutRecreate`: old ReplicaSets to zero; once none of their Pods is left, the new one up.
fn recreate_step(n: usize, replicas: i32, c: &[Counts], want: &mut [i32]) {
    let mut old_pods = 0;
    for (i, w) in want.iter_mut().enumerate() {
        if i != n {
            *w = 0;
            old_pods += c[i].active;
        }
    }
    if old_pods == 0 {
        want[n] = replicas;
    }
}

/// `rolloutRolling`: scale the new ReplicaSet up within the surge, the old ones down within
/// the availability.
fn rolling_step(d: &Deployment, n: usize, replicas: i32, c: &[Counts], want: &mut [i32]) {
    let (surge, unavailable) = fenceposts(d, replicas);
    // reconcileNewReplicaSet
    if want[n] > replicas {
        want[n] = replicas;
    } else if want[n] < replicas {
        let current: i32 = want
            .iter()
            .sum::<i32>()
            .max(c.iter().map(|x| x.active).sum());
        let max_total = replicas + surge;
        if current < max_total {
            want[n] += (max_total - current).min(replicas - want[n]);
        }
    }
    // reconcileOldReplicaSets
    let old_pods: i32 = (0..want.len())
        .filter(|i| *i != n)
        .map(|i| c[i].active)
        .sum();
    if old_pods == 0 {
        for (i, w) in want.iter_mut().enumerate() {
            if i != n {
                *w = 0;
            }
        }
        return;
    }
    let all_pods: i32 = c.iter().map(|x| x.active).sum();
    let min_available = replicas - unavailable;
    let new_unavailable = want[n] - c[n].available;
    let mut max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return;
    }
    // cleanupUnhealthyReplicas: old Pods that are not available go first.
    for i in 0..want.len() {
        if i == n || max_scaled_down == 0 {
            continue;
        }
        let unhealthy = (want[i].min(c[i].active) - c[i].available).max(0);
        let down = unhealthy.min(max_scaled_down);
        want[i] -= down;
        max_scaled_down -= down;
    }
    // scaleDownOldReplicaSetsForRollingUpdate, oldest first.
    let available: i32 = c.iter().map(|x| x.available).sum();
    let mut total = (available - min_available).min(max_scaled_down);
    for (i, w) in want.iter_mut().enumerate() {
        if i == n || total <= 0 {
            continue;
        }
        let down = (*w).min(total);
        *w -= down;
        total -= down;
    }
}

/// `cleanupDeployment`: old ReplicaSets with no Pods beyond `revisionHistoryLimit` go.
fn cleanup(
    ctx: &Context,
    d: &Deployment,
    rss: &[ReplicaSet],
    c: &[Counts],
    new_idx: Option<usize>,
) {
    let limit = d.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let idle: Vec<usize> = (0..rss.len())
        .filter(|i| Some(*i) != new_idx && rss[*i].spec.replicas == Some(0) && c[*i].active == 0)
        .collect();
    if idle.len() > limit {
        for &i in &idle[..idle.len() - limit] {
            let rs = &rss[i];
            let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
            let _ = ctx.store.remove(Kind::ReplicaSet, ns, &rs.metadata.name);
            crate::events::remove(ctx, Kind::ReplicaSet, ns, &rs.metadata.name);
        }
    }
}

fn condition(
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    now: &str,
    prev: &Value,
) -> Value {
    let old = prev["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == kind).cloned())
        .unwrap_or(Value::Null);
    let same = old["status"] == status;
    let transition = if same {
        old["lastTransitionTime"].clone()
    } else {
        json!(now)
    };
    let update = if same && old["reason"] == reason {
        old["lastUpdateTime"].clone()
    } else {
        json!(now)
    };
    json!({"type": kind, "status": status, "lastUpdateTime": update,
           "lastTransitionTime": transition, "reason": reason, "message": message})
}

fn status(
    ctx: &Context,
    d: &Deployment,
    rss: &[ReplicaSet],
    c: &[Counts],
    new_idx: Option<usize>,
    created_new: Option<String>,
    now: DateTime<Utc>,
) -> Value {
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let prev = ctx
        .store
        .status(Kind::Deployment, ns, &d.metadata.name)
        .unwrap_or(Value::Null);
    let replicas = d.spec.replicas.unwrap_or(1).max(0);
    let total: i32 = c.iter().map(|x| x.active).sum();
    let updated = new_idx.map_or(0, |n| c[n].active);
    let ready: i32 = c.iter().map(|x| x.ready).sum();
    let available: i32 = c.iter().map(|x| x.available).sum();
    let (_, max_unavailable) = fenceposts(d, replicas);
    let recreate = d.spec.strategy.as_ref().and_then(|s| s.kind.as_deref()) == Some("Recreate");
    let min_available = if recreate {
        replicas
    } else {
        replicas - max_unavailable
    };
    let t = clock::format(now);
    let avail = if available >= min_available {
        condition(
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            &t,
            &prev,
        )
    } else {
        condition(
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            &t,
            &prev,
        )
    };
    let rs_name = new_idx
        .map(|n| rss[n].metadata.name.clone())
        .unwrap_or_default();
    let complete = updated == replicas && total == replicas && available >= replicas;
    let old_prog = prev["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing").cloned())
        .unwrap_or(Value::Null);
    let counts_changed = prev["updatedReplicas"] != updated
        || prev["availableReplicas"] != available
        || prev["replicas"] != total;
    let progressing = if d.spec.paused == Some(true) {
        condition(
            "Progressing",
            "Unknown",
            "DeploymentPaused",
            "Deployment is paused".into(),
            &t,
            &prev,
        )
    } else if let Some(name) = created_new {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            format!("Created new replica set {name:?}"),
            &t,
            &prev,
        )
    } else if complete {
        condition(
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            format!("ReplicaSet {rs_name:?} has successfully progressed."),
            &t,
            &prev,
        )
    } else {
        let last = old_prog["lastUpdateTime"]
            .as_str()
            .and_then(clock::parse)
            .unwrap_or(now);
        let deadline = i64::from(d.spec.progress_deadline_seconds.unwrap_or(600));
        if !counts_changed && (now - last).num_seconds() > deadline {
            condition(
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet {rs_name:?} has timed out progressing."),
                &t,
                &prev,
            )
        } else {
            let mut c = condition(
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                format!("ReplicaSet {rs_name:?} is progressing."),
                &t,
                &prev,
            );
            if counts_changed {
                c["lastUpdateTime"] = json!(t);
            }
            c
        }
    };
    json!({
        "observedGeneration": d.metadata.generation.unwrap_or(1),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [avail, progressing],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(surge: &str, unavailable: &str) -> Deployment {
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\nspec:\n  replicas: 4\n  \
             strategy: {{rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}}}\n  \
             selector: {{matchLabels: {{a: b}}}}\n  template:\n    metadata: {{labels: {{a: b}}}}\n    \
             spec: {{containers: [{{name: c, image: i}}]}}\n"
        );
        match crate::api::parse::parse(&text, &|_, _, _| None)
            .unwrap()
            .workloads
            .remove(0)
        {
            Workload::Deployment(d) => d,
            _ => unreachable!(),
        }
    }

    /// Pods become available one pass after they are wanted; stopped Pods go at once.
    fn settle(want: &[i32], c: &mut [Counts]) {
        for (w, c) in want.iter().zip(c.iter_mut()) {
            c.active = *w;
            c.available = *w;
        }
    }

    #[test]
    fn surge_one_unavailable_zero_never_drops_below_four() {
        let d = deployment("1", "0");
        assert_eq!(fenceposts(&d, 4), (1, 0));
        // Old ReplicaSet (index 0) at 4, new one (index 1) at 0.
        let mut want = vec![4, 0];
        let mut c = vec![
            Counts {
                active: 4,
                ready: 4,
                available: 4,
            },
            Counts::default(),
        ];
        for _ in 0..20 {
            rolling_step(&d, 1, 4, &c, &mut want);
            let total: i32 = want.iter().sum();
            assert!(total <= 5, "surge: {want:?}");
            let available: i32 = want
                .iter()
                .zip(&c)
                .map(|(w, c)| (*w).min(c.available))
                .sum();
            assert!(available >= 4, "unavailable: {want:?} {c:?}");
            settle(&want, &mut c);
        }
        assert_eq!(want, vec![0, 4]);
    }

    #[test]
    fn percentages_round_as_kubernetes_does() {
        let d = deployment("25%", "25%");
        assert_eq!(fenceposts(&d, 10), (3, 2));
        // Both zero (refused by validation, so never stored): one unavailable, as
        // ResolveFenceposts says.
        let mut d = deployment("1", "0");
        let ru = d
            .spec
            .strategy
            .as_mut()
            .and_then(|s| s.rolling_update.as_mut())
            .unwrap();
        ru.max_surge = Some(IntOrString::String("0%".into()));
        assert_eq!(fenceposts(&d, 10), (0, 1));
    }

    #[test]
    fn recreate_scales_up_only_when_old_pods_are_gone() {
        let mut want = vec![2, 0];
        let c = vec![
            Counts {
                active: 2,
                ready: 2,
                available: 2,
            },
            Counts::default(),
        ];
        recreate_step(1, 2, &c, &mut want);
        assert_eq!(want, vec![0, 0]);
        recreate_step(1, 2, &[Counts::default(), Counts::default()], &mut want);
        assert_eq!(want, vec![0, 2]);
    }
}
