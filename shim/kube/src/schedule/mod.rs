//! Scheduling on one node: podshim is the node, so each Pod is placed (or not) as kube-scheduler
//! would place it on a cluster of this one node, with the Pods already running here (and those
//! placed before it from the same manifest): scheduling gates, then the Filter plugins
//! (`filters`), then, when they reject the node, the PostFilter plugins' part of the message
//! (`preemption`). A Pod whose `spec.nodeName` is set bypasses the scheduler: when it names this
//! node the kubelet admits it (node affinity and NoExecute taints), otherwise no kubelet here
//! runs it. The message of a Pod left Pending is the scheduler's own
//! (`0/1 nodes are available: ...`, `FitError.Error`).

pub mod filters;
pub mod node;
mod preemption;
pub mod selector;

pub use node::{Node, Taint};

use crate::manifest::Pod;

/// Where a Pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The scheduler binds it to this node.
    Scheduled {
        /// The preferred node-affinity weight this node satisfies, of the total (scored, and on
        /// one node only informative).
        preferred: Option<(i32, i32)>,
    },
    /// `spec.nodeName` is this node: no scheduler; the kubelet admitted it.
    Assigned,
    /// Not scheduled: the `PodScheduled` condition is False with this reason
    /// (`SchedulingGated` or `Unschedulable`) and message.
    Pending {
        reason: &'static str,
        message: String,
        /// podshim's explanation (the rejecting plugin and why), not the scheduler's words.
        detail: String,
    },
    /// `spec.nodeName` names another node: the scheduler ignores the Pod and only that node's
    /// kubelet would run it.
    OtherNode(String),
    /// `spec.nodeName` is this node but the kubelet's admission refused it: phase Failed.
    Rejected { reason: String, message: String },
}

impl Decision {
    /// Whether the Pod runs here.
    pub fn runs(&self) -> bool {
        matches!(self, Decision::Scheduled { .. } | Decision::Assigned)
    }

    /// One line for the user, e.g. `Pending: Unschedulable: 0/1 nodes are available: ...`.
    pub fn describe(&self, node: &Node) -> String {
        let name = &node.name;
        match self {
            Decision::Scheduled { preferred: None } => format!("scheduled to node {name:?}"),
            Decision::Scheduled {
                preferred: Some((got, of)),
            } => format!(
                "scheduled to node {name:?} (preferred node affinity: weight {got} of {of} matches)"
            ),
            Decision::Assigned => {
                format!("assigned to node {name:?} by spec.nodeName (no scheduler), admitted")
            }
            Decision::Pending { reason, message, .. } => format!("Pending: {reason}: {message}"),
            Decision::OtherNode(other) => format!(
                "Pending: spec.nodeName is {other:?}, not this node ({name:?}): the scheduler \
                 leaves a Pod with a nodeName alone and only the kubelet of node {other:?} would run it"
            ),
            Decision::Rejected { reason, message } => format!("Failed: {reason}: {message}"),
        }
    }
}

/// The condition message of a gated Pod (the scheduling queue's `PreEnqueue` check).
pub const GATED: &str = "Scheduling is blocked due to non-empty scheduling gates";

/// Decides for `pod` on `node`, with `placed` the Pods already on it (running, not terminal).
pub fn schedule(pod: &Pod, node: &Node, placed: &[&Pod]) -> Decision {
    if let Some(name) = pod.spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        if name != node.name {
            return Decision::OtherNode(name.to_string());
        }
        return kubelet_admit(pod, node);
    }
    if !pod.spec.scheduling_gates.is_empty() {
        let gates: Vec<&str> = pod
            .spec
            .scheduling_gates
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        return Decision::Pending {
            reason: "SchedulingGated",
            message: GATED.to_string(),
            detail: format!("waiting for scheduling gates: [{}]", gates.join(" ")),
        };
    }
    if let Some(message) = node_affinity_prefilter(pod, node) {
        let post = preemption::message(pod, placed, None, node);
        return Decision::Pending {
            reason: "Unschedulable",
            message: format!("0/1 nodes are available: {message} {post}"),
            detail: "spec.affinity.nodeAffinity names nodes by metadata.name".to_string(),
        };
    }
    match filters::run(pod, node, placed) {
        None => Decision::Scheduled {
            preferred: preferred_weight(pod, node),
        },
        Some(r) => {
            let post = preemption::message(pod, placed, Some(&r), node);
            Decision::Pending {
                reason: "Unschedulable",
                message: format!("0/1 nodes are available: 1 {}. {post}", r.reason),
                detail: match r.detail.as_str() {
                    "" => format!("the {} plugin rejected node {:?}", r.plugin, node.name),
                    d => format!("the {} plugin rejected node {:?}: {d}", r.plugin, node.name),
                },
            }
        }
    }
}

/// NodeAffinity's PreFilter: terms that name nodes with `matchFields` `metadata.name In` make a
/// node list; a list that leaves this node out rejects it before any Filter runs (its status
/// is set for the nodes absent from the list), and terms whose names all conflict reject the Pod.
fn node_affinity_prefilter(pod: &Pod, node: &Node) -> Option<String> {
    let required = (pod.spec.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })?;
    let mut names: Option<std::collections::BTreeSet<&str>> = None;
    for term in &required.node_selector_terms {
        let mut term_names: Option<std::collections::BTreeSet<&str>> = None;
        for r in &term.match_fields {
            if r.key == "metadata.name" && r.operator == "In" {
                let set = r.values.iter().map(String::as_str).collect();
                term_names = Some(match term_names {
                    None => set,
                    Some(t) => t.intersection(&set).copied().collect(),
                });
            }
        }
        // A term without node names makes every node eligible (terms are ORed).
        let term_names = term_names?;
        names
            .get_or_insert_with(Default::default)
            .extend(term_names);
    }
    let names = names?;
    if names.is_empty() {
        return Some("pod affinity terms conflict.".to_string());
    }
    (!names.contains(node.name.as_str()))
        .then(|| "1 node(s) didn't satisfy plugin(s) [NodeAffinity].".to_string())
}

/// The preferred node-affinity weight this node satisfies, and the total.
fn preferred_weight(pod: &Pod, node: &Node) -> Option<(i32, i32)> {
    let na = pod.spec.affinity.as_ref()?.node_affinity.as_ref()?;
    let terms = &na.preferred_during_scheduling_ignored_during_execution;
    if terms.is_empty() {
        return None;
    }
    let total = terms.iter().map(|t| t.weight).sum();
    let got = (terms.iter())
        .filter(|t| selector::node_term(&t.preference, node))
        .map(|t| t.weight)
        .sum();
    Some((got, total))
}

/// The kubelet's admission of a Pod bound to it (`lifecycle.predicateAdmitHandler`): the
/// `kubernetes.io/os` label of the Pod, then `GeneralPredicates` (node affinity and selector),
/// then NoExecute taints. The first failure fails the Pod: `Pod was rejected: ...`.
fn kubelet_admit(pod: &Pod, node: &Node) -> Decision {
    let os = node
        .labels
        .get("kubernetes.io/os")
        .map_or("linux", String::as_str);
    if pod
        .metadata
        .labels
        .get("kubernetes.io/os")
        .is_some_and(|v| v != os)
    {
        return Decision::Rejected {
            reason: "PodOSSelectorNodeLabelDoesNotMatch".into(),
            message: "Pod was rejected: Failed to admit pod as the `kubernetes.io/os` label doesn't match node label".into(),
        };
    }
    let predicate = |name: &str, reason: &str| Decision::Rejected {
        reason: name.to_string(),
        message: format!("Pod was rejected: Predicate {name} failed: {reason}"),
    };
    if !filters::required_node_affinity(pod, node) {
        return predicate("NodeAffinity", filters::NODE_AFFINITY);
    }
    if filters::untolerated(node, pod, &["NoExecute"]).is_some() {
        return predicate(
            "TaintToleration",
            "node(s) had taints that the pod didn't tolerate",
        );
    }
    Decision::Assigned
}

#[cfg(test)]
mod tests;
