//! podshim's engine: the host side of Pods and containers, with no Kubernetes in it.
//!
//! A sandbox (pause holding the namespaces, its network, its cgroup), containers created from OCI
//! runtime specs over a root filesystem, their lifecycle through libcontainer, exec, the journal
//! that records every host resource before it is made, and the teardown and garbage collection
//! that work from it. The Kubernetes layer (`podshim-kube`) and the front-ends (the `podshim`
//! CLI, the containerd shim) call it; it calls nothing above it.

pub mod arglimit;
mod batch;
pub mod cgroups;
pub mod config;
pub mod console;
pub mod container;
pub mod error;
pub mod exe;
pub mod exec;
pub mod forks;
pub mod gc;
pub mod helper;
pub mod journal;
pub mod launch;
pub mod mounts;
pub mod netcheck;
mod pause;
pub mod ports;
pub mod private;
pub mod reset;
pub mod rootfs;
pub mod sandbox;
pub mod spawner;
pub mod state;
pub mod sys;
pub mod teardown;
mod usage;
pub mod userns;

pub use container::{Container, Create};
pub use error::{Error, ErrorKind};
pub use sandbox::{Sandbox, SandboxSpec};
pub use spawner::{Runtime, Spawner, Stdio};
pub use state::{ContainerState, SandboxState};

/// The key of a Pod in the state directory: `<namespace>_<name>` (both are DNS names, so `_`
/// cannot occur in either).
pub fn pod_key(namespace: &str, name: &str) -> String {
    format!("{namespace}_{name}")
}

/// Render an error with its whole `source()` chain, for messages kept as text.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = e.source();
    }
    s
}
