//! Workload controllers with real Pods: a ReplicaSet scaled, healed, given a new template and
//! its controller killed; a Deployment's rolling update sampled every 50 ms, rolled back, and
//! its controller killed in the middle; invalid workloads refused with the API server's words.
//! Each test ends with `delete` and checks nothing of its instance is left (Pods, records,
//! controller processes, host resources).

mod workload;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use podshim_tests::*;
use workload::*;

fn rs_yaml(name: &str, replicas: i32, env: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\n  labels: {{tier: web}}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}, tier: web}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        env: [{{name: VERSION, value: \"{env}\"}}]\n        command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
    )
}

#[test]
fn replicaset_scales_heals_follows_its_template_and_survives_its_controller() {
    let i = Instance::new(40);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("web");
    ok(&apply(&i, &rs_yaml(&name, 1, "v1")));
    let rs = get_json(&i, &format!("rs/{name}"));
    let uid = rs["metadata"]["uid"].as_str().unwrap().to_string();

    // Scale 1 → 5 → 0 → 3: names, IPs, owner references and labels.
    let mut seen_uids = BTreeSet::new();
    for n in [1usize, 5, 0, 3] {
        ok(&i.podshim(
            &["scale", &format!("rs/{name}"), "--replicas", &n.to_string()],
            T,
        ));
        let pods = wait_running(&i, &name, n, Duration::from_secs(30));
        let ips: BTreeSet<String> = pods.iter().map(|p| p.ip.clone()).collect();
        assert_eq!(ips.len(), n, "every Pod has its own IP: {pods:?}");
        for p in &pods {
            assert_generated_name(&p.name, &name);
            let owner = &p.object["metadata"]["ownerReferences"][0];
            assert_eq!(owner["uid"], uid.as_str());
            assert_eq!(owner["kind"], "ReplicaSet");
            assert_eq!(owner["controller"], true);
            assert_eq!(p.object["metadata"]["labels"]["app"], name.as_str());
            assert_eq!(p.object["metadata"]["labels"]["tier"], "web");
            seen_uids.insert(p.uid.clone());
        }
        let status = get_json(&i, &format!("rs/{name}"))["status"].clone();
        assert_eq!(status["replicas"], n, "{status}");
    }

    // Self-healing: a Pod removed is replaced; a Pod whose pause was killed gets a new sandbox
    // from its supervisor (the Pod stays).
    let before = wait_running(&i, &name, 3, T);
    let victim = &before[0];
    let t0 = Instant::now();
    ok(&i.podshim(&["rm", "-f", &victim.name], T));
    let after = wait_replaced(&i, &name, &victim.name, 3);
    println!(
        "replacement of a removed Pod Running after {:?} (from rm -f)",
        t0.elapsed()
    );
    // A replica whose pause was killed heals in place, as under the kubelet: its supervisor
    // makes a new sandbox and restarts the containers in it (restartCount 1); the ReplicaSet
    // makes no new Pod.
    let victim = after[0].clone();
    let pause = pause_pid(&victim.name).expect("the Pod's pause process");
    let t0 = Instant::now();
    kill9(pause);
    let deadline = Instant::now() + podshim_tests::scaled(T);
    loop {
        let all = records(&i, &name);
        let me = all.iter().find(|p| p.name == victim.name);
        let new_pause = pause_pid(&victim.name);
        let healed = me.is_some_and(|me| {
            me.phase == "Running" && me.ready && !me.terminating && me.restarts >= 1
        });
        if all.len() == 3 && healed && new_pause.is_some_and(|p| p != pause) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} not healed in a new sandbox within {T:?}: pause {new_pause:?} (was {pause}), \
             Pods {:#?}",
            victim.name,
            all.iter()
                .map(|p| (&p.name, &p.phase, p.ready, p.terminating, p.restarts))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let healed = t0.elapsed();
    println!(
        "a Pod whose pause was killed Running and Ready again in a new sandbox after {healed:?}"
    );
    assert!(healed < Duration::from_secs(10), "{healed:?}");
    assert!(
        records(&i, &name).iter().any(|p| p.uid == victim.uid),
        "the same Pod (uid {}) healed, no replacement",
        victim.uid
    );

    // The cookie cutter: a new template changes no existing Pod; a replacement follows it.
    ok(&apply(&i, &rs_yaml(&name, 3, "v2")));
    std::thread::sleep(Duration::from_secs(1));
    let pods = wait_running(&i, &name, 3, T);
    for p in &pods {
        assert_eq!(env_of(p, "VERSION"), "v1", "existing Pods keep their spec");
    }
    ok(&i.podshim(&["rm", "-f", &pods[0].name], T));
    let pods = wait_replaced(&i, &name, &pods[0].name, 3);
    let versions: Vec<String> = pods.iter().map(|p| env_of(p, "VERSION")).collect();
    assert_eq!(
        versions.iter().filter(|v| *v == "v2").count(),
        1,
        "{versions:?}"
    );

    // The controller SIGKILLed: the Pods keep running; it is back within seconds and adopts
    // them (no new Pod), and still heals.
    let names: BTreeSet<String> = pods.iter().map(|p| p.name.clone()).collect();
    let stem = format!("replicasets_default_{name}");
    let worker = worker_pid(&i, &stem);
    kill9(worker);
    let t0 = Instant::now();
    let back = wait_until(Duration::from_secs(10), "the controller is back", || {
        let w = worker_pid(&i, &stem);
        (w != worker && alive(w)).then_some(w)
    });
    println!(
        "controller back after {:?} (pid {worker} → {back})",
        t0.elapsed()
    );
    std::thread::sleep(Duration::from_secs(1));
    let now: BTreeSet<String> = wait_running(&i, &name, 3, T)
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(now, names, "the restarted controller adopted the Pods");
    // Both keeper and worker killed: the next workload command starts them again.
    let keeper = keeper_pid(&i, &stem);
    kill9(keeper);
    kill9(back);
    std::thread::sleep(Duration::from_millis(200));
    ok(&i.podshim(&["get", "rs"], T));
    wait_until(Duration::from_secs(10), "a new controller", || {
        let w = worker_pid(&i, &stem);
        (w != back && alive(w)).then_some(w)
    });
    ok(&i.podshim(&["rm", "-f", &pods[1].name], T));
    wait_replaced(&i, &name, &pods[1].name, 3);

    // Deleting the ReplicaSet deletes its Pods; nothing is left.
    let out = i.podshim(&["delete", &format!("rs/{name}")], Duration::from_secs(120));
    ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("replicaset.apps {name:?} deleted")
    );
    assert_all_gone(&i);
}

#[test]
fn orphaned_pods_stay_when_the_cascade_is_orphan() {
    let i = Instance::new(41);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("orph");
    // Applied under `flock` (as a CI runner would): the lock's descriptor, inherited without
    // close-on-exec, must not stay open in the controllers or the supervisors they start.
    let lock = i.dir.join("runner.lock");
    let manifest = i.dir.join("orph.yaml");
    std::fs::write(&manifest, rs_yaml(&name, 2, "v1")).unwrap();
    let out = std::process::Command::new("flock")
        .arg(&lock)
        .arg(podshim_bin())
        .args([
            "--root",
            &i.root.to_string_lossy(),
            "--state",
            &i.state.to_string_lossy(),
        ])
        .args(["--bridge", &i.bridge, "--subnet", &i.subnet])
        .args(["--log-root", &i.dir.join("logs").to_string_lossy()])
        .args(["apply", "-f", &manifest.to_string_lossy()])
        .output()
        .unwrap();
    ok(&out);
    wait_running(&i, &name, 2, Duration::from_secs(30));
    let free = std::process::Command::new("flock")
        .args(["-n", &lock.to_string_lossy(), "true"])
        .status()
        .unwrap();
    assert!(
        free.success(),
        "a controller or supervisor kept the runner's lock"
    );
    ok(&i.podshim(&["delete", &format!("rs/{name}"), "--cascade=orphan"], T));
    std::thread::sleep(Duration::from_millis(500));
    let pods = running_pods(&i, &name);
    assert_eq!(pods.len(), 2, "the Pods keep running: {pods:?}");
    for p in &pods {
        ok(&i.podshim(&["rm", "-f", &p.name], T));
    }
    assert_all_gone(&i);
}

#[test]
fn invalid_workloads_get_the_api_servers_messages_and_create_nothing() {
    let i = Instance::new(42);
    let _stop = StopControllers(&i);
    let name = i.name("bad");
    let cases: Vec<(String, &str)> = vec![
        (
            rs_yaml(&name, 1, "v1").replace(&format!("matchLabels: {{app: {name}}}"), "matchLabels: {app: other}"),
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"",
        ),
        (
            rs_yaml(&name, 1, "v1").replace("terminationGracePeriodSeconds: 1", "restartPolicy: Never"),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ),
        (
            rs_yaml(&name, -1, "v1"),
            "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            rs_yaml(&name, 1, "v1").replace("matchLabels:", "matchLabls:"),
            "error decoding document 1: spec.selector.matchLabls: unknown field \"matchLabls\", did you mean \"matchLabels\"?",
        ),
    ];
    for (yaml, want) in &cases {
        let out = apply(&i, yaml);
        assert!(!out.status.success(), "{yaml}");
        assert!(
            stderr(&out).contains(want),
            "want {want:?} in:\n{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).starts_with("The ReplicaSet ") || want.starts_with("error decoding"),
            "{}",
            stderr(&out)
        );
    }
    // A Job whose Pods would run forever.
    let job = format!("apiVersion: batch/v1\nkind: Job\nmetadata: {{name: {name}}}\nspec:\n  template:\n    spec:\n      containers: [{{name: c, image: busybox:1.35}}]\n");
    let out = apply(&i, &job);
    assert!(stderr(&out).contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"Never\", \"OnFailure\""), "{}", stderr(&out));
    // Nothing was stored; nothing runs.
    let out = i.podshim(&["get", "rs,jobs"], T);
    ok(&out);
    assert_eq!(stdout(&out).trim(), "");
    // An immutable field changed.
    let dep = |app: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {app}}}}}\n  template:\n    metadata: {{labels: {{app: {app}}}}}\n    spec:\n      containers: [{{name: c, image: busybox:1.35}}]\n")
    };
    i.import_busybox();
    ok(&apply(&i, &dep("a")));
    let out = apply(&i, &dep("b"));
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        format!("The Deployment {name:?} is invalid: spec.selector: Invalid value: v1.LabelSelector{{MatchLabels:map[string]string{{\"app\":\"b\"}}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}: field is immutable")
    );
    // Applying the same file twice changes nothing.
    let out = apply(&i, &dep("a"));
    ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("deployment.apps/{name} unchanged")
    );
    ok(&i.podshim(&["delete", "deploy", &name], T));
    assert_all_gone(&i);
}

fn deploy_yaml(name: &str, replicas: i32, version: &str, strategy: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  strategy:\n{strategy}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        env: [{{name: VERSION, value: \"{version}\"}}]\n        command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
    )
}

const SURGE_1: &str =
    "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}";

/// Samples the Deployment's Pods every 50 ms until `done` holds: the fewest Ready Pods and
/// the most Pods seen at once (Pods being stopped do not count, as for Kubernetes' surge).
fn sample_rollout(
    i: &Instance,
    name: &str,
    mut done: impl FnMut(&[PodRec]) -> bool,
) -> (usize, usize) {
    let deadline = Instant::now() + podshim_tests::scaled(Duration::from_secs(120));
    let (mut min_ready, mut max_pods) = (usize::MAX, 0);
    loop {
        let pods = records(i, name);
        let live: Vec<&PodRec> = pods
            .iter()
            .filter(|p| !p.terminating && !matches!(p.phase.as_str(), "Succeeded" | "Failed"))
            .collect();
        let ready = live.iter().filter(|p| p.ready && !p.terminating).count();
        if ready < min_ready && min_ready != usize::MAX {
            // Shown when the test fails: which Pods the new low is made of.
            println!(
                "{ready} Ready at {:?}: {:?}",
                Instant::now(),
                pods.iter()
                    .map(|p| (&p.name, &p.phase, p.ready, p.terminating))
                    .collect::<Vec<_>>()
            );
        }
        min_ready = min_ready.min(ready);
        max_pods = max_pods.max(live.len());
        if done(&pods) {
            return (min_ready, max_pods);
        }
        assert!(
            Instant::now() < deadline,
            "the rollout did not finish: {pods:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn all_at(pods: &[PodRec], version: &str, n: usize) -> bool {
    let running: Vec<&PodRec> = pods
        .iter()
        .filter(|p| p.phase == "Running" && p.ready && !p.terminating)
        .collect();
    running.len() == n && pods.len() == n && running.iter().all(|p| env_of(p, "VERSION") == version)
}

#[test]
fn deployment_rolls_out_within_surge_and_unavailability_and_rolls_back() {
    let i = Instance::new(43);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("roll");
    ok(&apply(&i, &deploy_yaml(&name, 4, "v1", SURGE_1)));
    let out = i.podshim(
        &[
            "rollout",
            "status",
            &format!("deploy/{name}"),
            "--timeout",
            &podshim_tests::scaled(Duration::from_secs(60))
                .as_secs()
                .to_string(),
        ],
        T,
    );
    ok(&out);
    assert!(
        stdout(&out).ends_with(&format!("deployment {name:?} successfully rolled out\n")),
        "{}",
        stdout(&out)
    );
    let v1 = wait_running(&i, &name, 4, T);
    let rs1 = get_json(&i, "rs");
    let rs1_name = rs1["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let hash = rs1["items"][0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rs1_name, format!("{name}-{hash}"));
    for p in &v1 {
        assert_generated_name(&p.name, &rs1_name);
        assert_eq!(
            p.object["metadata"]["labels"]["pod-template-hash"],
            hash.as_str()
        );
    }

    // A new template: 4 Ready Pods at every sample, never more than 5 Pods.
    ok(&apply(&i, &deploy_yaml(&name, 4, "v2", SURGE_1)));
    let (min_ready, max_pods) = sample_rollout(&i, &name, |p| all_at(p, "v2", 4));
    println!("rollout v1 → v2: at least {min_ready} Ready, at most {max_pods} Pods");
    assert!(
        min_ready >= 4,
        "maxUnavailable 0: {min_ready} Ready Pods seen"
    );
    assert!(max_pods <= 5, "maxSurge 1: {max_pods} Pods seen");
    let out = i.podshim(
        &[
            "rollout",
            "status",
            &format!("deploy/{name}"),
            "--timeout",
            &podshim_tests::scaled(Duration::from_secs(30))
                .as_secs()
                .to_string(),
        ],
        T,
    );
    ok(&out);
    let d = get_json(&i, &format!("deploy/{name}"));
    let s = &d["status"];
    assert_eq!(
        (
            s["replicas"].as_i64(),
            s["updatedReplicas"].as_i64(),
            s["availableReplicas"].as_i64()
        ),
        (Some(4), Some(4), Some(4)),
        "{s}"
    );
    let cond = |t: &str| {
        s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == t)
            .cloned()
            .unwrap()
    };
    assert_eq!(cond("Available")["reason"], "MinimumReplicasAvailable");
    assert_eq!(cond("Progressing")["reason"], "NewReplicaSetAvailable");
    let hist = stdout(&i.podshim(&["rollout", "history", &format!("deploy/{name}")], T));
    assert!(
        hist.contains("REVISION") && hist.contains("\n1 ") && hist.contains("\n2 "),
        "{hist}"
    );

    // Undo goes back to v1, with the same guarantees; revision 1 becomes 3.
    ok(&i.podshim(&["rollout", "undo", &format!("deploy/{name}")], T));
    let (min_ready, max_pods) = sample_rollout(&i, &name, |p| all_at(p, "v1", 4));
    assert!(
        min_ready >= 4 && max_pods <= 5,
        "undo: {min_ready} Ready, {max_pods} Pods"
    );
    let rs = get_json(&i, &format!("rs/{rs1_name}"));
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "3"
    );

    // SIGKILL of the controller in the middle of a rollout: it comes back and finishes it,
    // no duplicate Pod (never more than 5).
    let stem = format!("deployments_default_{name}");
    ok(&apply(&i, &deploy_yaml(&name, 4, "v3", SURGE_1)));
    wait_until(T, "the rollout has started", || {
        records(&i, &name)
            .iter()
            .any(|p| env_of(p, "VERSION") == "v3")
            .then_some(())
    });
    let worker = worker_pid(&i, &stem);
    kill9(worker);
    let (min_ready, max_pods) = sample_rollout(&i, &name, |p| all_at(p, "v3", 4));
    assert!(worker_pid(&i, &stem) != worker);
    assert!(
        min_ready >= 4 && max_pods <= 5,
        "after SIGKILL: {min_ready} Ready, {max_pods} Pods"
    );

    // Scale, restart, pause and resume.
    ok(&i.podshim(&["scale", &format!("deploy/{name}"), "--replicas", "2"], T));
    wait_running(&i, &name, 2, T);
    ok(&i.podshim(&["rollout", "pause", &format!("deploy/{name}")], T));
    ok(&apply(
        &i,
        &deploy_yaml(&name, 2, "v4", SURGE_1)
            .replace("replicas: 2\n", "replicas: 2\n  paused: true\n"),
    ));
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        records(&i, &name)
            .iter()
            .all(|p| env_of(p, "VERSION") == "v3"),
        "paused: nothing rolls out"
    );
    ok(&i.podshim(&["rollout", "resume", &format!("deploy/{name}")], T));
    sample_rollout(&i, &name, |p| all_at(p, "v4", 2));
    let before: BTreeSet<String> = records(&i, &name).into_iter().map(|p| p.name).collect();
    ok(&i.podshim(&["rollout", "restart", &format!("deploy/{name}")], T));
    sample_rollout(&i, &name, |p| {
        all_at(p, "v4", 2) && p.iter().all(|x| !before.contains(&x.name))
    });

    ok(&i.podshim(
        &["delete", &format!("deploy/{name}")],
        Duration::from_secs(120),
    ));
    let out = i.podshim(&["get", "deploy,rs"], T);
    assert_eq!(stdout(&out).trim(), "");
    assert_all_gone(&i);
}

#[test]
fn recreate_stops_every_old_pod_before_making_new_ones() {
    let i = Instance::new(44);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("rec");
    let recreate = "    type: Recreate";
    ok(&apply(&i, &deploy_yaml(&name, 2, "v1", recreate)));
    wait_running(&i, &name, 2, T);
    ok(&apply(&i, &deploy_yaml(&name, 2, "v2", recreate)));
    let mut mixed = false;
    sample_rollout(&i, &name, |p| {
        let live: Vec<&PodRec> = p
            .iter()
            .filter(|x| x.phase == "Running" && !x.terminating)
            .collect();
        mixed |= live.iter().any(|x| env_of(x, "VERSION") == "v1")
            && live.iter().any(|x| env_of(x, "VERSION") == "v2");
        all_at(p, "v2", 2)
    });
    assert!(!mixed, "Recreate never runs old and new Pods together");
    ok(&i.podshim(
        &["delete", &format!("deploy/{name}")],
        Duration::from_secs(120),
    ));
    assert_all_gone(&i);
}

#[test]
fn up_brings_every_workload_back_after_a_reboot_and_logs_pick_a_pod() {
    let i = Instance::new(49);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("boot");
    let yaml = deploy_yaml(&name, 2, "v1", SURGE_1).replace(
        "while true; do sleep 1; done",
        "echo hello from $VERSION; while true; do sleep 1; done",
    );
    ok(&apply(&i, &yaml));
    let pods = wait_running(&i, &name, 2, T);
    let out = i.podshim(&["logs", &format!("deploy/{name}")], T);
    ok(&out);
    assert_eq!(stdout(&out), "hello from v1\n");
    let out = i.podshim(&["get", "deploy,rs,pods"], T);
    ok(&out);
    let text = stdout(&out);
    assert!(
        text.contains("NAME")
            && text.contains("READY")
            && text.contains("UP-TO-DATE")
            && text.contains("AVAILABLE"),
        "{text}"
    );
    assert!(
        text.contains(&format!("deployment.apps/{name}   2/2")),
        "{text}"
    );
    let out = i.podshim(&["describe", "deploy", &name], T);
    ok(&out);
    assert!(
        stdout(&out).contains("StrategyType:   RollingUpdate"),
        "{}",
        stdout(&out)
    );

    // A reboot: the controller processes and the Pods are gone; the store remains.
    let stem = format!("deployments_default_{name}");
    kill9(keeper_pid(&i, &stem));
    kill9(worker_pid(&i, &stem));
    for p in &pods {
        ok(&i.podshim(&["rm", "-f", &p.name], T));
    }
    assert!(records(&i, &name).is_empty());
    let out = i.podshim(&["up"], T);
    ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        format!("deployment.apps/{name}: controller started")
    );
    let again = wait_running(&i, &name, 2, T);
    assert!(again.iter().all(|p| pods.iter().all(|o| o.name != p.name)));
    let out = i.podshim(&["up"], T);
    assert_eq!(
        stdout(&out).trim(),
        format!("deployment.apps/{name}: controller running")
    );
    ok(&i.podshim(
        &["delete", "-f", &write(&i, &yaml)],
        Duration::from_secs(120),
    ));
    assert_all_gone(&i);
}

fn write(i: &Instance, yaml: &str) -> String {
    let p = i.dir.join("delete.yaml");
    std::fs::write(&p, yaml).unwrap();
    p.to_string_lossy().into()
}
