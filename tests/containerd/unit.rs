//! Unprivileged unit tests of the containerd test support: the generated containerd and CNI
//! configs (checked by containerd's own `config dump`), the shim binary protocol as containerd
//! 1.6 and 2.3 build it (arguments, environment, bootstrap parameters byte for byte) and parse
//! the reply (bootstrap result, JSON, bare address), the shim socket name, and the parsers of
//! what a container sees.

mod support;

mod config {
    use std::path::Path;

    use crate::support;
    use crate::support::config::*;
    use crate::support::handler::Handler;

    fn cri(dir: &Path) -> Cri {
        Cri {
            sandbox_image: "localhost/podshim/pause:0.1.0".into(),
            cni_bin_dir: dir.join("cni/bin"),
            cni_conf_dir: dir.join("cni/conf"),
            bridge: "pstc00".into(),
            subnet: "10.140.0.0/24".into(),
            ipam_dir: dir.join("ipam"),
        }
    }

    fn podshim(shim: &Path) -> Handler {
        Handler {
            name: "podshim",
            runtime_type: "io.containerd.podshim.v1",
            shim: shim.to_path_buf(),
        }
    }

    /// containerd itself reads the generated file: `containerd config dump` loads it as the
    /// daemon would (unknown or misplaced keys would be dropped from the dump) and prints the
    /// merged result.
    fn dump(toml: &str) -> String {
        let dir = std::env::temp_dir().join(format!("podshim-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{}.toml", toml.len()));
        std::fs::write(&file, toml).unwrap();
        let out = std::process::Command::new(support::installed("containerd"))
            .arg("--config")
            .arg(&file)
            .args(["config", "dump"])
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir(&dir);
        assert!(
            out.status.success(),
            "containerd refused the config:\n{toml}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn containerd_reads_the_cri_config_with_both_handlers() {
        let dir = Path::new("/tmp/podshim-test-x");
        let layout = Layout::new(dir, "x");
        let shim = Path::new("/opt/podshim/containerd-shim-podshim-v1");
        let toml = containerd_toml(&layout, Some(&cri(dir)), &[podshim(shim)]);
        let dumped = dump(&toml);
        for line in [
            "root = \"/tmp/podshim-test-x/root\"",
            "state = \"/tmp/podshim-test-x/state\"",
            "address = \"/tmp/podshim-test-x/containerd.sock\"",
            "address = \"/tmp/podshim-test-x/containerd.sock.ttrpc\"",
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "sandbox_image = \"localhost/podshim/pause:0.1.0\"",
            "bin_dir = \"/tmp/podshim-test-x/cni/bin\"",
            "conf_dir = \"/tmp/podshim-test-x/cni/conf\"",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.podshim]",
            "runtime_type = \"io.containerd.podshim.v1\"",
            "runtime_path = \"/opt/podshim/containerd-shim-podshim-v1\"",
            "[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]",
            "runtime_type = \"io.containerd.runc.v2\"",
            "Root = \"/tmp/podshim-test-x/runc\"",
            "path = \"/tmp/podshim-test-x/opt\"",
        ] {
            assert!(
                dumped.lines().any(|l| l.trim() == line),
                "`{line}` missing from containerd's dump of\n{toml}\n---\n{dumped}"
            );
        }
        assert!(dumped.contains("disabled_plugins = []"), "{dumped}");
    }

    #[test]
    fn without_cri_the_plugin_is_disabled_and_runc_has_no_path() {
        let layout = Layout::new(Path::new("/tmp/podshim-test-y"), "y");
        let toml = containerd_toml(&layout, None, &[Handler::runc()]);
        let dumped = dump(&toml);
        assert!(
            dumped.contains("disabled_plugins = [\"io.containerd.grpc.v1.cri\"]"),
            "{dumped}"
        );
        assert!(!toml.contains("runtime_path"), "{toml}");
    }

    #[test]
    fn the_cni_list_names_podshim_bridge_with_the_tests_own_bridge_and_leases() {
        let dir = Path::new("/tmp/podshim-test-z");
        let list = cni_conflist(&cri(dir));
        let plugin = &list["plugins"][0];
        assert_eq!(plugin["type"], "podshim-bridge");
        assert_eq!(plugin["bridge"], "pstc00");
        assert_eq!(plugin["ipam"]["ranges"][0][0]["subnet"], "10.140.0.0/24");
        assert_eq!(plugin["ipam"]["dataDir"], "/tmp/podshim-test-z/ipam");
        assert_eq!(list["cniVersion"], "1.0.0");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}

mod protocol {
    use std::path::PathBuf;

    use containerd_shim_protos::bootstrap_api::{BootstrapParams, LogLevel};
    use containerd_shim_protos::protobuf::well_known_types::any::Any;
    use containerd_shim_protos::protobuf::Message;

    use crate::support::shim::protocol::*;

    fn config(debug: bool, options: Option<Any>) -> ShimConfig {
        ShimConfig {
            id: "t1".into(),
            namespace: "ns".into(),
            bundle: PathBuf::from("/b/ns/t1"),
            grpc_address: "/c/d.sock".into(),
            ttrpc_address: "/c/d.sock.ttrpc".into(),
            containerd_binary: "/usr/bin/containerd".into(),
            containerd_version: "2.3.4".into(),
            socket_dir: "/run/containerd/s".into(),
            debug,
            options,
            extra_env: vec![("EXTRA".into(), "1".into())],
        }
    }

    fn runc_options() -> Any {
        let mut a = Any::new();
        a.type_url = "containerd.runc.v1.Options".into();
        a.value = vec![0x52, 0x03, b'/', b'r', b'r'];
        a
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn containerd_16_start_passes_flags_ttrpc_address_and_options_on_stdin() {
        let inv = config(false, None).start(Caller::Containerd16);
        assert_eq!(
            inv.args,
            strings(&[
                "-namespace",
                "ns",
                "-address",
                "/c/d.sock",
                "-publish-binary",
                "/usr/bin/containerd",
                "-id",
                "t1",
                "start",
            ])
        );
        assert_eq!(
            inv.env,
            vec![
                ("GOMAXPROCS".into(), "2".into()),
                ("TTRPC_ADDRESS".into(), "/c/d.sock.ttrpc".into())
            ]
        );
        assert_eq!(inv.cwd, PathBuf::from("/b/ns/t1"));
        assert_eq!(inv.stdin, None);
        let with = config(true, Some(runc_options())).start(Caller::Containerd16);
        assert_eq!(with.args[8], "-debug");
        assert_eq!(with.stdin, Some(runc_options().write_to_bytes().unwrap()));
    }

    #[test]
    fn containerd_23_start_sends_bootstrap_params_and_the_legacy_environment() {
        let inv = config(true, Some(runc_options())).start(Caller::Containerd23);
        assert_eq!(
            inv.args,
            strings(&[
                "-namespace",
                "ns",
                "-address",
                "/c/d.sock",
                "-publish-binary",
                "/usr/bin/containerd",
                "-id",
                "t1",
                "-debug",
                "start",
            ])
        );
        let env: Vec<(&str, &str)> = inv
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            vec![
                ("GOMAXPROCS", "2"),
                ("MAX_SHIM_VERSION", "2"),
                ("TTRPC_ADDRESS", "/c/d.sock.ttrpc"),
                ("GRPC_ADDRESS", "/c/d.sock"),
                ("NAMESPACE", "ns"),
                ("EXTRA", "1"),
            ]
        );
        let params = BootstrapParams::parse_from_bytes(&inv.stdin.unwrap()).unwrap();
        assert_eq!(params.instance_id, "t1");
        assert_eq!(params.namespace, "ns");
        assert_eq!(params.log_level.enum_value(), Ok(LogLevel::LOG_LEVEL_DEBUG));
        assert_eq!(params.containerd_version, "2.3.4");
        assert_eq!(params.containerd_grpc_address, "/c/d.sock");
        assert_eq!(params.containerd_ttrpc_address, "/c/d.sock.ttrpc");
        assert_eq!(params.containerd_binary, "/usr/bin/containerd");
        assert_eq!(params.socket_dir.as_deref(), Some("/run/containerd/s"));
        assert_eq!(params.extensions.len(), 1);
        assert_eq!(*params.extensions[0].value, runc_options());
    }

    /// Protobuf by hand: a field's key and a length-delimited or varint value.
    fn key(field: u8, wire: u8) -> u8 {
        (field << 3) | wire
    }

    fn bytes_field(field: u8, v: &[u8]) -> Vec<u8> {
        let mut out = vec![key(field, 2), v.len() as u8];
        out.extend_from_slice(v);
        out
    }

    #[test]
    fn bootstrap_params_are_the_bytes_containerd_writes() {
        // What Go's proto.Marshal writes for containerd 2.3's BootstrapParams: fields in number
        // order, LOG_LEVEL_DEBUG (-4) as a 10-byte varint, no extensions without options.
        let params = config(true, None)
            .bootstrap_params()
            .write_to_bytes()
            .unwrap();
        let mut want = Vec::new();
        want.extend(bytes_field(1, b"t1"));
        want.extend(bytes_field(2, b"ns"));
        want.push(key(3, 0));
        want.extend([0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        want.extend(bytes_field(4, b"2.3.4"));
        want.extend(bytes_field(5, b"/c/d.sock.ttrpc"));
        want.extend(bytes_field(6, b"/c/d.sock"));
        want.extend(bytes_field(7, b"/usr/bin/containerd"));
        want.extend(bytes_field(9, b"/run/containerd/s"));
        assert_eq!(params, want);
        // Info (0) is proto3's default and is not written at all.
        let info = config(false, None)
            .bootstrap_params()
            .write_to_bytes()
            .unwrap();
        assert_eq!(
            &info[..8],
            &[key(1, 2), 2, b't', b'1', key(2, 2), 2, b'n', b's']
        );
        assert_eq!(info[8], key(4, 2));
    }

    #[test]
    fn delete_passes_the_bundle_and_no_stdin() {
        let c = config(true, Some(runc_options()));
        let old = c.delete(Caller::Containerd16);
        assert_eq!(
            old.args,
            strings(&[
                "-namespace",
                "ns",
                "-address",
                "/c/d.sock",
                "-publish-binary",
                "/usr/bin/containerd",
                "-id",
                "t1",
                "-bundle",
                "/b/ns/t1",
                "delete",
            ])
        );
        assert_eq!(old.stdin, None);
        let new = c.delete(Caller::Containerd23);
        assert_eq!(new.args[10..], strings(&["-debug", "delete"]));
        assert_eq!(new.stdin, None);
        assert!(!new.env.iter().any(|(k, _)| k == "EXTRA"), "{:?}", new.env);
        assert_eq!(new.cwd, PathBuf::from("/b/ns/t1"));
    }

    #[test]
    fn containerd_16_takes_the_trimmed_output_as_the_address() {
        let r = parse_start_reply(b"unix:///run/containerd/s/abc\n", Caller::Containerd16);
        assert_eq!(
            r,
            Ok(Reply {
                version: 2,
                address: "unix:///run/containerd/s/abc".into(),
                protocol: "ttrpc".into()
            })
        );
        assert_eq!(r.unwrap().task_api(), TaskApi::V2);
        assert_eq!(
            parse_start_reply(b"  \n", Caller::Containerd16),
            Err(ReplyError::NoAddress)
        );
    }

    #[test]
    fn containerd_23_reads_a_bootstrap_result_then_json_then_a_bare_address() {
        let proto = bootstrap_result(3, "unix:///run/containerd/s/p");
        let r = parse_start_reply(&proto, Caller::Containerd23).unwrap();
        assert_eq!(
            (r.version, r.address.as_str()),
            (3, "unix:///run/containerd/s/p")
        );
        assert_eq!(r.task_api(), TaskApi::V3);
        let json = br#"{"version":3,"address":"unix:///run/containerd/s/j","protocol":"ttrpc"}"#;
        let r = parse_start_reply(json, Caller::Containerd23).unwrap();
        assert_eq!(
            (r.version, r.address.as_str()),
            (3, "unix:///run/containerd/s/j")
        );
        let v2 = br#"{"version":2,"address":"unix:///s/k","protocol":"ttrpc"}"#;
        assert_eq!(
            parse_start_reply(v2, Caller::Containerd23)
                .unwrap()
                .task_api(),
            TaskApi::V2
        );
        for bare in [&b"unix:///run/containerd/s/b\n"[..], b"/run/containerd/s/b"] {
            let r = parse_start_reply(bare, Caller::Containerd23).unwrap();
            assert_eq!(r.version, 2, "{r:?}");
            assert!(r.address.ends_with("/run/containerd/s/b"), "{r:?}");
        }
        // JSON below version 2 is not a bootstrap reply: containerd takes the text as is.
        let old = br#"{"version":1,"address":"x"}"#;
        let r = parse_start_reply(old, Caller::Containerd23).unwrap();
        assert_eq!(r.address, r#"{"version":1,"address":"x"}"#);
    }

    #[test]
    fn newer_versions_other_protocols_and_no_address_are_refused() {
        let v4 = bootstrap_result(4, "unix:///s/x");
        assert_eq!(
            parse_start_reply(&v4, Caller::Containerd23),
            Err(ReplyError::UnsupportedVersion(4))
        );
        let grpc = br#"{"version":3,"address":"unix:///s/g","protocol":"grpc"}"#;
        assert_eq!(
            parse_start_reply(grpc, Caller::Containerd23),
            Err(ReplyError::UnsupportedProtocol("grpc".into()))
        );
        // An empty reply is a valid (empty) protobuf message: no address.
        assert_eq!(
            parse_start_reply(b"", Caller::Containerd23),
            Err(ReplyError::NoAddress)
        );
    }

    #[test]
    fn task_api_service_names() {
        assert_eq!(TaskApi::V2.service(), "containerd.task.v2.Task");
        assert_eq!(TaskApi::V3.service(), "containerd.task.v3.Task");
    }
}

mod parsers {
    use std::path::Path;

    use crate::support::answers::diff;
    use crate::support::cleanup::shim_socket;
    use crate::support::inside::*;

    #[test]
    fn shim_sockets_are_named_by_the_sha256_of_address_namespace_and_id() {
        let s = shim_socket(
            Path::new("/run/containerd/containerd.sock"),
            "default",
            "t1",
        );
        let name = s.file_name().unwrap().to_str().unwrap();
        assert_eq!(s.parent().unwrap(), Path::new("/run/containerd/s"));
        assert_eq!(name.len(), 64);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(
            s,
            shim_socket(Path::new("/run/containerd/containerd.sock"), "k8s.io", "t1")
        );
    }

    #[test]
    fn what_a_container_sees_is_parsed_from_its_sections() {
        let status = "Name:\tsh\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t10 \n\
                      NoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\nCapInh:\t0000000000000000\n\
                      CapPrm:\t00000000a80425fb\nCapEff:\t00000000a80425fb\n\
                      CapBnd:\t00000000a80425fb\nCapAmb:\t0000000000000000\n";
        let out = format!(
            "== init\n{status}== self\n{status}== mountinfo\n\
             600 500 0:60 / / rw,relatime - overlay overlay rw,lowerdir=/x\n\
             601 600 0:5 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,size=65536k\n\
             == limits\nLimit                     Soft Limit           Hard Limit           Units     \n\
             Max open files            1024                 1024                 files     \n\
             == oom_score_adj\n1\n== id\nuid=0(root) gid=0(root)\n== hostname\nh\n\
             == masked\n/proc/kcore absent\n/proc/keys empty-file\n== cgroup memory/memory.limit_in_bytes\n67108864\n"
        );
        let seen = parse(&out);
        assert_eq!(seen.init.cap_eff, "00000000a80425fb");
        assert_eq!(seen.exec.seccomp, "2");
        assert_eq!(seen.init.groups, "10");
        assert_eq!(
            seen.mounts,
            ["/ overlay rw,relatime", "/proc/keys tmpfs rw,nosuid"]
        );
        assert_eq!(seen.mount("/proc/keys"), Some("tmpfs rw,nosuid"));
        assert_eq!(seen.limits["Max open files"], "1024 1024");
        assert_eq!(seen.cgroup["memory/memory.limit_in_bytes"], "67108864");
        assert_eq!(seen.masked["/proc/keys"], "empty-file");
        assert_eq!(seen.masked["/proc/kcore"], "absent");
        let caps = Inside::cap_names("00000000a80425fb");
        assert_eq!(caps.len(), 14);
        assert!(caps.contains(&"NET_RAW") && caps.contains(&"AUDIT_WRITE"));
        assert!(!caps.contains(&"SYS_ADMIN"));
    }

    #[test]
    fn answers_differences_are_named_by_path() {
        let a = serde_json::json!({"x": {"y": [1, 2]}, "z": "a"});
        let b = serde_json::json!({"x": {"y": [1, 3]}, "w": true, "z": "a"});
        assert_eq!(
            diff("", &a, &b),
            vec!["/w: runc null, got true", "/x/y/1: runc 2, got 3"]
        );
    }
}
