//! Kubernetes `v1` Pod types as podshim decodes them: every field Kubernetes has, strict (unknown fields rejected).
//!
//! Field names follow `k8s.io/api/core/v1` (JSON camelCase, Rust snake_case). Parts podshim does not
//! model in detail are `serde_json::Value`, so a valid Kubernetes field is still recognised (and can be
//! gated as "not supported by podshim yet") rather than reported as unknown.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use super::quantity::{IntOrString, Quantity};
pub use super::scheduling_types::*;
pub use super::volume_types::*;

type Map = BTreeMap<String, String>;

/// Declares a struct with the derives and serde attributes every manifest type shares.
macro_rules! k8s_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields, default)]
        pub struct $name { $($body)* }
    };
}
pub(crate) use k8s_struct;

k8s_struct! {
    /// A `v1` Pod.
    pub struct Pod {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: PodSpec,
        /// Accepted (e.g. from `kubectl get -o yaml`) and dropped.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

k8s_struct! {
    /// `metadata` of an object.
    pub struct ObjectMeta {
        #[serde(skip_serializing_if = "String::is_empty")]
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub generate_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub self_link: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub uid: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resource_version: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub generation: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub creation_timestamp: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub deletion_timestamp: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub deletion_grace_period_seconds: Option<i64>,
        #[serde(skip_serializing_if = "Map::is_empty")]
        pub labels: Map,
        #[serde(skip_serializing_if = "Map::is_empty")]
        pub annotations: Map,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub owner_references: Vec<Value>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub finalizers: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub managed_fields: Vec<Value>,
    }
}

k8s_struct! {
    /// `spec` of a Pod.
    pub struct PodSpec {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub volumes: Vec<Volume>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub init_containers: Vec<Container>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub containers: Vec<Container>,
        /// Cannot be set when a Pod is created (`kubectl debug` adds them later).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub ephemeral_containers: Vec<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restart_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub termination_grace_period_seconds: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub active_deadline_seconds: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub dns_policy: Option<String>,
        #[serde(skip_serializing_if = "Map::is_empty")]
        pub node_selector: Map,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service_account_name: Option<String>,
        /// Deprecated alias of `serviceAccountName`.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service_account: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub automount_service_account_token: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub node_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub host_network: Option<bool>,
        #[serde(rename = "hostPID", skip_serializing_if = "Option::is_none")]
        pub host_pid: Option<bool>,
        #[serde(rename = "hostIPC", skip_serializing_if = "Option::is_none")]
        pub host_ipc: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub share_process_namespace: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub security_context: Option<PodSecurityContext>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub image_pull_secrets: Vec<LocalObjectReference>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub hostname: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub hostname_override: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub subdomain: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub affinity: Option<Affinity>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub scheduler_name: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub tolerations: Vec<Toleration>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub host_aliases: Vec<HostAlias>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub priority_class_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub priority: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub dns_config: Option<PodDNSConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub readiness_gates: Vec<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub runtime_class_name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub enable_service_links: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub preemption_policy: Option<String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub overhead: BTreeMap<String, Quantity>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
        #[serde(rename = "setHostnameAsFQDN", skip_serializing_if = "Option::is_none")]
        pub set_hostname_as_fqdn: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub os: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub host_users: Option<bool>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub scheduling_gates: Vec<PodSchedulingGate>,
        /// Alpha in Kubernetes 1.37 (eviction requests).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub eviction_responders: Vec<Value>,
        /// Alpha in Kubernetes 1.37 (gang scheduling).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub scheduling_group: Option<Value>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub resource_claims: Vec<Value>,
        /// Pod-level resources (Kubernetes 1.32+).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resources: Option<ResourceRequirements>,
    }
}

k8s_struct! {
    /// A container (regular or init).
    pub struct Container {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub image: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub command: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub args: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub working_dir: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub ports: Vec<ContainerPort>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub env_from: Vec<EnvFromSource>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub env: Vec<EnvVar>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resources: Option<ResourceRequirements>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub resize_policy: Vec<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub restart_policy: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub restart_policy_rules: Vec<Value>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub volume_mounts: Vec<VolumeMount>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub volume_devices: Vec<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub liveness_probe: Option<Probe>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub readiness_probe: Option<Probe>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub startup_probe: Option<Probe>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub lifecycle: Option<Lifecycle>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub termination_message_path: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub termination_message_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub image_pull_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub security_context: Option<SecurityContext>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stdin: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stdin_once: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tty: Option<bool>,
    }
}

k8s_struct! {
    /// A port a container exposes.
    pub struct ContainerPort {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub host_port: Option<i32>,
        pub container_port: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub protocol: Option<String>,
        #[serde(rename = "hostIP", skip_serializing_if = "Option::is_none")]
        pub host_ip: Option<String>,
    }
}

k8s_struct! {
    /// An environment variable.
    pub struct EnvVar {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value_from: Option<EnvVarSource>,
    }
}

k8s_struct! {
    /// Where an environment variable's value comes from.
    pub struct EnvVarSource {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub field_ref: Option<ObjectFieldSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub resource_field_ref: Option<ResourceFieldSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub config_map_key_ref: Option<KeySelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret_key_ref: Option<KeySelector>,
        /// Alpha in Kubernetes 1.34 (`EnvFiles`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub file_key_ref: Option<Value>,
    }
}

k8s_struct! {
    /// `fieldRef`: a field of the Pod (downward API).
    pub struct ObjectFieldSelector {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub api_version: Option<String>,
        pub field_path: String,
    }
}

k8s_struct! {
    /// `resourceFieldRef`: a container's resource request or limit.
    pub struct ResourceFieldSelector {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub container_name: Option<String>,
        pub resource: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub divisor: Option<Quantity>,
    }
}

k8s_struct! {
    /// `configMapKeyRef` / `secretKeyRef`.
    pub struct KeySelector {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        pub key: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub optional: Option<bool>,
    }
}

k8s_struct! {
    /// One entry of `envFrom`.
    pub struct EnvFromSource {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub prefix: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub config_map_ref: Option<NameRef>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub secret_ref: Option<NameRef>,
    }
}

k8s_struct! {
    /// `configMapRef` / `secretRef` of `envFrom`.
    pub struct NameRef {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub optional: Option<bool>,
    }
}

k8s_struct! {
    /// `resources` of a container (or of the Pod).
    pub struct ResourceRequirements {
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub limits: BTreeMap<String, Quantity>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        pub requests: BTreeMap<String, Quantity>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub claims: Vec<Value>,
    }
}

k8s_struct! {
    /// A mount of a Pod volume into a container.
    pub struct VolumeMount {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub read_only: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub recursive_read_only: Option<String>,
        pub mount_path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sub_path: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mount_propagation: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sub_path_expr: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub bind_mount_options: Vec<String>,
    }
}

k8s_struct! {
    /// A liveness, readiness or startup probe.
    pub struct Probe {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub exec: Option<ExecAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub http_get: Option<HTTPGetAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tcp_socket: Option<TCPSocketAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub grpc: Option<GRPCAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub initial_delay_seconds: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub timeout_seconds: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub period_seconds: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub success_threshold: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub failure_threshold: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub termination_grace_period_seconds: Option<i64>,
    }
}

k8s_struct! {
    /// `exec`: a command run inside the container.
    pub struct ExecAction {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub command: Vec<String>,
    }
}

k8s_struct! {
    /// `httpGet`: an HTTP GET against the Pod.
    #[allow(clippy::upper_case_acronyms)]
    pub struct HTTPGetAction {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub path: Option<String>,
        pub port: IntOrString,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub host: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub scheme: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub http_headers: Vec<HTTPHeader>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub protocol: Option<String>,
    }
}

k8s_struct! {
    /// A header sent with an `httpGet`.
    #[allow(clippy::upper_case_acronyms)]
    pub struct HTTPHeader {
        pub name: String,
        pub value: String,
    }
}

k8s_struct! {
    /// `tcpSocket`: a TCP connect to the Pod.
    #[allow(clippy::upper_case_acronyms)]
    pub struct TCPSocketAction {
        pub port: IntOrString,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub host: Option<String>,
    }
}

k8s_struct! {
    /// `grpc`: a gRPC health check.
    #[allow(clippy::upper_case_acronyms)]
    pub struct GRPCAction {
        pub port: i32,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub service: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub mode: Option<String>,
    }
}

k8s_struct! {
    /// `lifecycle` hooks of a container.
    pub struct Lifecycle {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub post_start: Option<LifecycleHandler>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pre_stop: Option<LifecycleHandler>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub stop_signal: Option<String>,
    }
}

k8s_struct! {
    /// `postStart` / `preStop`.
    pub struct LifecycleHandler {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub exec: Option<ExecAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub http_get: Option<HTTPGetAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub tcp_socket: Option<TCPSocketAction>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub sleep: Option<SleepAction>,
    }
}

k8s_struct! {
    /// `sleep` hook action.
    pub struct SleepAction {
        pub seconds: i64,
    }
}

k8s_struct! {
    /// `securityContext` of a container.
    pub struct SecurityContext {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub capabilities: Option<Capabilities>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub privileged: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub se_linux_options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub windows_options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_as_user: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_as_group: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_as_non_root: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub read_only_root_filesystem: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub allow_privilege_escalation: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub proc_mount: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub seccomp_profile: Option<SecurityProfile>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub app_armor_profile: Option<SecurityProfile>,
    }
}

k8s_struct! {
    /// Linux capabilities to add and drop.
    pub struct Capabilities {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub add: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub drop: Vec<String>,
    }
}

k8s_struct! {
    /// `securityContext` of the Pod.
    pub struct PodSecurityContext {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub se_linux_options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub windows_options: Option<Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_as_user: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_as_group: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub run_as_non_root: Option<bool>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub supplemental_groups: Vec<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub supplemental_groups_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fs_group: Option<i64>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub sysctls: Vec<Sysctl>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub fs_group_change_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub seccomp_profile: Option<SecurityProfile>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub app_armor_profile: Option<SecurityProfile>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub se_linux_change_policy: Option<String>,
    }
}

k8s_struct! {
    /// `seccompProfile` or `appArmorProfile`: `RuntimeDefault`, `Unconfined`, or `Localhost` with
    /// the profile's name (a file under the seccomp root; a loaded AppArmor profile).
    pub struct SecurityProfile {
        #[serde(rename = "type")]
        pub type_: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub localhost_profile: Option<String>,
    }
}

k8s_struct! {
    /// A namespaced sysctl.
    pub struct Sysctl {
        pub name: String,
        pub value: String,
    }
}

k8s_struct! {
    /// `dnsConfig` of the Pod.
    #[allow(clippy::upper_case_acronyms)]
    pub struct PodDNSConfig {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub nameservers: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub searches: Vec<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub options: Vec<PodDNSConfigOption>,
    }
}

k8s_struct! {
    /// One resolver option.
    #[allow(clippy::upper_case_acronyms)]
    pub struct PodDNSConfigOption {
        pub name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub value: Option<String>,
    }
}

k8s_struct! {
    /// An `/etc/hosts` entry.
    pub struct HostAlias {
        pub ip: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub hostnames: Vec<String>,
    }
}

/// `spec.restartPolicy`, after defaulting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// `imagePullPolicy`, after defaulting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl Pod {
    /// `metadata.name`.
    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `metadata.namespace`, `default` when unset.
    pub fn namespace(&self) -> &str {
        match self.metadata.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => "default",
        }
    }
}

impl PodSpec {
    /// The Pod's restart policy (`Always` when unset or unknown: validation rejects unknown ones).
    pub fn restart_policy(&self) -> RestartPolicy {
        match self.restart_policy.as_deref() {
            Some("OnFailure") => RestartPolicy::OnFailure,
            Some("Never") => RestartPolicy::Never,
            _ => RestartPolicy::Always,
        }
    }
}

impl Container {
    /// The image pull policy, derived from the image tag when unset (as defaulting does).
    pub fn pull_policy(&self) -> PullPolicy {
        let policy = match self.image_pull_policy.as_deref() {
            Some(p) => p.to_string(),
            None => super::defaults::default_pull_policy(self.image.as_deref().unwrap_or("")),
        };
        match policy.as_str() {
            "Always" => PullPolicy::Always,
            "Never" => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        }
    }
}
