//! The Job controller.

use std::time::Duration;

use crate::api::Job;
use crate::pods::Context;
use crate::process::Memory as All;

#[derive(Debug, Default)]
pub struct Memory {}

pub fn run(_ctx: &Context, _j: &Job, _memory: &mut All) -> Duration {
    Duration::from_millis(500)
}
