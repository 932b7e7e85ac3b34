//! Strict decoding of YAML documents into Pods: YAML errors with their position, the
//! apiVersion/kind check, and every unknown field reported at once with its Kubernetes path and a
//! "did you mean" suggestion.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::error::DocumentError;
use super::types::Pod;
use super::yaml;

/// How many unknown fields one document may report before decoding gives up.
const MAX_UNKNOWN_FIELDS: usize = 64;

/// The non-empty YAML documents of a text as JSON values, numbered from 1 (see `yaml`: documents
/// are split and read as kubectl reads them, and one that does not parse does not stop the
/// others).
pub fn documents(text: &str) -> Vec<(usize, Result<yaml::Document, DocumentError>)> {
    yaml::documents(text)
        .into_iter()
        .filter(|(_, doc)| !matches!(doc, Ok(d) if d.value.is_null()))
        .map(|(document, doc)| {
            let doc = doc.map_err(|e| DocumentError::Yaml {
                document,
                line: e.line,
                column: e.column,
                message: e.message,
            });
            (document, doc)
        })
        .collect()
}

/// The kinds of object a manifest may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ConfigMap,
    Secret,
    PriorityClass,
    PersistentVolumeClaim,
}

/// Checks `apiVersion: v1` and a supported `kind`, returning the kind.
pub fn check_kind(v: &Value, document: usize) -> Result<Kind, DocumentError> {
    const SUPPORTED: &str =
        "podshim supports apiVersion v1 kinds Pod, ConfigMap, Secret and PersistentVolumeClaim, \
         and scheduling.k8s.io/v1 PriorityClass (ConfigMaps, Secrets and PriorityClasses are used \
         by the Pods of the same file)";
    let err = |problem: String| DocumentError::Kind { document, problem };
    let Some(map) = v.as_object() else {
        return Err(err(format!(
            "expected a mapping (a Kubernetes object), found {}: {SUPPORTED}",
            type_name(v)
        )));
    };
    let field = |k: &str| match map.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(err(format!(
            "{k}: Invalid value: {other}: must be a string: {SUPPORTED}"
        ))),
    };
    let (api_version, kind) = (field("apiVersion")?, field("kind")?);
    let known = |k: &str| match k {
        "Pod" => Some((Kind::Pod, "v1")),
        "ConfigMap" => Some((Kind::ConfigMap, "v1")),
        "Secret" => Some((Kind::Secret, "v1")),
        "PriorityClass" => Some((Kind::PriorityClass, "scheduling.k8s.io/v1")),
        "PersistentVolumeClaim" => Some((Kind::PersistentVolumeClaim, "v1")),
        _ => None,
    };
    match (api_version, kind) {
        (_, None) => Err(err(format!("kind: Required value: {SUPPORTED}"))),
        (None, Some(_)) => Err(err(format!("apiVersion: Required value: {SUPPORTED}"))),
        (Some(av), Some(k)) => match (av, known(k)) {
            (av, Some((kind, want))) if av == want => Ok(kind),
            (av, Some(_)) => Err(err(format!(
                "apiVersion {av:?} is not supported for kind {k:?}: {SUPPORTED}"
            ))),
            (av, None) => Err(err(format!(
                "kind {k:?} (apiVersion {av:?}) is not supported: {SUPPORTED}"
            ))),
        },
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Removes `null` entries from mappings: Kubernetes treats `field: null` as unset.
pub fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, x| !x.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// Decodes a Pod strictly (see `decode`).
pub fn decode_pod(value: &mut Value) -> Result<Pod, Vec<String>> {
    decode(value)
}

/// Decodes an object strictly. On success `value` is what was decoded; on failure every unknown
/// field (each removed from `value` to find the next) and the first type error are returned.
pub fn decode<T: DeserializeOwned>(value: &mut Value) -> Result<T, Vec<String>> {
    decode_with_text(value, &HashMap::new()).map(|(v, _)| v)
}

/// `decode`, where a string field given a plain YAML 1.1 boolean or number (`value: yes`) takes
/// the scalar's text from `plain` (see `yaml::Document`), with a warning: kubectl reads such a
/// scalar as a boolean or number, which the API server refuses for a string field.
pub fn decode_with_text<T: DeserializeOwned>(
    value: &mut Value,
    plain: &HashMap<Vec<yaml::Seg>, String>,
) -> Result<(T, Vec<String>), Vec<String>> {
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for _ in 0..=MAX_UNKNOWN_FIELDS + plain.len() {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(pod) if problems.is_empty() => return Ok((pod, warnings)),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let segments: Vec<&Segment> = err.path().iter().collect();
        let message = err.inner().to_string();
        if message.starts_with("invalid type: ") && message.ends_with(", expected a string") {
            let path = as_yaml_path(&segments);
            if let Some(text) = path.as_ref().and_then(|p| plain.get(p)) {
                if set_at(value, &segments, Value::String(text.clone())) {
                    warnings.push(format!(
                        "{}: unquoted {text} is read as the string {text:?}; kubectl reads it as {} \
                         and the API server refuses that for a string: quote it",
                        format_path(&segments),
                        match yaml::scalar::resolve_plain(text) {
                            yaml::scalar::Scalar::Json(Value::Bool(_)) => "a boolean",
                            _ => "a number",
                        },
                    ));
                    continue;
                }
            }
        }
        match parse_unknown_field(&message) {
            Some((name, expected)) if remove_at(value, &segments) => {
                let mut line = format!("{}: unknown field {name:?}", format_path(&segments));
                if let Some(s) = suggest(&name, &expected) {
                    line.push_str(&format!(", did you mean {s:?}?"));
                }
                problems.push(line);
            }
            _ => {
                let path = format_path(&segments);
                problems.push(if path.is_empty() {
                    message
                } else {
                    format!("{path}: {message}")
                });
                return Err(problems);
            }
        }
    }
    problems.push(format!("more than {MAX_UNKNOWN_FIELDS} unknown fields"));
    Err(problems)
}

/// `spec.containers[0].comand` from serde_path_to_error's segments.
fn format_path(segments: &[&Segment]) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    out
}

/// `unknown field `x`, expected one of `a`, `b`` → ("x", ["a", "b"]).
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (name, tail) = rest.split_once('`')?;
    let expected = tail
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    Some((name.to_string(), expected))
}

/// serde_path_to_error's segments as a path of the YAML reader.
fn as_yaml_path(segments: &[&Segment]) -> Option<Vec<yaml::Seg>> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Map { key } => Some(yaml::Seg::Key(key.clone())),
            Segment::Seq { index } => Some(yaml::Seg::Index(*index)),
            _ => None,
        })
        .collect()
}

/// Replaces the value the path leads to; false if it leads nowhere.
fn set_at(value: &mut Value, segments: &[&Segment], new: Value) -> bool {
    let mut cur = value;
    for s in segments {
        cur = match (s, cur) {
            (Segment::Map { key }, Value::Object(m)) => match m.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    *cur = new;
    true
}

/// Removes the map key the path ends with; false if the path does not lead there.
fn remove_at(value: &mut Value, segments: &[&Segment]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = value;
    for s in parents {
        cur = match (s, cur) {
            (Segment::Map { key }, Value::Object(m)) => match m.get_mut(key) {
                Some(v) => v,
                None => return false,
            },
            (Segment::Seq { index }, Value::Array(a)) => match a.get_mut(*index) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Segment::Map { key }, Value::Object(m)) => m.remove(key).is_some(),
        _ => false,
    }
}

/// The known field closest to an unknown one, if close enough.
fn suggest(name: &str, expected: &[String]) -> Option<String> {
    expected
        .iter()
        .map(|e| {
            let score = if e.eq_ignore_ascii_case(name) {
                1.0
            } else {
                strsim::jaro_winkler(&name.to_ascii_lowercase(), &e.to_ascii_lowercase())
            };
            (score, e)
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, e)| e.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_unknown_field_with_suggestions() {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "lables": {}},
            "spec": {"containers": [{"name": "a", "image": "i", "comand": ["x"], "zzz": 1}]}
        });
        let problems = decode_pod(&mut v).unwrap_err();
        assert_eq!(
            problems,
            vec![
                r#"metadata.lables: unknown field "lables", did you mean "labels"?"#,
                r#"spec.containers[0].comand: unknown field "comand", did you mean "command"?"#,
                r#"spec.containers[0].zzz: unknown field "zzz""#,
            ]
        );
    }

    #[test]
    fn type_error_has_path() {
        let mut v = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "http"}]}]}
        });
        let problems = decode_pod(&mut v).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].starts_with("spec.containers[0].ports[0].containerPort: invalid type"),
            "{problems:?}"
        );
    }

    #[test]
    fn kind_checks() {
        let ok = serde_json::json!({"apiVersion": "v1", "kind": "Pod"});
        assert_eq!(check_kind(&ok, 1).unwrap(), Kind::Pod);
        let cm = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap"});
        assert_eq!(check_kind(&cm, 1).unwrap(), Kind::ConfigMap);
        let s = serde_json::json!({"apiVersion": "v2", "kind": "Secret"});
        assert!(check_kind(&s, 1).is_err());
        let dep = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        let e = check_kind(&dep, 2).unwrap_err().to_string();
        assert_eq!(
            e,
            r#"error in document 2: kind "Deployment" (apiVersion "apps/v1") is not supported: podshim supports apiVersion v1 kinds Pod, ConfigMap, Secret and PersistentVolumeClaim, and scheduling.k8s.io/v1 PriorityClass (ConfigMaps, Secrets and PriorityClasses are used by the Pods of the same file)"#
        );
        let none = serde_json::json!({"apiVersion": "v1"});
        let e = check_kind(&none, 1).unwrap_err().to_string();
        assert!(e.contains("kind: Required value"), "{e}");
    }
}
