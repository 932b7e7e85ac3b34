//! Garbage collection of lost Pods as the Kubernetes layer sees it: the engine tears down every
//! Pod whose owner is gone (from its journal), then each such Pod's record says how it ended
//! (`SupervisorLost`), as the kubelet reports a Pod whose sandbox vanished.

use crate::record;
use podshim_engine::config::Config;
pub use podshim_engine::gc::Outcome;

/// [`podshim_engine::gc::gc`], then the records of the Pods it removed are settled, and so are
/// the records a killed foreground `podshim run` left after its teardown (no journal, no
/// supervisor): such a record would otherwise hold the Pod's name.
pub fn gc(cfg: &Config) -> Vec<Outcome> {
    let mut outcomes = podshim_engine::gc::gc(cfg);
    for o in &outcomes {
        settle(cfg, o);
    }
    for e in record::list(cfg) {
        if stale(&e) && record::remove(cfg, &e.key).is_ok() {
            outcomes.push(Outcome::Removed {
                key: e.key,
                problems: Vec::new(),
            });
        }
    }
    outcomes
}

/// A record nobody will remove: a foreground Pod's (those go with their run) whose resources
/// are gone and whose supervisor is dead. A detached Pod's record stays until `podshim rm`.
pub fn stale(e: &record::Entry) -> bool {
    !e.live && !e.record.detached && !e.record.supervisor.alive()
}

/// The Pod directories of Pod `name` (in `namespace`, if given) that have no record: a crash
/// early in the setup, before the first record was written. See
/// [`podshim_engine::gc::keys_of`].
pub fn unrecorded(cfg: &Config, namespace: Option<&str>, name: &str) -> Vec<String> {
    podshim_engine::gc::keys_of(cfg, namespace, name)
        .into_iter()
        .filter(|key| record::entry(cfg, key).is_none())
        .collect()
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
