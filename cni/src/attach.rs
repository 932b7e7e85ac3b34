//! Attaching a Pod network namespace to the bridge, and detaching it.
//!
//! `setup` validates everything first, then applies step by step, recording what it created;
//! on failure it undoes those steps in reverse. `teardown` is best-effort and idempotent. The
//! IPAM lock is held across "bridge exists → veth attached" in setup and across "nothing
//! attached → delete bridge" in teardown, so a concurrent setup never loses its bridge.

use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

use netlink_packet_route::link::InfoKind;

use crate::ipam::{Ipam, IpamLock};
use crate::netlink::Socket;
use crate::netns::Netns;
use crate::{Attachment, CniError, NetworkConfig};

/// Kernel limit on interface names, without the trailing NUL (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;

fn nl<'a>(op: &'static str, name: &'a str) -> impl FnOnce(io::Error) -> CniError + 'a {
    move |source| CniError::Netlink {
        op,
        name: name.to_owned(),
        source,
    }
}

fn is_errno(err: &io::Error, errno: i32) -> bool {
    err.raw_os_error() == Some(errno)
}

/// Rejects what the kernel's `dev_valid_name` rejects, before anything is created.
fn validate_ifname(what: &'static str, name: &str) -> Result<(), CniError> {
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

fn validate(cfg: &NetworkConfig, host_veth: &str, ifname: &str) -> Result<(), CniError> {
    validate_ifname("bridge", &cfg.bridge)?;
    validate_ifname("host veth", host_veth)?;
    validate_ifname("pod interface", ifname)?;
    if host_veth == cfg.bridge {
        return Err(CniError::InvalidName {
            what: "host veth",
            name: host_veth.to_owned(),
            reason: "same as the bridge",
        });
    }
    Ok(())
}

/// What setup has done so far, undone in reverse on failure.
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
    let started = Instant::now();
    validate(cfg, host_veth, ifname)?;
    let netns = Netns::open(netns_path)?;
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
    let ipam = Ipam::open(&cfg.ipam_dir, cfg.subnet)?;

    let mut done = Done::default();
    let result = apply(
        cfg,
        &mut host,
        &ipam,
        &netns,
        attachment_id,
        host_veth,
        ifname,
        &mut done,
    );
    match result {
        Ok(attachment) => {
            tracing::debug!(
                attachment_id,
                host_veth,
                ip = %attachment.ip,
                elapsed_us = started.elapsed().as_micros() as u64,
                "pod network set up"
            );
            Ok(attachment)
        }
        Err(err) => {
            tracing::debug!(attachment_id, host_veth, error = %err, ?done, "rolling back");
            match rollback(cfg, &mut host, &ipam, attachment_id, host_veth, &done) {
                Ok(()) => Err(err),
                Err(rollback) => Err(CniError::Rollback {
                    source: Box::new(err),
                    rollback: Box::new(rollback),
                }),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn apply(
    cfg: &NetworkConfig,
    host: &mut Socket,
    ipam: &Ipam,
    netns: &Netns,
    attachment_id: &str,
    host_veth: &str,
    ifname: &str,
    done: &mut Done,
) -> Result<Attachment, CniError> {
    let subnet = cfg.subnet;
    let ip = {
        // Held until the veth is on the bridge: a teardown deleting an idle bridge takes it too.
        let lock = ipam.lock()?;
        let had_lease = lock.leases()?.values().any(|id| id == attachment_id);
        let ip = lock.allocate(attachment_id)?;
        done.lease = !had_lease;
        let bridge = ensure_bridge(cfg, host, done)?;
        host.create_veth(host_veth, bridge, ifname, netns.as_fd(), cfg.mtu)
            .map_err(|e| {
                if is_errno(&e, libc::EEXIST) {
                    // Either name may be taken: the host end here or the peer in the Pod.
                    nl("create veth (host end or pod interface exists)", host_veth)(e)
                } else {
                    nl("create veth", host_veth)(e)
                }
            })?;
        done.veth = true;
        ip
    };
    let link = host
        .get_link(host_veth)
        .map_err(nl("get link", host_veth))?;
    host.set_up(link.index).map_err(nl("set up", host_veth))?;

    let gateway = subnet.gateway();
    let broadcast = subnet.broadcast();
    let prefix_len = subnet.prefix_len();
    let mac = netns.run(|| {
        let mut pod = Socket::new().map_err(nl("open socket", "pod"))?;
        let link = pod.get_link(ifname).map_err(nl("get link", ifname))?;
        disable_dad(ifname)?;
        let lo = pod.get_link("lo").map_err(nl("get link", "lo"))?;
        pod.set_up(lo.index).map_err(nl("set up", "lo"))?;
        pod.add_address(link.index, ip, prefix_len, broadcast)
            .map_err(nl("add address", ifname))?;
        pod.set_up(link.index).map_err(nl("set up", ifname))?;
        pod.add_default_route(gateway)
            .map_err(nl("add default route", ifname))?;
        Ok(link.mac)
    })?;
    let mac = mac
        .and_then(|m| <[u8; 6]>::try_from(m).ok())
        .ok_or_else(|| {
            nl("get link", ifname)(io::Error::other("no ethernet address on pod interface"))
        })?;
    Ok(Attachment {
        ip,
        prefix_len,
        gateway,
        host_veth: host_veth.to_owned(),
        mac,
    })
}

/// Creates the bridge if missing and makes sure it holds the gateway address and is up.
fn ensure_bridge(cfg: &NetworkConfig, host: &mut Socket, done: &mut Done) -> Result<u32, CniError> {
    let name = cfg.bridge.as_str();
    let link = match host.find_link(name).map_err(nl("get link", name))? {
        Some(link) if link.kind != Some(InfoKind::Bridge) => {
            return Err(CniError::NotABridge {
                name: name.to_owned(),
            })
        }
        Some(link) => link,
        None => {
            host.create_bridge(name, cfg.mtu)
                .map_err(nl("create bridge", name))?;
            done.bridge = true;
            host.get_link(name).map_err(nl("get link", name))?
        }
    };
    let subnet = cfg.subnet;
    match host.add_address(
        link.index,
        subnet.gateway(),
        subnet.prefix_len(),
        subnet.broadcast(),
    ) {
        Err(e) if !is_errno(&e, libc::EEXIST) => return Err(nl("add address", name)(e)),
        _ => {}
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

fn rollback(
    cfg: &NetworkConfig,
    host: &mut Socket,
    ipam: &Ipam,
    attachment_id: &str,
    host_veth: &str,
    done: &Done,
) -> Result<(), CniError> {
    let mut errors = Vec::new();
    if done.veth {
        // Deleting the host end deletes the peer in the Pod namespace too.
        if let Err(e) = host.delete_link(host_veth) {
            if !is_errno(&e, libc::ENODEV) {
                errors.push(nl("delete link", host_veth)(e));
            }
        }
    }
    if done.lease || done.bridge {
        match ipam.lock() {
            Ok(lock) => {
                if done.lease {
                    if let Err(e) = lock.release(attachment_id) {
                        errors.push(e);
                    }
                }
                if done.bridge {
                    if let Err(e) = remove_idle_bridge(&lock, host, &cfg.bridge) {
                        errors.push(e);
                    }
                }
            }
            Err(e) => errors.push(e),
        }
    }
    into_result(errors)
}

/// Deletes the bridge if the kernel shows nothing attached to it. The caller holds the IPAM
/// lock, which every setup holds from "bridge exists" until its veth is attached.
fn remove_idle_bridge(_lock: &IpamLock<'_>, host: &mut Socket, name: &str) -> Result<(), CniError> {
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

/// Undoes [`setup`], best-effort and idempotently: deletes `host_veth` (which deletes its peer;
/// already gone is fine), releases the lease of `attachment_id`, and deletes the bridge if the
/// kernel shows nothing attached to it, under the IPAM lock so that a concurrent setup never
/// loses its bridge. Succeeds when everything is already gone; otherwise goes on past failures
/// and returns them all.
pub fn teardown(cfg: &NetworkConfig, attachment_id: &str, host_veth: &str) -> Result<(), CniError> {
    let started = Instant::now();
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
        if let Err(e) = host.delete_link(host_veth) {
            if !is_errno(&e, libc::ENODEV) {
                errors.push(nl("delete link", host_veth)(e));
            }
        }
    }
    match Ipam::open(&cfg.ipam_dir, cfg.subnet).and_then(|ipam| {
        let lock = ipam.lock()?;
        let released = lock.release(attachment_id);
        let bridge = match host.as_mut() {
            Some(host) if !cfg.keep_bridge => remove_idle_bridge(&lock, host, &cfg.bridge),
            Some(_) => Ok(()),
            None => Ok(()),
        };
        Ok((released, bridge))
    }) {
        Ok((released, bridge)) => {
            errors.extend(released.err());
            errors.extend(bridge.err());
        }
        Err(e) => errors.push(e),
    }
    tracing::debug!(
        attachment_id,
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
            let err = validate(&cfg(bridge), veth, ifname).unwrap_err();
            assert!(matches!(err, CniError::InvalidName { .. }), "{err}");
            assert_eq!(err.code(), 7);
        }
        validate(&cfg("br0"), "veth0123abcd", "eth0").unwrap();
        validate(&cfg("br0"), "v23456789012345", "eth0").unwrap();
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
