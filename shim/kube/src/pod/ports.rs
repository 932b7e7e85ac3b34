//! The host ports a Pod manifest asks for (`ports[].hostPort`), for the engine to check and
//! forward; and the node's hostname.

use podshim_cni::nat::{PortMapping, Protocol};
pub use podshim_engine::ports::{check, HostPort};

use crate::manifest::Pod;

/// The `hostPort`s of a Pod's containers (validated by Kubernetes' rules already); SCTP is an
/// error naming the field.
pub fn host_ports(pod: &Pod) -> Result<Vec<HostPort>, Vec<String>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, c) in pod.spec.containers.iter().enumerate() {
        for (j, p) in c.ports.iter().enumerate() {
            let Some(host_port) = p.host_port.filter(|p| *p > 0) else {
                continue;
            };
            let field = format!("spec.containers[{i}].ports[{j}]");
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                other => {
                    errors.push(format!(
                        "{field}.protocol: {other} with a hostPort is not supported by podshim yet"
                    ));
                    continue;
                }
            };
            let host_ip = match p.host_ip.as_deref().filter(|s| !s.is_empty()) {
                None | Some("0.0.0.0") => None,
                Some(s) => match s.parse() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        errors.push(format!(
                            "{field}.hostIP: {s}: only IPv4 host addresses are supported by podshim yet"
                        ));
                        continue;
                    }
                },
            };
            out.push(HostPort {
                field: format!("{field}.hostPort"),
                mapping: PortMapping {
                    host_port: host_port as u16,
                    container_port: p.container_port as u16,
                    protocol,
                    host_ip,
                },
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// This host's name (a hostNetwork Pod's hostname).
pub fn node_hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_owned())
}
