//! The order of a Pod's containers, as the kubelet keeps it (`computeInitContainerActions`, the
//! `SidecarContainers` rules): init containers run one at a time, each to exit 0; sidecars (init
//! containers with `restartPolicy: Always`) start in order and keep running; app containers start
//! once every init container completed and every sidecar started. A stopping Pod stops its app
//! (and init) containers first, then its sidecars one at a time in reverse order.
//!
//! These are pure decisions over a view of the Pod's containers (init containers first, in spec
//! order, then the app containers); the run loop applies them.

use super::restart::Policy;

/// What a container is to the Pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An init container: runs to completion before the next one starts.
    Init,
    /// An init container with `restartPolicy: Always`.
    Sidecar,
    /// A container of `spec.containers`.
    App,
}

impl Role {
    /// Whether a container of this role that exited with `code` is started again while the Pod
    /// is not stopping: sidecars always, init containers until they succeed (unless the Pod's
    /// policy is Never), app containers by the Pod's policy.
    pub fn restarts(self, policy: Policy, code: i32) -> bool {
        match self {
            Role::Sidecar => true,
            Role::Init => code != 0 && policy != Policy::Never,
            Role::App => policy.restarts(code),
        }
    }
}

/// Where a container stands, as far as the ordering cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Never started yet.
    NotStarted,
    /// Running; `signalled` once podshim sent it its stop signal.
    Running { signalled: bool },
    /// Started before, waiting to be restarted.
    Restarting,
    /// Finished for good: its last exit code, `None` if it never ran.
    Done { code: Option<i32> },
}

/// Whether the `i`th container, never started yet, may start now: every init container before it
/// completed (exit 0) and every sidecar before it has started.
pub fn may_start(pod: &[(Role, Phase)], i: usize) -> bool {
    pod[..i].iter().all(|(role, phase)| match role {
        Role::Init => *phase == Phase::Done { code: Some(0) },
        Role::Sidecar => matches!(phase, Phase::Running { .. } | Phase::Restarting),
        Role::App => true,
    })
}

/// Whether the Pod has nothing left to do but stop its sidecars: every app container is done, or
/// an init container failed for good (restartPolicy Never).
pub fn finished(pod: &[(Role, Phase)]) -> bool {
    let apps_done = pod
        .iter()
        .filter(|(role, _)| *role == Role::App)
        .all(|(_, phase)| matches!(phase, Phase::Done { .. }));
    let init_failed = pod.iter().any(|(role, phase)| {
        *role == Role::Init && matches!(phase, Phase::Done { code: Some(c) } if *c != 0)
    });
    apps_done || init_failed
}

/// In a stopping Pod, the running containers to send their stop signal now: the app and init
/// containers all at once; once none of them runs, the last running sidecar, then the one before
/// it when that one is gone (Kubernetes 1.29+).
pub fn to_signal(pod: &[(Role, Phase)]) -> Vec<usize> {
    let running = |phase: &Phase| matches!(phase, Phase::Running { .. });
    let others: Vec<usize> = pod
        .iter()
        .enumerate()
        .filter(|(_, (role, phase))| *role != Role::Sidecar && running(phase))
        .map(|(i, _)| i)
        .collect();
    if !others.is_empty() {
        return others
            .into_iter()
            .filter(|&i| pod[i].1 == Phase::Running { signalled: false })
            .collect();
    }
    let last = pod
        .iter()
        .enumerate()
        .rev()
        .find(|(_, (role, phase))| *role == Role::Sidecar && running(phase));
    match last {
        Some((i, (_, Phase::Running { signalled: false }))) => vec![i],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Phase::*;
    use Role::*;

    const RUN: Phase = Running { signalled: false };
    const SIGNALLED: Phase = Running { signalled: true };
    const OK: Phase = Done { code: Some(0) };

    #[test]
    fn init_containers_run_one_at_a_time() {
        let pod = [(Init, NotStarted), (Init, NotStarted), (App, NotStarted)];
        assert!(may_start(&pod, 0));
        assert!(!may_start(&pod, 1) && !may_start(&pod, 2));
        let pod = [(Init, RUN), (Init, NotStarted), (App, NotStarted)];
        assert!(!may_start(&pod, 1));
        let pod = [(Init, OK), (Init, Restarting), (App, NotStarted)];
        assert!(!may_start(&pod, 2));
        let pod = [(Init, Done { code: Some(1) }), (Init, NotStarted)];
        assert!(!may_start(&pod, 1));
        let pod = [(Init, OK), (Init, OK), (App, NotStarted), (App, NotStarted)];
        assert!(may_start(&pod, 2) && may_start(&pod, 3));
    }

    #[test]
    fn sidecars_gate_only_until_they_started() {
        let pod = [(Sidecar, NotStarted), (Init, NotStarted), (App, NotStarted)];
        assert!(may_start(&pod, 0) && !may_start(&pod, 1));
        let pod = [(Sidecar, RUN), (Init, NotStarted), (App, NotStarted)];
        assert!(may_start(&pod, 1) && !may_start(&pod, 2));
        let pod = [(Sidecar, Restarting), (Init, OK), (App, NotStarted)];
        assert!(may_start(&pod, 2));
    }

    #[test]
    fn restarts_by_role() {
        assert!(Sidecar.restarts(Policy::Never, 0));
        assert!(Init.restarts(Policy::OnFailure, 1) && Init.restarts(Policy::Always, 1));
        assert!(!Init.restarts(Policy::Always, 0) && !Init.restarts(Policy::Never, 1));
        assert!(App.restarts(Policy::Always, 0) && !App.restarts(Policy::OnFailure, 0));
    }

    #[test]
    fn a_pod_is_finished_when_its_apps_are_or_an_init_failed() {
        assert!(!finished(&[(Sidecar, RUN), (App, RUN)]));
        assert!(finished(&[(Sidecar, RUN), (App, OK)]));
        assert!(!finished(&[(Init, Restarting), (App, NotStarted)]));
        assert!(finished(&[
            (Sidecar, RUN),
            (Init, Done { code: Some(2) }),
            (App, NotStarted)
        ]));
    }

    #[test]
    fn apps_stop_before_sidecars_in_reverse_order() {
        let pod = [(Sidecar, RUN), (Sidecar, RUN), (App, RUN), (App, OK)];
        assert_eq!(to_signal(&pod), vec![2]);
        let pod = [(Sidecar, RUN), (Sidecar, RUN), (App, SIGNALLED)];
        assert_eq!(to_signal(&pod), Vec::<usize>::new());
        let pod = [(Sidecar, RUN), (Sidecar, RUN), (App, OK)];
        assert_eq!(to_signal(&pod), vec![1]);
        let pod = [(Sidecar, RUN), (Sidecar, SIGNALLED), (App, OK)];
        assert_eq!(to_signal(&pod), Vec::<usize>::new());
        let pod = [
            (Sidecar, RUN),
            (Sidecar, Done { code: Some(143) }),
            (App, OK),
        ];
        assert_eq!(to_signal(&pod), vec![0]);
        let pod = [(Sidecar, RUN), (Init, RUN), (App, NotStarted)];
        assert_eq!(to_signal(&pod), vec![1]);
    }
}
