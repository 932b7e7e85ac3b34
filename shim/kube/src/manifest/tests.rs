//! End-to-end tests of `parse`/`to_yaml`: whole manifests in, user-facing text out.

use super::*;

const SEED: &str = r#"
apiVersion: v1
kind: Pod
metadata:
    name: example_pod
    labels:
        app: example_app
spec:
    containers:
    - name: example_app_container
      image: example_image
      command: ['sh','c','echo Hello K8s!']
"#;

const VALID: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: web
    image: nginx:1.27
    ports:
    - containerPort: 80
      name: http
    volumeMounts:
    - name: cache
      mountPath: /cache
    - name: scratch
      mountPath: /scratch
      readOnly: true
  - name: sidecar
    image: busybox
    command: ["sh", "-c", "sleep 3600"]
    env:
    - name: MODE
      value: sidecar
  volumes:
  - name: cache
    emptyDir: {}
  - name: scratch
    emptyDir:
      medium: Memory
      sizeLimit: 64Mi
"#;

/// A one-container Pod whose container gets `extra` (YAML lines indented for the container).
fn pod_with(container_extra: &str, spec_extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n{container_extra}{spec_extra}"
    )
}

fn problems(text: &str) -> Vec<String> {
    parse(text)
        .expect_err("manifest should be rejected")
        .problems()
}

#[test]
fn seed_example_reports_both_names_with_hint() {
    let err = parse(SEED).unwrap_err();
    let name_msg = "Invalid value: \"example_pod\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    let container_msg = "Invalid value: \"example_app_container\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
    assert_eq!(
        err.problems(),
        vec![
            format!("metadata.name: {name_msg}"),
            format!("spec.containers[0].name: {container_msg}"),
        ]
    );
    assert_eq!(
        err.to_string(),
        format!(
            "The Pod \"example_pod\" is invalid: \n* metadata.name: {name_msg}\n* spec.containers[0].name: {container_msg}\nhint: \"example-pod\" would be a valid name"
        )
    );
}

#[test]
fn single_problem_is_on_one_line() {
    let text = SEED.replace("example_app_container", "app");
    let err = parse(&text).unwrap_err().to_string();
    assert!(
        err.starts_with("The Pod \"example_pod\" is invalid: metadata.name: Invalid value: \"example_pod\": a lowercase RFC 1123 subdomain"),
        "{err}"
    );
    assert!(
        err.ends_with("\nhint: \"example-pod\" would be a valid name"),
        "{err}"
    );
}

#[test]
fn valid_pod_gets_every_default() {
    let m = parse(VALID).unwrap();
    assert_eq!(m.pods.len(), 1);
    assert!(m.warnings.is_empty());
    let pod = &m.pods[0];
    assert_eq!(pod.name(), "web");
    assert_eq!(pod.namespace(), "default");
    assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
    let spec = &pod.spec;
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.restart_policy(), RestartPolicy::Always);
    assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.security_context, Some(PodSecurityContext::default()));
    let (web, side) = (&spec.containers[0], &spec.containers[1]);
    assert_eq!(web.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(web.pull_policy(), PullPolicy::IfNotPresent);
    assert_eq!(side.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(side.pull_policy(), PullPolicy::Always);
    for c in [web, side] {
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
    }
    assert_eq!(web.ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(web.ports[0].host_port, None);
    assert_eq!(
        spec.volumes[0].empty_dir,
        Some(EmptyDirVolumeSource::default())
    );
    let scratch = spec.volumes[1].empty_dir.as_ref().unwrap();
    assert_eq!(scratch.medium.as_deref(), Some("Memory"));
    assert_eq!(
        scratch.size_limit.as_ref().unwrap().to_bytes(),
        Some(64 << 20)
    );
}

#[test]
fn other_defaults() {
    let text = pod_with(
        "    resources:\n      limits: {memory: 128Mi}\n",
        "  volumes:\n  - name: nothing\n",
    );
    // resources are gated, so apply defaults directly to the decoded Pod.
    let mut v = yaml::documents(&text).remove(0).1.unwrap().value;
    let mut pod = decode::decode_pod(&mut v).unwrap();
    defaults::apply(&mut pod);
    let r = pod.spec.containers[0].resources.as_ref().unwrap();
    assert_eq!(r.requests.get("memory"), Some(&Quantity("128Mi".into())));
    assert_eq!(
        pod.spec.volumes[0].empty_dir,
        Some(EmptyDirVolumeSource::default())
    );
    assert!(validate::validate_pod(&pod).is_empty());
}

#[test]
fn to_yaml_round_trips() {
    let first = parse(VALID).unwrap();
    let text = to_yaml(&first);
    let second = parse(&text).unwrap();
    assert_eq!(first.pods, second.pods);
    let mut twice = first.clone();
    twice.pods.push(first.pods[0].clone());
    let two = to_yaml(&twice);
    assert_eq!(two.matches("---").count(), 1);
    assert_eq!(parse(&two).unwrap().pods.len(), 2);
}

#[test]
fn duplicate_container_names() {
    let text = pod_with(
        "  - name: web\n    image: a\n  - name: web\n    image: b\n",
        "",
    );
    assert_eq!(
        problems(&text),
        vec![r#"spec.containers[2].name: Duplicate value: "web""#]
    );
}

#[test]
fn mount_of_undefined_volume() {
    let text = pod_with(
        "    volumeMounts:\n    - name: data\n      mountPath: /data\n",
        "",
    );
    assert_eq!(
        problems(&text),
        vec![r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#]
    );
}

#[test]
fn unknown_field_with_suggestion() {
    let text = pod_with("    comand: [sh]\n", "");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"error decoding document 1: spec.containers[0].comand: unknown field "comand", did you mean "command"?"#
    );
}

#[test]
fn two_unknown_fields_both_reported() {
    let text = pod_with("    imagePolicy: Always\n", "  restartPolcy: Never\n");
    assert_eq!(
        problems(&text),
        vec![
            r#"spec.containers[0].imagePolicy: unknown field "imagePolicy", did you mean "imagePullPolicy"?"#,
            r#"spec.restartPolcy: unknown field "restartPolcy", did you mean "restartPolicy"?"#,
        ]
    );
}

#[test]
fn broken_yaml_has_line_and_column() {
    let text = format!("{VALID}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: [x\n");
    let err = parse(&text).unwrap_err();
    let ManifestError::Invalid(docs) = &err else {
        panic!("{err:?}")
    };
    match &docs[0] {
        DocumentError::Yaml { document, line, .. } => {
            assert_eq!(*document, 2);
            assert!(line.is_some());
        }
        other => panic!("{other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.starts_with("error parsing YAML document 2 at line "),
        "{text}"
    );
}

#[test]
fn unknown_kind_and_missing_kind() {
    let text = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n";
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        r#"error in document 1: kind "Deployment" (apiVersion "apps/v1") is not supported: podshim supports apiVersion v1 kinds Pod, ConfigMap, Secret and PersistentVolumeClaim, and scheduling.k8s.io/v1 PriorityClass (ConfigMaps, Secrets and PriorityClasses are used by the Pods of the same file)"#
    );
    let text = "apiVersion: v1\nmetadata: {name: d}\n";
    assert_eq!(
        parse(text).unwrap_err().to_string(),
        "error in document 1: kind: Required value: podshim supports apiVersion v1 kinds Pod, ConfigMap, Secret and PersistentVolumeClaim, and scheduling.k8s.io/v1 PriorityClass (ConfigMaps, Secrets and PriorityClasses are used by the Pods of the same file)"
    );
}

#[test]
fn bad_restart_policy() {
    let text = pod_with("", "  restartPolicy: Sometimes\n");
    assert_eq!(
        problems(&text),
        vec![
            r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure""#
        ]
    );
}

#[test]
fn port_out_of_range() {
    let text = pod_with("    ports:\n    - containerPort: 70000\n", "");
    assert_eq!(
        problems(&text),
        vec!["spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"]
    );
}

#[test]
fn bad_env_name() {
    let text = pod_with("    env:\n    - name: 1BAD\n      value: x\n", "");
    assert_eq!(
        problems(&text),
        vec![
            r#"spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name must consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"#
        ]
    );
}

#[test]
fn probe_with_two_handlers() {
    let text = pod_with(
        "    readinessProbe:\n      exec: {command: [\"true\"]}\n      tcpSocket: {port: 80}\n",
        "",
    );
    assert_eq!(
        problems(&text),
        vec![
            "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type",
        ]
    );
}

#[test]
fn bad_quantity_is_a_decoding_error() {
    let text = pod_with(
        "",
        "  volumes:\n  - name: v\n    emptyDir: {sizeLimit: 64Mx}\n",
    );
    assert_eq!(
        problems(&text),
        vec!["spec.volumes[0].emptyDir.sizeLimit: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]
    );
}

#[test]
fn several_errors_in_one_pod_all_reported() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  restartPolicy: Sometimes\n  hostname: Bad_Host\n  containers:\n  - name: c\n    imagePullPolicy: Sometimes\n    ports:\n    - containerPort: 0\n      protocol: ICMP\n    volumeMounts:\n    - name: data\n      mountPath: /d\n";
    let p = problems(text);
    let want = [
        "spec.containers[0].image: Required value",
        "spec.containers[0].ports[0].containerPort: Required value",
        r#"spec.containers[0].ports[0].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
        r#"spec.containers[0].volumeMounts[0].name: Not found: "data""#,
        r#"spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never""#,
        r#"spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "Never", "OnFailure""#,
    ];
    for w in want {
        assert!(p.contains(&w.to_string()), "missing {w} in {p:#?}");
    }
    assert!(p
        .iter()
        .any(|l| l.starts_with("spec.hostname: Invalid value: \"Bad_Host\"")));
    assert_eq!(p.len(), want.len() + 1, "{p:#?}");
}

#[test]
fn unsupported_but_valid_field_is_forbidden() {
    let text = pod_with(
        "    lifecycle:\n      preStop:\n        tcpSocket: {port: 8080}\n",
        "",
    );
    assert_eq!(
        problems(&text),
        vec!["spec.containers[0].lifecycle.preStop.tcpSocket: Forbidden: not supported by podshim yet"]
    );
}

#[test]
fn multiple_documents() {
    let second = pod_with("", "").replace("name: p", "name: q");
    let both = format!("{VALID}---\n{second}\n---\n# only a comment\n");
    let m = parse(&both).unwrap();
    let names: Vec<&str> = m.pods.iter().map(|p| p.name()).collect();
    assert_eq!(names, vec!["web", "q"]);

    let bad = format!(
        "{SEED}---\n{}",
        second.replace("image: busybox", "image: ' busybox'")
    );
    let err = parse(&bad).unwrap_err();
    assert_eq!(err.problems().len(), 3);
    let text = err.to_string();
    assert!(
        text.contains("The Pod \"example_pod\" is invalid: \n* metadata.name"),
        "{text}"
    );
    assert!(
        text.contains("\nThe Pod \"q\" is invalid: spec.containers[0].image: Invalid value: \" busybox\": must not have leading or trailing whitespace"),
        "{text}"
    );
}

#[test]
fn empty_manifest() {
    assert!(matches!(parse("# nothing\n"), Err(ManifestError::Empty)));
}

#[test]
fn no_op_fields_warn() {
    let text = pod_with(
        "",
        "  enableServiceLinks: false\n  schedulerName: default-scheduler\n",
    );
    let m = parse(&text).unwrap();
    assert_eq!(m.warnings.len(), 2, "{:?}", m.warnings);
}

#[test]
fn status_is_accepted_and_dropped() {
    let text = pod_with("", "status:\n  phase: Running\n");
    let m = parse(&text).unwrap();
    assert_eq!(m.pods[0].status, None);
}

#[test]
fn host_network_defaults_host_port() {
    let text = pod_with(
        "    ports:\n    - containerPort: 8080\n",
        "  hostNetwork: true\n",
    );
    let mut v = yaml::documents(&text).remove(0).1.unwrap().value;
    let mut pod = decode::decode_pod(&mut v).unwrap();
    defaults::apply(&mut pod);
    assert_eq!(pod.spec.containers[0].ports[0].host_port, Some(8080));
    assert!(validate::validate_pod(&pod).is_empty());
    assert!(parse(&text).is_ok());
}

#[test]
fn yaml_1_1_values_as_kubectl_reads_them() {
    // Octal modes (what the old `defaultMode` rewrite did), booleans for boolean fields.
    let text = pod_with(
        "    volumeMounts:\n    - {name: s, mountPath: /s}\n",
        "  hostNetwork: yes\n  volumes:\n  - name: s\n    secret: {secretName: x, defaultMode: 0644, items: [{key: a, path: b, mode: 0400}]}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: x}\nstringData: {a: b}\n",
    );
    let m = parse(&text).unwrap();
    let spec = &m.pods[0].spec;
    assert_eq!(spec.host_network, Some(true));
    let secret = spec.volumes[0].secret.as_ref().unwrap();
    assert_eq!(secret.default_mode, Some(0o644));
    assert_eq!(secret.items[0].mode, Some(0o400));
    // A plain boolean or number given to a string field keeps its text, with a warning (kubectl
    // sends a boolean, which the API server refuses).
    let text = pod_with(
        "    env:\n    - {name: A, value: yes}\n    - {name: B, value: 0644}\n",
        "",
    );
    let m = parse(&text).unwrap();
    let env = &m.pods[0].spec.containers[0].env;
    assert_eq!(env[0].value.as_deref(), Some("yes"));
    assert_eq!(env[1].value.as_deref(), Some("0644"));
    assert_eq!(
        m.warnings,
        vec![
            "Pod \"p\": spec.containers[0].env[0].value: unquoted yes is read as the string \"yes\"; kubectl reads it as a boolean and the API server refuses that for a string: quote it",
            "Pod \"p\": spec.containers[0].env[1].value: unquoted 0644 is read as the string \"0644\"; kubectl reads it as a number and the API server refuses that for a string: quote it",
        ]
    );
    // `\'` in a double-quoted scalar, as kubectl reads it.
    let m = parse(&pod_with("    command: [\"it\\'s\"]\n", "")).unwrap();
    assert_eq!(m.pods[0].spec.containers[0].command, vec!["it's"]);
}

#[test]
fn nul_bytes_are_refused_with_the_field_path() {
    let text = pod_with(
        "    command: [\"sh\", \"-c\", \"echo a\\u0000b\"]\n    workingDir: \"/w\\0\"\n    env:\n    - {name: A, value: \"x\\0y\"}\n",
        "",
    );
    let nul = "must not contain a NUL byte: the OCI runtime spec cannot carry it";
    assert_eq!(
        problems(&text),
        vec![
            format!("spec.containers[0].command[2]: Invalid value: \"echo a\\u0000b\": {nul}"),
            format!("spec.containers[0].workingDir: Invalid value: \"/w\\u0000\": {nul}"),
            format!("spec.containers[0].env[0].value: Invalid value: \"x\\u0000y\": {nul}"),
        ]
    );
}

#[test]
fn mounts_onto_runtime_paths_are_refused_however_spelled() {
    let mounts: String = [
        "/proc",
        "/dev/../proc",
        "/proc/",
        "//proc",
        "/proc/sys",
        "/sys/fs/cgroup",
        "/dev",
        "/dev/pts",
        "/",
        "/etc/hosts",
        "/etc//resolv.conf",
        "/etc/hostname",
        "/dev/termination-log",
    ]
    .iter()
    .map(|p| format!("    - {{name: v, mountPath: \"{p}\"}}\n"))
    .collect();
    let text = pod_with(
        &format!("    volumeMounts:\n{mounts}    - {{name: v, mountPath: /dev/shm}}\n    - {{name: v, mountPath: /devices}}\n"),
        "  volumes:\n  - {name: v, emptyDir: {}}\n",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 13, "{p:#?}");
    assert_eq!(
        p[1],
        "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/dev/../proc\": must not be /proc or beneath it: procfs is mounted there (runc refuses any other mount on /proc)"
    );
    assert_eq!(
        p[6],
        "spec.containers[0].volumeMounts[6].mountPath: Invalid value: \"/dev\": must not be /dev: the container's /dev (a tmpfs with its device nodes) is mounted there"
    );
    assert_eq!(
        p[9],
        "spec.containers[0].volumeMounts[9].mountPath: Invalid value: \"/etc/hosts\": must not be /etc/hosts: podshim writes it for every container, as the kubelet does"
    );
    assert!(p[12].ends_with("must not be the container's terminationMessagePath (/dev/termination-log): podshim mounts the termination message file there"), "{}", p[12]);
}

#[test]
fn input_is_read_up_to_the_api_server_limit() {
    let limit = MAX_MANIFEST_BYTES as usize;
    let mut text = format!("{VALID}#");
    text.push_str(&" ".repeat(limit - text.len()));
    assert_eq!(read_text(text.as_bytes()).unwrap().len(), limit);
    text.push(' ');
    let e = read_text(text.as_bytes()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the manifest is larger than 3145728 bytes (3 MiB, the Kubernetes API server's request limit)"
    );
    // An endless stream is cut at the limit.
    assert!(matches!(
        read_text(std::io::repeat(0)),
        Err(ReadError::TooLarge)
    ));
    assert!(matches!(
        read_text(&b"a: \xff"[..]),
        Err(ReadError::NotUtf8)
    ));
}
