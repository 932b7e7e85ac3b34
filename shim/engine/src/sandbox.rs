//! The Pod sandbox: the pause process holding the network, IPC and UTS namespaces, the netns
//! pin, the Pod's network (its own veth on the bridge, a CNI network configuration list, the
//! host's, or a namespace someone else made), the Pod cgroup, and the volumes its containers
//! share. What goes into it beyond that (Kubernetes' `/etc` files, ConfigMap contents) is the
//! caller's: it writes into [`Sandbox::dir`] and the volume directories.
//!
//! Each resource is recorded in the journal before it is created; a failure half-way rolls back
//! everything already created, from the journal.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;

use podshim_cni::Attachment;

use crate::cgroups::Cgroups;
use crate::config::Config;
use crate::error::Error;
use crate::journal::{Journal, PodRecord, Resource};
use crate::pause::{hand_over, map_and_pin, pause_ready, spawn_pause, UsernsArg};
use crate::ports::{self, HostPort};
use crate::state::SandboxState;
use crate::teardown::{start_time, teardown};
use crate::{mounts, pod_key};

/// The pause process runs as this unprivileged user (Kubernetes' pause image uses 65535).
pub const PAUSE_USER: &str = "65535:65535";
/// A finite `pids.max` for the whole Pod (fork bombs stay inside it).
pub const POD_PIDS_MAX: u64 = 4096;

/// A volume the Pod's containers share: a directory, or one tmpfs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Volume {
    pub name: String,
    /// One tmpfs (`medium: Memory`, and Secret volumes, whose files never touch a disk).
    pub memory: bool,
    /// The tmpfs `size=` in bytes.
    pub size_limit: Option<u64>,
}

/// Where the Pod's network namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Network {
    /// A namespace of its own, held by pause, attached to this instance's bridge (or to the
    /// `--cni-conf` network list), with its host ports forwarded and, when asked, its traffic
    /// masqueraded.
    Pod {
        host_ports: Vec<HostPort>,
        masquerade: bool,
    },
    /// The host's network namespace: no veth, no Pod IP of its own (host ports are only
    /// checked free: they are the Pod's own sockets).
    Host { host_ports: Vec<HostPort> },
    /// A namespace that exists already (its nsfs path), as a containerd shim gets it from the
    /// CRI: joined as it is, neither attached nor detached here.
    Join(PathBuf),
}

/// What a sandbox is made of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxSpec {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Set by pause in the Pod's new UTS namespace.
    pub hostname: String,
    pub network: Network,
    pub volumes: Vec<Volume>,
    /// The Pod cgroup, from every hierarchy's root (e.g. `/podshim/<uid>`).
    pub cgroup: String,
    /// Image digests the Pod's containers run (kept by `image prune` while the Pod lives).
    pub images: Vec<String>,
    /// One PID namespace for the whole Pod, with pause as its PID 1 (Kubernetes'
    /// `shareProcessNamespace`); containers join it through [`Sandbox::pause_pid_ns`].
    #[serde(default)]
    pub share_pid: bool,
    /// The Pod cgroup's memory and CPU limits (Kubernetes' Pod-level `spec.resources`).
    #[serde(default)]
    pub limits: crate::cgroups::Limits,
    /// A user namespace of the Pod's own (Kubernetes' `hostUsers: false`), with a block of
    /// host IDs claimed for it; needs a network namespace of the Pod's own.
    #[serde(default)]
    pub user_namespace: bool,
}

/// A Pod's user namespace: its ID block and the nsfs pin containers join it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUserns {
    pub block: crate::userns::IdBlock,
    pub pin: PathBuf,
}

/// A Pod's sandbox, alive.
#[derive(Debug)]
pub struct Sandbox {
    pub key: String,
    pub uid: String,
    /// The Pod's state directory (`<state>/pods/<key>`): the journal, the netns pin, volumes.
    pub dir: PathBuf,
    pub journal: Journal,
    pub pause: Child,
    /// The network namespace the containers join.
    pub netns: PathBuf,
    /// The Pod IP (the host's address for a host-network Pod, unspecified for a joined one).
    pub attachment: Attachment,
    /// Volume name → host directory.
    pub volumes: BTreeMap<String, PathBuf>,
    pub cgroup: String,
    pub state: SandboxState,
    /// The Pod's user namespace (`hostUsers: false`).
    pub userns: Option<PodUserns>,
    /// The Pod's owner mark, open for as long as this process may fork for the Pod: what
    /// `gc` finds this process's forks by once it is dead (see [`crate::forks`]).
    _owner_mark: std::os::fd::OwnedFd,
}

impl Sandbox {
    /// Create the sandbox; on failure everything created so far is removed again.
    pub fn create(cfg: &Config, spec: &SandboxSpec) -> Result<Sandbox, Error> {
        let key = pod_key(&spec.namespace, &spec.name);
        let dir = cfg.pod_dir(&key);
        let host_ports = match &spec.network {
            Network::Pod { host_ports, .. } | Network::Host { host_ports } => &host_ports[..],
            Network::Join(_) => &[],
        };
        ports::check(cfg, host_ports)?;
        crate::private::create_dir_all(&cfg.pods_dir())
            .map_err(Error::io("create", &cfg.pods_dir()))?;
        // Creating the Pod directory is the lock on the Pod name.
        match fs::DirBuilder::new()
            .mode(crate::private::DIR_MODE)
            .create(&dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = Journal::load(&dir.join("journal.json")).ok().map(|j| j.pod);
                return Err(match owner {
                    Some(pod) if !crate::gc::owner_alive(&pod) => Error::Orphaned {
                        key,
                        pid: pod.owner_pid,
                    },
                    _ => Error::PodExists { key, dir },
                });
            }
            Err(e) => return Err(Error::io("create", &dir)(e)),
        }
        let record = PodRecord {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            uid: spec.uid.clone(),
            owner_pid: std::process::id(),
            owner_start_time: start_time(std::process::id() as i32).unwrap_or(0),
            images: spec.images.clone(),
        };
        // The journal's first write names the directory: a crash from here on leaves a journal
        // `gc` removes the directory by (before it, a directory `gc` removes for want of one).
        let mut journal = match Journal::create(&dir.join("journal.json"), record) {
            Ok(j) => j,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        // Before any fork (pause, libcontainer's, the create workers'): each one inherits it.
        let mark = match crate::forks::mark(&dir) {
            Ok(mark) => mark,
            Err(e) => return Err(rollback(e.into(), &mut journal)),
        };
        match build(cfg, spec, key, dir, &mut journal, mark) {
            Ok(sandbox) => Ok(sandbox),
            Err(error) => Err(rollback(error, &mut journal)),
        }
    }

    /// The pause process's namespace file, e.g. `ns/ipc`.
    pub fn pause_ns(&self, ns: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{ns}", self.pause.id()))
    }

    /// The Pod's shared PID namespace (pause started with `--pid` made it for its children:
    /// `pid_for_children`, where its init runs as PID 1).
    pub fn pause_pid_ns(&self) -> PathBuf {
        self.pause_ns("pid_for_children")
    }

    /// Whether pause has died (the sandbox is then NotReady).
    pub fn pause_exited(&mut self) -> bool {
        if matches!(self.pause.try_wait(), Ok(Some(_)) | Err(_)) {
            self.state = self.state.pause_died();
        }
        self.state == SandboxState::NotReady
    }

    /// Tear the whole Pod down from its journal (containers still recorded are killed here).
    /// Returns the problems met.
    pub fn destroy(mut self) -> Vec<String> {
        let errors = teardown(&mut self.journal);
        let _ = self.pause.try_wait();
        self.state = self.state.destroyed();
        errors
    }
}

/// Undo everything the journal holds; the error, with the rollback's problems if any.
pub fn rollback(error: Error, journal: &mut Journal) -> Error {
    let rollback = teardown(journal);
    if rollback.is_empty() {
        error
    } else {
        Error::Rollback {
            error: Box::new(error),
            rollback,
        }
    }
}

fn build(
    cfg: &Config,
    spec: &SandboxSpec,
    key: String,
    dir: PathBuf,
    journal: &mut Journal,
    owner_mark: std::os::fd::OwnedFd,
) -> Result<Sandbox, Error> {
    let layers = cfg.layers_dir(&spec.uid);
    journal.record(Resource::Dir {
        path: layers.clone(),
    })?;
    crate::private::create_dir_all(&layers).map_err(Error::io("create", &layers))?;
    mounts::check_not_overlay(&layers)?;

    let t = std::time::Instant::now();
    let step = |name: &str| {
        tracing::debug!(
            step = name,
            elapsed_us = t.elapsed().as_micros() as u64,
            "sandbox"
        )
    };
    let cgroups = Cgroups::detect()?;
    journal.record(Resource::Cgroup {
        path: spec.cgroup.clone(),
    })?;
    cgroups.create_pod(&spec.cgroup, POD_PIDS_MAX, &spec.limits)?;
    if !spec.limits.is_empty() {
        cgroups.set_limits(&spec.cgroup, &spec.limits, true)?;
    }
    step("cgroup");
    // The first container's create waits for the kernel's cgroup migration lock: have it taken
    // while pause and the network are made (see `cgroups::warm`). Not before the Pod's cgroup
    // exists: the lock's first taker holds the cgroup mutex, which a mkdir needs, for its wait.
    let _ = crate::cgroups::warm::warm();
    let userns = match spec.user_namespace {
        false => None,
        true => {
            if !matches!(spec.network, Network::Pod { .. }) {
                return Err(Error::Spec {
                    id: key.clone(),
                    detail: "a Pod's own user namespace needs a network namespace of its own (its namespaces are owned by the user namespace)".into(),
                });
            }
            let claims = Path::new(crate::userns::CLAIMS_DIR);
            // The Pod's containers set themselves up as its root, on the host the block's
            // first ID, which must reach the Pod's directory (their root filesystem, volumes,
            // /etc files) through the state root: open to pass through for it, not to list,
            // until the last such Pod is gone.
            let pods = cfg.pods_dir();
            let block = crate::userns::claim(journal, claims, &[&cfg.state, &pods])?;
            crate::private::open_to_group(&dir, block.base).map_err(Error::io("chmod", &dir))?;
            Some(PodUserns {
                block,
                pin: dir.join("userns"),
            })
        }
    };
    let (mut pause, netns, attachment) =
        pause_and_network(cfg, spec, &dir, journal, userns.as_ref(), true)?;
    step("pause and network");
    let result = (|| {
        let mut volumes = BTreeMap::new();
        for v in &spec.volumes {
            let path = dir.join("volumes").join(&v.name);
            if v.memory {
                journal.record(Resource::Mount { path: path.clone() })?;
                mounts::tmpfs(&path, v.size_limit)?;
            } else {
                fs::create_dir_all(&path).map_err(Error::io("create", &path))?;
            }
            // The Pod's root owns its emptyDirs, as root owns them on the host otherwise.
            if let Some(u) = &userns {
                crate::userns::chown_root(&path, u.block)?;
            }
            // Kubernetes makes emptyDirs world-writable (0777) so any container user can use them.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777))
                .map_err(Error::io("chmod", &path))?;
            volumes.insert(v.name.clone(), path);
        }
        step("volumes");
        // Everything is recorded: the Pod is its caller's (the supervisor's) now, and pause
        // lives on its own (a parent-death signal follows the thread that forked pause, which
        // need not live as long as the Pod).
        hand_over(cfg, &mut pause)?;
        Ok(volumes)
    })();
    match result {
        Ok(volumes) => Ok(Sandbox {
            key,
            uid: spec.uid.clone(),
            dir,
            journal: journal.clone(),
            pause,
            netns,
            attachment,
            volumes,
            cgroup: spec.cgroup.clone(),
            state: SandboxState::Ready,
            userns,
            _owner_mark: owner_mark,
        }),
        Err(e) => {
            // The journal's teardown kills pause; reap our child handle as well.
            let _ = pause.kill();
            let _ = pause.wait();
            Err(e)
        }
    }
}

/// The sandbox's pause process, its netns pin and its network, each recorded before it is
/// made; pause is not handed over yet (see [`hand_over`]). On failure pause is killed (and
/// the rest is the journal's to undo).
fn pause_and_network(
    cfg: &Config,
    spec: &SandboxSpec,
    dir: &Path,
    journal: &mut Journal,
    userns: Option<&PodUserns>,
    new_userns: bool,
) -> Result<(Child, PathBuf, Attachment), Error> {
    let userns_arg = userns.map(|u| match new_userns {
        true => UsernsArg::New,
        false => UsernsArg::Join(&u.pin),
    });
    let mut pause = spawn_pause(
        cfg,
        &spec.hostname,
        &spec.network,
        spec.share_pid,
        userns_arg,
    )?;
    let pid = pause.id() as i32;
    let started = start_time(pid).unwrap_or(0);
    let result = (|| {
        // Recorded as soon as it exists, before its handshake: its PID cannot be known before
        // the fork, and until this record is written pause dies with this process (see
        // `spawn_pause`), so no pause ever outlives podshim unrecorded.
        journal.record(Resource::Pause {
            pid,
            start_time: started,
        })?;
        if let (Some(u), true) = (userns, new_userns) {
            map_and_pin(cfg, &mut pause, u, journal)?;
        }
        pause_ready(cfg, &mut pause)?;
        let netns = dir.join("netns");
        journal.record(Resource::NetnsPin {
            path: netns.clone(),
        })?;
        mounts::bind_file(Path::new(&format!("/proc/{pid}/ns/net")), &netns)?;
        let attachment = match &spec.network {
            Network::Host { .. } => host_attachment(),
            Network::Join(_) => unattached(),
            Network::Pod { host_ports, .. } => match &cfg.cni_conf {
                Some(conf) => attach_chain(cfg, conf, spec, host_ports, &netns, dir, journal)?,
                // Masquerading is the node's (cfg.masquerade), not the Pod's, since it is one
                // rule for the whole subnet.
                None => attach(cfg, spec, host_ports, &netns, journal)?,
            },
        };
        Ok((netns, attachment))
    })();
    match result {
        Ok((netns, attachment)) => Ok((pause, netns, attachment)),
        Err(e) => {
            let _ = pause.kill();
            let _ = pause.wait();
            Err(e)
        }
    }
}

/// What a sandbox's pause process holds: removed and made anew when pause dies.
fn held_by_pause(r: &Resource) -> bool {
    matches!(
        r,
        Resource::Pause { .. }
            | Resource::NetnsPin { .. }
            | Resource::Network { .. }
            | Resource::CniChain { .. }
            | Resource::Nat { .. }
    )
}

impl Sandbox {
    /// Make the sandbox anew after its pause process died, as the kubelet recreates a sandbox
    /// that is not ready: what the old pause held (its netns pin, the Pod's network and NAT
    /// rules, pause itself) is removed, newest first, then a new pause, network namespace and
    /// network (a new IP: the IPAM hands addresses out round-robin) are made and recorded.
    /// The Pod's directory, cgroup and volumes stay: emptyDirs outlive a sandbox. The
    /// containers must be gone (they joined the old namespaces).
    pub fn renew(&mut self, cfg: &Config, spec: &SandboxSpec) -> Result<(), Error> {
        // Reaped already, by its handle or a waitpid(-1) of the caller's: never signalled here
        // by PID (the journal's record checks its start time before it kills).
        let _ = self.pause.try_wait();
        let old: Vec<Resource> = self
            .journal
            .resources
            .iter()
            .filter(|r| held_by_pause(r))
            .cloned()
            .collect();
        let mut problems = Vec::new();
        for r in old.iter().rev() {
            match crate::teardown::remove(r) {
                Ok(()) => self.journal.forget(r)?,
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Renew { problems });
        }
        let (mut pause, netns, attachment) = pause_and_network(
            cfg,
            spec,
            &self.dir,
            &mut self.journal,
            self.userns.as_ref(),
            false,
        )?;
        if let Err(e) = hand_over(cfg, &mut pause) {
            let _ = pause.kill();
            let _ = pause.wait();
            return Err(e);
        }
        self.pause = pause;
        self.netns = netns;
        self.attachment = attachment;
        self.state = SandboxState::Ready;
        Ok(())
    }
}

/// The Pod's veth on the bridge, then its NAT rules (host ports, masquerade); each recorded
/// in the journal before it is made.
fn attach(
    cfg: &Config,
    spec: &SandboxSpec,
    host_ports: &[HostPort],
    netns: &Path,
    journal: &mut Journal,
) -> Result<Attachment, Error> {
    let net = cfg.network();
    let host_veth = podshim_cni::host_veth_name(&spec.uid);
    journal.record(Resource::Network {
        bridge: net.bridge.clone(),
        subnet: net.subnet.to_string(),
        ipam_dir: net.ipam_dir.clone(),
        attachment_id: spec.uid.clone(),
        host_veth: host_veth.clone(),
        keep_bridge: net.keep_bridge,
    })?;
    let attachment = podshim_cni::setup(&net, netns, &spec.uid, &host_veth, "eth0")?;
    // The node's rules (the subnet's masquerade, forwarding through a dropping firewall) come
    // with the bridge; a start that finds them in place only reads them.
    podshim_cni::nat::ensure_node(&podshim_cni::nat::NodeSpec {
        network: &net.bridge,
        bridge: &net.bridge,
        subnet: net.subnet,
        masquerade: cfg.masquerade,
    })?;
    let ports: Vec<_> = host_ports.iter().map(|p| p.mapping).collect();
    // Masquerade is the node's rule now; journals of older Pods may still record their own.
    let masquerade = false;
    if !ports.is_empty() {
        let tag = podshim_cni::nat::tag(&net.bridge, &spec.uid, "eth0");
        journal.record(Resource::Nat {
            tag: tag.clone(),
            ports: ports.clone(),
            masquerade,
        })?;
        podshim_cni::nat::apply(&podshim_cni::nat::NatSpec {
            tag: &tag,
            pod_ip: attachment.ip,
            subnet: net.subnet,
            masquerade,
            ports: &ports,
            bridge: &net.bridge,
        })?;
    }
    Ok(attachment)
}

/// The Pod's network from a CNI network configuration (`--cni-conf`): recorded (the list
/// itself, not its path) before ADD, so that teardown and `podshim gc` run DEL from the record.
fn attach_chain(
    cfg: &Config,
    conf: &Path,
    spec: &SandboxSpec,
    host_ports: &[HostPort],
    netns: &Path,
    dir: &Path,
    journal: &mut Journal,
) -> Result<Attachment, Error> {
    let list = podshim_cni::chain::NetworkList::load(conf)?;
    let ports: Vec<_> = host_ports.iter().map(|p| p.mapping).collect();
    if !ports.is_empty() && !list.has_capability("portMappings") {
        return Err(Error::HostPort {
            field: host_ports[0].field.clone(),
            reason: format!(
                "no plugin of --cni-conf {} has the portMappings capability",
                conf.display()
            ),
        });
    }
    let result_path = dir.join("cni-result.json");
    let ifname = "eth0";
    journal.record(Resource::CniChain {
        conf: list.to_json().to_string(),
        container_id: spec.uid.clone(),
        netns: netns.to_path_buf(),
        ifname: ifname.to_owned(),
        cni_path: cfg.cni_path.clone(),
        result: result_path.clone(),
        ports: ports.clone(),
    })?;
    let result = list.add(&podshim_cni::chain::Runtime {
        container_id: &spec.uid,
        netns,
        ifname,
        cni_path: &cfg.cni_path,
        args: None,
        port_mappings: &ports,
    })?;
    // DEL gets it as prevResult (the spec's cached result).
    crate::private::write_file(&result_path, result.to_string().as_bytes())
        .map_err(Error::io("write", &result_path))?;
    let (ip, mac) = podshim_cni::chain::pod_ip(&result, ifname, netns)?;
    Ok(Attachment {
        ip: ip.ip,
        prefix_len: ip.prefix_len,
        gateway: ip.gateway.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED),
        host_veth: String::new(),
        mac,
    })
}

/// A `hostNetwork` Pod's "attachment": its IP is the host's (`status.podIP` is the node's
/// address in Kubernetes), the source address of the default route; there is no veth.
fn host_attachment() -> Attachment {
    // Connecting a UDP socket only looks the route up; nothing is sent.
    let ip = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").and_then(|()| s.local_addr()))
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        })
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST);
    Attachment {
        ip,
        prefix_len: 32,
        gateway: std::net::Ipv4Addr::UNSPECIFIED,
        host_veth: String::new(),
        mac: [0; 6],
    }
}

/// A joined namespace's "attachment": whoever made the namespace knows its address.
fn unattached() -> Attachment {
    Attachment {
        ip: std::net::Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
        gateway: std::net::Ipv4Addr::UNSPECIFIED,
        host_veth: String::new(),
        mac: [0; 6],
    }
}
