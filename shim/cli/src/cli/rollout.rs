//! `podshim rollout status|history|undo|restart|pause|resume deploy/NAME`, as kubectl does
//! them for Deployments: status follows the controller's status until the rollout is done,
//! history lists the ReplicaSets' revisions, undo puts an earlier ReplicaSet's template back,
//! restart changes the template's `kubectl.kubernetes.io/restartedAt` annotation.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use podshim_controllers::api::{Deployment, Kind, Workload};
use podshim_controllers::deployment::{replica_sets, revision, without_hash};
use podshim_controllers::pods::Context;
use podshim_engine::config::Config;
use serde_json::Value;

#[derive(Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    what: RolloutCommand,
}

#[derive(Args)]
pub struct Target {
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// deploy/NAME or deploy NAME
    #[arg(required = true)]
    target: Vec<String>,
}

#[derive(Subcommand)]
enum RolloutCommand {
    /// Wait until the rollout is done (exit 1 if its progress deadline passed)
    Status {
        #[command(flatten)]
        t: Target,
        /// Give up after this many seconds (0: wait as long as it takes)
        #[arg(long, default_value_t = 0)]
        timeout: u64,
    },
    /// The revisions (ReplicaSets) of a Deployment
    History {
        #[command(flatten)]
        t: Target,
    },
    /// Go back to the previous revision (or --to-revision)
    Undo {
        #[command(flatten)]
        t: Target,
        #[arg(long, default_value_t = 0)]
        to_revision: i64,
    },
    /// Replace every Pod, step by step
    Restart {
        #[command(flatten)]
        t: Target,
    },
    /// Stop rolling out template changes
    Pause {
        #[command(flatten)]
        t: Target,
    },
    /// Roll out template changes again
    Resume {
        #[command(flatten)]
        t: Target,
    },
}

fn deployment(ctx: &Context, t: &Target) -> Result<Deployment> {
    let (kind, name) = super::workloads::kind_and_name(&t.target)?;
    if kind != Kind::Deployment {
        bail!(
            "rollout: podshim supports deployments (got {})",
            kind.resource()
        );
    }
    match super::workloads::find(ctx, kind, &t.namespace, &name)? {
        Workload::Deployment(d) => Ok(d),
        _ => unreachable!("the store returns the kind asked for"),
    }
}

fn save(ctx: &Context, mut d: Deployment) -> Result<()> {
    d.metadata.generation = Some(d.metadata.generation.unwrap_or(1) + 1);
    ctx.store.put(&Workload::Deployment(d))?;
    Ok(())
}

pub fn rollout(cfg: &Config, log_root: &Path, globals: &[OsString], a: RolloutArgs) -> Result<i32> {
    let ctx = super::workloads::context(cfg, log_root, globals);
    match a.what {
        RolloutCommand::Status { t, timeout } => status(&ctx, &t, timeout),
        RolloutCommand::History { t } => {
            let d = deployment(&ctx, &t)?;
            println!("deployment.apps/{}", d.metadata.name);
            let mut rows = vec![vec!["REVISION".to_string(), "CHANGE-CAUSE".to_string()]];
            for rs in replica_sets(&ctx, &d) {
                let cause = rs
                    .metadata
                    .annotations
                    .get("kubernetes.io/change-cause")
                    .cloned()
                    .unwrap_or_else(|| "<none>".into());
                rows.push(vec![revision(&rs).to_string(), cause]);
            }
            super::manage::print_table(&rows);
            Ok(0)
        }
        RolloutCommand::Undo { t, to_revision } => {
            let mut d = deployment(&ctx, &t)?;
            let rss = replica_sets(&ctx, &d);
            let current = rss
                .iter()
                .find(|rs| without_hash(&rs.spec.template) == d.spec.template);
            let target = if to_revision > 0 {
                rss.iter().find(|rs| revision(rs) == to_revision)
            } else {
                // The highest revision below the current one.
                let cur = current.map(revision).unwrap_or(i64::MAX);
                rss.iter()
                    .filter(|rs| revision(rs) < cur)
                    .max_by_key(|rs| revision(rs))
            };
            let Some(rs) = target else {
                if to_revision > 0 {
                    bail!("unable to find specified revision {to_revision} in history");
                }
                bail!(
                    "no rollout history found for deployment {:?}",
                    d.metadata.name
                );
            };
            if Some(rs.metadata.name.as_str()) == current.map(|c| c.metadata.name.as_str()) {
                println!("deployment.apps/{} skipped rollback (current template already matches revision {})", d.metadata.name, revision(rs));
                return Ok(0);
            }
            d.spec.template = without_hash(&rs.spec.template);
            let name = d.metadata.name.clone();
            save(&ctx, d)?;
            println!("deployment.apps/{name} rolled back");
            Ok(0)
        }
        RolloutCommand::Restart { t } => {
            let mut d = deployment(&ctx, &t)?;
            if d.spec.paused == Some(true) {
                bail!("deployments.apps {:?} can't restart paused deployment (run rollout resume first)", d.metadata.name);
            }
            let now = podshim_controllers::clock::format(ctx.clock.now());
            d.spec
                .template
                .metadata
                .annotations
                .insert("kubectl.kubernetes.io/restartedAt".into(), now);
            let name = d.metadata.name.clone();
            save(&ctx, d)?;
            println!("deployment.apps/{name} restarted");
            Ok(0)
        }
        RolloutCommand::Pause { t } => pause(&ctx, &t, true),
        RolloutCommand::Resume { t } => pause(&ctx, &t, false),
    }
}

fn pause(ctx: &Context, t: &Target, pause: bool) -> Result<i32> {
    {
        {
            let mut d = deployment(ctx, t)?;
            let name = d.metadata.name.clone();
            if (d.spec.paused == Some(true)) == pause {
                println!(
                    "deployment.apps/{name} already {}",
                    if pause { "paused" } else { "resumed" }
                );
                return Ok(0);
            }
            d.spec.paused = Some(pause);
            save(ctx, d)?;
            println!(
                "deployment.apps/{name} {}",
                if pause { "paused" } else { "resumed" }
            );
            Ok(0)
        }
    }
}

/// kubectl's `DeploymentStatusViewer`.
fn status(ctx: &Context, t: &Target, timeout: u64) -> Result<i32> {
    let started = Instant::now();
    let mut last = String::new();
    loop {
        let d = deployment(ctx, t)?;
        let name = &d.metadata.name;
        let s = ctx
            .store
            .status(Kind::Deployment, &t.namespace, name)
            .unwrap_or(Value::Null);
        let n = |k: &str| s[k].as_i64().unwrap_or(0);
        let want = i64::from(d.spec.replicas.unwrap_or(1));
        let observed = n("observedGeneration") >= d.metadata.generation.unwrap_or(1);
        let deadline = s["conditions"].as_array().is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        });
        if deadline {
            eprintln!("error: deployment {name:?} exceeded its progress deadline");
            return Ok(1);
        }
        let msg = if !observed {
            "Waiting for deployment spec update to be observed...".to_string()
        } else if n("updatedReplicas") < want {
            format!("Waiting for deployment {name:?} rollout to finish: {} out of {want} new replicas have been updated...", n("updatedReplicas"))
        } else if n("replicas") > n("updatedReplicas") {
            format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", n("replicas") - n("updatedReplicas"))
        } else if n("availableReplicas") < n("updatedReplicas") {
            format!("Waiting for deployment {name:?} rollout to finish: {} of {} updated replicas are available...", n("availableReplicas"), n("updatedReplicas"))
        } else {
            println!("deployment {name:?} successfully rolled out");
            return Ok(0);
        };
        if msg != last {
            println!("{msg}");
            last = msg;
        }
        if timeout > 0 && started.elapsed() > Duration::from_secs(timeout) {
            eprintln!("error: timed out waiting for the condition");
            return Ok(1);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
