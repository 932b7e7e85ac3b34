//! Unit tests of `chain.rs`.

use super::*;
use crate::nat::Protocol;

#[test]
fn a_conf_is_a_list_of_one_and_plugins_get_name_version_and_capabilities() {
    let single = NetworkList::parse(json!({
        "cniVersion": "1.0.0", "name": "n", "type": "bridge", "bridge": "b"
    }))
    .unwrap();
    assert_eq!(single.plugins.len(), 1);
    assert_eq!(single.plugins[0]["bridge"], "b");
    let list = NetworkList::parse(json!({
        "cniVersion": "1.0.0", "name": "n",
        "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}]
    }))
    .unwrap();
    assert!(list.has_capability("portMappings"));
    assert_eq!(NetworkList::parse(list.to_json()).unwrap(), list);
    let ports = [PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: Protocol::Udp,
        host_ip: None,
    }];
    let rt = Runtime {
        container_id: "c",
        netns: Path::new("/n"),
        ifname: "eth0",
        cni_path: "/p",
        args: None,
        port_mappings: &ports,
    };
    let prev = json!({"cniVersion": "1.0.0"});
    let first = list.plugin_config(0, &rt, None);
    assert_eq!(first["name"], "n");
    assert_eq!(first["cniVersion"], "1.0.0");
    assert!(first.get("runtimeConfig").is_none() && first.get("prevResult").is_none());
    let second = list.plugin_config(1, &rt, Some(&prev));
    assert_eq!(
        second["runtimeConfig"]["portMappings"][0],
        json!({"hostPort": 8080, "containerPort": 80, "protocol": "udp", "hostIP": ""})
    );
    assert_eq!(second["prevResult"], prev);
}

/// A directory of fake plugins that record each call (`CNI_*` variables, then stdin) in
/// `call.N`, N counting up; a plugin whose name starts with `fail` answers with an error.
fn fake_plugins(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"#!/bin/sh
dir=$(dirname "$0")
f="$dir/call.$(ls "$dir" | grep -c '^call\.')"
{
  echo "$(basename "$0") $CNI_COMMAND ${CNI_CONTAINERID-unset} ${CNI_NETNS-unset} ${CNI_IFNAME-unset} ${CNI_PATH-unset}"
  cat
} > "$dir/tmp" && mv "$dir/tmp" "$f"
case "$(basename "$0")" in
fail*) echo '{"cniVersion": "1.1.0", "code": 101, "msg": "drifted", "details": "eth0 is gone"}'; exit 1 ;;
esac
"#;
    // The executables are written by `install`, not by this process: a test on another
    // thread forking while this process held a plugin open for writing would keep that fd
    // until its exec, and running the plugin then fails with ETXTBSY.
    let source = dir.path().join("plugin.sh");
    std::fs::write(&source, script).unwrap();
    for name in names {
        let status = std::process::Command::new("install")
            .args(["-m", "0755"])
            .arg(&source)
            .arg(dir.path().join(name))
            .status()
            .unwrap();
        assert!(status.success(), "install {name}: {status}");
    }
    std::fs::remove_file(&source).unwrap();
    dir
}

/// The calls [`fake_plugins`] recorded: (plugin, command, id, netns, ifname, path), config.
fn calls(dir: &Path) -> Vec<(Vec<String>, Value)> {
    (0..)
        .map(|n| dir.join(format!("call.{n}")))
        .take_while(|p| p.exists())
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let (env, conf) = text.split_once('\n').unwrap();
            let env = env.split(' ').map(str::to_owned).collect();
            (env, serde_json::from_str(conf).unwrap())
        })
        .collect()
}

fn list(version: &str, types: &[&str]) -> NetworkList {
    let plugins: Vec<Value> = types
        .iter()
        .map(|t| json!({"type": t, "capabilities": {"portMappings": *t == "pb"}}))
        .collect();
    NetworkList::parse(json!({"cniVersion": version, "name": "n", "plugins": plugins})).unwrap()
}

/// Attachment `ctr`/`eth0` in `/n`, no port mappings, plugins from `cni_path`.
fn runtime(cni_path: &str) -> Runtime<'_> {
    Runtime {
        container_id: "ctr",
        netns: Path::new("/n"),
        ifname: "eth0",
        cni_path,
        args: None,
        port_mappings: &[],
    }
}

#[test]
fn check_runs_every_plugin_in_order_with_the_cached_result_and_capabilities() {
    let dir = fake_plugins(&["pa", "pb"]);
    let path = dir.path().to_str().unwrap();
    let ports = [PortMapping {
        host_port: 8080,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: Some("192.0.2.1".parse().unwrap()),
    }];
    let rt = Runtime {
        container_id: "ctr",
        netns: Path::new("/run/netns/x"),
        ifname: "eth0",
        cni_path: path,
        args: None,
        port_mappings: &ports,
    };
    let cached = json!({"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]});
    list("1.0.0", &["pa", "pb"])
        .check(&rt, Some(&cached))
        .unwrap();
    let calls = calls(dir.path());
    assert_eq!(calls.len(), 2);
    for (i, (env, conf)) in calls.iter().enumerate() {
        let plugin = ["pa", "pb"][i];
        assert_eq!(env, &[plugin, "CHECK", "ctr", "/run/netns/x", "eth0", path]);
        assert_eq!(conf["type"], plugin);
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(conf["prevResult"], cached, "{plugin}");
    }
    assert!(calls[0].1.get("runtimeConfig").is_none());
    assert_eq!(
        calls[1].1["runtimeConfig"]["portMappings"],
        json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "192.0.2.1"}])
    );
}

#[test]
fn check_stops_at_the_first_failure_and_reports_the_plugin_message() {
    let dir = fake_plugins(&["pa", "fail1", "pb"]);
    let rt = runtime(dir.path().to_str().unwrap());
    let err = list("1.1.0", &["pa", "fail1", "pb"])
        .check(&rt, Some(&json!({"cniVersion": "1.1.0"})))
        .unwrap_err();
    match &err {
        CniError::Delegated {
            plugin,
            code,
            msg,
            details,
        } => {
            assert_eq!((plugin.as_str(), *code), ("fail1", 101));
            assert_eq!(
                (msg.as_str(), details.as_str()),
                ("drifted", "eth0 is gone")
            );
        }
        other => panic!("{other:?}"),
    }
    let ran: Vec<String> = calls(dir.path())
        .into_iter()
        .map(|c| c.0[0].clone())
        .collect();
    assert_eq!(ran, ["pa", "fail1"]);
}

#[test]
fn check_before_0_4_0_is_an_error_and_disable_check_skips_it() {
    let dir = fake_plugins(&["pa"]);
    let rt = runtime(dir.path().to_str().unwrap());
    for version in ["0.1.0", "0.2.0", "0.3.0", "0.3.1"] {
        let err = list(version, &["pa"]).check(&rt, None).unwrap_err();
        assert!(
            matches!(
                err,
                CniError::CommandNotInVersion {
                    command: "CHECK",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.code(), crate::codes::INCOMPATIBLE_VERSION);
        assert!(err.to_string().contains(version), "{err}");
    }
    let err = list("one", &["pa"]).check(&rt, None).unwrap_err();
    assert!(err.to_string().contains("cniVersion"), "{err}");
    let mut disabled = list("1.0.0", &["pa"]);
    disabled.disable_check = true;
    disabled.check(&rt, None).unwrap();
    assert!(calls(dir.path()).is_empty());
}

#[test]
fn gc_gives_every_plugin_the_valid_attachments_and_no_runtime_values() {
    let dir = fake_plugins(&["pa", "fail1", "pb"]);
    let path = dir.path().to_str().unwrap();
    let valid = [
        ("c1".to_owned(), "eth0".to_owned()),
        ("c2".to_owned(), "net1".to_owned()),
    ];
    let err = list("1.1.0", &["pa", "fail1", "pb"])
        .gc(&valid, path)
        .unwrap_err();
    // Every plugin ran; the failure is reported.
    assert!(
        matches!(&err, CniError::Gc { errors } if errors.len() == 1),
        "{err:?}"
    );
    assert!(err.to_string().contains("fail1: drifted"), "{err}");
    let recorded = calls(dir.path());
    let ran: Vec<&str> = recorded.iter().map(|c| c.0[0].as_str()).collect();
    assert_eq!(ran, ["pa", "fail1", "pb"]);
    let want =
        json!([{"containerID": "c1", "ifname": "eth0"}, {"containerID": "c2", "ifname": "net1"}]);
    for (env, conf) in &recorded {
        assert_eq!(env[1..], ["GC", "unset", "unset", "unset", path]);
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["cniVersion"], "1.1.0");
        assert_eq!(conf["cni.dev/valid-attachments"], want);
        assert_eq!(conf["cni.dev/attachments"], want);
        assert!(conf.get("prevResult").is_none() && conf.get("runtimeConfig").is_none());
    }
    // No valid attachment at all: an empty list, not a missing one.
    list("1.1.0", &["pa"]).gc(&[], path).unwrap();
    let (_, last) = calls(dir.path()).pop().unwrap();
    assert_eq!(last["cni.dev/valid-attachments"], json!([]));
}

#[test]
fn gc_before_1_1_0_or_disabled_runs_nothing() {
    let dir = fake_plugins(&["pa"]);
    let path = dir.path().to_str().unwrap();
    for version in ["0.3.1", "0.4.0", "1.0.0"] {
        let l = list(version, &["pa"]);
        assert!(!l.has_gc());
        l.gc(&[], path).unwrap();
    }
    let disabled = NetworkList::parse(json!({
        "cniVersion": "1.1.0", "name": "n", "disableGC": "true", "disableCheck": true,
        "plugins": [{"type": "pa"}]
    }))
    .unwrap();
    assert!(disabled.disable_gc && disabled.disable_check && !disabled.has_gc());
    disabled.gc(&[], path).unwrap();
    assert!(calls(dir.path()).is_empty());
    // The switches survive the journal's round trip.
    assert_eq!(NetworkList::parse(disabled.to_json()).unwrap(), disabled);
    assert!(list("1.1.0", &["pa"]).has_gc());
    let bad = NetworkList::parse(json!({
        "cniVersion": "1.1.0", "name": "n", "disableGC": "maybe", "plugins": [{"type": "pa"}]
    }));
    assert!(bad.unwrap_err().to_string().contains("disableGC"));
}

#[test]
fn broken_lists_name_the_field() {
    for (v, field) in [
        (json!({"name": "n", "type": "bridge"}), "cniVersion"),
        (json!({"cniVersion": "1.0.0", "type": "bridge"}), "name"),
        (json!({"cniVersion": "1.0.0", "name": "n"}), "type"),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "x"}, {}]}),
            "plugins[1].type",
        ),
        (
            json!({"cniVersion": "1.0.0", "name": "n", "plugins": []}),
            "plugins",
        ),
    ] {
        let err = NetworkList::parse(v).unwrap_err();
        assert_eq!(err.code(), crate::codes::INVALID_NETWORK_CONFIG);
        assert!(err.to_string().contains(field), "{err}");
    }
}

#[test]
fn the_pod_ip_is_the_one_of_the_pod_interface() {
    let result = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "br"}, {"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/n"}],
        "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 1}]
    });
    let (ip, mac) = pod_ip(&result, "eth0", Path::new("/n")).unwrap();
    assert_eq!(ip.ip, std::net::Ipv4Addr::new(10, 1, 0, 2));
    assert_eq!(ip.prefix_len, 24);
    assert_eq!(mac, [0x0a, 0x58, 0x0a, 0x01, 0, 2]);
    assert!(pod_ip(&json!({"cniVersion": "1.0.0"}), "eth0", Path::new("/n")).is_err());
}
