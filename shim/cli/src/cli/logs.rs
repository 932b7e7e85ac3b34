//! `podshim logs [-f] [-c CONTAINER] [--previous] [--tail N] [--timestamps] POD`: read a
//! container's CRI log file as `kubectl logs` prints it.

use std::io::Write;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use podshim_engine::config::Config;
use podshim_kube::logs::{self, Format};
use podshim_kube::record::{self, Entry};
use podshim_kube::status::ContainerStatus;

#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing what the container writes until it exits
    #[arg(short, long)]
    follow: bool,
    /// The container (may be left out when the Pod has one container)
    #[arg(short, long)]
    container: Option<String>,
    /// The previous run of the container (before its last restart)
    #[arg(short, long)]
    previous: bool,
    /// Only the last N lines
    #[arg(long)]
    tail: Option<usize>,
    /// Print each line's time first
    #[arg(long)]
    timestamps: bool,
    pod: String,
}

/// The container `-c` names, or the Pod's only container (`logs` and `exec`).
pub(super) fn container<'a>(e: &'a Entry, name: Option<&str>) -> Result<&'a ContainerStatus> {
    let st = &e.record.status;
    let all: Vec<&ContainerStatus> = st
        .init_container_statuses
        .iter()
        .chain(&st.container_statuses)
        .collect();
    match name {
        Some(n) => all
            .into_iter()
            .find(|c| c.name == n)
            .ok_or_else(|| anyhow!("container {n} is not valid for pod {}", e.record.name)),
        None if st.container_statuses.len() == 1 && st.init_container_statuses.is_empty() => {
            Ok(&st.container_statuses[0])
        }
        None => bail!(
            "a container name must be specified for pod {}, choose one of: [{}]",
            e.record.name,
            all.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

pub fn logs(cfg: &Config, a: LogsArgs) -> Result<i32> {
    // `deploy/web`, `job/x`...: a Pod of the workload, picked as kubectl picks one.
    let pod = super::workloads::pick_pod(cfg, &a.pod)?.unwrap_or_else(|| a.pod.clone());
    let e = record::find(cfg, &pod).map_err(|e| anyhow!(e))?;
    let c = container(&e, a.container.as_deref())?.clone();
    let run = if a.previous {
        match c.restart_count.checked_sub(1) {
            Some(n) => n,
            None => bail!(
                "previous terminated container {:?} in pod {:?} not found",
                c.name,
                e.record.name
            ),
        }
    } else {
        c.restart_count
    };
    let path = logs::file(&e.record.log_dir, &c.name, run);
    if !path.exists() {
        let why = c
            .state
            .waiting
            .as_ref()
            .map_or("has not started".to_string(), |w| {
                format!("is waiting to start: {}", w.reason)
            });
        bail!("container {:?} in pod {:?} {why}", c.name, e.record.name);
    }
    let f = Format {
        timestamps: a.timestamps,
    };
    let lines = logs::read(&path)?;
    let skip = a.tail.map_or(0, |n| lines.len().saturating_sub(n));
    let mut out = std::io::stdout().lock();
    logs::print(&mut out, &lines[skip..], f)?;
    out.flush()?;
    if !a.follow || a.previous {
        return Ok(0);
    }
    let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // Trim the already printed part: `read` stops at the last complete line.
    let printed: u64 = std::fs::read(&path)
        .map(|b| b.iter().rposition(|c| *c == b'\n').map_or(0, |p| p + 1) as u64)
        .unwrap_or(offset);
    let key = e.key.clone();
    let name = c.name.clone();
    logs::follow(&mut out, &path, printed, f, || {
        // Done once this run of the container is over (or the Pod is gone).
        let Some(now) = record::entry(cfg, &key) else {
            return true;
        };
        if now.lost || !now.live {
            return true;
        }
        let st = now.record.status;
        let cur = st
            .init_container_statuses
            .iter()
            .chain(&st.container_statuses)
            .find(|x| x.name == name);
        !cur.is_some_and(|x| {
            x.restart_count == run && x.state.terminated.is_none() && x.state.running.is_some()
        })
    })?;
    Ok(0)
}
