//! End-to-end tests of `stdin`/`stdinOnce` and `podshim attach -i`: a container with `stdin: true`
//! reads a pipe its supervisor keeps; `podshim attach -i` sends input to it through a root-only
//! socket, and what the container prints lands in its log and comes back to the attach. Terminals
//! (`tty: true`) are tested in `attach_tty.rs`.
//!
//! Kubernetes' documentation ("Get a Shell to a Running Container", `kubectl attach -i`):
//! `stdin` allocates a buffer for the container's stdin (without it reads get EOF);
//! `stdinOnce` closes it after the first attach session ends.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use podshim_tests::{container, ok, pod, stderr, stdout, uid, wait_output, Instance};

const SUITE: u32 = 34;
const T: Duration = Duration::from_secs(60);

/// `podshim attach POD -c NAME -i` with `input` as its stdin.
fn attach(inst: &Instance, pod: &str, name: &str, input: &str) -> Output {
    let mut child = inst
        .command()
        .args(["attach", pod, "-c", name, "-i"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start podshim attach");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    wait_output(child, T)
}

fn logs(inst: &Instance, pod: &str, name: &str) -> String {
    let out = inst.podshim(&["logs", pod, "-c", name], T);
    ok(&out);
    stdout(&out)
}

#[test]
fn attach_sends_a_line_to_cat_and_stdin_once_ends_it() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(1);
    let name = inst.name("attach-once");
    let c = container("cat", "exec cat", "    stdin: true\n    stdinOnce: true\n");
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));
    // Only root may reach the stdin.
    let sock = inst
        .state
        .join("pods")
        .join(format!("default_{name}"))
        .join("attach");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&sock), 0o700);
    assert_eq!(mode(&sock.join("cat.sock")), 0o600);
    let out = attach(&inst, &name, "cat", "hello from attach\n");
    ok(&out);
    // The attach followed cat's output until cat ended.
    assert_eq!(stdout(&out), "hello from attach\n");
    // stdinOnce: the attach's end is cat's EOF, so the container completes.
    let v = inst.wait_for(&name, T, "the Pod to succeed", |v| {
        v["status"]["phase"] == "Succeeded"
    });
    assert_eq!(
        v["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(logs(&inst, &name, "cat"), "hello from attach\n");
    // The Pod has completed: no attach (later attaches of a running one follow its output only,
    // in attach_tty.rs).
    let again = attach(&inst, &name, "cat", "more\n");
    assert!(!again.status.success(), "{}", stdout(&again));
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}

#[test]
fn stdin_stays_open_across_attaches_without_stdin_once() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let name = inst.name("attach-many");
    let c = container("cat", "exec cat", "    stdin: true\n")
        + &container("plain", "cat; echo eof; sleep 3600", "");
    ok(&inst.detach(&pod(&name, &u, "Never", &c, "")));
    ok(&attach(&inst, &name, "cat", "one\n"));
    ok(&attach(&inst, &name, "cat", "two\n"));
    let deadline = std::time::Instant::now() + T;
    while logs(&inst, &name, "cat") != "one\ntwo\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            logs(&inst, &name, "cat")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let v = inst.inspect(&name);
    assert!(
        v["status"]["containerStatuses"][0]["state"]["running"].is_object(),
        "{v:#}"
    );
    // Without stdin: true the container reads /dev/null (EOF at once), and attach is refused.
    assert_eq!(logs(&inst, &name, "plain"), "eof\n");
    let refused = attach(&inst, &name, "plain", "x\n");
    assert!(
        stderr(&refused).contains("does not read stdin"),
        "{}",
        stderr(&refused)
    );
    ok(&inst.podshim(&["rm", "-f", &name], T));
    inst.assert_clean(&[&u]);
}
