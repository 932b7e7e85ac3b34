//! Detached Pods and their management, end to end: `run -d` then `ps`, `inspect`, `logs`,
//! `stop`, `rm`, `down`; CRI log files; restart counts and CrashLoopBackOff with a growing
//! back-off; a supervisor killed with SIGKILL at three points, then `gc` leaving nothing.

use std::time::{Duration, Instant};

use podshim_tests::*;

const SUITE: u32 = 10;
const T: Duration = Duration::from_secs(60);

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn container_status<'a>(pod: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .chain(pod["status"]["initContainerStatuses"].as_array())
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}

fn ps_row(inst: &Instance, name: &str) -> Vec<String> {
    let out = inst.podshim(&["ps"], T);
    ok(&out);
    let text = stdout(&out);
    assert!(text.starts_with("NAME"), "{text}");
    let header: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "IP", "AGE"]);
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|w| w[0] == name)
        .unwrap_or_else(|| panic!("{name} not in ps:\n{text}"))
}

#[test]
fn detached_pod_is_managed_with_ps_inspect_logs_stop_and_rm() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("web");
    // `a` leaves on SIGTERM (exit 0); `b`, PID 1 without a handler, ignores it and is killed.
    let init = "  initContainers:\n  - name: setup\n    image: busybox:1.35\n    command: [sh, -c, 'echo init-done > /data/init']\n    volumeMounts: [{name: data, mountPath: /data}]\n";
    let a = container(
        "a",
        "trap \"exit 0\" TERM; echo hello; sleep 0.5; echo oops >&2; sleep 0.5; cat /data/init; while true; do sleep 0.1; done",
        "    volumeMounts: [{name: data, mountPath: /data}]\n",
    );
    let b = container("b", "exec sleep 3600", "");
    let yaml = pod(
        &name,
        &u,
        "Always",
        &format!("{a}{b}"),
        "  volumes: [{name: data, emptyDir: {}}]\n",
    )
    .replace("  containers:\n", &format!("{init}  containers:\n"));
    let started = Instant::now();
    let out = inst.detach(&yaml);
    ok(&out);
    assert_eq!(stdout(&out).trim(), name);
    assert!(started.elapsed() < Duration::from_secs(30));

    // ps: both containers ready, Running, the Pod IP.
    let row = ps_row(&inst, &name);
    assert_eq!(row[1], "2/2", "{row:?}");
    assert_eq!(row[2], "Running", "{row:?}");
    assert_eq!(row[3], "0", "{row:?}");
    assert!(row[4].starts_with(&format!("{}.", inst.prefix)), "{row:?}");

    // inspect: a Kubernetes Pod object with the kubelet's status.
    let v = inst.inspect(&name);
    assert_eq!(v["kind"], "Pod");
    assert_eq!(v["metadata"]["uid"], u.as_str());
    let st = &v["status"];
    assert_eq!(st["phase"], "Running");
    assert_eq!(s(&st["podIP"]), row[4]);
    assert!(!s(&st["hostIP"]).is_empty());
    assert!(s(&st["startTime"]).ends_with('Z'));
    let conds: Vec<(String, String)> = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (s(&c["type"]).to_string(), s(&c["status"]).to_string()))
        .collect();
    for kind in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(
            conds.contains(&(kind.to_string(), "True".to_string())),
            "{conds:?}"
        );
    }
    let setup = container_status(&v, "setup");
    assert_eq!(setup["state"]["terminated"]["reason"], "Completed");
    assert_eq!(setup["state"]["terminated"]["exitCode"], 0);
    for c in ["a", "b"] {
        let cs = container_status(&v, c);
        assert!(cs["state"]["running"]["startedAt"].is_string(), "{cs}");
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["restartCount"], 0);
        assert_eq!(cs["image"], "busybox:1.35");
        assert!(s(&cs["imageID"]).contains("@sha256:"), "{cs}");
        assert!(s(&cs["containerID"]).starts_with("podshim://"), "{cs}");
    }

    // logs: kubectl's interface over CRI files.
    let logs = |args: &[&str]| {
        let mut a = vec!["logs"];
        a.extend_from_slice(args);
        inst.podshim(&a, T)
    };
    let deadline = Instant::now() + T;
    let text = loop {
        let out = logs(&["-c", "a", &name]);
        ok(&out);
        if stdout(&out).contains("init-done") || Instant::now() > deadline {
            break stdout(&out);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // stdout and stderr are two pipes: lines written close together may be read in either
    // order (as with the kubelet); the test spaces them 0.5 s apart and checks the set.
    let mut got: Vec<&str> = text.lines().collect();
    assert_eq!(got.pop(), Some("init-done"), "{text}");
    got.sort();
    assert_eq!(got, ["hello", "oops"], "{text}");
    let out = logs(&["-c", "a", "--tail", "1", &name]);
    assert_eq!(stdout(&out), "init-done\n");
    let out = logs(&["-c", "a", "--timestamps", &name]);
    let first = stdout(&out).lines().next().unwrap().to_string();
    let (ts, rest) = first.split_once(' ').unwrap();
    assert!(ts.contains('T') && ts.ends_with('Z'), "{first}");
    assert_eq!(rest, text.lines().next().unwrap());
    let out = logs(&[&name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "a container name must be specified for pod {name}, choose one of: [setup a b]"
        )),
        "{}",
        stderr(&out)
    );
    let out = logs(&["-c", "a", "--previous", &name]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("previous terminated container"),
        "{}",
        stderr(&out)
    );
    // The files: the CRI layout and line format.
    let file = inst.pod_logs(&name, &u).join("a").join("0.log");
    let raw = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = raw.lines().collect();
    assert!(
        lines.iter().any(|l| l.ends_with(" stdout F hello")),
        "{raw}"
    );
    assert!(lines.iter().any(|l| l.ends_with(" stderr F oops")), "{raw}");

    // A second run of the same name is refused while it exists.
    let out = inst.detach(&yaml);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));

    // stop: a exits 0 on SIGTERM, b is killed after the (2 s minimum) grace period.
    let t = Instant::now();
    let out = inst.podshim(&["stop", "--grace-period", "1", &name], T);
    ok(&out);
    assert_eq!(stdout(&out).trim(), name);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let v = inst.inspect(&name);
    assert_eq!(v["status"]["phase"], "Failed", "{}", v["status"]);
    let a = container_status(&v, "a");
    assert_eq!(a["state"]["terminated"]["exitCode"], 0, "{a}");
    assert_eq!(a["state"]["terminated"]["reason"], "Completed", "{a}");
    let b = container_status(&v, "b");
    assert_eq!(b["state"]["terminated"]["exitCode"], 137, "{b}");
    assert_eq!(b["state"]["terminated"]["reason"], "Error", "{b}");
    assert!(b["state"]["terminated"]["finishedAt"].is_string(), "{b}");
    // Logs stay readable after the stop.
    let out = logs(&["-c", "a", &name]);
    assert_eq!(stdout(&out), text, "the logs are kept after the stop");
    // Stopped: nothing of the Pod is left on the host but its record.
    let row = ps_row(&inst, &name);
    assert_eq!(row[1], "0/2", "{row:?}");
    assert!(!inst
        .state
        .join("pods")
        .join(format!("default_{name}"))
        .exists());
    assert!(inst
        .state
        .join("records")
        .join(format!("default_{name}.json"))
        .exists());

    // --replace runs it again; rm without -f refuses a running Pod; rm -f removes it.
    let out = inst.podshim(
        &[
            "run",
            "-d",
            "--replace",
            inst.dir.join("pod-replace.yaml").to_str().unwrap(),
        ],
        T,
    );
    assert!(!out.status.success(), "a missing file is an error");
    let path = inst.dir.join("again.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = inst.podshim(&["run", "-d", "--replace", path.to_str().unwrap()], T);
    ok(&out);
    assert_eq!(ps_row(&inst, &name)[2], "Running");
    let out = inst.podshim(&["rm", &name], T);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is running"), "{}", stderr(&out));
    let out = inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T);
    ok(&out);
    let out = inst.podshim(&["ps"], T);
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_crashing_container_backs_off_longer_each_time() {
    let mut inst = Instance::new(SUITE);
    // What is asserted is the back-off's growth between runs, measured across a container start
    // whose jitter grows with the host's slowness (seconds under emulation): the back-off is
    // stretched by the same time scale (0, 0.5, 1, 2 s at scale 1), so the margins below, taken
    // in units of it, keep their strength on a slow host instead of drowning in the jitter.
    let scale = time_scale();
    inst.env
        .push(("PODSHIM_BACKOFF_SCALE".into(), format!("{}", 0.05 * scale)));
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("crash");
    let c = container("c", "echo run; exit 3", "");
    // run -d returns once the container has started (it fails afterwards).
    ok(&inst.detach(&pod(&name, &u, "Always", &c, "")));
    let mut seen_backoff = false;
    let v = inst.wait_for(&name, T, "5 restarts", |v| {
        let cs = container_status(v, "c");
        if cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" {
            assert!(
                s(&cs["state"]["waiting"]["message"]).contains("back-off"),
                "{cs}"
            );
        }
        cs["restartCount"].as_u64().unwrap_or(0) >= 5
    });
    let cs = container_status(&v, "c");
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 3, "{cs}");
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error", "{cs}");
    assert_eq!(v["status"]["phase"], "Running");
    // ps shows CrashLoopBackOff while it waits (most of the time, with the back-off growing).
    let deadline = Instant::now() + scaled(T);
    while !seen_backoff && Instant::now() < deadline {
        let row = ps_row(&inst, &name);
        seen_backoff = row[2] == "CrashLoopBackOff";
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen_backoff, "ps never showed CrashLoopBackOff");
    // Each run has its own log file; the time between runs grows (back-off: 0 s, 0.5 s, 1 s,
    // 2 s, times the time scale; plus the start of the container each time).
    let dir = inst.pod_logs(&name, &u).join("c");
    let starts: Vec<f64> = (0..5)
        .map(|n| {
            let raw = std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap();
            assert!(raw.ends_with(" stdout F run\n"), "{raw}");
            let ts = raw.split(' ').next().unwrap();
            chrono_secs(ts)
        })
        .collect();
    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!("gaps between runs: {gaps:?} s (time scale {scale})");
    // Back-offs of 0, 0.5, 1 and 2 s (scaled); the container's start adds a varying part on a
    // loaded machine, so compare gaps two steps apart: they must differ by at least 0.6 of the
    // 1 s and 1.0 of the 1.5 s that the back-offs differ by.
    assert!(
        gaps[2] > gaps[0] + 0.6 * scale,
        "{gaps:?} (time scale {scale})"
    );
    assert!(
        gaps[3] > gaps[1] + 1.0 * scale,
        "{gaps:?} (time scale {scale})"
    );
    let out = inst.podshim(&["logs", "--previous", &name], T);
    ok(&out);
    assert_eq!(stdout(&out), "run\n");
    let out = inst.podshim(&["rm", "-f", &name], T);
    ok(&out);
    inst.assert_clean(&[&u]);
}

/// Seconds since the epoch of an RFC 3339 UTC time with nanoseconds.
fn chrono_secs(ts: &str) -> f64 {
    // 2026-11-27T08:21:52.123456789Z
    let (date, time) = ts.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse().unwrap()).collect();
    let days = d[0] * 366 * 31 + d[1] * 31 + d[2]; // monotonic within a test run
    (days * 86400 + t[0] * 3600 + t[1] * 60 + t[2]) as f64
        + format!("0.{frac}").parse::<f64>().unwrap()
}

#[test]
fn down_removes_the_pods_of_a_manifest() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (u1, u2) = (uid(3), uid(4));
    let yaml = format!(
        "{}---\n{}",
        pod(
            &inst.name("one"),
            &u1,
            "Always",
            &container("c", "exec sleep 3600", ""),
            ""
        ),
        pod(
            &inst.name("two"),
            &u2,
            "Always",
            &container("c", "exec sleep 3600", ""),
            ""
        )
    );
    let out = inst.detach(&yaml);
    ok(&out);
    assert_eq!(
        stdout(&out),
        format!("{}\n{}\n", inst.name("one"), inst.name("two"))
    );
    let path = inst.dir.join("down.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let out = inst.podshim(&["down", "--grace-period", "0", path.to_str().unwrap()], T);
    ok(&out);
    assert_eq!(
        stdout(&out),
        format!("{}\n{}\n", inst.name("one"), inst.name("two"))
    );
    inst.assert_clean(&[&u1, &u2]);
}

fn sigkill(pid: u32) {
    assert!(std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap()
        .success());
}

/// The supervisor is SIGKILLed while the Pod starts (an init container runs), while it runs,
/// and while it stops (waiting out the grace period); every time the Pod shows as lost and
/// `gc` removes everything it had.
#[test]
fn a_killed_supervisor_leaves_nothing_after_gc() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    for (n, point) in ["setup", "running", "teardown"].iter().enumerate() {
        let u = uid(10 + n as u32);
        let name = inst.name(point);
        let init = "  initContainers:\n  - name: slow\n    image: busybox:1.35\n    command: [sleep, '30']\n";
        let c = container("c", "exec sleep 3600", "");
        let mut yaml = pod(&name, &u, "Always", &c, "").replace(
            "terminationGracePeriodSeconds: 1",
            "terminationGracePeriodSeconds: 30",
        );
        if *point == "setup" {
            yaml = yaml.replace("  containers:\n", &format!("{init}  containers:\n"));
        }
        let path = inst.dir.join(format!("{point}.yaml"));
        std::fs::write(&path, &yaml).unwrap();
        let mut run = Some(
            inst.command()
                .args(["run", "-d", path.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut stopper = None;
        match *point {
            "setup" => {
                inst.wait_for(&name, T, "the init container running", |v| {
                    container_status(v, "slow")["state"]["running"].is_object()
                });
            }
            "running" => ok(&wait_output(run.take().unwrap(), T)),
            _ => {
                ok(&wait_output(run.take().unwrap(), T));
                // Stop with a long grace period: sleep (PID 1) ignores SIGTERM, so the
                // supervisor waits; kill it then.
                stopper = Some(
                    inst.command()
                        .args(["stop", &name])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap(),
                );
                std::thread::sleep(Duration::from_millis(500));
            }
        }
        let pid = inst.supervisor_pid(&name).expect("a supervisor");
        let mount_ns = (*point == "running").then(|| pod_mounts_are_private(&inst, &name, pid));
        sigkill(pid);
        if let Some(run) = run {
            let out = wait_output(run, T);
            assert!(!out.status.success());
            assert!(
                stderr(&out).contains("the supervisor exited before the pod started"),
                "{}",
                stderr(&out)
            );
        }
        if let Some(stopper) = stopper {
            // `stop` notices the supervisor is gone and finishes the job from the journal.
            ok(&wait_output(stopper, T));
        } else {
            let v = inst.wait_for(&name, T, "SupervisorLost", |v| {
                v["status"]["reason"] == "SupervisorLost"
            });
            assert_eq!(v["status"]["phase"], "Failed", "{}", v["status"]);
            let c = container_status(&v, "c");
            assert_eq!(
                c["state"]["terminated"]["reason"], "ContainerStatusUnknown",
                "{c}"
            );
            assert_eq!(v["status"]["reason"], "SupervisorLost", "{}", v["status"]);
            let out = inst.podshim(&["ps"], T);
            assert!(stdout(&out).contains("SupervisorLost"), "{}", stdout(&out));
            let out = inst.podshim(&["gc"], T);
            ok(&out);
            assert!(stdout(&out).contains("removed"), "{}", stdout(&out));
        }
        // Nothing of the Pod is left (its logs excepted).
        let out = inst.podshim(&["inspect", &name], T);
        assert!(!out.status.success());
        assert!(stderr(&out).contains("not found"), "{}", stderr(&out));
        assert!(inst.pod_logs(&name, &u).exists());
        inst.assert_clean(&[&u]);
        if let Some(ns) = mount_ns {
            // Its mounts went with the last process in the supervisor's mount namespace.
            let left: Vec<String> = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|p| mount_ns_of(&p.path()) == Some(ns))
                .map(|p| p.file_name().to_string_lossy().to_string())
                .collect();
            assert!(
                left.is_empty(),
                "processes left in the Pod's mount namespace: {left:?}"
            );
        }
    }
}

/// The mount namespace (its inode) of the process at `/proc/PID`.
fn mount_ns_of(proc_dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(proc_dir.join("ns/mnt"))
        .ok()
        .map(|m| m.ino())
}

/// A supervisor keeps its Pod's mounts out of the host's mount table (issue 16 §3: the table,
/// and with it every new container's start, would grow with the number of Pods): the root
/// filesystem's overlay is mounted in the supervisor's own mount namespace only, and `podshim
/// check` still reaches the Pod's network namespace from the host. Returns that namespace.
fn pod_mounts_are_private(inst: &Instance, name: &str, supervisor: u32) -> u64 {
    let proc_dir = std::path::PathBuf::from(format!("/proc/{supervisor}"));
    let ns = mount_ns_of(&proc_dir).expect("the supervisor's mount namespace");
    assert_ne!(Some(ns), mount_ns_of(std::path::Path::new("/proc/self")));
    let mount_points = |info: &str| -> Vec<String> {
        info.lines()
            .filter(|l| l.contains(" - overlay ") && l.contains(&inst.dir.display().to_string()))
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .collect()
    };
    let theirs = mount_points(&std::fs::read_to_string(proc_dir.join("mountinfo")).unwrap());
    assert!(
        !theirs.is_empty(),
        "no root filesystem in the supervisor's mounts"
    );
    let ours = mount_points(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
    assert!(ours.is_empty(), "Pod mounts in the host's table: {ours:?}");
    ok(&inst.podshim(&["check", name], T));
    ns
}

/// CVE-2019-5736: a process holding `/proc/<supervisor>/exe` cannot write the podshim binary,
/// even once the supervisor is gone (the exploit's path: keep an O_PATH descriptor, reopen it for
/// writing after the runtime exited).
#[test]
fn the_supervisor_binary_cannot_be_written_through_proc_exe() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(20);
    let name = inst.name("exe");
    let yaml = pod(
        &name,
        &u,
        "Always",
        &container("c", "exec sleep 3600", ""),
        "",
    );
    // A private copy of podshim, so no other test's podshim runs it (which would make the
    // kernel answer ETXTBSY before it checks the mount).
    let copy = inst.dir.join("podshim-copy");
    std::fs::copy(podshim_bin(), &copy).unwrap();
    let path = inst.dir.join("exe.yaml");
    std::fs::write(&path, &yaml).unwrap();
    let base = inst.command();
    let mut run = std::process::Command::new(&copy);
    run.args(base.get_args()).arg("run").arg("-d").arg(&path);
    let pause = std::env::var_os("PODSHIM_PAUSE")
        .unwrap_or_else(|| podshim_bin().with_file_name("pause").into_os_string());
    run.env("PODSHIM_PAUSE", pause);
    for (k, v) in base.get_envs() {
        if let Some(v) = v {
            run.env(k, v);
        }
    }
    run.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // ETXTBSY: another test thread forked while the copy's write descriptor was open, and its
    // child holds that descriptor until it execs; the copy is executable once it did.
    let mut tries = 0;
    let child = loop {
        match run.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.unwrap(),
        }
    };
    ok(&wait_output(child, T));
    let pid = inst.supervisor_pid(&name).expect("a supervisor");
    const O_PATH: i32 = 0o10000000;
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(O_PATH)
        .open(format!("/proc/{pid}/exe"))
        .unwrap();
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    let err = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", held.as_raw_fd()))
        .expect_err("the podshim binary must not be writable through /proc/PID/exe");
    assert_eq!(err.raw_os_error(), Some(30), "want EROFS: {err}");
    // The binary itself stays writable for root (say, to upgrade podshim).
    std::fs::OpenOptions::new()
        .append(true)
        .open(&copy)
        .unwrap();
    inst.assert_clean(&[&u]);
}

/// A podshim killed between the read-only bind of its binary and the bind's detach (the crash
/// test's random kills hit that window) leaves the bind at `/run/.podshim-exe-PID`, one killed
/// before the mount its bare mount point: `gc` removes both once that PID is gone.
#[test]
fn gc_removes_the_binary_bind_of_a_killed_podshim() {
    let inst = Instance::new(SUITE);
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let pid = dead.id();
    dead.wait().unwrap();
    let point = format!("/run/.podshim-exe-{pid}");
    std::fs::write(&point, "").unwrap();
    // Killed before it mounted: only the mount point (of another dead PID) is left.
    let mut dead2 = std::process::Command::new("true").spawn().unwrap();
    let bare = format!("/run/.podshim-exe-{}", dead2.id());
    dead2.wait().unwrap();
    std::fs::write(&bare, "").unwrap();
    let bound = std::process::Command::new("mount")
        .args(["--bind", "/bin/true", &point])
        .status()
        .unwrap();
    assert!(bound.success(), "mount --bind /bin/true {point}");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(point.as_str()))
    };
    assert!(mounted());
    ok(&inst.podshim(&["gc"], T));
    assert!(!mounted(), "{point} is still mounted after gc");
    assert!(!std::path::Path::new(&point).exists(), "{point} is left");
    assert!(!std::path::Path::new(&bare).exists(), "{bare} is left");
}

/// `logs -f` streams a running container's lines and returns when it exits; `ps -o yaml` is a
/// Kubernetes List.
#[test]
fn logs_follow_streams_until_the_container_exits() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(21);
    let name = inst.name("follow");
    let c = container(
        "c",
        "for i in 1 2 3 4; do echo line-$i; sleep 0.5; done",
        "",
    );
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));
    let t = Instant::now();
    let out = inst.podshim(&["logs", "-f", &name], T);
    ok(&out);
    assert_eq!(stdout(&out), "line-1\nline-2\nline-3\nline-4\n");
    assert!(
        t.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        t.elapsed()
    );
    let out = inst.podshim(&["ps", "-o", "yaml"], T);
    ok(&out);
    let text = stdout(&out);
    assert!(text.contains("kind: List"), "{text}");
    assert!(text.contains(&format!("name: {name}")), "{text}");
    inst.wait_for(&name, T, "Succeeded", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    ok(&inst.podshim(&["rm", &name], T));
    inst.assert_clean(&[&u]);
}

/// A teardown that cannot remove everything keeps the Pod's record: the name stays taken and
/// `gc` finishes the job once the obstacle is gone, so nothing is left untracked.
#[test]
fn a_teardown_that_fails_keeps_the_record_for_gc() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(9);
    let name = inst.name("stuck");
    // Written to the container's writable layer, below the data root.
    let c = container("c", "echo x > /stuck-marker; exec sleep 600", "");
    let yaml = pod(&name, &u, "Always", &c, "");
    ok(&inst.detach(&yaml));
    let deadline = Instant::now() + T;
    let marker = loop {
        let found = find_file(&inst.root, "stuck-marker");
        if let Some(m) = found {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the container never wrote its marker"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // An immutable file: the container's layers cannot be removed (EPERM), as a busy mount or
    // cgroup would make some other step fail.
    let chattr = |flag: &str| {
        let st = std::process::Command::new("chattr")
            .arg(flag)
            .arg(&marker)
            .status()
            .expect("chattr runs (e2fsprogs)");
        assert!(st.success(), "chattr {flag} {}", marker.display());
    };
    chattr("+i");
    let out = inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T);
    let pod_dir = inst.state.join("pods").join(format!("default_{name}"));
    let kept = pod_dir.join("journal.json").exists();
    chattr("-i");
    assert!(
        !out.status.success(),
        "rm -f reported success: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("podshim gc"), "{}", stderr(&out));
    assert!(kept, "the record of what is left is gone: {}", stderr(&out));
    // The name is still taken, with a pointer to gc.
    let again = inst.detach(&yaml);
    assert!(
        !again.status.success() && stderr(&again).contains("podshim gc"),
        "{}",
        stderr(&again)
    );
    let gc = inst.podshim(&["gc"], T);
    ok(&gc);
    assert!(
        stdout(&gc).contains(&format!("default_{name}: removed")),
        "{}",
        stdout(&gc)
    );
    assert!(!marker.exists(), "{} is left", marker.display());
    inst.assert_clean(&[&u]);
}

/// The first file named `name` below `dir` (not through symbolic links nor into /proc-like
/// mounts: a Pod's directories only).
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let t = entry.file_type().ok()?;
        if t.is_file() && entry.file_name() == name {
            return Some(entry.path());
        }
        if t.is_dir() && entry.file_name() != "rootfs" {
            if let Some(f) = find_file(&entry.path(), name) {
                return Some(f);
            }
        }
    }
    None
}
