//! What a container sees of itself, read from inside by a busybox shell script (run through any
//! exec path: `ctr task exec`, CRI ExecSync): its init's and the exec'd process's capabilities,
//! no-new-privileges and seccomp mode, user, mount table (masked and read-only paths included),
//! resource limits, oom_score_adj and the cgroup limits it can read. Values that differ between
//! two runs of the same container (pids, ids, addresses, times) are left out, so two runtimes'
//! answers can be compared with `==`.

use std::collections::BTreeMap;

use serde::Serialize;

/// The script: sections introduced by `== NAME` lines. PID 1 is the container's init (each
/// container has its own PID namespace here).
pub const SCRIPT: &str = r#"
section() { echo "== $1"; }
section init; cat /proc/1/status
section self; cat /proc/self/status
section mountinfo; cat /proc/1/mountinfo
section limits; cat /proc/1/limits
section oom_score_adj; cat /proc/1/oom_score_adj
section id; id
section hostname; hostname
section masked
for p in /proc/acpi /proc/asound /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list \
         /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware \
         /sys/devices/virtual/powercap; do
    if [ -d $p ]; then
        if [ -z "$(ls -A $p)" ]; then echo "$p empty-dir"; else echo "$p dir"; fi
    elif [ -e $p ]; then
        if [ -z "$(head -c 1 $p 2>/dev/null)" ]; then echo "$p empty-file"; else echo "$p file"; fi
    else
        echo "$p absent"
    fi
done
for f in memory/memory.limit_in_bytes memory.max cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us \
         cpu/cpu.shares cpu.max cpu.weight pids/pids.max pids.max; do
    if [ -r /sys/fs/cgroup/$f ]; then section "cgroup $f"; cat /sys/fs/cgroup/$f; fi
done
"#;

/// The security-relevant lines of /proc/PID/status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub cap_inh: String,
    pub cap_prm: String,
    pub cap_eff: String,
    pub cap_bnd: String,
    pub cap_amb: String,
    pub no_new_privs: String,
    /// 0 disabled, 1 strict, 2 filter.
    pub seccomp: String,
    pub uid: String,
    pub gid: String,
    pub groups: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inside {
    pub init: Status,
    pub exec: Status,
    /// `MOUNT_POINT FSTYPE OPTIONS` for every mount, in order (options: the per-mount flags of
    /// mountinfo's sixth field, e.g. `ro,nosuid,nodev,noexec,relatime`).
    pub mounts: Vec<String>,
    /// /proc/1/limits: name -> `SOFT HARD`.
    pub limits: BTreeMap<String, String>,
    pub oom_score_adj: String,
    pub id: String,
    pub hostname: String,
    /// Each of containerd's masked paths (and powercap, which 1.6 does not mask): `absent`,
    /// `empty-file` or `empty-dir` (masked: a bind of /dev/null, an empty read-only tmpfs), or
    /// `file`/`dir` with content.
    pub masked: BTreeMap<String, String>,
    /// The cgroup files of the script that exist (v1 or v2 names) and their contents.
    pub cgroup: BTreeMap<String, String>,
}

/// Split the script's output into its sections.
pub fn sections(out: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut name: Option<String> = None;
    let mut body = String::new();
    for line in out.lines() {
        if let Some(n) = line.strip_prefix("== ") {
            if let Some(prev) = name.replace(n.to_string()) {
                map.insert(prev, std::mem::take(&mut body));
            }
        } else if name.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(prev) = name {
        map.insert(prev, body);
    }
    map
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in status:\n{status}"))
}

pub fn parse_status(status: &str) -> Status {
    let f = |n| {
        field(status, n)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    Status {
        cap_inh: f("CapInh"),
        cap_prm: f("CapPrm"),
        cap_eff: f("CapEff"),
        cap_bnd: f("CapBnd"),
        cap_amb: f("CapAmb"),
        no_new_privs: f("NoNewPrivs"),
        seccomp: f("Seccomp"),
        uid: f("Uid"),
        gid: f("Gid"),
        groups: f("Groups"),
    }
}

/// `MOUNT_POINT FSTYPE OPTIONS` of each mountinfo line.
pub fn parse_mounts(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let fstype = post.split(' ').next()?;
            Some(format!("{} {fstype} {}", pre.get(4)?, pre.get(5)?))
        })
        .collect()
}

/// /proc/PID/limits rows: `Max open files  1024  1024  files` -> (`Max open files`, `1024 1024`).
pub fn parse_limits(limits: &str) -> BTreeMap<String, String> {
    limits
        .lines()
        .skip(1)
        .filter_map(|l| {
            // The name column is 26 characters wide, then soft and hard.
            let (name, rest) = l.split_at_checked(26)?;
            let mut w = rest.split_whitespace();
            Some((
                name.trim().to_string(),
                format!("{} {}", w.next()?, w.next()?),
            ))
        })
        .collect()
}

pub fn parse(out: &str) -> Inside {
    let s = sections(out);
    let get = |n: &str| {
        s.get(n)
            .unwrap_or_else(|| panic!("no section {n} in:\n{out}"))
            .trim()
            .to_string()
    };
    Inside {
        init: parse_status(&get("init")),
        exec: parse_status(&get("self")),
        mounts: parse_mounts(&get("mountinfo")),
        limits: parse_limits(&get("limits")),
        oom_score_adj: get("oom_score_adj"),
        id: get("id"),
        hostname: get("hostname"),
        masked: get("masked")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(p, state)| (p.to_string(), state.to_string()))
            .collect(),
        cgroup: s
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("cgroup ")
                    .map(|f| (f.to_string(), v.trim().to_string()))
            })
            .collect(),
    }
}

impl Inside {
    /// The mount at `point`, if any: `FSTYPE OPTIONS`.
    pub fn mount(&self, point: &str) -> Option<&str> {
        self.mounts
            .iter()
            .rev()
            .find_map(|m| m.strip_prefix(point)?.strip_prefix(' '))
    }

    /// Capability names of a `CapEff`-style hex mask (bit numbers of capabilities(7)).
    pub fn cap_names(mask: &str) -> Vec<&'static str> {
        const NAMES: [&str; 41] = [
            "CHOWN",
            "DAC_OVERRIDE",
            "DAC_READ_SEARCH",
            "FOWNER",
            "FSETID",
            "KILL",
            "SETGID",
            "SETUID",
            "SETPCAP",
            "LINUX_IMMUTABLE",
            "NET_BIND_SERVICE",
            "NET_BROADCAST",
            "NET_ADMIN",
            "NET_RAW",
            "IPC_LOCK",
            "IPC_OWNER",
            "SYS_MODULE",
            "SYS_RAWIO",
            "SYS_CHROOT",
            "SYS_PTRACE",
            "SYS_PACCT",
            "SYS_ADMIN",
            "SYS_BOOT",
            "SYS_NICE",
            "SYS_RESOURCE",
            "SYS_TIME",
            "SYS_TTY_CONFIG",
            "MKNOD",
            "LEASE",
            "AUDIT_WRITE",
            "AUDIT_CONTROL",
            "SETFCAP",
            "MAC_OVERRIDE",
            "MAC_ADMIN",
            "SYSLOG",
            "WAKE_ALARM",
            "BLOCK_SUSPEND",
            "AUDIT_READ",
            "PERFMON",
            "BPF",
            "CHECKPOINT_RESTORE",
        ];
        let bits = u64::from_str_radix(mask, 16).unwrap_or_else(|_| panic!("cap mask {mask}"));
        (0..NAMES.len())
            .filter(|b| bits & (1 << b) != 0)
            .map(|b| NAMES[b])
            .collect()
    }

    /// The answers to record and compare: limits the container inherited unchanged from the
    /// test process (through containerd) read `inherited`, and disk filesystem types of bind
    /// mounts (`ext4`, `xfs`...) read `hostfs`, so that the recording holds on another host of
    /// the same kind.
    pub fn to_json(&self) -> serde_json::Value {
        let own = std::fs::read_to_string("/proc/self/limits")
            .map(|l| parse_limits(&l))
            .unwrap_or_default();
        let mut n = self.clone();
        for (name, value) in n.limits.iter_mut() {
            if own.get(name) == Some(value) {
                *value = "inherited".into();
            }
        }
        n.mounts = n.mounts.iter().map(|m| normalize_mount(m)).collect();
        serde_json::to_value(n).unwrap()
    }

    /// A cgroup limit the container reads, by name, from its v1 or v2 file: `memory` (bytes or
    /// `max`), `cpu_quota` (`QUOTA PERIOD`, `max` for none) or `cpu_shares` (v1 only).
    pub fn cgroup_limit(&self, what: &str) -> Option<String> {
        let c = &self.cgroup;
        match what {
            "memory" => c
                .get("memory/memory.limit_in_bytes")
                .or_else(|| c.get("memory.max"))
                .cloned(),
            "cpu_quota" => match (
                c.get("cpu/cpu.cfs_quota_us"),
                c.get("cpu/cpu.cfs_period_us"),
            ) {
                (Some(q), Some(p)) if q == "-1" => Some(format!("max {p}")),
                (Some(q), Some(p)) => Some(format!("{q} {p}")),
                _ => c.get("cpu.max").cloned(),
            },
            "cpu_shares" => c.get("cpu/cpu.shares").cloned(),
            _ => None,
        }
    }
}

/// Kernel and container filesystems keep their type; anything else is a host directory's.
fn normalize_mount(m: &str) -> String {
    const PSEUDO: [&str; 10] = [
        "overlay", "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "devtmpfs",
        "bpf",
    ];
    let mut w: Vec<&str> = m.splitn(3, ' ').collect();
    if w.len() == 3 && !PSEUDO.contains(&w[1]) {
        w[1] = "hostfs";
    }
    w.join(" ")
}
