//! `podshim apply`: the objects of a file written to the store (created, or updated when their
//! spec, labels or annotations changed: the generation counts spec changes), after every
//! update has been checked against the stored object (immutable fields). Nothing is written
//! when anything is wrong. Then each object's controller is started if it is not running.

use podshim_kube::manifest::{DocumentError, ManifestError};
use serde_json::Value;

use crate::api::parse::Applied;
use crate::api::{validate, Workload};
use crate::clock;
use crate::pods::Context;
use crate::process::{self, Key};
use crate::store::StoreError;

/// What `apply` did to one object (kubectl's words): the same as for a claim.
pub use podshim_kube::storage::Outcome;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Invalid(ManifestError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The objects with what happened to each (`deployment.apps/web created`).
pub fn apply(ctx: &Context, applied: &Applied) -> Result<Vec<(String, Outcome)>, ApplyError> {
    let mut problems = Vec::new();
    let mut plan: Vec<(Workload, Outcome)> = Vec::new();
    for w in &applied.workloads {
        let old = ctx.store.get(w.kind(), w.namespace(), w.name())?;
        match old {
            None => {
                let mut w = w.clone();
                let meta = w.metadata_mut();
                meta.generation = Some(1);
                meta.creation_timestamp = Some(Value::String(clock::format(ctx.clock.now())));
                plan.push((w, Outcome::Created));
            }
            Some(old) => {
                if old.metadata().deletion_timestamp.is_some() {
                    problems.push(DocumentError::Forbidden {
                        document: 0,
                        resource: "objects",
                        name: w.name().into(),
                        message: format!(
                            "{} {:?} is being deleted; apply it again once it is gone",
                            w.kind().name(),
                            w.name()
                        ),
                    });
                    continue;
                }
                let errors = validate::validate_update(&old, w);
                if !errors.is_empty() {
                    problems.push(DocumentError::Invalid {
                        document: 0,
                        kind: w.kind().name(),
                        name: w.name().into(),
                        errors,
                        name_hint: None,
                    });
                    continue;
                }
                let mut new = w.clone();
                let (om, nm) = (old.metadata(), new.metadata_mut());
                nm.creation_timestamp = om.creation_timestamp.clone();
                nm.owner_references = om.owner_references.clone();
                let spec_changed = old.spec_value() != w.spec_value();
                nm.generation = Some(om.generation.unwrap_or(1) + i64::from(spec_changed));
                let outcome =
                    if spec_changed || om.labels != nm.labels || om.annotations != nm.annotations {
                        Outcome::Configured
                    } else {
                        Outcome::Unchanged
                    };
                plan.push((new, outcome));
            }
        }
    }
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(ManifestError::Invalid(problems)));
    }
    let mut out = Vec::new();
    let word = |put: Option<bool>| match put {
        Some(true) => Outcome::Created,
        Some(false) => Outcome::Configured,
        None => Outcome::Unchanged,
    };
    for cm in &applied.config_maps {
        let put = ctx.store.put_config_map(cm)?;
        out.push((format!("configmap/{}", cm.metadata.name), word(put)));
    }
    for s in &applied.secrets {
        let put = ctx.store.put_secret(s)?;
        out.push((format!("secret/{}", s.metadata.name), word(put)));
    }
    for (w, outcome) in &plan {
        if *outcome != Outcome::Unchanged {
            ctx.store.put(w)?;
        }
        out.push((format!("{}/{}", w.kind().typed(), w.name()), *outcome));
    }
    for (w, _) in &plan {
        process::ensure_one(ctx, &Key::of(w));
    }
    Ok(out)
}
