//! The `.slice` parents of a container whose `cgroupsPath` is in the systemd driver's form
//! (`slice:prefix:name`) on a host whose cgroups are not systemd's: the engine lays the path out
//! as systemd would (`/a.slice/a-b.slice/prefix-name.scope`), and libcontainer makes the
//! parents on the way but removes only the container's own cgroup. The shim removes the parents
//! it caused to exist, when the container is deleted (or its create fails), so a task leaves no
//! cgroup behind.

use std::path::{Path, PathBuf};

use podshim_engine::cgroups::{is_systemd_path, Cgroups, Driver};

/// The parent directories a container's create is about to make, in every hierarchy.
#[derive(Debug, Default)]
pub struct MadeSlices(Vec<PathBuf>);

impl MadeSlices {
    /// `given` is the spec's `cgroupsPath` as containerd sent it, `laid_out` the path the
    /// engine uses for it. Parents that exist already (another container's slice) are not ours.
    pub fn before_create(given: Option<&str>, laid_out: &str) -> Self {
        if !given.is_some_and(is_systemd_path) || Driver::current() != Driver::Cgroupfs {
            return MadeSlices::default();
        }
        let Ok(cgroups) = Cgroups::detect() else {
            return MadeSlices::default();
        };
        let mut dirs = Vec::new();
        for h in &cgroups.hierarchies {
            let mut parent = Path::new(laid_out).parent();
            while let Some(rel) = parent.filter(|r| {
                r.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".slice"))
            }) {
                let dir = h.mount.join(rel.strip_prefix("/").unwrap_or(rel));
                if !dir.exists() {
                    dirs.push(dir);
                }
                parent = rel.parent();
            }
        }
        // Deepest first, for the removal.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        MadeSlices(dirs)
    }

    /// Remove them, deepest first. One another container has come to use meanwhile is not
    /// empty (EBUSY/ENOTEMPTY) and stays, as do its parents.
    pub fn remove(&self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_systemd_form_has_parents_to_remove() {
        let none = MadeSlices::before_create(Some("/podshim-test/c1"), "/podshim-test/c1");
        assert!(none.0.is_empty());
        let none = MadeSlices::before_create(None, "");
        assert!(none.0.is_empty());
    }
}
