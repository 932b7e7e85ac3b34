//! What a Pod's status says about one container: its current state, its last termination, its
//! restart count and readiness, kept up to date by the supervision loop.

use std::time::Duration;

use chrono::Utc;

use crate::pod::order::{Phase, Role};
use crate::pod::process::User;
use crate::pod::ContainerPlan;
use crate::status::{self, ContainerState, ContainerStatus, Running, Terminated, Waiting};

#[derive(Debug, Clone)]
pub(super) struct Track {
    pub name: String,
    image: String,
    image_id: String,
    role: Role,
    container_id: Option<String>,
    started_at: Option<String>,
    /// The most recent termination, and the one before it.
    last: Option<Terminated>,
    prev: Option<Terminated>,
    /// Why a container that stopped waits (CrashLoopBackOff).
    waiting: Option<Waiting>,
    /// Its most recent attempt failed (exit code or start error) and it has not started since.
    failure: Option<String>,
    /// The IDs of its first process, from its first start on.
    user: Option<status::ContainerUser>,
}

impl Track {
    pub fn new(plan: &ContainerPlan, role: Role) -> Self {
        Track {
            name: plan.name.clone(),
            image: plan.image.clone(),
            image_id: plan.image_id.clone(),
            role,
            container_id: None,
            started_at: None,
            last: None,
            prev: None,
            waiting: None,
            failure: None,
            user: None,
        }
    }

    pub fn started(&mut self, id: &str, user: &User) {
        let mut groups: Vec<i64> = std::iter::once(user.gid)
            .chain(user.additional_gids.iter().copied())
            .map(i64::from)
            .collect();
        groups.sort_unstable();
        groups.dedup();
        self.user = Some(status::ContainerUser {
            linux: status::LinuxContainerUser {
                uid: user.uid.into(),
                gid: user.gid.into(),
                supplemental_groups: groups,
            },
        });
        self.container_id = Some(format!("podshim://{id}"));
        self.started_at = Some(status::time(Utc::now()));
        self.waiting = None;
        self.failure = None;
    }

    pub fn exited(&mut self, mut t: Terminated) {
        t.started_at = self.started_at.take();
        t.finished_at = status::time(Utc::now());
        t.container_id = self.container_id.clone();
        if t.exit_code != 0 {
            self.failure = Some(match &t.message {
                Some(m) => format!("{}: {m}", t.reason),
                None => format!("exited with code {} ({})", t.exit_code, t.reason),
            });
        }
        self.prev = self.last.take();
        self.last = Some(t);
    }

    /// It could not be started at all: exit code 128, reason StartError, with the error.
    pub fn start_failed(&mut self, message: &str) {
        self.container_id = None;
        self.exited(Terminated {
            exit_code: 128,
            reason: "StartError".into(),
            message: Some(message.to_string()),
            ..Default::default()
        });
    }

    pub fn backing_off(&mut self, delay: Duration) {
        self.waiting = Some(Waiting {
            reason: "CrashLoopBackOff".into(),
            message: Some(format!(
                "back-off {}s restarting failed container={}",
                delay.as_secs(),
                self.name
            )),
        });
    }

    /// A hook failed (the container is being killed for it).
    pub fn hook_failed(&mut self, reason: &str) {
        self.failure = Some(reason.to_string());
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn status(
        &self,
        phase: Phase,
        restarts: u32,
        ready: bool,
        started: bool,
    ) -> ContainerStatus {
        let state = match phase {
            Phase::Running { .. } => ContainerState {
                running: Some(Running {
                    started_at: self.started_at.clone().unwrap_or_default(),
                }),
                ..Default::default()
            },
            Phase::Done { .. } if self.last.is_some() => ContainerState {
                terminated: self.last.clone(),
                ..Default::default()
            },
            Phase::Restarting if self.waiting.is_some() => ContainerState {
                waiting: self.waiting.clone(),
                ..Default::default()
            },
            _ if self.role == Role::App && self.last.is_none() => {
                ContainerState::waiting("PodInitializing", None)
            }
            _ => ContainerState::waiting("ContainerCreating", None),
        };
        let last = match phase {
            Phase::Done { .. } => self.prev.clone(),
            _ => self.last.clone(),
        };
        ContainerStatus {
            name: self.name.clone(),
            state,
            last_state: ContainerState {
                terminated: last,
                ..Default::default()
            },
            ready,
            restart_count: restarts,
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            container_id: self.container_id.clone(),
            started: Some(started),
            user: self.user.clone(),
            ..Default::default()
        }
    }
}
