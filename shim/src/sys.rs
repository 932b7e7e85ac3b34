//! The one place in the podshim crate that needs `unsafe`: process-wide signal dispositions,
//! and the few calls `podshim exec` needs that nix offers only as `unsafe` (pidfds, a descriptor
//! received over a socket, terminal window sizes).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// Give every signal its default disposition back where podshim's parent (or the Rust runtime,
/// for SIGPIPE) left it ignored.
///
/// An ignored signal stays ignored across `execve(2)`, and libcontainer forks this process to
/// start containers, so without this a container would inherit whatever its runtime's parent
/// ignored (the Rust runtime ignores SIGPIPE before `main`, so `yes | head` inside a Pod would
/// never end). Handlers podshim installs later are reset by `execve` on their own.
pub fn reset_ignored_signals() {
    for sig in 1..=libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: called at the start of `main`, before any thread exists. The raw
        // rt_sigaction(2) system call is used because glibc refuses to touch the two real-time
        // signals it reserves (32, 33); a zeroed `sigaction` with SIG_DFL is a valid value, and
        // a disposition is only changed from SIG_IGN to SIG_DFL (no handler code is involved).
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let size = std::mem::size_of::<libc::c_ulong>();
            if libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                std::ptr::null::<libc::sigaction>(),
                &mut old,
                size,
            ) != 0
            {
                continue;
            }
            if old.sa_sigaction == libc::SIG_IGN {
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = libc::SIG_DFL;
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &new,
                    std::ptr::null_mut::<libc::sigaction>(),
                    size,
                );
            }
        }
    }
}

/// `pidfd_open(2)`: a descriptor (close-on-exec) that becomes readable when process `pid` exits.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags (0) and returns a new descriptor or -1; no memory
    // is passed. On success the descriptor is ours alone, so `OwnedFd` may own it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor returned by the kernel just above, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Receive one descriptor sent with `SCM_RIGHTS` over a connected Unix socket (how an OCI
/// runtime hands over a pty master through the console socket).
pub fn recv_fd(sock: impl AsFd) -> io::Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let mut buf = [0u8; 64];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut got: Option<OwnedFd> = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for fd in fds {
                // SAFETY: the kernel installed these descriptors in this process for this message
                // (SCM_RIGHTS); nothing else refers to them, so each is owned exactly once here
                // (extra ones are closed by dropping their `OwnedFd`).
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                if got.is_none() {
                    got = Some(owned);
                }
            }
        }
    }
    got.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no descriptor in the message"))
}

/// A terminal's window size (rows, columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

/// `TIOCGWINSZ`: the window size of the terminal `fd`.
pub fn window_size(fd: impl AsFd) -> io::Result<WinSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer, which points to a
    // valid, writable `libc::winsize` that lives for the whole call; the fd is borrowed open.
    if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(WinSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// `TIOCSWINSZ`: set the window size of the terminal `fd` (the kernel sends SIGWINCH to its
/// foreground process group).
pub fn set_window_size(fd: impl AsFd, size: WinSize) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ only reads one `struct winsize` through the pointer, which points to a
    // valid `libc::winsize` living for the whole call; the fd is borrowed open.
    if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
