//! `podshim check`: does a running Pod's network still look as it was set up?
//!
//! A Pod on a CNI network configuration (`--cni-conf`) is checked as a runtime does it: CNI
//! CHECK through the list recorded in its journal, with the ADD result cached next to it as
//! `prevResult` ([`podshim_cni::chain::NetworkList::check`]). A Pod on podshim's built-in
//! network is compared in-process ([`podshim_cni::check::verify`]): bridge, host veth on it,
//! `eth0` in the Pod's namespace with its address and default route, and its IPAM lease.
//! Read-only either way.

use std::net::Ipv4Addr;
use std::path::Path;

use podshim_cni::check::{verify, Expected};
use podshim_cni::{CniError, PodIp, Route};

use crate::chain;
use crate::journal::{Journal, Resource};

/// What was checked, when it passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// CHECK through the CNI network configuration list of this name.
    Chain { network: String },
    /// The list says `disableCheck`: nothing ran.
    CheckDisabled { network: String },
    /// The built-in bridge network.
    BuiltIn,
    /// A `hostNetwork` Pod: it has no network of its own to check.
    HostNetwork,
}

/// The network of the Pod whose journal is at `journal_path` (a running Pod's). `pod_ip` is the
/// address the Pod was given (its status), `host_network` whether it uses the host's network.
/// The error is the reason, as the plugin (or the in-process check) put it.
pub fn check(
    journal_path: &Path,
    pod_ip: Option<Ipv4Addr>,
    host_network: bool,
) -> Result<Checked, String> {
    let journal = Journal::load(journal_path).map_err(|e| chain(&e))?;
    let netns = journal.netns_pin();
    for resource in &journal.resources {
        match resource {
            Resource::CniChain { result, .. } => {
                let (list, rt) = resource.cni_chain()?;
                let prev = resource.cached_result().ok_or_else(|| {
                    format!(
                        "no cached ADD result ({}): the network is not set up yet",
                        result.display()
                    )
                })?;
                list.check(&rt, Some(&prev)).map_err(|e| message(&e))?;
                return Ok(if list.disable_check {
                    Checked::CheckDisabled { network: list.name }
                } else {
                    Checked::Chain { network: list.name }
                });
            }
            Resource::Network {
                bridge,
                subnet,
                ipam_dir,
                attachment_id,
                host_veth,
                ..
            } => {
                let subnet: podshim_cni::Ipv4Net = subnet
                    .parse()
                    .map_err(|_| format!("invalid subnet {subnet:?} in the journal"))?;
                let netns = netns
                    .as_deref()
                    .ok_or("the journal records no network namespace")?;
                let ipam =
                    podshim_cni::ipam::Ipam::open(ipam_dir, subnet).map_err(|e| message(&e))?;
                // The address the Pod was told; else the one leased to it.
                let ip = match pod_ip {
                    Some(ip) => ip,
                    None => ipam
                        .leases()
                        .map_err(|e| message(&e))?
                        .into_iter()
                        .find(|(_, id)| id == attachment_id)
                        .map(|(ip, _)| ip)
                        .ok_or_else(|| {
                            format!(
                                "check failed: no address is leased to {attachment_id} in {}",
                                ipam_dir.display()
                            )
                        })?,
                };
                let ips = [PodIp {
                    ip,
                    prefix_len: subnet.prefix_len(),
                    gateway: Some(subnet.gateway()),
                }];
                let routes = [Route {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0,
                    gw: None,
                }];
                verify(&Expected {
                    bridge,
                    netns,
                    host_veth,
                    ifname: "eth0",
                    mac: None,
                    ips: &ips,
                    routes: &routes,
                    lease: Some((&ipam, attachment_id, "eth0")),
                })
                .map_err(|e| message(&e))?;
                return Ok(Checked::BuiltIn);
            }
            _ => {}
        }
    }
    if host_network {
        Ok(Checked::HostNetwork)
    } else {
        Err("the journal records no network yet (the Pod is being set up)".into())
    }
}

/// A CNI error as one line: a plugin's message with its details.
fn message(e: &CniError) -> String {
    match e {
        CniError::Delegated {
            plugin,
            msg,
            details,
            ..
        } if !details.is_empty() => format!("plugin {plugin}: {msg}: {details}"),
        other => chain(other),
    }
}
