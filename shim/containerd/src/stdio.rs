//! A process's standard streams as containerd hands them over: FIFO paths (what `ctr` and the
//! CRI use), `file://` URIs, `binary://` URIs (a logging program, see `binlog`), or nothing
//! (`/dev/null`), with or without a terminal.
//!
//! - Output without a terminal goes straight to the FIFO: it is opened read-write (never
//!   blocks, and a containerd that restarts never makes the container's writes fail with
//!   EPIPE) and handed to the process, so no copying thread and no buffering sit in between;
//!   containerd sees EOF once the process and its children have closed it.
//! - Stdin is a pipe fed by a thread from the FIFO, so that `CloseIO` (containerd's EOF on
//!   stdin) can end it even though the process holds the pipe.
//! - A terminal: the process's init sends the pty master over a console socket (the OCI way); a
//!   thread copies the master to stdout, another stdin to the master, and `ResizePty` sets its
//!   window size. The output thread reports when it has drained the terminal, so the exit is
//!   published after the last byte.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use podshim_engine::sys::{self, WinSize};

use crate::binlog::{self, Logger};
use crate::error::{Result, ShimError};

/// What containerd asked for (Create's and Exec's `stdin`, `stdout`, `stderr`, `terminal`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IoSpec {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// How the new process gets its streams: three descriptors, or a console socket.
pub enum Plan {
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    Console(PathBuf),
}

/// The shim's side of a process's streams, kept while the process lives.
#[derive(Default)]
pub struct Io {
    stdin_fifo: Option<PathBuf>,
    console: Option<(UnixListener, PathBuf)>,
    pty: Option<OwnedFd>,
    stdout: Option<String>,
    /// Says when the terminal's output has been copied to the end.
    drained: Option<Receiver<()>>,
    /// A terminal's output already opened (a logger's pipe).
    tty_out: Option<File>,
    /// The logging program of a `binary://` URI; dropped (waited for) with the process.
    logger: Option<Logger>,
}

static CONSOLES: AtomicU64 = AtomicU64::new(0);

fn devnull(write: bool) -> Result<OwnedFd> {
    let f = OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map_err(ShimError::io("open", "/dev/null"))?;
    Ok(f.into())
}

/// Open where an output stream goes.
fn open_output(target: &str) -> Result<File> {
    if target.is_empty() {
        return Ok(File::from(devnull(true)?));
    }
    if let Some(path) = target.strip_prefix("file://") {
        if let Some(dir) = Path::new(path).parent() {
            std::fs::create_dir_all(dir)
                .map_err(ShimError::io("create", dir.display().to_string()))?;
        }
        return OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(OFlag::O_CLOEXEC.bits())
            .open(path)
            .map_err(ShimError::io("open", path));
    }
    if target.contains("://") {
        return Err(ShimError::Invalid(format!(
            "output {target:?}: only FIFOs, file:// and binary:// URIs are supported"
        )));
    }
    // A FIFO, read-write: the open never blocks and writes never fail for want of a reader.
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(OFlag::O_CLOEXEC.bits())
        .open(target)
        .map_err(ShimError::io("open", target))
}

/// Copy the stdin FIFO to `to` until its writer closes it (or CloseIO), then close `to`.
fn feed_stdin(fifo: PathBuf, mut to: File) {
    let _ = std::thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            // Blocks until containerd opens its end (or CloseIO opens and closes one).
            let Ok(mut from) = File::open(&fifo) else {
                return;
            };
            let mut buf = [0u8; 8192];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
        });
}

/// Where stdout and stderr go: a logging program's pipes where either is a `binary://` URI
/// (containerd gives both the same one), otherwise what `open_output` opens.
fn outputs(spec: &IoSpec, id: &str, namespace: &str) -> Result<(File, File, Option<Logger>)> {
    let uri = [&spec.stdout, &spec.stderr]
        .into_iter()
        .find(|t| t.starts_with(binlog::SCHEME));
    let Some(uri) = uri else {
        return Ok((open_output(&spec.stdout)?, open_output(&spec.stderr)?, None));
    };
    let started = binlog::start(uri, id, namespace)?;
    let pick = |target: &str, pipe: File| -> Result<File> {
        if target.starts_with(binlog::SCHEME) {
            Ok(pipe)
        } else {
            open_output(target)
        }
    };
    let stdout = pick(&spec.stdout, started.stdout)?;
    let stderr = pick(&spec.stderr, started.stderr)?;
    Ok((stdout, stderr, Some(started.logger)))
}

/// Prepare the streams of process `id` (a container or an exec) of containerd namespace
/// `namespace`. `console_dir` holds the console socket of a terminal.
pub fn prepare(spec: &IoSpec, console_dir: &Path, id: &str, namespace: &str) -> Result<(Plan, Io)> {
    let mut io = Io::default();
    io.stdin_fifo = (!spec.stdin.is_empty()).then(|| PathBuf::from(&spec.stdin));
    if spec.terminal {
        std::fs::create_dir_all(console_dir)
            .map_err(ShimError::io("create", console_dir.display().to_string()))?;
        let n = CONSOLES.fetch_add(1, Ordering::Relaxed);
        let path = console_dir.join(format!("{}-{n}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)
            .map_err(ShimError::io("listen on", path.display().to_string()))?;
        io.console = Some((listener, path.clone()));
        if spec.stdout.starts_with(binlog::SCHEME) {
            // A terminal has one output: the logger's stdout pipe takes it.
            let (stdout, _, logger) = outputs(spec, id, namespace)?;
            io.tty_out = Some(stdout);
            io.logger = logger;
        }
        io.stdout = Some(spec.stdout.clone());
        return Ok((Plan::Console(path), io));
    }
    let stdin = match &io.stdin_fifo {
        None => devnull(false)?,
        Some(fifo) => {
            let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
                .map_err(|e| ShimError::io("create", "a pipe")(e.into()))?;
            feed_stdin(fifo.clone(), File::from(w));
            r
        }
    };
    let (stdout, stderr, logger) = outputs(spec, id, namespace)?;
    io.logger = logger;
    Ok((
        Plan::Fds {
            stdin,
            stdout: stdout.into(),
            stderr: stderr.into(),
        },
        io,
    ))
}

impl Io {
    /// After the process was made: take its terminal from the console socket and start copying.
    pub fn attach(&mut self) -> Result<()> {
        let Some((listener, path)) = self.console.take() else {
            return Ok(());
        };
        let _ = std::fs::remove_file(&path);
        let name = path.display().to_string();
        // The init connected and sent the master before create returned; wait a little anyway.
        listener
            .set_nonblocking(true)
            .map_err(ShimError::io("accept on", name.clone()))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(ShimError::io("accept on", name)(e)),
            }
        };
        conn.set_nonblocking(false)
            .map_err(ShimError::io("receive the terminal from", name.clone()))?;
        let master =
            sys::recv_fd(conn.as_fd()).map_err(ShimError::io("receive the terminal from", name))?;
        let stdout = match self.tty_out.take() {
            Some(f) => f,
            None => open_output(self.stdout.as_deref().unwrap_or(""))?,
        };
        let mut reader = File::from(
            master
                .try_clone()
                .map_err(ShimError::io("dup", "the terminal"))?,
        );
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("tty-out".into())
            .spawn(move || {
                let mut stdout = stdout;
                let mut buf = [0u8; 8192];
                // EIO once every holder of the terminal's other side has gone.
                while let Ok(n) = reader.read(&mut buf) {
                    if n == 0 || stdout.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                drop(stdout);
                let _ = tx.send(());
            })
            .map_err(ShimError::io("start", "the terminal thread"))?;
        self.drained = Some(rx);
        if let Some(fifo) = &self.stdin_fifo {
            let writer = File::from(
                master
                    .try_clone()
                    .map_err(ShimError::io("dup", "the terminal"))?,
            );
            feed_stdin(fifo.clone(), writer);
        }
        self.pty = Some(master);
        Ok(())
    }

    /// A receiver of the end of the terminal output, to wait on without holding the process.
    pub fn take_drained(&mut self) -> Option<Receiver<()>> {
        self.drained.take()
    }

    pub fn resize(&self, width: u32, height: u32) -> Result<()> {
        let Some(pty) = &self.pty else {
            return Err(ShimError::Invalid("the process has no terminal".into()));
        };
        let size = WinSize {
            rows: height.min(u16::MAX as u32) as u16,
            cols: width.min(u16::MAX as u32) as u16,
        };
        sys::set_window_size(pty, size).map_err(ShimError::io("resize", "the terminal"))
    }

    /// containerd's CloseIO: the client's stdin has ended. The copying thread ends at the FIFO's
    /// EOF; if no writer ever came, opening and closing one gives it that EOF.
    pub fn close_stdin(&mut self) {
        if let Some(fifo) = self.stdin_fifo.take() {
            let _ = OpenOptions::new()
                .write(true)
                .custom_flags(OFlag::O_NONBLOCK.bits() | OFlag::O_CLOEXEC.bits())
                .open(fifo);
        }
    }
}

impl Drop for Io {
    fn drop(&mut self) {
        if let Some((_, path)) = self.console.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_by_kind() {
        let dir = std::env::temp_dir().join(format!("podshim-stdio-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("logs/out.log");
        let mut f = open_output(&format!("file://{}", log.display())).unwrap();
        f.write_all(b"x\n").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "x\n");
        assert!(open_output("syslog://x").is_err());
        assert!(open_output("").is_ok());
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // No reader yet, and the open does not block.
        assert!(open_output(fifo.to_str().unwrap()).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
