//! End-to-end tests of Pod-level `spec.resources` (the Pod cgroup's limits, read on the host
//! where the Pod cgroup lives, and `status.qosClass` computed from them as Kubernetes 1.32+
//! does) and of in-place resize (`podshim resize`): the container's cgroup changed live or by a
//! restart, as its `resizePolicy` says, and the new allocation in `inspect`.
//!
//! Kubernetes' documentation ("Assign Pod-level CPU and memory resources"): the Pod's limits cap
//! what all its containers use together; a Pod whose Pod-level requests equal its limits for cpu
//! and memory is Guaranteed whatever its containers set.

use std::path::Path;
use std::time::Duration;

use podshim_tests::{cgroup_dir, container, ok, pod, stderr, uid, Instance};

const SUITE: u32 = 33;
const T: Duration = Duration::from_secs(60);

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn v2() -> bool {
    !Path::new("/sys/fs/cgroup/memory").is_dir()
}

/// (memory limit, CFS quota and period, CPU shares or weight) of cgroup `rel`, in v1 terms on a
/// v1 host and v2 terms on a unified one.
fn limits(rel: &str) -> [String; 3] {
    let memory = cgroup_dir("memory", rel);
    let cpu = cgroup_dir("cpu", rel);
    if v2() {
        [
            read(&memory.join("memory.max")),
            read(&cpu.join("cpu.max")),
            read(&cpu.join("cpu.weight")),
        ]
    } else {
        [
            read(&memory.join("memory.limit_in_bytes")),
            format!(
                "{} {}",
                read(&cpu.join("cpu.cfs_quota_us")),
                read(&cpu.join("cpu.cfs_period_us"))
            ),
            read(&cpu.join("cpu.shares")),
        ]
    }
}

/// A Pod manifest with Pod-level `resources` (YAML lines indented for `spec:`).
fn with_pod_resources(yaml: String, resources: &str) -> String {
    yaml.replace(
        "  containers:\n",
        &format!("  resources:\n{resources}  containers:\n"),
    )
}

#[test]
fn pod_level_limits_become_the_pod_cgroups_and_make_it_guaranteed() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("podlevel");
    // The containers set nothing: the Pod-level limits alone make the Pod Guaranteed (requests
    // default to the limits).
    let c = container("a", "sleep 3600", "") + &container("b", "sleep 3600", "");
    let yaml = with_pod_resources(
        pod(&name, &u, "Never", &c, ""),
        "    limits: {cpu: 500m, memory: 64Mi}\n",
    );
    ok(&inst.detach(&yaml));
    let seen = limits(&inst.pod_cgroup(&u));
    let v = inst.inspect(&name);
    ok(&inst.podshim(&["rm", "-f", &name], T));
    let want = if v2() {
        // 512 shares as cgroup v2 weight (the runtimes' conversion, `shares_to_weight`).
        ["67108864", "50000 100000", "59"]
    } else {
        ["67108864", "50000 100000", "512"]
    };
    assert_eq!(seen, want, "Pod cgroup: memory, CFS quota/period, shares");
    assert_eq!(v["status"]["qosClass"], "Guaranteed", "{v:#}");
    // The defaulted Pod-level requests are part of the Pod as recorded.
    let requests = &v["spec"]["resources"]["requests"];
    assert_eq!(
        (requests["cpu"].as_str(), requests["memory"].as_str()),
        (Some("500m"), Some("64Mi")),
        "{v:#}"
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn pod_level_requests_alone_give_shares_and_burstable() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("podreq");
    // A container limit does not make the Pod Guaranteed once Pod-level resources are set.
    let c = container(
        "a",
        "sleep 3600",
        "    resources:\n      limits: {cpu: 250m, memory: 32Mi}\n",
    );
    let yaml = with_pod_resources(
        pod(&name, &u, "Never", &c, ""),
        "    requests: {cpu: \"1\", memory: 64Mi}\n",
    );
    ok(&inst.detach(&yaml));
    let seen = limits(&inst.pod_cgroup(&u));
    let v = inst.inspect(&name);
    ok(&inst.podshim(&["rm", "-f", &name], T));
    // Every container limits cpu and memory, so the kubelet also sets the Pod cgroup's quota and
    // memory limit (from the containers' sums); the shares come from the Pod's request.
    let want = if v2() {
        ["33554432", "25000 100000", "100"]
    } else {
        ["33554432", "25000 100000", "1024"]
    };
    assert_eq!(seen, want, "Pod cgroup: memory, CFS quota/period, shares");
    assert_eq!(v["status"]["qosClass"], "Burstable", "{v:#}");
    inst.assert_clean(&[&u]);
}

#[test]
fn pod_level_resources_below_the_containers_are_refused_as_the_api_server_does() {
    let inst = Instance::new(SUITE);
    let u = uid(3);
    let c = container(
        "a",
        "true",
        "    resources:\n      requests: {cpu: 600m}\n      limits: {memory: 128Mi}\n",
    );
    let yaml = with_pod_resources(
        pod(&inst.name("podbad"), &u, "Never", &c, ""),
        "    requests: {cpu: 500m}\n    limits: {memory: 64Mi}\n",
    );
    let out = inst.run(&yaml, T);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    for want in [
        r#"spec.resources.requests[cpu]: Invalid value: "500m": must be greater than or equal to aggregate container requests of 600m"#,
        r#"spec.resources.containers[0][memory].limits: Invalid value: "128Mi": must be less than or equal to pod limits of 64Mi"#,
    ] {
        assert!(err.contains(want), "missing {want} in:\n{err}");
    }
    inst.assert_clean(&[&u]);
}

fn container_limits(inst: &Instance, u: &str, name: &str) -> [String; 3] {
    limits(&inst.container_cgroup(u, name))
}

#[test]
fn resize_changes_the_cgroup_live_or_restarts_as_the_resize_policy_says() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let name = inst.name("resize");
    let c = container(
        "app",
        "sleep 3600",
        "    resources:\n      limits: {cpu: 500m, memory: 64Mi}\n    resizePolicy:\n    - {resourceName: cpu, restartPolicy: NotRequired}\n    - {resourceName: memory, restartPolicy: RestartContainer}\n",
    );
    // A second container with the default policies (NotRequired for both).
    let c = c + &container(
        "side",
        "sleep 3600",
        "    resources:\n      limits: {cpu: 250m, memory: 32Mi}\n",
    );
    ok(&inst.detach(&pod(&name, &u, "Always", &c, "")));
    let v = inst.inspect(&name);
    let st = &v["status"]["containerStatuses"][0];
    assert_eq!(st["allocatedResources"]["cpu"], "500m", "{v:#}");
    assert_eq!(st["resources"]["limits"]["memory"], "64Mi", "{v:#}");

    // CPU: NotRequired, so the running container's cgroup changes and it keeps running.
    let out = inst.podshim(&["resize", &name, "-c", "app", "--cpu", "750m"], T);
    ok(&out);
    assert!(
        podshim_tests::stdout(&out).contains("resized in place"),
        "{out:?}"
    );
    let seen = container_limits(&inst, &u, "app");
    let want_cpu = "75000 100000";
    assert_eq!(seen[1], want_cpu, "CFS quota/period after the resize");
    assert_eq!(seen[0], "67108864", "memory unchanged");
    let v = inst.inspect(&name);
    let st = &v["status"]["containerStatuses"][0];
    assert_eq!(st["restartCount"], 0, "{v:#}");
    assert_eq!(st["allocatedResources"]["cpu"], "750m", "{v:#}");
    assert_eq!(st["resources"]["limits"]["cpu"], "750m", "{v:#}");
    assert_eq!(
        v["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "750m"
    );
    assert_eq!(v["status"]["qosClass"], "Guaranteed");

    // A resize that would make the Pod Burstable is refused, and nothing changes.
    let out = inst.podshim(&["resize", &name, "-c", "app", "--cpu-request", "100m"], T);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Pod QOS Class may not change as a result of resizing"),
        "{}",
        stderr(&out)
    );
    assert_eq!(container_limits(&inst, &u, "app")[1], want_cpu);

    // Memory with NotRequired: raised and cut again live (memory+swap and the limit written in
    // the order the v1 kernel accepts), without a restart.
    for (memory, bytes) in [("96Mi", "100663296"), ("48Mi", "50331648")] {
        ok(&inst.podshim(&["resize", &name, "-c", "side", "--memory", memory], T));
        assert_eq!(
            container_limits(&inst, &u, "side")[0],
            bytes,
            "side's memory limit"
        );
        if !v2() {
            let swap = cgroup_dir("memory", &inst.container_cgroup(&u, "side"))
                .join("memory.memsw.limit_in_bytes");
            if swap.exists() {
                assert_eq!(read(&swap), bytes, "side's memory+swap limit");
            }
        }
    }
    let v = inst.inspect(&name);
    assert_eq!(
        v["status"]["containerStatuses"][1]["restartCount"], 0,
        "{v:#}"
    );
    assert_eq!(
        v["status"]["containerStatuses"][1]["allocatedResources"]["memory"],
        "48Mi"
    );

    // Memory: RestartContainer, so the container starts again with the new limit.
    let out = inst.podshim(&["resize", &name, "-c", "app", "--memory", "128Mi"], T);
    ok(&out);
    assert!(
        podshim_tests::stdout(&out).contains("restarting it"),
        "{out:?}"
    );
    let v = inst.wait_for(&name, T, "the restart for the resize", |v| {
        let st = &v["status"]["containerStatuses"][0];
        st["restartCount"] == 1 && st["state"]["running"].is_object()
    });
    let st = &v["status"]["containerStatuses"][0];
    assert_eq!(st["resources"]["limits"]["memory"], "128Mi", "{v:#}");
    let seen = container_limits(&inst, &u, "app");
    ok(&inst.podshim(&["rm", "-f", &name], T));
    assert_eq!(seen[0], "134217728", "memory limit after the restart");
    assert_eq!(seen[1], want_cpu, "the CPU resize kept across the restart");
    inst.assert_clean(&[&u]);
}
