//! The DaemonSet controller on this one node (`pkg/controller/daemon`): one Pod from the
//! template when the node matches its `nodeSelector`, none otherwise. Pods carry the
//! `controller-revision-hash` label of the template they were made from; a changed template is
//! rolled out with `RollingUpdate` (`maxSurge` 0: the old Pod goes, then the new one comes;
//! `maxSurge` 1: the new one first, the old one once the new one is available) or left to the
//! user with `OnDelete` (a Pod removed is replaced from the current template).

use std::time::Duration;

use podshim_kube::schedule::{selector, Node};
use serde_json::json;

use crate::api::{DaemonSet, Kind, OwnerReference};
use crate::names::{random_suffix, template_hash};
use crate::pods::{self, Context, NewPod, PodInfo};
use crate::process::Memory as All;
use crate::replicaset::{owned, put_status};

pub const REVISION_HASH: &str = "controller-revision-hash";

pub fn run(ctx: &Context, ds: &DaemonSet, all: &mut All) -> Duration {
    let now = ctx.clock.now();
    let ns = ds
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let pace = all.replica_sets.entry(uid.clone()).or_default();
    let (pods, _) = pods::list(ctx);
    let mine = owned(&pods, &uid);
    let ended: Vec<&PodInfo> = mine
        .iter()
        .copied()
        .filter(|p| p.finished() || p.lost)
        .collect();
    pods::forget(ctx, &ended);
    let node = Node::this_host(&[], Vec::new());
    let wanted = selector::node_selector_map(&ds.spec.template.spec.node_selector, &node);
    let hash = template_hash(
        &serde_json::to_value(&ds.spec.template).unwrap_or_default(),
        None,
    );
    let active: Vec<&PodInfo> = mine
        .iter()
        .copied()
        .filter(|p| p.active() && !pace.stopping.contains(&p.key))
        .collect();
    let (new, old): (Vec<&PodInfo>, Vec<&PodInfo>) = active
        .iter()
        .copied()
        .partition(|p| p.labels.get(REVISION_HASH) == Some(&hash));
    let min_ready = ds.spec.min_ready_seconds.unwrap_or(0);
    let strategy = ds.spec.update_strategy.clone().unwrap_or_default();
    let on_delete = strategy.kind.as_deref() == Some("OnDelete");
    let surge = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.max_surge.as_ref())
        .is_some_and(|s| crate::deployment::scaled(Some(s), 1, true) > 0);
    let mut stop: Vec<&PodInfo> = Vec::new();
    let mut create = false;
    if !wanted {
        stop.extend(active.iter().copied());
    } else if active.is_empty() {
        create = true;
    } else if !on_delete && !old.is_empty() {
        if new.is_empty() {
            if surge {
                create = true;
            } else {
                stop.extend(old.iter().copied());
            }
        } else if new.iter().any(|p| p.available(min_ready, now)) {
            stop.extend(old.iter().copied());
        }
    } else if active.len() > 1 {
        // More than one Pod on the node: keep the newest of the current template.
        let mut extra: Vec<&PodInfo> = active.clone();
        extra.sort_by_key(|p| std::cmp::Reverse(p.created));
        stop.extend(extra.into_iter().skip(1));
    }
    if !stop.is_empty() {
        pods::request_stop(ctx, &stop, None);
        pace.stopping.extend(stop.iter().map(|p| p.key.clone()));
    }
    if create {
        let t = &ds.spec.template;
        let mut labels = t.metadata.labels.clone();
        labels.insert(REVISION_HASH.into(), hash.clone());
        let p = NewPod {
            namespace: ns.clone(),
            name: format!("{}-{}", ds.metadata.name, random_suffix(5)),
            generate_name: Some(format!("{}-", ds.metadata.name)),
            labels,
            annotations: t.metadata.annotations.clone(),
            spec: t.spec.clone(),
            owner: OwnerReference::controller_of(Kind::DaemonSet, &ds.metadata),
        };
        for r in pods::create(ctx, &[p]) {
            if let Err(e) = r {
                eprintln!("daemonset {ns}/{}: {e}", ds.metadata.name);
            }
        }
    }
    let desired = usize::from(wanted);
    let current = usize::from(!active.is_empty());
    let ready = usize::from(active.iter().any(|p| p.ready));
    let available = usize::from(active.iter().any(|p| p.available(min_ready, now)));
    let st = json!({
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": current.min(desired),
        "numberMisscheduled": if wanted { 0 } else { current },
        "numberReady": ready,
        "updatedNumberScheduled": usize::from(!new.is_empty()),
        "numberAvailable": available,
        "numberUnavailable": desired.saturating_sub(available),
        "observedGeneration": ds.metadata.generation.unwrap_or(1),
    });
    put_status(ctx, Kind::DaemonSet, &ns, &ds.metadata.name, &st);
    Duration::from_millis(500)
}
