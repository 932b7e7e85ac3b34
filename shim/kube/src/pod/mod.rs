//! A Kubernetes Pod on this host, over the engine: its sandbox and containers made from the
//! Pod's spec (the kubelet's `/etc` files, ConfigMap and Secret contents, command, environment
//! and user resolution, QoS, restart and start order).

pub use podshim_engine::{chain, exec, gc, journal, netcheck, pod_key, teardown};

pub mod container;
pub mod files;
pub mod host_path;
pub mod image_volume;
pub mod order;
pub mod pod_level;
pub mod ports;
pub mod process;
pub mod projection;
pub mod resources;
pub mod restart;
pub mod sandbox;
pub mod subpath;

use std::io;
use std::path::PathBuf;

pub use container::{ContainerPlan, Started};
pub use sandbox::Sandbox;

/// A fresh Pod UID in the RFC 4122 version 4 text form Kubernetes uses.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        (b[8] & 0x3) | 0x8,
        &h[17..20],
        &h[20..32]
    )
}

#[derive(Debug, thiserror::Error)]
pub enum PodError {
    #[error(transparent)]
    Engine(#[from] podshim_engine::Error),
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("container {container:?}: {source}")]
    Process {
        container: String,
        #[source]
        source: process::ProcessError,
    },
    #[error("container {container:?}: the runtime failed to {action} it: {detail}")]
    Runtime {
        container: String,
        action: &'static str,
        detail: String,
    },
    #[error("{error}; rolling back also failed: {}", rollback.join("; "))]
    Rollback {
        #[source]
        error: Box<PodError>,
        rollback: Vec<String>,
    },
}

impl From<podshim_engine::journal::JournalError> for PodError {
    fn from(e: podshim_engine::journal::JournalError) -> Self {
        PodError::Engine(e.into())
    }
}

impl From<podshim_engine::cgroups::CgroupError> for PodError {
    fn from(e: podshim_engine::cgroups::CgroupError) -> Self {
        PodError::Engine(e.into())
    }
}

impl From<podshim_engine::mounts::MountError> for PodError {
    fn from(e: podshim_engine::mounts::MountError) -> Self {
        PodError::Engine(e.into())
    }
}
