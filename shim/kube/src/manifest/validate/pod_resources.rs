//! Validation of Pod-level `spec.resources` (`validatePodResources`,
//! `validatePodResourceConsistency`) and of containers' `resizePolicy` (`validateResizePolicy`),
//! as the API server of Kubernetes 1.34+ does with its default feature gates (PodLevelResources
//! beta and on; InPlacePodVerticalScaling on). In 1.32 and 1.33 PodLevelResources was alpha and
//! off by default: such an API server dropped `spec.resources` instead of validating it.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::names;
use crate::manifest::error::{BadValue, FieldError, FieldPath};
use crate::manifest::{PodSpec, Quantity};
use crate::pod::pod_level::{aggregate_requests, format};
use crate::pod::resources::milli_value;

/// `supportedPodLevelResources` (hugepages parse here; podshim's gate refuses them).
const POD_LEVEL_SUPPORTED: &[&str] = &["cpu", "hugepages-", "memory"];
/// `standardResources` that a Pod-level name without a domain may be.
const STANDARD: &[&str] = &[
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

pub(super) fn validate(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = validate_resize_policies(spec, path);
    let Some(r) = &spec.resources else {
        return errs;
    };
    let rp = path.child("resources");
    let os = spec
        .os
        .as_ref()
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str);
    if os == Some("windows") {
        errs.push(FieldError::forbidden(
            &rp,
            "may not be set for a windows pod",
        ));
        return errs;
    }
    names_and_values(&mut errs, &r.limits, &rp.child("limits"));
    let requests_path = rp.child("requests");
    names_and_values(&mut errs, &r.requests, &requests_path);
    for (name, req) in &r.requests {
        let Some(limit) = r.limits.get(name) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (req.parse(), limit.parse()) else {
            continue;
        };
        if a.cmp_value(&b) == std::cmp::Ordering::Greater {
            errs.push(FieldError::invalid(
                &requests_path,
                req.as_str(),
                format!("must be less than or equal to {name} limit of {limit}"),
            ));
        }
    }
    // validatePodResourceConsistency: the Pod's requests cover what its containers request...
    for (name, aggregate) in aggregate_requests(spec) {
        let Some(req) = r.requests.get(&name) else {
            continue;
        };
        if milli_value(req).is_some_and(|v| aggregate > i128::from(v)) {
            errs.push(FieldError::invalid(
                &requests_path.key(&name),
                req.as_str(),
                format!(
                    "must be greater than or equal to aggregate container requests of {}",
                    format(&name, aggregate)
                ),
            ));
        }
    }
    // ...and no app container's limit is above the Pod's (the path is built from the Pod-level
    // resources' path, as upstream builds it).
    for (i, c) in spec.containers.iter().enumerate() {
        let limits = c.resources.iter().flat_map(|cr| &cr.limits);
        for (name, limit) in limits {
            let Some(pod_limit) = r.limits.get(name) else {
                continue;
            };
            if milli_value(limit) > milli_value(pod_limit) {
                let p = rp.child("containers").index(i).key(name).child("limits");
                errs.push(FieldError::invalid(
                    &p,
                    limit.as_str(),
                    format!("must be less than or equal to pod limits of {pod_limit}"),
                ));
            }
        }
    }
    errs
}

/// `validatePodResourceName` and the quantities' signs.
fn names_and_values(errs: &mut Vec<FieldError>, list: &BTreeMap<String, Quantity>, lp: &FieldPath) {
    for (name, q) in list {
        let kp = lp.key(name);
        let qualified = names::qualified_name(name);
        if !qualified.is_empty() {
            errs.extend(
                qualified
                    .into_iter()
                    .map(|m| FieldError::invalid(&kp, name, m)),
            );
        } else if !name.contains('/')
            && !STANDARD.contains(&name.as_str())
            && !name.starts_with("hugepages-")
            && !name.starts_with("requests.hugepages-")
        {
            errs.push(FieldError::invalid(
                &kp,
                name,
                "must be a standard resource type or fully qualified",
            ));
        } else if !matches!(name.as_str(), "cpu" | "memory") && !name.starts_with("hugepages-") {
            errs.push(FieldError::not_supported(&kp, name, POD_LEVEL_SUPPORTED));
        }
        if q.parse().is_ok_and(|v| v.is_negative()) {
            errs.push(FieldError::invalid(
                &kp,
                q.as_str(),
                "must be greater than or equal to 0",
            ));
        }
    }
}

/// `validateResizePolicy` for every container, and the init containers' rule (a plain init
/// container runs once: it is never resized).
fn validate_resize_policies(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let never = spec.restart_policy.as_deref() == Some("Never");
    for (i, c) in spec.init_containers.iter().enumerate() {
        if !c.resize_policy.is_empty() && c.restart_policy.as_deref() != Some("Always") {
            let p = path.child("initContainers").index(i).child("resizePolicy");
            let value = Value::Array(c.resize_policy.clone());
            errs.push(FieldError::invalid(
                &p,
                BadValue::Json(value),
                "must not be set for init containers",
            ));
        }
    }
    let lists = [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let fp = path.child(list).index(i).child("resizePolicy");
            let mut seen = BTreeSet::new();
            for (j, p) in c.resize_policy.iter().enumerate() {
                let name = p.get("resourceName").and_then(Value::as_str).unwrap_or("");
                // An unset policy defaults to NotRequired.
                let policy = match p.get("restartPolicy").and_then(Value::as_str) {
                    None | Some("") => "NotRequired",
                    Some(p) => p,
                };
                if !seen.insert(name.to_string()) {
                    errs.push(FieldError::duplicate(&fp.index(j), name));
                }
                match name {
                    "cpu" | "memory" => {}
                    "" => errs.push(FieldError::required(&fp, "")),
                    other => errs.push(FieldError::not_supported(&fp, other, &["cpu", "memory"])),
                }
                match policy {
                    "NotRequired" | "RestartContainer" => {}
                    other => errs.push(FieldError::not_supported(
                        &fp,
                        other,
                        &["NotRequired", "RestartContainer"],
                    )),
                }
                if never && policy != "NotRequired" {
                    errs.push(FieldError::invalid(
                        &fp,
                        policy,
                        "must be 'NotRequired' when `restartPolicy` is 'Never'",
                    ));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    /// Decodes and defaults a YAML Pod (bypassing the unsupported gate), then validates it.
    fn errors(yaml: &str) -> Vec<String> {
        let pod = super::super::defaulted_pod(yaml);
        super::validate(&pod.spec, &crate::manifest::error::FieldPath::new("spec"))
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n";

    #[test]
    fn pod_level_resources_as_the_api_server_validates_them() {
        let ok = format!(
            "{HEAD}  resources: {{limits: {{cpu: '1', memory: 128Mi}}}}\n  containers:\n  - {{name: a, image: i, resources: {{requests: {{cpu: 500m}}}}}}\n  - {{name: b, image: i}}\n"
        );
        assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
        let bad = format!(
            "{HEAD}  resources: {{limits: {{cpu: 500m, memory: 64Mi, pods: '1'}}, requests: {{cpu: 750m, gpu: '1', memory: -1Mi}}}}\n  containers:\n  - {{name: a, image: i, resources: {{requests: {{cpu: 300m}}, limits: {{memory: 128Mi}}}}}}\n  - {{name: b, image: i, resources: {{requests: {{cpu: 400m}}}}}}\n"
        );
        assert_eq!(
            errors(&bad),
            vec![
                r#"spec.resources.limits[pods]: Unsupported value: "pods": supported values: "cpu", "hugepages-", "memory""#,
                r#"spec.resources.requests[gpu]: Invalid value: "gpu": must be a standard resource type or fully qualified"#,
                r#"spec.resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0"#,
                r#"spec.resources.requests: Invalid value: "750m": must be less than or equal to cpu limit of 500m"#,
                r#"spec.resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to aggregate container requests of 128Mi"#,
                r#"spec.resources.containers[0][memory].limits: Invalid value: "128Mi": must be less than or equal to pod limits of 64Mi"#,
            ]
        );
        let short = format!(
            "{HEAD}  resources: {{requests: {{cpu: '1'}}}}\n  initContainers:\n  - {{name: side, image: i, restartPolicy: Always, resources: {{requests: {{cpu: 500m}}}}}}\n  containers:\n  - {{name: a, image: i, resources: {{requests: {{cpu: 600m}}}}}}\n"
        );
        assert_eq!(
            errors(&short),
            vec![
                r#"spec.resources.requests[cpu]: Invalid value: "1": must be greater than or equal to aggregate container requests of 1100m"#
            ]
        );
        let windows = format!(
            "{HEAD}  os: {{name: windows}}\n  resources: {{limits: {{cpu: '1'}}}}\n  containers: [{{name: a, image: i}}]\n"
        );
        assert_eq!(
            errors(&windows),
            vec!["spec.resources: Forbidden: may not be set for a windows pod"]
        );
    }

    #[test]
    fn resize_policies() {
        let y = format!(
            "{HEAD}  restartPolicy: Never\n  initContainers:\n  - {{name: i, image: i, resizePolicy: [{{resourceName: cpu, restartPolicy: NotRequired}}]}}\n  containers:\n  - name: a\n    image: i\n    resizePolicy:\n    - {{resourceName: cpu, restartPolicy: RestartContainer}}\n    - {{resourceName: cpu, restartPolicy: NotRequired}}\n    - {{resourceName: gpu, restartPolicy: Sometimes}}\n"
        );
        assert_eq!(
            errors(&y),
            vec![
                r#"spec.initContainers[0].resizePolicy: Invalid value: [{"resourceName":"cpu","restartPolicy":"NotRequired"}]: must not be set for init containers"#,
                r#"spec.containers[0].resizePolicy: Invalid value: "RestartContainer": must be 'NotRequired' when `restartPolicy` is 'Never'"#,
                r#"spec.containers[0].resizePolicy[1]: Duplicate value: "cpu""#,
                r#"spec.containers[0].resizePolicy: Unsupported value: "gpu": supported values: "cpu", "memory""#,
                r#"spec.containers[0].resizePolicy: Unsupported value: "Sometimes": supported values: "NotRequired", "RestartContainer""#,
                r#"spec.containers[0].resizePolicy: Invalid value: "Sometimes": must be 'NotRequired' when `restartPolicy` is 'Never'"#,
            ]
        );
    }
}
