//! Helpers of the controller tests: applying manifests, reading Pods from their records (fast
//! enough to sample every 50 ms), the controller processes of an instance, and the check that
//! nothing of it is left.

// Shared by two test binaries, each of which uses a part.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::process::Output;
use std::time::{Duration, Instant};

use podshim_tests::*;
use serde_json::Value;

pub const T: Duration = Duration::from_secs(60);

/// `podshim apply -f` of a manifest written into the instance's directory.
pub fn apply(i: &Instance, yaml: &str) -> Output {
    let path = i.dir.join(format!("w-{}.yaml", rand_tag()));
    std::fs::write(&path, yaml).unwrap();
    i.podshim(
        &["apply", "-f", &path.to_string_lossy()],
        Duration::from_secs(120),
    )
}

fn rand_tag() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// `podshim get KIND/NAME -o json`.
pub fn get_json(i: &Instance, what: &str) -> Value {
    let out = i.podshim(&["get", what, "-o", "json"], T);
    ok(&out);
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A Pod as its record shows it.
#[derive(Debug, Clone)]
pub struct PodRec {
    pub name: String,
    pub uid: String,
    pub ip: String,
    pub phase: String,
    pub ready: bool,
    pub terminating: bool,
    /// The restarts of all its containers.
    pub restarts: u64,
    pub object: Value,
}

/// Every Pod record of the instance whose name starts with `prefix-`.
pub fn records(i: &Instance, prefix: &str) -> Vec<PodRec> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir(i.state.join("records")) else {
        return out;
    };
    for f in dir.flatten() {
        if !f.file_name().to_string_lossy().ends_with(".json") {
            continue;
        }
        let Ok(data) = std::fs::read(f.path()) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&data) else {
            continue;
        };
        let name = v["name"].as_str().unwrap_or_default().to_string();
        if !prefix.is_empty() && !name.starts_with(&format!("{prefix}-")) {
            continue;
        }
        let ready = v["status"]["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        out.push(PodRec {
            name,
            uid: v["uid"].as_str().unwrap_or_default().into(),
            ip: v["status"]["podIP"].as_str().unwrap_or_default().into(),
            phase: v["status"]["phase"].as_str().unwrap_or_default().into(),
            ready,
            terminating: v["terminating"].as_bool().unwrap_or(false),
            restarts: v["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["restartCount"].as_u64())
                .sum(),
            object: v["pod"].clone(),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The Pods of `prefix` that run and are not being stopped.
pub fn running_pods(i: &Instance, prefix: &str) -> Vec<PodRec> {
    records(i, prefix)
        .into_iter()
        .filter(|p| p.phase == "Running" && !p.terminating)
        .collect()
}

/// Polls `f` every 20 ms until it gives a value (fails after `timeout`).
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let timeout = podshim_tests::scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until exactly `n` Pods of `prefix` exist, all Running and Ready.
pub fn wait_running(i: &Instance, prefix: &str, n: usize, timeout: Duration) -> Vec<PodRec> {
    let timeout = podshim_tests::scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        let all = records(i, prefix);
        let running: Vec<PodRec> = all
            .iter()
            .filter(|p| p.phase == "Running" && p.ready && !p.terminating)
            .cloned()
            .collect();
        if running.len() == n && all.len() == n {
            return running;
        }
        assert!(
            Instant::now() < deadline,
            "{n} running Pods of {prefix}: not within {timeout:?}; have {:#?}",
            all.iter()
                .map(|p| (&p.name, &p.phase, p.ready, p.terminating))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `old` is gone and `n` Pods of `prefix` run again.
pub fn wait_replaced(i: &Instance, prefix: &str, old: &str, n: usize) -> Vec<PodRec> {
    wait_until(T, &format!("{old} replaced"), || {
        let all = records(i, prefix);
        let running: Vec<PodRec> = all
            .iter()
            .filter(|p| p.phase == "Running" && p.ready && !p.terminating)
            .cloned()
            .collect();
        (running.len() == n && all.len() == n && running.iter().all(|p| p.name != old))
            .then_some(running)
    })
}

/// `<base>-<5 characters of apimachinery's alphabet>`.
pub fn assert_generated_name(name: &str, base: &str) {
    let suffix = name
        .strip_prefix(&format!("{base}-"))
        .unwrap_or_else(|| panic!("{name} is not {base}-*"));
    assert_eq!(suffix.len(), 5, "{name}");
    assert!(
        suffix
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)),
        "{name}"
    );
}

/// The value of env `var` of the Pod's first container.
pub fn env_of(p: &PodRec, var: &str) -> String {
    p.object["spec"]["containers"][0]["env"]
        .as_array()
        .and_then(|e| e.iter().find(|x| x["name"] == var))
        .and_then(|x| x["value"].as_str())
        .unwrap_or_default()
        .to_string()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .unwrap_or_default()
}

fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
        .collect()
}

/// The pause process of a Pod (its hostname is the Pod's name).
pub fn pause_pid(pod: &str) -> Option<u32> {
    pids().into_iter().find(|p| {
        let c = cmdline(*p);
        c.contains("pause") && c.contains(&format!("--hostname {pod} "))
    })
}

pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.contains(") Z")
}

pub fn kill9(pid: u32) {
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

fn controller_file(i: &Instance, stem: &str) -> Value {
    let p = i.state.join("controllers").join(format!("{stem}.pid"));
    wait_until(T, &format!("{} written", p.display()), || {
        serde_json::from_slice(&std::fs::read(&p).ok()?).ok()
    })
}

/// The worker process of an object's controller (`<resource>_<namespace>_<name>`).
pub fn worker_pid(i: &Instance, stem: &str) -> u32 {
    controller_file(i, stem)["worker"].as_u64().unwrap() as u32
}

pub fn keeper_pid(i: &Instance, stem: &str) -> u32 {
    controller_file(i, stem)["keeper"].as_u64().unwrap() as u32
}

/// The podshim controller processes (keepers and workers) of the instance.
pub fn controllers(i: &Instance) -> Vec<u32> {
    let dir = i.dir.display().to_string();
    pids()
        .into_iter()
        .filter(|p| {
            let c = cmdline(*p);
            c.contains(&dir) && c.contains(" controller ") && alive(*p)
        })
        .collect()
}

/// The object's status (null while it does not exist).
pub fn status(i: &Instance, what: &str) -> Value {
    let out = i.podshim(&["get", what, "-o", "json"], T);
    if !out.status.success() {
        return Value::Null;
    }
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["status"].clone()
}

pub fn has_condition(s: &Value, kind: &str, reason: &str) -> bool {
    s["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True" && c["reason"] == reason)
    })
}

/// Stops every controller of the instance when dropped, also when the test fails: keepers
/// first (else they start their workers again), then workers. Declared after the `Instance`, it
/// is dropped before it, so the instance's own clean-up then finds Pods no controller replaces.
pub struct StopControllers<'a>(pub &'a Instance);

impl Drop for StopControllers<'_> {
    fn drop(&mut self) {
        for _ in 0..3 {
            let pids = controllers(self.0);
            if pids.is_empty() {
                return;
            }
            let (keepers, workers): (Vec<u32>, Vec<u32>) = pids
                .into_iter()
                .partition(|p| cmdline(*p).contains("--keeper"));
            for pid in keepers.into_iter().chain(workers) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// No controller, no Pod, no record, no host resource of the instance is left.
pub fn assert_all_gone(i: &Instance) {
    wait_until(Duration::from_secs(10), "the controllers end", || {
        controllers(i).is_empty().then_some(())
    });
    let left: BTreeSet<String> = records(i, "").into_iter().map(|p| p.name).collect();
    assert!(left.is_empty(), "records left: {left:?}");
    let pending = i.state.join("controllers").join("pending");
    let files: Vec<_> = std::fs::read_dir(&pending)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(files.is_empty(), "pending files left: {files:?}");
    let paused: Vec<u32> = pids()
        .into_iter()
        .filter(|p| {
            let c = cmdline(*p);
            c.contains("pause --hostname") && c.contains(&i.tag)
        })
        .collect();
    assert!(paused.is_empty(), "pause processes left: {paused:?}");
    i.assert_clean(&[]);
}
