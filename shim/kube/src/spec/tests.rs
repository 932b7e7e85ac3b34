//! Unit tests of the whole spec: what libcontainer is given, field by field, and the exact
//! `config.json` the JSON-built spec of earlier versions produced.

use libcontainer::oci_spec::runtime::{Capability, LinuxNamespaceType, Spec};
use serde_json::json;

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
        terminal: false,
        no_new_privileges: false,
        netns: "/run/p/netns".into(),
        ipc: Namespace::Join("/proc/9/ns/ipc".into()),
        pid: Namespace::Own,
        utsns: "/proc/9/ns/uts".into(),
        userns: None,
        cgroups_path: "/podshim/u/c".into(),
        binds: vec![Bind::private("/v".into(), "/data", true)],
        resources: Resources::default(),
        limits: HostLimits {
            oom_score_adj: 0,
            nofile_hard: 20000,
        },
        privileged: false,
        unmasked_proc: false,
        devices: vec![],
        seccomp: None,
        apparmor_profile: None,
        sysctls: Default::default(),
    }
}

#[test]
fn spec_has_security_defaults() {
    let spec = build(&sample()).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    let devices = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    assert_eq!(
        (devices[0].allow(), devices[0].access().as_deref()),
        (false, Some("rwm"))
    );
    let process = spec.process().as_ref().unwrap();
    let caps = process.capabilities().as_ref().unwrap();
    assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
    assert_eq!(caps.bounding(), caps.effective());
    assert_eq!(caps.bounding(), caps.permitted());
    assert!(caps.inheritable().is_none() && caps.ambient().is_none());
    assert!(caps
        .bounding()
        .as_ref()
        .unwrap()
        .contains(&Capability::NetBindService));
    let masked = linux.masked_paths().as_ref().unwrap();
    assert!(masked.contains(&"/sys/devices/virtual/powercap".to_string()));
    assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
    let rlimits = process.rlimits().as_ref().unwrap();
    assert_eq!((rlimits[0].hard(), rlimits[0].soft()), (20000, 20000));
    let ns = linux.namespaces().as_ref().unwrap();
    assert_eq!(ns[2].typ(), LinuxNamespaceType::Network);
    assert_eq!(ns[2].path().as_deref(), Some(Path::new("/run/p/netns")));
    assert!(ns[0].path().is_none() && ns[1].path().is_none());
    assert_eq!(spec.hostname(), &None);
    assert_eq!(process.no_new_privileges(), Some(false));
    assert_eq!(process.oom_score_adj(), Some(1000));
}

#[test]
fn limits_and_the_host_floor_reach_the_spec() {
    let mut c = sample();
    c.resources = Resources {
        memory_limit: Some(32 << 20),
        memory_swap: Some(32 << 20),
        cpu_shares: Some(256),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        oom_score_adj: -997,
    };
    let spec = build(&c).unwrap();
    let r = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
    assert_eq!(r.memory().as_ref().unwrap().limit(), Some(32 << 20));
    assert_eq!(r.cpu().as_ref().unwrap().shares(), Some(256));
    // Guaranteed asks for -997; this host's floor (0) wins.
    assert_eq!(spec.process().as_ref().unwrap().oom_score_adj(), Some(0));
}

#[test]
fn an_unknown_capability_is_an_error() {
    let mut c = sample();
    c.capabilities.push("CAP_TELEPORT".into());
    assert_eq!(
        build(&c).unwrap_err().to_string(),
        "unknown capability \"CAP_TELEPORT\""
    );
}

/// The `config.json` the serde_json-built spec wrote before the typed builders, as JSON: the
/// typed spec must serialize to exactly this (capability sets compared as sets).
fn earlier_config(c: &ContainerSpec, oom: i32, resources: serde_json::Value) -> serde_json::Value {
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
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 20000, "soft": 20000}],
            "noNewPrivileges": c.no_new_privileges,
            "oomScoreAdj": oom,
        },
        "root": {"path": c.rootfs, "readonly": c.readonly_rootfs},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": "/v", "options": ["rbind", "rprivate", "ro"]},
        ],
        "linux": {
            "cgroupsPath": c.cgroups_path,
            "resources": resources,
            "namespaces": [
                {"type": "pid"},
                {"type": "mount"},
                {"type": "network", "path": c.netns},
                {"type": "ipc", "path": "/proc/9/ns/ipc"},
                {"type": "uts", "path": c.utsns},
            ],
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

/// Capability arrays come from a set: sort them so two specs compare.
fn sorted_caps(mut v: serde_json::Value) -> serde_json::Value {
    for set in ["bounding", "effective", "permitted"] {
        if let Some(a) = v["process"]["capabilities"][set].as_array_mut() {
            a.sort_by_key(|c| c.as_str().unwrap_or_default().to_string());
        }
    }
    v
}

#[test]
fn the_typed_spec_is_the_config_json_of_earlier_versions() {
    let c = sample();
    let typed = serde_json::to_value(build(&c).unwrap()).unwrap();
    let earlier = earlier_config(
        &c,
        1000,
        json!({"devices": [{"allow": false, "access": "rwm"}]}),
    );
    assert_eq!(sorted_caps(typed), sorted_caps(earlier));

    let mut c = sample();
    c.uid = 1000;
    c.gid = 3000;
    c.additional_gids = vec![2000, 4000];
    c.readonly_rootfs = true;
    c.no_new_privileges = true;
    c.capabilities = capabilities(&["NET_ADMIN".into()], &["ALL".into()]);
    c.resources = Resources {
        memory_limit: Some(32 << 20),
        memory_swap: Some(32 << 20),
        cpu_shares: Some(256),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        oom_score_adj: 500,
    };
    let typed = serde_json::to_value(build(&c).unwrap()).unwrap();
    let resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 32 << 20, "swap": 32 << 20},
        "unified": {"memory.swap.max": "0"},
        "cpu": {"shares": 256, "quota": 50_000, "period": 100_000},
    });
    let earlier = earlier_config(&c, 500, resources);
    assert_eq!(sorted_caps(typed.clone()), sorted_caps(earlier.clone()));
    // And it reads back as the same typed spec libcontainer loads from the bundle.
    let back: Spec = serde_json::from_value(typed).unwrap();
    assert_eq!(back, build(&c).unwrap());
    let from_earlier: Spec = serde_json::from_value(earlier).unwrap();
    assert_eq!(from_earlier, back);
}

#[test]
fn host_and_shared_namespaces() {
    let mut c = sample();
    c.pid = Namespace::Host;
    c.ipc = Namespace::Host;
    let spec = build(&c).unwrap();
    let types: Vec<_> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    // hostPID and hostIPC: no PID or IPC namespace of the container's or the Pod's.
    assert_eq!(
        types,
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Uts
        ]
    );
    c.pid = Namespace::Join("/proc/9/ns/pid_for_children".into());
    let spec = build(&c).unwrap();
    let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert_eq!(ns[0].typ(), LinuxNamespaceType::Pid);
    assert_eq!(
        ns[0].path().as_deref(),
        Some(Path::new("/proc/9/ns/pid_for_children"))
    );
}

#[test]
fn privileged_masks_nothing_allows_every_device_and_writes_sys() {
    let mut c = sample();
    c.privileged = true;
    c.devices = devices::host_devices(Path::new("/dev"));
    c.sysctls
        .insert("net.ipv4.ip_unprivileged_port_start".into(), "0".into());
    let spec = build(&c).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.readonly_paths().as_ref().unwrap().is_empty());
    let rule = &linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap()[0];
    assert!(rule.allow() && rule.typ().is_none() && rule.access().as_deref() == Some("rwm"));
    assert!(!linux.devices().as_ref().unwrap().is_empty());
    let sys = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/sys"))
        .unwrap();
    assert!(!sys.options().as_ref().unwrap().contains(&"ro".to_string()));
    assert_eq!(
        linux
            .sysctl()
            .as_ref()
            .unwrap()
            .get("net.ipv4.ip_unprivileged_port_start")
            .map(String::as_str),
        Some("0")
    );

    let mut c = sample();
    c.unmasked_proc = true;
    c.seccomp = Some(seccomp::runtime_default(&c.capabilities).unwrap());
    c.apparmor_profile = Some("k8s-deny-write".into());
    let spec = build(&c).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.masked_paths().as_ref().unwrap().is_empty());
    assert!(linux.seccomp().is_some());
    let rule = &linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap()[0];
    assert!(!rule.allow());
    assert_eq!(
        spec.process()
            .as_ref()
            .unwrap()
            .apparmor_profile()
            .as_deref(),
        Some("k8s-deny-write")
    );
}
