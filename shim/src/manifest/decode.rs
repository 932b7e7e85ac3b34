//! Strict decoding of YAML documents into Pods: YAML errors with their position, the
//! apiVersion/kind check, and every unknown field reported at once with its Kubernetes path and a
//! "did you mean" suggestion.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::error::DocumentError;
use super::types::Pod;

/// How many unknown fields one document may report before decoding gives up.
const MAX_UNKNOWN_FIELDS: usize = 64;

/// The non-empty YAML documents of a text as JSON values, numbered from 1; stops at the first
/// document that does not parse (serde_yaml cannot resume after a syntax error).
pub fn documents(text: &str) -> Vec<(usize, Result<Value, DocumentError>)> {
    let mut out = Vec::new();
    let text = octal_modes(text);
    for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
        let document = i + 1;
        match serde_yaml::Value::deserialize(doc) {
            Ok(serde_yaml::Value::Null) => {}
            Ok(v) => out.push((document, yaml_to_json(v, document))),
            Err(e) => {
                out.push((document, Err(yaml_error(&e, document))));
                break;
            }
        }
    }
    out
}

/// File modes written the YAML 1.1 way (`defaultMode: 0644`), as Kubernetes reads them (its
/// YAML decoder takes a leading 0 as octal), while serde_yaml follows YAML 1.2 (decimal 644,
/// which validation would refuse): every plain `mode:`/`defaultMode:` value with a leading 0 is
/// rewritten as its decimal value before parsing.
pub fn octal_modes(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut last = 0;
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let key = ["defaultMode:", "mode:"]
            .into_iter()
            .find(|k| rest.starts_with(k));
        let boundary = i == 0 || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'{' | b',' | b'-');
        let Some(key) = key.filter(|_| boundary) else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let mut j = i + key.len();
        // A mapping key's colon is followed by a space ("mode:0644" is a plain string).
        if !matches!(bytes.get(j), Some(b' ' | b'\t')) {
            i = j;
            continue;
        }
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        let start = j;
        while j < bytes.len() && bytes[j].is_ascii_digit() {
            j += 1;
        }
        let digits = &text[start..j];
        let ends = j == bytes.len()
            || matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n' | b',' | b'}' | b'#');
        if ends && digits.len() > 1 && digits.starts_with('0') {
            if let Ok(v) = u32::from_str_radix(digits, 8) {
                out.push_str(&text[last..start]);
                out.push_str(&v.to_string());
                last = j;
            }
        }
        i = j.max(i + 1);
    }
    if last == 0 {
        return std::borrow::Cow::Borrowed(text);
    }
    out.push_str(&text[last..]);
    std::borrow::Cow::Owned(out)
}

fn yaml_error(e: &serde_yaml::Error, document: usize) -> DocumentError {
    let loc = e.location();
    let mut message = e.to_string();
    if let Some(l) = &loc {
        // The message repeats the position; it is shown once, before the message.
        let suffix = format!(" at line {} column {}", l.line(), l.column());
        message = message.replacen(&suffix, "", 1);
    }
    DocumentError::Yaml {
        document,
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        message,
    }
}

fn yaml_to_json(v: serde_yaml::Value, document: usize) -> Result<Value, DocumentError> {
    serde_json::to_value(v).map_err(|e| DocumentError::Kind {
        document,
        problem: format!("the document is not a plain YAML mapping: {e}"),
    })
}

/// The kinds of object a manifest may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pod,
    ConfigMap,
    Secret,
}

/// Checks `apiVersion: v1` and a supported `kind`, returning the kind.
pub fn check_kind(v: &Value, document: usize) -> Result<Kind, DocumentError> {
    const SUPPORTED: &str =
        "podshim supports apiVersion v1 kinds Pod, ConfigMap and Secret (ConfigMaps and Secrets are \
         used by the Pods of the same file)";
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
        "Pod" => Some(Kind::Pod),
        "ConfigMap" => Some(Kind::ConfigMap),
        "Secret" => Some(Kind::Secret),
        _ => None,
    };
    match (api_version, kind) {
        (_, None) => Err(err(format!("kind: Required value: {SUPPORTED}"))),
        (None, Some(_)) => Err(err(format!("apiVersion: Required value: {SUPPORTED}"))),
        (Some(av), Some(k)) => match (av, known(k)) {
            ("v1", Some(kind)) => Ok(kind),
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
    let mut problems = Vec::new();
    for _ in 0..=MAX_UNKNOWN_FIELDS {
        let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(pod) if problems.is_empty() => return Ok(pod),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let segments: Vec<&Segment> = err.path().iter().collect();
        let message = err.inner().to_string();
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
            r#"error in document 2: kind "Deployment" (apiVersion "apps/v1") is not supported: podshim supports apiVersion v1 kinds Pod, ConfigMap and Secret (ConfigMaps and Secrets are used by the Pods of the same file)"#
        );
        let none = serde_json::json!({"apiVersion": "v1"});
        let e = check_kind(&none, 1).unwrap_err().to_string();
        assert!(e.contains("kind: Required value"), "{e}");
    }
}

#[cfg(test)]
mod octal_tests {
    use super::octal_modes;

    #[test]
    fn leading_zero_modes_are_octal_as_in_kubernetes() {
        let text = "defaultMode: 0644\nitems:\n- {key: a, path: b, mode: 0400}\n- key: c\n  mode: 0755 # rwx\nport: 0808\nmode: 420\nname: mode:0644\n";
        let got = octal_modes(text);
        assert_eq!(
            got,
            "defaultMode: 420\nitems:\n- {key: a, path: b, mode: 256}\n- key: c\n  mode: 493 # rwx\nport: 0808\nmode: 420\nname: mode:0644\n"
        );
        // Nothing to rewrite: the text is used as it is.
        assert!(matches!(
            octal_modes("mode: 420\n"),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
