//! What a stopped test containerd left on the host, and its removal. Everything of one daemon is
//! found from its layout: processes naming its socket or directory (containerd, its shims) or
//! living in its cgroup root (containers), mounts below its directory (snapshots, rootfs, netns
//! pins), cgroups below its cgroup root, its bridge's ports and IPAM leases, the runc state of
//! its containers, and the shim sockets containerd 1.6 puts in /run/containerd/s.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

use super::config::{Cri, Layout};

/// What was left, one line each.
#[derive(Debug, Default)]
pub struct Leftovers(pub Vec<String>);

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Leftovers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.0 {
            writeln!(f, "  {l}")?;
        }
        Ok(())
    }
}

/// The socket containerd 1.6 (and its runc shim) derives for a shim: `/run/containerd/s/` and
/// the sha256 of `<containerd address>/<namespace>/<id>` (`shim.SocketAddress`), `id` being the
/// container's or, for grouped shims, its group's (the CRI sandbox's id).
pub fn shim_socket(address: &Path, namespace: &str, id: &str) -> PathBuf {
    let key = address.join(namespace).join(id);
    let digest = Sha256::digest(key.as_os_str().as_encoded_bytes());
    Path::new("/run/containerd/s").join(hex::encode(digest))
}

/// Every cgroup hierarchy's mount point (v1 controllers, named v1 hierarchies, cgroup2).
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let fstype = post.split(' ').next()?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| PathBuf::from(pre.split(' ').nth(4).unwrap_or_default()))
        })
        .collect()
}

/// The directories of a cgroup path in every hierarchy where it exists.
pub fn cgroup_dirs(path: &str) -> Vec<PathBuf> {
    cgroup_mounts()
        .into_iter()
        .map(|m| m.join(path.trim_start_matches('/')))
        .filter(|d| d.is_dir())
        .collect()
}

/// Every directory below `dir` (not `dir` itself), deepest first.
fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subdirs(&e.path()));
                out.push(e.path());
            }
        }
    }
    out
}

/// Processes in the cgroup tree `path` (any hierarchy).
fn cgroup_pids(path: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for root in cgroup_dirs(path) {
        for dir in subdirs(&root).into_iter().chain([root]) {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            pids.extend(procs.lines().filter_map(|l| l.parse::<u32>().ok()));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Live (not zombie) processes whose command line contains `needle`.
fn processes_naming(needle: &str) -> Vec<(u32, String)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')));
        if cmdline.contains(needle) && !zombie {
            out.push((pid, cmdline.trim().to_string()));
        }
    }
    out
}

/// Mount points below `dir`, deepest (latest) first.
fn mounts_below(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    out.reverse();
    out
}

fn ipam_leases(cri: &Cri) -> Vec<PathBuf> {
    subdirs(&cri.ipam_dir)
        .into_iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
        })
        .collect()
}

fn bridge_ports(bridge: &str) -> Vec<String> {
    std::fs::read_dir(Path::new("/sys/class/net").join(bridge).join("brif"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Shim sockets of this daemon: computed for every (namespace, id) containerd knows of in its
/// bundle directories (`state/io.containerd.runtime.v2.task/<ns>/<id>`), which containerd keeps
/// until a task is deleted, plus the ids a test registered.
fn shim_sockets(layout: &Layout, ids: &[(String, String)]) -> Vec<PathBuf> {
    let tasks = layout.state.join("io.containerd.runtime.v2.task");
    let mut known: Vec<(String, String)> = ids.to_vec();
    for ns in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
        for id in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            known.push((
                ns.file_name().to_string_lossy().into_owned(),
                id.file_name().to_string_lossy().into_owned(),
            ));
        }
    }
    let mut sockets: Vec<PathBuf> = known
        .iter()
        .map(|(ns, id)| shim_socket(&layout.address, ns, id))
        .filter(|p| p.exists())
        .collect();
    sockets.sort();
    sockets.dedup();
    sockets
}

/// What the daemon left, after it has been stopped. `expected_cgroups` may stay (with their
/// ancestors below the root); `ids` are (namespace, shim id) pairs the test used.
pub fn leftovers(
    layout: &Layout,
    cri: Option<&Cri>,
    expected_cgroups: &[String],
    ids: &[(String, String)],
) -> Leftovers {
    let mut left = Vec::new();
    let address = layout.address.display().to_string();
    let dir = layout.dir.display().to_string();
    for (pid, cmd) in processes_naming(&address)
        .into_iter()
        .chain(processes_naming(&format!("{dir}/")))
    {
        left.push(format!("process {pid}: {cmd}"));
    }
    for pid in cgroup_pids(&layout.cgroup_root) {
        left.push(format!("process {pid} in cgroup {}", layout.cgroup_root));
    }
    for m in mounts_below(&layout.dir) {
        left.push(format!("mount {m}"));
    }
    let allowed = |rel: &str| {
        expected_cgroups.iter().any(|e| {
            let e = e.trim_start_matches('/');
            e == rel || e.starts_with(&format!("{rel}/"))
        })
    };
    for mount in cgroup_mounts() {
        let root = mount.join(layout.cgroup_root.trim_start_matches('/'));
        for d in subdirs(&root) {
            let rel = d.strip_prefix(&mount).unwrap().display().to_string();
            if !allowed(&rel) {
                left.push(format!("cgroup {}", d.display()));
            }
        }
    }
    for ns in std::fs::read_dir(layout.dir.join("runc"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for id in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            left.push(format!("runc state {}", id.path().display()));
        }
    }
    for s in shim_sockets(layout, ids) {
        left.push(format!("shim socket {}", s.display()));
    }
    if let Some(cri) = cri {
        for port in bridge_ports(&cri.bridge) {
            left.push(format!("veth {port} on bridge {}", cri.bridge));
        }
        for lease in ipam_leases(cri) {
            left.push(format!("IPAM lease {}", lease.display()));
        }
    }
    // A shim names both the socket and the directory; a socket may be known twice.
    let mut seen = std::collections::HashSet::new();
    left.retain(|l| seen.insert(l.clone()));
    Leftovers(left)
}

/// Remove everything of a stopped daemon, whatever state it is in: kill its shims and
/// containers (by PID), unmount, remove its cgroups, bridge and shim sockets.
pub fn remove_everything(layout: &Layout, cri: Option<&Cri>, ids: &[(String, String)]) {
    let sockets = shim_sockets(layout, ids);
    let dir = format!("{}/", layout.dir.display());
    let mut pids: Vec<u32> = processes_naming(&layout.address.display().to_string())
        .into_iter()
        .chain(processes_naming(&dir))
        .map(|(pid, _)| pid)
        .collect();
    pids.extend(cgroup_pids(&layout.cgroup_root));
    for pid in &pids {
        let _ = kill(Pid::from_raw(*pid as i32), Signal::SIGKILL);
    }
    // Killed processes leave their cgroups once the kernel has reaped them; wait a little.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cgroup_pids(&layout.cgroup_root).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for m in mounts_below(&layout.dir) {
        let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
    }
    for root in cgroup_dirs(&layout.cgroup_root) {
        for d in subdirs(&root).into_iter().chain([root]) {
            let _ = std::fs::remove_dir(&d);
        }
    }
    if let Some(cri) = cri {
        if Path::new("/sys/class/net").join(&cri.bridge).exists() {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &cri.bridge])
                .status();
        }
    }
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
}
