//! The CronJob controller.

use std::time::Duration;

use crate::api::CronJob;
use crate::pods::Context;
use crate::process::Memory as All;

#[derive(Debug, Default)]
pub struct Memory {}

pub fn run(_ctx: &Context, _c: &CronJob, _memory: &mut All) -> Duration {
    Duration::from_millis(500)
}
