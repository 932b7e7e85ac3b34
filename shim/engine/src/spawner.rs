//! The one place where libcontainer forks: creating a container's init and starting an exec'd
//! process both clone the calling process and run Rust code in the child, which is only sound in
//! a process with a single thread (a fork copies the calling thread alone; a lock another thread
//! held stays locked for ever in the child).
//!
//! Two ways, one interface:
//! - [`Spawner::InProcess`]: this process forks, after checking that it has one thread. The
//!   `podshim` CLI and the per-Pod supervisors are single-threaded loops; their containers' inits
//!   are their own children, so they reap them and nothing else is needed.
//! - [`Spawner::Helper`]: a helper process forked at the start of a threaded program, before any
//!   thread exists (see [`crate::helper`]), does the forking on request; container inits and exec'd
//!   processes are its children, it reaps them and reports each exit once.

use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::unistd::Pid;

use crate::error::Error;
use crate::{chain, helper};

/// Where a container's init (or an exec'd process) gets its standard streams.
pub enum Stdio {
    /// These descriptors become its stdin, stdout and stderr.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// Its terminal's master side is sent to this Unix socket (the OCI console socket).
    Console(PathBuf),
}

/// A process libcontainer made: its PID and, where the kernel has them, a pidfd.
#[derive(Debug)]
pub struct Created {
    pub pid: Pid,
    pub pidfd: Option<OwnedFd>,
}

/// Who forks for libcontainer.
pub enum Spawner {
    InProcess,
    Helper(helper::Client),
}

/// What a runtime's containers share: libcontainer's state directory, the read-only skeleton of
/// `/sys/fs/cgroup` for v1 containers, and the spawner.
pub struct Runtime {
    pub dir: PathBuf,
    pub cgroup_skeleton: PathBuf,
    pub spawner: Spawner,
}

impl Spawner {
    /// Create the container `id` from the bundle (its `config.json` written): its init waits
    /// for `start`.
    pub fn create(
        &self,
        id: &str,
        runtime_dir: &Path,
        bundle: &Path,
        stdio: Stdio,
    ) -> Result<Created, Error> {
        match self {
            Spawner::InProcess => {
                ensure_single_threaded()?;
                create_here(id, runtime_dir, bundle, stdio)
            }
            Spawner::Helper(client) => client.create(id, runtime_dir, bundle, stdio),
        }
    }

    /// Start `process` in the running container `id`. In-process, the command dies with this
    /// process when `die_with_caller` (a `podshim exec` killed at a probe's timeout); through
    /// the helper it lives until it exits.
    pub fn exec(
        &self,
        id: &str,
        runtime_dir: &Path,
        process: libcontainer::oci_spec::runtime::Process,
        stdio: crate::exec::ExecStdio,
        die_with_caller: bool,
    ) -> Result<crate::exec::Exec, Error> {
        use crate::exec::{Exec, ExecStdio};
        match self {
            Spawner::InProcess => {
                ensure_single_threaded()?;
                crate::exec::start(runtime_dir, id, process, stdio, die_with_caller)
            }
            Spawner::Helper(client) => {
                let stdio = match stdio {
                    ExecStdio::Fds {
                        stdin,
                        stdout,
                        stderr,
                    } => Stdio::Fds {
                        stdin,
                        stdout,
                        stderr,
                    },
                    ExecStdio::Console(path) => Stdio::Console(path),
                    ExecStdio::Tty(_) => {
                        return Err(Error::Spec {
                            id: id.to_string(),
                            detail: "a terminal through the helper needs a console socket".into(),
                        })
                    }
                };
                let created = client.exec(id, runtime_dir, process, stdio)?;
                Ok(Exec {
                    pid: created.pid,
                    pty: None,
                })
            }
        }
    }
}

/// Create the container in this process (the helper calls this too).
pub(crate) fn create_here(
    id: &str,
    runtime_dir: &Path,
    bundle: &Path,
    stdio: Stdio,
) -> Result<Created, Error> {
    let rt = |action: &'static str| {
        let container = id.to_string();
        move |e: libcontainer::error::LibcontainerError| Error::Runtime {
            container,
            action,
            detail: chain(&e),
        }
    };
    // Truncated for this run; Rust opens it close-on-exec.
    let report = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(bundle.join(crate::launch::EXEC_ERROR))
        .ok()
        .map(|f| std::sync::Arc::new(OwnedFd::from(f)));
    let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(SpecExecutor { report })
        .with_root_path(runtime_dir)
        .map_err(rt("create"))?;
    builder = match stdio {
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => builder
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr),
        Stdio::Console(socket) => builder.with_console_socket(Some(socket)),
    };
    // A cgroupsPath still in systemd's `slice:prefix:name` form at this point is for the
    // systemd driver (see `cgroups::cgroupfs_spec_path`, which rewrites it under the cgroupfs
    // driver, so only then is the spec read again): libcontainer's systemd manager then has
    // systemd make the container's scope.
    let systemd = crate::cgroups::Driver::current() == crate::cgroups::Driver::Systemd
        && Spec::load(bundle.join("config.json"))
            .ok()
            .and_then(|s| s.linux().as_ref()?.cgroups_path().clone())
            .is_some_and(|p| crate::cgroups::is_systemd_path(&p.display().to_string()));
    let container = builder
        .validate_id()
        .map_err(rt("create"))?
        .as_init(bundle)
        .with_systemd(systemd)
        .with_detach(true)
        .build()
        .map_err(rt("create"))?;
    let pid = container.pid().ok_or_else(|| Error::Runtime {
        container: id.to_string(),
        action: "create",
        detail: "no init pid in the container state".into(),
    })?;
    // The init is our child and cannot be reaped before we wait for it: the pidfd is its.
    let pidfd = crate::sys::pidfd_open(pid.as_raw()).ok();
    Ok(Created { pid, pidfd })
}

/// libcontainer's default executor, except for [`validate`] and the report of a failed
/// `execve` (see [`crate::launch`]): what a container's init runs.
#[derive(Clone)]
pub(crate) struct SpecExecutor {
    /// The bundle's [`crate::launch::EXEC_ERROR`] file, open close-on-exec.
    report: Option<std::sync::Arc<OwnedFd>>,
}

impl Executor for SpecExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        crate::launch::exec(spec, self.report.as_deref())
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        validate(spec)
    }
}

pub(crate) use crate::launch::validate;

/// libcontainer forks (clones) the calling process to create a container, which is only sound
/// in a single-threaded process. Threads that were just joined (a tokio runtime of an image
/// pull, a teardown thread) may linger in /proc for a moment, hence the short wait.
pub fn ensure_single_threaded() -> Result<(), Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let threads = std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(1);
        if threads <= 1 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Threads { threads });
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}
