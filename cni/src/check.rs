//! Comparing an attachment with what the kernel and the IPAM pool show now (CNI CHECK).
//!
//! Read-only: every difference becomes a [`CniError::Drifted`] naming what drifted, so an
//! operator can tell a removed address from a veth that left its bridge.

use std::path::Path;

use netlink_packet_route::link::InfoKind;

use crate::attach::{nl, PodIp, Route};
use crate::ipam::Ipam;
use crate::netlink::Socket;
use crate::netns::Netns;
use crate::subnet::network_of;
use crate::CniError;

/// What an attachment should look like.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub bridge: &'a str,
    pub netns: &'a Path,
    pub host_veth: &'a str,
    pub ifname: &'a str,
    /// The Pod interface's MAC as ADD reported it (`aa:bb:…`), when known.
    pub mac: Option<&'a str>,
    pub ips: &'a [PodIp],
    pub routes: &'a [Route],
    /// The host-local lease that should hold each address: pool, id, interface.
    pub lease: Option<(&'a Ipam, &'a str, &'a str)>,
}

fn drifted(what: String) -> CniError {
    CniError::Drifted { what }
}

/// Fails with the first difference between `want` and the current state.
pub fn verify(want: &Expected<'_>) -> Result<(), CniError> {
    let mut host = Socket::new().map_err(nl("open socket", "host"))?;
    let bridge = match host
        .find_link(want.bridge)
        .map_err(nl("get link", want.bridge))?
    {
        Some(link) if link.kind == Some(InfoKind::Bridge) => link,
        Some(_) => return Err(drifted(format!("{} is not a bridge", want.bridge))),
        None => return Err(drifted(format!("bridge {} does not exist", want.bridge))),
    };
    let veth = host
        .find_link(want.host_veth)
        .map_err(nl("get link", want.host_veth))?
        .ok_or_else(|| drifted(format!("host veth {} does not exist", want.host_veth)))?;
    if veth.controller != Some(bridge.index) {
        return Err(drifted(format!(
            "host veth {} is not attached to bridge {}",
            want.host_veth, want.bridge
        )));
    }

    let netns = Netns::open(want.netns)?;
    let ifname = want.ifname;
    let where_ = want.netns.display().to_string();
    netns.run(|| {
        let mut pod = Socket::new().map_err(nl("open socket", "pod"))?;
        let link = pod
            .find_link(ifname)
            .map_err(nl("get link", ifname))?
            .ok_or_else(|| drifted(format!("interface {ifname} does not exist in {where_}")))?;
        if link.kind != Some(InfoKind::Veth) {
            return Err(drifted(format!("interface {ifname} is not a veth")));
        }
        if let Some(want_mac) = want.mac {
            let mac = link.mac.as_deref().map(format_mac).unwrap_or_default();
            if !mac.eq_ignore_ascii_case(want_mac) {
                return Err(drifted(format!(
                    "interface {ifname} has mac {mac}, expected {want_mac}"
                )));
            }
        }
        let addrs = pod
            .addresses(link.index)
            .map_err(nl("list addresses", ifname))?;
        for ip in want.ips {
            if !addrs.contains(&(ip.ip, ip.prefix_len)) {
                return Err(drifted(format!(
                    "address {}/{} is missing on {ifname}",
                    ip.ip, ip.prefix_len
                )));
            }
        }
        let routes = pod.routes().map_err(nl("list routes", ifname))?;
        let gateway = want.ips.iter().find_map(|ip| ip.gateway);
        for route in want.routes {
            let dst = network_of(route.dst, route.prefix_len);
            let gw = route.gw.or(gateway);
            let present = routes.iter().any(|r| {
                r.dst == dst
                    && r.prefix_len == route.prefix_len
                    && r.gateway == gw
                    && r.oif == Some(link.index)
            });
            if !present {
                return Err(drifted(format!(
                    "route to {dst}/{}{} is missing on {ifname}",
                    route.prefix_len,
                    gw.map(|g| format!(" via {g}")).unwrap_or_default()
                )));
            }
        }
        Ok(())
    })?;

    if let Some((ipam, id, ifname)) = want.lease {
        let holders = ipam.lock()?.holders()?;
        for ip in want.ips {
            let held = holders
                .get(&ip.ip)
                .is_some_and(|h| h.id == id && h.ifname.as_deref().is_none_or(|i| i == ifname));
            if !held {
                return Err(drifted(format!(
                    "address {} is not leased to {id}/{ifname} in {}",
                    ip.ip,
                    ipam.dir().display()
                )));
            }
        }
    }
    Ok(())
}

/// `aa:bb:cc:dd:ee:ff`, as CNI results and `ip link` write MAC addresses.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
