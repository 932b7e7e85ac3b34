//! `podshim exec [-i] [-t] [-c CONTAINER] POD -- CMD [ARG...]`: run a command in a running
//! container of a Pod (its namespaces, cgroup, user, environment and working directory); its
//! exit code is podshim's (128+N when killed by signal N). The supervisor runs it for exec
//! probes and exec hooks, so it must also work without a terminal and die cleanly when killed.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::sys::termios::{self, SetArg, Termios};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use podshim_engine::config::Config;
use podshim_engine::sys;
use podshim_kube::pod::exec::{self, ExecStdio as Stdio};
use podshim_kube::record;

/// Exit code when the command could not be started in the container (as `docker exec`).
const CANNOT_INVOKE: i32 = 126;

#[derive(Args)]
pub struct ExecArgs {
    /// Pass stdin to the command (default: /dev/null)
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Run the command on a new terminal, relayed to this one (raw mode, window size)
    #[arg(short = 't', long)]
    tty: bool,
    /// The container (may be left out when the Pod has one container)
    #[arg(short, long)]
    container: Option<String>,
    pod: String,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub fn exec(cfg: &Config, a: ExecArgs) -> Result<i32> {
    let e = record::find(cfg, &a.pod).map_err(|e| anyhow!(e))?;
    let c = super::logs::container(&e, a.container.as_deref())?.clone();
    let pod = &e.record.name;
    if e.lost {
        bail!(
            "pod {pod} is not running: its supervisor (pid {}) is gone",
            e.record.supervisor.pid
        );
    }
    if !e.live || e.record.finished() {
        // kubectl's wording (`pkg/cmd/exec`).
        bail!(
            "cannot exec into a container in a completed pod; current phase is {}",
            e.status().phase
        );
    }
    let id = match (&c.state.running, &c.container_id) {
        (Some(_), Some(id)) => id.strip_prefix("podshim://").unwrap_or(id).to_string(),
        _ => {
            let why = match (&c.state.waiting, &c.state.terminated) {
                (Some(w), _) => format!(" (waiting: {})", w.reason),
                (_, Some(t)) => format!(" (terminated: {}, exit code {})", t.reason, t.exit_code),
                _ => String::new(),
            };
            bail!("container {} in pod {pod} is not running{why}", c.name);
        }
    };

    // Everything that forks happens before any thread starts: libcontainer forks this process.
    let (stdio, relays) = if a.tty {
        (
            Stdio::Tty(sys::window_size(std::io::stdin()).ok()),
            Relays::default(),
        )
    } else {
        plain_stdio(a.stdin)?
    };
    // Caught from before the start, so that a signal sent once the command runs (it may have
    // written its first output already) is forwarded, never podshim's own death. No thread
    // yet: the handlers only write to a close-on-exec pipe, and an exec'd command starts
    // with default dispositions.
    let signals = forwarded_signals()?;
    let runtime = cfg.runtime_dir();
    let started = match exec::process_for(&runtime, &id, a.command.clone(), a.tty)
        .and_then(|process| exec::start(&runtime, &id, process, stdio, true))
    {
        Ok(s) => s,
        Err(err) => {
            eprintln!(
                "podshim: {:#}",
                anyhow!(err).context(format!("exec in container {} of pod {pod}", c.name))
            );
            return Ok(CANNOT_INVOKE);
        }
    };
    let pid = started.pid;
    // Writing to a reader that went away must not kill podshim (SIGPIPE is at its default,
    // see `sys::reset_ignored_signals`): the write fails with EPIPE and the relay stops.
    signal_hook::flag::register(
        signal_hook::consts::SIGPIPE,
        Arc::new(AtomicBool::new(false)),
    )
    .context("handle SIGPIPE")?;
    let reaped = Arc::new(AtomicBool::new(false));
    let pty = started.pty.map(Arc::new);
    forward_signals(signals, pid, pty.clone(), reaped.clone());

    let mut done = Vec::new();
    let _raw = match &pty {
        Some(master) => {
            let raw = RawMode::enter()?;
            // It may have changed while the command started.
            if let Ok(size) = sys::window_size(std::io::stdin()) {
                let _ = sys::set_window_size(master.as_fd(), size);
            }
            if a.stdin {
                let to = File::from(master.try_clone().context("duplicate the pty master")?);
                relay_detached(
                    File::from(std::io::stdin().as_fd().try_clone_to_owned()?),
                    to,
                );
            }
            let from = File::from(master.try_clone().context("duplicate the pty master")?);
            done.push(relay(
                from,
                File::from(std::io::stdout().as_fd().try_clone_to_owned()?),
            ));
            raw
        }
        None => {
            done.extend(relays.start());
            None
        }
    };

    let code = loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(err) => bail!("wait for the command (pid {pid}): {err}"),
        }
    };
    reaped.store(true, Ordering::SeqCst);
    // What the command wrote before it exited is still in the pipes or the pty: pass it on,
    // but do not wait for ever on a background process that keeps them open.
    for rx in done {
        let _ = rx.recv_timeout(Duration::from_secs(2));
    }
    Ok(code)
}

/// Relays to start once the command runs (for terminals among podshim's own stdio).
#[derive(Default)]
struct Relays {
    pairs: Vec<(File, File, bool)>,
}

impl Relays {
    /// Start the relays; the receivers signal the end of each output relay.
    fn start(self) -> Vec<mpsc::Receiver<()>> {
        let mut out = Vec::new();
        for (from, to, wait) in self.pairs {
            if wait {
                out.push(relay(from, to));
            } else {
                relay_detached(from, to);
            }
        }
        out
    }
}

/// The command's stdin, stdout and stderr without `-t`. Pipes and files are handed to the
/// command as they are (cheap, and stdout and stderr stay apart); a terminal is not: a process
/// in the container holding the host's terminal could push input into it (TIOCSTI), so a
/// terminal is relayed through a pipe instead.
fn plain_stdio(with_stdin: bool) -> Result<(Stdio, Relays)> {
    let mut relays = Relays::default();
    let stdin: OwnedFd = if !with_stdin {
        File::open("/dev/null").context("open /dev/null")?.into()
    } else if std::io::stdin().is_terminal() {
        let (r, w) = nix::unistd::pipe().context("create a pipe")?;
        let ours = std::io::stdin().as_fd().try_clone_to_owned()?;
        relays.pairs.push((File::from(ours), File::from(w), false));
        r
    } else {
        std::io::stdin().as_fd().try_clone_to_owned()?
    };
    let mut output = |fd: std::os::fd::BorrowedFd<'_>, terminal: bool| -> Result<OwnedFd> {
        if !terminal {
            return Ok(fd.try_clone_to_owned()?);
        }
        let (r, w) = nix::unistd::pipe().context("create a pipe")?;
        relays
            .pairs
            .push((File::from(r), File::from(fd.try_clone_to_owned()?), true));
        Ok(w)
    };
    let stdout = output(std::io::stdout().as_fd(), std::io::stdout().is_terminal())?;
    let stderr = output(std::io::stderr().as_fd(), std::io::stderr().is_terminal())?;
    Ok((
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        },
        relays,
    ))
}

/// Copy `from` to `to` on a thread until EOF or an error (EIO on a pty master whose terminal
/// is closed, EPIPE on a reader that went away); the receiver hears when it is done.
fn relay(from: File, to: File) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        copy(from, to);
        let _ = tx.send(());
    });
    rx
}

/// A relay nobody waits for (input: it ends with podshim).
fn relay_detached(from: File, to: File) {
    std::thread::spawn(move || copy(from, to));
}

fn copy(mut from: File, mut to: File) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

/// SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to podshim go to the command (podshim then exits
/// with the command's code); SIGWINCH copies this terminal's size to the command's.
fn forward_signals(
    mut signals: signal_hook::iterator::Signals,
    pid: Pid,
    pty: Option<Arc<OwnedFd>>,
    reaped: Arc<AtomicBool>,
) {
    use signal_hook::consts::SIGWINCH;
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if sig == SIGWINCH {
                if let (Some(master), Ok(size)) = (&pty, sys::window_size(std::io::stdin())) {
                    let _ = sys::set_window_size(master.as_fd(), size);
                }
                continue;
            }
            // The PID stays ours until `waitpid` reaps it; after that it may be reused.
            if !reaped.load(Ordering::SeqCst) {
                if let Ok(s) = Signal::try_from(sig) {
                    let _ = kill(pid, s);
                }
            }
        }
    });
}

/// The signals `forward_signals` passes on, caught (queued) from now on.
fn forwarded_signals() -> Result<signal_hook::iterator::Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGWINCH};
    signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGWINCH])
        .context("handle signals")
}

/// This terminal in raw mode (keys, Ctrl-C included, go to the command's terminal), restored
/// when dropped. Nothing to do when stdin is not a terminal.
pub(super) struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub(super) fn enter() -> Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Ok(None);
        }
        let saved = termios::tcgetattr(stdin.as_fd()).context("read the terminal's mode")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)
            .context("put the terminal in raw mode")?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = std::io::stdout().flush();
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSADRAIN, &self.saved);
    }
}
