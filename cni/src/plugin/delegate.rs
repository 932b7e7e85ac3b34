//! Running another CNI plugin (a non-host-local IPAM) from `CNI_PATH`, as the spec says:
//! same environment but `CNI_COMMAND`, the same network config on stdin. [`exec`] also runs
//! the plugins of a chain for [`crate::chain`].

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::plugin::Env;
use crate::CniError;

/// Finds `plugin` in the directories of `CNI_PATH`; `field` is the config field naming it.
fn find(plugin: &str, field: &str, env: &Env) -> Result<PathBuf, CniError> {
    let path = env.path.as_deref().unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(plugin))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| CniError::InvalidConfig {
            field: field.into(),
            reason: format!("plugin {plugin:?} not found in CNI_PATH {path:?}"),
        })
}

/// Runs the IPAM `plugin` with `command`; its parsed stdout (`None` when empty), or its error.
pub fn run(
    plugin: &str,
    command: &str,
    env: &Env,
    config: &Value,
) -> Result<Option<Value>, CniError> {
    exec(plugin, "ipam.type", command, env, config)
}

/// Runs `plugin` (named by the config field `field`) with `command`, the rest of the
/// environment from `env`; its parsed stdout (`None` when empty), or its error.
pub(crate) fn exec(
    plugin: &str,
    field: &str,
    command: &str,
    env: &Env,
    config: &Value,
) -> Result<Option<Value>, CniError> {
    let exe = find(plugin, field, env)?;
    let io_err = |source| CniError::DelegateRun {
        path: exe.clone(),
        source,
    };
    let mut cmd = Command::new(&exe);
    cmd.env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group: a plugin killed by a Ctrl-C on the terminal of `podshim run`
    // (SIGINT to the foreground group) leaves an ADD or DEL half done (a veth, rules, a lease)
    // under the runtime that is rolling it back; the runtime decides, the plugin finishes.
    crate::own_process_group(&mut cmd);
    for (var, value) in [
        ("CNI_CONTAINERID", &env.container_id),
        ("CNI_NETNS", &env.netns),
        ("CNI_IFNAME", &env.ifname),
        ("CNI_ARGS", &env.args),
        ("CNI_PATH", &env.path),
    ] {
        match value {
            Some(v) => cmd.env(var, v),
            None => cmd.env_remove(var),
        };
    }
    let mut child = cmd.spawn().map_err(io_err)?;
    let input = serde_json::to_vec(config).expect("a JSON value always serializes");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&input).map_err(io_err)?;
    }
    let out = child.wait_with_output().map_err(io_err)?;
    let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
    if out.status.success() {
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        return parsed.map(Some).ok_or_else(|| CniError::Delegated {
            plugin: plugin.to_owned(),
            code: crate::codes::DECODE_FAILED,
            msg: "output is not JSON".into(),
            details: String::from_utf8_lossy(&out.stdout).into_owned(),
        });
    }
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let code = parsed
        .as_ref()
        .and_then(|v| v.get("code"))
        .and_then(Value::as_u64)
        .map_or(crate::codes::IO_FAILURE, |c| c as u32);
    let mut msg = field("msg");
    if msg.is_empty() {
        msg = format!("failed ({})", out.status);
    }
    let mut details = field("details");
    if details.is_empty() {
        details = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    }
    Err(CniError::Delegated {
        plugin: plugin.to_owned(),
        code,
        msg,
        details,
    })
}
