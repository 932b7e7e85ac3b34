//! The images of a manifest's Pods, made present before anything of any Pod is created, as the
//! kubelet's image manager does: `imagePullPolicy` `Always` pulls every time (a pull of an
//! unchanged image fetches only its manifest), `IfNotPresent` pulls when the store lacks the
//! image, `Never` never pulls (`plan` then reports `ErrImageNeverPull`). Credentials are the
//! node's auth file with the Pod's `imagePullSecrets` over it.
//!
//! Every pull runs its own current-thread tokio runtime and shuts it down before returning, so
//! podshim is single-threaded again when it goes on to create containers.

use std::collections::BTreeMap;

use crate::manifest::{Manifest, Pod, PullPolicy};
use podshim_image::{Auths, ImageError, Progress, PullOptions, Reference, Store};

const DOCKER_CONFIG_JSON: (&str, &str) = ("kubernetes.io/dockerconfigjson", ".dockerconfigjson");
const DOCKER_CFG: (&str, &str) = ("kubernetes.io/dockercfg", ".dockercfg");

/// What the pulls of one manifest found.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Per Pod name: `field: reason` errors (`ErrImagePull`, `InvalidImageName`, secrets).
    pub errors: Vec<(String, String)>,
    /// Per Pod name: things the user should know (a missing pull secret).
    pub warnings: Vec<(String, String)>,
}

/// Pulls what the Pods' pull policies ask for. `node` holds the node's credentials and
/// insecure registries. One image is pulled at most once per call.
pub fn pull_for_pods(
    manifest: &Manifest,
    store: &Store,
    node: &PullOptions,
    progress: &dyn Progress,
) -> Outcome {
    let mut outcome = Outcome::default();
    // Normalized reference → the result of its pull in this run.
    let mut done: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    for pod in &manifest.pods {
        let name = pod.name().to_string();
        let opts = match pod_options(pod, manifest, node) {
            Ok((opts, warnings)) => {
                outcome
                    .warnings
                    .extend(warnings.into_iter().map(|w| (name.clone(), w)));
                opts
            }
            Err(errors) => {
                outcome
                    .errors
                    .extend(errors.into_iter().map(|e| (name.clone(), e)));
                continue;
            }
        };
        let spec = &pod.spec;
        let all = (spec.init_containers.iter().enumerate())
            .map(|(i, c)| ("initContainers", i, c))
            .chain((spec.containers.iter().enumerate()).map(|(i, c)| ("containers", i, c)));
        let containers = all.map(|(list, i, c)| {
            let field = format!("spec.{list}[{i}].image");
            (field, c.image.clone().unwrap_or_default(), c.pull_policy())
        });
        // `image` volumes are pulled by their own policy, as the kubelet's image manager does.
        let volumes = crate::pod::image_volume::pulls(pod);
        for (field, image, policy) in containers.chain(volumes) {
            let reference = match image.parse::<Reference>() {
                Ok(r) => r.to_string(),
                Err(e) => {
                    outcome
                        .errors
                        .push((name.clone(), format!("{field}: InvalidImageName: {e}")));
                    continue;
                }
            };
            let wanted = match policy {
                PullPolicy::Never => false,
                PullPolicy::Always => true,
                PullPolicy::IfNotPresent => match store.resolve(&reference) {
                    Ok(found) => found.is_none(),
                    // A broken store entry: pulling again repairs it.
                    Err(_) => true,
                },
            };
            if !wanted {
                continue;
            }
            let result = done
                .entry(reference.clone())
                .or_insert_with(|| {
                    store
                        .pull(&reference, &opts, progress)
                        .map(|_| ())
                        .map_err(|e| describe(&e))
                })
                .clone();
            if let Err(reason) = result {
                outcome
                    .errors
                    .push((name.clone(), format!("{field}: ErrImagePull: {reason}")));
            }
        }
    }
    outcome
}

/// The node's options with the Pod's pull secrets' credentials over them; a missing secret or
/// one of another type is a warning (the kubelet pulls without it), an unreadable one an error.
fn pod_options(
    pod: &Pod,
    manifest: &Manifest,
    node: &PullOptions,
) -> Result<(PullOptions, Vec<String>), Vec<String>> {
    let mut opts = node.clone();
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    for (i, s) in pod.spec.image_pull_secrets.iter().enumerate() {
        let field = format!("spec.imagePullSecrets[{i}]");
        let Some(secret) = manifest.secret(pod.namespace(), &s.name) else {
            warnings.push(format!(
                "{field}: secret {:?} is not in the manifest; pulling without it",
                s.name
            ));
            continue;
        };
        let type_ = secret.type_.as_deref().unwrap_or("Opaque");
        let source = format!("secret {:?}", s.name);
        let parsed = if type_ == DOCKER_CONFIG_JSON.0 {
            secret
                .data
                .get(DOCKER_CONFIG_JSON.1)
                .map(|b| Auths::from_config_json(&b.0, &source))
        } else if type_ == DOCKER_CFG.0 {
            secret
                .data
                .get(DOCKER_CFG.1)
                .map(|b| Auths::from_dockercfg(&b.0, &source))
        } else {
            warnings.push(format!(
                "{field}: secret {:?} has type {type_:?}, not {:?}; pulling without it",
                s.name, DOCKER_CONFIG_JSON.0
            ));
            continue;
        };
        match parsed {
            Some(Ok(auths)) => opts.auths.merge_over(&auths),
            Some(Err(reason)) => errors.push(format!("{field}: secret {:?}: {reason}", s.name)),
            // Validation of the Secret requires the key; kept for robustness.
            None => errors.push(format!("{field}: secret {:?} has no data", s.name)),
        }
    }
    if errors.is_empty() {
        Ok((opts, warnings))
    } else {
        Err(errors)
    }
}

/// An error with its sources (the registry's reason is in the message itself).
fn describe(e: &ImageError) -> String {
    crate::pod::chain(e)
}
