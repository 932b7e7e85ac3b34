//! The lifecycles of containers and sandboxes as explicit state types: every allowed transition
//! is in one table here, and everything else is refused with the state it was refused in (the
//! `FailedPrecondition` a containerd shim answers).

use std::fmt;

/// Where a container stands, as the OCI runtime spec and containerd name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Its init exists, stopped before the user's process (`create` done, `start` not yet).
    Created,
    /// The user's process runs.
    Running,
    /// Frozen by the freezer cgroup.
    Paused,
    /// Its init has exited (and was reaped); its exit status is kept until it is deleted.
    Stopped,
}

/// What can happen to a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Pause,
    Resume,
    /// Its init exited (seen by whoever reaps it).
    Exit,
    /// A signal to its processes.
    Kill,
    /// A new process in it.
    Exec,
    /// New cgroup limits.
    Update,
    Delete,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Pause => "pause",
            Operation::Resume => "resume",
            Operation::Exit => "mark as exited",
            Operation::Kill => "signal",
            Operation::Exec => "exec in",
            Operation::Update => "update",
            Operation::Delete => "delete",
        }
    }
}

impl ContainerState {
    /// The state after `op`, or `Err(self)` when `op` is not allowed in this state.
    ///
    /// A container that is running or paused must be killed before it is deleted (containerd
    /// answers FailedPrecondition to deleting a running task); a created one may be deleted
    /// (its init never ran the user's process). Kill and update of a stopped container are
    /// refused, as runc refuses them ("container not running").
    pub fn after(self, op: Operation) -> Result<ContainerState, ContainerState> {
        use ContainerState::*;
        use Operation as Op;
        let next = match (self, op) {
            (Created, Op::Start) => Running,
            (Running, Op::Pause) => Paused,
            (Paused, Op::Resume) => Running,
            (Created | Running | Paused, Op::Exit) => Stopped,
            (Created | Running | Paused, Op::Kill) => self,
            (Running, Op::Exec) => self,
            (Created | Running | Paused, Op::Update) => self,
            (Created | Stopped, Op::Delete) => Stopped,
            _ => return Err(self),
        };
        Ok(next)
    }
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Paused => "paused",
            ContainerState::Stopped => "stopped",
        })
    }
}

/// Where a sandbox stands (the CRI's `SANDBOX_READY`/`SANDBOX_NOTREADY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    /// Namespaces, network and cgroup are up.
    Ready,
    /// Its pause process died: the namespaces it held are gone or going; the containers must be
    /// stopped and the sandbox made anew.
    NotReady,
    /// Torn down.
    Destroyed,
}

impl SandboxState {
    /// The pause process died.
    pub fn pause_died(self) -> SandboxState {
        match self {
            SandboxState::Ready | SandboxState::NotReady => SandboxState::NotReady,
            SandboxState::Destroyed => SandboxState::Destroyed,
        }
    }

    /// Torn down (from any state: teardown is idempotent).
    pub fn destroyed(self) -> SandboxState {
        SandboxState::Destroyed
    }

    /// Containers may be created in it.
    pub fn accepts_containers(self) -> bool {
        self == SandboxState::Ready
    }
}

#[cfg(test)]
mod tests {
    use super::ContainerState::*;
    use super::Operation as Op;
    use super::*;

    const ALL: [ContainerState; 4] = [Created, Running, Paused, Stopped];
    const OPS: [Op; 8] = [
        Op::Start,
        Op::Pause,
        Op::Resume,
        Op::Exit,
        Op::Kill,
        Op::Exec,
        Op::Update,
        Op::Delete,
    ];

    #[test]
    fn the_lifecycle_of_a_container() {
        let s = Created.after(Op::Start).unwrap();
        assert_eq!(s, Running);
        let s = s.after(Op::Pause).unwrap();
        assert_eq!(s, Paused);
        assert_eq!(
            s.after(Op::Exec),
            Err(Paused),
            "no exec into a frozen container"
        );
        let s = s.after(Op::Resume).unwrap();
        assert_eq!(s.after(Op::Exec), Ok(Running));
        let s = s.after(Op::Kill).unwrap().after(Op::Exit).unwrap();
        assert_eq!(s, Stopped);
        assert_eq!(s.after(Op::Delete), Ok(Stopped));
    }

    #[test]
    fn refused_moves_say_the_state_they_were_refused_in() {
        assert_eq!(Running.after(Op::Delete), Err(Running));
        assert_eq!(Paused.after(Op::Delete), Err(Paused));
        assert_eq!(Running.after(Op::Start), Err(Running));
        assert_eq!(Stopped.after(Op::Start), Err(Stopped));
        assert_eq!(Stopped.after(Op::Kill), Err(Stopped));
        assert_eq!(
            Stopped.after(Op::Exit),
            Err(Stopped),
            "an exit is kept once"
        );
        assert_eq!(Created.after(Op::Pause), Err(Created));
        assert_eq!(Running.after(Op::Resume), Err(Running));
        assert_eq!(Created.after(Op::Delete), Ok(Stopped));
    }

    #[test]
    fn every_pair_is_decided_and_stopped_is_final() {
        let mut allowed = 0;
        for s in ALL {
            for op in OPS {
                if let Ok(next) = s.after(op) {
                    allowed += 1;
                    if s == Stopped {
                        assert_eq!(next, Stopped);
                    }
                }
            }
        }
        // The table above, counted: start 1, pause 1, resume 1, exit 3, kill 3, exec 1,
        // update 3, delete 2.
        assert_eq!(allowed, 15);
        assert_eq!(Running.to_string(), "running");
    }

    #[test]
    fn a_sandbox_whose_pause_died_takes_no_containers() {
        let s = SandboxState::Ready;
        assert!(s.accepts_containers());
        let s = s.pause_died();
        assert_eq!(s, SandboxState::NotReady);
        assert!(!s.accepts_containers());
        assert_eq!(s.destroyed().pause_died(), SandboxState::Destroyed);
    }
}
