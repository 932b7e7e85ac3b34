//! Matching as Kubernetes' label selectors (`metav1.LabelSelectorAsSelector`) and node selectors
//! (`component-helpers/scheduling/corev1/nodeaffinity`) match: a nil label selector matches
//! nothing, an empty one everything; node selector terms are ORed, an empty term matches nothing,
//! requirements within a term are ANDed; NotIn and DoesNotExist match a missing label; Gt and Lt
//! compare the label's value as an integer (a value that is not one never matches).

use std::collections::BTreeMap;

use super::Node;
use crate::manifest::{LabelSelector, NodeSelectorRequirement, NodeSelectorTerm};

type Labels = BTreeMap<String, String>;

/// Whether `labels` satisfy one `key operator values` requirement.
fn requirement(key: &str, operator: &str, values: &[String], labels: &Labels) -> bool {
    let have = labels.get(key);
    match operator {
        "In" => have.is_some_and(|v| values.contains(v)),
        "NotIn" => have.is_none_or(|v| !values.contains(v)),
        "Exists" => have.is_some(),
        "DoesNotExist" => have.is_none(),
        "Gt" | "Lt" => {
            let (Some(have), [want]) = (have, values) else {
                return false;
            };
            match (have.parse::<i64>(), want.parse::<i64>()) {
                (Ok(h), Ok(w)) if operator == "Gt" => h > w,
                (Ok(h), Ok(w)) => h < w,
                _ => false,
            }
        }
        _ => false,
    }
}

/// A label selector against a Pod's (or namespace's) labels; `None` matches nothing.
pub fn label_selector(sel: Option<&LabelSelector>, labels: &Labels) -> bool {
    let Some(sel) = sel else {
        return false;
    };
    sel.match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && (sel.match_expressions.iter())
            .all(|e| requirement(&e.key, &e.operator, &e.values, labels))
}

/// One node selector term against the node (labels for `matchExpressions`, `metadata.name` for
/// `matchFields`); a term with no requirement matches nothing.
pub fn node_term(term: &NodeSelectorTerm, node: &Node) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    let fields: Labels = [("metadata.name".to_string(), node.name.clone())].into();
    let expr =
        |r: &NodeSelectorRequirement, on: &Labels| requirement(&r.key, &r.operator, &r.values, on);
    term.match_expressions.iter().all(|r| expr(r, &node.labels))
        && term.match_fields.iter().all(|r| expr(r, &fields))
}

/// A `nodeSelector` map: every key with that value.
pub fn node_selector_map(map: &Labels, node: &Node) -> bool {
    map.iter().all(|(k, v)| node.labels.get(k) == Some(v))
}

/// The labels of a namespace: Kubernetes gives every namespace
/// `kubernetes.io/metadata.name: <name>`; podshim has no Namespace objects with other labels.
pub fn namespace_labels(ns: &str) -> Labels {
    [("kubernetes.io/metadata.name".to_string(), ns.to_string())].into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn vals(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn operators() {
        let l = labels(&[("a", "1"), ("cores", "8")]);
        assert!(requirement("a", "In", &vals(&["1", "2"]), &l));
        assert!(!requirement("a", "In", &vals(&["2"]), &l));
        assert!(!requirement("b", "In", &vals(&["1"]), &l));
        assert!(requirement("b", "NotIn", &vals(&["1"]), &l));
        assert!(!requirement("a", "NotIn", &vals(&["1"]), &l));
        assert!(requirement("a", "Exists", &[], &l) && !requirement("b", "Exists", &[], &l));
        assert!(requirement("b", "DoesNotExist", &[], &l));
        assert!(requirement("cores", "Gt", &vals(&["4"]), &l));
        assert!(!requirement("cores", "Gt", &vals(&["8"]), &l));
        assert!(requirement("cores", "Lt", &vals(&["9"]), &l));
        assert!(!requirement("cores", "Lt", &vals(&["x"]), &l));
        assert!(!requirement("missing", "Lt", &vals(&["9"]), &l));
        assert!(!requirement("a", "Sometimes", &vals(&["1"]), &l));
    }

    #[test]
    fn selectors() {
        let l = labels(&[("app", "web"), ("tier", "front")]);
        assert!(!label_selector(None, &l), "nil selects nothing");
        assert!(
            label_selector(Some(&LabelSelector::default()), &l),
            "empty selects all"
        );
        let mut s = LabelSelector::default();
        s.match_labels.insert("app".into(), "web".into());
        s.match_expressions.push(LabelSelectorRequirement {
            key: "tier".into(),
            operator: "NotIn".into(),
            values: vals(&["back"]),
        });
        assert!(label_selector(Some(&s), &l));
        s.match_labels.insert("app".into(), "db".into());
        assert!(!label_selector(Some(&s), &l));
    }

    #[test]
    fn node_terms() {
        let node = Node::new("n1", &[("disk".into(), "ssd".into())], vec![]);
        let req = |k: &str, op: &str, v: &[&str]| NodeSelectorRequirement {
            key: k.into(),
            operator: op.into(),
            values: vals(v),
        };
        assert!(
            !node_term(&NodeSelectorTerm::default(), &node),
            "empty term"
        );
        let t = NodeSelectorTerm {
            match_expressions: vec![req("disk", "In", &["ssd"])],
            match_fields: vec![req("metadata.name", "In", &["n1"])],
        };
        assert!(node_term(&t, &node));
        let t = NodeSelectorTerm {
            match_fields: vec![req("metadata.name", "NotIn", &["n1"])],
            ..Default::default()
        };
        assert!(!node_term(&t, &node));
        assert!(node_selector_map(&labels(&[("disk", "ssd")]), &node));
        assert!(!node_selector_map(&labels(&[("disk", "hdd")]), &node));
    }
}
