//! The OCI runtime spec (`config.json`) of one container, typed (`oci_spec::runtime::Spec`) and
//! made with oci-spec's builders, with the security defaults containerd puts in every spec
//! (libcontainer applies only what it is given): `process` in [`process`], `mounts` and the
//! masked paths in [`mounts`], `linux.resources` in [`resources`].

mod mounts;
mod process;
mod resources;

use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{
    Linux, LinuxBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType, RootBuilder,
    Spec, SpecBuilder,
};

pub use mounts::{MASKED_PATHS, READONLY_PATHS};
pub use process::{capabilities, clamp, parse_capability, HostLimits, ALL_CAPS, DEFAULT_CAPS};
pub use resources::Resources;

/// The OCI runtime spec version podshim writes.
const OCI_VERSION: &str = "1.0.2";

/// Why a spec could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("unknown capability {name:?}")]
    Capability { name: String },
    #[error("{what}: {detail}")]
    Builder { what: &'static str, detail: String },
}

impl SpecError {
    /// An oci-spec builder's error, with the part of the spec it was building.
    fn builder(
        what: &'static str,
    ) -> impl FnOnce(libcontainer::oci_spec::OciSpecError) -> SpecError {
        move |e| SpecError::Builder {
            what,
            detail: e.to_string(),
        }
    }
}

/// A bind mount into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
}

/// What one container's spec is made of; everything Kubernetes-specific is resolved by the caller.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub rootfs: PathBuf,
    pub readonly_rootfs: bool,
    pub capabilities: Vec<String>,
    pub no_new_privileges: bool,
    /// Namespaces joined by path: the netns pin, and the pause process's IPC and UTS.
    pub netns: PathBuf,
    pub ipcns: PathBuf,
    pub utsns: PathBuf,
    pub cgroups_path: String,
    pub binds: Vec<Bind>,
    pub resources: Resources,
    pub limits: HostLimits,
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace, SpecError> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    let b = match path {
        Some(p) => b.path(p),
        None => b,
    };
    b.build().map_err(SpecError::builder("linux.namespaces"))
}

/// `linux`: the container's own PID and mount namespaces, the Pod's network, IPC and UTS ones
/// (joined by path), its cgroup, limits, and the masked and read-only paths.
fn linux(c: &ContainerSpec) -> Result<Linux, SpecError> {
    let namespaces = vec![
        namespace(LinuxNamespaceType::Pid, None)?,
        namespace(LinuxNamespaceType::Mount, None)?,
        namespace(LinuxNamespaceType::Network, Some(&c.netns))?,
        namespace(LinuxNamespaceType::Ipc, Some(&c.ipcns))?,
        namespace(LinuxNamespaceType::Uts, Some(&c.utsns))?,
    ];
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    LinuxBuilder::default()
        .cgroups_path(PathBuf::from(&c.cgroups_path))
        .resources(resources::build(&c.resources)?)
        .namespaces(namespaces)
        .masked_paths(strings(&MASKED_PATHS))
        .readonly_paths(strings(&READONLY_PATHS))
        .build()
        .map_err(SpecError::builder("linux"))
}

/// The `config.json` of one container.
pub fn build(c: &ContainerSpec) -> Result<Spec, SpecError> {
    let root = RootBuilder::default()
        .path(&c.rootfs)
        .readonly(c.readonly_rootfs)
        .build()
        .map_err(SpecError::builder("root"))?;
    let mut spec = SpecBuilder::default()
        .version(OCI_VERSION)
        .process(process::build(c)?)
        .root(root)
        .mounts(mounts::build(&c.binds)?)
        .linux(linux(c)?)
        .build()
        .map_err(SpecError::builder("spec"))?;
    // The builder starts from oci-spec's example spec, which names the host and annotates.
    spec.set_hostname(None);
    spec.set_annotations(None);
    Ok(spec)
}

#[cfg(test)]
mod tests;
