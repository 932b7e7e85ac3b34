//! The hidden `podshim controller [--keeper] KIND/NAMESPACE/NAME`: an object's controller
//! process (the worker) or its keeper (see `podshim_controllers::process`).

use std::ffi::OsString;
use std::path::Path;

use anyhow::{anyhow, Result};
use podshim_controllers::process::{self, Key};
use podshim_engine::config::Config;

pub fn controller(
    cfg: &Config,
    log_root: &Path,
    globals: &[OsString],
    keeper: bool,
    key: &str,
) -> Result<i32> {
    let key =
        Key::parse_arg(key).ok_or_else(|| anyhow!("expected KIND/NAMESPACE/NAME, got {key:?}"))?;
    let ctx = super::workloads::context_quiet(cfg, log_root, globals);
    if keeper {
        return Ok(process::keeper(&ctx, &key));
    }
    Ok(process::worker(&ctx, &key)?)
}
