//! `podshim get KIND[,KIND] [NAME] [-o wide|json|yaml]`: kubectl's columns for deployments,
//! replicasets, daemonsets, jobs, cronjobs and pods (short names and `KIND/NAME` too).

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Result};
use clap::Args;
use podshim_controllers::api::{Kind, Workload};
use podshim_controllers::pods::Context;
use podshim_engine::config::Config;
use podshim_kube::record;
use serde_json::Value;

use super::manage::{age, print_table, Format};
use super::workloads::{self, Resource};

#[derive(Args)]
pub struct GetArgs {
    /// Output format: wide, json or yaml
    #[arg(short, long)]
    output: Option<Format>,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// KIND[,KIND] [NAME], or KIND/NAME
    #[arg(required = true)]
    what: Vec<String>,
}

pub fn get(cfg: &Config, log_root: &Path, globals: &[OsString], a: GetArgs) -> Result<i32> {
    if let Some(kind) = a
        .what
        .first()
        .filter(|k| super::claims::is_claim_kind(k.split('/').next().unwrap_or("")))
    {
        let name = kind
            .split_once('/')
            .map(|(_, n)| n)
            .or(a.what.get(1).map(String::as_str));
        return super::claims::get(cfg, &a.namespace, name, a.output);
    }
    let ctx = workloads::context(cfg, log_root, globals);
    let (kinds, name) = match a.what.as_slice() {
        [one] if one.contains('/') => {
            let (k, n) = one.split_once('/').unwrap_or_default();
            (vec![workloads::resource(k)?], Some(n.to_string()))
        }
        [kinds] => (split(kinds)?, None),
        [kinds, name] => (split(kinds)?, Some(name.clone())),
        _ => bail!("expected KIND[,KIND] [NAME] or KIND/NAME"),
    };
    let many = kinds.len() > 1;
    let mut items = Vec::new();
    let mut first = true;
    let mut code = 0;
    for r in kinds {
        let rows = match r {
            Resource::Pods => pods(&ctx, &a.namespace, name.as_deref(), a.output, &mut items),
            Resource::Workload(k) => objects(
                &ctx,
                k,
                &a.namespace,
                name.as_deref(),
                a.output,
                many,
                &mut items,
            ),
        };
        if let Some(name) = &name {
            if rows.len() <= 1 && !matches!(a.output, Some(Format::Json | Format::Yaml))
                || (matches!(a.output, Some(Format::Json | Format::Yaml)) && items.is_empty())
            {
                let res = match r {
                    Resource::Pods => "pods".to_string(),
                    Resource::Workload(k) => k.resource(),
                };
                eprintln!("Error from server (NotFound): {res} {name:?} not found");
                code = 1;
                continue;
            }
        }
        if matches!(a.output, Some(Format::Json | Format::Yaml)) || rows.len() <= 1 {
            continue;
        }
        if !first {
            println!();
        }
        first = false;
        print_table(&rows);
    }
    match a.output {
        Some(Format::Json) | Some(Format::Yaml) => {
            let v = if name.is_some() && items.len() == 1 {
                items.pop().unwrap_or_default()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
            };
            if a.output == Some(Format::Json) {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", podshim_kube::manifest::yaml::emit::to_string(&v)?);
            }
        }
        _ if first && code == 0 => eprintln!("No resources found in {} namespace.", a.namespace),
        _ => {}
    }
    Ok(code)
}

fn split(kinds: &str) -> Result<Vec<Resource>> {
    kinds.split(',').map(workloads::resource).collect()
}

fn row(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn num(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn images(t: &podshim_controllers::api::PodTemplateSpec) -> (String, String) {
    let names: Vec<&str> = t.spec.containers.iter().map(|c| c.name.as_str()).collect();
    let images: Vec<&str> = t
        .spec
        .containers
        .iter()
        .map(|c| c.image.as_deref().unwrap_or(""))
        .collect();
    (names.join(","), images.join(","))
}

fn selector(s: Option<&podshim_kube::manifest::LabelSelector>) -> String {
    let Some(s) = s else { return "<none>".into() };
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in &s.match_expressions {
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({})", e.key, e.values.join(",")),
            "NotIn" => format!("{} notin ({})", e.key, e.values.join(",")),
            "Exists" => e.key.clone(),
            _ => format!("!{}", e.key),
        });
    }
    parts.join(",")
}

/// The table of one kind (header first), adding JSON objects to `items`.
fn objects(
    ctx: &Context,
    k: Kind,
    ns: &str,
    name: Option<&str>,
    out: Option<Format>,
    many: bool,
    items: &mut Vec<Value>,
) -> Vec<Vec<String>> {
    let wide = out == Some(Format::Wide);
    let mut rows = vec![match k {
        Kind::Deployment => row(&["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]),
        Kind::ReplicaSet => row(&["NAME", "DESIRED", "CURRENT", "READY", "AGE"]),
        Kind::DaemonSet => row(&[
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE SELECTOR",
            "AGE",
        ]),
        Kind::Job => row(&["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]),
        Kind::CronJob => row(&[
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE",
        ]),
    }];
    if wide
        && matches!(
            k,
            Kind::Deployment | Kind::ReplicaSet | Kind::DaemonSet | Kind::Job
        )
    {
        rows[0].extend(row(&["CONTAINERS", "IMAGES", "SELECTOR"]));
    }
    for w in ctx.store.list(k) {
        if w.namespace() != ns || name.is_some_and(|n| n != w.name()) {
            continue;
        }
        let obj = ctx.store.object(&w);
        items.push(obj.clone());
        let s = &obj["status"];
        let created = w
            .metadata()
            .creation_timestamp
            .as_ref()
            .and_then(Value::as_str)
            .map(String::from);
        let age = age(created.as_deref());
        let label = if many {
            format!("{}/{}", k.typed(), w.name())
        } else {
            w.name().to_string()
        };
        let (mut r, t, sel) = match &w {
            Workload::Deployment(d) => {
                let want = d.spec.replicas.unwrap_or(1);
                (
                    vec![
                        label,
                        format!("{}/{want}", num(&s["readyReplicas"])),
                        num(&s["updatedReplicas"]).to_string(),
                        num(&s["availableReplicas"]).to_string(),
                        age,
                    ],
                    Some(&d.spec.template),
                    d.spec.selector.as_ref(),
                )
            }
            Workload::ReplicaSet(r) => (
                vec![
                    label,
                    r.spec.replicas.unwrap_or(1).to_string(),
                    num(&s["replicas"]).to_string(),
                    num(&s["readyReplicas"]).to_string(),
                    age,
                ],
                Some(&r.spec.template),
                r.spec.selector.as_ref(),
            ),
            Workload::DaemonSet(d) => {
                let ns_sel: Vec<String> = d
                    .spec
                    .template
                    .spec
                    .node_selector
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                let ns_sel = if ns_sel.is_empty() {
                    "<none>".into()
                } else {
                    ns_sel.join(",")
                };
                (
                    vec![
                        label,
                        num(&s["desiredNumberScheduled"]).to_string(),
                        num(&s["currentNumberScheduled"]).to_string(),
                        num(&s["numberReady"]).to_string(),
                        num(&s["updatedNumberScheduled"]).to_string(),
                        num(&s["numberAvailable"]).to_string(),
                        ns_sel,
                        age,
                    ],
                    Some(&d.spec.template),
                    d.spec.selector.as_ref(),
                )
            }
            Workload::Job(j) => {
                let status = job_status(j, s);
                let completions = match j.spec.completions {
                    Some(c) => format!("{}/{c}", num(&s["succeeded"])),
                    None => format!(
                        "{}/1 of {}",
                        num(&s["succeeded"]),
                        j.spec.parallelism.unwrap_or(1)
                    ),
                };
                let start = s["startTime"]
                    .as_str()
                    .and_then(podshim_controllers::clock::parse);
                let end = s["completionTime"]
                    .as_str()
                    .and_then(podshim_controllers::clock::parse)
                    .unwrap_or_else(|| ctx.clock.now());
                let duration = start
                    .map(|st| short((end - st).num_seconds()))
                    .unwrap_or_default();
                (
                    vec![label, status, completions, duration, age],
                    Some(&j.spec.template),
                    j.spec.selector.as_ref(),
                )
            }
            Workload::CronJob(c) => {
                let last = s["lastScheduleTime"]
                    .as_str()
                    .and_then(podshim_controllers::clock::parse)
                    .map(|t| short((ctx.clock.now() - t).num_seconds()))
                    .unwrap_or_else(|| "<none>".into());
                let active = s["active"].as_array().map_or(0, Vec::len);
                (
                    vec![
                        label,
                        c.spec.schedule.clone(),
                        c.spec.time_zone.clone().unwrap_or_else(|| "<none>".into()),
                        c.spec.suspend.unwrap_or(false).to_string(),
                        active.to_string(),
                        last,
                        age,
                    ],
                    None,
                    None,
                )
            }
        };
        if wide {
            if let Some(t) = t {
                let (n, i) = images(t);
                r.extend([n, i, selector(sel)]);
            }
        }
        rows.push(r);
    }
    rows
}

/// A Job's STATUS column (kubectl 1.28+).
fn job_status(j: &podshim_controllers::api::Job, s: &Value) -> String {
    let cond = |t: &str| {
        s["conditions"]
            .as_array()
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == t && c["status"] == "True"))
    };
    if cond("Complete") {
        "Complete".into()
    } else if cond("Failed") {
        "Failed".into()
    } else if cond("FailureTarget") {
        "FailureTarget".into()
    } else if j.spec.suspend == Some(true) {
        "Suspended".into()
    } else {
        "Running".into()
    }
}

/// kubectl's short durations (`HumanDuration` for recent times).
fn short(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

fn pods(
    ctx: &Context,
    ns: &str,
    name: Option<&str>,
    out: Option<Format>,
    items: &mut Vec<Value>,
) -> Vec<Vec<String>> {
    let wide = out == Some(Format::Wide);
    let mut rows = vec![row(&["NAME", "READY", "STATUS", "RESTARTS", "AGE"])];
    if wide {
        rows[0].extend(row(&["IP", "NODE"]));
    }
    for e in record::list(&ctx.cfg) {
        if e.record.namespace != ns || name.is_some_and(|n| n != e.record.name) {
            continue;
        }
        let st = e.status();
        let mut o = e.record.object();
        o["status"] = serde_json::to_value(&st).unwrap_or_default();
        items.push(o);
        let mut r = vec![
            e.record.name.clone(),
            super::manage::ready(&st, &e.record.sidecars),
            podshim_kube::status::display(&st, &e.record.sidecars, e.record.terminating && e.live),
            super::manage::restarts(&st, &e.record.sidecars),
            age(st.start_time.as_deref()),
        ];
        if wide {
            r.push(st.pod_ip.clone().unwrap_or_else(|| "<none>".into()));
            r.push(ctx.node_name.clone());
        }
        rows.push(r);
    }
    // Pods of controllers kept Pending by the scheduler's checks (no record: nothing started).
    for o in podshim_controllers::held::objects(ctx) {
        let m = &o["metadata"];
        if m["namespace"] != ns || name.is_some_and(|n| m["name"] != n) {
            continue;
        }
        let containers = o["spec"]["containers"].as_array().map_or(0, Vec::len);
        let mut r = vec![
            m["name"].as_str().unwrap_or_default().to_string(),
            format!("0/{containers}"),
            "Pending".into(),
            "0".into(),
            age(m["creationTimestamp"].as_str()),
        ];
        if wide {
            r.extend(["<none>".into(), "<none>".into()]);
        }
        rows.push(r);
        items.push(o);
    }
    rows
}
