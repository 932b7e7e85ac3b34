//! The shim's errors and the one place they become ttrpc statuses. containerd maps the codes
//! back to its errdefs and acts on them: NOT_FOUND makes Kill and Delete idempotent,
//! FAILED_PRECONDITION refuses deleting a running task, ALREADY_EXISTS a second Create.

use containerd_shim_protos::ttrpc::{self, Code};
use podshim_engine::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Engine(#[from] podshim_engine::Error),
    #[error("task {0} not found")]
    NoTask(String),
    #[error("exec {exec} of task {id} not found")]
    NoExec { id: String, exec: String },
    #[error("task {0} already exists")]
    TaskExists(String),
    #[error("exec {exec} of task {id} already exists")]
    ExecExists { id: String, exec: String },
    #[error("process {0} has already exited")]
    Exited(String),
    #[error("process {id} is {state}: cannot {op} it")]
    State {
        id: String,
        state: &'static str,
        op: &'static str,
    },
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("{0} is not implemented by podshim")]
    NotImplemented(&'static str),
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ShimError {
    pub fn io(what: &'static str, path: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| ShimError::Io { what, path, source }
    }

    /// The ttrpc code containerd expects for this error.
    pub fn code(&self) -> Code {
        match self {
            ShimError::Engine(e) => match e.kind() {
                ErrorKind::NotFound => Code::NOT_FOUND,
                ErrorKind::AlreadyExists => Code::ALREADY_EXISTS,
                ErrorKind::Invalid => Code::INVALID_ARGUMENT,
                ErrorKind::FailedPrecondition => Code::FAILED_PRECONDITION,
                ErrorKind::Unavailable => Code::UNAVAILABLE,
                ErrorKind::Internal => Code::INTERNAL,
            },
            // containerd-shim-runc-v2 answers NOT_FOUND to a signal for a process that has
            // exited ("process already finished"), and containerd relies on it (a kill racing
            // an exit is not an error for `ctr task kill` or the CRI's StopContainer).
            ShimError::NoTask(_) | ShimError::NoExec { .. } | ShimError::Exited(_) => {
                Code::NOT_FOUND
            }
            ShimError::TaskExists(_) | ShimError::ExecExists { .. } => Code::ALREADY_EXISTS,
            ShimError::State { .. } => Code::FAILED_PRECONDITION,
            ShimError::Invalid(_) => Code::INVALID_ARGUMENT,
            ShimError::NotImplemented(_) => Code::UNIMPLEMENTED,
            ShimError::Io { .. } => Code::INTERNAL,
        }
    }
}

/// The message with its causes, as one line.
pub fn describe(e: &ShimError) -> String {
    podshim_engine::chain(e)
}

impl From<ShimError> for ttrpc::Error {
    fn from(e: ShimError) -> Self {
        ttrpc::Error::RpcStatus(ttrpc::get_status(e.code(), describe(&e)))
    }
}

pub type Result<T> = std::result::Result<T, ShimError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_containerd_acts_on() {
        let running = podshim_engine::Error::State {
            id: "c".into(),
            state: podshim_engine::ContainerState::Running,
            operation: "delete",
        };
        assert_eq!(ShimError::from(running).code(), Code::FAILED_PRECONDITION);
        assert_eq!(ShimError::NoTask("x".into()).code(), Code::NOT_FOUND);
        assert_eq!(ShimError::Exited("x".into()).code(), Code::NOT_FOUND);
        assert_eq!(
            ShimError::TaskExists("x".into()).code(),
            Code::ALREADY_EXISTS
        );
        assert_eq!(
            ShimError::NotImplemented("Checkpoint").code(),
            Code::UNIMPLEMENTED
        );
        let exists = podshim_engine::Error::ContainerExists { id: "c".into() };
        assert_eq!(ShimError::from(exists).code(), Code::ALREADY_EXISTS);
        let spec = podshim_engine::Error::Spec {
            id: "c".into(),
            detail: "no root".into(),
        };
        let status = match ttrpc::Error::from(ShimError::from(spec)) {
            ttrpc::Error::RpcStatus(s) => s,
            e => panic!("{e:?}"),
        };
        assert_eq!(status.code(), Code::INVALID_ARGUMENT);
        assert_eq!(status.message(), "container c: invalid spec: no root");
    }
}
