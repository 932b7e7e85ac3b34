//! End-to-end tests of `--cni-conf`: podshim takes its Pods' network from a CNI network
//! configuration list, run plugin by plugin as a container runtime does. The same Pod runs with
//! the reference plugins (`bridge` + `host-local` from Debian's containernetworking-plugins) and
//! with `podshim-bridge`; both containers share the IP from the chain's result, and teardown
//! (or `podshim gc` after a SIGKILL) runs DEL from the journal and leaves no lease, no veth and
//! no rule. All traffic stays between this host and the test's own bridge.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podshim_tests::{
    container, http_get, ipv4_of, lines_of, ok, pod, podshim_bin, stderr, stdout, term, uid,
    wait_output, Instance,
};

const SUITE: u32 = 7;
const T: Duration = Duration::from_secs(60);
const REFERENCE: &str = "/usr/lib/cni";

/// The network of one test: its bridge (deleted on drop: neither plugin deletes a bridge),
/// subnet, host-local data directory and the config file podshim is given.
struct Network {
    name: String,
    bridge: String,
    prefix: String,
    data_dir: PathBuf,
}

impl Network {
    /// A conflist of `plugin` (bridge semantics) + host-local, written into the instance's dir
    /// with a CNI_PATH dir of symlinks to the reference plugins and podshim-bridge; sets the
    /// instance's PODSHIM_CNI_CONF and PODSHIM_CNI_PATH.
    fn new(inst: &mut Instance, plugin: &str, extra: Option<serde_json::Value>) -> Self {
        Self::with_version(inst, plugin, "1.0.0", extra)
    }

    /// [`Network::new`] with the list's `cniVersion`.
    fn with_version(
        inst: &mut Instance,
        plugin: &str,
        version: &str,
        extra: Option<serde_json::Value>,
    ) -> Self {
        for p in ["bridge", "host-local"] {
            assert!(
                Path::new(REFERENCE).join(p).is_file(),
                "{REFERENCE}/{p} not found: install containernetworking-plugins (scripts/install-deps.sh)"
            );
        }
        let ours = podshim_bin().with_file_name("podshim-bridge");
        assert!(
            ours.is_file(),
            "{} not found: run scripts/build.sh",
            ours.display()
        );
        let bin = inst.dir.join("cni-bin");
        std::fs::create_dir_all(&bin).unwrap();
        for p in ["bridge", "host-local", "loopback", "portmap"] {
            let _ = std::os::unix::fs::symlink(Path::new(REFERENCE).join(p), bin.join(p));
        }
        let _ = std::os::unix::fs::symlink(&ours, bin.join("podshim-bridge"));
        // The instance's own subnet is 10.127.N.0/24 (suite 7); the chain's is 10.126.128+.
        let n: u32 = inst.prefix.rsplit('.').next().unwrap().parse().unwrap();
        let prefix = format!("10.126.{}", 128 + n % 100);
        let net = Network {
            name: format!("pstnet-{}", inst.tag),
            bridge: format!("pst{}c", inst.tag),
            prefix,
            data_dir: inst.dir.join("cni-data"),
        };
        let mut plugins = vec![serde_json::json!({
            "type": plugin,
            "bridge": net.bridge,
            "isGateway": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": format!("{}.0/24", net.prefix)}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": net.data_dir,
            }
        })];
        if plugin == "podshim-bridge" {
            // podshim-bridge does the portmap plugin's job itself.
            plugins[0]["capabilities"] = serde_json::json!({"portMappings": true});
        }
        plugins.extend(extra);
        let conf = serde_json::json!({"cniVersion": version, "name": net.name, "plugins": plugins});
        let path = inst.dir.join("net.conflist");
        std::fs::write(&path, conf.to_string()).unwrap();
        inst.env.push((
            "PODSHIM_CNI_CONF".into(),
            path.to_string_lossy().into_owned(),
        ));
        inst.env.push((
            "PODSHIM_CNI_PATH".into(),
            bin.to_string_lossy().into_owned(),
        ));
        net
    }

    fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// host-local's leases of this network.
    fn leases(&self) -> Vec<String> {
        std::fs::read_dir(self.data_dir.join(&self.name))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The interfaces still attached to the bridge.
    fn ports(&self) -> Vec<String> {
        std::fs::read_dir(Path::new("/sys/class/net").join(&self.bridge).join("brif"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn assert_clean(&self, uid: &str) {
        assert_eq!(self.leases(), Vec::<String>::new(), "leases left");
        assert_eq!(
            self.ports(),
            Vec::<String>::new(),
            "veths left on the bridge"
        );
        let rules = Command::new("nft")
            .args(["list", "table", "ip", "podshim"])
            .output()
            .unwrap();
        let rules = String::from_utf8_lossy(&rules.stdout);
        assert!(!rules.contains(uid), "NAT rules left:\n{rules}");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A Pod of two containers printing their eth0 address and /etc/hosts line; `last` runs after.
fn two_containers(inst: &Instance, name: &str, u: &str, last: &str, ports: &str) -> String {
    let show =
        "ip -o -4 addr show dev eth0; echo hosts=$(grep -w $(hostname) /etc/hosts | cut -f1)";
    let containers = format!(
        "{}{}",
        container("a", show, ""),
        container("b", &format!("{show}; {last}"), ports)
    );
    pod(&inst.name(name), u, "Never", &containers, "")
}

/// Both containers got the same address, in the chain's subnet, also in /etc/hosts.
fn assert_shared_ip(out: &str, net: &Network) -> String {
    let a = lines_of(out, "a");
    let b = lines_of(out, "b");
    let ip = ipv4_of(&a).unwrap_or_else(|| panic!("no address in {a:?}"));
    assert_eq!(ipv4_of(&b), Some(ip.clone()), "{b:?}");
    assert!(
        ip.starts_with(&format!("{}.", net.prefix)),
        "{ip} not in {}",
        net.prefix
    );
    assert!(a.contains(&format!("hosts={ip}")), "{a:?}");
    ip
}

fn chain_pod_gets_an_ip_and_leaves_nothing(plugin: &str, n: u32) {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::new(&mut inst, plugin, None);
    let u = uid(n);
    let out = inst.run(&two_containers(&inst, "chain", &u, "true", ""), T);
    ok(&out);
    assert_shared_ip(&String::from_utf8_lossy(&out.stdout), &net);
    net.assert_clean(&u);
    inst.assert_clean(&[&u]);
}

#[test]
fn reference_bridge_chain_gives_the_pod_its_ip() {
    chain_pod_gets_an_ip_and_leaves_nothing("bridge", 1);
}

#[test]
fn podshim_bridge_chain_gives_the_pod_its_ip() {
    chain_pod_gets_an_ip_and_leaves_nothing("podshim-bridge", 2);
}

#[test]
fn host_port_goes_to_the_plugin_with_the_port_mappings_capability() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::new(&mut inst, "podshim-bridge", None);
    let u = uid(3);
    let serve = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    let ports = "    ports:\n    - containerPort: 8080\n      hostPort: 18380\n";
    let child = inst.spawn(&two_containers(&inst, "web", &u, serve, ports));
    let want = format!("hello-{}", inst.name("web"));
    let at = format!("{}:18380", net.gateway());
    let deadline = Instant::now() + T;
    while http_get(&at).as_deref() != Some(want.as_str()) {
        assert!(Instant::now() < deadline, "the Pod never answered on {at}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = wait_output(child, T);
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    assert_shared_ip(&String::from_utf8_lossy(&out.stdout), &net);
    assert_eq!(http_get(&at), None);
    net.assert_clean(&u);
    inst.assert_clean(&[&u]);
}

/// SIGKILL podshim while the Pod runs, then `podshim gc` (without `--cni-conf`: the chain is
/// in the journal) runs DEL (and, for a 1.1.0 list, GC): no lease, veth or NAT rule is left.
/// Returns what `podshim gc` printed.
fn gc_after_sigkill(plugin: &str, version: &str, n: u32, ports: &str) -> String {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::with_version(&mut inst, plugin, version, None);
    let u = uid(n);
    let mut child = inst.spawn(&two_containers(&inst, "killed", &u, "sleep 60", ports));
    let dir = inst
        .state
        .join("pods")
        .join(format!("default_{}", inst.name("killed")));
    let deadline = Instant::now() + T;
    while !(dir.join("cni-result.json").exists() && net.leases().len() == 1) {
        assert!(Instant::now() < deadline, "the Pod never got its network");
        std::thread::sleep(Duration::from_millis(50));
    }
    if !ports.is_empty() {
        let rules = Command::new("nft")
            .args(["list", "table", "ip", "podshim"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&rules.stdout).contains(&u),
            "no NAT rule for the hostPort"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let mut gc = inst.command();
    gc.env_remove("PODSHIM_CNI_CONF").arg("gc");
    let out = gc.output().unwrap();
    ok(&out);
    net.assert_clean(&u);
    inst.assert_clean(&[&u]);
    stdout(&out)
}

#[test]
fn gc_runs_del_of_the_recorded_reference_chain_after_sigkill() {
    let out = gc_after_sigkill("bridge", "1.0.0", 4, "");
    // A 1.0.0 list has no GC.
    assert!(!out.contains("cni network"), "{out}");
}

#[test]
fn gc_removes_the_nat_rules_of_a_sigkilled_podshim() {
    let ports = "    ports:\n    - containerPort: 8080\n      hostPort: 18381\n";
    gc_after_sigkill("podshim-bridge", "1.0.0", 5, ports);
}

#[test]
fn gc_after_sigkill_of_a_podshim_on_a_1_1_0_list_runs_del_and_the_list_gc() {
    let ports = "    ports:\n    - containerPort: 8080\n      hostPort: 18384\n";
    let out = gc_after_sigkill("podshim-bridge", "1.1.0", 6, ports);
    let gc_line = out
        .lines()
        .find(|l| l.starts_with("cni network pstnet-"))
        .unwrap_or_else(|| panic!("no GC of the list: {out}"));
    assert!(
        gc_line.ends_with(": garbage collected, 0 attachment(s) kept"),
        "{out}"
    );
}

/// Whether any rule of the host's rule sets (nftables, iptables-nft) mentions `what`.
fn rules_mention(what: &str) -> bool {
    let out = Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(what)
}

/// The Pod's netns pin, in its state directory.
fn pod_netns(inst: &Instance, name: &str) -> PathBuf {
    inst.state
        .join("pods")
        .join(format!("default_{}", inst.name(name)))
        .join("netns")
}

/// Waits until the Pod's chain ADD is done (its result is cached) and the Pod has a record.
fn wait_network(inst: &Instance, name: &str) {
    let result = pod_netns(inst, name).with_file_name("cni-result.json");
    let record = inst
        .state
        .join("records")
        .join(format!("default_{}.json", inst.name(name)));
    let deadline = Instant::now() + T;
    while !(result.exists() && record.exists()) {
        assert!(
            Instant::now() < deadline,
            "pod {name} never got its network"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `ip ARGS` inside the network namespace pinned at `netns`: the pin is mounted in the Pod's
/// supervisor's mount namespace, reached here through the Pod's journal (its pause).
fn ip_in(netns: &Path, args: &[&str]) -> String {
    let journal = podshim_engine::journal::Journal::load(&netns.with_file_name("journal.json"))
        .expect("the Pod's journal");
    let pin = journal
        .netns_pin()
        .expect("the Pod's netns pin is reachable");
    let out = Command::new("nsenter")
        .arg(format!("--net={}", pin.display()))
        .arg("ip")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args:?} in {}: {}",
        netns.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Pod's IPv4 address and prefix on eth0, as `ip` shows it inside its namespace.
fn pod_cidr(netns: &Path) -> String {
    let out = ip_in(netns, &["-o", "-4", "addr", "show", "dev", "eth0"]);
    let mut w = out.split_whitespace();
    w.position(|x| x == "inet");
    w.next()
        .unwrap_or_else(|| panic!("no address on eth0: {out}"))
        .to_owned()
}

/// A Pod on the list runs; `podshim check` passes (by name, `-n`, NAMESPACE/NAME); the test
/// removes the Pod's address inside its netns; `podshim check` fails with `want` in its message.
fn check_passes_then_fails(
    plugin: &str,
    version: &str,
    extra: Option<serde_json::Value>,
    n: u32,
    ports: &str,
    want: &str,
) {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::with_version(&mut inst, plugin, version, extra);
    let u = uid(n);
    let child = inst.spawn(&two_containers(&inst, "checked", &u, "sleep 60", ports));
    wait_network(&inst, "checked");
    let name = inst.name("checked");
    for args in [
        vec!["check", name.as_str()],
        vec!["check", "-n", "default", name.as_str()],
        vec!["check", &format!("default/{name}")],
    ] {
        let out = inst.podshim(&args, T);
        ok(&out);
        assert_eq!(stdout(&out), format!("network of {name}: ok\n"), "{args:?}");
    }
    let out = inst.podshim(&["check", "-n", "other", &name], T);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("not found"), "{}", stderr(&out));

    let netns = pod_netns(&inst, "checked");
    let cidr = pod_cidr(&netns);
    ip_in(&netns, &["addr", "del", &cidr, "dev", "eth0"]);
    let out = inst.podshim(&["check", &name], T);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(stdout(&out), "");
    let msg = stderr(&out).replace(&cidr, "<cidr>");
    assert!(
        msg.starts_with(&format!("podshim: network of {name}: ")) && msg.contains(want),
        "{msg:?} does not say {want:?}"
    );

    term(&child);
    let out = wait_output(child, T);
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    net.assert_clean(&u);
    inst.assert_clean(&[&u]);
}

#[test]
fn check_of_a_pod_on_the_reference_bridge_portmap_chain() {
    // No hostPort: the reference portmap 1.1.1 fails CHECK of an IPv4 Pod's mappings wherever
    // ip6tables works (it looks for the chain in ip6tables too); see cni/tests/portmap.rs.
    let portmap = serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}});
    check_passes_then_fails(
        "bridge",
        "1.0.0",
        Some(portmap),
        7,
        "",
        "plugin bridge: Failed to match addr <cidr> on interface eth0",
    );
}

#[test]
fn check_of_a_pod_on_a_podshim_bridge_1_1_0_list() {
    let ports = "    ports:\n    - containerPort: 8080\n      hostPort: 18385\n";
    check_passes_then_fails(
        "podshim-bridge",
        "1.1.0",
        None,
        8,
        ports,
        "plugin podshim-bridge: check failed: address <cidr> is missing on eth0",
    );
}

#[test]
fn check_of_a_pod_on_a_0_3_1_list_says_the_version_has_no_check() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::with_version(&mut inst, "bridge", "0.3.1", None);
    let u = uid(9);
    let child = inst.spawn(&two_containers(&inst, "old", &u, "sleep 60", ""));
    wait_network(&inst, "old");
    let out = inst.podshim(&["check", &inst.name("old")], T);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("CHECK needs cniVersion 0.4.0 or later, config is 0.3.1"),
        "{}",
        stderr(&out)
    );
    term(&child);
    wait_output(child, T);
    net.assert_clean(&u);
    inst.assert_clean(&[&u]);
}

#[test]
fn check_of_the_built_in_network_and_of_a_host_network_pod() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(10);
    let child = inst.spawn(&two_containers(&inst, "builtin", &u, "sleep 60", ""));
    let name = inst.name("builtin");
    let netns = pod_netns(&inst, "builtin");
    let deadline = Instant::now() + T;
    while inst.podshim(&["check", &name], T).status.code() != Some(0) {
        assert!(
            Instant::now() < deadline,
            "the Pod's network never checked ok"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = inst.podshim(&["check", &name], T);
    assert_eq!(stdout(&out), format!("network of {name}: ok\n"));
    let cidr = pod_cidr(&netns);
    ip_in(&netns, &["addr", "del", &cidr, "dev", "eth0"]);
    let out = inst.podshim(&["check", &name], T);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stderr(&out),
        format!("podshim: network of {name}: check failed: address {cidr} is missing on eth0\n")
    );
    term(&child);
    wait_output(child, T);

    let u2 = uid(11);
    let yaml = two_containers(&inst, "hostnet", &u2, "sleep 60", "")
        .replace("spec:\n", "spec:\n  hostNetwork: true\n");
    let child = inst.spawn(&yaml);
    let name = inst.name("hostnet");
    let deadline = Instant::now() + T;
    loop {
        let out = inst.podshim(&["check", &name], T);
        if out.status.success() {
            assert_eq!(
                stdout(&out),
                format!("network of {name}: hostNetwork, nothing to check\n")
            );
            break;
        }
        assert!(Instant::now() < deadline, "{}", stderr(&out));
        std::thread::sleep(Duration::from_millis(100));
    }
    term(&child);
    wait_output(child, T);
    inst.assert_clean(&[&u, &u2]);
}

/// `podshim gc` with a live Pod, a SIGKILLed podshim's Pod and an attachment no journal knows
/// (a podshim-bridge ADD the test makes itself, as a runtime that lost its records would leave
/// it) on one 1.1.0 list: DEL and the list's GC remove the last two (lease, veth, NAT rules);
/// the live Pod keeps its lease, veth and rules, and still answers on its hostPort.
#[test]
fn gc_keeps_the_attachments_of_running_pods_and_releases_the_rest() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::with_version(&mut inst, "podshim-bridge", "1.1.0", None);
    let (live, killed) = (uid(12), uid(13));
    let serve = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    let port = |p: u16| format!("    ports:\n    - containerPort: 8080\n      hostPort: {p}\n");
    let live_child = inst.spawn(&two_containers(&inst, "live", &live, serve, &port(18386)));
    let mut killed_child = inst.spawn(&two_containers(
        &inst,
        "killed",
        &killed,
        "sleep 60",
        &port(18387),
    ));
    wait_network(&inst, "live");
    wait_network(&inst, "killed");
    let at = format!("{}:18386", net.gateway());
    let want = format!("hello-{}", inst.name("live"));
    let deadline = Instant::now() + T;
    while http_get(&at).as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the live Pod never answered on {at}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // An attachment of this network that no journal records.
    let stale_ns = format!("pst-stale-{}", inst.tag);
    assert!(Command::new("ip")
        .args(["netns", "add", &stale_ns])
        .status()
        .unwrap()
        .success());
    let stale_id = format!("stale-{}", inst.tag);
    let list = podshim_cni::chain::NetworkList::load(&inst.dir.join("net.conflist")).unwrap();
    let cni_path = inst.dir.join("cni-bin");
    let mapping = podshim_cni::nat::PortMapping {
        host_port: 18388,
        container_port: 8080,
        protocol: podshim_cni::nat::Protocol::Tcp,
        host_ip: None,
    };
    let stale_netns = PathBuf::from("/run/netns").join(&stale_ns);
    let rt = podshim_cni::chain::Runtime {
        container_id: &stale_id,
        netns: &stale_netns,
        ifname: "eth0",
        cni_path: cni_path.to_str().unwrap(),
        args: None,
        port_mappings: &[mapping],
    };
    let added = list.add(&rt);
    let stale_veth = podshim_cni::cni_host_veth_name(&stale_id, "eth0");
    let live_veth = podshim_cni::cni_host_veth_name(&live, "eth0");
    let killed_veth = podshim_cni::cni_host_veth_name(&killed, "eth0");
    let mut checks = || -> Result<(), String> {
        added.as_ref().map_err(|e| format!("stale ADD: {e}"))?;
        let mut ports = net.ports();
        ports.sort();
        let mut want = vec![live_veth.clone(), killed_veth.clone(), stale_veth.clone()];
        want.sort();
        if ports != want {
            return Err(format!("bridge ports {ports:?}, want {want:?}"));
        }
        if net.leases().len() != 3 {
            return Err(format!("leases {:?}", net.leases()));
        }
        if !rules_mention(&stale_id) {
            return Err("no rule of the stale attachment".into());
        }
        killed_child.kill().map_err(|e| e.to_string())?;
        killed_child.wait().map_err(|e| e.to_string())?;
        let mut gc = inst.command();
        gc.env_remove("PODSHIM_CNI_CONF").arg("gc");
        let out = gc.output().map_err(|e| e.to_string())?;
        let text = stdout(&out);
        if !out.status.success() {
            return Err(format!("gc failed: {text} {}", stderr(&out)));
        }
        let line = format!(
            "cni network {}: garbage collected, 1 attachment(s) kept",
            net.name
        );
        if !text.lines().any(|l| l == line) {
            return Err(format!("gc printed {text:?}, not {line:?}"));
        }
        Ok(())
    };
    let result = checks();
    let gone = |id: &str, veth: &str| !rules_mention(id) && !net.ports().contains(&veth.to_owned());
    let after = (
        gone(&stale_id, &stale_veth),
        gone(&killed, &killed_veth),
        net.ports(),
        net.leases(),
        rules_mention(&live),
        http_get(&at),
    );
    // Whatever happened, the stale attachment goes (DEL as its runtime would).
    let _ = list.del(&rt, added.as_ref().ok());
    let _ = Command::new("ip")
        .args(["netns", "del", &stale_ns])
        .status();
    let _ = killed_child.kill();
    term(&live_child);
    let out = wait_output(live_child, T);
    result.unwrap();
    let (stale_gone, killed_gone, ports, leases, live_rules, answer) = after;
    assert!(
        stale_gone,
        "the stale attachment's veth or rules survived gc"
    );
    assert!(killed_gone, "the killed Pod's veth or rules survived gc");
    assert_eq!(ports, vec![live_veth], "only the live Pod's veth is left");
    assert_eq!(
        leases.len(),
        1,
        "only the live Pod's lease is left: {leases:?}"
    );
    assert!(live_rules, "the live Pod's NAT rules went");
    assert_eq!(
        answer.as_deref(),
        Some(want.as_str()),
        "the live Pod stopped answering"
    );
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    net.assert_clean(&live);
    inst.assert_clean(&[&live, &killed]);
}
