//! The store of desired state under `--root` (it survives a reboot; `podshim up` brings it
//! back): one JSON file per object at `<root>/workloads/<resource>/<namespace>/<name>.json`,
//! written by `apply`, `scale`, `rollout` and `delete` (and by a Deployment's controller for its
//! ReplicaSets), and next to it `<name>.status.json`, written only by the object's controller.
//! Every write is a temporary file renamed over the old one (a crash never leaves a torn
//! file), files 0600 and directories 0700 like everything podshim writes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use podshim_kube::manifest::{ConfigMap, Secret};
use serde_json::Value;

use crate::api::{Kind, Workload};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The desired state of this node's workloads.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// Write `data` to `path` atomically (temporary file, then rename), 0600, parents 0700.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        podshim_engine::private::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp);
    podshim_engine::private::write_file(&tmp, data).map_err(err)?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        err(e)
    })
}

fn read_json(path: &Path) -> Result<Option<Value>, StoreError> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data)
            .map(Some)
            .map_err(|source| StoreError::Corrupt {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Writes `v` unless the file holds it already: `Some(true)` new, `Some(false)` changed.
fn put_if_changed(path: &Path, v: Value) -> Result<Option<bool>, StoreError> {
    let old = read_json(path)?;
    if old.as_ref() == Some(&v) {
        return Ok(None);
    }
    write_atomic(path, &serde_json::to_vec_pretty(&v).unwrap_or_default())?;
    Ok(Some(old.is_none()))
}

impl Store {
    pub fn open(root: &Path) -> Store {
        Store {
            dir: root.join("workloads"),
        }
    }

    /// The directory the store lives in (controllers watch it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, kind: Kind, ns: &str, name: &str) -> PathBuf {
        self.dir
            .join(kind.plural())
            .join(ns)
            .join(format!("{name}.json"))
    }

    fn status_path(&self, kind: Kind, ns: &str, name: &str) -> PathBuf {
        self.dir
            .join(kind.plural())
            .join(ns)
            .join(format!("{name}.status"))
    }

    pub fn get(&self, kind: Kind, ns: &str, name: &str) -> Result<Option<Workload>, StoreError> {
        let path = self.path(kind, ns, name);
        let Some(v) = read_json(&path)? else {
            return Ok(None);
        };
        Workload::from_value(kind, v)
            .map(Some)
            .map_err(|source| StoreError::Corrupt { path, source })
    }

    pub fn put(&self, w: &Workload) -> Result<(), StoreError> {
        let path = self.path(w.kind(), w.namespace(), w.name());
        let data = serde_json::to_vec_pretty(&w.to_value()).unwrap_or_default();
        write_atomic(&path, &data)
    }

    /// Remove an object and its status; an object already gone is no error.
    pub fn remove(&self, kind: Kind, ns: &str, name: &str) -> Result<(), StoreError> {
        for path in [self.path(kind, ns, name), self.status_path(kind, ns, name)] {
            match fs::remove_file(&path) {
                Err(source) if source.kind() != io::ErrorKind::NotFound => {
                    return Err(StoreError::Write { path, source })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Every object of a kind, sorted by namespace and name (a corrupt file is skipped with a
    /// warning on stderr: one bad object must not hide the others).
    pub fn list(&self, kind: Kind) -> Vec<Workload> {
        let mut out = Vec::new();
        let Ok(namespaces) = fs::read_dir(self.dir.join(kind.plural())) else {
            return out;
        };
        for ns in namespaces.flatten() {
            let Ok(files) = fs::read_dir(ns.path()) else {
                continue;
            };
            for f in files.flatten() {
                let file = f.file_name().to_string_lossy().to_string();
                let Some(name) = file.strip_suffix(".json") else {
                    continue;
                };
                let ns = ns.file_name().to_string_lossy().to_string();
                match self.get(kind, &ns, name) {
                    Ok(Some(w)) => out.push(w),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "skipping a stored object"),
                }
            }
        }
        out.sort_by(|a, b| (a.namespace(), a.name()).cmp(&(b.namespace(), b.name())));
        out
    }

    pub fn status(&self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        read_json(&self.status_path(kind, ns, name)).ok().flatten()
    }

    pub fn put_status(
        &self,
        kind: Kind,
        ns: &str,
        name: &str,
        status: &Value,
    ) -> Result<(), StoreError> {
        let data = serde_json::to_vec_pretty(status).unwrap_or_default();
        write_atomic(&self.status_path(kind, ns, name), &data)
    }

    /// The object with its status, as `get -o json` prints it.
    pub fn object(&self, w: &Workload) -> Value {
        let mut v = w.to_value();
        if let Some(s) = self.status(w.kind(), w.namespace(), w.name()) {
            v["status"] = s;
        }
        v
    }

    fn config_path(&self, what: &str, ns: &str, name: &str) -> PathBuf {
        self.dir.join(what).join(ns).join(format!("{name}.json"))
    }

    /// Stores a ConfigMap; `Some(true)` if it is new, `Some(false)` if it changed, None if it
    /// was stored as it is.
    pub fn put_config_map(&self, cm: &ConfigMap) -> Result<Option<bool>, StoreError> {
        let path = self.config_path("configmaps", cm.namespace(), &cm.metadata.name);
        put_if_changed(&path, serde_json::to_value(cm).unwrap_or_default())
    }

    /// Stores a Secret (see `put_config_map`).
    pub fn put_secret(&self, s: &Secret) -> Result<Option<bool>, StoreError> {
        let path = self.config_path("secrets", s.namespace(), &s.metadata.name);
        put_if_changed(&path, serde_json::to_value(s).unwrap_or_default())
    }

    pub fn remove_config(&self, what: &str, ns: &str, name: &str) -> bool {
        fs::remove_file(self.config_path(what, ns, name)).is_ok()
    }

    /// The ConfigMaps and Secrets of a namespace, as JSON objects (Pods made from templates
    /// are read together with them, as `podshim run` reads a file).
    pub fn config_of(&self, ns: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for what in ["configmaps", "secrets"] {
            let Ok(files) = fs::read_dir(self.dir.join(what).join(ns)) else {
                continue;
            };
            for f in files.flatten() {
                if f.file_name().to_string_lossy().ends_with(".json") {
                    if let Ok(Some(v)) = read_json(&f.path()) {
                        out.push(v);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_are_private_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path());
        let text = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: web}\nspec:\n  \
                    selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    \
                    spec: {containers: [{name: c, image: busybox:1.35}]}\n";
        let applied = crate::api::parse::parse(text, &|_, _, _| None).unwrap();
        let w = &applied.workloads[0];
        store.put(w).unwrap();
        let path = store.path(Kind::ReplicaSet, "default", "web");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        assert_eq!(
            store
                .get(Kind::ReplicaSet, "default", "web")
                .unwrap()
                .as_ref(),
            Some(w)
        );
        assert_eq!(store.list(Kind::ReplicaSet).len(), 1);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(leftovers.len(), 1, "no temporary file is left");
        store
            .put_status(
                Kind::ReplicaSet,
                "default",
                "web",
                &serde_json::json!({"replicas": 1}),
            )
            .unwrap();
        assert_eq!(store.object(w)["status"]["replicas"], 1);
        store.remove(Kind::ReplicaSet, "default", "web").unwrap();
        store.remove(Kind::ReplicaSet, "default", "web").unwrap();
        let cm = |v: &str| {
            let text = format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {{k: {v}}}\n"
            );
            crate::api::parse::parse(&text, &|_, _, _| None)
                .unwrap()
                .config_maps
                .remove(0)
        };
        assert_eq!(store.put_config_map(&cm("a")).unwrap(), Some(true));
        assert_eq!(store.put_config_map(&cm("a")).unwrap(), None);
        assert_eq!(store.put_config_map(&cm("b")).unwrap(), Some(false));
        assert_eq!(store.config_of("default").len(), 1);
        assert!(store.list(Kind::ReplicaSet).is_empty());
    }
}
