//! Container validation (`validateContainers`, `validateInitContainers`, `validateContainerCommon`):
//! names, image, ports, env, volume mounts, probes, lifecycle, resources, security context.

use std::collections::{BTreeMap, BTreeSet};

use super::super::error::{BadValue, FieldError, FieldPath};
use super::super::types::{
    Container, ContainerPort, EnvFromSource, EnvVar, PodSpec, Quantity, ResourceRequirements,
    SecurityContext, VolumeMount,
};
use super::probe::validate_hooks_and_probes;
use super::volume::local_descending_path;
use super::{names, push_invalid};

const FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const RESOURCE_FIELDS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// Validates `containers` and `initContainers`, then host port uniqueness.
pub fn validate_containers(
    spec: &PodSpec,
    volumes: &BTreeSet<String>,
    grace: Option<i64>,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut all_names = BTreeSet::new();
    let cp = path.child("containers");
    if spec.containers.is_empty() {
        errs.push(FieldError::required(&cp, ""));
    }
    for (i, c) in spec.containers.iter().enumerate() {
        let p = cp.index(i);
        errs.extend(validate_common(c, volumes, &p));
        if !c.name.is_empty() && !all_names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), &c.name));
        }
        errs.extend(validate_hooks_and_probes(c, grace, &p));
        if c.restart_policy.is_some() {
            errs.push(FieldError::forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    let ip = path.child("initContainers");
    for (i, c) in spec.init_containers.iter().enumerate() {
        let p = ip.index(i);
        errs.extend(validate_common(c, volumes, &p));
        if !c.name.is_empty() && !all_names.insert(c.name.as_str()) {
            errs.push(FieldError::duplicate(&p.child("name"), &c.name));
        }
        let sidecar = c.restart_policy.as_deref() == Some("Always");
        if let Some(rp) = c.restart_policy.as_deref().filter(|r| *r != "Always") {
            errs.push(FieldError::not_supported(
                &p.child("restartPolicy"),
                rp,
                &["Always"],
            ));
        }
        if sidecar {
            errs.extend(validate_hooks_and_probes(c, grace, &p));
        } else {
            for (set, field) in [
                (c.lifecycle.is_some(), "lifecycle"),
                (c.liveness_probe.is_some(), "livenessProbe"),
                (c.readiness_probe.is_some(), "readinessProbe"),
                (c.startup_probe.is_some(), "startupProbe"),
            ] {
                if set {
                    errs.push(FieldError::forbidden(
                        &p.child(field),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
        // Init containers run one at a time, so each is checked on its own.
        errs.extend(unique_host_ports(std::slice::from_ref(c), &p, true));
    }
    errs.extend(unique_host_ports(&spec.containers, &cp, false));
    errs
}

/// `AccumulateUniqueHostPorts`: `protocol/hostIP/hostPort` must be unique.
fn unique_host_ports(containers: &[Container], path: &FieldPath, single: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, c) in containers.iter().enumerate() {
        let cp = if single { path.clone() } else { path.index(i) };
        for (j, p) in c.ports.iter().enumerate() {
            let host = p.host_port.unwrap_or(0);
            if host == 0 {
                continue;
            }
            let key = format!(
                "{}/{}/{}",
                p.protocol.as_deref().unwrap_or(""),
                p.host_ip.as_deref().unwrap_or(""),
                host
            );
            if !seen.insert(key.clone()) {
                let hp = cp.child("ports").index(j).child("hostPort");
                errs.push(FieldError::duplicate(&hp, key));
            }
        }
    }
    errs
}

/// `validateContainerCommon` plus the Pod-only image check.
fn validate_common(c: &Container, volumes: &BTreeSet<String>, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let np = p.child("name");
    if c.name.is_empty() {
        errs.push(FieldError::required(&np, ""));
    } else {
        push_invalid(&mut errs, &np, &c.name, names::dns1123_label(&c.name));
    }
    let image = c.image.as_deref().unwrap_or("");
    if image.is_empty() {
        errs.push(FieldError::required(&p.child("image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            &p.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    errs.extend(validate_ports(&c.ports, &p.child("ports")));
    errs.extend(validate_env(&c.env, &p.child("env")));
    errs.extend(validate_env_from(&c.env_from, &p.child("envFrom")));
    errs.extend(validate_mounts(
        &c.volume_mounts,
        volumes,
        c,
        &p.child("volumeMounts"),
    ));
    let pull = p.child("imagePullPolicy");
    match c.image_pull_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&pull, "")),
        Some("Always" | "IfNotPresent" | "Never") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &pull,
            other,
            &["Always", "IfNotPresent", "Never"],
        )),
    }
    let tmp = p.child("terminationMessagePolicy");
    match c.termination_message_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&tmp, "")),
        Some("File" | "FallbackToLogsOnError") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &tmp,
            other,
            &["File", "FallbackToLogsOnError"],
        )),
    }
    if let Some(r) = &c.resources {
        errs.extend(validate_resources(r, &p.child("resources")));
    }
    if let Some(sc) = &c.security_context {
        errs.extend(validate_security_context(sc, &p.child("securityContext")));
    }
    errs.extend(super::runtime::check_container(c, p));
    errs
}

/// `validateContainerPorts`.
fn validate_ports(ports: &[ContainerPort], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut names_seen = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let ip = path.index(i);
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                push_invalid(&mut errs, &ip.child("name"), name, msgs);
            } else if !names_seen.insert(name) {
                errs.push(FieldError::duplicate(&ip.child("name"), name));
            }
        }
        let cp = ip.child("containerPort");
        if port.container_port == 0 {
            errs.push(FieldError::required(&cp, ""));
        } else {
            for m in names::port_num(port.container_port.into()) {
                errs.push(FieldError::invalid(&cp, port.container_port, m));
            }
        }
        let host = port.host_port.unwrap_or(0);
        if host != 0 {
            for m in names::port_num(host.into()) {
                errs.push(FieldError::invalid(&ip.child("hostPort"), host, m));
            }
        }
        let pp = ip.child("protocol");
        match port.protocol.as_deref() {
            None | Some("") => errs.push(FieldError::required(&pp, "")),
            Some("TCP" | "UDP" | "SCTP") => {}
            Some(other) => errs.push(FieldError::not_supported(
                &pp,
                other,
                &["TCP", "UDP", "SCTP"],
            )),
        }
    }
    errs
}

/// `ValidateEnv` and `validateEnvVarValueFrom`.
fn validate_env(env: &[EnvVar], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ev) in env.iter().enumerate() {
        let ip = path.index(i);
        if ev.name.is_empty() {
            errs.push(FieldError::required(&ip.child("name"), ""));
        } else {
            push_invalid(
                &mut errs,
                &ip.child("name"),
                &ev.name,
                names::env_var_name(&ev.name),
            );
        }
        let Some(from) = &ev.value_from else { continue };
        let vp = ip.child("valueFrom");
        let mut sources = 0;
        if let Some(f) = &from.field_ref {
            sources += 1;
            let fp = vp.child("fieldRef");
            if f.api_version.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&fp.child("apiVersion"), ""));
            }
            let pp = fp.child("fieldPath");
            if f.field_path.is_empty() {
                errs.push(FieldError::required(&pp, ""));
            } else if !valid_field_path(&f.field_path) {
                errs.push(FieldError::not_supported(&pp, &f.field_path, FIELD_PATHS));
            }
        }
        if let Some(r) = &from.resource_field_ref {
            sources += 1;
            let rp = vp.child("resourceFieldRef").child("resource");
            if r.resource.is_empty() {
                errs.push(FieldError::required(&rp, ""));
            } else if !RESOURCE_FIELDS.contains(&r.resource.as_str())
                && !r.resource.starts_with("limits.hugepages-")
                && !r.resource.starts_with("requests.hugepages-")
            {
                errs.push(FieldError::not_supported(&rp, &r.resource, RESOURCE_FIELDS));
            }
            if let Some(d) = &r.divisor {
                let dp = vp.child("resourceFieldRef").child("divisor");
                errs.extend(validate_divisor(&r.resource, d, &dp));
            }
        }
        for (sel, field) in [
            (&from.config_map_key_ref, "configMapKeyRef"),
            (&from.secret_key_ref, "secretKeyRef"),
        ] {
            let Some(sel) = sel else { continue };
            sources += 1;
            let sp = vp.child(field);
            if sel.name.as_deref().unwrap_or("").is_empty() {
                errs.push(FieldError::required(&sp.child("name"), ""));
            }
            if sel.key.is_empty() {
                errs.push(FieldError::required(&sp.child("key"), ""));
            } else {
                push_invalid(
                    &mut errs,
                    &sp.child("key"),
                    &sel.key,
                    names::config_map_key(&sel.key),
                );
            }
        }
        if from.file_key_ref.is_some() {
            sources += 1;
        }
        let detail = if sources == 0 {
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        } else if ev.value.as_deref().is_some_and(|v| !v.is_empty()) {
            "may not be specified when `value` is not empty"
        } else if sources > 1 {
            "may not have more than one field specified at a time"
        } else {
            continue;
        };
        errs.push(FieldError::invalid(&vp, "", detail));
    }
    errs
}

/// `validateContainerResourceDivisor` (the bad value it reports is the resource name, as there).
fn validate_divisor(resource: &str, d: &Quantity, p: &FieldPath) -> Vec<FieldError> {
    let Ok(q) = d.parse() else { return Vec::new() };
    if q.to_f64() == 0.0 {
        return Vec::new();
    }
    let milli = crate::pod::resources::milli_value(d);
    let (ok, detail) = match resource {
        "limits.cpu" | "requests.cpu" => (
            matches!(milli, Some(1) | Some(1000)),
            "only divisor's values 1m and 1 are supported with the cpu resource",
        ),
        "limits.memory" | "requests.memory" => (
            milli.is_some_and(|m| {
                m % 1000 == 0
                    && (0..=6).any(|e| m / 1000 == 1000i64.pow(e) || m / 1000 == 1024i64.pow(e))
            }),
            "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource",
        ),
        _ => (true, ""),
    };
    if ok {
        Vec::new()
    } else {
        vec![FieldError::invalid(p, resource, detail)]
    }
}

/// `validEnvDownwardAPIFieldPathExpressions`, plus `metadata.labels['k']` / `annotations['k']`.
fn valid_field_path(p: &str) -> bool {
    if FIELD_PATHS.contains(&p) {
        return true;
    }
    ["metadata.labels['", "metadata.annotations['"]
        .iter()
        .filter_map(|prefix| p.strip_prefix(prefix))
        .filter_map(|rest| rest.strip_suffix("']"))
        .any(|key| names::qualified_name(key).is_empty())
}

/// `ValidateEnvFrom` (errors on the list path, as Kubernetes reports them).
fn validate_env_from(list: &[EnvFromSource], path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (i, ef) in list.iter().enumerate() {
        let ip = path.index(i);
        if let Some(prefix) = ef.prefix.as_deref().filter(|p| !p.is_empty()) {
            push_invalid(
                &mut errs,
                &ip.child("prefix"),
                prefix,
                names::env_var_name(prefix),
            );
        }
        let mut sources = 0;
        for (r, field) in [
            (&ef.config_map_ref, "configMapRef"),
            (&ef.secret_ref, "secretRef"),
        ] {
            let Some(r) = r else { continue };
            sources += 1;
            let np = ip.child(field).child("name");
            match r.name.as_deref() {
                None | Some("") => errs.push(FieldError::required(&np, "")),
                Some(n) => push_invalid(&mut errs, &np, n, names::dns1123_subdomain(n)),
            }
        }
        if sources == 0 {
            errs.push(FieldError::invalid(
                path,
                "",
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(FieldError::invalid(
                path,
                "",
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `ValidateVolumeMounts`.
fn validate_mounts(
    mounts: &[VolumeMount],
    volumes: &BTreeSet<String>,
    c: &Container,
    path: &FieldPath,
) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut mount_points = BTreeSet::new();
    for (i, m) in mounts.iter().enumerate() {
        let ip = path.index(i);
        let np = ip.child("name");
        if m.name.is_empty() {
            errs.push(FieldError::required(&np, ""));
        } else if !volumes.contains(&m.name) {
            errs.push(FieldError::not_found(&np, &m.name));
        }
        let mp = ip.child("mountPath");
        if m.mount_path.is_empty() {
            errs.push(FieldError::required(&mp, ""));
        } else if !mount_points.insert(m.mount_path.as_str()) {
            errs.push(FieldError::invalid(&mp, &m.mount_path, "must be unique"));
        }
        let sub_path = m.sub_path.as_deref().unwrap_or("");
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(sub_path, &ip.child("subPath")));
        }
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|e| !e.is_empty()) {
            let ep = ip.child("subPathExpr");
            if !sub_path.is_empty() {
                errs.push(FieldError::invalid(
                    &ep,
                    expr,
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(expr, &ep));
        }
        if let Some(mode) = m.mount_propagation.as_deref() {
            let pp = ip.child("mountPropagation");
            let privileged = c
                .security_context
                .as_ref()
                .and_then(|s| s.privileged)
                .unwrap_or(false);
            match mode {
                "None" | "HostToContainer" => {}
                "Bidirectional" if privileged => {}
                "Bidirectional" => errs.push(FieldError::forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                )),
                other => errs.push(FieldError::not_supported(
                    &pp,
                    other,
                    &["Bidirectional", "HostToContainer", "None"],
                )),
            }
        }
    }
    errs
}

/// Whether a resource name without a domain is a standard container resource.
fn is_standard_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// `ValidateContainerResourceRequirements`.
fn validate_resources(r: &ResourceRequirements, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let check = |errs: &mut Vec<FieldError>, list: &BTreeMap<String, Quantity>, lp: &FieldPath| {
        for (name, q) in list {
            let kp = lp.key(name);
            if !name.contains('/') {
                if !is_standard_resource(name) {
                    errs.push(FieldError::invalid(
                        &kp,
                        name,
                        "must be a standard resource for containers",
                    ));
                }
            } else {
                push_invalid(errs, &kp, name, names::qualified_name(name));
            }
            if q.parse().is_ok_and(|v| v.is_negative()) {
                errs.push(FieldError::invalid(
                    &kp,
                    q.as_str(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    };
    check(&mut errs, &r.limits, &p.child("limits"));
    let rp = p.child("requests");
    check(&mut errs, &r.requests, &rp);
    for (name, req) in &r.requests {
        let Some(limit) = r.limits.get(name) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (req.parse(), limit.parse()) else {
            continue;
        };
        let order = a.cmp_value(&b);
        // Extended resources (with a domain outside kubernetes.io) cannot be overcommitted.
        let overcommit = is_standard_resource(name) || name.contains("kubernetes.io/");
        if !overcommit && order != std::cmp::Ordering::Equal {
            errs.push(FieldError::invalid(
                &rp,
                req.as_str(),
                format!("must be equal to {name} limit of {limit}"),
            ));
        } else if order == std::cmp::Ordering::Greater {
            errs.push(FieldError::invalid(
                &rp,
                req.as_str(),
                format!("must be less than or equal to {name} limit of {limit}"),
            ));
        }
    }
    errs
}

/// `ValidateSecurityContext` (container level).
fn validate_security_context(sc: &SecurityContext, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    for (id, field) in [
        (sc.run_as_user, "runAsUser"),
        (sc.run_as_group, "runAsGroup"),
    ] {
        if let Some(id) = id {
            for m in names::id_range(id) {
                errs.push(FieldError::invalid(&p.child(field), id, m));
            }
        }
    }
    if let Some(pm) = sc.proc_mount.as_deref() {
        if !matches!(pm, "Default" | "Unmasked") {
            errs.push(FieldError::not_supported(
                &p.child("procMount"),
                pm,
                &["Default", "Unmasked"],
            ));
        }
    }
    if sc.allow_privilege_escalation == Some(false) {
        let whole = || BadValue::Json(serde_json::to_value(sc).unwrap_or_default());
        if sc.privileged == Some(true) {
            errs.push(FieldError::invalid(
                p,
                whole(),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if sc
            .capabilities
            .as_ref()
            .is_some_and(|c| c.add.iter().any(|a| a == "CAP_SYS_ADMIN"))
        {
            errs.push(FieldError::invalid(p, whole(), "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"));
        }
    }
    errs
}
