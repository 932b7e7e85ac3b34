//! The claims of a Pod when it is placed: every `persistentVolumeClaim` volume must name a claim
//! (stored, or in the same file), as kube-scheduler's VolumeBinding PreFilter requires, and a
//! `ReadWriteOncePod` claim may be used by one Pod only (the VolumeRestrictions plugin). A Pod
//! that fails stays Pending with the scheduler's message (or, bound by `spec.nodeName`, the
//! kubelet's), and nothing is created for it.

use podshim_engine::config::Config;

use super::Claims;
use crate::manifest::{Manifest, PersistentVolumeClaim, Pod};
use crate::schedule::Decision;

/// The claims a Pod may use: those of the manifest, then the stored ones.
pub struct Lookup<'a> {
    pub manifest: &'a Manifest,
    pub store: Option<&'a Claims>,
}

impl Lookup<'_> {
    /// The claim `name` of namespace `ns`, if there is one.
    pub fn claim(&self, ns: &str, name: &str) -> Option<PersistentVolumeClaim> {
        if let Some(c) = self.manifest.claim(ns, name) {
            return Some(c.clone());
        }
        let stored = self.store?.get(ns, name).ok()??;
        Some(stored.claim)
    }
}

/// The claim names of a Pod's `persistentVolumeClaim` volumes, with the volume names.
fn claim_volumes(pod: &Pod) -> impl Iterator<Item = (&str, &str)> {
    pod.spec.volumes.iter().filter_map(|v| {
        v.persistent_volume_claim
            .as_ref()
            .map(|c| (v.name.as_str(), c.claim_name.as_str()))
    })
}

/// Whether `pod` has any `persistentVolumeClaim` volume.
pub fn uses_claims(pod: &Pod) -> bool {
    claim_volumes(pod).next().is_some()
}

/// Why `pod` cannot run here for its claims, or `None`. `assigned`: the Pod names this node in
/// `spec.nodeName` (no scheduler: the kubelet's mount error). `others`: the Pods running here
/// or placed before it.
pub fn check(pod: &Pod, lookup: &Lookup<'_>, assigned: bool, others: &[&Pod]) -> Option<Decision> {
    let ns = pod.namespace();
    for (volume, name) in claim_volumes(pod) {
        let Some(claim) = lookup.claim(ns, name) else {
            if assigned {
                // The kubelet's volume manager (`WaitForAttachAndMount`) keeps the Pod in
                // ContainerCreating with this event.
                return Some(Decision::Pending {
                    reason: "FailedMount",
                    message: format!(
                        "Unable to attach or mount volumes: unmounted volumes=[{volume}], \
                         unattached volumes=[{volume}]: error processing PVC {ns}/{name}: failed \
                         to fetch PVC from API server: persistentvolumeclaims {name:?} not found"
                    ),
                    detail: format!(
                        "spec.volumes {volume:?} needs PersistentVolumeClaim {ns}/{name}: apply \
                         it (podshim apply -f) or put it in the same file"
                    ),
                });
            }
            // VolumeBinding's PreFilter: UnschedulableAndUnresolvable, which preemption
            // cannot help.
            return Some(Decision::Pending {
                reason: "Unschedulable",
                message: format!(
                    "0/1 nodes are available: persistentvolumeclaim {name:?} not found. \
                     preemption: 0/1 nodes are available: 1 Preemption is not helpful for \
                     scheduling."
                ),
                detail: format!(
                    "spec.volumes {volume:?} needs PersistentVolumeClaim {ns}/{name}: apply it \
                     (podshim apply -f) or put it in the same file"
                ),
            });
        };
        if claim.once_pod() {
            let holders = super::users(others.iter().copied(), ns, name);
            if let Some(holder) = holders.first() {
                return Some(Decision::Pending {
                    reason: "Unschedulable",
                    message: "0/1 nodes are available: 1 node has pod using \
                              PersistentVolumeClaim with the same name and ReadWriteOncePod \
                              access mode. preemption: 0/1 nodes are available: 1 No preemption \
                              victims found for incoming pod."
                        .to_string(),
                    detail: format!(
                        "PersistentVolumeClaim {ns}/{name} is ReadWriteOncePod and pod {holder} \
                         uses it"
                    ),
                });
            }
        }
    }
    None
}

/// The Pods of this instance that have not ended and use a claim (their records), for the
/// ReadWriteOncePod check and the claims' protection. Found by a look at each record's bytes, so
/// a Pod without claims costs no parse.
pub fn pods_with_claims(cfg: &Config) -> Vec<Pod> {
    let needle = b"\"claimName\"";
    crate::record::list_where(cfg, |b| b.windows(needle.len()).any(|w| w == needle))
        .into_iter()
        .filter(|e| !e.record.finished() || e.live)
        .filter_map(|e| serde_json::from_value(e.record.pod).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, claim: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "i"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}
        }))
        .unwrap()
    }

    fn manifest_with(mode: &str) -> Manifest {
        let text = format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: data}}\nspec:\n  \
             accessModes: [{mode}]\n  resources: {{requests: {{storage: 1Mi}}}}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: p}}\nspec:\n  containers: [{{name: c, \
             image: i}}]\n"
        );
        crate::manifest::parse(&text).unwrap()
    }

    #[test]
    fn a_missing_claim_leaves_the_pod_pending_with_the_schedulers_or_the_kubelets_words() {
        let m = Manifest::default();
        let lookup = Lookup {
            manifest: &m,
            store: None,
        };
        let Some(Decision::Pending {
            reason, message, ..
        }) = check(&pod("web", "gone"), &lookup, false, &[])
        else {
            panic!("placed")
        };
        assert_eq!(reason, "Unschedulable");
        assert!(
            message.starts_with(
                r#"0/1 nodes are available: persistentvolumeclaim "gone" not found. preemption"#
            ),
            "{message}"
        );
        let Some(Decision::Pending {
            reason, message, ..
        }) = check(&pod("web", "gone"), &lookup, true, &[])
        else {
            panic!("placed")
        };
        assert_eq!(reason, "FailedMount");
        assert!(message.contains("persistentvolumeclaims \"gone\" not found"));
    }

    #[test]
    fn a_claim_of_the_same_file_is_found_and_read_write_once_pod_admits_one_pod() {
        let m = manifest_with("ReadWriteOnce");
        let lookup = Lookup {
            manifest: &m,
            store: None,
        };
        let first = pod("a", "data");
        assert_eq!(check(&pod("b", "data"), &lookup, false, &[&first]), None);
        let m = manifest_with("ReadWriteOncePod");
        let lookup = Lookup {
            manifest: &m,
            store: None,
        };
        assert_eq!(check(&first, &lookup, false, &[]), None);
        let Some(Decision::Pending { message, .. }) =
            check(&pod("b", "data"), &lookup, false, &[&first])
        else {
            panic!("placed")
        };
        assert!(
            message.contains("ReadWriteOncePod access mode"),
            "{message}"
        );
    }
}
