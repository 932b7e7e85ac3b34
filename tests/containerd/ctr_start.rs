//! `ctr` against a private containerd 1.6, per runtime handler, continued from `ctr.rs`: commands
//! that cannot run (`ctr run` and `ctr task exec`: runc's words, nothing left) and a container's
//! stdin. runc's answers are recorded in `reference/runc/<host kind>/ctr_*.json` and podshim's
//! must match them.

mod support;

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use support::answers;
use support::ctr::{daemon, ok, text, wait_child};
use support::handler::Handler;

handler_tests!(runc, Handler::runc(), [ctr_start_errors, ctr_stdin]);

handler_tests!(podshim, Handler::podshim(), [ctr_start_errors, ctr_stdin]);

/// A command that cannot run, as `ctr run` and `ctr task exec` report it: missing, not
/// executable, not in `PATH` (runc's look-up fails the create, or the exec), and a script whose
/// interpreter is missing (found, but refused by execve(2)). ctr exits non-zero with runc's words,
/// and nothing of the failed container or exec is left (`--rm`; the daemon's leak check at the
/// end).
fn ctr_start_errors(h: &Handler) {
    let d = daemon(h);
    let dir = d.layout.dir.join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("s"), "#!/nope\n").unwrap();
    std::fs::set_permissions(
        dir.join("s"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mount = format!("type=bind,src={},dst=/w,options=rbind:ro", dir.display());
    let failure = |out: std::process::Output| {
        let (o, e) = text(&out);
        json!({"exit_code": out.status.code(), "stdout": o, "error": answers::exec_words(&e)})
    };
    let mut answers = serde_json::Map::new();
    for (what, cmd) in [
        ("run_missing", "/nonexistent"),
        ("run_not_executable", "/etc/passwd"),
        ("run_not_in_path", "nope"),
        ("run_no_interpreter", "/w/s"),
    ] {
        let child = d
            .ctr_run(h, what, &["--rm", "--mount", &mount], &[cmd])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        answers.insert(
            what.into(),
            failure(wait_child(child, Duration::from_secs(60))),
        );
    }
    ok(&mut d.ctr_run(h, "sleeper", &["-d", "--mount", &mount], &["sleep", "600"]));
    d.wait_task("sleeper", "RUNNING");
    for (n, cmd) in ["/nonexistent", "/etc/passwd", "nope", "/w/s"]
        .into_iter()
        .enumerate()
    {
        let child = d
            .ctr_exec("sleeper", &format!("e{n}"), false)
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        answers.insert(
            format!("exec_{cmd}"),
            failure(wait_child(child, Duration::from_secs(60))),
        );
    }
    // The container still runs its one process, and a good exec still works.
    let ps = ok(d.ctr("default").args(["task", "ps", "sleeper"]));
    answers.insert("processes_after".into(), json!(ps.lines().count() - 1));
    let again = ok(d.ctr_exec("sleeper", "e9", false).args(["echo", "still"]));
    answers.insert("exec_after".into(), json!(again));
    let containers = ok(d.ctr("default").args(["container", "ls", "-q"]));
    answers.insert("containers".into(), json!(containers));
    d.remove_task("sleeper");
    answers::check(h, "ctr_start_errors", &serde_json::Value::Object(answers));
    d.shutdown();
}

/// A container's stdin from `ctr run` (ctr 1.6 always passes its own): what is written reaches
/// it. `head -n 2` ends by itself: ctr 1.6's `run` never sends CloseIO, and runc's shim gives
/// the container no EOF without it (podshim's passes the EOF of the FIFO on). Plain
/// assertions, the same for both handlers.
fn ctr_stdin(h: &Handler) {
    let d = daemon(h);
    let mut child = d
        .ctr_run(h, "cat", &["--rm"], &["sh", "-c", "head -n 2; echo end"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"one\ntwo\n").unwrap();
    }
    let out = wait_child(child, Duration::from_secs(30));
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o} {e}");
    assert_eq!(o, "one\ntwo\nend\n");
    d.shutdown();
}
