//! Ctrl-C while `podshim run` sets a Pod up: the terminal sends SIGINT to podshim's whole
//! foreground process group, and only podshim may act on it (stop the Pod, tear it down). The
//! tools podshim runs meanwhile (iptables-save, iptables-restore, nft...) must finish: one that
//! dies of the SIGINT fails the setup, or the teardown after it, and can leave rules behind.

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use podshim_tests::{container, host_veth, stderr, uid, wait_output, Instance};

const SUITE: u32 = 61;
const T: Duration = Duration::from_secs(60);
/// The Pod's host port: its DNAT rules are the per-Pod packet-filter work of setup and
/// teardown (the subnet's masquerade and forward rules are the node's, made once).
const HOST_PORT: u16 = 18461;

/// When the first SIGINT goes out.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// This long after podshim started.
    After(Duration),
    /// As soon as the Pod's host veth exists: the node and NAT rules come next.
    NetworkUp,
}

/// A one-container Pod with a host port; its container stops at once on SIGTERM.
fn pod_yaml(name: &str, uid: &str) -> String {
    let ports = format!("    ports:\n    - containerPort: 8080\n      hostPort: {HOST_PORT}\n");
    podshim_tests::pod(
        name,
        uid,
        "Always",
        &container(
            "c",
            "trap \"exit 0\" INT TERM; while true; do sleep 0.1; done",
            &ports,
        ),
        "",
    )
}

/// `podshim run` of the Pod, leading its own process group as an interactive shell starts it.
fn spawn_in_own_group(inst: &Instance, yaml: &str, n: usize) -> Child {
    let path = inst.dir.join(format!("sigint-{n}.yaml"));
    std::fs::write(&path, yaml).unwrap();
    inst.command()
        .arg("run")
        .arg(&path)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start podshim")
}

/// Ctrl-C pressed again and again: SIGINT to the whole group every 10 ms until podshim has
/// exited (so the teardown's tools get it too); returns how many were sent.
fn keep_interrupting(child: &mut Child) -> usize {
    let group = Pid::from_raw(child.id() as i32);
    let deadline = Instant::now() + T;
    let mut sent = 0;
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "podshim did not stop");
        // The group outlives podshim only through children it left, which `leaks` reports.
        if killpg(group, Signal::SIGINT).is_ok() {
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    sent
}

/// Every rule line of the host's iptables (`nat` and `filter` tables) that names `uid`.
fn iptables_rules_of(uid: &str) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["nat", "filter"] {
        let out = Command::new("iptables-save")
            .args(["-t", table])
            .output()
            .expect("run iptables-save");
        assert!(out.status.success(), "iptables-save -t {table} failed");
        found.extend(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| l.contains(uid))
                .map(|l| format!("iptables {table}: {l}")),
        );
    }
    found
}

/// The read-only binds of its own binary that podshim makes as it starts
/// (`<dir>/.podshim-exe-PID`, detached and removed at once) found now: mount points and mounts.
fn binary_binds() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for dir in ["/run", "/tmp"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(".podshim-exe-") {
                found.insert(format!("mount point {}", e.path().display()));
            }
        }
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for l in mountinfo.lines() {
        if l.split(' ')
            .nth(4)
            .is_some_and(|m| m.contains("/.podshim-exe-"))
        {
            found.insert(format!("mount {l}"));
        }
    }
    found
}

/// Those of podshim `pid` that were not there `before` (a mount point that a podshim killed
/// earlier left, with the PID that `pid` now reuses, is not this one's).
fn binary_binds_of(pid: u32, before: &BTreeSet<String>) -> Vec<String> {
    let name = format!("/.podshim-exe-{pid}");
    binary_binds()
        .into_iter()
        .filter(|b| !before.contains(b))
        .filter(|b| b.ends_with(&name) || b.contains(&format!("{name} ")))
        .collect()
}

/// How podshim ended: a code, or SIGINT itself before it had set its handlers up (then it had
/// made nothing yet).
fn ended_well(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.code().is_some() || status.signal() == Some(Signal::SIGINT as i32)
}

#[test]
fn ctrl_c_at_any_moment_of_setup_stops_podshim_and_kills_none_of_its_tools() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let mut moments: Vec<Moment> = [1, 2, 5, 10, 20, 30, 45, 60, 80, 100, 125, 150]
        .into_iter()
        .map(|ms| Moment::After(Duration::from_millis(ms)))
        .collect();
    moments.push(Moment::NetworkUp);
    moments.push(Moment::NetworkUp);
    let mut report = Vec::new();
    let binds_before = binary_binds();
    for (n, moment) in moments.into_iter().enumerate() {
        let u = uid(n as u32);
        let name = inst.name(&format!("int{n}"));
        let started = Instant::now();
        let mut child = spawn_in_own_group(&inst, &pod_yaml(&name, &u), n);
        let pid = child.id();
        match moment {
            Moment::After(d) => std::thread::sleep(d),
            Moment::NetworkUp => {
                let veth = std::path::Path::new("/sys/class/net").join(host_veth(&u));
                while !veth.exists() {
                    assert!(started.elapsed() < T, "the Pod's veth never appeared");
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
        }
        let first = started.elapsed();
        let sent = keep_interrupting(&mut child);
        let out = wait_output(child, T);
        let err = stderr(&out);
        report.push(format!(
            "{moment:?}: first SIGINT at {first:?}, {sent} sent, podshim {:?}",
            out.status
        ));
        assert!(
            ended_well(out.status),
            "{moment:?}: podshim ended with {:?}\n{err}",
            out.status
        );
        // A tool that died of the signal: podshim reports `<tool> exited with signal: 2
        // (SIGINT)` (in a setup error, a rollback's or a teardown's problem).
        assert!(
            !err.contains("SIGINT") && !err.contains("signal: 2"),
            "{moment:?}: a tool podshim ran died of the Ctrl-C:\n{err}"
        );
        // Nor any other failure of the run (setup, teardown, record): those lines start with
        // `podshim: `, a container's notices with its `[name] `.
        assert!(
            !err.lines().any(|l| l.starts_with("podshim: ")),
            "{moment:?}: the run failed:\n{err}"
        );
        let mut leaks = inst.leaks(&[&u]);
        leaks.extend(iptables_rules_of(&u));
        leaks.extend(binary_binds_of(pid, &binds_before));
        assert!(
            leaks.is_empty(),
            "{moment:?}: left after podshim exited ({:?}):\n{}\nstderr:\n{err}",
            out.status,
            leaks.join("\n")
        );
    }
    eprintln!("{}", report.join("\n"));
}

/// The first milliseconds: every podshim command re-executes itself through a read-only bind
/// mount of its binary (CVE-2019-5736), made and detached at once; a Ctrl-C in between must
/// not leave the mount behind. `podshim ps` makes nothing else, so hundreds of runs are cheap.
#[test]
fn ctrl_c_as_podshim_starts_leaves_no_bind_of_its_binary() {
    let inst = Instance::new(SUITE);
    let binds_before = binary_binds();
    let mut pids = Vec::new();
    let mut interrupted = 0;
    for n in 0..300u64 {
        let child = inst
            .command()
            .arg("ps")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start podshim");
        // 0 to 3.9 ms after the start, in steps of 0.1 ms: the re-execution happens within.
        std::thread::sleep(Duration::from_micros(n % 40 * 100));
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGINT);
        pids.push(child.id());
        let out = wait_output(child, T);
        if out.status.code().is_none() {
            interrupted += 1;
        }
    }
    let leaks: Vec<String> = pids
        .iter()
        .flat_map(|p| binary_binds_of(*p, &binds_before))
        .collect();
    assert!(leaks.is_empty(), "left behind:\n{}", leaks.join("\n"));
    // The Ctrl-C did land during the start, mostly.
    assert!(
        interrupted > 100,
        "only {interrupted} of 300 runs were interrupted"
    );
}

/// Ctrl-C pressed again and again while the Pod stops: its preStop hook (run by the supervisor
/// as `podshim exec`, which passes the signals it gets on to its command) must not get them.
/// The hook writes a file after a while; the container prints it on SIGTERM, which comes after
/// the hook.
#[test]
fn ctrl_c_during_the_graceful_stop_does_not_reach_the_pre_stop_hook() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(90);
    let name = inst.name("hook");
    let hook = "    lifecycle:\n      preStop:\n        exec:\n          command: [sh, -c, 'sleep 0.4; echo hook-done > /data/m']\n    volumeMounts: [{name: data, mountPath: /data}]\n";
    let c = container(
        "c",
        "trap \"cat /data/m; exit 0\" TERM; echo up; while true; do sleep 0.137; done",
        hook,
    );
    let yaml = podshim_tests::pod(
        &name,
        &u,
        "Always",
        &c,
        "  volumes: [{name: data, emptyDir: {}}]\n",
    )
    .replace(
        "terminationGracePeriodSeconds: 1",
        "terminationGracePeriodSeconds: 20",
    );
    let mut child = spawn_in_own_group(&inst, &yaml, 90);
    // The trap is set once its loop runs.
    let deadline = Instant::now() + T;
    while !Command::new("pgrep")
        .args(["-x", "-f", "sleep 0.137"])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "the container never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = keep_interrupting(&mut child);
    let out = wait_output(child, T);
    let (text, err) = (podshim_tests::stdout(&out), stderr(&out));
    assert!(
        podshim_tests::lines_of(&text, "c").contains(&"hook-done".to_string()),
        "the preStop hook did not finish ({sent} SIGINTs):\n{text}{err}"
    );
    assert_eq!(out.status.code(), Some(0), "{err}");
    inst.assert_clean(&[&u]);
}
