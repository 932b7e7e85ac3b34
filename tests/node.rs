//! The bridge as node infrastructure: kept when the last Pod leaves (unless asked otherwise),
//! with one masquerade rule for the instance's whole subnet and the forward rules made with it;
//! `podshim gc` removes them once no Pod uses them, `podshim reset` removes every node-level
//! thing of an instance that has no Pods left. Boolean environment variables take the usual
//! spellings. Traffic goes only to namespaces made here; `nft` and `iptables-save` are the
//! witnesses of the rulesets.

use std::process::Command;
use std::time::Duration;

use podshim_tests::*;

const SUITE: u32 = 27;
const T: Duration = Duration::from_secs(60);

fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// The rules of `ip podshim` whose comment starts with `prefix`, as `nft` lists them.
fn nft_rules(prefix: &str) -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "podshim"])
        .output()
        .expect("nft (apt-get install nftables)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.contains(&format!("comment \"{prefix}")))
        .map(str::to_owned)
        .collect()
}

/// The lines of `iptables-save -t filter` that name `what`.
fn filter_rules(what: &str) -> Vec<String> {
    let out = Command::new("iptables-save")
        .args(["-t", "filter"])
        .output()
        .expect("iptables-save (apt-get install iptables)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(what))
        .map(str::to_owned)
        .collect()
}

fn one_shot(inst: &Instance, name: &str, n: u32, script: &str) -> (String, std::process::Output) {
    let u = uid(n);
    let yaml = pod(
        &inst.name(name),
        &u,
        "Never",
        &container("c", script, ""),
        "",
    );
    (u, inst.run(&yaml, T))
}

#[test]
fn the_bridge_and_one_masquerade_rule_for_the_subnet_stay_until_gc_finds_them_unused() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let node = format!("{}/node", inst.bridge);
    for n in 0..2 {
        let (u, out) = one_shot(&inst, &format!("keep{n}"), 10 + n, "true");
        ok(&out);
        assert!(link_exists(&inst.bridge), "run {n}: the bridge is kept");
        inst.assert_clean(&[&u]);
        // One rule for the subnet, none per Pod.
        let rules = nft_rules(&format!("{}/", inst.bridge));
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert!(
            rules[0].starts_with(&format!(
                "ip saddr {} ip daddr != {} ip daddr != 224.0.0.0/4 masquerade comment \"{node}\"",
                inst.subnet, inst.subnet
            )),
            "{rules:?}"
        );
        let forward = filter_rules(&format!("PODSHIM-FWD-{}", inst.bridge));
        assert_eq!(forward.len(), 4, "chain, jump, two rules: {forward:?}");
    }
    let out = inst.podshim(&["gc"], T);
    ok(&out);
    assert!(
        stdout(&out).contains(&format!("bridge {}: removed", inst.bridge)),
        "{}",
        stdout(&out)
    );
    assert!(!link_exists(&inst.bridge));
    assert!(nft_rules(&format!("{}/", inst.bridge)).is_empty());
    assert!(filter_rules(&format!("PODSHIM-FWD-{}", inst.bridge)).is_empty());
    // Nothing left to collect: gc says nothing of the bridge.
    let out = inst.podshim(&["gc"], T);
    ok(&out);
    assert!(!stdout(&out).contains("bridge"), "{}", stdout(&out));
}

/// A network namespace standing in for another network: a veth from the host with a /30 of
/// its own, a default route back through the host, and a one-shot TCP server that answers
/// with the address it saw the connection come from.
struct Remote {
    ns: String,
    link: String,
    host_ip: String,
    ip: String,
}

impl Remote {
    fn new(n: u32) -> Self {
        let tag = format!("{:x}{n:02x}", std::process::id() % 0xfff);
        let (ns, link) = (format!("pst-remote-{tag}"), format!("pstr{tag}"));
        let b = (std::process::id() % 60) * 4 + n * 4 % 16;
        let (host_ip, ip) = (format!("10.249.7.{}", b + 1), format!("10.249.7.{}", b + 2));
        let sh = |cmd: &str| {
            let st = Command::new("sh").args(["-ec", cmd]).status().unwrap();
            assert!(st.success(), "{cmd}");
        };
        sh(&format!("ip netns add {ns}"));
        let remote = Remote {
            ns,
            link,
            host_ip,
            ip,
        };
        let (ns, link, host_ip, ip) = (&remote.ns, &remote.link, &remote.host_ip, &remote.ip);
        sh(&format!(
            "ip link add {link} type veth peer name eth0 netns {ns}
             ip addr add {host_ip}/30 dev {link}; ip link set {link} up
             ip -n {ns} addr add {ip}/30 dev eth0; ip -n {ns} link set eth0 up
             ip -n {ns} link set lo up; ip -n {ns} route add default via {host_ip}"
        ));
        remote
    }

    /// Serves one connection on `port`: answers `HTTP/1.0 200` with the peer's address.
    fn serve_once(&self, port: u16) -> std::process::Child {
        let py = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',{port}))\ns.listen(1)\nprint('ready',flush=True)\n\
             c,a=s.accept()\nc.recv(1024)\nc.sendall(b'HTTP/1.0 200 OK\\r\\n\\r\\nfrom '+a[0].encode()+b'\\n')\nc.close()\n"
        );
        spawn_ready(Command::new("ip").args(["netns", "exec", &self.ns, "python3", "-c", &py]))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// What the remote server saw a Pod's connection come from.
fn seen_from_pod(inst: &Instance, remote: &Remote, name: &str, n: u32) -> String {
    let port = 20000 + (std::process::id() % 10000) as u16 + n as u16;
    let mut server = remote.serve_once(port);
    let (_, out) = one_shot(
        inst,
        name,
        n,
        &format!(
            "printf \"GET / HTTP/1.0\\r\\n\\r\\n\" | nc -w 5 {} {port} | tail -n 1",
            remote.ip
        ),
    );
    let _ = server.kill();
    let _ = server.wait();
    ok(&out);
    lines_of(&stdout(&out), "c").join("\n")
}

#[test]
fn pods_reach_another_network_through_the_subnets_masquerade_unless_it_is_off() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let remote = Remote::new(1);
    // By default the other network sees the host's address on its link.
    assert_eq!(
        seen_from_pod(&inst, &remote, "out", 20),
        format!("from {}", remote.host_ip)
    );
    // Without masquerading it sees the Pod's own address (it routes back through the host).
    let mut plain = Instance::new(SUITE);
    plain.import_busybox();
    plain.env.push(("PODSHIM_MASQUERADE".into(), "off".into()));
    let seen = seen_from_pod(&plain, &remote, "plain", 21);
    assert!(
        seen.starts_with(&format!("from {}.", plain.prefix)),
        "{seen}"
    );
    assert!(nft_rules(&format!("{}/", plain.bridge)).is_empty());
}

#[test]
fn reset_refuses_while_pods_are_left_then_removes_the_node_state() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(30);
    let name = inst.name("left");
    ok(&inst.detach(&pod(
        &name,
        &u,
        "Never",
        &container("c", "sleep 60", ""),
        "",
    )));
    let out = inst.podshim(&["reset"], T);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("pods are left") && stderr(&out).contains(&name),
        "{}",
        stderr(&out)
    );
    assert!(link_exists(&inst.bridge));
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
    let out = inst.podshim(&["reset"], T);
    ok(&out);
    assert!(
        stdout(&out).contains(&format!("bridge {}: removed", inst.bridge)),
        "{}",
        stdout(&out)
    );
    assert!(!link_exists(&inst.bridge));
    assert!(nft_rules(&format!("{}/", inst.bridge)).is_empty());
    assert!(filter_rules(&format!("PODSHIM-FWD-{}", inst.bridge)).is_empty());
    assert!(!inst.root.join("ipam").join(&inst.bridge).exists());
    assert!(!inst.state.join("runtime").exists());
    assert!(!inst.state.join("pods").exists());
    // Twice is fine.
    ok(&inst.podshim(&["reset"], T));
}

#[test]
fn boolean_environment_variables_take_the_usual_spellings() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    for (value, ok_) in [
        ("1", true),
        ("true", true),
        ("yes", true),
        ("on", true),
        ("TRUE", true),
        ("0", true),
        ("false", true),
        ("no", true),
        ("off", true),
        ("maybe", false),
    ] {
        for var in ["PODSHIM_KEEP_BRIDGE", "PODSHIM_MASQUERADE"] {
            let out = inst.command().arg("ps").env(var, value).output().unwrap();
            assert_eq!(out.status.success(), ok_, "{var}={value}: {}", stderr(&out));
        }
    }
    // And they mean what they say: no bridge kept, no masquerade rule.
    inst.env.push(("PODSHIM_KEEP_BRIDGE".into(), "0".into()));
    inst.env.push(("PODSHIM_MASQUERADE".into(), "no".into()));
    let (u, out) = one_shot(&inst, "spelled", 40, "true");
    ok(&out);
    assert!(!link_exists(&inst.bridge));
    assert!(nft_rules(&format!("{}/", inst.bridge)).is_empty());
    assert!(filter_rules(&format!("PODSHIM-FWD-{}", inst.bridge)).is_empty());
    inst.assert_clean(&[&u]);
}
