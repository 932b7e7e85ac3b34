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
    container, http_get, ipv4_of, lines_of, ok, pod, podshim_bin, stderr, uid, wait_output,
    Instance,
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
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": net.name, "plugins": plugins});
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
/// in the journal) runs DEL: no lease, veth or NAT rule is left.
fn gc_after_sigkill(plugin: &str, n: u32, ports: &str) {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let net = Network::new(&mut inst, plugin, None);
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
}

#[test]
fn gc_runs_del_of_the_recorded_reference_chain_after_sigkill() {
    gc_after_sigkill("bridge", 4, "");
}

#[test]
fn gc_removes_the_nat_rules_of_a_sigkilled_podshim() {
    let ports = "    ports:\n    - containerPort: 8080\n      hostPort: 18381\n";
    gc_after_sigkill("podshim-bridge", 5, ports);
}
