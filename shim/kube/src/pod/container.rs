//! One container of a Pod as the kubelet and containerd's CRI plugin make it: a fresh writable
//! layer over the image's, the process resolved from the image and the manifest (command,
//! environment, user, working directory), the Pod's volumes and `/etc` files, limits, then the
//! engine creates and starts it. In-process: the caller must be single-threaded (libcontainer
//! forks it), and the container's init becomes the caller's child.

use std::fs::{self, File, OpenOptions};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::unistd::{pipe2, Pid};
use podshim_engine::cgroups::cgroupfs_path;
use podshim_engine::console::ConsoleSocket;
use podshim_engine::rootfs::{self, Rootfs};
use podshim_engine::{Container, Create, Stdio};

use super::process::{self, User};
use super::subpath;
use super::{PodError, Sandbox};
use crate::spec::{self, Bind, ContainerSpec, HostLimits, Namespace};
use podshim_engine::cgroups::Cgroups;
use podshim_engine::config::Config;

/// Everything needed to (re)start one container, resolved before the Pod is created.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContainerPlan {
    pub name: String,
    /// `image` as the manifest names it.
    pub image: String,
    /// The image's content address, `<name>@sha256:…` (the status' `imageID`).
    pub image_id: String,
    /// Unpacked image layers, lowest first.
    pub layers: Vec<PathBuf>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub image_env: Vec<String>,
    pub image_working_dir: Option<String>,
    pub image_user: Option<String>,
    /// The image's STOPSIGNAL, e.g. "SIGQUIT".
    pub stop_signal: Option<String>,
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// envFrom then env, resolved except for the Pod IP.
    pub env: Vec<process::EnvEntry>,
    pub working_dir: Option<String>,
    pub run_as_user: Option<i64>,
    pub run_as_group: Option<i64>,
    pub run_as_non_root: bool,
    pub supplemental_groups: Vec<i64>,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub readonly_rootfs: bool,
    pub mounts: Vec<MountPlan>,
    /// cgroup limits and `oom_score_adj` from `resources` and the Pod's QoS class.
    pub resources: spec::Resources,
    /// Probes and lifecycle hooks.
    #[serde(default)]
    pub checks: crate::probe::Checks,
    /// `terminationMessagePath` (empty: none).
    #[serde(default)]
    pub termination_message_path: String,
    /// `terminationMessagePolicy: FallbackToLogsOnError`.
    #[serde(default)]
    pub termination_message_fallback: bool,
    /// `supplementalGroupsPolicy: Strict`: no groups from the image's `/etc/group`.
    #[serde(default)]
    pub strict_groups: bool,
    /// Privileged, procMount, capabilities, seccomp and AppArmor, resolved (`crate::security`).
    #[serde(default)]
    pub security: crate::security::ContainerSecurity,
    /// `stdin`: the container reads a pipe the supervisor keeps (for `podshim attach`), not
    /// /dev/null; `stdinOnce`: closed after the first attach.
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    /// `tty`: the container's stdin, stdout and stderr are a pseudo-terminal whose master side
    /// the supervisor keeps (its output is logged as stdout, as the kubelet does).
    #[serde(default)]
    pub tty: bool,
}

/// One `volumeMounts[]` entry, resolved except for `subPathExpr` (expanded with the container's
/// environment when it starts).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountPlan {
    pub volume: String,
    pub path: String,
    pub read_only: bool,
    /// `subPath`, or `subPathExpr` before expansion (`expand` set).
    #[serde(default)]
    pub sub_path: Option<String>,
    #[serde(default)]
    pub expand: bool,
    /// The bind's propagation: `rprivate`, `rslave` or `rshared`.
    #[serde(default = "private")]
    pub propagation: String,
    #[serde(default)]
    pub recursive_read_only: bool,
}

fn private() -> String {
    "rprivate".into()
}

/// A started container: its init PID (our child) and the supervisor's ends of its streams.
#[derive(Debug)]
pub struct Started {
    pub id: String,
    pub pid: Pid,
    /// What it writes: the read end of its stdout pipe, or with a tty the pty master.
    pub stdout: File,
    /// The read end of its stderr pipe (none with a tty, which carries both).
    pub stderr: Option<File>,
    /// Where its input goes (`stdin: true`): its stdin pipe, or with a tty the pty master.
    pub stdin: Option<File>,
    /// The identity its first process runs with (`status.containerStatuses[].user`).
    pub user: User,
    /// With a tty: the pty master, whose window size an attach sets.
    pub tty: Option<File>,
}

/// The libcontainer id of a Pod's container.
pub fn container_id(sandbox: &Sandbox, name: &str) -> String {
    format!("{}-{}", sandbox.uid, name)
}

/// The host file bind-mounted at a container's `terminationMessagePath` (fresh at each start).
pub fn termination_file(sandbox: &Sandbox, name: &str) -> PathBuf {
    sandbox.dir.join("termination").join(name)
}

/// What the container wrote to its termination message file (at most 4096 bytes, as the
/// kubelet reads).
pub fn termination_message(sandbox: &Sandbox, name: &str) -> Option<String> {
    use std::io::Read;
    let mut buf = Vec::new();
    fs::File::open(termination_file(sandbox, name))
        .ok()?
        .take(4096)
        .read_to_end(&mut buf)
        .ok()?;
    (!buf.is_empty()).then(|| String::from_utf8_lossy(&buf).into_owned())
}

/// What the container's init said of a failed `execve` after start (see
/// [`podshim_engine::launch`]): the container never ran its command.
pub fn exec_failure(sandbox: &Sandbox, name: &str) -> Option<String> {
    podshim_engine::launch::exec_failure(&sandbox.dir.join("containers").join(name))
}

/// A container's cgroup, inside the Pod's (relative to every hierarchy's root).
pub fn container_cgroup(sandbox: &Sandbox, name: &str) -> String {
    podshim_engine::cgroups::container_path(&sandbox.cgroup, name)
}

fn paths(cfg: &Config, sandbox: &Sandbox, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let bundle = sandbox.dir.join("containers").join(name);
    let rootfs = bundle.join("rootfs");
    let layer = cfg.layers_dir(&sandbox.uid).join(name);
    (bundle, rootfs, layer)
}

/// Create and start a container in the sandbox (a fresh writable layer each time, as a restarted
/// Kubernetes container gets).
pub fn start(
    cfg: &Config,
    sandbox: &mut Sandbox,
    plan: &ContainerPlan,
) -> Result<Started, PodError> {
    start_all(cfg, sandbox, std::slice::from_ref(plan))
        .pop()
        .expect("one result per plan")
}

/// Create and start several containers of the sandbox whose order does not matter (app
/// containers): each is prepared here in turn, the engine creates them at once (see
/// `Container::create_all`), then each is started. One result per plan, in order.
pub fn start_all(
    cfg: &Config,
    sandbox: &mut Sandbox,
    plans: &[ContainerPlan],
) -> Vec<Result<Started, PodError>> {
    let t = std::time::Instant::now();
    // A restart, or app containers after init containers: the kernel's cgroup migration lock
    // is kept on its fast path while they are prepared and created (see `cgroups::warm`).
    let _ = podshim_engine::cgroups::warm::warm();
    let mut prepared = Vec::with_capacity(plans.len());
    for plan in plans {
        prepared.push(prepare(cfg, sandbox, plan));
    }
    let creates: Vec<Create> = prepared
        .iter_mut()
        .filter_map(|p| p.as_mut().ok().and_then(|p| p.create.take()))
        .collect();
    let mut created =
        Container::create_all(&cfg.runtime(), &mut sandbox.journal, creates).into_iter();
    podshim_engine::cgroups::warm::cool();
    let results = prepared
        .into_iter()
        .map(|p| {
            let p = p?;
            let mut container = created.next().expect("one result per create")?;
            // The init sent its terminal before the create returned.
            let io = p.io.receive()?;
            container.start()?;
            tracing::debug!(
                container = p.id,
                elapsed_us = t.elapsed().as_micros() as u64,
                "started"
            );
            Ok(Started {
                id: p.id,
                pid: container.pid,
                stdout: io.stdout,
                stderr: io.stderr,
                stdin: io.stdin,
                tty: io.tty,
                user: p.user,
            })
        })
        .collect();
    results
}

/// A container ready for the engine's create: its spec written out, its output pipes made.
struct Prepared {
    id: String,
    create: Option<Create>,
    io: PreparedIo,
    user: User,
}

/// The supervisor's ends of a container's streams, before its create.
enum PreparedIo {
    Pipes {
        stdout: File,
        stderr: File,
        stdin: Option<File>,
    },
    /// `tty: true`: the socket its init sends the pty master to (the OCI console socket).
    Console { socket: ConsoleSocket, stdin: bool },
}

/// The streams of a created container (see [`Started`]).
struct Io {
    stdout: File,
    stderr: Option<File>,
    stdin: Option<File>,
    tty: Option<File>,
}

impl PreparedIo {
    fn receive(self) -> Result<Io, PodError> {
        match self {
            PreparedIo::Pipes {
                stdout,
                stderr,
                stdin,
            } => Ok(Io {
                stdout,
                stderr: Some(stderr),
                stdin,
                tty: None,
            }),
            PreparedIo::Console { socket, stdin } => {
                let fail = |source| PodError::Io {
                    what: "receive the container's terminal from",
                    path: socket.file().to_path_buf(),
                    source,
                };
                let master = File::from(socket.receive().map_err(fail)?);
                let dup = || master.try_clone().map_err(fail);
                Ok(Io {
                    stdout: dup()?,
                    stderr: None,
                    stdin: if stdin { Some(dup()?) } else { None },
                    tty: Some(master),
                })
            }
        }
    }
}

/// Everything of a container's start before the runtime's create: its root filesystem, user,
/// environment, mounts and spec.
fn prepare(
    cfg: &Config,
    sandbox: &mut Sandbox,
    plan: &ContainerPlan,
) -> Result<Prepared, PodError> {
    let name = plan.name.clone();
    let t = std::time::Instant::now();
    let step = |s: &str| {
        tracing::debug!(
            container = plan.name,
            step = s,
            elapsed_us = t.elapsed().as_micros() as u64,
            "start"
        )
    };
    let io = |what, path: &PathBuf| {
        let path = path.clone();
        move |source| PodError::Io { what, path, source }
    };
    let (bundle, rootfs, layer) = paths(cfg, sandbox, &name);
    let id = container_id(sandbox, &name);
    if let Some(u) = &sandbox.userns {
        // Its root sets the container up from here (see `private::open_to_group`).
        for dir in [bundle.parent().unwrap_or(&bundle), &bundle] {
            podshim_engine::private::open_to_group(dir, u.block.base)
                .map_err(io("open to the Pod's root", &dir.to_path_buf()))?;
        }
    }
    // The root filesystem first: the user and the working directory are resolved in it.
    let layers = Rootfs::Overlay {
        layers: plan.layers.clone(),
        layer_dir: layer,
        idmap: sandbox.userns.clone(),
    };
    rootfs::mount(&mut sandbox.journal, &layers, &rootfs)?;
    step("rootfs");

    let perr = |source| PodError::Process {
        container: name.clone(),
        source,
    };
    let mut user: User = process::resolve_user(
        &rootfs,
        plan.image_user.as_deref(),
        plan.run_as_user,
        plan.run_as_group,
        &plan.supplemental_groups,
        plan.run_as_non_root,
    )
    .map_err(perr)?;
    if plan.strict_groups {
        process::strict_groups(&mut user, &plan.supplemental_groups);
    }
    let hostname = fs::read_to_string(sandbox.dir.join("etc/hostname")).unwrap_or_default();
    // `status.podIP` is only known now that the sandbox's network is up.
    let pod_ip = sandbox.attachment.ip.to_string();
    let (env, vars) = process::environment(&plan.image_env, &plan.env, hostname.trim(), &pod_ip);
    let expand = |v: &Vec<String>| {
        v.iter()
            .map(|s| process::expand(s, &vars))
            .collect::<Vec<_>>()
    };
    let args = process::command(
        &plan.entrypoint,
        &plan.cmd,
        &expand(&plan.command),
        &expand(&plan.args),
    )
    .map_err(perr)?;
    let cwd = plan
        .working_dir
        .clone()
        .or_else(|| plan.image_working_dir.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "/".into());
    // Kubernetes creates a missing working directory (containerd CRI `WithProcessCwd` + mkdir).
    let cwd_host = rootfs.join(cwd.trim_start_matches('/'));
    fs::create_dir_all(&cwd_host).map_err(io("create", &cwd_host))?;

    let mut binds: Vec<Bind> = sandbox
        .etc
        .iter()
        .map(|(source, dest)| Bind::private(source.clone(), *dest, false))
        .collect();
    for (i, m) in plan.mounts.iter().enumerate() {
        let mut source =
            sandbox
                .volumes
                .get(&m.volume)
                .cloned()
                .ok_or_else(|| PodError::Runtime {
                    container: name.clone(),
                    action: "mount",
                    detail: format!("volume {:?} is not a volume of this Pod", m.volume),
                })?;
        let sub = m.sub_path.as_ref().map(|s| match m.expand {
            true => process::expand(s, &vars),
            false => s.clone(),
        });
        if let Some(sub) = sub.filter(|s| !s.is_empty()) {
            source = stage_subpath(sandbox, &name, i, &source, &sub)?;
        }
        binds.push(Bind {
            source,
            destination: m.path.clone(),
            readonly: m.read_only,
            propagation: propagation(&m.propagation),
            recursive_readonly: m.recursive_read_only,
        });
    }
    if !plan.termination_message_path.is_empty() {
        // World-writable, as the kubelet makes it, so any container user can write its message.
        let file = termination_file(sandbox, &name);
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir).map_err(io("create", &dir.to_path_buf()))?;
        }
        fs::write(&file, b"").map_err(io("create", &file))?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o666))
            .map_err(io("chmod", &file))?;
        binds.push(Bind::private(
            file,
            plan.termination_message_path.clone(),
            false,
        ));
    }
    let cgroups_path = container_cgroup(sandbox, &name);
    let cgroups = Cgroups::detect()?;
    let mut resources = plan.resources;
    // No swap for a memory-limited container (kubelet `ConfigureNoSwap`), where the host's memory
    // cgroup can limit swap at all (a v1 kernel without swap accounting has no memsw files).
    if let Some(limit) = resources.memory_limit {
        if cgroups.swap_limit_supported(&sandbox.cgroup) {
            resources.memory_swap = Some(limit);
        }
    }
    let spec = ContainerSpec {
        args,
        env,
        cwd,
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids.clone(),
        rootfs: rootfs.clone(),
        readonly_rootfs: plan.readonly_rootfs,
        capabilities: plan.security.capabilities.clone(),
        no_new_privileges: plan.no_new_privileges,
        terminal: plan.tty,
        netns: sandbox.netns.clone(),
        utsns: sandbox.pause_ns("uts"),
        userns: sandbox.userns.as_ref().map(|u| u.pin.clone()),
        ipc: match sandbox.spec.host_ipc {
            true => Namespace::Host,
            false => Namespace::Join(sandbox.pause_ns("ipc")),
        },
        pid: if sandbox.spec.host_pid {
            Namespace::Host
        } else if sandbox.spec.share_pid {
            Namespace::Join(sandbox.pause_pid_ns())
        } else {
            Namespace::Own
        },
        cgroups_path,
        binds,
        resources,
        limits: HostLimits::read(),
        privileged: plan.security.privileged,
        unmasked_proc: plan.security.unmasked_proc,
        devices: match plan.security.privileged {
            true => spec::devices::host_devices(std::path::Path::new("/dev")),
            false => vec![],
        },
        seccomp: plan.security.seccomp.clone(),
        apparmor_profile: plan.security.apparmor_profile.clone(),
        sysctls: sandbox.spec.sysctls.clone(),
    };
    let spec = spec::build(&spec).map_err(|e| PodError::Runtime {
        container: name.clone(),
        action: "create",
        detail: format!("the spec podshim made is not an OCI spec: {e}"),
    })?;

    if plan.tty {
        let socket = ConsoleSocket::bind(&bundle, "console.sock")
            .map_err(io("listen on a console socket in", &bundle))?;
        let create = Create {
            id: id.clone(),
            bundle,
            spec,
            rootfs: Rootfs::Existing,
            stdio: Stdio::Console(socket.path().to_path_buf()),
        };
        oom_base(sandbox, &name);
        step("prepared");
        return Ok(Prepared {
            id,
            create: Some(create),
            io: PreparedIo::Console {
                socket,
                stdin: plan.stdin,
            },
            user,
        });
    }
    let (out_r, out_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| io("create a pipe for", &bundle)(e.into()))?;
    let (err_r, err_w) =
        pipe2(OFlag::O_CLOEXEC).map_err(|e| io("create a pipe for", &bundle)(e.into()))?;
    let (stdin, stdin_w) = if plan.stdin {
        let (r, w) =
            pipe2(OFlag::O_CLOEXEC).map_err(|e| io("create a pipe for", &bundle)(e.into()))?;
        (r, Some(File::from(w)))
    } else {
        let devnull: OwnedFd = OpenOptions::new()
            .read(true)
            .open("/dev/null")
            .map_err(io("open", &PathBuf::from("/dev/null")))?
            .into();
        (devnull, None)
    };
    let create = Create {
        id: id.clone(),
        bundle,
        spec,
        rootfs: Rootfs::Existing,
        stdio: Stdio::Fds {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
    };
    oom_base(sandbox, &name);
    step("prepared");
    Ok(Prepared {
        id,
        create: Some(create),
        io: PreparedIo::Pipes {
            stdout: File::from(out_r),
            stderr: File::from(err_r),
            stdin: stdin_w,
        },
        user,
    })
}

/// Before the container exists: an OOM kill of it counts above this (see oom_killed).
fn oom_base(sandbox: &mut Sandbox, name: &str) {
    if podshim_engine::cgroups::slice_unit(&sandbox.cgroup).is_some() {
        if let Some(n) = Cgroups::detect()
            .ok()
            .and_then(|c| c.oom_kills(&sandbox.cgroup))
        {
            sandbox.oom_base.insert(name.to_string(), n);
        }
    }
}

fn propagation(p: &str) -> &'static str {
    match p {
        "rslave" => "rslave",
        "rshared" => "rshared",
        _ => "rprivate",
    }
}

/// Resolve `sub` inside the volume at `volume` safely and bind it onto a staging point of the
/// Pod (`<pod dir>/subpaths/<container>/<mount index>`, journaled so teardown unmounts it),
/// which the container then mounts. A restart binds it afresh.
fn stage_subpath(
    sandbox: &mut Sandbox,
    container: &str,
    index: usize,
    volume: &std::path::Path,
    sub: &str,
) -> Result<PathBuf, PodError> {
    let fail = |e: subpath::SubPathError| PodError::Runtime {
        container: container.to_string(),
        action: "prepare the subPath of",
        detail: format!(
            "CreateContainerConfigError: failed to prepare subPath for volumeMount {index}: {}",
            crate::pod::chain(&e)
        ),
    };
    let (file, _) = subpath::open(volume, sub).map_err(fail)?;
    let target = sandbox
        .dir
        .join("subpaths")
        .join(container)
        .join(index.to_string());
    podshim_engine::mounts::unmount(&target)?;
    let _ = fs::remove_dir(&target).or_else(|_| fs::remove_file(&target));
    sandbox
        .journal
        .record(podshim_engine::journal::Resource::Mount {
            path: target.clone(),
        })?;
    subpath::bind(&file, &target).map_err(fail)?;
    Ok(target)
}

/// Whether the memory cgroup's OOM killer killed a process of this container (Kubernetes reason
/// `OOMKilled`). Ask before `remove_container`: deleting the container removes its cgroup and the
/// count with it. Unknown (no memory controller, cgroup gone) counts as no.
///
/// A container of a Pod that is a systemd slice (the systemd cgroup driver) has a scope, which
/// systemd removes with its count once the last process exits, often before this runs: then
/// the Pod slice's hierarchical count, grown since the container started, answers.
pub fn oom_killed(sandbox: &Sandbox, name: &str) -> bool {
    let Ok(cgroups) = Cgroups::detect() else {
        return false;
    };
    if let Some(n) = cgroups.oom_kills(&cgroupfs_path(&container_cgroup(sandbox, name))) {
        return n > 0;
    }
    let base = sandbox.oom_base.get(name);
    let now = cgroups.oom_kills(&sandbox.cgroup);
    matches!((base, now), (Some(b), Some(n)) if n > *b)
}

/// Delete an exited container and its root filesystem (before a restart or at teardown).
pub fn remove_container(cfg: &Config, sandbox: &mut Sandbox, name: &str) -> Result<(), PodError> {
    let (_, rootfs, layer) = paths(cfg, sandbox, name);
    let id = container_id(sandbox, name);
    let cgroup = cgroupfs_path(&container_cgroup(sandbox, name));
    podshim_engine::container::remove(
        &mut sandbox.journal,
        &cfg.runtime_dir(),
        &id,
        &cgroup,
        &rootfs,
    )?;
    podshim_engine::rootfs::remove_layer_dir(&mut sandbox.journal, &layer)?;
    Ok(())
}
