//! The CNI 1.1 plugin protocol over this crate: the `podshim-bridge` binary is `handle` plus
//! reading the environment and stdin.
//!
//! Each command parses the config, checks the environment it needs, calls the same library
//! functions podshim uses in-process ([`crate::attach`], [`crate::detach`],
//! [`crate::check::verify`], [`crate::gc::collect`]) and writes the result in the config's
//! `cniVersion`. Errors become the spec's error JSON, with the code from [`CniError::code`].

pub mod config;
pub(crate) mod delegate;
mod ipam_config;
pub mod result;

use std::path::Path;

use serde_json::{json, Value};

use crate::attach::{validate_ifname, Addressing, AttachSpec, PodIp, Route};
use crate::check::{format_mac, verify, Expected};
use crate::detach::DetachSpec;
use crate::error::chain;
use crate::ipam::Ipam;
use crate::{cni_host_veth_name, nat, CniError};
use config::{IpamConf, NetConf, SUPPORTED_VERSIONS};
use result::{route_json, CniResult};

/// The newest version, used when nothing else says which one to answer in.
const LATEST: &str = "1.1.0";

/// The `CNI_*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub command: Option<String>,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    pub args: Option<String>,
    pub path: Option<String>,
}

impl Env {
    /// Reads the variables of this process; empty counts as unset.
    pub fn from_process() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        Self {
            command: var("CNI_COMMAND"),
            container_id: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: var("CNI_ARGS"),
            path: var("CNI_PATH"),
        }
    }

    fn require(value: &Option<String>, var: &'static str) -> Result<String, CniError> {
        value.clone().ok_or(CniError::MissingEnv { var })
    }

    fn container_id(&self) -> Result<String, CniError> {
        let id = Self::require(&self.container_id, "CNI_CONTAINERID")?;
        if !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(CniError::InvalidEnv {
                var: "CNI_CONTAINERID",
                value: id,
                reason: "only letters, digits, '_', '.' and '-' are allowed",
            });
        }
        Ok(id)
    }

    fn ifname(&self) -> Result<String, CniError> {
        let name = Self::require(&self.ifname, "CNI_IFNAME")?;
        match validate_ifname("pod interface", &name) {
            Ok(()) => Ok(name),
            Err(CniError::InvalidName { reason, .. }) => Err(CniError::InvalidEnv {
                var: "CNI_IFNAME",
                value: name,
                reason,
            }),
            Err(e) => Err(e),
        }
    }
}

/// What to print and how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub stdout: String,
    pub exit_code: i32,
}

/// Runs one CNI command: `env` and the config on `stdin` in, the reply out.
pub fn handle(env: &Env, stdin: &[u8]) -> Reply {
    let raw: Result<Value, CniError> = if stdin.iter().all(u8::is_ascii_whitespace) {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(stdin).map_err(|source| CniError::Decode {
            what: "network config",
            source,
        })
    };
    // Errors are written in the config's version when it has a readable one.
    let version = raw
        .as_ref()
        .ok()
        .and_then(|v| v.get("cniVersion"))
        .and_then(Value::as_str)
        .filter(|v| SUPPORTED_VERSIONS.contains(v))
        .unwrap_or(LATEST)
        .to_owned();
    match raw.and_then(|raw| dispatch(env, raw, &version)) {
        Ok(None) => Reply {
            stdout: String::new(),
            exit_code: 0,
        },
        Ok(Some(out)) => Reply {
            stdout: pretty(&out),
            exit_code: 0,
        },
        Err(err) => {
            tracing::debug!(error = %chain(&err), "cni command failed");
            Reply {
                stdout: pretty(&error_json(&version, &err)),
                exit_code: 1,
            }
        }
    }
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("a JSON value always serializes");
    s.push('\n');
    s
}

/// The spec's error object: the top error as `msg`, its sources as `details`.
pub fn error_json(version: &str, err: &CniError) -> Value {
    let (msg, details) = match err {
        CniError::Delegated {
            plugin,
            msg,
            details,
            ..
        } => (format!("{plugin}: {msg}"), details.clone()),
        other => {
            let full = chain(other);
            let top = other.to_string();
            let details = full
                .strip_prefix(&top)
                .map(|rest| rest.trim_start_matches(": ").to_owned())
                .unwrap_or_default();
            (top, details)
        }
    };
    let mut out = json!({"cniVersion": version, "code": err.code(), "msg": msg});
    if !details.is_empty() {
        out["details"] = json!(details);
    }
    out
}

fn dispatch(env: &Env, raw: Value, version: &str) -> Result<Option<Value>, CniError> {
    let command = Env::require(&env.command, "CNI_COMMAND")?;
    if command == "VERSION" {
        return Ok(Some(json!({
            "cniVersion": version,
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    if !matches!(command.as_str(), "ADD" | "DEL" | "CHECK" | "GC" | "STATUS") {
        return Err(CniError::InvalidEnv {
            var: "CNI_COMMAND",
            value: command,
            reason: "expected ADD, DEL, CHECK, GC, STATUS or VERSION",
        });
    }
    let conf = config::parse(raw)?;
    let needs = match command.as_str() {
        "CHECK" => "0.4.0",
        "GC" | "STATUS" => "1.1.0",
        _ => "0.3.0",
    };
    let at = |v: &str| SUPPORTED_VERSIONS.iter().position(|s| *s == v);
    if at(&conf.cni_version) < at(needs) {
        return Err(CniError::CommandNotInVersion {
            command: match command.as_str() {
                "CHECK" => "CHECK",
                "GC" => "GC",
                _ => "STATUS",
            },
            needs,
            version: conf.cni_version,
        });
    }
    match command.as_str() {
        "ADD" => add(env, &conf).map(Some),
        "DEL" => del(env, &conf).map(|()| None),
        "CHECK" => check(env, &conf).map(|()| None),
        "GC" => gc(env, &conf).map(|()| None),
        _ => status(env, &conf).map(|()| None),
    }
}

fn host_local_pool(conf: &NetConf) -> Result<Option<Ipam>, CniError> {
    match &conf.ipam {
        IpamConf::HostLocal(h) => Ipam::open_host_local(&h.dir, h.subnet, h.range).map(Some),
        _ => Ok(None),
    }
}

fn add(env: &Env, conf: &NetConf) -> Result<Value, CniError> {
    let id = env.container_id()?;
    let netns = Env::require(&env.netns, "CNI_NETNS")?;
    let ifname = env.ifname()?;
    let host_veth = cni_host_veth_name(&id, &ifname);
    let pool = host_local_pool(conf)?;

    // As the reference plugin, the result's `dns` is the config's; an IPAM plugin's is dropped.
    let dns = conf.dns.clone();
    let (addressing, mut routes) = match (&conf.ipam, &pool) {
        (IpamConf::HostLocal(h), Some(ipam)) => {
            let addressing = Addressing::HostLocal {
                ipam,
                id: &id,
                ifname: Some(&ifname),
            };
            (addressing, h.routes.clone())
        }
        (IpamConf::Delegated { plugin }, _) => {
            let out = delegate::run(plugin, "ADD", env, &conf.raw)?.unwrap_or(Value::Null);
            let ipam_result = CniResult::parse(&out)?;
            let ip = ipam_result.ipv4_of(None)?.into_iter().next();
            let routes = ipam_result.ipv4_routes()?;
            (Addressing::Fixed(ip), routes)
        }
        _ => (Addressing::Fixed(None), Vec::new()),
    };
    let result_routes: Vec<Value> = {
        if conf.is_default_gateway {
            let gw = match addressing {
                Addressing::HostLocal { ipam, .. } => Some(ipam.range().gateway),
                Addressing::Fixed(ip) => ip.and_then(|ip| ip.gateway),
            };
            if let Some(gw) = gw {
                routes.push(Route {
                    dst: std::net::Ipv4Addr::UNSPECIFIED,
                    prefix_len: 0,
                    gw: Some(gw),
                });
            }
        }
        routes.iter().map(route_json).collect()
    };
    let attached = crate::attach(&AttachSpec {
        bridge: &conf.bridge,
        netns: Path::new(&netns),
        host_veth: &host_veth,
        ifname: &ifname,
        addressing,
        routes: &routes,
        lo_up: false,
    });
    let attached = attached.and_then(|a| {
        // Rules after the interface: DNAT needs the Pod address.
        match add_nat(conf, &id, &ifname, a.ip) {
            Ok(()) => Ok(a),
            Err(e) => Err(match del(env, conf) {
                Ok(()) => e,
                Err(rollback) => CniError::Rollback {
                    source: Box::new(e),
                    rollback: Box::new(rollback),
                },
            }),
        }
    });
    let attached = match attached {
        Ok(a) => a,
        Err(e) => {
            // The spec: a failed ADD releases what IPAM gave it.
            if let IpamConf::Delegated { plugin } = &conf.ipam {
                let _ = delegate::run(plugin, "DEL", env, &conf.raw);
            }
            return Err(e);
        }
    };
    let mac = |m: &Option<Vec<u8>>| m.as_deref().map(format_mac).unwrap_or_default();
    let ours = CniResult {
        interfaces: vec![
            object(json!({"name": conf.bridge.name, "mac": mac(&attached.bridge_mac)})),
            object(json!({"name": host_veth, "mac": mac(&attached.host_mac)})),
            object(json!({"name": ifname, "mac": format_mac(&attached.pod_mac), "sandbox": netns})),
        ],
        ips: attached
            .ip
            .iter()
            .map(|ip: &PodIp| {
                let mut o =
                    json!({"interface": 2, "address": format!("{}/{}", ip.ip, ip.prefix_len)});
                if let Some(gw) = ip.gateway {
                    o["gateway"] = json!(gw.to_string());
                }
                object(o)
            })
            .collect(),
        routes: result_routes,
        dns,
    };
    let mut out = match &conf.prev_result {
        Some(prev) => CniResult::parse(prev)?,
        None => CniResult::default(),
    };
    out.append(ours);
    Ok(out.to_json(&conf.cni_version))
}

/// The `portMappings` DNAT and `ipMasq` rules of one attachment.
fn add_nat(conf: &NetConf, id: &str, ifname: &str, ip: Option<PodIp>) -> Result<(), CniError> {
    with_nat_spec(conf, id, ifname, ip, |backend, spec| {
        nat::apply_with(backend, spec)
    })
}

/// Runs `f` with the backend and the NAT rules an attachment of `conf` has (when it has any).
fn with_nat_spec(
    conf: &NetConf,
    id: &str,
    ifname: &str,
    ip: Option<PodIp>,
    f: impl FnOnce(nat::Backend, &nat::NatSpec<'_>) -> Result<(), CniError>,
) -> Result<(), CniError> {
    if conf.port_mappings.is_empty() && !conf.ip_masq {
        return Ok(());
    }
    let ip = ip.ok_or_else(|| CniError::InvalidConfig {
        field: if conf.ip_masq {
            "ipMasq".into()
        } else {
            "runtimeConfig.portMappings".into()
        },
        reason: "needs an IPv4 address on the interface (an ipam section)".into(),
    })?;
    let subnet = match &conf.ipam {
        IpamConf::HostLocal(h) => h.subnet,
        _ => crate::Ipv4Net::new(
            crate::subnet::network_of(ip.ip, ip.prefix_len),
            ip.prefix_len,
        )?,
    };
    let backend = nat::Backend::choose(conf.nat_backend)?;
    f(
        backend,
        &nat::NatSpec {
            tag: &nat::tag(&conf.name, id, ifname),
            pod_ip: ip.ip,
            subnet,
            masquerade: conf.ip_masq,
            ports: &conf.port_mappings,
            bridge: &conf.bridge.name,
        },
    )
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("built from json!({{…}})"),
    }
}

fn del(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let id = env.container_id()?;
    let ifname = env.ifname()?;
    let host_veth = cni_host_veth_name(&id, &ifname);
    let pool = host_local_pool(conf)?;
    let mut errors = Vec::new();
    // Whatever the config says now (ports, ipMasq, backend): rules of an earlier ADD must go,
    // from both backends.
    if let Err(e) = nat::remove(&nat::tag(&conf.name, &id, &ifname)) {
        errors.push(e);
    }
    if let Err(e) = crate::detach(&DetachSpec {
        bridge: &conf.bridge,
        netns: env.netns.as_deref().map(Path::new),
        host_veth: &host_veth,
        ifname: &ifname,
        lease: pool
            .as_ref()
            .map(|ipam| (ipam, id.as_str(), Some(ifname.as_str()))),
    }) {
        errors.push(e);
    }
    if let IpamConf::Delegated { plugin } = &conf.ipam {
        if let Err(e) = delegate::run(plugin, "DEL", env, &conf.raw) {
            errors.push(e);
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => Err(CniError::Teardown { errors }),
    }
}

fn check(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let id = env.container_id()?;
    let netns = Env::require(&env.netns, "CNI_NETNS")?;
    let ifname = env.ifname()?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::InvalidConfig {
            field: "prevResult".into(),
            reason: "missing: CHECK needs the result of ADD".into(),
        })?;
    let prev = CniResult::parse(prev)?;
    let index = prev
        .interface_index(&ifname, &netns)
        .ok_or_else(|| CniError::Drifted {
            what: format!("prevResult has no interface {ifname} in {netns}"),
        })?;
    let mac = prev.interfaces[index].get("mac").and_then(Value::as_str);
    let ips = prev.ipv4_of(Some(index))?;
    let routes = prev.ipv4_routes()?;
    let pool = host_local_pool(conf)?;
    if let IpamConf::Delegated { plugin } = &conf.ipam {
        delegate::run(plugin, "CHECK", env, &conf.raw)?;
    }
    verify(&Expected {
        bridge: &conf.bridge.name,
        netns: Path::new(&netns),
        host_veth: &cni_host_veth_name(&id, &ifname),
        ifname: &ifname,
        mac,
        ips: &ips,
        routes: &routes,
        lease: pool
            .as_ref()
            .map(|ipam| (ipam, id.as_str(), ifname.as_str())),
    })?;
    // The host ports of this CHECK's runtimeConfig and ipMasq, in the backend in use now.
    with_nat_spec(conf, &id, &ifname, ips.first().cloned(), nat::verify)
}

fn gc(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    let valid = conf
        .valid_attachments
        .as_deref()
        .ok_or_else(|| CniError::InvalidConfig {
            field: "cni.dev/valid-attachments".into(),
            reason: "missing: GC needs the attachments to keep".into(),
        })?;
    let pool = host_local_pool(conf)?;
    let keep = valid
        .iter()
        .map(|(id, ifname)| nat::tag(&conf.name, id, ifname))
        .collect();
    let rules = nat::collect(&conf.name, &keep);
    crate::gc::collect(&conf.bridge.name, pool.as_ref(), valid)?;
    rules?;
    if let IpamConf::Delegated { plugin } = &conf.ipam {
        delegate::run(plugin, "GC", env, &conf.raw)?;
    }
    Ok(())
}

fn status(env: &Env, conf: &NetConf) -> Result<(), CniError> {
    if let Some(ipam) = host_local_pool(conf)? {
        if !ipam.lock()?.has_free()? {
            return Err(CniError::Unavailable {
                reason: format!("no free address left in {}", ipam.subnet()),
            });
        }
    }
    if let IpamConf::Delegated { plugin } = &conf.ipam {
        delegate::run(plugin, "STATUS", env, &conf.raw)?;
    }
    Ok(())
}
