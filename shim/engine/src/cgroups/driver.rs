//! The cgroup driver: who creates and removes podshim's cgroups. `cgroupfs`: podshim itself,
//! under `/podshim/<pod-uid>`; `systemd`: systemd, as units, so that on a systemd host the
//! cgroup tree has one owner (systemd reorganises, and on reload resets, cgroups it does not
//! know of; the kubelet and runc use their systemd driver there for that reason).
//!
//! With the systemd driver a Pod is the transient slice `podshim-pod<uid>.slice` (in
//! `podshim.slice`, the way the kubelet makes `kubepods-…-pod<uid>.slice`), whose `TasksMax` is
//! the Pod's `pids.max`; each container is the transient scope `podshim-pod<uid>-<name>.scope`
//! in it, made by libcontainer's systemd manager with `Delegate=yes` (what runc and containerd
//! do with `SystemdCgroup = true`). Stopping the slice kills what is left and removes both.
//!
//! The slice is started and stopped through `busctl` (part of systemd, so on every host this
//! driver runs on) rather than a D-Bus library of our own: one call per Pod start and stop.

use std::process::Command;
use std::sync::OnceLock;

use super::*;

/// The slice every Pod slice nests in (`podshim-pod<uid>.slice` is its child by systemd's naming).
pub const SLICE: &str = "podshim.slice";
/// The prefix of every container scope (`slice:prefix:name` of `linux.cgroupsPath`).
pub const SCOPE_PREFIX: &str = "podshim";

/// Who owns podshim's cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Cgroupfs,
    Systemd,
}

static CURRENT: OnceLock<Driver> = OnceLock::new();

/// The environment variable that chooses the driver (the CLI's `--cgroup-driver` sets it too).
pub const ENV: &str = "PODSHIM_CGROUP_DRIVER";

impl Driver {
    pub fn parse(s: &str) -> Result<Self, CgroupError> {
        match s {
            "cgroupfs" => Ok(Driver::Cgroupfs),
            "systemd" => Ok(Driver::Systemd),
            _ => Err(CgroupError::Driver(format!(
                "unknown cgroup driver {s:?}: want systemd or cgroupfs"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::Cgroupfs => "cgroupfs",
            Driver::Systemd => "systemd",
        }
    }

    /// The default, by the kubelet's advice (use systemd's driver when systemd is the init
    /// system; it is required with cgroup v2 there): `systemd` when the host was booted with
    /// systemd (`/run/systemd/system` is a directory, sd_booted(3)) and its cgroups are v2 only
    /// (cgroup2 at /sys/fs/cgroup), else `cgroupfs`. (On a v1 or hybrid host podshim keeps the
    /// cgroupfs driver: libcontainer's systemd manager is v2-only.)
    pub fn detect() -> Self {
        if Self::systemd_usable().is_ok() {
            Driver::Systemd
        } else {
            Driver::Cgroupfs
        }
    }

    /// Why the systemd driver cannot work on this host, if it cannot.
    pub fn systemd_usable() -> Result<(), CgroupError> {
        if !Path::new("/run/systemd/system").is_dir() {
            return Err(CgroupError::Driver(
                "the systemd cgroup driver needs a host booted with systemd (no /run/systemd/system)"
                    .into(),
            ));
        }
        match Cgroups::detect()?.mode {
            Mode::Unified => Ok(()),
            _ => Err(CgroupError::Driver(
                "the systemd cgroup driver needs cgroup v2 (cgroup2 at /sys/fs/cgroup)".into(),
            )),
        }
    }

    /// The driver of this process: the one [`Driver::set`] chose, else `$PODSHIM_CGROUP_DRIVER`,
    /// else [`Driver::detect`]. An invalid environment value falls back to detection (the CLI
    /// refuses it before it gets here).
    pub fn current() -> Self {
        *CURRENT.get_or_init(|| {
            std::env::var(ENV)
                .ok()
                .and_then(|v| Driver::parse(&v).ok())
                .unwrap_or_else(Driver::detect)
        })
    }

    /// Choose the driver of this process (before any Pod is made); checks that systemd's can
    /// work. Processes it starts inherit the choice through `$PODSHIM_CGROUP_DRIVER`.
    pub fn set(driver: Driver) -> Result<(), CgroupError> {
        if driver == Driver::Systemd {
            Self::systemd_usable()?;
        }
        let _ = CURRENT.set(driver);
        Ok(())
    }
}

/// The Pod cgroup of `uid` under `driver`, from the hierarchy's root.
pub fn pod_path_for(driver: Driver, uid: &str) -> String {
    match driver {
        Driver::Cgroupfs => format!("/{TOP}/{uid}"),
        // A '-' in a slice name means nesting: the kubelet writes the uid's as '_'.
        Driver::Systemd => format!("/{SLICE}/{}", pod_slice(uid)),
    }
}

fn pod_slice(uid: &str) -> String {
    format!("podshim-pod{}.slice", uid.replace('-', "_"))
}

/// The slice unit of a Pod cgroup path made by [`pod_path_for`] with the systemd driver.
pub fn slice_unit(pod: &str) -> Option<&str> {
    let unit = pod.rsplit('/').next()?;
    unit.ends_with(".slice").then_some(unit)
}

/// The `linux.cgroupsPath` of container `name` of the Pod whose cgroup is `pod`: below it in
/// the cgroupfs layout, or the systemd form `slice:podshim:pod<uid>-<name>` when the Pod is a
/// slice (whatever this process's driver: a Pod keeps the driver it was made with).
pub fn container_path(pod: &str, name: &str) -> String {
    match slice_unit(pod) {
        Some(slice) => {
            let stem = slice
                .trim_end_matches(".slice")
                .trim_start_matches(SCOPE_PREFIX)
                .trim_start_matches('-');
            format!("{slice}:{SCOPE_PREFIX}:{stem}-{name}")
        }
        None => format!("{pod}/{name}"),
    }
}

/// Whether a `linux.cgroupsPath` is in the systemd driver's `slice:prefix:name` form.
pub fn is_systemd_path(path: &str) -> bool {
    // An absolute path is a cgroupfs one, colons and all (runc's cgroupfs driver takes a
    // relative `slice:prefix:name` as a directory name below its own cgroup).
    !path.starts_with('/') && path.split(':').count() == 3
}

/// Start the Pod's transient slice with `TasksMax` (its `pids.max`) and the Pod-level `limits`,
/// and wait until its cgroup directory exists (the unit's start job runs after the call
/// returns).
pub(super) fn start_slice(
    hierarchy: &Path,
    pod: &str,
    unit: &str,
    pids_max: u64,
    limits: &Limits,
) -> Result<(), CgroupError> {
    let max = pids_max.to_string();
    let description = format!("podshim Pod {unit}");
    // The Pod-level limits as the unit's properties (as runc's systemd manager sets them): only
    // then does systemd enable the cpu controller in the slice (CPUAccounting alone does not
    // since systemd 252, so `cpu.weight` is missing), and a unit systemd re-realizes keeps them.
    let mut extra: Vec<(&str, String)> = Vec::new();
    if let Some(m) = limits.memory {
        extra.push(("MemoryMax", m.max(0).to_string()));
        if let Some(s) = limits.memory_swap {
            extra.push(("MemorySwapMax", (s - m).max(0).to_string()));
        }
    }
    if let Some(sh) = limits.cpu_shares {
        extra.push(("CPUWeight", shares_to_weight(sh).to_string()));
    }
    if let Some(q) = limits.cpu_quota.filter(|q| *q > 0) {
        let period = limits.cpu_period.unwrap_or(100_000).max(1);
        extra.push(("CPUQuotaPeriodUSec", period.to_string()));
        // systemd keeps whole percents: round up to 10 ms per second, as runc does, so that
        // the containers' quotas below still fit.
        let per_sec = (q as u64 * 1_000_000 / period).div_ceil(10_000) * 10_000;
        extra.push(("CPUQuotaPerSecUSec", per_sec.to_string()));
    }
    let count = (7 + extra.len()).to_string();
    let mut args: Vec<&str> = vec![
        "StartTransientUnit",
        "ssa(sv)a(sa(sv))",
        unit,
        "fail",
        &count,
    ];
    for (name, value) in &extra {
        args.extend([*name, "t", value.as_str()]);
    }
    // StartTransientUnit(name, mode, properties a(sv), aux a(sa(sv))). Accounting on, so that
    // systemd enables the controllers the containers' scopes need on the way down.
    args.extend([
        "Description",
        "s",
        &description,
        "DefaultDependencies",
        "b",
        "false",
        "TasksMax",
        "t",
        &max,
        "MemoryAccounting",
        "b",
        "true",
        "CPUAccounting",
        "b",
        "true",
        "IOAccounting",
        "b",
        "true",
        "TasksAccounting",
        "b",
        "true",
        "0",
    ]);
    busctl(&args)?;
    let dir = join(hierarchy, pod);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !dir.is_dir() {
        if std::time::Instant::now() > deadline {
            return Err(CgroupError::Systemd {
                call: format!("start {unit}"),
                detail: format!("{} did not appear within 5 s", dir.display()),
            });
        }
        sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Stop the Pod's slice: systemd kills what is left in it and removes its cgroups (the
/// containers' scopes too). A unit systemd does not know (already stopped) is done.
pub(super) fn stop_slice(hierarchy: &Path, pod: &str, unit: &str) -> Result<(), CgroupError> {
    match busctl(&["StopUnit", "ss", unit, "replace"]) {
        Ok(()) => {}
        Err(CgroupError::Systemd { detail, .. }) if detail.contains("not loaded") => {}
        Err(e) => return Err(e),
    }
    // The stop job finishes after the call: wait for the directory to go, briefly.
    let dir = join(hierarchy, pod);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while dir.exists() && std::time::Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// Call a method of systemd's manager object on the system bus.
fn busctl(args: &[&str]) -> Result<(), CgroupError> {
    let mut cmd = Command::new("busctl");
    // Its own process group: a Ctrl-C on podshim's terminal (SIGINT to the foreground group)
    // must not kill a call that starts or stops a Pod's scope half-way; podshim stops the Pod
    // itself.
    podshim_cni::own_process_group(&mut cmd);
    let out = cmd
        .args([
            "call",
            "--system",
            "--quiet",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| CgroupError::Systemd {
            call: format!("busctl {}", args[0]),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(CgroupError::Systemd {
        call: format!("{} {}", args[0], args.get(2).unwrap_or(&"")),
        detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}
