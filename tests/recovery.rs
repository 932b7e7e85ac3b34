//! Kubernetes behaviour around a Pod's sandbox (issue 11 §4): a refused `run -d` makes nothing
//! and says why once; a Pod whose pause process dies gets a new sandbox (new network namespace
//! and IP), its containers restarted as the restart policy says, as the kubelet does.

use std::time::{Duration, Instant};

use podshim_tests::{container, ok, pod, stderr, stdout, uid, Instance};

const SUITE: u32 = 21;
const T: Duration = Duration::from_secs(60);

/// The directories under the instance's log root.
fn log_dirs(inst: &Instance) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(inst.dir.join("logs"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    dirs
}

/// `run -d` of a name that is taken (by a running Pod, with the same uid or another) is refused
/// before anything is made: no log directory, the running Pod's supervisor log untouched, one
/// message that says it once (it used to say `pod same: pod default/same: pod default_same
/// already exists` and point at the other Pod's logs).
#[test]
fn a_refused_run_d_creates_nothing_and_says_why_once() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let name = inst.name("same");
    let u = uid(1);
    let c = container("c", "exec sleep 3600", "");
    ok(&inst.detach(&pod(&name, &u, "Always", &c, "")));
    let before = log_dirs(&inst);
    let log = inst.supervisor_log(&name, &u);
    for (case, other_uid) in [("same uid", u.clone()), ("another uid", uid(2))] {
        let out = inst.detach(&pod(&name, &other_uid, "Always", &c, ""));
        assert!(!out.status.success(), "{case}: {}", stdout(&out));
        let err = stderr(&out);
        assert_eq!(err.matches("already exists").count(), 1, "{case}: {err}");
        assert_eq!(err.lines().count(), 1, "{case}: {err}");
        assert!(!err.contains("pod default/"), "{case}: {err}");
        assert!(!err.contains("podshim logs"), "{case}: {err}");
        assert_eq!(log_dirs(&inst), before, "{case}: a log directory was made");
        assert_eq!(inst.supervisor_log(&name, &u), log, "{case}");
    }
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}

/// The PID of the pause process of Pod `name`.
fn pause_pid(name: &str) -> u32 {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("pause --hostname {name} ")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pause process for {name}"))
}

fn condition<'a>(v: &'a serde_json::Value, kind: &str) -> &'a serde_json::Value {
    v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .unwrap_or(&serde_json::Value::Null)
}

fn status_of<'a>(v: &'a serde_json::Value, list: &str, name: &str) -> &'a serde_json::Value {
    v["status"][list]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}

/// Pause SIGKILLed under `restartPolicy: Always`: as the kubelet does with a sandbox that is not
/// ready, the containers are killed as the kubelet kills a Pod's containers (the stop signal,
/// SIGKILL only after the grace period: `c` handles SIGTERM and exits 0, `stubborn` ignores it
/// and is killed after the Pod's 3 s), a new sandbox is made (new pause, network namespace and
/// IP; the emptyDir kept), the init container runs again, then the app containers restart
/// (restartCount 1). The PodReadyToStartContainers condition and the supervisor's log say
/// why. Under `restartPolicy: Never` the Pod instead ends, as the kubelet makes no new sandbox
/// for a Pod that will not restart its containers.
#[test]
fn a_dead_pause_gets_a_new_sandbox_and_the_containers_restart() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let name = inst.name("phoenix");
    let u = uid(10);
    let mount = "    volumeMounts:\n    - name: data\n      mountPath: /data\n";
    let init = format!(
        "  initContainers:\n{}",
        container("init", "echo init >> /data/runs", mount)
    );
    // Both are their namespace's PID 1, which gets only the signals it handles.
    let app = container(
        "c",
        "trap \"echo term >> /data/sig; exit 0\" TERM; sleep 3600 & wait",
        mount,
    ) + &container("stubborn", "trap \"\" TERM; sleep 3600 & wait", "");
    let yaml = pod(
        &name,
        &u,
        "Always",
        &app,
        "  volumes:\n  - name: data\n    emptyDir: {}\n",
    )
    .replace("  containers:\n", &format!("{init}  containers:\n"))
    .replace(
        "terminationGracePeriodSeconds: 1",
        "terminationGracePeriodSeconds: 3",
    );
    ok(&inst.detach(&yaml));
    let v = inst.wait_for(&name, T, "c running", |v| {
        status_of(v, "containerStatuses", "c")["state"]["running"].is_object()
    });
    let old_ip = v["status"]["podIP"].as_str().unwrap().to_string();
    assert_eq!(condition(&v, "PodReadyToStartContainers")["status"], "True");
    let old_pause = pause_pid(&name);
    let t = Instant::now();
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &old_pause.to_string()])
        .status();
    let v = inst.wait_for(&name, T, "c restarted in a new sandbox", |v| {
        ["c", "stubborn"].iter().all(|n| {
            let c = status_of(v, "containerStatuses", n);
            c["restartCount"] == 1 && c["state"]["running"].is_object()
        })
    });
    let took = t.elapsed();
    eprintln!("new sandbox and restart in {took:?}");
    // The sandbox is made anew only once both are gone: `stubborn` after the grace period.
    assert!(took >= Duration::from_secs(3), "{took:?}");
    let new_ip = v["status"]["podIP"].as_str().unwrap().to_string();
    assert_ne!(new_ip, old_ip, "a new sandbox has a new IP");
    assert_eq!(v["status"]["phase"], "Running", "{}", v["status"]);
    let cond = condition(&v, "PodReadyToStartContainers");
    assert_eq!(cond["status"], "True", "{cond}");
    let c = status_of(&v, "containerStatuses", "c");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 0, "{c}");
    let c = status_of(&v, "containerStatuses", "stubborn");
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 137, "{c}");
    let i = status_of(&v, "initContainerStatuses", "init");
    assert_eq!(i["restartCount"], 1, "the init container ran again: {i}");
    assert_ne!(pause_pid(&name), old_pause);
    // The emptyDir outlived the sandbox: the init container's two runs are in it; the
    // container is in the new network namespace.
    let out = inst.podshim(&["exec", "-c", "c", &name, "--", "cat", "/data/runs"], T);
    ok(&out);
    assert_eq!(stdout(&out), "init\ninit\n");
    let out = inst.podshim(&["exec", "-c", "c", &name, "--", "cat", "/data/sig"], T);
    ok(&out);
    assert_eq!(stdout(&out), "term\n", "c got its stop signal");
    let out = inst.podshim(
        &[
            "exec", "-c", "c", &name, "--", "ip", "-o", "-4", "addr", "show", "eth0",
        ],
        T,
    );
    ok(&out);
    assert!(
        stdout(&out).contains(&format!("inet {new_ip}/")),
        "{}",
        stdout(&out)
    );
    let log = inst.supervisor_log(&name, &u);
    assert!(log.contains("SandboxChanged"), "{log}");
    assert!(
        log.contains(&format!("new sandbox ready, pod IP {new_ip}")),
        "{log}"
    );
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);

    // restartPolicy: Never: the Pod ends.
    let name = inst.name("never");
    let u = uid(11);
    let app = container("c", "exec sleep 3600", "");
    ok(&inst.detach(&pod(&name, &u, "Never", &app, "")));
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &pause_pid(&name).to_string()])
        .status();
    let v = inst.wait_for(&name, T, "the pod failing", |v| {
        v["status"]["phase"] == "Failed"
    });
    assert_eq!(
        status_of(&v, "containerStatuses", "c")["restartCount"],
        0,
        "{}",
        v["status"]
    );
    ok(&inst.podshim(&["rm", &name], T));
    inst.assert_clean(&[&u]);
}
