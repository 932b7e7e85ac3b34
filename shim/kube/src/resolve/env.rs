//! A container's environment as the kubelet makes it (`makeEnvironmentVariables`): `envFrom`
//! first (ConfigMap and Secret keys, with `prefix`; keys that are not valid variable names are
//! skipped with a warning, where the kubelet emits an event), then `env` in order, where a later
//! name wins. `valueFrom` values are used verbatim; only `value` is `$(VAR)`-expanded later.

use std::collections::BTreeMap;

use super::{not_found, Context};
use crate::manifest::validate::names;
use crate::manifest::{Container, EnvVarSource, Quantity};
use crate::pod::process::{EnvEntry, EnvValue};
use crate::pod::resources::milli_value;

/// The environment of `spec.containers[index]`; problems are pushed to `errors` (as
/// `<field path>: <problem>`), skipped keys to `warnings`.
pub fn container_env(
    cx: &Context<'_>,
    index: usize,
    c: &Container,
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Vec<EnvEntry> {
    let path = format!("spec.containers[{index}]");
    let ns = cx.namespace();
    let mut out = Vec::new();
    for (j, ef) in c.env_from.iter().enumerate() {
        let fp = format!("{path}.envFrom[{j}]");
        let prefix = ef.prefix.as_deref().unwrap_or("");
        let mut add = |pairs: Vec<(String, String)>, what: &str, name: &str| {
            let mut invalid = Vec::new();
            for (k, v) in pairs {
                let key = format!("{prefix}{k}");
                if names::env_var_name(&key).is_empty() {
                    out.push(EnvEntry::resolved(&key, &v));
                } else {
                    invalid.push(key);
                }
            }
            if !invalid.is_empty() {
                // The kubelet's event text (`InvalidEnvironmentVariableNames`).
                warnings.push(format!(
                    "{fp}: Keys [{}] from the EnvFrom {what} {ns}/{name} were skipped since they \
                     are considered invalid environment variable names.",
                    invalid.join(", ")
                ));
            }
        };
        if let Some(r) = &ef.config_map_ref {
            let name = r.name.as_deref().unwrap_or("");
            match cx.manifest.config_map(ns, name) {
                Some(cm) => add(
                    cm.data
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    "configMap",
                    name,
                ),
                None if r.optional == Some(true) => {}
                None => errors.push(missing(&format!("{fp}.configMapRef"), "configmap", name)),
            }
        }
        if let Some(r) = &ef.secret_ref {
            let name = r.name.as_deref().unwrap_or("");
            match cx.manifest.secret(ns, name) {
                Some(s) => add(
                    s.data
                        .iter()
                        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
                        .collect(),
                    "secret",
                    name,
                ),
                None if r.optional == Some(true) => {}
                None => errors.push(missing(&format!("{fp}.secretRef"), "secret", name)),
            }
        }
    }
    for (j, e) in c.env.iter().enumerate() {
        let vp = format!("{path}.env[{j}].valueFrom");
        let value = match &e.value_from {
            None => Some(EnvValue::Literal(e.value.clone().unwrap_or_default())),
            Some(from) => match value_from(cx, c, from, &vp) {
                Ok(v) => v,
                Err(problem) => {
                    errors.push(problem);
                    None
                }
            },
        };
        if let Some(value) = value {
            out.push(EnvEntry {
                name: e.name.clone(),
                value,
            });
        }
    }
    out
}

/// The kubelet's `CreateContainerConfigError` for a missing object.
fn missing(path: &str, kind: &str, name: &str) -> String {
    not_found(
        path,
        name,
        &format!("CreateContainerConfigError: {kind} {name:?} not found"),
    )
}

/// One `valueFrom`; `Ok(None)` when an optional reference is missing (the variable is not set).
fn value_from(
    cx: &Context<'_>,
    c: &Container,
    from: &EnvVarSource,
    vp: &str,
) -> Result<Option<EnvValue>, String> {
    let ns = cx.namespace();
    if let Some(f) = &from.field_ref {
        return field_ref(cx, &f.field_path, vp).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
            None => c,
            Some(n) => cx
                .pod
                .spec
                .containers
                .iter()
                .chain(&cx.pod.spec.init_containers)
                .find(|c| c.name == n)
                .ok_or_else(|| format!("{vp}.resourceFieldRef.containerName: Not found: {n:?}"))?,
        };
        let value = resource_value(cx, target, &r.resource, r.divisor.as_ref())
            .ok_or_else(|| format!("{vp}.resourceFieldRef: Invalid value: {:?}", r.resource))?;
        return Ok(Some(EnvValue::Resolved(value)));
    }
    if let Some(sel) = &from.config_map_key_ref {
        let name = sel.name.as_deref().unwrap_or("");
        let optional = sel.optional == Some(true);
        let p = format!("{vp}.configMapKeyRef");
        let Some(cm) = cx.manifest.config_map(ns, name) else {
            return if optional {
                Ok(None)
            } else {
                Err(missing(&p, "configmap", name))
            };
        };
        return match cm.data.get(&sel.key) {
            Some(v) => Ok(Some(EnvValue::Resolved(v.clone()))),
            None if optional => Ok(None),
            None => Err(not_found(
                &format!("{p}.key"),
                &sel.key,
                &format!("couldn't find key {} in ConfigMap {ns}/{name}", sel.key),
            )),
        };
    }
    if let Some(sel) = &from.secret_key_ref {
        let name = sel.name.as_deref().unwrap_or("");
        let optional = sel.optional == Some(true);
        let p = format!("{vp}.secretKeyRef");
        let Some(s) = cx.manifest.secret(ns, name) else {
            return if optional {
                Ok(None)
            } else {
                Err(missing(&p, "secret", name))
            };
        };
        return match s.data.get(&sel.key) {
            Some(v) => Ok(Some(EnvValue::Resolved(
                String::from_utf8_lossy(&v.0).into_owned(),
            ))),
            None if optional => Ok(None),
            None => Err(not_found(
                &format!("{p}.key"),
                &sel.key,
                &format!("couldn't find key {} in Secret {ns}/{name}", sel.key),
            )),
        };
    }
    Err(format!("{vp}: Forbidden: not supported by podshim yet"))
}

/// `fieldRef` (`podFieldSelectorRuntimeValue` + `ExtractFieldPathAsString`).
pub(super) fn field_ref(cx: &Context<'_>, field_path: &str, vp: &str) -> Result<EnvValue, String> {
    let meta = &cx.pod.metadata;
    let subscript = |prefix: &str, map: &BTreeMap<String, String>| {
        let key = field_path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.get(key).cloned().unwrap_or_default())
    };
    let value = match field_path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => cx.namespace().to_string(),
        "metadata.uid" => cx.uid.to_string(),
        "metadata.labels" => format_map(&meta.labels),
        "metadata.annotations" => format_map(&meta.annotations),
        "spec.nodeName" => cx.node.name.clone(),
        "spec.serviceAccountName" => cx.pod.spec.service_account_name.clone().unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => cx.node.host_ip.clone(),
        // One IPv4 Pod IP, so podIPs is that IP too.
        "status.podIP" | "status.podIPs" => return Ok(EnvValue::PodIp),
        p => subscript("metadata.labels['", &meta.labels)
            .or_else(|| subscript("metadata.annotations['", &meta.annotations))
            .ok_or_else(|| format!("{vp}.fieldRef.fieldPath: Unsupported value: {p:?}"))?,
    };
    Ok(EnvValue::Resolved(value))
}

/// `fieldpath.FormatMap`: `k="v"` lines, sorted by key.
fn format_map(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `ExtractContainerResourceValue` over the container's resources, limits defaulted to the
/// node's allocatable (`MergeContainerResourceLimits`): CPU in `divisor` units (default 1) and
/// memory in `divisor` bytes (default 1), rounded up.
pub fn resource_value(
    cx: &Context<'_>,
    c: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
) -> Option<String> {
    let empty = BTreeMap::new();
    let (limits, requests) = c
        .resources
        .as_ref()
        .map_or((&empty, &empty), |r| (&r.limits, &r.requests));
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    let divisor = divisor.filter(|d| d.parse().is_ok_and(|p| p.to_f64() != 0.0));
    let (value, div) = match resource {
        "limits.cpu" | "requests.cpu" => {
            let v = if resource == "limits.cpu" {
                positive(limits.get("cpu").and_then(milli_value)).unwrap_or(cx.node.milli_cpus)
            } else {
                requests.get("cpu").and_then(milli_value).unwrap_or(0)
            };
            (v, divisor.map_or(Some(1000), milli_value)?)
        }
        "limits.memory" | "requests.memory" => {
            let v = if resource == "limits.memory" {
                positive(limits.get("memory").and_then(Quantity::to_bytes))
                    .unwrap_or(cx.node.memory)
            } else {
                requests
                    .get("memory")
                    .and_then(Quantity::to_bytes)
                    .unwrap_or(0)
            };
            (v, divisor.map_or(Some(1), Quantity::to_bytes)?)
        }
        _ => return None,
    };
    if div <= 0 {
        return None;
    }
    // math.Ceil(float64(value) / float64(divisor)), in integers.
    let q = i128::from(value);
    let d = i128::from(div);
    Some((q.div_euclid(d) + i128::from(q.rem_euclid(d) != 0)).to_string())
}
