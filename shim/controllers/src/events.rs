//! Events of the workload objects, as the controllers' event recorders emit them
//! (`SuccessfulCreate`, `SuccessfulDelete`, `FailedCreate`, `ScalingReplicaSet`, `Completed`,
//! `BackoffLimitExceeded`, `SawCompletedJob`...), kept per object for `podshim describe`.
//!
//! Each object's events are one file under `<state>/controllers/events/` (state, not the
//! store: events are not desired state, and the store's directories wake the controllers).
//! Only the object's own controller process writes them. A repeat of an event (same type,
//! reason and message) is counted on the last one, as client-go's event correlator aggregates
//! it; at most `LIMIT` are kept, the oldest dropped.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::api::Kind;
use crate::clock;
use crate::pods::Context;
use crate::store::write_atomic;

/// How many events an object keeps.
pub const LIMIT: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Normal or Warning.
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
    pub message: String,
    /// The component that reported it (`replicaset-controller`).
    pub source: String,
    pub count: u32,
    pub first_timestamp: String,
    pub last_timestamp: String,
}

fn path(ctx: &Context, kind: Kind, ns: &str, name: &str) -> PathBuf {
    ctx.run_dir()
        .join("events")
        .join(format!("{}_{ns}_{name}.json", kind.plural()))
}

/// The component whose events these are, as Kubernetes names it.
fn component(kind: Kind) -> &'static str {
    match kind {
        Kind::Deployment => "deployment-controller",
        Kind::ReplicaSet => "replicaset-controller",
        Kind::DaemonSet => "daemonset-controller",
        Kind::Job => "job-controller",
        Kind::CronJob => "cronjob-controller",
    }
}

/// The object's events, oldest first.
pub fn list(ctx: &Context, kind: Kind, ns: &str, name: &str) -> Vec<Event> {
    std::fs::read(path(ctx, kind, ns, name))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// Adds an event to `list` at `now`: a repeat of the last matching one is counted.
fn add(list: &mut Vec<Event>, kind: Kind, event: (&str, &str, &str), now: &str) {
    let (kind_of, reason, message) = event;
    if let Some(i) = list
        .iter()
        .rposition(|e| e.kind == kind_of && e.reason == reason && e.message == message)
    {
        let mut e = list.remove(i);
        e.count += 1;
        e.last_timestamp = now.into();
        list.push(e);
    } else {
        list.push(Event {
            kind: kind_of.into(),
            reason: reason.into(),
            message: message.into(),
            source: component(kind).into(),
            count: 1,
            first_timestamp: now.into(),
            last_timestamp: now.into(),
        });
    }
    let extra = list.len().saturating_sub(LIMIT);
    list.drain(..extra);
}

/// Records a `Normal` event on an object.
pub fn normal(ctx: &Context, kind: Kind, ns: &str, name: &str, reason: &str, message: &str) {
    record(ctx, kind, ns, name, ("Normal", reason, message));
}

/// Records a `Warning` event on an object.
pub fn warning(ctx: &Context, kind: Kind, ns: &str, name: &str, reason: &str, message: &str) {
    record(ctx, kind, ns, name, ("Warning", reason, message));
}

fn record(ctx: &Context, kind: Kind, ns: &str, name: &str, event: (&str, &str, &str)) {
    let mut list = list(ctx, kind, ns, name);
    add(&mut list, kind, event, &clock::format(Utc::now()));
    let data = serde_json::to_vec(&list).unwrap_or_default();
    // Best effort: an event that cannot be kept must not stop the controller.
    let _ = write_atomic(&path(ctx, kind, ns, name), &data);
}

/// Forgets an object's events (it was deleted).
pub fn remove(ctx: &Context, kind: Kind, ns: &str, name: &str) {
    let _ = std::fs::remove_file(path(ctx, kind, ns, name));
}

/// kubectl's `HumanDuration` of the time since `t`.
pub fn since(t: &str, now: DateTime<Utc>) -> String {
    let Some(t) = clock::parse(t) else {
        return "<unknown>".into();
    };
    let secs = (now - t).num_seconds().max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    match secs {
        s if s < 120 => format!("{s}s"),
        _ if m < 10 => format!("{m}m{}s", secs % 60),
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 => format!("{d}d{}h", h % 24),
        _ => format!("{d}d"),
    }
}

/// The `Events:` section of `kubectl describe` (`DescribeEvents`): a table indented by two,
/// columns two spaces apart, `<none>` without events.
pub fn table(events: &[Event], now: DateTime<Utc>) -> String {
    if events.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut rows: Vec<[String; 5]> = vec![
        ["Type", "Reason", "Age", "From", "Message"].map(String::from),
        ["----", "------", "----", "----", "-------"].map(String::from),
    ];
    for e in events {
        let age = if e.count > 1 {
            format!(
                "{} (x{} over {})",
                since(&e.last_timestamp, now),
                e.count,
                since(&e.first_timestamp, now)
            )
        } else {
            since(&e.first_timestamp, now)
        };
        rows.push([
            e.kind.clone(),
            e.reason.clone(),
            age,
            e.source.clone(),
            e.message.trim().to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::from("Events:\n");
    for r in &rows {
        let mut line = String::from("  ");
        for (c, w) in widths.iter().enumerate() {
            line.push_str(&format!("{:<w$}  ", r[c], w = *w));
        }
        line.push_str(&r[4]);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_counted_and_the_list_is_bounded() {
        let mut list = Vec::new();
        let ev = ("Normal", "SuccessfulCreate", "Created pod: web-abcde");
        add(&mut list, Kind::ReplicaSet, ev, "2030-01-01T00:00:00Z");
        add(
            &mut list,
            Kind::ReplicaSet,
            ("Warning", "FailedCreate", "Error creating: no image"),
            "2030-01-01T00:00:05Z",
        );
        add(&mut list, Kind::ReplicaSet, ev, "2030-01-01T00:00:10Z");
        assert_eq!(list.len(), 2);
        assert_eq!(list[1].count, 2);
        assert_eq!(list[1].first_timestamp, "2030-01-01T00:00:00Z");
        assert_eq!(list[1].last_timestamp, "2030-01-01T00:00:10Z");
        for n in 0..LIMIT + 10 {
            let m = format!("Created pod: web-{n}");
            add(
                &mut list,
                Kind::ReplicaSet,
                ("Normal", "SuccessfulCreate", &m),
                "2030-01-01T00:01:00Z",
            );
        }
        assert_eq!(list.len(), LIMIT);
        assert_eq!(
            list[LIMIT - 1].message,
            format!("Created pod: web-{}", LIMIT + 9)
        );
    }

    #[test]
    fn kubectl_table() {
        let now = clock::parse("2030-01-01T00:05:00Z").unwrap();
        assert_eq!(table(&[], now), "Events:  <none>\n");
        let mut list = Vec::new();
        add(
            &mut list,
            Kind::Deployment,
            (
                "Normal",
                "ScalingReplicaSet",
                "Scaled up replica set web-7d4b9c from 0 to 3",
            ),
            "2030-01-01T00:04:50Z",
        );
        let ev = ("Warning", "FailedCreate", "Error creating: x");
        add(&mut list, Kind::Deployment, ev, "2030-01-01T00:00:00Z");
        add(&mut list, Kind::Deployment, ev, "2030-01-01T00:04:00Z");
        assert_eq!(
            table(&list, now),
            "Events:\n\
             \x20 Type     Reason             Age                 From                   Message\n\
             \x20 ----     ------             ----                ----                   -------\n\
             \x20 Normal   ScalingReplicaSet  10s                 deployment-controller  Scaled up replica set web-7d4b9c from 0 to 3\n\
             \x20 Warning  FailedCreate       60s (x2 over 5m0s)  deployment-controller  Error creating: x\n"
        );
    }
}
