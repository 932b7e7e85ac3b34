//! The engine's errors, each with a [`ErrorKind`] that every front-end maps to its wire in one
//! place: the CLI to messages and exit codes, the containerd shim to ttrpc codes.

use std::io;
use std::path::PathBuf;

/// What kind of failure an error is, in the terms of the wires the front-ends speak (gRPC/ttrpc
/// codes, which containerd and the CRI act on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such Pod, container or process.
    NotFound,
    /// A Pod or container of that name (or a host port) is already taken.
    AlreadyExists,
    /// The request itself is wrong (a malformed spec, an invalid id).
    Invalid,
    /// The object is not in a state that allows the operation (start a running container,
    /// delete a running one, exec into a stopped one).
    FailedPrecondition,
    /// A dependency is missing or not answering (the pause binary, a CNI plugin).
    Unavailable,
    /// Anything else: the host refused something it should not have.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pod {key} already exists (state in {dir}); remove it with `podshim rm -f`, or use `podshim run --replace`")]
    PodExists { key: String, dir: PathBuf },
    #[error("pod {key} was left behind by podshim (pid {pid}), which is gone; remove it with `podshim gc`")]
    Orphaned { key: String, pid: u32 },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the pause process failed to start ({path})")]
    Pause {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{field}: {reason}")]
    HostPort { field: String, reason: String },
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    #[error(transparent)]
    Mount(#[from] crate::mounts::MountError),
    #[error(transparent)]
    Userns(#[from] crate::userns::UsernsError),
    #[error(transparent)]
    Forks(#[from] crate::forks::ForksError),
    #[error("pod network")]
    Network(#[from] podshim_cni::CniError),
    #[error("container {container:?}: the runtime failed to {action} it: {detail}")]
    Runtime {
        container: String,
        action: &'static str,
        detail: String,
    },
    #[error("container {id} does not exist")]
    NotFound { id: String },
    #[error("container {id} already exists")]
    ContainerExists { id: String },
    #[error("container {id} is {state}: cannot {operation} it")]
    State {
        id: String,
        state: crate::state::ContainerState,
        operation: &'static str,
    },
    #[error("container {id}: invalid spec: {detail}")]
    Spec { id: String, detail: String },
    /// What a dead sandbox held could not be removed, so it cannot be made anew.
    #[error("cannot remove what the dead sandbox held: {}", problems.join("; "))]
    Renew { problems: Vec<String> },
    /// execve(2) would refuse the process (E2BIG): it cannot start.
    #[error("container {id}: exec {executable}: argument list too long ({detail})")]
    ArgumentListTooLong {
        id: String,
        executable: String,
        detail: String,
    },
    #[error("podshim has {threads} threads, but containers can only be created from a single-threaded process (libcontainer forks it); this is a bug")]
    Threads { threads: usize },
    #[error("the runtime helper process: {detail}")]
    Helper { detail: String },
    /// An error the runtime helper met, as it reported it.
    #[error("{message}")]
    Remote { kind: ErrorKind, message: String },
    #[error("{error}; rolling back also failed: {}", rollback.join("; "))]
    Rollback {
        #[source]
        error: Box<Error>,
        rollback: Vec<String>,
    },
}

impl Error {
    /// The kind of this error (of the first error, for a failed rollback).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::PodExists { .. } | Error::ContainerExists { .. } => ErrorKind::AlreadyExists,
            Error::HostPort { .. } => ErrorKind::AlreadyExists,
            Error::Orphaned { .. } | Error::State { .. } => ErrorKind::FailedPrecondition,
            Error::Mount(crate::mounts::MountError::UpperOnOverlay { .. }) => {
                ErrorKind::FailedPrecondition
            }
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::Spec { .. } | Error::ArgumentListTooLong { .. } => ErrorKind::Invalid,
            Error::Pause { .. } | Error::Network(_) | Error::Helper { .. } => {
                ErrorKind::Unavailable
            }
            Error::Rollback { error, .. } => error.kind(),
            Error::Remote { kind, .. } => *kind,
            Error::Io { .. }
            | Error::Journal(_)
            | Error::Cgroup(_)
            | Error::Mount(_)
            | Error::Userns(_)
            | Error::Forks(_)
            | Error::Runtime { .. }
            | Error::Renew { .. }
            | Error::Threads { .. } => ErrorKind::Internal,
        }
    }

    /// An `Io` error building closure: `.map_err(Error::io("create", &path))`.
    pub fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { what, path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::ContainerState;

    #[test]
    fn kinds_follow_the_failure() {
        let nf = Error::NotFound { id: "c".into() };
        assert_eq!(nf.kind(), ErrorKind::NotFound);
        let running = Error::State {
            id: "c".into(),
            state: ContainerState::Running,
            operation: "delete",
        };
        assert_eq!(running.kind(), ErrorKind::FailedPrecondition);
        assert_eq!(
            running.to_string(),
            "container c is running: cannot delete it"
        );
        let exists = Error::PodExists {
            key: "default_p".into(),
            dir: "/run/podshim/pods/default_p".into(),
        };
        assert_eq!(exists.kind(), ErrorKind::AlreadyExists);
        let wrapped = Error::Rollback {
            error: Box::new(nf),
            rollback: vec!["x".into()],
        };
        assert_eq!(wrapped.kind(), ErrorKind::NotFound);
        let io = Error::io("create", std::path::Path::new("/x"))(io::Error::other("e"));
        assert_eq!(io.kind(), ErrorKind::Internal);
        assert_eq!(
            Error::Spec {
                id: "c".into(),
                detail: "no process".into()
            }
            .kind(),
            ErrorKind::Invalid
        );
    }
}
