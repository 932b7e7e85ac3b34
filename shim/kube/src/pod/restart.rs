//! Kubernetes' restart rules: which exits restart a container, and the kubelet's back-off.

use std::time::Duration;

/// `spec.restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Policy {
    Always,
    OnFailure,
    Never,
}

impl Policy {
    /// Whether a container that exited with `code` is started again.
    pub fn restarts(self, code: i32) -> bool {
        match self {
            Policy::Always => true,
            Policy::OnFailure => code != 0,
            Policy::Never => false,
        }
    }
}

/// The kubelet's container back-off: the first restart at once, then 10 s doubling up to 300 s;
/// a container that ran for 10 minutes starts over (kubelet `backOffPeriod`, `MaxContainerBackOff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// Scale every period by `factor` (tests shorten the back-off this way).
    pub fn scaled(self, factor: f64) -> Self {
        Backoff {
            initial: self.initial.mul_f64(factor),
            max: self.max.mul_f64(factor),
            reset_after: self.reset_after.mul_f64(factor),
        }
    }

    /// The wait before the next start, given how many back-off restarts came before (`streak`,
    /// reset when the container ran for `reset_after`).
    pub fn delay(&self, streak: u32) -> Duration {
        if streak == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(streak - 1);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// The exit code of a wait status the way Kubernetes reports it: the code, or 128 + signal.
pub fn exit_code(status: nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus;
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies() {
        assert!(Policy::Always.restarts(0) && Policy::Always.restarts(1));
        assert!(!Policy::OnFailure.restarts(0) && Policy::OnFailure.restarts(137));
        assert!(!Policy::Never.restarts(1));
    }

    #[test]
    fn backoff_doubles_to_the_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, vec![0, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(b.scaled(0.01).delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(100), Duration::from_secs(300));
    }

    #[test]
    fn exit_codes() {
        use nix::sys::signal::Signal;
        use nix::sys::wait::WaitStatus;
        use nix::unistd::Pid;
        let p = Pid::from_raw(1);
        assert_eq!(exit_code(WaitStatus::Exited(p, 3)), Some(3));
        assert_eq!(
            exit_code(WaitStatus::Signaled(p, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(exit_code(WaitStatus::StillAlive), None);
    }
}
