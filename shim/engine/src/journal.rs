//! The journal of a Pod: every host resource it creates, recorded *before* it is created, so
//! that teardown (and, after a crash, `rm -f`/`gc`) works from records rather than guesses.
//!
//! The journal is one JSON file in the Pod's state directory, rewritten atomically (write to a
//! temporary file, rename) on every change. It guards against podshim crashing, not the machine:
//! it lives under `--state` (`/run`, a tmpfs emptied at boot, when every Pod is gone anyway), so
//! it is not fsync'ed — a sync per record would cost more than the Pod setup itself on a disk.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use podshim_cni::chain::{NetworkList, Runtime};
use serde::{Deserialize, Serialize};

use crate::chain;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the pod journal {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the pod journal {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the pod journal {path} is corrupt")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// One host resource a Pod owns. Teardown undoes them in reverse order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Resource {
    /// A directory podshim created (state dir, writable layers); removed after its mounts.
    Dir { path: PathBuf },
    /// The Pod cgroup (relative to every hierarchy's root).
    Cgroup { path: String },
    /// The pause process; `start_time` (field 22 of /proc/PID/stat) guards against PID reuse.
    Pause { pid: i32, start_time: u64 },
    /// The nsfs bind mount that pins the Pod's network namespace.
    NetnsPin { path: PathBuf },
    /// The Pod's network attachment: IPAM lease and veth (and the bridge when last).
    Network {
        bridge: String,
        subnet: String,
        ipam_dir: PathBuf,
        attachment_id: String,
        host_veth: String,
        #[serde(default)]
        keep_bridge: bool,
    },
    /// The Pod's NAT rules (host ports, masquerade) in the `ip podshim` nftables table, all
    /// tagged `tag`; `ports` are its host ports, which other Pods must not take.
    Nat {
        tag: String,
        #[serde(default)]
        ports: Vec<podshim_cni::nat::PortMapping>,
        #[serde(default)]
        masquerade: bool,
    },
    /// The Pod's attachment by a CNI network configuration (`--cni-conf`): the list as it was
    /// (`conf`, JSON), so DEL runs the same plugins even when the file changed; the ADD result
    /// is cached in the file `result` once ADD succeeded.
    CniChain {
        conf: String,
        container_id: String,
        netns: PathBuf,
        ifname: String,
        cni_path: String,
        result: PathBuf,
        #[serde(default)]
        ports: Vec<podshim_cni::nat::PortMapping>,
    },
    /// A mount point (overlay root filesystem, Memory emptyDir).
    Mount { path: PathBuf },
    /// The Pod's block of host user IDs (`hostUsers: false`): host IDs `base..base+65536`,
    /// claimed by the file `claim`, which names the claiming journal `owner`; `opened`: the
    /// directories opened for the Pod's root to pass through, closed again (0700) when the last
    /// claim whose owner lies below one is released (journals of older podshims have none).
    IdBlock {
        base: u32,
        claim: PathBuf,
        owner: PathBuf,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        opened: Vec<PathBuf>,
    },
    /// A libcontainer container (its state lives under `runtime_dir/id`).
    Container {
        id: String,
        runtime_dir: PathBuf,
        /// Its cgroup (relative to every hierarchy's root): what is left in it is killed when
        /// libcontainer cannot (a podshim killed while it created the container).
        #[serde(default)]
        cgroup: Option<String>,
    },
}

impl Resource {
    /// A [`Resource::CniChain`] as CHECK, DEL and GC run it: the list it recorded, parsed, and
    /// the attachment. The error says why the list cannot be read (or that this is another
    /// kind of resource).
    pub fn cni_chain(&self) -> Result<(NetworkList, Runtime<'_>), String> {
        let Resource::CniChain {
            conf,
            container_id,
            netns,
            ifname,
            cni_path,
            ports,
            ..
        } = self
        else {
            return Err(format!("not a CNI chain: {self:?}"));
        };
        let list = serde_json::from_str(conf)
            .map_err(|e| format!("CNI config in the journal: {e}"))
            .and_then(|v| NetworkList::parse(v).map_err(|e| chain(&e)))?;
        let rt = Runtime {
            container_id,
            netns,
            ifname,
            cni_path,
            args: None,
            port_mappings: ports,
        };
        Ok((list, rt))
    }

    /// The ADD result a [`Resource::CniChain`] cached: None until ADD succeeded (or when the
    /// file cannot be read), and for any other resource.
    pub fn cached_result(&self) -> Option<serde_json::Value> {
        let Resource::CniChain { result, .. } = self else {
            return None;
        };
        fs::read(result)
            .ok()
            .and_then(|r| serde_json::from_slice(&r).ok())
    }
}

/// Who the Pod is, as written in its journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The podshim process that owns the Pod, and its start time (to tell it from a reused PID).
    pub owner_pid: u32,
    pub owner_start_time: u64,
    /// Manifest digests of the images the Pod runs (kept by `podshim image prune`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Journal {
    #[serde(skip)]
    path: PathBuf,
    pub pod: PodRecord,
    pub resources: Vec<Resource>,
}

impl Journal {
    /// Start the journal of a Pod at `path`, in the Pod's directory (which must exist): the
    /// directory itself is its first record, written with the journal in one rename, so no
    /// journal ever exists that does not name the directory it lives in (a podshim killed
    /// between two writes left one that `gc` could not remove).
    pub fn create(path: &Path, pod: PodRecord) -> Result<Self, JournalError> {
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let journal = Journal {
            path: path.into(),
            pod,
            resources: vec![Resource::Dir { path: dir }],
        };
        journal.save()?;
        Ok(journal)
    }

    /// The images that the Pods under `pods_dir` (`<state>/pods`) run, from their journals,
    /// whether their podshim is alive or not (a dead one's overlays stay until `gc`).
    pub fn images_in_use(pods_dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(pods_dir) else {
            return Vec::new();
        };
        let mut images = Vec::new();
        for entry in entries.flatten() {
            if let Ok(j) = Journal::load(&entry.path().join("journal.json")) {
                images.extend(j.pod.images);
            }
        }
        images.sort();
        images.dedup();
        images
    }

    pub fn load(path: &Path) -> Result<Self, JournalError> {
        let text = fs::read(path).map_err(|source| JournalError::Read {
            path: path.into(),
            source,
        })?;
        let mut journal: Journal =
            serde_json::from_slice(&text).map_err(|source| JournalError::Corrupt {
                path: path.into(),
                source,
            })?;
        journal.path = path.into();
        Ok(journal)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Record a resource before creating it.
    pub fn record(&mut self, resource: Resource) -> Result<(), JournalError> {
        if !self.resources.contains(&resource) {
            self.resources.push(resource);
            self.save()?;
        }
        Ok(())
    }

    /// Forget a resource after it has been removed (e.g. a container before its restart).
    pub fn forget(&mut self, resource: &Resource) -> Result<(), JournalError> {
        let before = self.resources.len();
        self.resources.retain(|r| r != resource);
        if self.resources.len() != before {
            self.save()?;
        }
        Ok(())
    }

    /// Where this process reaches the Pod's netns pin: its recorded path when the pin is
    /// mounted in this process's mount namespace (the supervisor's own), else the same path in
    /// the mount namespace of the Pod's pause (`/proc/PID/root/...`), where a supervisor makes
    /// its Pod's mounts (see [`crate::mounts::private_namespace`]). None without a pin, and
    /// when neither is there (pause gone: so is the namespace, unless a supervisor still holds it).
    pub fn netns_pin(&self) -> Option<PathBuf> {
        let path = self.resources.iter().find_map(|r| match r {
            Resource::NetnsPin { path } => Some(path),
            _ => None,
        })?;
        if crate::mounts::is_namespace_file(path) {
            return Some(path.clone());
        }
        self.resources.iter().rev().find_map(|r| match r {
            Resource::Pause { pid, start_time } if crate::teardown::alive(*pid, *start_time) => {
                let there = Path::new("/proc")
                    .join(pid.to_string())
                    .join("root")
                    .join(path.strip_prefix("/").unwrap_or(path));
                crate::mounts::is_namespace_file(&there).then_some(there)
            }
            _ => None,
        })
    }

    /// Move this process into the mount namespace in which the Pod's mounts were made (its
    /// pause's), when they are not in this one: then the paths the journal records (the netns
    /// pin a CNI plugin's CHECK compares with its cached result) mean there what they meant to
    /// the supervisor. For a single-threaded command; the root and working directory become
    /// that namespace's. Whether it moved.
    pub fn enter_mount_namespace(&self) -> bool {
        let Some(pin) = self.netns_pin() else {
            return false;
        };
        let Some(pid) = pin
            .strip_prefix("/proc")
            .ok()
            .and_then(|rest| rest.iter().next())
            .and_then(|pid| pid.to_str())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            return false;
        };
        fs::File::open(format!("/proc/{pid}/ns/mnt"))
            .ok()
            .is_some_and(|ns| nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS).is_ok())
    }

    fn save(&self) -> Result<(), JournalError> {
        let err = |source| JournalError::Write {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        let data = serde_json::to_vec_pretty(self).expect("journal serializes");
        let mut file = crate::private::create_file(&tmp).map_err(err)?;
        // No fsync (see the module's doc): the rename alone is what survives a podshim crash.
        file.write_all(&data).map_err(err)?;
        fs::rename(&tmp, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_persist_atomically_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let pod = PodRecord {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            owner_pid: 1,
            owner_start_time: 2,
            images: Vec::new(),
        };
        let mut j = Journal::create(&path, pod).unwrap();
        assert_eq!(
            Journal::load(&path).unwrap().resources,
            vec![Resource::Dir {
                path: dir.path().into()
            }],
            "the directory is recorded with the journal's first write"
        );
        j.forget(&Resource::Dir {
            path: dir.path().into(),
        })
        .unwrap();
        j.record(Resource::Cgroup {
            path: "/podshim/u".into(),
        })
        .unwrap();
        j.record(Resource::Mount { path: "/x".into() }).unwrap();
        j.record(Resource::Mount { path: "/x".into() }).unwrap();
        assert_eq!(Journal::load(&path).unwrap(), j);
        assert_eq!(j.resources.len(), 2);
        j.forget(&Resource::Mount { path: "/x".into() }).unwrap();
        assert_eq!(
            Journal::load(&path).unwrap().resources,
            vec![Resource::Cgroup {
                path: "/podshim/u".into()
            }]
        );
        assert!(!path.with_extension("tmp").exists());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"kind\": \"cgroup\""), "{text}");
    }

    #[test]
    fn a_cni_chain_record_gives_its_list_attachment_and_cached_result() {
        let dir = tempfile::tempdir().unwrap();
        let result = dir.path().join("result.json");
        let mut r = Resource::CniChain {
            conf: r#"{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]}"#.into(),
            container_id: "c".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            cni_path: "/p".into(),
            result: result.clone(),
            ports: Vec::new(),
        };
        let (list, rt) = r.cni_chain().unwrap();
        assert_eq!(list.name, "n");
        assert_eq!(
            (rt.container_id, rt.netns, rt.ifname, rt.cni_path),
            ("c", Path::new("/run/netns/x"), "eth0", "/p")
        );
        assert!(rt.args.is_none() && rt.port_mappings.is_empty());
        assert_eq!(r.cached_result(), None);
        fs::write(&result, r#"{"cniVersion": "1.0.0"}"#).unwrap();
        assert_eq!(
            r.cached_result(),
            Some(serde_json::json!({"cniVersion": "1.0.0"}))
        );

        if let Resource::CniChain { conf, .. } = &mut r {
            *conf = "{".into();
        }
        let err = r.cni_chain().unwrap_err();
        assert!(err.starts_with("CNI config in the journal: "), "{err}");
        let other = Resource::Mount { path: "/x".into() };
        assert!(other.cni_chain().is_err());
        assert_eq!(other.cached_result(), None);
    }
}
