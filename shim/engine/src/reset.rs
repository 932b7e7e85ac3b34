//! `reset`: removes the node-level state of one instance once it has no Pods left, for a user
//! who wants the host back as it was before podshim: the bridge and its node rules (masquerade,
//! forwarding), the IPAM pool, the runtime's state directories. Images and the data root stay
//! (`podshim image rm`/`prune` are for those); so do the logs.

use std::fs;
use std::path::PathBuf;

use podshim_cni::NetworkRemoval;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("pods are left ({}): remove them first (`podshim rm -f`, `podshim gc`)", pods.join(", "))]
    PodsLeft { pods: Vec<String> },
    #[error("bridge {bridge} still has ports ({}), which are not this instance's Pods'", ports.join(", "))]
    BridgeInUse { bridge: String, ports: Vec<String> },
    #[error("bridge {bridge}")]
    Network {
        bridge: String,
        #[source]
        source: podshim_cni::CniError,
    },
    #[error("{0}")]
    Remove(String),
}

/// What [`reset`] removed, to report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Removed {
    /// The bridge existed and was deleted.
    pub bridge: bool,
    /// Directories removed.
    pub dirs: Vec<PathBuf>,
}

/// The Pods this instance still has a state directory for (`<state>/pods/<key>`).
pub fn pods_left(cfg: &Config) -> Vec<String> {
    let mut pods: Vec<String> = fs::read_dir(cfg.pods_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    pods.sort();
    pods
}

/// Removes this instance's node-level state; refuses while it has Pods (`extra_pods` are those
/// the caller knows of besides the engine's, e.g. records of ended Pods).
pub fn reset(cfg: &Config, extra_pods: &[String]) -> Result<Removed, ResetError> {
    let mut pods = pods_left(cfg);
    pods.extend(extra_pods.iter().cloned());
    if !pods.is_empty() {
        return Err(ResetError::PodsLeft { pods });
    }
    let net = cfg.network();
    let network_error = |source| ResetError::Network {
        bridge: net.bridge.clone(),
        source,
    };
    let bridge = match podshim_cni::remove_network(&net, true).map_err(network_error)? {
        NetworkRemoval::Removed { bridge } => bridge,
        NetworkRemoval::InUse { ports } => {
            return Err(ResetError::BridgeInUse {
                bridge: net.bridge.clone(),
                ports,
            })
        }
    };
    let mut removed = Removed {
        bridge,
        dirs: Vec::new(),
    };
    // The runtime's state (libcontainer's, the v1 cgroup skeleton) and the empty Pod
    // directories; the state directory itself when nothing else is in it.
    for dir in [
        cfg.pods_dir(),
        cfg.runtime_dir(),
        cfg.state.join("cgroupfs"),
        cfg.root.join("containers"),
    ] {
        if dir.exists() {
            crate::teardown::remove_dir(&dir).map_err(ResetError::Remove)?;
            removed.dirs.push(dir);
        }
    }
    Ok(removed)
}
