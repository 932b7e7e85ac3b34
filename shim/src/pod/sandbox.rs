//! The Pod sandbox: the pause process holding the network, IPC and UTS namespaces, the netns pin,
//! the Pod IP on the bridge, the Pod cgroup, `/etc` files and the emptyDir volumes.
//!
//! Each resource is recorded in the journal before it is created; a failure half-way rolls back
//! everything already created, from the journal.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use podshim_cni::Attachment;

use super::files::{self, Dns};
use super::journal::{Journal, PodRecord, Resource};
use super::ports::{self, HostPort};
use super::projection::{self, Projection};
use super::teardown::{start_time, teardown};
use super::{pod_key, PodError};
use crate::cgroups::Cgroups;
use crate::config::Config;
use crate::mounts;

/// The pause process runs as this unprivileged user (Kubernetes' pause image uses 65535).
pub const PAUSE_USER: &str = "65535:65535";
/// A finite `pids.max` for the whole Pod (fork bombs stay inside it).
pub const POD_PIDS_MAX: u64 = 4096;

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
}

/// A Pod's sandbox, alive.
#[derive(Debug)]
pub struct Sandbox {
    pub key: String,
    pub uid: String,
    pub dir: PathBuf,
    pub journal: Journal,
    pub pause: Child,
    pub netns: PathBuf,
    pub attachment: Attachment,
    /// `/etc/hosts`, `/etc/resolv.conf`, `/etc/hostname` sources, bind-mounted into containers.
    pub etc: Vec<(PathBuf, &'static str)>,
    /// emptyDir name → host directory.
    pub volumes: BTreeMap<String, PathBuf>,
    pub cgroup: String,
}

impl Sandbox {
    /// Create the sandbox; on failure everything created so far is removed again.
    pub fn create(cfg: &Config, spec: &SandboxSpec) -> Result<Sandbox, PodError> {
        let key = pod_key(&spec.namespace, &spec.name);
        let dir = cfg.pod_dir(&key);
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| PodError::Io { what, path, source }
        };
        ports::check(cfg, &spec.host_ports)?;
        fs::create_dir_all(cfg.pods_dir()).map_err(io("create", &cfg.pods_dir()))?;
        // Creating the Pod directory is the lock on the Pod name.
        match std::fs::DirBuilder::new()
            .mode(crate::private::DIR_MODE)
            .create(&dir)
        {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = Journal::load(&dir.join("journal.json")).ok().map(|j| j.pod);
                return Err(match owner {
                    Some(pod) if !super::gc::owner_alive(&pod) => PodError::Orphaned {
                        key,
                        pid: pod.owner_pid,
                    },
                    _ => PodError::AlreadyExists { key, dir },
                });
            }
            Err(e) => return Err(io("create", &dir)(e)),
        }
        let record = PodRecord {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            uid: spec.uid.clone(),
            owner_pid: std::process::id(),
            owner_start_time: start_time(std::process::id() as i32).unwrap_or(0),
            images: spec.images.clone(),
        };
        let mut journal = match Journal::create(&dir.join("journal.json"), record) {
            Ok(j) => j,
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        };
        if let Err(e) = journal.record(Resource::Dir { path: dir.clone() }) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e.into());
        }
        match build(cfg, spec, key, dir, &mut journal) {
            Ok(sandbox) => Ok(sandbox),
            Err(error) => {
                let rollback = teardown(&mut journal);
                if rollback.is_empty() {
                    Err(error)
                } else {
                    Err(PodError::Rollback {
                        error: Box::new(error),
                        rollback,
                    })
                }
            }
        }
    }

    /// The pause process's namespace file, e.g. `ns/ipc`.
    pub fn pause_ns(&self, ns: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/{ns}", self.pause.id()))
    }

    /// Tear the whole Pod down from its journal (containers must have been handled first or are
    /// killed here). Returns the problems met.
    pub fn destroy(mut self) -> Vec<String> {
        let errors = teardown(&mut self.journal);
        let _ = self.pause.try_wait();
        errors
    }
}

fn build(
    cfg: &Config,
    spec: &SandboxSpec,
    key: String,
    dir: PathBuf,
    journal: &mut Journal,
) -> Result<Sandbox, PodError> {
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| PodError::Io { what, path, source }
    };
    let layers = cfg.layers_dir(&spec.uid);
    journal.record(Resource::Dir {
        path: layers.clone(),
    })?;
    fs::create_dir_all(&layers).map_err(io("create", &layers))?;
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
    let cgroup = Cgroups::pod_path(&spec.uid);
    journal.record(Resource::Cgroup {
        path: cgroup.clone(),
    })?;
    let pause = spawn_pause(cfg, &spec.hostname, spec.host_network)?;
    let pid = pause.id() as i32;
    let started = start_time(pid).unwrap_or(0);
    // Recorded right after the fork: its PID cannot be known before.
    journal.record(Resource::Pause {
        pid,
        start_time: started,
    })?;
    step("pause");
    let mut pause = Some(pause);
    let result = (|| {
        cgroups.create_pod(&cgroup, POD_PIDS_MAX)?;
        step("cgroup");

        let netns = dir.join("netns");
        journal.record(Resource::NetnsPin {
            path: netns.clone(),
        })?;
        mounts::bind_file(Path::new(&format!("/proc/{pid}/ns/net")), &netns)?;

        let attachment = if spec.host_network {
            host_attachment()
        } else if let Some(conf) = &cfg.cni_conf {
            attach_chain(cfg, conf, spec, &netns, &dir, journal)?
        } else {
            attach(cfg, spec, &netns, journal)?
        };
        step("network");

        let etc = write_etc(&dir, spec, &attachment)?;
        let mut volumes = BTreeMap::new();
        for v in &spec.volumes {
            let path = dir.join("volumes").join(&v.name);
            if v.memory {
                journal.record(Resource::Mount { path: path.clone() })?;
                mounts::tmpfs(&path, v.size_limit)?;
            } else {
                fs::create_dir_all(&path).map_err(io("create", &path))?;
            }
            // Kubernetes makes emptyDirs world-writable (0777) so any container user can use them.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o777))
                .map_err(io("chmod", &path))?;
            if let Some(contents) = &v.contents {
                projection::write(&path, contents).map_err(io("write the files of", &path))?;
            }
            volumes.insert(v.name.clone(), path);
        }
        step("volumes");
        Ok((netns, attachment, etc, volumes))
    })();
    match result {
        Ok((netns, attachment, etc, volumes)) => Ok(Sandbox {
            key,
            uid: spec.uid.clone(),
            dir,
            journal: journal.clone(),
            pause: pause.take().expect("pause"),
            netns,
            attachment,
            etc,
            volumes,
            cgroup,
        }),
        Err(e) => {
            // The journal's teardown kills pause; reap our child handle as well.
            if let Some(mut p) = pause.take() {
                let _ = p.kill();
                let _ = p.wait();
            }
            Err(e)
        }
    }
}

/// The Pod's veth on the bridge, then its NAT rules (host ports, masquerade); each recorded
/// in the journal before it is made.
fn attach(
    cfg: &Config,
    spec: &SandboxSpec,
    netns: &Path,
    journal: &mut Journal,
) -> Result<Attachment, PodError> {
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
    let ports: Vec<_> = spec.host_ports.iter().map(|p| p.mapping).collect();
    let masquerade = spec.masquerade && cfg.masquerade;
    if masquerade || !ports.is_empty() {
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
    netns: &Path,
    dir: &Path,
    journal: &mut Journal,
) -> Result<Attachment, PodError> {
    let list = podshim_cni::chain::NetworkList::load(conf)?;
    let ports: Vec<_> = spec.host_ports.iter().map(|p| p.mapping).collect();
    if !ports.is_empty() && !list.has_capability("portMappings") {
        return Err(PodError::HostPort {
            field: spec.host_ports[0].field.clone(),
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
    fs::write(&result_path, result.to_string()).map_err(|source| PodError::Io {
        what: "write",
        path: result_path.clone(),
        source,
    })?;
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

/// Start pause and wait until it reports that the namespaces exist (with `host_network`, only
/// the IPC and UTS namespaces are new).
fn spawn_pause(cfg: &Config, hostname: &str, host_network: bool) -> Result<Child, PodError> {
    let err = |source| PodError::Pause {
        path: cfg.pause.clone(),
        source,
    };
    let mut args = vec!["--hostname", hostname, "--user", PAUSE_USER];
    if host_network {
        args.push("--host-network");
    }
    let mut child = Command::new(&cfg.pause)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Its own process group: Ctrl-C on podshim's terminal goes to the foreground process
        // group, and must stop the Pod through podshim (graceful stop), not kill pause under it.
        .process_group(0)
        .spawn()
        .map_err(err)?;
    let mut line = String::new();
    let out = child.stdout.take().expect("piped stdout");
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() != "ready" {
        let status = child.wait().map_err(err)?;
        return Err(err(std::io::Error::other(format!(
            "pause exited before it was ready ({status})"
        ))));
    }
    Ok(child)
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
