//! Kubernetes `v1` volume types (`Volume` and its sources), split from `types.rs` for size; strict
//! like the rest of the manifest types.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::quantity::Quantity;
use super::types::k8s_struct;

k8s_struct! {
    /// A reference to an object in the Pod's namespace by name.
    pub struct LocalObjectReference {
        #[serde(skip_serializing_if = "String::is_empty")]
        pub name: String,
    }
}

k8s_struct! {
    /// A Pod volume: a name and exactly one source.
    pub struct Volume {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub host_path: Option<HostPathVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub empty_dir: Option<EmptyDirVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub gce_persistent_disk: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub aws_elastic_block_store: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub git_repo: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret: Option<SecretVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub nfs: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub iscsi: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub glusterfs: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rbd: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub flex_volume: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cinder: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cephfs: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub flocker: Option<Value>,
        #[serde(rename = "downwardAPI", skip_serializing_if = "Option::is_none")]
        pub downward_api: Option<DownwardAPIVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fc: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub azure_file: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub config_map: Option<ConfigMapVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub vsphere_volume: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub quobyte: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub azure_disk: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub photon_persistent_disk: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub projected: Option<ProjectedVolumeSource>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub portworx_volume: Option<Value>,
        #[serde(rename = "scaleIO", skip_serializing_if = "Option::is_none")]
        pub scale_io: Option<Value>,
        #[serde(rename = "storageos", skip_serializing_if = "Option::is_none")]
        pub storage_os: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub csi: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ephemeral: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub image: Option<ImageVolumeSource>,
    }
}

k8s_struct! {
    /// `image` volume: the content of an OCI image, read-only.
    pub struct ImageVolumeSource {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub reference: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pull_policy: Option<String>,
    }
}

k8s_struct! {
    /// `serviceAccountToken` of a projected volume.
    pub struct ServiceAccountTokenProjection {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub audience: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub expiration_seconds: Option<i64>,
        pub path: String,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub user: Option<i64>,
    }
}

k8s_struct! {
    /// `emptyDir`: a fresh directory (or tmpfs with `medium: Memory`).
    pub struct EmptyDirVolumeSource {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub medium: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub size_limit: Option<Quantity>,
        /// The directory's permission bits (Kubernetes 1.37).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mode: Option<i32>,
    }
}

k8s_struct! {
    /// `hostPath`: a path of the host.
    pub struct HostPathVolumeSource {
        pub path: String,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub type_: Option<String>,
    }
}

k8s_struct! {
    /// `secret` volume.
    pub struct SecretVolumeSource {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret_name: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub items: Vec<KeyToPath>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_mode: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub optional: Option<bool>,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_user: Option<i64>,
    }
}

k8s_struct! {
    /// `configMap` volume.
    pub struct ConfigMapVolumeSource {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub items: Vec<KeyToPath>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_mode: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub optional: Option<bool>,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_user: Option<i64>,
    }
}

k8s_struct! {
    /// A key of a Secret or ConfigMap projected to a file.
    pub struct KeyToPath {
        pub key: String,
        pub path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mode: Option<i32>,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub user: Option<i64>,
    }
}

k8s_struct! {
    /// `persistentVolumeClaim` volume.
    pub struct PersistentVolumeClaimVolumeSource {
        pub claim_name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub read_only: Option<bool>,
    }
}

k8s_struct! {
    /// `downwardAPI` volume: Pod fields and container resources as files.
    #[allow(clippy::upper_case_acronyms)]
    pub struct DownwardAPIVolumeSource {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub items: Vec<DownwardAPIVolumeFile>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_mode: Option<i32>,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_user: Option<i64>,
    }
}

k8s_struct! {
    /// One file of a downwardAPI volume or projection.
    #[allow(clippy::upper_case_acronyms)]
    pub struct DownwardAPIVolumeFile {
        pub path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub field_ref: Option<super::types::ObjectFieldSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resource_field_ref: Option<super::types::ResourceFieldSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mode: Option<i32>,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub user: Option<i64>,
    }
}

k8s_struct! {
    /// `projected` volume: several sources in one directory.
    pub struct ProjectedVolumeSource {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub sources: Vec<VolumeProjection>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_mode: Option<i32>,
        /// Alpha (`AtomicWriteVolumeUserFields`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub default_user: Option<i64>,
    }
}

k8s_struct! {
    /// One source of a projected volume.
    pub struct VolumeProjection {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret: Option<KeyProjection>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub config_map: Option<KeyProjection>,
        #[serde(skip_serializing_if = "Option::is_none")]
        #[serde(rename = "downwardAPI")]
        pub downward_api: Option<DownwardAPIProjection>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service_account_token: Option<ServiceAccountTokenProjection>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub cluster_trust_bundle: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pod_certificate: Option<Value>,
    }
}

k8s_struct! {
    /// The `secret` or `configMap` of a projected volume.
    pub struct KeyProjection {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub items: Vec<KeyToPath>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub optional: Option<bool>,
    }
}

k8s_struct! {
    /// The `downwardAPI` of a projected volume.
    #[allow(clippy::upper_case_acronyms)]
    pub struct DownwardAPIProjection {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub items: Vec<DownwardAPIVolumeFile>,
    }
}
