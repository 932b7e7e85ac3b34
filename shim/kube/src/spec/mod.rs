//! The OCI runtime spec (`config.json`) of one container, typed (`oci_spec::runtime::Spec`) and
//! made with oci-spec's builders, with the security defaults containerd puts in every spec
//! (libcontainer applies only what it is given): `process` in [`process`], `mounts` and the
//! masked paths in [`mounts`], `linux.resources` in [`resources`], the seccomp filters of
//! `seccompProfile` in [`seccomp`], a privileged container's host devices in [`devices`].

pub mod devices;
mod mounts;
mod process;
mod resources;
pub mod seccomp;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{
    Linux, LinuxBuilder, LinuxDevice, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxSeccomp, RootBuilder, Spec, SpecBuilder,
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
    #[error("cannot load seccomp profile {path:?}: {detail}")]
    Profile { path: PathBuf, detail: String },
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
    /// `rprivate` (Kubernetes' `None`), `rslave` (`HostToContainer`), `rshared`
    /// (`Bidirectional`).
    pub propagation: &'static str,
    /// `recursiveReadOnly`: every mount below read-only too (`rro`, mount_setattr(2)).
    pub recursive_readonly: bool,
}

impl Bind {
    /// A private bind (no propagation), read-only or not.
    pub fn private(source: PathBuf, destination: impl Into<String>, readonly: bool) -> Bind {
        Bind {
            source,
            destination: destination.into(),
            readonly,
            propagation: "rprivate",
            recursive_readonly: false,
        }
    }
}

/// Where a container's namespace of one kind comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// A new one of its own.
    Own,
    /// The host's (`hostPID`, `hostIPC`): no namespace of that kind in the spec.
    Host,
    /// One that exists (a `/proc/<pid>/ns/…` path): the Pod's.
    Join(PathBuf),
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
    /// `process.terminal`: the container gets a pseudo-terminal (`tty: true`).
    pub terminal: bool,
    /// Namespaces joined by path: the netns pin, and the pause process's UTS.
    pub netns: PathBuf,
    pub utsns: PathBuf,
    /// The Pod's user namespace (`hostUsers: false`), joined by path: no ID maps in the spec,
    /// so libcontainer neither makes one nor checks the mounts for ID-mapping options.
    pub userns: Option<PathBuf>,
    /// The Pod's IPC namespace (pause's), or the host's.
    pub ipc: Namespace,
    /// The container's own PID namespace, the Pod's shared one, or the host's.
    pub pid: Namespace,
    pub cgroups_path: String,
    pub binds: Vec<Bind>,
    pub resources: Resources,
    pub limits: HostLimits,
    /// `privileged: true`: every capability (the caller gives them), every host device, `/sys`
    /// and the cgroups writable, nothing masked, no seccomp filter.
    pub privileged: bool,
    /// `procMount: Unmasked`: no masked or read-only paths under `/proc`.
    pub unmasked_proc: bool,
    /// Host devices given to a privileged container ([`devices::host_devices`]).
    pub devices: Vec<LinuxDevice>,
    /// `linux.seccomp` (`None`: unconfined).
    pub seccomp: Option<LinuxSeccomp>,
    /// `process.apparmorProfile` (`None`: unconfined).
    pub apparmor_profile: Option<String>,
    /// Namespaced sysctls, set in the container's namespaces before its process starts.
    pub sysctls: BTreeMap<String, String>,
}

fn namespace(typ: LinuxNamespaceType, path: Option<&Path>) -> Result<LinuxNamespace, SpecError> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    let b = match path {
        Some(p) => b.path(p),
        None => b,
    };
    b.build().map_err(SpecError::builder("linux.namespaces"))
}

/// `linux`: the container's own mount namespace, its PID namespace, the Pod's network and UTS
/// ones and its IPC one (or the host's), its cgroup, limits, devices, seccomp filter, sysctls, and
/// the masked and read-only paths.
fn linux(c: &ContainerSpec) -> Result<Linux, SpecError> {
    let mut namespaces = Vec::new();
    if let Some(path) = &c.userns {
        namespaces.push(namespace(LinuxNamespaceType::User, Some(path))?);
    }
    for (typ, ns) in [
        (LinuxNamespaceType::Pid, &c.pid),
        (LinuxNamespaceType::Mount, &Namespace::Own),
        (
            LinuxNamespaceType::Network,
            &Namespace::Join(c.netns.clone()),
        ),
        (LinuxNamespaceType::Ipc, &c.ipc),
        (LinuxNamespaceType::Uts, &Namespace::Join(c.utsns.clone())),
    ] {
        match ns {
            Namespace::Own => namespaces.push(namespace(typ, None)?),
            Namespace::Join(path) => namespaces.push(namespace(typ, Some(path))?),
            Namespace::Host => {}
        }
    }
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // containerd: a privileged container, or `procMount: Unmasked`, masks nothing.
    let unmasked = c.privileged || c.unmasked_proc;
    let (masked, readonly) = match unmasked {
        true => (vec![], vec![]),
        false => (strings(&MASKED_PATHS), strings(&READONLY_PATHS)),
    };
    let mut b = LinuxBuilder::default()
        .cgroups_path(PathBuf::from(&c.cgroups_path))
        .resources(resources::build(&c.resources, c.privileged)?)
        .namespaces(namespaces)
        .masked_paths(masked)
        .readonly_paths(readonly);
    if !c.devices.is_empty() {
        b = b.devices(c.devices.clone());
    }
    if let Some(s) = &c.seccomp {
        b = b.seccomp(s.clone());
    }
    if !c.sysctls.is_empty() {
        b = b.sysctl(
            c.sysctls
                .clone()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>(),
        );
    }
    b.build().map_err(SpecError::builder("linux"))
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
        .mounts(mounts::build(&c.binds, c.privileged)?)
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
