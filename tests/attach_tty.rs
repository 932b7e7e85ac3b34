//! End-to-end tests of `tty: true` and of `podshim attach` following output: a container with a
//! terminal gets a pseudo-terminal of its own (`/dev/pts/0` in its devpts), whose master side its
//! supervisor keeps; `podshim attach -i -t` relays a terminal to it (raw mode, the window size
//! at attach and at SIGWINCH, Ctrl-P Ctrl-Q to detach); everything a terminal carries is logged
//! as `stdout`, as the kubelet logs it. Without a terminal, `attach` follows stdout and stderr
//! apart, live. `podshim attach` exits with the container's exit code when the run ends while
//! attached (128 + the signal for a signal's death), as `podman attach` and `kubectl run -i`
//! do, 0 on a detach, and refuses a container that is not running; after a `stdinOnce` stdin
//! was used, later attaches follow the output only, as under containerd's CRI.
//!
//! The terminal the test types into is a pty pair the test makes (nix's `openpty`): podshim gets
//! its slave side as stdin, stdout and stderr, the test reads and writes the master side.
//!
//! Kubernetes' documentation ("Get a Shell to a Running Container", `kubectl attach -it`):
//! `tty` allocates a TTY for the container (it needs `stdin` to be typed into); `stdinOnce`
//! closes stdin after the first attach session ends, which containerd's CRI does only without a
//! terminal (tested in `attach.rs`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::{openpty, Winsize};
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{tcgetattr, LocalFlags};
use nix::unistd::Pid;
use podshim_engine::sys::{set_window_size, WinSize};
use podshim_tests::{container, ok, pod, scaled, stderr, stdout, uid, wait_output, Instance};

const SUITE: u32 = 35;
const T: Duration = Duration::from_secs(60);

/// A pty pair as a user's terminal: the test holds the master, podshim gets the slave.
struct Terminal {
    master: File,
    slave: OwnedFd,
    /// What the master has read so far (terminal output, `\r\n` line ends).
    seen: Vec<u8>,
}

impl Terminal {
    fn new(rows: u16, cols: u16) -> Terminal {
        let size = Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(Some(&size), None).expect("openpty");
        Terminal {
            master: File::from(pty.master),
            slave: pty.slave,
            seen: Vec::new(),
        }
    }

    /// `podshim attach ARGS` on this terminal, once it has attached (see [`Self::wait_raw`]).
    fn attach(&self, inst: &Instance, args: &[&str]) -> Child {
        let fd = || Stdio::from(self.slave.try_clone().unwrap());
        let child = inst
            .command()
            .arg("attach")
            .args(args)
            .stdin(fd())
            .stdout(fd())
            .stderr(fd())
            .spawn()
            .expect("start podshim attach");
        self.wait_raw();
        child
    }

    /// Ctrl-P Ctrl-Q: the attach `child` on this terminal detaches and exits 0.
    fn detach(&mut self, child: Child) {
        self.type_in(b"\x10\x11");
        let out = wait_exit(child);
        assert!(out.status.success(), "{:?}\n{}", out.status, self.text());
    }

    fn raw(&self) -> bool {
        !tcgetattr(self.slave.as_fd())
            .unwrap()
            .local_flags
            .contains(LocalFlags::ICANON)
    }

    /// Wait until podshim has put the terminal in raw mode (it has attached by then).
    fn wait_raw(&self) {
        let deadline = Instant::now() + T;
        while !self.raw() {
            assert!(
                Instant::now() < deadline,
                "podshim attach never set raw mode"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn type_in(&mut self, text: &[u8]) {
        self.master.write_all(text).unwrap();
    }

    /// Read the terminal until a whole line equal to `line` came (in at most `within`).
    fn wait_line(&mut self, line: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let text = String::from_utf8_lossy(&self.seen).replace('\r', "");
            if text.lines().any(|l| l == line) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let ms = left.as_millis().min(1000) as u16;
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::from(ms)).unwrap_or(0) > 0 {
                let mut buf = [0u8; 4096];
                match self.master.read(&mut buf) {
                    Ok(n) if n > 0 => self.seen.extend_from_slice(&buf[..n]),
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).to_string()
    }
}

fn wait_exit(child: Child) -> std::process::Output {
    wait_output(child, T)
}

/// Stop an attach that follows a container still running (the user's Ctrl-C).
fn end(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn attach_it_gives_a_shell_its_terminal_size_resizes_and_detaches() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("shell");
    let c = container("sh", "exec sh", "    stdin: true\n    tty: true\n");
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));

    let mut term = Terminal::new(33, 111);
    let before = tcgetattr(term.slave.as_fd()).unwrap();
    let child = term.attach(&inst, &["-i", "-t", &name]);
    term.type_in(b"tty; stty size; echo hi\n");
    for line in ["/dev/pts/0", "33 111", "hi"] {
        assert!(term.wait_line(line, T), "no {line:?} in:\n{}", term.text());
    }

    // A resize of the local terminal reaches the container's at SIGWINCH.
    set_window_size(
        term.master.as_fd(),
        WinSize {
            rows: 40,
            cols: 120,
        },
    )
    .unwrap();
    kill(Pid::from_raw(child.id() as i32), Signal::SIGWINCH).unwrap();
    let resized = (0..20).any(|_| {
        term.type_in(b"stty size\n");
        term.wait_line("40 120", Duration::from_millis(500))
    });
    assert!(resized, "the resize did not arrive:\n{}", term.text());

    // Ctrl-P Ctrl-Q detaches; the terminal's mode is restored; the shell runs on.
    term.detach(child);
    let after = tcgetattr(term.slave.as_fd()).unwrap();
    assert_eq!(after.local_flags, before.local_flags, "mode not restored");
    assert!(!term.raw());
    let v = inst.inspect(&name);
    assert!(
        v["status"]["containerStatuses"][0]["state"]["running"].is_object(),
        "{v:#}"
    );

    // A second attach finds the same shell (no stdinOnce).
    let mut term = Terminal::new(24, 80);
    let child = term.attach(&inst, &["-it", &name]);
    term.type_in(b"echo again-$((40+2))\n");
    assert!(term.wait_line("again-42", T), "{}", term.text());
    term.detach(child);

    // The shell's `exit 7` ends the run while attached: attach exits 7, as `podman attach`.
    let mut term = Terminal::new(24, 80);
    let child = term.attach(&inst, &["-it", &name]);
    term.type_in(b"exit 7\n");
    let out = wait_exit(child);
    assert_eq!(out.status.code(), Some(7), "{}", term.text());
    assert!(!term.raw(), "mode not restored");

    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn stdin_once_with_a_tty_keeps_the_terminal_and_the_log_is_all_stdout() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("once");
    let c = container(
        "sh",
        "exec sh",
        "    stdin: true\n    stdinOnce: true\n    tty: true\n",
    );
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));

    let mut term = Terminal::new(24, 80);
    let child = term.attach(&inst, &["-i", "-t", &name]);
    term.type_in(b"echo to-out; echo to-err >&2\n");
    assert!(term.wait_line("to-err", T), "{}", term.text());
    term.detach(child);

    // With a terminal, stdinOnce leaves it open (containerd's CRI: `StdinOnce && !Tty`): the
    // shell runs on, a second attach reaches it, and its `exit` ends the run and the attach.
    let mut term = Terminal::new(24, 80);
    let child = term.attach(&inst, &["-it", &name]);
    term.type_in(b"echo second; exit 0\n");
    let out = wait_exit(child);
    assert!(out.status.success(), "{}", term.text());
    assert!(term.wait_line("second", T), "{}", term.text());
    assert!(!term.raw(), "mode not restored");
    let v = inst.wait_for(&name, T, "the Pod to succeed", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    assert_eq!(
        v["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        0
    );
    let again = inst.podshim(&["attach", "-i", &name], T);
    assert!(!again.status.success(), "{}", stdout(&again));

    // The CRI log: one stream, stdout (stderr too went to the terminal), lines as the terminal
    // ended them (`\r\n`: the `\r` stays in the content).
    let log = podshim_kube::logs::file(
        &podshim_kube::logs::pod_dir(&inst.dir.join("logs"), "default", &name, &u),
        "sh",
        0,
    );
    let text = std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{log:?}: {e}"));
    // Split on `\n` alone: `str::lines` would take the `\r` off too.
    let entries: Vec<(&str, &str, &str)> = text
        .split_terminator('\n')
        .map(|l| {
            let mut f = l.splitn(4, ' ');
            let _time = f.next().unwrap();
            (f.next().unwrap(), f.next().unwrap(), f.next().unwrap_or(""))
        })
        .collect();
    assert!(entries.iter().all(|(s, _, _)| *s == "stdout"), "{text}");
    for want in ["to-out\r", "to-err\r"] {
        assert!(
            entries.iter().any(|(_, tag, l)| *tag == "F" && *l == want),
            "no {want:?} in:\n{text}"
        );
    }
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

/// Lines of `from` sent to a channel as they come.
fn lines(from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(from).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    rx
}

fn wait_for_line(rx: &mpsc::Receiver<String>, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + T;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if pred(&l) => return l,
            Ok(_) => {}
            Err(e) => panic!("no such line: {e}"),
        }
    }
}

#[test]
fn attach_follows_output_live_with_and_without_a_terminal() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("follow");
    let c = container(
        "plain",
        "i=0; while true; do echo out$i; echo err$i >&2; i=$((i+1)); sleep 0.2; done",
        "",
    ) + &container(
        "term",
        "while true; do tty; sleep 0.2; done",
        "    tty: true\n",
    );
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));

    // Without a terminal: stdout and stderr apart, as they come (not what came before).
    let (child, out, err) = follow(&inst, &name, "plain", false);
    let first = wait_for_line(&out, |l| l.starts_with("out"));
    let n: u32 = first[3..].parse().unwrap();
    wait_for_line(&out, |l| l == format!("out{}", n + 2));
    wait_for_line(&err, |l| l.starts_with("err"));
    assert!(!out.try_iter().any(|l| l.starts_with("err")));
    end(child);

    // tty: true without stdin: the container has its terminal, attach follows it; -i is refused.
    let mut child = inst
        .command()
        .args(["attach", &name, "-c", "term"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut raw = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    // As the terminal ended the line (a pty's output processing makes `\n` `\r\n`).
    while !String::from_utf8_lossy(&seen).contains("/dev/pts/0\r\n") {
        let mut buf = [0u8; 256];
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0, "attach ended: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    end(child);
    let refused = inst.podshim(&["attach", "-i", &name, "-c", "term"], T);
    assert!(
        stderr(&refused).contains("does not read stdin"),
        "{}",
        stderr(&refused)
    );

    // The supervisor dropped both attaches: the containers run on, their output still logged.
    let v = inst.inspect(&name);
    for i in 0..2 {
        assert!(
            v["status"]["containerStatuses"][i]["state"]["running"].is_object(),
            "{v:#}"
        );
    }
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_restarted_tty_container_gets_a_new_terminal() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let name = inst.name("again");
    // The first run ends at once; the second runs on.
    let c = container(
        "t",
        "tty; if [ -e /tmp/ran ]; then exec sleep 3600; fi; touch /tmp/ran; exit 1",
        "    tty: true\n",
    );
    let c = c + "    volumeMounts: [{name: tmp, mountPath: /tmp}]\n";
    let volumes = "  volumes: [{name: tmp, emptyDir: {}}]\n";
    ok(&inst.detach(&pod(&name, &u, "OnFailure", &c, volumes)));
    inst.wait_for(&name, T, "the restart to run", |v| {
        let s = &v["status"]["containerStatuses"][0];
        s["restartCount"] == 1 && s["state"]["running"].is_object()
    });
    let dir = podshim_kube::logs::pod_dir(&inst.dir.join("logs"), "default", &name, &u);
    for run in 0..2 {
        let log = podshim_kube::logs::file(&dir, "t", run);
        let deadline = Instant::now() + T;
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains(" stdout F /dev/pts/0\r\n") {
                break;
            }
            assert!(Instant::now() < deadline, "run {run}: {text:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

/// `podshim attach` without `-i` on `container`, its stdout and stderr as line channels.
fn follow(
    inst: &Instance,
    pod: &str,
    container: &str,
    input: bool,
) -> (Child, mpsc::Receiver<String>, mpsc::Receiver<String>) {
    let mut args = vec!["attach", pod, "-c", container];
    if input {
        args.push("-i");
    }
    let mut child = inst
        .command()
        .args(&args)
        .stdin(if input { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    (child, out, err)
}

#[test]
fn attach_exits_with_the_exit_code_and_refuses_a_container_not_running() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(5);
    let name = inst.name("codes");
    let c = container("done", "exit 0", "")
        + &container(
            "code",
            "read x; echo got $x; exit 3",
            "    stdin: true\n    stdinOnce: true\n",
        )
        // PID 1 of its namespace with no handler: SIGTERM is ignored, the stop ends in SIGKILL.
        + &container("ticker", "while true; do echo tick; sleep 0.2; done", "");
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));
    inst.wait_for(&name, T, "container done to complete", |v| {
        v["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    });

    // A container that has ended: refused, saying which and how it ended.
    let refused = inst.podshim(&["attach", &name, "-c", "done"], T);
    assert_eq!(refused.status.code(), Some(1));
    let want = format!(
        "cannot attach to container done of pod {name}: it is not running (terminated with exit code 0 (Completed))"
    );
    assert!(stderr(&refused).contains(&want), "{}", stderr(&refused));

    // The run ends while attached: attach exits with its code.
    let mut child = inst
        .command()
        .args(["attach", &name, "-c", "code", "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hi\n").unwrap();
    let out = wait_exit(child);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "got hi\n");

    // A death by a signal: 128 + the signal (SIGKILL after the grace period of `stop`).
    let (child, out, _err) = follow(&inst, &name, "ticker", false);
    wait_for_line(&out, |l| l == "tick");
    ok(&inst.podshim(&["stop", "--grace-period", "1", &name], T));
    let done = wait_exit(child);
    assert_eq!(done.status.code(), Some(137), "{}", stderr(&done));

    // The Pod has completed: kubectl's words, with the Pod and the container.
    let refused = inst.podshim(&["attach", &name, "-c", "ticker"], T);
    assert_eq!(refused.status.code(), Some(1));
    let want = format!(
        "cannot attach a container in a completed pod; current phase is Failed (pod {name}, container ticker: terminated with exit code 137 (Error))"
    );
    assert!(stderr(&refused).contains(&want), "{}", stderr(&refused));
    ok(&inst.podshim(&["rm", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn after_stdin_once_was_used_later_attaches_follow_the_output() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(6);
    let name = inst.name("used");
    let c = container(
        "once",
        "cat; i=0; while true; do echo after$i; i=$((i+1)); sleep 0.2; done",
        "    stdin: true\n    stdinOnce: true\n",
    );
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));

    // The first attach's input, then its end: cat sees EOF, the loop starts.
    let (mut first, out, _err) = follow(&inst, &name, "once", true);
    first.stdin.take().unwrap().write_all(b"first\n").unwrap();
    wait_for_line(&out, |l| l == "first");
    wait_for_line(&out, |l| l.starts_with("after"));
    end(first);

    // A later attach follows the output (Kubernetes: `kubectl attach` still streams it).
    let (second, out, _err) = follow(&inst, &name, "once", false);
    wait_for_line(&out, |l| l.starts_with("after"));
    end(second);

    // With -i: told that stdin is closed, then the output all the same; its input goes nowhere.
    let (mut third, out, err) = follow(&inst, &name, "once", true);
    let warning = wait_for_line(&err, |l| l.starts_with("warning:"));
    assert!(
        warning.contains(&format!("stdin of container once of pod {name} was closed")),
        "{warning}"
    );
    third
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"ignored\n")
        .unwrap();
    wait_for_line(&out, |l| l.starts_with("after"));
    end(third);

    let v = inst.inspect(&name);
    assert!(
        v["status"]["containerStatuses"][0]["state"]["running"].is_object(),
        "{v:#}"
    );
    let logs = inst.podshim(&["logs", &name], T);
    assert!(
        stdout(&logs).starts_with("first\nafter0\n"),
        "{}",
        stdout(&logs)
    );
    assert!(!stdout(&logs).contains("ignored"), "{}", stdout(&logs));
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

/// An attach that connects while the run ends (it waits in the listen queue of a stopped
/// supervisor, then the container is killed) still exits with the run's code: from the exit
/// frame, or from the record when the supervisor ended the run before taking the attach.
#[test]
fn an_attach_racing_the_end_of_the_run_still_exits_with_its_code() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(7);
    let name = inst.name("race");
    let c = container("c", "exec sleep 3600", "");
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));
    inst.wait_for(&name, T, "the container to run", |v| {
        v["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    let sup = Pid::from_raw(inst.supervisor_pid(&name).expect("a supervisor") as i32);
    let procs = podshim_tests::cgroup_dir("pids", &inst.container_cgroup(&u, "c"));
    let init: i32 = std::fs::read_to_string(procs.join("cgroup.procs"))
        .unwrap()
        .lines()
        .next()
        .expect("the container's init")
        .parse()
        .unwrap();
    kill(sup, Signal::SIGSTOP).unwrap();
    let (child, _out, _err) = follow(&inst, &name, "c", false);
    // Time for the attach to start and connect (scaled: a podshim start is seconds under
    // emulation, and an attach that comes after the exit is refused, which is not this race).
    std::thread::sleep(scaled(Duration::from_millis(500)));
    kill(Pid::from_raw(init), Signal::SIGKILL).unwrap();
    std::thread::sleep(scaled(Duration::from_millis(200)));
    kill(sup, Signal::SIGCONT).unwrap();
    let out = wait_exit(child);
    assert_eq!(out.status.code(), Some(137), "{}", stderr(&out));
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}
