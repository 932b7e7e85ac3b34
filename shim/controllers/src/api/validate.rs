//! Validation of the workload kinds as the API server does it (`pkg/apis/apps/validation`,
//! `pkg/apis/batch/validation`), on defaulted objects, with apimachinery's paths and wording.
//! The Pod template is validated as a Pod (podshim-kube) with its paths under `spec.template`,
//! and passes podshim's "not supported yet" gate as a Pod does.

use podshim_kube::manifest::{
    self, BadValue, ErrorKind, FieldError, FieldPath, IntOrString, LabelSelector,
};
use podshim_kube::schedule::selector;

use super::{defaults, DeploymentSpec, JobSpec, Labels, PodTemplateSpec, Workload};

/// Every problem of a defaulted object, and the gate's warnings for its template.
/// `raw` is the object as decoded (before defaults): the gate looks at what the user wrote.
pub fn validate(w: &Workload, raw: &serde_json::Value) -> (Vec<FieldError>, Vec<String>) {
    let meta = FieldPath::new("metadata");
    let mut errs = manifest::validate::validate_metadata(w.metadata(), &meta);
    let mut warnings = Vec::new();
    let spec = FieldPath::new("spec");
    let ns = w.namespace().to_string();
    // The Pod template of every kind but CronJob: `spec.template`.
    let spec_template = |t: &PodTemplateSpec, warnings: &mut Vec<String>| {
        template(
            t,
            &ns,
            &spec.child("template"),
            raw.pointer("/spec/template"),
            warnings,
        )
    };
    match w {
        Workload::Deployment(d) => {
            errs.extend(deployment(&d.spec, &spec));
            errs.extend(spec_template(&d.spec.template, &mut warnings));
        }
        Workload::ReplicaSet(r) => {
            let s = &r.spec;
            non_negative(&mut errs, &spec.child("replicas"), s.replicas);
            non_negative(
                &mut errs,
                &spec.child("minReadySeconds"),
                s.min_ready_seconds,
            );
            errs.extend(selector_and_labels(s.selector.as_ref(), &s.template, &spec));
            errs.extend(always(&s.template, &spec.child("template")));
            errs.extend(spec_template(&s.template, &mut warnings));
        }
        Workload::DaemonSet(d) => {
            let s = &d.spec;
            non_negative(
                &mut errs,
                &spec.child("minReadySeconds"),
                s.min_ready_seconds,
            );
            non_negative(
                &mut errs,
                &spec.child("revisionHistoryLimit"),
                s.revision_history_limit,
            );
            errs.extend(selector_and_labels(s.selector.as_ref(), &s.template, &spec));
            errs.extend(always(&s.template, &spec.child("template")));
            let us = spec.child("updateStrategy");
            if let Some(st) = &s.update_strategy {
                match st.kind.as_deref().unwrap_or("") {
                    "OnDelete" | "RollingUpdate" => {}
                    other => errs.push(FieldError::not_supported(
                        &us.child("type"),
                        other,
                        &["OnDelete", "RollingUpdate"],
                    )),
                }
                if let Some(ru) = &st.rolling_update {
                    errs.extend(rolling_update(ru, &us.child("rollingUpdate")));
                }
            }
            errs.extend(spec_template(&s.template, &mut warnings));
        }
        Workload::Job(j) => {
            errs.extend(job_spec(&j.spec, &spec, true));
            errs.extend(spec_template(&j.spec.template, &mut warnings));
        }
        Workload::CronJob(c) => {
            let s = &c.spec;
            if c.metadata.name.len() > 52 {
                errs.push(FieldError::invalid(
                    &meta.child("name"),
                    &c.metadata.name,
                    "must be no more than 52 characters",
                ));
            }
            if s.schedule.is_empty() {
                errs.push(FieldError::required(&spec.child("schedule"), ""));
            } else {
                // validateScheduleFormat: robfig's parser reads a TZ prefix, then the API
                // server refuses it (the timeZone field replaced it).
                if let Err(e) = crate::cron::parse_standard(&s.schedule) {
                    errs.push(FieldError::invalid(&spec.child("schedule"), &s.schedule, e));
                }
                if s.schedule.contains("TZ") {
                    errs.push(FieldError::invalid(
                        &spec.child("schedule"),
                        &s.schedule,
                        "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                    ));
                }
            }
            if let Some(tz) = &s.time_zone {
                if let Some(e) = time_zone(tz) {
                    errs.push(FieldError::invalid(&spec.child("timeZone"), tz, e));
                }
            }
            match s.concurrency_policy.as_deref().unwrap_or("") {
                "Allow" | "Forbid" | "Replace" => {}
                other => errs.push(FieldError::not_supported(
                    &spec.child("concurrencyPolicy"),
                    other,
                    &["Allow", "Forbid", "Replace"],
                )),
            }
            if let Some(d) = s.starting_deadline_seconds {
                if d < 0 {
                    errs.push(FieldError::invalid(
                        &spec.child("startingDeadlineSeconds"),
                        d,
                        "must be greater than or equal to 0",
                    ));
                }
            }
            for (v, f) in [
                (
                    s.successful_jobs_history_limit,
                    "successfulJobsHistoryLimit",
                ),
                (s.failed_jobs_history_limit, "failedJobsHistoryLimit"),
            ] {
                non_negative(&mut errs, &spec.child(f), v);
            }
            let jt = spec.child("jobTemplate").child("spec");
            errs.extend(job_spec(&s.job_template.spec, &jt, false));
            errs.extend(template(
                &s.job_template.spec.template,
                &ns,
                &jt.child("template"),
                raw.pointer("/spec/jobTemplate/spec/template"),
                &mut warnings,
            ));
        }
    }
    (errs, warnings)
}

/// The fields an update may not change (`ValidateImmutableField`).
pub fn validate_update(old: &Workload, new: &Workload) -> Vec<FieldError> {
    let sel = FieldPath::new("spec").child("selector");
    let mut errs = Vec::new();
    let mut immutable_selector = |a: &Option<LabelSelector>, b: &Option<LabelSelector>| {
        if a != b {
            errs.push(immutable(&sel, go_selector(b.as_ref())));
        }
    };
    match (old, new) {
        (Workload::Deployment(a), Workload::Deployment(b)) => {
            immutable_selector(&a.spec.selector, &b.spec.selector)
        }
        (Workload::ReplicaSet(a), Workload::ReplicaSet(b)) => {
            immutable_selector(&a.spec.selector, &b.spec.selector)
        }
        (Workload::DaemonSet(a), Workload::DaemonSet(b)) => {
            immutable_selector(&a.spec.selector, &b.spec.selector)
        }
        (Workload::Job(a), Workload::Job(b)) => {
            immutable_selector(&a.spec.selector, &b.spec.selector);
            let spec = FieldPath::new("spec");
            if a.spec.template != b.spec.template {
                errs.push(immutable(
                    &spec.child("template"),
                    "core.PodTemplateSpec{...}".into(),
                ));
            }
            if a.spec.completion_mode != b.spec.completion_mode {
                let v = b.spec.completion_mode.clone().unwrap_or_default();
                errs.push(immutable(&spec.child("completionMode"), format!("{v:?}")));
            }
            if a.spec.completions != b.spec.completions {
                let v = b.spec.completions.map_or("null".into(), |c| c.to_string());
                errs.push(immutable(&spec.child("completions"), v));
            }
        }
        _ => {}
    }
    errs
}

/// `<path>: Invalid value: <value>: field is immutable`, the value in Go's notation.
fn immutable(path: &FieldPath, go_value: String) -> FieldError {
    raw_invalid(path, go_value, "field is immutable")
}

/// An `Invalid` error whose value is already rendered (Go's `%#v` of a struct or map).
fn raw_invalid(path: &FieldPath, go_value: String, detail: &str) -> FieldError {
    FieldError {
        path: path.clone(),
        kind: ErrorKind::Invalid,
        value: BadValue::None,
        detail: format!("{go_value}: {detail}"),
    }
}

/// Go's `%#v` of a `map[string]string`.
pub fn go_map(m: &Labels) -> String {
    if m.is_empty() {
        return "map[string]string(nil)".into();
    }
    let items: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", items.join(", "))
}

/// Go's `%#v` of a `v1.LabelSelector`.
fn go_selector(s: Option<&LabelSelector>) -> String {
    let Some(s) = s else { return "null".into() };
    let exprs = if s.match_expressions.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_string()
    } else {
        let items: Vec<String> = s
            .match_expressions
            .iter()
            .map(|e| {
                let values: Vec<String> = e.values.iter().map(|v| format!("{v:?}")).collect();
                format!(
                    "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:[]string{{{}}}}}",
                    e.key,
                    e.operator,
                    values.join(", ")
                )
            })
            .collect();
        format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
    };
    format!(
        "v1.LabelSelector{{MatchLabels:{}, MatchExpressions:{exprs}}}",
        go_map(&s.match_labels)
    )
}

fn non_negative(errs: &mut Vec<FieldError>, path: &FieldPath, v: Option<i32>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        errs.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

fn deployment(s: &DeploymentSpec, spec: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    non_negative(&mut errs, &spec.child("replicas"), s.replicas);
    errs.extend(selector_and_labels(s.selector.as_ref(), &s.template, spec));
    errs.extend(always(&s.template, &spec.child("template")));
    let st = spec.child("strategy");
    if let Some(strategy) = &s.strategy {
        match strategy.kind.as_deref().unwrap_or("") {
            "Recreate" => {
                if strategy.rolling_update.is_some() {
                    errs.push(FieldError::forbidden(
                        &st.child("rollingUpdate"),
                        "may not be specified when strategy `type` is 'Recreate'",
                    ));
                }
            }
            "RollingUpdate" => match &strategy.rolling_update {
                None => errs.push(FieldError::required(
                    &st.child("rollingUpdate"),
                    "this should be defaulted and never be nil",
                )),
                Some(ru) => errs.extend(rolling_update(ru, &st.child("rollingUpdate"))),
            },
            other => errs.push(FieldError::not_supported(
                &st.child("type"),
                other,
                &["Recreate", "RollingUpdate"],
            )),
        }
    }
    non_negative(
        &mut errs,
        &spec.child("revisionHistoryLimit"),
        s.revision_history_limit,
    );
    non_negative(
        &mut errs,
        &spec.child("minReadySeconds"),
        s.min_ready_seconds,
    );
    if let Some(pd) = s.progress_deadline_seconds {
        non_negative(&mut errs, &spec.child("progressDeadlineSeconds"), Some(pd));
        if pd <= s.min_ready_seconds.unwrap_or(0) {
            errs.push(FieldError::invalid(
                &spec.child("progressDeadlineSeconds"),
                pd,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errs
}

/// `ValidateRollingUpdateDeployment` (and the DaemonSet's equivalent).
fn rolling_update(ru: &super::RollingUpdate, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mu = path.child("maxUnavailable");
    let ms = path.child("maxSurge");
    for (v, p) in [(&ru.max_unavailable, &mu), (&ru.max_surge, &ms)] {
        if let Some(v) = v {
            errs.extend(int_or_percent(v, p));
        }
    }
    let zero = |v: &Option<IntOrString>| v.as_ref().is_none_or(|v| percent_or_int(v) == Some(0));
    if zero(&ru.max_unavailable) && zero(&ru.max_surge) {
        let v = ru.max_unavailable.clone().unwrap_or_default();
        errs.push(FieldError::invalid(
            &mu,
            int_or_string_value(&v),
            "may not be 0 when `maxSurge` is 0",
        ));
    }
    errs
}

fn int_or_string_value(v: &IntOrString) -> BadValue {
    match v {
        IntOrString::Int(i) => BadValue::Int((*i).into()),
        IntOrString::String(s) => BadValue::Str(s.clone()),
    }
}

/// The number of an int or a `N%` string (None when it is neither).
fn percent_or_int(v: &IntOrString) -> Option<i64> {
    match v {
        IntOrString::Int(i) => Some((*i).into()),
        IntOrString::String(s) => s.strip_suffix('%')?.parse().ok(),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
fn int_or_percent(v: &IntOrString, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match v {
        IntOrString::Int(i) if *i < 0 => errs.push(FieldError::invalid(
            path,
            *i,
            "must be greater than or equal to 0",
        )),
        IntOrString::Int(_) => {}
        IntOrString::String(s) => {
            let digits = s
                .strip_suffix('%')
                .filter(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()));
            match digits.and_then(|d| d.parse::<i64>().ok()) {
                None => errs.push(FieldError::invalid(
                    path,
                    s,
                    "a valid percent string must be a numeric string followed by an ending '%' \
                     (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                )),
                Some(n) if n > 100 => errs.push(FieldError::invalid(
                    path,
                    s,
                    "must not be greater than 100%",
                )),
                Some(_) => {}
            }
        }
    }
    errs
}

/// The selector is required, valid, not empty, and matches the template's labels
/// (`ValidateReplicaSetSpec` / `ValidatePodTemplateSpecForReplicaSet`).
fn selector_and_labels(
    sel: Option<&LabelSelector>,
    t: &PodTemplateSpec,
    spec: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sp = spec.child("selector");
    let Some(sel) = sel else {
        errs.push(FieldError::required(&sp, ""));
        return errs;
    };
    errs.extend(manifest::validate::label_selector(sel, &sp));
    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        errs.push(raw_invalid(
            &sp,
            go_selector(Some(sel)),
            "empty selector is invalid for deployment",
        ));
    } else if !selector::label_selector(Some(sel), &t.metadata.labels) {
        errs.push(raw_invalid(
            &spec.child("template").child("metadata").child("labels"),
            go_map(&t.metadata.labels),
            "`selector` does not match template `labels`",
        ));
    }
    errs
}

/// A ReplicaSet's, Deployment's or DaemonSet's Pods run forever: `restartPolicy: Always`, no
/// `activeDeadlineSeconds`.
fn always(t: &PodTemplateSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rp = t.spec.restart_policy.as_deref().unwrap_or("");
    if rp != "Always" {
        errs.push(FieldError::not_supported(
            &path.child("spec").child("restartPolicy"),
            rp,
            &["Always"],
        ));
    }
    if t.spec.active_deadline_seconds.is_some() {
        errs.push(FieldError::forbidden(
            &path.child("spec").child("activeDeadlineSeconds"),
            "activeDeadlineSeconds in ReplicaSet is not Supported",
        ));
    }
    errs
}

/// `ValidateJobSpec`; `with_selector`: the selector has been generated (a Job, not a
/// CronJob's template).
fn job_spec(s: &JobSpec, spec: &FieldPath, with_selector: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    non_negative(&mut errs, &spec.child("parallelism"), s.parallelism);
    non_negative(&mut errs, &spec.child("completions"), s.completions);
    non_negative(&mut errs, &spec.child("backoffLimit"), s.backoff_limit);
    non_negative(
        &mut errs,
        &spec.child("ttlSecondsAfterFinished"),
        s.ttl_seconds_after_finished,
    );
    if let Some(ads) = s.active_deadline_seconds.filter(|a| *a < 0) {
        errs.push(FieldError::invalid(
            &spec.child("activeDeadlineSeconds"),
            ads,
            "must be greater than or equal to 0",
        ));
    }
    match s.completion_mode.as_deref().unwrap_or("") {
        "NonIndexed" => {}
        "Indexed" => {
            if s.completions.is_none() {
                errs.push(FieldError::required(
                    &spec.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            &spec.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if with_selector {
        match &s.selector {
            None => errs.push(FieldError::required(&spec.child("selector"), "")),
            Some(sel) => {
                errs.extend(manifest::validate::label_selector(
                    sel,
                    &spec.child("selector"),
                ));
                if !selector::label_selector(Some(sel), &s.template.metadata.labels) {
                    errs.push(raw_invalid(
                        &spec.child("template").child("metadata").child("labels"),
                        go_map(&s.template.metadata.labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        }
    }
    if let Some(p) = &s.pod_failure_policy {
        errs.extend(super::job_policy::pod_failure_policy(
            s,
            p,
            &spec.child("podFailurePolicy"),
        ));
    }
    if let Some(p) = &s.success_policy {
        errs.extend(super::job_policy::success_policy(
            s,
            p,
            &spec.child("successPolicy"),
        ));
    }
    let rp = s.template.spec.restart_policy.as_deref().unwrap_or("");
    let rp_path = spec.child("template").child("spec").child("restartPolicy");
    if !matches!(rp, "OnFailure" | "Never") {
        errs.push(FieldError::not_supported(
            &rp_path,
            rp,
            &["OnFailure", "Never"],
        ));
    } else if s.pod_failure_policy.is_some() && rp != "Never" {
        errs.push(FieldError::invalid(
            &rp_path,
            rp,
            "only \"Never\" is supported when podFailurePolicy is specified",
        ));
    }
    let not_yet = "not supported by podshim yet";
    for (set, field) in [
        (s.backoff_limit_per_index.is_some(), "backoffLimitPerIndex"),
        (s.max_failed_indexes.is_some(), "maxFailedIndexes"),
        (s.managed_by.is_some(), "managedBy"),
    ] {
        if set {
            errs.push(FieldError::forbidden(&spec.child(field), not_yet));
        }
    }
    errs
}

/// The template as a Pod: Kubernetes' Pod validation and podshim's gate, paths under `path`.
/// The Pod's name and namespace are the controller's to choose, so their errors are dropped.
fn template(
    t: &PodTemplateSpec,
    ns: &str,
    path: &FieldPath,
    raw: Option<&serde_json::Value>,
    warnings: &mut Vec<String>,
) -> Vec<FieldError> {
    let pod = defaults::as_pod(t, ns, "template");
    let mut errs: Vec<FieldError> = manifest::validate::validate_pod(&pod)
        .into_iter()
        .filter(|e| !matches!(e.path.as_str(), "metadata.name" | "metadata.namespace"))
        .collect();
    let raw = raw.cloned().unwrap_or_default();
    let value = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": raw.get("metadata").cloned().unwrap_or_default(),
        "spec": raw.get("spec").cloned().unwrap_or_default(),
    });
    let (gate, w) = manifest::unsupported::check(&value);
    errs.extend(gate);
    warnings.extend(w.into_iter().map(|w| format!("{path}.{w}")));
    for e in errs.iter_mut() {
        e.path = FieldPath::new(&format!("{path}.{}", e.path));
    }
    errs
}

/// validateTimeZone: IANA's naming rules (a part of at most 14 of `A-Za-z.-_0-9+`, not `.`,
/// `..` or starting with `-`), not `Local`, and a zone this host's tz database has.
fn time_zone(tz: &str) -> Option<String> {
    if tz.is_empty() {
        return Some("timeZone must be nil or non-empty string".into());
    }
    let valid_part = |p: &str| {
        (1..=14).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
            && p != "."
            && p != ".."
            && !p.starts_with('-')
    };
    if !tz.split('/').all(valid_part) {
        return Some(format!("unknown time zone {tz}"));
    }
    if tz.eq_ignore_ascii_case("Local") {
        return Some(
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
                .into(),
        );
    }
    crate::zone::Zone::load(tz).err().map(|e| e.to_string())
}
