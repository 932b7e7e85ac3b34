//! The `podshim` subcommands beyond `image` and `gc`: thin front-ends over the engine.

pub mod exec;
pub mod logs;
pub mod manage;
pub mod report;
pub mod run;
pub mod schedule;
