//! How the Job controller reads a failed Pod against `podFailurePolicy`
//! (`matchPodFailurePolicy` in `pkg/controller/job/pod_failure_policy.go`) and the succeeded
//! indexes against `successPolicy` (`matchSuccessPolicy` in `success_policy.go`).

use std::collections::BTreeSet;

use crate::api::job_policy::index_interval;
use crate::api::{OnExitCodes, OnPodConditionsPattern, PodFailurePolicy, SuccessPolicy};
use crate::pods::PodInfo;

/// What a failed Pod does to its Job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The Job fails at once (`PodFailurePolicy`), with this message.
    FailJob(String),
    /// The failure is not counted towards `backoffLimit`; the Pod is replaced.
    Ignore,
    /// Counted, as without a policy.
    Count,
    /// The Pod's index fails (needs `backoffLimitPerIndex`, which podshim refuses yet).
    FailIndex,
}

/// The first rule a failed Pod matches, or `Count` when none does (or there is no policy).
pub fn pod_failure(policy: Option<&PodFailurePolicy>, pod: &PodInfo) -> Action {
    let Some(policy) = policy else {
        return Action::Count;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(req) = &rule.on_exit_codes {
            exit_code_match(req, &pod.exits).map(|(name, code)| {
                format!(
                    "Container {name} for pod {}/{} failed with exit code {code} matching {} rule at index {i}",
                    pod.namespace, pod.name, rule.action
                )
            })
        } else {
            condition_match(&rule.on_pod_conditions, &pod.conditions).map(|kind| {
                format!(
                    "Pod {}/{} has condition {kind} matching {} rule at index {i}",
                    pod.namespace, pod.name, rule.action
                )
            })
        };
        let Some(message) = matched else {
            continue;
        };
        return match rule.action.as_str() {
            "FailJob" => Action::FailJob(message),
            "Ignore" => Action::Ignore,
            "FailIndex" => Action::FailIndex,
            _ => Action::Count,
        };
    }
    Action::Count
}

/// The first ended container (app containers first) with a non-zero exit code that the
/// requirement matches: exit code 0 never matches, even under `NotIn`.
fn exit_code_match<'a>(req: &OnExitCodes, exits: &'a [(String, i32)]) -> Option<&'a (String, i32)> {
    exits.iter().find(|(name, code)| {
        *code != 0
            && req.container_name.as_ref().is_none_or(|c| c == name)
            && (req.values.contains(code) == (req.operator == "In"))
    })
}

fn condition_match<'a>(
    patterns: &[OnPodConditionsPattern],
    conditions: &'a [(String, String)],
) -> Option<&'a str> {
    conditions.iter().find_map(|(kind, status)| {
        patterns
            .iter()
            .any(|p| &p.kind == kind && &p.status == status)
            .then_some(kind.as_str())
    })
}

/// The message of the first rule the succeeded indexes satisfy (`Matched rules at index N`).
pub fn success(
    policy: Option<&SuccessPolicy>,
    completions: i32,
    done: &BTreeSet<i32>,
) -> Option<String> {
    let policy = policy?;
    if done.is_empty() {
        return None;
    }
    for (i, rule) in policy.rules.iter().enumerate() {
        let met = match (&rule.succeeded_indexes, rule.succeeded_count) {
            (Some(text), count) => {
                let Some(required) = parse_indexes(text, completions) else {
                    continue;
                };
                let got = required.iter().filter(|i| done.contains(i)).count();
                match count {
                    Some(n) => got >= n.max(0) as usize,
                    None => got == required.len(),
                }
            }
            (None, Some(n)) => done.len() >= n.max(0) as usize,
            (None, None) => false,
        };
        if met {
            return Some(format!("Matched rules at index {i}"));
        }
    }
    None
}

/// An index list, or None when it does not parse (the rule is then skipped, as Kubernetes
/// skips it).
pub fn parse_indexes(text: &str, completions: i32) -> Option<BTreeSet<i32>> {
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        let (x, y) = index_interval(part, completions).ok()?;
        out.extend(x..=y);
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::PodFailurePolicyRule;

    fn pod(exits: &[(&str, i32)], conditions: &[(&str, &str)]) -> PodInfo {
        PodInfo {
            key: "k".into(),
            namespace: "default".into(),
            name: "pi-abcde".into(),
            labels: Default::default(),
            annotations: Default::default(),
            owner: None,
            phase: "Failed".into(),
            ready: false,
            ready_since: None,
            created: None,
            restarts: 0,
            terminating: false,
            lost: false,
            live: false,
            starting: false,
            held: false,
            ip: None,
            supervisor_pid: 0,
            exits: exits.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
            conditions: conditions
                .iter()
                .map(|(k, s)| (k.to_string(), s.to_string()))
                .collect(),
        }
    }

    fn exit_rule(
        action: &str,
        op: &str,
        values: &[i32],
        container: Option<&str>,
    ) -> PodFailurePolicyRule {
        PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(OnExitCodes {
                container_name: container.map(String::from),
                operator: op.into(),
                values: values.to_vec(),
            }),
            on_pod_conditions: vec![],
        }
    }

    #[test]
    fn exit_code_rules_in_order() {
        let policy = PodFailurePolicy {
            rules: vec![
                exit_rule("Ignore", "In", &[3], None),
                exit_rule("FailJob", "In", &[42], Some("main")),
                exit_rule("Count", "NotIn", &[7], None),
            ],
        };
        let p = Some(&policy);
        assert_eq!(pod_failure(p, &pod(&[("main", 3)], &[])), Action::Ignore);
        assert_eq!(
            pod_failure(p, &pod(&[("side", 0), ("main", 42)], &[])),
            Action::FailJob(
                "Container main for pod default/pi-abcde failed with exit code 42 matching FailJob rule at index 1".into()
            )
        );
        // 42 from another container: not the FailJob rule; NotIn [7] counts it.
        assert_eq!(pod_failure(p, &pod(&[("side", 42)], &[])), Action::Count);
        // Exit code 0 never matches, not even NotIn; nothing matched counts as Count.
        assert_eq!(pod_failure(p, &pod(&[("main", 0)], &[])), Action::Count);
        assert_eq!(pod_failure(None, &pod(&[("main", 3)], &[])), Action::Count);
    }

    #[test]
    fn pod_condition_rules() {
        let policy = PodFailurePolicy {
            rules: vec![
                PodFailurePolicyRule {
                    action: "Ignore".into(),
                    on_exit_codes: None,
                    on_pod_conditions: vec![OnPodConditionsPattern {
                        kind: "DisruptionTarget".into(),
                        status: "True".into(),
                    }],
                },
                PodFailurePolicyRule {
                    action: "FailJob".into(),
                    on_exit_codes: None,
                    on_pod_conditions: vec![OnPodConditionsPattern {
                        kind: "ConfigIssue".into(),
                        status: "True".into(),
                    }],
                },
            ],
        };
        let p = Some(&policy);
        assert_eq!(
            pod_failure(p, &pod(&[("main", 1)], &[("DisruptionTarget", "True")])),
            Action::Ignore
        );
        assert_eq!(
            pod_failure(p, &pod(&[], &[("DisruptionTarget", "False")])),
            Action::Count
        );
        assert_eq!(
            pod_failure(p, &pod(&[], &[("Ready", "False"), ("ConfigIssue", "True")])),
            Action::FailJob(
                "Pod default/pi-abcde has condition ConfigIssue matching FailJob rule at index 1"
                    .into()
            )
        );
    }

    #[test]
    fn success_rules() {
        let rule = |idx: Option<&str>, n: Option<i32>| crate::api::SuccessPolicyRule {
            succeeded_indexes: idx.map(String::from),
            succeeded_count: n,
        };
        let policy = SuccessPolicy {
            rules: vec![
                rule(Some("0,2-3"), None),
                rule(Some("4-9"), Some(2)),
                rule(None, Some(4)),
            ],
        };
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        let p = Some(&policy);
        assert_eq!(success(p, 10, &set(&[0, 2])), None);
        assert_eq!(
            success(p, 10, &set(&[0, 2, 3])),
            Some("Matched rules at index 0".into())
        );
        assert_eq!(
            success(p, 10, &set(&[5, 9])),
            Some("Matched rules at index 1".into())
        );
        assert_eq!(
            success(p, 10, &set(&[0, 1, 2, 4])),
            Some("Matched rules at index 2".into())
        );
        assert_eq!(success(None, 10, &set(&[0])), None);
        // A rule whose indexes do not parse (beyond completions) is skipped.
        let bad = SuccessPolicy {
            rules: vec![rule(Some("12"), None)],
        };
        assert_eq!(success(Some(&bad), 10, &set(&[0])), None);
    }
}
