//! The OCI runtime spec (`config.json`) of one container, with the security defaults containerd
//! puts in every spec (libcontainer applies only what it is given).

use std::path::PathBuf;

use serde_json::{json, Value};

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

/// containerd's masked paths (`pkg/oci/spec.go`), which include powercap (CVE-2020-8694).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/sys/fs/selinux",
];

/// containerd's read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Every capability name the kernel headers know, for `drop: [ALL]` / `add: [ALL]`.
const ALL_CAPS: [&str; 41] = [
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

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
}

/// What one container's spec is made of; everything Kubernetes-specific is resolved by the caller.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    /// Namespaces joined by path: the netns pin, and the pause process's IPC and UTS.
    pub netns: PathBuf,
    pub ipcns: PathBuf,
    pub utsns: PathBuf,
    pub cgroups_path: String,
    pub binds: Vec<Bind>,
    pub resources: Resources,
    pub limits: HostLimits,
}

/// A container's cgroup limits and the `oom_score_adj` it should get, already worked out from its
/// Kubernetes `resources` (see `pod::resources`); `None` leaves the cgroup's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Resources {
    /// `memory.limit_in_bytes` / `memory.max`.
    pub memory_limit: Option<i64>,
    /// Memory plus swap (v1 `memory.memsw.limit_in_bytes`; v2 `memory.swap.max` is this minus the
    /// limit): equal to the limit means no swap, as the kubelet's `ConfigureNoSwap` does.
    pub memory_swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    /// Before clamping to what the host allows.
    pub oom_score_adj: i32,
}

impl Default for Resources {
    /// No limits, and Kubernetes' BestEffort `oom_score_adj`.
    fn default() -> Self {
        Resources {
            memory_limit: None,
            memory_swap: None,
            cpu_shares: None,
            cpu_quota: None,
            cpu_period: None,
            oom_score_adj: 1000,
        }
    }
}

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

/// The `config.json` of one container.
pub fn build(c: &ContainerSpec) -> Value {
    let (oom, nofile) = clamp(c.limits, c.resources.oom_score_adj, 1_048_576);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    // Read-only: the engine makes it the container's own cgroups (`Cgroups::harden`).
    mounts.push(json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}));
    let namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "network", "path": c.netns}),
        json!({"type": "ipc", "path": c.ipcns}),
        json!({"type": "uts", "path": c.utsns}),
    ];
    for b in &c.binds {
        let mode = if b.readonly { "ro" } else { "rw" };
        mounts.push(json!({
            "destination": b.destination,
            "type": "bind",
            "source": b.source,
            "options": ["rbind", "rprivate", mode],
        }));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": c.uid, "gid": c.gid, "additionalGids": c.additional_gids},
            "args": c.args,
            "env": c.env,
            "cwd": c.cwd,
            "capabilities": {
                "bounding": c.capabilities,
                "effective": c.capabilities,
                "permitted": c.capabilities,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
            "noNewPrivileges": c.no_new_privileges,
            "oomScoreAdj": oom,
        },
        "root": {"path": c.rootfs, "readonly": c.readonly_rootfs},
        "mounts": mounts,
        "linux": {
            "cgroupsPath": c.cgroups_path,
            "resources": resources(&c.resources),
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

/// `linux.resources`: the deny-all device rule first (libcontainer adds the standard allow list),
/// then the memory and CPU limits that are set.
fn resources(r: &Resources) -> Value {
    let mut v = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let mut memory = serde_json::Map::new();
    if let Some(limit) = r.memory_limit {
        memory.insert("limit".into(), json!(limit));
    }
    if let Some(swap) = r.memory_swap {
        memory.insert("swap".into(), json!(swap));
    }
    if !memory.is_empty() {
        v["memory"] = Value::Object(memory);
    }
    // No swap (memory+swap equal to the limit): the kubelet asks cgroup v2 for it as
    // `memory.swap.max: 0` in `unified` (`ConfigureNoSwap`), because converting memory+swap to
    // v2's swap alone gives 0, which libcgroups 0.7 (`v2::memory::Memory::set`) does not write,
    // leaving swap unlimited. The v1 manager ignores `unified`.
    if r.memory_swap.is_some() && r.memory_swap == r.memory_limit {
        v["unified"] = json!({"memory.swap.max": "0"});
    }
    let mut cpu = serde_json::Map::new();
    if let Some(shares) = r.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(quota) = r.cpu_quota {
        cpu.insert("quota".into(), json!(quota));
    }
    if let Some(period) = r.cpu_period {
        cpu.insert("period".into(), json!(period));
    }
    if !cpu.is_empty() {
        v["cpu"] = Value::Object(cpu);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerSpec {
        ContainerSpec {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            rootfs: "/r".into(),
            readonly_rootfs: false,
            capabilities: capabilities(&[], &[]),
            no_new_privileges: false,
            netns: "/run/p/netns".into(),
            ipcns: "/proc/9/ns/ipc".into(),
            utsns: "/proc/9/ns/uts".into(),
            cgroups_path: "/podshim/u/c".into(),
            binds: vec![Bind {
                source: "/v".into(),
                destination: "/data".into(),
                readonly: true,
            }],
            resources: Resources::default(),
            limits: HostLimits {
                oom_score_adj: 0,
                nofile_hard: 20000,
            },
        }
    }

    #[test]
    fn spec_has_security_defaults_and_parses_as_oci() {
        let v = build(&sample());
        let _: libcontainer::oci_spec::runtime::Spec = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(
            v["linux"]["resources"]["devices"][0],
            json!({"allow": false, "access": "rwm"})
        );
        assert_eq!(
            v["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert!(v["linux"]["maskedPaths"]
            .as_array()
            .unwrap()
            .contains(&json!("/sys/devices/virtual/powercap")));
        assert_eq!(v["linux"]["readonlyPaths"].as_array().unwrap().len(), 5);
        assert_eq!(v["process"]["rlimits"][0]["hard"], json!(20000));
        assert_eq!(v["linux"]["namespaces"][2]["path"], json!("/run/p/netns"));
    }

    #[test]
    fn resources_become_linux_resources() {
        let mut c = sample();
        let v = build(&c);
        assert_eq!(v["linux"]["resources"].as_object().unwrap().len(), 1);
        assert_eq!(v["process"]["oomScoreAdj"], json!(1000));
        c.resources = Resources {
            memory_limit: Some(32 << 20),
            memory_swap: Some(32 << 20),
            cpu_shares: Some(256),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            oom_score_adj: -997,
        };
        let v = build(&c);
        let spec: libcontainer::oci_spec::runtime::Spec =
            serde_json::from_value(v.clone()).unwrap();
        let r = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
        let mem = r.memory().as_ref().unwrap();
        assert_eq!((mem.limit(), mem.swap()), (Some(32 << 20), Some(32 << 20)));
        let unified = r.unified().as_ref().unwrap();
        assert_eq!(
            unified.get("memory.swap.max").map(String::as_str),
            Some("0")
        );
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(
            (cpu.shares(), cpu.quota(), cpu.period()),
            (Some(256), Some(50_000), Some(100_000))
        );
        assert_eq!(r.devices().as_ref().unwrap().len(), 1);
        // Guaranteed asks for -997; this host's floor (0) wins.
        assert_eq!(v["process"]["oomScoreAdj"], json!(0));
    }

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
}
