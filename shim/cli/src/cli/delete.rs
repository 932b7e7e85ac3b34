//! `podshim delete KIND/NAME | KIND NAME | -f FILE [--cascade=background|foreground|orphan]`:
//! the object is marked and its controller deletes what it owns, then the object; the command
//! waits for that. `delete pod NAME` removes a Pod as `rm -f` does (its controller, if any,
//! makes another).

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use podshim_controllers::api::{parse, Kind};
use podshim_controllers::delete;
use podshim_controllers::process::{self, Key};
use podshim_engine::config::Config;

use super::workloads::{self, Resource};

#[derive(Args)]
pub struct DeleteArgs {
    /// Delete the objects of these manifests
    #[arg(short = 'f', long = "filename")]
    files: Vec<String>,
    /// background/foreground: owned objects and Pods go too; orphan: they stay
    #[arg(long, default_value = "background")]
    cascade: String,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// KIND/NAME, or KIND NAME...
    targets: Vec<String>,
}

pub fn delete(cfg: &Config, log_root: &Path, globals: &[OsString], a: DeleteArgs) -> Result<i32> {
    if let Some(kind) = a
        .targets
        .first()
        .filter(|k| super::claims::is_claim_kind(k.split('/').next().unwrap_or("")))
    {
        let names: Vec<String> = match kind.split_once('/') {
            Some((_, n)) => vec![n.to_string()],
            None => a.targets[1..].to_vec(),
        };
        return super::claims::delete(cfg, &a.namespace, &names);
    }
    let ctx = workloads::context(cfg, log_root, globals);
    let policy = match a.cascade.as_str() {
        "background" | "true" => "Background",
        "foreground" => "Foreground",
        "orphan" | "false" => "Orphan",
        other => bail!("invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""),
    };
    let mut targets: Vec<(Kind, String, String)> = Vec::new();
    let mut code = 0;
    if !a.files.is_empty() {
        let text = super::apply::read(&a.files)?;
        let Some(text) = super::claims::delete_in(cfg, &text, &mut code)? else {
            return Ok(code);
        };
        let applied = match parse::parse(&text, &|_, _, _| None) {
            Ok(x) => x,
            Err(e) => {
                eprintln!("{e}");
                return Ok(1);
            }
        };
        for w in &applied.workloads {
            targets.push((w.kind(), w.namespace().into(), w.name().into()));
        }
        for cm in &applied.config_maps {
            if ctx
                .store
                .remove_config("configmaps", cm.namespace(), &cm.metadata.name)
            {
                println!("configmap {:?} deleted", cm.metadata.name);
            }
        }
        for s in &applied.secrets {
            if ctx
                .store
                .remove_config("secrets", s.namespace(), &s.metadata.name)
            {
                println!("secret {:?} deleted", s.metadata.name);
            }
        }
    } else {
        let mut args = a.targets.iter();
        while let Some(t) = args.next() {
            let (kind, name) = match t.split_once('/') {
                Some((k, n)) => (workloads::resource(k)?, n.to_string()),
                None => match args.next() {
                    Some(n) => (workloads::resource(t)?, n.clone()),
                    None => bail!("expected KIND/NAME or KIND NAME"),
                },
            };
            match kind {
                Resource::Pods => {
                    if delete::pod(&ctx, &a.namespace, &name) {
                        println!("pod {name:?} deleted");
                    } else {
                        eprintln!("Error from server (NotFound): pods {name:?} not found");
                        code = 1;
                    }
                }
                Resource::Workload(k) => targets.push((k, a.namespace.clone(), name)),
            }
        }
    }
    for (kind, ns, name) in targets {
        let Some(w) = ctx.store.get(kind, &ns, &name)? else {
            eprintln!(
                "Error from server (NotFound): {} {name:?} not found",
                kind.resource()
            );
            code = 1;
            continue;
        };
        delete::mark(&ctx, &w, policy)?;
        let key = Key::of(&w);
        // An object a Deployment owns has no controller of its own: its owner's does the work.
        let started = Instant::now();
        let mut told = false;
        loop {
            process::ensure_one(&ctx, &top_key(&ctx, &w).unwrap_or_else(|| key.clone()));
            if ctx.store.get(kind, &ns, &name)?.is_none() {
                break;
            }
            if top_key(&ctx, &w).is_some() {
                // A Deployment's ReplicaSet: deleted here; the Deployment makes a new one.
                delete::finish(&ctx, &w);
                break;
            }
            if !told && started.elapsed() > Duration::from_secs(5) {
                eprintln!(
                    "waiting for {} {name:?} and what it owns to be deleted...",
                    kind.resource()
                );
                told = true;
            }
            if started.elapsed() > Duration::from_secs(300) {
                bail!(
                    "{} {name:?} was not deleted within 5 minutes; see {}",
                    kind.resource(),
                    ctx.run_dir().display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("{} {name:?} deleted", kind.typed());
    }
    Ok(code)
}

/// The Deployment that runs a ReplicaSet it owns, if any.
fn top_key(
    _ctx: &podshim_controllers::pods::Context,
    w: &podshim_controllers::api::Workload,
) -> Option<Key> {
    let o = podshim_controllers::api::controller_of(&w.metadata().owner_references)?;
    (o.kind == "Deployment").then(|| Key {
        kind: Kind::Deployment,
        namespace: w.namespace().into(),
        name: o.name,
    })
}
