//! End-to-end tests of the downward API and of ConfigMaps and Secrets given in the same manifest:
//! `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef`, `envFrom` with a prefix and
//! `configMap`/`secret` volumes, checked from inside the container.

use std::time::Duration;

use podshim_tests::{container, lines_of, ok, pod, stderr, stdout, uid, Instance};

const SUITE: u32 = 6;
const T: Duration = Duration::from_secs(60);

const OBJECTS: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data:
  MODE: fast
  app.conf: "level=debug"
---
apiVersion: v1
kind: Secret
metadata: {name: app-secret}
data: {password: aHVudGVyMg==}
stringData: {user: admin}
---
"#;

fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

#[test]
fn every_env_and_volume_source_reaches_the_container() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("cfg");
    // The environment as the container's process got it (busybox sh drops names with a '.'; `$$$$` is `$$` after Kubernetes' `$(VAR)` expansion).
    let script = "tr \"\\\\000\" \"\\\\n\" < /proc/$$$$/environ | sort; \
        echo IFACE $(ip -o -4 addr show dev eth0); \
        ls /etc/config; \
        echo MODEFILE $(cat /etc/config/conf/mode) $(stat -L -c %a /etc/config/conf/mode); \
        echo APPCONF $(cat /etc/config/app.conf) $(stat -L -c %a /etc/config/app.conf); \
        echo DATA $(readlink /etc/config/..data | cut -c1-4); \
        echo PASSFILE $(cat /etc/secret/password) $(stat -L -c %a /etc/secret/password); \
        echo USERFILE $(cat /etc/secret/user); \
        touch /etc/config/x 2>/dev/null && echo CONFIG rw || echo CONFIG ro; \
        echo SECRETMOUNT $(grep \" /etc/secret \" /proc/mounts)";
    let extra = r#"    resources: {limits: {memory: 64Mi, cpu: 500m}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: app-config}}
    - {secretRef: {name: app-secret}}
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: POD_UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: POD_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: app-config, key: MODE}}}
    - {name: PASS, valueFrom: {secretKeyRef: {name: app-secret, key: password}}}
    - {name: URL, value: "http://$(POD_IP):80/$(MODE)"}
    volumeMounts:
    - {name: config, mountPath: /etc/config}
    - {name: secret, mountPath: /etc/secret}
"#;
    let volumes = r#"  volumes:
  - name: config
    configMap:
      name: app-config
      defaultMode: 0400 # YAML 1.1 octal, as Kubernetes reads it (256)
      items: [{key: MODE, path: conf/mode, mode: 0600}, {key: app.conf, path: app.conf}]
  - {name: secret, secret: {secretName: app-secret}}
"#;
    let yaml = format!(
        "{OBJECTS}{}",
        pod(
            &name,
            &u,
            "Never",
            &container("show", script, extra),
            volumes
        )
    )
    .replacen(
        &format!("  name: {name}\n"),
        &format!("  name: {name}\n  labels: {{app: web}}\n"),
        1,
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    let lines = lines_of(&stdout(&out), "show");
    let has = |l: &str| {
        assert!(
            lines.iter().any(|x| x == l),
            "missing {l:?} in {lines:#?}\nstderr:\n{}",
            stderr(&out)
        )
    };
    let iface = lines
        .iter()
        .find_map(|l| l.strip_prefix("IFACE "))
        .expect("IFACE line");
    let ip = podshim_tests::ipv4_of(&[iface.to_string()]).expect("eth0 address");
    assert!(ip.starts_with(&format!("{}.", inst.prefix)), "{ip}");
    let host_ip = lines
        .iter()
        .find_map(|l| l.strip_prefix("HOST_IP="))
        .expect("HOST_IP");
    assert!(host_ip.parse::<std::net::Ipv4Addr>().is_ok(), "{host_ip}");
    for l in [
        format!("POD_NAME={name}"),
        "POD_NS=default".into(),
        format!("POD_UID={u}"),
        "APP=web".into(),
        format!("POD_IP={ip}"),
        format!("NODE={}", node_name()),
        "MEM_MI=64".into(),
        "CPU_M=500".into(),
        "MODE=fast".into(),
        "PASS=hunter2".into(),
        "CFG_MODE=fast".into(),
        "CFG_app.conf=level=debug".into(),
        "password=hunter2".into(),
        "user=admin".into(),
        format!("URL=http://{ip}:80/fast"),
        // items: only the listed keys, at their paths.
        "app.conf".into(),
        "conf".into(),
        "MODEFILE fast 600".into(),
        "APPCONF level=debug 400".into(),
        "DATA ..20".into(),
        "PASSFILE hunter2 644".into(),
        "USERFILE admin".into(),
        "CONFIG ro".into(),
    ] {
        has(&l);
    }
    assert!(!lines.iter().any(|l| l == "MODE"), "{lines:#?}");
    let mount = lines
        .iter()
        .find_map(|l| l.strip_prefix("SECRETMOUNT "))
        .expect("SECRETMOUNT");
    assert!(mount.starts_with("tmpfs /etc/secret tmpfs ro"), "{mount}");
    inst.assert_clean(&[&u]);
}

#[test]
fn a_missing_config_map_is_an_error_naming_the_field() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let extra = "    env:\n    - {name: A, value: x}\n    - {name: B, valueFrom: {configMapKeyRef: {name: app-config, key: MODE}}}\n";
    let yaml = pod(
        &inst.name("miss"),
        &u,
        "Never",
        &container("c", "true", extra),
        "",
    );
    let out = inst.run(&yaml, T);
    assert!(!out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(r#"spec.containers[0].env[1].valueFrom.configMapKeyRef: Not found: "app-config": CreateContainerConfigError: configmap "app-config" not found"#),
        "{err}"
    );
    inst.assert_clean(&[]);
    inst.assert_clean(&[&u]);
}

#[test]
fn optional_missing_references_are_skipped() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let extra = r#"    env:
    - {name: GONE, valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}}
    - {name: GONE2, valueFrom: {secretKeyRef: {name: nope, key: k, optional: true}}}
    envFrom:
    - {configMapRef: {name: nope, optional: true}}
    volumeMounts:
    - {name: opt, mountPath: /opt/cfg}
"#;
    let volumes = "  volumes:\n  - {name: opt, configMap: {name: nope, optional: true}}\n";
    let script = "echo GONE=${GONE-unset} GONE2=${GONE2-unset}; echo FILES $(ls /opt/cfg | wc -l)";
    let yaml = pod(
        &inst.name("opt"),
        &u,
        "Never",
        &container("c", script, extra),
        volumes,
    );
    let out = inst.run(&yaml, T);
    ok(&out);
    let lines = lines_of(&stdout(&out), "c");
    assert!(
        lines.contains(&"GONE=unset GONE2=unset".to_string()),
        "{lines:?}"
    );
    assert!(lines.contains(&"FILES 0".to_string()), "{lines:?}");
    inst.assert_clean(&[&u]);
}
