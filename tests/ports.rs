//! End-to-end tests of host ports and host networking: a `hostPort` reaches the Pod from the
//! host, a port taken by another Pod or a host process is refused before anything is created,
//! and a `hostNetwork` Pod runs in the host's network namespace. All traffic stays on this
//! host's own addresses; every test ends with nothing left, NAT rules included.

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use podshim_tests::{
    container, http_get, lines_of, ok, pod, stderr, stdout, term, uid, wait_output, Instance,
};

const SUITE: u32 = 5;
const T: Duration = Duration::from_secs(60);

/// The NAT rules (in podshim's nftables table) that mention `uid`.
fn nat_rules_of(uid: &str) -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "podshim"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(uid))
        .map(str::to_owned)
        .collect()
}

fn web(inst: &Instance, name: &str, u: &str, host_port: u16, host_ip: &str) -> String {
    let script = "mkdir -p /www && echo hello-$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www";
    let ports =
        format!("    ports:\n    - containerPort: 8080\n      hostPort: {host_port}\n{host_ip}");
    pod(
        &inst.name(name),
        u,
        "Never",
        &container("web", script, &ports),
        "",
    )
}

#[test]
fn host_port_reaches_the_pod_and_is_not_given_twice() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (u1, u2) = (uid(1), uid(2));
    let child = inst.spawn(&web(&inst, "web", &u1, 18080, ""));
    let gateway = format!("{}.1", inst.prefix);
    let want = format!("hello-{}", inst.name("web"));
    let deadline = Instant::now() + T;
    while http_get("127.0.0.1:18080").as_deref() != Some(want.as_str()) {
        assert!(
            Instant::now() < deadline,
            "the Pod never answered on 127.0.0.1:18080"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Another address of this host (the bridge's) reaches it too.
    assert_eq!(http_get(&format!("{gateway}:18080")), Some(want.clone()));
    assert!(!nat_rules_of(&u1).is_empty());

    let out = inst.run(&web(&inst, "web2", &u2, 18080, ""), T);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("spec.containers[0].ports[0].hostPort: 18080/TCP is already used by pod"),
        "{err}"
    );
    assert!(!inst
        .state
        .join("pods")
        .join(format!("default_{}", inst.name("web2")))
        .exists());
    assert!(nat_rules_of(&u2).is_empty());

    term(&child);
    let out = wait_output(child, T);
    assert!(out.status.code().is_some(), "{}", stderr(&out));
    assert!(nat_rules_of(&u1).is_empty(), "{:?}", nat_rules_of(&u1));
    assert_eq!(http_get("127.0.0.1:18080"), None);
    inst.assert_clean(&[&u1, &u2]);
}

#[test]
fn host_port_bound_by_a_host_process_is_refused_before_anything_is_created() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let listener = TcpListener::bind("127.0.0.1:18181").unwrap();
    let out = inst.run(
        &web(&inst, "bound", &u, 18181, "      hostIP: 127.0.0.1\n"),
        T,
    );
    drop(listener);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("spec.containers[0].ports[0].hostPort: 127.0.0.1:18181/TCP is already bound by a process on this host"),
        "{err}"
    );
    assert!(nat_rules_of(&u).is_empty());
    inst.assert_clean(&[&u]);
}

#[test]
fn host_network_pod_runs_in_the_host_network_namespace() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let host_name = host_name.trim();
    let script = "echo ns=$(readlink /proc/self/ns/net); echo name=$(hostname); \
        echo hosts=$(grep -cw $(hostname) /etc/hosts); \
        echo links=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" | sort | tr \"\\n\" \",\")";
    let yaml = pod(
        &inst.name("hostnet"),
        &u,
        "Never",
        &container("c", script, ""),
        "",
    )
    .replace("spec:\n", "spec:\n  hostNetwork: true\n");
    let out = inst.run(&yaml, T);
    ok(&out);
    let lines = lines_of(&stdout(&out), "c");
    assert!(
        lines.contains(&format!("ns={}", host_ns.display())),
        "{lines:?}"
    );
    assert!(lines.contains(&format!("name={host_name}")), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("hosts=") && l != "hosts=0"),
        "{lines:?}"
    );
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap();
    let mut host_links: Vec<&str> = dev
        .lines()
        .skip(2)
        .filter_map(|l| Some(l.split(':').next()?.trim()))
        .collect();
    host_links.sort();
    // The Pod lists the host's interfaces (other tests may add or remove theirs meanwhile).
    let seen = lines.iter().find_map(|l| l.strip_prefix("links=")).unwrap();
    for always in ["lo"]
        .into_iter()
        .chain(host_links.iter().copied().filter(|l| l.starts_with("eth")))
    {
        assert!(
            seen.split(',').any(|l| l == always),
            "{always} not in {seen}"
        );
    }
    assert!(nat_rules_of(&u).is_empty());
    inst.assert_clean(&[&u]);
}
