//! The facts about this host that the downward API exposes: the node name (the host name, as the
//! kubelet derives it), the host IP and the node's allocatable CPU and memory (used for
//! `resourceFieldRef` limits a container does not set: kubelet `MergeContainerResourceLimits`).

use std::fs;
use std::net::{Ipv4Addr, UdpSocket};

/// This host as a Kubernetes node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `spec.nodeName`: the host name, lower-cased (kubelet `GetHostname`).
    pub name: String,
    /// `status.hostIP`.
    pub host_ip: String,
    /// Allocatable CPU in thousandths of a CPU.
    pub milli_cpus: i64,
    /// Allocatable memory in bytes.
    pub memory: i64,
}

impl Node {
    /// Ask the host.
    pub fn detect() -> Node {
        let name = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
            .trim()
            .to_lowercase();
        Node {
            name,
            host_ip: host_ip().map_or_else(|| "127.0.0.1".into(), |ip| ip.to_string()),
            milli_cpus: cpu_count() * 1000,
            memory: crate::pod::resources::node_memory(),
        }
    }
}

/// The host's primary address: the source address of the default route (a UDP "connect" only
/// consults the routing table, nothing is sent), else the first global address of the host.
fn host_ip() -> Option<Ipv4Addr> {
    let routed = UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .ok()
        .and_then(|a| match a.ip() {
            std::net::IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
            _ => None,
        });
    routed.or_else(|| {
        first_local_address(&fs::read_to_string("/proc/net/fib_trie").unwrap_or_default())
    })
}

/// The first non-loopback `/32 host LOCAL` address in `/proc/net/fib_trie`.
fn first_local_address(trie: &str) -> Option<Ipv4Addr> {
    let mut last: Option<Ipv4Addr> = None;
    for line in trie.lines() {
        let t = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(ip) = t.parse::<Ipv4Addr>() {
            last = Some(ip);
        } else if t == "/32 host LOCAL" {
            if let Some(ip) = last.filter(|ip| !ip.is_loopback()) {
                return Some(ip);
            }
        }
    }
    None
}

/// Online CPUs (`/sys/devices/system/cpu/online`, e.g. `0-3,6`), as cAdvisor counts them.
fn cpu_count() -> i64 {
    let online = fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let n: i64 = online
        .trim()
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| match r.split_once('-') {
            Some((a, b)) => b.parse::<i64>().unwrap_or(0) - a.parse::<i64>().unwrap_or(0) + 1,
            None => 1,
        })
        .sum();
    if n > 0 {
        n
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fib_trie_local_address() {
        let trie = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 0.0.0.0\n        /0 universe UNICAST\n     +-- 127.0.0.0/8 2 0 2\n        |-- 127.0.0.1\n           /32 host LOCAL\n     |-- 10.0.2.15\n        /32 host LOCAL\n";
        assert_eq!(first_local_address(trie), Some(Ipv4Addr::new(10, 0, 2, 15)));
        assert_eq!(first_local_address(""), None);
    }

    #[test]
    fn detects_something() {
        let n = Node::detect();
        assert!(n.milli_cpus >= 1000);
        assert!(n.host_ip.parse::<Ipv4Addr>().is_ok());
    }
}
