//! The kubelet's and containerd's security decisions for a Pod, made at plan time so that a Pod
//! this node cannot run is refused before anything is created: the seccomp filter and AppArmor
//! profile of each container (container settings over the Pod's; the beta AppArmor annotation
//! as the container's), `privileged` and `procMount`, and the Pod's sysctls checked against the
//! kubelet's allow list (`pkg/kubelet/sysctl`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use libcontainer::oci_spec::runtime::LinuxSeccomp;

use crate::manifest::{Container, Pod, SecurityProfile};
use crate::spec;

/// Where `Localhost` seccomp profiles are read from unless `PODSHIM_SECCOMP_ROOT` says otherwise:
/// the kubelet's (`<root-dir>/seccomp`).
pub const DEFAULT_SECCOMP_ROOT: &str = "/var/lib/kubelet/seccomp";

/// The kubelet's safe sysctls (`SafeSysctlAllowlist`): namespaced, and isolated from other Pods.
pub const SAFE_SYSCTLS: [&str; 12] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// The annotation that stands for a container's `appArmorProfile` (deprecated since 1.30).
const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";

/// What this node offers: read once per plan.
#[derive(Debug, Clone)]
pub struct Host {
    /// `/sys/module/apparmor/parameters/enabled` says `Y`.
    pub apparmor: bool,
    /// Where `Localhost` seccomp profiles live.
    pub seccomp_root: PathBuf,
    /// The kubelet's `--allowed-unsafe-sysctls`: names, or prefixes ending in `*`
    /// (`PODSHIM_ALLOWED_UNSAFE_SYSCTLS`, comma-separated).
    pub allowed_unsafe_sysctls: Vec<String>,
}

impl Host {
    pub fn detect() -> Host {
        let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.trim() == "Y");
        let seccomp_root = std::env::var_os("PODSHIM_SECCOMP_ROOT")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SECCOMP_ROOT));
        let allowed_unsafe_sysctls = std::env::var("PODSHIM_ALLOWED_UNSAFE_SYSCTLS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Host {
            apparmor,
            seccomp_root,
            allowed_unsafe_sysctls,
        }
    }
}

/// One container's security settings, resolved.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ContainerSecurity {
    pub privileged: bool,
    /// `procMount: Unmasked`.
    pub unmasked_proc: bool,
    /// The capabilities it holds (every one for a privileged container).
    pub capabilities: Vec<String>,
    pub seccomp: Option<LinuxSeccomp>,
    pub apparmor_profile: Option<String>,
}

/// A profile and the field it came from (for messages).
fn effective<'a>(
    container: Option<&'a SecurityProfile>,
    pod: Option<&'a SecurityProfile>,
    base: &str,
    field: &str,
) -> Option<(&'a SecurityProfile, String)> {
    match (container, pod) {
        (Some(p), _) => Some((p, format!("{base}.securityContext.{field}"))),
        (None, Some(p)) => Some((p, format!("spec.securityContext.{field}"))),
        (None, None) => None,
    }
}

/// The container's AppArmor profile from its beta annotation (`runtime/default`,
/// `localhost/<name>`, `unconfined`).
fn apparmor_annotation(pod: &Pod, name: &str) -> Option<SecurityProfile> {
    let v = pod
        .metadata
        .annotations
        .get(&format!("{APPARMOR_ANNOTATION}{name}"))?;
    let (type_, localhost_profile) = match v.as_str() {
        "runtime/default" => ("RuntimeDefault", None),
        "unconfined" => ("Unconfined", None),
        other => (
            "Localhost",
            other.strip_prefix("localhost/").map(str::to_string),
        ),
    };
    Some(SecurityProfile {
        type_: type_.into(),
        localhost_profile,
    })
}

/// Resolve `c`'s settings (`base` is its field path, e.g. `spec.containers[0]`).
pub fn container(
    host: &Host,
    pod: &Pod,
    c: &Container,
    base: &str,
) -> Result<ContainerSecurity, Vec<String>> {
    let mut errors = Vec::new();
    let sc = c.security_context.clone().unwrap_or_default();
    let psc = pod.spec.security_context.clone().unwrap_or_default();
    let privileged = sc.privileged == Some(true);
    let caps = sc.capabilities.clone().unwrap_or_default();
    let capabilities = if privileged {
        spec::capabilities(&["ALL".into()], &[])
    } else {
        spec::capabilities(&caps.add, &caps.drop)
    };
    // containerd: a privileged container runs without a seccomp filter whatever the profile.
    let seccomp = match effective(
        sc.seccomp_profile.as_ref(),
        psc.seccomp_profile.as_ref(),
        base,
        "seccompProfile",
    ) {
        _ if privileged => None,
        None => None,
        Some((p, path)) => match p.type_.as_str() {
            "RuntimeDefault" => spec::seccomp::runtime_default(&capabilities)
                .map_err(|e| errors.push(format!("{path}: {e}")))
                .ok(),
            "Localhost" => {
                let name = p.localhost_profile.clone().unwrap_or_default();
                let file = host.seccomp_root.join(&name);
                spec::seccomp::localhost(&file, &capabilities)
                    .map_err(|e| {
                        errors.push(format!(
                            "{path}.localhostProfile: CreateContainerError: {e} (Localhost \
                             profiles are read from {}; PODSHIM_SECCOMP_ROOT sets another \
                             directory)",
                            host.seccomp_root.display()
                        ))
                    })
                    .ok()
            }
            _ => None,
        },
    };
    let annotated = apparmor_annotation(pod, &c.name);
    let apparmor = effective(
        sc.app_armor_profile.as_ref().or(annotated.as_ref()),
        psc.app_armor_profile.as_ref(),
        base,
        "appArmorProfile",
    );
    let apparmor_profile = match apparmor {
        None => None,
        Some((p, _)) if p.type_ == "Unconfined" => None,
        Some((_, path)) if !host.apparmor => {
            // The kubelet's admission check (`apparmor.validateHost`), event reason AppArmor.
            errors.push(format!(
                "{path}: AppArmor: Cannot enforce AppArmor: AppArmor is not enabled on the host"
            ));
            None
        }
        Some((p, _)) if p.type_ == "Localhost" => p.localhost_profile.clone(),
        Some((_, path)) => {
            errors.push(format!(
                "{path}: RuntimeDefault is not supported by podshim yet on a host with AppArmor \
                 (podshim loads no profile of its own); name a loaded profile with Localhost"
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ContainerSecurity {
        privileged,
        unmasked_proc: sc.proc_mount.as_deref() == Some("Unmasked"),
        capabilities,
        seccomp,
        apparmor_profile,
    })
}

/// The namespace a sysctl lives in, as the kubelet groups them (`sysctl.GetNamespace`): `ipc`
/// or `net`, or none (a host-wide setting no Pod may change).
fn sysctl_namespace(name: &str) -> Option<&'static str> {
    const IPC: [&str; 5] = [
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
        "kernel.sem",
    ];
    if IPC.contains(&name) || name.starts_with("kernel.msg") || name.starts_with("fs.mqueue.") {
        Some("ipc")
    } else if name.starts_with("net.") {
        Some("net")
    } else {
        None
    }
}

/// `net/ipv4/x` as `net.ipv4.x` (the kubelet's `NormalizeName`).
fn normalize(name: &str) -> String {
    if name.contains('/') {
        name.replace('.', "\u{0}")
            .replace('/', ".")
            .replace('\u{0}', "/")
    } else {
        name.to_string()
    }
}

/// The Pod's sysctls, admitted as the kubelet admits them (reason `SysctlForbidden`).
pub fn sysctls(host: &Host, pod: &Pod) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    let Some(sc) = &pod.spec.security_context else {
        return Ok(out);
    };
    let host_net = pod.spec.host_network == Some(true);
    let host_ipc = pod.spec.host_ipc == Some(true);
    for (i, s) in sc.sysctls.iter().enumerate() {
        let name = normalize(&s.name);
        let allowed = SAFE_SYSCTLS.contains(&name.as_str())
            || host
                .allowed_unsafe_sysctls
                .iter()
                .any(|p| match p.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => *p == name,
                });
        let ns = sysctl_namespace(&name);
        let why = match ns {
            _ if !allowed => Some(format!(
                "{name:?} not allowlisted (the kubelet's safe set; allow others with \
                 PODSHIM_ALLOWED_UNSAFE_SYSCTLS, as with its --allowed-unsafe-sysctls)"
            )),
            None => Some(format!("{name:?} is not known to be namespaced")),
            Some("net") if host_net => Some(format!("{name:?} not allowed with host net enabled")),
            Some("ipc") if host_ipc => Some(format!("{name:?} not allowed with host ipc enabled")),
            _ => None,
        };
        match why {
            Some(why) => errors.push(format!(
                "spec.securityContext.sysctls[{i}]: SysctlForbidden: forbidden sysctl: {why}"
            )),
            None => {
                out.insert(name, s.value.clone());
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn pod(yaml: &str) -> Pod {
        let m = crate::manifest::parse(yaml).unwrap_or_else(|e| panic!("{e}"));
        m.pods[0].clone()
    }

    fn host() -> Host {
        Host {
            apparmor: false,
            seccomp_root: PathBuf::from("/nonexistent"),
            allowed_unsafe_sysctls: vec!["net.core.*".into()],
        }
    }

    const HEAD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n";

    #[test]
    fn safe_and_allowed_sysctls_pass_and_others_are_forbidden_as_the_kubelet_says() {
        let p = pod(&format!(
            "{HEAD}  securityContext:\n    sysctls:\n    - {{name: net.ipv4.ip_unprivileged_port_start, value: '80'}}\n    - {{name: net/core/somaxconn, value: '1024'}}\n  containers: [{{name: c, image: i}}]\n"
        ));
        let s = sysctls(&host(), &p).unwrap();
        assert_eq!(s["net.core.somaxconn"], "1024");
        assert_eq!(s.len(), 2);
        let p = pod(&format!(
            "{HEAD}  hostNetwork: true\n  securityContext:\n    sysctls:\n    - {{name: kernel.msgmax, value: '1'}}\n    - {{name: net.ipv4.tcp_syncookies, value: '1'}}\n    - {{name: vm.swappiness, value: '1'}}\n  containers: [{{name: c, image: i}}]\n"
        ));
        let mut h = host();
        h.allowed_unsafe_sysctls.push("vm.swappiness".into());
        let e = sysctls(&h, &p).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("spec.securityContext.sysctls[0]: SysctlForbidden: forbidden sysctl: \"kernel.msgmax\" not allowlisted"), "{e:?}");
        assert_eq!(e[1], "spec.securityContext.sysctls[1]: SysctlForbidden: forbidden sysctl: \"net.ipv4.tcp_syncookies\" not allowed with host net enabled");
        assert_eq!(e[2], "spec.securityContext.sysctls[2]: SysctlForbidden: forbidden sysctl: \"vm.swappiness\" is not known to be namespaced");
    }

    #[test]
    fn profiles_follow_container_then_annotation_then_pod() {
        let p = pod(&format!(
            "{HEAD}  securityContext: {{seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n  - {{name: a, image: i}}\n  - {{name: b, image: i, securityContext: {{seccompProfile: {{type: Unconfined}}}}}}\n  - {{name: c, image: i, securityContext: {{privileged: true}}}}\n"
        ));
        let h = host();
        let a = container(&h, &p, &p.spec.containers[0], "spec.containers[0]").unwrap();
        assert!(a.seccomp.is_some() && !a.privileged);
        let b = container(&h, &p, &p.spec.containers[1], "spec.containers[1]").unwrap();
        assert!(b.seccomp.is_none());
        let c = container(&h, &p, &p.spec.containers[2], "spec.containers[2]").unwrap();
        assert!(c.privileged && c.seccomp.is_none() && c.capabilities.len() >= 40);

        let p = pod(&format!(
            "{HEAD}  containers:\n  - {{name: a, image: i, securityContext: {{seccompProfile: {{type: Localhost, localhostProfile: profiles/audit.json}}}}}}\n"
        ));
        let e = container(&h, &p, &p.spec.containers[0], "spec.containers[0]").unwrap_err();
        assert!(e[0].starts_with("spec.containers[0].securityContext.seccompProfile.localhostProfile: CreateContainerError: cannot load seccomp profile \"/nonexistent/profiles/audit.json\""), "{e:?}");

        let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    container.apparmor.security.beta.kubernetes.io/a: localhost/k8s-apparmor-example-deny-write\nspec:\n  containers: [{name: a, image: i}, {name: b, image: i, securityContext: {appArmorProfile: {type: Unconfined}}}]\n";
        let p = pod(yaml);
        let e = container(&h, &p, &p.spec.containers[0], "spec.containers[0]").unwrap_err();
        assert_eq!(e, ["spec.containers[0].securityContext.appArmorProfile: AppArmor: Cannot enforce AppArmor: AppArmor is not enabled on the host"]);
        assert!(container(&h, &p, &p.spec.containers[1], "spec.containers[1]").is_ok());
        let mut with = h.clone();
        with.apparmor = true;
        let a = container(&with, &p, &p.spec.containers[0], "spec.containers[0]").unwrap();
        assert_eq!(
            a.apparmor_profile.as_deref(),
            Some("k8s-apparmor-example-deny-write")
        );
    }
}
