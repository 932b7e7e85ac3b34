//! End-to-end tests of the Pod sandbox: security defaults inside containers, the pause process,
//! rollback of a failed setup, isolation between instances, concurrency, and the name lock.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use podshim_tests::{
    container, ipv4_of, lines_of, ok, pod, stderr, stdout, term, uid, wait_output, Instance,
};

const SUITE: u32 = 3;
const T: Duration = Duration::from_secs(60);

fn pgrep(pattern: &str) -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
}

fn wait_for(pattern: &str) -> u32 {
    let deadline = Instant::now() + T;
    loop {
        if let Some(pid) = pgrep(pattern) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no process matching {pattern:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn status_field(pid: u32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A block device of this host, `(major, minor)`: a disk where there is one, else any (a loop
/// device), from `/sys/dev/block/MAJOR:MINOR` (a link to the device's sysfs directory).
fn host_block_device() -> (u32, u32) {
    let mut devices: Vec<(bool, u32, u32)> = std::fs::read_dir("/sys/dev/block")
        .expect("read /sys/dev/block")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let (major, minor) = name.split_once(':')?;
            let target = std::fs::read_link(e.path()).ok()?;
            let kernel_name = target.file_name()?.to_string_lossy().to_string();
            let virtual_disk = ["loop", "ram", "zram"]
                .iter()
                .any(|p| kernel_name.starts_with(p));
            Some((virtual_disk, major.parse().ok()?, minor.parse().ok()?))
        })
        .collect();
    devices.sort();
    let (_, major, minor) = *devices
        .first()
        .expect("this host has no block device in /sys/dev/block to test the device cgroup with");
    (major, minor)
}

fn ns(pid: u32, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn containers_get_the_security_defaults() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    // A block device this host really has (mknod of one that does not exist proves nothing):
    // the device cgroup must refuse it although CAP_MKNOD is a default capability.
    let (major, minor) = host_block_device();
    let script = format!("grep -E \"^(CapEff|SigIgn)\" /proc/self/status; echo oom=$(cat /proc/self/oom_score_adj); \
        echo nofile=$(ulimit -n); echo pid=$$$$; ls /proc/self/fd | tr \"\\n\" \" \"; echo; \
        echo keys=$(cat /proc/keys | wc -c) timer_list=$(cat /proc/timer_list | wc -c); \
        if (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then echo procsys-writable; else echo procsys-ro; fi; \
        mknod /tmp/blk b {major} {minor}; if head -c1 /tmp/blk >/dev/null 2>&1; then echo dev-open; else echo dev-denied; fi; \
        grep ^nameserver /etc/resolv.conf | tr \"\\n\" \" \"; echo");
    let out = inst.run(
        &pod(
            &inst.name("sec"),
            &u,
            "Never",
            &container("c", &script, ""),
            "",
        ),
        T,
    );
    ok(&out);
    let l = lines_of(&stdout(&out), "c");
    // containerd's 14 default capabilities.
    assert!(
        l.contains(&"CapEff:\t00000000a80425fb".to_string()),
        "{l:?}"
    );
    assert!(
        l.contains(&"SigIgn:\t0000000000000000".to_string()),
        "signals ignored in the container: {l:?}"
    );
    assert!(l.contains(&"oom=1000".to_string()), "{l:?}");
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = limits
        .lines()
        .find(|x| x.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        l.contains(&format!("nofile={}", hard.min(1_048_576))),
        "{l:?}"
    );
    assert!(l.contains(&"pid=1".to_string()), "{l:?}");
    let fds = l
        .iter()
        .find(|x| x.starts_with("0 1 2"))
        .unwrap_or_else(|| panic!("{l:?}"));
    assert!(
        fds.split_whitespace()
            .all(|fd| fd.parse::<u32>().unwrap() <= 3),
        "leaked fds: {fds}"
    );
    // $$ is Kubernetes' escape for a literal $ in command (the shell then sees $$).
    assert!(
        l.contains(&"keys=0 timer_list=0".to_string()),
        "masked paths readable: {l:?}"
    );
    assert!(
        l.contains(&"procsys-ro".to_string()) && l.contains(&"dev-denied".to_string()),
        "{l:?}"
    );
    let host_ns: Vec<String> = std::fs::read_to_string("/etc/resolv.conf")
        .unwrap()
        .lines()
        .filter_map(|x| x.strip_prefix("nameserver "))
        .filter(|ip| !ip.starts_with("127.") && *ip != "::1")
        .map(|ip| format!("nameserver {ip}"))
        .collect();
    let got = l
        .iter()
        .find(|x| x.starts_with("nameserver") || x.is_empty())
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        got.split(" nameserver").count(),
        host_ns.len().max(1),
        "resolv.conf {got:?} vs host {host_ns:?}"
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn pause_is_unprivileged_and_holds_the_shared_namespaces() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("pause");
    let mark = format!("5{}", std::process::id() % 1000 + 1000);
    let child = inst.spawn(&pod(
        &name,
        &u,
        "Always",
        &container("c", &format!("exec sleep {mark}"), ""),
        "",
    ));
    let c = wait_for(&format!("^sleep {mark}$"));
    let p = wait_for(&format!("pause --hostname {name} "));
    assert_eq!(
        status_field(p, "Uid").split_whitespace().next(),
        Some("65535")
    );
    assert_eq!(status_field(p, "CapEff"), "0000000000000000");
    assert_eq!(status_field(p, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(p, "NoNewPrivs"), "1");
    for kind in ["net", "ipc", "uts"] {
        assert_eq!(
            ns(p, kind),
            ns(c, kind),
            "{kind} namespace not shared with pause"
        );
        assert_ne!(
            ns(p, kind),
            ns(std::process::id(), kind),
            "{kind} namespace is the host's"
        );
    }
    for kind in ["pid", "mnt"] {
        assert_ne!(
            ns(p, kind),
            ns(c, kind),
            "the container should have its own {kind} namespace"
        );
    }
    let pin = inst
        .state
        .join("pods")
        .join(format!("default_{name}"))
        .join("netns");
    // The pin is a mount in the Pod's own mount namespace (the supervisor's, which pause
    // shares), not in the host's (see lifecycle.rs).
    let mounted = |pid: String| {
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap()
            .contains(&format!(" {} ", pin.display()))
    };
    assert!(
        mounted(p.to_string()),
        "netns pin {} is not mounted in pause's mount namespace",
        pin.display()
    );
    assert!(
        !mounted("self".into()),
        "netns pin {} is mounted in the host's mount namespace",
        pin.display()
    );
    term(&child);
    wait_output(child, T);
    inst.assert_clean(&[&u]);
}

/// Under `restartPolicy: Never` a Pod whose pause died ends (the kubelet makes no new sandbox
/// for a Pod that will not restart its containers; under the other policies it does, see
/// tests/recovery.rs).
#[test]
fn a_dead_pause_stops_the_pod_and_everything_is_removed() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("nopause");
    let child = inst.spawn(&pod(
        &name,
        &u,
        "Never",
        &container("c", "exec sleep 617", ""),
        "",
    ));
    let p = wait_for(&format!("pause --hostname {name} "));
    // Pause dies once the Pod runs: killed while the container is still being created, the
    // container's start fails first (its namespaces are gone) and that is what is reported.
    // (No other test of this binary sleeps 617.)
    wait_for("^sleep 617$");
    assert!(Command::new("kill")
        .args(["-KILL", &p.to_string()])
        .status()
        .unwrap()
        .success());
    let out = wait_output(child, T);
    assert!(
        !out.status.success(),
        "podshim exited 0 after its pause died"
    );
    assert!(
        stderr(&out).contains("pause process exited"),
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn a_failure_during_setup_rolls_back_everything() {
    let mut inst = Instance::new(SUITE);
    // A /30 has exactly one Pod address (.1 is the gateway): the second Pod cannot get one.
    inst.subnet = format!("{}.0/30", inst.prefix);
    inst.import_busybox();
    let (ua, ub) = (uid(4), uid(5));
    let first = inst.spawn(&pod(
        &inst.name("first"),
        &ua,
        "Always",
        &container("c", "exec sleep 600", ""),
        "",
    ));
    wait_for(&format!("pause --hostname {} ", inst.name("first")));
    std::thread::sleep(Duration::from_millis(300));
    let out = inst.run(
        &pod(
            &inst.name("second"),
            &ub,
            "Never",
            &container("c", "true", ""),
            "",
        ),
        T,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no free address"), "{}", stderr(&out));
    // The second Pod's pause, cgroup, netns pin, veth and state are gone while the first runs.
    assert!(pgrep(&format!("pause --hostname {} ", inst.name("second"))).is_none());
    assert!(!inst
        .state
        .join("pods")
        .join(format!("default_{}", inst.name("second")))
        .exists());
    assert!(!podshim_tests::cgroup_dir("pids", &inst.pod_cgroup(&ub)).exists());
    assert!(!std::path::Path::new("/sys/class/net")
        .join(podshim_tests::host_veth(&ub))
        .exists());
    term(&first);
    wait_output(first, T);
    inst.assert_clean(&[&ua, &ub]);
}

#[test]
fn a_container_that_cannot_start_exits_128() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(6);
    let yaml = pod(
        &inst.name("nostart"),
        &u,
        "Never",
        "  - name: c\n    image: busybox:1.35\n    command: [/no/such/binary]\n",
        "",
    );
    let out = inst.run(&yaml, T);
    assert_eq!(out.status.code(), Some(128), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot start container"),
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn two_instances_run_pods_of_the_same_name_side_by_side() {
    let (a, b) = (Instance::new(SUITE), Instance::new(SUITE));
    a.import_busybox();
    b.import_busybox();
    let (ua, ub) = (uid(7), uid(8));
    let script = "ip -o -4 addr show dev eth0; sleep 1";
    let ca = a.spawn(&pod("twin", &ua, "Never", &container("c", script, ""), ""));
    let cb = b.spawn(&pod("twin", &ub, "Never", &container("c", script, ""), ""));
    let (oa, ob) = (wait_output(ca, T), wait_output(cb, T));
    ok(&oa);
    ok(&ob);
    let ipa = ipv4_of(&lines_of(&stdout(&oa), "c")).unwrap();
    let ipb = ipv4_of(&lines_of(&stdout(&ob), "c")).unwrap();
    assert!(
        ipa.starts_with(&format!("{}.", a.prefix)) && ipb.starts_with(&format!("{}.", b.prefix)),
        "{ipa} {ipb}"
    );
    a.assert_clean(&[&ua]);
    b.assert_clean(&[&ub]);
}

#[test]
fn concurrent_runs_get_distinct_ips() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let uids: Vec<String> = (10..16).map(uid).collect();
    let children: Vec<_> = uids
        .iter()
        .enumerate()
        .map(|(i, u)| {
            inst.spawn(&pod(
                &inst.name(&format!("par{i}")),
                u,
                "Never",
                &container("c", "ip -o -4 addr show dev eth0", ""),
                "",
            ))
        })
        .collect();
    let mut ips: Vec<String> = children
        .into_iter()
        .map(|c| {
            let o = wait_output(c, T);
            ok(&o);
            ipv4_of(&lines_of(&stdout(&o), "c")).unwrap()
        })
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), uids.len(), "{ips:?}");
    let refs: Vec<&str> = uids.iter().map(String::as_str).collect();
    inst.assert_clean(&refs);
}

#[test]
fn a_running_pod_name_is_refused_and_stdin_manifests_work() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let (ua, ub) = (uid(20), uid(21));
    let name = inst.name("taken");
    let first = inst.spawn(&pod(
        &name,
        &ua,
        "Always",
        &container("c", "exec sleep 600", ""),
        "",
    ));
    wait_for(&format!("pause --hostname {name} "));
    // The second run reads its manifest from stdin and names the image in full.
    let yaml = pod(&name, &ub, "Never", &container("c", "true", ""), "")
        .replace("busybox:1.35", "docker.io/library/busybox:1.35");
    let mut second = inst
        .command()
        .args(["run", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    second
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = wait_output(second, T);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    term(&first);
    wait_output(first, T);
    // Now the name is free and the same stdin manifest runs.
    let mut third = inst
        .command()
        .args(["run", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    third
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    ok(&wait_output(third, T));
    inst.assert_clean(&[&ua, &ub]);
}

#[test]
fn gc_removes_what_a_killed_podshim_left() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(30);
    let name = inst.name("orphan");
    let mark = format!("6{}", std::process::id() % 1000 + 1000);
    let yaml = pod(
        &name,
        &u,
        "Always",
        &container(
            "c",
            &format!("exec sleep {mark}"),
            "    volumeMounts:\n    - {name: m, mountPath: /m}\n",
        ),
        "  volumes:\n  - name: m\n    emptyDir: {medium: Memory}\n",
    );
    let mut child = inst.spawn(&yaml);
    wait_for(&format!("^sleep {mark}$"));
    child.kill().unwrap(); // SIGKILL: no teardown happens
    child.wait().unwrap();
    // The name stays taken, with a pointer to gc.
    let out = inst.run(&yaml, T);
    assert!(
        !out.status.success() && stderr(&out).contains("podshim gc"),
        "{}",
        stderr(&out)
    );
    let gc = inst.command().arg("gc").output().unwrap();
    assert!(gc.status.success(), "{}{}", stdout(&gc), stderr(&gc));
    assert!(
        stdout(&gc).contains(&format!("default_{name}: removed")),
        "{}",
        stdout(&gc)
    );
    assert!(
        pgrep(&format!("^sleep {mark}$")).is_none(),
        "the container survived gc"
    );
    inst.assert_clean(&[&u]);
    // gc twice is fine and finds nothing.
    let again = inst.command().arg("gc").output().unwrap();
    assert!(
        again.status.success() && stdout(&again).is_empty(),
        "{}",
        stdout(&again)
    );
}

#[test]
fn ctrl_c_on_the_terminal_stops_the_pod_gracefully() {
    use std::os::unix::process::CommandExt;
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(31);
    let name = inst.name("ctrlc");
    let yaml = pod(
        &name,
        &u,
        "Always",
        &container(
            "c",
            "trap \"echo bye; exit 0\" INT TERM; echo up; while true; do sleep 0.11; done",
            "",
        ),
        "",
    );
    let path = inst.dir.join("ctrlc.yaml");
    std::fs::write(&path, yaml).unwrap();
    // Like an interactive shell: podshim leads its own foreground process group, and Ctrl-C
    // sends SIGINT to that whole group.
    let child = inst
        .command()
        .arg("run")
        .arg(&path)
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&format!("pause --hostname {name} "));
    // Ctrl-C once the trap is set (its loop's sleep runs): under load the container could
    // still be starting 500 ms after pause, and the Pod would stop before any "bye".
    wait_for("^sleep 0\\.11$");
    assert!(Command::new("kill")
        .args(["-INT", "--", &format!("-{}", child.id())])
        .status()
        .unwrap()
        .success());
    let out = wait_output(child, T);
    assert!(
        !stderr(&out).contains("pause process exited"),
        "pause died of the Ctrl-C: {}",
        stderr(&out)
    );
    assert!(
        lines_of(&stdout(&out), "c").contains(&"bye".to_string()),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_closed_output_pipe_or_terminal_still_tears_everything_down() {
    use std::io::BufRead;
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    // `podshim run pod.yaml | head -1`: the reader goes away, the Pod keeps writing.
    let u = uid(32);
    let yaml = pod(
        &inst.name("pipe"),
        &u,
        "Never",
        &container(
            "c",
            "for i in $(seq 200); do echo line $i; sleep 0.005; done",
            "",
        ),
        "",
    );
    let mut child = inst.spawn(&yaml);
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "[c] line 1\n");
    let out = wait_output(child, T); // the reader was dropped above
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    inst.assert_clean(&[&u]);
    // SIGHUP (the terminal closed) stops the Pod like SIGTERM.
    let u = uid(33);
    let name = inst.name("hup");
    let child = inst.spawn(&pod(
        &name,
        &u,
        "Always",
        &container(
            "c",
            "trap \"exit 0\" TERM; while true; do sleep 0.12; done",
            "",
        ),
        "",
    ));
    wait_for(&format!("pause --hostname {name} "));
    wait_for("^sleep 0\\.12$"); // the trap is set
    assert!(Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = wait_output(child, T);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    inst.assert_clean(&[&u]);
}

#[test]
fn pause_exits_0_on_sigterm_and_sigint_and_keeps_no_stdio() {
    podshim_tests::require_root();
    let pause = std::env::var_os("PODSHIM_PAUSE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| podshim_tests::podshim_bin().with_file_name("pause"));
    for sig in ["TERM", "INT"] {
        let mut child = Command::new(&pause)
            .args(["--hostname", "pause-test", "--user", "65535:65535"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        // stdout reached EOF while pause still runs: it let go of it after "ready".
        assert_eq!(out, "ready\n");
        assert_eq!(
            status_field(child.id(), "Uid").split_whitespace().next(),
            Some("65535")
        );
        assert_ne!(ns(child.id(), "net"), ns(std::process::id(), "net"));
        assert!(Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap()
            .success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "pause after SIG{sig}: {status:?}");
    }
}
