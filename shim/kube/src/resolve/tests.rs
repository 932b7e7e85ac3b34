//! Resolution of env and volume references against a parsed manifest.

use super::*;
use crate::manifest::parse;
use crate::pod::process::{EnvEntry, EnvValue};

const OBJECTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {MODE: fast, "bad-name": x, app.conf: "a=1\n"}
binaryData: {blob: AAEC}
---
apiVersion: v1
kind: Secret
metadata: {name: sec}
data: {password: aHVudGVyMg==}
stringData: {user: admin, "9lives": cat}
---
"#;

fn node() -> Node {
    Node {
        name: "host-a".into(),
        host_ip: "192.0.2.10".into(),
        milli_cpus: 4000,
        memory: 8 << 30,
    }
}

fn pod(containers: &str, volumes: &str) -> String {
    format!(
        "{OBJECTS}apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  labels: {{app: web}}\n  annotations: {{note: hi}}\nspec:\n  containers:\n{containers}{volumes}"
    )
}

fn env_of(yaml: &str) -> (Vec<EnvEntry>, Vec<String>, Vec<String>) {
    let m = parse(yaml).unwrap();
    let n = node();
    let cx = Context {
        pod: &m.pods[0],
        uid: "u-1",
        manifest: &m,
        node: &n,
    };
    let (mut errors, mut warnings) = (Vec::new(), Vec::new());
    let env = container_env(
        &cx,
        0,
        &m.pods[0].spec.containers[0],
        &mut errors,
        &mut warnings,
    );
    (env, errors, warnings)
}

fn resolved(env: &[EnvEntry]) -> Vec<(String, String)> {
    env.iter()
        .map(|e| {
            let v = match &e.value {
                EnvValue::Literal(v) => format!("literal:{v}"),
                EnvValue::Resolved(v) => v.clone(),
                EnvValue::PodIp => "<podIP>".into(),
            };
            (e.name.clone(), v)
        })
        .collect()
}

#[test]
fn every_env_source_resolves() {
    let c = r#"  - name: c
    image: i
    resources: {limits: {memory: 64Mi, cpu: 500m}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: cfg}}
    - {secretRef: {name: sec}}
    env:
    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: NOTE, valueFrom: {fieldRef: {fieldPath: "metadata.annotations['note']"}}}
    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    - {name: HOST_IP, valueFrom: {fieldRef: {fieldPath: status.hostIP}}}
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: CPU_M, valueFrom: {resourceFieldRef: {resource: limits.cpu, divisor: 1m}}}
    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: REQ_MEM, valueFrom: {resourceFieldRef: {resource: requests.memory}}}
    - {name: MODE, valueFrom: {configMapKeyRef: {name: cfg, key: MODE}}}
    - {name: PASS, valueFrom: {secretKeyRef: {name: sec, key: password}}}
    - {name: GONE, valueFrom: {configMapKeyRef: {name: nope, key: k, optional: true}}}
    - {name: GONE2, valueFrom: {secretKeyRef: {name: sec, key: nope, optional: true}}}
    - {name: LIT, value: "$(MODE)"}
"#;
    let (env, errors, warnings) = env_of(&pod(c, ""));
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("Keys [9lives] from the EnvFrom secret default/sec were skipped"),
        "{warnings:?}"
    );
    let want: Vec<(String, String)> = [
        ("CFG_MODE", "fast"),
        ("CFG_app.conf", "a=1\n"),
        ("CFG_bad-name", "x"),
        ("password", "hunter2"),
        ("user", "admin"),
        ("NAME", "p"),
        ("NS", "default"),
        ("UID", "u-1"),
        ("APP", "web"),
        ("NOTE", "hi"),
        ("IP", "<podIP>"),
        ("HOST_IP", "192.0.2.10"),
        ("NODE", "host-a"),
        ("SA", ""),
        ("MEM", "64"),
        ("CPU_M", "500"),
        ("CPU", "1"),
        ("REQ_MEM", "67108864"),
        ("MODE", "fast"),
        ("PASS", "hunter2"),
        ("LIT", "literal:$(MODE)"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(resolved(&env), want);
}

#[test]
fn limits_default_to_the_node() {
    let c = r#"  - name: c
    image: i
    env:
    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}
    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Gi}}}
    - {name: REQ, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}
"#;
    let (env, errors, _) = env_of(&pod(c, ""));
    assert!(errors.is_empty(), "{errors:?}");
    let v: Vec<String> = resolved(&env).into_iter().map(|(_, v)| v).collect();
    assert_eq!(v, ["4", "8", "0"]);
}

#[test]
fn missing_references_name_the_field() {
    let c = r#"  - name: c
    image: i
    envFrom:
    - {configMapRef: {name: nope}}
    - {secretRef: {name: nope, optional: true}}
    env:
    - {name: A, valueFrom: {configMapKeyRef: {name: app-config, key: k}}}
    - {name: B, valueFrom: {configMapKeyRef: {name: cfg, key: missing}}}
    - {name: C, valueFrom: {secretKeyRef: {name: sec, key: missing}}}
    - {name: D, valueFrom: {secretKeyRef: {name: gone, key: k}}}
"#;
    let (_, errors, _) = env_of(&pod(c, ""));
    assert_eq!(
        errors,
        [
            r#"spec.containers[0].envFrom[0].configMapRef: Not found: "nope": CreateContainerConfigError: configmap "nope" not found"#,
            r#"spec.containers[0].env[0].valueFrom.configMapKeyRef: Not found: "app-config": CreateContainerConfigError: configmap "app-config" not found"#,
            r#"spec.containers[0].env[1].valueFrom.configMapKeyRef.key: Not found: "missing": couldn't find key missing in ConfigMap default/cfg"#,
            r#"spec.containers[0].env[2].valueFrom.secretKeyRef.key: Not found: "missing": couldn't find key missing in Secret default/sec"#,
            r#"spec.containers[0].env[3].valueFrom.secretKeyRef: Not found: "gone": CreateContainerConfigError: secret "gone" not found"#,
        ]
    );
}

#[test]
fn volumes_project_keys_items_and_modes() {
    let c = "  - {name: c, image: i}\n";
    let v = r#"  volumes:
  - {name: all, configMap: {name: cfg}}
  - name: some
    configMap:
      name: cfg
      defaultMode: 256
      items: [{key: MODE, path: conf/mode, mode: 384}, {key: app.conf, path: app.conf}, {key: nope, path: x}]
  - {name: s, secret: {secretName: sec}}
  - {name: opt, secret: {secretName: gone, optional: true}}
  - {name: bad, configMap: {name: gone}}
"#;
    let m = parse(&pod(c, v)).unwrap();
    let n = node();
    let cx = Context {
        pod: &m.pods[0],
        uid: "u",
        manifest: &m,
        node: &n,
    };
    let mut errors = Vec::new();
    let vols = &m.pods[0].spec.volumes;
    let files = |i: usize, errors: &mut Vec<String>| {
        volume_contents(&cx, i, &vols[i], errors).map(|c| {
            let f: Vec<(String, Vec<u8>, u32)> = c
                .projection
                .files
                .iter()
                .map(|f| (f.path.clone(), f.data.clone(), f.mode))
                .collect();
            (f, c.secret)
        })
    };
    let (all, secret) = files(0, &mut errors).unwrap();
    assert!(!secret);
    let names: Vec<&str> = all.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(names, ["MODE", "app.conf", "bad-name", "blob"]);
    assert_eq!(all[3].1, vec![0, 1, 2]);
    assert!(all.iter().all(|f| f.2 == 0o644));
    let (some, _) = files(1, &mut errors).unwrap();
    assert_eq!(
        some,
        vec![
            ("conf/mode".to_string(), b"fast".to_vec(), 0o600),
            ("app.conf".to_string(), b"a=1\n".to_vec(), 0o400),
        ]
    );
    assert_eq!(
        errors,
        [
            r#"spec.volumes[1].configMap.items[2].key: Not found: "nope": configmap references non-existent config key: nope"#
        ]
    );
    errors.clear();
    let (s, secret) = files(2, &mut errors).unwrap();
    assert!(secret);
    assert_eq!(s.len(), 3);
    let (opt, _) = files(3, &mut errors).unwrap();
    assert!(opt.is_empty());
    assert!(files(4, &mut errors).is_none());
    assert_eq!(
        errors,
        [r#"spec.volumes[4].configMap: Not found: "gone": configmap "gone" not found"#]
    );
}
