//! The tasks of one shim (the containers of one Pod) and their processes: the init of each
//! container and its execs, their streams and exits, over the engine's [`Container`].
//!
//! Everything is under one lock. Calls that make a process (Create, an exec's Start) hold it
//! through the runtime helper's reply, and the exit thread takes it before it handles an exit,
//! so an exit is always of a process already known, and events keep their order: TaskCreate,
//! TaskStart (or TaskExecStarted) before that process's TaskExit, TaskExit before TaskDelete.
//! Wait blocks on a condition variable signalled at every exit.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use containerd_shim_protos::api::Status;
use containerd_shim_protos::events::task::*;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::MessageField;
use libcontainer::oci_spec::runtime::{LinuxResources, Process as OciProcess, Spec};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use podshim_engine::container::Stats;
use podshim_engine::exec::ExecStdio;
use podshim_engine::journal::{Journal, PodRecord, Resource};
use podshim_engine::rootfs::{MountSpec, Rootfs};
use podshim_engine::spawner::{Runtime, Stdio};
use podshim_engine::{Container, ContainerState, Create};

use crate::cgroupview;
use crate::error::{Result, ShimError};
use crate::events::{Event, Publish};
use crate::oom;
use crate::slices::MadeSlices;
use crate::stdio::{self, IoSpec, Plan};
use crate::warm::Warmer;

mod exits;

/// The journal of a container's host resources, in its bundle: what `delete` works from when
/// the shim was killed, and gone with the bundle.
pub const JOURNAL: &str = "podshim-journal.json";

/// An exit: the code (128+N for signal N) and when it was seen.
#[derive(Debug, Clone)]
pub struct Exit {
    pub code: u32,
    pub at: Timestamp,
}

/// A process of a task: its init or an exec.
pub struct Proc {
    /// 0 until an exec is started.
    pub pid: u32,
    pub io_spec: IoSpec,
    io: stdio::Io,
    pub exit: Option<Exit>,
    /// An exec's process, until it is started.
    process: Option<OciProcess>,
}

impl Proc {
    fn status(&self) -> Status {
        match (&self.exit, self.pid) {
            (Some(_), _) => Status::STOPPED,
            (None, 0) => Status::CREATED,
            (None, _) => Status::RUNNING,
        }
    }
}

/// One container.
pub struct Task {
    pub container: Container,
    journal: Journal,
    pub bundle: PathBuf,
    pub init: Proc,
    pub execs: HashMap<String, Proc>,
    /// `.slice` parents its create made (a systemd `cgroupsPath` on a cgroupfs host).
    slices: MadeSlices,
}

/// What a State call reports of a process.
pub struct ProcState {
    pub pid: u32,
    pub status: Status,
    pub io: IoSpec,
    pub exit: Option<Exit>,
    pub bundle: PathBuf,
}

/// What Create is given.
pub struct CreateTask {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: Vec<MountSpec>,
    pub io: IoSpec,
    /// Whether runc's options ask for the systemd cgroup driver (see [`crate::cgpath`]).
    pub systemd_cgroup: bool,
}

pub struct Tasks {
    rt: Runtime,
    namespace: String,
    /// Console sockets of terminals are made here (a short path: sun_path has 108 bytes).
    console_dir: PathBuf,
    state: Mutex<HashMap<String, Task>>,
    exited: Condvar,
    events: Arc<dyn Publish>,
    oom: Option<Arc<oom::Monitor>>,
    unified: bool,
    touched: AtomicBool,
    warm: Warmer,
}

fn ts_now() -> Timestamp {
    Timestamp::now()
}

impl Tasks {
    pub fn new(
        rt: Runtime,
        namespace: String,
        console_dir: PathBuf,
        events: Arc<dyn Publish>,
        oom: Option<Arc<oom::Monitor>>,
        warm: Warmer,
    ) -> Tasks {
        let unified = podshim_engine::cgroups::Cgroups::detect()
            .is_ok_and(|c| c.mode == podshim_engine::cgroups::Mode::Unified);
        Tasks {
            rt,
            namespace,
            console_dir,
            state: Mutex::new(HashMap::new()),
            exited: Condvar::new(),
            events,
            oom,
            unified,
            touched: AtomicBool::new(false),
            warm,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Task>> {
        self.touched.store(true, Ordering::Relaxed);
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any call or exit was handled since the last time this was asked.
    pub fn take_touched(&self) -> bool {
        self.touched.swap(false, Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn create(&self, req: CreateTask) -> Result<u32> {
        let mut tasks = self.lock();
        if tasks.contains_key(&req.id) {
            return Err(ShimError::TaskExists(req.id));
        }
        let config = req.bundle.join("config.json");
        let mut spec = Spec::load(&config)
            .map_err(|e| ShimError::Invalid(format!("{}: {e}", config.display())))?;
        // Where runc would put it, then in the cgroupfs form before the v1 view is made from it
        // (the engine lays a systemd form out again, to the same path).
        let (mode, own) = crate::cgpath::own_cgroups()?;
        let podshim_systemd =
            podshim_engine::cgroups::Driver::current() == podshim_engine::cgroups::Driver::Systemd;
        crate::cgpath::place(&mut spec, req.systemd_cgroup, podshim_systemd, mode, &own)?;
        let given = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.display().to_string());
        let laid_out = podshim_engine::cgroups::cgroupfs_spec_path(&mut spec);
        let mut slices = MadeSlices::before_create(given.as_deref(), &laid_out);
        let named = cgroupview::runc_view(&mut spec);
        let rootfs = if req.rootfs.is_empty() {
            Rootfs::Existing
        } else {
            Rootfs::Mounts(req.rootfs)
        };
        let (plan, mut io) = stdio::prepare(&req.io, &self.console_dir, &req.id, &self.namespace)?;
        let stdio = match plan {
            Plan::Fds {
                stdin,
                stdout,
                stderr,
            } => Stdio::Fds {
                stdin,
                stdout,
                stderr,
            },
            Plan::Console(p) => Stdio::Console(p),
        };
        let journal_path = req.bundle.join(JOURNAL);
        let me = std::process::id();
        let mut journal = Journal::create(
            &journal_path,
            PodRecord {
                namespace: self.namespace.clone(),
                name: req.id.clone(),
                uid: req.id.clone(),
                owner_pid: me,
                owner_start_time: podshim_engine::teardown::start_time(me as i32).unwrap_or(0),
                images: vec![],
            },
        )
        .map_err(|e| ShimError::Engine(e.into()))?;
        if !named.is_empty() {
            let made = journal
                .record(Resource::Cgroup {
                    path: named.path.clone(),
                })
                .map_err(|e| ShimError::Engine(e.into()))
                .and_then(|()| {
                    named
                        .create()
                        .map_err(ShimError::io("create", named.path.clone()))
                });
            if let Err(e) = made {
                let _ = podshim_engine::teardown::teardown(&mut journal);
                let _ = std::fs::remove_file(&journal_path);
                slices.remove();
                return Err(e);
            }
        }
        // The cgroups this create makes itself are made: the grace period of the container's
        // cgroup migration may start (see `crate::warm`).
        self.warm.nudge();
        // Recorded before libcontainer makes them, for a `delete` after this shim died.
        if let Err(e) = slices.record(&req.bundle) {
            let _ = podshim_engine::teardown::teardown(&mut journal);
            let _ = std::fs::remove_file(&journal_path);
            slices.remove();
            return Err(ShimError::io(
                "record the cgroup slices in",
                req.bundle.display().to_string(),
            )(e));
        }
        let made = Container::create(
            &self.rt,
            &mut journal,
            Create {
                id: req.id.clone(),
                bundle: req.bundle.clone(),
                spec,
                rootfs,
                stdio,
            },
        );
        let mut container = match made {
            Ok(c) => c,
            Err(e) => {
                let _ = podshim_engine::teardown::teardown(&mut journal);
                let _ = std::fs::remove_file(&journal_path);
                slices.remove();
                return Err(e.into());
            }
        };
        if let Err(e) = named.join(container.pid.as_raw()) {
            crate::log(&format!("{}: join the named cgroups: {e}", req.id));
        }
        if let Err(e) = io.attach() {
            let _ = container.kill(Signal::SIGKILL, true);
            let _ = podshim_engine::teardown::teardown(&mut journal);
            let _ = std::fs::remove_file(&journal_path);
            slices.remove();
            return Err(e);
        }
        if let Some(oom) = &self.oom {
            if let Err(e) = oom.watch(&req.id, &container.cgroup) {
                crate::log(&format!("{}: no OOM events: {e}", req.id));
            }
        }
        let pid = container.pid.as_raw() as u32;
        let mut ev = TaskCreate::new();
        ev.container_id = req.id.clone();
        ev.bundle = req.bundle.display().to_string();
        ev.pid = pid;
        let mut tio = TaskIO::new();
        tio.stdin = req.io.stdin.clone();
        tio.stdout = req.io.stdout.clone();
        tio.stderr = req.io.stderr.clone();
        tio.terminal = req.io.terminal;
        ev.io = MessageField::some(tio);
        self.events.publish(Event::Create(ev));
        tasks.insert(
            req.id.clone(),
            Task {
                container,
                journal,
                bundle: req.bundle,
                init: Proc {
                    pid,
                    io_spec: req.io,
                    io,
                    exit: None,
                    process: None,
                },
                execs: HashMap::new(),
                slices,
            },
        );
        Ok(pid)
    }

    pub fn start(&self, id: &str, exec_id: &str) -> Result<u32> {
        let mut tasks = self.lock();
        let task = tasks
            .get_mut(id)
            .ok_or_else(|| ShimError::NoTask(id.into()))?;
        if exec_id.is_empty() {
            task.container.start()?;
            let mut ev = TaskStart::new();
            ev.container_id = id.to_string();
            ev.pid = task.init.pid;
            self.events.publish(Event::Start(ev));
            return Ok(task.init.pid);
        }
        let running = task.container.state() == ContainerState::Running;
        let p = task
            .execs
            .get_mut(exec_id)
            .ok_or_else(|| ShimError::NoExec {
                id: id.into(),
                exec: exec_id.into(),
            })?;
        let Some(process) = p.process.take() else {
            return Err(ShimError::State {
                id: exec_id.into(),
                state: "started",
                op: "start",
            });
        };
        if !running {
            p.process = Some(process);
            return Err(ShimError::State {
                id: id.into(),
                state: "not running",
                op: "exec in",
            });
        }
        let (plan, mut io) =
            stdio::prepare(&p.io_spec, &self.console_dir, exec_id, &self.namespace)?;
        let stdio = match plan {
            Plan::Fds {
                stdin,
                stdout,
                stderr,
            } => ExecStdio::Fds {
                stdin,
                stdout,
                stderr,
            },
            Plan::Console(path) => ExecStdio::Console(path),
        };
        let exec = self
            .rt
            .spawner
            .exec(id, &self.rt.dir, process, stdio, false)?;
        let pid = exec.pid.as_raw() as u32;
        p.pid = pid;
        if let Err(e) = io.attach() {
            let _ = nix::sys::signal::kill(exec.pid, Signal::SIGKILL);
            p.io = io;
            return Err(e);
        }
        p.io = io;
        let mut ev = TaskExecStarted::new();
        ev.container_id = id.to_string();
        ev.exec_id = exec_id.to_string();
        ev.pid = pid;
        self.events.publish(Event::ExecStarted(ev));
        Ok(pid)
    }

    pub fn exec(&self, id: &str, exec_id: &str, io: IoSpec, process: OciProcess) -> Result<()> {
        let mut tasks = self.lock();
        let task = tasks
            .get_mut(id)
            .ok_or_else(|| ShimError::NoTask(id.into()))?;
        if exec_id.is_empty() || exec_id == id || task.execs.contains_key(exec_id) {
            return Err(ShimError::ExecExists {
                id: id.into(),
                exec: exec_id.into(),
            });
        }
        task.execs.insert(
            exec_id.to_string(),
            Proc {
                pid: 0,
                io_spec: io,
                io: stdio::Io::default(),
                exit: None,
                process: Some(process),
            },
        );
        let mut ev = TaskExecAdded::new();
        ev.container_id = id.to_string();
        ev.exec_id = exec_id.to_string();
        self.events.publish(Event::ExecAdded(ev));
        Ok(())
    }

    fn with_proc<T>(
        &self,
        id: &str,
        exec_id: &str,
        f: impl FnOnce(&mut Task, Option<&str>) -> Result<T>,
    ) -> Result<T> {
        let mut tasks = self.lock();
        let task = tasks
            .get_mut(id)
            .ok_or_else(|| ShimError::NoTask(id.into()))?;
        if exec_id.is_empty() {
            return f(task, None);
        }
        if !task.execs.contains_key(exec_id) {
            return Err(ShimError::NoExec {
                id: id.into(),
                exec: exec_id.into(),
            });
        }
        f(task, Some(exec_id))
    }

    pub fn state(&self, id: &str, exec_id: &str) -> Result<ProcState> {
        self.with_proc(id, exec_id, |task, exec| {
            let p = match exec {
                None => &task.init,
                Some(e) => &task.execs[e],
            };
            let status = match (exec, task.container.state()) {
                (Some(_), _) => p.status(),
                (None, ContainerState::Created) => Status::CREATED,
                (None, ContainerState::Running) => Status::RUNNING,
                (None, ContainerState::Paused) => Status::PAUSED,
                (None, ContainerState::Stopped) => Status::STOPPED,
            };
            Ok(ProcState {
                pid: p.pid,
                status,
                io: p.io_spec.clone(),
                exit: p.exit.clone(),
                bundle: task.bundle.clone(),
            })
        })
    }

    pub fn kill(&self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<()> {
        let sig = Signal::try_from(signal as i32)
            .map_err(|_| ShimError::Invalid(format!("signal {signal}")))?;
        self.with_proc(id, exec_id, |task, exec| match exec {
            None => {
                if task.init.exit.is_some() {
                    return Err(ShimError::Exited(id.into()));
                }
                task.container.kill(sig, all).map_err(|e| match e {
                    podshim_engine::Error::State { .. } => ShimError::Exited(id.into()),
                    e => e.into(),
                })
            }
            Some(e) => {
                let p = &task.execs[e];
                if p.exit.is_some() || p.pid == 0 {
                    return Err(ShimError::Exited(e.into()));
                }
                match nix::sys::signal::kill(Pid::from_raw(p.pid as i32), sig) {
                    Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
                    Err(err) => Err(ShimError::io("signal", e)(err.into())),
                }
            }
        })
    }

    /// Delete a process; for an init, the container with it. Returns (pid, exit).
    pub fn delete(&self, id: &str, exec_id: &str) -> Result<(u32, Exit)> {
        let mut tasks = self.lock();
        let task = tasks
            .get_mut(id)
            .ok_or_else(|| ShimError::NoTask(id.into()))?;
        if !exec_id.is_empty() {
            let p = task.execs.get(exec_id).ok_or_else(|| ShimError::NoExec {
                id: id.into(),
                exec: exec_id.into(),
            })?;
            if p.pid != 0 && p.exit.is_none() {
                return Err(ShimError::State {
                    id: exec_id.into(),
                    state: "running",
                    op: "delete",
                });
            }
            let p = task.execs.remove(exec_id).expect("checked");
            // Dropping it waits a little for a `binary://` logger: not under the lock.
            drop(tasks);
            let exit = p.exit.clone().unwrap_or(Exit {
                code: 0,
                at: ts_now(),
            });
            return Ok((p.pid, exit));
        }
        task.container.delete(&mut task.journal)?;
        // What the engine's delete does not know of (the named cgroups).
        let left = podshim_engine::teardown::teardown(&mut task.journal);
        if !left.is_empty() {
            crate::log(&format!("{id}: delete left {left:?}"));
        }
        task.slices.remove();
        let _ = std::fs::remove_file(task.bundle.join(JOURNAL));
        if let Some(oom) = &self.oom {
            oom.unwatch(id);
        }
        let task = tasks.remove(id).expect("present");
        // Dropping the task waits a little for a `binary://` logger to drain: not under the lock.
        drop(tasks);
        // A created container that never ran was killed by the delete.
        let exit = task.init.exit.clone().unwrap_or(Exit {
            code: 128 + Signal::SIGKILL as u32,
            at: ts_now(),
        });
        let mut ev = TaskDelete::new();
        ev.container_id = id.to_string();
        ev.id = id.to_string();
        ev.pid = task.init.pid;
        ev.exit_status = exit.code;
        ev.exited_at = MessageField::some(exit.at.clone());
        self.events.publish(Event::Delete(ev));
        Ok((task.init.pid, exit))
    }

    /// Wait until the process has exited.
    pub fn wait(&self, id: &str, exec_id: &str) -> Result<Exit> {
        let mut tasks = self.lock();
        loop {
            let task = tasks.get(id).ok_or_else(|| ShimError::NoTask(id.into()))?;
            let p = if exec_id.is_empty() {
                &task.init
            } else {
                task.execs.get(exec_id).ok_or_else(|| ShimError::NoExec {
                    id: id.into(),
                    exec: exec_id.into(),
                })?
            };
            if let Some(e) = &p.exit {
                return Ok(e.clone());
            }
            tasks = self.exited.wait(tasks).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        self.with_proc(id, "", |task, _| Ok(task.container.pause()?))?;
        let mut ev = TaskPaused::new();
        ev.container_id = id.to_string();
        self.events.publish(Event::Paused(ev));
        Ok(())
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        self.with_proc(id, "", |task, _| Ok(task.container.resume()?))?;
        let mut ev = TaskResumed::new();
        ev.container_id = id.to_string();
        self.events.publish(Event::Resumed(ev));
        Ok(())
    }

    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<()> {
        self.with_proc(id, "", |task, _| Ok(task.container.update(resources)?))
    }

    pub fn stats(&self, id: &str) -> Result<(Stats, bool)> {
        self.with_proc(id, "", |task, _| {
            Ok((task.container.stats()?, self.unified))
        })
    }

    /// The processes of a container, with the exec id of those that are execs.
    pub fn pids(&self, id: &str) -> Result<Vec<(u32, Option<String>)>> {
        self.with_proc(id, "", |task, _| {
            let execs: HashMap<u32, &String> = task
                .execs
                .iter()
                .filter(|(_, p)| p.pid != 0)
                .map(|(k, p)| (p.pid, k))
                .collect();
            Ok(task
                .container
                .pids()?
                .into_iter()
                .map(|p| {
                    let pid = p.as_raw() as u32;
                    (pid, execs.get(&pid).map(|s| s.to_string()))
                })
                .collect())
        })
    }

    pub fn close_io(&self, id: &str, exec_id: &str) -> Result<()> {
        self.with_proc(id, exec_id, |task, exec| {
            let p = match exec {
                None => &mut task.init,
                Some(e) => task.execs.get_mut(e).expect("checked"),
            };
            p.io.close_stdin();
            Ok(())
        })
    }

    pub fn resize_pty(&self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<()> {
        self.with_proc(id, exec_id, |task, exec| {
            let p = match exec {
                None => &task.init,
                Some(e) => &task.execs[e],
            };
            p.io.resize(width, height)
        })
    }

    /// The init's PID of task `id` (0 when there is none).
    pub fn init_pid(&self, id: &str) -> u32 {
        self.lock().get(id).map(|t| t.init.pid).unwrap_or(0)
    }
}
