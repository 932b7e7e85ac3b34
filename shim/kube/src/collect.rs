//! Garbage collection of lost Pods as the Kubernetes layer sees it: the engine tears down every
//! Pod whose owner is gone (from its journal), then each such Pod's record says how it ended
//! (`SupervisorLost`), as the kubelet reports a Pod whose sandbox vanished.

use crate::record;
use podshim_engine::config::Config;
pub use podshim_engine::gc::Outcome;

/// [`podshim_engine::gc::gc`], then the records of the Pods it removed are settled.
pub fn gc(cfg: &Config) -> Vec<Outcome> {
    let outcomes = podshim_engine::gc::gc(cfg);
    for o in &outcomes {
        settle(cfg, o);
    }
    outcomes
}

/// [`podshim_engine::gc::collect_one`], then the Pod's record is settled.
pub fn collect_one(cfg: &Config, key: &str) -> Outcome {
    let outcome = podshim_engine::gc::collect_one(cfg, key);
    settle(cfg, &outcome);
    outcome
}

fn settle(cfg: &Config, outcome: &Outcome) {
    if let Outcome::Removed { key, .. } = outcome {
        record::settle_lost(cfg, key);
    }
}

/// [`podshim_engine::reset::reset`], refused while `ps` still lists Pods: running ones, and
/// ended ones whose records `podshim rm` has not removed. The empty records directory goes too.
pub fn reset(
    cfg: &Config,
) -> Result<podshim_engine::reset::Removed, podshim_engine::reset::ResetError> {
    let records: Vec<String> = std::fs::read_dir(record::dir(cfg))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".json").map(str::to_owned)
        })
        .filter(|key| !podshim_engine::reset::pods_left(cfg).contains(key))
        .collect();
    let mut removed = podshim_engine::reset::reset(cfg, &records)?;
    let dir = record::dir(cfg);
    if std::fs::remove_dir(&dir).is_ok() {
        removed.dirs.push(dir);
    }
    Ok(removed)
}
