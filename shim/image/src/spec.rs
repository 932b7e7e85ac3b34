//! The OCI image documents the store reads are `oci_spec::image`'s types (index, manifest,
//! descriptor, configuration); this module adds what that crate has no type for: docker's media
//! types and the docker-archive `manifest.json`, and the host platform as image indexes name it.

use serde::Deserialize;

pub use oci_spec::image::{
    Descriptor, DescriptorBuilder, Digest, ImageConfiguration, ImageIndex, ImageManifest,
    ImageManifestBuilder, MediaType, Platform,
};

pub const MT_OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MT_OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MT_DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Whether a descriptor points at an image index (OCI) or a manifest list (docker).
pub fn is_index(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageIndex)
        || matches!(d.media_type(), MediaType::Other(m) if m == MT_DOCKER_LIST)
}

/// Whether a descriptor points at an image manifest (OCI or docker schema 2).
pub fn is_manifest(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageManifest)
        || matches!(d.media_type(), MediaType::Other(m) if m == MT_DOCKER_MANIFEST)
}

/// The descriptor's digest as text (`sha256:<hex>`).
pub fn digest_of(d: &Descriptor) -> &str {
    d.digest().as_ref()
}

/// One value of a descriptor's annotations.
pub fn annotation<'a>(d: &'a Descriptor, key: &str) -> Option<&'a String> {
    d.annotations().as_ref().and_then(|a| a.get(key))
}

/// Whether an index entry's platform is this host's (`linux/<GOARCH>`).
pub fn matches_host(p: &Platform) -> bool {
    p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
}

/// One entry of a docker-archive `manifest.json` (`docker save`, `skopeo copy docker-archive:`);
/// docker's own format, which the OCI crates do not model.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerArchiveEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
}

/// The GOARCH name of the host, which is what image platforms use.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "arm" => "arm",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_platforms() {
        let d: Descriptor = serde_json::from_value(serde_json::json!({
            "mediaType": MT_DOCKER_LIST, "digest": format!("sha256:{}", "a".repeat(64)), "size": 1,
            "platform": {"architecture": host_arch(), "os": "linux"}
        }))
        .unwrap();
        assert!(is_index(&d) && !is_manifest(&d));
        assert!(matches_host(d.platform().as_ref().unwrap()));
        assert_eq!(digest_of(&d), format!("sha256:{}", "a".repeat(64)));
        let p: Platform = serde_json::from_value(
            serde_json::json!({"architecture": host_arch(), "os": "windows"}),
        )
        .unwrap();
        assert!(!matches_host(&p));
    }
}
