//! Everything podshim knows about cgroups, for v1 (legacy), hybrid and v2 (unified) hosts.
//!
//! libcontainer creates and removes each container's leaf cgroup; this module owns the Pod-level
//! parent (`/podshim/<pod-uid>`) that holds every container, and its `pids.max`, and reads what
//! the memory controller says about a container (OOM kills, swap support). Paths are explicit and
//! absolute from each hierarchy's mount point, which is also what libcontainer does with
//! `linux.cgroupsPath`, so a private or a host cgroup namespace both work.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::Duration;

use libcontainer::oci_spec::runtime::{
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, Spec,
};

mod detect;
mod driver;
mod limits;
pub mod memlock;
mod paths;
#[cfg(test)]
mod tests;
mod view;
pub mod warm;

pub use driver::{container_path, is_systemd_path, pod_path_for, slice_unit, Driver};
pub use limits::{shares_to_weight, Limits};
pub use paths::{cgroupfs_path, cgroupfs_spec_path, cgroupfs_spec_path_for};

/// The top-level cgroup under which every podshim Pod lives (cgroupfs driver).
pub const TOP: &str = "podshim";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read the cgroup mounts from {path}")]
    Mounts {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no cgroup filesystem is mounted")]
    NoCgroups,
    #[error("{0}")]
    Driver(String),
    #[error("systemd refused {call}: {detail}")]
    Systemd { call: String, detail: String },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// How a container sees its cgroups at `/sys/fs/cgroup`: only its own, read-only, as runc and
/// containerd show them to every container that is not privileged (a writable view lets a
/// container raise its own limits and make child cgroups that block its teardown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupView {
    /// cgroup v2: a private cgroup namespace and a read-only cgroup2 mount, whose root is then
    /// the container's own cgroup (so `memory.max` is its limit).
    Namespaced,
    /// cgroup v1: a read-only skeleton directory (one empty directory per hierarchy, and the
    /// host's co-mount symlinks such as `cpu -> cpu,cpuacct`) with the container's own cgroup of
    /// each controller hierarchy bind-mounted read-only onto its directory. libcontainer's own
    /// v1 `cgroup` mount makes these binds read-write, hence explicit binds.
    Binds {
        skeleton: PathBuf,
        /// (directory name under /sys/fs/cgroup, the container's cgroup directory on the host)
        hierarchies: Vec<(String, PathBuf)>,
    },
}

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only v1 hierarchies.
    Legacy,
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified) without controllers.
    Hybrid,
    /// Only cgroup2 at /sys/fs/cgroup.
    Unified,
}

/// One mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// v1 controllers of this hierarchy (empty for cgroup2 and named hierarchies).
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// The host's cgroup hierarchies.
#[derive(Debug, Clone)]
pub struct Cgroups {
    pub mode: Mode,
    pub hierarchies: Vec<Hierarchy>,
}

impl Cgroups {
    /// The host's hierarchies, found once per process: they are mounted at boot and do not
    /// change while podshim runs, and a Pod start asks for them several times.
    pub fn detect() -> Result<Self, CgroupError> {
        static DETECTED: OnceLock<Cgroups> = OnceLock::new();
        if let Some(c) = DETECTED.get() {
            return Ok(c.clone());
        }
        let found = match detect::from_sysfs(Path::new(detect::ROOT)) {
            Some(c) => c,
            None => Self::from_mountinfo_file()?,
        };
        Ok(DETECTED.get_or_init(|| found).clone())
    }

    /// Read the hierarchies from `/proc/self/mountinfo`, which grows with every mount of every
    /// Pod (its text costs the kernel about a microsecond a line): only the fallback for a host
    /// whose `/sys/fs/cgroup` is not laid out as systemd and cgroupfs-mount lay it out.
    fn from_mountinfo_file() -> Result<Self, CgroupError> {
        let path = PathBuf::from("/proc/self/mountinfo");
        let text =
            fs::read_to_string(&path).map_err(|source| CgroupError::Mounts { path, source })?;
        Self::from_mountinfo(&text)
    }

    /// Parse mountinfo text (see proc(5)): `... mountpoint ... - fstype source superoptions`.
    pub fn from_mountinfo(text: &str) -> Result<Self, CgroupError> {
        let mut hierarchies = Vec::new();
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mount = left.split(' ').nth(4).unwrap_or_default();
            let mut right = right.split(' ');
            let fstype = right.next().unwrap_or_default();
            let options = right.nth(1).unwrap_or_default();
            let mount = PathBuf::from(mount.replace("\\040", " "));
            match fstype {
                "cgroup2" => hierarchies.push(Hierarchy {
                    mount,
                    controllers: vec![],
                    v2: true,
                }),
                "cgroup" => {
                    // The super options are the controllers plus the v1 mount options of
                    // cgroups(7) (a writable `cgroup.clone_children` at a hierarchy's root shows
                    // up here as `clone_children`).
                    let controllers = options
                        .split(',')
                        .filter(|o| !o.contains('='))
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro"
                                    | "relatime"
                                    | "xattr"
                                    | "clone_children"
                                    | "cpuset_v2_mode"
                                    | "favordynmods"
                                    | "all"
                            ) && !o.starts_with("no")
                        })
                        .map(str::to_string)
                        .collect();
                    hierarchies.push(Hierarchy {
                        mount,
                        controllers,
                        v2: false,
                    });
                }
                _ => {}
            }
        }
        Self::from_hierarchies(hierarchies)
    }

    fn from_hierarchies(hierarchies: Vec<Hierarchy>) -> Result<Self, CgroupError> {
        let v1 = hierarchies.iter().any(|h| !h.v2);
        let v2 = hierarchies.iter().any(|h| h.v2);
        let mode = match (v1, v2) {
            (true, true) => Mode::Hybrid,
            (true, false) => Mode::Legacy,
            (false, true) => Mode::Unified,
            (false, false) => return Err(CgroupError::NoCgroups),
        };
        Ok(Cgroups { mode, hierarchies })
    }

    /// The cgroup of a Pod, relative to every hierarchy's root, under this process's driver
    /// (`/podshim/<uid>`, or `/podshim.slice/podshim-pod<uid>.slice` with systemd's).
    pub fn pod_path(pod_uid: &str) -> String {
        pod_path_for(Driver::current(), pod_uid)
    }

    /// The hierarchies where podshim places processes: the v1 controller hierarchies, or the
    /// single cgroup2 hierarchy on a unified host. (On a hybrid host the cgroup2 mount carries
    /// no controllers podshim uses; libcontainer's v1 manager leaves it alone too.)
    fn managed(&self) -> impl Iterator<Item = &Hierarchy> {
        let mode = self.mode;
        self.hierarchies.iter().filter(move |h| match mode {
            Mode::Unified => h.v2,
            _ => !h.v2 && !h.controllers.is_empty(),
        })
    }

    /// Create the Pod cgroup with a finite `pids.max` where the pids controller is (libcontainer
    /// creates the rest of the path in every hierarchy when it places a container).
    ///
    /// The pause process is not moved in: a v1 task migration waits for an RCU grace period per
    /// hierarchy (about 1.5 ms each here), which would double the cost of starting a Pod for a
    /// process that uses well under a megabyte.
    ///
    /// A Pod that is a systemd slice (see [`Driver`]) is made by systemd instead, with the
    /// Pod-level `limits` as the unit's properties (the caller still writes them with
    /// [`Cgroups::set_limits`]: the same values).
    pub fn create_pod(&self, pod: &str, pids_max: u64, limits: &Limits) -> Result<(), CgroupError> {
        if let Some(unit) = slice_unit(pod) {
            let h = self.managed().next().ok_or(CgroupError::NoCgroups)?;
            return driver::start_slice(&h.mount, pod, unit, pids_max, limits);
        }
        for h in self.managed() {
            if !(h.v2 || h.controllers.iter().any(|c| c == "pids")) {
                continue;
            }
            let dir = join(&h.mount, pod);
            create(h, pod)?;
            if h.v2 {
                enable_controllers(&h.mount, pod)?;
            }
            write(&dir.join("pids.max"), &pids_max.to_string())?;
        }
        Ok(())
    }

    /// The hierarchy of the memory controller: its v1 hierarchy (legacy and hybrid hosts), else
    /// the cgroup2 hierarchy of a unified host.
    fn memory(&self) -> Option<&Hierarchy> {
        self.hierarchies
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "memory"))
            .or_else(|| {
                let unified = self.mode == Mode::Unified;
                self.hierarchies.iter().find(|h| h.v2 && unified)
            })
    }

    /// How many times the memory cgroup's OOM killer killed a process in the cgroup `path`
    /// (relative to the hierarchy root): `oom_kill` of v1 `memory.oom_control` (kernel 4.13+) or
    /// of v2 `memory.events`. `None` when there is no such cgroup or counter.
    pub fn oom_kills(&self, path: &str) -> Option<u64> {
        let h = self.memory()?;
        let file = if h.v2 {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        let text = fs::read_to_string(join(&h.mount, path).join(file)).ok()?;
        oom_kill_count(&text)
    }

    /// Whether a container's memory+swap can be limited under the Pod cgroup `pod`: v1 needs swap
    /// accounting (`memory.memsw.*`), v2 the `memory.swap.max` file in the Pod cgroup.
    pub fn swap_limit_supported(&self, pod: &str) -> bool {
        match self.memory() {
            Some(h) if h.v2 => join(&h.mount, pod).join("memory.swap.max").exists(),
            Some(h) => h.mount.join("memory.memsw.limit_in_bytes").exists(),
            None => false,
        }
    }

    /// SIGKILL every process in cgroup `rel` and its descendants, in every hierarchy, until
    /// none is left (at most 2 s): what teardown finds there has no owner any more.
    pub fn kill_all(&self, rel: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        loop {
            let mut found = false;
            for h in &self.hierarchies {
                for dir in tree(&join(&h.mount, rel)) {
                    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                        found = true;
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(pid),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            if !found || std::time::Instant::now() > deadline {
                return;
            }
            sleep(Duration::from_millis(10));
        }
    }

    /// Kill what is left in the container cgroup `rel` and remove it (children first) from every
    /// hierarchy; already gone counts as done. After a create that failed half-way libcontainer
    /// may have removed its state but not the cgroup (its init had not exited when it tried).
    pub fn remove_leftover(&self, rel: &str) -> Result<(), CgroupError> {
        self.kill_all(rel);
        let mut first_error = None;
        for h in &self.hierarchies {
            if let Err(e) = remove_tree(&join(&h.mount, rel)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Remove the Pod cgroup from every hierarchy (children first), then the shared top-level
    /// directory if the kernel shows nothing else in it. Already gone counts as done. Processes
    /// still in it are killed first.
    pub fn remove_pod(&self, pod: &str) -> Result<(), CgroupError> {
        self.kill_all(pod);
        if let Some(unit) = slice_unit(pod) {
            // systemd removes its units' cgroups; podshim.slice stays, as kubepods.slice does.
            let h = self.managed().next().ok_or(CgroupError::NoCgroups)?;
            driver::stop_slice(&h.mount, pod, unit)?;
            return remove_tree(&join(&h.mount, pod));
        }
        let mut first_error = None;
        for h in &self.hierarchies {
            let dir = join(&h.mount, pod);
            if let Err(e) = remove_tree(&dir) {
                first_error.get_or_insert(e);
            }
            let top = join(&h.mount, TOP);
            // Another Pod may still live there: ENOTEMPTY/EBUSY mean "in use", not an error.
            let _ = fs::remove_dir(&top);
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Where the hierarchies are mounted on every host podshim knows, and where containers see them.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The `oom_kill N` line of v1 `memory.oom_control` or v2 `memory.events` (not `oom_kill_disable`
/// nor `oom_group_kill`).
fn oom_kill_count(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut words = l.split_whitespace();
        (words.next() == Some("oom_kill"))
            .then(|| words.next()?.parse().ok())
            .flatten()
    })
}

fn join(mount: &Path, rel: &str) -> PathBuf {
    mount.join(rel.trim_start_matches('/'))
}

fn mkdir_all(dir: &Path) -> Result<(), CgroupError> {
    // A concurrent teardown may remove the shared parent between our mkdir calls: retry.
    let mut tries = 0;
    loop {
        match fs::create_dir_all(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
            Err(source) => {
                return Err(CgroupError::Io {
                    what: "create",
                    path: dir.into(),
                    source,
                })
            }
        }
    }
}

/// Create `rel` in a hierarchy level by level. A new v1 cpuset cgroup starts with empty
/// `cpuset.cpus`/`cpuset.mems` and refuses tasks (ENOSPC) until they are set: copy the parent's.
fn create(h: &Hierarchy, rel: &str) -> Result<(), CgroupError> {
    let dir = join(&h.mount, rel);
    mkdir_all(&dir)?;
    if !h.controllers.iter().any(|c| c == "cpuset") {
        return Ok(());
    }
    let mut parent = h.mount.clone();
    for part in rel.trim_start_matches('/').split('/') {
        let child = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let current = fs::read_to_string(child.join(file)).unwrap_or_default();
            if current.trim().is_empty() {
                let value = fs::read_to_string(parent.join(file)).unwrap_or_default();
                write(&child.join(file), value.trim())?;
            }
        }
        parent = child;
    }
    Ok(())
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Io {
        what: "write",
        path: path.into(),
        source,
    })
}

/// Enable the controllers of the root along the path down to (not including) the Pod cgroup, as
/// cgroup v2's "no internal processes" rule requires for delegation (cgroups(7)).
fn enable_controllers(mount: &Path, pod: &str) -> Result<(), CgroupError> {
    let available = fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let wanted: Vec<String> = available
        .split_whitespace()
        .filter(|c| matches!(*c, "cpu" | "cpuset" | "memory" | "pids" | "io" | "hugetlb"))
        .map(|c| format!("+{c}"))
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let mut dir = mount.to_path_buf();
    for part in pod.trim_start_matches('/').split('/') {
        // Best effort per controller: one the parent lacks is simply not enabled.
        for c in &wanted {
            let _ = fs::write(dir.join("cgroup.subtree_control"), c);
        }
        dir.push(part);
    }
    Ok(())
}

/// A cgroup directory and every cgroup below it.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// rmdir a cgroup directory and its child cgroups, deepest first. A cgroup that still has
/// (exiting) tasks answers EBUSY for a moment, so retry briefly.
fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(CgroupError::Io {
                what: "read",
                path: dir.into(),
                source,
            })
        }
    };
    for entry in entries.flatten() {
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            remove_tree(&entry.path())?;
        }
    }
    for attempt in 0..50 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                sleep(Duration::from_millis(10))
            }
            Err(source) => {
                return Err(CgroupError::Io {
                    what: "remove",
                    path: dir.into(),
                    source,
                })
            }
        }
    }
    Ok(())
}
