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
        /// The Pod's user namespace (`hostUsers: false`): the layers are seen through an
        /// ID-mapped bind (root's files are the Pod's root's) and the writable layer is owned
        /// by the Pod's root.
        idmap: Option<crate::sandbox::PodUserns>,
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
        Rootfs::Overlay {
            layers,
            layer_dir,
            idmap,
        } => {
            // Unmounts what is mounted inside first (an ID-mapped bind of the layers), so that
            // nothing of an image is ever removed through it.
            let _ = crate::teardown::remove_dir(layer_dir);
            let (upper, work) = (layer_dir.join("upper"), layer_dir.join("work"));
            let mut lower: Vec<PathBuf> = layers.iter().rev().cloned().collect();
            if let Some(userns) = idmap {
                lower = idmapped_layers(journal, &lower, layer_dir, userns)?;
                for dir in [&upper, &work] {
                    fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
                    crate::userns::chown_root(dir, userns.block)?;
                }
            }
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

/// The layers (top first) as an overlay sees them in a Pod's user namespace: one ID-mapped bind
/// of the directory that holds them (the image store's layer directory; overlayfs takes
/// ID-mapped lower layers, though this kernel cannot ID-map an overlay mount itself), recorded
/// first, at `layer_dir/lower`; the layers' paths below it (in the order given). Also the
/// layers of a Pod's `image` volumes.
pub fn idmapped_layers(
    journal: &mut Journal,
    layers: &[PathBuf],
    layer_dir: &Path,
    userns: &crate::sandbox::PodUserns,
) -> Result<Vec<PathBuf>, Error> {
    let Some(store) = layers.first().and_then(|l| l.parent()) else {
        return Ok(layers.to_vec());
    };
    if layers.iter().any(|l| l.parent() != Some(store)) {
        return Err(Error::Spec {
            id: layer_dir.display().to_string(),
            detail:
                "the image layers of a Pod with its own user namespace must be in one directory"
                    .into(),
        });
    }
    let mapped = layer_dir.join("lower");
    fs::create_dir_all(&mapped).map_err(Error::io("create", &mapped))?;
    journal.record(Resource::Mount {
        path: mapped.clone(),
    })?;
    let ns = crate::userns::open(&userns.pin)?;
    crate::sys::idmapped_bind(store, &mapped, ns, true).map_err(|source| MountError::Mount {
        what: "ID-mapped bind of the image layers",
        target: mapped.clone(),
        source: nix::errno::Errno::from_raw(source.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Ok(layers
        .iter()
        .map(|l| mapped.join(l.file_name().unwrap_or_default()))
        .collect())
}

/// Remove a container's writable-layer directory: the ID-mapped bind of the image layers in it
/// (a Pod with its own user namespace) is unmounted and forgotten first, so that nothing is
/// ever removed through it.
pub fn remove_layer_dir(journal: &mut Journal, layer_dir: &Path) -> Result<(), Error> {
    let mapped = Resource::Mount {
        path: layer_dir.join("lower"),
    };
    if journal.resources.contains(&mapped) {
        crate::teardown::remove(&mapped).map_err(|detail| Error::Runtime {
            container: layer_dir.display().to_string(),
            action: "unmount the image layers of",
            detail,
        })?;
        journal.forget(&mapped)?;
    }
    crate::teardown::remove_dir(layer_dir).map_err(|detail| Error::Runtime {
        container: layer_dir.display().to_string(),
        action: "remove the writable layer of",
        detail,
    })
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
