//! A Pod's record: the Kubernetes Pod object with its status, and who supervises it. The
//! supervisor rewrites it atomically on every change (`<state>/pods/<key>/record.json`);
//! `ps`, `inspect`, `logs`, `stop` and `rm` read it. It outlives the Pod's teardown for a
//! detached Pod (so a finished Pod still shows in `ps` until `rm`), not for a foreground one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::pod::teardown::start_time;
use crate::status::PodStatus;
use podshim_engine::config::Config;

pub mod anti;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot write the pod record {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the pod record {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the pod record {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The process that supervises a Pod; the start time guards against PID reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Supervisor {
    pub pid: u32,
    pub start_time: u64,
}

impl Supervisor {
    pub fn current() -> Self {
        let pid = std::process::id();
        Supervisor {
            pid,
            start_time: start_time(pid as i32).unwrap_or(0),
        }
    }

    pub fn alive(&self) -> bool {
        crate::pod::teardown::alive(self.pid as i32, self.start_time)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The defaulted Pod manifest as a Kubernetes object (without `status`).
    pub pod: serde_json::Value,
    pub status: PodStatus,
    pub supervisor: Supervisor,
    /// `run -d`: the record stays after the Pod ends, until `rm`.
    pub detached: bool,
    /// The Pod's CRI log directory.
    pub log_dir: PathBuf,
    /// Which init containers are sidecars (for `ps`).
    #[serde(default)]
    pub sidecars: Vec<bool>,
    /// The supervisor is stopping the Pod.
    #[serde(default)]
    pub terminating: bool,
}

/// Where the records live: next to the Pods' resource directories, not in them, so a record
/// outlives its Pod's teardown.
pub fn dir(cfg: &Config) -> PathBuf {
    cfg.state.join("records")
}

/// Where the record of the Pod with this key lives.
pub fn path(cfg: &Config, key: &str) -> PathBuf {
    dir(cfg).join(format!("{key}.json"))
}

impl Record {
    /// Write atomically: a temporary file in the same directory, then rename.
    pub fn write(&self, path: &Path) -> Result<(), RecordError> {
        let err = |source| RecordError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(self).map_err(|e| err(e.into()))?;
        let mut f = podshim_engine::private::create_file(&tmp).map_err(err)?;
        f.write_all(&data).map_err(err)?;
        fs::rename(&tmp, path).map_err(err)?;
        anti::mark(self, path).map_err(err)
    }

    pub fn load(path: &Path) -> Result<Record, RecordError> {
        let data = fs::read(path).map_err(|source| RecordError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&data).map_err(|source| RecordError::Corrupt {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The Pod object with its status, as `inspect` prints it.
    pub fn object(&self) -> serde_json::Value {
        let mut pod = self.pod.clone();
        if let Some(obj) = pod.as_object_mut() {
            obj.insert(
                "status".into(),
                serde_json::to_value(&self.status).unwrap_or_default(),
            );
        }
        pod
    }

    /// Whether the Pod has reached a terminal phase.
    pub fn finished(&self) -> bool {
        matches!(self.status.phase.as_str(), "Succeeded" | "Failed")
    }
}

/// A Pod of this instance as the management commands see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub record: Record,
    /// Host resources still exist (the journal is there).
    pub live: bool,
    /// Its supervisor is gone while resources remain (killed or crashed).
    pub lost: bool,
}

impl Entry {
    /// The status to show: a Pod whose supervisor is gone is Failed, reason `SupervisorLost`
    /// (its containers are stopped and its resources removed by `podshim rm -f` or `gc`).
    pub fn status(&self) -> PodStatus {
        let mut s = self.record.status.clone();
        if self.lost {
            // As the kubelet reports containers it lost track of.
            let now = crate::status::time(chrono::Utc::now());
            for c in s
                .init_container_statuses
                .iter_mut()
                .chain(s.container_statuses.iter_mut())
                .filter(|c| c.state.terminated.is_none())
            {
                c.state = crate::status::ContainerState {
                    terminated: Some(crate::status::Terminated {
                        exit_code: 137,
                        reason: "ContainerStatusUnknown".into(),
                        message: Some(
                            "The container could not be located when the pod was terminated".into(),
                        ),
                        finished_at: now.clone(),
                        container_id: c.container_id.clone(),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                c.ready = false;
                c.started = Some(false);
            }
            for cond in s.conditions.iter_mut() {
                if cond.kind == "Ready" || cond.kind == "ContainersReady" {
                    cond.status = "False".into();
                    cond.reason = Some("PodFailed".into());
                }
            }
            s.phase = "Failed".into();
            s.reason = Some("SupervisorLost".into());
            s.message = Some(format!(
                "the podshim supervisor (pid {}) is gone; `podshim rm -f {}` or `podshim gc` \
                 stops what is left and removes it",
                self.record.supervisor.pid, self.record.name
            ));
        }
        s
    }
}

/// After `gc`, `rm -f` or `stop` tore down a Pod whose supervisor was lost, nothing of it is
/// left: its record goes too (until then every command showed it as `SupervisorLost`), and so
/// does a pending stop request. Its logs stay.
pub fn settle_lost(cfg: &Config, key: &str) {
    let _ = remove(cfg, key);
}

/// Remove the record of a Pod with what may lie next to it: the temporary file of a write a
/// killed podshim did not finish, a stop request and an owner-references request. A record
/// already gone is no error.
pub fn remove(cfg: &Config, key: &str) -> Result<(), RecordError> {
    let record = path(cfg, key);
    anti::unmark(cfg, key);
    for extra in [
        record.with_extension("json.tmp"),
        dir(cfg).join(format!("{key}.stop")),
        dir(cfg).join(format!("{key}.stop.tmp")),
        dir(cfg).join(format!("{key}.owners")),
        dir(cfg).join(format!("{key}.owners.tmp")),
    ] {
        let _ = fs::remove_file(extra);
    }
    match fs::remove_file(&record) {
        Err(source) if source.kind() != io::ErrorKind::NotFound => Err(RecordError::Write {
            path: record,
            source,
        }),
        _ => Ok(()),
    }
}

/// Read the record of one Pod.
pub fn entry(cfg: &Config, key: &str) -> Option<Entry> {
    let record = Record::load(&path(cfg, key)).ok()?;
    let live = cfg.pod_dir(key).join("journal.json").exists();
    let lost = live && !record.supervisor.alive();
    Some(Entry {
        key: key.to_string(),
        record,
        live,
        lost,
    })
}

/// The Pods whose record's bytes `pick` selects (read and parsed only then), sorted by
/// namespace and name: parsing every record is what would make a command's cost grow with the
/// number of Pods.
pub fn list_where(cfg: &Config, pick: impl Fn(&[u8]) -> bool) -> Vec<Entry> {
    let Ok(dir) = fs::read_dir(dir(cfg)) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let key = name.strip_suffix(".json")?;
            let data = fs::read(e.path()).ok()?;
            if !pick(&data) {
                return None;
            }
            let record: Record = serde_json::from_slice(&data).ok()?;
            let live = cfg.pod_dir(key).join("journal.json").exists();
            Some(Entry {
                key: key.to_string(),
                lost: live && !record.supervisor.alive(),
                record,
                live,
            })
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Every Pod with a record, sorted by namespace and name.
pub fn list(cfg: &Config) -> Vec<Entry> {
    let Ok(dir) = fs::read_dir(dir(cfg)) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            entry(cfg, name.strip_suffix(".json")?)
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Find a Pod by `NAME` or `NAMESPACE/NAME` (a bare name must be unique across namespaces;
/// the `default` namespace wins a tie, as kubectl's default context does).
///
/// Only the records whose file name (`<namespace>_<name>.json`) matches are read, so finding a
/// Pod costs the same however many others there are.
pub fn find(cfg: &Config, pod: &str) -> Result<Entry, String> {
    let (ns, name) = match pod.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, pod),
    };
    let keys: Vec<String> = match ns {
        Some(ns) => vec![podshim_engine::pod_key(ns, name)],
        None => fs::read_dir(dir(cfg))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let key = file.strip_suffix(".json")?;
                // Namespaces are DNS labels: the key's first `_` ends the namespace.
                let (_, n) = key.split_once('_')?;
                (n == name).then(|| key.to_owned())
            })
            .collect(),
    };
    let mut hits: Vec<Entry> = keys
        .iter()
        .filter_map(|key| entry(cfg, key))
        .filter(|e| e.record.name == name && ns.is_none_or(|ns| e.record.namespace == ns))
        .collect();
    hits.sort_by(|a, b| a.key.cmp(&b.key));
    if hits.len() > 1 {
        if let Some(i) = hits.iter().position(|e| e.record.namespace == "default") {
            return Ok(hits.swap_remove(i));
        }
        return Err(format!(
            "pod {name:?} exists in several namespaces ({}); say NAMESPACE/{name}",
            hits.iter()
                .map(|e| e.record.namespace.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    hits.pop()
        .ok_or_else(|| format!("pod {pod:?} not found (see `podshim ps`)"))
}
