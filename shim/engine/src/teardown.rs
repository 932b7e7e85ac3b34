//! Teardown of a Pod from its journal: every recorded resource, newest first, best effort.
//! Already-gone resources count as removed, so tearing down twice succeeds twice.

use std::fs;
use std::io;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

use libcontainer::container::Container;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::Pid;

use crate::cgroups::Cgroups;
use crate::chain;
use crate::journal::{Journal, Resource};
use crate::mounts;

/// Undo every resource in the journal, newest first, forgetting each one that is gone.
/// Returns the problems met (empty when everything is gone). When anything could not be
/// removed, the directory holding the journal stays, with what is left recorded in it.
///
/// The Pod's network resources come down on a thread of their own, in their own newest-first
/// order, while this thread removes the containers and mounts: deleting links makes the kernel
/// wait for RCU grace periods, time better spent on the rest. The thread is joined before the
/// Pod's network namespace goes when a plugin chain still needs it, and always before the
/// directory holding the journal goes, so a crash never loses the record of what is left.
/// Otherwise the thread holds the namespace open until its links are gone: the namespace
/// dying under it (pin and pause gone) would make the kernel delete the Pod's veth on its own,
/// racing the batched delete of veth and bridge and leaving the bridge to a delete of its own
/// (one more RCU wait). No container is created meanwhile (libcontainer forks, which needs a
/// single-threaded process), and the thread ends before this returns.
pub fn teardown(journal: &mut Journal) -> Vec<String> {
    let mut errors = Vec::new();
    let (network, local): (Vec<Resource>, Vec<Resource>) = journal
        .resources
        .iter()
        .rev()
        .cloned()
        .partition(is_network);
    let needs_netns = network
        .iter()
        .any(|r| matches!(r, Resource::CniChain { .. }));
    // Where this process reaches the pin: a supervisor's own mount namespace holds it, and
    // another process (`gc`, `rm -f` after the supervisor died) reaches it through pause's.
    let pin = journal.netns_pin();
    // An open namespace file keeps the namespace alive (the pin may be unmounted meanwhile).
    let hold_netns = if network.is_empty() {
        None
    } else {
        pin.as_ref().and_then(|p| fs::File::open(p).ok())
    };
    std::thread::scope(|s| {
        let mut thread = (!network.is_empty()).then(|| {
            s.spawn(move || {
                let removed = network
                    .into_iter()
                    .map(|r| {
                        let result = timed_remove(&with_netns(&r, pin.as_deref()));
                        (r, result)
                    })
                    .collect::<Removed>();
                drop(hold_netns);
                removed
            })
        });
        for resource in local {
            let holds_journal =
                matches!(&resource, Resource::Dir { path } if journal.path().starts_with(path));
            let takes_netns =
                matches!(resource, Resource::NetnsPin { .. } | Resource::Pause { .. });
            if holds_journal || (takes_netns && needs_netns) {
                if let Some(t) = thread.take() {
                    join(t, journal, &mut errors);
                }
            }
            if holds_journal && !errors.is_empty() {
                // Something recorded could not be removed (a cgroup still busy, a mount in
                // use): the record of it stays, and with it the Pod's name, for `gc` or
                // `rm -f` to finish; removing the journal would leave it untracked for good.
                errors.push(format!(
                    "kept {} to finish the teardown later (`podshim gc`)",
                    journal.path().display()
                ));
                continue;
            }
            let result = timed_remove(&resource);
            settle(journal, &resource, result, holds_journal, &mut errors);
        }
        if let Some(t) = thread.take() {
            join(t, journal, &mut errors);
        }
    });
    reap_children();
    errors
}

type Removed = Vec<(Resource, Result<(), String>)>;

/// Waits for the network thread of [`teardown`] and settles what it removed.
fn join(
    thread: std::thread::ScopedJoinHandle<'_, Removed>,
    journal: &mut Journal,
    errors: &mut Vec<String>,
) {
    match thread.join() {
        Ok(done) => {
            for (r, result) in done {
                settle(journal, &r, result, false, errors);
            }
        }
        Err(_) => errors.push("the network teardown thread panicked".into()),
    }
}

/// `r` with the network namespace its plugins are given replaced by `pin` (where this process
/// reaches the recorded pin, see [`Journal::netns_pin`]).
fn with_netns(r: &Resource, pin: Option<&Path>) -> Resource {
    match (r, pin) {
        (Resource::CniChain { netns, .. }, Some(pin)) if netns != pin => {
            let mut r = r.clone();
            if let Resource::CniChain { netns, .. } = &mut r {
                *netns = pin.to_path_buf();
            }
            r
        }
        _ => r.clone(),
    }
}

/// The Pod's network: what the kernel is slow to take down.
fn is_network(r: &Resource) -> bool {
    matches!(
        r,
        Resource::Network { .. } | Resource::CniChain { .. } | Resource::Nat { .. }
    )
}

fn timed_remove(resource: &Resource) -> Result<(), String> {
    let t = Instant::now();
    let result = remove(resource);
    tracing::debug!(
        ?resource,
        elapsed_us = t.elapsed().as_micros() as u64,
        "removed"
    );
    result
}

/// Records the outcome of removing `resource`: forgotten by the journal when gone (unless the
/// journal went with it), otherwise one more problem.
fn settle(
    journal: &mut Journal,
    resource: &Resource,
    result: Result<(), String>,
    holds_journal: bool,
    errors: &mut Vec<String>,
) {
    match result {
        // The journal lives in the state directory: once that is gone there is nothing left
        // to update.
        Ok(()) if holds_journal => {}
        Ok(()) => {
            if let Err(e) = journal.forget(resource) {
                errors.push(chain(&e));
            }
        }
        Err(e) => errors.push(e),
    }
}

/// Remove one resource; `Err` carries a readable reason.
pub fn remove(resource: &Resource) -> Result<(), String> {
    match resource {
        Resource::Container {
            id,
            runtime_dir,
            cgroup,
        } => remove_container(id, runtime_dir, cgroup.as_deref()),
        Resource::Mount { path } => mounts::unmount(path).map_err(|e| chain(&e)),
        Resource::Network {
            bridge,
            subnet,
            ipam_dir,
            attachment_id,
            host_veth,
            keep_bridge,
        } => {
            let subnet = subnet
                .parse()
                .map_err(|_| format!("invalid subnet {subnet:?} in journal"))?;
            let cfg = podshim_cni::NetworkConfig {
                bridge: bridge.clone(),
                subnet,
                ipam_dir: ipam_dir.clone(),
                mtu: None,
                keep_bridge: *keep_bridge,
            };
            podshim_cni::teardown(&cfg, attachment_id, host_veth).map_err(|e| chain(&e))
        }
        Resource::CniChain { .. } => {
            let (list, rt) = resource.cni_chain()?;
            // No cached result: ADD did not finish; DEL runs all the same (the spec's cleanup).
            list.del(&rt, resource.cached_result().as_ref())
                .map_err(|e| chain(&e))
        }
        Resource::Nat { tag, .. } => podshim_cni::nat::remove(tag).map_err(|e| chain(&e)),
        Resource::NetnsPin { path } => {
            mounts::unmount(path).map_err(|e| chain(&e))?;
            remove_file(path)
        }
        Resource::Pause { pid, start_time } => stop_process(*pid, *start_time),
        Resource::Cgroup { path } => Cgroups::detect()
            .and_then(|c| c.remove_pod(path))
            .map_err(|e| chain(&e)),
        Resource::Dir { path } => remove_dir(path),
        Resource::IdBlock {
            claim,
            owner,
            opened,
            ..
        } => crate::userns::release(claim, owner, opened),
    }
}

/// Kill and delete a libcontainer container; a missing state directory means already deleted.
/// Processes left in its cgroup that libcontainer does not know of (podshim was killed while it
/// created the container) are killed through the cgroup.
fn remove_container(id: &str, runtime_dir: &Path, cgroup: Option<&str>) -> Result<(), String> {
    let kill_cgroup = || {
        if let (Some(cg), Ok(c)) = (cgroup, Cgroups::detect()) {
            c.kill_all(cg);
        }
    };
    // Without libcontainer's state (a create that failed half-way removes it, and may leave
    // the cgroup behind), the cgroup is ours to remove.
    let remove_cgroup = || match (cgroup, Cgroups::detect()) {
        (Some(cg), Ok(c)) => c
            .remove_leftover(cg)
            .map_err(|e| format!("remove the cgroup of container {id}: {e}")),
        _ => Ok(()),
    };
    let dir = runtime_dir.join(id);
    if !dir.exists() {
        return remove_cgroup();
    }
    let mut container = match Container::load(dir.clone()) {
        Ok(c) => c,
        Err(_) => {
            remove_cgroup()?;
            return remove_dir(&dir);
        }
    };
    if let Some(pid) = container.pid() {
        // Only a container libcontainer still sees alive is killed and waited for (its PID may
        // belong to another process by now otherwise).
        if container.can_kill() {
            let _ = container.kill(Signal::SIGKILL, true);
            wait_gone(pid, Duration::from_secs(5), true);
        }
    }
    if container.delete(true).is_ok() {
        return Ok(());
    }
    kill_cgroup();
    // Child cgroups (made by a container allowed to) keep libcontainer from removing its leaf.
    if let (Some(cg), Ok(c)) = (cgroup, Cgroups::detect()) {
        let _ = c.remove_children(cg);
    }
    container
        .delete(true)
        .map_err(|e| format!("delete container {id}: {}", chain(&e)))
}

/// The start time of a process (field 22 of /proc/PID/stat), to tell it from a reused PID.
pub fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split(' ').nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `start` (see [`start_time`]) still runs: it exists
/// with that start time and is not a zombie waiting to be reaped.
pub fn alive(pid: i32, start: u64) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return false;
    };
    let mut fields = after.split(' ');
    let state = fields.next().unwrap_or("X");
    let started: Option<u64> = fields.nth(18).and_then(|s| s.parse().ok());
    !matches!(state, "Z" | "X" | "x") && started == Some(start)
}

fn stop_process(pid: i32, expected_start: u64) -> Result<(), String> {
    if start_time(pid) != Some(expected_start) {
        return Ok(()); // gone, or the PID now belongs to someone else
    }
    match kill(Pid::from_raw(pid), Signal::SIGKILL) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => return Err(format!("kill pause process {pid}: {e}")),
    }
    wait_gone(Pid::from_raw(pid), Duration::from_secs(5), true);
    Ok(())
}

/// Wait until `pid` has exited: reap it if it is our child, otherwise watch /proc. With
/// `until_reaped`, a zombie of someone else's does not count as gone: Linux keeps a zombie in its
/// cgroup until its parent (after a podshim crash: the nearest subreaper or init) reaps it, and
/// the container's cgroup cannot be removed before.
fn wait_gone(pid: Pid, timeout: Duration, until_reaped: bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(_) => return,
            Err(_) => match fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return,
                Ok(s)
                    if !until_reaped
                        && s.rsplit(')')
                            .next()
                            .is_some_and(|r| r.trim_start().starts_with('Z')) =>
                {
                    return
                }
                Ok(_) => {}
            },
        }
        sleep(Duration::from_millis(2));
    }
}

/// Reap any of our children that have exited (container inits killed during teardown).
fn reap_children() {
    while let Ok(status) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

fn remove_file(path: &Path) -> Result<(), String> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}

/// Remove a directory tree, first unmounting anything still mounted inside it so that removal
/// never reaches into a mounted filesystem.
pub(crate) fn remove_dir(path: &Path) -> Result<(), String> {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = format!("{}/", path.display());
    let mut inside: Vec<&str> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    inside.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in inside {
        mounts::unmount(Path::new(&m.replace("\\040", " "))).map_err(|e| chain(&e))?;
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("remove {}: {e}", path.display())),
    }
}
