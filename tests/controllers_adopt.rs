//! Adoption by selector, as the ReplicaSet controller's `ClaimPods` does it: the Pods a
//! `delete --cascade=orphan` left (their owner references removed) and a Pod made by
//! `podshim run -d` with matching labels and no owner are adopted by a new ReplicaSet whose
//! selector matches, which then makes no Pod of its own for them; a Pod of another controller
//! is never taken.

mod workload;

use std::time::Duration;

use podshim_tests::*;
use workload::*;

fn rs_yaml(name: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"
    )
}

fn owner_uid(p: &PodRec) -> Option<String> {
    p.object["metadata"]["ownerReferences"][0]["uid"]
        .as_str()
        .map(String::from)
}

#[test]
fn a_replicaset_adopts_orphans_and_run_pods_that_match_its_selector() {
    let i = Instance::new(54);
    let _stop = StopControllers(&i);
    i.import_busybox();
    let name = i.name("adopt");
    ok(&apply(&i, &rs_yaml(&name, 2)));
    let first = wait_running(&i, &name, 2, Duration::from_secs(60));
    // Another ReplicaSet's Pod is not an orphan: never adopted.
    let other = format!("{name}-other");
    // Its labels match this selector too, but it has a controller.
    let other_yaml = rs_yaml(&other, 1)
        .replace(
            &format!("matchLabels: {{app: {other}}}"),
            &format!("matchLabels: {{app: {name}, role: other}}"),
        )
        .replace(
            &format!("labels: {{app: {other}}}"),
            &format!("labels: {{app: {name}, role: other}}"),
        );
    ok(&apply(&i, &other_yaml));
    let other_pod = wait_running(&i, &other, 1, Duration::from_secs(60)).remove(0);

    ok(&i.podshim(&["delete", &format!("rs/{name}"), "--cascade=orphan"], T));
    wait_until(
        Duration::from_secs(20),
        "the orphans lose their owner",
        || {
            let pods = running_pods(&i, &name);
            let orphans = pods
                .iter()
                .filter(|p| !p.name.starts_with(&other) && owner_uid(p).is_none())
                .count();
            (orphans == 2).then_some(())
        },
    );
    // A bare Pod with the selector's labels.
    let bare = format!("{name}-bare");
    let file = i.dir.join("bare.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {bare}\n  labels: {{app: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox:1.35\n    command: [sh, -c, 'trap \"exit 0\" TERM; while true; do sleep 1; done']\n"),
    )
    .unwrap();
    ok(&i.podshim(&["run", "-d", &file.to_string_lossy()], T));

    // A new ReplicaSet (another uid) of 3 replicas: the two orphans and the bare Pod are its 3.
    ok(&apply(&i, &rs_yaml(&name, 3)));
    let uid = get_json(&i, &format!("rs/{name}"))["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let adopted = wait_until(Duration::from_secs(30), "the three are adopted", || {
        let mine: Vec<PodRec> = running_pods(&i, &name)
            .into_iter()
            .filter(|p| owner_uid(p).as_deref() == Some(uid.as_str()))
            .collect();
        (mine.len() == 3).then_some(mine)
    });
    let mut names: Vec<String> = adopted.iter().map(|p| p.name.clone()).collect();
    names.sort();
    let mut want: Vec<String> = first.iter().map(|p| p.name.clone()).collect();
    want.push(bare.clone());
    want.sort();
    assert_eq!(names, want, "no Pod was made for them");
    for p in &adopted {
        let r = &p.object["metadata"]["ownerReferences"][0];
        assert_eq!(r["kind"], "ReplicaSet");
        assert_eq!(r["name"], name.as_str());
        assert_eq!(r["controller"], true);
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        records(&i, &name).len(),
        4,
        "3 adopted and the other ReplicaSet's: nothing made, nothing removed"
    );
    let kept = records(&i, &other).remove(0);
    assert_eq!(kept.name, other_pod.name);
    assert_ne!(owner_uid(&kept).as_deref(), Some(uid.as_str()));
    let s = status(&i, &format!("rs/{name}"));
    assert_eq!(s["replicas"], 3, "{s}");

    ok(&i.podshim(&["delete", &format!("rs/{name}")], Duration::from_secs(120)));
    ok(&i.podshim(
        &["delete", &format!("rs/{other}")],
        Duration::from_secs(120),
    ));
    assert_all_gone(&i);
}
