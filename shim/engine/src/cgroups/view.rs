//! What a container sees at `/sys/fs/cgroup`: its own cgroups, read-only (a skeleton of
//! read-only binds on v1, a cgroup namespace on v2), and the child cgroups it made, removed at
//! teardown.

use super::*;

impl Cgroups {
    /// What a container whose cgroup is `rel` sees at `/sys/fs/cgroup` (see
    /// [`CgroupView`]); on v1 hosts the skeleton directory is made at `skeleton` first if needed.
    pub fn container_view(&self, skeleton: &Path, rel: &str) -> Result<CgroupView, CgroupError> {
        if self.mode == Mode::Unified {
            return Ok(CgroupView::Namespaced);
        }
        self.ensure_skeleton(skeleton)?;
        let hierarchies = self
            .managed()
            .filter(|h| h.mount.parent() == Some(Path::new(CGROUP_ROOT)))
            .filter_map(|h| {
                let name = h.mount.file_name()?.to_str()?.to_string();
                Some((name, join(&h.mount, rel)))
            })
            .collect();
        Ok(CgroupView::Binds {
            skeleton: skeleton.to_path_buf(),
            hierarchies,
        })
    }

    /// The read-only skeleton of `/sys/fs/cgroup` for v1 containers: an empty directory per
    /// hierarchy mounted there and the host's symlinks (co-mounted controllers' aliases). Made
    /// once per state directory, in a temporary directory renamed into place, so concurrent
    /// podshims never see half of it.
    fn ensure_skeleton(&self, skeleton: &Path) -> Result<(), CgroupError> {
        if skeleton.is_dir() {
            return Ok(());
        }
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| CgroupError::Io { what, path, source }
        };
        let tmp = skeleton.with_extension(format!("tmp{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        crate::private::create_dir_all(&tmp).map_err(io("create", &tmp))?;
        for h in &self.hierarchies {
            if h.mount.parent() != Some(Path::new(CGROUP_ROOT)) {
                continue;
            }
            if let Some(name) = h.mount.file_name() {
                let dir = tmp.join(name);
                fs::create_dir(&dir).map_err(io("create", &dir))?;
            }
        }
        // The mode of the skeleton is what a container user sees of /sys/fs/cgroup.
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).map_err(io("chmod", &tmp))?;
        if let Ok(entries) = fs::read_dir(CGROUP_ROOT) {
            for e in entries.flatten() {
                if let Ok(target) = fs::read_link(e.path()) {
                    let link = tmp.join(e.file_name());
                    std::os::unix::fs::symlink(&target, &link).map_err(io("create", &link))?;
                }
            }
        }
        match fs::rename(&tmp, skeleton) {
            Ok(()) => Ok(()),
            // Another podshim made it first.
            Err(_) if skeleton.is_dir() => {
                let _ = fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(io("create", skeleton)(e))
            }
        }
    }

    /// Make a spec's cgroup view read-only and the container's own (see [`CgroupView`]): a
    /// read-only `cgroup` mount becomes, on v1, the skeleton and the container's own cgroups
    /// bound read-only (libcontainer's own v1 mount binds them read-write); on v2 the container
    /// gets a cgroup namespace, so its cgroup2 mount shows its own cgroup as the root. A `cgroup`
    /// mount without `ro` (a privileged container's) is left as it is.
    pub fn harden(&self, spec: &mut Spec, skeleton: &Path) -> Result<(), CgroupError> {
        let Some(mounts) = spec.mounts().clone() else {
            return Ok(());
        };
        let ro_cgroup = |m: &Mount| {
            m.typ().as_deref() == Some("cgroup") && m.options().iter().flatten().any(|o| o == "ro")
        };
        let Some(at) = mounts.iter().position(ro_cgroup) else {
            return Ok(());
        };
        let rel = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone())
            .map(|p| cgroupfs_path(&p.display().to_string()))
            .unwrap_or_default();
        match self.container_view(skeleton, &rel)? {
            CgroupView::Namespaced => {
                let mut linux = spec.linux().clone().unwrap_or_default();
                let mut ns = linux.namespaces().clone().unwrap_or_default();
                if !ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup) {
                    let cgroup = LinuxNamespaceBuilder::default()
                        .typ(LinuxNamespaceType::Cgroup)
                        .build()
                        .expect("a namespace with its type is complete");
                    ns.push(cgroup);
                    linux.set_namespaces(Some(ns));
                    spec.set_linux(Some(linux));
                }
            }
            CgroupView::Binds {
                skeleton,
                hierarchies,
            } => {
                let dest = mounts[at].destination().clone();
                let bind = |source: &Path, destination: PathBuf| {
                    MountBuilder::default()
                        .typ("bind")
                        .source(source)
                        .destination(destination)
                        .options(
                            ["bind", "ro", "nosuid", "noexec", "nodev"]
                                .map(String::from)
                                .to_vec(),
                        )
                        .build()
                        .expect("a bind mount with every field is complete")
                };
                let mut view = vec![bind(&skeleton, dest.clone())];
                for (name, dir) in &hierarchies {
                    view.push(bind(dir, dest.join(name)));
                }
                let mut mounts = mounts;
                mounts.splice(at..=at, view);
                spec.set_mounts(Some(mounts));
            }
        }
        Ok(())
    }

    /// Remove the cgroups below `rel` (not `rel` itself), deepest first, in every hierarchy:
    /// child cgroups a container made block the removal of its own (libcontainer removes only
    /// the leaf it created).
    pub fn remove_children(&self, rel: &str) -> Result<(), CgroupError> {
        let mut first_error = None;
        for h in &self.hierarchies {
            let Ok(entries) = fs::read_dir(join(&h.mount, rel)) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    if let Err(err) = remove_tree(&e.path()) {
                        first_error.get_or_insert(err);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
