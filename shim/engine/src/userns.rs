//! A Pod's own user namespace (Kubernetes' `hostUsers: false`): a block of 65536 host IDs per
//! Pod, as the kubelet gives one, mapped to IDs 0-65535 inside. The block is claimed host-wide
//! (two podshim instances share the host's IDs, so the claims live in [`CLAIMS_DIR`], not in an
//! instance's state), recorded in the Pod's journal before it is claimed, and released by the
//! Pod's teardown or `gc`. The claim opens the instance's state root for the Pod's root to pass
//! through, and the last release under it closes it again, both under one lock. The namespace
//! itself is made by pause (`--new-userns`), which then
//! makes the Pod's network, IPC and UTS namespaces inside it; podshim writes its ID maps and pins
//! it (an nsfs bind mount), and containers join it by that path.

use std::fs;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::journal::{Journal, JournalError, Resource};

/// IDs per Pod: 65536, the kubelet's block size (0-65535 inside, `nobody` included).
pub const BLOCK: u32 = 65536;
/// The first block handed out: IDs below 32 × 65536 (2 Mi) stay the host's users' (login
/// users, system users and the usual /etc/subuid ranges, which start at 100000).
pub const FIRST_BLOCK: u32 = 32;
/// Blocks handed out at most (IDs up to 2^32 - 65536: the last block ends below the 32-bit
/// limit, whose top value is the kernel's invalid ID).
pub const BLOCKS: u32 = 65536 - FIRST_BLOCK - 1;
/// Host-wide claims of ID blocks, one file per block (`<index>`) holding the path of the
/// claiming Pod's journal. Under /run: the namespaces the blocks map die with the host too.
pub const CLAIMS_DIR: &str = "/run/podshim/userns-blocks";

#[derive(Debug, thiserror::Error)]
pub enum UsernsError {
    #[error("no free block of {BLOCK} user IDs left for a Pod's user namespace (claims in {dir})")]
    Exhausted { dir: PathBuf },
    #[error("cannot {action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot make an ID-mapped bind of {source_path} at {target} (the Pod's volume, \
         `hostUsers: false`; its filesystem must support ID-mapped mounts)"
    )]
    Idmap {
        source_path: PathBuf,
        target: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> UsernsError + 'a {
    move |source| UsernsError::Io {
        action,
        path: path.into(),
        source,
    }
}

/// The ID block of one Pod: host IDs `base..base+65536` are IDs `0..65536` inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdBlock {
    pub base: u32,
}

impl IdBlock {
    /// The `uid_map`/`gid_map` line: `0 BASE 65536`.
    pub fn map_line(&self) -> String {
        format!("0 {} {BLOCK}\n", self.base)
    }
}

/// Host ID ranges in use by the host's users: each /etc/passwd and /etc/group ID, and the
/// /etc/subuid and /etc/subgid ranges (`name:start:count`). A block overlapping one is skipped.
fn host_ranges() -> Vec<(u64, u64)> {
    let mut ranges = Vec::new();
    for (file, start_field, count_field) in [
        ("/etc/subuid", 1, Some(2)),
        ("/etc/subgid", 1, Some(2)),
        ("/etc/passwd", 2, None),
        ("/etc/group", 2, None),
    ] {
        let text = fs::read_to_string(file).unwrap_or_default();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            let Some(start) = fields.get(start_field).and_then(|s| s.parse::<u64>().ok()) else {
                continue;
            };
            let count = match count_field {
                Some(i) => fields
                    .get(i)
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0),
                None => 1,
            };
            ranges.push((start, start + count));
        }
    }
    ranges
}

fn overlaps(block: u32, ranges: &[(u64, u64)]) -> bool {
    let (lo, hi) = (
        u64::from(block) * u64::from(BLOCK),
        (u64::from(block) + 1) * u64::from(BLOCK),
    );
    ranges.iter().any(|&(s, e)| s < hi && lo < e)
}

/// Hold the host-wide lock of the claims: an flock(2) of the claims directory itself. Claims,
/// releases and the opening and closing of the directories they open for traversal happen
/// under it, so that a Pod's claim and the 0711 it needs can never fall between another Pod's
/// release and the 0700 that follows when no claim is left (which would close the directories
/// on a running Pod).
fn lock(claims: &Path) -> Result<nix::fcntl::Flock<fs::File>, UsernsError> {
    crate::private::create_dir_all(claims).map_err(io_err("create", claims))?;
    let dir = fs::File::open(claims).map_err(io_err("open", claims))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| io_err("lock", claims)(e.into()))
}

/// Claim a free block for the Pod of `journal` and open the directories `open` for its root to
/// pass through ([`crate::private::TRAVERSE_MODE`]): the block is recorded in the journal
/// first (with the directories), then claimed with an exclusive create of its claim file (a
/// block claimed meanwhile by someone else is forgotten again and the next one tried).
pub fn claim(journal: &mut Journal, claims: &Path, open: &[&Path]) -> Result<IdBlock, UsernsError> {
    let _lock = lock(claims)?;
    let ranges = host_ranges();
    let owner = journal.path().to_path_buf();
    for index in FIRST_BLOCK..FIRST_BLOCK + BLOCKS {
        let path = claims.join(index.to_string());
        if overlaps(index, &ranges) || path.exists() {
            continue;
        }
        let block = IdBlock {
            base: index * BLOCK,
        };
        let record = Resource::IdBlock {
            base: block.base,
            claim: path.clone(),
            owner: owner.clone(),
            opened: open.iter().map(|d| d.to_path_buf()).collect(),
        };
        journal.record(record.clone())?;
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(owner.as_os_str().as_encoded_bytes())
                    .map_err(io_err("write", &path))?;
                for d in open {
                    crate::private::open_for_traversal(d).map_err(io_err("chmod", d))?;
                }
                return Ok(block);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => journal.forget(&record)?,
            Err(e) => return Err(io_err("create", &path)(e)),
        }
    }
    Err(UsernsError::Exhausted {
        dir: claims.to_path_buf(),
    })
}

/// Release a claim: its file is removed when it still names `owner` (a crash between the
/// journal's record and the claim leaves a record whose block another Pod may hold); then each
/// directory of `opened` that no claim's owner lies below any more is closed again (0700).
pub fn release(claim: &Path, owner: &Path, opened: &[PathBuf]) -> Result<(), String> {
    let claims = claim.parent().unwrap_or(Path::new(CLAIMS_DIR));
    let _lock = lock(claims).map_err(|e| crate::chain(&e))?;
    match fs::read(claim) {
        Ok(bytes) if bytes == owner.as_os_str().as_encoded_bytes() => {
            match fs::remove_file(claim) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot remove {}: {e}", claim.display())),
            }
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", claim.display())),
    }
    close_unused_locked(claims, opened)
}

/// Close each directory of `dirs` (0700) below which no claim of `claims` has its owner: the
/// last Pod with its own user namespace under it is gone (`gc` after it released the claims of
/// Pods whose journal is gone).
pub fn close_unused(claims: &Path, dirs: &[PathBuf]) -> Result<(), String> {
    let _lock = lock(claims).map_err(|e| crate::chain(&e))?;
    close_unused_locked(claims, dirs)
}

fn close_unused_locked(claims: &Path, dirs: &[PathBuf]) -> Result<(), String> {
    let owners: Vec<PathBuf> = fs::read_dir(claims)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| fs::read_to_string(e.path()).ok())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let mut problems = Vec::new();
    for dir in dirs {
        // A claim just made has no owner written yet: none is made without the lock.
        if owners.iter().any(|o| o.starts_with(dir)) {
            continue;
        }
        match fs::set_permissions(dir, fs::Permissions::from_mode(crate::private::DIR_MODE)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => problems.push(format!("cannot close {}: {e}", dir.display())),
        }
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(problems.join("; ")),
    }
}

/// Release claims whose Pod journal is gone (a Pod removed by an older podshim, or by hand):
/// returns the claims removed. A claim whose journal exists is its Pod's to release.
pub fn gc_claims(claims: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(claims) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(owner) = fs::read_to_string(&path) else {
            continue;
        };
        if !owner.is_empty() && !Path::new(&owner).exists() && fs::remove_file(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Write the ID maps of the user namespace that process `pid` has just made.
pub fn write_maps(pid: i32, block: IdBlock) -> Result<(), UsernsError> {
    for file in ["uid_map", "gid_map"] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        fs::write(&path, block.map_line()).map_err(io_err("write", &path))?;
    }
    Ok(())
}

/// Open a user namespace by its nsfs path (the Pod's pin), for ID-mapped mounts.
pub fn open(pin: &Path) -> Result<OwnedFd, UsernsError> {
    fs::File::open(pin)
        .map(OwnedFd::from)
        .map_err(io_err("open", pin))
}

/// Make `target` a writable, ID-mapped bind of a volume's host file or directory `source` (a
/// hostPath's, a claim's), mapped with the Pod's user namespace `pin`: the host's root-owned
/// files are root's inside, and what the Pod's root makes there is host root's, as the kubelet's
/// ID-mapped volume mounts give. `target` (a file for a file) is made, then recorded in the
/// journal, then mounted; the bind lives in the caller's mount namespace (the Pod's), the
/// containers get a plain bind of it, and teardown unmounts it before anything is removed.
pub fn bind_volume(
    journal: &mut Journal,
    pin: &Path,
    source: &Path,
    target: &Path,
) -> Result<(), UsernsError> {
    if fs::metadata(source)
        .map_err(io_err("stat", source))?
        .is_dir()
    {
        fs::create_dir_all(target).map_err(io_err("create", target))?;
    } else {
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(target)
            .map_err(io_err("create", target))?;
    }
    journal.record(Resource::Mount {
        path: target.to_path_buf(),
    })?;
    let ns = open(pin)?;
    crate::sys::idmapped_bind(source, target, ns, false).map_err(|e| UsernsError::Idmap {
        source_path: source.to_path_buf(),
        target: target.to_path_buf(),
        source: e,
    })
}

/// Make `path` (a Pod's writable directory: an overlay's upper and work directories, an
/// emptyDir) owned by the Pod's root, ID 0 inside.
pub fn chown_root(path: &Path, block: IdBlock) -> Result<(), UsernsError> {
    std::os::unix::fs::lchown(path, Some(block.base), Some(block.base))
        .map_err(io_err("chown", path))
}

/// Give every file under `dir` (the volumes podshim writes itself: configMap, secret, projected,
/// downwardAPI) to the Pod's IDs: ID `n` becomes `base + n`, so a file that root wrote shows as
/// root inside. Symbolic links are changed themselves, never followed.
pub fn shift_tree(dir: &Path, block: IdBlock) -> Result<(), UsernsError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(dir).map_err(io_err("stat", dir))?;
    let shift = |id: u32| if id < BLOCK { block.base + id } else { id };
    std::os::unix::fs::lchown(dir, Some(shift(meta.uid())), Some(shift(meta.gid())))
        .map_err(io_err("chown", dir))?;
    if meta.is_dir() {
        for entry in fs::read_dir(dir).map_err(io_err("read", dir))? {
            let entry = entry.map_err(io_err("read", dir))?;
            shift_tree(&entry.path(), block)?;
        }
    }
    Ok(())
}

/// What an exec'd command needs to enter its container's user namespace, which libcontainer
/// 0.7's tenant processes do not join (it joins every other namespace of the container's init):
/// done in the command's init after libcontainer set its credentials, which are then set again
/// inside (entering a user namespace gives every capability in it and a full bounding set).
#[derive(Debug, Clone)]
pub struct TenantUserns {
    ns: std::sync::Arc<OwnedFd>,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    caps: Option<libcontainer::oci_spec::runtime::LinuxCapabilities>,
}

impl TenantUserns {
    /// For a command `process` in the container whose init is `pid`: `None` when that init is
    /// in this process's user namespace. The namespace is opened now (the command's init sees
    /// the container's /proc, not the host's).
    pub fn of(
        pid: i32,
        process: &libcontainer::oci_spec::runtime::Process,
    ) -> io::Result<Option<TenantUserns>> {
        use std::os::unix::fs::MetadataExt;
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/user"));
        if fs::metadata(&theirs)?.ino() == fs::metadata("/proc/self/ns/user")?.ino() {
            return Ok(None);
        }
        let user = process.user();
        Ok(Some(TenantUserns {
            ns: std::sync::Arc::new(fs::File::open(&theirs)?.into()),
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            caps: process.capabilities().clone(),
        }))
    }

    /// Enter the namespace, then set the command's user, groups and capabilities again.
    pub fn enter(&self) -> Result<(), String> {
        use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
        let e = |what: &'static str| move |err: nix::Error| format!("{what}: {err}");
        nix::sched::setns(&*self.ns, nix::sched::CloneFlags::CLONE_NEWUSER)
            .map_err(e("join the container's user namespace"))?;
        let groups: Vec<Gid> = self.groups.iter().map(|g| Gid::from_raw(*g)).collect();
        setgroups(&groups).map_err(e("setgroups"))?;
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        setresgid(gid, gid, gid).map_err(e("setresgid"))?;
        setresuid(uid, uid, uid).map_err(e("setresuid"))?;
        if let Some(caps) = &self.caps {
            let syscall = libcontainer::syscall::syscall::create_syscall();
            libcontainer::capabilities::drop_privileges(caps, &*syscall)
                .map_err(|err| format!("set the capabilities: {err}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_overlapping_a_host_range_is_skipped() {
        let ranges = [(100_000, 165_536), (1000, 1001)];
        assert!(overlaps(1, &ranges));
        assert!(overlaps(2, &ranges));
        assert!(!overlaps(3, &ranges));
        assert!(overlaps(0, &ranges));
        assert!(!overlaps(FIRST_BLOCK, &ranges));
    }

    fn journal(pods: &Path, name: &str) -> Journal {
        let dir = pods.join(name);
        fs::create_dir_all(&dir).unwrap();
        let pod = crate::journal::PodRecord {
            namespace: "default".into(),
            name: name.into(),
            uid: name.into(),
            owner_pid: std::process::id(),
            owner_start_time: 0,
            images: Vec::new(),
        };
        Journal::create(&dir.join("journal.json"), pod).unwrap()
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn release_of(j: &Journal) {
        for r in &j.resources {
            if let Resource::IdBlock {
                claim,
                owner,
                opened,
                ..
            } = r
            {
                release(claim, owner, opened).unwrap();
            }
        }
    }

    #[test]
    fn the_state_root_is_open_while_a_claim_below_it_is_held() {
        let t = tempfile::tempdir().unwrap();
        let (claims, state) = (t.path().join("claims"), t.path().join("state"));
        let pods = state.join("pods");
        let (mut a, mut b) = (journal(&pods, "a"), journal(&pods, "b"));
        crate::private::ensure_dir(&state).unwrap();
        let open: [&Path; 2] = [&state, &pods];
        claim(&mut a, &claims, &open).unwrap();
        claim(&mut b, &claims, &open).unwrap();
        assert_eq!((mode(&state), mode(&pods)), (0o711, 0o711));
        release_of(&a);
        assert_eq!((mode(&state), mode(&pods)), (0o711, 0o711));
        // The last one: closed again. Twice is fine.
        release_of(&b);
        release_of(&b);
        assert_eq!((mode(&state), mode(&pods)), (0o700, 0o700));
        assert_eq!(fs::read_dir(&claims).unwrap().count(), 0);
    }

    #[test]
    fn claims_and_releases_at_once_never_close_on_a_held_claim() {
        let t = tempfile::tempdir().unwrap();
        let (claims, state) = (t.path().join("claims"), t.path().join("state"));
        let pods = state.join("pods");
        crate::private::ensure_dir(&state).unwrap();
        std::thread::scope(|s| {
            for n in 0..4 {
                let (claims, state, pods) = (&claims, &state, &pods);
                s.spawn(move || {
                    for i in 0..200 {
                        let mut j = journal(pods, &format!("p{n}-{i}"));
                        claim(&mut j, claims, &[state, pods]).unwrap();
                        // Its own claim is held: no other release may have closed the root
                        // (without the lock this fails within 4 × 300 rounds).
                        assert_eq!(mode(state), 0o711, "thread {n}, round {i}");
                        release_of(&j);
                    }
                });
            }
        });
        assert_eq!(mode(&state), 0o700);
    }

    #[test]
    fn the_map_line_is_the_kubelets() {
        let b = IdBlock {
            base: FIRST_BLOCK * BLOCK,
        };
        assert_eq!(b.map_line(), "0 2097152 65536\n");
        assert!(u64::from(FIRST_BLOCK + BLOCKS) * u64::from(BLOCK) < 1 << 32);
    }
}
