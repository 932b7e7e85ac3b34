//! kube-scheduler's Filter plugins that decide whether a Pod fits this node, in the default
//! profile's order (TaintToleration, NodeAffinity, PodTopologySpread, InterPodAffinity), each
//! with its reason string and its status code (`UnschedulableAndUnresolvable`: preemption cannot
//! help; `Unschedulable`: removing Pods might). Sources: `pkg/scheduler/framework/plugins/*`.

use super::selector::{self, namespace_labels};
use super::{Node, Taint};
use crate::manifest::{Pod, PodAffinityTerm, Toleration};

/// `nodeaffinity.ErrReasonPod`.
pub const NODE_AFFINITY: &str = "node(s) didn't match Pod's node affinity/selector";
/// `tainttoleration` Filter's reason (since it stopped naming the taint).
pub const UNTOLERATED_TAINT: &str = "node(s) had untolerated taint(s)";
/// `podtopologyspread.ErrReasonConstraintsNotMatch`.
pub const SPREAD: &str = "node(s) didn't match pod topology spread constraints";
/// `podtopologyspread.ErrReasonNodeLabelNotMatch`.
pub const SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";
/// `interpodaffinity.ErrReasonAffinityRulesNotMatch`.
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// `interpodaffinity.ErrReasonAntiAffinityRulesNotMatch`.
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
/// `interpodaffinity.ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// A Filter plugin's rejection of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub plugin: &'static str,
    pub reason: &'static str,
    /// `Unschedulable` (preemption may help) rather than `UnschedulableAndUnresolvable`.
    pub resolvable: bool,
    /// What podshim adds to explain it (not part of the scheduler's message).
    pub detail: String,
}

fn reject(
    plugin: &'static str,
    reason: &'static str,
    resolvable: bool,
    detail: String,
) -> Option<Rejection> {
    Some(Rejection {
        plugin,
        reason,
        resolvable,
        detail,
    })
}

/// `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or("");
    let key = t.key.as_deref().unwrap_or("");
    if (!effect.is_empty() && effect != taint.effect) || (!key.is_empty() && key != taint.key) {
        return false;
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value,
        "Exists" => true,
        _ => false,
    }
}

/// `FindMatchingUntoleratedTaint` over the taints whose effect `effects` lists.
pub fn untolerated<'a>(node: &'a Node, pod: &Pod, effects: &[&str]) -> Option<&'a Taint> {
    node.taints.iter().find(|taint| {
        effects.contains(&taint.effect.as_str())
            && !pod.spec.tolerations.iter().any(|t| tolerates(t, taint))
    })
}

/// TaintToleration: NoSchedule and NoExecute taints must be tolerated (PreferNoSchedule only
/// lowers the node's score).
pub fn taint_toleration(pod: &Pod, node: &Node) -> Option<Rejection> {
    let taint = untolerated(node, pod, &["NoSchedule", "NoExecute"])?;
    reject(
        "TaintToleration",
        UNTOLERATED_TAINT,
        false,
        format!("taint {taint} is not tolerated"),
    )
}

/// `GetRequiredNodeAffinity(pod).Match(node)`: the `nodeSelector` map and the required node
/// affinity terms (ORed).
pub fn required_node_affinity(pod: &Pod, node: &Node) -> bool {
    if !selector::node_selector_map(&pod.spec.node_selector, node) {
        return false;
    }
    let required = (pod.spec.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    required.is_none_or(|ns| {
        ns.node_selector_terms
            .iter()
            .any(|t| selector::node_term(t, node))
    })
}

/// NodeAffinity's Filter.
pub fn node_affinity(pod: &Pod, node: &Node) -> Option<Rejection> {
    if required_node_affinity(pod, node) {
        return None;
    }
    reject("NodeAffinity", NODE_AFFINITY, false, String::new())
}

/// PodTopologySpread's Filter for the `DoNotSchedule` constraints, with this node as the only
/// domain of each: the node must have the topology key; `skew = matching Pods here + (1 if the
/// Pod matches itself) - global minimum`, the minimum being the count here unless `minDomains`
/// asks for more domains than the one there is (then 0).
pub fn topology_spread(pod: &Pod, node: &Node, placed: &[&Pod]) -> Option<Rejection> {
    for (i, c) in pod.spec.topology_spread_constraints.iter().enumerate() {
        if c.when_unsatisfiable != "DoNotSchedule" {
            continue;
        }
        if !node.labels.contains_key(&c.topology_key) {
            let why = format!(
                "the node has no label {:?} (constraint {i})",
                c.topology_key
            );
            return reject("PodTopologySpread", SPREAD_LABEL, false, why);
        }
        // matchLabelKeys: `key In [the Pod's value]` for each key the Pod has a label for.
        let mut sel = c.label_selector.clone();
        if let Some(s) = sel.as_mut() {
            for k in &c.match_label_keys {
                if let Some(v) = pod.metadata.labels.get(k) {
                    s.match_expressions
                        .push(crate::manifest::LabelSelectorRequirement {
                            key: k.clone(),
                            operator: "In".into(),
                            values: vec![v.clone()],
                        });
                }
            }
        }
        let matching = (placed.iter())
            .filter(|p| p.namespace() == pod.namespace())
            .filter(|p| selector::label_selector(sel.as_ref(), &p.metadata.labels))
            .count() as i64;
        let min = if c.min_domains.unwrap_or(1) > 1 {
            0
        } else {
            matching
        };
        let own = selector::label_selector(sel.as_ref(), &pod.metadata.labels) as i64;
        let skew = matching + own - min;
        if skew > i64::from(c.max_skew) {
            let why = format!(
                "constraint {i}: {matching} matching Pod(s) here, skew {skew} > maxSkew {} \
                 (one domain, minDomains {})",
                c.max_skew,
                c.min_domains.unwrap_or(1)
            );
            return reject("PodTopologySpread", SPREAD, true, why);
        }
    }
    None
}

/// Whether `term` of a Pod in namespace `owner_ns` selects `target` (`AffinityTerm.Matches`):
/// a term without namespaces or a namespace selector means the owner's namespace.
fn term_selects(term: &PodAffinityTerm, owner_ns: &str, target: &Pod) -> bool {
    let ns = target.namespace();
    let ns_ok = if term.namespaces.is_empty() && term.namespace_selector.is_none() {
        ns == owner_ns
    } else {
        term.namespaces.iter().any(|n| n == ns)
            || selector::label_selector(term.namespace_selector.as_ref(), &namespace_labels(ns))
    };
    ns_ok && selector::label_selector(term.label_selector.as_ref(), &target.metadata.labels)
}

fn required_terms(pod: &Pod, anti: bool) -> &[PodAffinityTerm] {
    let a = pod.spec.affinity.as_ref();
    let pa = a.and_then(|a| match anti {
        true => a.pod_anti_affinity.as_ref(),
        false => a.pod_affinity.as_ref(),
    });
    pa.map_or(&[], |pa| {
        &pa.required_during_scheduling_ignored_during_execution
    })
}

/// InterPodAffinity's Filter with every placed Pod on this node: the Pod's required affinity
/// (each term needs a matching Pod here, unless no Pod matches all its terms and it matches them
/// itself: the first of a group), its required anti-affinity, then the required anti-affinity of
/// the Pods here. A term only counts if the node has its topology key.
pub fn inter_pod_affinity(pod: &Pod, node: &Node, placed: &[&Pod]) -> Option<Rejection> {
    let has_key = |t: &PodAffinityTerm| node.labels.contains_key(&t.topology_key);
    let ns = pod.namespace();
    let affinity = required_terms(pod, false);
    if !affinity.is_empty() {
        if let Some(t) = affinity.iter().find(|t| !has_key(t)) {
            let why = format!("the node has no label {:?}", t.topology_key);
            return reject("InterPodAffinity", AFFINITY, false, why);
        }
        let all = |p: &Pod| affinity.iter().all(|t| term_selects(t, ns, p));
        let matching = placed.iter().filter(|p| all(p)).count();
        if matching == 0 && !all(pod) {
            let why = "no Pod here matches its podAffinity terms".to_string();
            return reject("InterPodAffinity", AFFINITY, false, why);
        }
    }
    for t in required_terms(pod, true).iter().filter(|t| has_key(t)) {
        if let Some(p) = placed.iter().find(|p| term_selects(t, ns, p)) {
            let why = format!(
                "its podAntiAffinity selects Pod {}/{} here",
                p.namespace(),
                p.name()
            );
            return reject("InterPodAffinity", ANTI_AFFINITY, true, why);
        }
    }
    for p in placed {
        let selects_us = required_terms(p, true)
            .iter()
            .any(|t| has_key(t) && term_selects(t, p.namespace(), pod));
        if selects_us {
            let why = format!(
                "the podAntiAffinity of Pod {}/{} here selects it",
                p.namespace(),
                p.name()
            );
            return reject("InterPodAffinity", EXISTING_ANTI_AFFINITY, true, why);
        }
    }
    None
}

/// Every filter in order; the first rejection (the framework stops at the first failing plugin
/// of a node).
pub fn run(pod: &Pod, node: &Node, placed: &[&Pod]) -> Option<Rejection> {
    taint_toleration(pod, node)
        .or_else(|| node_affinity(pod, node))
        .or_else(|| topology_spread(pod, node, placed))
        .or_else(|| inter_pod_affinity(pod, node, placed))
}
