//! A Pod on this host: its sandbox (pause, network, volumes, cgroup), its containers, and the
//! journal-driven teardown. Every front-end (the foreground CLI now; the supervisor, the
//! containerd shim and the controllers later) drives Pods through this module.

pub use podshim_engine::{chain, gc, journal, netcheck, pod_key, teardown};

pub mod container;
pub mod exec;
pub mod files;
pub mod order;
pub mod ports;
pub mod process;
pub mod projection;
pub mod resources;
pub mod restart;
pub mod sandbox;

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
    #[error("pod {key} already exists (state in {dir}); remove it with `podshim rm -f`, or use `podshim run --replace`")]
    AlreadyExists { key: String, dir: PathBuf },
    #[error("pod {key} was left behind by podshim (pid {pid}), which is gone; remove it with `podshim gc`")]
    Orphaned { key: String, pid: u32 },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the pause process failed to start ({path})")]
    Pause {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: {reason}")]
    HostPort { field: String, reason: String },
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Mount(#[from] crate::mounts::MountError),
    #[error("pod network")]
    Network(#[from] podshim_cni::CniError),
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
    #[error("podshim has {threads} threads, but containers can only be created from a single-threaded process (libcontainer forks it); this is a bug")]
    Threads { threads: usize },
    #[error("{error}; rolling back also failed: {}", rollback.join("; "))]
    Rollback {
        #[source]
        error: Box<PodError>,
        rollback: Vec<String>,
    },
}

/// libcontainer forks (clones) the calling process to create a container, which is only sound
/// in a single-threaded process (a fork copies only the calling thread; locks held by the
/// others stay locked forever in the child). Image pulls run a tokio runtime: it must be gone.
/// Threads that were just joined may linger in /proc for a moment, hence the short wait.
pub fn ensure_single_threaded() -> Result<(), PodError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let threads = std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(1);
        if threads <= 1 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(PodError::Threads { threads });
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
