//! Privileged tests of setup/teardown against the real kernel, checked with `ip -j`.
//!
//! Each test makes its own netns (`pst-*`), bridge (`pstbr*`), subnet (10.250.N.0/24) and IPAM
//! directory, and its guards remove them whatever happens. Not root: the tests fail, saying so.

mod support;

use std::net::Ipv4Addr;
use std::time::Instant;

use podshim_cni::{setup, teardown, Attachment, CniError};
use serde_json::Value;
use support::*;

fn addr_of(ns: &TestNetns, ifname: &str) -> (Value, Vec<(String, u64)>) {
    let link = ns.json(&["addr", "show", "dev", ifname])[0].clone();
    let addrs = link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| {
            (
                a["local"].as_str().unwrap().to_owned(),
                a["prefixlen"].as_u64().unwrap(),
            )
        })
        .collect();
    (link, addrs)
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn attach(net: &mut TestNetwork, ns: &TestNetns, id: &str) -> Attachment {
    let veth = net.veth_name();
    setup(&net.cfg, &ns.path(), id, &veth, "eth0").unwrap_or_else(|e| panic!("setup {id}: {e:?}"))
}

#[test]
fn setup_configures_pod_and_bridge_and_teardown_removes_all() {
    require_root();
    let mut net = TestNetwork::new();
    let ns = TestNetns::new();
    let veth = net.veth_name();

    let started = Instant::now();
    let att = setup(&net.cfg, &ns.path(), "pod-a", &veth, "eth0").unwrap();
    let setup_time = started.elapsed();

    let gateway = net.cfg.subnet.gateway();
    assert_eq!(att.gateway, gateway);
    assert_eq!(att.prefix_len, 24);
    assert_eq!(att.host_veth, veth);
    assert!(net.cfg.subnet.contains(att.ip) && att.ip != gateway);

    // Pod side: eth0 up with the address and the reported MAC, lo up, default route.
    let (eth0, addrs) = addr_of(&ns, "eth0");
    assert_eq!(addrs, [(att.ip.to_string(), 24)]);
    assert_eq!(eth0["operstate"], "UP", "{eth0}");
    assert_eq!(eth0["address"], mac_string(att.mac));
    let (lo, lo_addrs) = addr_of(&ns, "lo");
    assert!(
        lo["flags"].as_array().unwrap().iter().any(|f| f == "UP"),
        "{lo}"
    );
    assert_eq!(lo_addrs, [("127.0.0.1".to_owned(), 8)]);
    let routes = ns.json(&["route", "show", "default"]);
    assert_eq!(routes[0]["gateway"], gateway.to_string(), "{routes}");
    assert_eq!(routes[0]["dev"], "eth0");
    if std::path::Path::new("/proc/sys/net/ipv6").exists() {
        let dad = run_ok(&[
            "ip",
            "netns",
            "exec",
            &ns.name,
            "cat",
            "/proc/sys/net/ipv6/conf/eth0/accept_dad",
        ]);
        assert_eq!(dad.trim(), "0");
    }

    // Host side: veth up on the bridge; bridge up with the gateway address.
    let host = host_link(&veth);
    assert_eq!(host["master"], net.cfg.bridge.as_str(), "{host}");
    assert!(host["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let bridge = json(&["ip", "-j", "addr", "show", "dev", &net.cfg.bridge])[0].clone();
    let has_gw = bridge["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["local"] == gateway.to_string() && a["prefixlen"] == 24);
    assert!(has_gw, "{bridge}");
    assert!(bridge["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    assert_eq!(net.leases(), [att.ip.to_string()]);

    // The host reaches the Pod through the bridge.
    assert!(ping(None, att.ip), "host cannot ping {}", att.ip);

    let started = Instant::now();
    teardown(&net.cfg, "pod-a", &veth).unwrap();
    let teardown_time = started.elapsed();
    eprintln!("one attachment: setup {setup_time:?}, teardown {teardown_time:?}");
    assert!(!link_exists(&veth));
    assert!(
        !link_exists(&net.cfg.bridge),
        "last teardown removes the bridge"
    );
    assert!(net.leases().is_empty());
    assert!(
        ns.json(&["link", "show"]).as_array().unwrap().len() == 1,
        "only lo is left"
    );

    // Idempotent: a second teardown finds everything gone and succeeds.
    teardown(&net.cfg, "pod-a", &veth).unwrap();
}

/// The last Pod's veth and its bridge are deleted in one kernel batch, through a link group of
/// their own; a foreign link found in that group makes teardown leave the group alone and
/// delete one by one, so the foreign link survives.
#[test]
fn batched_teardown_never_deletes_a_foreign_link_of_its_group() {
    require_root();
    let mut net = TestNetwork::new();
    let ns = TestNetns::new();
    let veth = attach(&mut net, &ns, "pod-a").host_veth;
    let index = host_link(&net.cfg.bridge)["ifindex"].as_u64().unwrap();
    let group = (0x4000_0000u64 | (index & 0x3fff_ffff)).to_string();
    let foreign = net.veth_name();
    let peer = net.veth_name();
    run_ok(&[
        "ip", "link", "add", &foreign, "type", "veth", "peer", "name", &peer,
    ]);
    run_ok(&["ip", "link", "set", "dev", &foreign, "group", &group]);

    teardown(&net.cfg, "pod-a", &veth).unwrap();
    assert!(!link_exists(&veth));
    assert!(!link_exists(&net.cfg.bridge), "the bridge still goes");
    assert!(
        link_exists(&foreign),
        "the foreign link of the group is kept"
    );
    assert!(net.leases().is_empty());
}

#[test]
fn two_pods_on_one_bridge_reach_each_other_and_the_bridge_outlives_the_first() {
    require_root();
    let mut net = TestNetwork::new();
    net.cfg.mtu = Some(1400);
    let (ns_a, ns_b) = (TestNetns::new(), TestNetns::new());
    let a = attach(&mut net, &ns_a, "pod-a");
    let b = attach(&mut net, &ns_b, "pod-b");
    assert_ne!(a.ip, b.ip);
    assert_ne!(a.mac, b.mac);
    assert_eq!(addr_of(&ns_a, "eth0").0["mtu"], 1400);
    assert_eq!(host_link(&a.host_veth)["mtu"], 1400);
    assert_eq!(host_link(&net.cfg.bridge)["mtu"], 1400);

    assert!(ping(Some(&ns_a.name), b.ip), "a cannot ping b");
    assert!(ping(Some(&ns_b.name), a.ip), "b cannot ping a");
    assert!(
        ping(Some(&ns_a.name), a.gateway),
        "a cannot ping the gateway"
    );
    assert!(ping(None, b.ip), "host cannot ping b");

    teardown(&net.cfg, "pod-a", &a.host_veth).unwrap();
    assert!(link_exists(&net.cfg.bridge), "b is still attached");
    assert_eq!(host_link(&b.host_veth)["master"], net.cfg.bridge.as_str());
    assert_eq!(net.leases(), [b.ip.to_string()]);
    assert!(ping(None, b.ip), "b lost its network when a left");

    teardown(&net.cfg, "pod-b", &b.host_veth).unwrap();
    assert!(!link_exists(&net.cfg.bridge));
    assert!(net.leases().is_empty());
}

#[test]
fn teardown_after_the_netns_is_gone_succeeds() {
    require_root();
    let mut net = TestNetwork::new();
    let mut ns = TestNetns::new();
    let att = attach(&mut net, &ns, "pod-gone");
    ns.delete();
    teardown(&net.cfg, "pod-gone", &att.host_veth).unwrap();
    assert!(!link_exists(&att.host_veth));
    assert!(!link_exists(&net.cfg.bridge));
    assert!(net.leases().is_empty());
    teardown(&net.cfg, "pod-gone", &att.host_veth).unwrap();
}

#[test]
fn teardown_of_something_never_set_up_succeeds() {
    require_root();
    let mut net = TestNetwork::new();
    let veth = net.veth_name();
    teardown(&net.cfg, "never", &veth).unwrap();
}

fn assert_nothing_left(net: &TestNetwork, veth: &str) {
    assert!(net.leases().is_empty(), "lease left: {:?}", net.leases());
    assert!(!link_exists(veth), "veth {veth} left");
    assert!(!link_exists(&net.cfg.bridge), "bridge left");
}

#[test]
fn missing_or_bogus_netns_fails_before_creating_anything() {
    require_root();
    let mut net = TestNetwork::new();
    let veth = net.veth_name();
    let missing = std::path::Path::new("/run/netns/pst-does-not-exist");
    let err = setup(&net.cfg, missing, "pod-x", &veth, "eth0").unwrap_err();
    assert!(matches!(err, CniError::NetnsOpen { .. }), "{err:?}");
    assert_eq!(err.code(), 3);
    assert_nothing_left(&net, &veth);

    let file = tempfile::NamedTempFile::new().unwrap();
    let err = setup(&net.cfg, file.path(), "pod-x", &veth, "eth0").unwrap_err();
    assert!(matches!(err, CniError::NotANetns { .. }), "{err:?}");
    assert_nothing_left(&net, &veth);
}

#[test]
fn failure_mid_setup_rolls_back_lease_veth_and_new_bridge() {
    require_root();
    let mut net = TestNetwork::new();
    let ns = TestNetns::new();
    // The pod interface name is taken inside the netns, so the veth request fails after the
    // lease and the bridge were made.
    // (A veth: this kernel has no dummy driver.)
    run_ok(&[
        "ip", "-n", &ns.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
    ]);
    let veth = net.veth_name();
    let err = setup(&net.cfg, &ns.path(), "pod-x", &veth, "eth0").unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");
    assert_nothing_left(&net, &veth);

    // Same, with a bridge that existed before: rollback must keep it.
    let other = TestNetns::new();
    let keep = attach(&mut net, &other, "pod-keep");
    let veth = net.veth_name();
    setup(&net.cfg, &ns.path(), "pod-x", &veth, "eth0").unwrap_err();
    assert!(link_exists(&net.cfg.bridge));
    assert!(!link_exists(&veth));
    assert_eq!(net.leases(), [keep.ip.to_string()]);
    assert!(ping(None, keep.ip));
}

#[test]
fn existing_host_veth_is_refused_and_kept() {
    require_root();
    let mut net = TestNetwork::new();
    let ns = TestNetns::new();
    let veth = net.veth_name();
    let peer = net.veth_name();
    run_ok(&[
        "ip", "link", "add", &veth, "type", "veth", "peer", "name", &peer,
    ]);
    let err = setup(&net.cfg, &ns.path(), "pod-x", &veth, "eth0").unwrap_err();
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err:?}");
    assert!(
        link_exists(&veth),
        "the existing link is not ours to delete"
    );
    assert!(net.leases().is_empty());
    assert!(!link_exists(&net.cfg.bridge));
}

#[test]
fn a_non_bridge_under_the_bridge_name_is_refused() {
    require_root();
    let mut net = TestNetwork::new();
    let ns = TestNetns::new();
    let bridge = net.cfg.bridge.clone();
    let peer = net.veth_name();
    run_ok(&[
        "ip", "link", "add", &bridge, "type", "veth", "peer", "name", &peer,
    ]);
    net.own(&bridge);
    let veth = net.veth_name();
    let err = setup(&net.cfg, &ns.path(), "pod-x", &veth, "eth0").unwrap_err();
    assert!(matches!(err, CniError::NotABridge { .. }), "{err:?}");
    assert_eq!(err.code(), 7);
    assert!(net.leases().is_empty());
    assert!(!link_exists(&veth));
    // Teardown must not delete a link that is not a bridge either.
    teardown(&net.cfg, "pod-x", &veth).unwrap();
    assert!(link_exists(&bridge));
}

#[test]
fn concurrent_setups_and_teardowns_share_one_bridge_safely() {
    require_root();
    let mut net = TestNetwork::new();
    let namespaces: Vec<_> = (0..6).map(|_| TestNetns::new()).collect();
    let veths: Vec<_> = (0..6).map(|_| net.veth_name()).collect();
    for round in 0..2 {
        let atts: Vec<Attachment> = std::thread::scope(|s| {
            let handles: Vec<_> = namespaces
                .iter()
                .zip(&veths)
                .enumerate()
                .map(|(i, (ns, veth))| {
                    let cfg = &net.cfg;
                    s.spawn(move || setup(cfg, &ns.path(), &format!("pod{i}"), veth, "eth0"))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap().unwrap())
                .collect()
        });
        let ips: std::collections::BTreeSet<Ipv4Addr> = atts.iter().map(|a| a.ip).collect();
        assert_eq!(ips.len(), 6, "round {round}");
        assert!(ping(Some(&namespaces[0].name), atts[5].ip));
        std::thread::scope(|s| {
            for (i, veth) in veths.iter().enumerate() {
                let cfg = &net.cfg;
                s.spawn(move || teardown(cfg, &format!("pod{i}"), veth).unwrap());
            }
        });
        assert!(!link_exists(&net.cfg.bridge), "round {round}");
        assert!(net.leases().is_empty());
    }
}
