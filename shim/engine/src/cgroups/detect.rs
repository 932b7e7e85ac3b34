//! Finding the cgroup hierarchies without `/proc/self/mountinfo`: that file lists every mount of
//! every Pod (a root filesystem, a netns pin, emptyDirs), so reading it made each start slower
//! the more Pods ran. `/sys/fs/cgroup` itself and `/proc/self/cgroup` are the same size whatever
//! runs: `statfs` tells a cgroup2 root, a v1 hierarchy and the tmpfs holding them apart, and
//! `/proc/self/cgroup` names the controllers of every v1 hierarchy this process is in.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};

use super::{Cgroups, Hierarchy};

/// Where systemd and cgroupfs-mount mount the hierarchies.
pub(super) const ROOT: &str = "/sys/fs/cgroup";

/// The hierarchies under `root`, or `None` when the layout is not the usual one (a v1
/// hierarchy whose directory is not named by its controllers, a controller of
/// `/proc/self/cgroup` without a directory): the caller then reads mountinfo.
pub(super) fn from_sysfs(root: &Path) -> Option<Cgroups> {
    let kind = statfs(root).ok()?.filesystem_type();
    if kind == CGROUP2_SUPER_MAGIC {
        let unified = Hierarchy {
            mount: root.to_path_buf(),
            controllers: vec![],
            v2: true,
        };
        return Cgroups::from_hierarchies(vec![unified]).ok();
    }
    if kind != TMPFS_MAGIC {
        return None;
    }
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    from_dirs(root, &own)
}

/// The hierarchies mounted on the directories of `root` (a tmpfs), checked against `own`, the
/// text of `/proc/self/cgroup` (`ID:controllers:path` lines, see cgroups(7)).
fn from_dirs(root: &Path, own: &str) -> Option<Cgroups> {
    // The hierarchy IDs give the order the hierarchies were mounted in (the kernel numbers
    // them as they are made), which is mountinfo's order: containers see their cgroup
    // directories in that order, as under runc.
    let (mut controller_sets, mut named) = (Vec::new(), Vec::new());
    for line in own.lines() {
        let mut fields = line.split(':');
        let id: u32 = fields.next()?.parse().ok()?;
        let list = fields.next()?;
        if let Some(name) = list.strip_prefix("name=") {
            named.push((name.to_string(), id));
        } else if !list.is_empty() {
            controller_sets.push((
                list.split(',').map(str::to_string).collect::<BTreeSet<_>>(),
                id,
            ));
        }
    }
    let mut dirs: Vec<_> = fs::read_dir(root)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    let mut hierarchies = Vec::new();
    let mut order = Vec::new();
    let mut matched = 0;
    for dir in dirs {
        let mount = root.join(&dir);
        let Ok(st) = statfs(&mount) else { continue };
        let kind = st.filesystem_type();
        if kind == CGROUP2_SUPER_MAGIC {
            // A hybrid host's cgroup2 mount (`unified`) comes after the v1 hierarchies.
            order.push(u32::MAX);
            hierarchies.push(Hierarchy {
                mount,
                controllers: vec![],
                v2: true,
            });
        } else if kind == CGROUP_SUPER_MAGIC {
            let set: BTreeSet<String> = dir.split(',').map(str::to_string).collect();
            let (controllers, id) =
                if let Some((_, id)) = controller_sets.iter().find(|(s, _)| *s == set) {
                    matched += 1;
                    (set.into_iter().collect(), *id)
                } else if let Some((_, id)) = named.iter().find(|(n, _)| *n == dir) {
                    (vec![], *id)
                } else {
                    return None;
                };
            order.push(id);
            hierarchies.push(Hierarchy {
                mount,
                controllers,
                v2: false,
            });
        }
    }
    // Every controller hierarchy this process is in must have been found.
    if matched != controller_sets.len() {
        return None;
    }
    let mut keyed: Vec<_> = order.into_iter().zip(hierarchies).collect();
    keyed.sort_by_key(|(id, _)| *id);
    Cgroups::from_hierarchies(keyed.into_iter().map(|(_, h)| h).collect()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_mountinfo_on_this_host() {
        let by_mounts = Cgroups::from_mountinfo_file().unwrap();
        let Some(by_dirs) = from_sysfs(Path::new(ROOT)) else {
            panic!("this host's /sys/fs/cgroup should have the usual layout");
        };
        assert_eq!(by_dirs.mode, by_mounts.mode);
        let sorted = |c: &Cgroups| {
            let mut h: Vec<_> = c
                .hierarchies
                .iter()
                .filter(|h| h.mount.starts_with(ROOT))
                .map(|h| {
                    let mut c = h.controllers.clone();
                    c.sort();
                    (h.mount.clone(), c, h.v2)
                })
                .collect();
            h.sort();
            h
        };
        assert_eq!(sorted(&by_dirs), sorted(&by_mounts));
    }

    #[test]
    fn lists_the_hierarchies_in_mountinfos_order() {
        // Containers see their cgroup directories in this order, as under runc.
        let under_root = |c: &Cgroups| {
            c.hierarchies
                .iter()
                .filter(|h| h.mount.starts_with(ROOT) && h.mount != Path::new(ROOT))
                .map(|h| h.mount.clone())
                .collect::<Vec<_>>()
        };
        let by_mounts = Cgroups::from_mountinfo_file().unwrap();
        let by_dirs = from_sysfs(Path::new(ROOT)).expect("the usual layout");
        assert_eq!(under_root(&by_dirs), under_root(&by_mounts));
    }

    #[test]
    fn an_unknown_directory_name_falls_back() {
        // A tmpfs directory, not a cgroup mount: no hierarchy is found, and one that
        // /proc/self/cgroup names is missing, so the caller must read mountinfo.
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("memory")).unwrap();
        assert!(from_dirs(dir.path(), "4:memory:/\n").is_none());
        assert!(
            from_dirs(dir.path(), "0::/\n").is_none(),
            "no cgroup at all"
        );
    }
}
