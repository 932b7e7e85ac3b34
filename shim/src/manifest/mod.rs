//! Kubernetes `v1` Pod manifests: strict YAML decoding, Kubernetes defaults, Kubernetes validation
//! (with Kubernetes' error wording) and podshim's "not supported yet" gate.
//!
//! Order as in the API server: decode (strict) → default → validate; then the gate. Problems of
//! every document are collected before failing.

pub mod decode;
pub mod defaults;
pub mod error;
pub mod quantity;
pub mod types;
pub mod unsupported;
pub mod validate;
pub mod volume_types;

#[cfg(test)]
mod tests;

pub use error::{BadValue, DocumentError, ErrorKind, FieldError, FieldPath, ManifestError};
pub use quantity::{IntOrString, Quantity};
pub use types::*;

/// The Pods of a manifest, defaulted and valid, with warnings for fields accepted as no-ops.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    pub pods: Vec<Pod>,
    pub warnings: Vec<String>,
}

/// Decodes every YAML document of `text`, applies defaults, validates and gates each Pod.
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    let docs = decode::documents(text);
    if docs.is_empty() {
        return Err(ManifestError::Empty);
    }
    let mut manifest = Manifest::default();
    let mut problems = Vec::new();
    for (document, doc) in docs {
        match parse_document(document, doc) {
            Ok((pod, warnings)) => {
                manifest.pods.push(pod);
                manifest.warnings.extend(warnings);
            }
            Err(e) => problems.push(e),
        }
    }
    if problems.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestError::Invalid(problems))
    }
}

fn parse_document(
    document: usize,
    doc: Result<serde_json::Value, DocumentError>,
) -> Result<(Pod, Vec<String>), DocumentError> {
    let mut value = doc?;
    decode::check_kind(&value, document)?;
    decode::strip_nulls(&mut value);
    let mut pod = decode::decode_pod(&mut value)
        .map_err(|problems| DocumentError::Decode { document, problems })?;
    pod.status = None;
    defaults::apply(&mut pod);
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
            name: pod.metadata.name,
            errors,
            name_hint,
        });
    }
    let warnings = warnings
        .into_iter()
        .map(|w| format!("Pod {:?}: {w}", pod.metadata.name))
        .collect();
    Ok((pod, warnings))
}

/// The (defaulted) Pods as a multi-document YAML, for `podshim run --dry-run`.
pub fn to_yaml(pods: &[Pod]) -> String {
    pods.iter()
        .map(|p| serde_yaml::to_string(p).unwrap_or_else(|e| format!("# cannot render Pod: {e}\n")))
        .collect::<Vec<_>>()
        .join("---\n")
}
