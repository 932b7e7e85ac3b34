//! Running a process in a running container (`podshim exec`, exec probes and hooks, a shim's
//! `Exec`): a libcontainer tenant process that joins the container's namespaces and cgroup.
//! libcontainer forks the caller, so this runs in a single-threaded process (the CLI) or in the
//! runtime helper; the process becomes the caller's child.
//!
//! [`process_for`] gives a command the container's own process settings (user and groups,
//! environment, working directory, capabilities, rlimits, no-new-privileges, `oom_score_adj`)
//! with only `args` and `terminal` replaced, as containerd's CRI plugin builds an exec process
//! from the container's spec (`execInternal`); a shim gets the whole process from containerd.
//! libcontainer 0.7 rebuilds the tenant's `linux` section from the namespaces, the cgroup path,
//! personality and time offsets only, leaving out the container's `linux.seccomp`; the
//! `TenantExecutor` installs it (see [`with_seccomp`]), so an exec'd command is filtered as the
//! container's own processes are.
//!
//! With `die_with_caller`, the command dies with the process that started it: it gets
//! `PR_SET_PDEATHSIG` SIGKILL, so a `podshim exec` killed by a probe timeout (SIGKILL, no chance
//! to clean up) takes its command with it instead of leaving it running in the container for
//! ever. A shim's exec lives until it exits.

use std::collections::HashSet;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxSeccomp, Process, Spec,
};
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{
    Executor, ExecutorError, ExecutorSetEnvsError, ExecutorValidationError,
};
use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::console::ConsoleSocket;
use crate::error::Error;
use crate::state::ContainerState;
use crate::{chain, sys};

/// Where the command's standard streams go.
pub enum ExecStdio {
    /// These descriptors become its stdin, stdout and stderr.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A new pseudo-terminal is its stdin, stdout, stderr and controlling terminal, with this
    /// window size from the start; the caller gets the master side.
    Tty(Option<sys::WinSize>),
    /// A new pseudo-terminal whose master side goes to this Unix socket (the OCI console
    /// socket, which a containerd shim is given).
    Console(PathBuf),
}

/// A started command: its PID (the caller's child, to be waited for) and the pty master with
/// `Stdio::Tty`.
#[derive(Debug)]
pub struct Exec {
    pub pid: Pid,
    pub pty: Option<OwnedFd>,
}

/// Whether the container `id` exists and runs (as libcontainer sees it).
fn running(runtime_dir: &Path, id: &str) -> Result<Container, Error> {
    let dir = runtime_dir.join(id);
    if !dir.join("state.json").exists() {
        return Err(Error::NotFound { id: id.to_string() });
    }
    let container = Container::load(dir).map_err(|e| Error::Spec {
        id: id.to_string(),
        detail: chain(&e),
    })?;
    let state = match container.status() {
        ContainerStatus::Running => return Ok(container),
        ContainerStatus::Paused => ContainerState::Paused,
        ContainerStatus::Created | ContainerStatus::Creating => ContainerState::Created,
        ContainerStatus::Stopped => ContainerState::Stopped,
    };
    Err(Error::State {
        id: id.to_string(),
        state,
        operation: "exec in",
    })
}

/// Removes a file when dropped (the per-exec files in the container's state directory).
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// The container's own process with `args` and `terminal` replaced (what the CRI execs).
pub fn process_for(
    runtime_dir: &Path,
    id: &str,
    args: Vec<String>,
    tty: bool,
) -> Result<Process, Error> {
    let container = running(runtime_dir, id)?;
    let config = container.bundle().join("config.json");
    let spec = Spec::load(&config).map_err(|e| Error::Spec {
        id: id.to_string(),
        detail: chain(&e),
    })?;
    let mut process = spec.process().clone().ok_or_else(|| Error::Spec {
        id: id.to_string(),
        detail: format!("{} has no process", config.display()),
    })?;
    process.set_args(Some(args)).set_terminal(Some(tty));
    Ok(process)
}

/// Start `process` in the running container `id` (libcontainer state under `runtime_dir`).
pub fn start(
    runtime_dir: &Path,
    id: &str,
    process: Process,
    stdio: ExecStdio,
    die_with_caller: bool,
) -> Result<Exec, Error> {
    let container = running(runtime_dir, id)?;
    let (process, seccomp) = with_seccomp(&container, id, process)?;
    let dir = runtime_dir.join(id);
    let io = |what, path: &Path| Error::io(what, path);
    let window = match stdio {
        ExecStdio::Tty(size) => size,
        _ => None,
    };
    let tty = matches!(stdio, ExecStdio::Tty(_));
    // With a terminal the init detaches from the caller's stdio (libcontainer's console setup).
    let detach = tty || matches!(stdio, ExecStdio::Console(_));

    // Files of this exec live in the container's state directory, so that deleting the
    // container removes whatever a killed `podshim exec` could not.
    let me = std::process::id();
    let process_path = dir.join(format!("exec-{me}.json"));
    let _process_file = Remove(process_path.clone());
    let json = serde_json::to_vec(&process).expect("a process serializes");
    crate::private::write_file(&process_path, &json).map_err(io("write", &process_path))?;

    // With a terminal of its own, the command's init sends the pty master over a Unix socket.
    let console = if tty {
        let name = format!("exec-{me}.sock");
        Some(ConsoleSocket::bind(&dir, &name).map_err(io("listen on", &dir.join(&name)))?)
    } else {
        None
    };

    let parent = if die_with_caller {
        let fd = sys::pidfd_open(me as i32).map_err(io("open a pidfd for", Path::new("self")))?;
        Some(Arc::new(fd))
    } else {
        None
    };
    let pid = container.pid().map_or(0, |p| p.as_raw());
    let userns = crate::userns::TenantUserns::of(pid, &process).map_err(|e| Error::Runtime {
        container: id.to_string(),
        action: "exec in",
        detail: format!("cannot open its user namespace: {e}"),
    })?;
    let executor = TenantExecutor {
        parent,
        window,
        seccomp,
        userns,
    };
    let start = |e: libcontainer::error::LibcontainerError| Error::Runtime {
        container: id.to_string(),
        action: "exec in",
        detail: chain(&e),
    };
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(executor)
        .with_root_path(runtime_dir)
        .map_err(start)?
        .with_console_socket(console.as_ref().map(ConsoleSocket::path));
    if let ExecStdio::Console(path) = &stdio {
        builder = builder.with_console_socket(Some(path));
    }
    if let ExecStdio::Fds {
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
                .with_detach(detach)
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
        Some(console) => Some(console.receive().map_err(io(
            "receive the terminal of the command from",
            console.file(),
        ))?),
    };
    Ok(Exec { pid, pty })
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

/// The container's seccomp filter for an exec'd process, which libcontainer 0.7 leaves out (it
/// rebuilds a tenant's `linux` section without `seccomp`), as runc applies it to every process
/// of a container.
///
/// Without no-new-privileges, installing a filter needs CAP_SYS_ADMIN, which the process has
/// dropped by the time an executor runs (runc installs the filter before it drops
/// capabilities). So the process is set up with CAP_SYS_ADMIN and CAP_SETPCAP added to its
/// bounding, effective and permitted sets, installs the filter, then drops to its own sets
/// (`Seccomp::restore`) before it is reported ready; it runs nothing of the user's in between.
fn with_seccomp(
    container: &Container,
    id: &str,
    mut process: Process,
) -> Result<(Process, Option<Seccomp>), Error> {
    let config = container.bundle().join("config.json");
    let spec = Spec::load(&config).map_err(|e| Error::Spec {
        id: id.to_string(),
        detail: chain(&e),
    })?;
    let Some(profile) = spec.linux().as_ref().and_then(|l| l.seccomp().clone()) else {
        return Ok((process, None));
    };
    if process.no_new_privileges() == Some(true) {
        return Ok((
            process,
            Some(Seccomp {
                profile,
                restore: None,
            }),
        ));
    }
    let own = process.capabilities().clone().unwrap_or_default();
    let add = |set: &Option<Capabilities>| {
        let mut set = set.clone().unwrap_or_default();
        set.insert(Capability::SysAdmin);
        set.insert(Capability::Setpcap);
        Some(set)
    };
    let mut raised = own.clone();
    raised
        .set_bounding(add(own.bounding()))
        .set_effective(add(own.effective()))
        .set_permitted(add(own.permitted()));
    process.set_capabilities(Some(raised));
    Ok((
        process,
        Some(Seccomp {
            profile,
            restore: Some(own),
        }),
    ))
}

/// A seccomp filter to install in an exec'd process, and the capabilities to drop to after.
#[derive(Clone)]
struct Seccomp {
    profile: LinuxSeccomp,
    restore: Option<LinuxCapabilities>,
}

impl Seccomp {
    fn install(&self) -> Result<(), ExecutorSetEnvsError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            ExecutorSetEnvsError::Other(format!("{what} for the exec'd process: {e}"))
        };
        libcontainer::seccomp::initialize_seccomp(&self.profile)
            .map_err(|e| fail("seccomp", &e))?;
        if let Some(caps) = &self.restore {
            let syscall = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, syscall.as_ref())
                .map_err(|e| fail("capabilities", &e))?;
        }
        Ok(())
    }
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
    /// The caller's pidfd, when the command dies with it.
    parent: Option<Arc<OwnedFd>>,
    window: Option<sys::WinSize>,
    seccomp: Option<Seccomp>,
    /// The container's user namespace, when it has one of its own (`hostUsers: false`).
    userns: Option<crate::userns::TenantUserns>,
}

impl Executor for TenantExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // A refused execve is printed on the command's stderr and exits 1, as runc's.
        crate::launch::exec(spec, None)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        crate::spawner::validate(spec)
    }

    fn setup_envs(
        &self,
        envs: std::collections::HashMap<String, String>,
    ) -> Result<(), ExecutorSetEnvsError> {
        // First: it changes credentials, which clears the death signal set below.
        if let Some(userns) = &self.userns {
            userns.enter().map_err(ExecutorSetEnvsError::Other)?;
        }
        if let Some(parent) = &self.parent {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|e| ExecutorSetEnvsError::Other(format!("PR_SET_PDEATHSIG: {e}")))?;
            let mut fds = [PollFd::new(parent.as_fd(), PollFlags::POLLIN)];
            if poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0) {
                return Err(ExecutorSetEnvsError::Other(
                    "the process that started the command has exited".into(),
                ));
            }
        }
        if let Some(size) = self.window {
            // stdin is the pty's slave side by now (libcontainer's `setup_console`).
            let _ = sys::set_window_size(std::io::stdin(), size);
        }
        DefaultExecutor {}.setup_envs(envs)?;
        // Last, so that what is left to run of libcontainer is as little as runc runs filtered.
        if let Some(seccomp) = &self.seccomp {
            seccomp.install()?;
        }
        Ok(())
    }
}
