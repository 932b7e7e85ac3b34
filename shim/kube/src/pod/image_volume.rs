//! `image` volumes: an OCI image of podshim's store mounted read-only, as the kubelet mounts one
//! through the CRI (Kubernetes 1.31+). The image is pulled by the volume's `pullPolicy` with the
//! containers' images (`crate::pulling`), resolved when the Pod is planned, and mounted on the
//! host when the sandbox is made: its unpacked layers as a read-only overlayfs without an upper
//! directory (one layer: a read-only bind mount), journaled so that teardown, also after a
//! crash, unmounts it. Containers bind-mount it read-only like any volume, so `subPath` works
//! as for the others. The image is recorded among the Pod's images, so `image prune` keeps it.
//! With `hostUsers: false` the layers are read through an ID-mapped bind of their store.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use podshim_engine::journal::Resource;
use podshim_image::Store;

use super::PodError;
use crate::manifest::{Pod, PullPolicy, Volume};

/// The overlayfs option text limit (one page).
const MAX_OPTIONS: usize = 4096;

/// `(field, reference, policy)` of every `image` volume of `pod`, for the pulls.
pub fn pulls(pod: &Pod) -> Vec<(String, String, PullPolicy)> {
    (pod.spec.volumes.iter().enumerate())
        .filter_map(|(i, v)| {
            let image = v.image.as_ref()?;
            let policy = match image.pull_policy.as_deref() {
                Some("Always") => PullPolicy::Always,
                Some("Never") => PullPolicy::Never,
                _ => PullPolicy::IfNotPresent,
            };
            let reference = image.reference.clone().unwrap_or_default();
            Some((
                format!("spec.volumes[{i}].image.reference"),
                reference,
                policy,
            ))
        })
        .collect()
}

/// The unpacked layers (lowest first) and manifest digest of the image of volume `v`
/// (`spec.volumes[index]`), or `None` with the kubelet's reason pushed to `errors`.
pub fn resolve(
    store: &Store,
    index: usize,
    v: &Volume,
    errors: &mut Vec<String>,
) -> Option<(Vec<PathBuf>, String)> {
    let image = v.image.as_ref()?;
    let reference = image.reference.clone().unwrap_or_default();
    let field = format!("spec.volumes[{index}].image.reference");
    match store.resolve(&reference) {
        Ok(Some(i)) => Some((i.layers, i.digest)),
        Ok(None) => {
            errors.push(match image.pull_policy.as_deref() {
                Some("Never") => format!(
                    "{field}: ErrImageNeverPull: image {reference:?} is not present with pull \
                     policy of Never; pull it (podshim image pull) or import it (podshim image \
                     import --name {reference} ARCHIVE)"
                ),
                _ => format!(
                    "{field}: ErrImagePull: image {reference:?} is not in podshim's image store"
                ),
            });
            None
        }
        Err(e) => {
            errors.push(format!("{field}: {}", super::chain(&e)));
            None
        }
    }
}

/// Mount the layers read-only at `<pod dir>/image-volumes/<name>`, journaled first; returns the
/// mount point.
pub fn mount_volume(
    sandbox: &mut podshim_engine::sandbox::Sandbox,
    name: &str,
    layers: &[PathBuf],
) -> Result<PathBuf, PodError> {
    let target = sandbox.dir.join("image-volumes").join(name);
    // A Pod with its own user namespace reads the layers through a read-only ID-mapped bind of
    // their store (journalled before the overlay, so unmounted after it), as its containers'
    // root filesystems do: the image's root-owned files are root's inside.
    let mapped;
    let layers = match sandbox.userns.clone() {
        Some(userns) => {
            let dir = sandbox.dir.join("idmapped-layers").join(name);
            mapped = podshim_engine::rootfs::idmapped_layers(
                &mut sandbox.journal,
                layers,
                &dir,
                &userns,
            )?;
            &mapped[..]
        }
        None => layers,
    };
    let io = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| PodError::Io { what, path, source }
    };
    fs::create_dir_all(&target).map_err(io("create", &target))?;
    sandbox
        .journal
        .record(Resource::Mount {
            path: target.clone(),
        })
        .map_err(|e| PodError::Io {
            what: "journal the image volume",
            path: target.clone(),
            source: std::io::Error::other(e),
        })?;
    mount_read_only(layers, &target).map_err(io("mount the image volume on", &target))?;
    Ok(target)
}

/// overlayfs needs two lower directories when it has no upper one: one layer is bound instead,
/// none leaves an empty directory; either is then made read-only.
fn mount_read_only(layers: &[PathBuf], target: &Path) -> std::io::Result<()> {
    // The Kubernetes documentation: "mounted read-only (ro) and non-executable files (noexec)".
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    match layers {
        [] | [_] => {
            let source = layers.first().map_or(target, PathBuf::as_path);
            mount(
                Some(source),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            // A bind mount takes its flags only on a remount (mount(2)).
            mount(
                None::<&str>,
                target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | ro,
                None::<&str>,
            )?;
        }
        _ => {
            let data = overlay_options(layers)?;
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                ro,
                Some(data.as_str()),
            )?;
        }
    }
    Ok(())
}

/// `lowerdir=` with the top layer first (overlayfs' order), within the page the kernel reads.
fn overlay_options(layers: &[PathBuf]) -> std::io::Result<String> {
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!("lowerdir={}", lower.join(":"));
    if data.len() >= MAX_OPTIONS {
        return Err(std::io::Error::other(format!(
            "the image has {} layers, whose paths make overlay options of {} bytes, over the \
             kernel's {MAX_OPTIONS}",
            layers.len(),
            data.len()
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(volumes: serde_json::Value) -> Result<Pod, String> {
        let text = serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.35",
                     "volumeMounts": [{"name": "v", "mountPath": "/v"}]}],
                     "volumes": volumes}
        })
        .to_string();
        crate::manifest::parse(&text)
            .map(|m| m.pods[0].clone())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn image_volumes_are_defaulted_and_validated_as_the_api_server_does() {
        let p = pod(serde_json::json!([{"name": "v", "image": {"reference": "tools:1"}}])).unwrap();
        assert_eq!(
            pulls(&p),
            [(
                "spec.volumes[0].image.reference".to_string(),
                "tools:1".to_string(),
                PullPolicy::IfNotPresent
            )]
        );
        let p = pod(serde_json::json!([{"name": "v", "image": {"reference": "tools"}}])).unwrap();
        assert_eq!(pulls(&p)[0].2, PullPolicy::Always);
        let e = pod(serde_json::json!([{"name": "v", "image": {"pullPolicy": "Sometimes"}}]))
            .unwrap_err();
        assert!(
            e.contains("spec.volumes[0].image.reference: Required value"),
            "{e}"
        );
        assert!(
            e.contains(r#"spec.volumes[0].image.pullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#),
            "{e}"
        );
    }

    #[test]
    fn service_account_tokens_are_validated_as_the_api_server_does() {
        let e = pod(serde_json::json!([{"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"expirationSeconds": 60}}]}}]))
        .unwrap_err();
        assert!(
            e.contains("spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"),
            "{e}"
        );
        assert!(
            e.contains("spec.volumes[0].projected.path: Required value"),
            "{e}"
        );
        let e = pod(serde_json::json!([{"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "../../etc/escape"}}]}}]))
        .unwrap_err();
        assert!(
            e.contains(r#"spec.volumes[0].projected.path: Invalid value: "../../etc/escape": must not contain '..'"#),
            "{e}"
        );
        let p = pod(serde_json::json!([{"name": "v", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "audience": "vault"}}]}}]))
        .unwrap();
        let t = p.spec.volumes[0].projected.as_ref().unwrap().sources[0]
            .service_account_token
            .clone()
            .unwrap();
        assert_eq!(t.expiration_seconds, Some(3600));
    }

    #[test]
    fn overlay_lists_the_top_layer_first_and_stays_within_a_page() {
        let layers: Vec<PathBuf> = ["/l/1", "/l/2", "/l/3"].iter().map(PathBuf::from).collect();
        assert_eq!(overlay_options(&layers).unwrap(), "lowerdir=/l/3:/l/2:/l/1");
        let many: Vec<PathBuf> = (0..100)
            .map(|i| PathBuf::from(format!("/var/lib/podshim/images/layers/sha256/{i:064}")))
            .collect();
        assert!(overlay_options(&many)
            .unwrap_err()
            .to_string()
            .contains("100 layers"));
    }
}
