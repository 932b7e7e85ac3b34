//! `podshim-bridge`'s NAT, with each backend (nftables; iptables chosen by the config, or
//! because `nft` is not in the plugin's PATH): the `portMappings` capability (TCP and UDP, with
//! and without `hostIP`) reached from a network namespace standing in for another host and
//! from the host itself, `ipMasq` seen from that "remote" host, DEL and GC removing exactly
//! the rules of their attachments whatever backend made them, and CHECK naming a rule that
//! went missing. All traffic stays on loopback, the host's addresses and the namespaces made
//! here; `nft list` and `iptables-save` are the witnesses of the rulesets.

mod support;

use serde_json::{json, Value};
use support::plugin::*;
use support::traffic::*;
use support::*;

const OURS: &str = env!("CARGO_BIN_EXE_podshim-bridge");

/// How many rules of `ip podshim` carry `tag`, as `nft` lists them.
fn rules_tagged(tag: &str) -> usize {
    let out = run(&["nft", "list", "table", "ip", "podshim"]);
    String::from_utf8_lossy(&out.stdout)
        .matches(&format!("comment \"{tag}\""))
        .count()
}

/// `iptables-save -t nat`, in the network namespace `netns` when given.
fn iptables_save(netns: Option<&str>) -> String {
    let mut cmd = vec![];
    if let Some(ns) = netns {
        cmd.extend(["ip", "netns", "exec", ns]);
    }
    cmd.extend(["iptables-save", "-t", "nat"]);
    run_ok(&cmd)
}

/// The `-A` lines of `saved` whose comment is `tag`.
fn tagged_lines(saved: &str, tag: &str) -> Vec<String> {
    saved
        .lines()
        .filter(|l| l.starts_with("-A "))
        .filter(|l| {
            l.contains(&format!("--comment \"{tag}\"")) || l.contains(&format!("--comment {tag} "))
        })
        .map(str::to_owned)
        .collect()
}

/// How many iptables rules of the host's `nat` table carry `tag`.
fn iptables_tagged(tag: &str) -> usize {
    tagged_lines(&iptables_save(None), tag).len()
}

/// How many rules carry `tag`: (nftables, iptables).
fn tagged(tag: &str) -> (usize, usize) {
    (rules_tagged(tag), iptables_tagged(tag))
}

/// Runs `iptables -t nat OP` with the rule of the `iptables-save` line `line` (`-A CHAIN …`).
fn iptables_rule(netns: Option<&str>, op: &str, line: &str) {
    let mut cmd = vec![];
    if let Some(ns) = netns {
        cmd.extend(["ip", "netns", "exec", ns]);
    }
    cmd.extend(["iptables", "-t", "nat", op]);
    let spec = line.strip_prefix("-A ").unwrap().replace('"', "");
    cmd.extend(spec.split_whitespace());
    run_ok(&cmd);
}

/// The rule of `tag` in our nft chain `chain` that contains `needle`: its text and handle.
fn nft_rule(chain: &str, tag: &str, needle: &str) -> (String, String) {
    let out = run_ok(&["nft", "-a", "list", "chain", "ip", "podshim", chain]);
    let line = out
        .lines()
        .map(str::trim)
        .find(|l| l.contains(&format!("comment \"{tag}\"")) && l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle} in {out}"));
    let (rule, handle) = line.split_once(" # handle ").unwrap();
    (rule.to_owned(), handle.to_owned())
}

/// How the plugin gets its NAT backend in a test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// Chosen by the plugin: nftables, which this host has.
    Nftables,
    /// `ipMasqBackend: iptables`.
    IptablesByConfig,
    /// Chosen by the plugin: iptables, `nft` not being in its PATH.
    IptablesWithoutNft,
}

/// Where the plugin runs for `how`: with PATH a directory of links to the iptables tools and
/// `ip` only, for [`How::IptablesWithoutNft`] (the directory lives as long as the guard).
fn host_for(how: How) -> (Host, Option<tempfile::TempDir>) {
    if how != How::IptablesWithoutNft {
        return (Host::default(), None);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for tool in ["iptables", "iptables-save", "iptables-restore", "ip"] {
        let found = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|f| f.exists())
            .unwrap_or_else(|| panic!("{tool} is not in PATH (apt-get install iptables)"));
        std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap();
    }
    assert!(!dir.path().join("nft").exists());
    let host = Host {
        netns: None,
        path: Some(dir.path().to_owned()),
    };
    (host, Some(dir))
}

fn require_iptables() {
    assert!(
        std::process::Command::new("iptables-save")
            .arg("-V")
            .output()
            .is_ok(),
        "privileged test: needs iptables-save and iptables-restore (apt-get install iptables)"
    );
}

/// Runs GC for the network of `conf` with no valid attachment when dropped, so that a test
/// leaves no rule (nor, when no other attachment has any, our iptables chains) even when it
/// fails half-way.
struct Collect(Value);

impl Drop for Collect {
    fn drop(&mut self) {
        let mut gc = self.0.clone();
        gc["cniVersion"] = json!("1.1.0");
        gc["cni.dev/valid-attachments"] = json!([]);
        let out = cni(OURS, "GC", "", None, &gc);
        if !std::thread::panicking() {
            assert!(out.ok, "{}", out.json);
        }
    }
}

/// Removes the NAT rules of these tags (both backends) when dropped, so that a test leaves no
/// rule even when it fails half-way.
struct Remove(Vec<String>);

impl Drop for Remove {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = podshim_cni::nat::remove(t);
        }
    }
}

/// `conf` with the ADD result as `prevResult`, for CHECK.
fn with_prev(conf: &Value, add: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = add.clone();
    c
}

fn port() -> u16 {
    20000 + (unique() % 10000) as u16
}

/// Our config for `net`, under a network name of its own (GC is scoped by network name).
fn conf(net: &Net, name: &str, masq: bool, mappings: Value) -> Value {
    let mut c = net.conf("1.0.0", OURS);
    c["name"] = json!(name);
    c["ipMasq"] = json!(masq);
    c["capabilities"] = json!({"portMappings": true});
    c["runtimeConfig"] = json!({ "portMappings": mappings });
    c
}

fn pod_ip(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_owned()
}

#[test]
fn port_mappings_reach_the_pod_from_another_host_and_the_host_and_ip_masq_hides_it() {
    reachability(How::Nftables);
}

#[test]
fn the_same_with_iptables_chosen_by_the_config() {
    reachability(How::IptablesByConfig);
}

#[test]
fn the_same_with_iptables_when_nft_is_not_in_the_plugins_path() {
    reachability(How::IptablesWithoutNft);
}

fn reachability(how: How) {
    require_reference();
    require_iptables();
    let (host, _path) = host_for(how);
    let net = Net::new();
    let pod = TestNetns::new();
    let remote = Remote::new();
    let (any_tcp, any_udp, only) = (port(), port() + 10000, port() + 20000);
    let name = format!("pstnat{:x}", unique());
    let id = format!("ctr-{:x}", unique());
    let mut c = conf(
        &net,
        &name,
        true,
        json!([
            {"hostPort": any_tcp, "containerPort": 8080, "protocol": "tcp"},
            {"hostPort": any_udp, "containerPort": 8081, "protocol": "udp"},
            {"hostPort": only, "containerPort": 8080, "protocol": "tcp", "hostIP": remote.host_ip},
        ]),
    );
    if how == How::IptablesByConfig {
        c["ipMasqBackend"] = json!("iptables");
    }
    let _collect = Collect(c.clone());
    let plugin = |command: &str, c: &Value| {
        cni_in(&host, OURS, command, &id, Some(&pod.name), &c.to_string())
    };
    let add = plugin("ADD", &c);
    assert!(add.ok, "{}", add.json);
    let ip = pod_ip(&add.json);
    let tag = format!("{name}/{id}/eth0");
    if how == How::Nftables {
        // Per mapping: DNAT in prerouting and output, loopback and hairpin masquerade.
        assert_eq!(tagged(&tag), (3 * 4 + 1, 0));
        // The nfnetlink listing DEL uses sees exactly what `nft -j list` sees.
        let mine = |rules: Vec<podshim_cni::nat::nft::Rule>| -> Vec<_> {
            let mut r: Vec<_> = rules.into_iter().filter(|r| r.tag == tag).collect();
            r.sort_by_key(|r| r.handle);
            r
        };
        assert_eq!(
            mine(podshim_cni::nat::nft::listed().unwrap()),
            mine(podshim_cni::nat::nft::listed_by_nft().unwrap())
        );
        assert_eq!(
            mine(podshim_cni::nat::nft::listed().unwrap()).len(),
            3 * 4 + 1
        );
    } else {
        // Per mapping: DNAT (one chain for PREROUTING and OUTPUT), loopback and hairpin.
        assert_eq!(tagged(&tag), (0, 3 * 3 + 1));
        let saved = iptables_save(None);
        for jump in [
            "-A PREROUTING -j PODSHIM-HOSTPORTS",
            "-A OUTPUT -j PODSHIM-HOSTPORTS",
            "-A POSTROUTING -j PODSHIM-MASQ",
        ] {
            assert_eq!(saved.lines().filter(|l| *l == jump).count(), 1, "{saved}");
        }
    }
    let check = plugin("CHECK", &with_prev(&c, &add.json));
    assert!(check.ok, "{}", check.json);
    // Kept to the end: the check after DEL asks for it again.
    let _pod_server = Server::start(&pod.name, "pod", 8080, 8081);

    // From the other host: DNAT keeps its address as the source.
    let seen = Some(format!("pod tcp {}", remote.ip));
    assert_eq!(
        remote.ask("tcp", &format!("{}:{any_tcp}", remote.host_ip)),
        seen
    );
    assert_eq!(
        remote.ask("tcp", &format!("{}:{only}", remote.host_ip)),
        seen
    );
    assert_eq!(
        remote.ask("udp", &format!("{}:{any_udp}", remote.host_ip)),
        Some(format!("pod udp {}", remote.ip))
    );
    // From the host itself, to one of its addresses and to its loopback (route_localnet).
    for host in [remote.host_ip.as_str(), "127.0.0.1"] {
        let got = tcp(&format!("{host}:{any_tcp}"));
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with("pod tcp ")),
            "{host}: {got:?}"
        );
        let got = udp(&format!("{host}:{any_udp}"));
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with("pod udp ")),
            "{host}: {got:?}"
        );
    }
    // hostIP is respected: the same port on another host address is not forwarded.
    assert_eq!(tcp(&format!("127.0.0.1:{only}")), None);
    assert!(tcp(&format!("{}:{only}", remote.host_ip)).is_some());

    // ipMasq: the other host sees the Pod's connection come from the host's address.
    let _remote_server = Server::start(&remote.ns.name, "remote", 9090, 9090);
    let got = in_netns(&pod.name, || tcp(&format!("{}:9090", remote.ip)));
    assert_eq!(
        got,
        Some(format!("remote tcp {}", remote.host_ip)),
        "pod {ip}"
    );

    let del = plugin("DEL", &c);
    assert!(del.ok, "{}", del.json);
    assert_eq!(tagged(&tag), (0, 0));
    assert_eq!(
        remote.ask("tcp", &format!("{}:{any_tcp}", remote.host_ip)),
        None
    );
    let again = plugin("DEL", &c);
    assert!(again.ok, "{}", again.json);
}

#[test]
fn gc_removes_the_rules_of_attachments_not_in_the_valid_list() {
    require_reference();
    let net = Net::new();
    let name = format!("pstnat{:x}", unique());
    let (a, b) = (
        format!("ctr-a{:x}", unique()),
        format!("ctr-b{:x}", unique()),
    );
    let (na, nb) = (TestNetns::new(), TestNetns::new());
    let c = conf(
        &net,
        &name,
        true,
        json!([{"hostPort": port(), "containerPort": 80}]),
    );
    let mut cb = c.clone();
    cb["runtimeConfig"]["portMappings"][0]["hostPort"] = json!(port() + 10000);
    for (id, ns, c) in [(&a, &na, &c), (&b, &nb, &cb)] {
        let add = cni(OURS, "ADD", id, Some(&ns.name), c);
        assert!(add.ok, "{}", add.json);
    }
    let (ta, tb) = (format!("{name}/{a}/eth0"), format!("{name}/{b}/eth0"));
    assert_eq!((rules_tagged(&ta), rules_tagged(&tb)), (5, 5));
    let mut gc = c.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": a, "ifname": "eth0"}]);
    let out = cni(OURS, "GC", "", None, &gc);
    assert!(out.ok, "{}", out.json);
    assert_eq!((rules_tagged(&ta), rules_tagged(&tb)), (5, 0));
    let del = cni(OURS, "DEL", &a, Some(&na.name), &c);
    assert!(del.ok, "{}", del.json);
    assert_eq!(rules_tagged(&ta), 0);
}

#[test]
fn check_names_a_missing_dnat_or_masquerade_rule_with_nftables() {
    check_names_missing_rules("nftables");
}

#[test]
fn check_names_a_missing_dnat_or_masquerade_rule_with_iptables() {
    check_names_missing_rules("iptables");
}

/// CHECK passes after ADD, fails naming the DNAT rule the test deleted, passes once it is back,
/// and fails naming the masquerade rule the test deleted then.
fn check_names_missing_rules(backend: &str) {
    require_reference();
    require_iptables();
    let net = Net::new();
    let pod = TestNetns::new();
    let (tcp_port, udp_port) = (port(), port() + 10000);
    let name = format!("pstnat{:x}", unique());
    let id = format!("ctr-{:x}", unique());
    let mut c = conf(
        &net,
        &name,
        true,
        json!([
            {"hostPort": tcp_port, "containerPort": 8080, "protocol": "tcp"},
            {"hostPort": udp_port, "containerPort": 8081, "protocol": "udp"},
        ]),
    );
    c["ipMasqBackend"] = json!(backend);
    let _collect = Collect(c.clone());
    let add = cni(OURS, "ADD", &id, Some(&pod.name), &c);
    assert!(add.ok, "{}", add.json);
    let ip = pod_ip(&add.json);
    let tag = format!("{name}/{id}/eth0");
    let check = || {
        cni(
            OURS,
            "CHECK",
            &id,
            Some(&pod.name),
            &with_prev(&c, &add.json),
        )
    };
    let out = check();
    assert!(out.ok, "{}", out.json);

    // Delete one rule of the attachment and return what puts it back.
    let delete = |chain: &str, needle: &str| -> Box<dyn Fn()> {
        if backend == "nftables" {
            let (rule, handle) = nft_rule(chain, &tag, needle);
            run_ok(&[
                "nft", "delete", "rule", "ip", "podshim", chain, "handle", &handle,
            ]);
            let chain = chain.to_owned();
            Box::new(move || {
                run_ok(&["nft", "insert", "rule", "ip", "podshim", &chain, &rule]);
            })
        } else {
            let line = tagged_lines(&iptables_save(None), &tag)
                .into_iter()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("no iptables rule of {tag} with {needle}"));
            iptables_rule(None, "-D", &line);
            Box::new(move || iptables_rule(None, "-I", &line))
        }
    };
    let (dnat_chain, masq_chain) = match backend {
        "nftables" => ("output", "postrouting"),
        _ => ("PODSHIM-HOSTPORTS", "PODSHIM-MASQ"),
    };
    let restore = delete(dnat_chain, &format!("dport {tcp_port} "));
    let out = check();
    assert_eq!(out.code(), 101, "{}", out.json);
    let msg = out.msg();
    assert!(
        msg.contains(&format!(
            "hostPort {tcp_port}/tcp DNAT rule for {ip}:8080 in {backend} chain "
        )) && msg.contains(&format!("{dnat_chain} missing")),
        "{msg}"
    );
    restore();
    let out = check();
    assert!(out.ok, "{}", out.json);

    let masq = match backend {
        "nftables" => "!= 224.0.0.0/4",
        _ => "--dst-range",
    };
    let _gone = delete(masq_chain, masq);
    let out = check();
    assert_eq!(out.code(), 101, "{}", out.json);
    let msg = out.msg();
    assert!(
        msg.contains(&format!(
            "ipMasq masquerade rule for {ip} leaving {} in {backend} chain",
            net.subnet()
        )) && msg.contains("missing"),
        "{msg}"
    );

    let del = cni(OURS, "DEL", &id, Some(&pod.name), &c);
    assert!(del.ok, "{}", del.json);
    assert_eq!(tagged(&tag), (0, 0));
}

#[test]
fn del_after_an_add_with_the_other_backend_leaves_no_rule_in_either() {
    require_reference();
    require_iptables();
    let net = Net::new();
    let pod = TestNetns::new();
    let name = format!("pstnat{:x}", unique());
    let id = format!("ctr-{:x}", unique());
    let c = conf(
        &net,
        &name,
        true,
        json!([{"hostPort": port(), "containerPort": 80, "protocol": "udp"}]),
    );
    let _collect = Collect(c.clone());
    let tag = format!("{name}/{id}/eth0");
    // ADD with one backend, DEL with a config naming the other (either field name).
    for (add_with, del_with) in [
        (("ipMasqBackend", "iptables"), ("backend", "nftables")),
        (("backend", "nftables"), ("ipMasqBackend", "iptables")),
    ] {
        let mut ca = c.clone();
        ca[add_with.0] = json!(add_with.1);
        let add = cni(OURS, "ADD", &id, Some(&pod.name), &ca);
        assert!(add.ok, "{}", add.json);
        let made = tagged(&tag);
        match add_with.1 {
            "iptables" => assert_eq!(made, (0, 4)),
            _ => assert_eq!(made, (5, 0)),
        }
        let mut cd = c.clone();
        cd[del_with.0] = json!(del_with.1);
        let del = cni(OURS, "DEL", &id, Some(&pod.name), &cd);
        assert!(del.ok, "{}", del.json);
        assert_eq!(tagged(&tag), (0, 0));
    }
}

/// An ADD with one backend takes the attachment's rules out of the other: a rule of an earlier
/// ADD with the other choice (never deleted) cannot stay to win over the new ones.
#[test]
fn add_with_one_backend_takes_the_attachments_rules_out_of_the_other() {
    require_root();
    require_iptables();
    let name = format!("pstnat{:x}", unique());
    let tag = podshim_cni::nat::tag(&name, &format!("ctr-{:x}", unique()), "eth0");
    let spec = podshim_cni::nat::NatSpec {
        tag: &tag,
        pod_ip: "10.252.9.2".parse().unwrap(),
        subnet: "10.252.9.0/24".parse().unwrap(),
        masquerade: true,
        ports: &[],
        bridge: "unused",
    };
    use podshim_cni::nat::{apply_with, remove, Backend};
    let _cleanup = Remove(vec![tag.clone()]);
    apply_with(Backend::Iptables, &spec).unwrap();
    let (nft, ipt) = tagged(&tag);
    assert!(
        nft == 0 && ipt > 0,
        "iptables ADD: nft {nft}, iptables {ipt}"
    );
    apply_with(Backend::Nftables, &spec).unwrap();
    let (nft, ipt) = tagged(&tag);
    assert!(
        nft > 0 && ipt == 0,
        "nftables ADD: nft {nft}, iptables {ipt}"
    );
    apply_with(Backend::Iptables, &spec).unwrap();
    let (nft, ipt) = tagged(&tag);
    assert!(
        nft == 0 && ipt > 0,
        "iptables ADD again: nft {nft}, iptables {ipt}"
    );
    remove(&tag).unwrap();
    assert_eq!(tagged(&tag), (0, 0));
}

/// How many nft rules of `tag` are in chain `chain` of our table.
fn nft_in_chain(chain: &str, tag: &str) -> usize {
    run_ok(&["nft", "list", "chain", "ip", "podshim", chain])
        .matches(&format!("comment \"{tag}\""))
        .count()
}

/// An ADD makes way for its host ports in the other backend: a stale DNAT rule of another
/// attachment there (an ADD never deleted) for the same port goes, so it cannot take the new
/// attachment's packets; that attachment's other rules, and other ports' rules, stay.
#[test]
fn add_takes_stale_dnat_rules_for_its_host_ports_out_of_the_other_backend() {
    use podshim_cni::nat::{apply_with, remove, Backend, NatSpec, PortMapping, Protocol};
    require_root();
    require_iptables();
    let net = TestNetwork::new();
    run_ok(&["ip", "link", "add", &net.cfg.bridge, "type", "bridge"]);
    let name = format!("pstnat{:x}", unique());
    let tags: Vec<String> = ["stale", "other", "new"]
        .iter()
        .map(|t| podshim_cni::nat::tag(&name, &format!("{t}-{:x}", unique()), "eth0"))
        .collect();
    let _cleanup = Remove(tags.clone());
    let (p, q) = (port(), port());
    let mapping = |host_port| {
        [PortMapping {
            host_port,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        }]
    };
    let (on_p, on_q) = (mapping(p), mapping(q));
    fn spec<'a>(tag: &'a str, ports: &'a [PortMapping], bridge: &'a str) -> NatSpec<'a> {
        NatSpec {
            tag,
            pod_ip: "10.252.8.2".parse().unwrap(),
            subnet: "10.252.8.0/24".parse().unwrap(),
            masquerade: false,
            ports,
            bridge,
        }
    }
    let br = net.cfg.bridge.as_str();
    for (old, new) in [
        (Backend::Iptables, Backend::Nftables),
        (Backend::Nftables, Backend::Iptables),
    ] {
        apply_with(old, &spec(&tags[0], &on_p, br)).unwrap();
        apply_with(old, &spec(&tags[1], &on_q, br)).unwrap();
        let dnat = |tag: &str| match old {
            Backend::Iptables => tagged_lines(&iptables_save(None), tag)
                .iter()
                .filter(|l| l.contains("-j DNAT"))
                .count(),
            Backend::Nftables => nft_in_chain("prerouting", tag) + nft_in_chain("output", tag),
        };
        let all = |tag: &str| match old {
            Backend::Iptables => iptables_tagged(tag),
            Backend::Nftables => rules_tagged(tag),
        };
        let (stale_all, other_all) = (all(&tags[0]), all(&tags[1]));
        assert!(
            dnat(&tags[0]) > 0 && dnat(&tags[1]) > 0,
            "{old:?}: DNAT rules made"
        );

        apply_with(new, &spec(&tags[2], &on_p, br)).unwrap();
        assert_eq!(
            dnat(&tags[0]),
            0,
            "{old:?}: the stale DNAT for port {p} goes"
        );
        assert_eq!(
            all(&tags[0]),
            stale_all - dnat_count(old),
            "{old:?}: the stale attachment's other rules stay"
        );
        assert_eq!(
            all(&tags[1]),
            other_all,
            "{old:?}: another port's rules stay"
        );
        for t in &tags {
            remove(t).unwrap();
        }
        assert_eq!(tagged(&tags[0]), (0, 0));
    }
}

/// DNAT rules per forwarded port: iptables has one (its chain is jumped to from PREROUTING and
/// OUTPUT), nftables one in prerouting and one in output.
fn dnat_count(backend: podshim_cni::nat::Backend) -> usize {
    match backend {
        podshim_cni::nat::Backend::Iptables => 1,
        podshim_cni::nat::Backend::Nftables => 2,
    }
}

#[test]
fn gc_removes_the_rules_of_attachments_not_in_the_valid_list_from_both_backends() {
    require_reference();
    require_iptables();
    let net = Net::new();
    let name = format!("pstnat{:x}", unique());
    let c = conf(&net, &name, true, json!([]));
    let _collect = Collect(c.clone());
    // a: nftables, b and c: iptables; each its own host port.
    let mut pods = Vec::new();
    for (i, backend) in ["nftables", "iptables", "iptables"].into_iter().enumerate() {
        let id = format!("ctr-{i}{:x}", unique());
        let ns = TestNetns::new();
        let mut ci = c.clone();
        ci["ipMasqBackend"] = json!(backend);
        ci["runtimeConfig"]["portMappings"] =
            json!([{"hostPort": port() + 10000 * i as u16, "containerPort": 80}]);
        let add = cni(OURS, "ADD", &id, Some(&ns.name), &ci);
        assert!(add.ok, "{}", add.json);
        pods.push((format!("{name}/{id}/eth0"), id, ns));
    }
    let counts = || -> Vec<(usize, usize)> { pods.iter().map(|(tag, _, _)| tagged(tag)).collect() };
    assert_eq!(counts(), [(5, 0), (0, 4), (0, 4)]);
    let mut gc = c.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([
        {"containerID": pods[0].1, "ifname": "eth0"},
        {"containerID": pods[2].1, "ifname": "eth0"},
    ]);
    let out = cni(OURS, "GC", "", None, &gc);
    assert!(out.ok, "{}", out.json);
    assert_eq!(counts(), [(5, 0), (0, 0), (0, 4)]);
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = cni(OURS, "GC", "", None, &gc);
    assert!(out.ok, "{}", out.json);
    assert_eq!(counts(), [(0, 0), (0, 0), (0, 0)]);
}

/// In a network namespace standing in for the host, where no other test adds rules: ADD
/// makes podshim's chains and jumps, CHECK notices a jump gone, DEL leaves the chains (as the
/// nftables backend leaves its table), GC removes them once empty: the `nat` table is as it
/// was, and no nftables table was made.
#[test]
fn iptables_chains_come_with_the_first_add_and_go_with_gc_once_empty() {
    require_reference();
    require_iptables();
    let net = Net::new();
    let host_ns = TestNetns::new();
    let pod = TestNetns::new();
    let host = Host {
        netns: Some(host_ns.name.clone()),
        path: None,
    };
    let name = format!("pstnat{:x}", unique());
    let id = format!("ctr-{:x}", unique());
    let mut c = conf(
        &net,
        &name,
        true,
        json!([{"hostPort": 8080, "containerPort": 80}]),
    );
    c["backend"] = json!("iptables");
    let plugin = |command: &str, c: &Value| {
        cni_in(&host, OURS, command, &id, Some(&pod.name), &c.to_string())
    };
    let rules = || -> Vec<String> {
        iptables_save(Some(&host_ns.name))
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let before = rules();
    assert!(!before.iter().any(|l| l.contains("PODSHIM")), "{before:?}");

    let add = plugin("ADD", &c);
    assert!(add.ok, "{}", add.json);
    let after_add = rules();
    for line in [
        ":PODSHIM-HOSTPORTS - [0:0]",
        ":PODSHIM-MASQ - [0:0]",
        "-A PREROUTING -j PODSHIM-HOSTPORTS",
        "-A OUTPUT -j PODSHIM-HOSTPORTS",
        "-A POSTROUTING -j PODSHIM-MASQ",
    ] {
        assert!(after_add.iter().any(|l| l == line), "{line}: {after_add:?}");
    }
    let tag = format!("{name}/{id}/eth0");
    let saved = iptables_save(Some(&host_ns.name));
    assert_eq!(tagged_lines(&saved, &tag).len(), 4, "{saved}");
    assert_eq!(
        iptables_tagged(&tag),
        0,
        "the host's own table is untouched"
    );

    let check = || plugin("CHECK", &with_prev(&c, &add.json));
    let out = check();
    assert!(out.ok, "{}", out.json);
    iptables_rule(Some(&host_ns.name), "-D", "-A OUTPUT -j PODSHIM-HOSTPORTS");
    let out = check();
    assert_eq!(out.code(), 101, "{}", out.json);
    assert!(
        out.msg()
            .contains("iptables jump from nat OUTPUT to PODSHIM-HOSTPORTS missing"),
        "{}",
        out.msg()
    );

    let del = plugin("DEL", &c);
    assert!(del.ok, "{}", del.json);
    let after_del = rules();
    assert!(
        after_del.iter().any(|l| l == ":PODSHIM-MASQ - [0:0]"),
        "{after_del:?}"
    );
    assert!(
        tagged_lines(&after_del.join("\n"), &tag).is_empty(),
        "{after_del:?}"
    );

    let mut gc = c.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([]);
    let out = cni_in(&host, OURS, "GC", "", None, &gc.to_string());
    assert!(out.ok, "{}", out.json);
    assert_eq!(rules(), before);
    let tables = run_ok(&[
        "ip",
        "netns",
        "exec",
        &host_ns.name,
        "nft",
        "list",
        "tables",
    ]);
    assert!(!tables.contains("podshim"), "{tables}");
}

/// Without `nft` in its PATH, the plugin reads our nftables table over nfnetlink alone: an ADD
/// passes over another attachment's nftables DNAT rules for other host ports (it used to run
/// `nft -j list` to read their ports, and failed), and one for the same host port, which it
/// would have to remove with `nft`, is refused with the reason.
#[test]
fn without_nft_an_add_reads_other_attachments_nftables_rules_over_nfnetlink() {
    use podshim_cni::nat::{apply_with, Backend, NatSpec, PortMapping, Protocol};
    require_reference();
    require_iptables();
    let (host, _path) = host_for(How::IptablesWithoutNft);
    let net = Net::new();
    let pod = TestNetns::new();
    let name = format!("pstnat{:x}", unique());
    let other = podshim_cni::nat::tag(&name, &format!("other-{:x}", unique()), "eth0");
    let _cleanup = Remove(vec![other.clone()]);
    let other_net = TestNetwork::new();
    run_ok(&["ip", "link", "add", &other_net.cfg.bridge, "type", "bridge"]);
    let (theirs, mine) = (port(), port() + 10000);
    let theirs_mapping = [PortMapping {
        host_port: theirs,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    apply_with(
        Backend::Nftables,
        &NatSpec {
            tag: &other,
            pod_ip: "10.252.9.2".parse().unwrap(),
            subnet: "10.252.9.0/24".parse().unwrap(),
            masquerade: false,
            ports: &theirs_mapping,
            bridge: &other_net.cfg.bridge,
        },
    )
    .unwrap();
    assert_eq!(nft_in_chain("prerouting", &other), 1);

    let id = format!("ctr-{:x}", unique());
    let on = |host_port: u16| {
        conf(
            &net,
            &name,
            false,
            json!([{"hostPort": host_port, "containerPort": 8080, "protocol": "tcp"}]),
        )
    };
    let c = on(mine);
    let _collect = Collect(c.clone());
    let add = cni_in(&host, OURS, "ADD", &id, Some(&pod.name), &c.to_string());
    assert!(add.ok, "{}", add.json);
    let tag = format!("{name}/{id}/eth0");
    assert_eq!(
        tagged(&tag),
        (0, 3),
        "DNAT, loopback and hairpin masquerade in iptables"
    );
    assert_eq!(
        nft_in_chain("prerouting", &other),
        1,
        "the other attachment's rule stays"
    );
    let del = cni_in(&host, OURS, "DEL", &id, Some(&pod.name), &c.to_string());
    assert!(del.ok, "{}", del.json);
    assert_eq!(tagged(&tag), (0, 0));

    let c = on(theirs);
    let add = cni_in(&host, OURS, "ADD", &id, Some(&pod.name), &c.to_string());
    assert!(
        !add.ok,
        "a stale nftables DNAT rule for the port cannot go without nft"
    );
    assert!(
        add.json["details"]
            .as_str()
            .is_some_and(|d| d.contains("nft command is missing")),
        "{}",
        add.json
    );
    assert_eq!(tagged(&tag), (0, 0), "nothing of the failed ADD is left");
    assert_eq!(nft_in_chain("prerouting", &other), 1);
    let del = cni_in(&host, OURS, "DEL", &id, Some(&pod.name), &c.to_string());
    assert!(del.ok, "{}", del.json);
}
