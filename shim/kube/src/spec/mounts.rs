//! The `mounts` of a container's spec: the kernel filesystems every container gets (containerd's
//! list and options), a read-only cgroup view, then the Pod's bind mounts; and the paths masked
//! or made read-only under `/proc` and `/sys`.

use std::path::PathBuf;

use libcontainer::oci_spec::runtime::{Mount, MountBuilder};

use super::{Bind, SpecError};

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

/// (destination, type, source, options) of the filesystems containerd gives every container
/// (`oci.populateDefaultUnixSpec`).
const KERNEL_FILESYSTEMS: [(&str, &str, &str, &[&str]); 6] = [
    ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ),
    (
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ),
];

/// One mount with every field given.
fn mount(
    destination: impl Into<PathBuf>,
    typ: &str,
    source: impl Into<PathBuf>,
    options: &[&str],
) -> Result<Mount, SpecError> {
    let destination = destination.into();
    MountBuilder::default()
        .destination(destination.clone())
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|source| SpecError::Builder {
            what: "mounts",
            detail: format!("{}: {source}", destination.display()),
        })
}

/// The spec's mount list, in the order they are mounted.
pub fn build(binds: &[Bind], privileged: bool) -> Result<Vec<Mount>, SpecError> {
    // containerd (`WithWriteableSysfs`, `WithWriteableCgroupfs`): a privileged container gets
    // `/sys` and the cgroups read-write.
    let writable = |options: &[&'static str]| -> Vec<&'static str> {
        let mut o = options.to_vec();
        if privileged {
            o.retain(|x| *x != "ro");
        }
        o
    };
    let mut mounts = KERNEL_FILESYSTEMS
        .iter()
        .map(|(dest, typ, source, options)| mount(*dest, typ, *source, &writable(options)))
        .collect::<Result<Vec<_>, _>>()?;
    // Read-only: the engine makes it the container's own cgroups (`Cgroups::harden`); a
    // privileged container's stays the host's, writable, as containerd leaves it.
    mounts.push(mount(
        "/sys/fs/cgroup",
        "cgroup",
        "cgroup",
        &writable(&["nosuid", "noexec", "nodev", "relatime", "ro"]),
    )?);
    for b in binds {
        let mode = if b.readonly { "ro" } else { "rw" };
        let mut options = vec!["rbind", b.propagation, mode];
        if b.recursive_readonly {
            options.push("rro");
        }
        mounts.push(mount(b.destination.as_str(), "bind", &b.source, &options)?);
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_filesystems_come_first_then_a_read_only_cgroup_view_then_binds() {
        let binds = [
            Bind::private("/v".into(), "/data", true),
            Bind {
                propagation: "rslave",
                recursive_readonly: true,
                ..Bind::private("/w".into(), "/work", false)
            },
        ];
        let mounts = build(&binds, false).unwrap();
        let dests: Vec<_> = mounts
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/dev",
                "/dev/pts",
                "/dev/shm",
                "/dev/mqueue",
                "/sys",
                "/sys/fs/cgroup",
                "/data",
                "/work"
            ]
        );
        let opts = |i: usize| mounts[i].options().clone().unwrap();
        assert!(opts(5).contains(&"ro".to_string()));
        assert!(opts(6).contains(&"ro".to_string()));
        assert_eq!(mounts[7].typ().as_deref(), Some("bind"));
        assert_eq!(
            mounts[7].source().as_deref(),
            Some(std::path::Path::new("/v"))
        );
        assert_eq!(opts(7), ["rbind", "rprivate", "ro"]);
        assert_eq!(opts(8), ["rbind", "rslave", "rw", "rro"]);
        assert_eq!(
            mounts[3].source().as_deref(),
            Some(std::path::Path::new("shm"))
        );
    }
}
