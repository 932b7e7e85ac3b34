//! Creating the containers of one Pod at once. libcontainer's create forks twice and waits for
//! the container's init to say it is ready, and on a v1 host each move into a new cgroup waits for
//! an RCU grace period of the kernel: one container after the other, a two-container Pod paid
//! all of that twice, on a machine whose other cores were idle meanwhile.
//!
//! Each container but the last is created by a short-lived fork of this single-threaded process
//! (a fork of a single-threaded process is as sound as libcontainer's own), the last one here;
//! everything that touches the journal (the root filesystem, `config.json`, the record, the undo
//! of a failure) stays in this process, in the containers' order. libcontainer makes a
//! container's init a sibling of its intermediate process (`CLONE_PARENT`), so a worker's init is
//! the worker's child; when the worker exits, the kernel re-parents it to the nearest child
//! subreaper, which a Pod's supervisor is, so the supervisor reaps it as if it had made it.
//! Without a subreaper (or with the helper spawner) the containers are created one by one.

use std::fs::File;
use std::io::{Read, Write};

use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::container::{Container, Create, Prepared};
use crate::error::Error;
use crate::journal::Journal;
use crate::spawner::{self, Created, Runtime, Spawner, Stdio};
use crate::{chain, sys};

/// A worker creating one container: its PID and the read end of its report pipe.
struct Worker {
    pid: Pid,
    report: File,
}

/// See [`Container::create_all`].
pub(crate) fn create_all(
    rt: &Runtime,
    journal: &mut Journal,
    creates: Vec<Create>,
) -> Vec<Result<Container, Error>> {
    let concurrent = creates.len() > 1
        && matches!(rt.spawner, Spawner::InProcess)
        && nix::sys::prctl::get_child_subreaper().unwrap_or(false)
        && spawner::ensure_single_threaded().is_ok();
    if !concurrent {
        return creates
            .into_iter()
            .map(|c| Container::create(rt, journal, c))
            .collect();
    }
    let prepared: Vec<_> = creates
        .into_iter()
        .map(|c| Prepared::new(rt, journal, c))
        .collect();
    let last_ok = prepared.iter().rposition(Result::is_ok);
    // Fork the workers first, then create the last container here while they run.
    let mut pending = Vec::with_capacity(prepared.len());
    let mut here = None;
    for (i, p) in prepared.into_iter().enumerate() {
        pending.push(match p {
            Err(e) => Pending::Failed(e),
            Ok((p, stdio)) if Some(i) == last_ok => {
                here = Some((p, stdio));
                Pending::Here
            }
            Ok((p, stdio)) => match fork_worker(&p, stdio) {
                Ok(worker) => Pending::Worker(p, worker),
                Err(e) => Pending::Done(p, Err(e)),
            },
        });
    }
    // Before any worker is waited for: waiting first would make the creates one after the
    // other again (a worker takes as long as this create).
    let mut here = here.map(|(p, stdio)| {
        let created = rt.spawner.create(&p.id, &p.runtime_dir, &p.bundle, stdio);
        (p, created)
    });
    let mut results = Vec::with_capacity(pending.len());
    for p in pending {
        results.push(match p {
            Pending::Failed(e) => Err(e),
            Pending::Here => {
                let (p, created) = here.take().expect("the container created here");
                p.finish(journal, created)
            }
            Pending::Worker(p, worker) => {
                let created = collect(&p.id, worker);
                p.finish(journal, created)
            }
            Pending::Done(p, created) => p.finish(journal, created),
        });
    }
    results
}

enum Pending {
    Failed(Error),
    /// The container created in this process (kept aside until its turn).
    Here,
    Worker(Prepared, Worker),
    Done(Prepared, Result<Created, Error>),
}

/// Fork a worker that creates `p`'s container and reports `<pid>` or `!<error>` on a pipe.
/// This process's copies of the container's standard streams are closed when `stdio` drops.
fn fork_worker(p: &Prepared, stdio: Stdio) -> Result<Worker, Error> {
    let fail = |e: std::io::Error| Error::Runtime {
        container: p.id.clone(),
        action: "create",
        detail: format!("cannot fork a worker: {e}"),
    };
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| fail(e.into()))?;
    match sys::fork().map_err(fail)? {
        None => {
            drop(r);
            let report = match spawner::create_here(&p.id, &p.runtime_dir, &p.bundle, stdio) {
                Ok(created) => created.pid.as_raw().to_string(),
                Err(e) => format!("!{}", chain(&e)),
            };
            // What the parent reads in one go (see `collect`).
            let report: String = report.chars().take(1000).collect();
            let mut w = File::from(w);
            let code = i32::from(w.write_all(report.as_bytes()).is_err());
            sys::exit_now(code)
        }
        Some(pid) => {
            drop(w);
            drop(stdio);
            Ok(Worker {
                pid,
                report: File::from(r),
            })
        }
    }
}

/// The worker's report, once it exited (reaped here): the container's init, now this
/// process's child (re-parented), with a pidfd opened here.
///
/// The report is read after the worker's exit, once and without blocking, never to its end:
/// the container's init inherited the pipe's write end and keeps it until it executes the
/// user's process (the descriptor is close-on-exec), which only `start` lets it do.
fn collect(id: &str, mut worker: Worker) -> Result<Created, Error> {
    let _ = waitpid(worker.pid, None);
    let fail = |detail: String| Error::Runtime {
        container: id.to_string(),
        action: "create",
        detail,
    };
    let nonblocking = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&worker.report),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    nonblocking.map_err(|e| fail(format!("cannot read the worker's report: {e}")))?;
    // One write of a few bytes (under PIPE_BUF) made before the worker exited: all there.
    let mut buf = [0u8; 4096];
    let report = match worker.report.read(&mut buf) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => String::new(),
        Err(e) => return Err(fail(format!("cannot read the worker's report: {e}"))),
    };
    if let Some(why) = report.strip_prefix('!') {
        return Err(fail(why.to_string()));
    }
    let pid: i32 = report
        .trim()
        .parse()
        .map_err(|_| fail(format!("the worker died without a report ({report:?})")))?;
    Ok(Created {
        pid: Pid::from_raw(pid),
        pidfd: sys::pidfd_open(pid).ok(),
    })
}
