//! `ctr` against a private containerd 1.6, per runtime handler: run (output and exit status,
//! and what a container of ctr's default spec sees), exec with and without a terminal, kill,
//! pause/resume (the freezer), task metrics, a memory limit update (containerd's Tasks/Update:
//! ctr 1.6 has no `task update`), an OOM kill reported as exit 137 plus a `/tasks/oom` event,
//! a running task surviving a containerd restart, and a SIGKILLed shim cleaned up by
//! containerd (through the shim's `delete`) with nothing left, and `--log-uri` (`file://`, and
//! `binary://`: a logging script given the output at fds 3 and 4) (commands that cannot run and stdin:
//! `ctr_start.rs`; terminal sizes, CloseIO and a systemd `cgroupsPath`: `ctr_io.rs`). Each body takes the handler; runc's
//! answers are recorded in `reference/runc/<host kind>/ctr_*.json` and podshim's must match them.

mod support;

use std::io::BufRead;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use support::cleanup::cgroup_dirs;
use support::ctr::{daemon, ok, text, wait_child};
use support::daemon::Containerd;
use support::handler::Handler;
use support::{answers, inside, wait_until};

handler_tests!(
    runc,
    Handler::runc(),
    [
        ctr_run_echo,
        ctr_exec,
        ctr_kill,
        ctr_pause_resume,
        ctr_metrics,
        ctr_update_memory,
        ctr_oom_kill,
        ctr_containerd_restart,
        ctr_killed_shim,
        ctr_log_uris
    ]
);

handler_tests!(
    podshim,
    Handler::podshim(),
    [
        ctr_run_echo,
        ctr_exec,
        ctr_kill,
        ctr_pause_resume,
        ctr_metrics,
        ctr_update_memory,
        ctr_oom_kill,
        ctr_containerd_restart,
        ctr_killed_shim,
        ctr_log_uris
    ]
);

/// A cgroup file of a ctr container: the v1 file from its controller's hierarchy, else the v2
/// one (a hybrid host has both kinds of hierarchy, and `cgroup.freeze` exists in its cgroup2 one
/// even when the v1 freezer does the freezing).
fn cgroup_file(d: &Containerd, id: &str, v1: &str, v2: &str) -> String {
    let dirs = cgroup_dirs(&d.cgroup_of(id));
    [v1, v2]
        .iter()
        .find_map(|f| {
            dirs.iter()
                .find_map(|dir| std::fs::read_to_string(dir.join(f)).ok())
        })
        .unwrap_or_else(|| panic!("no {v1} or {v2} for {id}"))
        .trim()
        .to_string()
}

fn ctr_run_echo(h: &Handler) {
    let d = daemon(h);
    let echo = ok(&mut d.ctr_run(h, "echo", &["--rm"], &["echo", "hello from ctr"]));
    assert_eq!(echo, "hello from ctr\n");
    let failed = d
        .ctr_run(
            h,
            "fail",
            &["--rm"],
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (out, err) = text(&failed);
    assert_eq!(failed.status.code(), Some(7), "{out} {err}");
    assert_eq!(out, "out\n");
    assert!(err.starts_with("err\n"), "{err}");
    let seen = inside::parse(&ok(&mut d.ctr_run(
        h,
        "probe",
        &["--rm"],
        &["sh", "-c", inside::SCRIPT],
    )));
    // ctr's default spec: containerd's 14 default capabilities, no seccomp without --seccomp,
    // no-new-privileges, /proc/keys and /sys/firmware masked, nofile 1024.
    assert_eq!(seen.init.cap_eff, "00000000a80425fb");
    assert_eq!(seen.init.seccomp, "0");
    assert_eq!(seen.init.no_new_privs, "1");
    assert_eq!(seen.masked["/proc/keys"], "empty-file");
    assert_eq!(seen.masked["/sys/firmware"], "empty-dir");
    assert_eq!(seen.limits["Max open files"], "1024 1024");
    answers::check(
        h,
        "ctr_run_echo",
        &json!({
            "echo": echo,
            "exit_code": failed.status.code(),
            "stdout": out,
            "stderr_first_line": err.lines().next(),
            "inside": seen.to_json(),
        }),
    );
    d.shutdown();
}

fn ctr_exec(h: &Handler) {
    let d = daemon(h);
    ok(&mut d.ctr_run(h, "sleeper", &["-d"], &["sleep", "600"]));
    d.wait_task("sleeper", "RUNNING");
    let plain = ok(d.ctr_exec("sleeper", "e1", false).args([
        "sh",
        "-c",
        "echo $((6*7)); tr '\\0' ' ' < /proc/1/cmdline; echo; tty || true",
    ]));
    assert_eq!(plain, "42\nsleep 600 \nnot a tty\n");
    let failed = d
        .ctr_exec("sleeper", "e2", false)
        .args(["sh", "-c", "exit 3"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(3));
    // `ctr task exec -t` needs a terminal of its own: script(1) gives it one.
    let exec_t = d.ctr_exec("sleeper", "e3", true);
    let ctr_cmd = format!(
        "{} {} sh -c 'tty; [ -t 0 ] && echo stdin is a terminal'",
        exec_t.get_program().to_string_lossy(),
        exec_t
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let tty = ok(std::process::Command::new("script").args(["-qec", &ctr_cmd, "/dev/null"]));
    // ctr 1.6 may log its own complaint on the same terminal, before or after the exec's output
    // (`resize pty ... cannot resize a stopped container`), and script(1) echoes a NUL that ctr
    // writes to the terminal as `^@`: only the container's lines matter.
    let tty: String = tty
        .replace("\r\n", "\n")
        .replace("^@", "")
        .lines()
        .filter(|l| !l.contains("resize pty"))
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(tty, "/dev/pts/0\nstdin is a terminal\n", "exec -t output");
    answers::check(
        h,
        "ctr_exec",
        &json!({"plain": plain, "exit_code": failed.status.code(), "tty": tty}),
    );
    d.remove_task("sleeper");
    d.shutdown();
}

/// A `ctr run` in the foreground whose container prints `ready` once its TERM trap is set.
fn run_until_ready(d: &Containerd, h: &Handler, id: &str, script: &str) -> Child {
    let mut child = d
        .ctr_run(h, id, &["--rm"], &["sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n");
    child
}

fn ctr_kill(h: &Handler) {
    let d = daemon(h);
    let term = run_until_ready(
        &d,
        h,
        "term",
        "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done",
    );
    ok(d.ctr("default")
        .args(["task", "kill", "-s", "SIGTERM", "term"]));
    let term = wait_child(term, Duration::from_secs(20));
    assert_eq!(term.status.code(), Some(42), "{:?}", text(&term));
    let killed = run_until_ready(&d, h, "killed", "echo ready; exec sleep 600");
    ok(d.ctr("default")
        .args(["task", "kill", "-s", "SIGKILL", "killed"]));
    let killed = wait_child(killed, Duration::from_secs(20));
    assert_eq!(killed.status.code(), Some(137), "{:?}", text(&killed));
    answers::check(
        h,
        "ctr_kill",
        &json!({"sigterm_trapped": term.status.code(), "sigkill": killed.status.code()}),
    );
    d.shutdown();
}

fn ctr_pause_resume(h: &Handler) {
    let d = daemon(h);
    ok(&mut d.ctr_run(
        h,
        "counter",
        &["-d"],
        &[
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo $i > /tmp/n; sleep 0.05; done",
        ],
    ));
    d.wait_task("counter", "RUNNING");
    let pid = d.task_pid("counter");
    let count = || -> u64 {
        std::fs::read_to_string(format!("/proc/{pid}/root/tmp/n"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until(Duration::from_secs(10), "the counter to count", || {
        (count() > 2).then_some(())
    });
    ok(d.ctr("default").args(["task", "pause", "counter"]));
    assert_eq!(d.task_status("counter").as_deref(), Some("PAUSED"));
    let frozen = cgroup_file(&d, "counter", "freezer.state", "cgroup.freeze");
    let paused_at = count();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(count(), paused_at, "the counter moved while paused");
    ok(d.ctr("default").args(["task", "resume", "counter"]));
    assert_eq!(d.task_status("counter").as_deref(), Some("RUNNING"));
    let thawed = cgroup_file(&d, "counter", "freezer.state", "cgroup.freeze");
    wait_until(Duration::from_secs(10), "the counter to move again", || {
        (count() > paused_at).then_some(())
    });
    assert!(frozen == "FROZEN" || frozen == "1", "{frozen}");
    assert!(thawed == "THAWED" || thawed == "0", "{thawed}");
    answers::check(
        h,
        "ctr_pause_resume",
        &json!({"paused": "PAUSED", "frozen": frozen, "thawed": thawed}),
    );
    d.remove_task("counter");
    d.shutdown();
}

fn ctr_metrics(h: &Handler) {
    let d = daemon(h);
    ok(&mut d.ctr_run(
        h,
        "busy",
        &["-d"],
        &[
            "sh",
            "-c",
            "x=0; while [ $x -lt 20000 ]; do x=$((x+1)); done; echo done > /tmp/done; exec sleep 600",
        ],
    ));
    d.wait_task("busy", "RUNNING");
    let pid = d.task_pid("busy");
    wait_until(Duration::from_secs(30), "the busy loop to end", || {
        std::path::Path::new(&format!("/proc/{pid}/root/tmp/done"))
            .exists()
            .then_some(())
    });
    let out = ok(d
        .ctr("default")
        .args(["task", "metrics", "--format", "json", "busy"]));
    let m: serde_json::Value = serde_json::from_str(&out).unwrap();
    let num = |p: &str| m.pointer(p).and_then(|v| v.as_u64()).unwrap_or(0);
    // cgroup v1 metrics (io.containerd.cgroups.v1.Metrics: memory.usage is an object) on this
    // host; v2 names otherwise (there memory.usage is a number).
    let (cpu, mem, pids) = if m.pointer("/memory/usage").is_some_and(|v| v.is_object()) {
        (
            num("/cpu/usage/total"),
            num("/memory/usage/usage"),
            num("/pids/current"),
        )
    } else {
        (
            num("/cpu/usage_usec"),
            num("/memory/usage"),
            num("/pids/current"),
        )
    };
    assert!(cpu > 0, "cpu usage in {out}");
    assert!(mem > 0, "memory usage in {out}");
    assert_eq!(pids, 1, "pids in {out}");
    let mut keys: Vec<&String> = m.as_object().unwrap().keys().collect();
    keys.sort();
    answers::check(
        h,
        "ctr_metrics",
        &json!({"top_level_keys": keys, "pids_current": pids}),
    );
    d.remove_task("busy");
    d.shutdown();
}

fn ctr_update_memory(h: &Handler) {
    let d = daemon(h);
    ok(&mut d.ctr_run(
        h,
        "upd",
        &["-d", "--memory-limit", "67108864"],
        &["sleep", "600"],
    ));
    d.wait_task("upd", "RUNNING");
    let before = cgroup_file(&d, "upd", "memory.limit_in_bytes", "memory.max");
    // ctr 1.6 has no `task update`: containerd's Tasks/Update, as later ctr releases call it.
    support::grpc::update_task(
        &d.layout.address,
        "default",
        "upd",
        &json!({"memory": {"limit": 33554432}}),
    )
    .unwrap_or_else(|e| panic!("Tasks/Update: {e}"));
    let after = cgroup_file(&d, "upd", "memory.limit_in_bytes", "memory.max");
    // (ctr's default spec mounts no cgroupfs in the container: the host's view only.)
    assert_eq!(before, "67108864");
    assert_eq!(after, "33554432");
    answers::check(
        h,
        "ctr_update_memory",
        &json!({"host_before": before, "host_after": after}),
    );
    d.remove_task("upd");
    d.shutdown();
}

fn ctr_oom_kill(h: &Handler) {
    let d = daemon(h);
    // containerd's event stream, as `ctr events` prints it: `<time> <namespace> <topic> <event>`.
    let mut events = d
        .ctr("default")
        .arg("events")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = std::io::BufReader::new(events.stdout.take().unwrap());
    let sink = lines.clone();
    std::thread::spawn(move || {
        for l in reader.lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });
    // Make sure the subscription is live before the container starts: create namespaces until
    // one's event comes through (the first may be created before ctr has subscribed).
    let mut probe = 0;
    wait_until(Duration::from_secs(10), "ctr events to subscribe", || {
        probe += 1;
        let name = format!("events-ready-{probe}");
        ok(d.ctr("default").args(["namespaces", "create", &name]));
        let seen = (0..25).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            lines.lock().unwrap().iter().any(|l| l.contains(&name))
        });
        ok(d.ctr("default").args(["namespaces", "remove", &name]));
        seen.then_some(())
    });
    let oom = d
        .ctr_run(
            h,
            "oom",
            &["--rm", "--memory-limit", "16777216"],
            // containerd-shim-runc-v2 1.6 watches a container's memory cgroup for OOM kills
            // only once the task has started (`Start` adds it to its epoll after runc start):
            // an OOM in the first milliseconds is never reported. Give it a moment.
            &["sh", "-c", "sleep 0.5; tail /dev/zero"],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(oom.status.code(), Some(137), "{:?}", text(&oom));
    let topic = |l: &String| -> Option<String> {
        let w: Vec<&str> = l.split_whitespace().collect();
        let t = w.iter().find(|w| w.starts_with("/tasks/"))?;
        l.contains("\"oom\"").then(|| t.to_string())
    };
    let topics = wait_until(Duration::from_secs(10), "/tasks/delete of oom", || {
        let t: Vec<String> = lines.lock().unwrap().iter().filter_map(topic).collect();
        t.iter().any(|t| t == "/tasks/delete").then_some(t)
    });
    let _ = events.kill();
    let _ = events.wait();
    assert!(
        topics.iter().any(|t| t == "/tasks/oom"),
        "no /tasks/oom event for the container: {topics:?}\n{}",
        lines.lock().unwrap().join("\n")
    );
    answers::check(
        h,
        "ctr_oom_kill",
        &json!({"exit_code": oom.status.code(), "task_events": topics}),
    );
    d.shutdown();
}

fn ctr_containerd_restart(h: &Handler) {
    let mut d = daemon(h);
    ok(&mut d.ctr_run(h, "survivor", &["-d"], &["sleep", "600"]));
    d.wait_task("survivor", "RUNNING");
    let pid = d.task_pid("survivor");
    let old = d.pid();
    d.restart();
    assert_ne!(d.pid(), old);
    // The task outlived containerd, which found its shim again: same process, still RUNNING,
    // and it answers exec and kill.
    assert_eq!(d.task_status("survivor").as_deref(), Some("RUNNING"));
    assert_eq!(d.task_pid("survivor"), pid);
    let out = ok(d
        .ctr_exec("survivor", "after", false)
        .args(["echo", "still here"]));
    assert_eq!(out, "still here\n");
    d.remove_task("survivor");
    answers::check(
        h,
        "ctr_containerd_restart",
        &json!({"status_after_restart": "RUNNING", "same_pid": true, "exec": out}),
    );
    d.shutdown();
}

/// The processes of the shim serving task `id` (podshim's: its server and runtime helper).
fn shim_pids(h: &Handler, id: &str) -> Vec<i32> {
    let binary = h.shim.file_name().unwrap().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let named = args.first()?.ends_with(&binary);
            let has_id = args.windows(2).any(|w| w[0] == "-id" && w[1] == id);
            (named && has_id).then_some(pid)
        })
        .collect()
}

fn ctr_killed_shim(h: &Handler) {
    let d = daemon(h);
    ok(&mut d.ctr_run(h, "victim", &["-d"], &["sleep", "600"]));
    d.wait_task("victim", "RUNNING");
    let pid = d.task_pid("victim");
    let shims = shim_pids(h, "victim");
    assert!(!shims.is_empty(), "no shim process for victim");
    for p in &shims {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    // containerd sees its connection close, runs `<shim> delete` and marks the task stopped:
    // the container is killed, its rootfs unmounted, its cgroup removed.
    let alive = || std::path::Path::new(&format!("/proc/{pid}")).exists();
    wait_until(
        Duration::from_secs(20),
        "the container to be killed",
        || (!alive()).then_some(()),
    );
    let status = wait_until(Duration::from_secs(20), "the task to stop", || {
        let s = d.task_status("victim");
        (s.as_deref() != Some("RUNNING")).then_some(s)
    });
    let _ = d.ctr("default").args(["task", "delete", "victim"]).output();
    ok(d.ctr("default").args(["container", "delete", "victim"]));
    // A SIGKILLed shim cannot remove its socket, and containerd 1.6 removes it only when it
    // next starts a shim of that id: recorded, then removed here.
    let socket = support::cleanup::shim_socket(&d.layout.address, "default", "victim");
    let socket_left = socket.exists();
    let _ = std::fs::remove_file(&socket);
    answers::check(
        h,
        "ctr_killed_shim",
        &json!({"container_killed": true, "task_after": status, "socket_left": socket_left}),
    );
    // The daemon's end checks that nothing is left: processes, mounts, cgroups, sockets.
    d.shutdown();
}

/// `ctr run --log-uri`: a `file://` URI gets both streams; a `binary://` URI starts the logging
/// program with the container's stdout at fd 3, its stderr at 4, a ready pipe at 5, the query as
/// arguments and the id and namespace in its environment; it has finished when `ctr run --rm`
/// returns (the file's lines may come a moment later). Plain assertions, the same for both
/// handlers (runc's shim is the reference).
fn ctr_log_uris(h: &Handler) {
    let d = daemon(h);
    let dir = d.layout.dir.join("logs");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file.log");
    let out = ok(&mut d.ctr_run(
        h,
        "tofile",
        &["--rm", "--log-uri", &format!("file://{}", file.display())],
        &["sh", "-c", "echo to-out; echo to-err >&2"],
    ));
    assert_eq!(out, "");
    // runc's shim copies the two streams into the file in goroutines that may still be
    // writing when `ctr run --rm` returns (the suite saw "to-err" missing at that moment about
    // one run in four): both lines within a few seconds, in any order.
    let read = || {
        let mut lines: Vec<String> = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let deadline = std::time::Instant::now() + podshim_tests::scaled(Duration::from_secs(5));
    while read().len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = read();
    if h.name == "runc" && lines.len() < 2 {
        // The reference is not lossless: Debian's containerd-shim-runc-v2 (1.6.20) has lost a
        // line for good under load (CI saw "to-err" still missing after the 5 s wait), its copy
        // being cut off when `ctr run --rm` deletes the task. What it wrote must still be ours;
        // podshim's shim is held to both lines.
        eprintln!("runc's shim lost a log line (known, under load): {lines:?}");
        assert!(
            lines.iter().all(|l| l == "to-err" || l == "to-out"),
            "{lines:?}"
        );
    } else {
        assert_eq!(lines, ["to-err", "to-out"]);
    }

    // Ignores SIGTERM (runc's shim sends one at delete) so that what it read is written out.
    let script = dir.join("logger.sh");
    let log = dir.join("binary.log");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap '' TERM\nexec 5>&-\n{{ echo \"$CONTAINER_NAMESPACE/$CONTAINER_ID $*\"; \
             sed 's/^/out: /' <&3; sed 's/^/err: /' <&4; }} > {}.tmp\nmv {0}.tmp {0}\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // One pair: containerd's runc shim passes the pairs in Go's random map order.
    let uri = format!("binary://{}?tag=t1", script.display());
    let run = d
        .ctr_run(
            h,
            "tobinary",
            &["--rm", "--log-uri", &uri],
            &["sh", "-c", "echo one; echo two; echo bad >&2; exit 3"],
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3), "{:?}", text(&run));
    let got = wait_until(Duration::from_secs(15), "the logger to finish", || {
        std::fs::read_to_string(&log).ok()
    });
    assert_eq!(
        got,
        "default/tobinary tag t1\nout: one\nout: two\nerr: bad\n"
    );
    // No logger is left running.
    let script_name = script.display().to_string();
    wait_until(Duration::from_secs(15), "the logger to exit", || {
        let running = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&script_name))
        });
        (!running).then_some(())
    });
    d.shutdown();
}
