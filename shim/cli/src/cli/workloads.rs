//! What the workload commands (`apply`, `get`, `describe`, `scale`, `rollout`, `delete`, `up`,
//! `controller`) share: the controllers' context from the global options, and kubectl's ways
//! of naming objects (`deploy/web`, `deploy web`, `deploy,rs`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};
use podshim_controllers::api::{Kind, Workload};
use podshim_controllers::clock::Clock;
use podshim_controllers::pods::Context;
use podshim_controllers::process;
use podshim_controllers::store::Store;
use podshim_engine::config::Config;

/// The controllers' context; every workload command also starts the controllers that should
/// run and do not (a controller killed together with its keeper comes back here).
pub fn context(cfg: &Config, log_root: &Path, globals: &[OsString]) -> Context {
    let ctx = context_quiet(cfg, log_root, globals);
    if nix::unistd::geteuid().is_root() {
        process::ensure(&ctx);
    }
    ctx
}

/// The context, starting nothing (the controller processes themselves).
pub fn context_quiet(cfg: &Config, log_root: &Path, globals: &[OsString]) -> Context {
    let backoff_scale = std::env::var("PODSHIM_BACKOFF_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    Context {
        cfg: cfg.clone(),
        store: Store::open(&cfg.root),
        log_root: log_root.to_path_buf(),
        // Not current_exe(): podshim runs from a sealed memfd, which has no path but this one.
        exe: PathBuf::from("/proc/self/exe"),
        globals: globals.to_vec(),
        backoff_scale,
        clock: Clock::from_env(),
        node_name: podshim_kube::schedule::Node::this_host(&[], Vec::new()).name,
    }
}

/// A kind named on the command line, or `pods`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Workload(Kind),
    Pods,
}

pub fn resource(s: &str) -> Result<Resource> {
    if matches!(s.to_ascii_lowercase().as_str(), "po" | "pod" | "pods") {
        return Ok(Resource::Pods);
    }
    Kind::from_arg(s).map(Resource::Workload).ok_or_else(|| {
        anyhow!("the server doesn't have a resource type {s:?} (podshim knows deployments, replicasets, daemonsets, jobs, cronjobs and pods)")
    })
}

/// `KIND/NAME` or `KIND NAME` → (kind, name).
pub fn kind_and_name(args: &[String]) -> Result<(Kind, String)> {
    let (k, n) = match args {
        [one] => one
            .split_once('/')
            .map(|(k, n)| (k.to_string(), n.to_string()))
            .ok_or_else(|| anyhow!("expected KIND/NAME or KIND NAME, got {one:?}"))?,
        [k, n] => (k.clone(), n.clone()),
        _ => bail!("expected KIND/NAME or KIND NAME"),
    };
    match resource(&k)? {
        Resource::Workload(kind) => Ok((kind, n)),
        Resource::Pods => {
            bail!("{k}: expected a workload kind (deployment, replicaset, daemonset, job, cronjob)")
        }
    }
}

/// The stored object, or kubectl's NotFound message.
pub fn find(ctx: &Context, kind: Kind, ns: &str, name: &str) -> Result<Workload> {
    ctx.store
        .get(kind, ns, name)?
        .ok_or_else(|| anyhow!("{} {name:?} not found", kind.resource()))
}

/// For `logs KIND/NAME`: the Pod kubectl would pick among the workload's Pods (those its
/// selector matches, `podutils.ByLogging`: running, ready, ready longest, most restarts,
/// oldest), as `NAMESPACE/NAME`. None when `arg` does not name a workload (`POD`,
/// `NAMESPACE/POD`); `pod/NAME` names the Pod.
pub fn pick_pod(cfg: &Config, arg: &str) -> Result<Option<String>> {
    let Some((k, name)) = arg.split_once('/') else {
        return Ok(None);
    };
    let kind = match resource(k) {
        Ok(Resource::Pods) => return Ok(Some(name.to_string())),
        Ok(Resource::Workload(kind)) => kind,
        Err(_) => return Ok(None),
    };
    let store = Store::open(&cfg.root);
    let ns = "default";
    let w = store
        .get(kind, ns, name)?
        .ok_or_else(|| anyhow!("{} {name:?} not found", kind.resource()))?;
    let selector = match &w {
        Workload::Deployment(d) => d.spec.selector.clone(),
        Workload::ReplicaSet(r) => r.spec.selector.clone(),
        Workload::DaemonSet(d) => d.spec.selector.clone(),
        Workload::Job(j) => j.spec.selector.clone(),
        Workload::CronJob(_) => bail!("cannot get logs of a cronjob; name one of its jobs"),
    };
    let mut pods: Vec<_> = podshim_kube::record::list(cfg)
        .into_iter()
        .filter(|e| e.record.namespace == ns)
        .filter(|e| {
            let labels: std::collections::BTreeMap<String, String> =
                serde_json::from_value(e.record.pod["metadata"]["labels"].clone())
                    .unwrap_or_default();
            podshim_kube::schedule::selector::label_selector(selector.as_ref(), &labels)
        })
        .collect();
    let key = |e: &podshim_kube::record::Entry| {
        let st = e.status();
        let ready = st
            .conditions
            .iter()
            .find(|c| c.kind == "Ready" && c.status == "True");
        let restarts: u32 = st.container_statuses.iter().map(|c| c.restart_count).sum();
        (
            st.phase != "Running",
            ready.is_none(),
            ready.and_then(|c| c.last_transition_time.clone()),
            std::cmp::Reverse(restarts),
            st.start_time.clone(),
        )
    };
    pods.sort_by_key(key);
    let first = pods
        .first()
        .ok_or_else(|| anyhow!("no pods of {}/{name} found", kind.typed()))?;
    Ok(Some(format!(
        "{}/{}",
        first.record.namespace, first.record.name
    )))
}
