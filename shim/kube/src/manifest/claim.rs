//! `v1` PersistentVolumeClaims, applied with `podshim apply -f` or given next to the Pods of a
//! `podshim run` file: strict types, the API server's defaults (`volumeMode: Filesystem`, the
//! DefaultStorageClass admission plugin's `storageClassName`) and validation
//! (`ValidatePersistentVolumeClaim`) with Kubernetes' wording, then podshim's gate for the fields
//! its local-path provisioner (`crate::storage`) does not implement.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{FieldError, FieldPath};
use super::quantity::Quantity;
use super::types::{k8s_struct, ObjectMeta};
use super::validate;

/// The built-in StorageClass: the default one, as `local-path` is on k3s and `standard` on kind.
pub const LOCAL_PATH: &str = "local-path";
/// Class names that mean the built-in class (kind's default class is called `standard`).
const CLASSES: [&str; 2] = [LOCAL_PATH, "standard"];
/// The annotation that chooses what happens to the data when the claim is deleted (a
/// StorageClass's `reclaimPolicy` in Kubernetes, where a claim cannot choose it).
pub const RECLAIM_ANNOTATION: &str = "podshim.io/reclaim-policy";
const ACCESS_MODES: [&str; 4] = [
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];

k8s_struct! {
    /// A `v1` PersistentVolumeClaim.
    pub struct PersistentVolumeClaim {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: PersistentVolumeClaimSpec,
        /// Accepted (e.g. from `kubectl get -o yaml`) and dropped; podshim's store sets its own.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

k8s_struct! {
    /// `spec` of a PersistentVolumeClaim.
    pub struct PersistentVolumeClaimSpec {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub access_modes: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub data_source: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub data_source_ref: Option<Value>,
        pub resources: VolumeResourceRequirements,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub storage_class_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_attributes_class_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_mode: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub volume_name: Option<String>,
    }
}

k8s_struct! {
    /// `spec.resources` of a claim: only `storage` means something.
    pub struct VolumeResourceRequirements {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub limits: BTreeMap<String, Quantity>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub requests: BTreeMap<String, Quantity>,
    }
}

/// What happens to a claim's directory when the claim is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReclaimPolicy {
    /// The directory is removed (local-path's default class).
    Delete,
    /// The directory stays under the data root, released, for an administrator to recover.
    Retain,
}

impl PersistentVolumeClaim {
    pub fn namespace(&self) -> &str {
        self.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// `spec.resources.requests.storage` in bytes (validated: present and positive); one too
    /// large for 64 bits counts as the most there can be.
    pub fn requested_bytes(&self) -> u64 {
        match self.spec.resources.requests.get("storage") {
            None => 0,
            Some(q) => q.to_bytes().map_or(u64::MAX, |b| b.max(0) as u64),
        }
    }

    /// The reclaim policy the annotation names (validated), `Delete` by default.
    pub fn reclaim_policy(&self) -> ReclaimPolicy {
        match self
            .metadata
            .annotations
            .get(RECLAIM_ANNOTATION)
            .map(String::as_str)
        {
            Some("Retain") => ReclaimPolicy::Retain,
            _ => ReclaimPolicy::Delete,
        }
    }

    /// Whether only one Pod at a time may use the claim.
    pub fn once_pod(&self) -> bool {
        self.spec
            .access_modes
            .iter()
            .any(|m| m == "ReadWriteOncePod")
    }
}

/// The API server's defaults: namespace, `volumeMode: Filesystem`
/// (`SetDefaults_PersistentVolumeClaimSpec`) and the default class when none is named (the
/// DefaultStorageClass admission plugin).
pub fn default_claim(c: &mut PersistentVolumeClaim) {
    if c.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        c.metadata.namespace = Some("default".into());
    }
    c.spec
        .volume_mode
        .get_or_insert_with(|| "Filesystem".into());
    c.spec
        .storage_class_name
        .get_or_insert_with(|| LOCAL_PATH.into());
    c.status = None;
}

/// `ValidatePersistentVolumeClaim` (name, access modes, storage request, class name, volume
/// mode), then podshim's refusals of what the local-path provisioner cannot give.
pub fn validate_claim(c: &PersistentVolumeClaim) -> Vec<FieldError> {
    let mut errs = validate::validate_metadata(&c.metadata, &FieldPath::new("metadata"));
    let spec = FieldPath::new("spec");
    let modes = spec.child("accessModes");
    if c.spec.access_modes.is_empty() {
        errs.push(FieldError::required(
            &modes,
            "at least 1 access mode is required",
        ));
    }
    let (mut once_pod, mut others) = (false, false);
    for m in &c.spec.access_modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(&modes, m.as_str(), &ACCESS_MODES));
        }
        match m.as_str() {
            "ReadWriteOncePod" => once_pod = true,
            _ => others = true,
        }
    }
    if once_pod && others {
        errs.push(FieldError::forbidden(
            &modes,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    let storage = spec.child("resources").key("storage");
    match c.spec.resources.requests.get("storage") {
        None => errs.push(FieldError::required(&storage, "")),
        Some(q) => match q.parse() {
            Ok(p) if p.is_negative() || p.mantissa == 0 => {
                errs.push(FieldError::invalid(
                    &storage,
                    q.as_str(),
                    "must be greater than zero",
                ));
            }
            Ok(_) => {}
            Err(e) => errs.push(FieldError::invalid(&storage, q.as_str(), e.to_string())),
        },
    }
    let class = c.spec.storage_class_name.as_deref().unwrap_or("");
    if !class.is_empty() {
        let cp = spec.child("storageClassName");
        for msg in validate::names::dns1123_subdomain(class) {
            errs.push(FieldError::invalid(&cp, class, msg));
        }
    }
    let mode = c.spec.volume_mode.as_deref().unwrap_or("Filesystem");
    let volume_mode = spec.child("volumeMode");
    if !["Filesystem", "Block"].contains(&mode) {
        errs.push(FieldError::not_supported(
            &volume_mode,
            mode,
            &["Block", "Filesystem"],
        ));
    }
    if let Some(p) = c.metadata.annotations.get(RECLAIM_ANNOTATION) {
        if !["Delete", "Retain"].contains(&p.as_str()) {
            let path = FieldPath::new("metadata")
                .child("annotations")
                .key(RECLAIM_ANNOTATION);
            errs.push(FieldError::not_supported(
                &path,
                p.as_str(),
                &["Delete", "Retain"],
            ));
        }
    }
    if !errs.is_empty() {
        return errs;
    }
    // podshim's gate: the Kubernetes API has these, the built-in provisioner does not.
    let not_yet = |errs: &mut Vec<FieldError>, path: &FieldPath| {
        errs.push(FieldError::forbidden(path, "not supported by podshim yet"));
    };
    if mode == "Block" {
        errs.push(FieldError::not_supported(
            &volume_mode,
            mode,
            &["Filesystem"],
        ));
    }
    for (field, set) in [
        ("dataSource", c.spec.data_source.is_some()),
        ("dataSourceRef", c.spec.data_source_ref.is_some()),
        ("selector", c.spec.selector.is_some()),
        // Pre-binding to a named PersistentVolume: podshim has no PersistentVolume objects.
        ("volumeName", c.spec.volume_name.is_some()),
        (
            "volumeAttributesClassName",
            c.spec.volume_attributes_class_name.is_some(),
        ),
    ] {
        if set {
            not_yet(&mut errs, &spec.child(field));
        }
    }
    if !CLASSES.contains(&class) {
        // The provisioner never sees such a claim; in Kubernetes it stays Pending with this
        // event. podshim refuses it instead of keeping a claim no Pod could ever use.
        errs.push(FieldError::not_found(
            &spec.child("storageClassName"),
            class,
        ));
        if let Some(e) = errs.last_mut() {
            e.detail = format!(
                "storageclass.storage.k8s.io {class:?} not found (this node has the built-in \
                 class {LOCAL_PATH:?}, also called \"standard\")"
            );
        }
    }
    errs
}

/// The PersistentVolumeClaims of a manifest for `podshim apply` (decoded, defaulted and valid,
/// or every problem as `parse` reports it), and the text without them for the workload
/// controllers: each claim's document blanked line for line, so the others keep their line and
/// document numbers; `None` when nothing but claims (and empty documents) is left.
pub fn take_claims(
    text: &str,
) -> Result<(Vec<PersistentVolumeClaim>, Option<String>), super::ManifestError> {
    let is_claim =
        |v: &Value| v.get("kind").and_then(Value::as_str) == Some("PersistentVolumeClaim");
    let mut claims = Vec::new();
    let mut problems = Vec::new();
    let mut warnings = Vec::new();
    for (document, doc) in super::decode::documents(text) {
        let Ok(d) = doc else { continue };
        if !is_claim(&d.value) {
            continue;
        }
        match super::parse_document(document, d, &mut warnings) {
            Ok(super::Object::Claim(c)) => claims.push(*c),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    if !problems.is_empty() {
        return Err(super::ManifestError::Invalid(problems));
    }
    let mut rest = String::new();
    let mut others = false;
    let mut offset = 0;
    for chunk in super::yaml::split(text) {
        let start = chunk.text.as_ptr() as usize - text.as_ptr() as usize;
        rest.push_str(&text[offset..start]);
        offset = start + chunk.text.len();
        let docs = super::yaml::documents(chunk.text);
        let all_claims = !docs.is_empty()
            && docs.iter().all(|(_, d)| {
                d.as_ref()
                    .is_ok_and(|d| is_claim(&d.value) || d.value.is_null())
            });
        let any_claim = docs
            .iter()
            .any(|(_, d)| d.as_ref().is_ok_and(|d| is_claim(&d.value)));
        if all_claims && any_claim {
            rest.extend(chunk.text.matches('\n').map(|_| '\n'));
        } else {
            others |= docs
                .iter()
                .any(|(_, d)| !d.as_ref().is_ok_and(|d| d.value.is_null()));
            rest.push_str(chunk.text);
        }
    }
    rest.push_str(&text[offset..]);
    // Without claims the text goes on as it came (an empty file gets the controllers' message).
    let keep = others || claims.is_empty();
    Ok((claims, keep.then_some(rest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(spec: Value) -> PersistentVolumeClaim {
        let mut c: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"}, "spec": spec
        }))
        .unwrap();
        default_claim(&mut c);
        c
    }

    fn problems(spec: Value) -> Vec<String> {
        validate_claim(&claim(spec))
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    #[test]
    fn a_plain_claim_gets_the_defaults_and_is_valid() {
        let c = claim(serde_json::json!({"accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}}}));
        assert_eq!(c.spec.volume_mode.as_deref(), Some("Filesystem"));
        assert_eq!(c.spec.storage_class_name.as_deref(), Some(LOCAL_PATH));
        assert_eq!(c.namespace(), "default");
        assert_eq!(c.requested_bytes(), 1 << 30);
        assert_eq!(c.reclaim_policy(), ReclaimPolicy::Delete);
        assert!(validate_claim(&c).is_empty());
    }

    #[test]
    fn the_api_servers_messages() {
        assert_eq!(
            problems(serde_json::json!({})),
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ]
        );
        assert_eq!(
            problems(
                serde_json::json!({"accessModes": ["ReadWriteOncePod", "ReadWriteOnly"],
                "resources": {"requests": {"storage": "0"}}})
            ),
            [
                r#"spec.accessModes: Unsupported value: "ReadWriteOnly": supported values: "ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod""#,
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                r#"spec.resources[storage]: Invalid value: "0": must be greater than zero"#,
            ]
        );
        assert_eq!(
            problems(
                serde_json::json!({"accessModes": ["ReadWriteOnce"], "volumeMode": "Raw",
                "resources": {"requests": {"storage": "1Gi"}}})
            ),
            [
                r#"spec.volumeMode: Unsupported value: "Raw": supported values: "Block", "Filesystem""#
            ]
        );
    }

    #[test]
    fn what_the_local_path_provisioner_cannot_give_is_refused() {
        let p = problems(serde_json::json!({"accessModes": ["ReadWriteOnce"],
            "storageClassName": "fast-ssd", "volumeName": "pv-1",
            "resources": {"requests": {"storage": "1Gi"}}}));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            p[0],
            "spec.volumeName: Forbidden: not supported by podshim yet"
        );
        assert!(
            p[1].starts_with(r#"spec.storageClassName: Not found: "fast-ssd""#),
            "{p:?}"
        );
        let p = problems(serde_json::json!({"accessModes": ["ReadWriteOnce"],
            "volumeMode": "Block", "resources": {"requests": {"storage": "1Gi"}}}));
        assert_eq!(
            p,
            [r#"spec.volumeMode: Unsupported value: "Block": supported values: "Filesystem""#]
        );
    }

    #[test]
    fn apply_takes_the_claims_and_leaves_the_rest_where_it_was() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n---\n\
                    apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data}\nspec:\n  \
                    accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n---\n\
                    apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
        let (claims, rest) = take_claims(text).unwrap();
        assert_eq!(claims.len(), 1);
        assert_eq!(
            claims[0].spec.storage_class_name.as_deref(),
            Some(LOCAL_PATH)
        );
        let rest = rest.unwrap();
        assert_eq!(rest.lines().count(), text.lines().count());
        assert!(!rest.contains("PersistentVolumeClaim"));
        assert_eq!(rest.lines().nth(10), Some("---"));
        assert_eq!(rest.lines().nth(12), Some("kind: ConfigMap"));
        let only = "kind: PersistentVolumeClaim\napiVersion: v1\nmetadata: {name: d}\nspec: {}\n";
        let e = take_claims(only).unwrap_err().to_string();
        assert!(e.contains("at least 1 access mode is required"), "{e}");
        let ok = "kind: PersistentVolumeClaim\napiVersion: v1\nmetadata: {name: d}\nspec: \
                  {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Mi}}}\n";
        assert_eq!(take_claims(ok).unwrap().1, None);
        let none = "# nothing\n---\napiVersion: apps/v1\nkind: Job\n---\n";
        assert_eq!(take_claims(none).unwrap().1.as_deref(), Some(none));
        assert_eq!(take_claims("").unwrap().1.as_deref(), Some(""));
    }

    #[test]
    fn the_reclaim_policy_comes_from_the_annotation() {
        let mut c = claim(serde_json::json!({"accessModes": ["ReadWriteOncePod"],
            "storageClassName": "standard", "resources": {"requests": {"storage": "10Mi"}}}));
        c.metadata
            .annotations
            .insert(RECLAIM_ANNOTATION.into(), "Retain".into());
        assert!(validate_claim(&c).is_empty());
        assert_eq!(c.reclaim_policy(), ReclaimPolicy::Retain);
        assert!(c.once_pod());
        c.metadata
            .annotations
            .insert(RECLAIM_ANNOTATION.into(), "Recycle".into());
        let p: Vec<String> = validate_claim(&c).iter().map(|e| e.to_string()).collect();
        assert_eq!(
            p,
            [
                r#"metadata.annotations[podshim.io/reclaim-policy]: Unsupported value: "Recycle": supported values: "Delete", "Retain""#
            ]
        );
    }
}
