//! One test per scheduling rule, each with kube-scheduler's message for one node.

use super::*;
use crate::manifest;

const NOT_HELPFUL: &str =
    "no new claims to deallocate, preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.";

/// A parsed (defaulted, validated, admitted) Pod from the YAML lines of its `spec` after the
/// container, and `metadata` lines.
fn pod_in(ns: &str, name: &str, meta: &str, spec: &str, extra_docs: &str) -> Pod {
    let yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n{meta}spec:\n  containers: [{{name: c, image: i}}]\n{spec}{extra_docs}"
    );
    let m = manifest::parse(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    m.pods.into_iter().next().unwrap()
}

fn pod(meta: &str, spec: &str) -> Pod {
    pod_in("default", "p", meta, spec, "")
}

fn node() -> Node {
    Node::new(
        "node-a",
        &[("disk".into(), "ssd".into()), ("cores".into(), "8".into())],
        vec![],
    )
}

fn tainted(t: &str) -> Node {
    let mut n = node();
    n.taints.push(node::parse_taint(t).unwrap());
    n
}

fn message(d: &Decision) -> &str {
    match d {
        Decision::Pending { message, .. } => message,
        other => panic!("not pending: {other:?}"),
    }
}

#[test]
fn a_plain_pod_is_scheduled() {
    assert_eq!(
        schedule(&pod("", ""), &node(), &[]),
        Decision::Scheduled { preferred: None }
    );
}

#[test]
fn node_selector() {
    let ok = pod("", "  nodeSelector: {disk: ssd, kubernetes.io/os: linux}\n");
    assert!(schedule(&ok, &node(), &[]).runs());
    let no = pod("", "  nodeSelector: {disk: hdd}\n");
    let d = schedule(&no, &node(), &[]);
    assert_eq!(
        message(&d),
        format!("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. {NOT_HELPFUL}")
    );
    // A configured label makes it match.
    let labelled = Node::new("node-a", &[("disk".into(), "hdd".into())], vec![]);
    assert!(schedule(&no, &labelled, &[]).runs());
}

#[test]
fn required_node_affinity_operators_and_fields() {
    let term = |e: &str| {
        format!("  affinity:\n    nodeAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n        nodeSelectorTerms:\n{e}")
    };
    let runs = |e: &str| schedule(&pod("", &term(e)), &node(), &[]).runs();
    assert!(runs(
        "        - matchExpressions: [{key: disk, operator: In, values: [ssd, nvme]}]\n"
    ));
    assert!(!runs(
        "        - matchExpressions: [{key: disk, operator: NotIn, values: [ssd]}]\n"
    ));
    assert!(runs(
        "        - matchExpressions: [{key: gpu, operator: DoesNotExist}]\n"
    ));
    assert!(!runs(
        "        - matchExpressions: [{key: gpu, operator: Exists}]\n"
    ));
    assert!(runs(
        "        - matchExpressions: [{key: cores, operator: Gt, values: ['4']}]\n"
    ));
    assert!(!runs(
        "        - matchExpressions: [{key: cores, operator: Lt, values: ['4']}]\n"
    ));
    // Terms are ORed, requirements ANDed.
    assert!(runs("        - matchExpressions: [{key: gpu, operator: Exists}]\n        - matchExpressions: [{key: disk, operator: Exists}, {key: cores, operator: In, values: ['8']}]\n"));
    assert!(!runs("        - matchExpressions: [{key: disk, operator: Exists}, {key: gpu, operator: Exists}]\n"));
    // matchFields: the node's name.
    assert!(runs(
        "        - matchFields: [{key: metadata.name, operator: In, values: [node-a]}]\n"
    ));
    let other = pod(
        "",
        &term("        - matchFields: [{key: metadata.name, operator: In, values: [node-b]}]\n"),
    );
    assert_eq!(
        message(&schedule(&other, &node(), &[])),
        format!("0/1 nodes are available: 1 node(s) didn't satisfy plugin(s) [NodeAffinity]. {NOT_HELPFUL}")
    );
    let conflict = pod("", &term("        - matchFields: [{key: metadata.name, operator: In, values: [a]}, {key: metadata.name, operator: In, values: [b]}]\n"));
    assert_eq!(
        message(&schedule(&conflict, &node(), &[])),
        format!("0/1 nodes are available: pod affinity terms conflict. {NOT_HELPFUL}")
    );
}

#[test]
fn preferred_node_affinity_is_scored_not_required() {
    let p = pod("", "  affinity:\n    nodeAffinity:\n      preferredDuringSchedulingIgnoredDuringExecution:\n      - {weight: 30, preference: {matchExpressions: [{key: disk, operator: In, values: [ssd]}]}}\n      - {weight: 70, preference: {matchExpressions: [{key: gpu, operator: Exists}]}}\n");
    assert_eq!(
        schedule(&p, &node(), &[]),
        Decision::Scheduled {
            preferred: Some((30, 100))
        }
    );
}

#[test]
fn taints_and_tolerations() {
    let plain = pod("", "");
    let want =
        format!("0/1 nodes are available: 1 node(s) had untolerated taint(s). {NOT_HELPFUL}");
    assert_eq!(
        message(&schedule(&plain, &tainted("dedicated=gpu:NoSchedule"), &[])),
        want
    );
    assert_eq!(
        message(&schedule(&plain, &tainted("maint:NoExecute"), &[])),
        want
    );
    // PreferNoSchedule only scores.
    assert!(schedule(&plain, &tainted("dedicated=gpu:PreferNoSchedule"), &[]).runs());
    let tol = |t: &str| pod("", &format!("  tolerations: [{t}]\n"));
    let n = tainted("dedicated=gpu:NoSchedule");
    assert!(schedule(
        &tol("{key: dedicated, value: gpu, effect: NoSchedule}"),
        &n,
        &[]
    )
    .runs());
    assert!(schedule(&tol("{key: dedicated, operator: Exists}"), &n, &[]).runs());
    assert!(schedule(&tol("{operator: Exists}"), &n, &[]).runs());
    assert!(!schedule(&tol("{key: dedicated, value: cpu}"), &n, &[]).runs());
    assert!(!schedule(
        &tol("{key: dedicated, value: gpu, effect: NoExecute}"),
        &n,
        &[]
    )
    .runs());
}

#[test]
fn scheduling_gates_keep_a_pod_pending() {
    let p = pod("", "  schedulingGates: [{name: example.com/wait}]\n");
    match schedule(&p, &node(), &[]) {
        Decision::Pending {
            reason,
            message,
            detail,
        } => {
            assert_eq!(reason, "SchedulingGated");
            assert_eq!(
                message,
                "Scheduling is blocked due to non-empty scheduling gates"
            );
            assert_eq!(detail, "waiting for scheduling gates: [example.com/wait]");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn node_name_bypasses_the_scheduler_and_the_kubelet_admits() {
    let here = pod("", "  nodeName: node-a\n  nodeSelector: {disk: ssd}\n");
    assert_eq!(schedule(&here, &node(), &[]), Decision::Assigned);
    let elsewhere = pod("", "  nodeName: node-b\n");
    assert_eq!(
        schedule(&elsewhere, &node(), &[]),
        Decision::OtherNode("node-b".into())
    );
    // Taints that only keep the scheduler away (NoSchedule) do not stop the kubelet.
    assert_eq!(
        schedule(
            &pod("", "  nodeName: node-a\n"),
            &tainted("k:NoSchedule"),
            &[]
        ),
        Decision::Assigned
    );
    let mismatch = pod("", "  nodeName: node-a\n  nodeSelector: {disk: hdd}\n");
    assert_eq!(
        schedule(&mismatch, &node(), &[]),
        Decision::Rejected {
            reason: "NodeAffinity".into(),
            message: "Pod was rejected: Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector".into()
        }
    );
    assert_eq!(
        schedule(&pod("", "  nodeName: node-a\n"), &tainted("k:NoExecute"), &[]),
        Decision::Rejected {
            reason: "TaintToleration".into(),
            message: "Pod was rejected: Predicate TaintToleration failed: node(s) had taints that the pod didn't tolerate".into()
        }
    );
}

fn labelled(ns: &str, name: &str, labels: &str, spec: &str) -> Pod {
    pod_in(ns, name, &format!("  labels: {{{labels}}}\n"), spec, "")
}

const ANTI_WEB: &str = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - {labelSelector: {matchLabels: {app: web}}, topologyKey: kubernetes.io/hostname}\n";

#[test]
fn pod_anti_affinity_against_pods_here() {
    let running = labelled("default", "web-1", "app: web", "");
    let second = labelled("default", "web-2", "app: web", ANTI_WEB);
    let d = schedule(&second, &node(), &[&running]);
    assert_eq!(
        message(&d),
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    // Another namespace is not selected by a term without namespaces.
    let other_ns = labelled("other", "web-1", "app: web", "");
    assert!(schedule(&second, &node(), &[&other_ns]).runs());
    // ... unless its namespaceSelector selects it.
    let all_ns = labelled(
        "default",
        "web-2",
        "app: web",
        &ANTI_WEB.replace("labelSelector:", "namespaceSelector: {}, labelSelector:"),
    );
    assert!(!schedule(&all_ns, &node(), &[&other_ns]).runs());
    // A topology key the node does not have: the term does not apply.
    let zone = labelled(
        "default",
        "web-2",
        "app: web",
        &ANTI_WEB.replace("kubernetes.io/hostname", "topology.kubernetes.io/zone"),
    );
    assert!(schedule(&zone, &node(), &[&running]).runs());
    // Symmetry: the running Pod's anti-affinity keeps a matching newcomer away.
    let guard = labelled("default", "guard", "role: guard", ANTI_WEB);
    let web = labelled("default", "web-3", "app: web", "");
    assert_eq!(
        message(&schedule(&web, &node(), &[&guard])),
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
}

#[test]
fn preemption_wording_follows_priority_and_policy() {
    let running = labelled("default", "web-1", "app: web", "");
    let high = pod_in(
        "default",
        "web-2",
        "  labels: {app: web}\n",
        &format!("{ANTI_WEB}  priorityClassName: high\n"),
        "---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: high}\nvalue: 1000\n",
    );
    assert_eq!(high.spec.priority, Some(1000));
    let d = schedule(&high, &node(), &[&running]);
    assert!(
        message(&d).ends_with("preemption: kube-scheduler would evict the lower-priority Pod(s) default/web-1 to make room; podshim does not preempt running Pods"),
        "{d:?}"
    );
    let never = pod_in(
        "default",
        "web-2",
        "  labels: {app: web}\n",
        &format!("{ANTI_WEB}  priorityClassName: calm\n"),
        "---\napiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata: {name: calm}\nvalue: 1000\npreemptionPolicy: Never\n",
    );
    assert_eq!(never.spec.preemption_policy.as_deref(), Some("Never"));
    assert!(message(&schedule(&never, &node(), &[&running])).ends_with(
        "no new claims to deallocate, preemption: not eligible due to preemptionPolicy=Never."
    ));
}

#[test]
fn pod_affinity_needs_a_matching_pod_unless_it_is_the_first() {
    let aff = "  affinity:\n    podAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - {labelSelector: {matchLabels: {app: cache}}, topologyKey: kubernetes.io/hostname}\n";
    let web = labelled("default", "web", "app: web", aff);
    let cache = labelled("default", "cache", "app: cache", "");
    assert!(schedule(&web, &node(), &[&cache]).runs());
    assert_eq!(
        message(&schedule(&web, &node(), &[])),
        format!(
            "0/1 nodes are available: 1 node(s) didn't match pod affinity rules. {NOT_HELPFUL}"
        )
    );
    // The first of a group that selects itself.
    let first = labelled("default", "cache-1", "app: cache", aff);
    assert!(schedule(&first, &node(), &[]).runs());
    // A topology key the node lacks never matches.
    let zoned = labelled(
        "default",
        "web",
        "app: web",
        &aff.replace("kubernetes.io/hostname", "zone"),
    );
    assert!(!schedule(&zoned, &node(), &[&cache]).runs());
}

#[test]
fn match_label_keys_merge_into_the_selector() {
    let anti = "  affinity:\n    podAntiAffinity:\n      requiredDuringSchedulingIgnoredDuringExecution:\n      - {labelSelector: {matchLabels: {app: web}}, matchLabelKeys: [version], topologyKey: kubernetes.io/hostname}\n";
    let v2 = labelled("default", "web-v2", "app: web, version: v2", anti);
    let v1 = labelled("default", "web-v1", "app: web, version: v1", "");
    let other_v2 = labelled("default", "web-v2b", "app: web, version: v2", "");
    assert!(schedule(&v2, &node(), &[&v1]).runs(), "v1 is not selected");
    assert!(!schedule(&v2, &node(), &[&other_v2]).runs());
}

#[test]
fn topology_spread_on_one_domain() {
    let spread = |extra: &str| {
        format!("  topologySpreadConstraints:\n  - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, labelSelector: {{matchLabels: {{app: web}}}}{extra}}}\n")
    };
    let running = labelled("default", "web-1", "app: web", "");
    // One domain: the global minimum is the count here, so the skew is at most 1.
    assert!(schedule(
        &labelled("default", "web-2", "app: web", &spread("")),
        &node(),
        &[&running]
    )
    .runs());
    // minDomains 2 with one domain: the minimum is 0, one Pod here plus itself is a skew of 2.
    let d = schedule(
        &labelled("default", "web-2", "app: web", &spread(", minDomains: 2")),
        &node(),
        &[&running],
    );
    assert_eq!(
        message(&d),
        "0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints. no new claims to deallocate, preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
    );
    assert!(schedule(
        &labelled("default", "web-2", "app: web", &spread(", minDomains: 2")),
        &node(),
        &[]
    )
    .runs());
    // A topology key the node lacks.
    let zone = spread("").replace("kubernetes.io/hostname", "topology.kubernetes.io/zone");
    assert_eq!(
        message(&schedule(&labelled("default", "web-2", "app: web", &zone), &node(), &[])),
        format!("0/1 nodes are available: 1 node(s) didn't match pod topology spread constraints (missing required label). {NOT_HELPFUL}")
    );
    // ScheduleAnyway only scores.
    let anyway = zone.replace("DoNotSchedule", "ScheduleAnyway");
    assert!(schedule(
        &labelled("default", "web-2", "app: web", &anyway),
        &node(),
        &[]
    )
    .runs());
}

#[test]
fn the_filter_order_is_the_schedulers() {
    // Tainted and not matching the selector: TaintToleration runs first.
    let p = pod("", "  nodeSelector: {disk: hdd}\n");
    assert!(message(&schedule(&p, &tainted("k:NoSchedule"), &[])).contains("untolerated taint(s)"));
}
