//! OCI bundles for driving a shim directly, laid out as containerd lays them out
//! (`<state>/io.containerd.runtime.v2.task/<ns>/<id>`: `config.json` and an empty `rootfs` that
//! the shim mounts the request's rootfs mounts on): busybox unpacked once from the project's
//! offline archive as the lower layer of an overlay, and a spec with runc's `runc spec`
//! defaults (namespaces, mounts, masked and read-only paths, devices denied).

use std::path::{Path, PathBuf};

use containerd_shim_protos::api::Mount;
use serde_json::{json, Value};

/// Unpack the busybox OCI archive with umoci into `dir`; returns its rootfs.
pub fn unpack_busybox(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let archive = std::fs::File::open(podshim_tests::busybox_archive()).unwrap();
    tar::Archive::new(archive).unpack(&layout).unwrap();
    let unpacked = dir.join("unpacked");
    let out = std::process::Command::new(super::super::installed("umoci"))
        .args(["unpack", "--image"])
        .arg(format!("{}:1.35", layout.display()))
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    unpacked.join("rootfs")
}

/// An overlay over `lower` with its upper and work directories in `dir`, as containerd's
/// overlayfs snapshotter hands a container's rootfs to the shim.
pub fn overlay(lower: &Path, dir: &Path) -> Mount {
    let upper = dir.join("upper");
    let work = dir.join("work");
    std::fs::create_dir_all(&upper).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    let mut m = Mount::new();
    m.type_ = "overlay".into();
    m.source = "overlay".into();
    m.options = vec![
        "index=off".into(),
        format!("workdir={}", work.display()),
        format!("upperdir={}", upper.display()),
        format!("lowerdir={}", lower.display()),
    ];
    m
}

/// A spec for `args` with `runc spec`'s defaults, no terminal, in cgroup `cgroups_path`.
pub fn spec(args: &[&str], cgroups_path: &str) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps,
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "shim-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
                {"type": "mount"},
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    })
}

/// A bundle directory `<tasks>/<namespace>/<id>` with `config.json` and an empty `rootfs`.
pub fn make(tasks: &Path, namespace: &str, id: &str, spec: &Value) -> PathBuf {
    let bundle = tasks.join(namespace).join(id);
    std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec_pretty(spec).unwrap(),
    )
    .unwrap();
    bundle
}
