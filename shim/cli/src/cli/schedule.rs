//! `podshim run` as the scheduler of this one node: each Pod of the manifest is placed (or not)
//! against the Pods running here (their records) and those placed before it from the same file,
//! before anything is pulled or created. A placed Pod is bound (`spec.nodeName` set, as the
//! scheduler's binding does); if any cannot be placed, none runs.

use anyhow::Result;
use podshim_engine::config::Config;
use podshim_kube::manifest::{Manifest, Pod};
use podshim_kube::record;
use podshim_kube::schedule::{self, Decision, Node};
use podshim_kube::storage::admit;

/// The node `--node-label` and `--node-taint` describe.
pub fn node(labels: &[String], taints: &[String]) -> Result<Node> {
    let labels = labels
        .iter()
        .map(|l| schedule::node::parse_label(l).map_err(|e| anyhow::anyhow!("--node-label {e}")))
        .collect::<Result<Vec<_>>>()?;
    let taints = taints
        .iter()
        .map(|t| schedule::node::parse_taint(t).map_err(|e| anyhow::anyhow!("--node-taint {e}")))
        .collect::<Result<Vec<_>>>()?;
    Ok(Node::this_host(&labels, taints))
}

/// The Pods running on this node as the scheduler sees them: those of this instance whose
/// phase is not terminal and that are not being stopped (a terminating Pod no longer counts for
/// topology spreading). With `replacing`, the Pods the manifest replaces are left out.
fn running(cfg: &Config, manifest: &Manifest, replacing: bool) -> Vec<Pod> {
    let replaced = |ns: &str, name: &str| {
        replacing
            && manifest
                .pods
                .iter()
                .any(|p| p.namespace() == ns && p.name() == name)
    };
    // The Pods here matter to the scheduler's InterPodAffinity and PodTopologySpread only:
    // all of them when a Pod of the manifest has such terms, else only those whose required
    // anti-affinity could keep a new Pod away (symmetry), found by their records' markers, so
    // that a plain Pod's start reads no other Pod's record.
    let needs_all = manifest.pods.iter().any(|p| {
        !p.spec.topology_spread_constraints.is_empty()
            || p.spec
                .affinity
                .as_ref()
                .is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
    });
    let records = match needs_all {
        true => record::list(cfg),
        false => record::anti::list(cfg),
    };
    records
        .into_iter()
        .filter(|e| !matches!(e.status().phase.as_str(), "Succeeded" | "Failed"))
        .filter(|e| !e.record.terminating)
        .filter(|e| !replaced(&e.record.namespace, &e.record.name))
        .filter_map(|e| match serde_json::from_value::<Pod>(e.record.pod.clone()) {
            Ok(p) => Some(p),
            Err(why) => {
                eprintln!(
                    "Warning: pod {}/{}: its record cannot be read for scheduling ({why}); it is not counted",
                    e.record.namespace, e.record.name
                );
                None
            }
        })
        .collect()
}

/// Decides for every Pod of the manifest, binding those placed here; prints each Pod that is
/// not placed (with the scheduler's message) and, with `verbose`, those that are. Returns
/// whether every Pod runs.
pub fn place(
    cfg: &Config,
    node: &Node,
    manifest: &mut Manifest,
    replacing: bool,
    verbose: bool,
) -> bool {
    let running = running(cfg, manifest, replacing);
    let mut placed: Vec<Pod> = Vec::new();
    let mut all = true;
    let file_claims = Manifest {
        persistent_volume_claims: manifest.persistent_volume_claims.clone(),
        ..Manifest::default()
    };
    let stored_claims = podshim_kube::storage::Claims::existing(&cfg.root);
    let lookup = admit::Lookup {
        manifest: &file_claims,
        store: stored_claims.as_ref(),
    };
    let claim_users = match manifest.pods.iter().any(admit::uses_claims) {
        true => admit::pods_with_claims(cfg),
        false => Vec::new(),
    };
    for pod in manifest.pods.iter_mut() {
        let others: Vec<&Pod> = running.iter().chain(&placed).collect();
        let decision = schedule::schedule(pod, node, &others);
        let decision = match decision.runs() && admit::uses_claims(pod) {
            true => {
                let replaced = |p: &&Pod| {
                    replacing && p.namespace() == pod.namespace() && p.name() == pod.name()
                };
                let users: Vec<&Pod> = claim_users
                    .iter()
                    .filter(|p| !replaced(p))
                    .chain(&placed)
                    .collect();
                let assigned = decision == Decision::Assigned;
                admit::check(pod, &lookup, assigned, &users).unwrap_or(decision)
            }
            false => decision,
        };
        let name = pod.name().to_string();
        if decision.runs() {
            pod.spec.node_name = Some(node.name.clone());
            placed.push(pod.clone());
            if verbose {
                eprintln!("pod {name:?}: {}", decision.describe(node));
            }
            continue;
        }
        all = false;
        eprintln!("pod {name:?}: {}", decision.describe(node));
        if let Decision::Pending { detail, reason, .. } = &decision {
            eprintln!("  podshim: {detail}");
            if *reason == "Unschedulable" {
                eprintln!(
                    "  node {:?}: labels {}; taints: {} (set with --node-label, --node-taint)",
                    node.name,
                    node.describe_labels(),
                    node.describe_taints()
                );
            }
        }
    }
    all
}
