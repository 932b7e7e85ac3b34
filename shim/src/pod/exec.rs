//! Running a command in a running container (`podshim exec`, and through it exec probes and exec
//! lifecycle hooks): a libcontainer tenant process that joins the container's namespaces and
//! cgroup. The caller must be single-threaded: libcontainer forks it, and the command becomes
//! the caller's child.
//!
//! The command gets the container's own process settings (user and groups, environment, working
//! directory, capabilities, rlimits, no-new-privileges, `oom_score_adj`) with only `args` and
//! `terminal` replaced, as containerd's CRI plugin builds an exec process from the container's
//! spec (`execInternal`). libcontainer's tenant builder would otherwise run it as root in `/`.
//! Caveat: libcontainer 0.7 rebuilds the tenant's `linux` section from the namespaces, the
//! cgroup path, personality and time offsets only, so a `linux.seccomp` profile of the container
//! would not apply to the command (podshim sets none yet; when it does, apply it in
//! `TenantExecutor`).
//!
//! The command dies with the process that started it: it gets `PR_SET_PDEATHSIG` SIGKILL, so a
//! `podshim exec` killed by a probe timeout (SIGKILL, no chance to clean up) takes its command
//! with it instead of leaving it running in the container forever.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::chain;
use crate::config::Config;
use crate::sys;

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("container {id} is not running (libcontainer state {status})")]
    NotRunning { id: String, status: String },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the spec of container {id}: {detail}")]
    Spec { id: String, detail: String },
    #[error("cannot start the command in container {id}: {detail}")]
    Start { id: String, detail: String },
    #[error("cannot receive the terminal of the command from {path}")]
    Console {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Where the command's standard streams go.
pub enum Stdio {
    /// These descriptors become its stdin, stdout and stderr.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A new pseudo-terminal is its stdin, stdout, stderr and controlling terminal, with this
    /// window size from the start; the caller gets the master side.
    Tty(Option<sys::WinSize>),
}

/// A started command: its PID (the caller's child, to be waited for) and the pty master with
/// `Stdio::Tty`.
#[derive(Debug)]
pub struct Exec {
    pub pid: Pid,
    pub pty: Option<OwnedFd>,
}

/// Whether the container `id` exists and runs (as libcontainer sees it).
fn running(runtime_dir: &Path, id: &str) -> Result<Container, ExecError> {
    let dir = runtime_dir.join(id);
    if !dir.join("state.json").exists() {
        return Err(ExecError::NotFound { id: id.to_string() });
    }
    let container = Container::load(dir).map_err(|e| ExecError::Spec {
        id: id.to_string(),
        detail: chain(&e),
    })?;
    match container.status() {
        ContainerStatus::Running => Ok(container),
        s => Err(ExecError::NotRunning {
            id: id.to_string(),
            status: s.to_string(),
        }),
    }
}

/// Removes a file when dropped (the per-exec files in the container's state directory).
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Start `args` in the running container `id` (libcontainer state under `cfg.runtime_dir()`).
pub fn start(cfg: &Config, id: &str, args: Vec<String>, stdio: Stdio) -> Result<Exec, ExecError> {
    let runtime_dir = cfg.runtime_dir();
    let container = running(&runtime_dir, id)?;
    let dir = runtime_dir.join(id);
    let io = |what, path: &Path| {
        let path = path.to_path_buf();
        move |source| ExecError::Io { what, path, source }
    };
    let tty = matches!(stdio, Stdio::Tty(_));
    let window = match stdio {
        Stdio::Tty(size) => size,
        Stdio::Fds { .. } => None,
    };

    // The container's process with our command: libcontainer reads it with `with_process`.
    let config = container.bundle().join("config.json");
    let spec = Spec::load(&config).map_err(|e| ExecError::Spec {
        id: id.to_string(),
        detail: chain(&e),
    })?;
    let mut process = spec.process().clone().ok_or_else(|| ExecError::Spec {
        id: id.to_string(),
        detail: format!("{} has no process", config.display()),
    })?;
    process.set_args(Some(args)).set_terminal(Some(tty));
    // Files of this exec live in the container's state directory, so that deleting the
    // container removes whatever a killed `podshim exec` could not.
    let me = std::process::id();
    let process_path = dir.join(format!("exec-{me}.json"));
    let _process_file = Remove(process_path.clone());
    let json = serde_json::to_vec(&process).expect("a process serializes");
    crate::private::write_file(&process_path, &json).map_err(io("write", &process_path))?;

    // With a terminal, the command's init sends the pty master over a Unix socket. Bound
    // through /proc/self/fd so that a long state path never exceeds sun_path's 108 bytes.
    let console = if tty {
        let dirfd: OwnedFd = fs::File::open(&dir).map_err(io("open", &dir))?.into();
        let name = format!("exec-{me}.sock");
        let path = PathBuf::from(format!(
            "/proc/self/fd/{}/{name}",
            std::os::fd::AsRawFd::as_raw_fd(&dirfd)
        ));
        let listener = UnixListener::bind(&path).map_err(io("listen on", &dir.join(&name)))?;
        Some((dirfd, path, Remove(dir.join(&name)), listener))
    } else {
        None
    };

    let parent = sys::pidfd_open(me as i32).map_err(io("open a pidfd for", Path::new("self")))?;
    let executor = TenantExecutor {
        parent: Arc::new(parent),
        window,
    };
    let start = |e: libcontainer::error::LibcontainerError| ExecError::Start {
        id: id.to_string(),
        detail: chain(&e),
    };
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(&runtime_dir)
        .map_err(start)?
        .with_console_socket(console.as_ref().map(|c| &c.1));
    if let Stdio::Fds {
        stdin,
        stdout,
        stderr,
    } = stdio
    {
        builder = builder
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr);
    }
    // libcontainer leaves a `tenant-notify-<random>.sock` (and with a terminal a
    // `tenant-tty-<random>.sock` link) in the container directory at every exec; exec probes run
    // every few seconds for days, so remove them. Execs of one container take turns (a file
    // lock, released by the kernel even if this process is killed), so that the new ones are
    // this exec's and never those of a concurrent exec still using them.
    let lock_path = dir.join("exec.lock");
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open", &lock_path))?;
    let lock = Flock::lock(lock, FlockArg::LockExclusive)
        .map_err(|(_, e)| io("lock", &lock_path)(e.into()))?;
    let before = tenant_files(&dir);
    let built = builder
        .validate_id()
        .and_then(|b| {
            b.as_tenant()
                .with_process(Some(&process_path))
                .with_detach(tty)
                .build()
        })
        .map_err(start);
    for f in tenant_files(&dir).difference(&before) {
        let _ = fs::remove_file(dir.join(f));
    }
    drop(lock);
    let pid = built?;

    let pty = match console {
        None => None,
        Some((_dirfd, _path, _socket_file, listener)) => Some(receive_master(&listener).map_err(
            |source| ExecError::Console {
                path: dir.join(format!("exec-{me}.sock")),
                source,
            },
        )?),
    };
    Ok(Exec { pid, pty })
}

/// The pty master the command's init sent: it connected and sent it before `build()` returned,
/// so nothing here blocks.
fn receive_master(listener: &UnixListener) -> io::Result<OwnedFd> {
    listener.set_nonblocking(true)?;
    let (conn, _) = listener.accept()?;
    conn.set_nonblocking(false)?;
    sys::recv_fd(conn.as_fd())
}

/// The files libcontainer makes for tenants in a container directory.
fn tenant_files(dir: &Path) -> HashSet<std::ffi::OsString> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().starts_with("tenant-"))
        .collect()
}

/// libcontainer's default executor, plus two things done in the command's init just before it
/// tells the caller it is ready (`setup_envs`, after the last credential change, which would
/// clear the death signal):
/// - the command gets SIGKILL when the process that started it dies (`PR_SET_PDEATHSIG`); if
///   that process died before, its pidfd (inherited through the fork) is already readable and
///   the init gives up instead of waiting for ever for a start signal;
/// - with a terminal, its window size is set before the command runs (libcontainer 0.7 ignores
///   `process.consoleSize`), so a program that asks at once does not see 0x0.
#[derive(Clone)]
struct TenantExecutor {
    parent: Arc<OwnedFd>,
    window: Option<sys::WinSize>,
}

impl Executor for TenantExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
            .map_err(|e| ExecutorSetEnvsError::Other(format!("PR_SET_PDEATHSIG: {e}")))?;
        let mut fds = [PollFd::new(self.parent.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0) {
            return Err(ExecutorSetEnvsError::Other(
                "the process that started the command has exited".into(),
            ));
        }
        if let Some(size) = self.window {
            // stdin is the pty's slave side by now (libcontainer's `setup_console`).
            let _ = sys::set_window_size(std::io::stdin(), size);
        }
        DefaultExecutor {}.setup_envs(envs)
    }
}
