//! One container, from an OCI runtime spec and a root filesystem to its deletion: create (its
//! init waits, stopped before the user's process), start, signal, pause and resume (the freezer
//! cgroup), update (new cgroup limits), stats and pids (read from its cgroups), exec, exit, delete.
//! Its state is a [`ContainerState`] changed only through [`ContainerState::after`].
//!
//! Creating (and exec) go through the [`Runtime`]'s spawner, the one place that lets libcontainer fork;
//! everything else here may be called from any thread. Whoever is the init's parent (this
//! process in-process, the helper otherwise) reaps it and reports its exit with
//! [`Container::exited`], exactly once.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcgroups::common::{CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::{LinuxResources, Spec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups::Cgroups;
use crate::error::Error;
use crate::journal::{Journal, Resource};
use crate::rootfs::{self, Rootfs};
use crate::spawner::{Runtime, Stdio};
use crate::state::{ContainerState, Operation};
use crate::usage;
pub use crate::usage::{HugeTlbUsage, IoUsage};
use crate::{chain, teardown};

/// What a container is created from.
pub struct Create {
    /// The container id: `[A-Za-z0-9_+.-]`, unique in the runtime directory.
    pub id: String,
    /// The bundle directory: its `config.json` is written from `spec`.
    pub bundle: PathBuf,
    /// The OCI runtime spec. `root.path` is where the root filesystem is mounted (relative to
    /// the bundle, or absolute).
    pub spec: Spec,
    pub rootfs: Rootfs,
    pub stdio: Stdio,
}

/// Resource usage of a container, read from its cgroups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// CPU time in nanoseconds: total, user, kernel.
    pub cpu_usage_ns: u64,
    pub cpu_user_ns: u64,
    pub cpu_kernel_ns: u64,
    pub cpu_throttled_periods: u64,
    /// Memory in bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`), and its limit.
    pub memory_usage: u64,
    pub memory_limit: u64,
    /// The page cache part of it, and the working set the kubelet reports (usage minus
    /// inactive file pages).
    pub memory_cache: u64,
    pub memory_working_set: u64,
    pub pids_current: u64,
    pub pids_limit: u64,
    /// How often the memory cgroup's OOM killer killed a process of it.
    pub oom_kills: u64,
    /// The raw `memory.stat` counters.
    pub memory_stat: std::collections::BTreeMap<String, u64>,
    /// hugetlb usage per page size (`2MB`, `1GB`, as the cgroup files name them).
    pub hugetlb: std::collections::BTreeMap<String, HugeTlbUsage>,
    /// Block I/O per device, in device order.
    pub io: Vec<IoUsage>,
}

/// A container this process created (or loaded).
#[derive(Debug)]
pub struct Container {
    pub id: String,
    /// libcontainer's state directory root (`<dir>/<id>/state.json`).
    pub runtime_dir: PathBuf,
    pub bundle: PathBuf,
    /// Where its root filesystem is mounted.
    pub rootfs: PathBuf,
    /// Its init process.
    pub pid: Pid,
    /// `linux.cgroupsPath` as a path from each hierarchy's root (the systemd driver's
    /// `slice:prefix:name` laid out as systemd does, see [`crate::cgroups::cgroupfs_path`]).
    pub cgroup: String,
    state: ContainerState,
    /// The init's exit code (128+N for a signal), once it has exited.
    exit: Option<i32>,
    /// A pidfd of the init, where the kernel has them: signals go to this process and no other,
    /// whatever happens to its PID.
    pidfd: Option<OwnedFd>,
}

/// A container whose root filesystem is mounted, `config.json` written and journal record made:
/// only libcontainer's create is left (and on its failure, undoing those).
pub(crate) struct Prepared {
    pub(crate) id: String,
    pub(crate) runtime_dir: PathBuf,
    pub(crate) bundle: PathBuf,
    rootfs: PathBuf,
    cgroup: String,
    /// The devices the systemd driver's scope must be given (libcontainer's systemd manager
    /// applies none on cgroup v2): `Some` only for a systemd `cgroupsPath`.
    scope_devices: Option<Option<Vec<libcontainer::oci_spec::runtime::LinuxDeviceCgroup>>>,
    /// Whether the spec's device rules allow `/dev/console` (see [`deny_console`]).
    console_allowed: bool,
    started: std::time::Instant,
}

impl Prepared {
    pub(crate) fn new(
        rt: &Runtime,
        journal: &mut Journal,
        mut c: Create,
    ) -> Result<(Prepared, Stdio), Error> {
        let runtime_dir = &rt.dir;
        let id = c.id.clone();
        let t = std::time::Instant::now();
        if runtime_dir.join(&id).join("state.json").exists() {
            return Err(Error::ContainerExists { id });
        }
        if let Some(p) = c.spec.process() {
            let args = p.args().clone().unwrap_or_default();
            let env = p.env().clone().unwrap_or_default();
            let limit = crate::arglimit::stack_limit(&c.spec);
            crate::arglimit::check(&args, &env, limit).map_err(|detail| {
                Error::ArgumentListTooLong {
                    id: id.clone(),
                    executable: args.first().cloned().unwrap_or_default(),
                    detail,
                }
            })?;
        }
        let root = c
            .spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .ok_or_else(|| Error::Spec {
                id: id.clone(),
                detail: "no root".into(),
            })?;
        let rootfs = if root.is_absolute() {
            root
        } else {
            c.bundle.join(root)
        };
        let cgroup = crate::cgroups::cgroupfs_spec_path(&mut c.spec);
        crate::private::create_dir_all(&c.bundle).map_err(Error::io("create", &c.bundle))?;
        crate::private::create_dir_all(runtime_dir).map_err(Error::io("create", runtime_dir))?;
        rootfs::mount(journal, &c.rootfs, &rootfs)?;
        tracing::debug!(
            container = id,
            step = "rootfs",
            elapsed_us = t.elapsed().as_micros() as u64,
            "create"
        );
        let prepared = Prepared {
            id: id.clone(),
            runtime_dir: runtime_dir.to_path_buf(),
            bundle: c.bundle.clone(),
            rootfs,
            cgroup,
            scope_devices: scope_devices(&c.spec),
            console_allowed: console_allowed(&c.spec),
            started: t,
        };
        let written = (|| -> Result<(), Error> {
            let cgroups = Cgroups::detect()?;
            cgroups.harden(&mut c.spec, &rt.cgroup_skeleton)?;
            let unified = cgroups.mode == crate::cgroups::Mode::Unified;
            crate::cgroups::memlock::keep(&mut c.spec, unified);
            let config = c.bundle.join("config.json");
            let json = serde_json::to_vec_pretty(&c.spec).map_err(|e| Error::Spec {
                id: id.clone(),
                detail: e.to_string(),
            })?;
            crate::private::write_file(&config, &json).map_err(Error::io("write", &config))?;
            journal.record(prepared.record())?;
            Ok(())
        })();
        match written {
            Ok(()) => Ok((prepared, c.stdio)),
            Err(e) => Err(prepared.undo(journal, e)),
        }
    }

    fn record(&self) -> Resource {
        Resource::Container {
            id: self.id.clone(),
            runtime_dir: self.runtime_dir.clone(),
            cgroup: (!self.cgroup.is_empty()).then(|| self.cgroup.clone()),
        }
    }

    /// The container once libcontainer's create returned; on its failure the container's
    /// records and root filesystem are removed again.
    pub(crate) fn finish(
        self,
        journal: &mut Journal,
        created: Result<crate::spawner::Created, Error>,
    ) -> Result<Container, Error> {
        let created = match created.and_then(|created| {
            if let Some(devices) = &self.scope_devices {
                systemd_scope_devices(&self.id, devices, &self.cgroup)?;
            }
            Ok(created)
        }) {
            Ok(created) => created,
            Err(e) => return Err(self.undo(journal, e)),
        };
        if !self.console_allowed {
            deny_console(&self.cgroup);
        }
        tracing::debug!(
            container = self.id,
            step = "created",
            elapsed_us = self.started.elapsed().as_micros() as u64,
            "create"
        );
        Ok(Container {
            id: self.id,
            runtime_dir: self.runtime_dir,
            bundle: self.bundle,
            rootfs: self.rootfs,
            pid: created.pid,
            cgroup: self.cgroup,
            state: ContainerState::Created,
            exit: None,
            pidfd: created.pidfd,
        })
    }

    /// Remove the container's record and root filesystem again after `e`.
    fn undo(self, journal: &mut Journal, e: Error) -> Error {
        let undo = [
            self.record(),
            Resource::Mount {
                path: self.rootfs.clone(),
            },
        ];
        let mut problems = Vec::new();
        for r in undo {
            match teardown::remove(&r) {
                Ok(()) => {
                    let _ = journal.forget(&r);
                }
                Err(p) => problems.push(p),
            }
        }
        if problems.is_empty() {
            without_cleanup_error(e)
        } else {
            Error::Rollback {
                error: Box::new(e),
                rollback: problems,
            }
        }
    }
}

fn runtime_err<'a>(
    id: &'a str,
    action: &'static str,
) -> impl FnOnce(libcontainer::error::LibcontainerError) -> Error + 'a {
    move |e| Error::Runtime {
        container: id.to_string(),
        action,
        detail: chain(&e),
    }
}

impl Container {
    /// Mount the root filesystem, write the bundle's `config.json` (0600: it holds the
    /// environment) and create the container: its init waits for [`Container::start`]. Every
    /// host resource is recorded in `journal` before it is made; on failure what was made is
    /// removed again.
    pub fn create(rt: &Runtime, journal: &mut Journal, c: Create) -> Result<Container, Error> {
        let (prepared, stdio) = Prepared::new(rt, journal, c)?;
        let created =
            rt.spawner
                .create(&prepared.id, &prepared.runtime_dir, &prepared.bundle, stdio);
        prepared.finish(journal, created)
    }

    /// Create several containers of one Pod at once (see [`crate::batch`]): the same as
    /// [`Container::create`] for each, in order, with the runtime's forks and waits overlapping.
    pub fn create_all(
        rt: &Runtime,
        journal: &mut Journal,
        creates: Vec<Create>,
    ) -> Vec<Result<Container, Error>> {
        crate::batch::create_all(rt, journal, creates)
    }

    pub fn state(&self) -> ContainerState {
        self.state
    }

    /// The init's exit code, once it has exited.
    pub fn exit_code(&self) -> Option<i32> {
        self.exit
    }

    fn transition(&mut self, op: Operation) -> Result<ContainerState, Error> {
        self.state.after(op).map_err(|state| Error::State {
            id: self.id.clone(),
            state,
            operation: op.name(),
        })
    }

    fn load(&self) -> Result<libcontainer::container::Container, Error> {
        let dir = self.runtime_dir.join(&self.id);
        if !dir.join("state.json").exists() {
            return Err(Error::NotFound {
                id: self.id.clone(),
            });
        }
        libcontainer::container::Container::load(dir).map_err(runtime_err(&self.id, "load"))
    }

    /// Run the user's process.
    pub fn start(&mut self) -> Result<(), Error> {
        let next = self.transition(Operation::Start)?;
        self.load()?
            .start()
            .map_err(runtime_err(&self.id, "start"))?;
        self.state = next;
        Ok(())
    }

    /// Signal the init (`all`: every process in the container's cgroup).
    pub fn kill(&mut self, signal: Signal, all: bool) -> Result<(), Error> {
        self.transition(Operation::Kill)?;
        if !all {
            if let Some(fd) = &self.pidfd {
                return crate::sys::pidfd_send_signal(fd, signal).or_else(|e| {
                    // Already gone (its exit not reaped yet): what a kill wants.
                    if e.raw_os_error() == Some(libc::ESRCH) {
                        Ok(())
                    } else {
                        Err(Error::io("signal", Path::new(&self.id))(e))
                    }
                });
            }
        }
        let mut c = self.load()?;
        c.kill(signal, all).map_err(runtime_err(&self.id, "signal"))
    }

    fn cgroup_manager(&self) -> Result<libcgroups::common::AnyCgroupManager, Error> {
        libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
            cgroup_path: PathBuf::from(&self.cgroup),
            systemd_cgroup: false,
            container_name: self.id.clone(),
        })
        .map_err(|e| Error::Runtime {
            container: self.id.clone(),
            action: "open the cgroups of",
            detail: chain(&e),
        })
    }

    /// Freeze every process of the container (libcontainer's pause, which also records the
    /// state, so that an exec into it is refused instead of freezing with it).
    pub fn pause(&mut self) -> Result<(), Error> {
        let next = self.transition(Operation::Pause)?;
        self.load()?
            .pause()
            .map_err(runtime_err(&self.id, "pause"))?;
        self.state = next;
        Ok(())
    }

    /// Thaw it again.
    pub fn resume(&mut self) -> Result<(), Error> {
        let next = self.transition(Operation::Resume)?;
        self.load()?
            .resume()
            .map_err(runtime_err(&self.id, "resume"))?;
        self.state = next;
        Ok(())
    }

    /// Apply new cgroup limits (containerd's `Update`: memory, CPU, pids...).
    pub fn update(&mut self, resources: &LinuxResources) -> Result<(), Error> {
        self.transition(Operation::Update)?;
        self.cgroup_manager()?
            .apply(&ControllerOpt {
                resources,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| Error::Runtime {
                container: self.id.clone(),
                action: "update",
                detail: chain(&e),
            })
    }

    /// Its resource usage.
    pub fn stats(&self) -> Result<Stats, Error> {
        let s = self.cgroup_manager()?.stats().map_err(|e| Error::Runtime {
            container: self.id.clone(),
            action: "read the stats of",
            detail: chain(&e),
        })?;
        let stat: std::collections::BTreeMap<String, u64> =
            s.memory.stats.clone().into_iter().collect();
        // The kubelet's working set: usage minus inactive file pages (v1 `total_inactive_file`,
        // v2 `inactive_file`).
        let inactive = stat
            .get("total_inactive_file")
            .or_else(|| stat.get("inactive_file"))
            .copied()
            .unwrap_or(0);
        Ok(Stats {
            cpu_usage_ns: s.cpu.usage.usage_total,
            cpu_user_ns: s.cpu.usage.usage_user,
            cpu_kernel_ns: s.cpu.usage.usage_kernel,
            cpu_throttled_periods: s.cpu.throttling.throttled_periods,
            memory_usage: s.memory.memory.usage,
            memory_limit: s.memory.memory.limit,
            memory_cache: s.memory.cache,
            memory_working_set: s.memory.memory.usage.saturating_sub(inactive),
            pids_current: s.pids.current,
            pids_limit: s.pids.limit,
            oom_kills: self.oom_kills(),
            memory_stat: stat,
            hugetlb: usage::hugetlb(&s.hugetlb, &self.cgroup),
            io: usage::io(&s.blkio),
        })
    }

    /// How often the memory cgroup's OOM killer killed a process of it (0 when unknown).
    pub fn oom_kills(&self) -> u64 {
        Cgroups::detect()
            .ok()
            .and_then(|c| c.oom_kills(&self.cgroup))
            .unwrap_or(0)
    }

    /// Every process in it.
    pub fn pids(&self) -> Result<Vec<Pid>, Error> {
        self.cgroup_manager()?
            .get_all_pids()
            .map_err(|e| Error::Runtime {
                container: self.id.clone(),
                action: "list the processes of",
                detail: chain(&e),
            })
    }

    /// Its init exited with `code` (128+N for signal N), as its reaper saw: kept once.
    pub fn exited(&mut self, code: i32) -> Result<(), Error> {
        self.state = self.transition(Operation::Exit)?;
        self.exit = Some(code);
        Ok(())
    }

    /// Delete it: its libcontainer state and cgroup (what is left in it is killed), then its
    /// root filesystem, each forgotten by the journal once gone. A running or paused container
    /// must be killed and have exited first.
    pub fn delete(&mut self, journal: &mut Journal) -> Result<(), Error> {
        self.transition(Operation::Delete)?;
        self.state = ContainerState::Stopped;
        remove(
            journal,
            &self.runtime_dir,
            &self.id,
            &self.cgroup,
            &self.rootfs,
        )
    }
}

/// The device rules of a container whose `cgroupsPath` is in the systemd driver's form.
fn scope_devices(
    spec: &Spec,
) -> Option<Option<Vec<libcontainer::oci_spec::runtime::LinuxDeviceCgroup>>> {
    let linux = spec.linux().as_ref()?;
    let systemd = linux
        .cgroups_path()
        .as_ref()
        .is_some_and(|p| crate::cgroups::is_systemd_path(&p.display().to_string()));
    systemd.then(|| linux.resources().as_ref().and_then(|r| r.devices().clone()))
}

/// libcontainer's systemd manager applies no device rules (and sets no `DeviceAllow=`): on
/// cgroup v2 they are an eBPF program that only its cgroupfs manager attaches. So for a
/// container in a systemd scope, attach it to the scope here, after libcontainer made the
/// container and before its process starts (its init waits for `start`).
fn systemd_scope_devices(
    id: &str,
    devices: &Option<Vec<libcontainer::oci_spec::runtime::LinuxDeviceCgroup>>,
    cgroup: &str,
) -> Result<(), Error> {
    let dir = Path::new("/sys/fs/cgroup").join(cgroup.trim_start_matches('/'));
    libcgroups::v2::devices::controller::Devices::apply_devices(&dir, devices).map_err(|e| {
        Error::Runtime {
            container: id.to_string(),
            action: "apply the device rules of",
            detail: chain(&e),
        }
    })
}

/// Delete the container `id` and unmount its root filesystem, whatever state it is in (its
/// processes are killed), forgetting both in the journal: what teardown does for one container,
/// and what a caller that holds no [`Container`] (it was lost with a crashed process) can do.
pub fn remove(
    journal: &mut Journal,
    runtime_dir: &Path,
    id: &str,
    cgroup: &str,
    rootfs: &Path,
) -> Result<(), Error> {
    let resources = [
        Resource::Container {
            id: id.to_string(),
            runtime_dir: runtime_dir.to_path_buf(),
            cgroup: (!cgroup.is_empty()).then(|| cgroup.to_string()),
        },
        Resource::Mount {
            path: rootfs.to_path_buf(),
        },
    ];
    for r in resources {
        teardown::remove(&r).map_err(|detail| Error::Runtime {
            container: id.to_string(),
            action: "delete",
            detail,
        })?;
        journal.forget(&r)?;
    }
    Ok(())
}

/// Whether a device rule of the spec allows the host's console (`c 5:1`): a privileged
/// container's `a *:* rwm`, or a rule naming it.
fn console_allowed(spec: &Spec) -> bool {
    let rules = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    rules.iter().any(|d| {
        use libcontainer::oci_spec::runtime::LinuxDeviceType as T;
        d.allow()
            && matches!(d.typ(), None | Some(T::A) | Some(T::C))
            && d.major().is_none_or(|m| m == 5)
            && d.minor().is_none_or(|m| m == 1)
    })
}

/// libcontainer adds `c 5:1 rwm` (the host's `/dev/console`) to every container's v1 device
/// rules after the spec's, where runc allows only `m` (mknod) of it: a container able to
/// mknod could then write to the host's console. Deny it again, after libcontainer's rules and
/// before the container's process starts, unless the spec allows it (on cgroup v2 there is no
/// file to write: the device program is libcontainer's).
fn deny_console(cgroup: &str) {
    if cgroup.is_empty() || crate::cgroups::is_systemd_path(cgroup) {
        return;
    }
    let Some(dir) = Cgroups::detect()
        .ok()
        .and_then(|c| c.dir_of("devices", cgroup))
    else {
        return;
    };
    if let Err(e) = std::fs::write(dir.join("devices.deny"), "c 5:1 rwm") {
        tracing::warn!(cgroup, "cannot deny /dev/console: {e}");
    }
}

/// `e` without libcontainer's `. error during cleanup: ...` once the undo has cleaned up: a
/// create refused early (runc's look-up of the command) can fail to remove the cgroup while the
/// init is still exiting, which the undo then removes; the caller (containerd's client) should
/// see only why the create failed, as runc says it.
fn without_cleanup_error(e: Error) -> Error {
    const CLEANUP: &str = ". error during cleanup: ";
    let cut = |s: String| match s.find(CLEANUP) {
        Some(at) => s[..at].to_string(),
        None => s,
    };
    match e {
        Error::Runtime {
            container,
            action,
            detail,
        } => Error::Runtime {
            container,
            action,
            detail: cut(detail),
        },
        Error::Remote { kind, message } => Error::Remote {
            kind,
            message: cut(message),
        },
        e => e,
    }
}
