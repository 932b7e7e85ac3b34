//! Checks the decoder's types and the "not supported yet" gate against the Kubernetes API's field
//! list (`schema`), for every type reachable from the kinds podshim reads.
//!
//! The decoder is probed through serde itself: a document with an unknown key at a path makes a
//! strict (`deny_unknown_fields`) struct there answer "unknown field `…`, expected one of …",
//! which lists the fields it decodes; a `serde_json::Value` there accepts anything (an opaque
//! subtree, which the gate must then refuse as a whole).

use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::schema::{schema, FieldType};
use super::types::{Pod, PriorityClass};
use super::unsupported;
use super::{ConfigMap, Secret};

const PROBE: &str = "__podshim_probe__";

/// A step of a JSON path.
#[derive(Clone)]
enum Step {
    Key(String),
    Item,
    Entry,
}

/// `value` placed at `path` inside an otherwise empty document.
fn nest(path: &[Step], value: Value) -> Value {
    path.iter().rev().fold(value, |v, step| match step {
        Step::Key(k) => json!({ k.as_str(): v }),
        Step::Item => json!([v]),
        Step::Entry => json!({ "k": v }),
    })
}

/// The gate's pattern of a path: `spec.containers[].name`.
fn pattern(path: &[Step]) -> String {
    let mut p = String::new();
    for step in path {
        match step {
            Step::Key(k) if p.is_empty() => p.push_str(k),
            Step::Key(k) => {
                p.push('.');
                p.push_str(k);
            }
            Step::Item => p.push_str("[]"),
            Step::Entry => p.push_str("[*]"),
        }
    }
    p
}

/// What the decoder has at a path where the API has an object.
enum Decoded {
    /// A strict struct with these fields.
    Strict(BTreeSet<String>),
    /// Anything is accepted (`serde_json::Value`).
    Opaque,
    /// Something else: the decoder's type does not match the API's.
    Mismatch(String),
}

fn probe<T: DeserializeOwned>(path: &[Step]) -> Decoded {
    let mut obj = Map::new();
    obj.insert(PROBE.into(), Value::Null);
    let doc = nest(path, Value::Object(obj));
    match serde_path_to_error::deserialize::<_, T>(doc) {
        Ok(_) => Decoded::Opaque,
        Err(e) => {
            let msg = e.inner().to_string();
            if !msg.starts_with(&format!("unknown field `{PROBE}`")) {
                return Decoded::Mismatch(format!("{}: {msg}", e.path()));
            }
            // "…, expected one of `a`, `b`", "expected `a` or `b`", "expected `a`", "there are no
            // fields": every quoted name after the probe's.
            let names = msg
                .split('`')
                .skip(3)
                .step_by(2)
                .map(str::to_string)
                .collect();
            Decoded::Strict(names)
        }
    }
}

/// Problems found walking type `ty` at `path` for the root kind `T`.
struct Walk<'a, T> {
    problems: &'a mut Vec<String>,
    opaque: &'a mut Vec<String>,
    depth_guard: usize,
    _kind: std::marker::PhantomData<T>,
}

impl<T: DeserializeOwned> Walk<'_, T> {
    fn object(&mut self, ty: &str, path: &[Step]) {
        let Some(fields) = schema().fields(ty) else {
            return; // named but not expanded (Pod.status)
        };
        if self.depth_guard > 20 {
            self.problems.push(format!("{}: too deep", pattern(path)));
            return;
        }
        let here = if path.is_empty() {
            "(root)".to_string()
        } else {
            pattern(path)
        };
        let decoded = match probe::<T>(path) {
            Decoded::Strict(names) => names,
            Decoded::Opaque => {
                self.opaque.push(here);
                return;
            }
            Decoded::Mismatch(m) => {
                self.problems
                    .push(format!("{here} ({ty}): the decoder's type differs: {m}"));
                return;
            }
        };
        let api: BTreeSet<String> = fields.iter().map(|(f, _)| f.clone()).collect();
        for missing in api.difference(&decoded) {
            self.problems.push(format!(
                "{here}.{missing} ({ty}): in Kubernetes {} but not decoded (it would be an \"unknown field\")",
                schema().version
            ));
        }
        for extra in decoded.difference(&api) {
            self.problems.push(format!(
                "{here}.{extra} ({ty}): decoded by podshim but not in Kubernetes {}",
                schema().version
            ));
        }
        for (name, fty) in fields {
            let mut child = path.to_vec();
            child.push(Step::Key(name.clone()));
            self.depth_guard += 1;
            self.field(fty, child);
            self.depth_guard -= 1;
        }
    }

    fn field(&mut self, ty: &FieldType, path: Vec<Step>) {
        match ty {
            FieldType::Named(n) => self.object(n, &path),
            FieldType::List(inner) | FieldType::Map(inner) => {
                let mut item = path;
                item.push(match ty {
                    FieldType::List(_) => Step::Item,
                    _ => Step::Entry,
                });
                self.field(inner, item);
            }
            FieldType::Scalar(_) => {}
        }
    }
}

fn walk<T: DeserializeOwned>(root: &str) -> (Vec<String>, Vec<String>) {
    let (mut problems, mut opaque) = (Vec::new(), Vec::new());
    Walk::<T> {
        problems: &mut problems,
        opaque: &mut opaque,
        depth_guard: 0,
        _kind: std::marker::PhantomData,
    }
    .object(root, &[]);
    (problems, opaque)
}

#[test]
fn the_decoder_knows_every_field_of_the_api_and_no_other() {
    let mut problems = Vec::new();
    problems.extend(walk::<Pod>("Pod").0);
    problems.extend(walk::<ConfigMap>("ConfigMap").0);
    problems.extend(walk::<Secret>("Secret").0);
    problems.extend(walk::<PriorityClass>("PriorityClass").0);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_gate_names_only_api_fields_and_refuses_what_is_not_decoded() {
    let s = schema();
    let mut problems = Vec::new();
    for field in unsupported::named_fields() {
        match s.field_at("Pod", field) {
            None => problems.push(format!(
                "{field}: named by the gate but not a Pod field in Kubernetes {}",
                s.version
            )),
            // An entry for an object would let whatever a later release adds beneath it pass
            // unimplemented: entries name leaves (`status` is dropped whole).
            Some(FieldType::Named(t)) if field != "status" => problems.push(format!(
                "{field}: names a whole {t}; list its fields instead"
            )),
            Some(FieldType::List(inner)) if matches!(*inner, FieldType::Named(_)) => problems.push(
                format!("{field}: names a whole list of objects; list their fields instead"),
            ),
            Some(_) => {}
        }
    }
    // A supported field whose subtree the decoder does not check would accept unknown fields
    // beneath it silently: every opaque subtree must be refused ("not supported yet").
    let (_, opaque) = walk::<Pod>("Pod");
    for p in &opaque {
        if unsupported::is_supported(p) {
            problems.push(format!("{p}: supported, but decoded as an opaque value (unknown fields beneath it would pass)"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The probe works: the opaque subtrees are the ones the types mark as `Value`.
    assert!(opaque.contains(&"spec.os".to_string()), "{opaque:?}");
    assert!(
        !opaque.iter().any(|p| p.starts_with("spec.affinity")),
        "{opaque:?}"
    );
}

#[test]
fn fields_new_in_the_api_are_not_supported_yet_never_unknown() {
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: i\n    readinessProbe: {httpGet: {port: 80, protocol: HTTP/2}}\n    livenessProbe: {grpc: {port: 9000, mode: TLS}}\n  volumes:\n  - {name: e, emptyDir: {mode: 0700}}\n  - {name: s, secret: {secretName: s, defaultUser: 1000}}\n  schedulingGroup: {podGroupName: g}\n";
    let err = super::parse(yaml).unwrap_err().to_string();
    for want in [
        "spec.containers[0].readinessProbe.httpGet.protocol: Forbidden: not supported by podshim yet",
        "spec.containers[0].livenessProbe.grpc.mode: Forbidden: not supported by podshim yet",
        "spec.volumes[0].emptyDir.mode: Forbidden: not supported by podshim yet",
        "spec.volumes[1].secret.defaultUser: Forbidden: not supported by podshim yet",
        "spec.schedulingGroup: Forbidden: not supported by podshim yet",
    ] {
        assert!(err.contains(want), "missing {want} in:\n{err}");
    }
    assert!(!err.contains("unknown field"), "{err}");
}
