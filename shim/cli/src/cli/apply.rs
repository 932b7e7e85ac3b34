//! `podshim apply -f FILE|DIR|-`: workloads, ConfigMaps and Secrets into the store (see
//! `podshim_controllers::apply`); the images of the templates are pulled first, as `run` pulls
//! a Pod's, so a controller finds them in the store.

use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context as _, Result};
use clap::Args;
use podshim_controllers::api::{defaults, parse, Workload};
use podshim_controllers::apply::{self, ApplyError};
use podshim_engine::config::Config;
use podshim_image::{PullOptions, Quiet, Store};
use podshim_kube::manifest::{self, Manifest};

#[derive(Args)]
pub struct ApplyArgs {
    /// The manifest: a file, a directory of .yaml/.yml/.json files, or - for stdin
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<String>,
}

/// The text of `-f` arguments (a directory: its manifests in name order).
pub fn read(files: &[String]) -> Result<String> {
    let mut docs = Vec::new();
    for f in files {
        if f == "-" {
            docs.push(manifest::read_text(std::io::stdin().lock()).context("read stdin")?);
            continue;
        }
        let p = Path::new(f);
        let mut paths = Vec::new();
        if p.is_dir() {
            for e in std::fs::read_dir(p).with_context(|| format!("read {f}"))? {
                let e = e?.path();
                let ext = e.extension().and_then(|x| x.to_str()).unwrap_or("");
                if matches!(ext, "yaml" | "yml" | "json") {
                    paths.push(e);
                }
            }
            paths.sort();
        } else {
            paths.push(p.to_path_buf());
        }
        for p in paths {
            let file = std::fs::File::open(&p).with_context(|| format!("read {}", p.display()))?;
            docs.push(manifest::read_text(file).with_context(|| format!("read {}", p.display()))?);
        }
    }
    Ok(docs.join("\n---\n"))
}

pub fn apply(
    cfg: &Config,
    log_root: &Path,
    globals: &[OsString],
    pull: &PullOptions,
    a: ApplyArgs,
) -> Result<i32> {
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("podshim apply needs root (its controllers make Pods)");
    }
    let ctx = super::workloads::context(cfg, log_root, globals);
    let text = match super::claims::apply(cfg, &read(&a.files)?)? {
        super::claims::Rest::Text(text) => text,
        super::claims::Rest::Nothing => return Ok(0),
        super::claims::Rest::Invalid => return Ok(1),
    };
    let uid_of = |k, ns: &str, name: &str| {
        ctx.store
            .get(k, ns, name)
            .ok()
            .flatten()
            .and_then(|w| w.metadata().uid.clone())
    };
    let applied = match parse::parse(&text, &uid_of) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    for w in &applied.warnings {
        eprintln!("Warning: {w}");
    }
    pull_images(cfg, pull, &applied.workloads)?;
    match apply::apply(&ctx, &applied) {
        Ok(done) => {
            for (what, outcome) in done {
                println!("{what} {}", outcome.word());
            }
            Ok(0)
        }
        Err(ApplyError::Invalid(e)) => {
            eprintln!("{e}");
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

/// Pulls what the templates' pull policies ask for (all problems at once, nothing stored).
fn pull_images(cfg: &Config, pull: &PullOptions, workloads: &[Workload]) -> Result<()> {
    let mut m = Manifest::default();
    for w in workloads {
        let t = match w {
            Workload::Deployment(d) => &d.spec.template,
            Workload::ReplicaSet(r) => &r.spec.template,
            Workload::DaemonSet(d) => &d.spec.template,
            Workload::Job(j) => &j.spec.template,
            Workload::CronJob(c) => &c.spec.job_template.spec.template,
        };
        m.pods.push(defaults::as_pod(t, w.namespace(), w.name()));
    }
    let store = Store::open(&cfg.root).context("open the image store")?;
    let pulled = podshim_kube::pulling::pull_for_pods(&m, &store, pull, &Quiet);
    for (pod, w) in &pulled.warnings {
        eprintln!("Warning: {pod:?}: {w}");
    }
    if !pulled.errors.is_empty() {
        let problems: Vec<String> = pulled
            .errors
            .iter()
            .map(|(w, e)| format!("{w:?}: {e}"))
            .collect();
        anyhow::bail!(problems.join("\n"));
    }
    Ok(())
}
