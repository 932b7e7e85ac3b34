//! `podshim run [-d] [--replace] [--dry-run] FILE` and the hidden `podshim supervise`, the
//! per-Pod supervisor a detached run starts.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use clap::Args;
use podshim_engine::config::Config;
use podshim_image::{PullOptions, Quiet, Store, Terminal};
use podshim_kube::manifest::{self, Manifest};
use podshim_kube::pod::restart::Backoff;
use podshim_kube::schedule::Node;
use podshim_kube::supervise::{self, PodJob, SupervisorInput};
use podshim_kube::{logs, plan, pulling};

#[derive(Args)]
pub struct RunArgs {
    /// Validate, print the defaulted Pods as YAML, create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Detach: return once every container has started; a per-Pod supervisor keeps running
    #[arg(short, long)]
    detach: bool,
    /// Remove a Pod of the same name first (stopping it if it runs)
    #[arg(long)]
    replace: bool,
    /// Scale the restart back-off (1 = Kubernetes' 10 s doubling to 300 s; tests use less)
    #[arg(
        long,
        default_value_t = 1.0,
        hide = true,
        env = "PODSHIM_BACKOFF_SCALE"
    )]
    backoff_scale: f64,
    file: String,
}

/// `podshim probe`: one httpGet, tcpSocket or grpc check (the supervisor runs it as a child process);
/// exit 0 on success, 1 with the reason on stderr otherwise.
pub fn probe(pod_ip: &str, timeout_ms: u64, action: &str) -> Result<i32> {
    let action: podshim_kube::probe::Action =
        serde_json::from_str(action).context("decode the check")?;
    let ip = pod_ip.parse().context("--pod-ip")?;
    match podshim_kube::probe::check(
        &action,
        ip,
        std::time::Duration::from_millis(timeout_ms.max(1)),
    ) {
        Ok(_) => Ok(0),
        Err(why) => {
            eprintln!("{why}");
            Ok(1)
        }
    }
}

/// Read and parse a manifest (`-` for stdin). Problems are printed Kubernetes-style; `None` then.
pub fn load(file: &str) -> Result<Option<Manifest>> {
    let read = if file == "-" {
        manifest::read_text(std::io::stdin().lock())
    } else {
        let f = File::open(file).with_context(|| format!("read {file}"))?;
        manifest::read_text(f)
    };
    let text = match read {
        Ok(text) => text,
        Err(manifest::ReadError::Io(e)) => {
            let from = if file == "-" { "stdin" } else { file };
            return Err(anyhow::Error::new(e).context(format!("read the manifest from {from}")));
        }
        Err(e) => {
            eprintln!("{e}");
            return Ok(None);
        }
    };
    match manifest::parse(&text) {
        Ok(m) => {
            for w in &m.warnings {
                eprintln!("Warning: {w}");
            }
            Ok(Some(m))
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(None)
        }
    }
}

pub fn run(
    cfg: &Config,
    log_root: &Path,
    globals: &[OsString],
    pull: &PullOptions,
    node: &Node,
    args: RunArgs,
) -> Result<i32> {
    let Some(mut manifest) = load(&args.file)? else {
        return Ok(1);
    };
    if args.dry_run {
        print!("{}", manifest::to_yaml(&manifest));
        // Where each Pod would go (or why not), on stderr.
        let placed = super::schedule::place(cfg, node, &mut manifest, args.replace, true);
        return Ok(if placed { 0 } else { 1 });
    }
    if !nix::unistd::geteuid().is_root() {
        bail!("podshim run needs root (it creates namespaces, mounts, cgroups and network interfaces)");
    }
    if !cfg.pause.is_file() {
        bail!(
            "the pause binary was not found at {}; set PODSHIM_PAUSE or install it next to podshim",
            cfg.pause.display()
        );
    }
    if let Some(conf) = &cfg.cni_conf {
        // A broken config is an error before any Pod is created.
        podshim_cni::chain::NetworkList::load(conf)
            .with_context(|| format!("--cni-conf {}", conf.display()))?;
    }
    if !super::schedule::place(cfg, node, &mut manifest, args.replace, false) {
        eprintln!("podshim: not every pod can be placed on this node; nothing was created");
        return Ok(1);
    }
    // The file's PersistentVolumeClaims, as `kubectl apply -f` would make them with its Pods.
    super::claims::provision(cfg, &manifest.persistent_volume_claims, true)?;
    let jobs = jobs(cfg, &manifest, pull)?;
    if args.replace {
        for job in &jobs {
            let s = &job.plan.sandbox;
            super::manage::remove_if_present(cfg, &s.namespace, &s.name)?;
        }
    }
    if args.detach {
        return detach(cfg, log_root, globals, jobs, args.backoff_scale);
    }
    own_mount_namespace(&jobs);
    let opts = supervise::Options {
        backoff: Backoff::default().scaled(args.backoff_scale),
        reporter: Box::new(super::report::Terminal { echo: true }),
        detached: false,
        log_root: log_root.to_path_buf(),
        ready: None,
        runner: supervise::Runner {
            self_args: globals.to_vec(),
        },
    };
    Ok(supervise::run(cfg, jobs, opts)?)
}

/// Pull what the Pods' pull policies ask for, then plan every Pod of the manifest (all problems
/// at once, nothing created).
fn jobs(cfg: &Config, manifest: &Manifest, pull: &PullOptions) -> Result<Vec<PodJob>> {
    let store = Store::open(&cfg.root).context("open the image store")?;
    // Pulls first: a Pod whose image cannot be pulled fails before anything is created.
    let pulled = if std::io::stderr().is_terminal() {
        pulling::pull_for_pods(manifest, &store, pull, &Terminal::new(std::io::stderr()))
    } else {
        pulling::pull_for_pods(manifest, &store, pull, &Quiet)
    };
    for (pod, w) in &pulled.warnings {
        eprintln!("Warning: pod {pod:?}: {w}");
    }
    if !pulled.errors.is_empty() {
        let problems: Vec<String> = pulled
            .errors
            .iter()
            .map(|(pod, e)| format!("pod {pod:?}: {e}"))
            .collect();
        bail!(problems.join("\n"));
    }
    // The pulls' runtimes are gone: libcontainer may fork this process (or a supervisor) now.
    podshim_engine::spawner::ensure_single_threaded()?;
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    for pod in &manifest.pods {
        match plan::plan(pod, manifest, &store) {
            Ok(p) => {
                for w in &p.warnings {
                    eprintln!("Warning: pod {:?}: {w}", pod.name());
                }
                let object = serde_json::to_value(pod).context("render the pod")?;
                jobs.push(PodJob { plan: p, object });
            }
            Err(errs) => problems.extend(
                errs.into_iter()
                    .map(|e| format!("pod {:?}: {e}", pod.name())),
            ),
        }
    }
    if !problems.is_empty() {
        bail!(problems.join("\n"));
    }
    Ok(jobs)
}

/// `run -d`: one supervisor per Pod, each started and waited for in turn; prints each Pod's
/// name once its containers have started.
fn detach(
    cfg: &Config,
    log_root: &Path,
    globals: &[OsString],
    jobs: Vec<PodJob>,
    scale: f64,
) -> Result<i32> {
    // Not current_exe(): podshim runs from a sealed memfd, which has no path but this one.
    let exe = PathBuf::from("/proc/self/exe");
    let mut code = 0;
    for job in jobs {
        let s = &job.plan.sandbox;
        // A Pod that cannot be made leaves nothing, not even a log directory (which, with the
        // same uid, would be the existing Pod's).
        if let Err(e) = supervise::check_free(cfg, &s.namespace, &s.name) {
            eprintln!("podshim: {}", podshim_engine::chain(&e));
            code = 1;
            continue;
        }
        let log_dir = logs::pod_dir(log_root, &s.namespace, &s.name, &s.uid);
        let made_log_dir = !log_dir.exists();
        podshim_engine::private::create_dir_all(&log_dir)
            .with_context(|| format!("create {}", log_dir.display()))?;
        let log_path = log_dir.join("supervisor.log");
        let log = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(podshim_engine::private::FILE_MODE)
            .open(&log_path)
            .with_context(|| format!("create {}", log_path.display()))?;
        let name = s.name.clone();
        let mut cmd = Command::new(&exe);
        // The supervisor outlives this command: it must not keep what podshim inherited, nor
        // share its terminal's process group (a Ctrl-C on `run -d` while the supervisor starts
        // would kill it half-way through its setup).
        podshim_engine::sys::inherit_only_stdio(&mut cmd);
        podshim_engine::sys::new_session(&mut cmd);
        let mut child = cmd
            .args(globals)
            .arg("supervise")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("start the pod supervisor")?;
        let input = SupervisorInput {
            job: std::borrow::Cow::Owned(job),
            backoff_scale: scale,
        };
        {
            let stdin = child.stdin.take().expect("piped stdin");
            serde_json::to_writer(stdin, &input).context("hand the pod to its supervisor")?;
        }
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line)?;
        let line = line.trim_end();
        match line.split_once(' ') {
            Some(("ok", _)) => println!("{name}"),
            Some(("failed", rest)) => {
                code = 1;
                let why = rest.strip_prefix(&name).unwrap_or(rest).trim();
                eprintln!("podshim: pod {name}: {why}");
                if why.starts_with(NOT_MADE) {
                    // The Pod was never made (its name was taken meanwhile, its sandbox
                    // failed): nothing of it stays.
                    let _ = child.wait();
                    if made_log_dir {
                        let _ = std::fs::remove_dir_all(&log_dir);
                    }
                } else {
                    eprintln!(
                        "podshim: see `podshim ps`, `podshim logs {name}` and {}",
                        log_path.display()
                    );
                }
            }
            _ => {
                code = 1;
                let _ = child.wait();
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                eprintln!(
                    "podshim: pod {name}: the supervisor exited before the pod started{}",
                    if tail.trim().is_empty() {
                        String::new()
                    } else {
                        format!(":\n{}", tail.trim_end())
                    }
                );
                let _ = std::fs::remove_file(&log_path);
                let _ = std::fs::remove_dir(&log_dir);
            }
        }
    }
    Ok(code)
}

/// The per-Pod supervisor: its own session (made when it was started; still asked for here,
/// for a supervisor started some other way), stdin and stdout on /dev/null (the original stdout
/// is the channel on which `run -d` waits for the start), stderr into the Pod's
/// `supervisor.log`.
pub fn supervise(cfg: &Config, log_root: &Path, globals: &[OsString]) -> Result<i32> {
    let _ = nix::unistd::setsid();
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("read the pod")?;
    let input: SupervisorInput = serde_json::from_str(&input).context("decode the pod")?;
    let ready = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let mut errors = ready.try_clone()?;
    let devnull = File::options().read(true).write(true).open("/dev/null")?;
    {
        use std::os::fd::AsRawFd;
        nix::unistd::dup2(devnull.as_raw_fd(), 0)?;
        nix::unistd::dup2(devnull.as_raw_fd(), 1)?;
    }
    own_mount_namespace(std::slice::from_ref(&*input.job));
    let name = input.job.plan.sandbox.name.clone();
    let opts = supervise::Options {
        backoff: Backoff::default().scaled(input.backoff_scale),
        reporter: Box::new(super::report::Terminal { echo: false }),
        detached: true,
        log_root: PathBuf::from(log_root),
        ready: Some(ready),
        runner: supervise::Runner {
            self_args: globals.to_vec(),
        },
    };
    match supervise::run(cfg, vec![input.job.into_owned()], opts) {
        Ok(code) => Ok(code),
        Err(e) => {
            use std::io::Write;
            // `run -d` names the Pod itself: say what went wrong once, and whether the Pod was
            // made at all.
            let msg = match &e {
                supervise::RunError::Pod { source, .. } => {
                    format!("{NOT_MADE}{}", podshim_engine::chain(source))
                }
                other => podshim_engine::chain(other),
            };
            let _ = writeln!(errors, "failed {name} {}", msg.replace('\n', " "));
            Err(anyhow::Error::from(e))
        }
    }
}

/// Make the Pods' mounts in a mount namespace of this process's own, so that the host's mount
/// table, and with it the cost of every container's new mount namespace, does not grow with
/// the number of Pods (see [`podshim_engine::mounts::private_namespace`]). Not when a container
/// asks for `Bidirectional` propagation: what it mounts must reach the host. Where it cannot be
/// made, or with `PODSHIM_HOST_MOUNTS` set to a true value (`1`, `true`, `yes`, `on`: for
/// comparisons), the mounts stay in the host's namespace, which works the same, only slower.
fn own_mount_namespace(jobs: &[PodJob]) {
    let host_mounts = std::env::var("PODSHIM_HOST_MOUNTS").is_ok_and(|v| {
        matches!(
            v.to_ascii_lowercase().as_str(),
            "1" | "true" | "t" | "yes" | "y" | "on"
        )
    });
    let bidirectional = jobs.iter().any(|job| {
        job.plan
            .ordered()
            .any(|(_, c)| c.mounts.iter().any(|m| m.propagation == "rshared"))
    });
    if bidirectional || host_mounts {
        return;
    }
    if let Err(e) = podshim_engine::mounts::private_namespace() {
        tracing::debug!(error = %podshim_engine::chain(&e), "pod mounts stay in the host's mount namespace");
    }
}

/// How a supervisor's failure line starts when the Pod could not be made (see `detach`).
const NOT_MADE: &str = "not created: ";
