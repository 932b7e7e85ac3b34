//! Host ports (DNAT) and outbound masquerade for Pods, in one nftables table of our own.
//!
//! Every rule lives in `table ip podshim` and carries a comment, the attachment's [`tag`]
//! (`network/container id/interface`), so DEL removes exactly its rules and GC removes those of
//! attachments no longer valid. Rules are changed with the `nft` command, each change one
//! atomic transaction. As the reference `portmap` plugin does: DNAT in prerouting (traffic from
//! other hosts) and output (the host itself) for destinations of type `local` (or the mapping's
//! `hostIP` only), masquerade of traffic from the host's loopback to the Pod with
//! `route_localnet` on the bridge so `127.0.0.1:hostPort` works, and hairpin masquerade. As
//! the reference `bridge` plugin's `ipMasq`: Pod traffic leaving the Pod subnet (multicast
//! excepted) is masqueraded. A new attachment's DNAT rules are inserted first, so a stale rule
//! for the same port can never shadow a live one.

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{host_veth_name, CniError, Ipv4Net};

/// The nftables table (family `ip`) holding every podshim NAT rule.
pub const TABLE: &str = "podshim";

/// nft's limit on a rule comment.
const MAX_COMMENT: usize = 127;

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The name nft (and `/etc/protocols`) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        }
    }
}

/// One host port forwarded to the Pod: the `portMappings` capability's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only traffic to this host address is forwarded; any local address when `None`.
    pub host_ip: Option<Ipv4Addr>,
}

/// What [`apply`] sets up for one attachment.
#[derive(Debug, Clone)]
pub struct NatSpec<'a> {
    /// From [`tag`]: names every rule of the attachment.
    pub tag: &'a str,
    pub pod_ip: Ipv4Addr,
    /// The Pod network: traffic to it is not masqueraded.
    pub subnet: Ipv4Net,
    /// Masquerade the Pod's traffic leaving `subnet` (`ipMasq`).
    pub masquerade: bool,
    pub ports: &'a [PortMapping],
    /// The host interface towards the Pod (the bridge): gets `route_localnet` when ports are
    /// mapped, so that `127.0.0.1:hostPort` reaches the Pod.
    pub bridge: &'a str,
}

/// The tag of an attachment's rules: `network/container id/interface`, or the network and a
/// hash of the rest when that would not fit an nft comment or has other characters.
pub fn tag(network: &str, id: &str, ifname: &str) -> String {
    let plain = format!("{network}/{id}/{ifname}");
    let safe = |s: &str| {
        s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-:".contains(c))
    };
    if plain.len() <= MAX_COMMENT && safe(network) && safe(id) && safe(ifname) {
        plain
    } else {
        let net: String = network
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
            .take(64)
            .collect();
        format!("{net}/{}", host_veth_name(&format!("{id}/{ifname}")))
    }
}

/// The network part of a tag, for GC.
fn network_of(tag: &str) -> &str {
    tag.split('/').next().unwrap_or_default()
}

fn nft_err(op: &'static str) -> impl FnOnce(io::Error) -> CniError {
    move |source| CniError::Nft {
        op,
        detail: String::new(),
        source,
    }
}

/// Runs `nft` with `args`, `script` on its stdin; its stderr becomes the error's detail.
fn nft(op: &'static str, args: &[&str], script: &str) -> Result<String, CniError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let hint = if e.kind() == io::ErrorKind::NotFound {
                io::Error::new(e.kind(), "the nft command is missing (install nftables)")
            } else {
                e
            };
            nft_err(op)(hint)
        })?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().map_err(nft_err(op))?;
    written.map_err(nft_err(op))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(CniError::Nft {
            op,
            detail: stderr.trim().replace('\n', " "),
            source: io::Error::other(format!("nft exited with {}", out.status)),
        })
    }
}

/// The table and its three base chains; `add` leaves existing ones as they are.
fn skeleton() -> String {
    format!(
        "add table ip {TABLE}\n\
         add chain ip {TABLE} prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}\n\
         add chain ip {TABLE} output {{ type nat hook output priority -100; policy accept; }}\n\
         add chain ip {TABLE} postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}\n"
    )
}

/// The nft commands that add the rules of `spec` (after [`skeleton`]).
fn rules(spec: &NatSpec<'_>) -> String {
    let mut s = String::new();
    let c = format!("comment \"{}\"", spec.tag);
    let pod = spec.pod_ip;
    for p in spec.ports {
        let proto = p.protocol.as_str();
        let to = match p.host_ip {
            Some(ip) => format!("ip daddr {ip}"),
            None => "fib daddr type local".to_owned(),
        };
        let dnat = format!(
            "{to} {proto} dport {} dnat to {pod}:{} {c}",
            p.host_port, p.container_port
        );
        // Inserted at the top: the newest attachment of a port wins over a stale rule.
        s.push_str(&format!("insert rule ip {TABLE} prerouting {dnat}\n"));
        s.push_str(&format!("insert rule ip {TABLE} output {dnat}\n"));
        // From the host's loopback (needs route_localnet) and back into the Pod (hairpin):
        // the Pod must answer through the host, so the source becomes the host's.
        let back = format!(
            "ip daddr {pod} {proto} dport {} ct status dnat",
            p.container_port
        );
        s.push_str(&format!(
            "add rule ip {TABLE} postrouting ip saddr 127.0.0.0/8 {back} masquerade {c}\n"
        ));
        s.push_str(&format!(
            "add rule ip {TABLE} postrouting ip saddr {pod} {back} masquerade {c}\n"
        ));
    }
    if spec.masquerade {
        s.push_str(&format!(
            "add rule ip {TABLE} postrouting ip saddr {pod} ip daddr != {} ip daddr != 224.0.0.0/4 masquerade {c}\n",
            spec.subnet
        ));
    }
    s
}

/// Sets up the rules of one attachment (replacing any it had), and the kernel settings they
/// need: `ip_forward` (as the reference bridge plugin does for a gateway) and `route_localnet`
/// on the bridge when ports are mapped (as the reference portmap plugin does). Nothing is
/// changed when `spec` asks for neither ports nor masquerade.
pub fn apply(spec: &NatSpec<'_>) -> Result<(), CniError> {
    if spec.ports.is_empty() && !spec.masquerade {
        return Ok(());
    }
    sysctl("/proc/sys/net/ipv4/ip_forward")?;
    if !spec.ports.is_empty() {
        sysctl(&format!(
            "/proc/sys/net/ipv4/conf/{}/route_localnet",
            spec.bridge
        ))?;
    }
    let mut script = skeleton();
    script.push_str(&deletions(&listed()?, |t| t == spec.tag));
    script.push_str(&rules(spec));
    with_retry(|| nft("add rules", &["-f", "-"], &script))?;
    tracing::debug!(tag = spec.tag, ports = spec.ports.len(), "nat rules added");
    Ok(())
}

/// Writes `1` to a sysctl unless it already is.
fn sysctl(path: &str) -> Result<(), CniError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|source| CniError::Sysctl {
        path: PathBuf::from(path),
        source,
    })
}

/// One rule of our table: chain, handle and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub chain: String,
    pub handle: u64,
    pub tag: String,
}

/// Every tagged rule in our table (none when the table does not exist): over nfnetlink, or
/// from `nft -j` when that fails.
pub fn listed() -> Result<Vec<Rule>, CniError> {
    match crate::nft_dump::rules(TABLE) {
        Ok(rules) => Ok(rules),
        Err(e) => {
            tracing::debug!(error = %e, "nfnetlink rule dump failed, asking nft");
            listed_by_nft()
        }
    }
}

/// [`listed`] as `nft -j list table` reports it.
pub fn listed_by_nft() -> Result<Vec<Rule>, CniError> {
    let out = match nft("list rules", &["-j", "list", "table", "ip", TABLE], "") {
        Ok(out) => out,
        // No table: nothing of ours.
        Err(CniError::Nft { ref detail, .. }) if detail.contains("No such file or directory") => {
            return Ok(Vec::new())
        }
        Err(e) => return Err(e),
    };
    let v: Value = serde_json::from_str(&out).map_err(|source| CniError::Decode {
        what: "nft -j output",
        source,
    })?;
    let items = v["nftables"].as_array().cloned().unwrap_or_default();
    Ok(items
        .iter()
        .filter_map(|item| {
            let r = item.get("rule")?;
            Some(Rule {
                chain: r["chain"].as_str()?.to_owned(),
                handle: r["handle"].as_u64()?,
                tag: r["comment"].as_str()?.to_owned(),
            })
        })
        .collect())
}

fn deletions(rules: &[Rule], pick: impl Fn(&str) -> bool) -> String {
    rules
        .iter()
        .filter(|r| pick(&r.tag))
        .map(|r| format!("delete rule ip {TABLE} {} handle {}\n", r.chain, r.handle))
        .collect()
}

/// A concurrent change between listing and deleting makes the transaction fail as a whole
/// (a handle gone): list again and retry.
fn with_retry<T>(mut f: impl FnMut() -> Result<T, CniError>) -> Result<T, CniError> {
    let mut tries = 0;
    loop {
        match f() {
            Err(CniError::Nft { ref detail, .. })
                if tries < 3 && detail.contains("No such file or directory") =>
            {
                tries += 1
            }
            other => return other,
        }
    }
}

fn delete_where(pick: impl Fn(&str) -> bool) -> Result<Vec<String>, CniError> {
    with_retry(|| {
        let rules = listed()?;
        let script = deletions(&rules, &pick);
        if script.is_empty() {
            return Ok(Vec::new());
        }
        nft("delete rules", &["-f", "-"], &script)?;
        let tags: BTreeSet<String> = rules
            .into_iter()
            .filter(|r| pick(&r.tag))
            .map(|r| r.tag)
            .collect();
        Ok(tags.into_iter().collect())
    })
}

/// Removes every rule of the attachment `tag`; idempotent (none left is success). The table
/// and its empty base chains stay, as the reference portmap plugin leaves its chains.
pub fn remove(tag: &str) -> Result<(), CniError> {
    delete_where(|t| t == tag).map(|_| ())
}

/// Removes the rules of every attachment of `network` whose tag is not in `keep`; returns
/// the tags removed.
pub fn collect(network: &str, keep: &BTreeSet<String>) -> Result<Vec<String>, CniError> {
    delete_where(|t| network_of(t) == network && !keep.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_readable_short_and_scoped_by_network() {
        assert_eq!(tag("net", "ctr-1", "eth0"), "net/ctr-1/eth0");
        let long = tag("net", &"a".repeat(200), "eth0");
        assert!(
            long.len() <= MAX_COMMENT && long.starts_with("net/veth"),
            "{long}"
        );
        assert!(tag("n\"et", "c", "eth0").starts_with("net/veth"));
        assert_eq!(network_of(&tag("pst0", "c", "eth0")), "pst0");
    }

    #[test]
    fn rules_dnat_local_or_host_ip_and_masquerade() {
        let ports = [
            PortMapping {
                host_port: 18080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
            },
            PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp,
                host_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
            },
        ];
        let spec = NatSpec {
            tag: "n/c/eth0",
            pod_ip: Ipv4Addr::new(10, 1, 0, 2),
            subnet: "10.1.0.0/16".parse().unwrap(),
            masquerade: true,
            ports: &ports,
            bridge: "br0",
        };
        let r = rules(&spec);
        assert!(r.contains("insert rule ip podshim prerouting fib daddr type local tcp dport 18080 dnat to 10.1.0.2:80 comment \"n/c/eth0\""), "{r}");
        assert!(r.contains("insert rule ip podshim output ip daddr 192.0.2.1 udp dport 5353 dnat to 10.1.0.2:53"), "{r}");
        assert!(r.contains("postrouting ip saddr 10.1.0.2 ip daddr != 10.1.0.0/16 ip daddr != 224.0.0.0/4 masquerade"), "{r}");
        assert_eq!(r.lines().count(), 9);
        let listed = vec![
            Rule {
                chain: "output".into(),
                handle: 7,
                tag: "n/c/eth0".into(),
            },
            Rule {
                chain: "output".into(),
                handle: 8,
                tag: "n/d/eth0".into(),
            },
        ];
        assert_eq!(
            deletions(&listed, |t| t == "n/c/eth0"),
            "delete rule ip podshim output handle 7\n"
        );
    }
}
