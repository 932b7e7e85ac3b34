//! Bad input to `podshim run`: each case exits non-zero with a Kubernetes-style message naming
//! the field, and creates nothing (no Pod state, no bridge, no mounts, no lease).

use std::time::Duration;

use podshim_tests::{stderr, stdout, Instance};

const SUITE: u32 = 2;
const T: Duration = Duration::from_secs(30);

fn rejects(inst: &Instance, yaml: &str, expected: &[&str]) {
    let out = inst.run(yaml, T);
    let err = stderr(&out);
    assert!(
        !out.status.success(),
        "accepted:\n{yaml}\nstdout: {}",
        stdout(&out)
    );
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in:\n{err}");
    }
    assert!(
        !inst.state.join("pods").exists()
            || std::fs::read_dir(inst.state.join("pods"))
                .unwrap()
                .next()
                .is_none(),
        "pod state was created"
    );
    inst.assert_clean(&[]);
}

const GOOD_CONTAINER: &str =
    "  - name: app\n    image: busybox:1.35\n    command: [sh, -c, 'true']\n";

#[test]
fn the_documentation_seed_example_gets_the_kubernetes_name_error_and_a_hint() {
    let inst = Instance::new(SUITE);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata:\n    name: example_pod\n    labels:\n        app: example_app\nspec:\n    containers:\n    - name: example_app_container\n      image: example_image\n      command: ['sh','c','echo Hello K8s!']\n";
    rejects(
        &inst,
        yaml,
        &[
            "metadata.name: Invalid value: \"example_pod\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "example-pod",
        ],
    );
}

#[test]
fn duplicate_container_names() {
    let inst = Instance::new(SUITE);
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: dup}}\nspec:\n  containers:\n{GOOD_CONTAINER}{GOOD_CONTAINER}");
    rejects(
        &inst,
        &yaml,
        &["spec.containers[1].name: Duplicate value: \"app\""],
    );
}

#[test]
fn mount_of_an_undefined_volume() {
    let inst = Instance::new(SUITE);
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: vol}}\nspec:\n  containers:\n{GOOD_CONTAINER}    volumeMounts:\n    - {{name: data, mountPath: /data}}\n");
    rejects(
        &inst,
        &yaml,
        &["spec.containers[0].volumeMounts[0].name: Not found: \"data\""],
    );
}

#[test]
fn unknown_field_with_suggestion() {
    let inst = Instance::new(SUITE);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: typo}\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n    comand: [sh]\n";
    rejects(
        &inst,
        yaml,
        &["spec.containers[0].comand", "unknown field", "command"],
    );
}

#[test]
fn broken_yaml() {
    let inst = Instance::new(SUITE);
    rejects(
        &inst,
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n",
        &["line"],
    );
}

#[test]
fn unknown_kind() {
    let inst = Instance::new(SUITE);
    let yaml = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {}\n";
    rejects(&inst, yaml, &["Deployment", "Pod"]);
}

#[test]
fn missing_image_names_it_and_says_how_to_import() {
    let inst = Instance::new(SUITE);
    // `Never`: no pull (which the registry tests cover), so the store's answer is the error.
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: noimg}\nspec:\n  containers:\n  - name: app\n    image: nosuch:9.9\n    imagePullPolicy: Never\n";
    rejects(
        &inst,
        yaml,
        &["ErrImageNeverPull", "nosuch:9.9", "podshim image import"],
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let inst = Instance::new(SUITE);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec:\n  restartPolicy: Sometimes\n  containers:\n  - name: app\n    image: busybox:1.35\n    ports:\n    - containerPort: 70000\n";
    rejects(
        &inst,
        yaml,
        &[
            "metadata.name",
            "spec.restartPolicy: Unsupported value: \"Sometimes\"",
            "spec.containers[0].ports[0].containerPort",
        ],
    );
}

#[test]
fn dry_run_prints_the_defaulted_pod_and_creates_nothing() {
    let inst = Instance::new(SUITE);
    let yaml = format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: dry}}\nspec:\n  containers:\n{GOOD_CONTAINER}");
    let path = inst.dir.join("dry.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = inst
        .command()
        .arg("run")
        .arg("--dry-run")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    for want in [
        "restartPolicy: Always",
        "imagePullPolicy: IfNotPresent",
        "terminationGracePeriodSeconds: 30",
        "dnsPolicy: ClusterFirst",
        "namespace: default",
    ] {
        assert!(s.contains(want), "{want:?} missing in:\n{s}");
    }
    assert!(
        !inst.state.exists() && !inst.root.exists(),
        "dry run created state"
    );
    inst.assert_clean(&[]);
}

#[test]
fn nul_bytes_and_mounts_onto_runtime_paths_are_refused_with_the_field() {
    let inst = Instance::new(SUITE);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: nul}\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n    command: [sh, -c, \"echo a\\0b\"]\n    env:\n    - {name: A, value: \"x\\u0000\"}\n    volumeMounts:\n    - {name: v, mountPath: /dev/../proc}\n    - {name: v, mountPath: //etc/hosts}\n  volumes:\n  - {name: v, emptyDir: {}}\n";
    rejects(
        &inst,
        yaml,
        &[
            "spec.containers[0].command[2]: Invalid value: \"echo a\\u0000b\": must not contain a NUL byte",
            "spec.containers[0].env[0].value: Invalid value: \"x\\u0000\": must not contain a NUL byte",
            "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"/dev/../proc\": must not be /proc or beneath it",
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"//etc/hosts\": must not be /etc/hosts",
        ],
    );
}

#[test]
fn endless_input_is_refused_at_the_api_server_limit_with_little_memory() {
    use nix::sys::resource::{getrusage, UsageWho};
    let inst = Instance::new(SUITE);
    let start = std::time::Instant::now();
    let out = inst
        .command()
        .args(["run", "--dry-run", "-"])
        .stdin(std::fs::File::open("/dev/zero").unwrap())
        .output()
        .unwrap();
    let took = start.elapsed();
    // The largest resident size of any child this test process has waited for (those of the
    // other tests here are rejected manifests, a few MiB each).
    let peak_kib = getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss();
    eprintln!("podshim run --dry-run - </dev/zero: {took:?}, peak RSS of children {peak_kib} KiB");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("the manifest is larger than 3145728 bytes (3 MiB, the Kubernetes API server's request limit)"),
        "{err}"
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    inst.assert_clean(&[]);
}

#[test]
fn yaml_is_read_as_kubectl_reads_it() {
    let inst = Instance::new(SUITE);
    let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: goyaml}\nspec:\n  containers:\n  - name: app\n    image: busybox:1.35\n    command: [\"it\\'s\"]\n    args: [\n  \"under-indented\"\n  ]\n    env:\n    - {name: A,\tvalue: yes}\n";
    let path = inst.dir.join("goyaml.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = inst
        .command()
        .arg("run")
        .arg("--dry-run")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stdout(&out);
    for want in ["- it's", "- under-indented", "value: \"yes\""] {
        assert!(s.contains(want), "{want:?} missing in:\n{s}");
    }
    assert!(
        stderr(&out).contains("Warning: Pod \"goyaml\": spec.containers[0].env[0].value: unquoted yes is read as the string \"yes\"; kubectl reads it as a boolean"),
        "{}",
        stderr(&out)
    );
}
