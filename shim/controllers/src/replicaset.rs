//! The ReplicaSet controller (`pkg/controller/replicaset`): exactly `replicas` active Pods with
//! its controller reference, made from the template as it is *now* (Pods already made keep
//! theirs), named `<name>-<5 random characters>`. Missing Pods are made all at once; extra Pods
//! are removed in `ActivePods` order (still starting, not ready, more restarts, newest first).
//! Pods it owns that have ended (or whose supervisor died) are replaced and their records
//! removed. A failure to make a Pod is retried with a growing delay and shown as the
//! `ReplicaFailure` condition. Pods that match its selector and have no controller are
//! adopted (`ClaimPods`).

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use podshim_kube::schedule::selector;

use crate::api::{Kind, OwnerReference, ReplicaSet};
use crate::names::random_suffix;
use crate::pods::{self, Context, NewPod, PodInfo};
use crate::process::Memory;

/// Retry pacing after failed creations.
#[derive(Debug, Default, Clone)]
pub struct Pace {
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    /// Pods asked to stop whose records do not say so yet: not counted again.
    pub(crate) stopping: std::collections::BTreeSet<String>,
}

/// `controller.ActivePods` order: the first are the first to go.
fn deletion_rank(a: &PodInfo, b: &PodInfo) -> Ordering {
    b.starting
        .cmp(&a.starting)
        .then(a.ready.cmp(&b.ready))
        .then(b.restarts.cmp(&a.restarts))
        .then(b.created.cmp(&a.created))
}

/// The Pods of an owner: its controller reference names the owner's uid.
pub fn owned<'a>(pods: &'a [PodInfo], uid: &str) -> Vec<&'a PodInfo> {
    pods.iter()
        .filter(|p| p.owner.as_ref().is_some_and(|o| o.uid == uid))
        .collect()
}

/// `ClaimPods`' adoption: active Pods of the namespace that match the selector and have no
/// controller (left by `delete --cascade=orphan`, or made by `podshim run` with matching
/// labels) become the ReplicaSet's, unless it is being deleted. They count from this pass on;
/// their records say so once their supervisors have applied the change.
fn adopt<'a>(ctx: &Context, rs: &ReplicaSet, pods: &'a [PodInfo], ns: &str) -> Vec<&'a PodInfo> {
    if rs.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let orphans: Vec<&PodInfo> = pods
        .iter()
        .filter(|p| {
            p.owner.is_none()
                && p.namespace == ns
                && p.active()
                && p.live
                && !p.starting
                && !p.lost
                && selector::label_selector(rs.spec.selector.as_ref(), &p.labels)
        })
        .collect();
    let owner = OwnerReference::controller_of(Kind::ReplicaSet, &rs.metadata);
    for p in &orphans {
        pods::set_owner(ctx, p, Some(&owner));
    }
    orphans
}

/// One pass over a ReplicaSet: Pods made or removed; returns its status.
pub fn sync(
    ctx: &Context,
    rs: &ReplicaSet,
    pods: &[PodInfo],
    failures: &[String],
    pace: &mut Pace,
) -> Value {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let ns = rs
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let mut mine = owned(pods, &uid);
    mine.extend(adopt(ctx, rs, pods, &ns));
    // Ended Pods are not counted (`FilterActivePods`); their records go once torn down.
    let ended: Vec<&PodInfo> = mine
        .iter()
        .copied()
        .filter(|p| p.finished() || p.lost)
        .collect();
    if !ended.is_empty() {
        pods::forget(ctx, &ended);
    }
    pace.stopping
        .retain(|k| mine.iter().any(|p| &p.key == k && p.active()));
    let mut active: Vec<&PodInfo> = mine
        .iter()
        .copied()
        .filter(|p| p.active() && !pace.stopping.contains(&p.key))
        .collect();
    let want = rs.spec.replicas.unwrap_or(1).max(0) as usize;
    if let Some(f) = failures.first() {
        pace.last_error = Some(f.clone());
    }
    let now = Instant::now();
    if active.len() < want && pace.retry_at.is_none_or(|t| now >= t) {
        let owner = OwnerReference::controller_of(Kind::ReplicaSet, &rs.metadata);
        let t = &rs.spec.template;
        let new: Vec<NewPod> = (active.len()..want)
            .map(|_| NewPod {
                namespace: ns.clone(),
                name: format!("{}-{}", rs.metadata.name, random_suffix(5)),
                generate_name: Some(format!("{}-", rs.metadata.name)),
                labels: t.metadata.labels.clone(),
                annotations: t.metadata.annotations.clone(),
                spec: t.spec.clone(),
                owner: owner.clone(),
            })
            .collect();
        let results = pods::create(ctx, &new);
        let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        if let Some(e) = errors.first() {
            pace.failures += 1;
            pace.last_error = Some((*e).clone());
            let delay = Duration::from_millis(100 << pace.failures.min(7));
            pace.retry_at = Some(now + delay.min(Duration::from_secs(10)));
            eprintln!("replicaset {}/{}: {e}", ns, rs.metadata.name);
        } else if failures.is_empty() {
            pace.failures = 0;
            pace.retry_at = None;
            pace.last_error = None;
        }
    } else if active.len() > want {
        active.sort_by(|a, b| deletion_rank(a, b));
        let extra: Vec<&PodInfo> = active[..active.len() - want]
            .iter()
            .copied()
            .filter(|p| !p.starting)
            .collect();
        pods::request_stop(ctx, &extra, None);
        pace.stopping.extend(extra.iter().map(|p| p.key.clone()));
        for p in &extra {
            crate::events::normal(
                ctx,
                Kind::ReplicaSet,
                &ns,
                &rs.metadata.name,
                "SuccessfulDelete",
                &format!("Deleted pod: {}", p.name),
            );
        }
    }
    status(rs, &mine, &ctx.clock.now(), pace)
}

/// `calculateStatus`: counts of the owner's Pods.
fn status(
    rs: &ReplicaSet,
    mine: &[&PodInfo],
    now: &chrono::DateTime<chrono::Utc>,
    pace: &Pace,
) -> Value {
    let active: Vec<&&PodInfo> = mine.iter().filter(|p| p.active()).collect();
    let template_labels = &rs.spec.template.metadata.labels;
    let fully = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels.get(k) == Some(v))
        })
        .count();
    let min_ready = rs.spec.min_ready_seconds.unwrap_or(0);
    let ready = active.iter().filter(|p| p.ready).count();
    let available = active
        .iter()
        .filter(|p| p.available(min_ready, *now))
        .count();
    let mut s = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": fully,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs.metadata.generation.unwrap_or(1),
    });
    if let Some(e) = &pace.last_error {
        s["conditions"] = json!([{
            "type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
            "message": e,
        }]);
    }
    s
}

/// Stores a status when it changed (its own write wakes the controller again otherwise).
pub fn put_status(ctx: &Context, kind: Kind, ns: &str, name: &str, status: &Value) {
    if ctx.store.status(kind, ns, name).as_ref() != Some(status) {
        if let Err(e) = ctx.store.put_status(kind, ns, name, status) {
            eprintln!("{}/{name}: {e}", kind.name());
        }
    }
}

/// A standalone ReplicaSet's pass.
pub fn run(ctx: &Context, rs: &ReplicaSet, memory: &mut Memory) -> Duration {
    let (pods, failures) = pods::list(ctx);
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let pace = memory.replica_sets.entry(uid).or_default();
    let st = sync(ctx, rs, &pods, &failures, pace);
    let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
    put_status(ctx, Kind::ReplicaSet, ns, &rs.metadata.name, &st);
    Duration::from_millis(500)
}
