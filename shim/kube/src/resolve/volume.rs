//! The files of `configMap` and `secret` volumes, as the kubelet's `MakePayload`
//! (`pkg/volume/configmap`, `pkg/volume/secret`) computes them: every key (ConfigMap `data` and
//! `binaryData`) as a file named after it, or only the listed `items` at their `path`; each file
//! with its item's `mode`, else `defaultMode`.

use std::collections::BTreeMap;

use super::{not_found, Context};
use crate::manifest::{KeyToPath, Volume};
use crate::pod::projection::{ProjectedFile, Projection};

/// `defaultMode` when unset (the manifest defaults set it; this is the fallback).
const DEFAULT_MODE: u32 = 0o644;

/// A resolved `configMap` or `secret` volume: its files and whether they must stay in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    pub projection: Projection,
    /// A Secret's files: on a tmpfs, never on disk.
    pub secret: bool,
}

/// The contents of `spec.volumes[index]`, or `None` when it is not a `configMap`, `secret`,
/// `downwardAPI` or `projected` volume (or a problem was pushed to `errors`). A missing
/// `optional` object gives no files, a missing `optional` item is left out, as in Kubernetes.
pub fn volume_contents(
    cx: &Context<'_>,
    index: usize,
    v: &Volume,
    errors: &mut Vec<String>,
) -> Option<Contents> {
    let base = format!("spec.volumes[{index}]");
    let mode = |m: Option<i32>| m.map_or(DEFAULT_MODE, |m| m as u32);
    let contents = |files, secret| {
        Some(Contents {
            projection: Projection { files },
            secret,
        })
    };
    if let Some(c) = &v.config_map {
        let name = c.name.as_deref().unwrap_or("");
        let o = c.optional == Some(true);
        let p = format!("{base}.configMap");
        let files = object_files(
            cx,
            &p,
            false,
            name,
            &c.items,
            mode(c.default_mode),
            o,
            errors,
        )?;
        return contents(files, false);
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.as_deref().unwrap_or("");
        let o = s.optional == Some(true);
        let p = format!("{base}.secret");
        let files = object_files(
            cx,
            &p,
            true,
            name,
            &s.items,
            mode(s.default_mode),
            o,
            errors,
        )?;
        return contents(files, true);
    }
    if let Some(d) = &v.downward_api {
        let p = format!("{base}.downwardAPI");
        let files = downward_files(cx, &p, &d.items, mode(d.default_mode), errors)?;
        return contents(files, false);
    }
    let p = v.projected.as_ref()?;
    let default_mode = mode(p.default_mode);
    let (mut files, mut secret, before) = (Vec::new(), false, errors.len());
    for (j, src) in p.sources.iter().enumerate() {
        let sp = format!("{base}.projected.sources[{j}]");
        for (field, is_secret, kp) in [
            ("secret", true, &src.secret),
            ("configMap", false, &src.config_map),
        ] {
            let Some(kp) = kp else { continue };
            secret |= is_secret;
            let name = kp.name.as_deref().unwrap_or("");
            let o = kp.optional == Some(true);
            let path = format!("{sp}.{field}");
            files.extend(
                object_files(
                    cx,
                    &path,
                    is_secret,
                    name,
                    &kp.items,
                    default_mode,
                    o,
                    errors,
                )
                .unwrap_or_default(),
            );
        }
        if let Some(d) = &src.downward_api {
            let path = format!("{sp}.downwardAPI");
            files.extend(
                downward_files(cx, &path, &d.items, default_mode, errors).unwrap_or_default(),
            );
        }
    }
    (errors.len() == before).then_some(Contents {
        projection: Projection { files },
        secret,
    })
}

/// The files of a downwardAPI volume or projection (`pkg/volume/downwardapi` `CollectData`):
/// Pod fields (labels and annotations as sorted `key="value"` lines) and container resources.
fn downward_files(
    cx: &Context<'_>,
    path: &str,
    items: &[crate::manifest::DownwardAPIVolumeFile],
    default_mode: u32,
    errors: &mut Vec<String>,
) -> Option<Vec<ProjectedFile>> {
    let mut files = Vec::new();
    let before = errors.len();
    for (j, f) in items.iter().enumerate() {
        let ip = format!("{path}.items[{j}]");
        let value = if let Some(r) = &f.field_ref {
            match super::env::field_ref(cx, &r.field_path, &ip) {
                Ok(crate::pod::process::EnvValue::Resolved(v)) => v,
                Ok(_) => {
                    errors.push(format!(
                        "{ip}.fieldRef.fieldPath: Unsupported value: {:?}",
                        r.field_path
                    ));
                    continue;
                }
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            }
        } else if let Some(r) = &f.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or("");
            let spec = &cx.pod.spec;
            let Some(c) = spec
                .containers
                .iter()
                .chain(&spec.init_containers)
                .find(|c| c.name == name)
            else {
                errors.push(format!(
                    "{ip}.resourceFieldRef.containerName: Required value: container name is required for volumes (none named {name:?})"
                ));
                continue;
            };
            match super::env::resource_value(cx, c, &r.resource, r.divisor.as_ref()) {
                Some(v) => v,
                None => {
                    errors.push(format!(
                        "{ip}.resourceFieldRef.resource: Unsupported value: {:?}",
                        r.resource
                    ));
                    continue;
                }
            }
        } else {
            continue;
        };
        files.push(ProjectedFile {
            path: f.path.clone(),
            data: value.into_bytes(),
            mode: f.mode.map_or(default_mode, |m| m as u32),
        });
    }
    (errors.len() == before).then_some(files)
}

/// The files of a ConfigMap (`secret` false) or Secret named `name`: every key, or the `items`.
#[allow(clippy::too_many_arguments)]
fn object_files(
    cx: &Context<'_>,
    path: &str,
    secret: bool,
    name: &str,
    items: &[KeyToPath],
    default_mode: u32,
    optional: bool,
    errors: &mut Vec<String>,
) -> Option<Vec<ProjectedFile>> {
    let ns = cx.namespace();
    let data = if secret {
        cx.manifest.secret(ns, name).map(|s| {
            s.data
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect::<BTreeMap<_, _>>()
        })
    } else {
        cx.manifest.config_map(ns, name).map(|cm| {
            let mut all: BTreeMap<String, Vec<u8>> = cm
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            all.extend(cm.binary_data.iter().map(|(k, v)| (k.clone(), v.0.clone())));
            all
        })
    };
    let (kind, noun) = if secret {
        ("secret", "secret key")
    } else {
        ("configmap", "config key")
    };
    let Some(data) = data else {
        if !optional {
            let detail = format!("{kind} {name:?} not found");
            errors.push(not_found(path, name, &detail));
            return None;
        }
        return Some(Vec::new());
    };
    let files = if items.is_empty() {
        data.into_iter()
            .map(|(path, data)| ProjectedFile {
                path,
                data,
                mode: default_mode,
            })
            .collect()
    } else {
        let mut files = Vec::new();
        for (
            j,
            KeyToPath {
                key,
                path: to,
                mode,
                ..
            },
        ) in items.iter().enumerate()
        {
            match data.get(key) {
                Some(d) => files.push(ProjectedFile {
                    path: to.clone(),
                    data: d.clone(),
                    mode: mode.map_or(default_mode, |m| m as u32),
                }),
                None if optional => {}
                None => {
                    let detail = format!("{kind} references non-existent {noun}: {key}");
                    errors.push(not_found(&format!("{path}.items[{j}].key"), key, &detail));
                }
            }
        }
        files
    };
    Some(files)
}
