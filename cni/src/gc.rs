//! Garbage collection (CNI GC): release every lease and delete every host veth of a network
//! that is not one of the attachments the runtime still knows.
//!
//! After a runtime was killed, nobody calls DEL: its leases stay in the pool and its veths on
//! the bridge (the peer keeps living as long as the Pod namespace is pinned). GC asks the pool
//! and the kernel, not a record, what exists.

use std::collections::BTreeSet;

use crate::attach::{is_errno, nl};
use crate::ipam::Ipam;
use crate::netlink::Socket;
use crate::{cni_host_veth_name, CniError};

/// What [`collect`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    pub leases: Vec<String>,
    pub links: Vec<String>,
}

/// Releases every lease in `ipam` and deletes every podshim host veth on `bridge` that does
/// not belong to one of `valid` (container id, interface name). Host veths are recognised by
/// podshim's naming (`veth` and 8 hex digits); other ports of the bridge are left alone.
pub fn collect(
    bridge: &str,
    ipam: Option<&Ipam>,
    valid: &[(String, String)],
) -> Result<Collected, CniError> {
    let mut collected = Collected::default();
    let mut errors = Vec::new();
    if let Some(ipam) = ipam {
        let lock = ipam.lock()?;
        for (ip, holder) in lock.holders()? {
            let keep = valid.iter().any(|(id, ifname)| {
                holder.id == *id && holder.ifname.as_deref().is_none_or(|i| i == ifname)
            });
            if !keep {
                match lock.release_for(&holder.id, holder.ifname.as_deref()) {
                    Ok(_) => collected.leases.push(ip.to_string()),
                    Err(e) => errors.push(e),
                }
            }
        }
    }
    let keep: BTreeSet<String> = valid
        .iter()
        .map(|(id, ifname)| cni_host_veth_name(id, ifname))
        .collect();
    let mut host = Socket::new().map_err(nl("open socket", "host"))?;
    if let Some(link) = host.find_link(bridge).map_err(nl("get link", bridge))? {
        for port in host
            .links_of(link.index)
            .map_err(nl("list ports of", bridge))?
        {
            if !is_podshim_veth(&port.name) || keep.contains(&port.name) {
                continue;
            }
            match host.delete_link(&port.name) {
                Err(e) if !is_errno(&e, libc::ENODEV) => {
                    errors.push(nl("delete link", "stale veth")(e));
                }
                _ => collected.links.push(port.name),
            }
        }
    }
    tracing::debug!(?collected, errors = errors.len(), "garbage collected");
    match errors.len() {
        0 => Ok(collected),
        _ => Err(CniError::Teardown { errors }),
    }
}

fn is_podshim_veth(name: &str) -> bool {
    name.len() == 12 && name.starts_with("veth") && name[4..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn recognises_podshim_veth_names_only() {
        assert!(super::is_podshim_veth(&crate::cni_host_veth_name(
            "c", "eth0"
        )));
        assert!(!super::is_podshim_veth("veth0"));
        assert!(!super::is_podshim_veth("eth0"));
        assert!(!super::is_podshim_veth("vethxyzxyzxy"));
    }
}
