//! What other host users and the containers themselves can reach (issue 11 §1 and §1b): nothing
//! under podshim's directories is reachable by an unprivileged host user (no setuid file or
//! device node an image or a container brings, no Secret value), an older install is tightened
//! on start, and a container sees only its own cgroups, read-only.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use podshim_tests::{ok, stderr, stdout, uid, wait_output, Instance};

const SUITE: u32 = 13;
const T: Duration = Duration::from_secs(60);

/// Run `script` with `sh` as user nobody (65534, no supplementary groups), `input` on stdin.
fn as_nobody(script: &str, input: &str) -> String {
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--",
            "sh",
            "-c",
            script,
        ])
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("setpriv (util-linux) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = wait_output(child, T);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The busybox test image plus what a hostile image brings: a setuid-root shell and a
/// world-writable copy of the `kmsg` character device. Returns the archive's path.
fn hostile_image(dir: &Path) -> PathBuf {
    podshim_tests::derive_busybox(
        dir,
        "hostile",
        "cp bundle/rootfs/bin/busybox bundle/rootfs/bin/suid-sh
chmod 4755 bundle/rootfs/bin/suid-sh
mkdir -p bundle/rootfs/dev
mknod -m 666 bundle/rootfs/dev/kmsg-copy c 1 11",
    )
}

/// Every path below `dir` (not following symlinks, not entering other filesystems' mounts of
/// /proc).
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        out.push(p.clone());
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            walk(&p, out);
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn nothing_podshim_keeps_is_reachable_by_another_host_user() {
    let inst = Instance::new(SUITE);
    let logs = inst.dir.join("logs");
    // An install made by an older podshim: world-traversable directories.
    for d in [&inst.root, &inst.state, &logs] {
        std::fs::create_dir_all(d.join("old")).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // Tightened by any command, before it does anything else.
    ok(&inst.podshim(&["ps"], T));
    for d in [&inst.root, &inst.state, &logs] {
        assert_eq!(mode(d), 0o700, "{} after `podshim ps`", d.display());
        assert_eq!(std::fs::metadata(d).unwrap().uid(), 0);
    }
    // The instance's own directory (the tests' /tmp/podshim-test-*) must be traversable, so
    // that only podshim's modes are what stops the other user.
    std::fs::set_permissions(&inst.dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let image = hostile_image(&inst.dir);
    ok(&inst.podshim(
        &[
            "image",
            "import",
            "--name",
            "hostile:1",
            image.to_str().unwrap(),
        ],
        T,
    ));
    let marker = format!("s3cr3t-{}-value", inst.tag);
    let name = inst.name("hostile");
    let u = uid(1);
    let manifest = format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: {marker}}}
---
apiVersion: v1
kind: Pod
metadata: {{name: {name}, uid: {u}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: hostile:1
    command: [sh, -c, 'cp /bin/busybox /tmp/made-suid && chmod 4755 /tmp/made-suid && mknod -m 666 /tmp/made-kmsg c 1 11; echo ready; exec sleep 1000']
    env:
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    volumeMounts:
    - {{name: creds, mountPath: /creds}}
  volumes:
  - {{name: creds, secret: {{secretName: creds}}}}
"#
    );
    // The manifest itself is the test's, not podshim's: keep it private too.
    let file = inst.dir.join("hostile.yaml");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&file)
        .unwrap()
        .write_all(manifest.as_bytes())
        .unwrap();
    let out = inst.podshim(&["run", "-d", file.to_str().unwrap()], T);
    ok(&out);
    inst.wait_for(&name, T, "the container runs", |p| {
        p["status"]["containerStatuses"][0]["state"]["running"].is_object()
    });
    // Running is not done: its files are made once it says `ready` (the walk below once came
    // between its chmod and its mknod).
    let deadline = std::time::Instant::now() + T;
    while !podshim_tests::stdout(&inst.podshim(&["logs", &name], T)).contains("ready") {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never said ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The container's init pid, from its cgroup.
    let cgroup = podshim_tests::cgroup_dir("pids", &inst.container_cgroup(&u, "app"));
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    let init: u32 = procs.lines().next().unwrap().trim().parse().unwrap();

    // What root can see: every path under podshim's three directories, among them the setuid
    // files and device nodes of the image's layer and of the container's writable layer, the
    // Secret volume's file and the container's config.json.
    let mut paths = Vec::new();
    for d in [&inst.root, &inst.state, &logs] {
        paths.push(d.to_path_buf());
        walk(d, &mut paths);
    }
    // The Pod's mounts (its root filesystem) are in its supervisor's mount namespace, not the
    // host's: the same directories as the supervisor sees them (`/proc/PID/root`).
    let supervisor = inst.supervisor_pid(&name).expect("a supervisor");
    let mut theirs = Vec::new();
    for d in [&inst.root, &inst.state, &logs] {
        let there =
            PathBuf::from(format!("/proc/{supervisor}/root")).join(d.strip_prefix("/").unwrap());
        walk(&there, &mut theirs);
    }
    let named = |suffix: &str| {
        let found: Vec<&PathBuf> = theirs.iter().filter(|p| p.ends_with(suffix)).collect();
        assert!(!found.is_empty(), "no {suffix} under podshim's directories");
        found.len()
    };
    // In the image's unpacked layer, and again in the container's root filesystem mount.
    assert!(named("bin/suid-sh") >= 2);
    assert!(named("dev/kmsg-copy") >= 2);
    // In the writable (upper) layer and the root filesystem mount.
    assert!(named("tmp/made-suid") >= 2);
    assert!(named("tmp/made-kmsg") >= 2);
    assert!(named("creds/password") >= 1);
    assert!(named("config.json") >= 1);
    paths.extend(theirs);
    let setuid = paths
        .iter()
        .filter(|p| {
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o4000 != 0)
        })
        .count();
    assert!(setuid >= 4, "{setuid} setuid files found as root");
    // And through the container's process: /proc/PID/root.
    paths.push(PathBuf::from(format!("/proc/{init}/root/tmp/made-suid")));
    paths.push(PathBuf::from(format!("/proc/{init}/root/creds/password")));
    paths.push(PathBuf::from(format!("/proc/{init}/environ")));

    // As nobody: not one of them can even be looked up (so none can be listed, read, written or
    // executed), and the directories cannot be listed.
    // The three directories themselves can be seen (their parent is the other user's to
    // read), not what is in them.
    let list: String = paths
        .iter()
        .filter(|p| ![&inst.root, &inst.state, &logs].contains(&&p.to_path_buf()))
        .map(|p| format!("{}\n", p.display()))
        .collect();
    // /proc/PID/environ can be looked up by anyone (procfs shows every process), not read.
    let reachable = as_nobody(
        r#"while IFS= read -r p; do
  case "$p" in
  /proc/*/environ) cat "$p" >/dev/null 2>&1 && echo "READ $p";;
  *) if [ -e "$p" ] || [ -L "$p" ]; then echo "REACHABLE $p"; fi;;
  esac
done
echo end"#,
        &list,
    );
    assert!(reachable.ends_with("end\n"), "{reachable}");
    assert_eq!(reachable, "end\n", "what nobody reached");
    let listed = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "ls"])
        .args([&inst.root, &inst.state, &logs])
        .output()
        .unwrap();
    assert!(
        !listed.status.success(),
        "nobody listed: {}",
        stdout(&listed)
    );
    assert!(
        stderr(&listed).contains("Permission denied"),
        "{}",
        stderr(&listed)
    );
    // Executing the setuid shells directly fails too.
    for p in paths.iter().filter(|p| p.ends_with("bin/suid-sh")) {
        let run = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(p)
            .args(["-c", "id -u"])
            .output()
            .unwrap();
        assert!(
            !run.status.success(),
            "nobody ran {}: {}",
            p.display(),
            stdout(&run)
        );
    }

    // No Secret value is readable anywhere a user could look: the files of the host's writable
    // trees and every process's environment and command line (the value comes on stdin, so the
    // searching process's own command line does not hold it).
    let found = as_nobody(
        r#"read -r m; printf '%s\n' "$m" > /dev/null
grep -rlsF -e "$m" /tmp /var /run /etc /root /home /dev/shm /srv /opt 2>/dev/null
for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do grep -lsF -e "$m" "$f" 2>/dev/null; done
echo end"#,
        &format!("{marker}\n"),
    );
    assert_eq!(found, "end\n", "files where nobody read the Secret value");
    // As root the value is there (the search would find it): the check above is not vacuous.
    let as_root = Command::new("grep")
        .args(["-rlsF", &marker])
        .arg(&inst.state)
        .output()
        .unwrap();
    assert!(
        !as_root.stdout.is_empty(),
        "the Secret value is nowhere under the state dir"
    );

    ok(&inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T));
    ok(&inst.podshim(&["image", "rm", "hostile:1"], T));
    inst.assert_clean(&[&u]);
}

/// The container's view of /sys/fs/cgroup: every mount there read-only, every write refused,
/// the limits it reads its own. (Each file is written its own value back, so that a failing
/// run changes nothing: the first version of this test, run against the old read-write view,
/// wrote into the host's root `name=systemd` cgroup, which libcontainer bound into the container.)
#[test]
fn a_container_cannot_write_its_cgroups_and_reads_its_own_limits() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(2);
    let script = r#"
v2=; [ -f /sys/fs/cgroup/cgroup.controllers ] && v2=1
if [ -n "$v2" ]; then echo "limit $(cat /sys/fs/cgroup/memory.max)"; else echo "limit $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"; fi
n=0; w=0
for f in $(find /sys/fs/cgroup -type f); do n=$((n+1)); v=$(cat "$f" 2>/dev/null | head -n1); (printf '%s' "$v" > "$f") 2>/dev/null && { w=$((w+1)); echo "WRITABLE $f"; }; done
(printf 1073741824 > /sys/fs/cgroup/memory/memory.limit_in_bytes) 2>/dev/null && echo "WRITABLE raised the limit"
(printf 1073741824 > /sys/fs/cgroup/memory.max) 2>/dev/null && echo "WRITABLE raised the limit"
echo "files $n writable $w"
for d in /sys/fs/cgroup /sys/fs/cgroup/memory /sys/fs/cgroup/pids; do [ -d "$d" ] && { mkdir "$d/child" 2>/dev/null && echo "MKDIR $d"; touch "$d/file" 2>/dev/null && echo "TOUCH $d"; }; done
awk '$5 ~ "^/sys/fs/cgroup" { print "mount", $5, $6 }' /proc/self/mountinfo
if [ -n "$v2" ]; then echo "limit $(cat /sys/fs/cgroup/memory.max)"; else echo "limit $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"; fi
"#;
    // A literal block: a quoted YAML scalar would fold the script's lines into one.
    let block: String = script.lines().map(|l| format!("      {l}\n")).collect();
    let c = format!(
        "  - name: probe\n    image: busybox:1.35\n    command: [sh, -c]\n    args:\n    - |\n{block}    resources:\n      limits: {{memory: 64Mi}}\n"
    );
    let out = inst.run(
        &podshim_tests::pod(&inst.name("cg"), &u, "Never", &c, ""),
        T,
    );
    ok(&out);
    let lines = podshim_tests::lines_of(&stdout(&out), "probe");
    let limits: Vec<&String> = lines.iter().filter(|l| l.starts_with("limit ")).collect();
    assert_eq!(
        limits,
        ["limit 67108864", "limit 67108864"],
        "{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().all(|l| !l.starts_with("WRITABLE")
            && !l.starts_with("MKDIR")
            && !l.starts_with("TOUCH")),
        "{}",
        lines.join("\n")
    );
    let files = lines
        .iter()
        .find_map(|l| l.strip_prefix("files "))
        .unwrap_or_else(|| panic!("{}", lines.join("\n")));
    let n: u32 = files.split(' ').next().unwrap().parse().unwrap();
    assert!(n > 20, "only {n} cgroup files seen: {}", lines.join("\n"));
    let mounts: Vec<&String> = lines.iter().filter(|l| l.starts_with("mount ")).collect();
    // v1: the skeleton and a bind per hierarchy; v2: one cgroup2 mount of its own namespace.
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let least = if v2 { 1 } else { 2 };
    assert!(mounts.len() >= least, "{}", lines.join("\n"));
    for m in &mounts {
        let opts = m.split(' ').nth(2).unwrap();
        assert!(opts.split(',').any(|o| o == "ro"), "not read-only: {m}");
    }
    inst.assert_clean(&[&u]);
}

/// Child cgroups in a container's cgroup (a container allowed to, or anyone on the host, made
/// them) do not stop teardown: they go with the container.
#[test]
fn teardown_removes_child_cgroups_of_a_container() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(3);
    let c = podshim_tests::container(
        "app",
        "trap \"exit 0\" TERM; echo up; while true; do sleep 0.1; done",
        "",
    );
    let name = inst.name("children");
    let mut child = inst.spawn(&podshim_tests::pod(&name, &u, "Never", &c, ""));
    let mut up = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut up,
    )
    .unwrap();
    assert_eq!(up, "[app] up\n");
    let mut made = Vec::new();
    // Each v1 hierarchy, or the one cgroup2 tree (where every controller maps to it).
    for h in ["memory", "pids", "cpu", "freezer"] {
        let dir = podshim_tests::cgroup_dir(h, &inst.container_cgroup(&u, "app"));
        let child = dir.join("child/grandchild");
        if dir.is_dir() && !made.contains(&child) {
            std::fs::create_dir_all(&child).unwrap();
            made.push(child);
        }
    }
    assert!(!made.is_empty(), "no container cgroup found");
    podshim_tests::term(&child);
    let out = wait_output(child, T);
    // A teardown problem makes podshim say so and exit 1.
    ok(&out);
    assert!(!stderr(&out).contains("teardown"), "{}", stderr(&out));
    for m in &made {
        assert!(!m.exists(), "{} left", m.display());
    }
    let runtime = inst.state.join("runtime");
    let left: Vec<_> = std::fs::read_dir(&runtime)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "container state left: {left:?}");
    inst.assert_clean(&[&u]);
}

/// Every process holding `path` open, by PID.
fn holders_of(path: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for proc in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(fds) = std::fs::read_dir(proc.path().join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| t == path))
        {
            let cmd = std::fs::read(proc.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{} {}",
                proc.file_name().to_string_lossy(),
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    found
}

#[test]
fn a_detached_pods_processes_keep_no_descriptor_podshim_inherited() {
    // `flock LOCK podshim run -d` (or a CI runner's pipe) hands podshim a descriptor without
    // close-on-exec; the supervisor and pause live as long as the Pod and must not keep it.
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    let u = uid(4);
    let name = inst.name("fds");
    let c = podshim_tests::container("app", "sleep 600", "");
    let manifest = inst.dir.join("fds.yaml");
    std::fs::write(&manifest, podshim_tests::pod(&name, &u, "Never", &c, "")).unwrap();
    let marker = inst.dir.join("inherited");
    std::fs::write(&marker, "").unwrap();
    let podshim = inst.command();
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec 7>>\"$0\"; exec \"$@\" run -d \"$MANIFEST\"")
        .arg(&marker)
        .arg(podshim.get_program())
        .args(podshim.get_args())
        .envs(
            podshim
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env("MANIFEST", &manifest)
        .output()
        .unwrap();
    ok(&out);
    let supervisor = inst
        .supervisor_pid(&name)
        .expect("the Pod has a supervisor");
    let holders = holders_of(&marker);
    let rm = inst.podshim(&["rm", "-f", "--grace-period", "0", &name], T);
    ok(&rm);
    assert!(
        holders.is_empty(),
        "the Pod's processes (supervisor {supervisor}) keep podshim's inherited fd 7: {holders:?}"
    );
    inst.assert_clean(&[&u]);
}

/// Issue 11 §3: an environment `execve` refuses (E2BIG: one variable over the kernel's 128 KiB
/// per string, or all of them over a quarter of the stack limit) is a start failure as
/// Kubernetes reports runc's: `StartError`, exit code 128, "argument list too long" (before, the
/// container exited 255, "Error", with an empty log). An environment just under the per-string
/// limit still runs.
#[test]
fn an_environment_execve_refuses_is_a_start_error() {
    let inst = Instance::new(SUITE);
    inst.import_busybox();
    // The total rule depends on the stack limit podshim runs with: the usual 8 MiB.
    nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_STACK, 8 << 20, 8 << 20)
        .expect("set RLIMIT_STACK");
    let env = |vars: &[(String, usize)]| {
        let mut y = String::from("    env:\n");
        for (name, len) in vars {
            y.push_str(&format!(
                "    - name: {name}\n      value: {}\n",
                "x".repeat(*len)
            ));
        }
        y
    };
    let one = env(&[("BIG".into(), 200_000)]);
    let many = env(&(0..20)
        .map(|i| (format!("V{i}"), 110_000))
        .collect::<Vec<_>>());
    for (n, (what, vars)) in [("one variable", one), ("all of them", many)]
        .into_iter()
        .enumerate()
    {
        let name = inst.name(&format!("e2big{n}"));
        let u = uid(40 + n as u32);
        let c = podshim_tests::container("c", "echo started", &vars);
        let out = inst.detach(&podshim_tests::pod(&name, &u, "Never", &c, ""));
        assert!(!out.status.success(), "{what}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("argument list too long"),
            "{what}: {}",
            stderr(&out)
        );
        // Not `inst.inspect`: the Pod object (with its environment) is larger than a pipe
        // holds, so it is read while podshim writes it.
        let deadline = std::time::Instant::now() + T;
        let v = loop {
            let out = inst.command().args(["inspect", &name]).output().unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if v["status"]["phase"] == "Failed" {
                break v;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {}",
                v["status"]
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let t = &v["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(t["reason"], "StartError", "{what}: {t}");
        assert_eq!(t["exitCode"], 128, "{what}: {t}");
        assert!(
            t["message"]
                .as_str()
                .is_some_and(|m| m.contains("argument list too long")),
            "{what}: {t}"
        );
        ok(&inst.podshim(&["rm", &name], T));
        inst.assert_clean(&[&u]);
    }
    // Just under the kernel's per-string limit: it runs.
    let name = inst.name("e2big-ok");
    let u = uid(42);
    let c = podshim_tests::container("c", "echo ${#BIG}", &env(&[("BIG".into(), 131_071 - 5)]));
    let out = inst.run(&podshim_tests::pod(&name, &u, "Never", &c, ""), T);
    ok(&out);
    assert!(stdout(&out).contains("[c] 131066"), "{}", stdout(&out));
    inst.assert_clean(&[&u]);
}
