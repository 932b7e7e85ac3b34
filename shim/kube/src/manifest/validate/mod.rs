//! Kubernetes Pod validation (`ValidatePodCreate` → `ValidateObjectMeta` + `ValidatePodSpec`), run
//! on a defaulted Pod; every problem is collected with Kubernetes' path and wording.

mod container;
pub mod names;
mod pod_resources;
mod probe;
mod runtime;
pub(crate) mod scheduling;
/// `ValidateLabelSelector`, for the workload controllers' selectors.
pub use scheduling::label_selector;
mod security;
mod volume;

use std::collections::BTreeSet;

use super::error::{FieldError, FieldPath};
use super::types::{ObjectMeta, Pod, PodDNSConfig, PodSpec};

/// `TotalAnnotationSizeLimitB`.
const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * (1 << 10);
const MAX_DNS_NAMESERVERS: usize = 3;
const MAX_DNS_SEARCH_PATHS: usize = 32;
const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;

/// Validates a defaulted Pod, returning every problem found.
pub fn validate_pod(pod: &Pod) -> Vec<FieldError> {
    let mut errs = validate_metadata(&pod.metadata, &FieldPath::new("metadata"));
    errs.extend(validate_spec(&pod.spec, &FieldPath::new("spec")));
    errs
}

/// Adds one `Invalid` error per message.
fn push_invalid(errs: &mut Vec<FieldError>, path: &FieldPath, value: &str, msgs: Vec<String>) {
    errs.extend(
        msgs.into_iter()
            .map(|m| FieldError::invalid(path, value, m)),
    );
}

/// `ValidateDNS1123Label`.
fn dns_label(errs: &mut Vec<FieldError>, path: &FieldPath, value: &str) {
    push_invalid(errs, path, value, names::dns1123_label(value));
}

/// `ValidateDNS1123Subdomain`.
fn dns_subdomain(errs: &mut Vec<FieldError>, path: &FieldPath, value: &str) {
    push_invalid(errs, path, value, names::dns1123_subdomain(value));
}

/// `ValidateNonnegativeField`.
fn non_negative(errs: &mut Vec<FieldError>, path: &FieldPath, value: i64) {
    if value < 0 {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be greater than or equal to 0",
        ));
    }
}

/// `ValidateObjectMeta` for a namespaced object whose name is a DNS subdomain.
pub fn validate_metadata(meta: &ObjectMeta, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(g) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        // With prefix=true a trailing '-' is allowed: it is followed by random characters.
        let probe = format!("{g}a");
        push_invalid(
            &mut errs,
            &path.child("generateName"),
            g,
            names::dns1123_subdomain(&probe),
        );
    }
    let has_generate_name = meta.generate_name.as_deref().is_some_and(|g| !g.is_empty());
    if meta.name.is_empty() {
        if !has_generate_name {
            errs.push(FieldError::required(
                &path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        dns_subdomain(&mut errs, &path.child("name"), &meta.name);
    }
    match meta.namespace.as_deref() {
        None | Some("") => errs.push(FieldError::required(&path.child("namespace"), "")),
        Some(ns) => dns_label(&mut errs, &path.child("namespace"), ns),
    }
    if let Some(g) = meta.generation {
        non_negative(&mut errs, &path.child("generation"), g);
    }
    let labels = path.child("labels");
    for (k, v) in &meta.labels {
        push_invalid(&mut errs, &labels, k, names::qualified_name(k));
        push_invalid(&mut errs, &labels, v, names::label_value(v));
    }
    let annotations = path.child("annotations");
    let mut total = 0;
    for (k, v) in &meta.annotations {
        push_invalid(
            &mut errs,
            &annotations,
            k,
            names::qualified_name(&k.to_lowercase()),
        );
        total += k.len() + v.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(FieldError::too_long(
            &annotations,
            TOTAL_ANNOTATION_SIZE_LIMIT,
        ));
    }
    errs
}

/// `ValidatePodSpec`, in Kubernetes' order.
fn validate_spec(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let (volumes, mut errs) = volume::validate_volumes(&spec.volumes, &path.child("volumes"));
    let grace = spec.termination_grace_period_seconds;
    errs.extend(container::validate_containers(spec, &volumes, grace, path));
    if !spec.ephemeral_containers.is_empty() {
        errs.push(FieldError::forbidden(
            &path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    errs.extend(validate_host_network_ports(spec, path));
    let rp = path.child("restartPolicy");
    match spec.restart_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&rp, "")),
        Some("Always" | "OnFailure" | "Never") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &rp,
            other,
            &["Always", "OnFailure", "Never"],
        )),
    }
    let dp = path.child("dnsPolicy");
    match spec.dns_policy.as_deref() {
        None | Some("") => errs.push(FieldError::required(&dp, "")),
        Some("ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None") => {}
        Some(other) => errs.push(FieldError::not_supported(
            &dp,
            other,
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )),
    }
    let ns = path.child("nodeSelector");
    for (k, v) in &spec.node_selector {
        push_invalid(&mut errs, &ns, k, names::qualified_name(k));
        push_invalid(&mut errs, &ns, v, names::label_value(v));
    }
    errs.extend(validate_pod_security_context(spec, path));
    errs.extend(security::validate(spec, path));
    for (i, s) in spec.image_pull_secrets.iter().enumerate() {
        if s.name.is_empty() {
            let p = path.child("imagePullSecrets").index(i).child("name");
            errs.push(FieldError::required(&p, ""));
        }
    }
    errs.extend(validate_dns_config(spec, &path.child("dnsConfig")));
    if spec.host_users == Some(false) {
        let reason = "when `pod.Spec.HostUsers` is false";
        for (set, field) in [
            (spec.host_network, "hostNetwork"),
            (spec.host_pid, "hostPID"),
            (spec.host_ipc, "hostIPC"),
        ] {
            if set == Some(true) {
                let p = path.child("securityContext").child(field);
                errs.push(FieldError::forbidden(&p, reason));
            }
        }
    }
    for (value, field) in [
        (&spec.service_account_name, "serviceAccountName"),
        (&spec.node_name, "nodeName"),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            dns_subdomain(&mut errs, &path.child(field), v);
        }
    }
    if let Some(ads) = spec.active_deadline_seconds {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(FieldError::invalid(
                &path.child("activeDeadlineSeconds"),
                ads,
                names::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for (value, field) in [(&spec.hostname, "hostname"), (&spec.subdomain, "subdomain")] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            dns_label(&mut errs, &path.child(field), v);
        }
    }
    for (i, alias) in spec.host_aliases.iter().enumerate() {
        let ap = path.child("hostAliases").index(i);
        push_invalid(&mut errs, &ap.child("ip"), &alias.ip, names::ip(&alias.ip));
        for (j, h) in alias.hostnames.iter().enumerate() {
            dns_subdomain(&mut errs, &ap.child("hostnames").index(j), h);
        }
    }
    for (value, field) in [
        (&spec.priority_class_name, "priorityClassName"),
        (&spec.runtime_class_name, "runtimeClassName"),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            dns_subdomain(&mut errs, &path.child(field), v);
        }
    }
    match spec.termination_grace_period_seconds {
        None => errs.push(FieldError::required(
            &path.child("terminationGracePeriodSeconds"),
            "",
        )),
        Some(g) => non_negative(&mut errs, &path.child("terminationGracePeriodSeconds"), g),
    }
    errs.extend(scheduling::validate(spec, path));
    errs.extend(pod_resources::validate(spec, path));
    errs
}

/// `validatePodHostNetworkDeps`: with the host's network a port is published as itself.
fn validate_host_network_ports(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if spec.host_network != Some(true) {
        return errs;
    }
    for (field, list) in [
        ("containers", &spec.containers),
        ("initContainers", &spec.init_containers),
    ] {
        for (i, c) in list.iter().enumerate() {
            for (j, p) in c.ports.iter().enumerate() {
                let host = p.host_port.unwrap_or(0);
                if host != p.container_port {
                    let pp = path.child(field).index(i).child("ports").index(j);
                    errs.push(FieldError::invalid(
                        &pp.child("hostPort"),
                        host,
                        "must match `containerPort` when `hostNetwork` is true",
                    ));
                }
            }
        }
    }
    errs
}

/// `validatePodSpecSecurityContext` (paths as in the internal API, where the host namespaces
/// live under `securityContext`).
fn validate_pod_security_context(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let sp = path.child("securityContext");
    if let Some(sc) = &spec.security_context {
        for (id, field) in [
            (sc.fs_group, "fsGroup"),
            (sc.run_as_user, "runAsUser"),
            (sc.run_as_group, "runAsGroup"),
        ] {
            if let Some(id) = id {
                for m in names::id_range(id) {
                    errs.push(FieldError::invalid(&sp.child(field), id, m));
                }
            }
        }
        for (i, &g) in sc.supplemental_groups.iter().enumerate() {
            for m in names::id_range(g) {
                let p = sp.child("supplementalGroups").index(i);
                errs.push(FieldError::invalid(&p, g, m));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, s) in sc.sysctls.iter().enumerate() {
            let p = sp.child("sysctls").index(i).child("name");
            if s.name.is_empty() {
                errs.push(FieldError::required(&p, ""));
            } else if !seen.insert(s.name.as_str()) {
                errs.push(FieldError::duplicate(&p, &s.name));
            }
        }
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        errs.push(FieldError::invalid(
            &sp.child("shareProcessNamespace"),
            true,
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    errs
}

/// `validatePodDNSConfig`.
fn validate_dns_config(spec: &PodSpec, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let empty = PodDNSConfig::default();
    if spec.dns_policy.as_deref() == Some("None") {
        if spec.dns_config.is_none() {
            errs.push(FieldError::required(
                path,
                "must provide `dnsConfig` when `dnsPolicy` is None",
            ));
        }
        if spec
            .dns_config
            .as_ref()
            .unwrap_or(&empty)
            .nameservers
            .is_empty()
        {
            errs.push(FieldError::required(
                &path.child("nameservers"),
                "must provide at least one DNS nameserver when `dnsPolicy` is None",
            ));
        }
    }
    let Some(cfg) = &spec.dns_config else {
        return errs;
    };
    let np = path.child("nameservers");
    if cfg.nameservers.len() > MAX_DNS_NAMESERVERS {
        errs.push(FieldError::invalid(
            &np,
            super::error::BadValue::Json(serde_json::json!(cfg.nameservers)),
            format!("must not have more than {MAX_DNS_NAMESERVERS} nameservers"),
        ));
    }
    for (i, ns) in cfg.nameservers.iter().enumerate() {
        push_invalid(&mut errs, &np.index(i), ns, names::ip(ns));
    }
    let sp = path.child("searches");
    let searches = super::error::BadValue::Json(serde_json::json!(cfg.searches));
    if cfg.searches.len() > MAX_DNS_SEARCH_PATHS {
        errs.push(FieldError::invalid(
            &sp,
            searches.clone(),
            format!("must not have more than {MAX_DNS_SEARCH_PATHS} search paths"),
        ));
    }
    if cfg.searches.join(" ").len() > MAX_DNS_SEARCH_LIST_CHARS {
        errs.push(FieldError::invalid(
            &sp,
            searches,
            format!("must not have more than {MAX_DNS_SEARCH_LIST_CHARS} characters (including spaces) in the search list"),
        ));
    }
    for (i, s) in cfg.searches.iter().enumerate() {
        let trimmed = s.strip_suffix('.').unwrap_or(s);
        dns_subdomain(&mut errs, &sp.index(i), trimmed);
    }
    for (i, o) in cfg.options.iter().enumerate() {
        if o.name.is_empty() {
            errs.push(FieldError::required(
                &path.child("options").index(i),
                "Option.Name must not be empty",
            ));
        }
    }
    errs
}

/// Decodes and defaults the first YAML document as a Pod, bypassing the unsupported gate: what
/// the validation tests validate.
#[cfg(test)]
pub(crate) fn defaulted_pod(yaml: &str) -> super::Pod {
    let mut v = crate::manifest::yaml::documents(yaml)
        .remove(0)
        .1
        .unwrap()
        .value;
    let mut pod = super::decode::decode_pod(&mut v).unwrap();
    super::defaults::apply(&mut pod);
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes and defaults a YAML Pod (bypassing the unsupported gate), then validates it.
    fn errors(yaml: &str) -> Vec<String> {
        validate_pod(&defaulted_pod(yaml))
            .iter()
            .map(|e| e.to_string())
            .collect()
    }

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n";

    #[test]
    fn volumes() {
        let y = format!(
            "{HEAD}  containers: [{{name: c, image: i, volumeMounts: [{{name: a, mountPath: /a}}]}}]\n  volumes:\n  - {{name: a, emptyDir: {{}}, hostPath: {{path: /x}}}}\n  - {{name: b, hostPath: {{path: /x/../y, type: Weird}}}}\n  - {{name: c, secret: {{defaultMode: 1000}}}}\n  - {{name: c, configMap: {{name: m}}}}\n  - {{name: d}}\n  - {{name: d}}\n"
        );
        assert_eq!(
            errors(&y),
            vec![
                "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type",
                r#"spec.volumes[1].hostPath.path: Invalid value: "/x/../y": must not contain '..'"#,
                r#"spec.volumes[1].hostPath.type: Unsupported value: "Weird": supported values: "", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket""#,
                "spec.volumes[2].secret.secretName: Required value",
                "spec.volumes[2].secret.defaultMode: Invalid value: 1000: must be a number between 0 and 0777 (octal), both inclusive",
                // volumes[3] reuses the name of the invalid volumes[2]: not a duplicate in Kubernetes.
                r#"spec.volumes[5].name: Duplicate value: "d""#,
                r#"spec.containers[0].volumeMounts[0].name: Not found: "a""#,
            ]
        );
    }

    #[test]
    fn probes_and_lifecycle() {
        let y = format!(
            "{HEAD}  containers:\n  - name: c\n    image: i\n    livenessProbe: {{successThreshold: 2}}\n    startupProbe: {{httpGet: {{port: 0, scheme: FTP}}}}\n    readinessProbe: {{grpc: {{port: 9000}}, terminationGracePeriodSeconds: 5}}\n    lifecycle: {{preStop: {{sleep: {{seconds: 60}}}}, postStart: {{exec: {{}}}}}}\n"
        );
        assert_eq!(
            errors(&y),
            vec![
                "spec.containers[0].lifecycle.postStart.exec.command: Required value",
                "spec.containers[0].lifecycle.preStop.sleep: Invalid value: 60: must be non-negative and less than terminationGracePeriodSeconds (30)",
                "spec.containers[0].livenessProbe: Required value: must specify a handler type",
                "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
                "spec.containers[0].readinessProbe.terminationGracePeriodSeconds: Invalid value: 5: must not be set for readinessProbes",
                "spec.containers[0].startupProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
                r#"spec.containers[0].startupProbe.httpGet.scheme: Unsupported value: "FTP": supported values: "HTTP", "HTTPS""#,
            ]
        );
    }

    #[test]
    fn resources_env_and_security() {
        let y = format!(
            "{HEAD}  containers:\n  - name: c\n    image: i\n    resources: {{limits: {{cpu: 500m, gpu: 1}}, requests: {{cpu: '1', memory: -1Mi}}}}\n    env: [{{name: A, value: x, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]\n    securityContext: {{runAsUser: -1, allowPrivilegeEscalation: false, privileged: true}}\n"
        );
        let errs = errors(&y);
        let want = [
            r#"spec.containers[0].env[0].valueFrom: Invalid value: "": may not be specified when `value` is not empty"#,
            r#"spec.containers[0].resources.limits[gpu]: Invalid value: "gpu": must be a standard resource for containers"#,
            // Defaulting copied the limit into requests.
            r#"spec.containers[0].resources.requests[gpu]: Invalid value: "gpu": must be a standard resource for containers"#,
            r#"spec.containers[0].resources.requests[memory]: Invalid value: "-1Mi": must be greater than or equal to 0"#,
            r#"spec.containers[0].resources.requests: Invalid value: "1": must be less than or equal to cpu limit of 500m"#,
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
        ];
        for w in want {
            assert!(errs.contains(&w.to_string()), "missing {w} in {errs:#?}");
        }
        assert!(errs.iter().any(|e| e
            .starts_with("spec.containers[0].securityContext: Invalid value: {")
            && e.ends_with(
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            )));
        assert_eq!(errs.len(), want.len() + 1, "{errs:#?}");
    }

    #[test]
    fn dns_and_host_settings() {
        let y = format!(
            "{HEAD}  containers: [{{name: c, image: i}}]\n  dnsPolicy: None\n  dnsConfig: {{searches: [Bad_Domain.], options: [{{value: '1'}}]}}\n  hostAliases: [{{ip: 10.0.0, hostnames: [ok.example]}}]\n  activeDeadlineSeconds: 0\n  terminationGracePeriodSeconds: -1\n  shareProcessNamespace: true\n  hostPID: true\n"
        );
        let errs = errors(&y);
        let want = [
            "spec.securityContext.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
            "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
            "spec.dnsConfig.options[0]: Required value: Option.Name must not be empty",
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
            r#"spec.hostAliases[0].ip: Invalid value: "10.0.0": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#,
            "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0",
        ];
        for w in want {
            assert!(errs.contains(&w.to_string()), "missing {w} in {errs:#?}");
        }
        assert!(errs
            .iter()
            .any(|e| e.starts_with(r#"spec.dnsConfig.searches[0]: Invalid value: "Bad_Domain""#)));
        assert_eq!(errs.len(), want.len() + 1, "{errs:#?}");
    }

    #[test]
    fn metadata_labels_and_init_containers() {
        let y = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {'bad key': 'v!'}\nspec:\n  containers: [{name: c, image: i, ports: [{containerPort: 80, hostPort: 8080}]}]\n  initContainers: [{name: c, image: i, restartPolicy: Never, livenessProbe: {exec: {command: ['true']}}}]\n";
        let errs = errors(y);
        assert!(
            errs.iter().any(|e| e.starts_with(
                r#"metadata.labels: Invalid value: "bad key": name part must consist"#
            )),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e
                    .starts_with(r#"metadata.labels: Invalid value: "v!": a valid label must be"#)),
            "{errs:#?}"
        );
        for w in [
            r#"spec.initContainers[0].name: Duplicate value: "c""#,
            r#"spec.initContainers[0].restartPolicy: Unsupported value: "Never": supported values: "Always""#,
            "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
        ] {
            assert!(errs.contains(&w.to_string()), "missing {w} in {errs:#?}");
        }
        assert_eq!(errs.len(), 5, "{errs:#?}");
    }
}
