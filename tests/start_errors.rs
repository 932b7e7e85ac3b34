//! A container whose command cannot run (issue 11): the kubelet reports runc's failure as a
//! start failure, `StartError` with exit code 128 and runc's words in the message, not as an
//! exit 255 "Error". Both moments are covered: found missing or not executable before the
//! container starts (runc's `LookPath`), and refused by `execve` after it started (a script
//! whose interpreter does not exist), which libcontainer's init can only tell through the
//! bundle's report file.

use std::time::Duration;

use podshim_tests::{uid, Instance};

const SUITE: u32 = 31;
const T: Duration = Duration::from_secs(60);

#[test]
fn a_command_that_cannot_run_is_a_start_error_with_runcs_words() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let cases: &[(&str, &str, &str)] = &[
        (
            "missing",
            "/nonexistent",
            r#"exec: "/nonexistent": stat /nonexistent: no such file or directory"#,
        ),
        (
            "notexec",
            "/etc/passwd",
            r#"exec: "/etc/passwd": permission denied"#,
        ),
        (
            "nopath",
            "nope",
            r#"exec: "nope": executable file not found in $PATH"#,
        ),
        // Passes the look-up; execve(2) fails with ENOENT for the missing interpreter.
        ("shebang", "/w/s", "exec /w/s: no such file or directory"),
    ];
    let mut uids = Vec::new();
    for (n, (what, cmd, words)) in cases.iter().enumerate() {
        let name = inst.name(what);
        let u = uid(60 + n as u32);
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  uid: {u}\nspec:\n  \
             restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  initContainers:\n  \
             - name: prep\n    image: busybox:1.35\n    \
             command: [sh, -c, 'printf \"#!/nope\\n\" > /w/s; chmod +x /w/s']\n    \
             volumeMounts: [{{name: w, mountPath: /w}}]\n  containers:\n  - name: c\n    \
             image: busybox:1.35\n    command: [{cmd}]\n    \
             volumeMounts: [{{name: w, mountPath: /w}}]\n  volumes:\n  - name: w\n    \
             emptyDir: {{}}\n"
        );
        let _ = inst.detach(&yaml);
        let v = inst.wait_for(&name, T, "the Pod to fail", |v| {
            v["status"]["phase"] == "Failed"
        });
        let t = &v["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["reason"], "StartError", "{what}: {t}");
        assert_eq!(t["exitCode"], 128, "{what}: {t}");
        let message = t["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(words),
            "{what}: {message:?} lacks {words:?}"
        );
        podshim_tests::ok(&inst.podshim(&["rm", "-f", &name], T));
        uids.push(u);
    }
    inst.assert_clean(&uids.iter().map(String::as_str).collect::<Vec<_>>());
}
