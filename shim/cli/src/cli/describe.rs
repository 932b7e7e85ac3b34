//! `podshim describe KIND NAME`: the object in kubectl's describe layout (the fields that
//! matter for a workload: selector, replicas, strategy, template, conditions, owned objects).

use std::ffi::OsString;
use std::path::Path;

use anyhow::Result;
use clap::Args;
use podshim_controllers::api::Workload;
use podshim_controllers::pods;
use podshim_engine::config::Config;
use serde_json::Value;

#[derive(Args)]
pub struct DescribeArgs {
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// KIND/NAME or KIND NAME
    #[arg(required = true)]
    target: Vec<String>,
}

pub fn describe(
    cfg: &Config,
    log_root: &Path,
    globals: &[OsString],
    a: DescribeArgs,
) -> Result<i32> {
    let ctx = super::workloads::context(cfg, log_root, globals);
    let (kind, name) = super::workloads::kind_and_name(&a.target)?;
    let w = super::workloads::find(&ctx, kind, &a.namespace, &name)?;
    let obj = ctx.store.object(&w);
    let m = w.metadata();
    let kv = |map: &std::collections::BTreeMap<String, String>| {
        if map.is_empty() {
            "<none>".to_string()
        } else {
            map.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("\n                ")
        }
    };
    println!("Name:           {}", m.name);
    println!("Namespace:      {}", w.namespace());
    println!(
        "CreationTimestamp: {}",
        m.creation_timestamp
            .as_ref()
            .and_then(Value::as_str)
            .unwrap_or("<unknown>")
    );
    println!("Labels:         {}", kv(&m.labels));
    println!("Annotations:    {}", kv(&m.annotations));
    if let Some(o) = podshim_controllers::api::controller_of(&m.owner_references) {
        println!("Controlled By:  {}/{}", o.kind, o.name);
    }
    let s = &obj["status"];
    let n = |k: &str| s[k].as_i64().unwrap_or(0);
    let template = match &w {
        Workload::Deployment(d) => {
            println!("Replicas:       {} desired | {} updated | {} total | {} available | {} unavailable", d.spec.replicas.unwrap_or(1), n("updatedReplicas"), n("replicas"), n("availableReplicas"), n("unavailableReplicas"));
            let st = d.spec.strategy.clone().unwrap_or_default();
            println!("StrategyType:   {}", st.kind.unwrap_or_default());
            if let Some(ru) = st.rolling_update {
                println!(
                    "RollingUpdateStrategy:  {} max unavailable, {} max surge",
                    ru.max_unavailable.unwrap_or_default(),
                    ru.max_surge.unwrap_or_default()
                );
            }
            println!("MinReadySeconds: {}", d.spec.min_ready_seconds.unwrap_or(0));
            Some(&d.spec.template)
        }
        Workload::ReplicaSet(r) => {
            println!(
                "Replicas:       {} current / {} desired",
                n("replicas"),
                r.spec.replicas.unwrap_or(1)
            );
            Some(&r.spec.template)
        }
        Workload::DaemonSet(d) => {
            println!(
                "Desired Number of Nodes Scheduled: {}",
                n("desiredNumberScheduled")
            );
            println!(
                "Current Number of Nodes Scheduled: {}",
                n("currentNumberScheduled")
            );
            println!(
                "Number of Nodes Scheduled with Up-to-date Pods: {}",
                n("updatedNumberScheduled")
            );
            println!(
                "Number of Nodes Scheduled with Available Pods: {}",
                n("numberAvailable")
            );
            Some(&d.spec.template)
        }
        Workload::Job(j) => {
            println!("Parallelism:    {}", j.spec.parallelism.unwrap_or(1));
            println!(
                "Completions:    {}",
                j.spec
                    .completions
                    .map_or("<unset>".into(), |c| c.to_string())
            );
            println!(
                "Completion Mode: {}",
                j.spec.completion_mode.clone().unwrap_or_default()
            );
            println!(
                "Start Time:     {}",
                s["startTime"].as_str().unwrap_or("<none>")
            );
            println!(
                "Pods Statuses:  {} Active / {} Succeeded / {} Failed",
                n("active"),
                n("succeeded"),
                n("failed")
            );
            Some(&j.spec.template)
        }
        Workload::CronJob(c) => {
            println!("Schedule:       {}", c.spec.schedule);
            println!(
                "Concurrency Policy: {}",
                c.spec.concurrency_policy.clone().unwrap_or_default()
            );
            println!("Suspend:        {}", c.spec.suspend.unwrap_or(false));
            println!(
                "Last Schedule Time: {}",
                s["lastScheduleTime"].as_str().unwrap_or("<unset>")
            );
            Some(&c.spec.job_template.spec.template)
        }
    };
    if let Some(t) = template {
        println!("Pod Template:");
        println!("  Labels:  {}", kv(&t.metadata.labels));
        println!("  Containers:");
        for c in &t.spec.containers {
            println!("   {}:", c.name);
            println!("    Image:      {}", c.image.as_deref().unwrap_or(""));
        }
    }
    if let Some(cs) = s["conditions"].as_array() {
        println!("Conditions:");
        println!("  Type           Status  Reason");
        println!("  ----           ------  ------");
        for c in cs {
            println!(
                "  {:<14} {:<7} {}",
                c["type"].as_str().unwrap_or(""),
                c["status"].as_str().unwrap_or(""),
                c["reason"].as_str().unwrap_or("")
            );
        }
    }
    let uid = m.uid.clone().unwrap_or_default();
    let (all, _) = pods::list(&ctx);
    let mine: Vec<&pods::PodInfo> = all
        .iter()
        .filter(|p| p.owner.as_ref().is_some_and(|o| o.uid == uid))
        .collect();
    if !mine.is_empty() {
        println!("Pods:");
        for p in mine {
            println!(
                "  {}  {}  {}",
                p.name,
                p.phase,
                p.ip.as_deref().unwrap_or("<none>")
            );
        }
    }
    match podshim_controllers::process::running(&ctx, &podshim_controllers::process::Key::of(&w)) {
        Some(r) => println!("Controller:     pid {} (keeper pid {})", r.worker, r.keeper),
        None if podshim_controllers::api::controller_of(&m.owner_references).is_some() => {}
        None => println!("Controller:     not running"),
    }
    let events = podshim_controllers::events::list(&ctx, w.kind(), w.namespace(), w.name());
    print!(
        "{}",
        podshim_controllers::events::table(&events, chrono::Utc::now())
    );
    Ok(0)
}
