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
use std::thread::sleep;
use std::time::Duration;

use libcontainer::oci_spec::runtime::{
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder, Spec,
};

/// The top-level cgroup under which every podshim Pod lives.
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
    /// Read the hierarchies from `/proc/self/mountinfo`.
    pub fn detect() -> Result<Self, CgroupError> {
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

    /// The cgroup of a Pod, relative to every hierarchy's root.
    pub fn pod_path(pod_uid: &str) -> String {
        format!("/{TOP}/{pod_uid}")
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
    pub fn create_pod(&self, pod: &str, pids_max: u64) -> Result<(), CgroupError> {
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

    /// Remove the Pod cgroup from every hierarchy (children first), then the shared top-level
    /// directory if the kernel shows nothing else in it. Already gone counts as done. Processes
    /// still in it are killed first.
    pub fn remove_pod(&self, pod: &str) -> Result<(), CgroupError> {
        self.kill_all(pod);
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

/// A `linux.cgroupsPath` as a path from each hierarchy's root: the cgroupfs form as it is; the
/// systemd driver's `slice:prefix:name` as systemd lays it out (`a-b.slice` nests in `a.slice`,
/// the unit is `prefix-name.scope`).
pub fn cgroupfs_path(path: &str) -> String {
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return path.to_string();
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut out = String::new();
    let stem = slice.trim_end_matches(".slice");
    let mut acc = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            acc.push('-');
        }
        acc.push_str(part);
        if acc != "-" {
            out.push_str(&format!("/{acc}.slice"));
        }
    }
    if stem == "-" || stem.is_empty() {
        out.clear();
    }
    let unit = if name.ends_with(".slice") || name.ends_with(".scope") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    format!("{out}/{unit}")
}

/// Rewrite a spec's `linux.cgroupsPath` in the cgroupfs form and return it (empty when it has
/// none). libcontainer is driven with its cgroupfs manager, which would take the systemd
/// driver's `slice:prefix:name` (what containerd's CRI sends with `SystemdCgroup = true`) as one
/// directory name; laid out as systemd does, it is the same cgroup either driver would use.
pub fn cgroupfs_spec_path(spec: &mut Spec) -> String {
    let Some(mut linux) = spec.linux().clone() else {
        return String::new();
    };
    let Some(given) = linux.cgroups_path().clone() else {
        return String::new();
    };
    let path = cgroupfs_path(&given.display().to_string());
    if Path::new(&path) != given {
        linux.set_cgroups_path(Some(PathBuf::from(&path)));
        spec.set_linux(Some(linux));
    }
    path
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

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 25 0:30 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate
37 35 0:32 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
38 35 0:33 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 35 0:34 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
40 35 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
";
    const UNIFIED: &str = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";

    #[test]
    fn detects_hybrid_and_controllers() {
        let c = Cgroups::from_mountinfo(HYBRID).unwrap();
        assert_eq!(c.mode, Mode::Hybrid);
        let managed: Vec<_> = c.managed().map(|h| h.mount.clone()).collect();
        assert_eq!(
            managed,
            vec![
                PathBuf::from("/sys/fs/cgroup/memory"),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
                PathBuf::from("/sys/fs/cgroup/pids")
            ]
        );
        assert_eq!(c.hierarchies[3].controllers, vec!["cpu", "cpuacct"]);
        assert!(
            c.hierarchies[1].controllers.is_empty(),
            "named hierarchy has no controllers"
        );
    }

    #[test]
    fn systemd_cgroup_paths_are_laid_out_as_systemd_does() {
        assert_eq!(cgroupfs_path("/podshim/u/c"), "/podshim/u/c");
        assert_eq!(
            cgroupfs_path("kubepods-besteffort-pod12.slice:cri-containerd:abc"),
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
        );
        assert_eq!(
            cgroupfs_path("system.slice:docker:1"),
            "/system.slice/docker-1.scope"
        );
        assert_eq!(cgroupfs_path("-.slice:p:x"), "/p-x.scope");
    }

    #[test]
    fn a_specs_cgroups_path_is_taken_in_either_form() {
        use libcontainer::oci_spec::runtime::LinuxBuilder;
        let spec = |path: Option<&str>| -> Spec {
            let linux = match path {
                Some(p) => LinuxBuilder::default().cgroups_path(p),
                None => LinuxBuilder::default(),
            };
            let mut spec = Spec::default();
            spec.set_linux(Some(linux.build().unwrap()));
            spec
        };
        let path_of = |s: &Spec| s.linux().as_ref().unwrap().cgroups_path().clone();
        let mut cgroupfs = spec(Some("/podshim/u/c"));
        assert_eq!(cgroupfs_spec_path(&mut cgroupfs), "/podshim/u/c");
        assert_eq!(path_of(&cgroupfs), Some(PathBuf::from("/podshim/u/c")));
        let mut systemd = spec(Some("kubepods-burstable-pod7.slice:cri-containerd:c1"));
        let want = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7.slice/\
                    cri-containerd-c1.scope";
        assert_eq!(cgroupfs_spec_path(&mut systemd), want);
        // libcontainer is given the cgroupfs form, so it makes the cgroup systemd would.
        assert_eq!(path_of(&systemd), Some(PathBuf::from(want)));
        let mut none = spec(None);
        assert_eq!(cgroupfs_spec_path(&mut none), "");
        assert_eq!(path_of(&none), None);
        let mut no_linux = Spec::default();
        no_linux.set_linux(None);
        assert_eq!(cgroupfs_spec_path(&mut no_linux), "");
    }

    #[test]
    fn a_read_only_cgroup_mount_becomes_the_containers_own_view() {
        let spec_json = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
                {"destination": "/data", "type": "bind", "source": "/v", "options": ["rbind"]}
            ],
            "linux": {"cgroupsPath": "/podshim/u/c", "namespaces": [{"type": "mount"}]}
        });
        let skeleton = tempfile::tempdir().unwrap();
        let skeleton = skeleton.path().join("cgroupfs");

        let mut spec: Spec = serde_json::from_value(spec_json.clone()).unwrap();
        let hybrid = Cgroups::from_mountinfo(HYBRID).unwrap();
        hybrid.harden(&mut spec, &skeleton).unwrap();
        let mounts = spec.mounts().clone().unwrap();
        let dests: Vec<String> = mounts
            .iter()
            .map(|m| m.destination().display().to_string())
            .collect();
        assert_eq!(
            dests,
            [
                "/proc",
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/pids",
                "/data"
            ]
        );
        assert_eq!(mounts[1].source().as_deref(), Some(skeleton.as_path()));
        assert_eq!(
            mounts[2].source().as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory/podshim/u/c"))
        );
        for m in &mounts[1..5] {
            assert!(m.options().iter().flatten().any(|o| o == "ro"), "{m:?}");
        }
        assert!(skeleton.join("memory").is_dir() && skeleton.join("systemd").is_dir());

        let mut spec: Spec = serde_json::from_value(spec_json.clone()).unwrap();
        Cgroups::from_mountinfo(UNIFIED)
            .unwrap()
            .harden(&mut spec, &skeleton)
            .unwrap();
        assert_eq!(
            spec.mounts().as_ref().unwrap().len(),
            3,
            "the cgroup2 mount stays"
        );
        let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));

        // A privileged container's writable view is its own business.
        let mut privileged = spec_json;
        privileged["mounts"][1]["options"] = serde_json::json!(["nosuid"]);
        let mut spec: Spec = serde_json::from_value(privileged).unwrap();
        hybrid.harden(&mut spec, &skeleton).unwrap();
        assert_eq!(spec.mounts().as_ref().unwrap().len(), 3);
    }

    #[test]
    fn v1_mount_options_are_not_controllers() {
        let text = "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,clone_children,name=systemd\n\
41 31 0:38 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,noprefix,cpuset_v2_mode,cpuset,release_agent=/x\n";
        let c = Cgroups::from_mountinfo(text).unwrap();
        assert!(c.hierarchies[0].controllers.is_empty());
        assert_eq!(c.hierarchies[1].controllers, vec!["cpuset"]);
        assert_eq!(c.managed().count(), 1);
    }

    #[test]
    fn detects_unified_and_legacy() {
        let c = Cgroups::from_mountinfo(UNIFIED).unwrap();
        assert_eq!(c.mode, Mode::Unified);
        assert_eq!(c.managed().count(), 1);
        let legacy: String = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(Cgroups::from_mountinfo(&legacy).unwrap().mode, Mode::Legacy);
        assert!(matches!(
            Cgroups::from_mountinfo(""),
            Err(CgroupError::NoCgroups)
        ));
    }

    #[test]
    fn oom_kills_from_v1_oom_control_and_v2_events() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(oom_kill_count(v1), Some(2));
        let v2 = "low 0\nhigh 0\nmax 31\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(oom_kill_count(v2), Some(1));
        // Kernels before 4.13 have no counter in memory.oom_control.
        assert_eq!(oom_kill_count("oom_kill_disable 0\nunder_oom 0\n"), None);
        assert_eq!(oom_kill_count("oom_group_kill 3\n"), None);
    }

    #[test]
    fn memory_hierarchy_per_mode() {
        let hybrid = Cgroups::from_mountinfo(HYBRID).unwrap();
        let m = hybrid.memory().unwrap();
        assert_eq!(m.mount, PathBuf::from("/sys/fs/cgroup/memory"));
        let unified = Cgroups::from_mountinfo(UNIFIED).unwrap();
        assert!(unified.memory().unwrap().v2);
        let no_memory: String = HYBRID
            .lines()
            .filter(|l| !l.contains("memory") && !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let legacy = Cgroups::from_mountinfo(&no_memory).unwrap();
        assert!(legacy.memory().is_none());
        assert_eq!(legacy.oom_kills("/podshim/u/c"), None);
        assert!(!legacy.swap_limit_supported("/podshim/u"));
    }

    #[test]
    fn pod_path_is_absolute_under_top() {
        assert_eq!(Cgroups::pod_path("abc"), "/podshim/abc");
        assert_eq!(
            join(Path::new("/sys/fs/cgroup/pids"), "/podshim/abc"),
            PathBuf::from("/sys/fs/cgroup/pids/podshim/abc")
        );
    }
}
