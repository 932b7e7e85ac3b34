//! Pod networking over netlink: bridge, veth pair, addresses, routes and host-local IPAM.
//!
//! [`setup`] gives a Pod network namespace an `eth0` on a shared bridge with an address from
//! the host-local style [`ipam`] pool; [`teardown`] undoes it, idempotently. Everything goes
//! through netlink (no `ip` command); in-namespace work runs on a short-lived thread. The
//! [`plugin`] module is the same code behind the CNI 1.1 protocol (the `podshim-bridge` binary);
//! [`chain`] runs other plugins' network configurations as a container runtime does.

mod attach;
pub mod chain;
pub mod check;
mod child;
mod detach;
mod error;
pub mod gc;
pub mod ipam;
pub mod nat;
mod netlink;
mod netns;
mod nft_dump;
pub mod plugin;
mod subnet;

pub use child::own_process_group;

use std::net::Ipv4Addr;
use std::path::PathBuf;

pub use attach::{attach, setup, Addressing, AttachSpec, Attached, BridgeSpec, PodIp, Route};
pub use detach::{detach, remove_network, teardown, DetachSpec, NetworkRemoval};
pub use error::{codes, CniError};
pub use subnet::Ipv4Net;

/// The network Pods are attached to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The bridge; created on first use, removed when nothing is attached to it any more
    /// (unless `keep_bridge`).
    pub bridge: String,
    /// The Pod subnet; its first address is the gateway, held by the bridge.
    pub subnet: Ipv4Net,
    /// Where IPAM keeps its leases (host-local layout).
    pub ipam_dir: PathBuf,
    /// MTU of the bridge and both veth ends; the kernel default when `None`.
    pub mtu: Option<u32>,
    /// Leave the bridge in place when the last Pod leaves it (as the reference CNI bridge
    /// plugin does): deleting a bridge costs the kernel tens of milliseconds.
    pub keep_bridge: bool,
}

/// What [`setup`] gave a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Ipv4Addr,
    pub host_veth: String,
    /// The MAC address of the Pod's interface.
    pub mac: [u8; 6],
}

/// A stable host-side veth name for an attachment: `veth` and 8 hex digits of its FNV-1a
/// hash, 12 characters, within IFNAMSIZ (15 plus NUL).
pub fn host_veth_name(attachment_id: &str) -> String {
    let hash = attachment_id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("veth{hash:08x}")
}

/// The host-side veth name of a CNI attachment (container id, interface name).
pub fn cni_host_veth_name(container_id: &str, ifname: &str) -> String {
    host_veth_name(&format!("{container_id}/{ifname}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_veth_names_are_stable_short_and_distinct() {
        let a = host_veth_name("pod-a/eth0");
        assert_eq!(a, host_veth_name("pod-a/eth0"));
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, host_veth_name("pod-b/eth0"));
        // FNV-1a of the empty string is the offset basis.
        assert_eq!(host_veth_name(""), "veth811c9dc5");
        let names: std::collections::BTreeSet<_> = (0..1000)
            .map(|i| host_veth_name(&format!("pod{i}")))
            .collect();
        assert_eq!(names.len(), 1000);
    }
}
