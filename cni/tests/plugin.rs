//! The `podshim-bridge` CNI plugin, side by side with the reference plugins (Debian's
//! containernetworking-plugins in /usr/lib/cni): same configs (only `type` differs), same
//! results, same kernel state, same behaviour on DEL, CHECK and broken configs.
//!
//! Each scenario runs once per plugin with a fresh `pst-*` netns on the same bridge name and
//! subnet (10.251.N.0/24), the bridge deleted in between. Not root, or no reference plugins:
//! the tests fail, saying so.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::plugin::*;
use support::*;

const OURS: &str = env!("CARGO_BIN_EXE_podshim-bridge");

#[test]
fn version_lists_what_the_reference_lists_and_1_1_0() {
    require_reference();
    let conf = json!({"cniVersion": "1.0.0"});
    let ours = cni(OURS, "VERSION", "v", None, &conf);
    let reference = cni(REFERENCE, "VERSION", "v", None, &conf);
    assert!(ours.ok && reference.ok);
    assert_eq!(ours.json["cniVersion"], reference.json["cniVersion"]);
    let versions = |o: &Out| -> BTreeSet<String> {
        o.json["supportedVersions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let ours_v = versions(&ours);
    for v in versions(&reference) {
        if v.as_str() >= "0.3.0" {
            assert!(ours_v.contains(&v), "{v} missing from {ours_v:?}");
        }
    }
    assert!(ours_v.contains("1.1.0"));
}

/// ADD, then DEL twice, for one plugin; returns the result and the kernel state in between.
fn add_del_twice(net: &Net, exe: &str, version: &str) -> (Value, Value, Vec<(String, String)>) {
    let ns = TestNetns::new();
    let conf = net.conf(version, exe);
    let add = cni(exe, "ADD", &cid("ctr-a"), Some(&ns.name), &conf);
    assert!(add.ok, "{exe} ADD: {}", add.json);
    let state = kernel_state(net, &ns);
    let leases = net.leases();
    // The Pod reaches the gateway through the bridge.
    assert!(
        ping(Some(&ns.name), net.ip(1).parse().unwrap()),
        "{exe}: no ping"
    );
    for round in 0..2 {
        let del = cni(exe, "DEL", &cid("ctr-a"), Some(&ns.name), &conf);
        assert!(del.ok, "{exe} DEL #{round}: {}", del.json);
        assert!(net.leases().is_empty(), "{exe}: lease left after DEL");
        assert_eq!(
            ns.json(&["link", "show"]).as_array().unwrap().len(),
            1,
            "{exe}: eth0 left"
        );
    }
    net.reset();
    (normalize(add.json), state, leases)
}

#[test]
fn add_results_and_kernel_state_match_the_reference_in_every_version() {
    require_reference();
    let net = Net::new();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let (ref_result, ref_state, ref_leases) = add_del_twice(&net, REFERENCE, version);
        let (our_result, our_state, our_leases) = add_del_twice(&net, OURS, version);
        assert_eq!(our_result, ref_result, "result, cniVersion {version}");
        assert_eq!(our_state, ref_state, "kernel state, cniVersion {version}");
        assert_eq!(
            our_leases, ref_leases,
            "host-local lease files, cniVersion {version}"
        );
    }
    // 1.1.0 (which the reference does not speak) has the 1.0.0 shape.
    let (result, _, _) = add_del_twice(&net, OURS, "1.1.0");
    assert_eq!(result["cniVersion"], "1.1.0");
    assert_eq!(result["ips"][0]["address"], format!("{}/24", net.ip(10)));
    assert!(result["ips"][0].get("version").is_none());
}

#[test]
fn del_after_the_netns_is_gone_succeeds_and_releases_the_ip_like_the_reference() {
    require_reference();
    let net = Net::new();
    for exe in [REFERENCE, OURS] {
        let mut ns = TestNetns::new();
        let conf = net.conf("1.0.0", exe);
        let add = cni(exe, "ADD", &cid("ctr-gone"), Some(&ns.name), &conf);
        assert!(add.ok, "{exe}: {}", add.json);
        let veth = add.json["interfaces"][1]["name"]
            .as_str()
            .unwrap()
            .to_owned();
        let name = ns.name.clone();
        ns.delete();
        let del = cni(exe, "DEL", &cid("ctr-gone"), Some(&name), &conf);
        assert!(del.ok, "{exe} DEL after netns deletion: {}", del.json);
        assert!(net.leases().is_empty(), "{exe}: lease left");
        // The kernel destroys a namespace (and the veth peer in it) asynchronously.
        assert!(
            eventually(|| !link_exists(&veth)),
            "{exe}: host veth {veth} left"
        );
        // Without CNI_NETNS at all, too.
        let del = cni(exe, "DEL", &cid("ctr-gone"), None, &conf);
        assert!(del.ok, "{exe} DEL without netns: {}", del.json);
        net.reset();
    }
}

#[test]
fn check_passes_then_fails_after_tampering_like_the_reference() {
    require_reference();
    let net = Net::new();
    let mut messages = Vec::new();
    for exe in [REFERENCE, OURS] {
        let ns = TestNetns::new();
        let mut conf = net.conf("1.0.0", exe);
        // The reference CHECK fails on its own ADD when an IPAM route has no gw (it installs
        // the route via the gateway but expects none), so this config gives every route one.
        conf["ipam"]["routes"] = json!([{"dst": "10.252.0.0/16", "gw": net.ip(3)}]);
        let add = cni(exe, "ADD", &cid("ctr-c"), Some(&ns.name), &conf);
        assert!(add.ok, "{exe}: {}", add.json);
        let no_prev = cni(exe, "CHECK", &cid("ctr-c"), Some(&ns.name), &conf);
        assert!(!no_prev.ok, "{exe}: CHECK without prevResult must fail");
        conf["prevResult"] = add.json.clone();
        let check = cni(exe, "CHECK", &cid("ctr-c"), Some(&ns.name), &conf);
        assert!(check.ok, "{exe} CHECK of a fresh ADD: {}", check.json);

        let ip = format!("{}/24", net.ip(10));
        run_ok(&["ip", "-n", &ns.name, "addr", "del", &ip, "dev", "eth0"]);
        let check = cni(exe, "CHECK", &cid("ctr-c"), Some(&ns.name), &conf);
        assert!(!check.ok, "{exe}: CHECK after removing {ip} passed");
        messages.push(check.msg());
        assert!(cni(exe, "DEL", &cid("ctr-c"), Some(&ns.name), &conf).ok);
        net.reset();
    }
    let ours = &messages[1];
    assert!(
        ours.contains(&net.ip(10)) && ours.contains("missing"),
        "{ours}"
    );

    // Ours also notices a veth that left the bridge, and a lease that vanished.
    let ns = TestNetns::new();
    let mut conf = net.conf("1.0.0", OURS);
    let add = cni(OURS, "ADD", &cid("ctr-d"), Some(&ns.name), &conf);
    conf["prevResult"] = add.json.clone();
    let veth = add.json["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    run_ok(&["ip", "link", "set", "dev", &veth, "nomaster"]);
    let check = cni(OURS, "CHECK", &cid("ctr-d"), Some(&ns.name), &conf);
    assert_eq!(check.code(), 101, "{}", check.json);
    assert!(
        check.msg().contains("not attached to bridge"),
        "{}",
        check.msg()
    );
    run_ok(&["ip", "link", "set", "dev", &veth, "master", net.bridge()]);
    assert!(cni(OURS, "CHECK", &cid("ctr-d"), Some(&ns.name), &conf).ok);
    std::fs::remove_file(net.data_dir().join("pstnet").join(net.ip(10))).unwrap();
    let check = cni(OURS, "CHECK", &cid("ctr-d"), Some(&ns.name), &conf);
    assert!(check.msg().contains("not leased"), "{}", check.msg());
}

#[test]
fn ip_ranges_capability_gives_the_range_like_host_local() {
    require_reference();
    let net = Net::new();
    let mut results = Vec::new();
    for exe in [OURS, REFERENCE] {
        let ns = TestNetns::new();
        let mut conf = net.conf("1.0.0", exe);
        conf["capabilities"] = json!({"ipRanges": true});
        // Only the runtime's range: with configured ranges too, host-local gives two addresses.
        conf["ipam"].as_object_mut().unwrap().remove("ranges");
        conf["runtimeConfig"] = json!({"ipRanges": [[{
            "subnet": net.subnet(), "rangeStart": net.ip(220), "rangeEnd": net.ip(230),
        }]]});
        let add = cni(exe, "ADD", &cid("ctr-r"), Some(&ns.name), &conf);
        assert!(add.ok, "{exe} ADD: {}", add.json);
        assert_eq!(
            add.json["ips"][0]["address"],
            json!(format!("{}/24", net.ip(220))),
            "{exe}"
        );
        assert_eq!(net.leases().len(), 1, "{exe}");
        let del = cni(exe, "DEL", &cid("ctr-r"), Some(&ns.name), &conf);
        assert!(del.ok, "{exe} DEL: {}", del.json);
        assert!(net.leases().is_empty(), "{exe}: lease left after DEL");
        results.push(normalize(add.json));
        net.reset();
    }
    assert_eq!(results[0], results[1]);
}
