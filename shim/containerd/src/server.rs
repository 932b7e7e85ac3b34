//! The shim server: one per Pod, serving the task API on its socket until containerd shuts it
//! down after the last container is deleted.
//!
//! Order matters: the binary is protected first (it is what libcontainer forks into
//! containers), then the runtime helper is forked while this process has one thread, and only
//! then do threads start (events, OOM, exits, ttrpc). Both task API service names are
//! registered (`containerd.task.v2.Task` for containerd 1.x, `containerd.task.v3.Task` for 2.x):
//! their messages are the same.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};

use anyhow::{anyhow, Context};
use containerd_shim_protos::ttrpc::{self, MethodHandler};
use containerd_shim_protos::{create_task, Task};
use nix::sys::signal::{SigSet, Signal};
use podshim_engine::spawner::{Runtime, Spawner};

use crate::args::Args;
use crate::events::{Forwarder, Publish};
use crate::service::Service;
use crate::tasks::Tasks;

/// Where the shim keeps libcontainer's state (one directory per containerd and namespace) and the read-only
/// cgroup skeleton of v1 containers. Short on purpose: sockets are made below it.
pub const STATE_ROOT: &str = "/run/containerd/podshim";

/// libcontainer's state directory for a namespace of the containerd at `address`: task ids are
/// unique in a namespace of one containerd only, and two containerds (a node's and a test's)
/// may use the same namespace and id.
pub fn runtime_dir(address: &str, namespace: &str) -> PathBuf {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(address.as_bytes()));
    Path::new(STATE_ROOT).join(&digest[..12]).join(namespace)
}

type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// The task service under both API versions' names.
fn task_methods(service: Arc<dyn Task + Send + Sync>) -> Methods {
    let v3 = create_task(service.clone());
    let v2: Methods = create_task(service)
        .into_iter()
        .map(|(k, v)| {
            (
                k.replace("/containerd.task.v3.Task/", "/containerd.task.v2.Task/"),
                v,
            )
        })
        .collect();
    v3.into_iter().chain(v2).collect()
}

/// Point stderr at containerd's shim log FIFO in the bundle (`log`), when containerd reads it.
fn open_log() {
    let log = OpenOptions::new()
        .write(true)
        .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
        .open("log")
        .or_else(|_| OpenOptions::new().write(true).open("/dev/null"));
    if let Ok(f) = log {
        let _ = nix::unistd::dup2(f.as_raw_fd(), 2);
    }
}

/// An idle shim holds only what it touches again: once a second without calls or exits has
/// passed after some, the resident pages of the binary and libraries and the free heap are given
/// back (`trim_resident_memory`: this process never unmaps or remaps a file mapping). What the
/// next call needs comes back from the page cache.
fn trim_when_idle(tasks: &Tasks) {
    let mut pending = true;
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        if tasks.take_touched() {
            pending = true;
        } else if pending {
            podshim_engine::sys::trim_resident_memory();
            pending = false;
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    podshim_engine::exe::ensure_protected().context("protect the shim binary")?;
    // The socket `start` listens on for us: kept from the helper and the containers' processes
    // (after `ensure_protected`, which may execute this binary again).
    if let Some(fd) = args.listen_fd {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .context("the listening socket from start")?;
    }
    podshim_engine::sys::reset_ignored_signals();
    let helper = podshim_engine::helper::start().context("fork the runtime helper")?;
    let helper_pid = helper.pid;
    // Threads made from here on inherit the mask: a write to a FIFO whose reader went away
    // fails with EPIPE instead of killing the shim.
    let mut pipe = SigSet::empty();
    pipe.add(Signal::SIGPIPE);
    pipe.thread_block().context("block SIGPIPE")?;
    open_log();

    let socket = args.socket.clone().ok_or_else(|| anyhow!("no -socket"))?;
    let dir = runtime_dir(&args.address, &args.namespace);
    podshim_engine::private::create_dir_all(&dir)
        .with_context(|| format!("create {}", dir.display()))?;
    let rt = Runtime {
        dir,
        cgroup_skeleton: Path::new(STATE_ROOT).join("cgroupfs"),
        spawner: Spawner::Helper(helper),
    };
    let ttrpc_address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
    let forwarder = Arc::new(Forwarder::start(ttrpc_address, args.namespace.clone()));
    let events: Arc<dyn Publish> = forwarder.clone();
    let oom = match crate::oom::Monitor::start(events.clone()) {
        Ok(m) => Some(m),
        Err(e) => {
            crate::log(&format!("no OOM events: {e}"));
            None
        }
    };
    let tasks = Arc::new(Tasks::new(
        rt,
        args.namespace.clone(),
        Path::new(STATE_ROOT).join("console"),
        events,
        oom,
        crate::warm::Warmer::start(),
    ));
    let exits = tasks.clone();
    std::thread::Builder::new()
        .name("exits".into())
        .spawn(move || exits.watch_exits())
        .context("start the exit thread")?;

    let idle = tasks.clone();
    std::thread::Builder::new()
        .name("trim".into())
        .spawn(move || trim_when_idle(&idle))
        .context("start the trim thread")?;

    let (tx, rx) = mpsc::channel();
    let service = Arc::new(Service {
        tasks,
        shutdown: Mutex::new(Some(tx)),
    });
    let path = socket
        .strip_prefix("unix://")
        .unwrap_or(&socket)
        .to_string();
    let server = match args.listen_fd {
        Some(fd) => ttrpc::Server::new()
            .add_listener(fd)
            .context("serve on the socket from start")?,
        None => {
            let _ = std::fs::remove_file(&path);
            ttrpc::Server::new()
                .bind(&socket)
                .with_context(|| format!("listen on {socket}"))?
        }
    };
    let mut server = server
        .register_service(task_methods(service))
        // Few idle workers per connection (a blocked Wait does not count as idle, so the pool
        // still grows with them).
        .set_thread_count_min(1)
        .set_thread_count_default(2)
        .set_thread_count_max(3);
    server.start().context("start the ttrpc server")?;

    let _ = rx.recv();
    // The events of the last calls (the TaskDelete of a `Delete` just before this Shutdown)
    // still go out: containerd takes this process's exit as the end of the task's events.
    let lost = forwarder.flush(std::time::Duration::from_secs(5));
    if lost > 0 {
        crate::log(&format!(
            "exiting with {lost} event(s) containerd did not take"
        ));
    }
    // Let the Shutdown reply go out (containerd also takes a closed connection as done).
    std::thread::sleep(std::time::Duration::from_millis(2));
    let _ = std::fs::remove_file(&path);
    // The helper would only exit once it saw its sockets close, after this process: end it and
    // reap it first, so that nothing of this shim is left once its process is gone (containerd,
    // and the tests, take the shim's exit as the end of everything it ran).
    let _ = nix::sys::signal::kill(helper_pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(helper_pid, None);
    std::process::exit(0);
}
