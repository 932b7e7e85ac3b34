//! Traffic for the host-port tests: servers inside a network namespace, TCP and UDP clients,
//! and a namespace standing in for another host. Every address used is one the test made: the
//! host's loopback, the host's addresses on the test's links, the namespaces' own.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::*;

/// How long a client waits for an answer.
pub const WAIT: Duration = Duration::from_secs(2);

/// Runs `f` on a thread inside the network namespace `/run/netns/<name>`: sockets made there
/// stay in that namespace.
pub fn in_netns<R: Send>(name: &str, f: impl FnOnce() -> R + Send) -> R {
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

/// A TCP and a UDP server in a namespace answering every client with `"<label> tcp <peer>"`
/// (`udp` likewise), the peer being the address they see. Dropping it stops both and closes
/// their sockets, so they do not keep the namespace alive.
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    pub fn start(netns: &str, label: &str, tcp: u16, udp: u16) -> Self {
        let (l, u) = in_netns(netns, || {
            (
                TcpListener::bind(("0.0.0.0", tcp)).unwrap(),
                UdpSocket::bind(("0.0.0.0", udp)).unwrap(),
            )
        });
        l.set_nonblocking(true).unwrap();
        u.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (s1, s2) = (stop.clone(), stop.clone());
        let (l1, l2) = (label.to_owned(), label.to_owned());
        let tcp = std::thread::spawn(move || {
            while !s1.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.write_all(format!("{l1} tcp {}", peer.ip()).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let udp = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s2.load(Ordering::Relaxed) {
                if let Ok((_, from)) = u.recv_from(&mut buf) {
                    let _ = u.send_to(format!("{l2} udp {}", from.ip()).as_bytes(), from);
                }
            }
        });
        Self {
            stop,
            threads: vec![tcp, udp],
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// What the TCP server at `addr` says, or None when nothing answers.
pub fn tcp(addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut c = TcpStream::connect_timeout(&addr, WAIT).ok()?;
    c.set_read_timeout(Some(WAIT)).unwrap();
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    Some(s)
}

/// What the UDP server at `addr` answers to one datagram, or None.
pub fn udp(addr: &str) -> Option<String> {
    let s = UdpSocket::bind("0.0.0.0:0").unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.send_to(b"x", addr).ok()?;
    let mut buf = [0u8; 64];
    let (n, _) = s.recv_from(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `tcp` or `udp` by name.
pub fn ask(proto: &str, addr: &str) -> Option<String> {
    match proto {
        "tcp" => tcp(addr),
        "udp" => udp(addr),
        other => panic!("protocol {other}"),
    }
}

/// A namespace standing in for another host: its own veth pair to the host (host end
/// `10.248.A.B+1/30`, its end `+2`), default route via the host. Deleting the namespace
/// (on drop) deletes the pair.
pub struct Remote {
    pub ns: TestNetns,
    /// The host's address on the link: what the other host sends to.
    pub host_ip: String,
    pub ip: String,
    pub link: String,
}

impl Remote {
    pub fn new() -> Self {
        let ns = TestNetns::new();
        let n = unique();
        let (a, b) = ((n >> 8) & 0xff, (n & 0x3f) * 4);
        let host_ip = format!("10.248.{a}.{}", b + 1);
        let ip = format!("10.248.{a}.{}", b + 2);
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
        Self {
            ns,
            host_ip,
            ip,
            link,
        }
    }

    /// `ask` from inside the other host.
    pub fn ask(&self, proto: &str, addr: &str) -> Option<String> {
        in_netns(&self.ns.name, || ask(proto, addr))
    }
}
