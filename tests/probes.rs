//! Probes, lifecycle hooks and termination messages, end to end in detached Pods: an HTTP
//! liveness probe against busybox httpd restarts the container when the served file
//! disappears; an exec liveness probe runs inside the container; a readiness probe flips Ready
//! (startup probe first); preStop runs before the stop signal; a failing (exec) postStart kills
//! the container; terminationMessagePath and FallbackToLogsOnError end up in
//! `terminated.message`; gRPC startup, readiness and liveness probes follow a health server
//! (Debian's python3-h2, run in the Pod's network namespace since busybox has none) and fail where
//! nothing listens.

use std::time::{Duration, Instant};

use podshim_tests::*;

const SUITE: u32 = 12;
const T: Duration = Duration::from_secs(60);

fn status<'a>(pod: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == name)
        .unwrap_or(&serde_json::Value::Null)
}

fn condition(pod: &serde_json::Value, kind: &str) -> String {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// A busybox container serving /www on :8080 after running `setup`.
fn web(name: &str, setup: &str, extra: &str) -> String {
    container(
        name,
        &format!("mkdir -p /www/cgi-bin; {setup}; exec httpd -f -p 8080 -h /www"),
        &format!("    volumeMounts: [{{name: www, mountPath: /www}}]\n{extra}"),
    )
}

const WWW: &str = "  volumes: [{name: www, emptyDir: {}}]\n";

#[test]
fn an_http_liveness_probe_restarts_the_container_when_the_file_disappears() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("live");
    // The first run removes the served file after 2 s; later runs keep it. The startup probe
    // holds the liveness probe back until httpd listens: a (re)start slower than the liveness
    // probe's two periods (an emulated host's) is no failure of the container.
    let setup = "echo ok > /www/index.html; if [ ! -e /www/.once ]; then touch /www/.once; (sleep 2; rm /www/index.html) & fi";
    let probe = format!(
        "    startupProbe:\n      tcpSocket: {{port: web}}\n      periodSeconds: 1\n      timeoutSeconds: {to}\n      failureThreshold: 60\n    livenessProbe:\n      httpGet: {{path: /index.html, port: web}}\n      periodSeconds: 1\n      timeoutSeconds: {to}\n      failureThreshold: 2\n    ports: [{{name: web, containerPort: 8080}}]\n",
        to = probe_timeout()
    );
    let yaml = pod(&name, &u, "Always", &web("h", setup, &probe), WWW);
    ok(&inst.detach(&yaml));
    let v = inst.wait_for(&name, T, "a restart by the liveness probe", |v| {
        status(v, "h")["restartCount"] == 1 && status(v, "h")["state"]["running"].is_object()
    });
    // httpd (PID 1) ignores SIGTERM: the kill came after the grace period.
    let last = &status(&v, "h")["lastState"]["terminated"];
    assert_eq!(last["exitCode"], 137, "{last}");
    // The restarted container keeps its file: ready once its startup probe passes, and no
    // further restarts.
    inst.wait_for(&name, T, "ready after the restart", |v| {
        status(v, "h")["ready"] == true
    });
    std::thread::sleep(scaled(Duration::from_secs(4)));
    let v = inst.inspect(&name);
    assert_eq!(status(&v, "h")["restartCount"], 1, "{}", v["status"]);
    assert_eq!(status(&v, "h")["ready"], true);
    let log = inst.supervisor_log(&name, &u);
    assert!(log.contains("failed liveness probe 2 times"), "{log}");
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_readiness_probe_flips_ready_after_the_startup_probe() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("ready");
    // httpd listens after 1 s (startup probe); /ready exists from 0-3 s and from 6 s on: times
    // the time scale, since the test must see each phase after a container start and a probe
    // period that are that much slower on a slow host.
    let k = time_scale();
    let script = format!(
        "mkdir -p /www; echo ok > /www/ready; (sleep {}; exec httpd -f -p 8080 -h /www) & sleep {t}; rm /www/ready; sleep {t}; echo ok > /www/ready; wait",
        k,
        t = 3.0 * k
    );
    // Probe timeouts of 5 s (scaled), not the default 1 s: a timed-out probe fails, and a
    // probe's own process takes longer than 1 s under emulation.
    let probes = format!(
        "    startupProbe:\n      tcpSocket: {{port: 8080}}\n      periodSeconds: 1\n      timeoutSeconds: {to}\n      failureThreshold: 30\n    readinessProbe:\n      httpGet: {{path: /ready, port: 8080}}\n      periodSeconds: 1\n      timeoutSeconds: {to}\n      failureThreshold: 1\n",
        to = probe_timeout()
    );
    let c = container("r", &script, &probes);
    ok(&inst.detach(&pod(&name, &u, "Always", &c, "")));
    // Right after the start: not started (the startup probe has not passed), not ready.
    let v = inst.inspect(&name);
    assert_eq!(status(&v, "r")["started"], false, "{}", v["status"]);
    assert_eq!(status(&v, "r")["ready"], false, "{}", v["status"]);
    assert_eq!(condition(&v, "Ready"), "False");
    let ready = |want: &'static str| {
        move |v: &serde_json::Value| {
            condition(v, "Ready") == want && condition(v, "ContainersReady") == want
        }
    };
    let v = inst.wait_for(&name, T, "Ready", ready("True"));
    assert_eq!(status(&v, "r")["started"], true);
    assert_eq!(status(&v, "r")["ready"], true);
    let out = inst.podshim(&["ps"], T);
    assert!(stdout(&out).contains(" 1/1 "), "{}", stdout(&out));
    let v = inst.wait_for(&name, T, "not Ready", ready("False"));
    assert_eq!(status(&v, "r")["ready"], false);
    assert_eq!(
        status(&v, "r")["restartCount"],
        0,
        "readiness never restarts"
    );
    let out = inst.podshim(&["ps"], T);
    assert!(stdout(&out).contains(" 0/1 "), "{}", stdout(&out));
    inst.wait_for(&name, T, "Ready again", ready("True"));
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn pre_stop_hooks_run_before_the_stop_signal() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let name = inst.name("prestop");
    // `h`: an httpGet preStop hook runs a CGI script that writes to the container's stdout;
    // `s`: a sleep preStop hook delays its SIGTERM by 2 s.
    let cgi = "printf \"#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho prestop-hook > /proc/1/fd/1\\n\" > /www/cgi-bin/hook; chmod +x /www/cgi-bin/hook; trap \"echo got-term; exit 0\" TERM; httpd -p 8080 -h /www; while true; do sleep 0.1; done";
    let h = container(
        "h",
        &format!("mkdir -p /www/cgi-bin; {cgi}"),
        "    volumeMounts: [{name: www, mountPath: /www}]\n    lifecycle:\n      preStop:\n        httpGet: {path: /cgi-bin/hook, port: 8080}\n",
    );
    let s = container(
        "s",
        "trap \"echo got-term; exit 0\" TERM; while true; do sleep 0.1; done",
        "    lifecycle:\n      preStop:\n        sleep: {seconds: 2}\n",
    );
    // The stop must end well within the grace period (the containers end at their SIGTERM):
    // both stretched by the time scale, as hooks, signals and teardown are that much slower
    // on a slow host.
    let grace = (10.0 * time_scale()).ceil() as u64;
    let yaml = pod(&name, &u, "Always", &format!("{h}{s}"), WWW).replace(
        "terminationGracePeriodSeconds: 1",
        &format!("terminationGracePeriodSeconds: {grace}"),
    );
    ok(&inst.detach(&yaml));
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    ok(&inst.podshim(&["stop", &name], T));
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "the sleep hook took {took:?}"
    );
    assert!(
        took < Duration::from_secs(grace) - Duration::from_secs(1),
        "{took:?} (grace period {grace} s)"
    );
    let out = inst.podshim(&["logs", "-c", "h", &name], T);
    assert_eq!(stdout(&out), "prestop-hook\ngot-term\n");
    let out = inst.podshim(&["logs", "-c", "s", &name], T);
    assert_eq!(stdout(&out), "got-term\n");
    let v = inst.inspect(&name);
    assert_eq!(v["status"]["phase"], "Succeeded", "{}", v["status"]);
    ok(&inst.podshim(&["rm", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn a_failing_post_start_hook_kills_the_container() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let name = inst.name("poststart");
    let c = container(
        "p",
        "trap \"exit 9\" TERM; while true; do sleep 0.1; done",
        "    lifecycle:\n      postStart:\n        exec: {command: [sh, -c, \"sleep 1; exit 1\"]}\n",
    );
    let out = inst.detach(&pod(&name, &u, "Never", &c, ""));
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("PostStartHookError"),
        "{}",
        stderr(&out)
    );
    let v = inst.wait_for(&name, T, "the container killed", |v| {
        status(v, "p")["state"]["terminated"].is_object()
    });
    assert_eq!(status(&v, "p")["state"]["terminated"]["exitCode"], 9);
    assert_eq!(v["status"]["phase"], "Failed");
    ok(&inst.podshim(&["rm", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn termination_messages_are_reported() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(5);
    let name = inst.name("msg");
    let file = container("file", "echo -n bye > /dev/termination-log; exit 3", "");
    let custom = container(
        "custom",
        "echo -n custom-path > /tmp/msg; exit 0",
        "    terminationMessagePath: /tmp/msg\n",
    );
    let fallback = container(
        "fallback",
        "echo first; echo boom; exit 1",
        "    terminationMessagePolicy: FallbackToLogsOnError\n",
    );
    let yaml = pod(&name, &u, "Never", &format!("{file}{custom}{fallback}"), "");
    let _ = inst.detach(&yaml);
    let v = inst.wait_for(&name, T, "all terminated", |v| {
        v["status"]["phase"] == "Failed"
    });
    let msg = |c: &str| status(&v, c)["state"]["terminated"]["message"].clone();
    assert_eq!(msg("file"), "bye");
    assert_eq!(status(&v, "file")["state"]["terminated"]["exitCode"], 3);
    assert_eq!(msg("custom"), "custom-path");
    assert_eq!(msg("fallback"), "first\nboom\n");
    ok(&inst.podshim(&["rm", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn an_exec_liveness_probe_runs_inside_the_container() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(6);
    let name = inst.name("execprobe");
    // Healthy while /tmp/healthy exists (in the container's own root filesystem, which the
    // probe can only see from inside); the first run removes it after 2 s. A probe that times
    // out fails too: 5 s, not the default 1 s, which `podshim exec` of a debug build can take on
    // a slow or emulated host (scripts/test-in-vm.sh).
    // A startup probe holds the liveness probe back until the file is there (a restart whose
    // shell has not yet made it is no failure of the container); the first run's 2 s scale with
    // the host's slowness, so that the startup probe sees the file before it goes.
    let script = format!(
        "touch /tmp/healthy; if [ ! -e /data/once ]; then touch /data/once; (sleep {}; rm /tmp/healthy) & fi; trap \"exit 0\" TERM; while true; do sleep 0.1; done",
        2.0 * time_scale()
    );
    let probes = format!(
        "    volumeMounts: [{{name: data, mountPath: /data}}]\n    startupProbe:\n      exec: {{command: [test, -e, /tmp/healthy]}}\n      periodSeconds: 1\n      timeoutSeconds: {to}\n      failureThreshold: 60\n    livenessProbe:\n      exec: {{command: [test, -e, /tmp/healthy]}}\n      periodSeconds: 1\n      timeoutSeconds: {to}\n      failureThreshold: 1\n",
        to = probe_timeout()
    );
    let c = container("e", &script, &probes);
    let yaml = pod(
        &name,
        &u,
        "Always",
        &c,
        "  volumes: [{name: data, emptyDir: {}}]\n",
    );
    ok(&inst.detach(&yaml));
    let v = inst.wait_for(&name, T, "a restart by the exec probe", |v| {
        status(v, "e")["restartCount"] == 1 && status(v, "e")["state"]["running"].is_object()
    });
    assert_eq!(status(&v, "e")["lastState"]["terminated"]["exitCode"], 0);
    std::thread::sleep(Duration::from_secs(3));
    let v = inst.inspect(&name);
    assert_eq!(status(&v, "e")["restartCount"], 1, "{}", v["status"]);
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}

/// The gRPC health server of `tests/grpc_health_server.py`, run in a Pod's network namespace
/// (entered from the host, next to the Pod's pause process); stopped by PID when dropped.
struct HealthServer {
    child: std::process::Child,
    /// `<dir>/<service>` (`default` for "") holds the status it answers; `<dir>/calls` lists the
    /// services asked for.
    dir: std::path::PathBuf,
}

impl HealthServer {
    fn start(inst: &Instance, pod: &str, port: u16) -> Self {
        use std::io::BufRead;
        let pattern = format!("pause --hostname {pod} ");
        let deadline = Instant::now() + T;
        let pause = loop {
            let out = std::process::Command::new("pgrep")
                .args(["-f", &pattern])
                .output()
                .unwrap();
            let pid = String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .and_then(|l| l.trim().parse::<u32>().ok());
            if let Some(pid) = pid {
                break pid;
            }
            assert!(Instant::now() < deadline, "no process matching {pattern:?}");
            std::thread::sleep(Duration::from_millis(50));
        };
        let dir = inst.dir.join(format!("grpc-{pod}"));
        std::fs::create_dir_all(&dir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/grpc_health_server.py");
        // Debian's python3 (python3-h2 is installed for it by scripts/install-deps.sh), not
        // whichever python3 is first on PATH.
        let mut child = std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{pause}/ns/net"))
            .args(["/usr/bin/python3", script, &port.to_string()])
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start nsenter");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let server = HealthServer { child, dir };
        assert_eq!(
            line.trim(),
            "listening",
            "the gRPC health server did not start (is python3-h2 installed? scripts/install-deps.sh)"
        );
        server
    }

    fn set(&self, service: &str, status: &str) {
        let name = if service.is_empty() {
            "default"
        } else {
            service
        };
        let tmp = self.dir.join(format!(".{name}"));
        std::fs::write(&tmp, status).unwrap();
        std::fs::rename(tmp, self.dir.join(name)).unwrap();
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("calls"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn stop(&mut self) {
        // nsenter execs python3: the child's PID is the server's.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A probe's `timeoutSeconds` where the default 1 s would time out on a slow host: 5 s, times
/// the time scale.
fn probe_timeout() -> u64 {
    (5.0 * time_scale()).ceil() as u64
}

/// `podshim probe` (what the supervisor runs) with `action` against the Pod's IP, with a timeout
/// of `timeout_ms`.
fn probe_once(inst: &Instance, pod: &str, action: &str, timeout_ms: u32) -> std::process::Output {
    let v = inst.inspect(pod);
    let ip = v["status"]["podIP"].as_str().expect("a Pod IP").to_string();
    let timeout = timeout_ms.to_string();
    inst.podshim(
        &["probe", "--pod-ip", &ip, "--timeout-ms", &timeout, action],
        T,
    )
}

/// A busybox container that only waits (and exits 0 on SIGTERM), with `probes`.
fn idle(name: &str, probes: &str) -> String {
    container(
        name,
        "trap \"exit 0\" TERM; while true; do sleep 0.1; done",
        probes,
    )
}

#[test]
fn grpc_probes_follow_the_health_service() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(7);
    let name = inst.name("grpc");
    // Startup and liveness ask for the server as a whole (""), readiness for service "app".
    // Timeouts of 5 s, not the default 1 s: a timed-out probe fails, and the Python server
    // answers slowly on an emulated host (scripts/test-in-vm.sh).
    let probes = "    ports: [{name: health, containerPort: 9090}]\n    startupProbe:\n      grpc: {port: 9090}\n      periodSeconds: 1\n      timeoutSeconds: 5\n      failureThreshold: 60\n    livenessProbe:\n      grpc: {port: 9090}\n      periodSeconds: 1\n      timeoutSeconds: 5\n      failureThreshold: 2\n    readinessProbe:\n      grpc: {port: 9090, service: app}\n      periodSeconds: 1\n      timeoutSeconds: 5\n      failureThreshold: 1\n"
        .replace("timeoutSeconds: 5", &format!("timeoutSeconds: {}", probe_timeout()));
    let c = idle("g", &probes);
    ok(&inst.detach(&pod(&name, &u, "Always", &c, "")));
    let v = inst.inspect(&name);
    assert_eq!(status(&v, "g")["started"], false, "{}", v["status"]);
    assert_eq!(condition(&v, "Ready"), "False");
    let mut server = HealthServer::start(&inst, &name, 9090);
    server.set("", "SERVING");
    server.set("app", "SERVING");
    let ready = |want: &'static str| {
        move |v: &serde_json::Value| {
            condition(v, "Ready") == want && condition(v, "ContainersReady") == want
        }
    };
    let v = inst.wait_for(&name, T, "Ready", ready("True"));
    assert_eq!(status(&v, "g")["started"], true);
    let out = probe_once(
        &inst,
        &name,
        r#"{"grpc":{"port":9090,"service":"app"}}"#,
        5000,
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // Readiness: "app" NOT_SERVING takes the Pod out of Ready, without a restart.
    server.set("app", "NOT_SERVING");
    let v = inst.wait_for(&name, T, "not Ready", ready("False"));
    assert_eq!(status(&v, "g")["ready"], false);
    let out = probe_once(
        &inst,
        &name,
        r#"{"grpc":{"port":9090,"service":"app"}}"#,
        5000,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        r#"service unhealthy (responded with "NOT_SERVING")"#
    );
    server.set("app", "SERVING");
    let v = inst.wait_for(&name, T, "Ready again", ready("True"));
    assert_eq!(status(&v, "g")["restartCount"], 0, "{}", v["status"]);

    // Liveness: the whole server NOT_SERVING restarts the container (twice in a row).
    server.set("", "NOT_SERVING");
    inst.wait_for(&name, T, "a restart by the liveness probe", |v| {
        status(v, "g")["restartCount"] == 1
    });
    server.set("", "SERVING");
    let v = inst.wait_for(&name, T, "started and Ready after the restart", |v| {
        ready("True")(v) && status(v, "g")["started"] == true
    });
    assert_eq!(status(&v, "g")["restartCount"], 1, "{}", v["status"]);
    assert_eq!(
        status(&v, "g")["lastState"]["terminated"]["exitCode"],
        0,
        "{}",
        v["status"]
    );
    let log = inst.supervisor_log(&name, &u);
    assert!(log.contains("failed liveness probe 2 times"), "{log}");
    // The probes asked for what the manifest says.
    let calls = server.calls();
    assert!(calls.iter().any(|c| c == "app"), "{calls:?}");
    assert!(calls.iter().any(|c| c.is_empty()), "{calls:?}");
    assert!(
        calls.iter().all(|c| c.is_empty() || c == "app"),
        "{calls:?}"
    );
    server.stop();
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn grpc_probes_fail_where_nothing_listens() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(8);
    let name = inst.name("grpcnone");
    // Nothing serves 9091: never Ready, and the liveness probe restarts the container.
    let c = idle(
        "n",
        "    readinessProbe:\n      grpc: {port: 9091}\n      periodSeconds: 1\n    livenessProbe:\n      grpc: {port: 9091}\n      periodSeconds: 1\n      failureThreshold: 2\n",
    );
    ok(&inst.detach(&pod(&name, &u, "Always", &c, "")));
    let v = inst.wait_for(&name, T, "a restart by the liveness probe", |v| {
        status(v, "n")["restartCount"] == 1
    });
    assert_eq!(condition(&v, "Ready"), "False", "{}", v["status"]);
    assert_eq!(status(&v, "n")["ready"], false);
    let out = probe_once(&inst, &name, r#"{"grpc":{"port":9091,"service":""}}"#, 1000);
    assert_eq!(out.status.code(), Some(1));
    let ip = v["status"]["podIP"].as_str().unwrap();
    assert!(
        stderr(&out).starts_with(&format!(
            "timeout: failed to connect service \"{ip}:9091\" within 1s"
        )),
        "{}",
        stderr(&out)
    );
    let v = inst.inspect(&name);
    assert_eq!(condition(&v, "Ready"), "False", "{}", v["status"]);
    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    inst.assert_clean(&[&u]);
}
