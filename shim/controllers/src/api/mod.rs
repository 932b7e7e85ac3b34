//! The workload API objects podshim keeps: `apps/v1` Deployment, ReplicaSet and DaemonSet,
//! `batch/v1` Job and CronJob, typed as `k8s.io/api` has them and decoded strictly (an unknown
//! field is an error with its path), with the Pod template's spec being podshim-kube's `PodSpec`.

pub mod defaults;
pub mod job_policy;
pub mod parse;
pub mod validate;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use podshim_kube::manifest::{IntOrString, LabelSelector, ObjectMeta, PodSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Declares a struct with the derives and serde attributes every API type shares (as the Pod
/// types of podshim-kube: camelCase, unknown fields refused, every field optional).
macro_rules! api_struct {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields, default)]
        pub struct $name { $($body)* }
    };
}

api_struct! {
    /// `spec.template` of a workload: the cookie cutter its Pods are made from.
    pub struct PodTemplateSpec {
        pub metadata: ObjectMeta,
        pub spec: PodSpec,
    }
}

api_struct! {
    /// An `apps/v1` ReplicaSet.
    pub struct ReplicaSet {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: ReplicaSetSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

api_struct! {
    pub struct ReplicaSetSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replicas: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub min_ready_seconds: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<LabelSelector>,
        pub template: PodTemplateSpec,
    }
}

api_struct! {
    /// An `apps/v1` Deployment.
    pub struct Deployment {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: DeploymentSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

api_struct! {
    pub struct DeploymentSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub replicas: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<LabelSelector>,
        pub template: PodTemplateSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub strategy: Option<DeploymentStrategy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub min_ready_seconds: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub revision_history_limit: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub paused: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub progress_deadline_seconds: Option<i32>,
    }
}

api_struct! {
    pub struct DeploymentStrategy {
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rolling_update: Option<RollingUpdate>,
    }
}

api_struct! {
    /// `rollingUpdate` of a Deployment or a DaemonSet.
    pub struct RollingUpdate {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_unavailable: Option<IntOrString>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_surge: Option<IntOrString>,
    }
}

api_struct! {
    /// An `apps/v1` DaemonSet: on this one node, one Pod.
    pub struct DaemonSet {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: DaemonSetSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

api_struct! {
    pub struct DaemonSetSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<LabelSelector>,
        pub template: PodTemplateSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub update_strategy: Option<DaemonSetUpdateStrategy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub min_ready_seconds: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub revision_history_limit: Option<i32>,
    }
}

api_struct! {
    pub struct DaemonSetUpdateStrategy {
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub rolling_update: Option<RollingUpdate>,
    }
}

api_struct! {
    /// A `batch/v1` Job.
    pub struct Job {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: JobSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

api_struct! {
    pub struct JobSpec {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub parallelism: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completions: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub active_deadline_seconds: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub backoff_limit: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub backoff_limit_per_index: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub max_failed_indexes: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pod_failure_policy: Option<PodFailurePolicy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub success_policy: Option<SuccessPolicy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub selector: Option<LabelSelector>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub manual_selector: Option<bool>,
        pub template: PodTemplateSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub ttl_seconds_after_finished: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub completion_mode: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub suspend: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub pod_replacement_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub managed_by: Option<String>,
    }
}

api_struct! {
    /// `spec.podFailurePolicy` of a Job: how a failed Pod counts, by its exit codes or
    /// conditions, first matching rule first.
    pub struct PodFailurePolicy {
        pub rules: Vec<PodFailurePolicyRule>,
    }
}

api_struct! {
    pub struct PodFailurePolicyRule {
        /// FailJob, FailIndex, Ignore or Count.
        pub action: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub on_exit_codes: Option<OnExitCodes>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        pub on_pod_conditions: Vec<OnPodConditionsPattern>,
    }
}

api_struct! {
    pub struct OnExitCodes {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub container_name: Option<String>,
        /// In or NotIn.
        pub operator: String,
        pub values: Vec<i32>,
    }
}

api_struct! {
    pub struct OnPodConditionsPattern {
        #[serde(rename = "type")]
        pub kind: String,
        /// True (the default), False or Unknown.
        pub status: String,
    }
}

api_struct! {
    /// `spec.successPolicy` of an Indexed Job: the Job succeeds as soon as one rule holds.
    pub struct SuccessPolicy {
        pub rules: Vec<SuccessPolicyRule>,
    }
}

api_struct! {
    pub struct SuccessPolicyRule {
        /// Indexes as `completedIndexes` writes them (`0-2,5`).
        #[serde(skip_serializing_if = "Option::is_none")]
        pub succeeded_indexes: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub succeeded_count: Option<i32>,
    }
}

api_struct! {
    /// A `batch/v1` CronJob.
    pub struct CronJob {
        pub api_version: String,
        pub kind: String,
        pub metadata: ObjectMeta,
        pub spec: CronJobSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub status: Option<Value>,
    }
}

api_struct! {
    pub struct CronJobSpec {
        pub schedule: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub time_zone: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub starting_deadline_seconds: Option<i64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub concurrency_policy: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub suspend: Option<bool>,
        pub job_template: JobTemplateSpec,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub successful_jobs_history_limit: Option<i32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub failed_jobs_history_limit: Option<i32>,
    }
}

api_struct! {
    pub struct JobTemplateSpec {
        pub metadata: ObjectMeta,
        pub spec: JobSpec,
    }
}

/// The workload kinds, with what kubectl calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Deployment,
    ReplicaSet,
    DaemonSet,
    Job,
    CronJob,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Deployment,
        Kind::ReplicaSet,
        Kind::DaemonSet,
        Kind::Job,
        Kind::CronJob,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::ReplicaSet => "ReplicaSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::Job => "Job",
            Kind::CronJob => "CronJob",
        }
    }

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet => "apps/v1",
            Kind::Job | Kind::CronJob => "batch/v1",
        }
    }

    /// The resource name (`deployments`), as the API server and the store name it.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::ReplicaSet => "replicasets",
            Kind::DaemonSet => "daemonsets",
            Kind::Job => "jobs",
            Kind::CronJob => "cronjobs",
        }
    }

    /// `deployments.apps` as in the API server's messages.
    pub fn resource(self) -> String {
        let group = self.api_version().split('/').next().unwrap_or_default();
        format!("{}.{group}", self.plural())
    }

    /// `deployment.apps`, as kubectl names an object's type in its output.
    pub fn typed(self) -> String {
        let group = self.api_version().split('/').next().unwrap_or_default();
        format!("{}.{group}", self.name().to_ascii_lowercase())
    }

    /// A kind from what kubectl accepts: `deploy`, `deployment`, `deployments`,
    /// `deployments.apps`, any case.
    pub fn from_arg(s: &str) -> Option<Kind> {
        let s = s.to_ascii_lowercase();
        let s = s.split('.').next().unwrap_or_default();
        Some(match s {
            "deploy" | "deployment" | "deployments" => Kind::Deployment,
            "rs" | "replicaset" | "replicasets" => Kind::ReplicaSet,
            "ds" | "daemonset" | "daemonsets" => Kind::DaemonSet,
            "job" | "jobs" => Kind::Job,
            "cj" | "cronjob" | "cronjobs" => Kind::CronJob,
            _ => return None,
        })
    }

    pub fn from_name(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// An owner reference as the controllers write them (`metav1.OwnerReference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default)]
    pub controller: Option<bool>,
    #[serde(default)]
    pub block_owner_deletion: Option<bool>,
}

impl OwnerReference {
    /// The controller reference to an object (`metav1.NewControllerRef`).
    pub fn controller_of(kind: Kind, meta: &ObjectMeta) -> OwnerReference {
        OwnerReference {
            api_version: kind.api_version().into(),
            kind: kind.name().into(),
            name: meta.name.clone(),
            uid: meta.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The controller reference among an object's owner references (`metav1.GetControllerOf`).
pub fn controller_of(owners: &[Value]) -> Option<OwnerReference> {
    owners
        .iter()
        .filter_map(|o| serde_json::from_value::<OwnerReference>(o.clone()).ok())
        .find(|o| o.controller == Some(true))
}

/// Labels as `BTreeMap`, the type of `ObjectMeta::labels`.
pub type Labels = BTreeMap<String, String>;

/// One workload object of any kind. (Unboxed: objects are handled a few at a time, and the
/// kinds differ in size only by a CronJob's Job template.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Deployment(Deployment),
    ReplicaSet(ReplicaSet),
    DaemonSet(DaemonSet),
    Job(Job),
    CronJob(CronJob),
}

impl Workload {
    pub fn kind(&self) -> Kind {
        match self {
            Workload::Deployment(_) => Kind::Deployment,
            Workload::ReplicaSet(_) => Kind::ReplicaSet,
            Workload::DaemonSet(_) => Kind::DaemonSet,
            Workload::Job(_) => Kind::Job,
            Workload::CronJob(_) => Kind::CronJob,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Workload::Deployment(o) => &o.metadata,
            Workload::ReplicaSet(o) => &o.metadata,
            Workload::DaemonSet(o) => &o.metadata,
            Workload::Job(o) => &o.metadata,
            Workload::CronJob(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Workload::Deployment(o) => &mut o.metadata,
            Workload::ReplicaSet(o) => &mut o.metadata,
            Workload::DaemonSet(o) => &mut o.metadata,
            Workload::Job(o) => &mut o.metadata,
            Workload::CronJob(o) => &mut o.metadata,
        }
    }

    pub fn namespace(&self) -> &str {
        self.metadata().namespace.as_deref().unwrap_or("default")
    }

    pub fn name(&self) -> &str {
        &self.metadata().name
    }

    /// The object as JSON (what the store keeps).
    pub fn to_value(&self) -> Value {
        let v = match self {
            Workload::Deployment(o) => serde_json::to_value(o),
            Workload::ReplicaSet(o) => serde_json::to_value(o),
            Workload::DaemonSet(o) => serde_json::to_value(o),
            Workload::Job(o) => serde_json::to_value(o),
            Workload::CronJob(o) => serde_json::to_value(o),
        };
        v.unwrap_or_default()
    }

    /// An object the store kept (it was valid when stored).
    pub fn from_value(kind: Kind, v: Value) -> Result<Workload, serde_json::Error> {
        Ok(match kind {
            Kind::Deployment => Workload::Deployment(serde_json::from_value(v)?),
            Kind::ReplicaSet => Workload::ReplicaSet(serde_json::from_value(v)?),
            Kind::DaemonSet => Workload::DaemonSet(serde_json::from_value(v)?),
            Kind::Job => Workload::Job(serde_json::from_value(v)?),
            Kind::CronJob => Workload::CronJob(serde_json::from_value(v)?),
        })
    }

    /// The part of the spec `apply` compares: an unchanged spec keeps the generation.
    pub fn spec_value(&self) -> Value {
        self.to_value()["spec"].clone()
    }
}
