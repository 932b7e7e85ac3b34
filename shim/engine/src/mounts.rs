//! The host mounts a Pod owns: container root filesystems (overlayfs), Memory emptyDirs (tmpfs)
//! and the network namespace pin (an nsfs bind mount). Unmounting is idempotent.
//!
//! A Pod's supervisor makes them in a mount namespace of its own ([`private_namespace`]): the
//! host's mount table then does not grow with every Pod, and neither does the work of each new
//! container's mount namespace (the kernel copies every mount of its parent's namespace into it,
//! and libcontainer reads the whole table several times per container).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statfs::{statfs, NSFS_MAGIC, OVERLAYFS_SUPER_MAGIC};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{path} is on overlayfs, which the kernel refuses as an overlay upper directory; put podshim's data root (--root) on a volume, a bind-mounted host directory or a tmpfs")]
    UpperOnOverlay { path: PathBuf },
    #[error(
        "overlay mount options for {target} are {len} bytes, over the kernel's page-size limit"
    )]
    OptionsTooLong { target: PathBuf, len: usize },
    #[error("cannot mount {what} on {target}")]
    Mount {
        what: &'static str,
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot unmount {target}")]
    Unmount {
        target: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot make a mount namespace of its own ({step})")]
    Namespace {
        step: &'static str,
        #[source]
        source: Errno,
    },
    #[error("cannot prepare {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> MountError + '_ {
    move |source| MountError::Io {
        path: path.into(),
        source,
    }
}

/// Fail early, with the fix, when `dir` is on overlayfs (as in a container without a volume).
pub fn check_not_overlay(dir: &Path) -> Result<(), MountError> {
    match statfs(dir) {
        Ok(st) if st.filesystem_type() == OVERLAYFS_SUPER_MAGIC => {
            Err(MountError::UpperOnOverlay { path: dir.into() })
        }
        _ => Ok(()),
    }
}

/// Mount an overlay at `target` with `lower` (top layer first), creating upper/work/target.
pub fn overlay(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    for dir in [upper, work, target] {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    check_not_overlay(upper)?;
    let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        upper.display(),
        work.display()
    );
    if data.len() >= 4096 {
        return Err(MountError::OptionsTooLong {
            target: target.into(),
            len: data.len(),
        });
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(|source| MountError::Mount {
        what: "overlay",
        target: target.into(),
        source,
    })
}

/// Mount a tmpfs at `target` (mode 1777 like an emptyDir), with `size=` when given.
pub fn tmpfs(target: &Path, size: Option<u64>) -> Result<(), MountError> {
    fs::create_dir_all(target).map_err(io_err(target))?;
    let mut data = String::from("mode=1777");
    if let Some(size) = size {
        data.push_str(&format!(",size={size}"));
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        flags,
        Some(data.as_str()),
    )
    .map_err(|source| MountError::Mount {
        what: "tmpfs",
        target: target.into(),
        source,
    })
}

/// Bind-mount `source` (a file, e.g. `/proc/PID/ns/net`) onto a new file at `target`.
pub fn bind_file(source: &Path, target: &Path) -> Result<(), MountError> {
    fs::File::create(target).map_err(io_err(target))?;
    mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|source| MountError::Mount {
        what: "bind",
        target: target.into(),
        source,
    })
}

/// Move this process into a mount namespace of its own whose mounts are slaves of the host's:
/// mounts the host makes later (a hostPath's submounts, `HostToContainer` propagation) still
/// reach it, and the mounts this process makes (its Pods' root filesystems, emptyDirs, netns
/// pins) stay out of the host's table. Call it while single-threaded (only the calling thread
/// moves) and before anything is mounted.
///
/// Other processes reach these mounts through the namespace's members (`/proc/PID/root/...` of
/// the Pod's pause, which is forked after this; see [`crate::journal::Journal::netns_pin`]).
/// When the last member dies (the supervisor SIGKILLed, then `gc` stops pause) the kernel
/// unmounts them all; `gc`'s unmount of the recorded paths then finds nothing mounted, which
/// counts as done.
pub fn private_namespace() -> Result<(), MountError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|source| MountError::Namespace {
        step: "unshare",
        source,
    })?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|source| MountError::Namespace {
        step: "make / a slave",
        source,
    })
}

/// Whether `path` is a namespace file (an nsfs bind mount) as this process sees it.
pub fn is_namespace_file(path: &Path) -> bool {
    statfs(path).is_ok_and(|st| st.filesystem_type() == NSFS_MAGIC)
}

/// Unmount `target` (lazily, so a busy mount does not stop teardown). Not mounted or missing
/// counts as done.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(MountError::Unmount {
            target: target.into(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upper_dir_on_overlayfs_names_the_path_and_the_fix() {
        let e = MountError::UpperOnOverlay {
            path: "/var/lib/podshim/containers/u".into(),
        };
        let msg = e.to_string();
        assert!(
            msg.starts_with("/var/lib/podshim/containers/u is on overlayfs"),
            "{msg}"
        );
        assert!(msg.contains("--root") && msg.contains("volume"), "{msg}");
    }

    #[test]
    fn a_directory_not_on_overlayfs_passes() {
        // The crate's own directory: on overlayfs only when the tests themselves run on one.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let on_overlay = statfs(dir).unwrap().filesystem_type() == OVERLAYFS_SUPER_MAGIC;
        assert_eq!(check_not_overlay(dir).is_err(), on_overlay);
    }
}
