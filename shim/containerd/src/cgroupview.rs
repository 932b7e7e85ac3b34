//! What a container sees at `/sys/fs/cgroup` on a cgroup v1 host, made as runc makes it, so
//! that a Pod moved from the runc handler to podshim's sees the same thing: a tmpfs with each
//! v1 hierarchy's cgroup of the container bound read-only below it, named hierarchies
//! (`name=systemd`) included. runc creates and joins the container's cgroup in a named
//! hierarchy; libcontainer leaves named hierarchies alone, so the shim does that part
//! ([`NamedCgroups`]).
//!
//! Where the host has co-mounted controllers (`cpu -> cpu,cpuacct` symlinks, which a spec
//! cannot create inside a tmpfs) or is cgroup v2, the spec is left to the engine's own
//! hardening (a read-only skeleton with the host's symlinks, or a cgroup namespace).

use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{Mount, MountBuilder, Spec};
use podshim_engine::cgroups::{cgroupfs_path, Cgroups, Mode};

const ROOT: &str = "/sys/fs/cgroup";

/// The named v1 hierarchies where the container's cgroup must be made and joined.
#[derive(Debug, Default)]
pub struct NamedCgroups {
    /// The cgroup path (relative to each hierarchy's root).
    pub path: String,
    /// The container's cgroup directory in each named hierarchy.
    pub dirs: Vec<PathBuf>,
}

impl NamedCgroups {
    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    pub fn create(&self) -> std::io::Result<()> {
        for d in &self.dirs {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }

    /// Put the container's init in them.
    pub fn join(&self, pid: i32) -> std::io::Result<()> {
        for d in &self.dirs {
            std::fs::write(d.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }
}

fn bind(source: &Path, destination: PathBuf) -> Mount {
    MountBuilder::default()
        .typ("bind")
        .source(source)
        .destination(destination)
        .options(
            ["rbind", "ro", "nosuid", "nodev", "noexec", "relatime"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .expect("a bind mount with every field is complete")
}

/// Replace the spec's read-only `cgroup` mount by runc's v1 view; returns the named cgroups
/// to make and join.
pub fn runc_view(spec: &mut Spec) -> NamedCgroups {
    let Ok(cgroups) = Cgroups::detect() else {
        return NamedCgroups::default();
    };
    if cgroups.mode == Mode::Unified || has_symlinks() {
        return NamedCgroups::default();
    }
    let Some(mounts) = spec.mounts().clone() else {
        return NamedCgroups::default();
    };
    let ro_cgroup = |m: &Mount| {
        m.typ().as_deref() == Some("cgroup") && m.options().iter().flatten().any(|o| o == "ro")
    };
    let Some(at) = mounts.iter().position(ro_cgroup) else {
        return NamedCgroups::default();
    };
    let rel = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| cgroupfs_path(&p.display().to_string()))
        .unwrap_or_default();
    let rel = rel.trim_start_matches('/').to_string();
    let dest = mounts[at].destination().clone();
    let mut view = vec![MountBuilder::default()
        .typ("tmpfs")
        .source("tmpfs")
        .destination(&dest)
        .options(
            ["nosuid", "nodev", "noexec", "relatime", "mode=755"]
                .map(String::from)
                .to_vec(),
        )
        .build()
        .expect("a tmpfs mount with every field is complete")];
    let mut named = NamedCgroups {
        path: format!("/{rel}"),
        dirs: Vec::new(),
    };
    for h in cgroups
        .hierarchies
        .iter()
        .filter(|h| !h.v2 && h.mount.parent() == Some(Path::new(ROOT)))
    {
        let Some(name) = h.mount.file_name() else {
            continue;
        };
        let source = h.mount.join(&rel);
        if h.controllers.is_empty() {
            named.dirs.push(source.clone());
        }
        view.push(bind(&source, dest.join(name)));
    }
    let mut mounts = mounts;
    mounts.splice(at..=at, view);
    spec.set_mounts(Some(mounts));
    named
}

/// Whether the host's /sys/fs/cgroup has symlinks (co-mounted controllers' aliases).
fn has_symlinks() -> bool {
    std::fs::read_dir(ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
}
