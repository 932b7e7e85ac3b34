//! The "not supported by podshim yet" gate: a valid Kubernetes field the user set that podshim does
//! not implement is refused. `supported::SUPPORTED` is the one list to grow as features land.
//!
//! The gate looks at the document as the user wrote it (before defaults), so defaulted fields never
//! trip it. An entry allows that field and everything beneath it; `[]` stands for any list index.

use serde_json::Value;

use super::error::{FieldError, FieldPath};
use super::supported::supported;

/// `spec.initContainers[]` supports the fields of `spec.containers[]` (see `is_supported`), plus
/// these (`restartPolicy: Always` makes a sidecar; validation allows no other value).
const INIT_CONTAINER_ONLY: &[&str] = &["spec.initContainers[].restartPolicy"];
/// Container fields not supported on init containers (host ports are forwarded only for app
/// containers).
const NOT_FOR_INIT_CONTAINERS: &[&str] = &["spec.containers[].ports[].hostPort"];

/// Fields accepted but ignored, with the warning shown when they are set.
const NO_OPS: &[(&str, &str)] = &[
    ("spec.enableServiceLinks", "podshim has no Services to link"),
    (
        "spec.automountServiceAccountToken",
        "podshim mounts no service account token",
    ),
    ("spec.schedulerName", "podshim runs every Pod on this host"),
];

/// `emptyDir.medium` values podshim implements (HugePages is not).
const EMPTY_DIR_MEDIA: &[&str] = &["", "Memory"];
/// `dnsPolicy` values podshim implements (all of them use the host's resolv.conf, having no
/// cluster DNS).
const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
/// Container resources podshim turns into cgroup limits (not hugepages, ephemeral-storage or
/// extended resources).
const CONTAINER_RESOURCES: &[&str] = &["cpu", "memory"];

/// `resourceFieldRef.resource` values podshim resolves (not ephemeral-storage or hugepages).
const RESOURCE_FIELD_REFS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "requests.cpu",
    "requests.memory",
];

const NOT_YET: &str = "not supported by podshim yet";

/// The beta AppArmor annotation, one per container, that Kubernetes still honours (as the
/// container's `securityContext.appArmorProfile`) and warns about.
const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The deprecated AppArmor annotations of a Pod: the same answer as for `appArmorProfile` (not
/// supported yet, see `SUPPORTED`), with Kubernetes' deprecation warning (`pkg/api/pod/warnings.go`).
fn check_apparmor_annotations(doc: &Value, errs: &mut Vec<FieldError>, warnings: &mut Vec<String>) {
    let Some(annotations) = lookup(doc, "metadata.annotations").and_then(Value::as_object) else {
        return;
    };
    let names: Vec<&str> = ["spec.containers", "spec.initContainers"]
        .iter()
        .filter_map(|l| lookup(doc, l).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let ap = FieldPath::new("metadata").child("annotations");
    for key in annotations.keys() {
        let Some(container) = key.strip_prefix(APPARMOR_ANNOTATION_PREFIX) else {
            continue;
        };
        let path = ap.key(key);
        if names.contains(&container) {
            warnings.push(format!(
                "{path}: deprecated since v1.30; use the \"appArmorProfile\" field instead"
            ));
        }
        let field = if is_supported("spec.containers[].securityContext.appArmorProfile.type") {
            None
        } else {
            Some(FieldError::forbidden(
                &path,
                format!("{NOT_YET} (the annotation stands for the container's securityContext.appArmorProfile)"),
            ))
        };
        errs.extend(field);
    }
}

/// The gate: errors for unsupported fields and values, warnings for accepted no-ops.
pub fn check(doc: &Value) -> (Vec<FieldError>, Vec<String>) {
    let mut errs = Vec::new();
    walk(doc, &FieldPath::default(), "", &mut errs);
    errs.extend(check_values(doc));
    let mut warnings = Vec::new();
    check_apparmor_annotations(doc, &mut errs, &mut warnings);
    for (field, why) in NO_OPS {
        if let Some(v) = lookup(doc, field) {
            warnings.push(format!("{field}: {v} is ignored: {why}"));
        }
    }
    (errs, warnings)
}

/// Whether `field` is `entry` or lies beneath it.
fn within(field: &str, entry: &str) -> bool {
    field == entry
        || field
            .strip_prefix(entry)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// An init container's field as the same field of an app container (`None` for other fields).
fn as_app_container_field(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix("spec.initContainers")?;
    (rest.is_empty() || rest.starts_with('[')).then(|| format!("spec.containers{rest}"))
}

/// Every field the gate's lists name (checked against the API's field list in `schema_check`).
#[cfg(test)]
pub(crate) fn named_fields() -> impl Iterator<Item = &'static str> {
    (supported().iter().map(String::as_str))
        .chain(INIT_CONTAINER_ONLY.iter().copied())
        .chain(NOT_FOR_INIT_CONTAINERS.iter().copied())
        .chain(NO_OPS.iter().map(|(f, _)| *f))
}

/// Whether `pattern` is supported itself or lies beneath a supported entry.
pub(crate) fn is_supported(pattern: &str) -> bool {
    if INIT_CONTAINER_ONLY.iter().any(|s| within(pattern, s)) {
        return true;
    }
    match as_app_container_field(pattern) {
        Some(p) if NOT_FOR_INIT_CONTAINERS.iter().any(|s| within(&p, s)) => false,
        Some(p) => is_supported(&p),
        None => supported().iter().any(|s| within(pattern, s)),
    }
}

/// Whether some supported entry lies beneath `pattern` (so it must be walked into).
fn leads_to_supported(pattern: &str) -> bool {
    let pattern = as_app_container_field(pattern).unwrap_or_else(|| pattern.to_string());
    supported()
        .iter()
        .any(|s| within(s, &pattern) && *s != pattern)
}

fn walk(v: &Value, path: &FieldPath, pattern: &str, errs: &mut Vec<FieldError>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if is_unset(child) {
                    continue;
                }
                let p = if pattern.is_empty() {
                    k.clone()
                } else {
                    format!("{pattern}.{k}")
                };
                let fp = path.child(k);
                if is_supported(&p) {
                    continue;
                }
                if leads_to_supported(&p) {
                    walk(child, &fp, &p, errs);
                } else {
                    errs.push(FieldError::forbidden(&fp, NOT_YET));
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, &path.index(i), &format!("{pattern}[]"), errs);
            }
        }
        _ => {}
    }
}

/// `null` and empty lists count as not set.
fn is_unset(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(|a| a.is_empty())
}

fn lookup<'a>(doc: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted
        .split('.')
        .try_fold(doc, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

/// Supported fields with only some values implemented.
fn check_values(doc: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = FieldPath::new("spec");
    if let Some(Value::Bool(true)) = lookup(doc, "spec.automountServiceAccountToken") {
        errs.push(FieldError::forbidden(
            &spec.child("automountServiceAccountToken"),
            "true is not supported by podshim yet: podshim has no service account token to mount",
        ));
    }
    if let Some(Value::String(p)) = lookup(doc, "spec.dnsPolicy") {
        if !DNS_POLICIES.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                &spec.child("dnsPolicy"),
                p,
                DNS_POLICIES,
            ));
        }
    }
    for list_name in ["containers", "initContainers"] {
        errs.extend(check_container_values(doc, list_name));
    }
    // Pod-level hugepages (valid in Kubernetes) have no Pod cgroup setting in podshim yet.
    for list in ["limits", "requests"] {
        let names = lookup(doc, &format!("spec.resources.{list}")).and_then(Value::as_object);
        for name in names.into_iter().flatten().map(|(n, _)| n) {
            if name.starts_with("hugepages-") {
                let p = spec.child("resources").child(list).key(name);
                errs.push(FieldError::forbidden(&p, NOT_YET));
            }
        }
    }
    let volumes = lookup(doc, "spec.volumes").and_then(Value::as_array);
    for (i, v) in volumes.into_iter().flatten().enumerate() {
        if let Some(Value::String(m)) = v.get("emptyDir").and_then(|e| e.get("medium")) {
            if !EMPTY_DIR_MEDIA.contains(&m.as_str()) {
                let p = spec
                    .child("volumes")
                    .index(i)
                    .child("emptyDir")
                    .child("medium");
                errs.push(FieldError::not_supported(&p, m, EMPTY_DIR_MEDIA));
            }
        }
    }
    errs
}

/// An extended resource name (`IsExtendedResourceName`): a domain-prefixed name outside
/// `kubernetes.io/` that is not a quota `requests.` name.
pub(crate) fn is_extended_resource(name: &str) -> bool {
    match name.split_once('/') {
        Some((domain, _)) => {
            !(domain == "kubernetes.io"
                || domain.ends_with(".kubernetes.io")
                || name.starts_with("requests."))
        }
        None => false,
    }
}

/// The resource names and `resourceFieldRef`s of `spec.<list_name>[]` podshim implements.
fn check_container_values(doc: &Value, list_name: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let spec = FieldPath::new("spec");
    let containers = lookup(doc, &format!("spec.{list_name}")).and_then(Value::as_array);
    for (i, c) in containers.into_iter().flatten().enumerate() {
        for list in ["limits", "requests"] {
            let names = c
                .get("resources")
                .and_then(|r| r.get(list))
                .and_then(Value::as_object);
            for (name, _) in names.into_iter().flatten() {
                // Extended resources are the scheduler's to refuse (this node has none):
                // `crate::plan` says so in its words.
                if !CONTAINER_RESOURCES.contains(&name.as_str()) && !is_extended_resource(name) {
                    let p = spec
                        .child(list_name)
                        .index(i)
                        .child("resources")
                        .child(list)
                        .key(name);
                    errs.push(FieldError::forbidden(&p, NOT_YET));
                }
            }
        }
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let handlers = [
            ("livenessProbe", None),
            ("readinessProbe", None),
            ("startupProbe", None),
            ("lifecycle", Some("postStart")),
            ("lifecycle", Some("preStop")),
        ];
        for (field, hook) in handlers {
            let mut h = c.get(field);
            if let Some(hook) = hook {
                h = h.and_then(|l| l.get(hook));
            }
            let scheme = h
                .and_then(|h| h.get("httpGet"))
                .and_then(|g| g.get("scheme"));
            if let Some(Value::String(s)) = scheme {
                if s != "HTTP" {
                    let mut p = spec.child(list_name).index(i).child(field);
                    if let Some(hook) = hook {
                        p = p.child(hook);
                    }
                    let p = p.child("httpGet").child("scheme");
                    errs.push(FieldError::forbidden(
                        &p,
                        format!("{s} is not supported by podshim yet (only HTTP)"),
                    ));
                }
            }
        }
    }
    for (i, c) in containers.into_iter().flatten().enumerate() {
        let env = c.get("env").and_then(Value::as_array);
        for (j, e) in env.into_iter().flatten().enumerate() {
            let r = e.get("valueFrom").and_then(|v| v.get("resourceFieldRef"));
            if let Some(Value::String(res)) = r.and_then(|r| r.get("resource")) {
                if !RESOURCE_FIELD_REFS.contains(&res.as_str()) {
                    let p = spec
                        .child(list_name)
                        .index(i)
                        .child("env")
                        .index(j)
                        .child("valueFrom")
                        .child("resourceFieldRef")
                        .child("resource");
                    errs.push(FieldError::not_supported(&p, res, RESOURCE_FIELD_REFS));
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(v: Value) -> Vec<String> {
        check(&v).0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn supported_fields_pass() {
        let v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "labels": {"a": "b"}},
            "spec": {
                "containers": [{"name": "c", "image": "i", "env": [{"name": "A", "value": "1"},
                    {"name": "B", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "C", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                  "envFrom": [{"prefix": "P_", "configMapRef": {"name": "m"}}],
                  "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}},
                  "resources": {"limits": {"memory": "32Mi", "cpu": "500m"}, "requests": {"cpu": "250m"}}}],
                "volumes": [{"name": "v", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}},
                  {"name": "m", "configMap": {"name": "m", "items": [{"key": "a", "path": "b", "mode": 256}]}},
                  {"name": "s", "secret": {"secretName": "s", "defaultMode": 256}}],
                "securityContext": {}, "initContainers": []
            }
        });
        assert_eq!(gate(v), Vec::<String>::new());
    }

    #[test]
    fn unsupported_fields_are_forbidden_at_their_top() {
        let v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "generateName": "x-"},
            "spec": {
                "containers": [{"name": "c", "livenessProbe": {"grpc": {"port": 9000, "service": "s"}},
                  "lifecycle": {"preStop": {"tcpSocket": {"port": 80}}},
                  "readinessProbe": {"httpGet": {"port": 80, "scheme": "HTTPS"}},
                  "env": [{"name": "A", "valueFrom": {"fileKeyRef": {"path": "x"}}},
                    {"name": "B", "valueFrom": {"resourceFieldRef": {"resource": "limits.ephemeral-storage"}}}],
                  "ports": [{"containerPort": 80, "hostPort": 80, "hostIP": "127.0.0.1"}],
                  "securityContext": {"privileged": true, "seLinuxOptions": {"level": "s0"}},
                  "resources": {"limits": {"memory": "1Gi", "hugepages-2Mi": "2Mi"},
                    "requests": {"ephemeral-storage": "1Gi"}, "claims": [{"name": "gpu"}]}}],
                "resources": {"limits": {"cpu": "1", "hugepages-2Mi": "2Mi"}},
                "volumes": [{"name": "v", "gitRepo": {"repository": "r"}},
                            {"name": "w", "emptyDir": {"medium": "HugePages"}}]
            }
        });
        let errs = gate(v);
        for want in [
            "metadata.generateName: Forbidden: not supported by podshim yet",
            "spec.containers[0].lifecycle.preStop.tcpSocket: Forbidden: not supported by podshim yet",
            "spec.containers[0].readinessProbe.httpGet.scheme: Forbidden: HTTPS is not supported by podshim yet (only HTTP)",
            "spec.containers[0].env[0].valueFrom.fileKeyRef: Forbidden: not supported by podshim yet",
            r#"spec.containers[0].env[1].valueFrom.resourceFieldRef.resource: Unsupported value: "limits.ephemeral-storage": supported values: "limits.cpu", "limits.memory", "requests.cpu", "requests.memory""#,
            "spec.containers[0].securityContext.seLinuxOptions: Forbidden: not supported by podshim yet",
            "spec.volumes[0].gitRepo: Forbidden: not supported by podshim yet",
            "spec.containers[0].resources.limits[hugepages-2Mi]: Forbidden: not supported by podshim yet",
            "spec.containers[0].resources.requests[ephemeral-storage]: Forbidden: not supported by podshim yet",
            "spec.containers[0].resources.claims: Forbidden: not supported by podshim yet",
            "spec.resources.limits[hugepages-2Mi]: Forbidden: not supported by podshim yet",
            r#"spec.volumes[1].emptyDir.medium: Unsupported value: "HugePages": supported values: "", "Memory""#,
        ] {
            assert!(errs.contains(&want.to_string()), "missing {want} in {errs:#?}");
        }
        assert_eq!(errs.len(), 12, "{errs:#?}");
    }

    #[test]
    fn init_containers_and_sidecars_take_the_container_fields() {
        let v = serde_json::json!({
            "spec": {
                "containers": [{"name": "c", "image": "i"}],
                "initContainers": [
                    {"name": "i", "image": "i", "command": ["true"],
                     "env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}}],
                     "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                     "ports": [{"containerPort": 80}]},
                    {"name": "s", "image": "i", "restartPolicy": "Always",
                     "resources": {"limits": {"memory": "32Mi"}}}
                ]
            }
        });
        assert_eq!(gate(v), Vec::<String>::new());
        let v = serde_json::json!({
            "spec": {"initContainers": [
                {"name": "s", "image": "i", "restartPolicy": "Always",
                 "livenessProbe": {"exec": {"command": ["true"]}},
                 "lifecycle": {"preStop": {"sleep": {"seconds": 1}}, "stopSignal": "SIGQUIT"},
                 "ports": [{"containerPort": 80, "hostPort": 8080}],
                 "resources": {"limits": {"hugepages-2Mi": "2Mi"}}}
            ]}
        });
        assert_eq!(
            gate(v),
            vec![
                "spec.initContainers[0].lifecycle.stopSignal: Forbidden: not supported by podshim yet",
                "spec.initContainers[0].ports[0].hostPort: Forbidden: not supported by podshim yet",
                "spec.initContainers[0].resources.limits[hugepages-2Mi]: Forbidden: not supported by podshim yet",
            ]
        );
    }

    #[test]
    fn apparmor_annotation_is_treated_like_the_field_with_the_deprecation_warning() {
        let key = "container.apparmor.security.beta.kubernetes.io/app";
        let v = serde_json::json!({
            "metadata": {"name": "p", "annotations": {key: "runtime/default"}},
            "spec": {"containers": [{"name": "app", "image": "i"}]}
        });
        let (errs, warnings) = check(&v);
        assert_eq!(
            warnings,
            vec![format!("metadata.annotations[{key}]: deprecated since v1.30; use the \"appArmorProfile\" field instead")]
        );
        // Supported (`crate::security`): the node's admission decides, not the gate.
        assert!(errs.is_empty(), "{errs:?}");
        let v = serde_json::json!({"spec": {"containers": [{"name": "app", "image": "i",
            "securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}]}});
        assert_eq!(gate(v), Vec::<String>::new());
    }

    #[test]
    fn no_ops_warn() {
        let v = serde_json::json!({"spec": {"enableServiceLinks": false,
            "automountServiceAccountToken": false}});
        let (errs, warnings) = check(&v);
        assert!(errs.is_empty());
        assert_eq!(warnings.len(), 2);
    }
}
