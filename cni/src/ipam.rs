//! Host-local style IPAM: one file per leased address, guarded by an exclusive `flock`.
//!
//! Layout under the data directory, as in the reference `host-local` plugin: a file named by
//! each leased address holding the attachment id, `last_reserved_ip` for round-robin
//! allocation, and `lock`, which every change holds with `flock(LOCK_EX)`. `flock` locks
//! belong to the open file description, so they exclude other processes and other threads
//! (each `lock()` opens the file anew) alike.
//!
//! podshim's own pools also keep `by-id/<attachment id>`, holding the address the id leases,
//! so that an allocation and a release cost the same with 1,000 leases as with none (reading
//! every lease file made each Pod start slower the more Pods ran); the lease file stays the
//! truth, the index only says where to look. A pool made before the index existed is indexed
//! once, the first time it is locked.
//!
//! The CNI plugin uses the exact host-local layout (`<dataDir>/<network>/`, leases holding
//! `id\r\nifname`, `last_reserved_ip.0`) and a configurable range, so host-local and podshim
//! can take turns on one directory.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::{CniError, Ipv4Net};

const LOCK_FILE: &str = "lock";
const LAST_RESERVED: &str = "last_reserved_ip";
/// The directory of the id → address index (podshim's own layout only).
const BY_ID: &str = "by-id";
/// host-local keeps one marker per range set; podshim's plugin has one range set.
const LAST_RESERVED_HOST_LOCAL: &str = "last_reserved_ip.0";

/// The address pool of one subnet, stored in one directory.
#[derive(Debug, Clone)]
pub struct Ipam {
    dir: PathBuf,
    subnet: Ipv4Net,
    range: Range,
    last_reserved: &'static str,
}

/// The part of a subnet a pool hands out (host-local's `rangeStart`, `rangeEnd`, `gateway`):
/// every address from `start` to `end` except `gateway`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: Ipv4Addr,
    pub end: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl Range {
    /// The whole subnet but its network, gateway (the first address) and broadcast addresses.
    pub fn of(subnet: Ipv4Net) -> Self {
        let range = subnet.pod_range();
        Self {
            start: Ipv4Addr::from(*range.start()),
            end: Ipv4Addr::from(*range.end()),
            gateway: subnet.gateway(),
        }
    }
}

/// Who holds a lease: an attachment id and, for CNI attachments, the interface name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub id: String,
    pub ifname: Option<String>,
}

impl Holder {
    /// Whether this lease belongs to `id` (and `ifname`, when both sides know it).
    fn is(&self, id: &str, ifname: Option<&str>) -> bool {
        self.id == id
            && match (self.ifname.as_deref(), ifname) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

/// The IPAM lock, held; every read and change of the pool goes through it.
#[derive(Debug)]
pub struct IpamLock<'a> {
    ipam: &'a Ipam,
    _flock: Flock<File>,
}

impl Ipam {
    /// Opens (creating if needed) the pool of `subnet` stored in `dir`.
    pub fn open(dir: &Path, subnet: Ipv4Net) -> Result<Self, CniError> {
        Self::open_range(dir, subnet, Range::of(subnet), LAST_RESERVED)
    }

    /// Opens the pool of `range` within `subnet` in host-local's own layout.
    pub fn open_host_local(dir: &Path, subnet: Ipv4Net, range: Range) -> Result<Self, CniError> {
        Self::open_range(dir, subnet, range, LAST_RESERVED_HOST_LOCAL)
    }

    fn open_range(
        dir: &Path,
        subnet: Ipv4Net,
        range: Range,
        last_reserved: &'static str,
    ) -> Result<Self, CniError> {
        fs::create_dir_all(dir).map_err(|source| CniError::Ipam {
            op: "create directory",
            path: dir.to_owned(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            subnet,
            range,
            last_reserved,
        })
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    pub fn range(&self) -> Range {
        self.range
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the exclusive lock, blocking until no other holder is left.
    pub fn lock(&self) -> Result<IpamLock<'_>, CniError> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| self.err("open lock", &path, source))?;
        let flock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| self.err("lock", &path, errno.into()))?;
        let lock = IpamLock {
            ipam: self,
            _flock: flock,
        };
        if self.indexed() && !self.dir.join(BY_ID).is_dir() {
            lock.build_index()?;
        }
        Ok(lock)
    }

    /// Whether this pool keeps the id index: podshim's own layout does; host-local's, which
    /// host-local itself also writes, is always read whole.
    fn indexed(&self) -> bool {
        self.last_reserved == LAST_RESERVED
    }

    /// Leases an address to `id`; the same id always gets the address it already holds.
    pub fn allocate(&self, id: &str) -> Result<Ipv4Addr, CniError> {
        self.lock()?.allocate(id)
    }

    /// Releases whatever `id` holds; returns whether it held anything.
    pub fn release(&self, id: &str) -> Result<bool, CniError> {
        self.lock()?.release(id)
    }

    /// Every lease of the subnet: address → attachment id.
    pub fn leases(&self) -> Result<BTreeMap<Ipv4Addr, String>, CniError> {
        self.lock()?.leases()
    }

    fn err(&self, op: &'static str, path: &Path, source: io::Error) -> CniError {
        CniError::Ipam {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

impl IpamLock<'_> {
    /// See [`Ipam::allocate`].
    pub fn allocate(&self, id: &str) -> Result<Ipv4Addr, CniError> {
        self.allocate_for(id, None)
    }

    /// Leases an address to `id` on interface `ifname` (written as host-local does); the same
    /// holder always gets the address it already holds.
    pub fn allocate_for(&self, id: &str, ifname: Option<&str>) -> Result<Ipv4Addr, CniError> {
        validate_id(id)?;
        if let Some(ip) = self.held_by(id, ifname)? {
            return Ok(ip);
        }
        // Without the index every lease is read once; with it each candidate is looked up.
        let leases = match self.ipam.indexed() {
            true => None,
            false => Some(self.holders()?),
        };
        let subnet = self.ipam.subnet;
        let range = self.ipam.range;
        let (first, last) = (u32::from(range.start), u32::from(range.end));
        // Round-robin from the address after the last one handed out, as host-local does, so
        // an address just released is not reused at once by a different Pod.
        let start = match self.last_reserved()? {
            Some(ip) if (first..last).contains(&u32::from(ip)) => u32::from(ip) + 1,
            _ => first,
        };
        let size = last - first + 1;
        for i in 0..size {
            let candidate = Ipv4Addr::from(first + (start - first + i) % size);
            let taken = match &leases {
                Some(leases) => leases.contains_key(&candidate),
                None => self.leased(candidate)?,
            };
            if taken || candidate == range.gateway {
                continue;
            }
            let content = match ifname {
                Some(ifname) => format!("{id}\r\n{ifname}"),
                None => id.to_owned(),
            };
            // The index first: a crash between the two leaves an entry pointing at no lease of
            // this id, which `held_by` ignores, never a lease the index misses.
            if let Some(entry) = self.index_entry(id) {
                self.write_atomic(&entry, &candidate.to_string())?;
            }
            self.write_atomic(&candidate.to_string(), &content)?;
            self.write_atomic(self.ipam.last_reserved, &candidate.to_string())?;
            return Ok(candidate);
        }
        Err(CniError::RangeExhausted { subnet })
    }

    /// See [`Ipam::release`].
    pub fn release(&self, id: &str) -> Result<bool, CniError> {
        self.release_for(id, None)
    }

    /// Releases what `id` holds on `ifname` (on any interface when `None`).
    pub fn release_for(&self, id: &str, ifname: Option<&str>) -> Result<bool, CniError> {
        let mut released = false;
        if let Some(entry) = self.index_entry(id) {
            let mut removed = false;
            if let Some(ip) = self.held_by(id, ifname)? {
                let lease = self.ipam.dir.join(ip.to_string());
                removed = self.remove(&lease, "remove lease")?;
            }
            // The lease first, then its index entry (see `allocate_for`); an entry whose lease
            // is gone goes too.
            if removed || self.held_by(id, None)?.is_none() {
                self.remove(&self.ipam.dir.join(entry), "remove index entry")?;
            }
            return Ok(removed);
        }
        for (ip, holder) in self.holders()? {
            if holder.is(id, ifname) {
                let path = self.ipam.dir.join(ip.to_string());
                match fs::remove_file(&path) {
                    Ok(()) => released = true,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => return Err(self.ipam.err("remove lease", &path, source)),
                }
            }
        }
        Ok(released)
    }

    /// The address `id` (on `ifname`, when both sides know it) holds: from the index where
    /// the pool keeps one, else from every lease.
    pub fn held_by(&self, id: &str, ifname: Option<&str>) -> Result<Option<Ipv4Addr>, CniError> {
        let Some(entry) = self.index_entry(id) else {
            return Ok(self
                .holders()?
                .into_iter()
                .find(|(_, h)| h.is(id, ifname))
                .map(|(ip, _)| ip));
        };
        let path = self.ipam.dir.join(entry);
        let ip = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<Ipv4Addr>().ok(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(self.ipam.err("read", &path, source)),
        };
        // The lease file is the truth: an entry left by a crash may point elsewhere.
        Ok(ip.filter(|ip| {
            self.holder_at(*ip)
                .ok()
                .flatten()
                .is_some_and(|h| h.is(id, ifname))
        }))
    }

    /// Who holds `ip`, if anybody.
    fn holder_at(&self, ip: Ipv4Addr) -> Result<Option<Holder>, CniError> {
        let path = self.ipam.dir.join(ip.to_string());
        match fs::read_to_string(&path) {
            Ok(content) => Ok(Some(parse_holder(&content))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.ipam.err("read lease", &path, source)),
        }
    }

    /// Whether a lease file for `ip` exists.
    fn leased(&self, ip: Ipv4Addr) -> Result<bool, CniError> {
        let path = self.ipam.dir.join(ip.to_string());
        match fs::symlink_metadata(&path) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.ipam.err("look up lease", &path, source)),
        }
    }

    /// The index file of `id` (relative to the pool), where the pool keeps an index and the id
    /// can name a file.
    fn index_entry(&self, id: &str) -> Option<String> {
        let plain = !id.contains('/') && id != "." && id != "..";
        (self.ipam.indexed() && plain).then(|| format!("{BY_ID}/{id}"))
    }

    /// Index every lease of a pool that has no index yet (made by an older podshim).
    fn build_index(&self) -> Result<(), CniError> {
        let dir = self.ipam.dir.join(BY_ID);
        let tmp = self.ipam.dir.join(format!(".{BY_ID}.tmp"));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir(&tmp).map_err(|source| self.ipam.err("create", &tmp, source))?;
        for (ip, holder) in self.holders()? {
            if let Some(entry) = self.index_entry(&holder.id) {
                let path = tmp.join(entry.trim_start_matches(&format!("{BY_ID}/")));
                fs::write(&path, ip.to_string())
                    .map_err(|source| self.ipam.err("write", &path, source))?;
            }
        }
        // Whole or not at all: the directory appears complete, or a later lock builds it again.
        fs::rename(&tmp, &dir).map_err(|source| self.ipam.err("create", &dir, source))
    }

    /// Removes `path`; whether it was there.
    fn remove(&self, path: &Path, op: &'static str) -> Result<bool, CniError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(self.ipam.err(op, path, source)),
        }
    }

    /// See [`Ipam::leases`].
    pub fn leases(&self) -> Result<BTreeMap<Ipv4Addr, String>, CniError> {
        Ok(self
            .holders()?
            .into_iter()
            .map(|(ip, holder)| (ip, holder.id))
            .collect())
    }

    /// Whether `range` still has an address nobody holds.
    pub fn has_free(&self) -> Result<bool, CniError> {
        let leases = self.holders()?;
        let range = self.ipam.range;
        Ok((u32::from(range.start)..=u32::from(range.end))
            .map(Ipv4Addr::from)
            .any(|ip| ip != range.gateway && !leases.contains_key(&ip)))
    }

    /// Every lease of the subnet with its holder.
    pub fn holders(&self) -> Result<BTreeMap<Ipv4Addr, Holder>, CniError> {
        let dir = &self.ipam.dir;
        let entries = fs::read_dir(dir).map_err(|source| self.ipam.err("list", dir, source))?;
        let mut leases = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|source| self.ipam.err("list", dir, source))?;
            // Only files named by an address of this subnet are leases; the lock, the
            // round-robin marker and temporary files are not.
            let Some(ip) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<Ipv4Addr>().ok())
                .filter(|ip| self.ipam.subnet.contains(*ip))
            else {
                continue;
            };
            let path = entry.path();
            match fs::read_to_string(&path) {
                Ok(content) => {
                    leases.insert(ip, parse_holder(&content));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(self.ipam.err("read lease", &path, source)),
            }
        }
        Ok(leases)
    }

    fn last_reserved(&self) -> Result<Option<Ipv4Addr>, CniError> {
        let path = self.ipam.dir.join(self.ipam.last_reserved);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(s.trim().parse().ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(self.ipam.err("read", &path, source)),
        }
    }

    /// Writes a temporary file and renames it over `name`, so a crash of the writer never leaves
    /// a torn file. Not fsync'ed (like host-local): a lease only means something while its Pod
    /// lives, and no Pod outlives a machine crash; the sync cost more than the whole allocation.
    fn write_atomic(&self, name: &str, content: &str) -> Result<(), CniError> {
        let path = self.ipam.dir.join(name);
        // Next to the file, which may be in `by-id/`.
        let file = path.file_name().unwrap_or_default().to_string_lossy();
        let tmp = path.with_file_name(format!(".{file}.tmp"));
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(content.as_bytes())?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|source| {
            let _ = fs::remove_file(&tmp);
            self.ipam.err("write", &path, source)
        })
    }
}

/// A lease file's holder: host-local writes "id\r\nifname"; podshim's own leases hold the id.
fn parse_holder(content: &str) -> Holder {
    let mut lines = content.lines().map(str::trim);
    let id = lines.next().unwrap_or_default().to_owned();
    let ifname = lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
    Holder { id, ifname }
}

fn validate_id(id: &str) -> Result<(), CniError> {
    let invalid = |reason| CniError::InvalidAttachmentId {
        id: id.to_owned(),
        reason,
    };
    if id.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid("must not contain whitespace or control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn pool(subnet: &str) -> (tempfile::TempDir, Ipam) {
        let dir = tempfile::tempdir().unwrap();
        let ipam = Ipam::open(dir.path(), subnet.parse().unwrap()).unwrap();
        (dir, ipam)
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn allocates_in_order_skipping_network_gateway_and_broadcast() {
        let (_dir, ipam) = pool("10.9.0.0/29");
        let got: Vec<_> = (0..5)
            .map(|i| ipam.allocate(&format!("pod{i}")).unwrap())
            .collect();
        let want: Vec<_> = (2..=6).map(|h| Ipv4Addr::new(10, 9, 0, h)).collect();
        assert_eq!(got, want);
        assert!(matches!(
            ipam.allocate("pod5"),
            Err(CniError::RangeExhausted { .. })
        ));
    }

    #[test]
    fn allocation_is_idempotent_per_id() {
        let (_dir, ipam) = pool("10.9.0.0/24");
        let a = ipam.allocate("a").unwrap();
        ipam.allocate("b").unwrap();
        assert_eq!(ipam.allocate("a").unwrap(), a);
        assert_eq!(ipam.leases().unwrap().len(), 2);
    }

    #[test]
    fn release_frees_and_round_robin_continues() {
        let (dir, ipam) = pool("10.9.0.0/24");
        assert_eq!(ipam.allocate("a").unwrap(), ip("10.9.0.2"));
        assert_eq!(ipam.allocate("b").unwrap(), ip("10.9.0.3"));
        assert!(ipam.release("a").unwrap());
        assert!(!ipam.release("a").unwrap(), "second release finds nothing");
        assert!(!dir.path().join("10.9.0.2").exists());
        // The freed .2 is not handed out again before the range wraps.
        assert_eq!(ipam.allocate("c").unwrap(), ip("10.9.0.4"));
        let leases = ipam.leases().unwrap();
        assert_eq!(leases.get(&ip("10.9.0.3")).map(String::as_str), Some("b"));
        assert!(!leases.contains_key(&ip("10.9.0.2")));
    }

    #[test]
    fn exhausts_a_slash_30_then_wraps_after_release() {
        let (_dir, ipam) = pool("192.168.7.4/30");
        assert_eq!(ipam.allocate("a").unwrap(), ip("192.168.7.6"));
        let err = ipam.allocate("b").unwrap_err();
        assert!(matches!(err, CniError::RangeExhausted { .. }));
        assert_eq!(err.to_string(), "no free address left in 192.168.7.4/30");
        assert_eq!(err.code(), 100);
        ipam.release("a").unwrap();
        assert_eq!(ipam.allocate("b").unwrap(), ip("192.168.7.6"));
    }

    #[test]
    fn files_are_host_local_style_and_written_atomically() {
        let (dir, ipam) = pool("10.9.0.0/24");
        ipam.allocate("pod-a").unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        // No temporary file is left behind.
        assert_eq!(names, ["10.9.0.2", "by-id", "last_reserved_ip", "lock"]);
        assert_eq!(
            fs::read_to_string(dir.path().join("by-id/pod-a")).unwrap(),
            "10.9.0.2"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("10.9.0.2")).unwrap(),
            "pod-a"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(LAST_RESERVED)).unwrap(),
            "10.9.0.2"
        );
        // A lease written by host-local itself ("id\r\nifname") is understood, and stray
        // files are ignored.
        fs::write(dir.path().join("10.9.0.9"), "other\r\neth0").unwrap();
        fs::write(dir.path().join(".10.9.0.3.tmp"), "torn").unwrap();
        fs::write(dir.path().join("10.10.0.5"), "foreign").unwrap();
        let leases = ipam.leases().unwrap();
        assert_eq!(leases.len(), 2);
        assert_eq!(leases[&ip("10.9.0.9")], "other");
    }

    #[test]
    fn the_id_index_is_built_for_an_old_pool_and_kept_in_step() {
        let (dir, ipam) = pool("10.9.0.0/24");
        // A pool an older podshim made: leases, no index.
        fs::write(dir.path().join("10.9.0.7"), "old").unwrap();
        fs::write(dir.path().join(LAST_RESERVED), "10.9.0.7").unwrap();
        assert_eq!(ipam.allocate("old").unwrap(), ip("10.9.0.7"));
        assert_eq!(
            fs::read_to_string(dir.path().join("by-id/old")).unwrap(),
            "10.9.0.7"
        );
        assert_eq!(ipam.allocate("new").unwrap(), ip("10.9.0.8"));
        // An entry a crash left pointing at another holder's lease is not believed.
        fs::write(dir.path().join("by-id/ghost"), "10.9.0.8").unwrap();
        assert_eq!(ipam.allocate("ghost").unwrap(), ip("10.9.0.9"));
        assert!(ipam.release("new").unwrap());
        assert!(!dir.path().join("by-id/new").exists());
        assert!(!dir.path().join("10.9.0.8").exists());
        assert!(!ipam.release("new").unwrap(), "released twice");
        assert_eq!(ipam.leases().unwrap().len(), 2);
    }

    #[test]
    fn rejects_bad_ids() {
        let (_dir, ipam) = pool("10.9.0.0/24");
        for bad in ["", "a b", "a\nb"] {
            let err = ipam.allocate(bad).unwrap_err();
            assert!(matches!(err, CniError::InvalidAttachmentId { .. }), "{err}");
        }
    }

    #[test]
    fn twenty_threads_get_distinct_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let subnet: Ipv4Net = "10.9.0.0/24".parse().unwrap();
        let path = Arc::new(dir.path().to_owned());
        let threads: Vec<_> = (0..20)
            .map(|i| {
                let path = Arc::clone(&path);
                std::thread::spawn(move || {
                    // A handle per thread, as separate processes would have.
                    let ipam = Ipam::open(&path, subnet).unwrap();
                    ipam.allocate(&format!("pod{i}")).unwrap()
                })
            })
            .collect();
        let ips: BTreeSet<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(ips.len(), 20);
        let ipam = Ipam::open(dir.path(), subnet).unwrap();
        assert_eq!(ipam.leases().unwrap().len(), 20);
    }

    /// Several processes allocate at once: the test binary re-runs itself as the children.
    #[test]
    fn several_processes_get_distinct_addresses() {
        const CHILD_ENV: &str = "PODSHIM_CNI_IPAM_CHILD_DIR";
        if let Ok(dir) = std::env::var(CHILD_ENV) {
            // Child mode: allocate a handful and exit.
            let ipam = Ipam::open(Path::new(&dir), "10.9.0.0/24".parse().unwrap()).unwrap();
            let pid = std::process::id();
            for i in 0..5 {
                ipam.allocate(&format!("p{pid}-{i}")).unwrap();
            }
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let exe = std::env::current_exe().unwrap();
        let children: Vec<_> = (0..6)
            .map(|_| {
                std::process::Command::new(&exe)
                    .args([
                        "--exact",
                        "ipam::tests::several_processes_get_distinct_addresses",
                        "--test-threads=1",
                        "--quiet",
                    ])
                    .env(CHILD_ENV, dir.path())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for mut child in children {
            assert!(child.wait().unwrap().success());
        }
        let ipam = Ipam::open(dir.path(), "10.9.0.0/24".parse().unwrap()).unwrap();
        let leases = ipam.leases().unwrap();
        assert_eq!(leases.len(), 30, "{leases:?}");
        let holders: BTreeSet<_> = leases.values().collect();
        assert_eq!(holders.len(), 30);
    }
}
