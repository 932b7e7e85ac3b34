//! Host ports (DNAT) and outbound masquerade for Pods, with nftables or iptables.
//!
//! Both backends set up the same rules for one attachment, every rule carrying the
//! attachment's [`tag`] (`network/container id/interface`) as its comment, so DEL removes
//! exactly its rules and GC removes those of attachments no longer valid. As the reference
//! `portmap` plugin does: DNAT of each host port for traffic from other hosts (prerouting) and
//! from the host itself (output), for destinations of type `local` (or the mapping's `hostIP`
//! only); masquerade of traffic from the host's loopback to the Pod, with `route_localnet` on
//! the bridge so `127.0.0.1:hostPort` works; and hairpin masquerade (the Pod reaching itself
//! through a host port). As the reference `bridge` plugin's `ipMasq`: Pod traffic leaving the
//! Pod subnet (multicast excepted) is masqueraded. TCP and UDP. A new attachment's DNAT rules
//! are inserted first, so a stale rule for the same port can never shadow a live one. Each
//! change (ADD, DEL, GC) is one atomic transaction.
//!
//! # Backends
//! - [`Backend::Nftables`] ([`nft`]): one table of our own, `ip podshim`, changed with the
//!   `nft` command, listed over nfnetlink. The table and its base chains stay when empty.
//! - [`Backend::Iptables`] (`iptables.rs`): the chains `PODSHIM-HOSTPORTS` (jumped to from
//!   `PREROUTING` and `OUTPUT`) and `PODSHIM-MASQ` (from `POSTROUTING`) of the `nat` table,
//!   changed with `iptables-restore --noflush -w`, listed with `iptables-save -t nat`: the
//!   tools found in `PATH`, so iptables-nft or iptables-legacy as the host chose. The chains
//!   and jumps stay when DEL empties them (as the nftables table does); GC removes them when
//!   no rule is left in them.
//!
//! nftables is preferred. It is **not available**, and iptables is used instead, when no
//! executable `nft` is in `PATH`, or when the kernel refuses nf_tables: an `NFT_MSG_GETGEN`
//! request over nfnetlink fails with `EPROTONOSUPPORT`/`EAFNOSUPPORT` (no nfnetlink) or
//! `EINVAL`/`EOPNOTSUPP`/`ENOENT` (no nf_tables subsystem). Any other failure of that probe
//! (such as `EPERM`) keeps nftables, whose own error then says what is wrong. A network config
//! may choose the backend ([`Backend::from_name`]). Whatever was chosen, ADD, DEL and GC clean
//! the attachment's rules from both backends: rules of an earlier ADD with the other backend
//! never survive them. A backend that cannot hold rules here (no tools, or the kernel refuses
//! it) has nothing to clean. A new attachment's DNAT rules come first in their backend, and
//! ADD removes the other backend's DNAT rules for the same host ports (stale: a host port has
//! one live owner), so no stale rule in either backend takes a live attachment's packets.

pub mod forward;
mod iptables;
pub mod nft;
mod node;

pub use node::{ensure_node, node_tag, remove_node, NodeSpec};

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::{host_veth_name, CniError, Ipv4Net};

/// The longest tag: nft's limit on a rule comment (iptables allows 255).
const MAX_COMMENT: usize = 127;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The name nft, iptables (and `/etc/protocols`) use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One host port forwarded to the Pod: the `portMappings` capability's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only traffic to this host address is forwarded; any local address when `None`.
    pub host_ip: Option<Ipv4Addr>,
}

/// What [`apply`] sets up for one attachment.
#[derive(Debug, Clone)]
pub struct NatSpec<'a> {
    /// From [`tag`]: names every rule of the attachment.
    pub tag: &'a str,
    pub pod_ip: Ipv4Addr,
    /// The Pod network: traffic to it is not masqueraded.
    pub subnet: Ipv4Net,
    /// Masquerade the Pod's traffic leaving `subnet` (`ipMasq`).
    pub masquerade: bool,
    pub ports: &'a [PortMapping],
    /// The host interface towards the Pod (the bridge): gets `route_localnet` when ports are
    /// mapped, so that `127.0.0.1:hostPort` reaches the Pod.
    pub bridge: &'a str,
}

/// The tag of an attachment's rules: `network/container id/interface`, or the network and a
/// hash of the rest when that would not fit an nft comment or has other characters.
pub fn tag(network: &str, id: &str, ifname: &str) -> String {
    let plain = format!("{network}/{id}/{ifname}");
    let safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c))
    };
    if plain.len() <= MAX_COMMENT && safe(network) && safe(id) && safe(ifname) {
        plain
    } else {
        let net: String = network
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
            .take(64)
            .collect();
        format!("{net}/{}", host_veth_name(&format!("{id}/{ifname}")))
    }
}

/// The network part of a tag, for GC.
fn network_of(tag: &str) -> &str {
    tag.split('/').next().unwrap_or_default()
}

/// The masquerade source of `spec`: the whole subnet for a node's rule ([`node_tag`]), else
/// the Pod's own address.
fn masquerade_source(spec: &NatSpec<'_>) -> String {
    if node::is_node_tag(spec.tag) {
        spec.subnet.to_string()
    } else {
        format!("{}/32", spec.pod_ip)
    }
}

/// Where the NAT rules live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Nftables,
    Iptables,
}

impl Backend {
    /// Every backend by its config name, preferred first.
    pub const ALL: [Backend; 2] = [Backend::Nftables, Backend::Iptables];

    /// The name a network config gives it, as the reference plugins' `ipMasqBackend`
    /// (bridge) and `backend` (portmap): `nftables` or `iptables`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Nftables => "nftables",
            Self::Iptables => "iptables",
        }
    }

    /// Why this backend cannot be used on this host, or `None` when it can (module doc).
    pub fn unavailable(self) -> Option<String> {
        match self {
            Self::Nftables => {
                if find_in_path("nft").is_none() {
                    return Some("no nft command in PATH".into());
                }
                match crate::nft_dump::probe() {
                    Err(e) if kernel_lacks_nftables(&e) => {
                        Some(format!("the kernel refuses nf_tables: {e}"))
                    }
                    _ => None,
                }
            }
            Self::Iptables => iptables::TOOLS
                .iter()
                .find(|tool| find_in_path(tool).is_none())
                .map(|tool| format!("no {tool} command in PATH")),
        }
    }

    /// The backend to use: `explicit` when the config names one, else nftables when it is
    /// available, else iptables.
    pub fn choose(explicit: Option<Backend>) -> Result<Backend, CniError> {
        if let Some(backend) = explicit {
            return Ok(backend);
        }
        let Some(nft) = Self::Nftables.unavailable() else {
            return Ok(Self::Nftables);
        };
        match Self::Iptables.unavailable() {
            None => {
                tracing::debug!(reason = %nft, "nftables not available, using iptables");
                Ok(Self::Iptables)
            }
            Some(iptables) => Err(CniError::NoPacketFilter { nft, iptables }),
        }
    }

    fn imp(self) -> &'static dyn Firewall {
        match self {
            Self::Nftables => &nft::Nft,
            Self::Iptables => &iptables::Iptables,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The errors of the nf_tables probe that mean this kernel has no nf_tables (module doc).
fn kernel_lacks_nftables(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EPROTONOSUPPORT
                | libc::EAFNOSUPPORT
                | libc::EINVAL
                | libc::EOPNOTSUPP
                | libc::ENOENT
        )
    )
}

/// Where `PATH` (the C library's default `/bin:/usr/bin` when unset, as `execvp`) has an
/// executable file `name`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|file| is_executable(file))
}

fn is_executable(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One rule an attachment needs, whatever the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want<'a> {
    /// The host port forwarded to the Pod.
    Dnat(&'a PortMapping),
    /// Connections from the host's loopback to the forwarded port come from the host.
    FromLoopback(&'a PortMapping),
    /// The Pod reaching itself through a host port: from the host too.
    Hairpin(&'a PortMapping),
    /// `ipMasq`: the Pod's traffic leaving its subnet.
    Masquerade,
}

/// The rules of `spec`, in the order they are made.
fn wants<'a>(spec: &NatSpec<'a>) -> Vec<Want<'a>> {
    let mut out = Vec::new();
    for p in spec.ports {
        out.extend([Want::Dnat(p), Want::FromLoopback(p), Want::Hairpin(p)]);
    }
    if spec.masquerade {
        out.push(Want::Masquerade);
    }
    out
}

impl Want<'_> {
    /// What CHECK says is missing.
    fn describe(&self, spec: &NatSpec<'_>) -> String {
        let port = |p: &PortMapping| {
            let on = p.host_ip.map(|ip| format!("{ip}:")).unwrap_or_default();
            format!("hostPort {on}{}/{}", p.host_port, p.protocol.as_str())
        };
        let pod = spec.pod_ip;
        match self {
            Self::Dnat(p) => format!("{} DNAT rule for {pod}:{}", port(p), p.container_port),
            Self::FromLoopback(p) => format!(
                "{} masquerade rule for connections from 127.0.0.0/8 to {pod}:{}",
                port(p),
                p.container_port
            ),
            Self::Hairpin(p) => format!(
                "{} hairpin masquerade rule for {pod}:{}",
                port(p),
                p.container_port
            ),
            Self::Masquerade => format!(
                "ipMasq masquerade rule for {} leaving {}",
                masquerade_source(spec).trim_end_matches("/32"),
                spec.subnet
            ),
        }
    }
}

/// What a backend does; both make the rules of [`wants`].
trait Firewall {
    /// Replaces the rules tagged `spec.tag` by those of `spec`, in one transaction.
    fn replace(&self, spec: &NatSpec<'_>) -> Result<(), CniError>;

    /// Removes the rules whose tag `pick` selects and returns their tags; with `prune`, also
    /// podshim's chains left empty where the backend removes them. Nothing, and no error, when
    /// this backend cannot hold rules here.
    fn remove_where(
        &self,
        pick: &dyn Fn(&str) -> bool,
        prune: bool,
    ) -> Result<Vec<String>, CniError>;

    /// The first rule of `spec` that is not there, described with where it should be.
    fn missing(&self, spec: &NatSpec<'_>) -> Result<Option<String>, CniError>;

    /// Makes way in this backend for `spec`'s rules going to another one: removes the rules of
    /// `spec`'s attachment, and the DNAT rules of other attachments that forward one of its
    /// host ports ([`Forwarded::clashes_with`]). A host port has one live owner (the runtime
    /// sees to it, as podshim's own check does), so such rules are stale, and from another
    /// backend they could take the packets before the new rules do. Nothing, and no error,
    /// when this backend cannot hold rules here.
    fn clear_for(&self, spec: &NatSpec<'_>) -> Result<(), CniError>;
}

/// The host port a DNAT rule forwards, as read back from a backend's listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    pub protocol: Protocol,
    pub host_port: u16,
    /// The only host address it takes; any local one when `None`.
    pub host_ip: Option<Ipv4Addr>,
}

impl Forwarded {
    /// Whether this and one of `spec`'s mappings take the same packets: same protocol and
    /// port, and the same host address or either one any (as Kubernetes sees a hostPort
    /// conflict).
    fn clashes_with(&self, spec: &NatSpec<'_>) -> bool {
        spec.ports.iter().any(|p| {
            p.protocol == self.protocol
                && p.host_port == self.host_port
                && (p.host_ip.is_none() || self.host_ip.is_none() || p.host_ip == self.host_ip)
        })
    }
}

impl Protocol {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "tcp" => Some(Self::Tcp),
            "udp" => Some(Self::Udp),
            _ => None,
        }
    }
}

/// Sets up the rules of one attachment with the preferred backend ([`Backend::choose`]).
pub fn apply(spec: &NatSpec<'_>) -> Result<(), CniError> {
    apply_with(Backend::choose(None)?, spec)
}

/// Sets up the rules of one attachment in `backend` (replacing any it had there, and clearing
/// the other backend with [`Firewall::clear_for`]), and the kernel settings they need: `ip_forward` (as the reference bridge plugin does for a gateway)
/// and `route_localnet` on the bridge when ports are mapped (as the reference portmap plugin
/// does). Nothing is changed when `spec` asks for neither ports nor masquerade.
pub fn apply_with(backend: Backend, spec: &NatSpec<'_>) -> Result<(), CniError> {
    if spec.ports.is_empty() && !spec.masquerade {
        return Ok(());
    }
    sysctl("/proc/sys/net/ipv4/ip_forward")?;
    if !spec.ports.is_empty() {
        sysctl(&format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            spec.bridge
        ))?;
    }
    // Rules in another backend (an earlier ADD with another choice, never deleted) would
    // otherwise stay, and could win over these.
    for other in Backend::ALL.into_iter().filter(|b| *b != backend) {
        other.imp().clear_for(spec)?;
    }
    backend.imp().replace(spec)?;
    tracing::debug!(tag = spec.tag, %backend, ports = spec.ports.len(), "nat rules added");
    Ok(())
}

/// Writes `1` to a sysctl unless it already is.
fn sysctl(path: &str) -> Result<(), CniError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|source| CniError::Sysctl {
        path: PathBuf::from(path),
        source,
    })
}

/// Fails with [`CniError::Drifted`] naming the first rule of `spec` missing in `backend`.
pub fn verify(backend: Backend, spec: &NatSpec<'_>) -> Result<(), CniError> {
    if spec.ports.is_empty() && !spec.masquerade {
        return Ok(());
    }
    match backend.imp().missing(spec)? {
        None => Ok(()),
        Some(what) => Err(CniError::Drifted {
            what: format!("{what} missing ({backend})"),
        }),
    }
}

/// Runs `pick` over both backends; the tags removed, or every error.
fn remove_everywhere(pick: &dyn Fn(&str) -> bool, prune: bool) -> Result<Vec<String>, CniError> {
    let mut tags = BTreeSet::new();
    let mut errors = Vec::new();
    for backend in Backend::ALL {
        match backend.imp().remove_where(pick, prune) {
            Ok(removed) => tags.extend(removed),
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(tags.into_iter().collect()),
        1 => Err(errors.remove(0)),
        _ => Err(CniError::Teardown { errors }),
    }
}

/// Removes every rule of the attachment `tag` from both backends; idempotent (none left is
/// success). podshim's table and chains stay.
pub fn remove(tag: &str) -> Result<(), CniError> {
    remove_everywhere(&|t| t == tag, false).map(|_| ())
}

/// Removes, from both backends, the rules of every attachment of `network` whose tag is not in
/// `keep`; returns the tags removed. iptables chains left empty go too. The network's node
/// rules ([`node_tag`]) are not an attachment's and stay.
pub fn collect(network: &str, keep: &BTreeSet<String>) -> Result<Vec<String>, CniError> {
    remove_everywhere(
        &|t| network_of(t) == network && !keep.contains(t) && !node::is_node_tag(t),
        true,
    )
}

/// How a packet-filter command ended: its stdout, or why it failed (its stderr on one line).
fn exec(program: &str, args: &[&str], stdin: &str) -> Result<String, (String, io::Error)> {
    let mut cmd = Command::new(program);
    // A process group of its own: a Ctrl-C on the terminal of `podshim run` goes to the
    // terminal's foreground group, and a half-done iptables-save or iptables-restore killed by
    // it fails the setup, or the rollback or teardown that podshim does on that same Ctrl-C,
    // leaving rules behind. podshim stops the Pod itself; the tool finishes.
    crate::own_process_group(&mut cmd);
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| (String::new(), e))?;
    let mut input = child.stdin.take().expect("piped stdin");
    let written = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().map_err(|e| (String::new(), e))?;
    written.map_err(|e| (String::new(), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err((
            stderr.trim().replace('\n', " "),
            io::Error::other(format!("{program} exited with {}", out.status)),
        ))
    }
}

/// `s` split on whitespace, double quotes removed from each word (a quoted word with spaces
/// stays one): rules as the backends list them, compared word by word.
fn words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut any) = (false, false);
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests;
