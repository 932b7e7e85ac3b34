//! The `process` of a container's spec: user, arguments, environment, capabilities (containerd's
//! defaults and Kubernetes' add/drop rules), rlimits and `oom_score_adj`, clamped to what this
//! host lets podshim ask for.

use std::collections::HashSet;
use std::str::FromStr;

use libcontainer::oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxCapabilitiesBuilder, PosixRlimitBuilder, PosixRlimitType,
    Process, ProcessBuilder, UserBuilder,
};

use super::{ContainerSpec, SpecError};

/// containerd's default capability set (`oci.defaultUnixCaps` in containerd's `pkg/oci`).
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability name the kernel headers know, for `drop: [ALL]` / `add: [ALL]`.
pub const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// containerd's default `RLIMIT_NOFILE` for a container.
const DEFAULT_NOFILE: u64 = 1_048_576;

/// What this host lets an unprivileged-by-CAP_SYS_RESOURCE root ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// The caller's own `oom_score_adj`: lowering below it needs CAP_SYS_RESOURCE.
    pub oom_score_adj: i32,
    /// The caller's hard RLIMIT_NOFILE: raising above it needs CAP_SYS_RESOURCE.
    pub nofile_hard: u64,
}

impl HostLimits {
    pub fn read() -> Self {
        let oom_score_adj = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let nofile_hard =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map(|(_, hard)| hard)
                .unwrap_or(1024);
        HostLimits {
            oom_score_adj,
            nofile_hard,
        }
    }
}

/// The kubelet's `oom_score_adj` (`qos.GetContainerOOMScoreAdjust`, e.g. -997 for Guaranteed) and
/// containerd's default nofile (1048576), both clamped to what the host allows.
pub fn clamp(limits: HostLimits, want_oom: i32, want_nofile: u64) -> (i32, u64) {
    (
        want_oom.clamp(limits.oom_score_adj, 1000),
        want_nofile.min(limits.nofile_hard),
    )
}

/// Kubernetes' capability rules: the runtime default set, then `add`, then `drop` (`ALL` allowed
/// in both; names with or without the `CAP_` prefix, in any case).
pub fn capabilities(add: &[String], drop: &[String]) -> Vec<String> {
    let norm = |c: &String| {
        let c = c.to_ascii_uppercase();
        if c.starts_with("CAP_") || c == "ALL" {
            c
        } else {
            format!("CAP_{c}")
        }
    };
    let add: Vec<String> = add.iter().map(norm).collect();
    let drop: Vec<String> = drop.iter().map(norm).collect();
    // containerd CRI's order (`setOCICapabilities`): ALL first, so that "drop ALL, add X" and
    // "add ALL, drop X" both work, then the individual adds, then the individual drops.
    let mut caps: Vec<String> = DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    if add.iter().any(|c| c == "ALL") {
        caps = ALL_CAPS.iter().map(|c| c.to_string()).collect();
    }
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    caps.extend(add.into_iter().filter(|c| c != "ALL"));
    caps.retain(|c| !drop.contains(c));
    // This host (and any without CAP_SYS_RESOURCE for root) cannot grant it.
    caps.retain(|c| c != "CAP_SYS_RESOURCE" || host_has_sys_resource());
    caps.sort();
    caps.dedup();
    caps
}

fn host_has_sys_resource() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|bits| bits & (1 << 24) != 0)
}

/// A capability name (`CAP_NET_ADMIN` or `NET_ADMIN`, any case) as oci-spec's type.
pub fn parse_capability(name: &str) -> Result<Capability, SpecError> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    Capability::from_str(bare).map_err(|_| SpecError::Capability {
        name: name.to_string(),
    })
}

/// The bounding, effective and permitted sets (no inheritable or ambient ones, as containerd).
fn capability_sets(names: &[String]) -> Result<LinuxCapabilities, SpecError> {
    let set = names
        .iter()
        .map(|n| parse_capability(n))
        .collect::<Result<HashSet<_>, _>>()?;
    let mut caps = LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .build()
        .map_err(SpecError::builder("process.capabilities"))?;
    // The builder starts from oci-spec's default, which fills these two.
    caps.set_inheritable(None);
    caps.set_ambient(None);
    Ok(caps)
}

/// The `process` object.
pub fn build(c: &ContainerSpec) -> Result<Process, SpecError> {
    let (oom, nofile) = clamp(c.limits, c.resources.oom_score_adj, DEFAULT_NOFILE);
    let user = UserBuilder::default()
        .uid(c.uid)
        .gid(c.gid)
        .additional_gids(c.additional_gids.clone())
        .build()
        .map_err(SpecError::builder("process.user"))?;
    let nofile = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .hard(nofile)
        .soft(nofile)
        .build()
        .map_err(SpecError::builder("process.rlimits"))?;
    let mut b = ProcessBuilder::default();
    if let Some(profile) = &c.apparmor_profile {
        b = b.apparmor_profile(profile.clone());
    }

    b.terminal(c.terminal)
        .user(user)
        .args(c.args.clone())
        .env(c.env.clone())
        .cwd(c.cwd.clone())
        .capabilities(capability_sets(&c.capabilities)?)
        .rlimits(vec![nofile])
        .no_new_privileges(c.no_new_privileges)
        .oom_score_adj(oom)
        .build()
        .map_err(SpecError::builder("process"))
        .map(|mut p| {
            // libcontainer 0.7 loads a seccomp filter before dropping capabilities (as it must
            // without no_new_privs) only when `noNewPrivileges` is absent, not when it is false
            // (`process/init/process.rs`): with a filter, false is written as absent (the same
            // meaning).
            if !c.no_new_privileges && c.seccomp.is_some() {
                p.set_no_new_privileges(None);
            }
            p
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped_to_the_host() {
        let host = HostLimits {
            oom_score_adj: 0,
            nofile_hard: 20000,
        };
        assert_eq!(clamp(host, -998, 1_048_576), (0, 20000));
        assert_eq!(clamp(host, 1000, 512), (1000, 512));
    }

    #[test]
    fn capabilities_follow_kubernetes_add_and_drop() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let caps = capabilities(&s(&["NET_ADMIN"]), &s(&["kill", "CAP_CHOWN"]));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(
            !caps.contains(&"CAP_KILL".to_string()) && !caps.contains(&"CAP_CHOWN".to_string())
        );
        assert_eq!(caps.len(), 13);
        assert_eq!(
            capabilities(&s(&["NET_BIND_SERVICE"]), &s(&["ALL"])),
            vec!["CAP_NET_BIND_SERVICE"]
        );
        assert!(capabilities(&[], &s(&["ALL"])).is_empty());
        assert!(capabilities(&s(&["ALL"]), &[]).len() >= 40);
    }

    #[test]
    fn every_known_capability_parses_and_unknown_ones_are_errors() {
        for name in ALL_CAPS {
            let cap = parse_capability(name).unwrap();
            assert_eq!(serde_json::to_value(cap).unwrap(), name);
        }
        assert_eq!(parse_capability("net_admin").unwrap(), Capability::NetAdmin);
        let err = parse_capability("CAP_FLY").unwrap_err();
        assert_eq!(err.to_string(), "unknown capability \"CAP_FLY\"");
    }
}
