//! A container's stdin (`stdin: true`): the supervisor keeps the write end of the pipe the
//! container reads, and `podshim attach` connects to it through a unix socket in the Pod's
//! directory that only root may use (the directory 0700, the socket 0600), as the kubelet's
//! attach reaches the runtime's stdin stream. One attach at a time is relayed (others wait in
//! the listen backlog); with `stdinOnce` the container's stdin is closed once the first attach
//! ends, as the CRI's `StdinOnce` does.
//!
//! Everything here is non-blocking and driven by the supervision loop's poll (no threads: the
//! supervisor forks for libcontainer).

use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::PollFlags;

/// Stream numbers of the poll entries (above any output stream's).
pub(super) const LISTENER: usize = usize::MAX;
pub(super) const CLIENT: usize = usize::MAX - 1;
pub(super) const WRITER: usize = usize::MAX - 2;

/// Whether poll entry `j` is one of a stdin's.
pub(super) fn is_stdin(j: usize) -> bool {
    j >= WRITER
}

/// The attach socket of a container of the Pod whose directory is `pod_dir`.
pub fn socket_path(pod_dir: &Path, container: &str) -> PathBuf {
    pod_dir.join("attach").join(format!("{container}.sock"))
}

pub(super) struct Stdin {
    path: PathBuf,
    listener: Option<UnixListener>,
    /// The write end of the container's stdin pipe (`None` once closed).
    writer: Option<File>,
    client: Option<UnixStream>,
    /// Read from the client, not yet taken by the pipe.
    pending: Vec<u8>,
    once: bool,
    /// `stdinOnce` and the attach ended: close the pipe once `pending` is written.
    closing: bool,
}

impl Stdin {
    /// Listen on `path` for attaches to the pipe `writer`.
    pub(super) fn open(path: PathBuf, writer: File, once: bool) -> io::Result<Stdin> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let _ = fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        fcntl(writer.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        Ok(Stdin {
            path,
            listener: Some(listener),
            writer: Some(writer),
            client: None,
            pending: Vec::new(),
            once,
            closing: false,
        })
    }

    /// What to poll: the listener while no attach is relayed, the attach while its last bytes
    /// went into the pipe, the pipe while bytes wait for room in it.
    pub(super) fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags, usize)> {
        let mut out = Vec::new();
        if self.client.is_none() {
            if let Some(l) = &self.listener {
                out.push((l.as_fd(), PollFlags::POLLIN, LISTENER));
            }
        }
        match (&self.client, &self.writer) {
            (Some(c), _) if self.pending.is_empty() => {
                out.push((c.as_fd(), PollFlags::POLLIN, CLIENT))
            }
            (_, Some(w)) if !self.pending.is_empty() => {
                out.push((w.as_fd(), PollFlags::POLLOUT, WRITER))
            }
            _ => {}
        }
        out
    }

    /// Poll entry `j` is ready.
    pub(super) fn ready(&mut self, j: usize) {
        match j {
            LISTENER => {
                if let Some(Ok((c, _))) = self.listener.as_ref().map(UnixListener::accept) {
                    if c.set_nonblocking(true).is_ok() {
                        self.client = Some(c);
                    }
                }
            }
            CLIENT => {
                let mut chunk = [0u8; 65536];
                let read = match self.client.as_mut() {
                    Some(c) => c.read(&mut chunk),
                    None => return,
                };
                match read {
                    Ok(0) => self.client_gone(),
                    Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(_) => self.client_gone(),
                }
                self.flush();
            }
            _ => self.flush(),
        }
    }

    /// Move what waits into the pipe, as far as it takes it.
    fn flush(&mut self) {
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

    fn client_gone(&mut self) {
        self.client = None;
        if self.once {
            // StdinOnce: no second attach, and the container sees EOF.
            self.closing = true;
            self.listener = None;
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for Stdin {
    fn drop(&mut self) {
        if self.listener.is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attach_reaches_the_pipe_and_stdin_once_closes_it() {
        let dir = std::env::temp_dir().join(format!("podshim-stdin-{}", std::process::id()));
        let path = socket_path(&dir, "c");
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut s = Stdin::open(path.clone(), File::from(w), true).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().unwrap())), (0o600, 0o700));
        let mut client = UnixStream::connect(&path).unwrap();
        s.ready(LISTENER);
        client.write_all(b"hello\n").unwrap();
        drop(client);
        // The data, then the end of the attach.
        for _ in 0..2 {
            s.ready(CLIENT);
        }
        let mut got = String::new();
        File::from(r).read_to_string(&mut got).unwrap();
        assert_eq!(got, "hello\n");
        assert!(!path.exists(), "stdinOnce: no second attach");
        let _ = fs::remove_dir_all(&dir);
    }
}
