//! Detaching a Pod network namespace from the bridge: podshim's [`teardown`] and CNI DEL.
//!
//! Best-effort and idempotent: goes on past failures and returns them all; what is already
//! gone (the veth with its namespace, the lease) counts as done, so deleting twice succeeds
//! twice. The bridge is only deleted under the IPAM lock, when the kernel shows no port.

use std::path::Path;
use std::time::Instant;

use netlink_packet_route::link::InfoKind;

use crate::attach::{bridge_of, is_errno, nl, remove_idle_bridge, BridgeSpec};
use crate::ipam::Ipam;
use crate::netlink::Socket;
use crate::netns::Netns;
use crate::{CniError, NetworkConfig};

/// Undoes [`setup`](crate::setup), best-effort and idempotently: deletes `host_veth` (which deletes its peer;
/// already gone is fine), releases the lease of `attachment_id`, and deletes the bridge if the
/// kernel shows nothing attached to it, under the IPAM lock so that a concurrent setup never
/// loses its bridge. Succeeds when everything is already gone; otherwise goes on past failures
/// and returns them all.
pub fn teardown(cfg: &NetworkConfig, attachment_id: &str, host_veth: &str) -> Result<(), CniError> {
    let bridge = bridge_of(cfg);
    let ipam = Ipam::open(&cfg.ipam_dir, cfg.subnet);
    let (ipam, open_error) = match ipam {
        Ok(ipam) => (Some(ipam), None),
        Err(e) => (None, Some(e)),
    };
    let mut detached = detach(&DetachSpec {
        bridge: &bridge,
        netns: None,
        host_veth,
        ifname: "",
        lease: ipam.as_ref().map(|ipam| (ipam, attachment_id, None)),
    });
    // The node's rules go with a bridge that is not kept (the last Pod took it down).
    if let (false, Some(ipam), Ok(())) = (cfg.keep_bridge, &ipam, &detached) {
        detached = remove_node_if_bridge_gone(ipam, &cfg.bridge);
    }
    match (detached, open_error) {
        (Ok(()), None) => Ok(()),
        (Ok(()), Some(e)) => Err(CniError::Teardown { errors: vec![e] }),
        (Err(CniError::Teardown { mut errors }), e) => {
            errors.extend(e);
            Err(CniError::Teardown { errors })
        }
        (Err(other), e) => Err(CniError::Teardown {
            errors: std::iter::once(other).chain(e).collect(),
        }),
    }
}

/// Removes the node rules of `bridge` if the bridge is gone, under the pool's lock: a setup
/// that makes the bridge again holds it until its veth is attached, and sets the node rules up
/// after that.
fn remove_node_if_bridge_gone(ipam: &Ipam, bridge: &str) -> Result<(), CniError> {
    let lock = ipam.lock()?;
    let mut host = Socket::new().map_err(nl("open socket", "host"))?;
    if host
        .find_link(bridge)
        .map_err(nl("get link", bridge))?
        .is_none()
    {
        crate::nat::remove_node(bridge)?;
    }
    drop(lock);
    Ok(())
}

/// What [`remove_network`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkRemoval {
    /// The bridge (if there was one) and the node rules are gone.
    Removed { bridge: bool },
    /// The bridge still has ports (their names): nothing was removed.
    InUse { ports: Vec<String> },
}

/// Removes the bridge of `cfg` and its node rules ([`crate::nat::remove_node`]) when the kernel
/// shows nothing attached to the bridge; with `with_leases`, also the pool's directory (what a
/// reset of the node takes). Under the pool's lock, so no setup attaches meanwhile.
pub fn remove_network(cfg: &NetworkConfig, with_leases: bool) -> Result<NetworkRemoval, CniError> {
    let ipam = Ipam::open(&cfg.ipam_dir, cfg.subnet)?;
    let lock = ipam.lock()?;
    let mut host = Socket::new().map_err(nl("open socket", "host"))?;
    let bridge = match host
        .find_link(&cfg.bridge)
        .map_err(nl("get link", &cfg.bridge))?
    {
        Some(link) if link.kind == Some(InfoKind::Bridge) => {
            let ports = host
                .links_of(link.index)
                .map_err(nl("list ports of", &cfg.bridge))?;
            if !ports.is_empty() {
                return Ok(NetworkRemoval::InUse {
                    ports: ports.into_iter().map(|p| p.name).collect(),
                });
            }
            match host.delete_link(&cfg.bridge) {
                Err(e) if !is_errno(&e, libc::ENODEV) => {
                    return Err(nl("delete link", &cfg.bridge)(e))
                }
                _ => true,
            }
        }
        _ => false,
    };
    crate::nat::remove_node(&cfg.bridge)?;
    if with_leases {
        match std::fs::remove_dir_all(&cfg.ipam_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CniError::Ipam {
                    op: "remove",
                    path: cfg.ipam_dir.clone(),
                    source: e,
                })
            }
            _ => {}
        }
    }
    drop(lock);
    Ok(NetworkRemoval::Removed { bridge })
}

/// Everything [`detach`] needs.
#[derive(Debug, Clone)]
pub struct DetachSpec<'a> {
    pub bridge: &'a BridgeSpec,
    /// The Pod namespace, if still known: when the host veth is already gone, `ifname` is
    /// deleted inside it in case it was made some other way.
    pub netns: Option<&'a Path>,
    pub host_veth: &'a str,
    pub ifname: &'a str,
    /// The lease to release: pool, id and interface.
    pub lease: Option<(&'a Ipam, &'a str, Option<&'a str>)>,
}

/// Detaches what [`attach`](crate::attach) made, best-effort and idempotently; see [`teardown`]. The bridge
/// is only ever deleted under a pool's lock, so never without a `lease` pool.
pub fn detach(spec: &DetachSpec<'_>) -> Result<(), CniError> {
    let started = Instant::now();
    let host_veth = spec.host_veth;
    let mut errors = Vec::new();
    let mut host = match Socket::new() {
        Ok(socket) => Some(socket),
        Err(e) => {
            errors.push(nl("open socket", "host")(e));
            None
        }
    };
    // The Pod's veth the last port of a bridge that goes with it: both in one kernel batch,
    // under the pool's lock (no setup can add a port meanwhile).
    if let (Some(sock), Some((ipam, id, ifname)), false) =
        (host.as_mut(), spec.lease, spec.bridge.keep)
    {
        if let Ok(lock) = ipam.lock() {
            match delete_with_bridge(sock, &spec.bridge.name, host_veth) {
                Ok(true) => {
                    errors.extend(lock.release_for(id, ifname).err());
                    return finish(started, host_veth, errors);
                }
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "batched delete failed, deleting one by one"),
            }
        }
    }
    if let Some(host) = host.as_mut() {
        // ENODEV: already gone, e.g. with the Pod namespace that held its peer.
        match host.delete_link(host_veth) {
            Err(e) if is_errno(&e, libc::ENODEV) => {
                if let Some(path) = spec.netns {
                    errors.extend(delete_in_netns(path, spec.ifname).err());
                }
            }
            Err(e) => errors.push(nl("delete link", host_veth)(e)),
            Ok(()) => {}
        }
    }
    if let Some((ipam, id, ifname)) = spec.lease {
        match ipam.lock() {
            Ok(lock) => {
                errors.extend(lock.release_for(id, ifname).err());
                if let (Some(host), false) = (host.as_mut(), spec.bridge.keep) {
                    errors.extend(remove_idle_bridge(&lock, host, &spec.bridge.name).err());
                }
            }
            Err(e) => errors.push(e),
        }
    }
    finish(started, host_veth, errors)
}

fn finish(started: Instant, host_veth: &str, errors: Vec<CniError>) -> Result<(), CniError> {
    tracing::debug!(
        host_veth,
        errors = errors.len(),
        elapsed_us = started.elapsed().as_micros() as u64,
        "pod network torn down"
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CniError::Teardown { errors })
    }
}

/// The link group [`delete_with_bridge`] uses for the bridge with ifindex `index`: never 0 (the
/// default group of every link), different for every bridge alive (short of 2^30 links made in
/// between), and within what `ip link … group N` takes (a positive `int`).
fn batch_group(index: u32) -> u32 {
    0x4000_0000 | (index & 0x3fff_ffff)
}

/// When `host_veth` is the only port of the bridge `bridge`, deletes both in one kernel batch
/// and returns true: the kernel then waits for one RCU grace period instead of one per link
/// (about 20 ms each here). Returns false, deleting nothing, when the bridge has other ports
/// (or none, or is not a bridge); the caller then deletes one by one. Call it under the pool's
/// lock, so that no setup adds a port meanwhile.
///
/// The batch is the link group made of exactly these two links: they are put into the group
/// [`batch_group`], and the group is deleted only if it holds nothing else.
fn delete_with_bridge(host: &mut Socket, bridge: &str, host_veth: &str) -> Result<bool, CniError> {
    let Some(br) = host.find_link(bridge).map_err(nl("get link", bridge))? else {
        return Ok(false);
    };
    if br.kind != Some(InfoKind::Bridge) {
        return Ok(false);
    }
    let ports = host
        .links_of(br.index)
        .map_err(nl("list ports of", bridge))?;
    let [veth] = ports.as_slice() else {
        return Ok(false);
    };
    if veth.name != host_veth {
        return Ok(false);
    }
    let group = batch_group(br.index);
    for (index, name) in [(veth.index, host_veth), (br.index, bridge)] {
        host.set_group(index, group)
            .map_err(nl("set link group of", name))?;
    }
    let members: Vec<u32> = host
        .links()
        .map_err(nl("list links", "host"))?
        .iter()
        .filter(|l| l.group == group)
        .map(|l| l.index)
        .collect();
    let mut want = vec![veth.index, br.index];
    let mut have = members;
    want.sort_unstable();
    have.sort_unstable();
    if have != want {
        // Someone else's link in the group (never ours): leave the batch alone.
        for (index, name) in [(veth.index, host_veth), (br.index, bridge)] {
            host.set_group(index, 0)
                .map_err(nl("set link group of", name))?;
        }
        return Ok(false);
    }
    host.delete_group(group)
        .map_err(nl("delete link group of", bridge))?;
    Ok(true)
}

/// Deletes `ifname` inside the namespace at `path`; a namespace or interface already gone is
/// fine (DEL must succeed then, says the CNI spec).
fn delete_in_netns(path: &Path, ifname: &str) -> Result<(), CniError> {
    if ifname.is_empty() {
        return Ok(());
    }
    let netns = match Netns::open(path) {
        Ok(netns) => netns,
        Err(CniError::NetnsOpen { .. } | CniError::NotANetns { .. }) => return Ok(()),
        Err(e) => return Err(e),
    };
    netns.run(|| {
        let mut pod = Socket::new().map_err(nl("open socket", "pod"))?;
        match pod.delete_link(ifname) {
            Err(e) if !is_errno(&e, libc::ENODEV) => Err(nl("delete link", ifname)(e)),
            _ => Ok(()),
        }
    })
}
