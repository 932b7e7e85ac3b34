//! End-to-end tests of container `resources`: the cgroup limits a container really gets (read on
//! the host side, where the container's cgroup lives), the OOMKilled reason of a container the
//! memory cgroup's OOM killer killed, and the QoS `oom_score_adj`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use podshim_tests::{
    cgroup_dir, container, lines_of, pod, stderr, stdout, uid, wait_output, Instance,
};

const SUITE: u32 = 4;
const T: Duration = Duration::from_secs(60);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Wait until the container's cgroup has a process; returns its pid.
fn wait_for_process(dir: &Path) -> u32 {
    let deadline = Instant::now() + T;
    loop {
        let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if let Some(pid) = procs.lines().next().and_then(|l| l.trim().parse().ok()) {
            return pid;
        }
        assert!(
            Instant::now() < deadline,
            "no process in {} after {T:?}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn limits_and_requests_become_the_containers_cgroup_limits() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let c = container(
        "limited",
        "trap \"exit 0\" TERM; echo up; while true; do sleep 0.1; done",
        "    resources:\n      limits: {memory: 32Mi, cpu: 500m}\n      requests: {cpu: 250m}\n",
    );
    let mut child = inst.spawn(&pod(&inst.name("limits"), &u, "Never", &c, ""));
    // Once the trap is set, SIGTERM ends the container (as PID 1 it ignores signals it has no
    // handler for).
    let mut up = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut up)
        .unwrap();
    assert_eq!(up, "[limited] up\n");
    let memory = cgroup_dir("memory", &inst.container_cgroup(&u, "limited"));
    let cpu = cgroup_dir("cpu", &inst.container_cgroup(&u, "limited"));
    let pid = wait_for_process(&memory);
    let v2 = !Path::new("/sys/fs/cgroup/memory").is_dir();
    let seen = if v2 {
        vec![
            read(&memory.join("memory.max")),
            read(&memory.join("memory.swap.max")),
            read(&cpu.join("cpu.max")),
            read(&cpu.join("cpu.weight")),
        ]
    } else {
        vec![
            read(&memory.join("memory.limit_in_bytes")),
            read(&memory.join("memory.memsw.limit_in_bytes")),
            format!(
                "{} {}",
                read(&cpu.join("cpu.cfs_quota_us")),
                read(&cpu.join("cpu.cfs_period_us"))
            ),
            read(&cpu.join("cpu.shares")),
        ]
    };
    // Burstable (the CPU request is below the limit): 1000 - 1000 * 32Mi / node memory.
    let adj = read(&PathBuf::from(format!("/proc/{pid}/oom_score_adj")));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = wait_output(child, T);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want = if v2 {
        // memory.swap.max is memory+swap minus the limit. cpu.weight is 256 shares converted as
        // the OCI runtimes do since runc 1.3.2 (opencontainers/cgroups#20; libcgroups 0.7's
        // `convert_shares_to_cgroup2`): 10^((l^2 + 125 l) / 612 - 7/34), l = log2(shares),
        // rounded up: 35 (the linear mapping of older runtimes gave 10).
        ["33554432", "0", "50000 100000", "35"]
    } else {
        ["33554432", "33554432", "50000 100000", "256"]
    };
    assert_eq!(seen, want, "memory, memory+swap, CFS quota/period, shares");
    let node: i64 = read(Path::new("/proc/meminfo"))
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .map(|kb: i64| kb * 1024)
        .unwrap();
    let burstable = (1000 - 1000 * (32i64 << 20) / node).clamp(3, 999);
    assert_eq!(adj, burstable.to_string());
    inst.assert_clean(&[&u]);
}

#[test]
fn a_container_past_its_memory_limit_is_oom_killed() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    // busybox tail keeps the last line of /dev/zero in memory, and that line never ends.
    let c = container(
        "hog",
        "echo start; exec tail /dev/zero",
        "    resources:\n      limits: {memory: 16Mi}\n",
    );
    let out = inst.run(&pod(&inst.name("oom"), &u, "Never", &c, ""), T);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert_eq!(lines_of(&stdout(&out), "hog"), vec!["start"]);
    assert!(
        err.contains("[hog] podshim: container exited with code 137 (OOMKilled)"),
        "{err}"
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn oom_score_adj_follows_the_qos_class_within_the_host_floor() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    // What podshim may ask for: lowering below its own value needs CAP_SYS_RESOURCE.
    let floor: i32 = read(Path::new("/proc/self/oom_score_adj")).parse().unwrap();
    let script = "cat /proc/self/oom_score_adj";
    let u = uid(3);
    let guaranteed = container(
        "g",
        script,
        "    resources:\n      limits: {memory: 64Mi, cpu: \"1\"}\n",
    );
    let out = inst.run(&pod(&inst.name("qos-g"), &u, "Never", &guaranteed, ""), T);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let want = (-997).max(floor).to_string();
    assert_eq!(lines_of(&stdout(&out), "g"), vec![want]);
    inst.assert_clean(&[&u]);
    // BestEffort gets 1000; a failed exit is reported with the reason Error.
    let u = uid(4);
    let best_effort = container("b", &format!("{script}; exit 3"), "");
    let out = inst.run(&pod(&inst.name("qos-b"), &u, "Never", &best_effort, ""), T);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert_eq!(lines_of(&stdout(&out), "b"), vec!["1000"]);
    assert!(
        err.contains("[b] podshim: container exited with code 3 (Error)"),
        "{err}"
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn other_resources_are_refused_naming_the_field() {
    let inst = Instance::new(SUITE);
    let c = container(
        "c",
        "true",
        "    resources:\n      limits: {memory: 64Mi, hugepages-2Mi: 2Mi}\n      requests: {ephemeral-storage: 1Gi}\n",
    );
    let out = inst.run(&pod(&inst.name("huge"), &uid(5), "Never", &c, ""), T);
    let err = stderr(&out);
    assert!(!out.status.success(), "{}", stdout(&out));
    for want in [
        "spec.containers[0].resources.limits[hugepages-2Mi]: Forbidden: not supported by podshim yet",
        "spec.containers[0].resources.requests[ephemeral-storage]: Forbidden: not supported by podshim yet",
    ] {
        assert!(err.contains(want), "expected {want:?} in:\n{err}");
    }
    assert!(!err.contains("limits[memory]"), "{err}");
    inst.assert_clean(&[]);
}
