//! `podshim resize POD [-c NAME] [--cpu Q] [--memory Q] [--cpu-request Q] [--memory-request Q]`:
//! in-place resize of a running container (what `kubectl patch --subresource resize` asks of a
//! kubelet). `--cpu`/`--memory` set the limit (a request equal to the old limit follows it, so a
//! Guaranteed Pod stays Guaranteed; a resource with only a request gets a new request); the
//! `-request` forms set requests. The Pod's supervisor checks and applies it and answers.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podshim_engine::config::Config;
use podshim_kube::record;
use podshim_kube::resize::{reply_path, request_path, Reply, Request};

/// How long the supervisor may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

#[derive(Args)]
pub struct ResizeArgs {
    /// The container (may be left out when the Pod has one container)
    #[arg(short, long)]
    container: Option<String>,
    /// New CPU limit (or request, for a container without a CPU limit), e.g. 500m
    #[arg(long)]
    cpu: Option<String>,
    /// New memory limit (or request, for a container without a memory limit), e.g. 128Mi
    #[arg(long)]
    memory: Option<String>,
    /// New CPU request
    #[arg(long)]
    cpu_request: Option<String>,
    /// New memory request
    #[arg(long)]
    memory_request: Option<String>,
    pod: String,
}

pub fn resize(cfg: &Config, a: ResizeArgs) -> Result<i32> {
    let e = record::find(cfg, &a.pod).map_err(|e| anyhow!(e))?;
    let container = super::logs::container(&e, a.container.as_deref())?
        .name
        .clone();
    let pod = &e.record.name;
    if !e.live || e.lost || e.record.finished() {
        bail!("pod {pod} is not running: only a running Pod is resized in place");
    }
    let pairs = |l: [(&str, &Option<String>); 2]| {
        l.into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v.clone()?)))
            .collect()
    };
    let req = Request {
        container,
        set: pairs([("cpu", &a.cpu), ("memory", &a.memory)]),
        requests: pairs([("cpu", &a.cpu_request), ("memory", &a.memory_request)]),
    };
    if req.set.is_empty() && req.requests.is_empty() {
        bail!("nothing to resize: give --cpu, --memory, --cpu-request or --memory-request");
    }
    let reply_file = reply_path(cfg, &e.key);
    let _ = fs::remove_file(&reply_file);
    let path = request_path(cfg, &e.key);
    let tmp = path.with_extension("resize.tmp");
    fs::write(&tmp, serde_json::to_vec(&req)?).with_context(|| format!("write {tmp:?}"))?;
    fs::rename(&tmp, &path).with_context(|| format!("write {path:?}"))?;
    let sup = e.record.supervisor;
    kill(Pid::from_raw(sup.pid as i32), Signal::SIGUSR1)
        .with_context(|| format!("signal the supervisor of pod {pod} (pid {})", sup.pid))?;
    let deadline = Instant::now() + ANSWER_WITHIN;
    let reply: Reply = loop {
        if let Ok(data) = fs::read(&reply_file) {
            let _ = fs::remove_file(&reply_file);
            break serde_json::from_slice(&data).context("read the supervisor's answer")?;
        }
        if !sup.alive() || Instant::now() > deadline {
            let _ = fs::remove_file(&path);
            bail!("pod {pod}: its supervisor did not answer the resize");
        }
        sleep(Duration::from_millis(20));
    };
    if let Some(err) = reply.error {
        bail!("pod {pod}: resize refused: {err}");
    }
    let how = if reply.restarted {
        "restarting it (resizePolicy RestartContainer)"
    } else {
        "in place"
    };
    let r = serde_json::to_string(&reply.resources).unwrap_or_default();
    println!("pod/{pod} container {} resized {how}: {r}", req.container);
    Ok(0)
}
