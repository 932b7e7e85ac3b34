//! Running a shim binary the way containerd does: `start` with the bundle's `log` FIFO open for
//! reading (the shim opens it for writing and blocks until someone reads) and its stdout and
//! stderr on one pipe read to EOF (Go's `CombinedOutput`): a shim whose server keeps that pipe
//! open would hang containerd, and hangs this client too, until the timeout says so.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::protocol::Invocation;

/// The shim's own log: containerd 1.6 makes `<bundle>/log` a FIFO and copies it to its log.
pub struct ShimLog {
    pub path: PathBuf,
    buf: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl ShimLog {
    /// Make the FIFO and keep reading it (into memory) from a thread.
    pub fn open(bundle: &Path) -> Self {
        let path = bundle.join("log");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o700))
            .expect("mkfifo log");
        // O_NONBLOCK: opening a FIFO for reading does not wait for a writer.
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc_o_nonblock())
            .open(&path)
            .unwrap();
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let out = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // EOF and EAGAIN say nothing final (before the first writer, between writers), so
            // poll until the `ShimLog` is dropped.
            loop {
                match f.read(&mut chunk) {
                    Ok(0) | Err(_) => {
                        if !owner_alive(&out) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Ok(n) => out.lock().unwrap().extend_from_slice(&chunk[..n]),
                }
            }
        });
        ShimLog { path, buf }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf.lock().unwrap()).into_owned()
    }
}

impl Drop for ShimLog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether the `ShimLog` still exists: the reader thread then holds the other reference.
fn owner_alive(buf: &std::sync::Arc<std::sync::Mutex<Vec<u8>>>) -> bool {
    std::sync::Arc::strong_count(buf) > 1
}

fn libc_o_nonblock() -> i32 {
    nix::fcntl::OFlag::O_NONBLOCK.bits()
}

/// What a run of the binary printed, and how it ended.
#[derive(Debug)]
pub struct Ran {
    pub status: ExitStatus,
    /// stdout, or stdout and stderr interleaved for `start`.
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

fn command(binary: &Path, inv: &Invocation) -> Command {
    let mut c = Command::new(binary);
    c.args(&inv.args)
        .current_dir(&inv.cwd)
        .envs(inv.env.iter().map(|(k, v)| (k, v)));
    c
}

fn feed_stdin(child: &mut std::process::Child, inv: &Invocation) {
    if let Some(data) = inv.stdin.clone() {
        let mut stdin = child.stdin.take().unwrap();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&data);
        });
    }
}

/// `start`: stdout and stderr on one pipe, read until EOF within `timeout`.
pub fn run_start(binary: &Path, inv: &Invocation, timeout: Duration) -> Ran {
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut cmd = command(binary, inv);
    cmd.stdin(if inv.stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(writer.try_clone().unwrap())
    .stderr(writer);
    let mut child = cmd.spawn().expect("spawn shim start");
    // Our copies of the write end must go, or EOF never comes.
    drop(cmd);
    feed_stdin(&mut child, inv);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = reader.read_to_end(&mut out);
        let _ = tx.send(out);
    });
    let out = rx.recv_timeout(timeout).unwrap_or_else(|_| {
        panic!(
            "{} start: its output did not reach EOF within {timeout:?} (does the shim server \
             keep the start command's stdout or stderr open? containerd would hang the same way)",
            binary.display()
        )
    });
    let status = child.wait().unwrap();
    Ran {
        status,
        stdout: out,
        stderr: Vec::new(),
    }
}

/// `delete`: stdout (a protobuf `DeleteResponse`) and stderr apart.
pub fn run_delete(binary: &Path, inv: &Invocation, timeout: Duration) -> Ran {
    let mut child = command(binary, inv)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shim delete");
    let (tx, rx) = mpsc::channel();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        let mut o = Vec::new();
        let mut e = Vec::new();
        let _ = out.read_to_end(&mut o);
        let _ = err.read_to_end(&mut e);
        let _ = tx.send((o, e));
    });
    let (stdout, stderr) = rx.recv_timeout(timeout).unwrap_or_else(|_| {
        panic!(
            "{} delete did not finish within {timeout:?}",
            binary.display()
        )
    });
    Ran {
        status: child.wait().unwrap(),
        stdout,
        stderr,
    }
}

/// Read a FIFO's whole content once its writers are done (or after `timeout`, what is there).
pub fn read_fifo(file: &mut File, timeout: Duration) -> String {
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("read fifo: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
