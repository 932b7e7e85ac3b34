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
//! The first writer also holds the cgroup mutex during its wait, so a cgroup's mkdir (the
//! Pod's, or libcontainer's of the container's) waits with it: warm up after the Pod's cgroup
//! exists, and the container's create shares whatever is left of the wait.
//!
//! [`warm`] forks a child that moves itself into the cgroup it already is in (a move that
//! changes nothing but takes the lock), and again every few milliseconds, so the lock stays
//! on its fast path while the caller starts pause, sets up the network and mounts the root
//! filesystems, however long that takes on a loaded host; [`cool`] (or the caller's exit, or
//! [`LIMIT`]) ends it once the containers are created.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use nix::unistd::Pid;

use super::{join, Cgroups, Mode};

/// How often the child moves itself: well within the ~10 ms after a move in which the next
/// one does not wait.
const EVERY: Duration = Duration::from_millis(4);
/// The longest the child keeps at it without a [`cool`] (a start that failed, or a very slow
/// one): 50 moves, 200 ms.
const LIMIT: u32 = 50;

/// The write end of the running warm-up's stop pipe: closing it ends the child.
static RUNNING: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Keep the migration lock on its fast path from now until [`cool`] (at most [`LIMIT`] moves),
/// unless a warm-up of this process already does; returns the child that does it, which exits
/// by itself (whoever reaps this process's children reaps it: the supervision loop and
/// teardown reap any child). Best effort: `None` when there is nothing to do or it cannot be
/// done.
pub fn warm() -> Option<Pid> {
    let mut running = RUNNING.lock().ok()?;
    if running.is_some() {
        return None;
    }
    let file = own_procs_file(&Cgroups::detect().ok()?)?;
    let path = CString::new(file.as_os_str().as_bytes()).ok()?;
    let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    // "0": the writing process itself, into the cgroup it is in.
    let child = crate::sys::fork_writer(&path, b"0", stop_r, EVERY, LIMIT).ok()?;
    *running = Some(stop_w);
    Some(child)
}

/// End the warm-up (the containers are created): the next [`warm`] starts another.
pub fn cool() {
    if let Ok(mut running) = RUNNING.lock() {
        running.take();
    }
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
