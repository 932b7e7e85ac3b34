//! Manifest errors: Kubernetes-style field errors (apimachinery `field.Error`) and the aggregate
//! `ManifestError` whose Display is the whole user-facing text, in kubectl's format.

use std::fmt;

/// A field path in Kubernetes notation: `spec.containers[0].name`, `resources.limits[cpu]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldPath(String);

impl FieldPath {
    /// A path starting at a top-level field.
    pub fn new(root: &str) -> Self {
        FieldPath(root.to_string())
    }

    /// `path.name`.
    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `path[i]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// `path[key]` (map entries).
    pub fn key(&self, key: &str) -> Self {
        FieldPath(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The offending value, rendered the way apimachinery does: strings quoted, numbers and
/// booleans bare, structures as JSON.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    None,
    Str(String),
    Int(i64),
    Bool(bool),
    Json(serde_json::Value),
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadValue::None => Ok(()),
            // Go's %q; serde_json's string escaping matches it for printable text.
            BadValue::Str(s) => write!(f, "{}", serde_json::Value::String(s.clone())),
            BadValue::Int(i) => write!(f, "{i}"),
            BadValue::Bool(b) => write!(f, "{b}"),
            BadValue::Json(v) => write!(f, "{v}"),
        }
    }
}

impl From<&str> for BadValue {
    fn from(s: &str) -> Self {
        BadValue::Str(s.to_string())
    }
}
impl From<&String> for BadValue {
    fn from(s: &String) -> Self {
        BadValue::Str(s.clone())
    }
}
impl From<String> for BadValue {
    fn from(s: String) -> Self {
        BadValue::Str(s)
    }
}
impl From<i64> for BadValue {
    fn from(i: i64) -> Self {
        BadValue::Int(i)
    }
}
impl From<i32> for BadValue {
    fn from(i: i32) -> Self {
        BadValue::Int(i.into())
    }
}
impl From<bool> for BadValue {
    fn from(b: bool) -> Self {
        BadValue::Bool(b)
    }
}

/// The error types of apimachinery's `field.ErrorType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Required,
    Invalid,
    Duplicate,
    NotFound,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
}

impl ErrorKind {
    fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Required => "Required value",
            ErrorKind::Invalid => "Invalid value",
            ErrorKind::Duplicate => "Duplicate value",
            ErrorKind::NotFound => "Not found",
            ErrorKind::NotSupported => "Unsupported value",
            ErrorKind::Forbidden => "Forbidden",
            ErrorKind::TooLong => "Too long",
            ErrorKind::TooMany => "Too many",
        }
    }

    /// Types whose message omits the value (`ErrorBody` in apimachinery).
    fn omits_value(self) -> bool {
        matches!(
            self,
            ErrorKind::Required | ErrorKind::Forbidden | ErrorKind::TooLong
        )
    }
}

/// One validation problem: `<path>: <Type>[: <value>][: <detail>]`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub path: FieldPath,
    pub kind: ErrorKind,
    pub value: BadValue,
    pub detail: String,
}

impl FieldError {
    fn new(path: &FieldPath, kind: ErrorKind, value: BadValue, detail: impl Into<String>) -> Self {
        FieldError {
            path: path.clone(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    pub fn required(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Required, BadValue::None, detail)
    }

    pub fn invalid(
        path: &FieldPath,
        value: impl Into<BadValue>,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(path, ErrorKind::Invalid, value.into(), detail)
    }

    pub fn duplicate(path: &FieldPath, value: impl Into<BadValue>) -> Self {
        Self::new(path, ErrorKind::Duplicate, value.into(), "")
    }

    pub fn not_found(path: &FieldPath, value: impl Into<BadValue>) -> Self {
        Self::new(path, ErrorKind::NotFound, value.into(), "")
    }

    /// `Unsupported value: "x": supported values: "a", "b"` (values listed sorted, as `sets.List`).
    pub fn not_supported(path: &FieldPath, value: impl Into<BadValue>, supported: &[&str]) -> Self {
        let mut list: Vec<&str> = supported.to_vec();
        list.sort_unstable();
        let quoted: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
        let detail = format!("supported values: {}", quoted.join(", "));
        Self::new(path, ErrorKind::NotSupported, value.into(), detail)
    }

    pub fn forbidden(path: &FieldPath, detail: impl Into<String>) -> Self {
        Self::new(path, ErrorKind::Forbidden, BadValue::None, detail)
    }

    pub fn too_long(path: &FieldPath, max_bytes: usize) -> Self {
        let detail = format!("may not be more than {max_bytes} bytes");
        Self::new(path, ErrorKind::TooLong, BadValue::None, detail)
    }

    pub fn too_many(path: &FieldPath, actual: usize, max: usize) -> Self {
        let detail = format!("must have at most {max} items");
        Self::new(
            path,
            ErrorKind::TooMany,
            BadValue::Int(actual as i64),
            detail,
        )
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind.as_str())?;
        if !self.kind.omits_value() && self.value != BadValue::None {
            write!(f, ": {}", self.value)?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// What went wrong with one YAML document.
#[derive(Debug, Clone, PartialEq)]
pub enum DocumentError {
    /// The YAML itself does not parse.
    Yaml {
        document: usize,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },
    /// Not a `v1` `Pod` (or not a mapping at all).
    Kind { document: usize, problem: String },
    /// Strict decoding failed: unknown fields or wrong types, one line each.
    Decode {
        document: usize,
        problems: Vec<String>,
    },
    /// The object decoded but is invalid (Kubernetes validation or podshim's unsupported gate).
    Invalid {
        document: usize,
        /// `Pod`, `ConfigMap` or `Secret`.
        kind: &'static str,
        name: String,
        errors: Vec<FieldError>,
        /// A valid name derived from an invalid `metadata.name`.
        name_hint: Option<String>,
    },
    /// An admission plugin refused the object (kubectl: `pods "x" is forbidden: ...`).
    Forbidden {
        document: usize,
        /// The resource as the API server names it: `pods`, `priorityclasses.scheduling.k8s.io`.
        resource: &'static str,
        name: String,
        message: String,
    },
}

impl DocumentError {
    /// One line per problem.
    pub fn problems(&self) -> Vec<String> {
        match self {
            DocumentError::Yaml { .. }
            | DocumentError::Kind { .. }
            | DocumentError::Forbidden { .. } => vec![self.to_string()],
            DocumentError::Decode { problems, .. } => problems.clone(),
            DocumentError::Invalid { errors, .. } => errors.iter().map(|e| e.to_string()).collect(),
        }
    }
}

impl fmt::Display for DocumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentError::Yaml {
                document,
                line,
                column,
                message,
            } => {
                write!(f, "error parsing YAML document {document}")?;
                if let (Some(l), Some(c)) = (line, column) {
                    write!(f, " at line {l} column {c}")?;
                }
                write!(f, ": {message}")
            }
            DocumentError::Kind { document, problem } => {
                write!(f, "error in document {document}: {problem}")
            }
            DocumentError::Decode { document, problems } => {
                let lines: Vec<String> = problems
                    .iter()
                    .map(|p| format!("error decoding document {document}: {p}"))
                    .collect();
                f.write_str(&lines.join("\n"))
            }
            DocumentError::Invalid {
                kind,
                name,
                errors,
                name_hint,
                ..
            } => {
                // kubectl: `The Pod "x" is invalid: <one error>` or one `* <error>` line each.
                write!(f, "The {kind} {name:?} is invalid: ")?;
                if let [only] = errors.as_slice() {
                    write!(f, "{only}")?;
                } else {
                    for e in errors {
                        write!(f, "\n* {e}")?;
                    }
                }
                if let Some(hint) = name_hint {
                    write!(f, "\nhint: {hint:?} would be a valid name")?;
                }
                Ok(())
            }
            DocumentError::Forbidden {
                resource,
                name,
                message,
                ..
            } => write!(f, "{resource} {name:?} is forbidden: {message}"),
        }
    }
}

/// Why a manifest was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The text holds no YAML document at all.
    #[error("no Pod found: the manifest has no YAML document")]
    Empty,
    /// The manifest holds ConfigMaps or Secrets but no Pod to use them.
    #[error("no Pod found: the manifest has only ConfigMaps, Secrets, PriorityClasses or PersistentVolumeClaims (podshim apply -f makes claims on their own)")]
    NoPod,
    /// At least one document has problems; all of them are listed.
    #[error("{}", join_documents(.0))]
    Invalid(Vec<DocumentError>),
}

fn join_documents(docs: &[DocumentError]) -> String {
    let parts: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    parts.join("\n")
}

impl ManifestError {
    /// One line per problem, e.g. `spec.containers[1].name: Duplicate value: "web"`.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ManifestError::Empty | ManifestError::NoPod => vec![self.to_string()],
            ManifestError::Invalid(docs) => docs.iter().flat_map(|d| d.problems()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_apimachinery() {
        let p = FieldPath::new("spec")
            .child("containers")
            .index(1)
            .child("name");
        assert_eq!(
            FieldError::duplicate(&p, "web").to_string(),
            r#"spec.containers[1].name: Duplicate value: "web""#
        );
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.containers[1].name: Required value"
        );
        let rp = FieldPath::new("spec").child("restartPolicy");
        assert_eq!(
            FieldError::not_supported(&rp, "Sometimes", &["Always", "OnFailure", "Never"])
                .to_string(),
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure""#
        );
        let port = FieldPath::new("p");
        assert_eq!(
            FieldError::invalid(&port, 70000i64, "must be between 1 and 65535, inclusive")
                .to_string(),
            "p: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            FieldError::forbidden(&port, "nope").to_string(),
            "p: Forbidden: nope"
        );
        let lim = FieldPath::new("resources").child("limits").key("cpu");
        assert_eq!(lim.as_str(), "resources.limits[cpu]");
    }
}
