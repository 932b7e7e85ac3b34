//! `podshim attach POD [-c NAME] [-i] [-t]`: follow what a running container writes, live (its
//! stdout and stderr, or its terminal), as `kubectl attach` does, through the root-only socket
//! its supervisor listens on (`podshim_kube::supervise::attach`). With `-i` this terminal's (or
//! pipe's) input goes to the container's stdin (it must have `stdin: true`). With `-t` (implied
//! when the container has `tty: true`, as kubectl forces it) and a local terminal, that terminal
//! is put in raw mode (restored at the end) and its window size goes to the container's at once
//! and at each SIGWINCH.
//!
//! It ends when the container's run ends, exiting with the run's exit code (128 + the signal
//! for a signal's death), as `podman attach`, `docker attach` and `kubectl run -i` do
//! (`kubectl attach` alone exits 0: the kubelet's attach stream carries no exit status,
//! kubernetes#63694); or on detach, exiting 0: Ctrl-P Ctrl-Q typed with `-t` (the default detach
//! keys of docker and podman; kubectl has none, and a terminal in raw mode passes Ctrl-C to the
//! container, so a key sequence is the only way out that leaves it running), or the end of the
//! local input when the container has no `stdinOnce`. With `stdinOnce` and no terminal, the end
//! of the input (or a detach) closes the container's stdin, as in Kubernetes, and the output is
//! followed until the container ends; later attaches follow the output only (with `-i`, after
//! a warning that stdin is closed), as they do under containerd's CRI.

use std::io::{self, IsTerminal, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use podshim_engine::config::Config;
use podshim_engine::sys;
use podshim_kube::record;
use podshim_kube::status::ContainerState;
use podshim_kube::supervise::attach::{Frame, EXIT, HELLO, INPUT, NO_STDIN, STDERR, STDOUT};
use podshim_kube::supervise::attach_socket;

use super::exec::RawMode;

#[derive(Args)]
pub struct AttachArgs {
    /// The container (may be left out when the Pod has one container)
    #[arg(short, long)]
    container: Option<String>,
    /// Pass this input to the container's stdin (it needs stdin: true)
    #[arg(short = 'i', long)]
    stdin: bool,
    /// The container has a terminal: relay this one in raw mode with its window size
    /// (detach: Ctrl-P Ctrl-Q)
    #[arg(short = 't', long)]
    tty: bool,
    pod: String,
}

pub fn attach(cfg: &Config, a: AttachArgs) -> Result<i32> {
    let e = record::find(cfg, &a.pod).map_err(|e| anyhow!(e))?;
    let status = super::logs::container(&e, a.container.as_deref())?;
    let name = status.name.clone();
    let pod = &e.record.name;
    if !e.live || e.lost || e.record.finished() {
        // kubectl's words (`pkg/cmd/attach`), then which container and how it ended.
        bail!(
            "cannot attach a container in a completed pod; current phase is {} (pod {pod}, \
             container {name}: {})",
            e.status().phase,
            describe(&status.state)
        );
    }
    if status.state.running.is_none() {
        // containerd's CRI refuses too ("container is in CONTAINER_EXITED state").
        bail!(
            "cannot attach to container {name} of pod {pod}: it is not running ({})",
            describe(&status.state)
        );
    }
    let spec = &e.record.pod["spec"];
    let c = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l)?.as_array())
        .flatten()
        .find(|c| c["name"] == name.as_str());
    let field = |f: &str| c.is_some_and(|c| c[f] == true);
    let (has_stdin, once, has_tty) = (field("stdin"), field("stdinOnce"), field("tty"));
    if a.stdin && !has_stdin {
        bail!("container {name} of pod {pod} does not read stdin (its spec has no stdin: true)");
    }
    if a.tty && !has_tty {
        // kubectl's words; it goes on without a terminal.
        eprintln!("error: Unable to use a TTY - container {name} did not allocate one");
    }
    let tty = has_tty;
    let path = attach_socket(&cfg.pod_dir(&e.key), &name);
    let sock = UnixStream::connect(&path).with_context(|| {
        format!("cannot attach to container {name} of pod {pod}: it is not running now")
    })?;
    let writer = Arc::new(Mutex::new(sock.try_clone().context("attach socket")?));
    send(&writer, &Frame::encode(HELLO, &[a.stdin as u8]))?;
    if !a.stdin {
        sock.shutdown(Shutdown::Write).context("attach socket")?;
    }
    // A reader that goes away makes writes fail with EPIPE rather than kill podshim in raw mode.
    signal_hook::flag::register(
        signal_hook::consts::SIGPIPE,
        Arc::new(AtomicBool::new(false)),
    )
    .context("handle SIGPIPE")?;
    let local_tty = tty && io::stdin().is_terminal();
    let _raw = if local_tty && a.stdin {
        RawMode::enter()?
    } else {
        None
    };
    if local_tty {
        resize_on_sigwinch(writer.clone())?;
    }
    let detached = Arc::new(AtomicBool::new(false));
    if a.stdin {
        let (writer, detached) = (writer.clone(), detached.clone());
        std::thread::spawn(move || send_input(writer, tty, once, &detached));
    }
    let mut reader = sock;
    let (mut out, mut err) = (io::stdout(), io::stderr());
    let mut exit = None;
    // Until the run ends, or a detach shuts the socket.
    while let Ok(Some((kind, data))) = Frame::read(&mut reader) {
        let to: &mut dyn Write = match kind {
            STDOUT => &mut out,
            STDERR => &mut err,
            EXIT => {
                exit = data.try_into().ok().map(i32::from_be_bytes);
                continue;
            }
            NO_STDIN => {
                eprintln!(
                    "warning: the stdin of container {name} of pod {pod} was closed when its \
                     first attach ended (stdinOnce); following its output only"
                );
                continue;
            }
            _ => continue,
        };
        to.write_all(&data)
            .and_then(|()| to.flush())
            .context("write the container's output")?;
    }
    if detached.load(Ordering::SeqCst) {
        return Ok(0);
    }
    // The run's exit code; none when the supervisor went away first.
    // The run's exit code; without it (the run ended before the supervisor took this attach
    // from the listen queue), the one the supervisor records right after.
    exit.or_else(|| recorded_exit(cfg, &e.key, &name, status.container_id.as_deref()))
        .ok_or_else(|| {
            anyhow!("the attach to container {name} of pod {pod} ended without its exit code (its supervisor is gone?)")
        })
}

/// The exit code of the run of container `name` whose ID was `run` (running when the attach
/// began), from the Pod's record: its state once terminated, or its last state once a restart
/// replaced it. Waits a moment for the record; `None` if the supervisor is gone.
fn recorded_exit(cfg: &Config, key: &str, name: &str, run: Option<&str>) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let e = record::entry(cfg, key).filter(|e| !e.lost)?;
        let st = super::logs::container(&e, Some(name)).ok()?;
        if let Some(t) = &st.state.terminated {
            return Some(t.exit_code);
        }
        if st.container_id.as_deref() != run {
            if let Some(t) = &st.last_state.terminated {
                return Some(t.exit_code);
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A container's state in words: `running`, `waiting (CrashLoopBackOff)`, `terminated with exit
/// code 3 (Error)`.
fn describe(state: &ContainerState) -> String {
    if let Some(t) = &state.terminated {
        format!("terminated with exit code {} ({})", t.exit_code, t.reason)
    } else if let Some(w) = &state.waiting {
        format!("waiting ({})", w.reason)
    } else if state.running.is_some() {
        "running".into()
    } else {
        "not started".into()
    }
}

fn send(writer: &Mutex<UnixStream>, frame: &[u8]) -> Result<()> {
    let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
    w.write_all(frame).context("write to the attach socket")
}

/// Send this terminal's window size now and at each SIGWINCH.
fn resize_on_sigwinch(writer: Arc<Mutex<UnixStream>>) -> Result<()> {
    let resize = move || {
        if let Ok(size) = sys::window_size(io::stdin()) {
            let _ = send(&writer, &Frame::resize(size));
        }
    };
    resize();
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGWINCH])
        .context("handle SIGWINCH")?;
    std::thread::spawn(move || {
        for _ in signals.forever() {
            resize();
        }
    });
    Ok(())
}

/// Copy stdin to the container until it ends or the detach keys are typed (with a terminal);
/// `flag` is set when that ends the attach (a detach).
fn send_input(writer: Arc<Mutex<UnixStream>>, tty: bool, once: bool, flag: &AtomicBool) {
    let mut keys = DetachKeys::default();
    let mut buf = [0u8; 8192];
    let mut stdin = io::stdin().lock();
    let detached = loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) => break false,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break false,
        };
        let (data, detach) = match tty {
            true => keys.filter(&buf[..n]),
            false => (buf[..n].to_vec(), false),
        };
        if !data.is_empty() && send(&writer, &Frame::encode(INPUT, &data)).is_err() {
            return;
        }
        if detach {
            break true;
        }
    };
    let w = writer.lock().unwrap_or_else(|p| p.into_inner());
    // The end of the input: with stdinOnce the container's stdin closes and its output is still
    // followed; otherwise, as a detach, this attach ends (the container's stdin stays open).
    let how = match once && !tty && !detached {
        true => Shutdown::Write,
        false => {
            flag.store(true, Ordering::SeqCst);
            Shutdown::Both
        }
    };
    let _ = w.shutdown(how);
}

/// Ctrl-P Ctrl-Q in the typed input: a Ctrl-P is held back until the next byte shows whether it
/// starts the sequence (then neither is sent), as docker does.
#[derive(Default)]
struct DetachKeys {
    held: bool,
}

const CTRL_P: u8 = 0x10;
const CTRL_Q: u8 = 0x11;

impl DetachKeys {
    /// The bytes to send, and whether the sequence was typed (what follows it is dropped).
    fn filter(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.held {
                self.held = false;
                if b == CTRL_Q {
                    return (out, true);
                }
                out.push(CTRL_P);
            }
            if b == CTRL_P {
                self.held = true;
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_p_ctrl_q_detaches_even_across_reads_and_a_lone_ctrl_p_passes() {
        let mut k = DetachKeys::default();
        assert_eq!(k.filter(b"ab\x10c"), (b"ab\x10c".to_vec(), false));
        assert_eq!(k.filter(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(k.filter(b"\x11rest"), (vec![], true));
        let mut k = DetachKeys::default();
        assert_eq!(k.filter(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
