//! `ctr` against a private containerd 1.6, per runtime handler, continued from `ctr.rs` and
//! `ctr_start.rs`: a terminal for a task's main process (`ctr run -t`: the console socket) and
//! the sizes ctr gives it (ResizePty, at start and on SIGWINCH), stdin closed by CloseIO (`ctr
//! task start` and `ctr task exec` send it when their own stdin ends), and a `cgroupsPath` in
//! the systemd driver's form (`slice:prefix:name`) on this cgroupfs host (read as runc's cgroupfs
//! driver reads it, or refused where the engine cannot place it so). runc's answers are
//! recorded in `reference/runc/<host kind>/ctr_*.json` and podshim's must match them.

mod support;

use std::io::{BufRead, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use support::answers;
use support::cleanup::cgroup_dirs;
use support::ctr::{daemon, ok, text, wait_child, BUSYBOX};
use support::handler::Handler;

handler_tests!(
    runc,
    Handler::runc(),
    [
        ctr_run_tty_resize,
        ctr_close_io,
        ctr_systemd_cgroup_path,
        ctr_systemd_cgroup_path_one_parent
    ]
);

handler_tests!(
    podshim,
    Handler::podshim(),
    [ctr_run_tty_resize, ctr_close_io]
);

// podshim reads the path as runc's cgroupfs driver does (ctr sends podshim no runc options, so
// no SystemdCgroup): below the shim's own cgroup in each hierarchy. Where those differ between
// hierarchies (here: the test's memory cgroup is not its pids cgroup), the engine's single path
// cannot follow and the Create is refused, naming the option; where they agree, the answer must
// be runc's (`_one_parent`: containerd started in one cgroup in every hierarchy).
handler_tests!(
    podshim_systemd_path,
    Handler::podshim(),
    [
        ctr_systemd_cgroup_path_as_runc,
        ctr_systemd_cgroup_path_one_parent
    ]
);

/// A command line for `sh -c` (script(1) takes one): every word single-quoted.
fn shell_line(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `ctr run -t` on a terminal of script(1) sized 40x100, resized to 50x120 a few seconds later:
/// ctr passes its terminal's size on (ResizePty) when the task starts and on SIGWINCH. The
/// container prints every size its terminal takes (`stty size`) until it sees the second one.
fn ctr_run_tty_resize(h: &Handler) {
    let d = daemon(h);
    let watch = "last=; i=0; while [ $i -lt 300 ]; do s=$(stty size); \
                 if [ \"$s\" != \"$last\" ] && [ \"$s\" != \"0 0\" ]; then echo \"size $s\"; last=$s; fi; \
                 [ \"$s\" = \"50 120\" ] && break; sleep 0.1; i=$((i+1)); done; \
                 [ -t 0 ] && echo stdin is a terminal";
    let run = d.ctr_run(h, "tty", &["--rm", "-t"], &["sh", "-c", watch]);
    // A background list of a non-interactive shell has /dev/null as stdin: the resize names the
    // terminal itself.
    let outer = format!(
        "stty rows 40 cols 100; (sleep 4; stty rows 50 cols 120 </dev/tty) & {}; wait",
        shell_line(&run)
    );
    let child = Command::new("script")
        .args(["-qec", &outer, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_child(child, Duration::from_secs(90));
    let (o, e) = text(&out);
    assert!(out.status.success(), "{o} {e}");
    // Only the container's lines: ctr 1.6 may log its own complaints on the terminal, and
    // script(1) echoes a NUL that ctr writes as `^@`.
    let seen: Vec<String> = o
        .replace("\r\n", "\n")
        .replace("^@", "")
        .lines()
        .filter(|l| l.starts_with("size ") || l.starts_with("stdin"))
        .map(str::to_string)
        .collect();
    assert_eq!(
        seen,
        ["size 40 100", "size 50 120", "stdin is a terminal"],
        "{o}"
    );
    answers::check(h, "ctr_run_tty_resize", &json!({ "seen": seen }));
    d.shutdown();
}

/// Write `first` to a ctr command's stdin, wait for the line it makes the container print,
/// write `rest`, close stdin and wait: ctr sends CloseIO at its stdin's EOF (only once its task
/// or exec exists: its closer is set after the create, so an EOF before that sends nothing),
/// and the container's reader ends only if the shim then closes the process's stdin.
fn feed_and_close(mut cmd: Command, first: &str, rest: &str) -> serde_json::Value {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first.as_bytes()).unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    stdin.write_all(rest.as_bytes()).unwrap();
    drop(stdin);
    let mut more = String::new();
    let reader = std::thread::spawn(move || {
        stdout.read_to_string(&mut more).unwrap();
        more
    });
    let out = wait_child(child, Duration::from_secs(30));
    let (_, e) = text(&out);
    let o = line + &reader.join().unwrap();
    assert!(out.status.success(), "{o} {e}");
    json!({"exit_code": out.status.code(), "stdout": o})
}

/// CloseIO for a task's main process (`ctr container create` + `ctr task start`, whose stdin
/// closer sends CloseIO at EOF) and for an exec (`ctr task exec`): `cat` gets what was written
/// and then its EOF, and the task (or exec) exits 0.
fn ctr_close_io(h: &Handler) {
    let d = daemon(h);
    // `ctr container create` has neither `--cgroup` nor `--runc-root`: the container gets
    // containerd's default cgroup (`/<namespace>/<id>`), made unique by the test's tag, and runc
    // its default state directory.
    let tag = d.layout.cgroup_root.trim_start_matches('/').to_string();
    let id = format!("{tag}-cat");
    d.note_shim("default", &id);
    // ctr 1.6's `container create` refuses a command ("with spec config file, only container
    // id should be provided"): the image's own, `sh`, reads its commands from stdin and ends
    // at its EOF.
    ok(d.ctr("default").args([
        "container",
        "create",
        "--runtime",
        h.runtime_type,
        BUSYBOX,
        &id,
    ]));
    let mut start = d.ctr("default");
    start
        .args(["task", "start", "--fifo-dir"])
        .arg(d.fifo_dir())
        .arg(&id);
    let main = feed_and_close(start, "echo one\n", "echo two\n");

    ok(&mut d.ctr_run(h, "sleeper", &["-d"], &["sleep", "600"]));
    d.wait_task("sleeper", "RUNNING");
    let mut exec = d.ctr_exec("sleeper", "e1", false);
    exec.args(["sh", "-c", "cat; echo cat ended"]);
    let exec = feed_and_close(exec, "three\n", "four\n");
    // The main process is untouched by the exec's CloseIO.
    let ps = ok(d.ctr("default").args(["task", "ps", "sleeper"]));
    d.remove_task("sleeper");
    // `ctr task start` deleted its task when it ended.
    ok(d.ctr("default").args(["container", "delete", &id]));
    let left = cgroup_dirs(&format!("/default/{id}"));
    assert!(left.is_empty(), "cgroups left: {left:?}");
    answers::check(
        h,
        "ctr_close_io",
        &json!({"main": main, "exec": exec, "processes_after": ps.lines().count() - 1}),
    );
    d.shutdown();
}

/// `ctr run --cgroup slice:prefix:name` (the systemd driver's form) with containerd's runc
/// options as ctr sends them: where the container's cgroup is, as the container sees it in
/// /proc/self/cgroup and (cgroup v2) where the host has it in the unified hierarchy. Where
/// podshim's own cgroup driver is systemd's (a systemd host with cgroup v2), a node gives runc
/// `SystemdCgroup = true`, so runc runs with that option and its answers are recorded as
/// `<test>_systemd_driver`.
fn ctr_systemd_cgroup_path(h: &Handler) {
    systemd_path_case(h, daemon(h), own_cgroups(), "ctr_systemd_cgroup_path");
}

/// [`ctr_systemd_cgroup_path`] with containerd (and so the shim and runc) started in one cgroup,
/// the same in every v1 hierarchy: runc puts the task below it in each, and so must podshim.
/// (cgroup v2 has one hierarchy: the daemon's cgroup is one parent already, so the case is the
/// plain one, recorded under its own name.)
fn ctr_systemd_cgroup_path_one_parent(h: &Handler) {
    if unified() {
        return systemd_path_case(
            h,
            daemon(h),
            own_cgroups(),
            "ctr_systemd_cgroup_path_one_parent",
        );
    }
    let own = OneCgroup::enter();
    let d = daemon(h);
    own.leave();
    let map = own.map.clone();
    systemd_path_case(h, d, map, "ctr_systemd_cgroup_path_one_parent");
}

/// This thread moved into `/podshim-test-own-TAG` in every v1 hierarchy (v1 moves a thread
/// alone: the test harness's other threads stay), so what it spawns starts there; the cgroups
/// are removed when dropped (after the daemon it started, which is declared after it).
struct OneCgroup {
    /// (the hierarchy's directory of it, where the thread was).
    dirs: Vec<(std::path::PathBuf, std::path::PathBuf)>,
    /// Controller -> the cgroup, as `own_cgroups` has them.
    map: std::collections::HashMap<String, String>,
}

impl OneCgroup {
    fn enter() -> Self {
        let name = format!("/podshim-test-own-{}", support::unique_tag().0);
        let text = std::fs::read_to_string("/proc/thread-self/cgroup").unwrap();
        let mounts = support::cleanup::cgroup_mounts();
        let mut one = OneCgroup {
            dirs: Vec::new(),
            map: Default::default(),
        };
        for l in text.lines() {
            let mut f = l.splitn(3, ':');
            let (id, ctls, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
            if id == "0" {
                continue;
            }
            let base = ctls.trim_start_matches("name=");
            let mount = mounts
                .iter()
                .find(|m| m.file_name().is_some_and(|n| n == base))
                .unwrap_or_else(|| panic!("no mount of the {ctls} hierarchy: {mounts:?}"));
            let dir = mount.join(name.trim_start_matches('/'));
            std::fs::create_dir_all(&dir).unwrap();
            // A new v1 cpuset cgroup has no CPUs nor memory nodes: nothing can join it.
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(mount.join(file)) {
                    std::fs::write(dir.join(file), v.trim()).unwrap();
                }
            }
            let tid = nix::unistd::gettid().to_string();
            std::fs::write(dir.join("tasks"), &tid).unwrap();
            one.dirs
                .push((dir, mount.join(path.trim_start_matches('/'))));
            for c in ctls.split(',') {
                one.map.insert(c.to_string(), name.clone());
            }
        }
        one
    }

    /// Move this thread back where it was.
    fn leave(&self) {
        let tid = nix::unistd::gettid().to_string();
        for (_, was) in &self.dirs {
            std::fs::write(was.join("tasks"), &tid).unwrap();
        }
    }
}

impl Drop for OneCgroup {
    fn drop(&mut self) {
        self.leave();
        for (dir, _) in &self.dirs {
            remove_tree(dir);
        }
    }
}

/// Whether this host has cgroup v2 only (the answers' kind `cgroup-v2`).
fn unified() -> bool {
    answers::host_kind() == "cgroup-v2"
}

/// Whether podshim's cgroup driver here is systemd's (`PODSHIM_CGROUP_DRIVER`, which containerd
/// and so the shim inherit, else detected as the shim detects it).
fn systemd_driver() -> bool {
    podshim_engine::cgroups::Driver::current() == podshim_engine::cgroups::Driver::Systemd
}

/// The systemd-path cases share `podshim-test.slice` under the systemd driver and stop it at
/// their end: one at a time.
static SYSTEMD_PATH_CASES: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `ctr run --runtime RT --cgroup PATH` of busybox as container `sd` of daemon `d` (its FIFOs,
/// for runc its state directory and, under the systemd driver, `--runc-systemd-cgroup`), then
/// `flags` and the command `args`.
fn ctr_run_cgroup(
    h: &Handler,
    d: &support::daemon::Containerd,
    path: &str,
    flags: &[&str],
    args: &[&str],
) -> Command {
    d.note_shim("default", "sd");
    let mut run = d.ctr("default");
    run.args(["run", "--runtime", h.runtime_type, "--cgroup", path])
        .arg("--fifo-dir")
        .arg(d.fifo_dir());
    if h.name == "runc" {
        run.arg("--runc-root").arg(d.layout.dir.join("runc"));
        if systemd_driver() {
            run.arg("--runc-systemd-cgroup");
        }
    }
    run.args(flags).arg(BUSYBOX).arg("sd").args(args);
    run
}

/// Run `slice:prefix:name` on daemon `d`, whose shim runs in `own`, and compare with runc's
/// answers for `test`.
fn systemd_path_case(
    h: &Handler,
    d: support::daemon::Containerd,
    own: std::collections::HashMap<String, String>,
    test: &str,
) {
    let _one = SYSTEMD_PATH_CASES.lock().unwrap_or_else(|e| e.into_inner());
    let systemd = systemd_driver();
    let test = if systemd {
        format!("{test}_systemd_driver")
    } else {
        test.to_string()
    };
    let tag = d.layout.cgroup_root.trim_start_matches('/').to_string();
    let path = format!("{tag}.slice:podshim:sd");
    ok(&mut ctr_run_cgroup(
        h,
        &d,
        &path,
        &["-d"],
        &["sleep", "600"],
    ));
    d.wait_task("sd", "RUNNING");
    // The host's view of the task, then the container's (an exec joins the task's cgroups and
    // cgroup namespace, if it has one).
    let host = std::fs::read_to_string(format!("/proc/{}/cgroup", d.task_pid("sd"))).unwrap();
    let seen = ok(d
        .ctr_exec("sd", "cg", false)
        .args(["cat", "/proc/self/cgroup"]));
    d.remove_task("sd");
    let answers = if unified() {
        // One line, `0::PATH`. runc's cgroupfs driver puts a relative path below the parent of
        // its own cgroup (the shim's, which is the daemon's: `own`): that part is written
        // `OWN/..`.
        let own = own.get("").map(String::as_str).unwrap_or("/");
        let line = |text: &str| {
            let path = text
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or_else(|| panic!("no cgroup v2 line in {text:?}"));
            let parent = std::path::Path::new(own)
                .parent()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let path = if own != "/" && (path == own || path.starts_with(&format!("{own}/"))) {
                format!("OWN{}", &path[own.len()..])
            } else if parent.len() > 1 && path.starts_with(&format!("{parent}/")) {
                format!("OWN/..{}", &path[parent.len()..])
            } else {
                path.to_string()
            };
            format!("0::{path}").replace(&tag, "TAG")
        };
        json!({"cgroup": [line(&seen)], "host": line(&host)})
    } else {
        // runc's cgroupfs driver takes the path as relative to its own cgroup per v1 hierarchy:
        // that part is written `OWN`.
        let mut lines: Vec<String> = seen
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(':')?;
                let (ctl, path) = rest.split_once(':')?;
                if ctl != "memory" && ctl != "pids" {
                    return None;
                }
                let mine = own.get(ctl).map(String::as_str).unwrap_or("/");
                let path = match path.strip_prefix(mine) {
                    Some(r) if mine != "/" => format!("OWN{r}"),
                    _ => path.to_string(),
                };
                Some(format!("{ctl}:{path}").replace(&tag, "TAG"))
            })
            .collect();
        lines.sort();
        json!({ "cgroup": lines })
    };
    // What the host holds afterwards, anywhere with the test's tag in its name. Under the
    // systemd driver the slice of the path stays, as it does after runc (systemd keeps a slice
    // unit running until it is stopped; the kubelet stops its Pods' slices): stop it.
    let mut left = leftover_cgroups(&tag, &own);
    if systemd {
        let slice = format!("{tag}.slice");
        left.retain(|dir| {
            let empty_slice = dir.file_name().is_some_and(|n| n == slice.as_str())
                && cgroup_children(dir).is_empty();
            if empty_slice {
                stop_unit(&slice);
                stop_empty_slice(dir.parent(), "podshim-test.slice");
            }
            !empty_slice
        });
    }
    for dir in &left {
        remove_tree(dir);
        // And the empty `.slice` parents a systemd layout made on the way.
        let mut parent = dir.parent();
        while let Some(p) = parent.filter(|p| p.to_string_lossy().ends_with(".slice")) {
            if std::fs::remove_dir(p).is_err() {
                break;
            }
            parent = p.parent();
        }
    }
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let still = leftover_cgroups(&tag, &own);
    assert!(
        still.is_empty(),
        "cgroups left after stopping the slice: {still:?}"
    );
    answers::check(h, &test, &answers);
    d.shutdown();
}

/// The cgroup directories right below `dir`.
fn cgroup_children(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.path())
        .collect()
}

/// `systemctl stop UNIT`, which must work (a unit left running is a leak).
fn stop_unit(unit: &str) {
    let out = Command::new("systemctl")
        .args(["stop", unit])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "systemctl stop {unit}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Stop the slice `unit` whose cgroup is `dir` (when it is), if nothing is left in it: systemd
/// made it as the parent of the test's slice. (The systemd-path cases, its only users, run one
/// at a time.)
fn stop_empty_slice(dir: Option<&std::path::Path>, unit: &str) {
    if let Some(dir) = dir.filter(|d| d.file_name().is_some_and(|n| n == unit)) {
        if cgroup_children(dir).is_empty() {
            stop_unit(unit);
        }
    }
}

/// podshim's answer to [`ctr_systemd_cgroup_path`]: runc's, when this process's cgroup (which
/// containerd and so the shim inherit) is one path in every controller hierarchy (always, on
/// cgroup v2); otherwise a refusal that names `SystemdCgroup`, leaving nothing behind, since
/// runc's recorded answer then has the task below different parents per hierarchy (which one
/// libcontainer cgroup path, joined to every hierarchy's mount point, cannot be).
fn ctr_systemd_cgroup_path_as_runc(h: &Handler) {
    let own = own_cgroups();
    let mut bases: Vec<&String> = own
        .iter()
        .filter(|(ctl, _)| !ctl.starts_with("name=") && !ctl.is_empty())
        .map(|(_, p)| p)
        .collect();
    bases.sort();
    bases.dedup();
    if bases.len() <= 1 {
        return ctr_systemd_cgroup_path(h);
    }
    let recorded = support::workspace()
        .join("tests/containerd/reference/runc")
        .join(answers::host_kind())
        .join("ctr_systemd_cgroup_path.json");
    let recorded: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&recorded).unwrap()).unwrap();
    let parents: Vec<String> = recorded["cgroup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().split_once(':').unwrap().1.to_string())
        .collect();
    assert!(
        parents.iter().any(|p| p.starts_with("OWN/")) && parents.iter().any(|p| p.starts_with("/TAG")),
        "runc's recorded answer has one parent for every hierarchy: podshim must match it ({parents:?})"
    );
    let d = daemon(h);
    let tag = d.layout.cgroup_root.trim_start_matches('/').to_string();
    let path = format!("{tag}.slice:podshim:sd");
    let mut run = ctr_run_cgroup(h, &d, &path, &[], &["true"]);
    let out = wait_child(
        run.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(60),
    );
    let (o, e) = text(&out);
    assert!(!out.status.success(), "ran: {o}");
    assert!(
        e.contains("SystemdCgroup = true") && e.contains("cgroupsPath"),
        "not a clear refusal: {e}"
    );
    let _ = d
        .ctr("default")
        .args(["container", "delete", "sd"])
        .output();
    let left = leftover_cgroups(&tag, &own);
    assert!(left.is_empty(), "cgroups left: {left:?}");
    d.shutdown();
}

/// This process's cgroup per v1 controller list (`memory` -> `/process_api/...`), and per the
/// cgroup v2 line (`0::PATH`) under the empty name.
fn own_cgroups() -> std::collections::HashMap<String, String> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
            Some(
                ctl.split(',')
                    .map(move |c| (c.to_string(), path.to_string())),
            )
        })
        .flatten()
        .collect()
}

/// Cgroup directories whose name holds `tag`, at the top of every hierarchy or below this
/// process's own cgroup there (where runc's cgroupfs driver puts a relative path).
fn leftover_cgroups(
    tag: &str,
    own: &std::collections::HashMap<String, String>,
) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut places: Vec<std::path::PathBuf> = cgroup_dirs("/");
    for dir in own.values() {
        places.extend(cgroup_dirs(dir));
        // On cgroup v2 runc's cgroupfs driver uses the parent of its own cgroup.
        if let Some(parent) = std::path::Path::new(dir).parent() {
            places.extend(cgroup_dirs(&parent.display().to_string()));
        }
    }
    places.sort();
    places.dedup();
    // Three levels down: the systemd layout's `/podshim.slice/podshim-test.slice/<tag>.slice`.
    fn walk(dir: &std::path::Path, tag: &str, depth: usize, out: &mut Vec<std::path::PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            if e.file_name().to_string_lossy().contains(tag) {
                out.push(e.path());
            } else if depth > 1 && e.file_name().to_string_lossy().ends_with(".slice") {
                walk(&e.path(), tag, depth - 1, out);
            }
        }
    }
    for root in places {
        walk(&root, tag, 3, &mut out);
    }
    out.sort();
    out.dedup();
    out
}

/// Remove a cgroup directory and the ones below it, deepest first.
fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten().filter(|e| e.path().is_dir()) {
            remove_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}
