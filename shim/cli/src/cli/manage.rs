//! `podshim ps`, `inspect`, `stop`, `rm` and `down`: they read Pod records and ask supervisors
//! to stop Pods; a Pod whose supervisor is gone is torn down from its journal.

use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use chrono::Utc;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podshim_engine::config::Config;
use podshim_kube::collect as gc;
use podshim_kube::pod::pod_key;
use podshim_kube::record::{self, Entry};
use podshim_kube::status;
use podshim_kube::supervise::{stop_request_path, StopRequest};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Wide,
    Json,
    Yaml,
}

pub fn ps(cfg: &Config, format: Option<Format>) -> Result<i32> {
    let pods = record::list(cfg);
    match format {
        Some(Format::Json) | Some(Format::Yaml) => {
            let items: Vec<serde_json::Value> = pods.iter().map(object).collect();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            if format == Some(Format::Json) {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print!("{}", podshim_kube::manifest::yaml::emit::to_string(&list)?);
            }
        }
        _ => {
            let wide = format == Some(Format::Wide);
            let mut rows = vec![vec!["NAME", "READY", "STATUS", "RESTARTS", "IP", "AGE"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()];
            if wide {
                rows[0].splice(0..0, ["NAMESPACE".to_string()]);
                rows[0].extend(["UID".to_string(), "SUPERVISOR".to_string()]);
            }
            for e in &pods {
                let st = e.status();
                let mut row = vec![
                    e.record.name.clone(),
                    ready(&st, &e.record.sidecars),
                    status::display(&st, &e.record.sidecars, e.record.terminating && e.live),
                    restarts(&st, &e.record.sidecars),
                    st.pod_ip.clone().unwrap_or_else(|| "<none>".into()),
                    age(st.start_time.as_deref()),
                ];
                if wide {
                    row.insert(0, e.record.namespace.clone());
                    row.push(e.record.uid.clone());
                    row.push(if e.live && !e.lost {
                        e.record.supervisor.pid.to_string()
                    } else {
                        "-".into()
                    });
                }
                rows.push(row);
            }
            print_table(&rows);
        }
    }
    Ok(0)
}

fn object(e: &Entry) -> serde_json::Value {
    let mut o = e.record.object();
    o["status"] = serde_json::to_value(e.status()).unwrap_or_default();
    o
}

pub fn inspect(cfg: &Config, pod: &str) -> Result<i32> {
    let e = record::find(cfg, pod).map_err(|e| anyhow!(e))?;
    println!("{}", serde_json::to_string_pretty(&object(&e))?);
    Ok(0)
}

/// `podshim check`: the network of a running Pod, as CNI CHECK (or the built-in equivalent)
/// sees it. Exit 0 with `network of POD: ok` (or a word on hostNetwork), 1 with the reason.
pub fn check(cfg: &Config, namespace: Option<&str>, pod: &str) -> Result<i32> {
    let wanted = match (namespace, pod.split_once('/')) {
        (Some(ns), None) => format!("{ns}/{pod}"),
        (Some(ns), Some((other, _))) if ns != other => {
            bail!("pod {pod:?} is not in namespace {ns:?}")
        }
        _ => pod.to_owned(),
    };
    let e = record::find(cfg, &wanted).map_err(|e| anyhow!(e))?;
    let name = &e.record.name;
    if !e.live || e.record.finished() {
        bail!("pod {name} is not running: it has no network to check");
    }
    let host_network = e.record.pod["spec"]["hostNetwork"].as_bool() == Some(true);
    let pod_ip = e
        .record
        .status
        .pod_ip
        .as_deref()
        .and_then(|ip| ip.parse().ok())
        .filter(|_| !host_network);
    // Absolute: entering another mount namespace moves the working directory to its root.
    let journal = cfg.pod_dir(&e.key).join("journal.json");
    let journal = std::path::absolute(&journal).unwrap_or(journal);
    // The Pod's pin is in its supervisor's mount namespace: a plugin's CHECK needs the path as
    // recorded, so check from there.
    if let Ok(j) = podshim_engine::journal::Journal::load(&journal) {
        j.enter_mount_namespace();
    }
    match podshim_kube::pod::netcheck::check(&journal, pod_ip, host_network) {
        Ok(podshim_kube::pod::netcheck::Checked::HostNetwork) => {
            println!("network of {name}: hostNetwork, nothing to check");
            Ok(0)
        }
        Ok(podshim_kube::pod::netcheck::Checked::CheckDisabled { network }) => {
            println!("network of {name}: not checked (network {network} has disableCheck)");
            Ok(0)
        }
        Ok(_) => {
            println!("network of {name}: ok");
            Ok(0)
        }
        Err(reason) => {
            eprintln!("podshim: network of {name}: {reason}");
            Ok(1)
        }
    }
}

/// READY: ready containers / containers (sidecars count, as kubectl counts them).
pub(crate) fn ready(st: &status::PodStatus, sidecars: &[bool]) -> String {
    let side = st
        .init_container_statuses
        .iter()
        .zip(sidecars)
        .filter(|(_, s)| **s);
    let all: Vec<bool> = st
        .container_statuses
        .iter()
        .map(|c| c.ready)
        .chain(side.map(|(c, _)| c.ready))
        .collect();
    format!("{}/{}", all.iter().filter(|r| **r).count(), all.len())
}

pub(crate) fn restarts(st: &status::PodStatus, sidecars: &[bool]) -> String {
    let side = st
        .init_container_statuses
        .iter()
        .zip(sidecars)
        .filter(|(_, s)| **s)
        .map(|(c, _)| c.restart_count);
    let n: u32 = st
        .container_statuses
        .iter()
        .map(|c| c.restart_count)
        .chain(side)
        .sum();
    n.to_string()
}

/// AGE the way kubectl prints it (`HumanDuration`, the controllers' `events::since`).
pub(crate) fn age(start: Option<&str>) -> String {
    match start {
        Some(t) => podshim_controllers::events::since(t, Utc::now()),
        None => "<unknown>".into(),
    }
}

pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// A detached supervisor writes the Pod's final record after the teardown, then exits: wait for
/// that (bounded), so nothing writes the record after a caller removed it.
fn await_final_record(e: &Entry) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while e.record.detached && e.record.supervisor.alive() && Instant::now() < deadline {
        sleep(Duration::from_millis(10));
    }
}

/// Stop one Pod and wait until it is stopped. A Pod whose supervisor is gone is torn down from
/// its journal.
fn stop_one(cfg: &Config, e: &Entry, grace: Option<u64>) -> Result<()> {
    if !e.live {
        await_final_record(e);
        return Ok(());
    }
    let dir = cfg.pod_dir(&e.key);
    if !e.lost {
        let req = StopRequest {
            grace_period_seconds: grace,
        };
        let path = stop_request_path(cfg, &e.key);
        let tmp = path.with_extension("stop.tmp");
        fs::write(&tmp, serde_json::to_vec(&req)?)?;
        fs::rename(&tmp, &path)?;
        let sup = e.record.supervisor;
        let _ = kill(Pid::from_raw(sup.pid as i32), Signal::SIGUSR1);
        // The supervisor stops the containers (at most the grace period, then SIGKILL) and tears
        // the Pod down; a detached one then exits, a foreground one removes the Pod directory.
        let started = Instant::now();
        let mut told = false;
        while sup.alive() && dir.join("journal.json").exists() {
            if !told && started.elapsed() > Duration::from_secs(5) {
                eprintln!("podshim: waiting for pod {} to stop...", e.record.name);
                told = true;
            }
            sleep(Duration::from_millis(20));
        }
        await_final_record(e);
        if !dir.join("journal.json").exists() {
            return Ok(());
        }
    }
    // The supervisor is gone (before or while stopping): stop and remove from the journal.
    match gc::collect_one(cfg, &e.key) {
        gc::Outcome::Removed { problems, .. } if !problems.is_empty() => {
            bail!("pod {}: {}", e.record.name, problems.join("; "))
        }
        _ => Ok(()),
    }
}

pub fn stop(cfg: &Config, pods: &[String], grace: Option<u64>) -> Result<i32> {
    let mut code = 0;
    for p in pods {
        match record::find(cfg, p).map_err(|e| anyhow!(e)).and_then(|e| {
            stop_one(cfg, &e, grace)?;
            Ok(e)
        }) {
            Ok(e) => println!("{}", e.record.name),
            Err(e) => {
                eprintln!("podshim: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn rm_one(cfg: &Config, e: &Entry, force: bool, grace: Option<u64>) -> Result<()> {
    // A Pod that has ended but whose supervisor is still tearing it down is waited for.
    let running = e.lost || !e.record.finished();
    if e.live && running && !force {
        bail!(
            "pod {} is running; stop it first (`podshim stop {}`) or use `podshim rm -f`",
            e.record.name,
            e.record.name
        );
    }
    stop_one(cfg, e, grace)?;
    // Torn down: the Pod's directory is gone with its resources; the record remains.
    Ok(record::remove(cfg, &e.key)?)
}

pub fn rm(cfg: &Config, pods: &[String], force: bool, grace: Option<u64>) -> Result<i32> {
    let mut code = 0;
    for p in pods {
        let result = match record::find(cfg, p) {
            Ok(e) => rm_one(cfg, &e, force, grace).map(|_| e.record.name),
            Err(not_found) => rm_unrecorded(cfg, p, force)
                .unwrap_or_else(|| Err(anyhow!(not_found)))
                .map(|_| p.rsplit('/').next().unwrap_or(p).to_owned()),
        };
        match result {
            Ok(name) => println!("{name}"),
            Err(e) => {
                eprintln!("podshim: {e:#}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `rm` of a Pod that has a directory but no record: a podshim killed early in the setup
/// (`None` when there is no such directory either).
fn rm_unrecorded(cfg: &Config, pod: &str, force: bool) -> Option<Result<()>> {
    let (namespace, name) = match pod.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, pod),
    };
    let keys = gc::unrecorded(cfg, namespace, name);
    if keys.is_empty() {
        return None;
    }
    if !force {
        return Some(Err(anyhow!(
            "pod {name} was left half-made by a podshim that is gone; \
             `podshim rm -f {name}` or `podshim gc` removes it"
        )));
    }
    let mut problems = Vec::new();
    for key in keys {
        match gc::collect_one(cfg, &key) {
            gc::Outcome::Running { pid, .. } => {
                problems.push(format!("it is being made by podshim (pid {pid})"))
            }
            gc::Outcome::Removed { problems: p, .. } => problems.extend(p),
            // Node-level outcomes: collecting one Pod's key removes no bridge.
            gc::Outcome::Network { .. } | gc::Outcome::Bridge { .. } => {}
        }
    }
    Some(if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("pod {name}: {}", problems.join("; ")))
    })
}

/// Remove the Pod `namespace/name` if it exists (`run --replace`).
pub fn remove_if_present(cfg: &Config, namespace: &str, name: &str) -> Result<()> {
    let key = pod_key(namespace, name);
    if let Some(e) = record::entry(cfg, &key) {
        rm_one(cfg, &e, true, None)?;
    }
    if cfg.pod_dir(&key).exists() {
        // A Pod directory without a record: a crash early in the setup.
        gc::collect_one(cfg, &key);
    }
    Ok(())
}

pub fn down(cfg: &Config, file: &str, grace: Option<u64>) -> Result<i32> {
    let Some(manifest) = super::run::load(file)? else {
        return Ok(1);
    };
    let mut code = 0;
    for pod in &manifest.pods {
        let key = pod_key(pod.namespace(), pod.name());
        match record::entry(cfg, &key) {
            Some(e) => match rm_one(cfg, &e, true, grace) {
                Ok(()) => println!("{}", pod.name()),
                Err(err) => {
                    eprintln!("podshim: {err:#}");
                    code = 1;
                }
            },
            None => eprintln!("podshim: pod {} not found", pod.name()),
        }
    }
    Ok(code)
}
