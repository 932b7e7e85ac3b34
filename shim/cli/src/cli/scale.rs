//! `podshim scale KIND/NAME --replicas N`: a Deployment's or ReplicaSet's `spec.replicas`.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{bail, Result};
use clap::Args;
use podshim_controllers::api::Workload;
use podshim_engine::config::Config;

#[derive(Args)]
pub struct ScaleArgs {
    /// The new number of replicas
    #[arg(long)]
    replicas: i32,
    #[arg(short, long, default_value = "default")]
    namespace: String,
    /// KIND/NAME or KIND NAME
    #[arg(required = true)]
    target: Vec<String>,
}

pub fn scale(cfg: &Config, log_root: &Path, globals: &[OsString], a: ScaleArgs) -> Result<i32> {
    let ctx = super::workloads::context(cfg, log_root, globals);
    let (kind, name) = super::workloads::kind_and_name(&a.target)?;
    if a.replicas < 0 {
        bail!("The {} {name:?} is invalid: spec.replicas: Invalid value: {}: must be greater than or equal to 0", kind.name(), a.replicas);
    }
    let mut w = super::workloads::find(&ctx, kind, &a.namespace, &name)?;
    match &mut w {
        Workload::Deployment(d) => d.spec.replicas = Some(a.replicas),
        Workload::ReplicaSet(r) => r.spec.replicas = Some(a.replicas),
        _ => bail!(
            "{} {name:?} cannot be scaled (deployments and replicasets can)",
            kind.resource()
        ),
    }
    let meta = w.metadata_mut();
    meta.generation = Some(meta.generation.unwrap_or(1) + 1);
    ctx.store.put(&w)?;
    println!("{}/{name} scaled", kind.typed());
    Ok(0)
}
