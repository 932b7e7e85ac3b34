//! Garbage collection of Pods whose podshim is gone (killed, crashed, machine reset of /run
//! excepted): every such Pod is torn down from its journal.
//!
//! Then CNI GC: every CNI network configuration list recorded in the journals of the Pods
//! torn down, and the configured `--cni-conf`, is GC'ed (for lists of cniVersion 1.1.0 and
//! later, [`NetworkList::gc`]) with the attachments of this instance's Pods that still run on
//! that network as `cni.dev/valid-attachments`, so its plugins release whatever else they hold
//! (what a DEL that never ran, or failed, left). Like any CNI GC, it takes this instance to
//! be the only runtime attaching Pods to those networks.

use std::fs;
use std::path::Path;

use podshim_cni::chain::NetworkList;

use crate::chain;
use crate::config::Config;
use crate::journal::{Journal, PodRecord, Resource};
use crate::teardown::teardown;

/// What `gc` did with one Pod directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its podshim still runs it.
    Running { key: String, pid: u32 },
    /// Torn down (with the problems met, if any).
    Removed { key: String, problems: Vec<String> },
    /// CNI GC of a network configuration list: `kept` attachments were valid.
    Network {
        name: String,
        kept: usize,
        problem: Option<String>,
    },
    /// The instance's bridge and its node rules, which no Pod uses any more: removed (or
    /// not, with the reason).
    Bridge {
        name: String,
        problem: Option<String>,
    },
}

/// Whether the podshim that wrote `record` is still alive (same PID and start time).
pub fn owner_alive(record: &PodRecord) -> bool {
    record.owner_pid != std::process::id()
        && crate::teardown::alive(record.owner_pid as i32, record.owner_start_time)
}

/// Tear down every Pod of this instance whose owner is gone, then GC the CNI networks they
/// were on and the configured one.
pub fn gc(cfg: &Config) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    crate::exe::remove_stale_binds();
    // The lists to GC, each with its CNI_PATH, once.
    let mut lists: Vec<(NetworkList, String)> = Vec::new();
    let mut add_list = |list: NetworkList, cni_path: &str| {
        if !lists
            .iter()
            .any(|(l, p)| l.to_json() == list.to_json() && p == cni_path)
        {
            lists.push((list, cni_path.to_owned()));
        }
    };
    if let Some(conf) = &cfg.cni_conf {
        match NetworkList::load(conf) {
            Ok(list) => add_list(list, &cfg.cni_path),
            Err(e) => outcomes.push(Outcome::Network {
                name: conf.display().to_string(),
                kept: 0,
                problem: Some(chain(&e)),
            }),
        }
    }
    if let Ok(entries) = fs::read_dir(cfg.pods_dir()) {
        for entry in entries.flatten() {
            let key = entry.file_name().to_string_lossy().to_string();
            let recorded = cni_chains(&entry.path().join("journal.json"));
            let outcome = collect(&entry.path(), key);
            if matches!(outcome, Outcome::Removed { .. }) {
                for (list, cni_path, _) in recorded {
                    add_list(list, &cni_path);
                }
            }
            outcomes.push(outcome);
        }
    }
    if let Some(outcome) = collect_bridge(cfg) {
        outcomes.push(outcome);
    }
    // User ID blocks whose Pod's journal is gone (any instance's: the blocks are the host's).
    let claims = Path::new(crate::userns::CLAIMS_DIR);
    crate::userns::gc_claims(claims);
    // The state root is 0711 only while a Pod of this instance has its own user namespace
    // (opened by the claim, closed by the last release; this closes it after the claims of
    // Pods whose journal is gone, or of journals older than that record).
    if claims.exists() {
        if let Err(problem) =
            crate::userns::close_unused(claims, &[cfg.state.clone(), cfg.pods_dir()])
        {
            tracing::warn!(%problem, "close the state root again");
        }
    }
    for (list, cni_path) in lists.into_iter().filter(|(l, _)| l.has_gc()) {
        // Read right before the GC, to miss as few Pods started meanwhile as can be.
        let valid = valid_attachments(cfg, &list.name);
        outcomes.push(Outcome::Network {
            kept: valid.len(),
            problem: list.gc(&valid, &cni_path).err().map(|e| chain(&e)),
            name: list.name,
        });
    }
    outcomes
}

/// Removes the instance's bridge and its node rules when no Pod of the instance records an
/// attachment to it and the kernel shows no port on it; `None` when there is nothing to do
/// (Pods use it, or there was no bridge).
fn collect_bridge(cfg: &Config) -> Option<Outcome> {
    let in_use = fs::read_dir(cfg.pods_dir())
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            // A Pod directory without a readable journal is being made: count it as using it.
            Journal::load(&entry.path().join("journal.json")).map_or(true, |j| {
                j.resources.iter().any(|r| {
                    matches!(r, crate::journal::Resource::Network { bridge, .. } if *bridge == cfg.bridge)
                })
            })
        });
    if in_use {
        return None;
    }
    // Also when the bridge is gone already: its node rules may not be.
    let problem = match podshim_cni::remove_network(&cfg.network(), false) {
        Ok(podshim_cni::NetworkRemoval::Removed { bridge: false }) => return None,
        Ok(podshim_cni::NetworkRemoval::Removed { bridge: true }) => None,
        Ok(podshim_cni::NetworkRemoval::InUse { ports }) => {
            Some(format!("still has ports: {}", ports.join(", ")))
        }
        Err(e) => Some(chain(&e)),
    };
    Some(Outcome::Bridge {
        name: cfg.bridge.clone(),
        problem,
    })
}

/// The CNI attachments a journal records: list, CNI_PATH, (container id, interface).
fn cni_chains(journal: &Path) -> Vec<(NetworkList, String, (String, String))> {
    let Ok(journal) = Journal::load(journal) else {
        return Vec::new();
    };
    journal
        .resources
        .iter()
        .filter_map(|r| r.cni_chain().ok())
        .map(|(list, rt)| {
            let attachment = (rt.container_id.to_owned(), rt.ifname.to_owned());
            (list, rt.cni_path.to_owned(), attachment)
        })
        .collect()
}

/// The attachments to network `name` of this instance's Pods whose podshim still runs them.
fn valid_attachments(cfg: &Config, name: &str) -> Vec<(String, String)> {
    let Ok(entries) = fs::read_dir(cfg.pods_dir()) else {
        return Vec::new();
    };
    let mut valid = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path().join("journal.json");
        let alive = Journal::load(&path).is_ok_and(|j| owner_alive(&j.pod));
        if alive {
            valid.extend(
                cni_chains(&path)
                    .into_iter()
                    .filter(|(list, _, _)| list.name == name)
                    .map(|(_, _, attachment)| attachment),
            );
        }
    }
    valid.sort();
    valid.dedup();
    valid
}

/// Tear down one Pod of this instance if its owner is gone.
pub fn collect_one(cfg: &Config, key: &str) -> Outcome {
    collect(&cfg.pod_dir(key), key.to_string())
}

fn collect(dir: &Path, key: String) -> Outcome {
    let journal_path = dir.join("journal.json");
    let mut journal = match Journal::load(&journal_path) {
        Ok(j) => j,
        Err(e) => {
            // A crash between creating the directory and writing the journal leaves nothing else.
            let mut problems = Vec::new();
            if journal_path.exists() {
                problems.push(chain(&e));
            }
            if let Err(e) = fs::remove_dir_all(dir) {
                problems.push(format!("remove {}: {e}", dir.display()));
            }
            return Outcome::Removed { key, problems };
        }
    };
    if owner_alive(&journal.pod) {
        return Outcome::Running {
            key,
            pid: journal.pod.owner_pid,
        };
    }
    // The dead owner's forks first: one still running would make again what the teardown
    // removes (libcontainer's intermediate process makes the container's cgroups).
    if let Err(e) = crate::forks::stop(dir, journal.pod.owner_start_time) {
        return Outcome::Removed {
            key,
            problems: vec![chain(&e)],
        };
    }
    let mut problems = teardown(&mut journal);
    if problems.is_empty() && dir.exists() {
        // A journal that does not name its own directory (written by a podshim from before the
        // directory became its first record, and killed before it recorded anything).
        if let Err(e) = crate::teardown::remove(&Resource::Dir { path: dir.into() }) {
            problems.push(e);
        }
    }
    Outcome::Removed { key, problems }
}

/// The keys of this instance's Pod directories that belong to Pod `name` (in `namespace`, if
/// given): by their journal, or by the directory's name (`<namespace>_<name>`: a namespace
/// holds no `_`) when a crash left no journal to read.
pub fn keys_of(cfg: &Config, namespace: Option<&str>, name: &str) -> Vec<String> {
    let Ok(entries) = fs::read_dir(cfg.pods_dir()) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = entries
        .flatten()
        .filter_map(|entry| {
            let key = entry.file_name().to_string_lossy().to_string();
            let (ns, n) = match Journal::load(&entry.path().join("journal.json")) {
                Ok(j) => (j.pod.namespace, j.pod.name),
                Err(_) => {
                    let (ns, n) = key.split_once('_')?;
                    (ns.to_owned(), n.to_owned())
                }
            };
            (n == name && namespace.is_none_or(|want| want == ns)).then_some(key)
        })
        .collect();
    keys.sort();
    keys
}
