//! The RCU grace period of a container's first cgroup migration, started early.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`, as libcontainer does for every
//! container's init) takes the kernel's global `cgroup_threadgroup_rwsem` for writing. Unless
//! the hierarchy is mounted with `favordynmods`, the first writer after a quiet while waits a
//! full RCU grace period for it (measured here: 6-26 ms on a loaded two-core VM, more than
//! half of a container's create); writers within a grace period after the last one do not
//! wait (0.05 ms). A Create therefore asks [`Warmer::nudge`] before libcontainer forks: a
//! thread of its own writes the shim's PID into the cgroup the shim is already in (no
//! process changes cgroup), so that grace period passes while the rootfs is mounted, the
//! bundle written and the container's processes forked, instead of after.
//!
//! The write holds `cgroup_mutex` while it waits, so a cgroup the Create itself makes (the
//! named v1 hierarchies') is made before the nudge, not after.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::Mutex;

use podshim_engine::cgroups::Hierarchy;

/// Starts the grace period on request; does nothing where no cgroup file was found.
pub struct Warmer {
    nudges: Option<Mutex<Sender<()>>>,
}

impl Warmer {
    /// The thread, for the `cgroup.procs` of this process's own cgroup.
    pub fn start() -> Warmer {
        let file = podshim_engine::cgroups::Cgroups::detect()
            .ok()
            .zip(std::fs::read_to_string("/proc/self/cgroup").ok())
            .and_then(|(c, own)| procs_file(&c.hierarchies, &own));
        let Some(file) = file else {
            return Warmer { nudges: None };
        };
        let (tx, rx) = channel::<()>();
        let pid = std::process::id().to_string();
        let spawned = std::thread::Builder::new()
            .name("cgroup-warm".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    // Nudges that came meanwhile are served by this write.
                    while rx.try_recv().is_ok() {}
                    // Errors do not matter: the lock was taken before the kernel looked further.
                    let _ = std::fs::write(&file, &pid);
                }
            });
        Warmer {
            nudges: spawned.ok().map(|_| Mutex::new(tx)),
        }
    }

    /// Start a grace period now (returns at once).
    pub fn nudge(&self) {
        if let Some(tx) = &self.nudges {
            let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(());
        }
    }
}

/// The `cgroup.procs` of the cgroup this process is in (`own`: `/proc/self/cgroup`) in one
/// hierarchy: the unified one, or a v1 hierarchy with controllers (a named one may be absent).
fn procs_file(hierarchies: &[Hierarchy], own: &str) -> Option<PathBuf> {
    own.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (id, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        let h = if id == "0" && controllers.is_empty() {
            hierarchies.iter().find(|h| h.v2)?
        } else {
            let mut wanted: Vec<&str> = controllers.split(',').filter(|c| !c.is_empty()).collect();
            wanted.sort_unstable();
            hierarchies.iter().find(|h| {
                let mut have: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
                have.sort_unstable();
                !h.v2 && !have.is_empty() && have == wanted
            })?
        };
        let file = Path::new(&h.mount).join(path).join("cgroup.procs");
        file.exists().then_some(file)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(mount: &Path, controllers: &[&str], v2: bool) -> Hierarchy {
        let dir = mount.join("x");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), "").unwrap();
        Hierarchy {
            mount: mount.to_path_buf(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            v2,
        }
    }

    #[test]
    fn finds_its_own_cgroup() {
        let root = std::env::temp_dir().join(format!("podshim-warm-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let named = h(&root.join("systemd"), &[], false);
        let cpu = h(&root.join("cpu,cpuacct"), &["cpuacct", "cpu"], false);
        let unified = h(&root.join("unified"), &[], true);
        let all = [named, cpu.clone(), unified.clone()];
        // v1 first: the hierarchy whose controllers match, whatever their order; named ones
        // are skipped.
        let own = "12:name=systemd:/x\n4:cpu,cpuacct:/x\n0::/x\n";
        assert_eq!(
            procs_file(&all, own),
            Some(cpu.mount.join("x/cgroup.procs"))
        );
        // Unified only.
        assert_eq!(
            procs_file(std::slice::from_ref(&unified), "0::/x\n"),
            Some(unified.mount.join("x/cgroup.procs"))
        );
        // A cgroup that is not there (another cgroup namespace's view): none.
        assert_eq!(procs_file(&all, "0::/gone\n"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
