//! The network configuration on stdin, checked strictly: every problem names its field.
//!
//! Fields follow the reference `bridge` plugin and, for `ipam.type: host-local`, the reference
//! `host-local` plugin. An unknown field is CNI error 2 (its key and value in the message), a
//! wrong value is 7 naming the field; fields the reference knows but podshim does not do yet
//! are accepted only with their do-nothing value.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde_json::{Map, Value};

use crate::attach::{validate_ifname, BridgeSpec, Route};
use crate::ipam::Range;
use crate::nat::{Backend, PortMapping, Protocol};
use crate::subnet::network_of;
use crate::{CniError, Ipv4Net};

/// CNI versions this plugin speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// host-local's default `dataDir`.
pub(super) const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

/// The bridge plugin's configuration.
#[derive(Debug, Clone)]
pub struct NetConf {
    pub cni_version: String,
    pub name: String,
    pub bridge: BridgeSpec,
    pub is_default_gateway: bool,
    /// Masquerade the Pods' traffic leaving their subnet.
    pub ip_masq: bool,
    /// The `portMappings` capability (`runtimeConfig.portMappings`).
    pub port_mappings: Vec<PortMapping>,
    /// Where the NAT rules go (`ipMasqBackend` or `backend`); nftables when available, else
    /// iptables, when `None`.
    pub nat_backend: Option<Backend>,
    pub ipam: IpamConf,
    pub prev_result: Option<Value>,
    /// The `dns` of the result, as the reference plugin: from the config, not from IPAM.
    pub dns: Value,
    /// GC's `cni.dev/valid-attachments`: (container id, interface).
    pub valid_attachments: Option<Vec<(String, String)>>,
    /// The whole config as received, for a delegated IPAM plugin.
    pub raw: Value,
}

/// Where addresses come from.
#[derive(Debug, Clone)]
pub enum IpamConf {
    /// No `ipam` section: the interface gets no address (as with the reference plugin).
    None,
    /// `host-local`, served in-process.
    HostLocal(HostLocal),
    /// Any other type: the plugin of that name in `CNI_PATH`.
    Delegated { plugin: String },
}

/// host-local's configuration (one range set of one IPv4 range).
#[derive(Debug, Clone)]
pub struct HostLocal {
    pub subnet: Ipv4Net,
    pub range: Range,
    pub routes: Vec<Route>,
    /// `<dataDir>/<network name>`, as host-local lays it out.
    pub dir: PathBuf,
}

pub(super) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A JSON object whose fields are taken one by one; what is left over is unknown.
pub(super) struct Fields {
    pub(super) path: String,
    pub(super) map: Map<String, Value>,
}

impl Fields {
    pub(super) fn new(path: &str, value: Value) -> Result<Self, CniError> {
        match value {
            Value::Object(map) => Ok(Self {
                path: path.to_owned(),
                map,
            }),
            other => Err(invalid(path, format!("expected an object, got {other}"))),
        }
    }

    pub(super) fn name(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn take(&mut self, key: &str) -> Option<Value> {
        self.map.remove(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&mut self, key: &str) -> Result<Option<String>, CniError> {
        match self.take(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(invalid(
                self.name(key),
                format!("expected a string, got {other}"),
            )),
        }
    }

    fn bool(&mut self, key: &str) -> Result<bool, CniError> {
        match self.take(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(other) => Err(invalid(
                self.name(key),
                format!("expected true or false, got {other}"),
            )),
        }
    }

    pub(super) fn ip(&mut self, key: &str) -> Result<Option<Ipv4Addr>, CniError> {
        let field = self.name(key);
        self.string(key)?
            .map(|s| {
                s.parse()
                    .map_err(|_| invalid(field, format!("{s:?} is not an IPv4 address")))
            })
            .transpose()
    }

    /// Accepts a field the reference plugin has and podshim does not do yet only when it asks
    /// for nothing (false, 0, empty, null).
    pub(super) fn not_yet(&mut self, key: &str) -> Result<(), CniError> {
        match self.take(key) {
            None | Some(Value::Bool(false)) => Ok(()),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(()),
            Some(Value::Array(a)) if a.is_empty() => Ok(()),
            Some(Value::String(s)) if s.is_empty() => Ok(()),
            Some(value) => Err(CniError::UnsupportedField {
                field: self.name(key),
                value: format!("{value} (not supported by podshim-bridge yet)"),
            }),
        }
    }

    /// Fails on the first field nobody took.
    pub(super) fn finish(self) -> Result<(), CniError> {
        match self.map.into_iter().next() {
            None => Ok(()),
            Some((key, value)) => Err(CniError::UnsupportedField {
                field: if self.path.is_empty() {
                    key
                } else {
                    format!("{}.{key}", self.path)
                },
                value: value.to_string(),
            }),
        }
    }
}

/// Parses the config on stdin (after decoding: `raw` is its JSON value).
pub fn parse(raw: Value) -> Result<NetConf, CniError> {
    let mut f = Fields::new("", raw.clone())?;
    let cni_version = f
        .string("cniVersion")?
        .ok_or_else(|| invalid("cniVersion", "missing"))?;
    if !SUPPORTED_VERSIONS.contains(&cni_version.as_str()) {
        return Err(CniError::IncompatibleVersion {
            version: cni_version,
            supported: SUPPORTED_VERSIONS,
        });
    }
    let name = f
        .string("name")?
        .ok_or_else(|| invalid("name", "missing network name"))?;
    validate_network_name(&name)?;
    f.string("type")?
        .ok_or_else(|| invalid("type", "missing"))?;
    // Set by runtimes: conventions and capabilities; of runtimeConfig, portMappings and
    // ipRanges are acted on (a runtime passes only the capabilities a config declares).
    for key in ["args", "capabilities"] {
        f.take(key);
    }
    let runtime = f.take("runtimeConfig");
    let port_mappings = match &runtime {
        None => Vec::new(),
        Some(v) => parse_port_mappings(v.clone())?,
    };
    // As host-local: `runtimeConfig.ipRanges` gives the range sets (before `ipam.ranges`).
    let ip_ranges = runtime
        .as_ref()
        .and_then(|v| v.get("ipRanges"))
        .filter(|v| !v.is_null() && v.as_array().is_none_or(|a| !a.is_empty()))
        .cloned();
    let dns = match f.take("dns") {
        None => serde_json::json!({}),
        Some(v @ Value::Object(_)) => v,
        Some(other) => return Err(invalid("dns", format!("expected an object, got {other}"))),
    };
    let prev_result = f.take("prevResult");
    // libcni sends the list also as `cni.dev/attachments` (the name an early text of the
    // 1.1 spec used): the same list, read when the spec's name is missing.
    let legacy = f.take("cni.dev/attachments");
    let valid_attachments = f
        .take("cni.dev/valid-attachments")
        .map(|v| parse_valid_attachments("cni.dev/valid-attachments", v))
        .or_else(|| legacy.map(|v| parse_valid_attachments("cni.dev/attachments", v)))
        .transpose()?;

    let bridge_name = f.string("bridge")?.unwrap_or_else(|| "cni0".to_owned());
    validate_ifname("bridge", &bridge_name).map_err(|e| invalid("bridge", e.to_string()))?;
    let is_default_gateway = f.bool("isDefaultGateway")?;
    // The reference plugin: "isDefaultGateway implies isGateway".
    let is_gateway = f.bool("isGateway")? || is_default_gateway;
    let ip_masq = f.bool("ipMasq")?;
    let nat_backend = parse_backend(&mut f)?;
    let hairpin = f.bool("hairpinMode")?;
    let promisc = f.bool("promiscMode")?;
    let mtu = match f.take("mtu") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(0) => None,
            Some(m @ 68..=65535) => Some(m as u32),
            _ => {
                return Err(invalid(
                    "mtu",
                    format!("{v} is not an MTU (68 to 65535, or 0)"),
                ))
            }
        },
    };
    for key in [
        "forceAddress",
        "vlan",
        "vlanTrunk",
        "preserveDefaultVlan",
        "macspoofchk",
        "enabledad",
        "disableContainerInterface",
        "portIsolation",
    ] {
        f.not_yet(key)?;
    }
    let ipam = match f.take("ipam") {
        None => IpamConf::None,
        Some(v) => super::ipam_config::parse_ipam(v, &name, ip_ranges)?,
    };
    f.finish()?;
    Ok(NetConf {
        cni_version,
        name,
        bridge: BridgeSpec {
            name: bridge_name,
            mtu,
            is_gateway,
            hairpin,
            promisc,
            // As the reference plugin: a bridge is shared configuration, never deleted by DEL.
            keep: true,
        },
        is_default_gateway,
        ip_masq,
        port_mappings,
        nat_backend,
        ipam,
        prev_result,
        dns,
        valid_attachments,
        raw,
    })
}

/// The NAT backend a config asks for: `ipMasqBackend` as the reference bridge plugin names it,
/// or `backend` as the reference portmap plugin does (podshim-bridge does both plugins' jobs,
/// with one backend for both). Either is `"nftables"` or `"iptables"`.
fn parse_backend(f: &mut Fields) -> Result<Option<Backend>, CniError> {
    let mut chosen: Option<(&str, Backend)> = None;
    for key in ["ipMasqBackend", "backend"] {
        let Some(name) = f.string(key)? else {
            continue;
        };
        let backend = Backend::from_name(&name).ok_or_else(|| {
            let valid: Vec<String> = Backend::ALL
                .iter()
                .map(|b| format!("{:?}", b.name()))
                .collect();
            invalid(
                key,
                format!(
                    "{name:?} is not a backend; valid values: {}",
                    valid.join(", ")
                ),
            )
        })?;
        match chosen {
            Some((first, other)) if other != backend => {
                return Err(invalid(
                    key,
                    format!(
                        "{name:?} differs from {first} {:?}: one backend serves both",
                        other.name()
                    ),
                ))
            }
            _ => chosen = Some((key, backend)),
        }
    }
    Ok(chosen.map(|(_, b)| b))
}

/// The spec's network name: alphanumerics, `_`, `.` and `-`, starting alphanumeric. It also
/// names host-local's data directory, so it must never climb out of it.
fn validate_network_name(name: &str) -> Result<(), CniError> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "name",
            format!(
                "{name:?}: only letters, digits, '_', '.' and '-', starting with a letter or digit"
            ),
        ))
    }
}

/// `runtimeConfig`: its `portMappings` (as the reference portmap plugin reads them); other
/// capabilities' keys are ignored.
fn parse_port_mappings(v: Value) -> Result<Vec<PortMapping>, CniError> {
    let field = "runtimeConfig.portMappings";
    let items = match v.get("portMappings") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(invalid(field, "expected an array")),
    };
    let mut seen = std::collections::BTreeSet::new();
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let path = format!("{field}[{i}]");
            let mut f = Fields::new(&path, item)?;
            let mut port = |key: &str| -> Result<u16, CniError> {
                let name = f.name(key);
                match f.take(key) {
                    None => Err(invalid(name, "missing")),
                    Some(v) => v
                        .as_u64()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p > 0)
                        .ok_or_else(|| invalid(name, format!("{v} is not a port (1 to 65535)"))),
                }
            };
            let host_port = port("hostPort")?;
            let container_port = port("containerPort")?;
            let protocol = match f
                .string("protocol")?
                .as_deref()
                .map(str::to_ascii_lowercase)
            {
                None => Protocol::Tcp,
                Some(p) if p.is_empty() || p == "tcp" => Protocol::Tcp,
                Some(p) if p == "udp" => Protocol::Udp,
                Some(p) => {
                    return Err(invalid(
                        f.name("protocol"),
                        format!("{p:?}: supported values: \"tcp\", \"udp\""),
                    ))
                }
            };
            // The reference: an empty hostIP means every local address.
            let host_ip = match f.string("hostIP")?.filter(|s| !s.is_empty()) {
                None => None,
                Some(s) if s == "0.0.0.0" => None,
                Some(s) => Some(s.parse().map_err(|_| {
                    invalid(
                        f.name("hostIP"),
                        format!("{s:?} is not an IPv4 address (IPv6 is not supported)"),
                    )
                })?),
            };
            f.finish()?;
            if !seen.insert((host_port, protocol, host_ip)) {
                return Err(invalid(
                    path,
                    format!("hostPort {host_port}/{} mapped twice", protocol.as_str()),
                ));
            }
            Ok(PortMapping {
                host_port,
                container_port,
                protocol,
                host_ip,
            })
        })
        .collect()
}

fn parse_valid_attachments(field: &str, v: Value) -> Result<Vec<(String, String)>, CniError> {
    let Value::Array(items) = v else {
        return Err(invalid(field, "expected an array"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let mut f = Fields::new(&format!("{field}[{i}]"), item)?;
            let id = f.string("containerID")?;
            let ifname = f.string("ifname")?;
            match (id, ifname) {
                (Some(id), Some(ifname)) => Ok((id, ifname)),
                _ => Err(invalid(
                    format!("{field}[{i}]"),
                    "needs containerID and ifname",
                )),
            }
        })
        .collect()
}

/// `{"dst": "10.1.0.0/16", "gw": "10.0.0.1"}`; `gw` optional.
pub fn parse_route(path: &str, v: Value) -> Result<Route, CniError> {
    let mut f = Fields::new(path, v)?;
    let field = f.name("dst");
    let dst = f.string("dst")?.ok_or_else(|| invalid(&field, "missing"))?;
    let (addr, prefix_len) =
        parse_cidr(&dst).ok_or_else(|| invalid(&field, format!("{dst:?} is not an IPv4 CIDR")))?;
    let gw = f.ip("gw")?;
    // Fields of newer specs the kernel route does not need from us.
    for key in ["mtu", "advmss", "priority", "table", "scope"] {
        f.take(key);
    }
    f.finish()?;
    Ok(Route {
        dst: network_of(addr, prefix_len),
        prefix_len,
        gw,
    })
}

/// `a.b.c.d/n` with any prefix length, host bits allowed (an interface address).
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (addr, prefix) = s.split_once('/')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    Some((addr, prefix))
}

#[cfg(test)]
mod tests;
