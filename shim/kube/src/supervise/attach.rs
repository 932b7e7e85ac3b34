//! `podshim attach`'s other end: each running container's supervisor listens on a unix socket in
//! the Pod's directory that only root may use (the directory 0700, the socket 0600), as the
//! kubelet's attach reaches the runtime's streams. Every attach gets what the container writes
//! from then on (stdout and stderr apart, or its terminal), live; an attach that asked for input
//! feeds the container's stdin (`stdin: true`): the pipe the supervisor keeps, or with `tty: true`
//! the pty master, whose window size an attach sets. With `stdinOnce` and no terminal, the
//! container's stdin is closed once the first attach with input ends, as the CRI's `StdinOnce`
//! does; later attaches still follow the output (as `kubectl attach` does under containerd),
//! and one that asks for input is told that stdin is closed ([`NO_STDIN`]; containerd takes it
//! and drops its input silently). With a terminal it stays open, as containerd's CRI keeps it
//! (`StdinOnce && !Tty` in its `ContainerIO.Attach`: a terminal has no end of input to give
//! while the master is held, and its end-of-file character would be lost or taken for a key by
//! a shell that switches its terminal's mode). When the run ends, each attach is told its exit
//! code ([`EXIT`]), which `podshim attach` exits with, as `podman attach` does.
//!
//! Everything here is non-blocking and driven by the supervision loop's poll (no threads: the
//! supervisor forks for libcontainer). The wire format is [`Frame`]s both ways.

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollFlags;
use podshim_engine::sys::{self, WinSize};

/// Frame kinds, client to supervisor: the first frame, its payload one byte (1: the attach
/// sends input); input bytes; a window size (rows, columns: two big-endian u16). The end of the
/// client's writing is the end of its input.
pub const HELLO: u8 = 0;
pub const INPUT: u8 = 1;
pub const RESIZE: u8 = 2;
/// Frame kinds, supervisor to client: bytes the container wrote to stdout (or its terminal),
/// to stderr; the run's exit code (a big-endian i32: the status, or 128 + the signal), last;
/// the container's stdin is closed (a `stdinOnce` stdin an earlier attach used), in answer to
/// a hello that asked for input. The end of the stream is the end of the container's run (or
/// of the supervisor: then without an exit code).
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const EXIT: u8 = 3;
pub const NO_STDIN: u8 = 4;

/// A frame: kind, payload length (big-endian u32), payload.
pub struct Frame;

impl Frame {
    pub fn encode(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    /// Take the first whole frame off `buf`, if it holds one.
    pub fn decode(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
        let len = u32::from_be_bytes(buf.get(1..5)?.try_into().ok()?) as usize;
        if buf.len() < 5 + len {
            return None;
        }
        let payload = buf[5..5 + len].to_vec();
        let kind = buf[0];
        buf.drain(..5 + len);
        Some((kind, payload))
    }

    /// Read one frame from a blocking stream (`None` at its end).
    pub fn read(from: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
        let mut head = [0u8; 5];
        match from.read_exact(&mut head) {
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            r => r?,
        }
        let len = u32::from_be_bytes(head[1..5].try_into().expect("4 bytes")) as usize;
        let mut payload = vec![0u8; len];
        from.read_exact(&mut payload)?;
        Ok(Some((head[0], payload)))
    }

    pub fn resize(size: WinSize) -> Vec<u8> {
        let mut p = size.rows.to_be_bytes().to_vec();
        p.extend_from_slice(&size.cols.to_be_bytes());
        Frame::encode(RESIZE, &p)
    }
}

/// Stream numbers of the poll entries (above any output stream's): the listener, the stdin
/// writer, then one per client slot counting down.
const LISTENER: usize = usize::MAX;
const WRITER: usize = usize::MAX - 1;
const CLIENT0: usize = usize::MAX - 2;
/// Attaches at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 32;
/// Output an attach has not taken yet: past this it is too slow and is dropped, so that it never
/// holds the container's output (or the supervisor's memory) up.
const MAX_BACKLOG: usize = 4 << 20;

/// Whether poll entry `j` is one of an attach's.
pub(super) fn is_attach(j: usize) -> bool {
    j > CLIENT0 - MAX_CLIENTS
}

/// The attach socket of a container of the Pod whose directory is `pod_dir`.
pub fn socket_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("attach").join(format!("{container}.sock"))
}

struct Client {
    sock: UnixStream,
    /// Read from it, not yet a whole frame.
    inbuf: Vec<u8>,
    /// Output for it, not yet taken by its socket.
    out: Vec<u8>,
    /// It sends input (its hello said so).
    input: bool,
    /// It has ended its input (its writing side is closed).
    done: bool,
}

pub(super) struct Attach {
    path: PathBuf,
    listener: Option<UnixListener>,
    /// Where input goes: the write end of the stdin pipe, or the pty master (`None`: no stdin, or
    /// closed).
    writer: Option<File>,
    /// The pty master (`tty: true`), for window sizes.
    tty: Option<File>,
    clients: Vec<Option<Client>>,
    /// Input read from attaches, not yet taken by the container's stdin.
    pending: Vec<u8>,
    once: bool,
    /// `stdinOnce` and the first attach with input ended: close stdin once `pending` is written.
    closing: bool,
}

impl Attach {
    /// Listen on `path` for attaches to a container whose input goes to `writer` and whose
    /// terminal (if any) is `tty`.
    pub(super) fn open(
        path: PathBuf,
        writer: Option<File>,
        tty: Option<File>,
        once: bool,
    ) -> io::Result<Attach> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        if let Some(w) = &writer {
            fcntl(w.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        }
        Ok(Attach {
            path,
            listener: Some(listener),
            writer,
            tty,
            clients: Vec::new(),
            pending: Vec::new(),
            once,
            closing: false,
        })
    }

    /// What to poll: the listener while there is room; each attach for its input (while earlier
    /// input has gone into stdin), for room for its output, or for its hang-up; stdin while input
    /// waits for room in it.
    pub(super) fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags, usize)> {
        let mut out = Vec::new();
        if let Some(l) = &self.listener {
            if self.clients.iter().flatten().count() < MAX_CLIENTS {
                out.push((l.as_fd(), PollFlags::POLLIN, LISTENER));
            }
        }
        for (k, c) in self.clients.iter().enumerate() {
            let Some(c) = c else { continue };
            let mut flags = PollFlags::empty();
            if !c.done && self.pending.is_empty() {
                flags |= PollFlags::POLLIN;
            }
            if !c.out.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            // With no flags poll still reports the hang-up (POLLHUP) of a detached attach.
            out.push((c.sock.as_fd(), flags, CLIENT0 - k));
        }
        if let Some(w) = &self.writer {
            if !self.pending.is_empty() {
                out.push((w.as_fd(), PollFlags::POLLOUT, WRITER));
            }
        }
        out
    }

    /// Poll entry `j` is ready.
    pub(super) fn ready(&mut self, j: usize) {
        match j {
            LISTENER => self.accept(),
            WRITER => self.flush_input(),
            _ => self.client_ready(CLIENT0 - j),
        }
    }

    fn accept(&mut self) {
        let Some(Ok((sock, _))) = self.listener.as_ref().map(UnixListener::accept) else {
            return;
        };
        if sock.set_nonblocking(true).is_err() {
            return;
        }
        let client = Client {
            sock,
            inbuf: Vec::new(),
            out: Vec::new(),
            input: false,
            done: false,
        };
        match self.clients.iter().position(Option::is_none) {
            Some(k) => self.clients[k] = Some(client),
            None => self.clients.push(Some(client)),
        }
    }

    fn client_ready(&mut self, k: usize) {
        let Some(Some(c)) = self.clients.get_mut(k) else {
            return;
        };
        let had_out = !c.out.is_empty();
        let mut gone = write_out(c).is_err();
        let mut ended = false;
        if !gone && !c.done {
            let mut chunk = [0u8; 65536];
            match c.sock.read(&mut chunk) {
                Ok(0) => ended = true,
                Ok(n) => c.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(_) => gone = true,
            }
        } else if !gone && !had_out {
            // Its input had ended and it wants no output: it hung up.
            gone = true;
        }
        let mut frames = Vec::new();
        while let Some(f) = Frame::decode(&mut c.inbuf) {
            frames.push(f);
        }
        for (kind, payload) in frames {
            match kind {
                HELLO => {
                    let wants = payload.first() == Some(&1);
                    let closed = self.writer.is_none() || self.closing;
                    if let Some(Some(c)) = self.clients.get_mut(k) {
                        c.input = wants && !closed;
                        if wants && closed {
                            c.out.extend_from_slice(&Frame::encode(NO_STDIN, &[]));
                            gone |= write_out(c).is_err();
                        }
                    }
                }
                INPUT if self.client_input(k) && self.writer.is_some() => {
                    self.pending.extend_from_slice(&payload)
                }
                RESIZE => {
                    if let (Some(tty), [r0, r1, c0, c1]) = (&self.tty, payload.as_slice()) {
                        let size = WinSize {
                            rows: u16::from_be_bytes([*r0, *r1]),
                            cols: u16::from_be_bytes([*c0, *c1]),
                        };
                        let _ = sys::set_window_size(tty.as_fd(), size);
                    }
                }
                _ => {}
            }
        }
        if ended || gone {
            self.input_ended(k);
        }
        if gone {
            self.clients[k] = None;
        }
        self.flush_input();
    }

    fn client_input(&self, k: usize) -> bool {
        matches!(self.clients.get(k), Some(Some(c)) if c.input)
    }

    /// Attach `k` has ended its input (or gone).
    fn input_ended(&mut self, k: usize) {
        let Some(Some(c)) = self.clients.get_mut(k) else {
            return;
        };
        let was = !c.done;
        c.done = true;
        if was && c.input && self.once && self.tty.is_none() && self.writer.is_some() {
            // StdinOnce: the container sees the end of its input; later attaches get its
            // output only.
            self.closing = true;
        }
    }

    /// Move waiting input into the container's stdin, as far as it takes it.
    fn flush_input(&mut self) {
        while !self.pending.is_empty() {
            let Some(w) = self.writer.as_mut() else {
                // The container closed its stdin: what it did not read is dropped.
                self.pending.clear();
                break;
            };
            match w.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => self.writer = None,
            }
        }
        if self.closing {
            self.writer = None;
        }
    }

    /// The container wrote `data` (to stderr when `stderr`): pass it to every attach.
    pub(super) fn output(&mut self, stderr: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let frame = Frame::encode(if stderr { STDERR } else { STDOUT }, data);
        for slot in &mut self.clients {
            let Some(c) = slot else { continue };
            c.out.extend_from_slice(&frame);
            if write_out(c).is_err() || c.out.len() > MAX_BACKLOG {
                *slot = None;
            }
        }
    }

    /// The container's run is over (with `exit`, its exit code, when it was seen): give each
    /// attach what is left of its output and the exit code (a moment each, at most), then close
    /// them all, which ends them.
    pub(super) fn finish(mut self, exit: Option<i32>) {
        for c in self.clients.iter_mut().flatten() {
            if let Some(code) = exit {
                c.out
                    .extend_from_slice(&Frame::encode(EXIT, &code.to_be_bytes()));
            }
            if c.out.is_empty() || c.sock.set_nonblocking(false).is_err() {
                continue;
            }
            let _ = c.sock.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = c.sock.write_all(&c.out);
        }
        self.clients.clear();
    }
}

/// Write what waits for `c` as far as its socket takes it.
fn write_out(c: &mut Client) -> io::Result<()> {
    while !c.out.is_empty() {
        match c.sock.write(&c.out) {
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Drop for Attach {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(path: &Path, input: bool) -> UnixStream {
        let mut c = UnixStream::connect(path).unwrap();
        c.write_all(&Frame::encode(HELLO, &[input as u8])).unwrap();
        c
    }

    #[test]
    fn an_attach_reaches_the_pipe_gets_output_and_stdin_once_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), "c");
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut a = Attach::open(path.clone(), Some(File::from(w)), None, true).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        let mut c = client(&path, true);
        a.ready(LISTENER);
        c.write_all(&Frame::encode(INPUT, b"hello\n")).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        // The hello and the data, then the end of the input.
        for _ in 0..2 {
            a.ready(CLIENT0);
        }
        let mut got = String::new();
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
        // stdinOnce: a second attach is taken; one that asks for input hears that stdin is
        // closed, and its input goes nowhere.
        let mut d = client(&path, true);
        a.ready(LISTENER);
        d.write_all(&Frame::encode(INPUT, b"more\n")).unwrap();
        a.ready(CLIENT0 - 1);
        assert_eq!(Frame::read(&mut d).unwrap(), Some((NO_STDIN, vec![])));
        assert!(a.writer.is_none() && a.pending.is_empty());
        // Output still reaches both until the run is over, then its exit code.
        a.output(true, b"err\n");
        a.finish(Some(137));
        for c in [&mut c, &mut d] {
            assert_eq!(Frame::read(c).unwrap(), Some((STDERR, b"err\n".to_vec())));
            assert_eq!(
                Frame::read(c).unwrap(),
                Some((EXIT, 137i32.to_be_bytes().to_vec()))
            );
            assert_eq!(Frame::read(c).unwrap(), None);
        }
    }

    #[test]
    fn an_attach_without_input_leaves_stdin_open_and_a_hang_up_drops_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = socket_path(dir.path(), "c");
        let (_r, w) = nix::unistd::pipe().unwrap();
        let mut a = Attach::open(path.clone(), Some(File::from(w)), None, true).unwrap();
        let c = client(&path, false);
        a.ready(LISTENER);
        drop(c);
        // Its hello, then the end of its (empty) input: stdin stays open for the next attach.
        a.ready(CLIENT0);
        a.ready(CLIENT0);
        assert!(a.writer.is_some() && path.exists());
        assert!(a.clients.iter().flatten().all(|c| c.done));
        // Then poll reports its hang-up.
        a.ready(CLIENT0);
        assert!(a.clients.iter().all(Option::is_none));
    }

    #[test]
    fn frames_decode_only_when_whole() {
        let mut buf = Frame::encode(INPUT, b"abc");
        buf.extend_from_slice(&Frame::resize(WinSize { rows: 24, cols: 80 })[..3]);
        assert_eq!(Frame::decode(&mut buf), Some((INPUT, b"abc".to_vec())));
        assert_eq!(Frame::decode(&mut buf), None);
        assert_eq!(buf.len(), 3);
    }
}
