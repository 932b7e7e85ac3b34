//! Events in `podshim describe`, kept per object as the controllers report them: a
//! Deployment's `ScalingReplicaSet` up and down, its ReplicaSet's `SuccessfulCreate` and
//! `SuccessfulDelete`, in kubectl's Events table; gone with the object.

mod workload;

use std::time::Duration;

use podshim_tests::*;
use workload::*;

fn describe(i: &Instance, what: &str) -> String {
    let out = i.podshim(&["describe", what], T);
    ok(&out);
    stdout(&out)
}

#[test]
fn describe_shows_the_controllers_events() {
    let i = Instance::new(55);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("ev");
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
    );
    ok(&apply(&i, &yaml));
    let pods = wait_running(&i, &name, 2, Duration::from_secs(60));
    let rs = get_json(&i, "rs")["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let d = describe(&i, &format!("deploy/{name}"));
    assert!(
        d.contains("\nEvents:\n  Type    Reason             Age"),
        "{d}"
    );
    assert!(
        d.contains("  Normal  ScalingReplicaSet  ")
            && d.contains(&format!(
                "deployment-controller  Scaled up replica set {rs} from 0 to 2"
            )),
        "{d}"
    );
    let r = describe(&i, &format!("rs/{rs}"));
    for p in &pods {
        assert!(
            r.contains(&format!("replicaset-controller  Created pod: {}", p.name)),
            "{r}"
        );
    }
    ok(&i.podshim(&["scale", &format!("deploy/{name}"), "--replicas", "1"], T));
    wait_until(Duration::from_secs(30), "one Pod is removed", || {
        let r = describe(&i, &format!("rs/{rs}"));
        r.contains("SuccessfulDelete").then_some(())
    });
    let d = describe(&i, &format!("deploy/{name}"));
    assert!(
        d.contains(&format!("Scaled down replica set {rs} from 2 to 1")),
        "{d}"
    );
    ok(&i.podshim(
        &["delete", &format!("deploy/{name}")],
        Duration::from_secs(120),
    ));
    assert_all_gone(&i);
    let left = std::fs::read_dir(i.state.join("controllers").join("events"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "events are forgotten with their objects");
}
