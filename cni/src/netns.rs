//! Network namespace handles, and running work inside one on a short-lived dedicated thread.
//!
//! `setns(2)` changes the namespace of the calling thread only. The caller of this crate is
//! usually single-threaded and later forks, so its own thread must never change namespace:
//! in-namespace work runs on a scoped thread that enters the namespace, does the work and is
//! joined before we return. Netlink sockets opened there stay bound to that namespace.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

use crate::CniError;

/// An open network namespace: an nsfs bind mount or `/proc/PID/ns/net`.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    path: PathBuf,
}

impl Netns {
    pub fn open(path: &Path) -> Result<Self, CniError> {
        // std opens with O_CLOEXEC; O_RDONLY is all setns(2) and IFLA_NET_NS_FD need.
        let fd = OwnedFd::from(File::open(path).map_err(|source| CniError::NetnsOpen {
            path: path.to_owned(),
            source,
        })?);
        let fs = fstatfs(&fd).map_err(|errno| CniError::NetnsOpen {
            path: path.to_owned(),
            source: errno.into(),
        })?;
        if fs.filesystem_type() != NSFS_MAGIC {
            return Err(CniError::NotANetns {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Runs `work` on a new thread that has entered this namespace, and waits for it.
    pub fn run<T, F>(&self, work: F) -> Result<T, CniError>
    where
        T: Send,
        F: FnOnce() -> Result<T, CniError> + Send,
    {
        let fd = self.fd.as_fd();
        let path = &self.path;
        std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("podshim-netns".into())
                .spawn_scoped(scope, move || {
                    nix::sched::setns(fd, CloneFlags::CLONE_NEWNET).map_err(|source| {
                        CniError::Setns {
                            path: path.clone(),
                            source,
                        }
                    })?;
                    work()
                })
                .map_err(|source| CniError::NetnsThread { source })?;
            handle.join().unwrap_or_else(|_| {
                Err(CniError::NetnsThread {
                    source: std::io::Error::other("panicked"),
                })
            })
        })
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
