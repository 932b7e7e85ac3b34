//! A container's root filesystem: an overlay of image layers with a fresh writable layer (what
//! `podshim run` makes from its image store), or the mounts a containerd snapshotter hands over
//! (`Create`'s `rootfs`), mounted at the bundle's `rootfs`. The mount point is recorded in the
//! journal before anything is mounted.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount as mount2, MsFlags};

use crate::error::Error;
use crate::journal::{Journal, Resource};
use crate::mounts::{self, MountError};

/// One mount as containerd describes it (`containerd.types.Mount`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountSpec {
    /// e.g. `overlay`, `bind`, `tmpfs`.
    pub kind: String,
    pub source: String,
    pub options: Vec<String>,
}

/// What a root filesystem is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rootfs {
    /// Image layers (lowest first) under a new writable layer in `layer_dir` (its `upper` and
    /// `work`; anything already there is removed first, as a restarted Kubernetes container
    /// gets a fresh one).
    Overlay {
        layers: Vec<PathBuf>,
        layer_dir: PathBuf,
    },
    /// Mounts stacked on the target in order (containerd's rootfs of a task).
    Mounts(Vec<MountSpec>),
    /// A directory that already holds the root filesystem (a bundle's own `rootfs`).
    Existing,
}

/// Mount `rootfs` at `target` (created if needed), recording the mount point first.
pub fn mount(journal: &mut Journal, rootfs: &Rootfs, target: &Path) -> Result<(), Error> {
    match rootfs {
        Rootfs::Existing => Ok(()),
        Rootfs::Overlay { layers, layer_dir } => {
            let _ = fs::remove_dir_all(layer_dir);
            let (upper, work) = (layer_dir.join("upper"), layer_dir.join("work"));
            let mut lower: Vec<PathBuf> = layers.iter().rev().cloned().collect();
            if lower.is_empty() {
                let empty = layer_dir.join("empty");
                fs::create_dir_all(&empty).map_err(Error::io("create", &empty))?;
                lower.push(empty);
            }
            journal.record(Resource::Mount {
                path: target.to_path_buf(),
            })?;
            mounts::overlay(&lower, &upper, &work, target)?;
            Ok(())
        }
        Rootfs::Mounts(list) => {
            fs::create_dir_all(target).map_err(Error::io("create", target))?;
            journal.record(Resource::Mount {
                path: target.to_path_buf(),
            })?;
            for m in list {
                mount_one(m, target)?;
            }
            Ok(())
        }
    }
}

/// Mount flags and data of containerd's option strings (mount(8) names).
fn options(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match o.as_str() {
            "ro" => flags |= MsFlags::MS_RDONLY,
            "rw" | "defaults" => {}
            "bind" => flags |= MsFlags::MS_BIND,
            "rbind" => flags |= MsFlags::MS_BIND | MsFlags::MS_REC,
            "nosuid" => flags |= MsFlags::MS_NOSUID,
            "nodev" => flags |= MsFlags::MS_NODEV,
            "noexec" => flags |= MsFlags::MS_NOEXEC,
            "noatime" => flags |= MsFlags::MS_NOATIME,
            "relatime" => flags |= MsFlags::MS_RELATIME,
            "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => {}
            other => data.push(other.to_string()),
        }
    }
    (flags, data.join(","))
}

fn mount_one(m: &MountSpec, target: &Path) -> Result<(), MountError> {
    let (flags, data) = options(&m.options);
    let fail = |source| MountError::Mount {
        what: "rootfs",
        target: target.into(),
        source,
    };
    let bind = flags.contains(MsFlags::MS_BIND);
    let fstype = (!bind).then_some(m.kind.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    mount2(Some(m.source.as_str()), target, fstype, flags, data).map_err(fail)?;
    // A bind mount ignores MS_RDONLY until it is remounted.
    if bind && flags.contains(MsFlags::MS_RDONLY) {
        mount2(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .map_err(fail)?;
    }
    Ok(())
}

/// Unmount a root filesystem and forget it (the writable layer's directory is the caller's).
pub fn unmount(journal: &mut Journal, target: &Path) -> Result<(), Error> {
    let r = Resource::Mount {
        path: target.to_path_buf(),
    };
    crate::teardown::remove(&r).map_err(|detail| Error::Runtime {
        container: target.display().to_string(),
        action: "unmount the root filesystem of",
        detail,
    })?;
    journal.forget(&r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containerd_options_become_flags_and_data() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (f, d) = options(&s(&["ro", "rbind", "nosuid"]));
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC));
        assert!(f.contains(MsFlags::MS_NOSUID));
        assert_eq!(d, "");
        let (f, d) = options(&s(&[
            "index=off",
            "lowerdir=/a:/b",
            "upperdir=/u",
            "workdir=/w",
        ]));
        assert!(f.is_empty());
        assert_eq!(d, "index=off,lowerdir=/a:/b,upperdir=/u,workdir=/w");
    }
}
