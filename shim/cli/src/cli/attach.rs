//! `podshim attach POD [-c NAME]`: send this terminal's (or pipe's) input to the stdin of a
//! running container that has `stdin: true`, through the root-only socket its supervisor listens
//! on, until the input ends (with `stdinOnce` the container's stdin then closes too). What the
//! container writes goes to its log as always: follow it with `podshim logs -f`.

use std::io::{self, Write};
use std::os::unix::net::UnixStream;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use podshim_engine::config::Config;
use podshim_kube::record;
use podshim_kube::supervise::attach_socket;

#[derive(Args)]
pub struct AttachArgs {
    /// The container (may be left out when the Pod has one container)
    #[arg(short, long)]
    container: Option<String>,
    pod: String,
}

pub fn attach(cfg: &Config, a: AttachArgs) -> Result<i32> {
    let e = record::find(cfg, &a.pod).map_err(|e| anyhow!(e))?;
    let name = super::logs::container(&e, a.container.as_deref())?
        .name
        .clone();
    let pod = &e.record.name;
    if !e.live || e.lost || e.record.finished() {
        // kubectl's wording (`pkg/cmd/attach`).
        bail!(
            "cannot attach a container in a completed pod; current phase is {}",
            e.status().phase
        );
    }
    let spec = &e.record.pod["spec"];
    let stdin = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l)?.as_array())
        .flatten()
        .find(|c| c["name"] == name.as_str())
        .is_some_and(|c| c["stdin"] == true);
    if !stdin {
        bail!("container {name} of pod {pod} does not read stdin (its spec has no stdin: true)");
    }
    let path = attach_socket(&cfg.pod_dir(&e.key), &name);
    let mut sock = UnixStream::connect(&path).with_context(|| {
        format!("container {name} of pod {pod} takes no attach now (not running, or its stdinOnce stdin was used)")
    })?;
    let copied = io::copy(&mut io::stdin().lock(), &mut sock).context("send stdin")?;
    sock.flush()?;
    sock.shutdown(std::net::Shutdown::Write)?;
    eprintln!("podshim: sent {copied} bytes to {pod}/{name}; its output is in `podshim logs {pod} -c {name}`");
    Ok(0)
}
