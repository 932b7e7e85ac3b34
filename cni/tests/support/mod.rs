//! Helpers for the privileged tests: root check, throwaway netns/bridge names, `ip -j` queries.
//!
//! Every name made here starts with `pst` and every guard removes what it made when dropped,
//! also when the test panics. The library under test uses netlink only; `ip` is the witness.
// Shared by several test crates, each using a part.
#![allow(dead_code)]

pub mod plugin;
pub mod traffic;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use podshim_cni::NetworkConfig;
use serde_json::Value;

/// Fails (never skips) when the test cannot do its job.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "privileged test: must run as root (it creates network namespaces, bridges and veths)"
    );
    assert!(
        Command::new("ip").arg("-V").output().is_ok(),
        "privileged test: needs the `ip` command (iproute2) to check the result"
    );
}

/// A number unique to this test process and call, so parallel tests never share names.
pub fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // A fresh random UUID per read; its first 8 hex digits are 32 random bits.
    let seed = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .ok()
        .and_then(|u| u32::from_str_radix(u.get(..8)?, 16).ok())
        .unwrap_or(0);
    let base = seed ^ std::process::id().rotate_left(16);
    base.wrapping_add(
        NEXT.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9e37_79b9),
    )
}

pub fn run(cmd: &[&str]) -> std::process::Output {
    Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

pub fn run_ok(cmd: &[&str]) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn json(cmd: &[&str]) -> Value {
    serde_json::from_str(&run_ok(cmd)).unwrap_or_else(|e| panic!("{cmd:?}: bad json: {e}"))
}

pub fn link_exists(name: &str) -> bool {
    run(&["ip", "link", "show", "dev", name]).status.success()
}

/// `ip -j link show dev NAME` (on the host), first entry.
pub fn host_link(name: &str) -> Value {
    json(&["ip", "-j", "-d", "link", "show", "dev", name])[0].clone()
}

/// `ping -c1 -W1 IP`, inside `netns` when given; busybox's ping when iputils is missing.
pub fn ping(netns: Option<&str>, ip: Ipv4Addr) -> bool {
    let ip = ip.to_string();
    let have_ping = Command::new("ping").arg("-V").output().is_ok();
    let mut cmd: Vec<&str> = Vec::new();
    if let Some(ns) = netns {
        cmd.extend(["ip", "netns", "exec", ns]);
    }
    if !have_ping {
        cmd.push("busybox");
    }
    cmd.extend(["ping", "-c1", "-W1", &ip]);
    run(&cmd).status.success()
}

/// The third octet of the next test subnet: a random start, then consecutive, so the tests
/// of one process never overlap.
fn subnet_octet() -> u8 {
    static BASE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = *BASE.get_or_init(unique);
    (base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) & 0xff) as u8
}

/// A network namespace `pst-<hex>`, deleted on drop.
pub struct TestNetns {
    pub name: String,
    deleted: bool,
}

impl TestNetns {
    pub fn new() -> Self {
        let name = format!("pst-{:08x}", unique());
        run_ok(&["ip", "netns", "add", &name]);
        Self {
            name,
            deleted: false,
        }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    pub fn delete(&mut self) {
        run_ok(&["ip", "netns", "del", &self.name]);
        self.deleted = true;
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut cmd = vec!["ip", "-n", &self.name, "-j"];
        cmd.extend(args);
        json(&cmd)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = run(&["ip", "netns", "del", &self.name]);
        }
    }
}

/// A network of our own: bridge `pstbr<hex>`, subnet 10.250.N.0/24 and a temporary IPAM
/// directory; on drop, deletes the bridge and every host link registered with `own`.
pub struct TestNetwork {
    pub cfg: NetworkConfig,
    _dir: tempfile::TempDir,
    links: Vec<String>,
}

impl TestNetwork {
    pub fn new() -> Self {
        let n = unique();
        let dir = tempfile::tempdir().unwrap();
        let cfg = NetworkConfig {
            bridge: format!("pstbr{:06x}", n & 0xff_ffff),
            subnet: format!("10.250.{}.0/24", subnet_octet()).parse().unwrap(),
            ipam_dir: dir.path().join("ipam"),
            mtu: None,
            keep_bridge: false,
        };
        Self {
            cfg,
            _dir: dir,
            links: Vec::new(),
        }
    }

    /// A host veth name `pstv<hex>` that this guard deletes on drop.
    pub fn veth_name(&mut self) -> String {
        let name = format!("pstv{:08x}", unique());
        self.links.push(name.clone());
        name
    }

    /// Registers a host link made by the test itself for removal on drop.
    pub fn own(&mut self, name: &str) {
        self.links.push(name.to_owned());
    }

    pub fn leases(&self) -> Vec<String> {
        match std::fs::read_dir(&self.cfg.ipam_dir) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|n| n.parse::<Ipv4Addr>().is_ok())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        for link in &self.links {
            if link_exists(link) {
                let _ = run(&["ip", "link", "del", "dev", link]);
            }
        }
        if link_exists(&self.cfg.bridge) {
            let _ = run(&["ip", "link", "del", "dev", &self.cfg.bridge]);
        }
    }
}
