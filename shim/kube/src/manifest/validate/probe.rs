//! Probe and lifecycle-hook validation (`validateLivenessProbe`, `validateReadinessProbe`,
//! `validateStartupProbe`, `validateLifecycle`, `validateHandler`).

use super::super::error::{FieldError, FieldPath};
use super::super::types::{Container, HTTPGetAction, IntOrString, LifecycleHandler, Probe};
use super::{names, non_negative, push_invalid};

/// Lifecycle hooks and the three probes.
pub fn validate_hooks_and_probes(
    c: &Container,
    grace: Option<i64>,
    p: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(l) = &c.lifecycle {
        let lp = p.child("lifecycle");
        for (h, field) in [(&l.post_start, "postStart"), (&l.pre_stop, "preStop")] {
            if let Some(h) = h {
                errs.extend(validate_handler(
                    &Handler::from_hook(h),
                    grace,
                    &lp.child(field),
                ));
            }
        }
    }
    for (probe, field) in [
        (&c.liveness_probe, "livenessProbe"),
        (&c.readiness_probe, "readinessProbe"),
        (&c.startup_probe, "startupProbe"),
    ] {
        let Some(probe) = probe else { continue };
        let pp = p.child(field);
        errs.extend(validate_probe(probe, grace, &pp));
        let st = probe.success_threshold.unwrap_or(1);
        if field != "readinessProbe" && st != 1 {
            errs.push(FieldError::invalid(
                &pp.child("successThreshold"),
                st,
                "must be 1",
            ));
        }
        if field == "readinessProbe" {
            if let Some(t) = probe.termination_grace_period_seconds {
                errs.push(FieldError::invalid(
                    &pp.child("terminationGracePeriodSeconds"),
                    t,
                    "must not be set for readinessProbes",
                ));
            }
        }
    }
    errs
}

/// The handler fields shared by probes and lifecycle hooks (`commonHandler`).
struct Handler<'a> {
    exec: Option<&'a [String]>,
    http_get: Option<&'a HTTPGetAction>,
    tcp_port: Option<&'a IntOrString>,
    grpc_port: Option<i32>,
    sleep: Option<i64>,
}

impl<'a> Handler<'a> {
    fn from_probe(p: &'a Probe) -> Self {
        Handler {
            exec: p.exec.as_ref().map(|e| e.command.as_slice()),
            http_get: p.http_get.as_ref(),
            tcp_port: p.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: p.grpc.as_ref().map(|g| g.port),
            sleep: None,
        }
    }

    fn from_hook(h: &'a LifecycleHandler) -> Self {
        Handler {
            exec: h.exec.as_ref().map(|e| e.command.as_slice()),
            http_get: h.http_get.as_ref(),
            tcp_port: h.tcp_socket.as_ref().map(|t| &t.port),
            grpc_port: None,
            sleep: h.sleep.as_ref().map(|s| s.seconds),
        }
    }
}

/// `validateProbe`.
fn validate_probe(probe: &Probe, grace: Option<i64>, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = validate_handler(&Handler::from_probe(probe), grace, p);
    for (v, field) in [
        (probe.initial_delay_seconds, "initialDelaySeconds"),
        (probe.timeout_seconds, "timeoutSeconds"),
        (probe.period_seconds, "periodSeconds"),
        (probe.success_threshold, "successThreshold"),
        (probe.failure_threshold, "failureThreshold"),
    ] {
        non_negative(&mut errs, &p.child(field), v.unwrap_or(0).into());
    }
    if let Some(t) = probe.termination_grace_period_seconds.filter(|t| *t <= 0) {
        errs.push(FieldError::invalid(
            &p.child("terminationGracePeriodSeconds"),
            t,
            "must be greater than 0",
        ));
    }
    errs
}

/// `validateHandler`: exactly one handler type; each checked on its own.
fn validate_handler(h: &Handler<'_>, grace: Option<i64>, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut count = 0;
    let mut one = |errs: &mut Vec<FieldError>, field: &str| -> bool {
        if count > 0 {
            errs.push(FieldError::forbidden(
                &p.child(field),
                "may not specify more than 1 handler type",
            ));
            return false;
        }
        count += 1;
        true
    };
    if let Some(cmd) = h.exec {
        if one(&mut errs, "exec") && cmd.is_empty() {
            errs.push(FieldError::required(&p.child("exec").child("command"), ""));
        }
    }
    if let Some(g) = h.http_get {
        if one(&mut errs, "httpGet") {
            errs.extend(validate_http_get(g, &p.child("httpGet")));
        }
    }
    if let Some(port) = h.tcp_port {
        if one(&mut errs, "tcpSocket") {
            errs.extend(port_num_or_name(port, &p.child("tcpSocket").child("port")));
        }
    }
    if let Some(port) = h.grpc_port {
        if one(&mut errs, "grpc") {
            let gp = p.child("grpc").child("port");
            for m in names::port_num(port.into()) {
                errs.push(FieldError::invalid(&gp, port, m));
            }
        }
    }
    if let Some(secs) = h.sleep {
        if one(&mut errs, "sleep") {
            if let Some(g) = grace.filter(|g| secs < 0 || secs > *g) {
                errs.push(FieldError::invalid(
                    &p.child("sleep"),
                    secs,
                    format!(
                        "must be non-negative and less than terminationGracePeriodSeconds ({g})"
                    ),
                ));
            }
        }
    }
    if count == 0 {
        errs.push(FieldError::required(p, "must specify a handler type"));
    }
    errs
}

fn validate_http_get(g: &HTTPGetAction, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if g.path.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required(&p.child("path"), ""));
    }
    errs.extend(port_num_or_name(&g.port, &p.child("port")));
    let scheme = g.scheme.as_deref().unwrap_or("");
    if !matches!(scheme, "HTTP" | "HTTPS") {
        errs.push(FieldError::not_supported(
            &p.child("scheme"),
            scheme,
            &["HTTP", "HTTPS"],
        ));
    }
    for h in &g.http_headers {
        push_invalid(
            &mut errs,
            &p.child("httpHeaders"),
            &h.name,
            names::http_header_name(&h.name),
        );
    }
    errs
}

/// `ValidatePortNumOrName`.
fn port_num_or_name(port: &IntOrString, p: &FieldPath) -> Vec<FieldError> {
    match port {
        IntOrString::Int(n) => names::port_num((*n).into())
            .into_iter()
            .map(|m| FieldError::invalid(p, *n, m))
            .collect(),
        IntOrString::String(s) if s.is_empty() => vec![FieldError::required(p, "")],
        IntOrString::String(s) => names::port_name(s)
            .into_iter()
            .map(|m| FieldError::invalid(p, s, m))
            .collect(),
    }
}
