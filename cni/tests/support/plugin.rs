//! Running CNI plugins for the tests: ours (`podshim-bridge`) and the reference ones, with the
//! same config; a network (bridge name, subnet 10.251.N.0/24, data directory) both share.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use super::*;

pub const REFERENCE: &str = "/usr/lib/cni/bridge";
pub const CNI_PATH: &str = "/usr/lib/cni";

pub fn require_reference() {
    require_root();
    for plugin in ["bridge", "host-local", "loopback", "static"] {
        assert!(
            Path::new(CNI_PATH).join(plugin).exists(),
            "side-by-side test: needs the reference plugin {CNI_PATH}/{plugin} \
             (apt-get install containernetworking-plugins)"
        );
    }
}

/// One CNI invocation's outcome.
#[derive(Debug, Clone)]
pub struct Out {
    pub ok: bool,
    pub json: Value,
}

impl Out {
    pub fn code(&self) -> u64 {
        assert!(!self.ok, "expected an error, got {}", self.json);
        self.json["code"]
            .as_u64()
            .unwrap_or_else(|| panic!("no code: {}", self.json))
    }

    pub fn msg(&self) -> String {
        format!("{} {}", self.json["msg"], self.json["details"])
    }
}

/// A container id unique to this test process, so that two runs of the suite on one machine
/// never share host veth names (derived from the id) or leases.
pub fn cid(base: &str) -> String {
    format!("{base}-{}", std::process::id())
}

pub fn cni(exe: &str, command: &str, id: &str, netns: Option<&str>, conf: &Value) -> Out {
    cni_raw(exe, command, id, netns, &conf.to_string())
}

/// [`cni`] with the config as text, and no `CNI_CONTAINERID` when `id` is empty.
pub fn cni_raw(exe: &str, command: &str, id: &str, netns: Option<&str>, conf: &str) -> Out {
    cni_in(&Host::default(), exe, command, id, netns, conf)
}

/// Where and how a plugin runs: in the network namespace `netns` (`/run/netns/<name>`)
/// standing in for the host instead of the host's, with `PATH` set to `path`.
#[derive(Debug, Clone, Default)]
pub struct Host {
    pub netns: Option<String>,
    pub path: Option<std::path::PathBuf>,
}

/// [`cni_raw`] run as `host` says.
pub fn cni_in(
    host: &Host,
    exe: &str,
    command: &str,
    id: &str,
    netns: Option<&str>,
    conf: &str,
) -> Out {
    let mut cmd = match &host.netns {
        Some(ns) => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns, exe]);
            cmd
        }
        None => Command::new(exe),
    };
    if let Some(path) = &host.path {
        cmd.env("PATH", path);
    }
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", CNI_PATH)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match netns {
        Some(ns) => cmd.env("CNI_NETNS", format!("/run/netns/{ns}")),
        None => cmd.env_remove("CNI_NETNS"),
    };
    if id.is_empty() {
        cmd.env_remove("CNI_CONTAINERID");
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let input = conf;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{cmd:?}: bad json {e}: {text}"))
    };
    Out {
        ok: out.status.success(),
        json,
    }
}

/// A bridge name, subnet and data directory shared by both plugins of a scenario.
pub struct Net {
    inner: TestNetwork,
    octet: u8,
}

impl Net {
    pub fn new() -> Self {
        let inner = TestNetwork::new();
        let octet = inner.cfg.subnet.addr().octets()[2];
        Self { inner, octet }
    }

    pub fn bridge(&self) -> &str {
        &self.inner.cfg.bridge
    }

    pub fn subnet(&self) -> String {
        format!("10.251.{}.0/24", self.octet)
    }

    pub fn ip(&self, host: u8) -> String {
        format!("10.251.{}.{host}", self.octet)
    }

    pub fn data_dir(&self) -> std::path::PathBuf {
        self.inner.cfg.ipam_dir.clone()
    }

    /// The config both plugins get: every bridge and host-local field podshim supports.
    pub fn conf(&self, version: &str, exe: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "pstnet",
            "type": Path::new(exe).file_name().unwrap().to_str().unwrap(),
            "bridge": self.bridge(),
            "isGateway": true,
            "isDefaultGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "promiscMode": false,
            "mtu": 1400,
            "dns": {"nameservers": [self.ip(1)], "search": ["pst.example"]},
            "ipam": {
                "type": "host-local",
                "ranges": [[{
                    "subnet": self.subnet(),
                    "rangeStart": self.ip(10),
                    "rangeEnd": self.ip(200),
                    "gateway": self.ip(1),
                }]],
                "routes": [{"dst": "10.249.250.0/24"}, {"dst": "10.252.0.0/16", "gw": self.ip(3)}],
                "dataDir": self.data_dir(),
            }
        })
    }

    pub fn leases(&self) -> Vec<(String, String)> {
        let dir = self.data_dir().join("pstnet");
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap())
                    .filter(|e| e.file_name().to_str().unwrap().starts_with("10."))
                    .map(|e| {
                        let name = e.file_name().into_string().unwrap();
                        (name, std::fs::read_to_string(e.path()).unwrap())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Deletes the bridge (both plugins leave it, as they should) between two plugins' runs.
    pub fn reset(&self) {
        if link_exists(self.bridge()) {
            run_ok(&["ip", "link", "del", "dev", self.bridge()]);
        }
        let _ = std::fs::remove_dir_all(self.data_dir());
    }
}

/// The result with what differs between any two runs replaced: MACs and the host veth name.
pub fn normalize(mut result: Value) -> Value {
    if let Some(ifaces) = result["interfaces"].as_array_mut() {
        for iface in ifaces {
            if iface.get("mac").is_some() {
                iface["mac"] = json!("<mac>");
            }
            if iface.get("sandbox").is_some() {
                iface["sandbox"] = json!("<netns>");
            }
            if iface.get("sandbox").is_none() && iface["name"].as_str().unwrap().starts_with("veth")
            {
                iface["name"] = json!("<veth>");
            }
        }
    }
    result
}

/// What the kernel shows after ADD: Pod addresses and routes, bridge port, hairpin, MTUs,
/// the bridge's address. The veth's own name differs (random in the reference).
pub fn kernel_state(net: &Net, ns: &TestNetns) -> Value {
    let eth0 = ns.json(&["addr", "show", "dev", "eth0"])[0].clone();
    let addrs: Vec<Value> = eth0["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| json!([a["local"], a["prefixlen"], a["broadcast"]]))
        .collect();
    let routes: BTreeSet<String> = ns
        .json(&["route", "show"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} via {} dev {} scope {}",
                r["dst"], r["gateway"], r["dev"], r["scope"]
            )
        })
        .collect();
    // `bridge link show master X` lists every bridge's ports here; filter ourselves.
    let ports = json(&["bridge", "-d", "-j", "link", "show"]);
    let ports: Vec<Value> = ports
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["master"] == net.bridge())
        .map(|p| json!({"master": p["master"], "hairpin": p["hairpin"], "mtu": p["mtu"], "state": p["state"]}))
        .collect();
    let bridge = json(&["ip", "-j", "addr", "show", "dev", net.bridge()])[0].clone();
    let bridge_addrs: Vec<Value> = bridge["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| json!([a["local"], a["prefixlen"]]))
        .collect();
    json!({
        "eth0": {"addrs": addrs, "mtu": eth0["mtu"], "operstate": eth0["operstate"]},
        "routes": routes,
        "ports": ports,
        "bridge": {"addrs": bridge_addrs, "mtu": bridge["mtu"]},
    })
}

/// Polls `cond` for up to 3 s.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..60 {
        if cond() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cond()
}
