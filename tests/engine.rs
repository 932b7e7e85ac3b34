//! The engine driven the way a containerd shim drives it: an OCI bundle in (a runtime spec and
//! the rootfs mounts a snapshotter would hand over), no manifest, from a process with several
//! threads running. The runtime helper is forked first thing in `main`, before any thread: it
//! does libcontainer's forking and reaps what it started.
//!
//! Create, start, exec, pause, resume, update, stats, pids, kill, exit, delete; the state
//! machine's refusals with their error kinds; nothing left afterwards (libcontainer state,
//! cgroups, mounts, journal records). A custom harness (`harness = false`): libtest starts its
//! threads before any test body could fork the helper.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use libcontainer::oci_spec::runtime::{
    LinuxBuilder, LinuxMemoryBuilder, LinuxResourcesBuilder, Spec,
};
use nix::sys::signal::Signal;
use podshim_engine::helper;
use podshim_engine::journal::{Journal, PodRecord};
use podshim_engine::rootfs::{MountSpec, Rootfs};
use podshim_engine::spawner::{Runtime, Spawner, Stdio};
use podshim_engine::{Container, ContainerState, Create, ErrorKind};

fn pipe() -> (OwnedFd, OwnedFd) {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe")
}

fn devnull() -> OwnedFd {
    std::fs::File::open("/dev/null").unwrap().into()
}

/// The busybox test image unpacked as a plain directory (what a snapshotter's lower layer is).
fn unpack_busybox(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let archive = podshim_tests::busybox_archive();
    let ok = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap()
        .success();
    assert!(ok, "untar {}", archive.display());
    let bundle = dir.join("unpacked");
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.35", layout.display()))
        .arg(&bundle)
        .output()
        .expect("umoci (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle.join("rootfs")
}

fn cgroup_file(cgroup: &str, controller: &str, file: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let base = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    base.join(cgroup.trim_start_matches('/')).join(file)
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Tears down what the journal still records and removes the test's directory.
struct Cleanup {
    journal: PathBuf,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(mut j) = Journal::load(&self.journal) {
            let problems = podshim_engine::teardown::teardown(&mut j);
            if !problems.is_empty() {
                eprintln!("engine: cleanup: {problems:?}");
            }
        }
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_dir(h.path().join("podshim"));
            let _ = std::fs::remove_dir(h.path().join("podshim.slice"));
        }
        // cgroup v2: the single tree's own podshim directory (the loop above sees v1's).
        let _ = std::fs::remove_dir("/sys/fs/cgroup/podshim");
        let _ = std::fs::remove_dir("/sys/fs/cgroup/podshim.slice");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn main() {
    podshim_tests::require_root();
    // Before any thread: the helper is a fork of this process.
    let client = helper::start().expect("fork the runtime helper");
    let helper_pid = client.pid;

    // Several threads running for the whole test, as in a ttrpc server.
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        })
        .collect();
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    assert!(threads >= 4, "{threads} threads");

    let tmp = std::env::temp_dir().join(format!("podshim-enginetest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    let lower = unpack_busybox(&tmp);
    let state = tmp.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // Whatever happens (a failed assertion, a hang), what the test made goes, from its journal.
    let cleanup = Cleanup {
        journal: state.join("journal.json"),
        dir: tmp.clone(),
    };
    let watchdog = cleanup.journal.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(120));
        eprintln!("engine: the test hangs after 120 s; tearing down what it made");
        if let Ok(mut j) = Journal::load(&watchdog) {
            eprintln!("{:?}", podshim_engine::teardown::teardown(&mut j));
        }
        std::process::exit(1);
    });
    let mut journal = Journal::create(
        &state.join("journal.json"),
        PodRecord {
            namespace: "engine".into(),
            name: "test".into(),
            uid: "u".into(),
            owner_pid: std::process::id(),
            owner_start_time: 0,
            images: vec![],
        },
    )
    .unwrap();
    // A journal's first record is its own directory (so `gc` removes it); this test keeps its
    // directory itself and counts only what the engine records.
    journal
        .forget(&podshim_engine::journal::Resource::Dir {
            path: state.clone(),
        })
        .unwrap();

    // In-process forking refuses a threaded process.
    let id = format!("enginetest-{}", std::process::id());
    let cgroup = format!("/podshim/{id}");
    let bundle = tmp.join("bundle");
    let upper = tmp.join("snapshot");
    std::fs::create_dir_all(upper.join("upper")).unwrap();
    std::fs::create_dir_all(upper.join("work")).unwrap();
    let spec = || {
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap();
        process
            .set_args(Some(vec![
                "sh".into(),
                "-c".into(),
                "echo started; trap 'exit 7' TERM; while true; do sleep 0.1; done".into(),
            ]))
            .set_env(Some(vec!["PATH=/bin".into()]))
            .set_terminal(Some(false));
        spec.set_process(Some(process))
            .set_hostname(Some("engine".into()));
        let linux = spec
            .linux()
            .clone()
            .unwrap_or_else(|| LinuxBuilder::default().build().unwrap());
        let mut linux = linux;
        linux.set_cgroups_path(Some(PathBuf::from(&cgroup)));
        spec.set_linux(Some(linux));
        spec.set_root(Some(
            libcontainer::oci_spec::runtime::RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()
                .unwrap(),
        ));
        spec
    };
    let rootfs = Rootfs::Mounts(vec![MountSpec {
        kind: "overlay".into(),
        source: "overlay".into(),
        options: vec![
            format!("lowerdir={}", lower.display()),
            format!("upperdir={}", upper.join("upper").display()),
            format!("workdir={}", upper.join("work").display()),
        ],
    }]);
    let in_process = Runtime {
        dir: state.join("runtime"),
        cgroup_skeleton: state.join("cgroupfs"),
        spawner: Spawner::InProcess,
    };
    let (_r, w) = pipe();
    let refused = Container::create(
        &in_process,
        &mut journal,
        Create {
            id: id.clone(),
            bundle: bundle.clone(),
            spec: spec(),
            rootfs: rootfs.clone(),
            stdio: Stdio::Fds {
                stdin: devnull(),
                stdout: w,
                stderr: devnull(),
            },
        },
    )
    .expect_err("libcontainer must not fork a threaded process");
    assert_eq!(refused.kind(), ErrorKind::Internal, "{refused}");
    assert!(refused.to_string().contains("threads"), "{refused}");
    assert!(
        journal.resources.is_empty(),
        "a refused create left {:?}",
        journal.resources
    );

    let rt = Runtime {
        spawner: Spawner::Helper(client),
        ..in_process
    };
    let Spawner::Helper(client) = &rt.spawner else {
        unreachable!()
    };
    let (out_r, out_w) = pipe();
    let mut c = Container::create(
        &rt,
        &mut journal,
        Create {
            id: id.clone(),
            bundle: bundle.clone(),
            spec: spec(),
            rootfs: rootfs.clone(),
            stdio: Stdio::Fds {
                stdin: devnull(),
                stdout: out_w,
                stderr: devnull(),
            },
        },
    )
    .expect("create through the helper");
    assert_eq!(c.state(), ContainerState::Created);
    // The init is the helper's child, not ours.
    let ppid = read(Path::new(&format!("/proc/{}/stat", c.pid)));
    let ppid: i32 = ppid
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(ppid, helper_pid.as_raw(), "the init's parent");
    assert_eq!(journal.resources.len(), 2, "{:?}", journal.resources);
    // Wrong moves, with their kinds.
    let e = c.pause().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");

    c.start().expect("start");
    let mut out = BufReader::new(std::fs::File::from(out_r));
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "started\n");
    assert_eq!(c.start().unwrap_err().kind(), ErrorKind::FailedPrecondition);

    // Exec: a process with the container's settings, through the helper.
    let mut process = spec().process().clone().unwrap();
    process.set_args(Some(vec![
        "sh".into(),
        "-c".into(),
        "echo exec:$(hostname); exit 3".into(),
    ]));
    let (er, ew) = pipe();
    let exec = rt
        .spawner
        .exec(
            &id,
            &rt.dir,
            process,
            podshim_engine::exec::ExecStdio::Fds {
                stdin: devnull(),
                stdout: ew,
                stderr: devnull(),
            },
            false,
        )
        .expect("exec");
    let mut text = String::new();
    std::fs::File::from(er).read_to_string(&mut text).unwrap();
    assert_eq!(text, "exec:engine\n");
    let exit = client.next_exit().expect("the exec's exit");
    assert_eq!((exit.pid, exit.code), (exec.pid.as_raw(), 3));

    // Pause and resume: the freezer.
    c.pause().expect("pause");
    assert_eq!(c.state(), ContainerState::Paused);
    let frozen = cgroup_file(&cgroup, "freezer", "freezer.state");
    if frozen.exists() {
        assert_eq!(read(&frozen), "FROZEN");
    } else {
        assert_eq!(read(&cgroup_file(&cgroup, "", "cgroup.freeze")), "1");
    }
    let e = rt
        .spawner
        .exec(
            &id,
            &rt.dir,
            spec().process().clone().unwrap(),
            podshim_engine::exec::ExecStdio::Fds {
                stdin: devnull(),
                stdout: devnull(),
                stderr: devnull(),
            },
            false,
        )
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::FailedPrecondition,
        "exec into a paused container: {e}"
    );
    c.resume().expect("resume");
    assert_eq!(c.state(), ContainerState::Running);

    // Update: a new memory limit in the cgroup.
    let limit = 64 << 20;
    let resources = LinuxResourcesBuilder::default()
        .memory(LinuxMemoryBuilder::default().limit(limit).build().unwrap())
        .build()
        .unwrap();
    c.update(&resources).expect("update");
    let v1 = cgroup_file(&cgroup, "memory", "memory.limit_in_bytes");
    let seen = if v1.exists() {
        read(&v1)
    } else {
        read(&cgroup_file(&cgroup, "", "memory.max"))
    };
    assert_eq!(seen, limit.to_string());

    // Stats and pids.
    let stats = c.stats().expect("stats");
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    assert!(stats.memory_usage > 0, "{stats:?}");
    assert_eq!(stats.memory_limit, limit as u64, "{stats:?}");
    assert!(stats.pids_current >= 1, "{stats:?}");
    let pids = c.pids().expect("pids");
    assert!(pids.contains(&c.pid), "{pids:?} lacks {}", c.pid);

    // A second container of that id: AlreadyExists.
    let e = Container::create(
        &rt,
        &mut journal,
        Create {
            id: id.clone(),
            bundle: tmp.join("bundle2"),
            spec: spec(),
            rootfs: Rootfs::Existing,
            stdio: Stdio::Fds {
                stdin: devnull(),
                stdout: devnull(),
                stderr: devnull(),
            },
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");

    // Delete is refused while it runs; a signal ends it; its exit comes once.
    let e = c.delete(&mut journal).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    c.kill(Signal::SIGTERM, false).expect("kill");
    let exit = client.next_exit().expect("the init's exit");
    assert_eq!((exit.pid, exit.code), (c.pid.as_raw(), 7));
    c.exited(exit.code).unwrap();
    assert_eq!(c.exit_code(), Some(7));
    assert_eq!(
        c.exited(0).unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    assert_eq!(
        c.kill(Signal::SIGKILL, false).unwrap_err().kind(),
        ErrorKind::FailedPrecondition
    );
    c.delete(&mut journal).expect("delete");

    // Nothing left: state, cgroups, the rootfs mount, the journal's records.
    assert!(!rt.dir.join(&id).exists(), "libcontainer state left");
    for controller in ["memory", "pids", "freezer", "cpu"] {
        let dir = cgroup_file(&cgroup, controller, "");
        assert!(!dir.exists(), "{} left", dir.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&tmp.display().to_string()),
        "a mount under {} left",
        tmp.display()
    );
    assert!(journal.resources.is_empty(), "{:?}", journal.resources);

    // A systemd-form `cgroupsPath` (containerd's CRI with `SystemdCgroup = true`): the cgroup is
    // where systemd would put it, and goes with the container.
    let sd_id = format!("{id}-sd");
    let mut sd_spec = spec();
    let mut linux = sd_spec.linux().clone().unwrap();
    linux.set_cgroups_path(Some(PathBuf::from(format!(
        "podshim.slice:enginetest:{sd_id}"
    ))));
    sd_spec.set_linux(Some(linux));
    let sd_upper = tmp.join("snapshot-sd");
    std::fs::create_dir_all(sd_upper.join("upper")).unwrap();
    std::fs::create_dir_all(sd_upper.join("work")).unwrap();
    let mut sd = Container::create(
        &rt,
        &mut journal,
        Create {
            id: sd_id.clone(),
            bundle: tmp.join("bundle-sd"),
            spec: sd_spec,
            rootfs: Rootfs::Mounts(vec![MountSpec {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("lowerdir={}", lower.display()),
                    format!("upperdir={}", sd_upper.join("upper").display()),
                    format!("workdir={}", sd_upper.join("work").display()),
                ],
            }]),
            stdio: Stdio::Fds {
                stdin: devnull(),
                stdout: devnull(),
                stderr: devnull(),
            },
        },
    )
    .expect("create with a systemd cgroupsPath");
    let sd_cgroup = format!("/podshim.slice/enginetest-{sd_id}.scope");
    assert_eq!(sd.cgroup, sd_cgroup);
    let procs = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| {
            h.path()
                .join(sd_cgroup.trim_start_matches('/'))
                .join("cgroup.procs")
        })
        .chain([PathBuf::from("/sys/fs/cgroup")
            .join(sd_cgroup.trim_start_matches('/'))
            .join("cgroup.procs")])
        .find(|p| p.exists())
        .expect("the systemd-form cgroup exists in cgroupfs layout");
    assert!(
        read(&procs).contains(&sd.pid.to_string()),
        "{}",
        procs.display()
    );
    sd.kill(Signal::SIGKILL, false).expect("kill");
    let exit = client.next_exit().expect("the systemd-form init's exit");
    sd.exited(exit.code).unwrap();
    sd.delete(&mut journal).expect("delete");
    assert!(!procs.exists(), "{} left", procs.display());
    assert!(journal.resources.is_empty(), "{:?}", journal.resources);
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join("podshim.slice"));
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/podshim.slice");

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    drop(rt);
    // The helper ends when its sockets close.
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        nix::sys::wait::waitpid(helper_pid, None).is_ok(),
        "the helper did not end"
    );
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(h.path().join("podshim"));
    }
    let _ = std::fs::remove_dir("/sys/fs/cgroup/podshim");
    drop(cleanup);
    assert!(!tmp.exists());
    println!("engine: create, start, exec, pause, resume, update, stats, pids, kill, exit and delete from a process with {threads} threads, and a systemd-form cgroupsPath: ok");
}
