//! Starting the tools and plugins this crate runs (iptables-save, iptables-restore, nft, CNI
//! plugins) in a process group of their own. The crate's one `unsafe`: a `pre_exec` hook.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child of `cmd` leave the caller's process group for a group of its own before it
/// executes its program, so that what a terminal sends to its foreground process group
/// (Ctrl-C's SIGINT, Ctrl-\'s SIGQUIT, Ctrl-Z's SIGTSTP, the hangup's SIGHUP) reaches only the
/// caller, which decides: a tool killed half-way would fail a setup, or the rollback or
/// teardown that the caller does on that same Ctrl-C, and leave rules or links behind. For
/// short-lived children whose stdio is not the terminal (not being in the terminal's
/// foreground group would otherwise stop them on SIGTTIN or SIGTTOU).
///
/// Not [`CommandExt::process_group`]: with it the standard library starts the child with
/// `posix_spawn`, whose child runs with every signal blocked and the caller's handlers reset
/// to the default until it has left the group, then unblocks; a Ctrl-C that arrives in that
/// window stays pending and kills it after all, before its program even starts (tests/sigint.rs
/// saw `iptables-save` die so), and a Ctrl-Z stops it where the terminal's `fg` no longer
/// reaches it (the caller waits for it forever). A `pre_exec` hook makes it a fork, whose
/// child keeps the caller's handlers (podshim's set a flag) until its `execve`, by which time
/// it has left the group.
pub fn own_process_group(cmd: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the forked child before exec and makes one async-signal-safe
    // system call, touching no memory of the parent's.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setpgid(0, 0) == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
    }
}
