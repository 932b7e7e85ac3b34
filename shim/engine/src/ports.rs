//! Host ports of a Pod: checked free before anything of the Pod is created, against the other
//! running Pods of this instance (from their journals) and the host (by binding each port once).

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use podshim_cni::nat::{PortMapping, Protocol};

use crate::config::Config;
use crate::error::Error;
use crate::journal::{Journal, Resource};

/// One host port of the Pod and the field it comes from (for messages).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HostPort {
    /// e.g. `spec.containers[i].ports[j].hostPort`.
    pub field: String,
    pub mapping: PortMapping,
}

fn overlaps(a: &PortMapping, b: &PortMapping) -> bool {
    a.protocol == b.protocol
        && a.host_port == b.host_port
        && (a.host_ip.is_none() || b.host_ip.is_none() || a.host_ip == b.host_ip)
}

fn describe(m: &PortMapping) -> String {
    let proto = m.protocol.as_str().to_uppercase();
    match m.host_ip {
        Some(ip) => format!("{ip}:{}/{proto}", m.host_port),
        None => format!("{}/{proto}", m.host_port),
    }
}

/// Fails with the field of the first host port already taken: by a running Pod of this
/// instance, or by a socket on the host.
pub fn check(cfg: &Config, ports: &[HostPort]) -> Result<(), Error> {
    if ports.is_empty() {
        return Ok(());
    }
    let taken = taken_by_pods(cfg);
    for p in ports {
        if let Some((key, _)) = taken.iter().find(|(_, m)| overlaps(m, &p.mapping)) {
            return Err(Error::HostPort {
                field: p.field.clone(),
                reason: format!(
                    "{} is already used by pod {key} of this podshim",
                    describe(&p.mapping)
                ),
            });
        }
        bind_once(&p.mapping).map_err(|e| Error::HostPort {
            field: p.field.clone(),
            reason: match e.kind() {
                io::ErrorKind::AddrInUse => format!(
                    "{} is already bound by a process on this host",
                    describe(&p.mapping)
                ),
                io::ErrorKind::AddrNotAvailable => format!(
                    "{}: hostIP is not an address of this host",
                    describe(&p.mapping)
                ),
                _ => format!("cannot bind {}: {e}", describe(&p.mapping)),
            },
        })?;
    }
    Ok(())
}

/// Binds the port for a moment, as the kubelet's hostport manager used to hold it.
fn bind_once(m: &PortMapping) -> io::Result<()> {
    let addr = SocketAddr::from((m.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), m.host_port));
    match m.protocol {
        Protocol::Tcp => TcpListener::bind(addr).map(drop),
        Protocol::Udp => UdpSocket::bind(addr).map(drop),
    }
}

/// Host ports recorded by the live Pods of this instance: (pod key, mapping).
fn taken_by_pods(cfg: &Config) -> Vec<(String, PortMapping)> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(cfg.pods_dir()) else {
        return out;
    };
    for entry in entries.flatten() {
        let Ok(journal) = Journal::load(&entry.path().join("journal.json")) else {
            continue;
        };
        let live =
            journal.pod.owner_pid == std::process::id() || crate::gc::owner_alive(&journal.pod);
        if !live {
            continue;
        }
        let key = entry.file_name().to_string_lossy().into_owned();
        for r in &journal.resources {
            if let Resource::Nat { ports, .. } | Resource::CniChain { ports, .. } = r {
                out.extend(ports.iter().map(|m| (key.clone(), *m)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(port: u16, protocol: Protocol, ip: Option<[u8; 4]>) -> PortMapping {
        PortMapping {
            host_port: port,
            container_port: 80,
            protocol,
            host_ip: ip.map(Ipv4Addr::from),
        }
    }

    #[test]
    fn ports_overlap_on_protocol_port_and_address() {
        let any = m(8080, Protocol::Tcp, None);
        assert!(overlaps(
            &any,
            &m(8080, Protocol::Tcp, Some([127, 0, 0, 1]))
        ));
        assert!(!overlaps(&any, &m(8080, Protocol::Udp, None)));
        assert!(!overlaps(&any, &m(8081, Protocol::Tcp, None)));
        assert!(!overlaps(
            &m(8080, Protocol::Tcp, Some([127, 0, 0, 1])),
            &m(8080, Protocol::Tcp, Some([127, 0, 0, 2]))
        ));
        assert_eq!(describe(&any), "8080/TCP");
    }
}
