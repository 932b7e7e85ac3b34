//! Volume validation (`ValidateVolumes`, `validateVolumeSource` and the per-source checks).

use std::collections::BTreeSet;

use super::super::defaults::volume_sources;
use super::super::error::{FieldError, FieldPath};
use super::super::types::{DownwardAPIVolumeFile, KeyToPath, Volume};
use super::{dns_label, push_invalid};

const FILE_MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

/// Validates the Pod's volumes; returns the names of the valid ones (mounts may refer only to
/// those, as in Kubernetes) and the errors.
pub fn validate_volumes(
    volumes: &[Volume],
    path: &FieldPath,
) -> (BTreeSet<String>, Vec<FieldError>) {
    let mut names = BTreeSet::new();
    let mut errs = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        let vp = path.index(i);
        let np = vp.child("name");
        let mut el = validate_source(v, &vp);
        if v.name.is_empty() {
            el.push(FieldError::required(&np, ""));
        } else {
            dns_label(&mut el, &np, &v.name);
        }
        if names.contains(&v.name) {
            el.push(FieldError::duplicate(&np, &v.name));
        }
        if el.is_empty() {
            names.insert(v.name.clone());
        } else {
            errs.extend(el);
        }
    }
    (names, errs)
}

fn validate_source(v: &Volume, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    for (field, set) in volume_sources(v) {
        if !set {
            continue;
        }
        if count > 0 {
            errs.push(FieldError::forbidden(
                &path.child(field),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        errs.extend(validate_one_source(v, field, &path.child(field)));
    }
    if count == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    errs
}

fn validate_one_source(v: &Volume, field: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match field {
        "emptyDir" => {
            let limit = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref());
            if limit
                .and_then(|q| q.parse().ok())
                .is_some_and(|q| q.is_negative())
            {
                errs.push(FieldError::forbidden(
                    &path.child("sizeLimit"),
                    "SizeLimit field must be a valid resource quantity",
                ));
            }
        }
        "hostPath" => {
            let Some(h) = &v.host_path else { return errs };
            let pp = path.child("path");
            if h.path.is_empty() {
                errs.push(FieldError::required(&pp, ""));
            } else {
                errs.extend(no_backsteps(&h.path, &pp));
            }
            let t = h.type_.as_deref().unwrap_or("");
            if !HOST_PATH_TYPES.contains(&t) {
                errs.push(FieldError::not_supported(
                    &path.child("type"),
                    t,
                    HOST_PATH_TYPES,
                ));
            }
        }
        "secret" => {
            let Some(s) = &v.secret else { return errs };
            if s.secret_name.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&path.child("secretName"), ""));
            }
            errs.extend(validate_mode(s.default_mode, &path.child("defaultMode")));
            errs.extend(validate_items(&s.items, &path.child("items")));
        }
        "configMap" => {
            let Some(c) = &v.config_map else { return errs };
            if c.name.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&path.child("name"), ""));
            }
            errs.extend(validate_mode(c.default_mode, &path.child("defaultMode")));
            errs.extend(validate_items(&c.items, &path.child("items")));
        }
        "persistentVolumeClaim" => {
            let Some(c) = &v.persistent_volume_claim else {
                return errs;
            };
            if c.claim_name.is_empty() {
                errs.push(FieldError::required(&path.child("claimName"), ""));
            }
        }
        "downwardAPI" => {
            let Some(d) = &v.downward_api else {
                return errs;
            };
            errs.extend(validate_mode(d.default_mode, &path.child("defaultMode")));
            errs.extend(validate_downward_items(&d.items, &path.child("items")));
        }
        "projected" => {
            let Some(p) = &v.projected else { return errs };
            errs.extend(validate_mode(p.default_mode, &path.child("defaultMode")));
            for (i, src) in p.sources.iter().enumerate() {
                let sp = path.child("sources").index(i);
                for (field, kp) in [("secret", &src.secret), ("configMap", &src.config_map)] {
                    if let Some(kp) = kp {
                        if kp.name.as_deref().unwrap_or("").is_empty() {
                            errs.push(FieldError::required(&sp.child(field).child("name"), ""));
                        }
                        errs.extend(validate_items(&kp.items, &sp.child(field).child("items")));
                    }
                }
                if let Some(d) = &src.downward_api {
                    let dp = sp.child("downwardAPI").child("items");
                    errs.extend(validate_downward_items(&d.items, &dp));
                }
                if let Some(t) = &src.service_account_token {
                    let tp = sp.child("serviceAccountToken").child("expirationSeconds");
                    let e = t.expiration_seconds.unwrap_or(3600);
                    if e < 600 {
                        let m = "may not specify a duration less than 10 minutes";
                        errs.push(FieldError::invalid(&tp, e, m));
                    }
                    if e > 1 << 32 {
                        let m = "may not specify a duration larger than 2^32 seconds";
                        errs.push(FieldError::invalid(&tp, e, m));
                    }
                    // The API server names the projection's path here, not the source's.
                    // (`ValidateLocalNonReservedPath` too: the token is written inside the volume.)
                    if t.path.is_empty() {
                        errs.push(FieldError::required(&path.child("path"), ""));
                    } else {
                        errs.extend(local_non_reserved_path(&t.path, &path.child("path")));
                    }
                }
            }
        }
        "image" => {
            // `validateImageVolumeSource`.
            let Some(i) = &v.image else { return errs };
            if i.reference.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&path.child("reference"), ""));
            }
            let pp = path.child("pullPolicy");
            match i.pull_policy.as_deref().unwrap_or("") {
                "" => errs.push(FieldError::required(&pp, "")),
                "Always" | "IfNotPresent" | "Never" => {}
                other => errs.push(FieldError::not_supported(
                    &pp,
                    other,
                    &["Always", "IfNotPresent", "Never"],
                )),
            }
        }
        // Sources podshim keeps as raw JSON are refused by the unsupported gate instead.
        _ => {}
    }
    errs
}

fn validate_mode(mode: Option<i32>, path: &FieldPath) -> Vec<FieldError> {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => vec![FieldError::invalid(path, m, FILE_MODE_MSG)],
        _ => Vec::new(),
    }
}

/// The `fieldPath`s a downwardAPI volume file may name (`validVolumeDownwardAPIFieldPathExpressions`).
const DOWNWARD_VOLUME_FIELDS: [&str; 5] = [
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.uid",
];

/// `validateDownwardAPIVolumeFile` for each item.
fn validate_downward_items(items: &[DownwardAPIVolumeFile], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, f) in items.iter().enumerate() {
        let ip = path.index(i);
        let pp = ip.child("path");
        if f.path.is_empty() {
            errs.push(FieldError::required(&pp, ""));
        }
        errs.extend(local_non_reserved_path(&f.path, &pp));
        errs.extend(validate_mode(f.mode, &ip.child("mode")));
        match (&f.field_ref, &f.resource_field_ref) {
            (Some(r), None) => {
                let fp = &r.field_path;
                let subscript = ["metadata.labels['", "metadata.annotations['"]
                    .iter()
                    .any(|p| fp.starts_with(p) && fp.ends_with("']"));
                if !DOWNWARD_VOLUME_FIELDS.contains(&fp.as_str()) && !subscript {
                    errs.push(FieldError::not_supported(
                        &ip.child("fieldRef").child("fieldPath"),
                        fp.as_str(),
                        &DOWNWARD_VOLUME_FIELDS,
                    ));
                }
            }
            (None, Some(_)) => {}
            (Some(_), Some(_)) => errs.push(FieldError::invalid(
                &ip.child("fieldRef"),
                "",
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            )),
            (None, None) => errs.push(FieldError::required(
                &ip,
                "one of fieldRef and resourceFieldRef is required",
            )),
        }
    }
    errs
}

/// `validateKeyToPath` for each item.
fn validate_items(items: &[KeyToPath], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, kp) in items.iter().enumerate() {
        let ip = path.index(i);
        if kp.key.is_empty() {
            errs.push(FieldError::required(&ip.child("key"), ""));
        }
        let pp = ip.child("path");
        if kp.path.is_empty() {
            errs.push(FieldError::required(&pp, ""));
        }
        errs.extend(local_non_reserved_path(&kp.path, &pp));
        errs.extend(validate_mode(kp.mode, &ip.child("mode")));
    }
    errs
}

/// `validatePathNoBacksteps`.
pub fn no_backsteps(p: &str, path: &FieldPath) -> Vec<FieldError> {
    if p.split('/').any(|part| part == "..") {
        vec![FieldError::invalid(path, p, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

/// `validateLocalDescendingPath`.
pub fn local_descending_path(p: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(FieldError::invalid(path, p, "must be a relative path"));
    }
    errs.extend(no_backsteps(p, path));
    errs
}

/// `validateLocalNonReservedPath`.
fn local_non_reserved_path(p: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = local_descending_path(p, path);
    if p.starts_with("..") {
        push_invalid(&mut errs, path, p, vec!["must not start with '..'".into()]);
    }
    errs
}
