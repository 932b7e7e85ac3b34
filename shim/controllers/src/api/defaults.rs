//! Defaults of the workload kinds (`pkg/apis/apps/v1/defaults.go`, `pkg/apis/batch/v1/defaults.go`)
//! and of their Pod templates (podshim-kube's Pod defaults, as the API server defaults a
//! `PodTemplateSpec` with the same functions as a Pod).

use podshim_kube::manifest::{self, IntOrString, LabelSelector, Pod};

use super::{
    CronJob, DaemonSet, DaemonSetUpdateStrategy, Deployment, DeploymentStrategy, JobSpec,
    PodTemplateSpec, ReplicaSet, RollingUpdate, Workload,
};

/// The label a Job's generated selector uses (`batch.kubernetes.io/controller-uid`).
pub const JOB_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
/// The label with the Job's name on its Pods.
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";

/// Defaults of one object; `uid` is the object's (a Job's generated selector needs it).
pub fn apply(w: &mut Workload) {
    if w.metadata().namespace.as_deref().unwrap_or("").is_empty() {
        w.metadata_mut().namespace = Some("default".into());
    }
    let ns = w.namespace().to_string();
    match w {
        Workload::Deployment(d) => deployment(d, &ns),
        Workload::ReplicaSet(r) => replica_set(r, &ns),
        Workload::DaemonSet(d) => daemon_set(d, &ns),
        Workload::Job(j) => {
            let uid = j.metadata.uid.clone().unwrap_or_default();
            job_spec(&mut j.spec, &j.metadata.name, &uid, &ns)
        }
        Workload::CronJob(c) => cron_job(c, &ns),
    }
}

fn deployment(d: &mut Deployment, ns: &str) {
    let s = &mut d.spec;
    s.replicas.get_or_insert(1);
    let strategy = s.strategy.get_or_insert_with(DeploymentStrategy::default);
    let kind = strategy.kind.get_or_insert_with(|| "RollingUpdate".into());
    if kind == "RollingUpdate" {
        let ru = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdate::default);
        ru.max_unavailable
            .get_or_insert_with(|| IntOrString::String("25%".into()));
        ru.max_surge
            .get_or_insert_with(|| IntOrString::String("25%".into()));
    }
    s.revision_history_limit.get_or_insert(10);
    s.progress_deadline_seconds.get_or_insert(600);
    template(&mut s.template, ns);
}

fn replica_set(r: &mut ReplicaSet, ns: &str) {
    r.spec.replicas.get_or_insert(1);
    template(&mut r.spec.template, ns);
}

fn daemon_set(d: &mut DaemonSet, ns: &str) {
    let s = &mut d.spec;
    let st = s
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    let kind = st.kind.get_or_insert_with(|| "RollingUpdate".into());
    if kind == "RollingUpdate" {
        let ru = st.rolling_update.get_or_insert_with(RollingUpdate::default);
        ru.max_unavailable.get_or_insert(IntOrString::Int(1));
        ru.max_surge.get_or_insert(IntOrString::Int(0));
    }
    s.revision_history_limit.get_or_insert(10);
    template(&mut s.template, ns);
}

/// `SetDefaults_Job`, with the selector the API server generates when `manualSelector` is not
/// set (`generateSelector` in the Job strategy): the Job's uid as a label of selector and
/// template.
pub fn job_spec(s: &mut JobSpec, name: &str, uid: &str, ns: &str) {
    if s.completions.is_none() && s.parallelism.is_none() {
        s.completions = Some(1);
    }
    s.parallelism.get_or_insert(1);
    if s.backoff_limit.is_none() {
        s.backoff_limit = Some(if s.backoff_limit_per_index.is_some() {
            i32::MAX
        } else {
            6
        });
    }
    s.completion_mode.get_or_insert_with(|| "NonIndexed".into());
    s.suspend.get_or_insert(false);
    s.manual_selector.get_or_insert(false);
    // A Pod failure policy needs terminal Pods to judge, so replacements wait for them.
    let replacement = if s.pod_failure_policy.is_some() {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    s.pod_replacement_policy
        .get_or_insert_with(|| replacement.into());
    if let Some(p) = &mut s.pod_failure_policy {
        for pattern in p
            .rules
            .iter_mut()
            .flat_map(|r| r.on_pod_conditions.iter_mut())
        {
            if pattern.status.is_empty() {
                pattern.status = "True".into();
            }
        }
    }
    if s.manual_selector != Some(true) && !uid.is_empty() {
        let labels = &mut s.template.metadata.labels;
        labels.insert(JOB_UID_LABEL.into(), uid.into());
        labels.insert(JOB_NAME_LABEL.into(), name.into());
        labels.insert("controller-uid".into(), uid.into());
        labels.insert("job-name".into(), name.into());
        let mut sel = LabelSelector::default();
        sel.match_labels.insert(JOB_UID_LABEL.into(), uid.into());
        s.selector = Some(sel);
    }
    template(&mut s.template, ns);
}

fn cron_job(c: &mut CronJob, ns: &str) {
    let s = &mut c.spec;
    s.concurrency_policy.get_or_insert_with(|| "Allow".into());
    s.suspend.get_or_insert(false);
    s.successful_jobs_history_limit.get_or_insert(3);
    s.failed_jobs_history_limit.get_or_insert(1);
    // The Job's selector is generated when each Job is made (it needs the Job's uid).
    let jt = &mut s.job_template.spec;
    if jt.completions.is_none() && jt.parallelism.is_none() {
        jt.completions = Some(1);
    }
    jt.parallelism.get_or_insert(1);
    jt.backoff_limit.get_or_insert(6);
    jt.completion_mode
        .get_or_insert_with(|| "NonIndexed".into());
    jt.suspend.get_or_insert(false);
    template(&mut jt.template, ns);
}

/// The Pod defaults on a template (`SetDefaults_PodSpec` and the container defaults run on a
/// `PodTemplateSpec` as on a Pod).
pub fn template(t: &mut PodTemplateSpec, ns: &str) {
    let mut pod = as_pod(t, ns, "template");
    manifest::defaults::apply(&mut pod);
    t.spec = pod.spec;
}

/// The template as a Pod named `name` (for defaulting, validation and the Pods made from it).
pub fn as_pod(t: &PodTemplateSpec, ns: &str, name: &str) -> Pod {
    let mut metadata = t.metadata.clone();
    metadata.name = name.into();
    metadata.namespace = Some(ns.into());
    Pod {
        api_version: "v1".into(),
        kind: "Pod".into(),
        metadata,
        spec: t.spec.clone(),
        status: None,
    }
}
