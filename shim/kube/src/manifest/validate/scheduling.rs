//! Validation of the scheduling fields as the API server does it (`validation.go`:
//! `validateAffinity`, `ValidateNodeSelector*`, `ValidatePreferredSchedulingTerms`,
//! `validatePodAffinityTerm`, `ValidateTolerations`, `validateTopologySpreadConstraints`,
//! `validateSchedulingGates`, `ValidatePreemptionPolicy`, `ValidatePodCreate`; apimachinery's
//! `ValidateLabelSelector`), with its paths and wording, quirks included (a bad toleration value
//! is reported on `operator`; a bad affinity namespace on `namespace`).

use std::collections::BTreeSet;

use super::super::error::{BadValue, FieldError, FieldPath};
use super::super::types::{
    Affinity, LabelSelector, LabelSelectorRequirement, NodeSelectorRequirement, NodeSelectorTerm,
    Pod, PodAffinity, PodAffinityTerm, PodSpec, Toleration, TopologySpreadConstraint,
};
use super::{names, push_invalid};

const RANGE_1_100: &str = "must be in the range 1-100";
const NOT_POSITIVE: &str = "must be greater than zero";

/// The scheduling part of `ValidatePodSpec` and `ValidatePodCreate`.
pub(super) fn validate(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(a) = &spec.affinity {
        errs.extend(affinity(a, &path.child("affinity")));
    }
    errs.extend(scheduling_gates(spec, &path.child("schedulingGates")));
    errs.extend(topology_spread(
        &spec.topology_spread_constraints,
        &path.child("topologySpreadConstraints"),
    ));
    errs.extend(tolerations(&spec.tolerations, &path.child("tolerations")));
    if let Some(p) = &spec.preemption_policy {
        errs.extend(preemption_policy(p, &path.child("preemptionPolicy")));
    }
    // ValidatePodCreate: a Pod cannot be assigned a node while it has scheduling gates.
    if spec.node_name.as_deref().is_some_and(|n| !n.is_empty()) && !spec.scheduling_gates.is_empty()
    {
        errs.push(FieldError::forbidden(
            &path.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

/// The API server's `PrepareForCreate` for Pod (anti-)affinity terms: each `matchLabelKeys` key
/// the Pod has a label for becomes `key In [value]` in the term's `labelSelector`, each
/// `mismatchLabelKeys` key `key NotIn [value]` (a term without a selector matches nothing and is
/// left alone). Run before validation, which then sees the merged selector as Kubernetes does.
pub(crate) fn prepare_for_create(pod: &mut Pod) {
    let labels = pod.metadata.labels.clone();
    let Some(a) = pod.spec.affinity.as_mut() else {
        return;
    };
    for pa in [a.pod_affinity.as_mut(), a.pod_anti_affinity.as_mut()]
        .into_iter()
        .flatten()
    {
        let required = pa
            .required_during_scheduling_ignored_during_execution
            .iter_mut();
        let preferred = (pa
            .preferred_during_scheduling_ignored_during_execution
            .iter_mut())
        .map(|w| &mut w.pod_affinity_term);
        for t in required.chain(preferred) {
            let Some(sel) = t.label_selector.as_mut() else {
                continue;
            };
            for (keys, operator) in [
                (&t.match_label_keys, "In"),
                (&t.mismatch_label_keys, "NotIn"),
            ] {
                for k in keys {
                    if let Some(v) = labels.get(k) {
                        sel.match_expressions.push(LabelSelectorRequirement {
                            key: k.clone(),
                            operator: operator.to_string(),
                            values: vec![v.clone()],
                        });
                    }
                }
            }
        }
    }
}

/// `ValidatePreemptionPolicy` (also used for PriorityClasses).
pub(crate) fn preemption_policy(p: &str, path: &FieldPath) -> Vec<FieldError> {
    match p {
        "PreemptLowerPriority" | "Never" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![FieldError::not_supported(
            path,
            other,
            &["PreemptLowerPriority", "Never"],
        )],
    }
}

fn affinity(a: &Affinity, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(na) = &a.node_affinity {
        let p = path.child("nodeAffinity");
        if let Some(required) = &na.required_during_scheduling_ignored_during_execution {
            let rp = p
                .child("requiredDuringSchedulingIgnoredDuringExecution")
                .child("nodeSelectorTerms");
            if required.node_selector_terms.is_empty() {
                errs.push(FieldError::required(
                    &rp,
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                errs.extend(node_selector_term(term, false, &rp.index(i)));
            }
        }
        let pp = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, t) in na
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            weight(&mut errs, t.weight, &pp.index(i).child("weight"));
            // Invalid label values are allowed in preferred terms ("they can succeed when the
            // cluster has only one node").
            errs.extend(node_selector_term(
                &t.preference,
                true,
                &pp.index(i).child("preference"),
            ));
        }
    }
    for (field, pa) in [
        ("podAffinity", &a.pod_affinity),
        ("podAntiAffinity", &a.pod_anti_affinity),
    ] {
        if let Some(pa) = pa {
            errs.extend(pod_affinity(pa, &path.child(field)));
        }
    }
    errs
}

fn weight(errs: &mut Vec<FieldError>, w: i32, path: &FieldPath) {
    if !(1..=100).contains(&w) {
        errs.push(FieldError::invalid(path, w, RANGE_1_100));
    }
}

/// `ValidateNodeSelectorTerm`.
fn node_selector_term(
    term: &NodeSelectorTerm,
    allow_invalid_values: bool,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (j, r) in term.match_expressions.iter().enumerate() {
        errs.extend(node_selector_requirement(
            r,
            allow_invalid_values,
            &path.child("matchExpressions").index(j),
        ));
    }
    for (j, r) in term.match_fields.iter().enumerate() {
        errs.extend(node_field_requirement(
            r,
            &path.child("matchFields").index(j),
        ));
    }
    errs
}

/// `ValidateNodeSelectorRequirement`.
fn node_selector_requirement(
    r: &NodeSelectorRequirement,
    allow_invalid_values: bool,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let vp = path.child("values");
    match r.operator.as_str() {
        "In" | "NotIn" if r.values.is_empty() => errs.push(FieldError::required(
            &vp,
            "must be specified when `operator` is 'In' or 'NotIn'",
        )),
        "Exists" | "DoesNotExist" if !r.values.is_empty() => errs.push(FieldError::forbidden(
            &vp,
            "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        )),
        "Gt" | "Lt" if r.values.len() != 1 => errs.push(FieldError::required(
            &vp,
            "must be specified single value when `operator` is 'Lt' or 'Gt'",
        )),
        "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
        other => errs.push(FieldError::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    push_invalid(
        &mut errs,
        &path.child("key"),
        &r.key,
        names::qualified_name(&r.key),
    );
    if !allow_invalid_values {
        for (i, v) in r.values.iter().enumerate() {
            push_invalid(&mut errs, &vp.index(i), v, names::label_value(v));
        }
    }
    errs
}

/// `ValidateNodeFieldSelectorRequirement`: only `metadata.name`, In/NotIn one node name.
fn node_field_requirement(r: &NodeSelectorRequirement, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match r.operator.as_str() {
        "In" | "NotIn" if r.values.len() != 1 => errs.push(FieldError::required(
            &path.child("values"),
            "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
        )),
        "In" | "NotIn" => {}
        other => errs.push(FieldError::invalid(
            &path.child("operator"),
            other,
            "not a valid selector operator",
        )),
    }
    if r.key != "metadata.name" {
        errs.push(FieldError::invalid(
            &path.child("key"),
            r.key.as_str(),
            "not a valid field selector key",
        ));
    } else {
        for (i, v) in r.values.iter().enumerate() {
            push_invalid(
                &mut errs,
                &path.child("values").index(i),
                v,
                names::dns1123_subdomain(v),
            );
        }
    }
    errs
}

fn pod_affinity(pa: &PodAffinity, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rp = path.child("requiredDuringSchedulingIgnoredDuringExecution");
    for (i, t) in pa
        .required_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        errs.extend(pod_affinity_term(t, &rp.index(i)));
    }
    let pp = path.child("preferredDuringSchedulingIgnoredDuringExecution");
    for (j, w) in pa
        .preferred_during_scheduling_ignored_during_execution
        .iter()
        .enumerate()
    {
        weight(&mut errs, w.weight, &pp.index(j).child("weight"));
        errs.extend(pod_affinity_term(
            &w.pod_affinity_term,
            &pp.index(j).child("podAffinityTerm"),
        ));
    }
    errs
}

/// `validatePodAffinityTerm`.
fn pod_affinity_term(t: &PodAffinityTerm, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(s) = &t.label_selector {
        errs.extend(label_selector(s, &path.child("labelSelector")));
    }
    if let Some(s) = &t.namespace_selector {
        errs.extend(label_selector(s, &path.child("namespaceSelector")));
    }
    for ns in &t.namespaces {
        // Kubernetes names the path `namespace`, not `namespaces[i]`.
        push_invalid(
            &mut errs,
            &path.child("namespace"),
            ns,
            names::dns1123_label(ns),
        );
    }
    errs.extend(match_and_mismatch_label_keys(t, path));
    if t.topology_key.is_empty() {
        errs.push(FieldError::required(
            &path.child("topologyKey"),
            "can not be empty",
        ));
    }
    push_invalid(
        &mut errs,
        &path.child("topologyKey"),
        &t.topology_key,
        names::qualified_name(&t.topology_key),
    );
    errs
}

/// `validateMatchLabelKeysAndMismatchLabelKeys` (run after the API server merged the keys into
/// `labelSelector`, see `crate::schedule::prepare`).
fn match_and_mismatch_label_keys(t: &PodAffinityTerm, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (field, keys) in [
        ("matchLabelKeys", &t.match_label_keys),
        ("mismatchLabelKeys", &t.mismatch_label_keys),
    ] {
        if keys.is_empty() {
            continue;
        }
        let p = path.child(field);
        if t.label_selector.is_none() {
            errs.push(FieldError::forbidden(
                &p,
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            push_invalid(&mut errs, &p.index(i), k, names::qualified_name(k));
        }
    }
    if let Some(sel) = &t.label_selector {
        let mut seen: BTreeSet<&str> = sel.match_labels.keys().map(String::as_str).collect();
        for e in &sel.match_expressions {
            if let Some(i) = t.match_label_keys.iter().position(|k| *k == e.key) {
                if seen.contains(e.key.as_str()) {
                    // Kubernetes indexes the term's path itself here.
                    errs.push(FieldError::invalid(
                        &path.index(i),
                        e.key.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
            seen.insert(&e.key);
        }
    }
    for (i, k) in t.match_label_keys.iter().enumerate() {
        if t.mismatch_label_keys.contains(k) {
            errs.push(FieldError::invalid(
                &path.child("matchLabelKeys").index(i),
                k.as_str(),
                "exists in both matchLabelKeys and mismatchLabelKeys",
            ));
        }
    }
    errs
}

/// apimachinery `ValidateLabelSelector` (invalid values not allowed).
pub fn label_selector(s: &LabelSelector, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let ml = path.child("matchLabels");
    for (k, v) in &s.match_labels {
        push_invalid(&mut errs, &ml, k, names::qualified_name(k));
        push_invalid(&mut errs, &ml, v, names::label_value(v));
    }
    for (i, e) in s.match_expressions.iter().enumerate() {
        let p = path.child("matchExpressions").index(i);
        let vp = p.child("values");
        match e.operator.as_str() {
            "In" | "NotIn" if e.values.is_empty() => errs.push(FieldError::required(
                &vp,
                "must be specified when `operator` is 'In' or 'NotIn'",
            )),
            "Exists" | "DoesNotExist" if !e.values.is_empty() => errs.push(FieldError::forbidden(
                &vp,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errs.push(FieldError::invalid(
                &p.child("operator"),
                other,
                "not a valid selector operator",
            )),
        }
        push_invalid(
            &mut errs,
            &p.child("key"),
            &e.key,
            names::qualified_name(&e.key),
        );
        for (j, v) in e.values.iter().enumerate() {
            push_invalid(&mut errs, &vp.index(j), v, names::label_value(v));
        }
    }
    errs
}

/// `ValidateTolerations`. The comparison operators Lt and Gt are alpha
/// (`TaintTolerationComparisonOperators`, off by default), so refused as with default gates.
fn tolerations(list: &[Toleration], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let p = path.index(i);
        let key = t.key.as_deref().unwrap_or("");
        let op = t.operator.as_deref().unwrap_or("");
        let value = t.value.as_deref().unwrap_or("");
        let effect = t.effect.as_deref().unwrap_or("");
        if !key.is_empty() {
            push_invalid(&mut errs, &p.child("key"), key, names::qualified_name(key));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(FieldError::invalid(
                &p.child("operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if t.toleration_seconds.is_some() && effect != "NoExecute" {
            errs.push(FieldError::invalid(
                &p.child("effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = names::label_value(value);
                if !msgs.is_empty() {
                    // Kubernetes reports the value on `operator`, its messages joined with ";".
                    errs.push(FieldError::invalid(
                        &p.child("operator"),
                        value,
                        msgs.join(";"),
                    ));
                }
            }
            "Exists" if !value.is_empty() => errs.push(FieldError::invalid(
                &p.child("operator"),
                value,
                "value must be empty when `operator` is 'Exists'",
            )),
            "Exists" => {}
            other => errs.push(FieldError::not_supported(
                &p.child("operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(taint_effect(effect, &p.child("effect")));
        }
    }
    errs
}

/// `validateTaintEffect` (an empty effect is checked by the caller).
pub(crate) fn taint_effect(effect: &str, path: &FieldPath) -> Vec<FieldError> {
    match effect {
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => Vec::new(),
        "" => vec![FieldError::required(path, "")],
        other => vec![FieldError::not_supported(
            path,
            other,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        )],
    }
}

/// `validateTopologySpreadConstraints`.
fn topology_spread(list: &[TopologySpreadConstraint], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errs.push(FieldError::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                NOT_POSITIVE,
            ));
        }
        if c.topology_key.is_empty() {
            errs.push(FieldError::required(
                &p.child("topologyKey"),
                "can not be empty",
            ));
        }
        if !matches!(
            c.when_unsatisfiable.as_str(),
            "DoNotSchedule" | "ScheduleAnyway"
        ) {
            errs.push(FieldError::not_supported(
                &p.child("whenUnsatisfiable"),
                c.when_unsatisfiable.as_str(),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        let repeated = list[i + 1..].iter().any(|o| {
            o.topology_key == c.topology_key && o.when_unsatisfiable == c.when_unsatisfiable
        });
        if repeated {
            errs.push(FieldError::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{{{}, {}}}", c.topology_key, c.when_unsatisfiable),
            ));
        }
        if let Some(m) = c.min_domains {
            let mp = p.child("minDomains");
            if m <= 0 {
                errs.push(FieldError::invalid(&mp, m, NOT_POSITIVE));
            }
            if c.when_unsatisfiable != "DoNotSchedule" {
                errs.push(FieldError::invalid(
                    &mp,
                    m,
                    format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {}",
                        c.when_unsatisfiable
                    ),
                ));
            }
        }
        for (field, policy) in [
            ("nodeAffinityPolicy", &c.node_affinity_policy),
            ("nodeTaintsPolicy", &c.node_taints_policy),
        ] {
            if let Some(pol) = policy
                .as_deref()
                .filter(|p| !matches!(*p, "Honor" | "Ignore"))
            {
                errs.push(FieldError::not_supported(
                    &p.child(field),
                    pol,
                    &["Honor", "Ignore"],
                ));
            }
        }
        let kp = p.child("matchLabelKeys");
        if !c.match_label_keys.is_empty() {
            let selector_keys: BTreeSet<&str> = c
                .label_selector
                .iter()
                .flat_map(|s| {
                    (s.match_labels.keys().map(String::as_str))
                        .chain(s.match_expressions.iter().map(|e| e.key.as_str()))
                })
                .collect();
            if c.label_selector.is_none() {
                errs.push(FieldError::forbidden(
                    &kp,
                    "must not be specified when labelSelector is not set",
                ));
            }
            for (j, k) in c.match_label_keys.iter().enumerate() {
                push_invalid(&mut errs, &kp.index(j), k, names::qualified_name(k));
                if selector_keys.contains(k.as_str()) {
                    errs.push(FieldError::invalid(
                        &kp.index(j),
                        k.as_str(),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
        }
        if let Some(s) = &c.label_selector {
            errs.extend(label_selector(s, &p.child("labelSelector")));
        }
    }
    errs
}

/// `validateSchedulingGates`: qualified names, no duplicates (paths index the list itself).
fn scheduling_gates(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, g) in spec.scheduling_gates.iter().enumerate() {
        push_invalid(
            &mut errs,
            &path.index(i),
            &g.name,
            names::qualified_name(&g.name),
        );
        if !seen.insert(g.name.as_str()) {
            errs.push(FieldError::duplicate(
                &path.index(i),
                BadValue::Str(g.name.clone()),
            ));
        }
    }
    errs
}

#[cfg(test)]
#[path = "scheduling_tests.rs"]
mod tests;
