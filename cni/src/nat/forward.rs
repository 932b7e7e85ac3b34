//! Forwarding through a host firewall that drops it: the node's `filter FORWARD` rules.
//!
//! Docker's daemon sets the iptables `FORWARD` policy to DROP (when it turns `ip_forward` on)
//! and loads `br_netfilter`, which sends even frames bridged between two ports of one bridge
//! through that chain. Pods then reach neither each other nor other networks unless a runtime
//! accepts their traffic, as the reference `firewall` plugin and netavark do. podshim's rules,
//! scoped to its bridge and subnet, live in a chain of the network's own in the `filter` table
//! ([`chain`]: `PODSHIM-FWD-<network>`), jumped to from the top of `FORWARD`:
//!
//! - `-s SUBNET -i BRIDGE -j ACCEPT`: what Pods send, to each other (bridged, with
//!   br_netfilter) or beyond;
//! - `-d SUBNET -o BRIDGE --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT`: replies to it, and
//!   connections to a host port forwarded to a Pod (DNAT'ed in `PREROUTING`).
//!
//! They carry the network's node tag. A chain per network lets a Pod start see whether they are
//! in place over nfnetlink (the chain's rule count, `FORWARD`'s jumps) without running
//! `iptables-save`: iptables-nft keeps a comment where nfnetlink does not show it. These are
//! iptables rules (through
//! `iptables-restore`, under the same lock as the `nat` rules) whatever the NAT backend: that is
//! where Docker's policy is, and an accept in a table of our own would not override a drop in
//! another (nftables runs every base chain of a hook). Without the iptables tools there is no
//! such policy to meet and nothing is done.

use super::iptables::{lock, run, Saved};
use super::Backend;
use crate::{host_veth_name, CniError, Ipv4Net};

/// The longest iptables chain name (XT_EXTENSION_MAXNAMELEN without its NUL).
const MAX_CHAIN: usize = 28;

/// The forward chain of `network`: `PODSHIM-FWD-<network>`, or with a hash of the name when
/// that would be too long for a chain name.
pub fn chain(network: &str) -> String {
    let plain = format!("PODSHIM-FWD-{network}");
    if plain.len() <= MAX_CHAIN && !network.starts_with('-') {
        plain
    } else {
        format!("PODSHIM-FWD-{}", host_veth_name(network))
    }
}

/// The rules of one network, as `iptables-save` prints them (after `-A CHAIN `).
fn rules(tag: &str, bridge: &str, subnet: Ipv4Net) -> [String; 2] {
    [
        format!("-s {subnet} -i {bridge} -m comment --comment \"{tag}\" -j ACCEPT"),
        format!(
            "-d {subnet} -o {bridge} -m comment --comment \"{tag}\" -m conntrack \
             --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT"
        ),
    ]
}

fn save() -> Result<Saved, CniError> {
    run("iptables-save", "list rules", &["-t", "filter"], "").map(|out| Saved::parse(&out))
}

fn restore(op: &'static str, script: &str) -> Result<(), CniError> {
    run("iptables-restore", op, &["--noflush", "-w"], script).map(|_| ())
}

/// Whether the rules of `network` (and the jump to them) are all there, as cheaply as can be:
/// over nfnetlink when iptables keeps its `filter` table in nf_tables (iptables-nft) and the
/// legacy `filter` table is not loaded, else from `iptables-save`. `None`: no iptables here.
fn present(network: &str, bridge: &str, subnet: Ipv4Net) -> Result<Option<bool>, CniError> {
    if Backend::Iptables.unavailable().is_some() {
        return Ok(None);
    }
    let chain = chain(network);
    if !legacy_filter_loaded() {
        if let (Ok(count), Ok(jumps)) = (
            crate::nft_dump::count_in("filter", &chain),
            crate::nft_dump::jumps_in("filter", "FORWARD"),
        ) {
            return Ok(Some(count == 2 && jumps.contains(&chain)));
        }
    }
    let saved = save()?;
    let tag = super::node_tag(network);
    Ok(Some(
        missing_script(&saved, &chain, &tag, bridge, subnet).is_none(),
    ))
}

fn legacy_filter_loaded() -> bool {
    std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|tables| tables.lines().any(|t| t == "filter"))
}

fn jump(l: &super::iptables::Line, chain: &str) -> bool {
    l.chain == "FORWARD" && l.words == ["-j", chain]
}

/// The transaction that makes `chain` hold exactly [`rules`] and `FORWARD` jump to it (the
/// chain made when missing); `None` when that is so already.
fn missing_script(
    saved: &Saved,
    chain: &str,
    tag: &str,
    bridge: &str,
    subnet: Ipv4Net,
) -> Option<String> {
    let want = rules(tag, bridge, subnet);
    let have: Vec<_> = saved.lines.iter().filter(|l| l.chain == chain).collect();
    let has_jump = saved.lines.iter().any(|l| jump(l, chain));
    let same = have.len() == want.len()
        && have
            .iter()
            .zip(&want)
            .all(|(l, w)| super::words(&l.spec) == super::words(w));
    if same && has_jump {
        return None;
    }
    let mut s = String::from("*filter\n");
    // Declaring a chain in a --noflush restore flushes it: what was there goes, in one step.
    s.push_str(&format!(":{chain} - [0:0]\n"));
    if !has_jump {
        s.push_str(&format!("-I FORWARD 1 -j {chain}\n"));
    }
    for w in &want {
        s.push_str(&format!("-A {chain} {w}\n"));
    }
    s.push_str("COMMIT\n");
    Some(s)
}

/// Makes sure the forward rules of `network` (its bridge and subnet) are in place.
pub fn ensure(network: &str, bridge: &str, subnet: Ipv4Net) -> Result<(), CniError> {
    if present(network, bridge, subnet)? != Some(false) {
        return Ok(());
    }
    let _lock = lock()?;
    let tag = super::node_tag(network);
    match missing_script(&save()?, &chain(network), &tag, bridge, subnet) {
        Some(script) => restore("add forward rules", &script),
        None => Ok(()),
    }
}

/// The transaction that removes `chain` and every jump to it; `None` when there is none.
fn removal_script(saved: &Saved, chain: &str) -> Option<String> {
    if !saved.chains.contains(chain) {
        return None;
    }
    let mut s = String::from("*filter\n");
    for l in saved
        .lines
        .iter()
        .filter(|l| l.words.iter().any(|w| w == chain) && l.chain != chain)
    {
        s.push_str(&format!("-D {} {}\n", l.chain, l.spec));
    }
    s.push_str(&format!("-F {chain}\n-X {chain}\nCOMMIT\n"));
    Some(s)
}

/// Removes the forward rules of `network`: its chain and the jumps to it; idempotent.
pub fn remove(network: &str) -> Result<(), CniError> {
    if Backend::Iptables.unavailable().is_some() {
        return Ok(());
    }
    let chain = chain(network);
    if !legacy_filter_loaded() {
        if let (Ok(0), Ok(jumps)) = (
            crate::nft_dump::count_in("filter", &chain),
            crate::nft_dump::jumps_in("filter", "FORWARD"),
        ) {
            if !jumps.contains(&chain) {
                // Maybe an empty chain, which nfnetlink's rule dump cannot tell from none.
                let saved = save()?;
                if !saved.chains.contains(&chain) {
                    return Ok(());
                }
            }
        }
    }
    let _lock = lock()?;
    match removal_script(&save()?, &chain) {
        Some(script) => restore("delete forward rules", &script),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet() -> Ipv4Net {
        "10.66.0.0/16".parse().unwrap()
    }

    /// `iptables-save -t filter` as Docker 20.10 and podshim leave it.
    fn docker_and_ours() -> Saved {
        Saved::parse(
            "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n\
             :DOCKER - [0:0]\n:DOCKER-USER - [0:0]\n:PODSHIM-FWD-podshim0 - [0:0]\n\
             -A FORWARD -j PODSHIM-FWD-podshim0\n\
             -A FORWARD -j DOCKER-USER\n\
             -A FORWARD -o docker0 -j DOCKER\n\
             -A PODSHIM-FWD-podshim0 -s 10.66.0.0/16 -i podshim0 -m comment --comment \"podshim0/node\" -j ACCEPT\n\
             -A PODSHIM-FWD-podshim0 -d 10.66.0.0/16 -o podshim0 -m comment --comment \"podshim0/node\" -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n\
             -A DOCKER-USER -j RETURN\nCOMMIT\n",
        )
    }

    #[test]
    fn chains_are_named_after_the_network_within_iptables_limits() {
        assert_eq!(chain("podshim0"), "PODSHIM-FWD-podshim0");
        assert_eq!(chain("abcdefghijklmno").len(), 27);
        let long = chain(&"n".repeat(40));
        assert!(
            long.len() <= MAX_CHAIN && long.starts_with("PODSHIM-FWD-veth"),
            "{long}"
        );
    }

    #[test]
    fn rules_in_place_need_nothing_and_missing_ones_replace_the_chain() {
        let saved = docker_and_ours();
        let tag = "podshim0/node";
        let ch = chain("podshim0");
        assert_eq!(missing_script(&saved, &ch, tag, "podshim0", subnet()), None);
        // Another subnet for the same network: the chain is made again, in one transaction.
        let other: Ipv4Net = "10.9.0.0/24".parse().unwrap();
        assert_eq!(
            missing_script(&saved, &ch, tag, "podshim0", other).unwrap(),
            "*filter\n:PODSHIM-FWD-podshim0 - [0:0]\n\
             -A PODSHIM-FWD-podshim0 -s 10.9.0.0/24 -i podshim0 -m comment --comment \"podshim0/node\" -j ACCEPT\n\
             -A PODSHIM-FWD-podshim0 -d 10.9.0.0/24 -o podshim0 -m comment --comment \"podshim0/node\" -m conntrack --ctstate RELATED,ESTABLISHED,DNAT -j ACCEPT\n\
             COMMIT\n"
        );
        // A fresh table: the jump too.
        let fresh = Saved::parse("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\nCOMMIT\n");
        let s = missing_script(&fresh, "PODSHIM-FWD-br9", "br9/node", "br9", other).unwrap();
        assert!(
            s.starts_with("*filter\n:PODSHIM-FWD-br9 - [0:0]\n-I FORWARD 1 -j PODSHIM-FWD-br9\n"),
            "{s}"
        );
    }

    #[test]
    fn removal_takes_the_chain_and_its_jumps_only() {
        let s = removal_script(&docker_and_ours(), "PODSHIM-FWD-podshim0").unwrap();
        assert_eq!(
            s,
            "*filter\n-D FORWARD -j PODSHIM-FWD-podshim0\n-F PODSHIM-FWD-podshim0\n-X PODSHIM-FWD-podshim0\nCOMMIT\n"
        );
        assert_eq!(removal_script(&docker_and_ours(), "PODSHIM-FWD-br9"), None);
    }
}
