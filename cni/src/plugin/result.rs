//! CNI results: parsing any supported version (prevResult, a delegated plugin's output) and
//! writing the version the config asks for.
//!
//! Kept close to the wire: interfaces, IPs and routes are JSON objects, so fields of another
//! plugin in the chain survive unchanged. 0.3.x and 0.4.0 results carry `"version": "4"|"6"`
//! on each IP; 1.0.0 dropped it.

use serde_json::{json, Map, Value};

use crate::attach::{PodIp, Route};
use crate::plugin::config::{parse_cidr, parse_route};
use crate::CniError;

/// A result of any version, normalised to 1.x (no `version` on IPs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CniResult {
    pub interfaces: Vec<Map<String, Value>>,
    pub ips: Vec<Map<String, Value>>,
    pub routes: Vec<Value>,
    pub dns: Value,
}

fn decode_error(what: &str) -> CniError {
    CniError::Decode {
        what: "result",
        source: <serde_json::Error as serde::de::Error>::custom(what),
    }
}

fn objects(v: Option<&Value>, what: &str) -> Result<Vec<Map<String, Value>>, CniError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_object()
                    .cloned()
                    .ok_or_else(|| decode_error(&format!("{what}: expected objects")))
            })
            .collect(),
        Some(_) => Err(decode_error(&format!("{what}: expected an array"))),
    }
}

impl CniResult {
    /// Parses a result of any supported version.
    pub fn parse(v: &Value) -> Result<Self, CniError> {
        let obj = v
            .as_object()
            .ok_or_else(|| decode_error("expected an object"))?;
        let mut ips = objects(obj.get("ips"), "ips")?;
        for ip in &mut ips {
            ip.remove("version");
        }
        Ok(Self {
            interfaces: objects(obj.get("interfaces"), "interfaces")?,
            ips,
            routes: obj
                .get("routes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            dns: obj.get("dns").cloned().unwrap_or_else(|| json!({})),
        })
    }

    /// The result as `version` writes it.
    pub fn to_json(&self, version: &str) -> Value {
        let old = version.starts_with("0.");
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut ip = ip.clone();
                if old {
                    let v6 = ip
                        .get("address")
                        .and_then(Value::as_str)
                        .is_some_and(|a| a.contains(':'));
                    ip.insert("version".into(), json!(if v6 { "6" } else { "4" }));
                }
                Value::Object(ip)
            })
            .collect();
        let mut out = Map::new();
        out.insert("cniVersion".into(), json!(version));
        if !self.interfaces.is_empty() {
            out.insert("interfaces".into(), json!(self.interfaces));
        }
        if !ips.is_empty() {
            out.insert("ips".into(), Value::Array(ips));
        }
        if !self.routes.is_empty() {
            out.insert("routes".into(), Value::Array(self.routes.clone()));
        }
        out.insert("dns".into(), self.dns.clone());
        Value::Object(out)
    }

    /// Appends `other` (whose interface indexes count from 0) after this result's interfaces.
    pub fn append(&mut self, other: CniResult) {
        let offset = self.interfaces.len() as u64;
        self.interfaces.extend(other.interfaces);
        self.ips.extend(other.ips.into_iter().map(|mut ip| {
            if let Some(i) = ip.get("interface").and_then(Value::as_u64) {
                ip.insert("interface".into(), json!(i + offset));
            }
            ip
        }));
        self.routes.extend(other.routes);
        let empty = self.dns.as_object().is_none_or(Map::is_empty);
        if empty {
            self.dns = other.dns;
        }
    }

    /// The index of the interface `name` in namespace `sandbox`.
    pub fn interface_index(&self, name: &str, sandbox: &str) -> Option<usize> {
        self.interfaces.iter().position(|i| {
            i.get("name").and_then(Value::as_str) == Some(name)
                && i.get("sandbox").and_then(Value::as_str) == Some(sandbox)
        })
    }

    /// The IPv4 addresses of interface `index` (or of no interface in particular when the
    /// result names none, as IPAM results do).
    pub fn ipv4_of(&self, index: Option<usize>) -> Result<Vec<PodIp>, CniError> {
        let mut out = Vec::new();
        for ip in &self.ips {
            let on = ip.get("interface").and_then(Value::as_u64);
            if index.is_some() && on.is_some() && on != index.map(|i| i as u64) {
                continue;
            }
            let address = ip
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if address.contains(':') {
                continue;
            }
            let (addr, prefix_len) = parse_cidr(address)
                .ok_or_else(|| decode_error(&format!("ips: bad address {address:?}")))?;
            let gateway = match ip.get("gateway").and_then(Value::as_str) {
                Some(g) => Some(
                    g.parse()
                        .map_err(|_| decode_error(&format!("ips: bad gateway {g:?}")))?,
                ),
                None => None,
            };
            out.push(PodIp {
                ip: addr,
                prefix_len,
                gateway,
            });
        }
        Ok(out)
    }

    /// The IPv4 routes.
    pub fn ipv4_routes(&self) -> Result<Vec<Route>, CniError> {
        self.routes
            .iter()
            .filter(|r| {
                !r.get("dst")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .contains(':')
            })
            .map(|r| {
                let mut r = r.clone();
                // Fields of later specs are not ours to check.
                if let Some(o) = r.as_object_mut() {
                    o.retain(|k, _| k == "dst" || k == "gw");
                }
                parse_route("routes", r)
            })
            .collect()
    }
}

/// A route as results write it: `gw` left out when there is none.
pub fn route_json(route: &Route) -> Value {
    let mut r = json!({"dst": format!("{}/{}", route.dst, route.prefix_len)});
    if let Some(gw) = route.gw {
        r["gw"] = json!(gw.to_string());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_round_trip_and_old_ones_carry_ip_versions() {
        let v031 = json!({
            "cniVersion": "0.3.1",
            "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/n"}],
            "ips": [
                {"version": "4", "address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0},
                {"version": "6", "address": "fd00::2/64", "interface": 0}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
            "dns": {"nameservers": ["10.1.0.1"]}
        });
        let r = CniResult::parse(&v031).unwrap();
        assert!(r.ips.iter().all(|ip| !ip.contains_key("version")));
        assert_eq!(r.to_json("0.3.1"), v031);
        let v1 = r.to_json("1.0.0");
        assert_eq!(v1["cniVersion"], "1.0.0");
        assert!(v1["ips"][0].get("version").is_none());
        let ips = r.ipv4_of(Some(0)).unwrap();
        assert_eq!(ips.len(), 1);
        assert_eq!(ips[0].prefix_len, 24);
        assert_eq!(r.ipv4_routes().unwrap()[0].prefix_len, 0);
        assert_eq!(r.interface_index("eth0", "/n"), Some(0));
        assert_eq!(r.interface_index("eth0", "/other"), None);
    }

    #[test]
    fn append_shifts_interface_indexes_and_keeps_earlier_dns() {
        let mut prev = CniResult::parse(&json!({
            "interfaces": [{"name": "lo", "sandbox": "/n"}],
            "ips": [{"address": "127.0.0.1/8", "interface": 0}],
            "dns": {"nameservers": ["1.1.1.1"]}
        }))
        .unwrap();
        let ours = CniResult::parse(&json!({
            "interfaces": [{"name": "br"}, {"name": "veth"}, {"name": "eth0", "sandbox": "/n"}],
            "ips": [{"address": "10.1.0.2/24", "interface": 2}],
            "dns": {}
        }))
        .unwrap();
        prev.append(ours);
        assert_eq!(prev.interfaces.len(), 4);
        assert_eq!(prev.ips[1]["interface"], 3);
        assert_eq!(prev.dns["nameservers"][0], "1.1.1.1");
    }
}
