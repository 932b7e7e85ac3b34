//! Attaching a Pod network namespace to the bridge, and detaching it.
//!
//! One implementation serves podshim ([`setup`]) and the CNI plugin (through [`AttachSpec`]);
//! the way back is in `detach`. `attach` validates everything first, then applies step by
//! step, recording what it created; on failure it undoes those steps in reverse. The IPAM lock is held across "bridge exists → veth attached"
//! in attach and across "nothing attached → delete bridge" in detach, so a concurrent attach
//! never loses its bridge.

use std::fs;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use netlink_packet_route::link::InfoKind;

use crate::ipam::{Ipam, IpamLock};
use crate::netlink::Socket;
use crate::netns::Netns;
use crate::subnet::broadcast_of;
use crate::{Attachment, CniError, NetworkConfig};

/// Kernel limit on interface names, without the trailing NUL (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

pub(crate) fn nl<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> CniError + 'a {
    move |source| CniError::Netlink {
        op,
        name: name.to_owned(),
        source,
    }
}

pub(crate) fn is_errno(err: &io::Error, errno: i32) -> bool {
    err.raw_os_error() == Some(errno)
}

/// Rejects what the kernel's `dev_valid_name` rejects, before anything is created.
pub(crate) fn validate_ifname(what: &'static str, name: &str) -> Result<(), CniError> {
    let invalid = |reason| CniError::InvalidName {
        what,
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.len() > MAX_IFNAME {
        return Err(invalid("longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(invalid("must not be . or .."));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid("must not contain '/', ':' or whitespace"));
    }
    Ok(())
}

fn validate(bridge: &str, host_veth: &str, ifname: &str) -> Result<(), CniError> {
    validate_ifname("bridge", bridge)?;
    validate_ifname("host veth", host_veth)?;
    validate_ifname("pod interface", ifname)?;
    if host_veth == bridge {
        return Err(CniError::InvalidName {
            what: "host veth",
            name: host_veth.to_owned(),
            reason: "same as the bridge",
        });
    }
    Ok(())
}

/// An IPv4 address of the Pod interface, with its prefix length and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodIp {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// An IPv4 route inside the Pod; without `gw` it goes via the Pod address's gateway (as the
/// reference bridge plugin does with IPAM routes), or directly on the link when there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix_len: u8,
    pub gw: Option<Ipv4Addr>,
}

/// The bridge and how ports join it.
#[derive(Debug, Clone)]
pub struct BridgeSpec {
    pub name: String,
    pub mtu: Option<u32>,
    /// Give the bridge the gateway address of the Pod's network.
    pub is_gateway: bool,
    /// Hairpin mode on the host veth (frames may return through the port they came in by).
    pub hairpin: bool,
    /// Promiscuous mode on the bridge.
    pub promisc: bool,
    /// Leave the bridge in place when the last port leaves it.
    pub keep: bool,
}

/// How the Pod interface gets its address.
#[derive(Debug, Clone, Copy)]
pub enum Addressing<'a> {
    /// Leased from a host-local pool to `id` (and `ifname`), under the pool's lock.
    HostLocal {
        ipam: &'a Ipam,
        id: &'a str,
        ifname: Option<&'a str>,
    },
    /// Decided elsewhere (a delegated IPAM plugin), or no address at all.
    Fixed(Option<PodIp>),
}

/// Everything [`attach`] needs.
#[derive(Debug, Clone)]
pub struct AttachSpec<'a> {
    pub bridge: &'a BridgeSpec,
    pub netns: &'a Path,
    pub host_veth: &'a str,
    pub ifname: &'a str,
    pub addressing: Addressing<'a>,
    pub routes: &'a [Route],
    /// Bring `lo` up too (podshim does; in a CNI chain that is the loopback plugin's job).
    pub lo_up: bool,
}

/// What [`attach`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    pub ip: Option<PodIp>,
    pub bridge_mac: Option<Vec<u8>>,
    pub host_mac: Option<Vec<u8>>,
    pub pod_mac: [u8; 6],
}

/// What attach has done so far, undone in reverse on failure.
#[derive(Debug, Default)]
struct Done {
    lease: bool,
    bridge: bool,
    veth: bool,
}

/// Gives the network namespace at `netns_path` (an nsfs bind mount or `/proc/PID/ns/net`) an
/// interface `ifname` on the bridge of `cfg`, with an address leased to `attachment_id`.
///
/// Allocates the address (IPAM, file-locked), creates the bridge if missing (gateway address,
/// up), creates the veth pair with its peer directly inside the namespace, attaches the host
/// end `host_veth` to the bridge and brings it up; inside the namespace turns IPv6 DAD off on
/// `ifname`, brings `lo` up, adds the address, brings `ifname` up and adds the default route.
/// On failure removes what this call created (veth, lease, and the bridge if it created it
/// and nothing is attached) and returns the error, with the rollback's error if that failed.
pub fn setup(
    cfg: &NetworkConfig,
    netns_path: &Path,
    attachment_id: &str,
    host_veth: &str,
    ifname: &str,
) -> Result<Attachment, CniError> {
    validate(&cfg.bridge, host_veth, ifname)?;
    let ipam = Ipam::open(&cfg.ipam_dir, cfg.subnet)?;
    let bridge = bridge_of(cfg);
    let default_route = [Route {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
        gw: None,
    }];
    let attached = attach(&AttachSpec {
        bridge: &bridge,
        netns: netns_path,
        host_veth,
        ifname,
        addressing: Addressing::HostLocal {
            ipam: &ipam,
            id: attachment_id,
            ifname: None,
        },
        routes: &default_route,
        lo_up: true,
    })?;
    let ip = attached
        .ip
        .expect("host-local addressing always yields an address");
    Ok(Attachment {
        ip: ip.ip,
        prefix_len: ip.prefix_len,
        gateway: ip.gateway.unwrap_or_else(|| cfg.subnet.gateway()),
        host_veth: host_veth.to_owned(),
        mac: attached.pod_mac,
    })
}

pub(crate) fn bridge_of(cfg: &NetworkConfig) -> BridgeSpec {
    BridgeSpec {
        name: cfg.bridge.clone(),
        mtu: cfg.mtu,
        is_gateway: true,
        hairpin: false,
        promisc: false,
        keep: cfg.keep_bridge,
    }
}

/// Attaches a network namespace to a bridge as `spec` says; see [`setup`] for the steps.
pub fn attach(spec: &AttachSpec<'_>) -> Result<Attached, CniError> {
    let started = Instant::now();
    let host_veth = spec.host_veth;
    validate(&spec.bridge.name, host_veth, spec.ifname)?;
    let netns = Netns::open(spec.netns)?;
    let mut host = Socket::new().map_err(nl("open socket", "host"))?;
    if host
        .find_link(host_veth)
        .map_err(nl("get link", host_veth))?
        .is_some()
    {
        return Err(nl("create veth", host_veth)(io::Error::from_raw_os_error(
            libc::EEXIST,
        )));
    }
    let mut done = Done::default();
    match apply(spec, &mut host, &netns, &mut done) {
        Ok(attached) => {
            tracing::debug!(
                host_veth,
                ip = ?attached.ip,
                elapsed_us = started.elapsed().as_micros() as u64,
                "pod network set up"
            );
            Ok(attached)
        }
        Err(err) => {
            tracing::debug!(host_veth, error = %err, ?done, "rolling back");
            match rollback(spec, &mut host, &done) {
                Ok(()) => Err(err),
                Err(rollback) => Err(CniError::Rollback {
                    source: Box::new(err),
                    rollback: Box::new(rollback),
                }),
            }
        }
    }
}

fn apply(
    spec: &AttachSpec<'_>,
    host: &mut Socket,
    netns: &Netns,
    done: &mut Done,
) -> Result<Attached, CniError> {
    let (host_veth, ifname) = (spec.host_veth, spec.ifname);
    let create_veth = |host: &mut Socket, bridge: u32| {
        host.create_veth(host_veth, bridge, ifname, netns.as_fd(), spec.bridge.mtu)
            .map_err(|e| {
                if is_errno(&e, libc::EEXIST) {
                    // Either name may be taken: the host end here or the peer in the Pod.
                    nl("create veth (host end or pod interface exists)", host_veth)(e)
                } else if is_errno(&e, libc::EXFULL) {
                    // br_add_if: a bridge has port numbers 1 to 1,023 (BR_MAX_PORTS is 1,024);
                    // the kernel then removes the new veth again.
                    nl(
                        "attach veth (the bridge has 1,023 ports, the kernel's limit: use a second bridge and subnet for more Pods)",
                        host_veth,
                    )(e)
                } else {
                    nl("create veth", host_veth)(e)
                }
            })
    };
    let (pod_ip, bridge_index) = match spec.addressing {
        Addressing::HostLocal { ipam, id, ifname } => {
            // Held until the veth is on the bridge: a detach deleting an idle bridge takes it.
            let lock = ipam.lock()?;
            let had_lease = lock.held_by(id, ifname)?.is_some();
            let ip = lock.allocate_for(id, ifname)?;
            done.lease = !had_lease;
            let pod_ip = PodIp {
                ip,
                prefix_len: ipam.subnet().prefix_len(),
                gateway: Some(ipam.range().gateway),
            };
            let bridge = ensure_bridge(spec.bridge, Some(pod_ip), host, done)?;
            create_veth(host, bridge)?;
            done.veth = true;
            (Some(pod_ip), bridge)
        }
        Addressing::Fixed(pod_ip) => {
            let bridge = ensure_bridge(spec.bridge, pod_ip, host, done)?;
            create_veth(host, bridge)?;
            done.veth = true;
            (pod_ip, bridge)
        }
    };
    let link = host
        .get_link(host_veth)
        .map_err(nl("get link", host_veth))?;
    if spec.bridge.hairpin {
        host.set_hairpin(link.index)
            .map_err(nl("set hairpin", host_veth))?;
    }
    host.set_up(link.index).map_err(nl("set up", host_veth))?;

    let routes = spec.routes;
    let lo_up = spec.lo_up;
    let mac = netns.run(|| {
        let mut pod = Socket::new().map_err(nl("open socket", "pod"))?;
        let link = pod.get_link(ifname).map_err(nl("get link", ifname))?;
        disable_dad(ifname)?;
        if lo_up {
            let lo = pod.get_link("lo").map_err(nl("get link", "lo"))?;
            pod.set_up(lo.index).map_err(nl("set up", "lo"))?;
        }
        if let Some(ip) = pod_ip {
            let broadcast = broadcast_of(ip.ip, ip.prefix_len);
            pod.add_address(link.index, ip.ip, ip.prefix_len, broadcast)
                .map_err(nl("add address", ifname))?;
        }
        pod.set_up(link.index).map_err(nl("set up", ifname))?;
        for route in routes {
            let gw = route.gw.or(pod_ip.and_then(|ip| ip.gateway));
            pod.add_route(route.dst, route.prefix_len, gw, Some(link.index))
                .map_err(nl("add route", ifname))?;
        }
        Ok(link.mac)
    })?;
    let pod_mac = mac
        .and_then(|m| <[u8; 6]>::try_from(m).ok())
        .ok_or_else(|| {
            nl("get link", ifname)(io::Error::other("no ethernet address on pod interface"))
        })?;
    // Read after the veth joined: a bridge without an address of its own takes its ports'.
    let bridge = host
        .get_link(&spec.bridge.name)
        .map_err(nl("get link", &spec.bridge.name))?;
    debug_assert_eq!(bridge.index, bridge_index);
    Ok(Attached {
        ip: pod_ip,
        bridge_mac: bridge.mac,
        host_mac: link.mac,
        pod_mac,
    })
}

/// Creates the bridge if missing and makes sure it is up, promiscuous if asked, and holds the
/// gateway address of `pod_ip` if it is the gateway.
fn ensure_bridge(
    spec: &BridgeSpec,
    pod_ip: Option<PodIp>,
    host: &mut Socket,
    done: &mut Done,
) -> Result<u32, CniError> {
    let name = spec.name.as_str();
    let link = match host.find_link(name).map_err(nl("get link", name))? {
        Some(link) if link.kind != Some(InfoKind::Bridge) => {
            return Err(CniError::NotABridge {
                name: name.to_owned(),
            })
        }
        Some(link) => link,
        None => {
            host.create_bridge(name, spec.mtu)
                .map_err(nl("create bridge", name))?;
            done.bridge = true;
            host.get_link(name).map_err(nl("get link", name))?
        }
    };
    if let (
        true,
        Some(PodIp {
            prefix_len,
            gateway: Some(gateway),
            ..
        }),
    ) = (spec.is_gateway, pod_ip)
    {
        let broadcast = broadcast_of(gateway, prefix_len);
        match host.add_address(link.index, gateway, prefix_len, broadcast) {
            Err(e) if !is_errno(&e, libc::EEXIST) => return Err(nl("add address", name)(e)),
            _ => {}
        }
    }
    if spec.promisc {
        host.set_promisc(link.index)
            .map_err(nl("set promisc", name))?;
    }
    if !link.up {
        host.set_up(link.index).map_err(nl("set up", name))?;
    }
    Ok(link.index)
}

/// Turns IPv6 duplicate address detection off on the Pod interface, so its link-local address
/// is usable at once. Must run on a thread inside the Pod namespace: /proc/sys/net shows the
/// namespace of the reading thread. A kernel without IPv6 has no such file, which is fine.
fn disable_dad(ifname: &str) -> Result<(), CniError> {
    let path = PathBuf::from(format!("/proc/sys/net/ipv6/conf/{ifname}/accept_dad"));
    match fs::write(&path, "0") {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(CniError::Sysctl { path, source: e }),
        _ => Ok(()),
    }
}

fn rollback(spec: &AttachSpec<'_>, host: &mut Socket, done: &Done) -> Result<(), CniError> {
    let mut errors = Vec::new();
    if done.veth {
        // Deleting the host end deletes the peer in the Pod namespace too.
        if let Err(e) = host.delete_link(spec.host_veth) {
            if !is_errno(&e, libc::ENODEV) {
                errors.push(nl("delete link", spec.host_veth)(e));
            }
        }
    }
    if let Addressing::HostLocal { ipam, id, ifname } = spec.addressing {
        if done.lease || done.bridge {
            match ipam.lock() {
                Ok(lock) => {
                    if done.lease {
                        if let Err(e) = lock.release_for(id, ifname) {
                            errors.push(e);
                        }
                    }
                    if done.bridge {
                        if let Err(e) = remove_idle_bridge(&lock, host, &spec.bridge.name) {
                            errors.push(e);
                        }
                    }
                }
                Err(e) => errors.push(e),
            }
        }
    }
    into_result(errors)
}

/// Deletes the bridge if the kernel shows nothing attached to it. The caller holds the IPAM
/// lock, which every setup holds from "bridge exists" until its veth is attached.
pub(crate) fn remove_idle_bridge(
    _lock: &IpamLock<'_>,
    host: &mut Socket,
    name: &str,
) -> Result<(), CniError> {
    let Some(link) = host.find_link(name).map_err(nl("get link", name))? else {
        return Ok(());
    };
    if link.kind != Some(InfoKind::Bridge) {
        return Ok(());
    }
    if !host
        .links_of(link.index)
        .map_err(nl("list ports of", name))?
        .is_empty()
    {
        return Ok(());
    }
    match host.delete_link(name) {
        Err(e) if !is_errno(&e, libc::ENODEV) => Err(nl("delete link", name)(e)),
        _ => Ok(()),
    }
}

fn into_result(mut errors: Vec<CniError>) -> Result<(), CniError> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CniError::Teardown { errors }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(bridge: &str) -> NetworkConfig {
        NetworkConfig {
            bridge: bridge.into(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            ipam_dir: "/nonexistent".into(),
            mtu: None,
            keep_bridge: false,
        }
    }

    #[test]
    fn validation_rejects_bad_names_before_touching_anything() {
        for (bridge, veth, ifname) in [
            ("", "v", "eth0"),
            ("br0", "veth-name-too-long", "eth0"),
            ("br0", "v", "eth/0"),
            ("br0", "v", "eth 0"),
            ("br0", "v", ".."),
            ("br0", "br0", "eth0"),
        ] {
            let err = validate(&cfg(bridge).bridge, veth, ifname).unwrap_err();
            assert!(matches!(err, CniError::InvalidName { .. }), "{err}");
            assert_eq!(err.code(), 7);
        }
        validate(&cfg("br0").bridge, "veth0123abcd", "eth0").unwrap();
        validate(&cfg("br0").bridge, "v23456789012345", "eth0").unwrap();
    }

    #[test]
    fn rollback_errors_combine() {
        assert!(into_result(vec![]).is_ok());
        let one = into_result(vec![CniError::NotABridge { name: "x".into() }]).unwrap_err();
        assert!(matches!(one, CniError::NotABridge { .. }));
        let two = into_result(vec![
            CniError::NotABridge { name: "x".into() },
            CniError::NotABridge { name: "y".into() },
        ])
        .unwrap_err();
        assert_eq!(
            two.to_string(),
            "teardown: interface x exists and is not a bridge; interface y exists and is not a bridge"
        );
    }
}
