//! Detaching a Pod network namespace from the bridge: podshim's [`teardown`] and CNI DEL.
//!
//! Best-effort and idempotent: goes on past failures and returns them all; what is already
//! gone (the veth with its namespace, the lease) counts as done, so deleting twice succeeds
//! twice. The bridge is only deleted under the IPAM lock, when the kernel shows no port.

use std::path::Path;
use std::time::Instant;

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
    let detached = detach(&DetachSpec {
        bridge: &bridge,
        netns: None,
        host_veth,
        ifname: "",
        lease: ipam.as_ref().map(|ipam| (ipam, attachment_id, None)),
    });
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
