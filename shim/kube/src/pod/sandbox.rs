//! The Kubernetes side of a Pod's sandbox: the engine's sandbox (pause, network, cgroup,
//! volumes) made from the Pod's spec, plus what the kubelet puts in it: the managed
//! `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`, and the files of `configMap` and
//! `secret` volumes. A failure after the engine's sandbox exists tears it down again.

use std::fs;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use podshim_cni::Attachment;
use podshim_engine::sandbox::{self as engine, Network, Volume};

use super::files::{self, Dns};
use super::ports::HostPort;
use super::projection::{self, Projection};
use super::PodError;
use podshim_engine::cgroups::Cgroups;
use podshim_engine::config::Config;

/// A Pod volume: an emptyDir, or a `configMap`/`secret` volume (`contents` set; a Secret's is
/// `memory`, so its files live on a tmpfs and never touch a disk).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeSpec {
    pub name: String,
    /// `medium: Memory`: one tmpfs.
    pub memory: bool,
    /// `sizeLimit` in bytes (the tmpfs `size=`).
    pub size_limit: Option<u64>,
    /// The files of a `configMap` or `secret` volume.
    pub contents: Option<Projection>,
    /// A `hostPath` volume: the host's path and its `type` (the engine makes nothing for it).
    #[serde(default)]
    pub host_path: Option<(PathBuf, String)>,
    /// An `image` volume: the image's unpacked layers, lowest first, mounted read-only
    /// (`super::image_volume`; the engine makes nothing for it).
    #[serde(default)]
    pub image: Option<Vec<PathBuf>>,
    /// A `persistentVolumeClaim`'s directory (given as `host_path`): unlike a hostPath, the
    /// Pod's `fsGroup` owns it, as the kubelet's `local` volumes are owned.
    #[serde(default)]
    pub claim: bool,
}

/// What the sandbox is made of, resolved from the Pod manifest.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub hostname: String,
    pub fqdn: Option<String>,
    /// `dnsPolicy: None`: only `dns_config` counts; otherwise the host's resolv.conf plus it.
    pub dns_none: bool,
    pub dns_config: Dns,
    pub host_aliases: Vec<(String, Vec<String>)>,
    /// `hostNetwork: true`: the host's network namespace, no veth, no Pod IP, no NAT.
    pub host_network: bool,
    /// `ports[].hostPort`: forwarded to the Pod IP (checked free before anything is created).
    pub host_ports: Vec<HostPort>,
    /// Masquerade the Pod's traffic leaving the Pod subnet (as Kubernetes nodes do).
    pub masquerade: bool,
    pub volumes: Vec<VolumeSpec>,
    /// Manifest digests of the images the Pod's containers run, recorded in its journal so
    /// that `podshim image prune` keeps them while the Pod lives.
    pub images: Vec<String>,
    /// `hostPID`: containers see the host's processes.
    #[serde(default)]
    pub host_pid: bool,
    /// `hostIPC`: containers use the host's IPC namespace.
    #[serde(default)]
    pub host_ipc: bool,
    /// `shareProcessNamespace`: one PID namespace, pause its PID 1.
    #[serde(default)]
    pub share_pid: bool,
    /// The Pod's admitted sysctls, set in every container.
    #[serde(default)]
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `securityContext.fsGroup`: the group that owns the Pod's volumes (not hostPaths).
    #[serde(default)]
    pub fs_group: Option<u32>,
    /// `fsGroupChangePolicy: OnRootMismatch`: a volume whose top directory already has the
    /// group and modes is left as it is (only a claim can have them before the Pod).
    #[serde(default)]
    pub fs_group_on_root_mismatch: bool,
    /// The Pod cgroup's limits from Pod-level `spec.resources` (`pod::pod_level`).
    #[serde(default)]
    pub pod_limits: Option<podshim_engine::cgroups::Limits>,
    /// `hostUsers: false`: a user namespace and a block of host IDs of the Pod's own.
    #[serde(default)]
    pub user_namespace: bool,
}

impl SandboxSpec {
    /// The engine's sandbox for this Pod: its cgroup under podshim's (`/podshim/<uid>`).
    pub fn engine(&self) -> engine::SandboxSpec {
        let network = if self.host_network {
            Network::Host {
                host_ports: self.host_ports.clone(),
            }
        } else {
            Network::Pod {
                host_ports: self.host_ports.clone(),
                masquerade: self.masquerade,
            }
        };
        engine::SandboxSpec {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            hostname: self.hostname.clone(),
            network,
            volumes: self
                .volumes
                .iter()
                .filter(|v| v.host_path.is_none() && v.image.is_none())
                .map(|v| Volume {
                    name: v.name.clone(),
                    memory: v.memory,
                    size_limit: v.size_limit,
                })
                .collect(),
            cgroup: Cgroups::pod_path(&self.uid),
            images: self.images.clone(),
            share_pid: self.share_pid,
            limits: self.pod_limits.unwrap_or_default(),
            user_namespace: self.user_namespace,
        }
    }
}

/// A Pod's sandbox, alive: the engine's, plus the `/etc` files bind-mounted into containers.
#[derive(Debug)]
pub struct Sandbox {
    pub engine: engine::Sandbox,
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname` sources, bind-mounted into containers.
    pub etc: Vec<(PathBuf, &'static str)>,
    /// What it was made from (its containers' namespaces and sysctls follow it).
    pub spec: SandboxSpec,
    /// The Pod cgroup's (hierarchical) OOM kill count when each container was last started,
    /// for a Pod that is a systemd slice: systemd removes a container's scope, and its own
    /// count with it, as soon as its last process exits (see [`super::container::oom_killed`]).
    pub oom_base: std::collections::HashMap<String, u64>,
}

impl Deref for Sandbox {
    type Target = engine::Sandbox;
    fn deref(&self) -> &engine::Sandbox {
        &self.engine
    }
}

impl DerefMut for Sandbox {
    fn deref_mut(&mut self) -> &mut engine::Sandbox {
        &mut self.engine
    }
}

impl Sandbox {
    /// Create the sandbox; on failure everything created so far is removed again.
    pub fn create(cfg: &Config, spec: &SandboxSpec) -> Result<Sandbox, PodError> {
        let mut sandbox = engine::Sandbox::create(cfg, &spec.engine())?;
        let filled = (|| {
            let etc = write_etc(&sandbox.dir, spec, &sandbox.attachment)?;
            give_etc(&sandbox, &etc)?;
            for v in &spec.volumes {
                if let Some((path, type_)) = &v.host_path {
                    super::host_path::prepare(path, type_, true).map_err(|e| PodError::Io {
                        what: "prepare the hostPath volume",
                        path: path.clone(),
                        source: std::io::Error::other(e),
                    })?;
                    sandbox.volumes.insert(v.name.clone(), path.clone());
                }
                if let Some(layers) = &v.image {
                    let path = super::image_volume::mount_volume(&mut sandbox, &v.name, layers)?;
                    sandbox.volumes.insert(v.name.clone(), path);
                }
            }
            for v in &spec.volumes {
                if let (Some(contents), Some(path)) = (&v.contents, sandbox.volumes.get(&v.name)) {
                    projection::write(path, contents).map_err(|source| PodError::Io {
                        what: "write the files of",
                        path: path.clone(),
                        source,
                    })?;
                }
                // The files podshim wrote are the Pod's root's, as they are root's otherwise.
                if let (Some(u), Some(_), Some(path)) =
                    (&sandbox.userns, &v.contents, sandbox.volumes.get(&v.name))
                {
                    podshim_engine::userns::shift_tree(path, u.block)
                        .map_err(podshim_engine::Error::from)?;
                }
                let dir = sandbox.volumes.get(&v.name);
                let owned = (v.host_path.is_none() || v.claim) && v.image.is_none();
                if let (Some(gid), Some(dir), true) = (spec.fs_group, dir, owned) {
                    // Read-only for the group where the volume's files are (the kubelet's
                    // `SetVolumeOwnership`: 0440 for configMap, secret, downwardAPI, projected).
                    let read_only = v.contents.is_some();
                    if spec.fs_group_on_root_mismatch && !needs_ownership(dir, gid, read_only) {
                        continue;
                    }
                    set_volume_ownership(dir, gid, read_only).map_err(|source| PodError::Io {
                        what: "give the fsGroup the volume",
                        path: dir.clone(),
                        source,
                    })?;
                }
            }
            if let Some(u) = sandbox.userns.clone() {
                idmap_host_volumes(&mut sandbox, spec, &u)?;
            }
            Ok(etc)
        })();
        match filled {
            Ok(etc) => Ok(Sandbox {
                engine: sandbox,
                etc,
                spec: spec.clone(),
                oom_base: Default::default(),
            }),
            Err(error) => {
                let _ = sandbox.pause.kill();
                let _ = sandbox.pause.wait();
                let rollback = sandbox.destroy();
                Err(if rollback.is_empty() {
                    error
                } else {
                    PodError::Rollback {
                        error: Box::new(error),
                        rollback,
                    }
                })
            }
        }
    }

    /// A new pause, network namespace and IP after pause died (see
    /// [`engine::Sandbox::renew`]); `/etc/hosts` then names the new IP. Volumes and their
    /// files stay.
    pub fn renew(&mut self, cfg: &Config, spec: &SandboxSpec) -> Result<(), PodError> {
        self.engine.renew(cfg, &spec.engine())?;
        self.etc = write_etc(&self.engine.dir, spec, &self.engine.attachment)?;
        give_etc(&self.engine, &self.etc)?;
        Ok(())
    }

    /// Tear the whole Pod down from its journal. Returns the problems met.
    pub fn destroy(self) -> Vec<String> {
        self.engine.destroy()
    }
}

/// A Pod with its own user namespace: each hostPath and claim is given to its containers as an
/// ID-mapped bind of the host's directory (or file) at `<sandbox>/idmapped/<volume>`, made after
/// the fsGroup's ownership was set on the host's files themselves (a chown through the mapping
/// could only name the Pod's IDs).
fn idmap_host_volumes(
    sandbox: &mut engine::Sandbox,
    spec: &SandboxSpec,
    userns: &engine::PodUserns,
) -> Result<(), PodError> {
    for v in spec.volumes.iter().filter(|v| v.host_path.is_some()) {
        let Some(source) = sandbox.volumes.get(&v.name).cloned() else {
            continue;
        };
        let target = sandbox.dir.join("idmapped").join(&v.name);
        podshim_engine::userns::bind_volume(&mut sandbox.journal, &userns.pin, &source, &target)
            .map_err(podshim_engine::Error::from)?;
        sandbox.volumes.insert(v.name.clone(), target);
    }
    Ok(())
}

/// `fsGroupChangePolicy: OnRootMismatch` (the kubelet's `requiresPermissionChange`): the
/// volume's top directory is not a directory, not group-owned by `gid`, lacks the group's
/// read(-write) and search bits, or lacks setgid.
fn needs_ownership(dir: &Path, gid: u32, read_only: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(dir) else {
        return true;
    };
    let want = if read_only { 0o440 } else { 0o660 } | 0o110 | 0o2000;
    !meta.is_dir() || meta.gid() != gid || meta.mode() & want != want
}

/// A Pod with its own user namespace: its `/etc` files are its root's (root's otherwise).
fn give_etc(sandbox: &engine::Sandbox, etc: &[(PathBuf, &'static str)]) -> Result<(), PodError> {
    if let Some(u) = &sandbox.userns {
        for (file, _) in etc {
            podshim_engine::userns::chown_root(file, u.block)
                .map_err(podshim_engine::Error::from)?;
        }
    }
    Ok(())
}

/// The kubelet's `SetVolumeOwnership` for `fsGroup`: every file and directory of the volume
/// group-owned by `gid`, group read-write (read-only for `read_only` volumes), directories
/// setgid so new files inherit the group. Symlinks (the atomic writer's) are left as they are.
pub(crate) fn set_volume_ownership(dir: &Path, gid: u32, read_only: bool) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(dir, None, Some(gid))?;
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if meta.is_dir() {
        mask |= 0o2000 | 0o110;
    }
    fs::set_permissions(
        dir,
        fs::Permissions::from_mode(meta.permissions().mode() | mask),
    )?;
    if meta.is_dir() {
        for e in fs::read_dir(dir)? {
            set_volume_ownership(&e?.path(), gid, read_only)?;
        }
    }
    Ok(())
}

fn write_etc(
    dir: &Path,
    spec: &SandboxSpec,
    att: &Attachment,
) -> Result<Vec<(PathBuf, &'static str)>, PodError> {
    let etc = dir.join("etc");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PodError::Io {
            what: "write",
            path,
            source,
        }
    };
    fs::create_dir_all(&etc).map_err(io(&etc))?;
    let mut dns = if spec.dns_none {
        Dns::default()
    } else {
        Dns::from_resolv_conf(&fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    };
    let c = &spec.dns_config;
    dns.merge(&c.nameservers, &c.searches, &c.options);
    let hosts = if spec.host_network {
        // The kubelet gives a hostNetwork Pod the node's /etc/hosts plus its hostAliases.
        let mut h = fs::read_to_string("/etc/hosts").unwrap_or_default();
        if !h.is_empty() && !h.ends_with('\n') {
            h.push('\n');
        }
        if !h.split_whitespace().any(|w| w == spec.hostname) {
            h.push_str(&format!("{}\t{}\n", att.ip, spec.hostname));
        }
        let node = files::hosts(att.ip, &spec.hostname, None, &spec.host_aliases);
        if let Some((_, aliases)) = node.split_once("\n# Entries added by HostAliases.\n") {
            h.push_str("\n# Entries added by HostAliases.\n");
            h.push_str(aliases);
        }
        h
    } else {
        files::hosts(
            att.ip,
            &spec.hostname,
            spec.fqdn.as_deref(),
            &spec.host_aliases,
        )
    };
    let files = [
        ("hosts", hosts, "/etc/hosts"),
        ("resolv.conf", dns.render(), "/etc/resolv.conf"),
        ("hostname", format!("{}\n", spec.hostname), "/etc/hostname"),
    ];
    let mut out = Vec::new();
    for (name, content, dest) in files {
        let path = etc.join(name);
        fs::write(&path, content).map_err(io(&path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).map_err(io(&path))?;
        out.push((path, dest));
    }
    Ok(out)
}
