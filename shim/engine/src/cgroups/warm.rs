//! Taking the kernel's cgroup migration lock before a container's create needs it.
//!
//! Every move of a process into a cgroup through `cgroup.procs` (v1 and v2) takes one global
//! lock, `cgroup_threadgroup_rwsem`, for writing, and its first writer after a quiet moment waits
//! for an RCU grace period (`rcu_sync_enter`): about 6–15 ms on this kind of host. Writers in
//! the next grace period or so after the last one (about 10 ms, measured) do not wait, nor
//! do writers arriving while one waits (they share its grace period). libcontainer moves each
//! container's intermediate process into the container's cgroup, so every create paid the
//! whole grace period, on the critical path of a Pod start.
//!
//! [`warm`] forks a child that moves itself into the cgroup it already is in (a move that
//! changes nothing but takes the lock) and exits: its grace period runs while the caller
//! starts pause, sets up the network and mounts the root filesystems, and the intermediate
//! process that follows a few milliseconds later finds the lock's fast path.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use super::{join, Cgroups, Mode};

/// A warm-up within this long ago still covers a create (its grace period, or the one after).
const FRESH: Duration = Duration::from_millis(20);

/// Start taking the migration lock in a child process, unless a warm-up of this process did
/// within the last [`FRESH`] interval; returns the child, which exits by itself (whoever reaps
/// this process's children reaps it: the supervision loop and teardown reap any child). Best
/// effort: `None` when there is nothing to do or it cannot be done.
pub fn warm() -> Option<Pid> {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().ok()?;
    if last.is_some_and(|t| t.elapsed() < FRESH) {
        return None;
    }
    let file = own_procs_file(&Cgroups::detect().ok()?)?;
    let path = CString::new(file.as_os_str().as_bytes()).ok()?;
    *last = Some(Instant::now());
    // "0": the writing process itself, into the cgroup it is in.
    crate::sys::fork_to_write(&path, b"0").ok()
}

/// The `cgroup.procs` of this process's own cgroup in one hierarchy: v2's, or v1 `pids`' (any
/// hierarchy would do: the lock is the same for all).
fn own_procs_file(cgroups: &Cgroups) -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    own_procs_file_in(cgroups, &text)
}

fn own_procs_file_in(cgroups: &Cgroups, proc_cgroup: &str) -> Option<PathBuf> {
    let unified = cgroups.mode == Mode::Unified;
    let rel = proc_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let wanted = match unified {
            true => controllers.is_empty(),
            false => controllers.split(',').any(|c| c == "pids"),
        };
        wanted.then(|| path.to_string())
    })?;
    let dir = match unified {
        true => join(&cgroups.hierarchies.iter().find(|h| h.v2)?.mount, &rel),
        false => cgroups.dir_of("pids", &rel)?,
    };
    Some(dir.join("cgroup.procs"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::Hierarchy;
    use std::path::Path;

    fn v1() -> Cgroups {
        Cgroups {
            mode: Mode::Hybrid,
            hierarchies: vec![
                Hierarchy {
                    mount: "/sys/fs/cgroup/pids".into(),
                    controllers: vec!["pids".into()],
                    v2: false,
                },
                Hierarchy {
                    mount: "/sys/fs/cgroup/unified".into(),
                    controllers: vec![],
                    v2: true,
                },
            ],
        }
    }

    #[test]
    fn the_file_of_the_cgroup_the_process_is_in() {
        let text = "9:name=systemd:/\n8:pids:/a/b\n4:memory:/m\n0::/u\n";
        assert_eq!(
            own_procs_file_in(&v1(), text).unwrap(),
            Path::new("/sys/fs/cgroup/pids/a/b/cgroup.procs")
        );
        let v2 = Cgroups {
            mode: Mode::Unified,
            hierarchies: vec![Hierarchy {
                mount: "/sys/fs/cgroup".into(),
                controllers: vec![],
                v2: true,
            }],
        };
        assert_eq!(
            own_procs_file_in(&v2, "0::/user.slice/x\n").unwrap(),
            Path::new("/sys/fs/cgroup/user.slice/x/cgroup.procs")
        );
        // No pids hierarchy (a v1 host without the controller): nothing to write.
        assert_eq!(own_procs_file_in(&v1(), "4:memory:/m\n"), None);
    }
}
