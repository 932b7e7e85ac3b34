//! Garbage collection of Pods whose podshim is gone (killed, crashed, machine reset of /run
//! excepted): every such Pod is torn down from its journal.

use std::fs;
use std::path::Path;

use super::chain;
use super::journal::{Journal, PodRecord};
use super::teardown::teardown;
use crate::config::Config;

/// What `gc` did with one Pod directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its podshim still runs it.
    Running { key: String, pid: u32 },
    /// Torn down (with the problems met, if any).
    Removed { key: String, problems: Vec<String> },
}

/// Whether the podshim that wrote `record` is still alive (same PID and start time).
pub fn owner_alive(record: &PodRecord) -> bool {
    record.owner_pid != std::process::id()
        && super::teardown::alive(record.owner_pid as i32, record.owner_start_time)
}

/// Tear down every Pod of this instance whose owner is gone.
pub fn gc(cfg: &Config) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    let Ok(entries) = fs::read_dir(cfg.pods_dir()) else {
        return outcomes;
    };
    for entry in entries.flatten() {
        let key = entry.file_name().to_string_lossy().to_string();
        outcomes.push(collect(cfg, &entry.path(), key));
    }
    outcomes
}

/// Tear down one Pod of this instance if its owner is gone.
pub fn collect_one(cfg: &Config, key: &str) -> Outcome {
    collect(cfg, &cfg.pod_dir(key), key.to_string())
}

fn collect(cfg: &Config, dir: &Path, key: String) -> Outcome {
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
    let problems = teardown(&mut journal);
    crate::record::settle_lost(cfg, &key);
    Outcome::Removed { key, problems }
}
