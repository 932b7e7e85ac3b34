//! Tests of the scheduling fields' validation and the Priority admission plugin, with the API
//! server's paths and wording.

/// The errors of a Pod with `spec` lines (after its container), as `podshim run` prints them.
fn errors(spec: &str) -> Vec<String> {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: {{app: web, version: v1}}}}\nspec:\n  containers: [{{name: c, image: i}}]\n{spec}"
    );
    match crate::manifest::parse(&yaml) {
        Ok(_) => Vec::new(),
        Err(e) => e.problems(),
    }
}

#[test]
fn node_affinity_as_the_api_server_validates_it() {
    let errs = errors("  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n        - matchExpressions:\n          - {key: disk, operator: Is, values: [ssd]}\n          - {key: disk, operator: In}\n          - {key: disk, operator: Exists, values: [x]}\n          - {key: cores, operator: Gt, values: ['1', '2']}\n          - {key: 'bad key', operator: In, values: ['bad value!']}\n          matchFields:\n          - {key: metadata.name, operator: In, values: [a, b]}\n          - {key: metadata.labels, operator: Exists}\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - {weight: 0, preference: {matchExpressions: [{key: disk, operator: In, values: ['bad value!']}]}}\n");
    let p = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]";
    let want = [
        format!(r#"{p}.matchExpressions[0].operator: Invalid value: "Is": not a valid selector operator"#),
        format!("{p}.matchExpressions[1].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        format!("{p}.matchExpressions[2].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"),
        format!("{p}.matchExpressions[3].values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"),
        format!("{p}.matchFields[0].values: Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector"),
        format!(r#"{p}.matchFields[1].operator: Invalid value: "Exists": not a valid selector operator"#),
        format!(r#"{p}.matchFields[1].key: Invalid value: "metadata.labels": not a valid field selector key"#),
        "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 0: must be in the range 1-100".to_string(),
    ];
    for w in &want {
        assert!(errs.contains(w), "missing {w} in {errs:#?}");
    }
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            r#"{p}.matchExpressions[4].key: Invalid value: "bad key": name part must consist"#
        ))),
        "{errs:#?}"
    );
    assert!(errs.iter().any(|e| e.starts_with(&format!(r#"{p}.matchExpressions[4].values[0]: Invalid value: "bad value!": a valid label must be"#))), "{errs:#?}");
    // Preferred terms may have invalid label values (they can only fail to match).
    assert_eq!(errs.len(), want.len() + 2, "{errs:#?}");
    let empty = errors("  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: []}\n");
    assert_eq!(empty, vec!["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one node selector term"]);
}

#[test]
fn pod_affinity_terms() {
    let errs = errors("  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - {labelSelector: {matchExpressions: [{key: app, operator: In}]}, namespaces: [Bad_NS], topologyKey: ''}\n      - {matchLabelKeys: [version], topologyKey: zone}\n      - {labelSelector: {matchLabels: {app: web}}, matchLabelKeys: [app], mismatchLabelKeys: [app], topologyKey: zone}\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - {weight: 101, podAffinityTerm: {topologyKey: zone}}\n");
    let p = "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution";
    let want = [
        format!("{p}[0].labelSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"),
        format!("{p}[0].topologyKey: Required value: can not be empty"),
        format!("{p}[1].matchLabelKeys: Forbidden: must not be specified when labelSelector is not set"),
        // matchLabelKeys were merged into the selector (app In [web]) before validation.
        format!(r#"{p}[2][0]: Invalid value: "app": exists in both matchLabelKeys and labelSelector"#),
        format!(r#"{p}[2].matchLabelKeys[0]: Invalid value: "app": exists in both matchLabelKeys and mismatchLabelKeys"#),
        "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: 101: must be in the range 1-100".to_string(),
    ];
    for w in &want {
        assert!(errs.contains(w), "missing {w} in {errs:#?}");
    }
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            r#"{p}[0].namespace: Invalid value: "Bad_NS": a lowercase RFC 1123 label"#
        ))),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(&format!(
            r#"{p}[0].topologyKey: Invalid value: "": name part must be non-empty"#
        ))),
        "{errs:#?}"
    );
}

#[test]
fn tolerations_spread_gates_and_preemption_policy() {
    let errs = errors("  tolerations:\n  - {operator: Equal, value: x}\n  - {key: k, operator: Exists, value: v}\n  - {key: k, operator: Lt, value: '5'}\n  - {key: k, value: 'bad value!'}\n  - {key: k, effect: NoSchedule, tolerationSeconds: 5}\n  - {key: k, effect: Sometimes}\n  topologySpreadConstraints:\n  - {maxSkew: 0, topologyKey: '', whenUnsatisfiable: Maybe, minDomains: 0, nodeAffinityPolicy: Always}\n  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule, matchLabelKeys: [app], labelSelector: {matchLabels: {app: web}}}\n  - {maxSkew: 1, topologyKey: zone, whenUnsatisfiable: DoNotSchedule}\n  schedulingGates: [{name: a}, {name: a}, {name: 'not valid!'}]\n  preemptionPolicy: Sometimes\n");
    let want = [
        "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        "spec.tolerations[1].operator: Invalid value: \"v\": value must be empty when `operator` is 'Exists'",
        r#"spec.tolerations[2].operator: Unsupported value: "Lt": supported values: "Equal", "Exists""#,
        "spec.tolerations[4].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set",
        r#"spec.tolerations[5].effect: Unsupported value: "Sometimes": supported values: "NoExecute", "NoSchedule", "PreferNoSchedule""#,
        "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
        "spec.topologySpreadConstraints[0].topologyKey: Required value: can not be empty",
        r#"spec.topologySpreadConstraints[0].whenUnsatisfiable: Unsupported value: "Maybe": supported values: "DoNotSchedule", "ScheduleAnyway""#,
        "spec.topologySpreadConstraints[0].minDomains: Invalid value: 0: must be greater than zero",
        "spec.topologySpreadConstraints[0].minDomains: Invalid value: 0: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not Maybe",
        r#"spec.topologySpreadConstraints[0].nodeAffinityPolicy: Unsupported value: "Always": supported values: "Honor", "Ignore""#,
        r#"spec.topologySpreadConstraints[1].{topologyKey, whenUnsatisfiable}: Duplicate value: "{zone, DoNotSchedule}""#,
        r#"spec.topologySpreadConstraints[1].matchLabelKeys[0]: Invalid value: "app": exists in both matchLabelKeys and labelSelector"#,
        r#"spec.schedulingGates[1]: Duplicate value: "a""#,
        r#"spec.preemptionPolicy: Unsupported value: "Sometimes": supported values: "Never", "PreemptLowerPriority""#,
    ];
    for w in want {
        assert!(errs.contains(&w.to_string()), "missing {w} in {errs:#?}");
    }
    assert!(
        errs.iter().any(|e| e.starts_with(
            r#"spec.tolerations[3].operator: Invalid value: "bad value!": a valid label must be"#
        )),
        "{errs:#?}"
    );
    assert!(
        errs.iter().any(|e| e.starts_with(
            r#"spec.schedulingGates[2]: Invalid value: "not valid!": name part must consist"#
        )),
        "{errs:#?}"
    );
    let gated = errors("  nodeName: n1\n  schedulingGates: [{name: a}]\n");
    assert_eq!(
        gated,
        vec!["spec.nodeName: Forbidden: cannot be set until all schedulingGates have been cleared"]
    );
}

#[test]
fn priority_admission_refuses_unknown_classes_and_priorities() {
    assert_eq!(
        errors("  priorityClassName: gold\n"),
        vec![r#"pods "p" is forbidden: no PriorityClass with name gold was found"#]
    );
    assert_eq!(
        errors("  priority: 7\n"),
        vec![
            r#"pods "p" is forbidden: the integer value of priority (7) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"#
        ]
    );
    assert!(
        errors("  priorityClassName: system-cluster-critical\n  priority: 2000000000\n").is_empty()
    );
    let two_defaults = errors("---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: a}\nvalue: 1\nglobalDefault: true\n---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: b}\nvalue: 2\nglobalDefault: true\n");
    assert_eq!(
        two_defaults,
        vec![
            r#"priorityclasses.scheduling.k8s.io "b" is forbidden: PriorityClass a is already marked as default. Only one default can exist"#
        ]
    );
}
