//! The controllers' Pods, made and removed through the same path as `podshim run -d`: a Pod
//! object from the template is read with podshim-kube's manifest reader (defaults, validation,
//! the gate, with the namespace's stored ConfigMaps and Secrets), planned against the image
//! store, and handed to a per-Pod supervisor process (`podshim supervise`); the Pod's record
//! under the state directory then says how it is. Nothing waits for a Pod to start: many are
//! started at once, each supervisor creating its sandbox in parallel with the others.
//!
//! Between the start of a supervisor and its first record, the Pod exists only as a *pending*
//! file (`<state>/controllers/pending/<key>.json`, with the supervisor's pid and start time):
//! a controller that was killed and comes back counts those Pods instead of making them again.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;

use chrono::{DateTime, Utc};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use podshim_engine::config::Config;
use podshim_kube::manifest::{self, Pod};
use podshim_kube::pod::pod_key;
use podshim_kube::record::{self, Entry, Supervisor};
use podshim_kube::supervise::{stop_request_path, PodJob, StopRequest, SupervisorInput};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::{controller_of, Kind, Labels, OwnerReference};
use crate::clock::{self, Clock};
use crate::events;
use crate::store::{write_atomic, Store};

/// What a controller needs to make and remove Pods.
#[derive(Debug, Clone)]
pub struct Context {
    pub cfg: Config,
    pub store: Store,
    pub log_root: PathBuf,
    /// The podshim binary (`/proc/self/exe` in a podshim process).
    pub exe: PathBuf,
    /// The global options supervisors and controllers are started with.
    pub globals: Vec<OsString>,
    /// The restart back-off scale supervisors get (`PODSHIM_BACKOFF_SCALE`).
    pub backoff_scale: f64,
    pub clock: Clock,
    /// This node's name (`spec.nodeName` of every Pod made here).
    pub node_name: String,
}

impl Context {
    /// Where the controllers keep their runtime files: locks, pids, pending Pods, logs.
    pub fn run_dir(&self) -> PathBuf {
        self.cfg.state.join("controllers")
    }

    fn pending_dir(&self) -> PathBuf {
        self.run_dir().join("pending")
    }
}

/// A Pod started whose record is not there yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pending {
    namespace: String,
    name: String,
    object: Value,
    supervisor: Supervisor,
    created: String,
}

/// A Pod as a controller sees it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub key: String,
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    pub annotations: Labels,
    pub owner: Option<OwnerReference>,
    /// Pending, Running, Succeeded or Failed (a lost supervisor is Failed).
    pub phase: String,
    pub ready: bool,
    pub ready_since: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
    pub restarts: u32,
    /// Being stopped.
    pub terminating: bool,
    /// Its supervisor is gone while its resources remain.
    pub lost: bool,
    /// Its resources exist (a torn-down Pod keeps only its record).
    pub live: bool,
    /// Started, no record yet.
    pub starting: bool,
    /// Kept Pending for its claims (`crate::held`): nothing started.
    pub held: bool,
    pub ip: Option<String>,
    pub supervisor_pid: u32,
    /// Containers that ended, with their exit codes: app containers, then init containers
    /// (the order the Job controller's `matchOnExitCodes` looks in).
    pub exits: Vec<(String, i32)>,
    /// The Pod's conditions, type and status (`DisruptionTarget`, `Ready`...).
    pub conditions: Vec<(String, String)>,
}

impl PodInfo {
    /// Neither ended nor being stopped (`controller.IsPodActive`).
    pub fn active(&self) -> bool {
        !self.terminating && !matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }

    pub fn finished(&self) -> bool {
        matches!(self.phase.as_str(), "Succeeded" | "Failed")
    }

    /// Ready for at least `min_ready` seconds at `now` (`podutil.IsPodAvailable`).
    pub fn available(&self, min_ready: i32, now: DateTime<Utc>) -> bool {
        self.ready
            && (min_ready <= 0
                || self
                    .ready_since
                    .is_some_and(|t| now - t >= chrono::Duration::seconds(min_ready.into())))
    }

    fn from_entry(e: &Entry) -> PodInfo {
        let meta = &e.record.pod["metadata"];
        let labels = string_map(&meta["labels"]);
        let annotations = string_map(&meta["annotations"]);
        let owners: Vec<Value> = meta["ownerReferences"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let st = e.status();
        let ready_cond = st.conditions.iter().find(|c| c.kind == "Ready");
        let ready = !e.lost && ready_cond.is_some_and(|c| c.status == "True");
        PodInfo {
            key: e.key.clone(),
            namespace: e.record.namespace.clone(),
            name: e.record.name.clone(),
            labels,
            annotations,
            owner: controller_of(&owners),
            phase: st.phase.clone(),
            ready,
            ready_since: ready_cond
                .and_then(|c| c.last_transition_time.as_deref())
                .and_then(clock::parse),
            created: st.start_time.as_deref().and_then(clock::parse),
            restarts: st.container_statuses.iter().map(|c| c.restart_count).sum(),
            terminating: e.record.terminating,
            lost: e.lost,
            live: e.live,
            starting: false,
            held: false,
            ip: st.pod_ip.clone(),
            supervisor_pid: e.record.supervisor.pid,
            exits: st
                .container_statuses
                .iter()
                .chain(&st.init_container_statuses)
                .filter_map(|c| Some((c.name.clone(), c.state.terminated.as_ref()?.exit_code)))
                .collect(),
            conditions: st
                .conditions
                .iter()
                .map(|c| (c.kind.clone(), c.status.clone()))
                .collect(),
        }
    }
}

fn string_map(v: &Value) -> Labels {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Every Pod of this instance (records, then Pods still starting), and the failures of Pods
/// whose supervisor ended before writing a record (`namespace/name: why`).
pub fn list(ctx: &Context) -> (Vec<PodInfo>, Vec<String>) {
    // A stop asked for (by this worker, or by one killed since, whose memory of it is gone)
    // whose Pod's record does not say `terminating` yet: the Pod is already going, and must
    // not be counted as available, or a restarted worker would stop one more. The supervisor
    // removes the request only after writing that record, so the requests are looked up
    // *before* the records are read: a request gone by then is in every record read after.
    let asked: BTreeSet<String> = fs::read_dir(record::dir(&ctx.cfg))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|f| Some(f.file_name().to_str()?.strip_suffix(".stop")?.to_string()))
        .collect();
    let mut pods: Vec<PodInfo> = record::list(&ctx.cfg)
        .iter()
        .map(PodInfo::from_entry)
        .collect();
    for p in pods.iter_mut() {
        if !p.terminating && asked.contains(&p.key) {
            p.terminating = true;
        }
    }
    let mut failures = Vec::new();
    // Held Pods whose claims appeared start now (and show below as starting).
    pods.extend(crate::held::retry(ctx));
    let Ok(dir) = fs::read_dir(ctx.pending_dir()) else {
        return (pods, failures);
    };
    for f in dir.flatten() {
        let file = f.file_name().to_string_lossy().to_string();
        let Some(key) = file.strip_suffix(".json") else {
            forget_stray(ctx, &pods, &file, &f.path());
            continue;
        };
        let Ok(p) = fs::read(f.path())
            .map_err(|_| ())
            .and_then(|d| serde_json::from_slice::<Pending>(&d).map_err(|_| ()))
        else {
            let _ = fs::remove_file(f.path());
            continue;
        };
        let ready = ctx.pending_dir().join(format!("{key}.ready"));
        if pods.iter().any(|x| x.key == key) {
            let _ = fs::remove_file(f.path());
            let _ = fs::remove_file(&ready);
            continue;
        }
        if p.supervisor.alive() {
            let meta = &p.object["metadata"];
            let owners: Vec<Value> = meta["ownerReferences"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            pods.push(PodInfo {
                key: key.to_string(),
                namespace: p.namespace,
                name: p.name,
                labels: string_map(&meta["labels"]),
                annotations: string_map(&meta["annotations"]),
                owner: controller_of(&owners),
                phase: "Pending".into(),
                ready: false,
                ready_since: None,
                created: clock::parse(&p.created),
                restarts: 0,
                terminating: false,
                lost: false,
                live: true,
                starting: true,
                held: false,
                ip: None,
                supervisor_pid: p.supervisor.pid,
                exits: Vec::new(),
                conditions: Vec::new(),
            });
            continue;
        }
        // The supervisor ended without a record: the Pod failed to start. Whatever it made is
        // torn down from its journal.
        let why = fs::read_to_string(&ready).unwrap_or_default();
        let why = why
            .trim()
            .splitn(3, ' ')
            .nth(2)
            .unwrap_or("the supervisor exited")
            .to_string();
        failures.push(format!("{}/{}: {why}", p.namespace, p.name));
        if ctx.cfg.pod_dir(key).exists() {
            podshim_kube::collect::collect_one(&ctx.cfg, key);
        }
        let _ = fs::remove_file(f.path());
        let _ = fs::remove_file(&ready);
    }
    pods.sort_by(|a, b| a.key.cmp(&b.key));
    (pods, failures)
}

/// A worker killed inside `spawn` leaves the `.ready` (and maybe `.input`) file of a Pod
/// without its `.json`: removed once the Pod has a record (its supervisor started) or, when it
/// never started, once it is older than any spawn takes (another object's worker may be in the
/// middle of one).
fn forget_stray(ctx: &Context, pods: &[PodInfo], file: &str, path: &std::path::Path) {
    let Some(key) = file
        .strip_suffix(".ready")
        .or_else(|| file.strip_suffix(".input"))
    else {
        return;
    };
    if ctx.pending_dir().join(format!("{key}.json")).exists() {
        return;
    }
    let stale = fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| {
            t.elapsed()
                .is_ok_and(|age| age > std::time::Duration::from_secs(30))
        });
    if stale || pods.iter().any(|p| p.key == key) {
        let _ = fs::remove_file(path);
    }
}

/// A new Pod from a template: name, labels, annotations and spec (defaulted), the owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewPod {
    pub namespace: String,
    pub name: String,
    pub generate_name: Option<String>,
    pub labels: Labels,
    pub annotations: Labels,
    pub spec: manifest::PodSpec,
    pub owner: OwnerReference,
}

/// Reads the Pod as `podshim run` reads a file (with the namespace's ConfigMaps and Secrets)
/// and plans it.
fn job_for(ctx: &Context, images: &podshim_image::Store, p: &NewPod) -> Result<PodJob, String> {
    let mut spec = p.spec.clone();
    spec.node_name = Some(ctx.node_name.clone());
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": p.name, "namespace": p.namespace,
                     "labels": p.labels, "annotations": p.annotations},
        "spec": spec,
    });
    let mut docs: Vec<String> = ctx
        .store
        .config_of(&p.namespace)
        .iter()
        .map(|v| v.to_string())
        .collect();
    docs.push(pod.to_string());
    let m = manifest::parse(&docs.join("\n---\n")).map_err(|e| e.to_string())?;
    let pod: &Pod = m.pods.first().ok_or("no pod")?;
    let plan = podshim_kube::plan::plan(pod, &m, images).map_err(|e| e.join("; "))?;
    let mut object = serde_json::to_value(pod).map_err(|e| e.to_string())?;
    object["metadata"]["ownerReferences"] = Value::Array(vec![p.owner.to_value()]);
    if let Some(g) = &p.generate_name {
        object["metadata"]["generateName"] = Value::String(g.clone());
    }
    object["metadata"]["uid"] = Value::String(plan.sandbox.uid.clone());
    Ok(PodJob { plan, object })
}

/// Starts every Pod (each its own supervisor, all at once); returns one result per Pod: the
/// key, or why it could not be started.
pub fn create(ctx: &Context, pods: &[NewPod]) -> Vec<Result<String, String>> {
    let images = match podshim_image::Store::open(&ctx.cfg.root) {
        Ok(s) => s,
        Err(e) => {
            return pods
                .iter()
                .map(|_| Err(format!("open the image store: {e}")))
                .collect()
        }
    };
    pods.iter()
        .map(|p| {
            let made = match crate::held::unschedulable(ctx, p) {
                // Made, and Pending: the scheduler's part, not a failure to create.
                Some(message) => crate::held::hold(ctx, p, message)
                    .map_err(|e| format!("keep the pod pending: {e}")),
                None => job_for(ctx, &images, p).and_then(|job| {
                    spawn(ctx, p, &job).map_err(|e| format!("start the supervisor: {e}"))
                }),
            };
            // The owner's SuccessfulCreate or FailedCreate, as its controller reports them.
            if let Some(kind) = Kind::from_name(&p.owner.kind) {
                match &made {
                    Ok(_) => events::normal(
                        ctx,
                        kind,
                        &p.namespace,
                        &p.owner.name,
                        "SuccessfulCreate",
                        &format!("Created pod: {}", p.name),
                    ),
                    Err(e) => events::warning(
                        ctx,
                        kind,
                        &p.namespace,
                        &p.owner.name,
                        "FailedCreate",
                        &format!("Error creating: {e}"),
                    ),
                }
            }
            made
        })
        .collect()
}

fn spawn(ctx: &Context, p: &NewPod, job: &PodJob) -> std::io::Result<String> {
    let key = pod_key(&p.namespace, &p.name);
    let pending = ctx.pending_dir();
    podshim_engine::private::create_dir_all(&pending)?;
    // Files, not pipes: a supervisor must never die of SIGPIPE because its controller was
    // killed before it read the answer.
    let input_path = pending.join(format!("{key}.input"));
    let input = SupervisorInput {
        job: std::borrow::Cow::Borrowed(job),
        backoff_scale: ctx.backoff_scale,
    };
    podshim_engine::private::write_file(&input_path, &serde_json::to_vec(&input)?)?;
    let stdin = File::open(&input_path)?;
    let _ = fs::remove_file(&input_path);
    let ready = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(podshim_engine::private::FILE_MODE)
        .open(pending.join(format!("{key}.ready")))?;
    let s = &job.plan.sandbox;
    let log_dir = podshim_kube::logs::pod_dir(&ctx.log_root, &s.namespace, &s.name, &s.uid);
    podshim_engine::private::create_dir_all(&log_dir)?;
    let log = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(podshim_engine::private::FILE_MODE)
        .open(log_dir.join("supervisor.log"))?;
    let mut cmd = Command::new(&ctx.exe);
    // The supervisor outlives its controller: it must not keep what the controller inherited,
    // and leads its own session from the start (as `run -d` starts one).
    podshim_engine::sys::inherit_only_stdio(&mut cmd);
    podshim_engine::sys::new_session(&mut cmd);
    let child = cmd
        .args(&ctx.globals)
        .arg("supervise")
        .stdin(stdin)
        .stdout(ready)
        .stderr(log)
        .spawn()?;
    let pid = child.id();
    // Not waited for here: the controller's loop reaps its exited children.
    drop(child);
    let rec = Pending {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        object: job.object.clone(),
        supervisor: Supervisor {
            pid,
            start_time: podshim_kube::pod::teardown::start_time(pid as i32).unwrap_or(0),
        },
        created: clock::format(Utc::now()),
    };
    write_atomic(
        &pending.join(format!("{key}.json")),
        &serde_json::to_vec(&rec)?,
    )
    .map_err(std::io::Error::other)?;
    Ok(key)
}

/// Reaps exited children (supervisors the controller started), never blocking.
pub fn reap() {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    while let Ok(s) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Asks each Pod's supervisor to stop it (as `podshim stop` does); does not wait. A Pod whose
/// supervisor is gone is torn down from its journal and its record removed.
pub fn request_stop(ctx: &Context, pods: &[&PodInfo], grace: Option<u64>) {
    for p in pods {
        if p.held {
            crate::held::remove(ctx, &p.key);
            continue;
        }
        if p.lost {
            podshim_kube::collect::collect_one(&ctx.cfg, &p.key);
            let _ = record::remove(&ctx.cfg, &p.key);
            continue;
        }
        if !p.live || p.starting {
            continue;
        }
        let path = stop_request_path(&ctx.cfg, &p.key);
        let req = StopRequest {
            grace_period_seconds: grace,
        };
        let data = serde_json::to_vec(&req).unwrap_or_default();
        if write_atomic(&path, &data).is_ok() {
            let _ = kill(Pid::from_raw(p.supervisor_pid as i32), Signal::SIGUSR1);
        }
    }
}

/// Sets the controller reference of a Pod (`Some`: adopted, `None`: released, its owner
/// references removed; podshim's Pods have at most the one). A live Pod's supervisor owns its
/// record, so it gets a request file and SIGUSR1 and rewrites the record itself; the record of
/// a Pod whose supervisor has ended is rewritten here.
pub fn set_owner(ctx: &Context, p: &PodInfo, owner: Option<&OwnerReference>) {
    let refs = Value::Array(owner.map(OwnerReference::to_value).into_iter().collect());
    if p.starting {
        return;
    }
    if let Some(mut e) = record::entry(&ctx.cfg, &p.key) {
        if !e.record.supervisor.alive() {
            podshim_kube::supervise::set_owner_references(&mut e.record.pod, refs);
            let _ = e.record.write(&record::path(&ctx.cfg, &p.key));
            return;
        }
    }
    let path = podshim_kube::supervise::owners_request_path(&ctx.cfg, &p.key);
    if write_atomic(&path, &serde_json::to_vec(&refs).unwrap_or_default()).is_ok() {
        let _ = kill(Pid::from_raw(p.supervisor_pid as i32), Signal::SIGUSR1);
    }
}

/// Removes the records of Pods that have ended and been torn down (their supervisor is gone).
pub fn forget(ctx: &Context, pods: &[&PodInfo]) {
    for p in pods {
        if p.held {
            crate::held::remove(ctx, &p.key);
            continue;
        }
        if p.lost {
            podshim_kube::collect::collect_one(&ctx.cfg, &p.key);
        }
        if !ctx.cfg.pod_dir(&p.key).join("journal.json").exists() {
            if let Some(e) = record::entry(&ctx.cfg, &p.key) {
                if e.record.supervisor.alive() {
                    continue;
                }
            }
            let _ = record::remove(&ctx.cfg, &p.key);
            // Its pending file, if `spawn` wrote it after a listing had already seen the
            // record (a Pod that ran and ended at once): no listing may follow (its owner is
            // being deleted), and a later one would take it for a Pod that failed to start.
            for ext in ["json", "ready"] {
                let _ = fs::remove_file(ctx.pending_dir().join(format!("{}.{ext}", p.key)));
            }
        }
    }
}

/// Stops the Pods and waits (bounded by their grace period and ten seconds more), then removes
/// their records: the garbage collector's foreground deletion of an owner's Pods.
pub fn delete_and_wait(ctx: &Context, pods: &[&PodInfo], grace: Option<u64>) {
    request_stop(ctx, pods, grace);
    let deadline =
        std::time::Instant::now() + std::time::Duration::from_secs(grace.unwrap_or(30) + 10);
    loop {
        reap();
        let (now, _) = list(ctx);
        let left: Vec<&PodInfo> = now
            .iter()
            .filter(|n| pods.iter().any(|p| p.key == n.key))
            .collect();
        // Pods still starting are stopped once their record shows them.
        let starting: Vec<&PodInfo> = left.iter().copied().filter(|p| p.starting).collect();
        if !starting.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        if left.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        // A torn-down Pod's supervisor writes its final record, then exits: its record goes
        // once it has.
        let (done, running): (Vec<&PodInfo>, Vec<&PodInfo>) =
            left.into_iter().partition(|p| !p.live || p.lost);
        forget(ctx, &done);
        let not_asked: Vec<&PodInfo> = running.iter().copied().filter(|p| !p.terminating).collect();
        request_stop(ctx, &not_asked, grace);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The labels of the Pods, by key (for tests and `describe`).
pub fn labels_by_key(pods: &[PodInfo]) -> BTreeMap<String, Labels> {
    pods.iter()
        .map(|p| (p.key.clone(), p.labels.clone()))
        .collect()
}
