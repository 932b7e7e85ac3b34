//! `podshim exec` end to end, against Pods started with `run -d`: exit codes (128+N for a
//! signal), separate stdout and stderr, `-i`, the container's user, environment, working
//! directory, network, mount namespace and cgroup, a real terminal with `-t`, kubectl's errors,
//! and a killed `podshim exec` taking its command with it.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use podshim_tests::*;

const SUITE: u32 = 11;
const T: Duration = Duration::from_secs(60);

/// `podshim exec ARGS...` with `input` on its stdin (or /dev/null).
fn exec(inst: &Instance, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut child = inst
        .command()
        .arg("exec")
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start podshim exec");
    if let Some(data) = input {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(data).unwrap();
    }
    wait_output(child, T)
}

/// `sh -c SCRIPT` in container `c` of `pod`.
fn sh(inst: &Instance, pod: &str, c: &str, script: &str) -> Output {
    exec(inst, &["-c", c, pod, "--", "sh", "-c", script], None)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A shell command line running podshim with the instance's global options.
fn podshim_line(inst: &Instance, args: &str) -> String {
    let d = inst.dir.display();
    format!(
        "{} --root {} --state {} --bridge {} --subnet {} --log-root {d}/logs {args}",
        podshim_bin().display(),
        inst.root.display(),
        inst.state.display(),
        inst.bridge,
        inst.subnet,
    )
}

/// Run `line` under `script` (util-linux), which gives it a pseudo-terminal as stdin, stdout
/// and stderr, the way a user's terminal would; `input` is typed into that terminal.
fn on_terminal(line: &str, input: &[u8]) -> Output {
    let mut child = Command::new("script")
        .args(["-qec", line, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1) from util-linux");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    // Leave stdin open until the command is done: at EOF script may end the session.
    let out = wait_output(child, T);
    drop(stdin);
    out
}

fn pod_of(inst: &Instance, name: &str, u: &str, containers: &str, volumes: &str) -> String {
    let yaml = pod(name, u, "Never", containers, volumes);
    let out = inst.detach(&yaml);
    ok(&out);
    yaml
}

/// The processes of a container's cgroup (pids hierarchy, or the cgroup2 tree).
fn cgroup_procs(u: &str, c: &str) -> Vec<u32> {
    let rel = podshim_tests::container_cgroup_of(&podshim_tests::cgroup_driver(&[]), u, c);
    let p = cgroup_dir("pids", &rel).join("cgroup.procs");
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn exec_runs_in_the_containers_namespaces_cgroup_user_env_and_cwd() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("ex");
    let a = container(
        "a",
        "echo from-the-container > /tmp/rootfs-file; echo shared > /data/volume-file; exec sleep 3600",
        "    workingDir: /work\n    env: [{name: GREETING, value: hello}]\n    securityContext: {runAsUser: 1000, runAsGroup: 3000}\n    volumeMounts: [{name: data, mountPath: /data}]\n",
    );
    pod_of(
        &inst,
        &name,
        &u,
        &a,
        "  volumes: [{name: data, emptyDir: {}}]\n",
    );
    let v = inst.wait_for(&name, T, "the container's files", |_| {
        code(&sh(&inst, &name, "a", "test -f /data/volume-file")) == 0
    });
    let pod_ip = v["status"]["podIP"].as_str().unwrap().to_string();

    // Exit codes, stdout and stderr apart; `-c` may be left out with one container.
    let o = exec(
        &inst,
        &[&name, "--", "sh", "-c", "echo out; echo err >&2; exit 7"],
        None,
    );
    assert_eq!(code(&o), 7, "{}", stderr(&o));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert_eq!(code(&sh(&inst, &name, "a", "kill -9 $$")), 128 + 9);
    assert_eq!(code(&sh(&inst, &name, "a", "kill -TERM $$")), 128 + 15);
    let o = exec(&inst, &[&name, "--", "no-such-command"], None);
    assert_eq!(code(&o), 126, "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-command"), "{}", stderr(&o));

    // -i passes stdin; without it stdin is /dev/null.
    let o = exec(
        &inst,
        &["-i", &name, "--", "cat"],
        Some(b"line 1\nline 2\n"),
    );
    ok(&o);
    assert_eq!(stdout(&o), "line 1\nline 2\n");
    let o = exec(&inst, &[&name, "--", "cat"], Some(b"ignored\n"));
    ok(&o);
    assert_eq!(stdout(&o), "");

    // The container's user, groups, environment and working directory.
    let o = sh(
        &inst,
        &name,
        "a",
        "id -u; id -g; echo $GREETING; pwd; echo $HOSTNAME",
    );
    ok(&o);
    assert_eq!(
        stdout(&o).lines().collect::<Vec<_>>(),
        ["1000", "3000", "hello", "/work", name.as_str()]
    );

    // The Pod's network and hostname, the container's mount namespace (root fs and emptyDir).
    let o = sh(
        &inst,
        &name,
        "a",
        "hostname; ip -o -4 addr show dev eth0; cat /tmp/rootfs-file /data/volume-file",
    );
    ok(&o);
    let out = stdout(&o);
    let lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(lines[0], name);
    assert_eq!(
        ipv4_of(&lines[1..2]).as_deref(),
        Some(pod_ip.as_str()),
        "{out}"
    );
    assert_eq!(lines[2..], ["from-the-container", "shared"]);

    // The container's PID namespace (its PID 1 is the container's command) and cgroup.
    let o = sh(
        &inst,
        &name,
        "a",
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup",
    );
    ok(&o);
    let out = stdout(&o);
    let (first, rest) = out.split_once('\n').unwrap();
    assert_eq!(first.trim(), "sleep 3600");
    let (mine, init) = rest.split_once("---\n").unwrap();
    assert_eq!(
        mine, init,
        "the exec'd process is not in the container's cgroup"
    );
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // cgroup v2: the container's private cgroup namespace shows its own cgroup as the root
        // (its membership is checked from the host below).
        assert_eq!(mine.trim(), "0::/", "cgroups:\n{mine}");
    } else {
        assert!(
            mine.contains(&format!(
                ":/{}",
                podshim_tests::container_cgroup_of(&podshim_tests::cgroup_driver(&[]), &u, "a")
            )),
            "cgroups:\n{mine}"
        );
    }

    // Nothing of the execs is left in the container's runtime state.
    let runtime = inst.state.join("runtime").join(format!("{u}-a"));
    let left: Vec<String> = std::fs::read_dir(&runtime)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("tenant-") || n.starts_with("exec-"))
        .collect();
    assert!(left.is_empty(), "left in {}: {left:?}", runtime.display());
    // Only the container's own command is left in its cgroup.
    let procs = cgroup_procs(&u, "a");
    assert_eq!(
        procs.len(),
        1,
        "{:?}",
        procs.iter().map(|p| cmdline(*p)).collect::<Vec<_>>()
    );

    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn exec_t_gives_a_real_terminal_and_restores_the_callers() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("tty");
    pod_of(&inst, &name, &u, &container("a", "exec sleep 3600", ""), "");

    // A terminal: `tty`, `test -t`, the caller's window size; the caller's mode is restored.
    let line = format!(
        "stty rows 33 cols 111; stty -g; {}; echo \"exit=$?\"; stty -g",
        podshim_line(
            &inst,
            &format!("exec -t {name} -- sh -c 'tty; test -t 0 && test -t 1 && echo is-a-tty; stty size; exit 3'")
        )
    );
    let o = on_terminal(&line, b"");
    let out = stdout(&o).replace('\r', "");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 6, "{out}\n{}", stderr(&o));
    let before = lines[0];
    assert!(lines[1].starts_with("/dev/pts/"), "{out}");
    assert_eq!(lines[2], "is-a-tty", "{out}");
    assert_eq!(lines[3], "33 111", "{out}");
    assert_eq!(lines[4], "exit=3", "{out}");
    assert_eq!(
        lines[5], before,
        "the terminal's mode was not restored:\n{out}"
    );

    // -it: what is typed reaches the command through the terminal (raw mode: the container's
    // terminal echoes and ends lines).
    let line = podshim_line(
        &inst,
        &format!("exec -it {name} -- sh -c 'read a; echo \"got:$a\"; exit 5'"),
    );
    let o = on_terminal(&line, b"typed text\r");
    assert_eq!(code(&o), 5, "{}\n{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("got:typed text"), "{}", stdout(&o));

    // Without -t the command has no terminal, even when podshim has one.
    let line = podshim_line(
        &inst,
        &format!("exec {name} -- sh -c 'test -t 0 || test -t 1 || echo no-tty'"),
    );
    let o = on_terminal(&line, b"");
    assert!(stdout(&o).contains("no-tty"), "{}", stdout(&o));

    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn exec_errors_name_the_pod_and_container() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("two");
    let containers = format!(
        "{}{}",
        container("main", "exec sleep 3600", ""),
        container("done", "true", "")
    );
    pod_of(&inst, &name, &u, &containers, "");
    inst.wait_for(&name, T, "container done exits", |v| {
        v["status"]["containerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "done" && c["state"]["terminated"].is_object())
    });

    let o = exec(&inst, &[&name, "--", "true"], None);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o).trim(),
        format!("podshim: a container name must be specified for pod {name}, choose one of: [main done]")
    );
    let o = exec(&inst, &["-c", "nope", &name, "--", "true"], None);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("container nope is not valid for pod {name}")),
        "{}",
        stderr(&o)
    );
    let o = exec(&inst, &["-c", "done", &name, "--", "true"], None);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains(&format!("container done in pod {name} is not running")),
        "{}",
        stderr(&o)
    );
    ok(&exec(&inst, &["-c", "main", &name, "--", "true"], None));
    let o = exec(&inst, &["-c", "main", "no-such-pod", "--", "true"], None);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("no-such-pod"), "{}", stderr(&o));

    // A stopped Pod.
    ok(&inst.podshim(&["stop", &name], T));
    let o = exec(&inst, &["-c", "main", &name, "--", "true"], None);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("cannot exec into a container in a completed pod; current phase is"),
        "{}",
        stderr(&o)
    );

    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_killed_exec_takes_its_command_with_it_and_signals_are_forwarded() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let name = inst.name("kill");
    pod_of(&inst, &name, &u, &container("a", "exec sleep 3600", ""), "");

    // SIGKILL to `podshim exec` (a probe timeout): the command must not stay behind.
    let mut child = inst
        .command()
        .args(["exec", &name, "--", "sleep", "4242"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + T;
    let exec_pid = loop {
        if let Some(p) = cgroup_procs(&u, "a")
            .into_iter()
            .find(|p| cmdline(*p).trim() == "sleep 4242")
        {
            break p;
        }
        assert!(Instant::now() < deadline, "the exec'd sleep never appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + podshim_tests::scaled(Duration::from_secs(5));
    while cgroup_procs(&u, "a").contains(&exec_pid) {
        assert!(
            Instant::now() < deadline,
            "the exec'd command {exec_pid} outlived its podshim exec"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // SIGTERM to `podshim exec` goes to the command; podshim exits with the command's code.
    let mut child = inst
        .command()
        .args([
            "exec",
            &name,
            "--",
            "sh",
            "-c",
            "trap 'exit 9' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // "ready" once the trap is set (on a slow host the sh is seen in the cgroup well before).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    term(&child);
    let o = wait_output(child, T);
    assert_eq!(code(&o), 9, "{}", stderr(&o));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest, "", "nothing after ready");

    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}
