//! Host ports side by side: the same port mappings (TCP and UDP, with and without `hostIP`)
//! through three network configuration lists that differ only in `type`, run by
//! [`podshim_cni::chain::NetworkList`] as podshim runs `--cni-conf`:
//!
//! - the reference chain `[bridge, portmap]` (Debian's containernetworking-plugins 1.1.1);
//! - `[podshim-bridge, portmap]`: our result feeding the reference `portmap` as `prevResult`;
//! - `podshim-bridge` alone, with the `portMappings` capability.
//!
//! Each runs on its own network (name, bridge, subnet, host ports). For each: the Pod is
//! reached from a namespace standing in for another host (through its own veth pair to the
//! host) and from the host itself (its address on that link and 127.0.0.1); a `hostIP`
//! mapping only at that address; CHECK; DEL removes the rules (the reference's `CNI-DN-*`
//! chain of the container and its jumps, our rules tagged with the attachment; `iptables-save`
//! and `nft` are the witnesses) and succeeds twice; a second Pod taking the same host ports
//! after DEL gets their traffic. What the three see is compared, normalised for addresses that
//! differ by design (subnet, bridge, MACs).
//!
//! Left behind on purpose, as by any user of the reference plugin: its top-level chains
//! `CNI-HOSTPORT-DNAT`, `-SETMARK` and `-MASQ` (and their jumps from PREROUTING, OUTPUT and
//! POSTROUTING), shared by every container, which `portmap` never deletes. Everything else
//! (namespaces, veths, bridges, leases, per-container chains and rules) goes.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use podshim_cni::chain::{NetworkList, Runtime};
use podshim_cni::nat::{PortMapping, Protocol};
use serde_json::{json, Value};
use support::plugin::*;
use support::traffic::*;
use support::*;

const OURS: &str = env!("CARGO_BIN_EXE_podshim-bridge");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `[bridge, portmap]`
    Reference,
    /// `[podshim-bridge, portmap]`
    OursUnderPortmap,
    /// `[podshim-bridge]` with the capability
    Ours,
}

/// The four host ports of a scenario: TCP and UDP on every host address, TCP and UDP on
/// `hostIP` only. Random and apart from the other tests' ranges.
#[derive(Debug, Clone, Copy)]
struct Ports {
    tcp: u16,
    udp: u16,
    tcp_hip: u16,
    udp_hip: u16,
}

impl Ports {
    fn new() -> Self {
        let base = 30000 + (unique() % 600) as u16 * 4;
        Self {
            tcp: base,
            udp: base + 1,
            tcp_hip: base + 2,
            udp_hip: base + 3,
        }
    }

    fn mappings(&self, host_ip: &str) -> Vec<PortMapping> {
        let hip = Some(host_ip.parse().unwrap());
        let m = |host_port, container_port, protocol, host_ip| PortMapping {
            host_port,
            container_port,
            protocol,
            host_ip,
        };
        vec![
            m(self.tcp, 8080, Protocol::Tcp, None),
            m(self.udp, 8081, Protocol::Udp, None),
            m(self.tcp_hip, 8080, Protocol::Tcp, hip),
            m(self.udp_hip, 8081, Protocol::Udp, hip),
        ]
    }
}

/// One list on its own network, with a CNI_PATH directory of its plugins.
struct Scenario {
    net: Net,
    list: NetworkList,
    cni_path: tempfile::TempDir,
    ports: Ports,
}

impl Scenario {
    fn new(kind: Kind) -> Self {
        let net = Net::new();
        let exe = match kind {
            Kind::Reference => REFERENCE,
            _ => OURS,
        };
        // Net's config for both plugins, taken apart into the list's and the plugin's fields.
        let mut first = net.conf("1.0.0", exe);
        // Every route with a gw: the reference bridge's CHECK fails on its own ADD otherwise
        // (it installs a gw-less IPAM route via the gateway, then looks for it without one).
        first["ipam"]["routes"] = json!([{"dst": "10.252.0.0/16", "gw": net.ip(3)}]);
        let first_obj = first.as_object_mut().unwrap();
        first_obj.remove("cniVersion");
        first_obj.remove("name");
        let mut plugins = vec![first];
        match kind {
            Kind::Ours => plugins[0]["capabilities"] = json!({"portMappings": true}),
            _ => plugins.push(json!({"type": "portmap", "capabilities": {"portMappings": true}})),
        }
        let name = format!("pstpm{:08x}", unique());
        let list = NetworkList::parse(json!({
            "cniVersion": "1.0.0",
            "name": name,
            "plugins": plugins,
        }))
        .unwrap();
        let cni_path = tempfile::tempdir().unwrap();
        for p in ["bridge", "host-local", "portmap"] {
            std::os::unix::fs::symlink(Path::new(CNI_PATH).join(p), cni_path.path().join(p))
                .unwrap();
        }
        std::os::unix::fs::symlink(OURS, cni_path.path().join("podshim-bridge")).unwrap();
        Self {
            net,
            list,
            cni_path,
            ports: Ports::new(),
        }
    }

    fn runtime<'a>(&'a self, id: &'a str, pod: &'a Path, ports: &'a [PortMapping]) -> Runtime<'a> {
        Runtime {
            container_id: id,
            netns: pod,
            ifname: "eth0",
            cni_path: self.cni_path.path().to_str().unwrap(),
            args: None,
            port_mappings: ports,
        }
    }

    fn gateway(&self) -> String {
        self.net.ip(1)
    }

    /// host-local's lease files of this network.
    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.net.data_dir().join(&self.list.name))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The interfaces on the bridge.
    fn ports_on_bridge(&self) -> Vec<String> {
        std::fs::read_dir(
            Path::new("/sys/class/net")
                .join(self.net.bridge())
                .join("brif"),
        )
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
    }

    /// The NAT rules of the attachment `id`, as the rule sets list them: for `portmap`, the
    /// lines of `iptables-save -t nat` naming its container chain `CNI-DN-…` (found by the
    /// rule comment portmap writes); for podshim-bridge, the rules carrying the attachment's
    /// tag in `nft list ruleset` (our table, and iptables-nft's tables).
    fn rules_of(&self, id: &str) -> Vec<String> {
        let nat = iptables_nat();
        // iptables-save writes the comment `dnat name: "NAME" id: "ID"` with its quotes escaped.
        let commented = |l: &str| {
            l.contains("dnat name: ")
                && l.contains(&format!("\"{}\\\"", self.list.name))
                && l.contains(&format!("\"{id}\\\""))
        };
        let chains: Vec<String> = nat
            .lines()
            .filter(|l| commented(l))
            .filter_map(|l| l.split(" -j ").nth(1))
            .map(|c| c.split(' ').next().unwrap().to_owned())
            .collect();
        let tag = podshim_cni::nat::tag(&self.list.name, id, "eth0");
        let mut rules: Vec<String> = nat
            .lines()
            .filter(|l| commented(l) || l.contains(&tag) || chains.iter().any(|c| l.contains(c)))
            .map(str::to_owned)
            .collect();
        rules.extend(
            ruleset()
                .lines()
                .filter(|l| l.contains(&format!("\"{tag}\"")))
                .map(|l| l.trim().to_owned()),
        );
        rules
    }
}

fn iptables_nat() -> String {
    run_ok(&["iptables-save", "-t", "nat"])
}

fn ruleset() -> String {
    run_ok(&["nft", "list", "ruleset"])
}

/// Replaces the addresses that differ between the scenarios by design (each has its own
/// subnet) with placeholders: whole addresses only, so `.1` never eats into `.10`.
fn normalise(text: &str, s: &Scenario, remote: &Remote) -> String {
    let names = [
        (remote.ip.clone(), "<remote>"),
        (remote.host_ip.clone(), "<host>"),
        (s.net.ip(0), "<subnet>"),
        (s.gateway(), "<gateway>"),
        (s.net.ip(3), "<gw3>"),
        (s.net.ip(10), "<pod-a>"),
        (s.net.ip(11), "<pod-b>"),
    ];
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if len == 0 {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = &rest[..len];
        match names.iter().find(|(ip, _)| ip == token) {
            Some((_, name)) => out.push_str(name),
            None => out.push_str(token),
        }
        rest = &rest[len..];
    }
    out
}

/// What one scenario showed, normalised, for the comparison of the three.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// probe → answer (`-` for none).
    answers: BTreeMap<String, String>,
    /// The ADD result, normalised.
    result: Value,
    /// CHECK right after ADD: None when it passed, or the error.
    check: Option<String>,
}

/// Every probe of the mappings, from the other host and from the host itself.
fn probe(s: &Scenario, remote: &Remote, seen: &mut BTreeMap<String, String>, round: &str) {
    let p = s.ports;
    let gw = s.gateway();
    let mut put = |what: String, got: Option<String>| {
        let got = got.map_or("-".to_owned(), |g| normalise(&g, s, remote));
        seen.insert(format!("{round} {}", normalise(&what, s, remote)), got);
    };
    for (proto, any, hip) in [("tcp", p.tcp, p.tcp_hip), ("udp", p.udp, p.udp_hip)] {
        let h = &remote.host_ip;
        put(
            format!("remote->{h}:{proto}"),
            remote.ask(proto, &format!("{h}:{any}")),
        );
        put(
            format!("remote->{h}:{proto}/hostIP"),
            remote.ask(proto, &format!("{h}:{hip}")),
        );
        put(
            format!("remote->{gw}:{proto}"),
            remote.ask(proto, &format!("{gw}:{any}")),
        );
        put(
            format!("remote->{gw}:{proto}/hostIP"),
            remote.ask(proto, &format!("{gw}:{hip}")),
        );
        for host in [h.as_str(), gw.as_str(), "127.0.0.1"] {
            put(
                format!("host->{host}:{proto}"),
                ask(proto, &format!("{host}:{any}")),
            );
            put(
                format!("host->{host}:{proto}/hostIP"),
                ask(proto, &format!("{host}:{hip}")),
            );
        }
    }
}

/// The result with the scenario's own names and addresses replaced.
fn normalise_result(result: &Value, s: &Scenario, remote: &Remote) -> Value {
    let text = normalise(&normalize(result.clone()).to_string(), s, remote)
        .replace(s.net.bridge(), "<bridge>");
    serde_json::from_str(&text).unwrap()
}

/// Runs its closure when dropped: DEL of an attachment also when the test panics, so that no
/// rule outlives a failed run.
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// ADD of Pod A, probes, CHECK, DEL twice; ADD of Pod B on the same host ports, probes, DEL.
fn scenario(kind: Kind, remote: &Remote) -> Seen {
    let s = Scenario::new(kind);
    let mappings = s.ports.mappings(&remote.host_ip);
    let mut seen = Seen::default();
    let label = format!("{kind:?}");

    let pod_a = TestNetns::new();
    let id_a = format!("pstpm-a-{:08x}", unique());
    let pod_a_path = pod_a.path();
    let rt_a = s.runtime(&id_a, &pod_a_path, &mappings);
    let result = s
        .list
        .add(&rt_a)
        .unwrap_or_else(|e| panic!("{label} ADD: {e}"));
    let _del_a = Defer(|| {
        let _ = s.list.del(&rt_a, Some(&result));
    });
    assert_eq!(
        result["ips"][0]["address"],
        format!("{}/24", s.net.ip(10)),
        "{label}: {result}"
    );
    seen.result = normalise_result(&result, &s, remote);
    assert_eq!(s.leases(), [s.net.ip(10)], "{label}");
    let rules = s.rules_of(&id_a);
    match kind {
        Kind::Ours => {
            let tag = podshim_cni::nat::tag(&s.list.name, &id_a, "eth0");
            assert!(
                rules.iter().any(|r| r.contains(&tag)),
                "{label}: no rule tagged {tag}: {rules:?}"
            );
            assert!(
                !rules.iter().any(|r| r.contains("CNI-DN-")),
                "{label}: {rules:?}"
            );
        }
        _ => {
            // portmap: one DNAT per mapping in the container's chain, jumps to that chain
            // from CNI-HOSTPORT-DNAT; podshim-bridge (no capability here) adds nothing.
            let dnat: Vec<&String> = rules
                .iter()
                .filter(|r| r.starts_with("-A CNI-DN-") && r.contains("-j DNAT"))
                .collect();
            assert_eq!(dnat.len(), 4, "{label}: {rules:?}");
            assert!(
                dnat.iter()
                    .all(|r| r.contains(&format!("--to-destination {}:808", s.net.ip(10)))),
                "{label}: {dnat:?}"
            );
            assert!(
                rules.iter().any(|r| r.starts_with("-A CNI-HOSTPORT-DNAT")),
                "{label}: {rules:?}"
            );
            let tag = podshim_cni::nat::tag(&s.list.name, &id_a, "eth0");
            assert!(
                !ruleset().contains(&tag),
                "{label}: our rules under portmap"
            );
        }
    }

    let server_a = Server::start(&pod_a.name, "A", 8080, 8081);
    probe(&s, remote, &mut seen.answers, "A");
    seen.check = s
        .list
        .check(&rt_a, Some(&result))
        .err()
        .map(|e| normalise(&e.to_string(), &s, remote))
        .map(|e| match e.find("CNI-DN-") {
            Some(at) => format!("{}CNI-DN-<hash>{}", &e[..at], &e[at + 28..]),
            None => e,
        });

    for round in 0..2 {
        s.list
            .del(&rt_a, Some(&result))
            .unwrap_or_else(|e| panic!("{label} DEL #{round}: {e}"));
        let left = s.rules_of(&id_a);
        assert!(left.is_empty(), "{label} DEL #{round} left {left:?}");
        assert!(s.leases().is_empty(), "{label} DEL #{round}: lease left");
        assert!(
            s.ports_on_bridge().is_empty(),
            "{label} DEL #{round}: veth left"
        );
    }
    // Nothing forwards to A any more (A's server still listens in its namespace).
    let h = &remote.host_ip;
    assert_eq!(
        remote.ask("tcp", &format!("{h}:{}", s.ports.tcp)),
        None,
        "{label}"
    );
    assert_eq!(
        ask("tcp", &format!("127.0.0.1:{}", s.ports.tcp)),
        None,
        "{label}"
    );

    // Pod B takes the same host ports: their traffic is B's.
    let pod_b = TestNetns::new();
    let id_b = format!("pstpm-b-{:08x}", unique());
    let pod_b_path = pod_b.path();
    let rt_b = s.runtime(&id_b, &pod_b_path, &mappings);
    let result_b = s
        .list
        .add(&rt_b)
        .unwrap_or_else(|e| panic!("{label} ADD B: {e}"));
    let _del_b = Defer(|| {
        let _ = s.list.del(&rt_b, Some(&result_b));
    });
    let _server_b = Server::start(&pod_b.name, "B", 8080, 8081);
    for proto in ["tcp", "udp"] {
        let port = if proto == "tcp" {
            s.ports.tcp
        } else {
            s.ports.udp
        };
        assert_eq!(
            remote.ask(proto, &format!("{h}:{port}")),
            Some(format!("B {proto} {}", remote.ip)),
            "{label}: {proto} from the other host after B took the port"
        );
        let local = ask(proto, &format!("127.0.0.1:{port}"));
        assert!(
            local
                .as_deref()
                .is_some_and(|l| l.starts_with(&format!("B {proto} "))),
            "{label}: {proto} from the host after B took the port: {local:?}"
        );
    }
    for _ in 0..2 {
        s.list
            .del(&rt_b, Some(&result_b))
            .unwrap_or_else(|e| panic!("{label} DEL B: {e}"));
    }
    assert!(s.rules_of(&id_b).is_empty(), "{label}: B's rules left");
    assert!(s.leases().is_empty(), "{label}: B's lease left");
    assert!(s.ports_on_bridge().is_empty(), "{label}: B's veth left");
    drop(server_a);
    seen
}

#[test]
fn port_mappings_through_the_reference_chain_our_plugin_under_portmap_and_ours_alone() {
    require_reference();
    assert!(
        Path::new(CNI_PATH).join("portmap").exists(),
        "needs the reference {CNI_PATH}/portmap (apt-get install containernetworking-plugins)"
    );
    assert!(
        run(&["iptables-save", "-V"]).status.success(),
        "needs iptables-save (the reference portmap's rules are iptables rules)"
    );
    let remote = Remote::new();
    let reference = scenario(Kind::Reference, &remote);
    let under = scenario(Kind::OursUnderPortmap, &remote);
    let ours = scenario(Kind::Ours, &remote);
    // Shown when an assertion fails.
    eprintln!("reference: {reference:#?}\n[podshim-bridge, portmap]: {under:#?}\npodshim-bridge: {ours:#?}");

    // What the reference does, spelled out.
    let a = &reference.answers;
    let get = |k: &str| a.get(k).unwrap_or_else(|| panic!("no probe {k}")).as_str();
    for proto in ["tcp", "udp"] {
        // From the other host: DNAT keeps its address as the source; any host address works
        // for a mapping without hostIP, only hostIP for one with it.
        assert_eq!(
            get(&format!("A remote-><host>:{proto}")),
            format!("A {proto} <remote>")
        );
        assert_eq!(
            get(&format!("A remote-><host>:{proto}/hostIP")),
            format!("A {proto} <remote>")
        );
        assert_eq!(
            get(&format!("A remote-><gateway>:{proto}")),
            format!("A {proto} <remote>")
        );
        assert_eq!(get(&format!("A remote-><gateway>:{proto}/hostIP")), "-");
        // From the host itself, to its address on the link and to loopback.
        assert_eq!(
            get(&format!("A host-><host>:{proto}/hostIP")),
            format!("A {proto} <host>")
        );
        assert_eq!(get(&format!("A host->127.0.0.1:{proto}/hostIP")), "-");
        assert_eq!(get(&format!("A host-><gateway>:{proto}/hostIP")), "-");
        assert!(get(&format!("A host-><host>:{proto}")).starts_with(&format!("A {proto} ")));
        assert!(get(&format!("A host->127.0.0.1:{proto}")).starts_with(&format!("A {proto} ")));
    }
    // Same answers, same result shape, through all three.
    assert_eq!(
        under.answers, reference.answers,
        "[podshim-bridge, portmap] vs reference"
    );
    assert_eq!(
        ours.answers, reference.answers,
        "podshim-bridge vs reference"
    );
    assert_eq!(
        under.result, reference.result,
        "ADD result: [podshim-bridge, portmap]"
    );
    assert_eq!(ours.result, reference.result, "ADD result: podshim-bridge");
    assert_eq!(ours.check, None, "CHECK of podshim-bridge");
    // The reference portmap 1.1.1 also checks an IPv4 container's chain in ip6tables when
    // ip6tables works (fixed upstream after 1.1.1: "Only check ipv6 when an IPv6 is
    // configured"), so CHECK of a chain with portmap fails on such a host, whichever plugin
    // comes first; ours alone passes.
    assert_eq!(
        under.check, reference.check,
        "CHECK under portmap vs reference"
    );
    if let Some(e) = &reference.check {
        assert_eq!(
            e,
            "plugin portmap: could not check ipv6 dnat: \
             chain CNI-DN-<hash> not found in iptables table nat"
        );
    }
}
