//! End-to-end tests of init containers and sidecars (init containers with `restartPolicy:
//! Always`): their order, their restarts, a failing one under `restartPolicy: Never`, and the
//! stop order of app containers and sidecars.

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use podshim_tests::{container, lines_of, ok, pod, stderr, stdout, uid, wait_output, Instance};

const SUITE: u32 = 8;
const T: Duration = Duration::from_secs(60);
const DATA: &str = "    volumeMounts:\n    - {name: data, mountPath: /data}\n";
const SIDECAR: &str =
    "    restartPolicy: Always\n    volumeMounts:\n    - {name: data, mountPath: /data}\n";

/// `initContainers` (YAML list items) and a shared emptyDir `data`, to pass as `pod`'s volumes.
fn inits_and_data(inits: &str) -> String {
    format!("  initContainers:\n{inits}  volumes:\n  - name: data\n    emptyDir: {{}}\n")
}

#[test]
fn init_containers_run_in_order_before_the_app() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let inits = container("init1", "echo init1 >> /data/log", DATA)
        + &container("init2", "echo init2 >> /data/log", DATA);
    let app = container("app", "echo app >> /data/log; cat /data/log", DATA);
    let out = inst.run(
        &pod(
            &inst.name("order"),
            &u,
            "Never",
            &app,
            &inits_and_data(&inits),
        ),
        T,
    );
    ok(&out);
    assert_eq!(
        lines_of(&stdout(&out), "app"),
        vec!["init1", "init2", "app"],
        "{}",
        stdout(&out)
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn a_failing_init_container_is_retried_under_on_failure() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let init = container(
        "init",
        "if [ -f /data/tried ]; then echo second; else touch /data/tried; echo first; exit 3; fi",
        DATA,
    );
    let app = container("app", "echo app-ran", DATA);
    let out = inst.run(
        &pod(
            &inst.name("retry"),
            &u,
            "OnFailure",
            &app,
            &inits_and_data(&init),
        ),
        T,
    );
    ok(&out);
    let s = stdout(&out);
    assert_eq!(lines_of(&s, "init"), vec!["first", "second"], "{s}");
    assert_eq!(lines_of(&s, "app"), vec!["app-ran"], "{s}");
    assert!(
        stderr(&out).contains("[init] podshim: container exited with code 3 (Error)"),
        "{}",
        stderr(&out)
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn a_failing_init_container_fails_the_pod_under_never() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    // A sidecar before it is stopped by podshim and does not change the exit code.
    let inits = container(
        "side",
        "trap \"echo bye; exit 0\" TERM; echo up; while true; do sleep 0.1; done",
        SIDECAR,
    ) + &container("init", "echo failing; exit 7", DATA);
    let app = container("app", "echo app-ran", DATA);
    let out = inst.run(
        &pod(
            &inst.name("fail"),
            &u,
            "Never",
            &app,
            &inits_and_data(&inits),
        ),
        T,
    );
    let s = stdout(&out);
    assert_eq!(out.status.code(), Some(7), "{s}\n{}", stderr(&out));
    assert_eq!(lines_of(&s, "init"), vec!["failing"], "{s}");
    assert!(lines_of(&s, "app").is_empty(), "the app ran: {s}");
    assert!(lines_of(&s, "side").contains(&"bye".to_string()), "{s}");
    inst.assert_clean(&[&u]);
}

#[test]
fn a_sidecar_serves_the_app_and_is_stopped_when_the_app_is_done() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let sidecar = container(
        "server",
        "trap \"echo bye; exit 0\" TERM; \
         while true; do echo hello-from-sidecar | nc -l -p 8080 & wait $!; done",
        SIDECAR,
    );
    let app = container(
        "app",
        "for i in $(seq 100); do if nc 127.0.0.1 8080 </dev/null; then exit 0; fi; sleep 0.1; done; exit 1",
        DATA,
    );
    let started = Instant::now();
    let out = inst.run(
        &pod(
            &inst.name("side"),
            &u,
            "Never",
            &app,
            &inits_and_data(&sidecar),
        ),
        T,
    );
    ok(&out);
    let s = stdout(&out);
    assert!(
        lines_of(&s, "app").contains(&"hello-from-sidecar".to_string()),
        "{s}"
    );
    assert!(lines_of(&s, "server").contains(&"bye".to_string()), "{s}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    inst.assert_clean(&[&u]);
}

#[test]
fn sigterm_stops_the_app_before_the_sidecar() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(5);
    let sidecar = container(
        "side",
        "trap \"echo bye; exit 0\" TERM; echo up; while true; do sleep 0.1; done",
        SIDECAR,
    );
    // The app takes its time to leave: a sidecar stopped at the same time would say bye first.
    let app = container(
        "app",
        "trap \"sleep 0.5; echo bye; exit 0\" TERM; echo up; while true; do sleep 0.1; done",
        DATA,
    );
    let mut child = inst.spawn(&pod(
        &inst.name("stop"),
        &u,
        "Always",
        &app,
        &inits_and_data(&sidecar),
    ));
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the app started");
        if line == "[app] up" {
            break;
        }
    }
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = wait_output(child, T);
    let lines = reader.join().unwrap();
    ok(&out);
    let at = |l: &str| lines.iter().position(|x| x == l);
    let (app, side) = (at("[app] bye"), at("[side] bye"));
    assert!(
        app.is_some() && side.is_some() && app < side,
        "app must stop before the sidecar: {lines:?}"
    );
    inst.assert_clean(&[&u]);
}
