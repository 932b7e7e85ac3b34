//! What the container runtime cannot carry out, refused at validation with the field's path:
//! strings with a NUL byte (the OCI runtime spec's strings are C strings to the kernel) and
//! volume mounts onto the paths the runtime itself mounts or writes.
//!
//! Kubernetes' API server accepts both; runc (or the kubelet) fails later, after the Pod has
//! been created. These checks are podshim's, so the wording says why.

use super::super::error::{FieldError, FieldPath};
use super::super::types::{Container, Probe};

/// Mount destinations the runtime owns, with why a volume may not go there. Each covers the
/// paths beneath it too. `/dev/shm` is not here: a Memory emptyDir mounted there replaces the
/// default one, as with containerd (the usual way to enlarge it).
const RUNTIME_MOUNTS: &[(&str, &str)] = &[
    (
        "/proc",
        "procfs is mounted there (runc refuses any other mount on /proc)",
    ),
    (
        "/sys",
        "sysfs and the cgroup filesystem are mounted there, read-only",
    ),
    ("/dev/pts", "the container's devpts is mounted there"),
];

/// Destinations refused themselves, not the paths beneath them.
const RUNTIME_MOUNT_POINTS: &[(&str, &str)] = &[
    ("/", "the container's root filesystem is there"),
    (
        "/dev",
        "the container's /dev (a tmpfs with its device nodes) is mounted there",
    ),
];

/// Files every container gets from the Pod, as the kubelet writes them.
const POD_FILES: &[&str] = &["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"];

const NUL: &str = "must not contain a NUL byte: the OCI runtime spec cannot carry it";

/// The runtime checks of one container.
pub fn check_container(c: &Container, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let mut text = |path: FieldPath, s: &str| {
        if s.contains('\0') {
            errs.push(FieldError::invalid(&path, s, NUL));
        }
    };
    for (name, list) in [("command", &c.command), ("args", &c.args)] {
        for (i, s) in list.iter().enumerate() {
            text(p.child(name).index(i), s);
        }
    }
    if let Some(w) = &c.working_dir {
        text(p.child("workingDir"), w);
    }
    for (i, e) in c.env.iter().enumerate() {
        text(p.child("env").index(i).child("name"), &e.name);
        if let Some(v) = &e.value {
            text(p.child("env").index(i).child("value"), v);
        }
    }
    for (i, m) in c.volume_mounts.iter().enumerate() {
        let mp = p.child("volumeMounts").index(i);
        text(mp.child("mountPath"), &m.mount_path);
        if let Some(s) = &m.sub_path {
            text(mp.child("subPath"), s);
        }
    }
    if let Some(t) = &c.termination_message_path {
        text(p.child("terminationMessagePath"), t);
    }
    let probes = [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ];
    for (name, probe) in probes {
        if let Some(Probe {
            exec: Some(exec), ..
        }) = probe
        {
            for (i, s) in exec.command.iter().enumerate() {
                text(p.child(name).child("exec").child("command").index(i), s);
            }
        }
    }
    if let Some(l) = &c.lifecycle {
        for (name, hook) in [("postStart", &l.post_start), ("preStop", &l.pre_stop)] {
            let exec = hook.as_ref().and_then(|h| h.exec.as_ref());
            for (i, s) in exec
                .map(|e| e.command.as_slice())
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let cp = p
                    .child("lifecycle")
                    .child(name)
                    .child("exec")
                    .child("command");
                text(cp.index(i), s);
            }
        }
    }
    let caps = c
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref());
    if let Some(caps) = caps {
        for (name, list) in [("add", &caps.add), ("drop", &caps.drop)] {
            for (i, s) in list.iter().enumerate() {
                let cp = p.child("securityContext").child("capabilities").child(name);
                text(cp.index(i), s);
            }
        }
    }
    errs.extend(check_mount_paths(c, p));
    errs
}

/// Volume mounts onto a path the runtime mounts or writes, however the path is spelled
/// (`/proc/`, `//proc`, `/dev/../proc`).
fn check_mount_paths(c: &Container, p: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let termination = c.termination_message_path.as_deref().map(clean);
    for (i, m) in c.volume_mounts.iter().enumerate() {
        if m.mount_path.is_empty() {
            continue;
        }
        let path = clean(&m.mount_path);
        let beneath = |root: &str| path == root || path.starts_with(&format!("{root}/"));
        let why = RUNTIME_MOUNTS
            .iter()
            .find(|(root, _)| beneath(root))
            .map(|(root, why)| format!("must not be {root} or beneath it: {why}"))
            .or_else(|| {
                RUNTIME_MOUNT_POINTS
                    .iter()
                    .find(|(root, _)| path == *root)
                    .map(|(root, why)| format!("must not be {root}: {why}"))
            })
            .or_else(|| {
                POD_FILES.contains(&path.as_str()).then(|| {
                    format!("must not be {path}: podshim writes it for every container, as the kubelet does")
                })
            })
            .or_else(|| {
                (termination.as_deref() == Some(path.as_str())).then(|| {
                    format!("must not be the container's terminationMessagePath ({path}): podshim mounts the termination message file there")
                })
            });
        if let Some(why) = why {
            let mp = p.child("volumeMounts").index(i).child("mountPath");
            errs.push(FieldError::invalid(&mp, &m.mount_path, why));
        }
    }
    errs
}

/// The absolute path a container path names, resolved lexically (`.`, `..`, repeated and
/// trailing `/`) from the container's root, as the runtime joins it to the root filesystem.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_from_the_root() {
        for (p, want) in [
            ("/proc", "/proc"),
            ("/proc/", "/proc"),
            ("//proc", "/proc"),
            ("/dev/../proc", "/proc"),
            ("/../../proc/./", "/proc"),
            ("proc", "/proc"),
            ("/", "/"),
            ("/a/b/..", "/a"),
        ] {
            assert_eq!(clean(p), want, "{p}");
        }
    }
}
