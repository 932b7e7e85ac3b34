//! A shim binary driven directly, without containerd, exactly as containerd drives it: `start`
//! (arguments, environment, stdin, the reply on a combined stdout+stderr pipe read to EOF), the
//! task service over ttrpc (Connect, Create with an overlay rootfs mount and a stdout FIFO, State,
//! Start, Wait, Delete, Shutdown), the events it publishes to containerd's ttrpc address, the
//! error codes of wrong calls, and `delete` after the shim was SIGKILLed (also with a
//! systemd-form `cgroupsPath`, whose `.slice` parents it must remove). Runs against Debian's
//! containerd-shim-runc-v2 with containerd 1.6's invocation (task API v2); the same bodies run
//! podshim's shim with 1.6's and with 2.3's invocation (task API v3) once it exists.

mod support;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::{
    CheckpointTaskRequest, CreateTaskRequest, DeleteRequest, DeleteResponse, Empty,
    ExecProcessRequest, Mount, PauseRequest, ResumeRequest, Status, WaitRequest, WaitResponse,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::json;
use support::cleanup::{self, shim_socket};
use support::config::Layout;
use support::handler::Handler;
use support::shim::events::EventSink;
use support::shim::protocol::{Caller, ShimConfig, TaskApi};
use support::shim::task::TaskClient;
use support::shim::{bundle, process, Shim};
use support::{answers, unique_tag, wait_until};

/// (handler, caller): the runtime under test and whose invocation of it to reproduce.
type Case = (Handler, Caller);

handler_tests!(
    runc_containerd16,
    (Handler::runc(), Caller::Containerd16),
    [shim_runs_a_bundle, killed_shim_is_cleaned_up_by_delete]
);

handler_tests!(
    podshim_containerd16,
    (Handler::podshim(), Caller::Containerd16),
    [
        shim_runs_a_bundle,
        killed_shim_is_cleaned_up_by_delete,
        killed_shim_leaves_no_systemd_slices
    ]
);

handler_tests!(
    podshim_containerd23,
    (Handler::podshim(), Caller::Containerd23),
    [
        shim_runs_a_bundle,
        killed_shim_is_cleaned_up_by_delete,
        killed_shim_leaves_no_systemd_slices
    ]
);

// A measurement, not a check (`--ignored`): how long `start` takes until the server answers.
handler_tests!(
    #[ignore = "a measurement: cargo test --test shim_protocol -- --ignored start_time"]
    start_time_runc,
    (Handler::runc(), Caller::Containerd16),
    [shim_start_time]
);

handler_tests!(
    #[ignore = "a measurement: cargo test --test shim_protocol -- --ignored start_time"]
    start_time_podshim,
    (Handler::podshim(), Caller::Containerd16),
    [shim_start_time]
);

// podshim's own answers to wrong calls (runc's shim answers several of them UNKNOWN).
handler_tests!(
    podshim_errors,
    (Handler::podshim(), Caller::Containerd16),
    [wrong_calls_are_clear_errors_and_leave_nothing]
);

const NAMESPACE: &str = "podshim-test";

/// Everything a shim test makes lives in a daemon-like layout (bundles under
/// `state/io.containerd.runtime.v2.task`, cgroups under `/podshim-test-TAG`), so the containerd
/// tests' leftover check and cleanup apply as they are; the events socket stands where
/// containerd's ttrpc socket would.
struct Env {
    layout: Layout,
    rootfs: PathBuf,
    events: EventSink,
    ids: Vec<(String, String)>,
    done: bool,
}

impl Env {
    fn new() -> Self {
        podshim_tests::require_root();
        let (tag, _) = unique_tag();
        let dir = std::env::temp_dir().join(format!("podshim-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout::new(&dir, &tag);
        let rootfs = bundle::unpack_busybox(&dir.join("image"));
        let events = EventSink::serve(&layout.ttrpc_address);
        Env {
            layout,
            rootfs,
            events,
            ids: Vec::new(),
            done: false,
        }
    }

    fn config(&mut self, id: &str, bundle: &Path, caller: Caller) -> ShimConfig {
        self.ids.push((NAMESPACE.into(), id.into()));
        ShimConfig {
            id: id.into(),
            namespace: NAMESPACE.into(),
            bundle: bundle.to_path_buf(),
            grpc_address: self.layout.address.display().to_string(),
            ttrpc_address: self.layout.ttrpc_address.display().to_string(),
            containerd_binary: support::installed("containerd").display().to_string(),
            containerd_version: match caller {
                Caller::Containerd16 => "1.6.20",
                Caller::Containerd23 => "2.3.4",
            }
            .into(),
            socket_dir: "/run/containerd/s".into(),
            debug: false,
            options: None,
            extra_env: Vec::new(),
        }
    }

    /// A bundle for `args` and the Create request containerd would send for it: the overlay
    /// rootfs, stdout to a FIFO (returned, opened for reading), runc's options keeping its state
    /// in the test's directory.
    fn bundle(
        &self,
        h: &Handler,
        id: &str,
        args: &[&str],
    ) -> (PathBuf, CreateTaskRequest, [std::fs::File; 2]) {
        let spec = bundle::spec(args, &format!("{}/{id}", self.layout.cgroup_root));
        let tasks = self.layout.state.join("io.containerd.runtime.v2.task");
        let path = bundle::make(&tasks, NAMESPACE, id, &spec);
        let snapshot = self.layout.dir.join("snapshots").join(id);
        let rootfs: Mount = bundle::overlay(&self.rootfs, &snapshot);
        let fifos = self.layout.dir.join("fifo").join(id);
        std::fs::create_dir_all(&fifos).unwrap();
        // Both output FIFOs, as containerd's cio makes them (runc's shim refuses an empty
        // stderr next to a stdout).
        let open = |name: &str| {
            let path = fifos.join(name);
            nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
            let reader = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                .open(&path)
                .unwrap();
            (path, reader)
        };
        let (stdout, reader) = open("stdout");
        let (stderr, stderr_reader) = open("stderr");
        let mut req = CreateTaskRequest::new();
        req.id = id.into();
        req.bundle = path.display().to_string();
        req.rootfs = vec![rootfs];
        req.stdout = stdout.display().to_string();
        req.stderr = stderr.display().to_string();
        if h.name == "runc" {
            let mut o = RuncOptions::new();
            o.root = self.layout.dir.join("runc").display().to_string();
            let mut any = Any::new();
            any.type_url = "containerd.runc.v1.Options".into();
            any.value = o.write_to_bytes().unwrap();
            req.options = Some(any).into();
        }
        (path, req, [reader, stderr_reader])
    }

    /// Fail if the shim left anything (process, container, mount, cgroup, runc state, socket).
    fn finish(mut self) {
        self.done = true;
        let left = cleanup::leftovers(&self.layout, None, &[], &self.ids);
        cleanup::remove_everything(&self.layout, None, &self.ids);
        assert!(left.is_empty(), "the shim left:\n{left}");
        let _ = std::fs::remove_dir_all(&self.layout.dir);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if !self.done {
            cleanup::remove_everything(&self.layout, None, &self.ids);
            eprintln!("shim test directory kept: {}", self.layout.dir.display());
        }
    }
}

fn status_of(task: &TaskClient, id: &str) -> Status {
    task.state(id, "")
        .unwrap_or_else(|e| panic!("State: {e:?}"))
        .status
        .enum_value_or_default()
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
}

fn shim_runs_a_bundle((h, caller): &Case) {
    let mut env = Env::new();
    let id = "hello";
    let (path, create, [mut stdout, _stderr]) =
        env.bundle(h, id, &["sh", "-c", "echo hello from the shim; exit 3"]);
    let config = env.config(id, &path, *caller);
    let mut shim = Shim::start(&h.shim, config, *caller);
    // containerd 1.6 reads a bare address and speaks task v2; a shim for 2.3 answers version 3
    // (the task v3 API), as containerd-shim-runc-v2 of 2.x does.
    let want_version = match caller {
        Caller::Containerd16 => 2,
        Caller::Containerd23 => 3,
    };
    assert_eq!(shim.reply.version, want_version, "{:?}", shim.reply);
    // The socket is where containerd (and our cleanup) expect it.
    assert_eq!(
        shim.socket(),
        shim_socket(&env.layout.address, NAMESPACE, id),
        "reply {:?}",
        shim.reply
    );
    let connect = shim.task.connect_info(id).unwrap();
    assert!(pid_alive(connect.shim_pid));

    let created = shim
        .task
        .create(&create)
        .unwrap_or_else(|e| panic!("Create: {e:?}\nshim log: {}", shim.log.text()));
    assert!(created.pid > 0);
    let after_create = status_of(&shim.task, id);
    let started = shim.task.start(id, "").unwrap();
    assert_eq!(started.pid, created.pid);
    let waited = shim.task.wait(id, Duration::from_secs(20)).unwrap();
    let output = process::read_fifo(&mut stdout, Duration::from_secs(5));
    let after_exit = shim.task.state(id, "").unwrap();
    let deleted = shim.task.delete(id).unwrap();
    assert_eq!(after_create, Status::CREATED);
    assert_eq!(waited.exit_status, 3);
    assert_eq!(output, "hello from the shim\n");
    assert_eq!(after_exit.status.enum_value_or_default(), Status::STOPPED);
    assert_eq!((deleted.exit_status, deleted.pid), (3, created.pid));
    env.events
        .wait_for(id, "/tasks/delete", Duration::from_secs(10));
    let topics = env.events.topics_of(id);
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events in order"
    );

    // Wrong calls and their ttrpc codes (containerd maps them back to errdefs).
    let state_unknown = shim.task.state("nope", "").unwrap_err().code();
    let delete_again = shim.task.delete(id).unwrap_err().code();
    let start_unknown = shim.task.start("nope", "").unwrap_err().code();
    let kill_unknown = shim.task.kill("nope", 9, false).unwrap_err().code();
    // The client puts the service name on the wire: containerd-shim-runc-v2 1.6 serves only
    // containerd.task.v2.Task and answers the v3 name UNIMPLEMENTED (a shim may serve both).
    if h.name == "runc" {
        let v3 = TaskClient::connect(&shim.reply.address, TaskApi::V3)
            .unwrap()
            .state(id, "")
            .map(|_| "OK".to_string())
            .unwrap_or_else(|e| e.code());
        assert_eq!(v3, "UNIMPLEMENTED");
    }

    shim.task.shutdown(id).unwrap();
    wait_until(Duration::from_secs(10), "the shim to exit", || {
        (!pid_alive(connect.shim_pid)).then_some(())
    });
    wait_until(Duration::from_secs(5), "the shim socket to go", || {
        (!shim.socket().exists()).then_some(())
    });
    eprintln!("{} start took {:?}", h.name, shim.start_time);
    answers::check(
        h,
        "shim_runs_a_bundle",
        &json!({
            "status_after_create": format!("{after_create:?}"),
            "wait_exit_status": waited.exit_status,
            "stdout": output,
            "delete_exit_status": deleted.exit_status,
            "events": topics,
            "errors": {
                "state_unknown_id": state_unknown,
                "delete_twice": delete_again,
                "start_unknown_id": start_unknown,
                "kill_unknown_id": kill_unknown,
            },
        }),
    );
    env.finish();
}

fn killed_shim_is_cleaned_up_by_delete((h, caller): &Case) {
    let mut env = Env::new();
    let id = "orphan";
    let (path, create, _stdout) = env.bundle(h, id, &["sleep", "600"]);
    let config = env.config(id, &path, *caller);
    let shim = Shim::start(&h.shim, config.clone(), *caller);
    let connect = shim.task.connect_info(id).unwrap();
    let task_pid = shim.task.create(&create).unwrap().pid;
    shim.task.start(id, "").unwrap();
    assert_eq!(status_of(&shim.task, id), Status::RUNNING);
    kill(Pid::from_raw(connect.shim_pid as i32), Signal::SIGKILL).unwrap();
    wait_until(Duration::from_secs(10), "the shim to die", || {
        (!pid_alive(connect.shim_pid)).then_some(())
    });
    assert!(pid_alive(task_pid), "the container died with its shim");
    drop(shim);
    // containerd's cleanup of a dead shim: `<shim> ... delete`.
    let deleted = Shim::delete_action(&h.shim, &config, *caller);
    assert!(!pid_alive(task_pid), "delete left the container running");
    let rootfs = path.join("rootfs");
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()));
    assert!(!mounted, "delete left the rootfs mounted");
    // A SIGKILLed shim cannot remove its socket; containerd 1.6 removes it when it next starts
    // a shim with that id. Recorded, then removed here.
    let socket = shim_socket(&env.layout.address, NAMESPACE, id);
    let socket_left = socket.exists();
    let _ = std::fs::remove_file(&socket);
    assert_eq!(deleted.exit_status, 137);
    answers::check(
        h,
        "killed_shim_is_cleaned_up_by_delete",
        &json!({
            "delete_exit_status": deleted.exit_status,
            "delete_reports_pid": deleted.pid != 0,
            "socket_left_after_sigkill": socket_left,
        }),
    );
    env.finish();
}

/// A task in a systemd-form `cgroupsPath` with runc's options asking for the systemd cgroup
/// driver (as the CRI sends them with `SystemdCgroup = true`): podshim lays it out as systemd
/// would on this host without systemd (runc's shim would need systemd itself, so podshim's
/// layout is checked here, not compared). The shim is SIGKILLed: `delete` removes the `.slice`
/// parents the Create made, recorded in the bundle, and no directory of them is left in any
/// hierarchy.
fn killed_shim_leaves_no_systemd_slices((h, caller): &Case) {
    let mut env = Env::new();
    let id = "sdorphan";
    let (path, mut create, _stdout) = env.bundle(h, id, &["sleep", "600"]);
    // Two `.slice` levels of the test's own (`U-a.slice` nests in `U.slice` by systemd's naming;
    // U has no `-`), so that parallel tests share no parent.
    let u = env.layout.cgroup_root.replace(['/', '-'], "");
    let config_json = path.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config_json).unwrap()).unwrap();
    spec["linux"]["cgroupsPath"] = json!(format!("{u}-a.slice:podshim:{id}"));
    std::fs::write(&config_json, serde_json::to_vec(&spec).unwrap()).unwrap();
    let mut o = RuncOptions::new();
    o.systemd_cgroup = true;
    let mut any = Any::new();
    any.type_url = "containerd.runc.v1.Options".into();
    any.value = o.write_to_bytes().unwrap();
    create.options = Some(any).into();
    let top = format!("/{u}.slice");
    let slice = format!("{top}/{u}-a.slice");
    let config = env.config(id, &path, *caller);
    let shim = Shim::start(&h.shim, config.clone(), *caller);
    let connect = shim.task.connect_info(id).unwrap();
    let task_pid = shim.task.create(&create).unwrap().pid;
    shim.task.start(id, "").unwrap();
    let seen = std::fs::read_to_string(format!("/proc/{task_pid}/cgroup")).unwrap();
    let scope = format!("{slice}/podshim-{id}.scope");
    for ctl in ["memory", "pids"] {
        let line = seen.lines().find(|l| l.split(':').nth(1) == Some(ctl));
        assert_eq!(
            line.and_then(|l| l.splitn(3, ':').nth(2)),
            Some(scope.as_str()),
            "{seen}"
        );
    }
    assert!(path.join("podshim-slices.json").exists(), "no record");
    kill(Pid::from_raw(connect.shim_pid as i32), Signal::SIGKILL).unwrap();
    wait_until(Duration::from_secs(10), "the shim to die", || {
        (!pid_alive(connect.shim_pid)).then_some(())
    });
    drop(shim);
    let deleted = Shim::delete_action(&h.shim, &config, *caller);
    assert_eq!(deleted.exit_status, 137);
    assert!(!pid_alive(task_pid), "delete left the container running");
    let _ = std::fs::remove_file(shim_socket(&env.layout.address, NAMESPACE, id));
    let left = cleanup::cgroup_dirs(&slice);
    assert!(left.is_empty(), "slices left: {left:?}");
    let left = cleanup::cgroup_dirs(&top);
    assert!(left.is_empty(), "slices left: {left:?}");
    assert!(!path.join("podshim-slices.json").exists(), "record left");
    env.finish();
}

/// Nothing of container `id` is left on the host: its rootfs mount, its journal, its
/// libcontainer state, its cgroup.
fn nothing_left_of(env: &Env, bundle: &Path, id: &str) {
    let rootfs = bundle.join("rootfs");
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(rootfs.to_str().unwrap()));
    assert!(!mounted, "{id}: rootfs left mounted");
    assert!(
        !bundle.join("podshim-journal.json").exists(),
        "{id}: journal left"
    );
    // The shim's libcontainer state: /run/containerd/podshim/<sha256 of containerd's address,
    // 12 digits>/<namespace>/<id>.
    let address = env.layout.address.display().to_string();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(address.as_bytes()));
    let state = Path::new("/run/containerd/podshim")
        .join(&digest[..12])
        .join(NAMESPACE)
        .join(id);
    assert!(!state.exists(), "{id}: {} left", state.display());
    let cgroup = format!("{}/{id}", env.layout.cgroup_root);
    let dirs = cleanup::cgroup_dirs(&cgroup);
    assert!(dirs.is_empty(), "{id}: cgroups left: {dirs:?}");
}

fn wrong_calls_are_clear_errors_and_leave_nothing((h, caller): &Case) {
    let mut env = Env::new();
    let id = "w1";
    let (path, create, _out) = env.bundle(h, id, &["sleep", "600"]);
    let config = env.config(id, &path, *caller);
    let mut shim = Shim::start(&h.shim, config, *caller);
    let shim_pid = shim.task.connect_info(id).unwrap().shim_pid;
    let code = |r: Result<Empty, support::shim::task::CallError>| match r {
        Ok(_) => "OK".to_string(),
        Err(e) => e.code(),
    };
    // Start, Kill and State before Create: the task does not exist.
    assert_eq!(shim.task.start(id, "").unwrap_err().code(), "NOT_FOUND");
    assert_eq!(shim.task.state(id, "").unwrap_err().code(), "NOT_FOUND");
    let pid = shim.task.create(&create).unwrap().pid;
    assert_eq!(
        shim.task.create(&create).unwrap_err().code(),
        "ALREADY_EXISTS"
    );

    // A malformed bundle: INVALID_ARGUMENT, and nothing of it is left (the shim serves on).
    let (broken, mut req, _o) = env.bundle(h, "broken", &["true"]);
    std::fs::write(broken.join("config.json"), "{not json").unwrap();
    req.id = "broken".into();
    let e = shim.task.create(&req).unwrap_err();
    assert_eq!(e.code(), "INVALID_ARGUMENT", "{e:?}");
    nothing_left_of(&env, &broken, "broken");
    // A command that does not exist: the create fails in the container and is rolled back.
    let (nocmd, req, _o) = env.bundle(h, "nocmd", &["/no/such/command"]);
    let e = shim.task.create(&req).unwrap_err();
    assert!(format!("{e:?}").contains("/no/such/command"), "{e:?}");
    nothing_left_of(&env, &nocmd, "nocmd");

    shim.task.start(id, "").unwrap();
    assert_eq!(
        shim.task.delete(id).unwrap_err().code(),
        "FAILED_PRECONDITION",
        "deleting a running task"
    );
    let mut cp = CheckpointTaskRequest::new();
    cp.id = id.into();
    assert_eq!(code(shim.task.call("Checkpoint", &cp)), "UNIMPLEMENTED");

    // An exec, with its events; then pause and resume.
    let process = json!({"args": ["sh", "-c", "exit 5"], "env": ["PATH=/bin"], "cwd": "/",
                         "user": {"uid": 0, "gid": 0}});
    let mut ex = ExecProcessRequest::new();
    ex.id = id.into();
    ex.exec_id = "e1".into();
    ex.spec = Some(Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
        value: serde_json::to_vec(&process).unwrap(),
        ..Default::default()
    })
    .into();
    assert_eq!(code(shim.task.call("Exec", &ex)), "OK");
    assert_eq!(
        code(shim.task.call("Exec", &ex)),
        "ALREADY_EXISTS",
        "a second exec of that id"
    );
    let exec_pid = shim.task.start(id, "e1").unwrap().pid;
    assert!(exec_pid > 0 && exec_pid != pid);
    let mut w = WaitRequest::new();
    w.id = id.into();
    w.exec_id = "e1".into();
    let waited: WaitResponse = shim.task.call("Wait", &w).unwrap();
    assert_eq!(waited.exit_status, 5);
    let mut del = DeleteRequest::new();
    del.id = id.into();
    del.exec_id = "e1".into();
    let deleted: DeleteResponse = shim.task.call("Delete", &del).unwrap();
    assert_eq!((deleted.pid, deleted.exit_status), (exec_pid, 5));
    let mut p = PauseRequest::new();
    p.id = id.into();
    assert_eq!(code(shim.task.call("Pause", &p)), "OK");
    assert_eq!(status_of(&shim.task, id), Status::PAUSED);
    let mut r = ResumeRequest::new();
    r.id = id.into();
    assert_eq!(code(shim.task.call("Resume", &r)), "OK");
    assert_eq!(status_of(&shim.task, id), Status::RUNNING);

    // Kill, then the idempotent answers containerd relies on.
    shim.task.kill(id, 9, false).unwrap();
    let waited = shim.task.wait(id, Duration::from_secs(20)).unwrap();
    assert_eq!(waited.exit_status, 137);
    assert_eq!(
        shim.task.kill(id, 9, false).unwrap_err().code(),
        "NOT_FOUND"
    );
    shim.task.delete(id).unwrap();
    assert_eq!(shim.task.delete(id).unwrap_err().code(), "NOT_FOUND");
    nothing_left_of(&env, &path, id);
    env.events
        .wait_for(id, "/tasks/delete", Duration::from_secs(10));
    let topics: Vec<String> = env.events.events().into_iter().map(|e| e.topic).collect();
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exec-added",
            "/tasks/exec-started",
            "/tasks/exit",
            "/tasks/paused",
            "/tasks/resumed",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events in order"
    );
    shim.task.shutdown(id).unwrap();
    wait_until(Duration::from_secs(10), "the shim to exit", || {
        (!pid_alive(shim_pid)).then_some(())
    });
    env.finish();
}

/// `start` of a shim until its server answers Connect, then Shutdown, `PODSHIM_BENCH_N` times
/// (default 20): the median, minimum and maximum of the start, from spawning `start` to a parsed
/// reply (the server listens by then) and to Connect's answer.
fn shim_start_time((h, caller): &Case) {
    let n: usize = std::env::var("PODSHIM_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let mut env = Env::new();
    let (mut started, mut answered) = (Vec::new(), Vec::new());
    for i in 0..n {
        let id = format!("t{i}");
        let (path, _create, _fifos) = env.bundle(h, &id, &["true"]);
        let config = env.config(&id, &path, *caller);
        let t0 = std::time::Instant::now();
        let shim = Shim::start(&h.shim, config, *caller);
        let connect = shim.task.connect_info(&id).unwrap();
        answered.push(t0.elapsed().as_secs_f64() * 1e3);
        started.push(shim.start_time.as_secs_f64() * 1e3);
        shim.task.shutdown(&id).unwrap();
        wait_until(Duration::from_secs(10), "the shim to exit", || {
            (!pid_alive(connect.shim_pid)).then_some(())
        });
    }
    let summary = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!(
            "median {:.2} ms (min {:.2}, max {:.2})",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        )
    };
    eprintln!(
        "{} start, {n} runs: reply {}; Connect answered {}",
        h.name,
        summary(&mut started),
        summary(&mut answered)
    );
    env.finish();
}
