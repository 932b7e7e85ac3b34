//! `podshim up`: start the controller of every stored workload that has none (run at boot, a
//! systemd unit in the README does; every workload command does it too).

use std::ffi::OsString;
use std::path::Path;

use anyhow::Result;
use podshim_controllers::process;
use podshim_engine::config::Config;

pub fn up(cfg: &Config, log_root: &Path, globals: &[OsString]) -> Result<i32> {
    let ctx = super::workloads::context_quiet(cfg, log_root, globals);
    let all = process::top_level(&ctx);
    let started = process::ensure(&ctx);
    for key in &all {
        let what = if started.contains(key) {
            "started"
        } else {
            "running"
        };
        println!("{}/{}: controller {what}", key.kind.typed(), key.name);
    }
    Ok(0)
}
