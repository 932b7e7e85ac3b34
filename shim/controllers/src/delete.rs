//! Deleting a workload, as the garbage collector does: `podshim delete` marks the object
//! (`metadata.deletionTimestamp` and the propagation policy as an annotation), and its
//! controller finishes it: what the object owns goes first (Pods stopped within their grace
//! period, a Deployment's ReplicaSets, a CronJob's Jobs), then the object. With
//! `--cascade=orphan` the owned Pods keep running.

use podshim_kube::pod::pod_key;

use crate::api::{controller_of, Kind, Workload};
use crate::clock;
use crate::pods::{self, Context, PodInfo};
use crate::store::StoreError;

/// The annotation that carries the propagation policy to the controller.
pub const PROPAGATION: &str = "podshim.io/propagation-policy";

/// Marks an object for deletion (`Background`, `Foreground` or `Orphan`).
pub fn mark(ctx: &Context, w: &Workload, policy: &str) -> Result<(), StoreError> {
    let mut w = w.clone();
    let meta = w.metadata_mut();
    meta.deletion_timestamp = Some(serde_json::Value::String(clock::format(ctx.clock.now())));
    meta.annotations.insert(PROPAGATION.into(), policy.into());
    ctx.store.put(&w)
}

/// Every uid whose Pods go with `w`: its own and its ReplicaSets' (a Deployment).
fn owner_uids(ctx: &Context, w: &Workload) -> Vec<String> {
    let uid = w.metadata().uid.clone().unwrap_or_default();
    let mut uids = vec![uid.clone()];
    if w.kind() == Kind::Deployment {
        for rs in ctx.store.list(Kind::ReplicaSet) {
            if controller_of(&rs.metadata().owner_references).is_some_and(|o| o.uid == uid) {
                uids.push(rs.metadata().uid.clone().unwrap_or_default());
            }
        }
    }
    uids
}

/// The controller's part of a deletion: owned things, then the object.
pub fn finish(ctx: &Context, w: &Workload) {
    let orphan = w
        .metadata()
        .annotations
        .get(PROPAGATION)
        .map(String::as_str)
        == Some("Orphan");
    let uids = owner_uids(ctx, w);
    let uid = w.metadata().uid.clone().unwrap_or_default();
    // A CronJob's Jobs are deleted with the same policy; their controllers do the rest.
    for job in ctx.store.list(Kind::Job) {
        if controller_of(&job.metadata().owner_references).is_some_and(|o| o.uid == uid) {
            finish(ctx, &job);
        }
    }
    let (all, _) = pods::list(ctx);
    let mine: Vec<&PodInfo> = all
        .iter()
        .filter(|p| p.owner.as_ref().is_some_and(|o| uids.contains(&o.uid)))
        .collect();
    if orphan {
        // The orphan finalizer: the Pods lose their owner references, so a ReplicaSet whose
        // selector matches them may adopt them.
        for p in mine {
            pods::set_owner(ctx, p, None);
        }
    } else {
        pods::delete_and_wait(ctx, &mine, None);
    }
    if w.kind() == Kind::Deployment {
        for rs in ctx.store.list(Kind::ReplicaSet) {
            if controller_of(&rs.metadata().owner_references).is_some_and(|o| o.uid == uid) {
                let _ = ctx
                    .store
                    .remove(Kind::ReplicaSet, rs.namespace(), rs.name());
                crate::events::remove(ctx, Kind::ReplicaSet, rs.namespace(), rs.name());
            }
        }
    }
    let _ = ctx.store.remove(w.kind(), w.namespace(), w.name());
    crate::events::remove(ctx, w.kind(), w.namespace(), w.name());
}

/// Removes a Pod of this instance made by nobody (`podshim delete pod NAME`): as `rm -f`.
pub fn pod(ctx: &Context, ns: &str, name: &str) -> bool {
    let key = pod_key(ns, name);
    let (all, _) = pods::list(ctx);
    let Some(p) = all.iter().find(|p| p.key == key) else {
        return false;
    };
    pods::delete_and_wait(ctx, &[p], None);
    true
}
