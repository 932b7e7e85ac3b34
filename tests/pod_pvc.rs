//! `persistentVolumeClaim` volumes end to end, over podshim's built-in local-path provisioner,
//! each next to what the Kubernetes documentation says (quoted in the test's comment).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

mod workload;

use podshim_tests::*;

const SUITE: u32 = 23;
const T: Duration = Duration::from_secs(60);

fn claim(name: &str, mode: &str, policy: Option<&str>) -> String {
    let annotations = policy
        .map(|p| format!("  annotations: {{podshim.io/reclaim-policy: {p}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n{annotations}spec:\n  accessModes: [{mode}]\n  resources:\n    requests:\n      storage: 1Mi\n"
    )
}

fn volume(claim: &str) -> String {
    format!("  volumes:\n  - name: data\n    persistentVolumeClaim: {{claimName: {claim}}}\n")
}

const MOUNT: &str = "    volumeMounts:\n    - {name: data, mountPath: /data}\n";

fn value(out: &str, container: &str, tag: &str) -> String {
    lines_of(out, container)
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{tag}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {tag}= line of {container} in:\n{out}"))
}

fn apply(inst: &Instance, text: &str) -> std::process::Output {
    let path = inst.dir.join(format!("apply-{}.yaml", text.len()));
    std::fs::write(&path, text).unwrap();
    inst.podshim(&["apply", "-f", &path.to_string_lossy()], T)
}

/// The stored claim's data directory, from `get pvc -o wide` (its last column).
fn data_dir(inst: &Instance, name: &str) -> PathBuf {
    let out = inst.podshim(&["get", "pvc", name, "-o", "wide"], T);
    ok(&out);
    let text = stdout(&out);
    let line = text.lines().nth(1).unwrap_or_else(|| panic!("{text}"));
    PathBuf::from(line.split_whitespace().last().unwrap())
}

/// "A PersistentVolumeClaim (PVC) is a request for storage by a user" and "Pods use claims as
/// volumes"; "the lifetime of a PersistentVolume is independent of any individual Pod that uses
/// it" (Persistent Volumes). Here: a claim applied first, a Pod that writes, a container restart
/// and a new Pod that read what was written; `get pvc` shows it Bound.
#[test]
fn a_claims_data_outlives_container_restarts_and_pods() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let out = apply(&inst, &claim("data", "ReadWriteOnce", None));
    ok(&out);
    assert_eq!(stdout(&out).trim(), "persistentvolumeclaim/data created");
    let out = apply(&inst, &claim("data", "ReadWriteOnce", None));
    assert_eq!(stdout(&out).trim(), "persistentvolumeclaim/data unchanged");
    let out = inst.podshim(&["get", "pvc"], T);
    ok(&out);
    let table = stdout(&out);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["data", "Bound"], "{table}");
    assert!(row[2].starts_with("pvc-"), "{table}");
    assert_eq!(row[3..6], ["1Mi", "RWO", "local-path"], "{table}");
    // Private to root: the store, and the directories above the data.
    let storage = inst.root.join("storage");
    assert_eq!(std::fs::metadata(&storage).unwrap().mode() & 0o777, 0o700);
    assert_eq!(
        std::fs::metadata(storage.join("volumes")).unwrap().mode() & 0o777,
        0o700
    );

    // The container fails once; its restart finds what the first run wrote.
    let u1 = uid(1);
    let script = "echo run >> /data/runs; n=$(wc -l < /data/runs); echo runs=$n; \
                  [ $n -ge 2 ] || exit 1; echo kept > /data/file";
    let out = inst.run(
        &pod(
            &inst.name("writer"),
            &u1,
            "OnFailure",
            &container("c", script, MOUNT),
            &volume("data"),
        ),
        T,
    );
    ok(&out);
    assert_eq!(value(&stdout(&out), "c", "runs"), "1", "{}", stdout(&out));
    assert!(stdout(&out).contains("[c] runs=2"), "{}", stdout(&out));
    // A new Pod (another name and uid) reads it.
    let u2 = uid(2);
    let out = inst.run(
        &pod(
            &inst.name("reader"),
            &u2,
            "Never",
            &container("c", "echo file=$(cat /data/file)", MOUNT),
            &volume("data"),
        ),
        T,
    );
    ok(&out);
    assert_eq!(value(&stdout(&out), "c", "file"), "kept");
    let dir = data_dir(&inst, "data");
    assert_eq!(std::fs::read_to_string(dir.join("file")).unwrap(), "kept\n");
    // `delete -f` with the file that made it, as kubectl users do.
    let file = inst.dir.join("claim.yaml");
    std::fs::write(&file, claim("data", "ReadWriteOnce", None)).unwrap();
    let out = inst.podshim(&["delete", "-f", &file.to_string_lossy()], T);
    ok(&out);
    assert_eq!(
        stdout(&out).trim(),
        r#"persistentvolumeclaim "data" deleted"#
    );
    assert!(
        !dir.exists(),
        "reclaim policy Delete removes {}",
        dir.display()
    );
    inst.assert_clean(&[&u1, &u2]);
}

/// "PVC is not removed when the PVC is in active use by a Pod" (Storage Object in Use
/// Protection), and "the Retain reclaim policy allows for manual reclamation of the resource"
/// (Reclaiming). The claim here comes in the same file as its Pod.
#[test]
fn a_used_claim_is_protected_and_retain_keeps_the_data() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("holder");
    let file = format!(
        "{}---\n{}",
        claim("kept", "ReadWriteOncePod", Some("Retain")),
        pod(
            &name,
            &u,
            "Never",
            &container("c", "echo mine > /data/file; sleep 300", MOUNT),
            &volume("kept"),
        )
    );
    let out = inst.detach(&file);
    ok(&out);
    assert!(
        stderr(&out).contains("persistentvolumeclaim/kept created"),
        "{}",
        stderr(&out)
    );
    let dir = data_dir(&inst, "kept");
    // ReadWriteOncePod: a second Pod is not placed while the first uses the claim.
    let u2 = uid(4);
    let out = inst.run(
        &pod(
            &inst.name("second"),
            &u2,
            "Never",
            &container("c", "true", MOUNT),
            &volume("kept"),
        ),
        T,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("1 node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"),
        "{}",
        stderr(&out)
    );
    let out = inst.podshim(&["delete", "pvc", "kept"], T);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("kubernetes.io/pvc-protection"),
        "{}",
        stderr(&out)
    );
    ok(&inst.podshim(&["rm", "-f", &name], T));
    let out = inst.podshim(&["delete", "pvc", "kept"], T);
    ok(&out);
    assert!(stdout(&out).contains("Retain"), "{}", stdout(&out));
    assert_eq!(std::fs::read_to_string(dir.join("file")).unwrap(), "mine\n");
    let out = inst.podshim(&["get", "pvc", "kept"], T);
    assert_eq!(out.status.code(), Some(1));
    inst.assert_clean(&[&u, &u2]);
}

/// "If a user creates a Pod that uses a PVC that does not exist, the Pod remains in Pending"
/// (kube-scheduler's VolumeBinding: `persistentvolumeclaim "NAME" not found`); nothing is
/// created. An invalid claim is refused with the API server's words.
#[test]
fn a_missing_claim_keeps_the_pod_pending_and_a_bad_claim_is_refused() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(5);
    let out = inst.run(
        &pod(
            &inst.name("orphan"),
            &u,
            "Never",
            &container("c", "true", MOUNT),
            &volume("nope"),
        ),
        T,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains(
            r#"Pending: Unschedulable: 0/1 nodes are available: persistentvolumeclaim "nope" not found."#
        ),
        "{err}"
    );
    assert!(err.contains("nothing was created"), "{err}");
    assert!(!inst.root.join("storage").exists(), "no claim store made");
    let bad = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: bad}\nspec:\n  resources: {requests: {storage: 0}}\n";
    let out = apply(&inst, bad);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("spec.accessModes: Required value: at least 1 access mode is required"),
        "{err}"
    );
    assert!(
        err.contains(r#"spec.resources[storage]: Invalid value: "0": must be greater than zero"#),
        "{err}"
    );
    inst.assert_clean(&[&u]);
}

/// The same for a controller's Pod: "If a user creates a Pod that uses a PVC that does not
/// exist, the Pod remains in Pending" and kube-scheduler binds it once the claim is there. A
/// ReplicaSet's Pod is made (no replacement churn), shows Pending with PodScheduled=False,
/// Unschedulable and VolumeBinding's message, starts nothing, and runs when the claim is applied.
#[test]
fn a_controllers_pod_stays_pending_until_its_claim_exists() {
    let inst = Instance::new(SUITE);
    let _stop = workload::StopControllers(&inst);
    inst.import_busybox();
    let name = inst.name("db");
    let rs = format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox:1.35\n        command: [sh, -c, 'echo up > /data/up; trap \"exit 0\" TERM; while true; do sleep 1; done']\n        volumeMounts:\n        - {{name: data, mountPath: /data}}\n      volumes:\n      - name: data\n        persistentVolumeClaim: {{claimName: later}}\n"
    );
    ok(&workload::apply(&inst, &rs));
    let pending = |inst: &Instance| -> Option<serde_json::Value> {
        let out = inst.podshim(&["get", "pods", "-o", "json"], T);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let items = v["items"].as_array()?;
        items
            .iter()
            .find(|p| {
                p["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(&name))
            })
            .cloned()
    };
    let pod = workload::wait_until(T, "the ReplicaSet's Pod", || pending(&inst));
    let pod_name = pod["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
    let cond = &pod["status"]["conditions"][0];
    assert_eq!(
        (&cond["type"], &cond["status"], &cond["reason"]),
        (
            &"PodScheduled".into(),
            &"False".into(),
            &"Unschedulable".into()
        ),
        "{pod}"
    );
    let message = cond["message"].as_str().unwrap();
    assert!(
        message.starts_with(r#"0/1 nodes are available: persistentvolumeclaim "later" not found."#),
        "{message}"
    );
    let out = inst.podshim(&["get", "pods"], T);
    let table = stdout(&out);
    let row = table.lines().find(|l| l.starts_with(&pod_name)).unwrap();
    assert_eq!(row.split_whitespace().nth(2), Some("Pending"), "{table}");
    // Nothing started, and the ReplicaSet counts it (no second Pod).
    std::thread::sleep(Duration::from_secs(2));
    assert!(workload::records(&inst, &name).is_empty());
    let again = pending(&inst).unwrap();
    assert_eq!(again["metadata"]["name"], pod_name.as_str());
    let status = workload::get_json(&inst, &format!("rs/{name}"))["status"].clone();
    assert_eq!(status["replicas"], 1, "{status}");
    assert!(
        status["conditions"].is_null(),
        "not a FailedCreate: {status}"
    );

    // The claim appears: the same Pod runs and writes to it.
    ok(&apply(&inst, &claim("later", "ReadWriteOnce", None)));
    let pods = workload::wait_running(&inst, &name, 1, T);
    assert_eq!(pods[0].name, pod_name);
    let dir = data_dir(&inst, "later");
    workload::wait_until(T, "the Pod's write", || {
        dir.join("up").exists().then_some(())
    });

    let out = inst.podshim(&["delete", &format!("rs/{name}")], Duration::from_secs(120));
    ok(&out);
    ok(&inst.podshim(&["delete", "pvc", "later"], T));
    workload::assert_all_gone(&inst);
}
