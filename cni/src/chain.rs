//! Running a CNI network configuration (`.conf` or `.conflist`) as a container runtime does
//! (the spec's "Execution of Network Configurations", as `libcni` does it): ADD runs the
//! plugins in order, each getting the previous result as `prevResult`; DEL runs them in
//! reverse order, every one of them even when an earlier one fails.
//!
//! Each plugin gets the list's `name` and `cniVersion`, and `runtimeConfig` with the
//! capabilities it declares (`"capabilities": {"portMappings": true}`) that the runtime has.

use std::path::Path;

use serde_json::{json, Map, Value};

use crate::attach::PodIp;
use crate::nat::PortMapping;
use crate::plugin::delegate;
use crate::plugin::result::CniResult;
use crate::plugin::Env;
use crate::CniError;

/// A network configuration list; a single `.conf` is a list of one plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkList {
    pub cni_version: String,
    pub name: String,
    /// The plugins' configs, as written (a `.conf`'s whole object).
    pub plugins: Vec<Map<String, Value>>,
}

/// What the runtime tells every plugin about the attachment.
#[derive(Debug, Clone)]
pub struct Runtime<'a> {
    pub container_id: &'a str,
    pub netns: &'a Path,
    pub ifname: &'a str,
    /// `CNI_PATH`: where the plugins are found.
    pub cni_path: &'a str,
    /// `CNI_ARGS` (`K=V;K=V`), when any.
    pub args: Option<&'a str>,
    /// The `portMappings` capability's value.
    pub port_mappings: &'a [PortMapping],
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> CniError {
    CniError::InvalidConfig {
        field: field.into(),
        reason: reason.into(),
    }
}

impl NetworkList {
    /// Reads a `.conf` or `.conflist` file (a list is the object with `plugins`).
    pub fn load(path: &Path) -> Result<Self, CniError> {
        let text = std::fs::read(path).map_err(|source| CniError::ConfRead {
            path: path.to_owned(),
            source,
        })?;
        let value: Value = serde_json::from_slice(&text).map_err(|source| CniError::Decode {
            what: "network config file",
            source,
        })?;
        Self::parse(value)
    }

    /// A list from its JSON value (a single plugin config when it has no `plugins`).
    pub fn parse(value: Value) -> Result<Self, CniError> {
        let Value::Object(mut obj) = value else {
            return Err(invalid("", "expected a JSON object"));
        };
        let string = |obj: &Map<String, Value>, key: &str| match obj.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            None | Some(Value::Null) => Err(invalid(key, "missing")),
            Some(other) => Err(invalid(key, format!("expected a string, got {other}"))),
        };
        let cni_version = string(&obj, "cniVersion")?;
        let name = string(&obj, "name")?;
        let plugins = match obj.remove("plugins") {
            None => {
                string(&obj, "type")?;
                vec![obj]
            }
            Some(Value::Array(items)) if !items.is_empty() => items
                .into_iter()
                .enumerate()
                .map(|(i, p)| match p {
                    Value::Object(p) => {
                        string(&p, "type")
                            .map_err(|_| invalid(format!("plugins[{i}].type"), "missing"))?;
                        Ok(p)
                    }
                    other => Err(invalid(
                        format!("plugins[{i}]"),
                        format!("expected an object, got {other}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(invalid("plugins", "expected a non-empty array")),
        };
        Ok(Self {
            cni_version,
            name,
            plugins,
        })
    }

    /// The list as a `.conflist` (what a journal keeps, so DEL works when the file changed).
    pub fn to_json(&self) -> Value {
        json!({"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins})
    }

    /// Whether some plugin declares `capability`.
    pub fn has_capability(&self, capability: &str) -> bool {
        self.plugins.iter().any(|p| declares(p, capability))
    }

    /// The config plugin `i` gets on stdin.
    fn plugin_config(&self, i: usize, rt: &Runtime, prev: Option<&Value>) -> Value {
        let mut conf = self.plugins[i].clone();
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.cni_version));
        if declares(&conf, "portMappings") && !rt.port_mappings.is_empty() {
            let mappings: Vec<Value> = rt.port_mappings.iter().map(port_mapping_json).collect();
            let mut runtime = Map::new();
            runtime.insert("portMappings".into(), Value::Array(mappings));
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        Value::Object(conf)
    }

    fn env(&self, command: &str, rt: &Runtime) -> Env {
        Env {
            command: Some(command.to_owned()),
            container_id: Some(rt.container_id.to_owned()),
            netns: Some(rt.netns.display().to_string()),
            ifname: Some(rt.ifname.to_owned()),
            args: rt.args.map(str::to_owned),
            path: Some(rt.cni_path.to_owned()),
        }
    }

    fn plugin_type(&self, i: usize) -> &str {
        self.plugins[i]
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// ADD through the whole chain; the last plugin's result.
    pub fn add(&self, rt: &Runtime) -> Result<Value, CniError> {
        let env = self.env("ADD", rt);
        let mut prev: Option<Value> = None;
        for i in 0..self.plugins.len() {
            let conf = self.plugin_config(i, rt, prev.as_ref());
            let field = format!("plugins[{i}].type");
            let out = delegate::exec(self.plugin_type(i), &field, "ADD", &env, &conf)?;
            // A plugin that prints nothing passes the previous result on.
            if out.is_some() {
                prev = out;
            }
        }
        prev.ok_or_else(|| invalid("plugins", "no plugin printed a result"))
    }

    /// DEL through the chain in reverse order, with the ADD result as `prevResult` when the
    /// version has it (0.4.0 and later); every plugin runs even when one fails.
    pub fn del(&self, rt: &Runtime, prev: Option<&Value>) -> Result<(), CniError> {
        let env = self.env("DEL", rt);
        let prev = prev.filter(|_| !self.cni_version.starts_with("0.3"));
        let mut errors = Vec::new();
        for i in (0..self.plugins.len()).rev() {
            let conf = self.plugin_config(i, rt, prev);
            let field = format!("plugins[{i}].type");
            if let Err(e) = delegate::exec(self.plugin_type(i), &field, "DEL", &env, &conf) {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(CniError::Teardown { errors }),
        }
    }
}

fn declares(plugin: &Map<String, Value>, capability: &str) -> bool {
    plugin
        .get("capabilities")
        .and_then(|c| c.get(capability))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A port mapping as runtimes write it (the reference `portmap` plugin's field names).
fn port_mapping_json(m: &PortMapping) -> Value {
    json!({
        "hostPort": m.host_port,
        "containerPort": m.container_port,
        "protocol": m.protocol.as_str(),
        "hostIP": m.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
    })
}

/// The address of interface `ifname` in `netns` in a chain's result (the first IPv4 address
/// when the result does not say which interface has it), and that interface's MAC.
pub fn pod_ip(result: &Value, ifname: &str, netns: &Path) -> Result<(PodIp, [u8; 6]), CniError> {
    let result = CniResult::parse(result)?;
    let index = result.interface_index(ifname, &netns.display().to_string());
    let ip = result.ipv4_of(index)?.into_iter().next().ok_or_else(|| {
        invalid(
            "plugins",
            format!("the result has no IPv4 address for {ifname}"),
        )
    })?;
    let mut mac = [0u8; 6];
    if let Some(text) = index
        .and_then(|i| result.interfaces[i].get("mac"))
        .and_then(Value::as_str)
    {
        let bytes: Vec<u8> = text
            .split(':')
            .filter_map(|b| u8::from_str_radix(b, 16).ok())
            .collect();
        if bytes.len() == 6 {
            mac.copy_from_slice(&bytes);
        }
    }
    Ok((ip, mac))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::Protocol;

    #[test]
    fn a_conf_is_a_list_of_one_and_plugins_get_name_version_and_capabilities() {
        let single = NetworkList::parse(json!({
            "cniVersion": "1.0.0", "name": "n", "type": "bridge", "bridge": "b"
        }))
        .unwrap();
        assert_eq!(single.plugins.len(), 1);
        assert_eq!(single.plugins[0]["bridge"], "b");
        let list = NetworkList::parse(json!({
            "cniVersion": "1.0.0", "name": "n",
            "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}]
        }))
        .unwrap();
        assert!(list.has_capability("portMappings"));
        assert_eq!(NetworkList::parse(list.to_json()).unwrap(), list);
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Udp,
            host_ip: None,
        }];
        let rt = Runtime {
            container_id: "c",
            netns: Path::new("/n"),
            ifname: "eth0",
            cni_path: "/p",
            args: None,
            port_mappings: &ports,
        };
        let prev = json!({"cniVersion": "1.0.0"});
        let first = list.plugin_config(0, &rt, None);
        assert_eq!(first["name"], "n");
        assert_eq!(first["cniVersion"], "1.0.0");
        assert!(first.get("runtimeConfig").is_none() && first.get("prevResult").is_none());
        let second = list.plugin_config(1, &rt, Some(&prev));
        assert_eq!(
            second["runtimeConfig"]["portMappings"][0],
            json!({"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": ""})
        );
        assert_eq!(second["prevResult"], prev);
    }

    #[test]
    fn broken_lists_name_the_field() {
        for (v, field) in [
            (json!({"name": "n", "type": "bridge"}), "cniVersion"),
            (json!({"cniVersion": "1.0.0", "type": "bridge"}), "name"),
            (json!({"cniVersion": "1.0.0", "name": "n"}), "type"),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}, {}]}),
                "plugins[1].type",
            ),
            (
                json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
                "plugins",
            ),
        ] {
            let err = NetworkList::parse(v).unwrap_err();
            assert_eq!(err.code(), crate::codes::INVALID_NETWORK_CONFIG);
            assert!(err.to_string().contains(field), "{err}");
        }
    }

    #[test]
    fn the_pod_ip_is_the_one_of_the_pod_interface() {
        let result = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "br"}, {"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/n"}],
            "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1}]
        });
        let (ip, mac) = pod_ip(&result, "eth0", Path::new("/n")).unwrap();
        assert_eq!(ip.ip, std::net::Ipv4Addr::new(10, 1, 0, 2));
        assert_eq!(ip.prefix_len, 24);
        assert_eq!(mac, [0x0a, 0x58, 0x0a, 0x01, 0, 2]);
        assert!(pod_ip(&json!({"cniVersion": "1.0.0"}), "eth0", Path::new("/n")).is_err());
    }
}
