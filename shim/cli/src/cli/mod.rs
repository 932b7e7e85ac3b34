//! The `podshim` subcommands beyond `image` and `gc`: thin front-ends over the engine.

pub mod apply;
pub mod attach;
pub mod claims;
pub mod controller;
pub mod delete;
pub mod describe;
pub mod exec;
pub mod get;
pub mod logs;
pub mod manage;
pub mod report;
pub mod resize;
pub mod rollout;
pub mod run;
pub mod scale;
pub mod schedule;
pub mod up;
pub mod workloads;
