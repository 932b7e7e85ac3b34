//! The CRI path, per runtime handler: containerd 1.6's CRI plugin with podshim-bridge as its CNI
//! plugin and podshim's own pause as the sandbox image, driven by a CRI client over tonic as a
//! kubelet drives it. A Pod of two containers sharing localhost and an emptyDir-like mount:
//! RunPodSandbox, CreateContainer, StartContainer, ExecSync, ContainerStatus, ContainerStats,
//! UpdateContainerResources, ReopenContainerLog, StopContainer, StopPodSandbox,
//! RemovePodSandbox; then what each container (and pause) sees of its capabilities, seccomp
//! mode, masked paths and limits, an OOM kill reported as `OOMKilled`, StartContainer of commands
//! that cannot run, and a container's user, groups, Pod sysctl and device. runc's answers are
//! recorded in `reference/runc/<host kind>/cri_*.json`; podshim's must match them.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_cri::v1::*;
use serde_json::{json, Value};
use support::cleanup::cgroup_dirs;
use support::cri::{self, Cri, PAUSE_IMAGE};
use support::ctr::BUSYBOX;
use support::daemon::{Containerd, Options};
use support::handler::Handler;
use support::{answers, inside, wait_until};

handler_tests!(
    runc,
    Handler::runc(),
    [
        cri_pod_flow,
        cri_oom_killed,
        cri_start_errors,
        cri_user_sysctls_devices
    ]
);

handler_tests!(
    podshim,
    Handler::podshim(),
    [
        cri_pod_flow,
        cri_oom_killed,
        cri_start_errors,
        cri_user_sysctls_devices
    ]
);

/// A daemon with the CRI plugin, both images imported, and a connected client.
fn node(h: &Handler) -> (Containerd, Cri) {
    let handlers = if h.name == "runc" {
        vec![]
    } else {
        vec![h.clone()]
    };
    let d = Containerd::start(Options {
        handlers,
        cri: true,
    });
    // A plain import names the pause image from its index: the sandbox_image of the config.
    assert_eq!(d.import_pause("k8s.io"), PAUSE_IMAGE);
    d.import_busybox("k8s.io");
    let mut cri = Cri::connect(&d);
    let image = cri.image_status(BUSYBOX).unwrap().image;
    assert!(image.is_some(), "the CRI does not see {BUSYBOX}");
    (d, cri)
}

/// One Pod: its directories (logs, an emptyDir-like volume), sandbox config and id. On a
/// failure it stops and removes the sandbox (CNI DEL included) before the daemon goes.
struct Pod<'a> {
    cri: &'a mut Cri,
    config: PodSandboxConfig,
    id: String,
    logs: PathBuf,
    volume: PathBuf,
    removed: bool,
}

impl<'a> Pod<'a> {
    fn run(d: &Containerd, cri: &'a mut Cri, h: &Handler, name: &str) -> Self {
        Self::run_with(d, cri, h, name, |_| {})
    }

    /// [`Pod::run`] with the sandbox config changed by `edit` first.
    fn run_with(
        d: &Containerd,
        cri: &'a mut Cri,
        h: &Handler,
        name: &str,
        edit: impl FnOnce(&mut PodSandboxConfig),
    ) -> Self {
        let uid = format!("{name}-{}", d.tag);
        let dir = d.layout.dir.join("pods").join(&uid);
        let logs = dir.join("logs");
        let volume = dir.join("volumes/shared");
        std::fs::create_dir_all(&logs).unwrap();
        std::fs::create_dir_all(&volume).unwrap();
        // The kubelet's cgroupfs layout: Pod cgroups below a parent it removes itself.
        let parent = format!("{}/pod-{uid}", d.layout.cgroup_root);
        d.expect_cgroup(&parent);
        let mut config = cri::sandbox_config(name, &uid, &logs, &parent);
        edit(&mut config);
        let id = cri
            .run_pod_sandbox(&config, h.name)
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", d.log_tail(20)));
        // The runc shim serves a whole Pod, its socket named after the sandbox id.
        d.note_shim("k8s.io", &id);
        Pod {
            cri,
            config,
            id,
            logs,
            volume,
            removed: false,
        }
    }

    fn container(&mut self, config: &ContainerConfig) -> String {
        let id = self
            .cri
            .create_container(&self.id, config, &self.config)
            .unwrap_or_else(|e| panic!("CreateContainer: {e}"));
        self.cri
            .start_container(&id)
            .unwrap_or_else(|e| panic!("StartContainer: {e}"));
        id
    }

    fn exec(&mut self, id: &str, cmd: &[&str]) -> ExecSyncResponse {
        self.cri
            .exec_sync(id, cmd, 20)
            .unwrap_or_else(|e| panic!("ExecSync {cmd:?}: {e}"))
    }

    fn status(&mut self, id: &str) -> (ContainerStatus, Value) {
        let (status, info) = self.cri.container_status(id, true).unwrap();
        (status, cri::info(&info))
    }

    fn remove(&mut self) {
        self.removed = true;
        self.cri.stop_pod_sandbox(&self.id).unwrap();
        self.cri.remove_pod_sandbox(&self.id).unwrap();
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.cri.stop_pod_sandbox(&self.id);
            let _ = self.cri.remove_pod_sandbox(&self.id);
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `/proc/PID/status` fields of a host process (pause), as `inside` parses them.
fn host_status(pid: u64) -> inside::Status {
    inside::parse_status(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap())
}

/// The memory limit of a container's cgroup on the host (v1 or v2 file).
fn host_memory_limit(cgroups_path: &str) -> String {
    cgroup_dirs(cgroups_path)
        .iter()
        .find_map(|d| {
            std::fs::read_to_string(d.join("memory.limit_in_bytes"))
                .or_else(|_| std::fs::read_to_string(d.join("memory.max")))
                .ok()
        })
        .unwrap_or_else(|| panic!("no memory cgroup at {cgroups_path}"))
        .trim()
        .to_string()
}

fn client_config(volume: &Path) -> ContainerConfig {
    let mut c = cri::container_config(
        "client",
        BUSYBOX,
        &[
            "sh",
            "-c",
            "echo hello from client > /shared/index.html; trap 'exit 0' TERM; i=0; \
             while true; do echo tick $i; i=$((i+1)); sleep 0.2; done",
        ],
    );
    c.mounts = vec![shared_mount(volume)];
    let linux = c.linux.as_mut().unwrap();
    // A Guaranteed-like container: the kubelet's cgroupfs values for 64Mi and 500m, and its
    // oom_score_adj for Guaranteed Pods (-997), which restrict_oom_score_adj clamps.
    linux.resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 64 << 20,
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        oom_score_adj: -997,
        ..Default::default()
    });
    let sc = linux.security_context.as_mut().unwrap();
    sc.seccomp = Some(SecurityProfile {
        profile_type: security_profile::ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    });
    sc.capabilities = Some(Capability {
        drop_capabilities: vec!["NET_RAW".into()],
        ..Default::default()
    });
    c
}

fn server_config(volume: &Path) -> ContainerConfig {
    let mut c = cri::container_config(
        "server",
        BUSYBOX,
        &["httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/shared"],
    );
    c.mounts = vec![shared_mount(volume)];
    // What the kubelet sends for a container without a seccomp profile (SeccompDefault off).
    let sc = c.linux.as_mut().unwrap().security_context.as_mut().unwrap();
    sc.seccomp = Some(SecurityProfile {
        profile_type: security_profile::ProfileType::Unconfined as i32,
        localhost_ref: String::new(),
    });
    c
}

fn shared_mount(volume: &Path) -> Mount {
    Mount {
        container_path: "/shared".into(),
        host_path: volume.display().to_string(),
        ..Default::default()
    }
}

fn cri_pod_flow(h: &Handler) {
    let (d, mut cri) = node(h);
    let version = cri.version().unwrap();
    let mut pod = Pod::run(&d, &mut cri, h, "web");
    let (sandbox, info) = pod.cri.pod_sandbox_status(&pod.id).unwrap();
    assert_eq!(sandbox.state, PodSandboxState::SandboxReady as i32);
    let ip: std::net::Ipv4Addr = sandbox.network.as_ref().unwrap().ip.parse().unwrap();
    let subnet = &d.cri.as_ref().unwrap().subnet;
    assert!(
        subnet.starts_with(&ip.to_string().rsplit_once('.').unwrap().0.to_string()),
        "Pod IP {ip} outside {subnet}"
    );
    let pause_pid = cri::info(&info)["pid"].as_u64().unwrap();
    // RunPodSandbox returns once the runtime started the sandbox, which may be before its init
    // has exec'd pause (runc init still holds the spec's capabilities then).
    wait_until(Duration::from_secs(10), "pause to run", || {
        let comm = std::fs::read_to_string(format!("/proc/{pause_pid}/comm")).ok()?;
        (comm.trim() == "pause").then_some(())
    });
    let pause = host_status(pause_pid);

    let volume = pod.volume.clone();
    let server = pod.container(&server_config(&volume));
    let client = pod.container(&client_config(&volume));
    for id in [&server, &client] {
        let (status, _) = pod.status(id);
        assert_eq!(status.state, ContainerState::ContainerRunning as i32);
    }

    // localhost is shared (the server listens on 127.0.0.1 only) and so is the volume: the
    // page the client wrote is what the server serves.
    let get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080";
    let page = wait_until(Duration::from_secs(10), "the server to answer", || {
        let r = pod.exec(&client, &["sh", "-c", get]);
        (r.exit_code == 0 && text(&r.stdout).contains("hello from client")).then_some(r)
    });
    let page = text(&page.stdout);
    assert!(
        page.lines().next().unwrap_or_default().ends_with(" 200 OK"),
        "{page}"
    );
    let shared = pod.exec(&server, &["cat", "/shared/index.html"]);
    assert_eq!(text(&shared.stdout), "hello from client\n");
    let failing = pod.exec(&client, &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(
        (
            text(&failing.stdout),
            text(&failing.stderr),
            failing.exit_code
        ),
        ("out\n".into(), "err\n".into(), 3)
    );

    let mut seen = HashMap::new();
    for (name, id) in [("server", &server), ("client", &client)] {
        let r = pod.exec(id, &["sh", "-c", inside::SCRIPT]);
        assert_eq!(r.exit_code, 0, "{}", text(&r.stderr));
        seen.insert(name, inside::parse(&text(&r.stdout)));
    }
    let (srv, cli) = (&seen["server"], &seen["client"]);
    // containerd's 14 default capabilities; the client dropped NET_RAW.
    assert_eq!(srv.init.cap_eff, "00000000a80425fb");
    assert_eq!(cli.init.cap_eff, "00000000a80405fb");
    assert!(!inside::Inside::cap_names(&cli.init.cap_bnd).contains(&"NET_RAW"));
    assert_eq!(
        (srv.init.seccomp.as_str(), cli.init.seccomp.as_str()),
        ("0", "2")
    );
    assert_eq!(cli.exec.seccomp, "2", "exec'd processes are filtered too");
    for c in [srv, cli] {
        assert_eq!(c.masked["/proc/keys"], "empty-file");
        assert_eq!(c.masked["/sys/firmware"], "empty-dir");
        assert_eq!(c.masked["/proc/acpi"], "empty-dir");
        assert!(
            c.mount("/proc/sys").unwrap().contains(" ro,"),
            "{:?}",
            c.mounts
        );
        assert!(
            c.mount("/shared").unwrap().contains(" rw,"),
            "{:?}",
            c.mounts
        );
        assert_eq!(c.hostname, "web");
    }
    assert_eq!(cli.cgroup_limit("memory").as_deref(), Some("67108864"));
    assert_eq!(
        cli.cgroup_limit("cpu_quota").as_deref(),
        Some("50000 100000")
    );
    if let Some(shares) = cli.cgroup_limit("cpu_shares") {
        assert_eq!(shares, "512");
    }

    let stats = pod.cri.container_stats(&client).unwrap();
    let cpu = stats
        .cpu
        .as_ref()
        .and_then(|c| c.usage_core_nano_seconds.as_ref());
    let mem = stats
        .memory
        .as_ref()
        .and_then(|m| m.working_set_bytes.as_ref());
    assert!(cpu.is_some_and(|v| v.value > 0), "cpu in {stats:?}");
    assert!(mem.is_some_and(|v| v.value > 0), "memory in {stats:?}");

    let (_, client_info) = pod.status(&client);
    let cgroups_path = client_info["runtimeSpec"]["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_string();
    let before = host_memory_limit(&cgroups_path);
    let mut resources = client_config(&volume).linux.unwrap().resources.unwrap();
    resources.memory_limit_in_bytes = 96 << 20;
    pod.cri
        .update_container_resources(&client, &resources)
        .unwrap_or_else(|e| panic!("UpdateContainerResources: {e}"));
    let after = host_memory_limit(&cgroups_path);
    let read = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max";
    let inside_after = text(&pod.exec(&client, &["sh", "-c", read]).stdout);
    assert_eq!((before.as_str(), after.as_str()), ("67108864", "100663296"));
    assert_eq!(inside_after.trim(), "100663296");

    // Log rotation as the kubelet does it: rename, then ReopenContainerLog.
    let log = pod.logs.join("client/0.log");
    let rotated = pod.logs.join("client/0.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    pod.cri
        .reopen_container_log(&client)
        .unwrap_or_else(|e| panic!("ReopenContainerLog: {e}"));
    let line = wait_until(
        Duration::from_secs(10),
        "a line in the reopened log",
        || {
            let new = std::fs::read_to_string(&log).ok()?;
            new.lines().next().map(str::to_string)
        },
    );
    let cri_line = |l: &str| -> String {
        // `<RFC3339Nano> stdout F tick N`: the stream, the tag and the text's start.
        let w: Vec<&str> = l.splitn(4, ' ').collect();
        assert!(
            w.len() == 4 && w[0].contains('T') && w[3].starts_with("tick "),
            "not a CRI log line: {l:?}"
        );
        format!("{} {} tick", w[1], w[2])
    };
    let old_first = std::fs::read_to_string(&rotated).unwrap();
    let log_format = (cri_line(old_first.lines().next().unwrap()), cri_line(&line));

    let t0 = std::time::Instant::now();
    pod.cri.stop_container(&client, 10).unwrap();
    let client_stop = t0.elapsed();
    let t0 = std::time::Instant::now();
    pod.cri.stop_container(&server, 1).unwrap();
    let server_stop = t0.elapsed();
    let mut stopped = json!({});
    for (name, id) in [("client", &client), ("server", &server)] {
        let (s, _) = pod.status(id);
        assert_eq!(s.state, ContainerState::ContainerExited as i32);
        stopped[name] = json!({"exit_code": s.exit_code, "reason": s.reason});
    }
    // The client's TERM trap ends it at once; httpd as PID 1 ignores SIGTERM: SIGKILL after 1 s.
    assert_eq!(
        stopped["client"],
        json!({"exit_code": 0, "reason": "Completed"})
    );
    assert_eq!(
        stopped["server"],
        json!({"exit_code": 137, "reason": "Error"})
    );
    assert!(client_stop < Duration::from_secs(5), "{client_stop:?}");
    assert!(server_stop >= Duration::from_secs(1), "{server_stop:?}");

    pod.cri.stop_pod_sandbox(&pod.id).unwrap();
    let (sandbox_stopped, _) = pod.cri.pod_sandbox_status(&pod.id).unwrap();
    assert_eq!(
        sandbox_stopped.state,
        PodSandboxState::SandboxNotready as i32
    );
    pod.remove();
    let pod_id = pod.id.clone();
    drop(pod);
    assert!(cri.list_pod_sandbox().unwrap().is_empty());
    assert!(cri.list_containers().unwrap().is_empty());
    assert!(
        cri.pod_sandbox_status(&pod_id).is_err(),
        "the sandbox is still known"
    );

    // On cgroup v2 the client's 512 CPU shares become a cpu.weight, converted linearly by runc
    // before 1.3.2 (Debian's runc under containerd 1.6: 20) and by the log-quadratic formula of
    // runc 1.3.2+ and libcgroups 0.7 since (podshim: 59). Either exact conversion of those 512
    // shares is the same answer; any other weight stays as it is and differs.
    let mut client = cli.to_json();
    if let Some(w) = client.pointer_mut("/cgroup/cpu.weight") {
        let linear = 1 + ((512 - 2) * 9999) / 262_142;
        let quadratic = podshim_engine::cgroups::shares_to_weight(512);
        if *w == json!(linear.to_string()) || *w == json!(quadratic.to_string()) {
            *w = json!("512 shares");
        }
    }
    answers::check(
        h,
        "cri_pod_flow",
        &json!({
            "runtime_api_version": version.runtime_api_version,
            "page": page.lines().last(),
            "shared_file": text(&shared.stdout),
            "exec_failing": {"stdout": text(&failing.stdout), "stderr": text(&failing.stderr),
                             "exit_code": failing.exit_code},
            "pause": pause,
            "server": srv.to_json(),
            "client": client,
            "memory_limit": {"host_before": before, "host_after": after,
                             "inside_after": inside_after.trim()},
            "log_format": [log_format.0, log_format.1],
            "stopped": stopped,
        }),
    );
    d.shutdown();
}

fn cri_oom_killed(h: &Handler) {
    let (d, mut cri) = node(h);
    let mut pod = Pod::run(&d, &mut cri, h, "oom");
    // The pause before allocating: see ctr_oom_kill (runc's shim watches for OOM kills only
    // once the task has started).
    let mut config =
        cri::container_config("hog", BUSYBOX, &["sh", "-c", "sleep 0.5; tail /dev/zero"]);
    config.linux.as_mut().unwrap().resources = Some(LinuxContainerResources {
        memory_limit_in_bytes: 16 << 20,
        ..Default::default()
    });
    let hog = pod.container(&config);
    let status = wait_until(Duration::from_secs(30), "the hog to be killed", || {
        let (s, _) = pod.status(&hog);
        (s.state == ContainerState::ContainerExited as i32).then_some(s)
    });
    assert_eq!(
        (status.exit_code, status.reason.as_str()),
        (137, "OOMKilled")
    );
    pod.remove();
    drop(pod);
    answers::check(
        h,
        "cri_oom_killed",
        &json!({"exit_code": status.exit_code, "reason": status.reason}),
    );
    d.shutdown();
}

/// The stream and text of each line of a CRI container log (the timestamps left out).
fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(_, rest)| rest.to_string()))
        .collect()
}

/// Containers whose command cannot run (missing, not executable, not in `PATH`, a script whose
/// interpreter is missing): what StartContainer answers (its gRPC code and runc's words), and
/// what ContainerStatus reports after (the kubelet's `StartError`: state, exit code, reason,
/// message). The Pod's other containers are not disturbed, and nothing is left once it is
/// removed (the daemon's leak check).
fn cri_start_errors(h: &Handler) {
    let (d, mut cri) = node(h);
    let mut pod = Pod::run(&d, &mut cri, h, "broken");
    let script = pod.volume.join("s");
    std::fs::write(&script, "#!/nope\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut seen = serde_json::Map::new();
    for (name, cmd) in [
        ("missing", "/nonexistent"),
        ("not-executable", "/etc/passwd"),
        ("not-in-path", "nope"),
        ("no-interpreter", "/shared/s"),
    ] {
        let mut config = cri::container_config(name, BUSYBOX, &[cmd]);
        config.mounts.push(shared_mount(&pod.volume));
        let id = pod
            .cri
            .create_container(&pod.id, &config, &pod.config)
            .unwrap_or_else(|e| panic!("CreateContainer {name}: {e}"));
        let started = match pod.cri.start_container(&id) {
            Ok(()) => json!("ok"),
            Err(e) => json!({"code": format!("{:?}", e.code()),
                             "message": answers::exec_words(e.message())}),
        };
        let status = wait_until(Duration::from_secs(30), "the container to stop", || {
            let (s, _) = pod.status(&id);
            (s.state == ContainerState::ContainerExited as i32).then_some(s)
        });
        seen.insert(
            name.into(),
            json!({
                "start": started,
                "state": ContainerState::try_from(status.state).map(|s| s.as_str_name()).ok(),
                "log": log_lines(&pod.logs.join(format!("{name}/0.log"))),
                "exit_code": status.exit_code,
                "reason": status.reason,
                "message": answers::exec_words(&status.message),
            }),
        );
    }
    // The Pod still runs a container that can.
    let good = pod.container(&cri::container_config("good", BUSYBOX, &["sleep", "600"]));
    let echo = pod.exec(&good, &["echo", "fine"]);
    seen.insert("good_exec".into(), json!(text(&echo.stdout)));
    pod.remove();
    drop(pod);
    answers::check(h, "cri_start_errors", &Value::Object(seen));
    d.shutdown();
}

/// What a container sees of the Pod's sysctls (a namespaced one of the sandbox config), of
/// `runAsUser`/`runAsGroup`/supplemental groups, and of a device it is given (`/dev/fuse`, node
/// and cgroup access): the same with both runtimes.
fn cri_user_sysctls_devices(h: &Handler) {
    let (d, mut cri) = node(h);
    let mut pod = Pod::run_with(&d, &mut cri, h, "who", |c| {
        let linux = c.linux.as_mut().unwrap();
        linux.sysctls = HashMap::from([("kernel.shm_rmid_forced".to_string(), "1".to_string())]);
    });
    let mut config = cri::container_config(
        "who",
        BUSYBOX,
        &[
            "sh",
            "-c",
            "id; cat /proc/sys/kernel/shm_rmid_forced; stat -c '%F %t:%T %a' /dev/fuse; \
             sort /sys/fs/cgroup/devices/devices.list 2>/dev/null || echo no-v1-list",
        ],
    );
    let linux = config.linux.as_mut().unwrap();
    let sc = linux.security_context.as_mut().unwrap();
    sc.run_as_user = Some(Int64Value { value: 1000 });
    sc.run_as_group = Some(Int64Value { value: 3000 });
    sc.supplemental_groups = vec![4000];
    config.devices = vec![Device {
        container_path: "/dev/fuse".into(),
        host_path: "/dev/fuse".into(),
        permissions: "rwm".into(),
    }];
    let id = pod.container(&config);
    let status = wait_until(Duration::from_secs(30), "the container to exit", || {
        let (s, _) = pod.status(&id);
        (s.state == ContainerState::ContainerExited as i32).then_some(s)
    });
    let log = log_lines(&pod.logs.join("who/0.log"));
    pod.remove();
    drop(pod);
    answers::check(
        h,
        "cri_user_sysctls_devices",
        &json!({"exit_code": status.exit_code, "log": log}),
    );
    d.shutdown();
}
