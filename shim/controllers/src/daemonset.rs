//! The DaemonSet controller on one node: one Pod from the template, on this node.
//! (Rolling update: see `run`.)

use std::time::Duration;

use crate::api::DaemonSet;
use crate::pods::Context;
use crate::process::Memory;

pub fn run(_ctx: &Context, _d: &DaemonSet, _memory: &mut Memory) -> Duration {
    Duration::from_millis(500)
}
