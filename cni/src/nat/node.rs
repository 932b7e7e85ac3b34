//! The node-level rules of podshim's bridge network: made once with the bridge, shared by
//! every Pod on it, removed with the bridge (by teardown when the bridge goes, `podshim gc`,
//! `podshim reset`).
//!
//! - Outbound masquerade as one rule for the whole subnet (as Docker masquerades per network,
//!   and Kubernetes nodes per cluster CIDR), instead of a rule per Pod: starting `nft` costs
//!   tens of milliseconds, which a Pod no longer pays.
//! - The `filter FORWARD` rules of [`super::forward`], for hosts whose firewall drops forwarded
//!   traffic (Docker's).
//!
//! Every rule carries the network's [`node_tag`]. [`ensure_node`] reads what is there first
//! (over nfnetlink where it can) and changes nothing when it is as asked, so a Pod start that
//! finds the node set up pays a netlink dump, not a process.

use super::{apply_with, forward, remove_everywhere, Backend, NatSpec};
use crate::{CniError, Ipv4Net};

/// What the node rules of one network are made of.
#[derive(Debug, Clone, Copy)]
pub struct NodeSpec<'a> {
    /// The network (podshim: the bridge's name), the first part of every tag.
    pub network: &'a str,
    pub bridge: &'a str,
    pub subnet: Ipv4Net,
    /// Masquerade the subnet's traffic leaving it.
    pub masquerade: bool,
}

/// The tag of a network's node rules: `<network>/node` (an attachment's has three parts).
pub fn node_tag(network: &str) -> String {
    format!("{network}/node")
}

pub(super) fn is_node_tag(tag: &str) -> bool {
    tag.strip_suffix("/node")
        .is_some_and(|network| !network.is_empty() && !network.contains('/'))
}

fn nat_spec<'a>(spec: &NodeSpec<'a>, tag: &'a str) -> NatSpec<'a> {
    NatSpec {
        tag,
        // Unused for a node rule, whose source is the subnet.
        pod_ip: spec.subnet.addr(),
        subnet: spec.subnet,
        masquerade: true,
        ports: &[],
        bridge: spec.bridge,
    }
}

/// Makes the node rules of `spec` what it asks for: the subnet's masquerade rule when asked
/// (in the preferred backend, [`Backend::choose`]) and none otherwise, and the forward rules
/// wherever iptables is. Changes nothing when they already are.
pub fn ensure_node(spec: &NodeSpec<'_>) -> Result<(), CniError> {
    let tag = node_tag(spec.network);
    let nat = nat_spec(spec, &tag);
    let backend = match Backend::choose(None) {
        Ok(backend) => backend,
        // No packet filter at all: nothing to masquerade with, nor a firewall to get through.
        Err(_) if !spec.masquerade => return Ok(()),
        Err(e) => return Err(e),
    };
    let present = match backend {
        Backend::Nftables => super::nft::listed()?
            .iter()
            .any(|r| r.tag == tag && r.chain == "postrouting"),
        Backend::Iptables => backend.imp().missing(&nat)?.is_none(),
    };
    match (spec.masquerade, present) {
        (true, false) => apply_with(backend, &nat)?,
        (false, true) => super::remove(&tag)?,
        _ => {}
    }
    forward::ensure(spec.network, spec.bridge, spec.subnet)
}

/// Removes every node rule of `network` (both NAT backends, the forward rules), then what is
/// left empty: podshim's iptables chains, and its nftables table when no rule of any network
/// is in it. Idempotent; goes on past failures and returns them all.
pub fn remove_node(network: &str) -> Result<(), CniError> {
    let tag = node_tag(network);
    let mut errors = Vec::new();
    errors.extend(remove_everywhere(&|t| t == tag, true).err());
    errors.extend(forward::remove(network).err());
    errors.extend(super::nft::remove_table_if_empty().err());
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CniError::Teardown { errors }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_tags_are_told_from_attachment_tags() {
        assert_eq!(node_tag("podshim0"), "podshim0/node");
        assert!(is_node_tag(&node_tag("podshim0")));
        assert!(!is_node_tag("podshim0/ctr/eth0"));
        assert!(!is_node_tag("podshim0/ctr/node"));
        assert!(!is_node_tag("/node"));
    }

    #[test]
    fn a_node_masquerade_rule_covers_the_whole_subnet() {
        let spec = NodeSpec {
            network: "br0",
            bridge: "br0",
            subnet: "10.1.0.0/16".parse().unwrap(),
            masquerade: true,
        };
        let tag = node_tag("br0");
        let nat = nat_spec(&spec, &tag);
        let wants = super::super::wants(&nat);
        assert_eq!(wants.len(), 1);
        assert_eq!(
            wants[0].describe(&nat),
            "ipMasq masquerade rule for 10.1.0.0/16 leaving 10.1.0.0/16"
        );
    }
}
