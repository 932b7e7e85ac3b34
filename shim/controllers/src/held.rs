//! Controllers' Pods that cannot be placed for their PersistentVolumeClaims (one that does not
//! exist, or a ReadWriteOncePod claim another Pod uses): kube-scheduler keeps such a Pod Pending
//! with `PodScheduled=False`, reason Unschedulable and VolumeBinding's message, and binds it
//! when the claim appears. Here the Pod is kept as a *held* file
//! (`<state>/controllers/held/<key>.json`, the template's Pod and the message); every pass of
//! any controller (`pods::list`) tries the held Pods again and starts those that now fit.
//! A held Pod counts as an active, Pending Pod for its owner (no replacement is made), shows in
//! `get pods`, and stopping or deleting it removes the file.

use std::fs;
use std::path::PathBuf;

use podshim_kube::manifest::{Manifest, Pod};
use podshim_kube::pod::pod_key;
use podshim_kube::schedule::Decision;
use podshim_kube::storage::{admit, Claims};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock;
use crate::pods::{Context, NewPod, PodInfo};
use crate::store::write_atomic;

/// A held Pod as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Held {
    pod: NewPod,
    /// The scheduler's message (`0/1 nodes are available: ...`).
    message: String,
    created: String,
}

fn dir(ctx: &Context) -> PathBuf {
    ctx.run_dir().join("held")
}

/// The Pod object `p` stands for (no status), as the manifest reader takes it.
pub fn object(p: &NewPod) -> Value {
    let mut spec = serde_json::to_value(&p.spec).unwrap_or_default();
    spec["nodeName"] = Value::Null;
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": p.name, "namespace": p.namespace,
                     "labels": p.labels, "annotations": p.annotations,
                     "ownerReferences": [p.owner.to_value()]},
        "spec": spec,
    })
}

/// Why `p` cannot be placed for its claims (the scheduler's message), or `None`.
pub fn unschedulable(ctx: &Context, p: &NewPod) -> Option<String> {
    let pod: Pod = serde_json::from_value(object(p)).ok()?;
    if !admit::uses_claims(&pod) {
        return None;
    }
    let store = Claims::existing(&ctx.cfg.root);
    let manifest = Manifest::default();
    let lookup = admit::Lookup {
        manifest: &manifest,
        store: store.as_ref(),
    };
    let users = admit::pods_with_claims(&ctx.cfg);
    let others: Vec<&Pod> = users.iter().collect();
    // Not `assigned`: a controller's Pod goes through the scheduler in Kubernetes.
    match admit::check(&pod, &lookup, false, &others)? {
        Decision::Pending { message, .. } => Some(message),
        _ => None,
    }
}

/// Keeps `p` Pending with the scheduler's `message`; returns its key.
pub fn hold(ctx: &Context, p: &NewPod, message: String) -> std::io::Result<String> {
    let key = pod_key(&p.namespace, &p.name);
    let d = dir(ctx);
    podshim_engine::private::create_dir_all(&d)?;
    let held = Held {
        pod: p.clone(),
        message,
        created: clock::format(chrono::Utc::now()),
    };
    write_atomic(&d.join(format!("{key}.json")), &serde_json::to_vec(&held)?)
        .map_err(std::io::Error::other)?;
    Ok(key)
}

/// Forgets the held Pod `key` (stopped or deleted before it could start).
pub fn remove(ctx: &Context, key: &str) {
    let _ = fs::remove_file(dir(ctx).join(format!("{key}.json")));
}

fn read(ctx: &Context) -> Vec<(String, Held)> {
    let Ok(entries) = fs::read_dir(dir(ctx)) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Held)> = entries
        .flatten()
        .filter_map(|f| {
            let name = f.file_name().to_string_lossy().to_string();
            let key = name.strip_suffix(".json")?.to_string();
            let held = serde_json::from_slice(&fs::read(f.path()).ok()?).ok()?;
            Some((key, held))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Starts the held Pods that fit now (their claims exist); returns those still held.
pub fn retry(ctx: &Context) -> Vec<PodInfo> {
    let mut still = Vec::new();
    for (key, h) in read(ctx) {
        if let Some(message) = unschedulable(ctx, &h.pod) {
            let mut h = h;
            if message != h.message {
                h.message = message;
                let _ = hold(ctx, &h.pod, h.message.clone());
            }
            still.push(info(&key, &h));
            continue;
        }
        // Taken by renaming: of the controllers that see it at once, one starts it.
        let path = dir(ctx).join(format!("{key}.json"));
        let taken = dir(ctx).join(format!("{key}.starting"));
        if fs::rename(&path, &taken).is_err() {
            continue;
        }
        for r in crate::pods::create(ctx, std::slice::from_ref(&h.pod)) {
            if let Err(e) = r {
                eprintln!("{}/{}: {e}", h.pod.namespace, h.pod.name);
            }
        }
        let _ = fs::remove_file(&taken);
    }
    still
}

fn info(key: &str, h: &Held) -> PodInfo {
    PodInfo {
        key: key.to_string(),
        namespace: h.pod.namespace.clone(),
        name: h.pod.name.clone(),
        labels: h.pod.labels.clone(),
        annotations: h.pod.annotations.clone(),
        owner: Some(h.pod.owner.clone()),
        phase: "Pending".into(),
        ready: false,
        ready_since: None,
        created: clock::parse(&h.created),
        restarts: 0,
        terminating: false,
        lost: false,
        live: false,
        starting: false,
        held: true,
        ip: None,
        supervisor_pid: 0,
        exits: Vec::new(),
        conditions: vec![("PodScheduled".into(), "False".into())],
    }
}

/// The held Pods as `get pods -o yaml` shows them: Pending, `PodScheduled=False` with the
/// scheduler's reason and message.
pub fn objects(ctx: &Context) -> Vec<Value> {
    read(ctx)
        .into_iter()
        .map(|(_, h)| {
            let mut o = object(&h.pod);
            o["metadata"]["creationTimestamp"] = h.created.clone().into();
            o["status"] = serde_json::json!({
                "phase": "Pending",
                "conditions": [{
                    "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": h.message, "lastTransitionTime": h.created,
                }],
            });
            o
        })
        .collect()
}
