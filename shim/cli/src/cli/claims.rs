//! PersistentVolumeClaims on the command line: made by `podshim apply -f` (alone or next to
//! workloads) and by `podshim run` from the Pods' own file, as `kubectl apply -f` makes every
//! object of a file; listed by `podshim get pvc`; removed by `podshim delete pvc NAME` unless a
//! Pod uses them (kubernetes.io/pvc-protection). Whether a claim's size is enforced (a project
//! quota) is in `get pvc -o wide` (SIZELIMIT) and `-o yaml` (the `podshim.io/size-limit`
//! annotation), and noted when a claim whose size is not enforced is made. The store is `podshim_kube::storage`.

use anyhow::{Context as _, Result};
use podshim_engine::config::Config;
use podshim_kube::manifest::{self, PersistentVolumeClaim};
use podshim_kube::storage::{self, admit, Claims, Deleted};

use super::manage::{age, print_table, Format};

/// Whether a kind named on the command line means PersistentVolumeClaims.
pub fn is_claim_kind(kind: &str) -> bool {
    matches!(
        kind.to_ascii_lowercase().as_str(),
        "pvc" | "pvcs" | "persistentvolumeclaim" | "persistentvolumeclaims"
    )
}

/// Provision `claims` (defaulted and valid), printing kubectl's line for each.
pub fn provision(cfg: &Config, claims: &[PersistentVolumeClaim], to_stderr: bool) -> Result<()> {
    if claims.is_empty() {
        return Ok(());
    }
    let store = Claims::open(&cfg.root).context("open the claim store")?;
    for c in claims {
        let (stored, outcome) = store.provision(c)?;
        let line = format!(
            "persistentvolumeclaim/{} {}",
            c.metadata.name,
            outcome.word()
        );
        match to_stderr {
            true => eprintln!("{line}"),
            false => println!("{line}"),
        }
        if let (storage::Outcome::Created, storage::quota::Limit::None { .. }) =
            (outcome, &stored.limit)
        {
            eprintln!(
                "note: persistentvolumeclaim/{}: its size is {}",
                c.metadata.name,
                stored.limit.describe()
            );
        }
    }
    Ok(())
}

/// What `apply` leaves for the workload controllers.
pub enum Rest {
    /// A claim is invalid (printed); nothing was applied.
    Invalid,
    /// Only claims were in the text.
    Nothing,
    /// The other documents (claims blanked, so line and document numbers stay).
    Text(String),
}

/// `podshim apply -f`: the PersistentVolumeClaims of `text` are provisioned, the rest returned.
pub fn apply(cfg: &Config, text: &str) -> Result<Rest> {
    let (claims, rest) = match manifest::claim::take_claims(text) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return Ok(Rest::Invalid);
        }
    };
    provision(cfg, &claims, false)?;
    Ok(rest.map_or(Rest::Nothing, Rest::Text))
}

/// `podshim delete -f`: deletes the PersistentVolumeClaims of `text` (as `delete pvc` does,
/// setting `code` to 1 on a failure) and returns the rest for the workload controllers, `None`
/// when nothing else is in it (or a claim document is invalid, printed).
pub fn delete_in(cfg: &Config, text: &str, code: &mut i32) -> Result<Option<String>> {
    let (claims, rest) = match manifest::claim::take_claims(text) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            *code = 1;
            return Ok(None);
        }
    };
    for c in &claims {
        let names = [c.metadata.name.clone()];
        if delete(cfg, c.namespace(), &names)? != 0 {
            *code = 1;
        }
    }
    Ok(rest)
}

/// `podshim get pvc [NAME]`: kubectl's columns, or the objects as JSON or YAML.
pub fn get(cfg: &Config, ns: &str, name: Option<&str>, output: Option<Format>) -> Result<i32> {
    let stored = match Claims::existing(&cfg.root) {
        Some(store) => store.list()?,
        None => Vec::new(),
    };
    let items: Vec<_> = stored
        .iter()
        .filter(|s| s.claim.namespace() == ns)
        .filter(|s| name.is_none_or(|n| s.claim.metadata.name == n))
        .collect();
    if let (Some(n), true) = (name, items.is_empty()) {
        eprintln!("Error from server (NotFound): persistentvolumeclaims {n:?} not found");
        return Ok(1);
    }
    match output {
        Some(Format::Json | Format::Yaml) => {
            let mut objects: Vec<_> = items.iter().map(|s| s.object()).collect();
            let v = match (name, objects.len()) {
                (Some(_), 1) => objects.pop().unwrap_or_default(),
                _ => serde_json::json!({"apiVersion": "v1", "kind": "List", "items": objects}),
            };
            if output == Some(Format::Json) {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", manifest::yaml::emit::to_string(&v)?);
            }
        }
        _ if items.is_empty() => eprintln!("No resources found in {ns} namespace."),
        _ => {
            let store = Claims::existing(&cfg.root);
            let mut rows = vec![[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ]
            .map(String::from)
            .to_vec()];
            if output == Some(Format::Wide) {
                rows[0]
                    .extend(["VOLUMEMODE", "RECLAIMPOLICY", "SIZELIMIT", "PATH"].map(String::from));
            }
            for s in items {
                let mut row = vec![
                    s.claim.metadata.name.clone(),
                    "Bound".into(),
                    s.volume.clone(),
                    s.capacity.clone(),
                    access_modes(&s.claim.spec.access_modes),
                    s.claim.spec.storage_class_name.clone().unwrap_or_default(),
                    "<unset>".into(),
                    age(Some(&s.created)),
                ];
                if output == Some(Format::Wide) {
                    row.push(s.claim.spec.volume_mode.clone().unwrap_or_default());
                    row.push(format!("{:?}", s.reclaim_policy));
                    row.push(s.limit.column());
                    let path = store.as_ref().map(|st| st.volume_dir(s));
                    row.push(path.map(|p| p.display().to_string()).unwrap_or_default());
                }
                rows.push(row);
            }
            print_table(&rows);
        }
    }
    Ok(0)
}

/// kubectl's short forms (`RWO,ROX`).
fn access_modes(modes: &[String]) -> String {
    let short: Vec<&str> = modes
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect();
    short.join(",")
}

/// `podshim delete pvc NAME...`: refused while a Pod that has not ended uses the claim.
pub fn delete(cfg: &Config, ns: &str, names: &[String]) -> Result<i32> {
    let Some(store) = Claims::existing(&cfg.root) else {
        for n in names {
            eprintln!("Error from server (NotFound): persistentvolumeclaims {n:?} not found");
        }
        return Ok(1);
    };
    let pods = admit::pods_with_claims(cfg);
    let mut code = 0;
    for name in names {
        let users = storage::users(&pods, ns, name);
        match store.delete(ns, name, &users) {
            Ok(Deleted::Removed) => println!("persistentvolumeclaim {name:?} deleted"),
            Ok(Deleted::Retained(dir)) => println!(
                "persistentvolumeclaim {name:?} deleted (reclaim policy Retain: its data stays \
                 in {})",
                dir.display()
            ),
            Err(storage::StorageError::NotFound(_)) => {
                eprintln!(
                    "Error from server (NotFound): persistentvolumeclaims {name:?} not found"
                );
                code = 1;
            }
            Err(e @ storage::StorageError::InUse { .. }) => {
                eprintln!("Error: {e}");
                code = 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(code)
}
