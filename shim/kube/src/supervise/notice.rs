//! What a run of Pods tells its user, as values: container output lines and notices (a container
//! that could not start, an exit and what follows it, a failed hook, a teardown problem...). The
//! supervisor prints nothing itself; the front-end's [`Reporter`] decides what is shown and
//! where (the CLI: output lines on stdout and stderr in the foreground, notices on stderr).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a run's output and notices go.
pub trait Reporter {
    /// Whole lines a container wrote (each ending in `\n`), on its stdout or stderr. `label` is
    /// the container's name, or `pod/container` when several Pods run.
    fn output(&mut self, label: &str, stderr: bool, lines: &[u8]);
    /// Something the user should know.
    fn notice(&mut self, notice: &Notice);
}

/// A reporter that shows nothing (container output still goes to the CRI logs).
#[derive(Debug, Default)]
pub struct Silent;

impl Reporter for Silent {
    fn output(&mut self, _: &str, _: bool, _: &[u8]) {}
    fn notice(&mut self, _: &Notice) {}
}

/// One notice: about a container (its label) or about the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub container: Option<String>,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    /// The container could not be created or started (Kubernetes' `StartError`).
    StartFailed {
        message: String,
    },
    /// It exited; `restart_in` when it restarts after a back-off.
    Exited {
        code: i32,
        reason: String,
        restart_in: Option<Duration>,
    },
    /// Deleting an exited container failed.
    DeleteFailed {
        message: String,
    },
    /// A probe failed often enough to kill the container.
    ProbeKill {
        why: String,
    },
    /// A probe or hook process could not be started.
    CheckNotStarted {
        message: String,
    },
    PostStartFailed,
    PreStopFailed,
    /// The container's CRI log could not be created or written.
    LogCreate {
        path: PathBuf,
        message: String,
    },
    LogWrite {
        message: String,
    },
    /// The Pod's pause process exited: the Pod is stopped.
    PauseExited {
        pod: String,
    },
    /// The Pod's pause process exited: its containers are killed and its sandbox made anew
    /// (the kubelet's `SandboxChanged` event).
    SandboxChanged {
        pod: String,
    },
    /// The Pod's new sandbox is ready, with this IP.
    SandboxRecreated {
        pod: String,
        ip: String,
    },
    /// The Pod's sandbox could not be made anew: the Pod is stopped.
    SandboxFailed {
        pod: String,
        message: String,
    },
    /// The Pod's `activeDeadlineSeconds` ran out: the Pod is failed and stopped.
    DeadlineExceeded {
        pod: String,
    },
    /// The Pod's record could not be written or removed.
    Record {
        message: String,
    },
    /// Something teardown could not remove.
    Teardown {
        problem: String,
    },
    /// A projected service account token could not be renewed (the old one stays).
    TokenRotation {
        pod: String,
        message: String,
    },
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::StartFailed { message } => write!(f, "cannot start container: {message}"),
            What::Exited {
                code,
                reason,
                restart_in,
            } => {
                write!(f, "container exited with code {code} ({reason})")?;
                if let Some(d) = restart_in {
                    write!(f, "; restarting in {:.1}s (back-off)", d.as_secs_f64())?;
                }
                Ok(())
            }
            What::DeleteFailed { message } => f.write_str(message),
            What::ProbeKill { why } => f.write_str(why),
            What::CheckNotStarted { message } => write!(f, "cannot run a check: {message}"),
            What::PostStartFailed => f.write_str(
                "the postStart hook failed (FailedPostStartHook); killing the container",
            ),
            What::PreStopFailed => f.write_str("the preStop hook failed"),
            What::LogCreate { path, message } => {
                write!(f, "cannot create the log {}: {message}", path.display())
            }
            What::LogWrite { message } => write!(f, "cannot write the container log: {message}"),
            What::PauseExited { pod } => {
                write!(f, "pod {pod}: the pause process exited; stopping the pod")
            }
            What::SandboxChanged { pod } => write!(
                f,
                "pod {pod}: the pause process exited (SandboxChanged): {}",
                super::report::SANDBOX_CHANGED
            ),
            What::SandboxRecreated { pod, ip } => {
                write!(f, "pod {pod}: new sandbox ready, pod IP {ip}")
            }
            What::SandboxFailed { pod, message } => write!(
                f,
                "pod {pod}: the sandbox could not be re-created ({message}); stopping the pod"
            ),
            What::DeadlineExceeded { pod } => write!(
                f,
                "pod {pod}: DeadlineExceeded: Pod was active on the node longer than the \
                 specified deadline; stopping the pod"
            ),
            What::Record { message } => f.write_str(message),
            What::Teardown { problem } => write!(f, "teardown: {problem}"),
            What::TokenRotation { pod, message } => write!(
                f,
                "pod {pod}: cannot renew the service account token ({message}); retrying in 10s"
            ),
        }
    }
}

impl Notice {
    pub fn container(label: &str, what: What) -> Self {
        Notice {
            container: Some(label.to_string()),
            what,
        }
    }

    pub fn run(what: What) -> Self {
        Notice {
            container: None,
            what,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_read_as_before() {
        let exited = What::Exited {
            code: 137,
            reason: "OOMKilled".into(),
            restart_in: None,
        };
        assert_eq!(
            exited.to_string(),
            "container exited with code 137 (OOMKilled)"
        );
        let backoff = What::Exited {
            code: 1,
            reason: "Error".into(),
            restart_in: Some(Duration::from_millis(500)),
        };
        assert_eq!(
            backoff.to_string(),
            "container exited with code 1 (Error); restarting in 0.5s (back-off)"
        );
        assert_eq!(
            What::Teardown {
                problem: "x".into()
            }
            .to_string(),
            "teardown: x"
        );
    }
}
