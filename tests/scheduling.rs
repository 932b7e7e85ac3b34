//! Scheduling on one node, end to end through the real binary: a Pod is placed on this node as
//! kube-scheduler would place it (nodeSelector, node labels from `--node-label`, taints from
//! `--node-taint` and tolerations, anti-affinity against a Pod running here, scheduling gates,
//! priority); one that cannot be placed is reported Pending/Unschedulable with the scheduler's
//! message, podshim exits non-zero and nothing is created.

use std::time::Duration;

use podshim_tests::*;

const SUITE: u32 = 14;
const T: Duration = Duration::from_secs(60);
const NOT_HELPFUL: &str = "no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

/// A Pod running `script` once, with `spec` lines (after the containers) and `labels`.
fn pod_with(name: &str, uid: &str, labels: &str, script: &str, spec: &str) -> String {
    let c = container("c", script, "");
    pod(name, uid, "Never", &c, spec)
        .replace("  uid: ", &format!("  labels: {{{labels}}}\n  uid: "))
}

/// `podshim run` refused the Pod as Pending with `message`, and created nothing.
fn pending(inst: &Instance, yaml: &str, message: &str) {
    let out = inst.run(yaml, T);
    let err = stderr(&out);
    assert!(!out.status.success(), "ran:\n{yaml}\n{err}");
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    assert!(
        err.contains("not every pod can be placed on this node; nothing was created"),
        "{err}"
    );
    inst.assert_clean(&[]);
}

/// This host's node name, as podshim names it (the host name, lower case).
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_lowercase()
}

#[test]
fn a_matching_node_selector_runs_and_the_pod_is_bound_with_its_priority() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("sel");
    let spec =
        "  nodeSelector: {kubernetes.io/os: linux}\n  priorityClassName: system-node-critical\n";
    let yaml = pod_with(&name, &u, "app: sel", "exec sleep 3600", spec);
    ok(&inst.detach(&yaml));
    let v = inst.inspect(&name);
    assert_eq!(v["spec"]["nodeName"], node_name().as_str(), "{v:#}");
    assert_eq!(v["spec"]["priority"], 2_000_001_000, "{v:#}");
    assert_eq!(v["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_non_matching_node_selector_is_unschedulable_until_a_node_label_matches() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("ssd");
    let yaml = pod_with(
        &name,
        &u,
        "app: ssd",
        "echo placed",
        "  nodeSelector: {disk: ssd}\n",
    );
    pending(
        &inst,
        &yaml,
        &format!("pod \"{name}\": Pending: Unschedulable: 0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. {NOT_HELPFUL}"),
    );
    // --dry-run says the same, and where it would go once the node has the label.
    let path = inst.dir.join("ssd.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let path = path.to_string_lossy().to_string();
    let out = inst.podshim(&["run", "--dry-run", &path], T);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("didn't match Pod's node affinity/selector"),
        "{}",
        stderr(&out)
    );
    let out = inst.podshim(&["--node-label", "disk=ssd", "run", "--dry-run", &path], T);
    ok(&out);
    assert!(
        stderr(&out).contains(&format!(
            "pod \"{name}\": scheduled to node \"{}\"",
            node_name()
        )),
        "{}",
        stderr(&out)
    );
    // The environment form, comma-separated, as the real run uses it.
    inst.env
        .push(("PODSHIM_NODE_LABELS".into(), "zone=a,disk=ssd".into()));
    let out = inst.run(&yaml, T);
    ok(&out);
    assert_eq!(lines_of(&stdout(&out), "c"), ["placed"]);
    inst.assert_clean(&[&u]);
}

#[test]
fn anti_affinity_against_a_running_pod() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (u1, u2) = (uid(3), uid(4));
    let (first, second) = (inst.name("web1"), inst.name("web2"));
    ok(&inst.detach(&pod_with(&first, &u1, "app: web", "exec sleep 3600", "")));
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: web}}\n        topologyKey: kubernetes.io/hostname\n";
    let yaml = pod_with(&second, &u2, "app: web", "echo placed", anti);
    let out = inst.run(&yaml, T);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Pending: Unschedulable: 0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."),
        "{err}"
    );
    assert!(
        err.contains(&format!("selects Pod default/{first} here")),
        "{err}"
    );
    // Nothing of the second Pod exists; the first still runs.
    assert!(!inst
        .state
        .join("records")
        .join(format!("default_{second}.json"))
        .exists());
    assert_eq!(inst.inspect(&first)["status"]["phase"], "Running");
    // Once the first is gone, the second is placed.
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &first], T));
    let out = inst.run(&yaml, T);
    ok(&out);
    inst.assert_clean(&[&u1, &u2]);
}

/// The other direction: a running Pod's required anti-affinity keeps away a plain Pod it
/// selects (podshim reads only the records that can hold such terms for a plain Pod).
#[test]
fn a_running_pods_anti_affinity_keeps_a_plain_pod_away() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (u1, u2, u3) = (uid(20), uid(21), uid(22));
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - labelSelector: {matchLabels: {app: db}}\n        topologyKey: kubernetes.io/hostname\n";
    let first = inst.name("guard");
    ok(&inst.detach(&pod_with(
        &first,
        &u1,
        "app: guard",
        "exec sleep 3600",
        anti,
    )));
    // A plain Pod of another app runs beside it...
    ok(&inst.run(
        &pod_with(&inst.name("other"), &u3, "app: other", "echo placed", ""),
        T,
    ));
    // ...one it selects does not.
    let out = inst.run(
        &pod_with(&inst.name("db"), &u2, "app: db", "echo placed", ""),
        T,
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("node(s) didn't satisfy existing pods anti-affinity rules"),
        "{err}"
    );
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &first], T));
    inst.assert_clean(&[&u1, &u2, &u3]);
}

#[test]
fn a_gated_pod_is_not_scheduled() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let name = inst.name("gated");
    let yaml = pod_with(
        &name,
        &uid(5),
        "app: g",
        "echo placed",
        "  schedulingGates: [{name: example.com/quota}]\n",
    );
    pending(
        &inst,
        &yaml,
        &format!("pod \"{name}\": Pending: SchedulingGated: Scheduling is blocked due to non-empty scheduling gates"),
    );
}

#[test]
fn a_taint_keeps_pods_without_a_toleration_away() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    inst.env.push((
        "PODSHIM_NODE_TAINTS".into(),
        "dedicated=gpu:NoSchedule".into(),
    ));
    let u = uid(6);
    let name = inst.name("taint");
    let plain = pod_with(&name, &u, "app: t", "echo placed", "");
    pending(
        &inst,
        &plain,
        &format!("pod \"{name}\": Pending: Unschedulable: 0/1 nodes are available: 1 node(s) had untolerated taint(s). {NOT_HELPFUL}"),
    );
    let tolerating = pod_with(
        &name,
        &u,
        "app: t",
        "echo placed",
        "  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]\n",
    );
    let out = inst.run(&tolerating, T);
    ok(&out);
    assert_eq!(lines_of(&stdout(&out), "c"), ["placed"]);
    inst.assert_clean(&[&u]);
}

#[test]
fn an_unknown_priority_class_is_forbidden_as_by_the_admission_plugin() {
    let inst = Instance::new(SUITE);
    let name = inst.name("prio");
    let yaml = pod_with(
        &name,
        &uid(7),
        "app: p",
        "true",
        "  priorityClassName: gold\n",
    );
    let out = inst.run(&yaml, T);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "pods \"{name}\" is forbidden: no PriorityClass with name gold was found"
        )),
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[]);
}
