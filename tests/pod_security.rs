//! The security and process fields of a Pod, end to end: what a container sees, next to what the
//! Kubernetes documentation says it should see (quoted in each test's comment). Each Pod runs in
//! a private podshim instance and leaves nothing behind.

use std::time::Duration;

use podshim_tests::*;

const SUITE: u32 = 21;
const T: Duration = Duration::from_secs(60);

/// Run a Pod to completion and return what its containers printed.
fn run_ok(inst: &Instance, yaml: &str) -> String {
    // Every container exits 0: podshim's exit status is 0 and the output is everything printed.
    let out = inst.run(yaml, T);
    ok(&out);
    stdout(&out)
}

/// The single line a container printed after `tag=`.
fn value(out: &str, container: &str, tag: &str) -> String {
    lines_of(out, container)
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{tag}=")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {tag}= line of {container} in:\n{out}"))
}

/// "A privileged container [...] has all the capabilities and access to all the devices of the
/// host" and "processes within privileged containers get almost the same privileges as those
/// outside a container" (Security context / Pod Security Standards). An ordinary container
/// next to it keeps containerd's 14 default capabilities, masked /proc files, read-only /sys and
/// a device cgroup that refuses the host's disks.
#[test]
fn privileged_gets_every_capability_and_device_and_nothing_masked() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    // A block device of the host, to look for inside.
    let disk = std::fs::read_dir("/dev")
        .unwrap()
        .flatten()
        .find(|e| {
            use std::os::unix::fs::FileTypeExt;
            e.file_type().is_ok_and(|t| t.is_block_device())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .expect("a block device on this host");
    let script = format!(
        "echo caps=$(grep CapEff /proc/self/status | cut -f2); \
         echo disk=$([ -b /dev/{disk} ] && head -c 512 /dev/{disk} >/dev/null 2>&1 && echo readable || echo no); \
         echo keys=$([ -c /proc/keys ] && echo masked || echo visible); \
         echo sys=$(grep ' /sys sysfs' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
    );
    let privileged = container("priv", &script, "    securityContext: {privileged: true}\n");
    let plain = container("plain", &script, "");
    let out = run_ok(
        &inst,
        &pod(&inst.name("priv"), &u, "Never", &(privileged + &plain), ""),
    );
    let host_caps = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        .unwrap();
    let caps = |c: &str| u64::from_str_radix(&value(&out, c, "caps"), 16).unwrap();
    // Every capability this host lets podshim give (CAP_SYS_RESOURCE only where the host has it).
    let host = u64::from_str_radix(&host_caps, 16).unwrap();
    assert_eq!(caps("priv") & host, host, "{out}");
    assert_eq!(
        caps("plain"),
        0x00000000a80425fb,
        "containerd's defaults\n{out}"
    );
    assert_eq!(value(&out, "priv", "disk"), "readable", "{out}");
    assert_eq!(value(&out, "plain", "disk"), "no", "{out}");
    assert_eq!(value(&out, "priv", "keys"), "visible", "{out}");
    assert_eq!(value(&out, "plain", "keys"), "masked", "{out}");
    assert_eq!(value(&out, "priv", "sys"), "rw", "{out}");
    assert_eq!(value(&out, "plain", "sys"), "ro", "{out}");
    inst.assert_clean(&[&u]);
}

/// "RuntimeDefault: the container runtime default profile should be used"; "Unconfined: no
/// profile should be applied"; "Localhost: a profile defined in a file on the node should be
/// used [...] relative to the kubelet's configured Seccomp profile location" (Restrict a
/// Container's Syscalls with seccomp). A profile refusing mkdir with EACCES shows a Localhost
/// profile is the one applied.
#[test]
fn seccomp_profiles_runtime_default_unconfined_and_localhost() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let root = inst.dir.join("seccomp");
    std::fs::create_dir_all(root.join("profiles")).unwrap();
    std::fs::write(
        root.join("profiles/no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    inst.env
        .push(("PODSHIM_SECCOMP_ROOT".into(), root.display().to_string()));
    let u = uid(2);
    let script = "echo mode=$(grep Seccomp: /proc/self/status | cut -f2); \
                  echo mkdir=$(mkdir /tmp/d 2>&1 && echo made || echo refused); \
                  echo unshare=$(unshare -n true 2>&1 && echo ok || echo refused)";
    let containers = container("default", script, "")
        + &container(
            "open",
            script,
            "    securityContext: {seccompProfile: {type: Unconfined}, capabilities: {add: [SYS_ADMIN]}}\n",
        )
        + &container(
            "local",
            script,
            "    securityContext:\n      seccompProfile: {type: Localhost, localhostProfile: profiles/no-mkdir.json}\n",
        );
    let spec = "  securityContext:\n    seccompProfile:\n      type: RuntimeDefault\n";
    let out = run_ok(
        &inst,
        &pod(&inst.name("seccomp"), &u, "Never", &containers, spec),
    );
    assert_eq!(value(&out, "default", "mode"), "2", "filtered\n{out}");
    assert_eq!(value(&out, "default", "mkdir"), "made", "{out}");
    assert_eq!(value(&out, "open", "mode"), "0", "no filter\n{out}");
    assert_eq!(value(&out, "open", "unshare"), "ok", "{out}");
    assert_eq!(value(&out, "local", "mode"), "2", "{out}");
    assert!(
        lines_of(&out, "local")
            .iter()
            .any(|l| l.contains("Permission denied")),
        "{out}"
    );
    // A missing profile: refused before anything is made, with the path it looked at.
    let u2 = uid(3);
    let missing = container(
        "c",
        "true",
        "    securityContext: {seccompProfile: {type: Localhost, localhostProfile: nope.json}}\n",
    );
    let out = inst.run(&pod(&inst.name("noprof"), &u2, "Never", &missing, ""), T);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("spec.containers[0].securityContext.seccompProfile.localhostProfile: CreateContainerError: cannot load seccomp profile")
            && err.contains("nope.json"),
        "{err}"
    );
    inst.assert_clean(&[&u, &u2]);
}

/// "Safe sysctls are enabled by default [...] All unsafe sysctls are disabled by default and must
/// be allowed manually by the cluster admin on a per-node basis" with the kubelet's
/// `--allowed-unsafe-sysctls`; "a Pod with [...] unsafe sysctls [...] will fail to launch"
/// (Using sysctls in a Kubernetes Cluster).
#[test]
fn sysctls_safe_by_default_unsafe_behind_the_allow_list() {
    let mut inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let script = "echo port=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start); \
                  echo rmid=$(cat /proc/sys/kernel/shm_rmid_forced); \
                  echo somaxconn=$(cat /proc/sys/net/core/somaxconn)";
    let spec = "  securityContext:\n    sysctls:\n    - name: net.ipv4.ip_unprivileged_port_start\n      value: \"80\"\n    - {name: kernel.shm_rmid_forced, value: \"1\"}\n    - {name: net.core.somaxconn, value: \"1024\"}\n";
    let yaml = pod(
        &inst.name("sysctl"),
        &u,
        "Never",
        &container("c", script, ""),
        spec,
    );
    let out = inst.run(&yaml, T);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("spec.securityContext.sysctls[2]: SysctlForbidden: forbidden sysctl: \"net.core.somaxconn\" not allowlisted"),
        "{err}"
    );
    inst.assert_clean(&[&u]);
    inst.env
        .push(("PODSHIM_ALLOWED_UNSAFE_SYSCTLS".into(), "net.core.*".into()));
    let out = run_ok(&inst, &yaml);
    assert_eq!(value(&out, "c", "port"), "80", "{out}");
    assert_eq!(value(&out, "c", "rmid"), "1", "{out}");
    assert_eq!(value(&out, "c", "somaxconn"), "1024", "{out}");
    // The host's own values are untouched.
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_ne!(host.trim(), "80");
    inst.assert_clean(&[&u]);
}

/// "When process namespace sharing is enabled, processes in a container are visible to all other
/// containers in the same pod [...] The container process no longer has PID 1 [...] pause is
/// PID 1" (Share Process Namespace between Containers in a Pod); "hostPID: Use the host's pid
/// namespace", "hostIPC: Use the host's ipc namespace" (PodSpec).
#[test]
fn share_process_namespace_host_pid_and_host_ipc() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(5);
    // `sleep 30; echo woke`: the shell outlives its killed sleep and exits 0. (`$$$$` is the
    // shell's `$$`: Kubernetes expands `$$` to `$` in commands.)
    let shared = container("nginx", "sleep 30; echo woke", "")
        + &container(
            "shell",
            "for i in $(seq 100); do ps | grep -q \"sleep 30\" && break; sleep 0.1; done; \
             echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ' | cut -d' ' -f1 | xargs basename); \
             echo sees=$(pidof sleep | wc -w); echo self=$$$$; killall sleep",
            "",
        );
    let spec = "  shareProcessNamespace: true\n";
    let out = run_ok(&inst, &pod(&inst.name("share"), &u, "Never", &shared, spec));
    assert_eq!(value(&out, "shell", "pid1"), "pause", "{out}");
    assert_eq!(value(&out, "shell", "sees"), "1", "{out}");
    assert_ne!(value(&out, "shell", "self"), "1", "{out}");
    inst.assert_clean(&[&u]);

    let u = uid(6);
    let me = std::process::id();
    let ipc = std::fs::read_link("/proc/self/ns/ipc").unwrap();
    let script = format!(
        "echo test=$([ -d /proc/{me} ] && echo visible || echo hidden); \
         echo ipc=$(readlink /proc/self/ns/ipc)"
    );
    let host = container("host", &script, "");
    let spec = "  hostPID: true\n  hostIPC: true\n";
    let out = run_ok(&inst, &pod(&inst.name("hostns"), &u, "Never", &host, spec));
    assert_eq!(value(&out, "host", "test"), "visible", "{out}");
    assert_eq!(
        value(&out, "host", "ipc"),
        ipc.display().to_string(),
        "{out}"
    );
    let u2 = uid(7);
    let out = run_ok(
        &inst,
        &pod(
            &inst.name("ownns"),
            &u2,
            "Never",
            &container("own", &script, ""),
            "",
        ),
    );
    assert_eq!(value(&out, "own", "test"), "hidden", "{out}");
    assert_ne!(
        value(&out, "own", "ipc"),
        ipc.display().to_string(),
        "{out}"
    );
    inst.assert_clean(&[&u, &u2]);
}

/// "The kubelet verifies that AppArmor is enabled on the host before admitting a pod with
/// AppArmor explicitly configured" (Restrict a Container's Access to Resources with AppArmor):
/// on a host without it, the kubelet's words, and nothing is created. `Unconfined` needs none.
/// `serviceAccountName` is recorded and reported through `fieldRef`; `procMount: Unmasked`
/// leaves /proc unmasked.
#[test]
fn apparmor_refused_without_apparmor_service_account_and_proc_mount() {
    if std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|v| v.trim() == "Y")
    {
        panic!("this test checks the refusal on a host without AppArmor; this host has it");
    }
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(8);
    let c = container(
        "c",
        "true",
        "    securityContext: {appArmorProfile: {type: RuntimeDefault}}\n",
    );
    let out = inst.run(&pod(&inst.name("aa"), &u, "Never", &c, ""), T);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("spec.containers[0].securityContext.appArmorProfile: AppArmor: Cannot enforce AppArmor: AppArmor is not enabled on the host"),
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[&u]);

    let u = uid(9);
    let c = container(
        "c",
        "echo sa=$SA; echo keys=$([ -c /proc/keys ] && echo masked || echo visible)",
        "    env: [{name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}]\n    securityContext: {procMount: Unmasked, appArmorProfile: {type: Unconfined}}\n",
    );
    let spec = "  serviceAccountName: build-robot\n";
    let out = run_ok(&inst, &pod(&inst.name("sa"), &u, "Never", &c, spec));
    assert_eq!(value(&out, "c", "sa"), "build-robot", "{out}");
    assert_eq!(value(&out, "c", "keys"), "visible", "{out}");
    inst.assert_clean(&[&u]);
}

/// "activeDeadlineSeconds: Optional duration in seconds the pod may be active on the node
/// relative to StartTime before the system will actively try to mark it failed and kill
/// associated containers" (PodSpec); the kubelet's status is reason `DeadlineExceeded`, message
/// "Pod was active on the node longer than the specified deadline". The Pod's QoS class is in its
/// status too ("status.qosClass", Configure Quality of Service for Pods).
#[test]
fn active_deadline_fails_the_pod_and_qos_class_is_reported() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(10);
    let name = inst.name("deadline");
    let c = container(
        "c",
        "trap 'echo stopped; exit 0' TERM; while true; do sleep 0.1; done",
        "    resources: {limits: {cpu: 100m, memory: 32Mi}}\n",
    );
    let yaml = pod(&name, &u, "Never", &c, "  activeDeadlineSeconds: 2\n");
    let started = std::time::Instant::now();
    ok(&inst.detach(&yaml));
    let v = inst.inspect(&name);
    assert_eq!(v["status"]["qosClass"], "Guaranteed", "{v:#}");
    let v = inst.wait_for(&name, T, "the deadline", |v| {
        v["status"]["phase"] == "Failed"
    });
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(v["status"]["reason"], "DeadlineExceeded", "{v:#}");
    assert_eq!(
        v["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

/// "Implicit group memberships defined in /etc/group in the container image" (Configure a
/// Security Context for a Pod or Container, `supplementalGroupsPolicy`): with the default `Merge`
/// the process also gets the groups the image's `/etc/group` gives its user, so `id` shows
/// `uid=1000 gid=3000 groups=3000,4000,50000`; with `Strict` only the Pod's, `groups=3000,4000`.
/// Either way "the identities attached to the container's first process" are in
/// `status.containerStatuses[].user.linux`.
#[test]
fn supplemental_groups_policy_merge_and_strict() {
    let inst = Instance::new(SUITE);
    // The documentation's image: user 1000 is a member of group 50000 in its /etc/group.
    inst.import_derived_busybox(
        "groups:1",
        "echo 'user-defined-in-image:x:1000:1000::/:/bin/sh' >> bundle/rootfs/etc/passwd
echo 'user-defined-in-image:x:1000:' >> bundle/rootfs/etc/group
echo 'group-defined-in-image:x:50000:user-defined-in-image' >> bundle/rootfs/etc/group",
    );
    let mut uids = Vec::new();
    for (n, (policy, groups)) in [("Merge", "3000 4000 50000"), ("Strict", "3000 4000")]
        .into_iter()
        .enumerate()
    {
        let u = uid(20 + n as u32);
        let name = inst.name(&policy.to_lowercase());
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, uid: {u}}}\nspec:\n  \
             terminationGracePeriodSeconds: 1\n  securityContext:\n    runAsUser: 1000\n    \
             runAsGroup: 3000\n    supplementalGroups: [4000]\n    \
             supplementalGroupsPolicy: {policy}\n  containers:\n  - name: sec-ctx-demo\n    \
             image: groups:1\n    command: [sh, -c, 'sleep 1000']\n    \
             securityContext: {{allowPrivilegeEscalation: false}}\n"
        );
        ok(&inst.detach(&yaml));
        let v = inst.wait_for(&name, T, "Running", |v| {
            v["status"]["containerStatuses"][0]["state"]["running"].is_object()
        });
        let id = inst.podshim(&["exec", &name, "--", "id", "-G"], T);
        ok(&id);
        assert_eq!(stdout(&id).trim(), groups, "{policy}: `id -G`");
        let id = inst.podshim(&["exec", &name, "--", "id"], T);
        ok(&id);
        assert_eq!(
            stdout(&id).trim(),
            format!(
                "uid=1000(user-defined-in-image) gid=3000 groups={}",
                groups
                    .split(' ')
                    .map(|g| match g {
                        "50000" => "50000(group-defined-in-image)".to_string(),
                        g => g.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "{policy}: `id`"
        );
        let want: Vec<u32> = groups.split(' ').map(|g| g.parse().unwrap()).collect();
        assert_eq!(
            v["status"]["containerStatuses"][0]["user"],
            serde_json::json!({"linux": {"uid": 1000, "gid": 3000, "supplementalGroups": want}}),
            "{policy}: {v:#}"
        );
        uids.push((name, u));
    }
    for (name, _) in &uids {
        ok(&inst.podshim(&["rm", "-f", name], T));
    }
    inst.assert_clean(&uids.iter().map(|(_, u)| u.as_str()).collect::<Vec<_>>());
    ok(&inst.podshim(&["image", "rm", "groups:1"], T));
}

/// "By default, Kubernetes recursively changes ownership and permissions for each volume's
/// contents to match the fsGroup"; with `fsGroupChangePolicy: OnRootMismatch` it "only change[s]
/// permissions and ownership if the permission and the ownership of root directory does not
/// match with expected permissions of the volume" (Configure a Security Context, "Configure
/// volume permission and ownership change policy for Pods"). Shown on a claim, whose data
/// outlives the Pods: a file whose group was changed keeps it under OnRootMismatch and gets the
/// fsGroup back under the default Always.
#[test]
fn fs_group_change_policy_on_a_claim() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let claim = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: owned}\nspec:\n  \
                 accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Mi}}\n";
    let file = inst.dir.join("claim.yaml");
    std::fs::write(&file, claim).unwrap();
    ok(&inst.podshim(&["apply", "-f", file.to_str().unwrap()], T));
    let mount = "    volumeMounts:\n    - {name: data, mountPath: /data}\n";
    let run = |n: u32, user: u32, policy: &str, script: &str| {
        let u = uid(30 + n);
        let spec = format!(
            "  securityContext: {{runAsUser: {user}, fsGroup: 2000{policy}}}\n  volumes:\n  \
             - {{name: data, persistentVolumeClaim: {{claimName: owned}}}}\n"
        );
        let out = run_ok(
            &inst,
            &pod(
                &inst.name(&format!("own{n}")),
                &u,
                "Never",
                &container("c", script, mount),
                &spec,
            ),
        );
        inst.assert_clean(&[&u]);
        out
    };
    let stat = "echo root=$(stat -c %g:%a /data); echo file=$(stat -c %g /data/f)";
    // Always (the default): the claim's directory (0777, as local-path provisioners make it)
    // becomes the fsGroup's, setgid, so the file a
    // non-root container makes there is the group's too.
    let out = run(1, 1000, "", &format!("touch /data/f; {stat}"));
    assert_eq!(value(&out, "c", "root"), "2000:2777", "{out}");
    assert_eq!(value(&out, "c", "file"), "2000", "{out}");
    // Root inside a container moves the file to another group.
    let out = run(2, 0, "", &format!("chgrp 0 /data/f; {stat}"));
    assert_eq!(value(&out, "c", "file"), "0", "{out}");
    // OnRootMismatch: the top directory matches, so nothing below it is changed.
    let policy = ", fsGroupChangePolicy: OnRootMismatch";
    let out = run(3, 1000, policy, stat);
    assert_eq!(value(&out, "c", "root"), "2000:2777", "{out}");
    assert_eq!(value(&out, "c", "file"), "0", "{out}");
    // Always walks the whole volume again.
    let out = run(4, 1000, ", fsGroupChangePolicy: Always", stat);
    assert_eq!(value(&out, "c", "file"), "2000", "{out}");
    ok(&inst.podshim(&["delete", "pvc", "owned"], T));
}
