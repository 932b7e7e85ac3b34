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
