//! Running a CNI network configuration (`.conf` or `.conflist`) as a container runtime does
//! (the spec's "Execution of Network Configurations", as `libcni` does it): ADD runs the
//! plugins in order, each getting the previous result as `prevResult`; DEL runs them in
//! reverse order, every one of them even when an earlier one fails; CHECK runs them in order
//! with the cached ADD result as `prevResult` and stops at the first failure; GC runs every
//! plugin with `cni.dev/valid-attachments`.
//!
//! Each plugin gets the list's `name` and `cniVersion`, and (ADD, CHECK, DEL) `runtimeConfig`
//! with the capabilities it declares (`"capabilities": {"portMappings": true}`) that the
//! runtime has.
//!
//! Versions, as libcni: CHECK is an error for a list older than 0.4.0 (the spec defines no
//! CHECK there; libcni answers "does not support the CHECK command"), DEL gets `prevResult`
//! from 0.4.0 on, GC does nothing for a list older than 1.1.0. The list-level switches
//! `disableCheck` and `disableGC` make CHECK and GC do nothing. The cached result is passed as
//! it was cached: it comes from ADD of the same list, so it is in the list's version already
//! (libcni converts it, for a list whose version changed while the container ran).

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
    /// `disableCheck`: CHECK does nothing.
    pub disable_check: bool,
    /// `disableGC`: GC does nothing.
    pub disable_gc: bool,
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
        // As libcni: a list-level switch is a bool or the string "true"/"false".
        let switch = |obj: &Map<String, Value>, key: &str| match obj.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            Some(other) => Err(invalid(key, format!("expected true or false, got {other}"))),
        };
        let is_list = obj.contains_key("plugins");
        let (disable_check, disable_gc) = if is_list {
            (switch(&obj, "disableCheck")?, switch(&obj, "disableGC")?)
        } else {
            (false, false)
        };
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
            disable_check,
            disable_gc,
        })
    }

    /// The list as a `.conflist` (what a journal keeps, so DEL works when the file changed).
    pub fn to_json(&self) -> Value {
        let mut list =
            json!({"cniVersion": self.cni_version, "name": self.name, "plugins": self.plugins});
        if self.disable_check {
            list["disableCheck"] = json!(true);
        }
        if self.disable_gc {
            list["disableGC"] = json!(true);
        }
        list
    }

    /// Whether the list's `cniVersion` is `min` or later; an unreadable version is an error.
    fn version_at_least(&self, min: &str) -> Result<bool, CniError> {
        let parse = |v: &str| -> Option<[u64; 3]> {
            let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
            let out = [parts.next()??, parts.next()??, parts.next()??];
            parts.next().is_none().then_some(out)
        };
        let have = parse(&self.cni_version).ok_or_else(|| {
            invalid(
                "cniVersion",
                format!(
                    "{:?} is not a version (MAJOR.MINOR.PATCH)",
                    self.cni_version
                ),
            )
        })?;
        Ok(have >= parse(min).expect("a valid version"))
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
        // DEL is best effort: an unreadable version just gets no prevResult.
        let prev = prev.filter(|_| self.version_at_least("0.4.0").unwrap_or(false));
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

impl NetworkList {
    /// CHECK through the chain in order, every plugin getting `prev` (the cached result of
    /// ADD) as `prevResult` and the runtime's capabilities as on ADD; the first failure is the
    /// answer, as libcni's `CheckNetworkList`. Before 0.4.0 CHECK does not exist: an error
    /// ([`CniError::CommandNotInVersion`]). `disableCheck`: nothing runs. Without `prev`
    /// (no cached result) the plugins run without `prevResult` and say what they think of it.
    pub fn check(&self, rt: &Runtime, prev: Option<&Value>) -> Result<(), CniError> {
        if !self.version_at_least("0.4.0")? {
            return Err(CniError::CommandNotInVersion {
                command: "CHECK",
                needs: "0.4.0",
                version: self.cni_version.clone(),
            });
        }
        if self.disable_check {
            return Ok(());
        }
        let env = self.env("CHECK", rt);
        for i in 0..self.plugins.len() {
            let conf = self.plugin_config(i, rt, prev);
            let field = format!("plugins[{i}].type");
            delegate::exec(self.plugin_type(i), &field, "CHECK", &env, &conf)?;
        }
        Ok(())
    }

    /// The config plugin `i` gets on GC: the list's name and version and the attachments to
    /// keep, under `cni.dev/valid-attachments` and, as libcni also sends it (the name an early
    /// text of the spec used), `cni.dev/attachments`; no `runtimeConfig`, no `prevResult`.
    fn gc_config(&self, i: usize, valid: &[(String, String)]) -> Value {
        let mut conf = self.plugins[i].clone();
        conf.insert("name".into(), json!(self.name));
        conf.insert("cniVersion".into(), json!(self.cni_version));
        let valid: Vec<Value> = valid
            .iter()
            .map(|(id, ifname)| json!({"containerID": id, "ifname": ifname}))
            .collect();
        conf.insert("cni.dev/valid-attachments".into(), json!(valid));
        conf.insert("cni.dev/attachments".into(), json!(valid));
        Value::Object(conf)
    }

    /// GC through the chain: every plugin, in order, is told the attachments (container id,
    /// interface) that are still valid, and releases whatever else of this network it holds;
    /// all plugins run even when one fails (libcni's `GCNetworkList`, without its first half:
    /// DEL of cached attachments is the runtime's, from its own records). The environment has
    /// only `CNI_COMMAND=GC` and `CNI_PATH`. Nothing to do before 1.1.0 or with `disableGC`.
    pub fn gc(&self, valid: &[(String, String)], cni_path: &str) -> Result<(), CniError> {
        if self.disable_gc || !self.version_at_least("1.1.0")? {
            return Ok(());
        }
        let env = Env {
            command: Some("GC".to_owned()),
            path: Some(cni_path.to_owned()),
            ..Env::default()
        };
        let mut errors = Vec::new();
        for i in 0..self.plugins.len() {
            let conf = self.gc_config(i, valid);
            let field = format!("plugins[{i}].type");
            if let Err(e) = delegate::exec(self.plugin_type(i), &field, "GC", &env, &conf) {
                errors.push(e);
            }
        }
        match errors.len() {
            0 => Ok(()),
            _ => Err(CniError::Gc { errors }),
        }
    }

    /// Whether [`NetworkList::gc`] would run the plugins (1.1.0 or later, GC not disabled).
    pub fn has_gc(&self) -> bool {
        !self.disable_gc && self.version_at_least("1.1.0").unwrap_or(false)
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

    /// A directory of fake plugins that record each call (`CNI_*` variables, then stdin) in
    /// `call.N`, N counting up; a plugin whose name starts with `fail` answers with an error.
    fn fake_plugins(names: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let script = r#"#!/bin/sh
dir=$(dirname "$0")
f="$dir/call.$(ls "$dir" | grep -c '^call\.')"
{
  echo "$(basename "$0") $CNI_COMMAND ${CNI_CONTAINERID-unset} ${CNI_NETNS-unset} ${CNI_IFNAME-unset} ${CNI_PATH-unset}"
  cat
} > "$dir/tmp" && mv "$dir/tmp" "$f"
case "$(basename "$0")" in
fail*) echo '{"cniVersion": "1.1.0", "code": 101, "msg": "drifted", "details": "eth0 is gone"}'; exit 1 ;;
esac
"#;
        // The executables are written by `install`, not by this process: a test on another
        // thread forking while this process held a plugin open for writing would keep that fd
        // until its exec, and running the plugin then fails with ETXTBSY.
        let source = dir.path().join("plugin.sh");
        std::fs::write(&source, script).unwrap();
        for name in names {
            let status = std::process::Command::new("install")
                .args(["-m", "0755"])
                .arg(&source)
                .arg(dir.path().join(name))
                .status()
                .unwrap();
            assert!(status.success(), "install {name}: {status}");
        }
        std::fs::remove_file(&source).unwrap();
        dir
    }

    /// The calls [`fake_plugins`] recorded: (plugin, command, id, netns, ifname, path), config.
    fn calls(dir: &Path) -> Vec<(Vec<String>, Value)> {
        (0..)
            .map(|n| dir.join(format!("call.{n}")))
            .take_while(|p| p.exists())
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let (env, conf) = text.split_once('\n').unwrap();
                let env = env.split(' ').map(str::to_owned).collect();
                (env, serde_json::from_str(conf).unwrap())
            })
            .collect()
    }

    fn list(version: &str, types: &[&str]) -> NetworkList {
        let plugins: Vec<Value> = types
            .iter()
            .map(|t| json!({"type": t, "capabilities": {"portMappings": *t == "pb"}}))
            .collect();
        NetworkList::parse(json!({"cniVersion": version, "name": "n", "plugins": plugins})).unwrap()
    }

    /// Attachment `ctr`/`eth0` in `/n`, no port mappings, plugins from `cni_path`.
    fn runtime(cni_path: &str) -> Runtime<'_> {
        Runtime {
            container_id: "ctr",
            netns: Path::new("/n"),
            ifname: "eth0",
            cni_path,
            args: None,
            port_mappings: &[],
        }
    }

    #[test]
    fn check_runs_every_plugin_in_order_with_the_cached_result_and_capabilities() {
        let dir = fake_plugins(&["pa", "pb"]);
        let path = dir.path().to_str().unwrap();
        let ports = [PortMapping {
            host_port: 8080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: Some("192.0.2.1".parse().unwrap()),
        }];
        let rt = Runtime {
            container_id: "ctr",
            netns: Path::new("/run/netns/x"),
            ifname: "eth0",
            cni_path: path,
            args: None,
            port_mappings: &ports,
        };
        let cached = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]});
        list("1.0.0", &["pa", "pb"])
            .check(&rt, Some(&cached))
            .unwrap();
        let calls = calls(dir.path());
        assert_eq!(calls.len(), 2);
        for (i, (env, conf)) in calls.iter().enumerate() {
            let plugin = ["pa", "pb"][i];
            assert_eq!(env, &[plugin, "CHECK", "ctr", "/run/netns/x", "eth0", path]);
            assert_eq!(conf["type"], plugin);
            assert_eq!(conf["name"], "n");
            assert_eq!(conf["cniVersion"], "1.0.0");
            assert_eq!(conf["prevResult"], cached, "{plugin}");
        }
        assert!(calls[0].1.get("runtimeConfig").is_none());
        assert_eq!(
            calls[1].1["runtimeConfig"]["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "192.0.2.1"}])
        );
    }

    #[test]
    fn check_stops_at_the_first_failure_and_reports_the_plugin_message() {
        let dir = fake_plugins(&["pa", "fail1", "pb"]);
        let rt = runtime(dir.path().to_str().unwrap());
        let err = list("1.1.0", &["pa", "fail1", "pb"])
            .check(&rt, Some(&json!({"cniVersion": "1.1.0"})))
            .unwrap_err();
        match &err {
            CniError::Delegated {
                plugin,
                code,
                msg,
                details,
            } => {
                assert_eq!((plugin.as_str(), *code), ("fail1", 101));
                assert_eq!(
                    (msg.as_str(), details.as_str()),
                    ("drifted", "eth0 is gone")
                );
            }
            other => panic!("{other:?}"),
        }
        let ran: Vec<String> = calls(dir.path())
            .into_iter()
            .map(|c| c.0[0].clone())
            .collect();
        assert_eq!(ran, ["pa", "fail1"]);
    }

    #[test]
    fn check_before_0_4_0_is_an_error_and_disable_check_skips_it() {
        let dir = fake_plugins(&["pa"]);
        let rt = runtime(dir.path().to_str().unwrap());
        for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1"] {
            let err = list(version, &["pa"]).check(&rt, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    CniError::CommandNotInVersion {
                        command: "CHECK",
                        ..
                    }
                ),
                "{err:?}"
            );
            assert_eq!(err.code(), crate::codes::INCOMPATIBLE_VERSION);
            assert!(err.to_string().contains(version), "{err}");
        }
        let err = list("one", &["pa"]).check(&rt, None).unwrap_err();
        assert!(err.to_string().contains("cniVersion"), "{err}");
        let mut disabled = list("1.0.0", &["pa"]);
        disabled.disable_check = true;
        disabled.check(&rt, None).unwrap();
        assert!(calls(dir.path()).is_empty());
    }

    #[test]
    fn gc_gives_every_plugin_the_valid_attachments_and_no_runtime_values() {
        let dir = fake_plugins(&["pa", "fail1", "pb"]);
        let path = dir.path().to_str().unwrap();
        let valid = [
            ("c1".to_owned(), "eth0".to_owned()),
            ("c2".to_owned(), "net1".to_owned()),
        ];
        let err = list("1.1.0", &["pa", "fail1", "pb"])
            .gc(&valid, path)
            .unwrap_err();
        // Every plugin ran; the failure is reported.
        assert!(
            matches!(&err, CniError::Gc { errors } if errors.len() == 1),
            "{err:?}"
        );
        assert!(err.to_string().contains("fail1: drifted"), "{err}");
        let recorded = calls(dir.path());
        let ran: Vec<&str> = recorded.iter().map(|c| c.0[0].as_str()).collect();
        assert_eq!(ran, ["pa", "fail1", "pb"]);
        let want = json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]);
        for (env, conf) in &recorded {
            assert_eq!(env[1..], ["GC", "unset", "unset", "unset", path]);
            assert_eq!(conf["name"], "n");
            assert_eq!(conf["cniVersion"], "1.1.0");
            assert_eq!(conf["cni.dev/valid-attachments"], want);
            assert_eq!(conf["cni.dev/attachments"], want);
            assert!(conf.get("prevResult").is_none() && conf.get("runtimeConfig").is_none());
        }
        // No valid attachment at all: an empty list, not a missing one.
        list("1.1.0", &["pa"]).gc(&[], path).unwrap();
        let (_, last) = calls(dir.path()).pop().unwrap();
        assert_eq!(last["cni.dev/valid-attachments"], json!([]));
    }

    #[test]
    fn gc_before_1_1_0_or_disabled_runs_nothing() {
        let dir = fake_plugins(&["pa"]);
        let path = dir.path().to_str().unwrap();
        for version in ["0.3.1", "0.4.0", "1.0.0"] {
            let l = list(version, &["pa"]);
            assert!(!l.has_gc());
            l.gc(&[], path).unwrap();
        }
        let disabled = NetworkList::parse(json!({
            "cniVersion": "1.1.0", "name": "n", "disableGC": "true", "disableCheck": true,
            "plugins": [{"type": "pa"}]
        }))
        .unwrap();
        assert!(disabled.disable_gc && disabled.disable_check && !disabled.has_gc());
        disabled.gc(&[], path).unwrap();
        assert!(calls(dir.path()).is_empty());
        // The switches survive the journal's round trip.
        assert_eq!(NetworkList::parse(disabled.to_json()).unwrap(), disabled);
        assert!(list("1.1.0", &["pa"]).has_gc());
        let bad = NetworkList::parse(json!({
            "cniVersion": "1.1.0", "name": "n", "disableGC": "maybe", "plugins": [{"type": "pa"}]
        }));
        assert!(bad.unwrap_err().to_string().contains("disableGC"));
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
