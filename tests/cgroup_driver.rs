//! Both cgroup drivers on a host booted with systemd and cgroup v2 (the VM of
//! `scripts/test-in-vm.sh`): with `systemd`, a Pod is a transient slice of systemd's in
//! `podshim.slice` and each container a delegated scope in it, all gone after the Pod; with
//! `cgroupfs`, the Pod is podshim's own `/podshim/<uid>` and systemd knows no unit of it.
//!
//! These tests need such a host, so they are `#[ignore]`d in the host suite (a cgroup v1 host
//! without systemd, where the systemd driver cannot work) and run by `scripts/test-in-vm.sh`
//! (`--smoke` and `--suite`) with `--include-ignored`. Run anywhere else they fail, loudly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use podshim_tests::{
    cgroup_dir, container, lines_of, pod, stderr, stdout, term, uid, wait_output, Instance,
};

const SUITE: u32 = 31;
const T: Duration = Duration::from_secs(120);
const NEEDS: &str = "needs systemd as PID 1 and cgroup v2: run it with scripts/test-in-vm.sh";

fn require_systemd_v2() {
    assert!(Path::new("/run/systemd/system").is_dir(), "{NEEDS}");
    assert!(
        Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "{NEEDS}"
    );
}

/// `systemctl show UNIT -p PROPERTY --value`.
fn unit_property(unit: &str, property: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", unit, "-p", property, "--value"])
        .output()
        .expect("systemctl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn instance(driver: &str) -> Instance {
    let mut inst = Instance::new(SUITE);
    inst.env
        .push(("PODSHIM_CGROUP_DRIVER".into(), driver.into()));
    inst.import_busybox();
    inst
}

/// A Pod whose container reports its own cgroup view, then runs until SIGTERM; returns what
/// it printed up to `up`, checked against the host side by `check` while it runs.
fn run_limited(inst: &Instance, u: &str, check: impl FnOnce()) -> Vec<String> {
    let c = container(
        "app",
        "echo limit $(cat /sys/fs/cgroup/memory.max); echo cgroup $(cat /proc/self/cgroup); \
         trap \"exit 0\" TERM; echo up; while true; do sleep 0.1; done",
        "    resources:\n      limits: {memory: 32Mi}\n",
    );
    let mut child = inst.spawn(&pod(&inst.name("drv"), u, "Never", &c, ""));
    let mut seen = Vec::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "podshim ended early");
        if line == "[app] up\n" {
            break;
        }
        seen.push(line.trim_end().to_string());
    }
    check();
    term(&child);
    let done = wait_output(child, T);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    seen
}

#[test]
#[ignore = "needs systemd + cgroup v2: scripts/test-in-vm.sh runs it"]
fn the_systemd_driver_makes_a_slice_per_pod_and_a_scope_per_container() {
    require_systemd_v2();
    let inst = instance("systemd");
    let u = uid(1);
    let slice = format!("podshim-pod{}.slice", u.replace('-', "_"));
    let scope = format!("podshim-pod{}-app.scope", u.replace('-', "_"));
    let pod_cg = format!("/podshim.slice/{slice}");
    let scope_cg = format!("{pod_cg}/{scope}");
    assert_eq!(inst.container_cgroup(&u, "app"), scope_cg[1..]);
    let seen = run_limited(&inst, &u, || {
        // systemd owns both units and knows their cgroups; the Pod's pids.max is its TasksMax.
        assert_eq!(unit_property(&slice, "ActiveState"), "active");
        assert_eq!(unit_property(&slice, "ControlGroup"), pod_cg);
        assert_eq!(unit_property(&slice, "TasksMax"), "4096");
        assert_eq!(unit_property(&scope, "ActiveState"), "active");
        assert_eq!(unit_property(&scope, "ControlGroup"), scope_cg);
        assert_eq!(unit_property(&scope, "Delegate"), "yes");
        let dir = cgroup_dir("memory", &scope_cg);
        let max = std::fs::read_to_string(dir.join("memory.max")).unwrap();
        assert_eq!(max.trim(), "33554432");
        let pids = std::fs::read_to_string(cgroup_dir("pids", &pod_cg).join("pids.max")).unwrap();
        assert_eq!(pids.trim(), "4096");
    });
    // Its private cgroup namespace shows the container its own scope as the root.
    assert_eq!(seen, vec!["[app] limit 33554432", "[app] cgroup 0::/"]);
    for unit in [&slice, &scope] {
        let state = unit_property(unit, "ActiveState");
        assert!(state == "inactive" || state.is_empty(), "{unit} is {state}");
    }
    assert!(!cgroup_dir("memory", &pod_cg).exists(), "{pod_cg} left");
    inst.assert_clean(&[&u]);

    // The OOM killer's kill, read from the scope's memory.events, is OOMKilled.
    let u = uid(2);
    let c = container(
        "hog",
        "echo start; exec tail /dev/zero",
        "    resources:\n      limits: {memory: 16Mi}\n",
    );
    let out = inst.run(&pod(&inst.name("oom"), &u, "Never", &c, ""), T);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(137), "{err}");
    assert_eq!(lines_of(&stdout(&out), "hog"), vec!["start"]);
    assert!(err.contains("(OOMKilled)"), "{err}");
    inst.assert_clean(&[&u]);
}

#[test]
#[ignore = "needs systemd + cgroup v2: scripts/test-in-vm.sh runs it"]
fn the_cgroupfs_driver_keeps_pods_in_podshims_own_cgroup_on_a_systemd_host() {
    require_systemd_v2();
    let inst = instance("cgroupfs");
    let u = uid(3);
    let slice = format!("podshim-pod{}.slice", u.replace('-', "_"));
    let seen = run_limited(&inst, &u, || {
        let dir = cgroup_dir("memory", &format!("podshim/{u}/app"));
        let max = std::fs::read_to_string(dir.join("memory.max")).unwrap();
        assert_eq!(max.trim(), "33554432");
        let state = unit_property(&slice, "ActiveState");
        assert!(
            state == "inactive" || state.is_empty(),
            "{slice} is {state}"
        );
    });
    assert_eq!(seen, vec!["[app] limit 33554432", "[app] cgroup 0::/"]);
    inst.assert_clean(&[&u]);
}
