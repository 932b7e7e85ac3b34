//! The process model. Every top-level workload (a Deployment with its ReplicaSets, a
//! ReplicaSet, DaemonSet, Job or CronJob) has its own small controller process, like a Pod has
//! its supervisor; no daemon is needed. Two processes per object:
//!
//! - the *keeper* (`podshim controller --keeper KIND/NS/NAME`) holds `<stem>.keeper.lock`,
//!   starts the worker and starts it again within a fraction of a second when it dies
//!   (SIGKILL, a crash), with a back-off if it keeps dying; it ends when the worker ends
//!   cleanly (the object was deleted).
//! - the *worker* (`podshim controller KIND/NS/NAME`) takes `<stem>.lock` (blocking: a worker
//!   left over from an earlier keeper finishes first, so two workers never manage the same
//!   object), adopts the Pods whose controller reference is its object's uid, and reconciles on
//!   every change of its object or of any Pod record (inotify), or every half second.
//!
//! Any podshim command that deals with workloads (and `podshim up`, at boot) calls [`ensure`]:
//! a stored object whose keeper lock is free gets a keeper. Killing a keeper leaves its worker
//! running; killing both is repaired by the next such command.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde::{Deserialize, Serialize};

use crate::api::{controller_of, Kind, Workload};
use crate::pods::{self, Context};
use crate::{cronjob, daemonset, deployment, job, replicaset};

/// A workload's identity: kind, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn of(w: &Workload) -> Key {
        Key {
            kind: w.kind(),
            namespace: w.namespace().into(),
            name: w.name().into(),
        }
    }

    /// `Deployment/default/web` (how keepers and workers are told which object).
    pub fn arg(&self) -> String {
        format!("{}/{}/{}", self.kind.name(), self.namespace, self.name)
    }

    pub fn parse_arg(s: &str) -> Option<Key> {
        let mut it = s.splitn(3, '/');
        let kind = Kind::from_name(it.next()?)?;
        Some(Key {
            kind,
            namespace: it.next()?.into(),
            name: it.next()?.into(),
        })
    }

    fn stem(&self) -> String {
        format!("{}_{}_{}", self.kind.plural(), self.namespace, self.name)
    }
}

/// Who runs an object's controller (`<state>/controllers/<stem>.pid`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub keeper: u32,
    pub worker: u32,
    pub started: String,
}

fn path(ctx: &Context, key: &Key, ext: &str) -> PathBuf {
    ctx.run_dir().join(format!("{}.{ext}", key.stem()))
}

fn open_lock(ctx: &Context, key: &Key, ext: &str) -> std::io::Result<File> {
    podshim_engine::private::create_dir_all(&ctx.run_dir())?;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(podshim_engine::private::FILE_MODE)
        .open(path(ctx, key, ext))
}

/// The processes of an object's controller, if its worker is alive.
pub fn running(ctx: &Context, key: &Key) -> Option<Running> {
    let data = std::fs::read(path(ctx, key, "pid")).ok()?;
    let r: Running = serde_json::from_slice(&data).ok()?;
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(r.worker as i32), None).is_ok();
    alive.then_some(r)
}

/// The objects that get a controller process of their own: all but a Deployment's
/// ReplicaSets (its controller runs them).
pub fn top_level(ctx: &Context) -> Vec<Key> {
    let mut out = Vec::new();
    for kind in Kind::ALL {
        for w in ctx.store.list(kind) {
            let owned_by_deployment = controller_of(&w.metadata().owner_references)
                .is_some_and(|o| o.kind == "Deployment");
            if !owned_by_deployment {
                out.push(Key::of(&w));
            }
        }
    }
    out
}

/// Starts a keeper for every stored object that has none; returns the keys started.
pub fn ensure(ctx: &Context) -> Vec<Key> {
    let mut started = Vec::new();
    for key in top_level(ctx) {
        if ensure_one(ctx, &key) {
            started.push(key);
        }
    }
    started
}

/// Starts a keeper for one object unless one holds its lock; true if one was started.
pub fn ensure_one(ctx: &Context, key: &Key) -> bool {
    let Ok(f) = open_lock(ctx, key, "keeper.lock") else {
        return false;
    };
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        // Free: released at once, the keeper takes it (a second keeper racing for it exits).
        Ok(lock) => drop(lock),
        Err(_) => return false,
    }
    spawn(ctx, key, true).is_ok()
}

fn spawn(ctx: &Context, key: &Key, keeper: bool) -> std::io::Result<std::process::Child> {
    let log = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(podshim_engine::private::FILE_MODE)
        .open(path(ctx, key, "log"))?;
    let mut c = Command::new(&ctx.exe);
    // Controllers outlive the command that starts them: a descriptor it inherited without
    // close-on-exec (the lock of a `flock podshim apply`) must not stay open in them.
    podshim_engine::sys::inherit_only_stdio(&mut c);
    c.args(&ctx.globals).arg("controller");
    if keeper {
        // A keeper is started by a foreground command (`podshim apply`...) and outlives it:
        // its own session from the start, so that a Ctrl-C on that command never kills it
        // before its `setsid`. The worker it starts is in its session already.
        podshim_engine::sys::new_session(&mut c);
        c.arg("--keeper");
    }
    c.arg(key.arg())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
}

/// The keeper: see the module documentation. Returns the exit code.
pub fn keeper(ctx: &Context, key: &Key) -> i32 {
    let _ = nix::unistd::setsid();
    let Ok(f) = open_lock(ctx, key, "keeper.lock") else {
        return 1;
    };
    let Ok(_lock) = Flock::lock(f, FlockArg::LockExclusiveNonblock) else {
        // Another keeper has it.
        return 0;
    };
    let mut backoff = Duration::from_millis(100);
    loop {
        if !matches!(
            ctx.store.get(key.kind, &key.namespace, &key.name),
            Ok(Some(_))
        ) {
            return 0;
        }
        let started = Instant::now();
        let status = match spawn(ctx, key, false) {
            Ok(mut child) => child.wait(),
            Err(e) => Err(e),
        };
        match status {
            Ok(s) if s.success() => return 0,
            Ok(s) => eprintln!(
                "controller {}: worker ended ({s}); starting it again",
                key.arg()
            ),
            Err(e) => eprintln!("controller {}: cannot run the worker: {e}", key.arg()),
        }
        backoff = if started.elapsed() > Duration::from_secs(10) {
            Duration::from_millis(100)
        } else {
            (backoff * 2).min(Duration::from_secs(5))
        };
        std::thread::sleep(backoff);
    }
}

/// What wakes a worker: changes of Pod records and of the store.
struct Watch {
    inotify: Inotify,
}

impl Watch {
    fn new(ctx: &Context, key: &Key) -> std::io::Result<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let flags = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_CLOSE_WRITE;
        let records = podshim_kube::record::dir(&ctx.cfg);
        let objects = ctx.store.dir().join(key.kind.plural()).join(&key.namespace);
        let rs = ctx
            .store
            .dir()
            .join(Kind::ReplicaSet.plural())
            .join(&key.namespace);
        for dir in [&records, &objects, &rs] {
            podshim_engine::private::create_dir_all(dir)?;
            inotify.add_watch(dir.as_path(), flags)?;
        }
        Ok(Watch { inotify })
    }

    /// Waits until something changed or `timeout` passed.
    fn wait(&self, timeout: Duration) {
        let ms = timeout.as_millis().min(u128::from(u16::MAX)) as u16;
        let mut fds = [PollFd::new(self.inotify.as_fd(), PollFlags::POLLIN)];
        if let Ok(n) = poll(&mut fds, PollTimeout::from(ms)) {
            if n > 0 {
                // Changes come in bursts (50 supervisors writing records): gather them.
                std::thread::sleep(Duration::from_millis(5));
                while let Ok(ev) = self.inotify.read_events() {
                    if ev.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}

/// Per-object memory of a worker between passes (lost on a restart, and nothing in it must
/// matter for correctness: it only paces retries).
#[derive(Debug, Default)]
pub struct Memory {
    pub replica_sets: std::collections::BTreeMap<String, replicaset::Pace>,
    pub job: job::Memory,
    pub cron: cronjob::Memory,
}

/// The worker: see the module documentation. Returns the exit code (0: the object is gone).
pub fn worker(ctx: &Context, key: &Key) -> Result<i32, std::io::Error> {
    let f = open_lock(ctx, key, "lock")?;
    let _lock =
        Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| std::io::Error::from(e))?;
    let me = Running {
        keeper: nix::unistd::getppid().as_raw() as u32,
        worker: std::process::id(),
        started: crate::clock::format(chrono::Utc::now()),
    };
    crate::store::write_atomic(&path(ctx, key, "pid"), &serde_json::to_vec(&me)?)
        .map_err(std::io::Error::other)?;
    // A subreaper: when a Pod's supervisor dies, its pause and container processes become this
    // worker's children, which it reaps at once (`pods::reap`), so tearing the lost Pod down does
    // not wait for init to reap them (Linux keeps a zombie in its cgroup until then, and some
    // inits reap only every few seconds: the replacement of such a Pod took 3.4-4.4 s).
    let _ = nix::sys::prctl::set_child_subreaper(true);
    let watch = Watch::new(ctx, key)?;
    let mut memory = Memory::default();
    loop {
        pods::reap();
        let w = match ctx.store.get(key.kind, &key.namespace, &key.name) {
            Ok(Some(w)) => w,
            Ok(None) => return Ok(0),
            Err(e) => {
                eprintln!("controller {}: {e}", key.arg());
                watch.wait(Duration::from_secs(1));
                continue;
            }
        };
        if w.metadata().deletion_timestamp.is_some() {
            crate::delete::finish(ctx, &w);
            let _ = std::fs::remove_file(path(ctx, key, "pid"));
            return Ok(0);
        }
        let next = match &w {
            Workload::ReplicaSet(rs) => replicaset::run(ctx, rs, &mut memory),
            Workload::Deployment(d) => deployment::run(ctx, d, &mut memory),
            Workload::DaemonSet(d) => daemonset::run(ctx, d, &mut memory),
            Workload::Job(j) => job::run(ctx, j, &mut memory),
            Workload::CronJob(c) => cronjob::run(ctx, c, &mut memory),
        };
        watch.wait(next.min(Duration::from_millis(500)));
    }
}
