//! Kubernetes `v1` manifests (Pods, and the ConfigMaps and Secrets they use): strict YAML decoding, Kubernetes defaults, Kubernetes validation
//! (with Kubernetes' error wording) and podshim's "not supported yet" gate.
//!
//! Order as in the API server: decode (strict) → default → validate; then the gate. Problems of
//! every document are collected before failing.

pub mod claim;
pub mod config;
pub mod decode;
pub mod defaults;
pub mod error;
pub mod priority;
pub mod quantity;
pub mod scheduling_types;
pub mod schema;
#[cfg(test)]
mod schema_check;
pub mod supported;
pub mod types;
pub mod unsupported;
pub mod validate;
pub mod volume_types;
pub mod yaml;

#[cfg(test)]
mod tests;

pub use claim::PersistentVolumeClaim;
pub use config::{Bytes, ConfigMap, Secret};
pub use error::{BadValue, DocumentError, ErrorKind, FieldError, FieldPath, ManifestError};
pub use quantity::{IntOrString, Quantity};
pub use types::*;

use decode::Kind;

/// The API server's limit on a request body (`MaxRequestBodyBytes`, 3 MiB): no manifest is read
/// beyond it.
pub const MAX_MANIFEST_BYTES: u64 = 3 * 1024 * 1024;

/// Why a manifest's text could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the manifest is larger than {MAX_MANIFEST_BYTES} bytes (3 MiB, the Kubernetes API server's request limit)")]
    TooLarge,
    #[error("the manifest is not UTF-8 text")]
    NotUtf8,
    #[error("read the manifest")]
    Io(#[source] std::io::Error),
}

/// Reads a manifest's text, never more than `MAX_MANIFEST_BYTES` (and one byte to know).
pub fn read_text(r: impl std::io::Read) -> Result<String, ReadError> {
    use std::io::Read;
    let mut buf = Vec::new();
    r.take(MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(buf).map_err(|_| ReadError::NotUtf8)
}

/// The objects of a manifest, defaulted and valid, with warnings for fields accepted as no-ops.
/// ConfigMaps and Secrets are unique by namespace and name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub pods: Vec<Pod>,
    pub config_maps: Vec<ConfigMap>,
    pub secrets: Vec<Secret>,
    /// `scheduling.k8s.io/v1` PriorityClasses (cluster-scoped, unique by name).
    pub priority_classes: Vec<PriorityClass>,
    /// PersistentVolumeClaims (made by `podshim run` when the Pods run, or `podshim apply`).
    pub persistent_volume_claims: Vec<PersistentVolumeClaim>,
    pub warnings: Vec<String>,
}

impl Manifest {
    /// The ConfigMap `name` of namespace `ns`.
    pub fn config_map(&self, ns: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| c.namespace() == ns && c.metadata.name == name)
    }

    /// The PersistentVolumeClaim `name` of namespace `ns`.
    pub fn claim(&self, ns: &str, name: &str) -> Option<&PersistentVolumeClaim> {
        self.persistent_volume_claims
            .iter()
            .find(|c| c.namespace() == ns && c.metadata.name == name)
    }

    /// The Secret `name` of namespace `ns`.
    pub fn secret(&self, ns: &str, name: &str) -> Option<&Secret> {
        self.secrets
            .iter()
            .find(|s| s.namespace() == ns && s.metadata.name == name)
    }
}

/// One decoded, defaulted and valid object.
enum Object {
    Pod(Box<Pod>),
    ConfigMap(ConfigMap),
    Secret(Secret),
    PriorityClass(PriorityClass),
    Claim(Box<PersistentVolumeClaim>),
}

/// Decodes every YAML document of `text`, applies defaults, validates and gates each object.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let docs = decode::documents(text);
    if docs.is_empty() {
        return Err(ManifestError::Empty);
    }
    let mut manifest = Manifest::default();
    let mut problems = Vec::new();
    let mut pod_documents = Vec::new();
    let mut class_documents = Vec::new();
    for (document, doc) in docs {
        let parsed = doc.and_then(|d| parse_document(document, d, &mut manifest.warnings));
        match parsed {
            Ok(Object::Pod(pod)) => {
                pod_documents.push(document);
                manifest.pods.push(*pod);
            }
            Ok(Object::PriorityClass(pc)) => {
                let name = &pc.metadata.name;
                if manifest
                    .priority_classes
                    .iter()
                    .any(|c| c.metadata.name == *name)
                {
                    problems.push(duplicate(document, "PriorityClass", name));
                } else {
                    class_documents.push(document);
                    manifest.priority_classes.push(pc);
                }
            }
            Ok(Object::ConfigMap(cm)) => {
                if manifest
                    .config_map(cm.namespace(), &cm.metadata.name)
                    .is_some()
                {
                    problems.push(duplicate(document, "ConfigMap", &cm.metadata.name));
                } else {
                    manifest.config_maps.push(cm);
                }
            }
            Ok(Object::Claim(c)) => {
                if manifest.claim(c.namespace(), &c.metadata.name).is_some() {
                    problems.push(duplicate(
                        document,
                        "PersistentVolumeClaim",
                        &c.metadata.name,
                    ));
                } else {
                    manifest.persistent_volume_claims.push(*c);
                }
            }
            Ok(Object::Secret(s)) => {
                if manifest.secret(s.namespace(), &s.metadata.name).is_some() {
                    problems.push(duplicate(document, "Secret", &s.metadata.name));
                } else {
                    manifest.secrets.push(s);
                }
            }
            Err(e) => problems.push(e),
        }
    }
    admit(
        &mut manifest,
        &pod_documents,
        &class_documents,
        &mut problems,
    );
    if !problems.is_empty() {
        Err(ManifestError::Invalid(problems))
    } else if manifest.pods.is_empty() {
        Err(ManifestError::NoPod)
    } else {
        Ok(manifest)
    }
}

/// The admission plugins that mutate or refuse objects on create: Priority (see `priority`).
fn admit(
    manifest: &mut Manifest,
    pod_documents: &[usize],
    class_documents: &[usize],
    problems: &mut Vec<DocumentError>,
) {
    let classes = priority::Classes {
        manifest: &manifest.priority_classes,
    };
    for (i, &document) in class_documents.iter().enumerate() {
        if let Some(default) = classes.earlier_default(i) {
            problems.push(DocumentError::Forbidden {
                document,
                resource: "priorityclasses.scheduling.k8s.io",
                name: manifest.priority_classes[i].metadata.name.clone(),
                message: format!(
                    "PriorityClass {default} is already marked as default. Only one default can exist"
                ),
            });
        }
    }
    let admitted: Vec<_> = manifest.pods.iter().map(|p| classes.admit(p)).collect();
    for ((pod, result), &document) in manifest.pods.iter_mut().zip(admitted).zip(pod_documents) {
        match result {
            Ok(a) => priority::apply(pod, a),
            Err(message) => problems.push(DocumentError::Forbidden {
                document,
                resource: "pods",
                name: pod.metadata.name.clone(),
                message,
            }),
        }
    }
}

/// A second object of the same kind, namespace and name (the API server's `AlreadyExists`).
fn duplicate(document: usize, kind: &'static str, name: &str) -> DocumentError {
    DocumentError::Invalid {
        document,
        kind,
        name: name.to_string(),
        errors: vec![FieldError::duplicate(
            &FieldPath::new("metadata").child("name"),
            name,
        )],
        name_hint: None,
    }
}

/// Decodes, defaults, validates and gates one document; warnings are added to `warnings`.
fn parse_document(
    document: usize,
    doc: yaml::Document,
    warnings: &mut Vec<String>,
) -> Result<Object, DocumentError> {
    let yaml::Document { mut value, plain } = doc;
    let kind = decode::check_kind(&value, document)?;
    decode::strip_nulls(&mut value);
    let decode_err = |problems| DocumentError::Decode { document, problems };
    let kind_name = match kind {
        Kind::Pod => "Pod",
        Kind::ConfigMap => "ConfigMap",
        Kind::Secret => "Secret",
        Kind::PriorityClass => "PriorityClass",
        Kind::PersistentVolumeClaim => "PersistentVolumeClaim",
    };
    let name = value
        .pointer("/metadata/name")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut text_warnings = |w: Vec<String>| {
        warnings.extend(w.into_iter().map(|w| format!("{kind_name} {name:?}: {w}")));
    };
    let (name, errors) = match kind {
        Kind::Pod => {
            let (pod, w) = decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            text_warnings(w);
            return parse_pod(document, pod, value, warnings);
        }
        Kind::ConfigMap => {
            let (mut cm, w): (ConfigMap, _) =
                decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            text_warnings(w);
            default_namespace(&mut cm.metadata);
            let errors = config::validate_config_map(&cm);
            if errors.is_empty() {
                return Ok(Object::ConfigMap(cm));
            }
            (cm.metadata.name, errors)
        }
        Kind::Secret => {
            let (mut s, w): (Secret, _) =
                decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            text_warnings(w);
            default_namespace(&mut s.metadata);
            config::default_secret(&mut s);
            let errors = config::validate_secret(&s);
            if errors.is_empty() {
                return Ok(Object::Secret(s));
            }
            (s.metadata.name, errors)
        }
        Kind::PersistentVolumeClaim => {
            let (mut c, w): (PersistentVolumeClaim, _) =
                decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            text_warnings(w);
            claim::default_claim(&mut c);
            let errors = claim::validate_claim(&c);
            if errors.is_empty() {
                return Ok(Object::Claim(Box::new(c)));
            }
            (c.metadata.name, errors)
        }
        Kind::PriorityClass => {
            let (mut pc, w): (PriorityClass, _) =
                decode::decode_with_text(&mut value, &plain).map_err(decode_err)?;
            text_warnings(w);
            let errors = priority::default_and_validate(&mut pc);
            if errors.is_empty() {
                return Ok(Object::PriorityClass(pc));
            }
            (pc.metadata.name, errors)
        }
    };
    Err(DocumentError::Invalid {
        document,
        kind: kind_name,
        name_hint: validate::names::suggest_subdomain(&name)
            .filter(|_| errors.iter().any(|e| e.path.as_str() == "metadata.name")),
        name,
        errors,
    })
}

fn default_namespace(meta: &mut ObjectMeta) {
    if meta.namespace.as_deref().unwrap_or("").is_empty() {
        meta.namespace = Some("default".to_string());
    }
}

fn parse_pod(
    document: usize,
    mut pod: Pod,
    value: serde_json::Value,
    all_warnings: &mut Vec<String>,
) -> Result<Object, DocumentError> {
    pod.status = None;
    defaults::apply(&mut pod);
    validate::scheduling::prepare_for_create(&mut pod);
    let mut errors = validate::validate_pod(&pod);
    let name_invalid = errors.iter().any(|e| e.path.as_str() == "metadata.name");
    let (gate_errors, warnings) = unsupported::check(&value);
    errors.extend(gate_errors);
    if !errors.is_empty() {
        let name_hint = name_invalid
            .then(|| validate::names::suggest_subdomain(&pod.metadata.name))
            .flatten();
        return Err(DocumentError::Invalid {
            document,
            kind: "Pod",
            name: pod.metadata.name,
            errors,
            name_hint,
        });
    }
    all_warnings.extend(
        warnings
            .into_iter()
            .map(|w| format!("Pod {:?}: {w}", pod.metadata.name)),
    );
    Ok(Object::Pod(Box::new(pod)))
}

/// The (defaulted) objects as a multi-document YAML, for `podshim run --dry-run`: ConfigMaps,
/// Secrets (`data` in base64, as the API server returns them), PriorityClasses, then Pods.
pub fn to_yaml(m: &Manifest) -> String {
    fn render<T: serde::Serialize>(kind: &str, v: &T) -> String {
        yaml::emit::to_string(v).unwrap_or_else(|e| format!("# cannot render {kind}: {e}\n"))
    }
    let config_maps = m.config_maps.iter().map(|c| render("ConfigMap", c));
    let secrets = m.secrets.iter().map(|s| render("Secret", s));
    let classes = m
        .priority_classes
        .iter()
        .map(|c| render("PriorityClass", c));
    let claims = (m.persistent_volume_claims.iter()).map(|c| render("PersistentVolumeClaim", c));
    let pods = m.pods.iter().map(|p| render("Pod", p));
    config_maps
        .chain(secrets)
        .chain(classes)
        .chain(claims)
        .chain(pods)
        .collect::<Vec<_>>()
        .join("---\n")
}
