//! Owner-reference changes from the controllers: a ReplicaSet adopting a Pod that matches its
//! selector and has no controller, or a deletion with `--cascade=orphan` releasing its Pods (the
//! garbage collector's orphan finalizer). Only the supervisor writes a live Pod's record, so a
//! controller leaves the new `ownerReferences` in a request file next to the record and sends
//! SIGUSR1, as `podshim stop` does; the supervisor applies it to the Pod object and rewrites
//! the record.

use std::fs;
use std::path::PathBuf;

use podshim_engine::config::Config;

use super::slot::PodRun;
use super::Supervision;
use crate::pod::pod_key;
use crate::record;

/// The request file: the Pod's new `ownerReferences` (a JSON array; empty removes them).
pub fn owners_request_path(cfg: &Config, key: &str) -> PathBuf {
    record::dir(cfg).join(format!("{key}.owners"))
}

/// Sets (or, with an empty list, removes) `metadata.ownerReferences` of a Pod object.
pub fn set_owner_references(object: &mut serde_json::Value, refs: serde_json::Value) {
    let Some(meta) = object.get_mut("metadata").and_then(|m| m.as_object_mut()) else {
        return;
    };
    if refs.as_array().is_none_or(|a| a.is_empty()) {
        meta.remove("ownerReferences");
    } else {
        meta.insert("ownerReferences".into(), refs);
    }
}

impl Supervision<'_> {
    pub(super) fn take_owner_requests(&self, pods: &mut [PodRun]) {
        for pod in pods.iter_mut() {
            let spec = &pod.plan.sandbox;
            let path = owners_request_path(self.cfg, &pod_key(&spec.namespace, &spec.name));
            let Ok(data) = fs::read(&path) else { continue };
            let _ = fs::remove_file(&path);
            let Ok(refs) = serde_json::from_slice::<serde_json::Value>(&data) else {
                continue;
            };
            set_owner_references(&mut pod.object, refs);
            pod.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owner_references_set_and_removed() {
        let mut pod = json!({"metadata": {"name": "p", "ownerReferences": [{"uid": "a"}]}});
        set_owner_references(&mut pod, json!([{"uid": "b", "controller": true}]));
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "b");
        set_owner_references(&mut pod, json!([]));
        assert!(pod["metadata"].get("ownerReferences").is_none());
        assert_eq!(pod["metadata"]["name"], "p");
    }
}
