//! podshim's built-in local-path provisioner: each PersistentVolumeClaim is bound, when it is
//! applied, to a directory of its own under the data root, as the local-path provisioners of
//! single-node clusters (k3s, kind) do with a StorageClass of `volumeBindingMode: Immediate`.
//!
//! Layout, all private to root (0700) but the data directories themselves:
//! `<root>/storage/claims/<namespace>/<name>.json` the claim as applied, with its binding;
//! `<root>/storage/volumes/pvc-<uid>/` the data, 0777 as local-path makes it, so any container
//! user can write (only root can reach it through its 0700 parents);
//! `<root>/storage/lock` an flock(2) held while claims are made or deleted.
//!
//! Capacity: `resources.requests.storage` is checked against the free space of the data root's
//! filesystem when the claim is provisioned, and reported as its capacity. Where that
//! filesystem has project quotas on, the claim's directory gets a project of its own limited to
//! the request ([`quota`]), so a Pod writing past it gets EDQUOT ("Disk quota exceeded");
//! elsewhere the size is only stated, and `get pvc -o wide` (SIZELIMIT) and `-o yaml` say so.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::manifest::claim::{PersistentVolumeClaim, ReclaimPolicy};

pub mod admit;
pub mod quota;

use quota::Limit;

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a stored claim")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// The API server's refusal of a change to a bound claim (`ValidatePersistentVolumeClaimUpdate`).
    #[error("PersistentVolumeClaim {name:?} is invalid: {detail}")]
    Immutable { name: String, detail: String },
    /// The provisioner's `ProvisioningFailed`.
    #[error("ProvisioningFailed: {0}")]
    Provisioning(String),
    /// `kubernetes.io/pvc-protection`: the claim stays while a Pod uses it.
    #[error("persistentvolumeclaim {name:?} is used by pod(s) {pods}: it is protected (kubernetes.io/pvc-protection) until they end; stop and remove them first", pods = .pods.join(", "))]
    InUse { name: String, pods: Vec<String> },
    #[error("persistentvolumeclaims {0:?} not found")]
    NotFound(String),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io { what, path, source }
}

/// A claim as stored: what was applied (defaulted), and what the provisioner bound it to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub claim: PersistentVolumeClaim,
    pub uid: String,
    /// RFC 3339, when the claim was first applied.
    pub created: String,
    /// The bound volume's name, `pvc-<uid>` (the PersistentVolume a provisioner would make).
    pub volume: String,
    /// Capacity reported in `status.capacity.storage`: the request as written.
    pub capacity: String,
    pub reclaim_policy: ReclaimPolicy,
    /// How the size is held to.
    #[serde(default)]
    pub limit: Limit,
}

impl Stored {
    /// The claim as `kubectl get pvc -o yaml` shows a bound one.
    pub fn object(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.claim).unwrap_or_default();
        v["metadata"]["uid"] = self.uid.clone().into();
        v["metadata"]["creationTimestamp"] = self.created.clone().into();
        v["metadata"]["finalizers"] = serde_json::json!(["kubernetes.io/pvc-protection"]);
        v["metadata"]["annotations"][SIZE_ANNOTATION] = self.limit.describe().into();
        v["spec"]["volumeName"] = self.volume.clone().into();
        v["status"] = serde_json::json!({
            "phase": "Bound",
            "accessModes": self.claim.spec.access_modes,
            "capacity": {"storage": self.capacity},
        });
        v
    }
}

/// The annotation `get pvc -o yaml` shows the size's enforcement in.
pub const SIZE_ANNOTATION: &str = "podshim.io/size-limit";

/// What `provision` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

impl Outcome {
    /// kubectl's word for it.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// What `delete` did with the data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// Reclaim policy Delete: the directory is gone.
    Removed,
    /// Reclaim policy Retain: the directory stays here.
    Retained(PathBuf),
}

/// The claims of one podshim instance.
#[derive(Debug, Clone)]
pub struct Claims {
    dir: PathBuf,
}

impl Claims {
    /// The store under `root` (created, private to root, as needed).
    pub fn open(root: &Path) -> Result<Claims, StorageError> {
        let dir = root.join("storage");
        for d in [dir.join("claims"), dir.join("volumes")] {
            podshim_engine::private::create_dir_all(&d).map_err(io_err("create", &d))?;
        }
        Ok(Claims { dir })
    }

    /// The store under `root` if there is one, else `None` (nothing is created).
    pub fn existing(root: &Path) -> Option<Claims> {
        let dir = root.join("storage");
        dir.join("claims").is_dir().then_some(Claims { dir })
    }

    fn claim_path(&self, ns: &str, name: &str) -> PathBuf {
        self.dir
            .join("claims")
            .join(ns)
            .join(format!("{name}.json"))
    }

    /// Where the data of a stored claim lives.
    pub fn volume_dir(&self, s: &Stored) -> PathBuf {
        self.dir.join("volumes").join(&s.volume)
    }

    fn lock(&self) -> Result<Flock<File>, StorageError> {
        let path = self.dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| StorageError::Io {
            what: "lock",
            path,
            source: e.into(),
        })
    }

    /// The claim `name` of namespace `ns`.
    pub fn get(&self, ns: &str, name: &str) -> Result<Option<Stored>, StorageError> {
        let path = self.claim_path(ns, name);
        match fs::read(&path) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|source| StorageError::Corrupt { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Every stored claim, by namespace and name.
    pub fn list(&self) -> Result<Vec<Stored>, StorageError> {
        let mut out = Vec::new();
        let claims = self.dir.join("claims");
        for ns in fs::read_dir(&claims).map_err(io_err("read", &claims))? {
            let ns = ns.map_err(io_err("read", &claims))?.path();
            for f in fs::read_dir(&ns).map_err(io_err("read", &ns))? {
                let path = f.map_err(io_err("read", &ns))?.path();
                if path.extension().is_some_and(|e| e == "json") {
                    let data = fs::read(&path).map_err(io_err("read", &path))?;
                    out.push(
                        serde_json::from_slice(&data)
                            .map_err(|source| StorageError::Corrupt { path, source })?,
                    );
                }
            }
        }
        out.sort_by(|a: &Stored, b: &Stored| {
            (a.claim.namespace(), &a.claim.metadata.name)
                .cmp(&(b.claim.namespace(), &b.claim.metadata.name))
        });
        Ok(out)
    }

    /// Bind `claim` (defaulted and valid) to a new directory, or update the stored one: its
    /// metadata, and a larger storage request; any other change of the spec is refused as the
    /// API server refuses it for a bound claim.
    pub fn provision(
        &self,
        claim: &PersistentVolumeClaim,
    ) -> Result<(Stored, Outcome), StorageError> {
        let _lock = self.lock()?;
        let (ns, name) = (claim.namespace(), claim.metadata.name.as_str());
        let mut claim = claim.clone();
        claim.status = None;
        if let Some(mut old) = self.get(ns, name)? {
            if old.claim == claim {
                return Ok((old, Outcome::Unchanged));
            }
            check_update(&old.claim, &claim)?;
            if let Limit::ProjectQuota { id } = old.limit {
                let dir = self.volume_dir(&old);
                quota::resize(&dir, id, claim.requested_bytes())
                    .map_err(io_err("set the project quota of", &dir))?;
            }
            old.capacity = storage(&claim);
            old.reclaim_policy = claim.reclaim_policy();
            old.claim = claim;
            self.write(&old)?;
            return Ok((old, Outcome::Configured));
        }
        self.check_space(&claim)?;
        let uid = crate::pod::new_uid();
        let mut stored = Stored {
            capacity: storage(&claim),
            reclaim_policy: claim.reclaim_policy(),
            volume: format!("pvc-{uid}"),
            created: crate::status::time(chrono::Utc::now()),
            uid,
            claim,
            limit: Limit::default(),
        };
        let data = self.volume_dir(&stored);
        fs::DirBuilder::new()
            .mode(0o777)
            .create(&data)
            .map_err(io_err("create", &data))?;
        // The umask took bits away: local-path's `mkdir -m 0777`.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o777))
            .map_err(io_err("chmod", &data))?;
        if let Err(e) = self.bind(&mut stored, &data) {
            if let Limit::ProjectQuota { id } = stored.limit {
                let _ = quota::clear(&self.dir.join("volumes"), None, id);
            }
            let _ = fs::remove_dir(&data);
            let _ = fs::remove_file(
                self.claim_path(stored.claim.namespace(), &stored.claim.metadata.name),
            );
            return Err(e);
        }
        Ok((stored, Outcome::Created))
    }

    /// Records the new claim `s` whose directory is `data`, with a project quota where the
    /// filesystem has them: the ID is written down before the directory gets it, so a crash in
    /// between leaves a claim whose deletion clears it.
    fn bind(&self, s: &mut Stored, data: &Path) -> Result<(), StorageError> {
        if let Err(why) = quota::probe(data) {
            s.limit = Limit::None { why };
            return self.write(s);
        }
        let taken: Vec<u32> = self
            .list()?
            .iter()
            .filter_map(|o| match o.limit {
                Limit::ProjectQuota { id } => Some(id),
                Limit::None { .. } => None,
            })
            .collect();
        let id = quota::choose(data, &taken).map_err(io_err("choose a project ID for", data))?;
        s.limit = Limit::ProjectQuota { id };
        self.write(s)?;
        quota::apply(data, id, s.claim.requested_bytes())
            .map_err(io_err("set the project quota of", data))
    }

    /// A claim larger than the free space of the data root's filesystem cannot be honoured.
    fn check_space(&self, claim: &PersistentVolumeClaim) -> Result<(), StorageError> {
        let st = nix::sys::statvfs::statvfs(&self.dir).map_err(|e| StorageError::Io {
            what: "statvfs",
            path: self.dir.clone(),
            source: e.into(),
        })?;
        let free = st.blocks_available() as u64 * st.fragment_size() as u64;
        let want = claim.requested_bytes();
        if want > free {
            return Err(StorageError::Provisioning(format!(
                "claim {:?} requests {} ({want} bytes); the filesystem of {} has {free} bytes \
                 available",
                claim.metadata.name,
                storage(claim),
                self.dir.display()
            )));
        }
        Ok(())
    }

    fn write(&self, s: &Stored) -> Result<(), StorageError> {
        let path = self.claim_path(s.claim.namespace(), &s.claim.metadata.name);
        if let Some(dir) = path.parent() {
            podshim_engine::private::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        let tmp = path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(s).map_err(|e| io_err("encode", &path)(e.into()))?;
        let mut f = podshim_engine::private::create_file(&tmp).map_err(io_err("write", &tmp))?;
        f.write_all(&data).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("rename", &path))
    }

    /// Delete the claim unless a Pod in `users` (the Pods that use it and have not ended) still
    /// does; its directory goes with it (reclaim policy Delete) or stays (Retain).
    pub fn delete(&self, ns: &str, name: &str, users: &[String]) -> Result<Deleted, StorageError> {
        let _lock = self.lock()?;
        let Some(stored) = self.get(ns, name)? else {
            return Err(StorageError::NotFound(name.to_string()));
        };
        if !users.is_empty() {
            return Err(StorageError::InUse {
                name: name.to_string(),
                pods: users.to_vec(),
            });
        }
        let data = self.volume_dir(&stored);
        let outcome = match stored.reclaim_policy {
            ReclaimPolicy::Delete => {
                match fs::remove_dir_all(&data) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("remove", &data)(e)),
                }
                Deleted::Removed
            }
            ReclaimPolicy::Retain => Deleted::Retained(data.clone()),
        };
        // The project is freed: no limit left, and a retained directory leaves it (its files
        // stay charged to it, so `choose` passes the ID by until they are gone).
        if let Limit::ProjectQuota { id } = stored.limit {
            let kept = matches!(outcome, Deleted::Retained(_)).then_some(data.as_path());
            let volumes = self.dir.join("volumes");
            quota::clear(&volumes, kept, id)
                .map_err(io_err("clear the project quota of", &data))?;
        }
        let path = self.claim_path(ns, name);
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        Ok(outcome)
    }
}

/// `spec.resources.requests.storage` as written.
fn storage(c: &PersistentVolumeClaim) -> String {
    c.spec
        .resources
        .requests
        .get("storage")
        .map(|q| q.as_str().to_string())
        .unwrap_or_default()
}

/// `ValidatePersistentVolumeClaimUpdate` for a bound claim: only `resources.requests` may
/// change, and storage only grow.
fn check_update(
    old: &PersistentVolumeClaim,
    new: &PersistentVolumeClaim,
) -> Result<(), StorageError> {
    let name = new.metadata.name.clone();
    let immutable = |detail: &str| StorageError::Immutable {
        name: name.clone(),
        detail: detail.to_string(),
    };
    let mut a = old.spec.clone();
    let mut b = new.spec.clone();
    a.resources.requests.clear();
    b.resources.requests.clear();
    if a != b {
        return Err(immutable(
            "spec: Forbidden: spec is immutable after creation except resources.requests and \
             volumeAttributesClassName for bound claims",
        ));
    }
    let bytes = |c: &PersistentVolumeClaim| c.requested_bytes();
    if bytes(new) < bytes(old) {
        return Err(immutable(
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity",
        ));
    }
    Ok(())
}

/// The directory a Pod's `persistentVolumeClaim` volume mounts: the data of the stored claim
/// `name` of namespace `ns`, under the data root whose image store is `images`. The claims of a
/// Pod's own file are stored before it is planned.
pub fn volume_path(images: &podshim_image::Store, ns: &str, name: &str) -> Result<PathBuf, String> {
    let root = images.dir().parent().unwrap_or(Path::new("/"));
    let stored = Claims::existing(root)
        .map(|c| c.get(ns, name).map(|s| s.map(|s| c.volume_dir(&s))))
        .transpose()
        .map_err(|e| crate::pod::chain(&e))?
        .flatten();
    stored.ok_or_else(|| format!("persistentvolumeclaims {name:?} not found"))
}

/// The Pods (`namespace/name`) in `pods` (Pod objects that have not ended) that use claim
/// `name` of namespace `ns`.
pub fn users<'a>(
    pods: impl IntoIterator<Item = &'a crate::manifest::Pod>,
    ns: &str,
    name: &str,
) -> Vec<String> {
    pods.into_iter()
        .filter(|p| p.namespace() == ns)
        .filter(|p| {
            p.spec.volumes.iter().any(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == name)
            })
        })
        .map(|p| format!("{}/{}", p.namespace(), p.name()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn claim(name: &str, storage: &str, policy: Option<&str>) -> PersistentVolumeClaim {
        let mut c: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": storage}}}
        }))
        .unwrap();
        if let Some(p) = policy {
            c.metadata
                .annotations
                .insert(crate::manifest::claim::RECLAIM_ANNOTATION.into(), p.into());
        }
        crate::manifest::claim::default_claim(&mut c);
        c
    }

    #[test]
    fn a_claim_is_bound_to_a_private_directory_and_reapplied_unchanged() {
        let t = tempfile::tempdir().unwrap();
        let store = Claims::open(t.path()).unwrap();
        let (s, o) = store.provision(&claim("data", "1Mi", None)).unwrap();
        assert_eq!(o, Outcome::Created);
        assert_eq!(s.volume, format!("pvc-{}", s.uid));
        let dir = store.volume_dir(&s);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o777);
        let parent = t.path().join("storage/volumes");
        assert_eq!(fs::metadata(parent).unwrap().mode() & 0o777, 0o700);
        let (again, o) = store.provision(&claim("data", "1Mi", None)).unwrap();
        assert_eq!(
            (o, again.uid.as_str()),
            (Outcome::Unchanged, s.uid.as_str())
        );
        let (grown, o) = store.provision(&claim("data", "2Mi", None)).unwrap();
        assert_eq!((o, grown.capacity.as_str()), (Outcome::Configured, "2Mi"));
        let e = store.provision(&claim("data", "1Ki", None)).unwrap_err();
        assert!(e.to_string().contains("can not be less than"), "{e}");
        let mut other = claim("data", "2Mi", None);
        other.spec.access_modes = vec!["ReadWriteMany".into()];
        let e = store.provision(&other).unwrap_err().to_string();
        assert!(e.contains("spec: Forbidden: spec is immutable"), "{e}");
        assert_eq!(store.list().unwrap().len(), 1);
        let obj = store.get("default", "data").unwrap().unwrap().object();
        assert_eq!(obj["status"]["phase"], "Bound");
        assert_eq!(obj["status"]["capacity"]["storage"], "2Mi");
    }

    #[test]
    fn delete_is_refused_while_used_then_follows_the_reclaim_policy() {
        let t = tempfile::tempdir().unwrap();
        let store = Claims::open(t.path()).unwrap();
        let (gone, _) = store.provision(&claim("gone", "1Mi", None)).unwrap();
        let (kept, _) = store
            .provision(&claim("kept", "1Mi", Some("Retain")))
            .unwrap();
        let e = store
            .delete("default", "gone", &["default/web".into()])
            .unwrap_err();
        assert!(e.to_string().contains("used by pod(s) default/web"), "{e}");
        assert!(store.volume_dir(&gone).is_dir());
        assert_eq!(
            store.delete("default", "gone", &[]).unwrap(),
            Deleted::Removed
        );
        assert!(!store.volume_dir(&gone).exists());
        let dir = store.volume_dir(&kept);
        assert_eq!(
            store.delete("default", "kept", &[]).unwrap(),
            Deleted::Retained(dir.clone())
        );
        assert!(dir.is_dir());
        assert!(matches!(
            store.delete("default", "kept", &[]),
            Err(StorageError::NotFound(_))
        ));
    }

    #[test]
    fn a_claim_larger_than_the_filesystem_is_not_provisioned() {
        let t = tempfile::tempdir().unwrap();
        let store = Claims::open(t.path()).unwrap();
        let e = store.provision(&claim("huge", "1000Pi", None)).unwrap_err();
        assert!(e.to_string().starts_with("ProvisioningFailed: "), "{e}");
        assert!(store.list().unwrap().is_empty());
    }
}
