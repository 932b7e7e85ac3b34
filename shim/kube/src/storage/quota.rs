//! A claim's size held to with a project quota, where its filesystem has them (ext4 with the
//! `quota` and `project` features, or XFS, mounted with `prjquota`), as the kubelet's
//! `pkg/volume/util/fsquota` does for emptyDir under LocalStorageCapacityIsolationFSQuotaMonitoring:
//! the claim's directory gets a project ID of its own and the inherit flag, so everything
//! written below it is charged to that project, and the project a hard block limit equal to the
//! request. Elsewhere the size is only stated, and `get pvc` says so.

use std::fs::File;
use std::io;
use std::path::Path;

use podshim_engine::sys::quota;
use serde::{Deserialize, Serialize};

/// The first project ID given out: the kubelet's (`firstQuota` in fsquota's quota_linux.go),
/// above the IDs people set by hand in /etc/projects.
pub const FIRST_ID: u32 = 1_048_577;
/// How many IDs are tried before giving up.
const SPAN: u32 = 65_536;

/// How a claim's size is held to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "by")]
pub enum Limit {
    /// A project quota: the directory has project `id` (with the inherit flag) and the
    /// project a hard block limit equal to the request. Recorded before it is set, so a claim
    /// whose provisioning was cut short still names the ID to clear.
    ProjectQuota { id: u32 },
    /// Not enforced: a Pod may write past the request (`why`).
    None { why: String },
}

impl Default for Limit {
    /// A claim stored before sizes were enforced.
    fn default() -> Limit {
        Limit::None {
            why: "provisioned by a podshim that did not enforce sizes".into(),
        }
    }
}

impl Limit {
    /// The word of `get pvc -o wide`'s SIZELIMIT column.
    pub fn column(&self) -> String {
        match self {
            Limit::ProjectQuota { id } => format!("project-quota:{id}"),
            Limit::None { .. } => "none".into(),
        }
    }

    /// A sentence for `get pvc -o yaml` and the provisioning note.
    pub fn describe(&self) -> String {
        match self {
            Limit::ProjectQuota { id } => format!("enforced by project quota {id}"),
            Limit::None { why } => format!("not enforced: {why}"),
        }
    }
}

fn open(dir: &Path) -> io::Result<File> {
    File::open(dir)
}

/// Whether the filesystem of `dir` enforces project quotas; `Err` says why not, in words.
pub fn probe(dir: &Path) -> Result<(), String> {
    let f = open(dir).map_err(|e| format!("cannot open {}: {e}", dir.display()))?;
    quota::enabled(&f).map_err(|e| match e.raw_os_error() {
        // quota_getinfo: quotas of this type are not on.
        Some(libc::ESRCH) => format!(
            "the filesystem of {} has no project quotas on (ext4 with the quota and project \
             features or XFS, mounted with prjquota)",
            dir.display()
        ),
        _ => format!(
            "the filesystem of {} has no project quotas ({e})",
            dir.display()
        ),
    })?;
    // The directory attribute call must work too (overlayfs, for one, has quotactl-less
    // errors of its own).
    quota::project(&f)
        .map_err(|e| format!("cannot read the project ID of {} ({e})", dir.display()))?;
    Ok(())
}

/// A project ID for a new claim on the filesystem of `dir`: not in `taken` (the IDs of stored
/// claims) and with neither usage nor limits on that filesystem (someone else's project).
pub fn choose(dir: &Path, taken: &[u32]) -> io::Result<u32> {
    let f = open(dir)?;
    for id in FIRST_ID..FIRST_ID + SPAN {
        if taken.contains(&id) {
            continue;
        }
        if quota::get(&f, id)? == (0, 0) {
            return Ok(id);
        }
    }
    Err(io::Error::other("no free project ID"))
}

/// Puts `dir` (and what it will hold) in project `id` limited to `bytes`.
pub fn apply(dir: &Path, id: u32, bytes: u64) -> io::Result<()> {
    let f = open(dir)?;
    quota::set_project(&f, id)?;
    quota::set_limit(&f, id, bytes)
}

/// Changes the limit of project `id` (a claim that grew).
pub fn resize(dir: &Path, id: u32, bytes: u64) -> io::Result<()> {
    quota::set_limit(open(dir)?, id, bytes)
}

/// Removes project `id`'s limit; `dir`, when it stays (Retain), leaves the project too. `fs`
/// is any directory on the claim's filesystem (the volumes directory).
pub fn clear(fs: &Path, dir: Option<&Path>, id: u32) -> io::Result<()> {
    if let Some(dir) = dir {
        match open(dir) {
            Ok(f) => quota::set_project(&f, 0)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    quota::set_limit(open(fs)?, id, 0)
}

/// Usage and limit of project `id` on the filesystem of `dir`, in bytes.
pub fn usage(dir: &Path, id: u32) -> io::Result<(u64, u64)> {
    quota::get(open(dir)?, id)
}
