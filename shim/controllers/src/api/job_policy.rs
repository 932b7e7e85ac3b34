//! Validation of a Job's `podFailurePolicy` and `successPolicy` as the API server does it
//! (`validatePodFailurePolicy`, `validateSuccessPolicy` in `pkg/apis/batch/validation`), with
//! its paths and wording.

use std::collections::BTreeSet;

use podshim_kube::manifest::{BadValue, ErrorKind, FieldError, FieldPath};

use super::{JobSpec, PodFailurePolicy, SuccessPolicy};

const MAX_RULES: usize = 20;
const MAX_CONDITION_PATTERNS: usize = 20;
const MAX_EXIT_CODES: usize = 255;
const MAX_SUCCESS_RULES: usize = 20;
const MAX_SUCCEEDED_INDEXES_LEN: usize = 64 * 1024;

/// An `Invalid` error whose value Go prints with `%#v` (or, for `OmitValueType`, not at all).
fn invalid_raw(path: &FieldPath, go_value: Option<String>, detail: &str) -> FieldError {
    FieldError {
        path: path.clone(),
        kind: ErrorKind::Invalid,
        value: BadValue::None,
        detail: match go_value {
            Some(v) => format!("{v}: {detail}"),
            None => detail.into(),
        },
    }
}

fn go_int32s(v: &[i32]) -> String {
    let items: Vec<String> = v.iter().map(i32::to_string).collect();
    format!("[]int32{{{}}}", items.join(", "))
}

pub fn pod_failure_policy(s: &JobSpec, p: &PodFailurePolicy, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let rules = path.child("rules");
    if p.rules.len() > MAX_RULES {
        errs.push(FieldError::too_many(&rules, p.rules.len(), MAX_RULES));
    }
    let names: BTreeSet<&str> = s
        .template
        .spec
        .containers
        .iter()
        .chain(&s.template.spec.init_containers)
        .map(|c| c.name.as_str())
        .collect();
    let actions = ["Count", "FailIndex", "FailJob", "Ignore"];
    for (i, rule) in p.rules.iter().enumerate() {
        let rp = rules.index(i);
        let action = rp.child("action");
        match rule.action.as_str() {
            "" => errs.push(FieldError::required(
                &action,
                format!("valid values: {actions:?}").replace(", ", " "),
            )),
            "FailIndex" if s.backoff_limit_per_index.is_none() => errs.push(FieldError::invalid(
                &action,
                "FailIndex",
                "requires the backoffLimitPerIndex to be set",
            )),
            a if !actions.contains(&a) => {
                errs.push(FieldError::not_supported(&action, a, &actions));
            }
            _ => {}
        }
        if let Some(oec) = &rule.on_exit_codes {
            let op = rp.child("onExitCodes");
            match oec.operator.as_str() {
                "" => errs.push(FieldError::required(
                    &op.child("operator"),
                    "valid values: [\"In\" \"NotIn\"]",
                )),
                "In" | "NotIn" => {}
                o => errs.push(FieldError::not_supported(
                    &op.child("operator"),
                    o,
                    &["In", "NotIn"],
                )),
            }
            if let Some(c) = &oec.container_name {
                if !names.contains(c.as_str()) {
                    errs.push(FieldError::invalid(
                        &op.child("containerName"),
                        c,
                        "must be one of the container or initContainer names in the pod template",
                    ));
                }
            }
            let values = op.child("values");
            if oec.values.is_empty() {
                errs.push(invalid_raw(
                    &values,
                    Some(go_int32s(&oec.values)),
                    "at least one value is required",
                ));
            } else if oec.values.len() > MAX_EXIT_CODES {
                errs.push(FieldError::too_many(
                    &values,
                    oec.values.len(),
                    MAX_EXIT_CODES,
                ));
            }
            let mut seen = BTreeSet::new();
            for (j, v) in oec.values.iter().enumerate() {
                if oec.operator == "In" && *v == 0 {
                    errs.push(FieldError::invalid(
                        &values.index(j),
                        *v,
                        "must not be 0 for the In operator",
                    ));
                }
                if !seen.insert(*v) {
                    errs.push(FieldError::duplicate(&values.index(j), *v));
                }
            }
            if oec.values.windows(2).any(|w| w[0] > w[1]) {
                errs.push(invalid_raw(
                    &values,
                    Some(go_int32s(&oec.values)),
                    "must be ordered",
                ));
            }
        }
        if !rule.on_pod_conditions.is_empty() {
            let cp = rp.child("onPodConditions");
            if rule.on_pod_conditions.len() > MAX_CONDITION_PATTERNS {
                errs.push(FieldError::too_many(
                    &cp,
                    rule.on_pod_conditions.len(),
                    MAX_CONDITION_PATTERNS,
                ));
            }
            for (j, pat) in rule.on_pod_conditions.iter().enumerate() {
                let pp = cp.index(j);
                for m in podshim_kube::manifest::validate::names::qualified_name(&pat.kind) {
                    errs.push(FieldError::invalid(&pp.child("type"), &pat.kind, m));
                }
                match pat.status.as_str() {
                    "True" | "False" | "Unknown" => {}
                    "" => errs.push(FieldError::required(
                        &pp.child("status"),
                        "valid values: [\"False\" \"True\" \"Unknown\"]",
                    )),
                    o => errs.push(FieldError::not_supported(
                        &pp.child("status"),
                        o,
                        &["False", "True", "Unknown"],
                    )),
                }
            }
        }
        match (
            rule.on_exit_codes.is_some(),
            !rule.on_pod_conditions.is_empty(),
        ) {
            (true, true) => errs.push(invalid_raw(
                &rp,
                None,
                "specifying both OnExitCodes and OnPodConditions is not supported",
            )),
            (false, false) => errs.push(invalid_raw(
                &rp,
                None,
                "specifying one of OnExitCodes and OnPodConditions is required",
            )),
            _ => {}
        }
    }
    errs
}

/// `validateIndexesFormat`: `0-2,5` within `0..completions`, increasing; the number of indexes.
pub fn indexes_format(text: &str, completions: i32) -> Result<i32, String> {
    if text.is_empty() {
        return Ok(0);
    }
    let mut last: Option<i32> = None;
    let mut total = 0;
    for interval in text.split(',') {
        let (x, y) = index_interval(interval, completions)?;
        if let Some(l) = last.filter(|l| *l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

/// One `X` or `X-Y` of an index list (`parseIndexInterval`).
pub fn index_interval(text: &str, completions: i32) -> Result<(i32, i32), String> {
    let parts: Vec<&str> = text.split('-').collect();
    if parts.len() > 2 {
        return Err(format!("the fragment {text:?} violates the requirement that an index interval can have at most two parts separated by '-'"));
    }
    let num = |s: &str| -> Result<i32, String> {
        let v: i64 = s
            .parse()
            .map_err(|_| format!("cannot convert string to integer for index: {s:?}"))?;
        if v >= i64::from(completions) {
            return Err(format!("too large index: {s:?}"));
        }
        Ok(v as i32)
    };
    let x = num(parts[0])?;
    if parts.len() == 2 {
        let y = num(parts[1])?;
        if x >= y {
            return Err(format!("non-increasing order, previous: {x}, current: {y}"));
        }
        return Ok((x, y));
    }
    Ok((x, x))
}

pub fn success_policy(s: &JobSpec, p: &SuccessPolicy, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if s.completion_mode.as_deref() != Some("Indexed") {
        errs.push(invalid_raw(
            path,
            Some(go_success_policy(p)),
            "requires indexed completion mode",
        ));
        return errs;
    }
    let rules = path.child("rules");
    if p.rules.is_empty() {
        errs.push(FieldError::required(
            &rules,
            "at least one rules must be specified when the successPolicy is specified",
        ));
    }
    if p.rules.len() > MAX_SUCCESS_RULES {
        errs.push(FieldError::too_many(
            &rules,
            p.rules.len(),
            MAX_SUCCESS_RULES,
        ));
    }
    let completions = s.completions.unwrap_or(0);
    for (i, rule) in p.rules.iter().enumerate() {
        let rp = rules.index(i);
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            errs.push(FieldError::required(
                &rp,
                "at least one of succeededCount or succeededIndexes must be specified",
            ));
        }
        let mut total = 0;
        if let Some(idx) = &rule.succeeded_indexes {
            let ip = rp.child("succeededIndexes");
            if idx.len() > MAX_SUCCEEDED_INDEXES_LEN {
                errs.push(FieldError::too_long(&ip, MAX_SUCCEEDED_INDEXES_LEN));
            }
            match indexes_format(idx, completions) {
                Ok(n) => total = n,
                Err(e) => errs.push(FieldError::invalid(
                    &ip,
                    idx,
                    format!("error parsing succeededIndexes: {e}"),
                )),
            }
        }
        if let Some(n) = rule.succeeded_count {
            let cp = rp.child("succeededCount");
            if n < 0 {
                errs.push(FieldError::invalid(
                    &cp,
                    n,
                    "must be greater than or equal to 0",
                ));
            }
            if n > completions {
                errs.push(FieldError::invalid(
                    &cp,
                    n,
                    format!(
                        "must be less than or equal to {completions} (the number of specified completions)"
                    ),
                ));
            }
            if rule.succeeded_indexes.is_some() && n > total {
                errs.push(FieldError::invalid(
                    &cp,
                    n,
                    format!("must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"),
                ));
            }
        }
    }
    errs
}

/// Go's `%#v` of a `batch.SuccessPolicy` (pointers print as addresses there; podshim prints
/// the values, which say more).
fn go_success_policy(p: &SuccessPolicy) -> String {
    let rules: Vec<String> = p
        .rules
        .iter()
        .map(|r| {
            format!(
                "batch.SuccessPolicyRule{{SucceededIndexes:{}, SucceededCount:{}}}",
                r.succeeded_indexes
                    .as_ref()
                    .map_or("(*string)(nil)".into(), |s| format!("{s:?}")),
                r.succeeded_count
                    .map_or("(*int32)(nil)".into(), |n| n.to_string())
            )
        })
        .collect();
    format!(
        "batch.SuccessPolicy{{Rules:[]batch.SuccessPolicyRule{{{}}}}}",
        rules.join(", ")
    )
}
