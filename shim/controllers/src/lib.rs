//! podshim's workload controllers: Deployments, ReplicaSets, DaemonSets, Jobs and CronJobs
//! decoded and validated as the API server does, kept in a store under `--root`, and run as
//! small per-object controller processes (see `process`) that make Pods from templates through
//! podshim-kube, the same path as `podshim run -d`.

pub mod api;
pub mod apply;
pub mod clock;
pub mod cron;
pub mod cronjob;
pub mod daemonset;
pub mod delete;
pub mod deployment;
pub mod events;
pub mod held;
pub mod job;
pub mod job_policy;
pub mod names;
pub mod pods;
pub mod process;
pub mod replicaset;
pub mod store;
pub mod zone;
