//! The PostFilter part of an Unschedulable message: what kube-scheduler's PostFilter plugins say
//! when no node fits, joined with ", " as the framework joins their reasons. DynamicResources
//! (on by default since Kubernetes 1.34) has no claims of the Pod to free: "no new claims to
//! deallocate". DefaultPreemption (`preemption.Evaluator`): a Pod with
//! `preemptionPolicy: Never` is not eligible; a node rejected as UnschedulableAndUnresolvable is
//! one where "Preemption is not helpful for scheduling"; otherwise the lower-priority Pods on it
//! are the possible victims: none, or removing them all still does not make room, and the node
//! is no candidate. When removing them would make room, kube-scheduler would evict them and
//! nominate the node; podshim does not preempt running Pods and says so instead.

use super::filters::{self, Rejection};
use super::Node;
use crate::manifest::Pod;

/// `dynamicresources` PostFilter for a Pod without ResourceClaims.
const NO_CLAIMS: &str = "no new claims to deallocate";

/// `preemption: ...` after the DynamicResources reason.
pub(super) fn message(
    pod: &Pod,
    placed: &[&Pod],
    rejection: Option<&Rejection>,
    node: &Node,
) -> String {
    format!(
        "{NO_CLAIMS}, preemption: {}",
        preemption(pod, placed, rejection, node)
    )
}

fn preemption(pod: &Pod, placed: &[&Pod], rejection: Option<&Rejection>, node: &Node) -> String {
    if pod.spec.preemption_policy.as_deref() == Some("Never") {
        return "not eligible due to preemptionPolicy=Never.".to_string();
    }
    let one = |reason: &str| format!("0/1 nodes are available: 1 {reason}.");
    match rejection {
        Some(r) if r.resolvable => {}
        _ => return one("Preemption is not helpful for scheduling"),
    }
    let priority = pod.spec.priority.unwrap_or(0);
    let (victims, kept): (Vec<&Pod>, Vec<&Pod>) = placed
        .iter()
        .partition(|p| p.spec.priority.unwrap_or(0) < priority);
    if victims.is_empty() {
        return one("No preemption victims found for incoming pod");
    }
    match filters::run(pod, node, &kept) {
        Some(still) => one(still.reason),
        None => {
            let names: Vec<String> = victims
                .iter()
                .map(|p| format!("{}/{}", p.namespace(), p.name()))
                .collect();
            format!(
                "kube-scheduler would evict the lower-priority Pod(s) {} to make room; podshim does \
                 not preempt running Pods",
                names.join(", ")
            )
        }
    }
}
