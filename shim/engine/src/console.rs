//! The OCI console socket from the receiving side: a process created with a terminal
//! (`process.terminal: true`) makes its pseudo-terminal inside the container and sends the master
//! side over a Unix socket its creator listens on (runc's `--console-socket`, libcontainer's
//! `with_console_socket`). `podshim exec -t` and the supervisor of a `tty: true` container both
//! take their pty master this way.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::sys;

/// A listening console socket; its file is removed when it is dropped.
pub struct ConsoleSocket {
    /// The directory the socket is in, kept open: `path` goes through it.
    _dir: OwnedFd,
    /// Where the runtime connects: `/proc/self/fd/<dir>/<name>`, so that a long state directory
    /// never exceeds `sun_path`'s 108 bytes. It names the same socket in a process forked from
    /// this one (the engine's create workers) as they inherit the descriptor.
    path: PathBuf,
    /// The socket's real path, for removal.
    file: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Listen on `dir/name` (replacing a socket a killed process left there).
    pub fn bind(dir: &Path, name: &str) -> io::Result<ConsoleSocket> {
        let dirfd: OwnedFd = fs::File::open(dir)?.into();
        let file = dir.join(name);
        let _ = fs::remove_file(&file);
        let path = PathBuf::from(format!("/proc/self/fd/{}/{name}", dirfd.as_raw_fd()));
        let listener = UnixListener::bind(&path)?;
        Ok(ConsoleSocket {
            _dir: dirfd,
            path,
            file,
            listener,
        })
    }

    /// The path to give the runtime as its console socket.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The socket's path on disk.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The pty master the process sent. Its init connected and sent it before the runtime's
    /// create (or exec) returned, so nothing here blocks; nobody connected is an error.
    pub fn receive(&self) -> io::Result<OwnedFd> {
        self.listener.set_nonblocking(true)?;
        let (conn, _) = self.listener.accept()?;
        conn.set_nonblocking(false)?;
        sys::recv_fd(conn.as_fd())
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn a_sent_descriptor_is_received_and_the_socket_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sock = ConsoleSocket::bind(dir.path(), "c.sock").unwrap();
        assert!(dir.path().join("c.sock").exists());
        let conn = UnixStream::connect(sock.path()).unwrap();
        let (r, _w) = nix::unistd::pipe().unwrap();
        sys::send_with_fds(conn.as_fd(), b"x", &[&r]).unwrap();
        let got = sock.receive().unwrap();
        assert!(got.as_raw_fd() >= 0);
        drop(sock);
        assert!(!dir.path().join("c.sock").exists());
    }

    #[test]
    fn nobody_connected_is_an_error_not_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let sock = ConsoleSocket::bind(dir.path(), "c.sock").unwrap();
        assert!(sock.receive().is_err());
    }
}
