//! Unit tests of `nat/mod.rs`.

use super::*;

pub(super) fn sample_ports() -> [PortMapping; 2] {
    [
        PortMapping {
            host_port: 18080,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        },
        PortMapping {
            host_port: 5353,
            container_port: 53,
            protocol: Protocol::Udp,
            host_ip: Some(Ipv4Addr::new(192, 0, 2, 1)),
        },
    ]
}

#[test]
fn a_forwarded_port_clashes_on_protocol_port_and_overlapping_host_address() {
    let ports = sample_ports();
    let spec = sample(&ports);
    let f = |protocol, host_port, host_ip: Option<[u8; 4]>| Forwarded {
        protocol,
        host_port,
        host_ip: host_ip.map(Ipv4Addr::from),
    };
    // 18080/tcp on any address: every address clashes.
    assert!(f(Protocol::Tcp, 18080, None).clashes_with(&spec));
    assert!(f(Protocol::Tcp, 18080, Some([198, 51, 100, 7])).clashes_with(&spec));
    assert!(!f(Protocol::Udp, 18080, None).clashes_with(&spec));
    assert!(!f(Protocol::Tcp, 18081, None).clashes_with(&spec));
    // 5353/udp on 192.0.2.1 only: that address or any.
    assert!(f(Protocol::Udp, 5353, None).clashes_with(&spec));
    assert!(f(Protocol::Udp, 5353, Some([192, 0, 2, 1])).clashes_with(&spec));
    assert!(!f(Protocol::Udp, 5353, Some([192, 0, 2, 2])).clashes_with(&spec));
}

pub(super) fn sample(ports: &[PortMapping]) -> NatSpec<'_> {
    NatSpec {
        tag: "n/c/eth0",
        pod_ip: Ipv4Addr::new(10, 1, 0, 2),
        subnet: "10.1.0.0/16".parse().unwrap(),
        masquerade: true,
        ports,
        bridge: "br0",
    }
}

#[test]
fn tags_are_readable_short_and_scoped_by_network() {
    assert_eq!(tag("net", "ctr-1", "eth0"), "net/ctr-1/eth0");
    let long = tag("net", &"a".repeat(200), "eth0");
    assert!(
        long.len() <= MAX_COMMENT && long.starts_with("net/veth"),
        "{long}"
    );
    assert!(tag("n\"et", "c", "eth0").starts_with("net/veth"));
    assert_eq!(network_of(&tag("pst0", "c", "eth0")), "pst0");
}

#[test]
fn backends_have_the_reference_plugins_names() {
    assert_eq!(Backend::from_name("nftables"), Some(Backend::Nftables));
    assert_eq!(Backend::from_name("iptables"), Some(Backend::Iptables));
    assert_eq!(Backend::from_name("IPTABLES"), None);
    assert_eq!(Backend::Iptables.to_string(), "iptables");
}

#[test]
fn only_errors_of_a_kernel_without_nf_tables_make_it_unavailable() {
    for errno in [
        libc::EPROTONOSUPPORT,
        libc::EAFNOSUPPORT,
        libc::EINVAL,
        libc::EOPNOTSUPP,
        libc::ENOENT,
    ] {
        assert!(kernel_lacks_nftables(&io::Error::from_raw_os_error(errno)));
    }
    for errno in [libc::EPERM, libc::EACCES, libc::ENOBUFS] {
        assert!(!kernel_lacks_nftables(&io::Error::from_raw_os_error(errno)));
    }
    assert!(!kernel_lacks_nftables(&io::Error::other("x")));
}

#[test]
fn path_lookup_finds_executables_only() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("tool");
    std::fs::write(&exe, "#!/bin/sh\n").unwrap();
    let plain = dir.path().join("data");
    std::fs::write(&plain, "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(is_executable(&exe));
    assert!(!is_executable(&plain));
    assert!(!is_executable(dir.path()));
}

#[test]
fn every_mapping_gets_dnat_loopback_and_hairpin_rules_and_masquerade_one() {
    let ports = sample_ports();
    let spec = sample(&ports);
    let w = wants(&spec);
    assert_eq!(w.len(), 2 * 3 + 1);
    assert_eq!(
        w[0].describe(&spec),
        "hostPort 18080/tcp DNAT rule for 10.1.0.2:80"
    );
    assert_eq!(
        w[3].describe(&spec),
        "hostPort 192.0.2.1:5353/udp DNAT rule for 10.1.0.2:53"
    );
    assert_eq!(
        w[6].describe(&spec),
        "ipMasq masquerade rule for 10.1.0.2 leaving 10.1.0.0/16"
    );
    let none = NatSpec {
        masquerade: false,
        ports: &[],
        ..spec
    };
    assert!(wants(&none).is_empty());
}

#[test]
fn words_drop_quotes_and_keep_quoted_spaces() {
    assert_eq!(
        words(r#"  -m comment --comment "a b"  -j X "" "#),
        ["-m", "comment", "--comment", "a b", "-j", "X", ""]
    );
    assert_eq!(words("comment \"n/c/eth0\""), ["comment", "n/c/eth0"]);
}
