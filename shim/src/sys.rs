//! The one place in the podshim crate that needs `unsafe`: process-wide signal dispositions.
#![allow(unsafe_code)]

/// Restore the default SIGPIPE disposition.
///
/// The Rust runtime sets SIGPIPE to SIG_IGN before `main`. An ignored signal stays ignored across
/// `execve(2)`, and libcontainer forks this process to start containers, so without this every
/// container process would start with SIGPIPE ignored (unlike under runc or containerd) and
/// `yes | head` inside a Pod would never end.
pub fn restore_sigpipe() {
    // SAFETY: called at the start of `main`, before any thread exists; SIG_DFL installs no
    // handler code, so no async-signal-safety question arises.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
