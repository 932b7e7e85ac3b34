//! The forks a Pod's owner leaves when it dies: found through a mark they all inherit, and
//! stopped before anything of the Pod is removed.
//!
//! libcontainer's create clones the calling podshim (its intermediate process, which clones
//! the container's init), and a Pod's containers may be created by forked workers
//! (`crate::batch`). None of them dies with podshim: SIGKILLed while it creates a container,
//! podshim leaves a fork that goes on for a moment, and libcgroups' v1 `add_task` of the
//! intermediate process creates the container's cgroup directory (and the Pod's above it) in
//! each hierarchy, one after the other, and moves itself in. A `gc` (or `rm -f`, or `run
//! --replace`) that removed the Pod's cgroups meanwhile finds some of them made again once it
//! is done, with no record left of them.
//!
//! So the owner opens a file of the Pod's own, [`MARK`] in the Pod directory, before its first
//! fork, and keeps it open (close-on-exec: a fork that executes another program, pause or a
//! container's process, drops it; a fork that runs podshim's or libcontainer's code keeps it).
//! Once the owner is dead, every process that still has the mark open is one of its forks:
//! [`stop`] SIGKILLs them, and returns once none is left, before the teardown. A process holds
//! the mark only by inheriting the owner's descriptor (nothing else opens it; `gc` only stats
//! it), and only a holder can make a new one, by forking: so "no holder left" stays true.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The mark's file name in the Pod directory.
pub const MARK: &str = "owner";

/// How long [`stop`] waits for the forks it killed to be gone.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ForksError {
    #[error("cannot create the owner mark {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the owner mark {path}")]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot list the processes in /proc")]
    Scan(#[source] io::Error),
    #[error("forks of the dead owner still run after {seconds} s: {pids:?}")]
    Alive { seconds: u64, pids: Vec<i32> },
}

/// Create the owner mark in the Pod directory `dir` (new: the directory was just made) and keep
/// it open: the caller holds the descriptor for as long as it may fork for the Pod.
pub fn mark(dir: &Path) -> Result<OwnedFd, ForksError> {
    let path = dir.join(MARK);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| ForksError::Create { path, source })?;
    Ok(file.into())
}

/// SIGKILL every process that holds the owner mark of the Pod directory `dir` (the owner,
/// started at `owner_start`, is dead: these are its forks) and wait until none is left.
/// Returns how many were killed; a directory without a mark (made by an older podshim, or by
/// an owner killed before it made one, hence before any fork) has none.
pub fn stop(dir: &Path, owner_start: u64) -> Result<usize, ForksError> {
    let path = dir.join(MARK);
    let mark = match fs::metadata(&path) {
        Ok(m) => (m.dev(), m.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => return Err(ForksError::Stat { path, source }),
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut killed = 0;
    loop {
        let holders = holders(mark, owner_start)?;
        if holders.is_empty() {
            return Ok(killed);
        }
        if Instant::now() > deadline {
            return Err(ForksError::Alive {
                seconds: TIMEOUT.as_secs(),
                pids: holders,
            });
        }
        for pid in holders {
            // Through a pidfd taken before the second look: what is signalled is the process
            // that was seen to hold the mark, even if the PID is reused in between.
            let Ok(pidfd) = crate::sys::pidfd_open(pid) else {
                continue; // gone already
            };
            if holds(pid, mark)
                && crate::sys::pidfd_send_signal(&pidfd, nix::sys::signal::Signal::SIGKILL).is_ok()
            {
                tracing::info!(pid, "killed a fork of a dead Pod owner");
                killed += 1;
            }
        }
        // A killed process closes its descriptors early in its exit, before it is a zombie.
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The processes (other than this one) with a descriptor on the file `mark` (device, inode),
/// among those started no earlier than `owner_start` (a fork starts after its parent).
fn holders(mark: (u64, u64), owner_start: u64) -> Result<Vec<i32>, ForksError> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").map_err(ForksError::Scan)?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let started = crate::teardown::start_time(pid);
        if started.is_some_and(|s| s >= owner_start) && holds(pid, mark) {
            found.push(pid);
        }
    }
    Ok(found)
}

/// Whether process `pid` has a descriptor on the file `mark` (device, inode).
fn holds(pid: i32, mark: (u64, u64)) -> bool {
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false; // gone, or a zombie (its descriptors are closed)
    };
    fds.flatten()
        .any(|fd| fs::metadata(fd.path()).is_ok_and(|m| (m.dev(), m.ino()) == mark))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fork holds the mark; `stop` kills it and returns once it is gone; a directory
    /// without a mark has nothing to stop.
    #[test]
    fn a_fork_that_holds_the_mark_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stop(dir.path(), 0).unwrap(), 0);
        let fd = mark(dir.path()).unwrap();
        assert!(mark(dir.path()).is_err(), "a second mark in one directory");
        // A child that inherits the descriptor (as a fork does), and only sleeps.
        let mut child = std::process::Command::new("sleep");
        child.arg("30");
        crate::sys::inherit_stdio_and(&mut child, &[&fd]);
        let mut child = child.spawn().unwrap();
        drop(fd);
        let start = crate::teardown::start_time(child.id() as i32).unwrap();
        assert_eq!(
            holders(
                {
                    let m = fs::metadata(dir.path().join(MARK)).unwrap();
                    (m.dev(), m.ino())
                },
                start
            )
            .unwrap(),
            vec![child.id() as i32]
        );
        assert_eq!(stop(dir.path(), start).unwrap(), 1);
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        assert_eq!(stop(dir.path(), start).unwrap(), 0);
    }
}
