//! `podshim-bridge`'s NAT: the `portMappings` capability (TCP and UDP, with and without
//! `hostIP`) reached from a network namespace standing in for another host and from the host
//! itself, `ipMasq` seen from that "remote" host, and DEL and GC removing exactly the rules of
//! their attachments. All traffic stays on loopback, the host's addresses and the namespaces
//! made here; `nft` is the witness of the ruleset.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

use serde_json::{json, Value};
use support::plugin::*;
use support::*;

const OURS: &str = env!("CARGO_BIN_EXE_podshim-bridge");
const T: Duration = Duration::from_secs(2);

/// Runs `f` on a thread inside the network namespace `/run/netns/<name>`: sockets made there
/// stay in that namespace.
fn in_netns<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
    let file = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    })
}

/// A TCP and a UDP server answering every client with what they see as its address; they
/// live as long as the test process (their namespace's deletion ends them).
fn serve(netns: &str, tcp: u16, udp: u16) {
    let (l, u) = in_netns(netns, || {
        (
            TcpListener::bind(("0.0.0.0", tcp)).unwrap(),
            (udp != 0).then(|| UdpSocket::bind(("0.0.0.0", udp)).unwrap()),
        )
    });
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let peer = c.peer_addr().unwrap().ip();
            let _ = c.write_all(format!("tcp {peer}").as_bytes());
        }
    });
    if let Some(u) = u {
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while let Ok((_, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(format!("udp {}", from.ip()).as_bytes(), from);
            }
        });
    }
}

/// What the TCP server at `addr` says, or None when nothing answers.
fn tcp(addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut c = TcpStream::connect_timeout(&addr, T).ok()?;
    c.set_read_timeout(Some(T)).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

fn udp(addr: &str) -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s.send_to(b"x", addr).ok()?;
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// A namespace standing in for another host: its own veth pair to the host, host end
/// `10.253.A.B+1/30`, its end `+2`, default route via the host.
struct Remote {
    ns: TestNetns,
    host_ip: String,
    ip: String,
}

impl Remote {
    fn new() -> Self {
        let ns = TestNetns::new();
        let n = unique();
        let (a, b) = ((n >> 8) & 0xff, (n & 0x3f) * 4);
        let host_ip = format!("10.253.{a}.{}", b + 1);
        let ip = format!("10.253.{a}.{}", b + 2);
        let link = format!("pstr{:08x}", unique());
        run_ok(&[
            "ip", "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &ns.name,
        ]);
        run_ok(&["ip", "addr", "add", &format!("{host_ip}/30"), "dev", &link]);
        run_ok(&["ip", "link", "set", &link, "up"]);
        let n = |args: &[&str]| {
            let mut cmd = vec!["ip", "-n", &ns.name];
            cmd.extend(args);
            run_ok(&cmd);
        };
        n(&["addr", "add", &format!("{ip}/30"), "dev", "eth0"]);
        n(&["link", "set", "eth0", "up"]);
        n(&["link", "set", "lo", "up"]);
        n(&["route", "add", "default", "via", &host_ip]);
        Self { ns, host_ip, ip }
    }
}

/// How many rules of `ip podshim` carry `tag`, as `nft` lists them.
fn rules_tagged(tag: &str) -> usize {
    let out = run(&["nft", "list", "table", "ip", "podshim"]);
    String::from_utf8_lossy(&out.stdout)
        .matches(&format!("comment \"{tag}\""))
        .count()
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
    require_reference();
    let net = Net::new();
    let pod = TestNetns::new();
    let remote = Remote::new();
    let (any_tcp, any_udp, only) = (port(), port() + 10000, port() + 20000);
    let name = format!("pstnat{:x}", unique());
    let id = format!("ctr-{:x}", unique());
    let c = conf(
        &net,
        &name,
        true,
        json!([
            {"hostPort": any_tcp, "containerPort": 8080, "protocol": "tcp"},
            {"hostPort": any_udp, "containerPort": 8081, "protocol": "udp"},
            {"hostPort": only, "containerPort": 8080, "protocol": "tcp", "hostIP": remote.host_ip},
        ]),
    );
    let add = cni(OURS, "ADD", &id, Some(&pod.name), &c);
    assert!(add.ok, "{}", add.json);
    let ip = pod_ip(&add.json);
    let tag = format!("{name}/{id}/eth0");
    assert_eq!(rules_tagged(&tag), 3 * 4 + 1);
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
    assert_eq!(mine(podshim_cni::nat::nft::listed().unwrap()).len(), 3 * 4 + 1);
    serve(&pod.name, 8080, 8081);

    // From the other host: DNAT keeps its address as the source.
    let from_remote = |addr: String, proto: &str| {
        in_netns(&remote.ns.name, || match proto {
            "tcp" => tcp(&addr),
            _ => udp(&addr),
        })
    };
    let seen = Some(format!("tcp {}", remote.ip));
    assert_eq!(
        from_remote(format!("{}:{any_tcp}", remote.host_ip), "tcp"),
        seen
    );
    assert_eq!(
        from_remote(format!("{}:{only}", remote.host_ip), "tcp"),
        seen
    );
    assert_eq!(
        from_remote(format!("{}:{any_udp}", remote.host_ip), "udp"),
        Some(format!("udp {}", remote.ip))
    );
    // From the host itself, to one of its addresses and to its loopback (route_localnet).
    for host in [remote.host_ip.as_str(), "127.0.0.1"] {
        let got = tcp(&format!("{host}:{any_tcp}"));
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with("tcp ")),
            "{host}: {got:?}"
        );
        let got = udp(&format!("{host}:{any_udp}"));
        assert!(
            got.as_deref().is_some_and(|g| g.starts_with("udp ")),
            "{host}: {got:?}"
        );
    }
    // hostIP is respected: the same port on another host address is not forwarded.
    assert_eq!(tcp(&format!("127.0.0.1:{only}")), None);
    assert!(tcp(&format!("{}:{only}", remote.host_ip)).is_some());

    // ipMasq: the other host sees the Pod's connection come from the host's address.
    serve(&remote.ns.name, 9090, 0);
    let got = in_netns(&pod.name, || tcp(&format!("{}:9090", remote.ip)));
    assert_eq!(got, Some(format!("tcp {}", remote.host_ip)), "pod {ip}");

    let del = cni(OURS, "DEL", &id, Some(&pod.name), &c);
    assert!(del.ok, "{}", del.json);
    assert_eq!(rules_tagged(&tag), 0);
    assert_eq!(
        from_remote(format!("{}:{any_tcp}", remote.host_ip), "tcp"),
        None
    );
    let again = cni(OURS, "DEL", &id, Some(&pod.name), &c);
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
