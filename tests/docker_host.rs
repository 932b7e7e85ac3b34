//! A host where Docker runs: Debian's dockerd, started by the test with its default firewall
//! settings, sets the iptables `FORWARD` policy to DROP (it turns `ip_forward` on) and has
//! `br_netfilter` send bridged frames through that chain. Pods must still reach each other,
//! the host and (masqueraded) another network, through podshim's forward rules, scoped to its
//! bridge and subnet, which `gc` removes.
//!
//! Everything happens in a network namespace of the test's own, standing in for the host
//! (dockerd, podshim, the "other network" behind a veth), so the real host's firewall is never
//! touched: the namespace and everything Docker set up in it go when it is deleted. dockerd is
//! stopped by PID; a trust key it made in /etc/docker is removed if it was not there before.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podshim_tests::*;

const SUITE: u32 = 28;
const T: Duration = Duration::from_secs(60);

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-ec", cmd]).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test's "host": a network namespace with a link to another network (a second namespace
/// with a /30 and a default route back), and a dockerd running in it.
struct DockerHost {
    ns: String,
    remote: String,
    dir: PathBuf,
    dockerd: Option<Child>,
    /// The host's address towards the other network, and the other network's.
    host_ip: String,
    remote_ip: String,
    key_was_there: bool,
}

const DOCKER_KEY: &str = "/etc/docker/key.json";

impl DockerHost {
    fn new() -> Self {
        for tool in ["dockerd", "nsenter", "iptables-save", "python3"] {
            assert!(
                Command::new("sh")
                    .args(["-c", &format!("command -v {tool}")])
                    .output()
                    .unwrap()
                    .status
                    .success(),
                "privileged test: needs {tool} (apt-get install docker.io util-linux iptables python3)"
            );
        }
        let tag = format!("{:x}", std::process::id() % 0xffff);
        let host = DockerHost {
            ns: format!("pst-dh-{tag}"),
            remote: format!("pst-dr-{tag}"),
            dir: std::env::temp_dir().join(format!("docker-host-test-{tag}")),
            dockerd: None,
            host_ip: "192.0.2.1".into(),
            remote_ip: "192.0.2.2".into(),
            key_was_there: Path::new(DOCKER_KEY).exists(),
        };
        let (ns, remote) = (&host.ns, &host.remote);
        sh(&format!(
            "ip netns add {ns}; ip netns add {remote}
             ip -n {ns} link set lo up; ip -n {remote} link set lo up
             ip -n {ns} link add out0 type veth peer name eth0 netns {remote}
             ip -n {ns} addr add 192.0.2.1/30 dev out0; ip -n {ns} link set out0 up
             ip -n {remote} addr add 192.0.2.2/30 dev eth0; ip -n {remote} link set eth0 up
             ip -n {remote} route add default via 192.0.2.1"
        ));
        std::fs::create_dir_all(&host.dir).unwrap();
        host
    }

    fn enter(&self, ns: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{ns}"));
        c
    }

    /// Output of `cmd` run in the host namespace.
    fn run(&self, args: &[&str]) -> String {
        let out = self.enter(&self.ns).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts dockerd with Docker's defaults (iptables, ip-forward, docker0), its state under
    /// the test's directory, and waits until it answers.
    fn start_dockerd(&mut self) {
        let d = &self.dir;
        let sock = format!("unix://{}/docker.sock", d.display());
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = self
            .enter(&self.ns)
            .arg("dockerd")
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .args(["-H", &sock])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        self.dockerd = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = Command::new("docker")
                .args(["-H", &sock, "info"])
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                break;
            }
            let exited = self.dockerd.as_mut().unwrap().try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "dockerd did not come up ({exited:?}):\n{}",
                std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops dockerd by its PID: SIGTERM, SIGKILL after 20 s.
    fn stop_dockerd(&mut self) {
        let Some(mut child) = self.dockerd.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        // The containerd dockerd started (its state is under our directory) may outlive it a
        // moment; a SIGKILLed dockerd leaves it running.
        let dir = self.dir.display().to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("pgrep").args(["-f", &dir]).output().unwrap();
            let pids = String::from_utf8_lossy(&out.stdout).into_owned();
            if pids.trim().is_empty() {
                break;
            }
            if Instant::now() > deadline {
                for pid in pids.split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A one-connection TCP server in the other network answering with the peer's address.
    fn serve_once(&self, port: u16) -> Child {
        let py = format!(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',{port}))\ns.listen(1)\nprint('ready',flush=True)\n\
             c,a=s.accept()\nc.recv(1024)\nc.sendall(b'from '+a[0].encode()+b'\\n')\nc.close()\n"
        );
        spawn_ready(self.enter(&self.remote).args(["python3", "-c", &py]))
    }
}

impl Drop for DockerHost {
    fn drop(&mut self) {
        self.stop_dockerd();
        // dockerd pins the namespace it runs in under its exec root and leaves it mounted.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.join("exec/netns/default"))
            .stderr(Stdio::null())
            .status();
        for ns in [&self.ns, &self.remote] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        if !self.key_was_there {
            let _ = std::fs::remove_file(DOCKER_KEY);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One-shot Pod running `script`; its output lines.
fn one_shot(inst: &Instance, name: &str, n: u32, script: &str) -> Vec<String> {
    let yaml = pod(
        &inst.name(name),
        &uid(n),
        "Never",
        &container("c", script, ""),
        "",
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    lines_of(&stdout(&out), "c")
}

#[test]
fn pods_reach_each_other_the_host_and_beyond_where_dockerd_drops_forwarding() {
    let mut host = DockerHost::new();
    // Forwarding off, as a host boots (a new namespace may inherit the real host's setting):
    // Docker turns it on, and then sets the FORWARD policy to DROP.
    host.run(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    host.start_dockerd();
    let forward = host.run(&["iptables-save", "-t", "filter"]);
    assert!(forward.contains(":FORWARD DROP"), "{forward}");
    assert_eq!(
        host.run(&["cat", "/proc/sys/net/bridge/bridge-nf-call-iptables"])
            .trim(),
        "1",
        "br_netfilter"
    );

    let mut inst = Instance::new(SUITE);
    inst.netns = Some(host.ns.clone());
    inst.import_busybox();
    // A server Pod; another Pod on the bridge talks to it (bridged, so filtered by FORWARD).
    let server = inst.name("server");
    ok(&inst.detach(&pod(
        &server,
        &uid(1),
        "Never",
        &container(
            "c",
            "while true; do echo hello-from-server | nc -l -p 8080; done",
            "",
        ),
        "",
    )));
    let server_ip = inst.inspect(&server)["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_owned();
    let ask_server = format!("nc -w 3 {server_ip} 8080 </dev/null");
    assert_eq!(
        one_shot(&inst, "client", 2, &ask_server),
        ["hello-from-server"]
    );
    // The host: the gateway (the bridge's address) and the host's other address.
    let gw = format!("{}.1", inst.prefix);
    for (n, addr) in [(3, gw.as_str()), (4, host.host_ip.as_str())] {
        let got = one_shot(
            &inst,
            &format!("host{n}"),
            n,
            &format!("ping -c 1 -W 3 {addr} >/dev/null && echo reached"),
        );
        assert_eq!(got, ["reached"], "{addr}");
    }
    // Beyond, masqueraded: the other network sees the host's address.
    let mut remote = host.serve_once(9090);
    let got = one_shot(
        &inst,
        "out",
        5,
        &format!("nc -w 3 {} 9090 </dev/null", host.remote_ip),
    );
    let _ = remote.kill();
    let _ = remote.wait();
    assert_eq!(got, [format!("from {}", host.host_ip)]);

    // The rules are what makes it work: without the jump to them, Docker's DROP applies
    // (seen from a running Pod: a Pod start would put the rules back), and the next Pod start
    // puts them back.
    let idle = inst.name("idle");
    ok(&inst.detach(&pod(
        &idle,
        &uid(6),
        "Never",
        &container("c", "sleep 60", ""),
        "",
    )));
    let from_idle = || {
        let out = inst.podshim(
            &[
                "exec",
                &idle,
                "--",
                "sh",
                "-c",
                &format!("{ask_server} || echo blocked"),
            ],
            T,
        );
        ok(&out);
        stdout(&out).trim().to_owned()
    };
    assert_eq!(from_idle(), "hello-from-server");
    let chain = format!("PODSHIM-FWD-{}", inst.bridge);
    host.run(&["iptables", "-D", "FORWARD", "-j", &chain]);
    assert_eq!(from_idle(), "blocked");
    assert_eq!(
        one_shot(&inst, "again", 7, &ask_server),
        ["hello-from-server"]
    );
    assert_eq!(from_idle(), "hello-from-server");

    // Scoped to podshim's bridge and subnet, and removed by gc once no Pod uses them.
    let saved = host.run(&["iptables-save", "-t", "filter"]);
    let ours: Vec<&str> = saved.lines().filter(|l| l.contains(&chain)).collect();
    assert_eq!(ours.len(), 4, "{saved}");
    for rule in ours
        .iter()
        .filter(|l| l.starts_with(&format!("-A {chain}")))
    {
        assert!(
            rule.contains(&inst.bridge) && rule.contains(&inst.subnet),
            "{rule}"
        );
    }
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &server, &idle], T));
    ok(&inst.podshim(&["gc"], T));
    let saved = host.run(&["iptables-save"]);
    assert!(!saved.contains("PODSHIM"), "{saved}");
    assert!(
        saved.contains(":FORWARD DROP"),
        "Docker's own rules stay: {saved}"
    );
    host.stop_dockerd();
}
