//! Kubernetes defaults applied after decoding and before validation (`pkg/apis/core/v1/defaults.go`,
//! plus the declarative defaults of `k8s.io/api` types and podshim's namespace choice).

use super::types::{
    Container, EmptyDirVolumeSource, HTTPGetAction, Pod, PodSecurityContext, Probe, Volume,
};

/// `DefaultTerminationGracePeriodSeconds`.
pub const DEFAULT_TERMINATION_GRACE_PERIOD: i64 = 30;
/// `0644`, the default file mode of secret and configMap volumes.
pub const DEFAULT_MODE: i32 = 0o644;

/// Applies every default to a decoded Pod.
pub fn apply(pod: &mut Pod) {
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some("default".to_string());
    }
    let spec = &mut pod.spec;
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.dns_policy.get_or_insert_with(|| "ClusterFirst".into());
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD);
    spec.security_context
        .get_or_insert_with(PodSecurityContext::default);
    let host_network = spec.host_network == Some(true);
    for c in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        default_container(c, host_network);
    }
    spec.volumes.iter_mut().for_each(default_volume);
    // After the containers' own defaults, which it aggregates.
    crate::pod::pod_level::default_requests(spec);
}

/// `Always` for `:latest` or no tag, `IfNotPresent` otherwise (a digest counts as tagged).
pub fn default_pull_policy(image: &str) -> String {
    if image.contains('@') {
        return "IfNotPresent".into();
    }
    // The tag is after the last ':' that comes after the last '/' (a registry port is not a tag).
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent".into(),
        _ => "Always".into(),
    }
}

fn default_container(c: &mut Container, host_network: bool) {
    if c.image_pull_policy.is_none() {
        c.image_pull_policy = Some(default_pull_policy(c.image.as_deref().unwrap_or("")));
    }
    c.termination_message_path
        .get_or_insert_with(|| "/dev/termination-log".into());
    c.termination_message_policy
        .get_or_insert_with(|| "File".into());
    for p in &mut c.ports {
        p.protocol.get_or_insert_with(|| "TCP".into());
        if host_network && p.host_port.unwrap_or(0) == 0 {
            p.host_port = Some(p.container_port);
        }
    }
    for e in &mut c.env {
        if let Some(field_ref) = e.value_from.as_mut().and_then(|v| v.field_ref.as_mut()) {
            field_ref.api_version.get_or_insert_with(|| "v1".into());
        }
    }
    // SetDefaults_Pod: a request missing for a limited resource takes the limit.
    if let Some(r) = c.resources.as_mut() {
        for (name, limit) in &r.limits {
            r.requests
                .entry(name.clone())
                .or_insert_with(|| limit.clone());
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(l) = c.lifecycle.as_mut() {
        for h in [&mut l.post_start, &mut l.pre_stop].into_iter().flatten() {
            if let Some(g) = h.http_get.as_mut() {
                default_http_get(g);
            }
        }
    }
}

fn default_probe(p: &mut Probe) {
    p.timeout_seconds.get_or_insert(1);
    p.period_seconds.get_or_insert(10);
    p.success_threshold.get_or_insert(1);
    p.failure_threshold.get_or_insert(3);
    if let Some(g) = p.http_get.as_mut() {
        default_http_get(g);
    }
}

fn default_http_get(g: &mut HTTPGetAction) {
    if g.path.as_deref().unwrap_or("").is_empty() {
        g.path = Some("/".into());
    }
    if g.scheme.as_deref().unwrap_or("").is_empty() {
        g.scheme = Some("HTTP".into());
    }
}

fn default_volume(v: &mut Volume) {
    if !has_source(v) {
        v.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(s) = v.secret.as_mut() {
        s.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(c) = v.config_map.as_mut() {
        c.default_mode.get_or_insert(DEFAULT_MODE);
    }
    if let Some(h) = v.host_path.as_mut() {
        h.type_.get_or_insert_with(String::new);
    }
    // `SetDefaults_ServiceAccountTokenProjection`: an hour.
    for s in v.projected.iter_mut().flat_map(|p| &mut p.sources) {
        if let Some(t) = s.service_account_token.as_mut() {
            t.expiration_seconds.get_or_insert(3600);
        }
    }
    // `SetDefaults_ImageVolumeSource`: as a container's image.
    if let Some(i) = v.image.as_mut() {
        if i.pull_policy.as_deref().unwrap_or("").is_empty() {
            i.pull_policy = Some(default_pull_policy(i.reference.as_deref().unwrap_or("")));
        }
    }
}

/// Whether any volume source is set (everything but `name`).
pub fn has_source(v: &Volume) -> bool {
    volume_sources(v).iter().any(|(_, set)| *set)
}

/// Every volume source in `validateVolumeSource`'s order, with whether it is set.
pub fn volume_sources(v: &Volume) -> Vec<(&'static str, bool)> {
    vec![
        ("emptyDir", v.empty_dir.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("awsElasticBlockStore", v.aws_elastic_block_store.is_some()),
        ("secret", v.secret.is_some()),
        ("nfs", v.nfs.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("glusterfs", v.glusterfs.is_some()),
        ("flocker", v.flocker.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("rbd", v.rbd.is_some()),
        ("cinder", v.cinder.is_some()),
        ("cephfs", v.cephfs.is_some()),
        ("quobyte", v.quobyte.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("fc", v.fc.is_some()),
        ("flexVolume", v.flex_volume.is_some()),
        ("configMap", v.config_map.is_some()),
        ("azureFile", v.azure_file.is_some()),
        ("vsphereVolume", v.vsphere_volume.is_some()),
        ("photonPersistentDisk", v.photon_persistent_disk.is_some()),
        ("portworxVolume", v.portworx_volume.is_some()),
        ("azureDisk", v.azure_disk.is_some()),
        ("storageos", v.storage_os.is_some()),
        ("projected", v.projected.is_some()),
        ("scaleIO", v.scale_io.is_some()),
        ("csi", v.csi.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("image", v.image.is_some()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_by_tag() {
        assert_eq!(default_pull_policy("nginx"), "Always");
        assert_eq!(default_pull_policy("nginx:latest"), "Always");
        assert_eq!(default_pull_policy("nginx:1.27"), "IfNotPresent");
        assert_eq!(default_pull_policy("localhost:5000/nginx"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/nginx:1"),
            "IfNotPresent"
        );
        assert_eq!(
            default_pull_policy("nginx@sha256:0123456789abcdef"),
            "IfNotPresent"
        );
    }
}
