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

/// The contents of `spec.volumes[index]`, or `None` when it is not a `configMap` or `secret`
/// volume (or a problem was pushed to `errors`). A missing `optional` object gives an empty
/// volume, a missing `optional` item is left out, as in Kubernetes.
pub fn volume_contents(
    cx: &Context<'_>,
    index: usize,
    v: &Volume,
    errors: &mut Vec<String>,
) -> Option<Contents> {
    let ns = cx.namespace();
    let base = format!("spec.volumes[{index}]");
    let (field, name, items, mode, optional, secret, data) = if let Some(c) = &v.config_map {
        let name = c.name.clone().unwrap_or_default();
        let data = cx.manifest.config_map(ns, &name).map(|cm| {
            let mut all: BTreeMap<String, Vec<u8>> = cm
                .data
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
                .collect();
            all.extend(cm.binary_data.iter().map(|(k, v)| (k.clone(), v.0.clone())));
            all
        });
        let o = c.optional == Some(true);
        ("configMap", name, &c.items, c.default_mode, o, false, data)
    } else if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = cx.manifest.secret(ns, &name).map(|s| {
            s.data
                .iter()
                .map(|(k, v)| (k.clone(), v.0.clone()))
                .collect::<BTreeMap<_, _>>()
        });
        let o = s.optional == Some(true);
        ("secret", name, &s.items, s.default_mode, o, true, data)
    } else {
        return None;
    };
    let path = format!("{base}.{field}");
    let default_mode = mode.map_or(DEFAULT_MODE, |m| m as u32);
    let (kind, noun) = if secret {
        ("secret", "secret key")
    } else {
        ("configmap", "config key")
    };
    let Some(data) = data else {
        if !optional {
            let detail = format!("{kind} {name:?} not found");
            errors.push(not_found(&path, &name, &detail));
            return None;
        }
        return Some(Contents {
            projection: Projection::default(),
            secret,
        });
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
    Some(Contents {
        projection: Projection { files },
        secret,
    })
}
