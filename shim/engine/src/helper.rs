//! The runtime helper: a process forked at the start of a threaded program (a containerd shim,
//! a controller), before any thread exists, that does libcontainer's forking for it. Container
//! inits and exec'd processes are the helper's children: it reaps each one and reports its exit
//! once, with the PID, on a second socket.
//!
//! Requests and replies are JSON datagrams over a `SOCK_SEQPACKET` pair (message boundaries kept,
//! descriptors passed with `SCM_RIGHTS`): a request carries the new process's stdio descriptors,
//! a reply its PID and a pidfd. One request is in flight at a time (the client holds a lock).
//! The helper dies with the process that forked it (`PR_SET_PDEATHSIG`): a shim killed with
//! SIGKILL leaves its containers to `containerd-shim-... delete`, not to an orphaned helper.
//!
//! Measured against forking in-process (the `podshim` CLI's way), a create through the helper
//! costs one more round trip on a local socket (tens of microseconds) and the helper's own
//! memory; the single-threaded CLI and supervisors do without it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::exec::{self, ExecStdio};
use crate::spawner::{create_here, Created, Stdio};
use crate::sys;

/// The largest message: a request or reply is a few hundred bytes of JSON.
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Create {
        id: String,
        runtime_dir: PathBuf,
        bundle: PathBuf,
        /// The terminal's console socket; otherwise three descriptors come with the message.
        console: Option<PathBuf>,
    },
    Exec {
        id: String,
        runtime_dir: PathBuf,
        process: Box<libcontainer::oci_spec::runtime::Process>,
        console: Option<PathBuf>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Ok { pid: i32 },
    Err { kind: String, message: String },
}

/// An exit the helper saw: the process and its exit code (128+N for signal N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    pub pid: i32,
    pub code: i32,
}

/// The program's side of the helper.
pub struct Client {
    requests: Mutex<OwnedFd>,
    exits: Mutex<OwnedFd>,
    pub pid: Pid,
}

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::NotFound => "NotFound",
        ErrorKind::AlreadyExists => "AlreadyExists",
        ErrorKind::Invalid => "Invalid",
        ErrorKind::FailedPrecondition => "FailedPrecondition",
        ErrorKind::Unavailable => "Unavailable",
        ErrorKind::Internal => "Internal",
    }
}

fn kind_of(name: &str) -> ErrorKind {
    match name {
        "NotFound" => ErrorKind::NotFound,
        "AlreadyExists" => ErrorKind::AlreadyExists,
        "Invalid" => ErrorKind::Invalid,
        "FailedPrecondition" => ErrorKind::FailedPrecondition,
        "Unavailable" => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    }
}

fn helper_err(detail: impl std::fmt::Display) -> Error {
    Error::Helper {
        detail: detail.to_string(),
    }
}

/// Fork the helper. Call it first thing in `main`, before any thread is started: it refuses
/// otherwise.
pub fn start() -> Result<Client, Error> {
    crate::spawner::ensure_single_threaded()?;
    let pair = || {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| helper_err(format!("socketpair: {e}")))
    };
    let (req_parent, req_child) = pair()?;
    let (exit_parent, exit_child) = pair()?;
    match sys::fork().map_err(|e| helper_err(format!("fork: {e}")))? {
        None => {
            drop(req_parent);
            drop(exit_parent);
            let code = match serve(req_child, exit_child) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("podshim runtime helper: {e}");
                    1
                }
            };
            std::process::exit(code);
        }
        Some(pid) => Ok(Client {
            requests: Mutex::new(req_parent),
            exits: Mutex::new(exit_parent),
            pid,
        }),
    }
}

impl Client {
    fn call(&self, request: &Request, fds: &[&OwnedFd]) -> Result<Created, Error> {
        let sock = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let data = serde_json::to_vec(request).map_err(helper_err)?;
        sys::send_with_fds(sock.as_fd(), &data, fds).map_err(helper_err)?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let (n, mut got) = sys::recv_with_fds(sock.as_fd(), &mut buf).map_err(helper_err)?;
        if n == 0 {
            return Err(helper_err("the helper process is gone"));
        }
        match serde_json::from_slice::<Reply>(&buf[..n]).map_err(helper_err)? {
            Reply::Ok { pid } => Ok(Created {
                pid: Pid::from_raw(pid),
                pidfd: got.pop(),
            }),
            Reply::Err { kind, message } => Err(Error::Remote {
                kind: kind_of(&kind),
                message,
            }),
        }
    }

    /// Create a container through the helper (see [`crate::spawner::Spawner::create`]).
    pub fn create(
        &self,
        id: &str,
        runtime_dir: &Path,
        bundle: &Path,
        stdio: Stdio,
    ) -> Result<Created, Error> {
        let (console, fds) = match stdio {
            Stdio::Console(path) => (Some(path), Vec::new()),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => (None, vec![stdin, stdout, stderr]),
        };
        let request = Request::Create {
            id: id.to_string(),
            runtime_dir: runtime_dir.to_path_buf(),
            bundle: bundle.to_path_buf(),
            console,
        };
        self.call(&request, &fds.iter().collect::<Vec<_>>())
    }

    /// Start `process` in the running container `id` through the helper.
    pub fn exec(
        &self,
        id: &str,
        runtime_dir: &Path,
        process: libcontainer::oci_spec::runtime::Process,
        stdio: Stdio,
    ) -> Result<Created, Error> {
        let (console, fds) = match stdio {
            Stdio::Console(path) => (Some(path), Vec::new()),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => (None, vec![stdin, stdout, stderr]),
        };
        let request = Request::Exec {
            id: id.to_string(),
            runtime_dir: runtime_dir.to_path_buf(),
            process: Box::new(process),
            console,
        };
        self.call(&request, &fds.iter().collect::<Vec<_>>())
    }

    /// The next exit the helper reaped (blocks); `None` once the helper is gone.
    pub fn next_exit(&self) -> Option<Exit> {
        let sock = self.exits.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; 256];
        let (n, _) = sys::recv_with_fds(sock.as_fd(), &mut buf).ok()?;
        if n == 0 {
            return None;
        }
        serde_json::from_slice(&buf[..n]).ok()
    }
}

/// The helper's loop: requests on one socket, SIGCHLD through a signalfd; exits go out on the
/// other socket. Returns when the program closes its end.
fn serve(requests: OwnedFd, exits: OwnedFd) -> Result<(), Error> {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(helper_err)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(helper_err)?;
    loop {
        let ready =
            sys::poll_readable(&[requests.as_fd(), sfd.as_fd()], None).map_err(helper_err)?;
        if ready[1] {
            while sfd.read_signal().ok().flatten().is_some() {}
            reap(&exits);
        }
        if ready[0] {
            let mut buf = vec![0u8; MAX_MESSAGE];
            let (n, fds) = sys::recv_with_fds(requests.as_fd(), &mut buf).map_err(helper_err)?;
            if n == 0 {
                return Ok(());
            }
            let (reply, pidfd) = match serde_json::from_slice::<Request>(&buf[..n]) {
                Ok(request) => match handle(request, fds) {
                    Ok(created) => (
                        Reply::Ok {
                            pid: created.pid.as_raw(),
                        },
                        created.pidfd,
                    ),
                    Err(e) => (
                        Reply::Err {
                            kind: kind_name(e.kind()).to_string(),
                            message: crate::chain(&e),
                        },
                        None,
                    ),
                },
                Err(e) => (
                    Reply::Err {
                        kind: "Invalid".into(),
                        message: format!("bad request: {e}"),
                    },
                    None,
                ),
            };
            let data = serde_json::to_vec(&reply).map_err(helper_err)?;
            let fds: Vec<&OwnedFd> = pidfd.iter().collect();
            sys::send_with_fds(requests.as_fd(), &data, &fds).map_err(helper_err)?;
            // libcontainer's code and what a create touched stay resident in this long-lived
            // process otherwise (a few MB per Pod for an idle helper); it is single-threaded.
            sys::trim_resident_memory();
        }
    }
}

fn handle(request: Request, mut fds: Vec<OwnedFd>) -> Result<Created, Error> {
    let stdio = |console: Option<PathBuf>, fds: &mut Vec<OwnedFd>| match console {
        Some(path) => Ok(Stdio::Console(path)),
        None if fds.len() == 3 => {
            let stderr = fds.pop().expect("3");
            let stdout = fds.pop().expect("2");
            let stdin = fds.pop().expect("1");
            Ok(Stdio::Fds {
                stdin,
                stdout,
                stderr,
            })
        }
        None => Err(helper_err(format!(
            "{} descriptors came with the request, not 3",
            fds.len()
        ))),
    };
    match request {
        Request::Create {
            id,
            runtime_dir,
            bundle,
            console,
        } => create_here(&id, &runtime_dir, &bundle, stdio(console, &mut fds)?),
        Request::Exec {
            id,
            runtime_dir,
            process,
            console,
        } => {
            let stdio = match stdio(console, &mut fds)? {
                Stdio::Console(path) => ExecStdio::Console(path),
                Stdio::Fds {
                    stdin,
                    stdout,
                    stderr,
                } => ExecStdio::Fds {
                    stdin,
                    stdout,
                    stderr,
                },
            };
            let exec = exec::start(&runtime_dir, &id, *process, stdio, false)?;
            let pidfd = sys::pidfd_open(exec.pid.as_raw()).ok();
            Ok(Created {
                pid: exec.pid,
                pidfd,
            })
        }
    }
}

/// Reap every child that has exited and report it.
fn reap(exits: &OwnedFd) {
    loop {
        let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, code),
            Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => continue,
        };
        let exit = Exit {
            pid: pid.as_raw(),
            code,
        };
        if let Ok(data) = serde_json::to_vec(&exit) {
            let _ = sys::send_with_fds(exits.as_fd(), &data, &[]);
        }
    }
}
