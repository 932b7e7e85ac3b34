//! The one place in the podshim crate that needs `unsafe`: process-wide signal dispositions.
#![allow(unsafe_code)]

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
