//! Protection of the podshim binary against CVE-2019-5736: libcontainer forks podshim into new
//! containers, and a container process that gets hold of `/proc/<pid>/exe` of such a process
//! must not be able to overwrite podshim on the host.
//!
//! As runc does (`try_bindfd`): podshim re-executes itself through a read-only bind mount of its
//! binary that is detached at once, so `/proc/self/exe` refers to the binary through a mount
//! that refuses writes (EROFS), while the pages stay shared with the installed binary's page
//! cache (every supervisor shares one copy). Where mounting is not possible (not root), a
//! sealed memfd copy (pentacle) does the same at the cost of a private copy per process.

use std::ffi::CString;
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use std::os::unix::fs::OpenOptionsExt;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::statvfs::{statvfs, FsFlags};

#[derive(Debug, thiserror::Error)]
pub enum ExeError {
    #[error("cannot protect the podshim binary with a read-only bind mount: {0}")]
    Bind(String),
    #[error("cannot seal the podshim binary in a memfd: {0}")]
    Seal(std::io::Error),
}

/// Whether this process already runs from a protected binary (a read-only mount, or a sealed
/// memfd).
pub fn protected() -> bool {
    statvfs("/proc/self/exe").is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
        || pentacle::is_sealed()
}

/// Make sure podshim runs from a protected binary: returns when it does; otherwise re-executes
/// podshim (same arguments and environment) and does not return.
pub fn ensure_protected() -> Result<(), ExeError> {
    if protected() {
        return Ok(());
    }
    match bind_read_only() {
        Ok(fd) => {
            let args: Vec<CString> = std::env::args_os()
                .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
                .collect();
            let env: Vec<CString> = std::env::vars_os()
                .map(|(k, v)| {
                    let mut kv = k.as_bytes().to_vec();
                    kv.push(b'=');
                    kv.extend_from_slice(v.as_bytes());
                    CString::new(kv).unwrap_or_default()
                })
                .collect();
            let err = nix::unistd::fexecve(fd.as_raw_fd(), &args, &env).unwrap_err();
            Err(ExeError::Bind(format!("re-execute: {err}")))
        }
        // Not root (or no mount rights): a private sealed copy.
        Err(_) => pentacle::ensure_sealed().map_err(ExeError::Seal),
    }
}

/// An `O_PATH` descriptor (close-on-exec) of this binary reached through a read-only bind mount
/// that is already detached (and its mount point removed). A program started through it
/// (`/proc/self/fd/N`) runs protected from its first instruction, so [`ensure_protected`] has
/// nothing to do in it (the containerd shim starts its server so, saving an `execve`).
pub fn read_only_binary() -> Result<std::os::fd::OwnedFd, ExeError> {
    bind_read_only()
}

fn bind_read_only() -> Result<std::os::fd::OwnedFd, ExeError> {
    // The signals that end podshim by default and that a terminal or a service manager sends
    // (a Ctrl-C goes to the whole foreground process group, during podshim's first
    // milliseconds too) wait from before the mount point is made until it is gone again:
    // delivered in between, they would leave the mount point and its bind mount behind. Once
    // the old mask is back, a pending one ends podshim as it would have at once.
    let stops: SigSet = [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ]
    .into_iter()
    .collect();
    let mut old = SigSet::empty();
    let blocked = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stops), Some(&mut old)).is_ok();
    let result = bind_and_detach();
    if blocked {
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    result
}

fn bind_and_detach() -> Result<std::os::fd::OwnedFd, ExeError> {
    let dir = ["/run", "/tmp"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let target = dir.join(format!(".podshim-exe-{}", std::process::id()));
    let e = |what: &str, err: &dyn std::fmt::Display| ExeError::Bind(format!("{what}: {err}"));
    fs::File::create(&target).map_err(|err| e("create the mount point", &err))?;
    let result = (|| {
        mount(
            Some("/proc/self/exe"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|err| e("bind mount", &err))?;
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(|err| e("remount read-only", &err))
        .and_then(|_| {
            // O_PATH: the descriptor only names the file (std adds O_CLOEXEC).
            fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(&target)
                .map_err(|err| e("open", &err))
        })
        .inspect_err(|_| {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
        })
        .map(|f| {
            let _ = umount2(&target, MntFlags::MNT_DETACH);
            std::os::fd::OwnedFd::from(f)
        })
    })();
    let _ = fs::remove_file(&target);
    result
}

/// Remove the bind mounts of [`bind_read_only`] whose process died between the mount and its
/// detach (a podshim killed at that moment: the crash test kills runs at random points), and
/// the bare mount points of such processes, so `gc` leaves no mount or file behind. Returns the
/// mount points removed.
pub fn remove_stale_binds() -> Vec<PathBuf> {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for point in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        let path = PathBuf::from(point);
        let Some(pid) = stale_pid(&path) else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if umount2(&path, MntFlags::MNT_DETACH).is_ok() {
            let _ = fs::remove_file(&path);
            removed.push(path);
        }
    }
    // A podshim killed between making the mount point and mounting on it (or after the detach,
    // before removing it) leaves only the empty file.
    for dir in ["/run", "/tmp"] {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let Some(pid) = stale_pid(&path) else {
                continue;
            };
            if !Path::new(&format!("/proc/{pid}")).exists()
                && entry.file_type().is_ok_and(|t| t.is_file())
                && fs::remove_file(&path).is_ok()
            {
                removed.push(path);
            }
        }
    }
    removed
}

/// The PID in the name of a mount point made by [`bind_read_only`].
fn stale_pid(path: &Path) -> Option<u32> {
    path.file_name()?
        .to_str()?
        .strip_prefix(".podshim-exe-")?
        .parse()
        .ok()
}
