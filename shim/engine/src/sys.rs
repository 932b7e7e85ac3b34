//! The one place in the engine that needs `unsafe`: process-wide signal dispositions, the fork
//! of the runtime helper, and the few calls nix offers only as `unsafe` (pidfds, descriptors
//! received over a socket, terminal window sizes, the descriptors a child inherits, ID-mapped
//! mounts), and the project quota calls no crate offers.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

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

/// Drop this process's resident pages of read-only file mappings (program text, read-only data,
/// shared libraries) and give unused heap back: a long-running supervisor then holds only the
/// pages its loop touches again, not everything its setup touched. Returns the mappings trimmed.
///
/// Only mappings that are not writable and hold no private (copied-on-write) page are trimmed,
/// so nothing but page-table entries is dropped: each page comes back unchanged from its file on
/// the next access.
pub fn trim_resident_memory() -> usize {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    // Find the mappings first, drop their pages last: code that runs after a mapping is
    // trimmed would fault parts of it back in.
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let mut vma: Option<(usize, usize, bool)> = None;
    let mut keep = |vma: &mut Option<(usize, usize, bool)>, anon_kb: Option<u64>| {
        if let (Some((start, end, true)), Some(0)) = (vma.take(), anon_kb) {
            ranges.push((start, end - start));
        }
    };
    let mut anon: Option<u64> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((a, b)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            keep(&mut vma, anon);
            anon = None;
            let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
            else {
                continue;
            };
            let perms = words.next().unwrap_or("----");
            let inode = words.nth(2).unwrap_or("0");
            let path = words.next().unwrap_or("");
            let eligible = perms.starts_with('r')
                && !perms.contains('w')
                && inode != "0"
                && !path.starts_with('[');
            vma = Some((start, end, eligible));
        } else if first == "Anonymous:" {
            anon = words.next().and_then(|n| n.parse().ok());
        }
    }
    keep(&mut vma, anon);
    drop(smaps);
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
    let mut trimmed = 0;
    for (start, len) in &ranges {
        // SAFETY: each range is a whole mapping of this process, read from /proc/self/smaps just
        // above; it is not writable and has no anonymous (COW) pages, so MADV_DONTNEED only
        // unmaps file-backed pages, which later faults map again with the same contents. The
        // callers (the supervisor loop, the runtime helper, a containerd shim's idle trim) never
        // unmap, remap or mprotect a file mapping (no dlopen/dlclose, no file mmap), so nothing
        // can make the mapping writable or put another one in its place in between.
        if unsafe { libc::madvise(*start as *mut libc::c_void, *len, libc::MADV_DONTNEED) } == 0 {
            trimmed += 1;
        }
    }
    trimmed
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

/// `fork(2)`: `None` in the child, the child's PID in the parent.
///
/// Only for a process that has a single thread (the caller checks): the runtime helper, forked
/// before the program starts any thread, and the workers that create a Pod's containers at once
/// (`crate::batch`).
pub fn fork() -> io::Result<Option<nix::unistd::Pid>> {
    // SAFETY: the caller has verified that this process has a single thread, so the child gets a
    // consistent copy of every lock and allocator state; it then runs the helper loop or one
    // container's create and `_exit`s.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(None),
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
}

/// Fork a child that writes `data` to the file at `path` (opened afresh each time), then again
/// every `every`, `times` times at most, until `stop` (the read end of a pipe) reports its
/// writer closed; the parent does not wait. The child keeps no other descriptor of this
/// process. `cgroups::warm`'s moves into the child's own cgroup, whose point is the kernel's
/// lock they take.
pub fn fork_writer(
    path: &std::ffi::CStr,
    data: &'static [u8],
    stop: OwnedFd,
    every: std::time::Duration,
    times: u32,
) -> io::Result<nix::unistd::Pid> {
    let keep = stop.as_raw_fd();
    let every_ms = every.as_millis().clamp(1, i32::MAX as u128) as i32;
    let parent = nix::unistd::getpid().as_raw();
    // SAFETY: the child only calls prctl(2), getppid(2), close_range(2), open(2), write(2),
    // close(2), poll(2) and _exit(2), all async-signal-safe, on data made before the fork, so
    // this is sound in a process with threads too.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // SAFETY: plain system calls on integers, a valid C string, a buffer valid for its
            // length and a pollfd on this stack frame.
            unsafe {
                // It ends with its parent (a podshim killed mid-start), not after it.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    exit_now(0)
                }
                if keep > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, keep as u32 - 1, 0u32);
                }
                libc::syscall(libc::SYS_close_range, keep as u32 + 1, u32::MAX, 0u32);
                for _ in 0..times {
                    let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::write(fd, data.as_ptr().cast(), data.len());
                        libc::close(fd);
                    }
                    let mut p = libc::pollfd {
                        fd: keep,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    if libc::poll(&mut p, 1, every_ms) != 0 {
                        break;
                    }
                }
            }
            exit_now(0)
        }
        nix::unistd::ForkResult::Parent { child } => Ok(child),
    }
}

/// `_exit(2)`: end a forked worker at once, without the exit handlers and buffered output the
/// parent's copy of this process still owns.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: `_exit` takes no pointers and never returns; skipping destructors and atexit
    // handlers is the point (they belong to the parent).
    unsafe { libc::_exit(code) }
}

/// Makes the child of a command leave podshim's process group before its exec (race-free: no
/// terminal signal sent to the group reaches it, not even while it starts); see there.
pub use podshim_cni::own_process_group;

/// Makes a child started by `cmd` lead a new session (`setsid(2)` between fork and exec), for
/// the long-lived processes podshim starts (a Pod's supervisor, a controller's keeper): they
/// must outlive the command that started them, so a Ctrl-C (SIGINT to the terminal's foreground
/// process group) or the terminal's hangup must never reach them. Doing it before exec, rather
/// than first thing in the child's `main`, leaves no moment in which they still are in the
/// terminal's group (a Ctrl-C pressed then killed them half-started). Their own `setsid()`
/// then fails with EPERM (already a session leader), which they ignore.
pub fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and makes one async-signal-safe
    // system call, touching no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        });
    }
}

/// Makes a child started by `cmd` inherit only its standard streams.
///
/// Rust opens its own descriptors close-on-exec, but podshim may itself have inherited some
/// without the flag (a `flock(1)` lock, a shell's redirections, a CI runner's pipes), and a
/// long-lived child (a Pod's supervisor, pause) would keep them open for the Pod's lifetime:
/// a lock never released, a pipe whose reader never sees EOF. Between fork and exec, every
/// descriptor from 3 up is marked close-on-exec (`close_range(2)` with CLOSE_RANGE_CLOEXEC,
/// Linux 5.11), so exec drops them and nothing is closed early under the standard library.
pub fn inherit_only_stdio(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and makes one async-signal-safe
    // system call, touching no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            let rc = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if rc == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        });
    }
}

/// Makes a child started by `cmd` inherit its standard streams and `fds`, as descriptors 3,
/// 4, ... in that order, and nothing else (as [`inherit_only_stdio`]).
///
/// For helper programs that expect descriptors at fixed numbers (containerd's logging binaries
/// read a container's stdout at 3, its stderr at 4, and close 5 when ready). The descriptors are
/// first copied above the target range, so a source that already sits at 3..3+n is not
/// overwritten before it is moved; `dup2` leaves the targets without close-on-exec.
pub fn inherit_stdio_and(cmd: &mut std::process::Command, fds: &[&OwnedFd]) {
    use std::os::unix::process::CommandExt;
    let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure runs in the forked child before exec; it makes only async-signal-safe
    // system calls (close_range, fcntl, dup2, close) and reads the copied vector without
    // allocating.
    unsafe {
        cmd.pre_exec(move || {
            let n = raw.len() as i32;
            let rc = libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut high = [0i32; 8];
            if raw.len() > high.len() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            for (i, fd) in raw.iter().enumerate() {
                high[i] = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 3 + n);
                if high[i] < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            for (i, fd) in high[..raw.len()].iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(io::Error::last_os_error());
                }
                libc::close(*fd);
            }
            Ok(())
        });
    }
}

/// `pidfd_send_signal(2)`: signal the process a pidfd refers to (and no other, whatever happens
/// to its PID).
pub fn pidfd_send_signal(pidfd: impl AsFd, signal: nix::sys::signal::Signal) -> io::Result<()> {
    // SAFETY: the call takes a borrowed open descriptor, a signal number, a null siginfo and no
    // flags; no memory is shared with the kernel.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_fd().as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Send one datagram with descriptors attached (`SCM_RIGHTS`).
pub fn send_with_fds(sock: impl AsFd, data: &[u8], fds: &[&OwnedFd]) -> io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
    let raw: Vec<std::os::fd::RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let iov = [io::IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
    sendmsg::<UnixAddr>(
        sock.as_fd().as_raw_fd(),
        &iov,
        cmsgs,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    Ok(())
}

/// Receive one datagram and the descriptors attached to it (close-on-exec). A length of 0 is
/// the peer's end.
pub fn recv_with_fds(sock: impl AsFd, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = c {
            for fd in raw {
                // SAFETY: the kernel installed these descriptors in this process for this
                // message (SCM_RIGHTS); nothing else refers to them, so each is owned once here.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((n, fds))
}

/// Wait until one of `fds` is readable (or hung up); which ones are. `timeout` None waits for
/// ever. EINTR counts as nothing ready.
pub fn poll_readable(
    fds: &[std::os::fd::BorrowedFd<'_>],
    timeout: Option<std::time::Duration>,
) -> io::Result<Vec<bool>> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|f| PollFd::new(*f, PollFlags::POLLIN))
        .collect();
    let timeout = match timeout {
        None => PollTimeout::NONE,
        Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
    };
    match poll(&mut pfds, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok(vec![false; fds.len()]),
        Err(e) => return Err(e.into()),
    }
    Ok(pfds
        .iter()
        .map(|p| {
            p.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        })
        .collect())
}

/// Project quotas (`quotactl_fd(2)`, `FS_IOC_FS{GET,SET}XATTR`), for sizes of claims on ext4
/// and XFS mounted with `prjquota`: what the kubelet's `fsquota` package does for emptyDir.
pub mod quota {
    #![allow(unsafe_code)]
    use std::io;
    use std::os::fd::{AsFd, AsRawFd};

    // <linux/quota.h>: `QCMD(cmd, type)`, the commands and the project quota type.
    const Q_GETINFO: u32 = 0x80_0005;
    const Q_GETQUOTA: u32 = 0x80_0007;
    const Q_SETQUOTA: u32 = 0x80_0008;
    const PRJQUOTA: u32 = 2;
    const QIF_BLIMITS: u32 = 1;
    /// The unit of `dqb_bhardlimit` (`QIF_DQBLKSIZE`).
    pub const BLOCK: u64 = 1024;
    // <linux/fs.h>: `_IOR('X', 31, struct fsxattr)` and `_IOW('X', 32, struct fsxattr)`.
    const FS_IOC_FSGETXATTR: u64 = 0x801c_581f;
    const FS_IOC_FSSETXATTR: u64 = 0x401c_5820;
    /// New files and directories below take the directory's project ID.
    const FS_XFLAG_PROJINHERIT: u32 = 0x200;

    /// `struct fsxattr` of <linux/fs.h> (not in the libc crate).
    #[repr(C)]
    #[derive(Default)]
    struct FsXattr {
        xflags: u32,
        extsize: u32,
        nextents: u32,
        projid: u32,
        cowextsize: u32,
        pad: [u8; 8],
    }

    /// `struct if_dqinfo` of <linux/quota.h>.
    #[repr(C)]
    #[derive(Default)]
    struct DqInfo {
        bgrace: u64,
        igrace: u64,
        flags: u32,
        valid: u32,
    }

    fn quotactl(fd: impl AsFd, cmd: u32, id: u32, addr: *mut libc::c_void) -> io::Result<()> {
        let cmd = (cmd << 8) | PRJQUOTA;
        // SAFETY: quotactl_fd(2) reads or writes the one structure `addr` points to, which the
        // callers below make of the type the command names (`if_dqinfo` for Q_GETINFO,
        // `if_dqblk` = libc::dqblk for Q_GETQUOTA/Q_SETQUOTA) and keep alive for the call.
        let rc =
            unsafe { libc::syscall(libc::SYS_quotactl_fd, fd.as_fd().as_raw_fd(), cmd, id, addr) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Whether project quotas are on for the filesystem of `fd` (ESRCH: not mounted with
    /// `prjquota`; ENOSYS/EINVAL/ENOTTY...: no quota support at all).
    pub fn enabled(fd: impl AsFd) -> io::Result<()> {
        let mut info = DqInfo::default();
        quotactl(fd, Q_GETINFO, 0, (&mut info as *mut DqInfo).cast())
    }

    /// Usage and limits of project `id`: (bytes used, hard block limit in bytes).
    pub fn get(fd: impl AsFd, id: u32) -> io::Result<(u64, u64)> {
        // SAFETY: dqblk is plain integers; all zeroes is a valid value.
        let mut q: libc::dqblk = unsafe { std::mem::zeroed() };
        quotactl(fd, Q_GETQUOTA, id, (&mut q as *mut libc::dqblk).cast())?;
        Ok((q.dqb_curspace, q.dqb_bhardlimit * BLOCK))
    }

    /// Sets the hard block limit of project `id` to `bytes` (rounded up to [`BLOCK`]; 0
    /// removes it), the soft limit with it.
    pub fn set_limit(fd: impl AsFd, id: u32, bytes: u64) -> io::Result<()> {
        // SAFETY: as in `get`.
        let mut q: libc::dqblk = unsafe { std::mem::zeroed() };
        q.dqb_bhardlimit = bytes.div_ceil(BLOCK);
        q.dqb_bsoftlimit = q.dqb_bhardlimit;
        q.dqb_valid = QIF_BLIMITS;
        quotactl(fd, Q_SETQUOTA, id, (&mut q as *mut libc::dqblk).cast())
    }

    fn xattr(fd: impl AsFd) -> io::Result<FsXattr> {
        let mut x = FsXattr::default();
        // SAFETY: FS_IOC_FSGETXATTR fills one `struct fsxattr`, which `x` is (same layout).
        if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), FS_IOC_FSGETXATTR as _, &mut x) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(x)
    }

    /// The project ID of the file or directory `fd`, and whether it has the inherit flag.
    pub fn project(fd: impl AsFd) -> io::Result<(u32, bool)> {
        let x = xattr(fd)?;
        Ok((x.projid, x.xflags & FS_XFLAG_PROJINHERIT != 0))
    }

    /// Gives the directory `fd` project `id` and the inherit flag (`id` 0 and no flag clears
    /// them), keeping its other attributes.
    pub fn set_project(fd: impl AsFd, id: u32) -> io::Result<()> {
        let mut x = xattr(fd.as_fd())?;
        x.projid = id;
        match id {
            0 => x.xflags &= !FS_XFLAG_PROJINHERIT,
            _ => x.xflags |= FS_XFLAG_PROJINHERIT,
        }
        // SAFETY: FS_IOC_FSSETXATTR reads one `struct fsxattr`, which `x` is.
        if unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), FS_IOC_FSSETXATTR as _, &x) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// An ID-mapped bind mount of `source` at `target` (mount_setattr(2), `MOUNT_ATTR_IDMAP`): a
/// detached clone of the mount at `source` (open_tree(2), not its submounts) gets the ID
/// mapping of the user namespace `userns` and is then attached at `target` (move_mount(2)), so
/// it is never visible unmapped. Files owned by ID `n` on disk appear owned by the ID `n` maps to
/// in `userns`, and a file made through it by that ID is owned by `n` on disk. `read_only` for
/// image layers: host root keeps its power over files through it (their owners are mapped host
/// IDs), and a recursive removal of a directory holding it must not reach the files below.
pub fn idmapped_bind(
    source: &Path,
    target: &Path,
    userns: impl AsFd,
    read_only: bool,
) -> io::Result<()> {
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (source, target) = (c(source)?, c(target)?);
    let empty = c"";
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC as libc::c_uint;
    // SAFETY: open_tree takes a directory fd, a valid C string and flags; it returns a new
    // descriptor (owned by nobody else, so `OwnedFd` may own it) or -1.
    let tree =
        unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, source.as_ptr(), flags) };
    if tree < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: see above.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP
            | if read_only {
                libc::MOUNT_ATTR_RDONLY
            } else {
                0
            },
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_fd().as_raw_fd() as u64,
    };
    // SAFETY: `attr` is a valid mount_attr of the size passed, alive for the call; the path is
    // an empty C string with AT_EMPTY_PATH (the descriptor itself is changed).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both paths are valid C strings alive for the call; only integers besides.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
