//! Unit tests of `plugin/config.rs`.

use super::*;
use serde_json::json;

fn base() -> Value {
    json!({"cniVersion": "1.0.0", "name": "n", "type": "podshim-bridge",
           "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]]}})
}

#[test]
fn defaults_follow_the_reference_plugins() {
    let conf = parse(base()).unwrap();
    assert_eq!(conf.bridge.name, "cni0");
    assert!(!conf.bridge.is_gateway && !conf.is_default_gateway && conf.bridge.keep);
    let IpamConf::HostLocal(h) = conf.ipam else {
        panic!("not host-local")
    };
    assert_eq!(h.range.start, Ipv4Addr::new(10, 9, 0, 1));
    assert_eq!(h.range.end, Ipv4Addr::new(10, 9, 0, 254));
    assert_eq!(h.range.gateway, Ipv4Addr::new(10, 9, 0, 1));
    assert_eq!(h.dir, PathBuf::from("/var/lib/cni/networks/n"));
    let mut v = base();
    v["isDefaultGateway"] = json!(true);
    assert!(
        parse(v).unwrap().bridge.is_gateway,
        "isDefaultGateway implies isGateway"
    );
    let mut v = base();
    v["ipam"] = json!({"type": "static", "anything": 1});
    assert!(matches!(parse(v).unwrap().ipam, IpamConf::Delegated { .. }));
}

#[test]
fn ip_ranges_capability_gives_the_range_sets_as_host_local() {
    let mut v = base();
    v["capabilities"] = json!({"ipRanges": true});
    v["runtimeConfig"] = json!({"ipRanges": [[{"subnet": "10.7.0.0/24",
        "rangeStart": "10.7.0.10", "rangeEnd": "10.7.0.20"}]]});
    // With ranges in the config too, host-local would hand out two addresses.
    let err = parse(v.clone()).unwrap_err();
    assert_eq!(err.code(), 2, "{err}");
    assert!(err.to_string().contains("runtimeConfig.ipRanges"), "{err}");
    let ranges = v["ipam"].as_object_mut().unwrap().remove("ranges").unwrap();
    let IpamConf::HostLocal(h) = parse(v.clone()).unwrap().ipam else {
        panic!("not host-local")
    };
    assert_eq!(h.subnet.to_string(), "10.7.0.0/24");
    assert_eq!(h.range.start, Ipv4Addr::new(10, 7, 0, 10));
    assert_eq!(h.range.end, Ipv4Addr::new(10, 7, 0, 20));
    assert_eq!(h.range.gateway, Ipv4Addr::new(10, 7, 0, 1));
    // An empty list leaves the configured ranges.
    v["runtimeConfig"]["ipRanges"] = json!([]);
    v["ipam"]["ranges"] = ranges;
    let IpamConf::HostLocal(h) = parse(v.clone()).unwrap().ipam else {
        panic!("not host-local")
    };
    assert_eq!(h.subnet.to_string(), "10.9.0.0/24");
    v["ipam"].as_object_mut().unwrap().remove("ranges");
    v["runtimeConfig"]["ipRanges"] = json!([[{"subnet": "10.7.0.0/33"}]]);
    let err = parse(v).unwrap_err();
    assert_eq!(err.code(), 7);
    assert!(
        err.to_string()
            .contains("runtimeConfig.ipRanges[0][0].subnet"),
        "{err}"
    );
}

#[test]
fn nat_backend_takes_the_reference_plugins_field_names() {
    assert_eq!(parse(base()).unwrap().nat_backend, None);
    for key in ["ipMasqBackend", "backend"] {
        for (name, backend) in [
            ("iptables", Backend::Iptables),
            ("nftables", Backend::Nftables),
        ] {
            let mut v = base();
            v[key] = json!(name);
            assert_eq!(parse(v).unwrap().nat_backend, Some(backend), "{key}");
        }
        let mut v = base();
        v[key] = json!("ebtables");
        let err = parse(v).unwrap_err();
        assert_eq!(err.code(), 7, "{err}");
        assert_eq!(
            err.to_string(),
            format!(
                "invalid network config: {key}: \"ebtables\" is not a backend; \
                 valid values: \"nftables\", \"iptables\""
            )
        );
    }
    let mut v = base();
    v["ipMasqBackend"] = json!("iptables");
    v["backend"] = json!("iptables");
    assert_eq!(
        parse(v.clone()).unwrap().nat_backend,
        Some(Backend::Iptables)
    );
    v["backend"] = json!("nftables");
    let err = parse(v).unwrap_err();
    assert_eq!(err.code(), 7, "{err}");
    assert!(
        err.to_string()
            .contains("backend: \"nftables\" differs from ipMasqBackend \"iptables\""),
        "{err}"
    );
}

#[test]
fn gc_takes_the_valid_attachments_under_both_names_libcni_sends() {
    let mut v = base();
    v["cniVersion"] = json!("1.1.0");
    let a = json!([{"containerID": "a", "ifname": "eth0"}]);
    let b = json!([{"containerID": "b", "ifname": "eth0"}]);
    let pair = |id: &str| Some(vec![(id.to_owned(), "eth0".to_owned())]);
    // libcni: both, the same list.
    v["cni.dev/valid-attachments"] = a.clone();
    v["cni.dev/attachments"] = a;
    assert_eq!(parse(v.clone()).unwrap().valid_attachments, pair("a"));
    // The spec's name wins; the other alone is read too.
    v["cni.dev/attachments"] = b;
    assert_eq!(parse(v.clone()).unwrap().valid_attachments, pair("a"));
    v.as_object_mut()
        .unwrap()
        .remove("cni.dev/valid-attachments");
    assert_eq!(parse(v.clone()).unwrap().valid_attachments, pair("b"));
    v["cni.dev/attachments"] = json!([{"containerID": "b"}]);
    let err = parse(v).unwrap_err();
    assert!(err.to_string().contains("cni.dev/attachments[0]"), "{err}");
}

#[test]
fn errors_name_the_field_with_the_right_code() {
    type Change = fn(&mut Value);
    let cases: Vec<(Change, u32, &str)> = vec![
        (|v| v["mtu"] = json!(20), 7, "mtu"),
        (|v| v["hairpinMode"] = json!(1), 7, "hairpinMode"),
        (|v| v["name"] = json!("../x"), 7, "name"),
        (
            |v| v["bridge"] = json!("a-very-long-bridge-name"),
            7,
            "bridge",
        ),
        (|v| v["cniVersion"] = json!("0.2.0"), 1, "0.2.0"),
        (|v| v["extra"] = json!("x"), 2, "extra"),
        (
            |v| v["ipam"]["ranges"][0][0]["gateway"] = json!("10.9.1.1"),
            7,
            "ipam.ranges[0][0].gateway",
        ),
        (
            |v| {
                v["ipam"]["ranges"] =
                    json!([[{"subnet": "10.9.0.0/24"}], [{"subnet": "10.8.0.0/24"}]])
            },
            2,
            "ipam.ranges[1]",
        ),
        (
            |v| v["ipam"]["routes"] = json!([{"dst": "10.0.0.0/8", "via": "x"}]),
            2,
            "ipam.routes[0].via",
        ),
    ];
    for (change, code, field) in cases {
        let mut v = base();
        change(&mut v);
        let err = parse(v).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
        assert!(
            err.to_string().contains(field),
            "{err} does not name {field}"
        );
    }
}
