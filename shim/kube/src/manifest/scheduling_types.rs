//! Kubernetes `v1` scheduling types (affinity, tolerations, topology spread, scheduling gates,
//! label selectors) and `scheduling.k8s.io/v1` PriorityClass, strict like the rest of the
//! manifest types. `crate::schedule` evaluates them against this node.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::types::{k8s_struct, ObjectMeta};

k8s_struct! {
    /// `spec.affinity`.
    pub struct Affinity {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub node_affinity: Option<NodeAffinity>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pod_affinity: Option<PodAffinity>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pod_anti_affinity: Option<PodAffinity>,
    }
}

k8s_struct! {
    /// `affinity.nodeAffinity`.
    pub struct NodeAffinity {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub required_during_scheduling_ignored_during_execution: Option<NodeSelector>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub preferred_during_scheduling_ignored_during_execution: Vec<PreferredSchedulingTerm>,
    }
}

k8s_struct! {
    /// A node selector: its terms are ORed.
    pub struct NodeSelector {
        pub node_selector_terms: Vec<NodeSelectorTerm>,
    }
}

k8s_struct! {
    /// One term: its requirements are ANDed.
    pub struct NodeSelectorTerm {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub match_expressions: Vec<NodeSelectorRequirement>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub match_fields: Vec<NodeSelectorRequirement>,
    }
}

k8s_struct! {
    /// `key operator values` against a node's labels (or, in `matchFields`, its fields).
    pub struct NodeSelectorRequirement {
        pub key: String,
        pub operator: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub values: Vec<String>,
    }
}

k8s_struct! {
    /// A weighted preferred node term.
    pub struct PreferredSchedulingTerm {
        pub weight: i32,
        pub preference: NodeSelectorTerm,
    }
}

k8s_struct! {
    /// `affinity.podAffinity` and `affinity.podAntiAffinity` (the same shape).
    pub struct PodAffinity {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub required_during_scheduling_ignored_during_execution: Vec<PodAffinityTerm>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub preferred_during_scheduling_ignored_during_execution: Vec<WeightedPodAffinityTerm>,
    }
}

k8s_struct! {
    /// Pods (selected by labels and namespaces) in the topology domain `topologyKey`.
    pub struct PodAffinityTerm {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub label_selector: Option<LabelSelector>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub namespaces: Vec<String>,
        pub topology_key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub namespace_selector: Option<LabelSelector>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub match_label_keys: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub mismatch_label_keys: Vec<String>,
    }
}

k8s_struct! {
    /// A weighted preferred Pod term.
    pub struct WeightedPodAffinityTerm {
        pub weight: i32,
        pub pod_affinity_term: PodAffinityTerm,
    }
}

k8s_struct! {
    /// A label selector (`metav1.LabelSelector`): `matchLabels` and `matchExpressions`, ANDed.
    pub struct LabelSelector {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub match_labels: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub match_expressions: Vec<LabelSelectorRequirement>,
    }
}

k8s_struct! {
    /// `key operator values` of a label selector (In, NotIn, Exists, DoesNotExist).
    pub struct LabelSelectorRequirement {
        pub key: String,
        pub operator: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub values: Vec<String>,
    }
}

k8s_struct! {
    /// A toleration of node taints.
    pub struct Toleration {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub key: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub operator: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub effect: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub toleration_seconds: Option<i64>,
    }
}

k8s_struct! {
    /// How matching Pods must spread over the values of a node label.
    pub struct TopologySpreadConstraint {
        pub max_skew: i32,
        pub topology_key: String,
        pub when_unsatisfiable: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub label_selector: Option<LabelSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub min_domains: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub node_affinity_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub node_taints_policy: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub match_label_keys: Vec<String>,
    }
}

k8s_struct! {
    /// A scheduling gate: the Pod is not scheduled while any is listed.
    pub struct PodSchedulingGate {
        pub name: String,
    }
}

k8s_struct! {
    /// A `scheduling.k8s.io/v1` PriorityClass (cluster-scoped).
    pub struct PriorityClass {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub value: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub global_default: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub preemption_policy: Option<String>,
    }
}
