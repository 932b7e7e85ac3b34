//! `podshim apply`'s reader: every YAML document of a file with podshim-kube's reader, the
//! kind checked, decoded strictly, defaulted and validated; workloads, ConfigMaps and Secrets
//! come out, and every problem of every document is reported at once, in the API server's
//! words (nothing is applied when one document is wrong).

use podshim_kube::manifest::{
    self, config, decode, ConfigMap, DocumentError, FieldError, FieldPath, ManifestError, Secret,
};
use serde_json::Value;

use super::{defaults, validate, Kind, Workload};

/// What a file asks for.
#[derive(Debug, Default)]
pub struct Applied {
    pub workloads: Vec<Workload>,
    /// Each workload's document as decoded (before defaults), for the gate on updates.
    pub raw: Vec<Value>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    pub warnings: Vec<String>,
}

/// What a document holds.
enum DocKind {
    Workload(Kind),
    ConfigMap,
    Secret,
}

const SUPPORTED: &str = "podshim apply supports apps/v1 Deployment, ReplicaSet and DaemonSet, \
    batch/v1 Job and CronJob, and v1 ConfigMap and Secret (Pods are run with `podshim run`)";

fn check_kind(v: &Value, document: usize) -> Result<DocKind, DocumentError> {
    let err = |problem: String| DocumentError::Kind { document, problem };
    let Some(map) = v.as_object() else {
        return Err(err(format!(
            "expected a mapping (a Kubernetes object): {SUPPORTED}"
        )));
    };
    let field = |k: &str| map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(av), Some(kind)) = (field("apiVersion"), field("kind")) else {
        let missing = if field("kind").is_none() {
            "kind"
        } else {
            "apiVersion"
        };
        return Err(err(format!("{missing}: Required value: {SUPPORTED}")));
    };
    let (dk, want) = match kind {
        "ConfigMap" => (DocKind::ConfigMap, "v1"),
        "Secret" => (DocKind::Secret, "v1"),
        k => match Kind::from_name(k) {
            Some(k) => (DocKind::Workload(k), k.api_version()),
            None => {
                return Err(err(format!(
                    "kind {kind:?} (apiVersion {av:?}) is not supported: {SUPPORTED}"
                )))
            }
        },
    };
    if av != want {
        return Err(err(format!(
            "apiVersion {av:?} is not supported for kind {kind:?}: {SUPPORTED}"
        )));
    }
    Ok(dk)
}

/// The uid of a stored object (`kind`, namespace, name), if there is one.
pub type UidOf<'a> = &'a dyn Fn(Kind, &str, &str) -> Option<String>;

/// Reads every document of `text`. Each workload gets the uid of the stored object of its kind,
/// namespace and name (an update), or a new one; a Job's generated selector holds it.
pub fn parse(text: &str, uid_of: UidOf) -> Result<Applied, ManifestError> {
    let docs = decode::documents(text);
    if docs.is_empty() {
        return Err(ManifestError::Empty);
    }
    let mut out = Applied::default();
    let mut problems = Vec::new();
    for (document, doc) in docs {
        let doc = match doc {
            Ok(d) => d,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        if let Err(e) = one(document, doc, uid_of, &mut out) {
            problems.push(e);
        }
    }
    if !problems.is_empty() {
        return Err(ManifestError::Invalid(problems));
    }
    for (i, w) in out.workloads.iter().enumerate() {
        let dup = out.workloads[..i].iter().any(|o| {
            o.kind() == w.kind() && o.namespace() == w.namespace() && o.name() == w.name()
        });
        if dup {
            problems.push(DocumentError::Invalid {
                document: 0,
                kind: w.kind().name(),
                name: w.name().into(),
                errors: vec![FieldError::duplicate(
                    &FieldPath::new("metadata").child("name"),
                    w.name(),
                )],
                name_hint: None,
            });
        }
    }
    if !problems.is_empty() {
        return Err(ManifestError::Invalid(problems));
    }
    Ok(out)
}

fn one(
    document: usize,
    doc: manifest::yaml::Document,
    uid_of: UidOf,
    out: &mut Applied,
) -> Result<(), DocumentError> {
    let manifest::yaml::Document { mut value, plain } = doc;
    let kind = check_kind(&value, document)?;
    decode::strip_nulls(&mut value);
    let decode_err = |problems| DocumentError::Decode { document, problems };
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let invalid = |kind: &'static str, name: String, errors: Vec<FieldError>| {
        let hint = errors
            .iter()
            .any(|e| e.path.as_str() == "metadata.name")
            .then(|| manifest::validate::names::suggest_subdomain(&name))
            .flatten();
        DocumentError::Invalid {
            document,
            kind,
            name,
            errors,
            name_hint: hint,
        }
    };
    match kind {
        DocKind::ConfigMap => {
            let (mut cm, w): (ConfigMap, _) =
                decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            out.warnings.extend(w);
            if cm.metadata.namespace.as_deref().unwrap_or("").is_empty() {
                cm.metadata.namespace = Some("default".into());
            }
            let errors = config::validate_config_map(&cm);
            if !errors.is_empty() {
                return Err(invalid("ConfigMap", cm.metadata.name, errors));
            }
            out.config_maps.push(cm);
        }
        DocKind::Secret => {
            let (mut s, w): (Secret, _) =
                decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            out.warnings.extend(w);
            if s.metadata.namespace.as_deref().unwrap_or("").is_empty() {
                s.metadata.namespace = Some("default".into());
            }
            config::default_secret(&mut s);
            let errors = config::validate_secret(&s);
            if !errors.is_empty() {
                return Err(invalid("Secret", s.metadata.name, errors));
            }
            out.secrets.push(s);
        }
        DocKind::Workload(kind) => {
            let (mut w, raw) = decode_workload(kind, value, &plain).map_err(decode_err)?;
            // The API server ignores a status sent with the object.
            clear_status(&mut w);
            let ns = match w.metadata().namespace.as_deref() {
                None | Some("") => "default".to_string(),
                Some(ns) => ns.to_string(),
            };
            let uid = uid_of(kind, &ns, &name).unwrap_or_else(podshim_kube::pod::new_uid);
            w.metadata_mut().uid = Some(uid);
            defaults::apply(&mut w);
            let (errors, warnings) = validate::validate(&w, &raw);
            if !errors.is_empty() {
                return Err(invalid(kind.name(), name, errors));
            }
            out.warnings.extend(
                warnings
                    .into_iter()
                    .map(|x| format!("{} {name:?}: {x}", kind.name())),
            );
            out.workloads.push(w);
            out.raw.push(raw);
        }
    }
    Ok(())
}

fn decode_workload(
    kind: Kind,
    mut value: Value,
    plain: &std::collections::HashMap<Vec<manifest::yaml::Seg>, String>,
) -> Result<(Workload, Value), Vec<String>> {
    let raw = value.clone();
    let w = match kind {
        Kind::Deployment => Workload::Deployment(decode::decode_with_text(&mut value, plain)?.0),
        Kind::ReplicaSet => Workload::ReplicaSet(decode::decode_with_text(&mut value, plain)?.0),
        Kind::DaemonSet => Workload::DaemonSet(decode::decode_with_text(&mut value, plain)?.0),
        Kind::Job => Workload::Job(decode::decode_with_text(&mut value, plain)?.0),
        Kind::CronJob => Workload::CronJob(decode::decode_with_text(&mut value, plain)?.0),
    };
    Ok((w, raw))
}

fn clear_status(w: &mut Workload) {
    match w {
        Workload::Deployment(o) => o.status = None,
        Workload::ReplicaSet(o) => o.status = None,
        Workload::DaemonSet(o) => o.status = None,
        Workload::Job(o) => o.status = None,
        Workload::CronJob(o) => o.status = None,
    }
}
