//! Where one podshim instance keeps things: the global options and the paths derived from them.
//!
//! Two instances with different `--root/--state/--bridge/--subnet` share nothing: every path,
//! the bridge, the IPAM directory and the cgroup parent are derived from these values.

use std::path::{Path, PathBuf};

use podshim_cni::{Ipv4Net, NetworkConfig};

/// The global options of one podshim instance.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent data: images, IPAM leases, containers' writable layers.
    pub root: PathBuf,
    /// Live Pods: journals, netns pins, emptyDirs, libcontainer state.
    pub state: PathBuf,
    /// The host bridge Pods attach to.
    pub bridge: String,
    /// The Pod subnet; its first address is the bridge's (the Pods' gateway).
    pub subnet: Ipv4Net,
    /// The pause binary.
    pub pause: PathBuf,
    /// Keep the bridge when the last Pod leaves it (the default: it is node infrastructure, as
    /// `cni0` or `docker0`; `podshim gc` removes it once no Pod uses it, `podshim reset` always).
    pub keep_bridge: bool,
    /// Masquerade Pods' traffic leaving the Pod subnet: one rule for the whole subnet, set up
    /// with the bridge (the default), so Pods reach other networks at no cost per Pod.
    pub masquerade: bool,
    /// A CNI network configuration (`.conf` or `.conflist`) to run for each Pod instead of the
    /// built-in bridge.
    pub cni_conf: Option<PathBuf>,
    /// `CNI_PATH` for the plugins of `cni_conf`.
    pub cni_path: String,
}

impl Config {
    /// Directory of a Pod's live state (journal, netns pin, /etc files, emptyDirs, bundles).
    pub fn pod_dir(&self, pod_key: &str) -> PathBuf {
        self.state.join("pods").join(pod_key)
    }

    /// Directory of all live Pods.
    pub fn pods_dir(&self) -> PathBuf {
        self.state.join("pods")
    }

    /// libcontainer's state root (one directory per container id).
    pub fn runtime_dir(&self) -> PathBuf {
        self.state.join("runtime")
    }

    /// The runtime of this instance's containers: libcontainer state under `runtime_dir`, the
    /// v1 cgroup skeleton in the state directory, forking in this (single-threaded) process.
    pub fn runtime(&self) -> crate::spawner::Runtime {
        crate::spawner::Runtime {
            dir: self.runtime_dir(),
            cgroup_skeleton: self.state.join("cgroupfs"),
            spawner: crate::spawner::Spawner::InProcess,
        }
    }

    /// Writable layers of one Pod's containers (on the data root, not the state tmpfs).
    pub fn layers_dir(&self, pod_uid: &str) -> PathBuf {
        self.root.join("containers").join(pod_uid)
    }

    /// The network settings handed to the cni crate.
    pub fn network(&self) -> NetworkConfig {
        NetworkConfig {
            bridge: self.bridge.clone(),
            subnet: self.subnet,
            ipam_dir: self.root.join("ipam").join(&self.bridge),
            mtu: None,
            keep_bridge: self.keep_bridge,
        }
    }

    /// Find the pause binary: `$PODSHIM_PAUSE`, next to this executable, or the install paths.
    pub fn find_pause() -> PathBuf {
        if let Some(p) = std::env::var_os("PODSHIM_PAUSE") {
            return PathBuf::from(p);
        }
        let mut candidates = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            candidates.push(dir.join("pause"));
        }
        candidates.push(PathBuf::from("/usr/local/lib/podshim/pause"));
        candidates.push(PathBuf::from("/usr/lib/podshim/pause"));
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .unwrap_or_else(|| candidates[0].clone())
    }
}
