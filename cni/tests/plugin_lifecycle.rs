//! The `podshim-bridge` plugin beyond one ADD: error codes for broken configs (side by side
//! with the reference), GC after killed runtimes, STATUS, 50 parallel ADDs, `prevResult`
//! chains after the reference `loopback`, and IPAM delegated to the reference `static`.

mod support;

use std::collections::BTreeSet;

use podshim_cni::cni_host_veth_name;
use serde_json::{json, Value};
use support::plugin::*;
use support::*;

const OURS: &str = env!("CARGO_BIN_EXE_podshim-bridge");

type Mutation = fn(&Net, &mut Value);

#[test]
fn broken_configs_get_cni_error_codes_naming_the_field() {
    require_reference();
    let net = Net::new();
    // (what, change to the config, our code, the field our message names, the reference's
    // code or None when the reference must not run: it accepts the config).
    let cases: Vec<(&str, Mutation, u64, &str, Option<u64>)> = vec![
        (
            "unknown version",
            |_, c| c["cniVersion"] = json!("9.9.9"),
            1,
            "9.9.9",
            Some(1),
        ),
        (
            "no name",
            |_, c| drop(c.as_object_mut().unwrap().remove("name")),
            7,
            "name",
            Some(7),
        ),
        (
            "mtu not a number",
            |_, c| c["mtu"] = json!("x"),
            7,
            "mtu",
            Some(999),
        ),
        (
            "isGateway not a bool",
            |_, c| c["isGateway"] = json!("yes"),
            7,
            "isGateway",
            Some(999),
        ),
        (
            "subnet /33",
            |n, c| c["ipam"]["ranges"][0][0]["subnet"] = json!(n.subnet().replace("/24", "/33")),
            7,
            "ipam.ranges[0][0].subnet",
            Some(999),
        ),
        (
            "rangeStart outside the subnet",
            |_, c| c["ipam"]["ranges"][0][0]["rangeStart"] = json!("10.9.9.9"),
            7,
            "ipam.ranges[0][0].rangeStart",
            Some(999),
        ),
        (
            "no ranges",
            |_, c| drop(c["ipam"].as_object_mut().unwrap().remove("ranges")),
            7,
            "ipam.ranges",
            Some(999),
        ),
        (
            "unknown ipam plugin",
            |_, c| c["ipam"]["type"] = json!("pst-nope"),
            7,
            "ipam.type",
            Some(999),
        ),
        (
            "route without dst",
            |_, c| c["ipam"]["routes"] = json!([{"gw": "10.0.0.1"}]),
            7,
            "ipam.routes[0].dst",
            Some(999),
        ),
        // The reference ignores unknown fields; the spec's code 2 names key and value.
        (
            "unknown field",
            |_, c| c["bogus"] = json!(42),
            2,
            "bogus: 42",
            None,
        ),
        (
            "unknown range field",
            |_, c| c["ipam"]["ranges"][0][0]["rangeStrat"] = json!("x"),
            2,
            "rangeStrat",
            None,
        ),
        (
            "vlan (not yet)",
            |_, c| c["vlan"] = json!(5),
            2,
            "vlan: 5",
            None,
        ),
        // The reference bridge ignores runtimeConfig (portmap's job there).
        (
            "port mapping with a bad protocol",
            |_, c| {
                c["runtimeConfig"] = json!({"portMappings": [
                    {"hostPort": 18080, "containerPort": 80, "protocol": "icmp"}]})
            },
            7,
            "runtimeConfig.portMappings[0].protocol",
            None,
        ),
    ];
    for (what, change, code, field, ref_code) in cases {
        let ns = TestNetns::new();
        let mut conf = net.conf("1.0.0", OURS);
        change(&net, &mut conf);
        let ours = cni(OURS, "ADD", "ctr-bad", Some(&ns.name), &conf);
        assert!(!ours.ok, "{what}: ours accepted {conf}");
        assert_eq!(ours.code(), code, "{what}: {}", ours.json);
        assert!(
            ours.msg().contains(field),
            "{what}: {:?} does not name {field}",
            ours.msg()
        );
        assert_eq!(
            ours.json["cniVersion"],
            conf["cniVersion"]
                .as_str()
                .filter(|v| *v != "9.9.9")
                .unwrap_or("1.1.0")
        );
        assert!(net.leases().is_empty(), "{what}: lease left");
        assert!(
            !link_exists(&cni_host_veth_name("ctr-bad", "eth0")),
            "{what}: veth left"
        );
        if let Some(ref_code) = ref_code {
            conf["type"] = json!("bridge");
            let reference = cni(REFERENCE, "ADD", "ctr-bad", Some(&ns.name), &conf);
            assert_eq!(
                reference.code(),
                ref_code,
                "{what}: reference {}",
                reference.json
            );
        }
        net.reset();
    }

    // Environment and protocol errors: both plugins agree on the code.
    let ns = TestNetns::new();
    for exe in [REFERENCE, OURS] {
        let conf = net.conf("1.0.0", exe);
        let bad_json = cni_raw(exe, "ADD", "c", Some(&ns.name), "{\"cniVersion\":");
        assert_eq!(bad_json.code(), 6, "{exe}: {}", bad_json.json);
        let no_id = cni_raw(exe, "ADD", "", Some(&ns.name), &conf.to_string());
        assert_eq!(no_id.code(), 4, "{exe}: {}", no_id.json);
        assert_eq!(
            cni(exe, "FOO", "c", Some(&ns.name), &conf).code(),
            4,
            "{exe}"
        );
        let old = net.conf("0.3.1", exe);
        assert_eq!(
            cni(exe, "CHECK", "c", Some(&ns.name), &old).code(),
            1,
            "{exe}"
        );
        net.reset();
    }
    let no_id = cni_raw(
        OURS,
        "ADD",
        "",
        Some(&ns.name),
        &net.conf("1.0.0", OURS).to_string(),
    );
    assert!(no_id.msg().contains("CNI_CONTAINERID"), "{}", no_id.msg());
}

#[test]
fn gc_after_killed_runtimes_leaves_no_lease_or_interface() {
    require_reference();
    let net = Net::new();
    let conf = net.conf("1.1.0", OURS);
    let mut namespaces: Vec<TestNetns> = (0..3).map(|_| TestNetns::new()).collect();
    for (i, ns) in namespaces.iter().enumerate() {
        let add = cni(OURS, "ADD", &format!("ctr-{i}"), Some(&ns.name), &conf);
        assert!(add.ok, "{}", add.json);
    }
    // The runtime dies without DEL; one Pod's namespace goes away, the others stay pinned.
    namespaces[2].delete();
    assert_eq!(net.leases().len(), 3);

    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "ctr-0", "ifname": "eth0"}]);
    let gc = cni(OURS, "GC", "", None, &gc_conf);
    assert!(gc.ok, "{}", gc.json);
    let leases = net.leases();
    assert_eq!(leases, [(net.ip(10), "ctr-0\r\neth0".to_owned())]);
    assert!(link_exists(&cni_host_veth_name("ctr-0", "eth0")));
    for i in 1..3 {
        let veth = cni_host_veth_name(&format!("ctr-{i}"), "eth0");
        assert!(eventually(|| !link_exists(&veth)), "{veth} left");
    }
    assert_eq!(
        namespaces[1]
            .json(&["link", "show"])
            .as_array()
            .unwrap()
            .len(),
        1,
        "eth0 left in ctr-1"
    );
    // The survivor is untouched; a second GC has nothing to do.
    assert!(
        namespaces[0].json(&["addr", "show", "dev", "eth0"])[0]["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["local"] == net.ip(10))
    );
    assert!(cni(OURS, "GC", "", None, &gc_conf).ok);
    assert_eq!(net.leases().len(), 1);

    let missing = cni(OURS, "GC", "", None, &conf);
    assert_eq!(missing.code(), 7);
    assert!(missing.msg().contains("cni.dev/valid-attachments"));
    // The reference speaks at most 1.0.0 and has no GC (host-local leaks leases after
    // crashes): "unknown CNI_COMMAND: GC", code 4.
    let mut ref_conf = gc_conf.clone();
    ref_conf["type"] = json!("bridge");
    assert_eq!(cni(REFERENCE, "GC", "c", None, &ref_conf).code(), 4);

    // STATUS: fine while the range has room, 50 when it has none.
    assert!(cni(OURS, "STATUS", "", None, &conf).ok);
    let mut full = conf.clone();
    full["ipam"]["ranges"][0][0]["rangeEnd"] = json!(net.ip(10));
    let status = cni(OURS, "STATUS", "", None, &full);
    assert_eq!(status.code(), 50, "{}", status.json);
    assert_eq!(
        cni(OURS, "STATUS", "", None, &net.conf("1.0.0", OURS)).code(),
        1
    );
    namespaces.clear();
}

#[test]
fn fifty_parallel_adds_get_fifty_distinct_ips() {
    require_reference();
    let net = Net::new();
    let conf = net.conf("1.0.0", OURS);
    let namespaces: Vec<TestNetns> = (0..50).map(|_| TestNetns::new()).collect();
    let results: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> = namespaces
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let conf = &conf;
                s.spawn(move || cni(OURS, "ADD", &format!("par-{i}"), Some(&ns.name), conf))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert!(r.ok, "{}", r.json);
            r.json["ips"][0]["address"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ips.len(), 50, "{ips:?}");
    assert_eq!(net.leases().len(), 50);
    let ports = json(&["bridge", "-j", "link", "show"]);
    let on_bridge = ports
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["master"] == net.bridge())
        .count();
    assert_eq!(on_bridge, 50);
    std::thread::scope(|s| {
        for (i, ns) in namespaces.iter().enumerate() {
            let conf = &conf;
            s.spawn(move || {
                let del = cni(OURS, "DEL", &format!("par-{i}"), Some(&ns.name), conf);
                assert!(del.ok, "{}", del.json);
            });
        }
    });
    assert!(net.leases().is_empty());
}

#[test]
fn prev_result_of_loopback_is_kept_and_extended_like_the_reference() {
    require_reference();
    let net = Net::new();
    for version in ["0.4.0", "1.0.0"] {
        let mut results = Vec::new();
        for exe in [REFERENCE, OURS] {
            let ns = TestNetns::new();
            let lo_conf = json!({"cniVersion": version, "name": "pstnet", "type": "loopback"});
            let lo = cni(
                &format!("{CNI_PATH}/loopback"),
                "ADD",
                "ctr-l",
                Some(&ns.name),
                &lo_conf,
            );
            assert!(lo.ok, "{}", lo.json);
            let mut conf = net.conf(version, exe);
            conf["prevResult"] = lo.json.clone();
            let add = cni(exe, "ADD", "ctr-l", Some(&ns.name), &conf);
            assert!(add.ok, "{exe}: {}", add.json);
            if exe == OURS {
                assert_eq!(add.json["interfaces"][0]["name"], "lo", "{}", add.json);
                let eth0 = add.json["ips"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|ip| ip["address"] == format!("{}/24", net.ip(10)));
                assert_eq!(eth0.unwrap()["interface"], 3, "{}", add.json);
                // CHECK with the chain's result and DEL with it both work.
                conf["prevResult"] = add.json.clone();
                let check = cni(exe, "CHECK", "ctr-l", Some(&ns.name), &conf);
                assert!(check.ok, "{}", check.json);
            }
            assert!(cni(exe, "DEL", "ctr-l", Some(&ns.name), &conf).ok);
            results.push(normalize(add.json));
            net.reset();
        }
        if results[0] != results[1] {
            eprintln!(
                "cniVersion {version}: reference {} / ours {}",
                results[0], results[1]
            );
        }
        // The reference bridge drops what came before it; ours appends (the spec's chaining).
        let ref_names: Vec<_> = results[0]["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].clone())
            .collect();
        let our_names: Vec<_> = results[1]["interfaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].clone())
            .collect();
        assert_eq!(
            our_names[our_names.len() - 3..],
            ref_names[ref_names.len() - 3..]
        );
    }
}

#[test]
fn other_ipam_types_are_delegated_like_the_reference_does() {
    require_reference();
    let net = Net::new();
    let mut outcomes = Vec::new();
    for exe in [REFERENCE, OURS] {
        let ns = TestNetns::new();
        let mut conf = net.conf("1.0.0", exe);
        conf["ipam"] = json!({
            "type": "static",
            "addresses": [{"address": format!("{}/24", net.ip(77)), "gateway": net.ip(1)}],
            "routes": [{"dst": "10.252.0.0/16", "gw": net.ip(3)}],
            "dns": {"nameservers": [net.ip(53)]}
        });
        let add = cni(exe, "ADD", "ctr-s", Some(&ns.name), &conf);
        assert!(add.ok, "{exe}: {}", add.json);
        let state = kernel_state(&net, &ns);
        conf["prevResult"] = add.json.clone();
        let check = cni(exe, "CHECK", "ctr-s", Some(&ns.name), &conf);
        assert!(check.ok, "{exe}: {}", check.json);
        for _ in 0..2 {
            let del = cni(exe, "DEL", "ctr-s", Some(&ns.name), &conf);
            assert!(del.ok, "{exe}: {}", del.json);
        }
        outcomes.push((normalize(add.json), state));
        net.reset();
    }
    assert_eq!(outcomes[1], outcomes[0]);
    // An error of the delegated plugin keeps its code and names the plugin.
    let ns = TestNetns::new();
    let mut conf = net.conf("1.0.0", OURS);
    conf["ipam"] = json!({"type": "static", "addresses": [{"address": "nonsense"}]});
    let add = cni(OURS, "ADD", "ctr-s", Some(&ns.name), &conf);
    assert!(!add.ok && add.msg().contains("static"), "{}", add.json);
    assert!(!link_exists(&cni_host_veth_name("ctr-s", "eth0")));
}
