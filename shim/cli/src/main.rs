//! The `podshim` command line: a thin front-end that parses options and calls the engine.

mod cli;
mod exit;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use podshim_engine::cgroups::Driver;
use podshim_engine::config::Config;
use podshim_image::{human, Auths, PullOptions, Quiet, Store, Terminal};
use podshim_kube::pod::journal::Journal;

#[derive(Parser)]
#[command(name = "podshim", version, about = "Run Kubernetes Pods on this host")]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Global {
    /// Persistent data: images, IPAM leases, writable layers
    #[arg(
        long,
        global = true,
        env = "PODSHIM_ROOT",
        default_value = "/var/lib/podshim"
    )]
    root: PathBuf,
    /// Live Pods: journals, netns pins, emptyDirs, runtime state
    #[arg(
        long,
        global = true,
        env = "PODSHIM_STATE",
        default_value = "/run/podshim"
    )]
    state: PathBuf,
    /// The host bridge Pods attach to (created on first use)
    #[arg(
        long,
        global = true,
        env = "PODSHIM_BRIDGE",
        default_value = "podshim0"
    )]
    bridge: String,
    /// The Pod subnet; its first address is the bridge's
    #[arg(
        long,
        global = true,
        env = "PODSHIM_SUBNET",
        default_value = "10.66.0.0/16"
    )]
    subnet: String,
    /// Keep the bridge when the last Pod leaves it (node infrastructure; `gc` removes it once
    /// unused): --keep-bridge=false removes it with the last Pod
    #[arg(
        long,
        global = true,
        env = "PODSHIM_KEEP_BRIDGE",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    keep_bridge: bool,
    /// Masquerade Pod traffic leaving the Pod subnet (one rule for the subnet, made with the
    /// bridge), so Pods reach other networks: --masquerade=false turns it off
    #[arg(
        long,
        global = true,
        env = "PODSHIM_MASQUERADE",
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_value = "true",
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    masquerade: bool,
    /// Take Pod networks from this CNI config (.conf or .conflist) instead of the built-in bridge
    #[arg(long, global = true, env = "PODSHIM_CNI_CONF", value_name = "FILE")]
    cni_conf: Option<PathBuf>,
    /// Where the plugins of --cni-conf are found (CNI_PATH)
    #[arg(
        long,
        global = true,
        env = "PODSHIM_CNI_PATH",
        default_value = "/opt/cni/bin:/usr/lib/cni"
    )]
    cni_path: String,
    /// Where container logs are written (CRI layout: <namespace>_<pod>_<uid>/<container>/<n>.log)
    #[arg(
        long,
        global = true,
        env = "PODSHIM_LOG_ROOT",
        default_value = "/var/log/pods"
    )]
    log_root: PathBuf,
    /// Reach this registry (HOST[:PORT]) over plain HTTP; loopback registries always are
    #[arg(
        long = "insecure-registry",
        global = true,
        env = "PODSHIM_INSECURE_REGISTRIES",
        value_delimiter = ',',
        value_name = "HOST[:PORT]"
    )]
    insecure_registries: Vec<String>,
    /// Registry credentials (docker config.json format; default $REGISTRY_AUTH_FILE, then
    /// ~/.docker/config.json)
    #[arg(long, global = true, value_name = "FILE")]
    authfile: Option<PathBuf>,
    /// A label of this node, besides kubernetes.io/hostname, os and arch (repeatable)
    #[arg(
        long = "node-label",
        global = true,
        env = "PODSHIM_NODE_LABELS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    node_labels: Vec<String>,
    /// A taint of this node (repeatable; effect NoSchedule, PreferNoSchedule or NoExecute)
    #[arg(
        long = "node-taint",
        global = true,
        env = "PODSHIM_NODE_TAINTS",
        value_delimiter = ',',
        value_name = "KEY[=VALUE]:EFFECT"
    )]
    node_taints: Vec<String>,
    /// Who makes Pods' cgroups: systemd (a slice per Pod in podshim.slice, a scope per
    /// container) or cgroupfs (/podshim/<uid>). Default: systemd on a host booted with systemd
    /// and cgroup v2 only, else cgroupfs
    #[arg(
        long,
        global = true,
        env = "PODSHIM_CGROUP_DRIVER",
        value_name = "DRIVER",
        value_parser = ["systemd", "cgroupfs"]
    )]
    cgroup_driver: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the Pods of a manifest (FILE or - for stdin), in the foreground or with -d detached
    Run(cli::run::RunArgs),
    /// List Pods: NAME, READY, STATUS, RESTARTS, IP, AGE
    Ps {
        /// Output format: wide, json or yaml
        #[arg(short, long)]
        output: Option<cli::manage::Format>,
    },
    /// Print a Pod as a Kubernetes Pod object with its status (JSON)
    Inspect { pod: String },
    /// Check a running Pod's network (CNI CHECK for --cni-conf Pods); exit 1 when it drifted
    Check {
        /// The Pod's namespace (default: the only Pod of that name, else `default`)
        #[arg(short, long)]
        namespace: Option<String>,
        /// NAME or NAMESPACE/NAME
        pod: String,
    },
    /// Print a container's logs
    Logs(cli::logs::LogsArgs),
    /// Run a command in a running container of a Pod (exit code: the command's)
    Exec(cli::exec::ExecArgs),
    /// Follow a running container's output live, and with -i send it input (-t: its terminal)
    Attach(cli::attach::AttachArgs),
    /// Resize a running container in place (its resizePolicy says whether it restarts)
    Resize(cli::resize::ResizeArgs),
    /// Stop a Pod: preStop, the stop signal, SIGKILL after the grace period; the Pod stays listed
    Stop {
        /// Seconds from the stop signal to SIGKILL (default: the Pod's terminationGracePeriodSeconds)
        #[arg(long)]
        grace_period: Option<u64>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Remove stopped Pods (-f: stop running ones first)
    Rm {
        #[arg(short, long)]
        force: bool,
        /// With -f: seconds from the stop signal to SIGKILL
        #[arg(long)]
        grace_period: Option<u64>,
        #[arg(required = true)]
        pods: Vec<String>,
    },
    /// Stop and remove the Pods of a manifest (FILE or - for stdin)
    Down {
        #[arg(long)]
        grace_period: Option<u64>,
        file: String,
    },
    /// Tear down the Pods of this instance whose podshim is gone (killed or crashed), then CNI GC
    /// of their networks (cniVersion 1.1.0 lists)
    Gc,
    /// Remove this instance's node-level state (bridge, its NAT and forward rules, IPAM pool,
    /// runtime state) once it has no Pods left; images and logs stay
    Reset,
    /// The per-Pod supervisor `run -d` starts (reads its Pod from stdin)
    #[command(hide = true)]
    Supervise,
    /// One httpGet/tcpSocket check, run by a supervisor (exit 0: success)
    #[command(hide = true)]
    Probe {
        #[arg(long)]
        pod_ip: String,
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        action: String,
    },
    /// Manage the local image store
    #[command(subcommand)]
    Image(ImageCommand),
    /// Create or update workloads (Deployment, ReplicaSet, DaemonSet, Job, CronJob), ConfigMaps
    /// and Secrets from manifests; their controllers keep their Pods
    Apply(cli::apply::ApplyArgs),
    /// List workloads or Pods: `get deploy,rs,pods`, `get deploy/web -o yaml`
    Get(cli::get::GetArgs),
    /// Show a workload in detail
    Describe(cli::describe::DescribeArgs),
    /// Set the replicas of a Deployment or ReplicaSet
    Scale(cli::scale::ScaleArgs),
    /// Manage a Deployment's rollout: status, history, undo, restart, pause, resume
    Rollout(cli::rollout::RolloutArgs),
    /// Delete workloads with what they own (--cascade=orphan keeps the Pods), or Pods
    Delete(cli::delete::DeleteArgs),
    /// Start the controller of every stored workload (run at boot)
    Up,
    /// A workload's controller process (`--keeper`: the process that restarts it)
    #[command(hide = true)]
    Controller {
        #[arg(long)]
        keeper: bool,
        key: String,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI archive, an OCI layout directory or a docker-archive
    Import {
        /// The image name (default: from the archive)
        #[arg(long)]
        name: Option<String>,
        path: PathBuf,
    },
    /// Pull an image from a registry (progress on a terminal, quiet otherwise)
    Pull {
        /// Print nothing but the result, even on a terminal
        #[arg(long, short)]
        quiet: bool,
        reference: String,
    },
    /// List the images in the store
    Ls {
        /// Output format
        #[arg(long, short, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Show an image's manifest, config and layers (JSON)
    Inspect { reference: String },
    /// Remove images by name (or name@digest), then their blobs and layers unless still used
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove blobs and layers that no image and no running Pod uses
    Prune,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Table,
    Json,
}

fn main() -> ExitCode {
    // Protecting the binary re-executes podshim through a detached read-only mount (or a memfd),
    // after which /proc/self/exe no longer says where podshim is installed: find the pause
    // binary next to it first.
    if std::env::var_os("PODSHIM_PAUSE").is_none() {
        std::env::set_var("PODSHIM_PAUSE", Config::find_pause());
    }
    // libcontainer forks this binary into containers: protect /proc/self/exe first
    // (CVE-2019-5736).
    if let Err(e) = podshim_engine::exe::ensure_protected() {
        eprintln!("podshim: {e}");
        return ExitCode::from(1);
    }
    podshim_engine::sys::reset_ignored_signals();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PODSHIM_LOG")
                .unwrap_or_else(|_| "off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("{}", exit::message(&e));
            ExitCode::from(exit::status(exit::kind(&e)))
        }
    }
}

fn config(g: &Global) -> Result<Config> {
    let subnet = g.subnet.parse().map_err(|e| {
        anyhow::anyhow!(
            "--subnet {:?}: {e}; want an IPv4 CIDR such as 10.66.0.0/16",
            g.subnet
        )
    })?;
    if g.bridge.is_empty() || g.bridge.len() > 15 {
        bail!(
            "--bridge {:?}: an interface name has 1 to 15 characters",
            g.bridge
        );
    }
    // The cgroup driver is a property of the process (every Pod it makes), chosen before any.
    let driver = match &g.cgroup_driver {
        Some(d) => Driver::parse(d)?,
        None => Driver::detect(),
    };
    Driver::set(driver).with_context(|| format!("--cgroup-driver {}", driver.name()))?;
    Ok(Config {
        root: g.root.clone(),
        state: g.state.clone(),
        bridge: g.bridge.clone(),
        subnet,
        pause: Config::find_pause(),
        keep_bridge: g.keep_bridge,
        masquerade: g.masquerade,
        cni_conf: g.cni_conf.clone(),
        cni_path: g.cni_path.clone(),
    })
}

/// The global options again, for the supervisor `run -d` starts.
fn global_args(g: &Global) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec![
        "--root".into(),
        g.root.clone().into(),
        "--state".into(),
        g.state.clone().into(),
        "--bridge".into(),
        g.bridge.clone().into(),
        "--subnet".into(),
        g.subnet.clone().into(),
        "--cni-path".into(),
        g.cni_path.clone().into(),
        "--log-root".into(),
        g.log_root.clone().into(),
    ];
    a.push(format!("--keep-bridge={}", g.keep_bridge).into());
    a.push(format!("--masquerade={}", g.masquerade).into());
    // The resolved driver, so that the supervisor makes (and restarts) containers as its parent.
    a.push(format!("--cgroup-driver={}", Driver::current().name()).into());
    if let Some(c) = &g.cni_conf {
        a.push("--cni-conf".into());
        a.push(c.clone().into());
    }
    a
}

fn dispatch(cli: Cli) -> Result<i32> {
    let cfg = config(&cli.global)?;
    let log_root = cli.global.log_root.clone();
    // Everything podshim writes is private to root: commands that may write make the three
    // directories (0700), every command tightens them where an older podshim left them open.
    // The others create nothing (a dry run leaves no trace); the probe runs every few seconds
    // per Pod and touches nothing.
    let writes = match &cli.command {
        Command::Run(args) => !args.dry_run,
        Command::Ps { .. }
        | Command::Inspect { .. }
        | Command::Check { .. }
        | Command::Logs(_)
        | Command::Exec(_)
        | Command::Probe { .. }
        | Command::Get(_)
        | Command::Describe(_) => false,
        _ => true,
    };
    if !matches!(cli.command, Command::Probe { .. }) {
        for dir in [&cfg.root, &cfg.state, &log_root] {
            if writes {
                podshim_engine::private::ensure_dir(dir)?;
            } else {
                podshim_engine::private::tighten(dir)?;
            }
        }
    }
    match cli.command {
        Command::Run(args) => cli::run::run(
            &cfg,
            &log_root,
            &global_args(&cli.global),
            &pull_options(&cli.global)?,
            &cli::schedule::node(&cli.global.node_labels, &cli.global.node_taints)?,
            args,
        ),
        Command::Supervise => cli::run::supervise(&cfg, &log_root, &global_args(&cli.global)),
        Command::Probe {
            pod_ip,
            timeout_ms,
            action,
        } => cli::run::probe(&pod_ip, timeout_ms, &action),
        Command::Ps { output } => cli::manage::ps(&cfg, output),
        Command::Apply(args) => cli::apply::apply(
            &cfg,
            &log_root,
            &global_args(&cli.global),
            &pull_options(&cli.global)?,
            args,
        ),
        Command::Get(args) => cli::get::get(&cfg, &log_root, &global_args(&cli.global), args),
        Command::Describe(args) => {
            cli::describe::describe(&cfg, &log_root, &global_args(&cli.global), args)
        }
        Command::Scale(args) => cli::scale::scale(&cfg, &log_root, &global_args(&cli.global), args),
        Command::Rollout(args) => {
            cli::rollout::rollout(&cfg, &log_root, &global_args(&cli.global), args)
        }
        Command::Delete(args) => {
            cli::delete::delete(&cfg, &log_root, &global_args(&cli.global), args)
        }
        Command::Up => cli::up::up(&cfg, &log_root, &global_args(&cli.global)),
        Command::Controller { keeper, key } => {
            cli::controller::controller(&cfg, &log_root, &global_args(&cli.global), keeper, &key)
        }
        Command::Inspect { pod } => cli::manage::inspect(&cfg, &pod),
        Command::Check { namespace, pod } => cli::manage::check(&cfg, namespace.as_deref(), &pod),
        Command::Logs(args) => cli::logs::logs(&cfg, args),
        Command::Exec(args) => cli::exec::exec(&cfg, args),
        Command::Resize(args) => cli::resize::resize(&cfg, args),
        Command::Attach(args) => cli::attach::attach(&cfg, args),
        Command::Stop { grace_period, pods } => cli::manage::stop(&cfg, &pods, grace_period),
        Command::Rm {
            force,
            grace_period,
            pods,
        } => cli::manage::rm(&cfg, &pods, force, grace_period),
        Command::Down { grace_period, file } => cli::manage::down(&cfg, &file, grace_period),
        Command::Gc => {
            let mut code = 0;
            for outcome in podshim_kube::collect::gc(&cfg) {
                match outcome {
                    podshim_kube::collect::Outcome::Running { key, pid } => {
                        println!("{key}: running (podshim pid {pid})")
                    }

                    podshim_kube::collect::Outcome::Removed { key, problems }
                        if problems.is_empty() =>
                    {
                        println!("{key}: removed")
                    }
                    podshim_kube::collect::Outcome::Removed { key, problems } => {
                        code = 1;
                        println!("{key}: removed with problems: {}", problems.join("; "));
                    }
                    podshim_kube::collect::Outcome::Network {
                        name,
                        kept,
                        problem: None,
                    } => {
                        println!("cni network {name}: garbage collected, {kept} attachment(s) kept")
                    }
                    podshim_kube::collect::Outcome::Network {
                        name,
                        problem: Some(p),
                        ..
                    } => {
                        code = 1;
                        println!("cni network {name}: gc failed: {p}");
                    }
                    podshim_kube::collect::Outcome::Bridge {
                        name,
                        problem: None,
                    } => println!("bridge {name}: removed with its node rules (no Pod uses it)"),
                    podshim_kube::collect::Outcome::Bridge {
                        name,
                        problem: Some(p),
                    } => {
                        code = 1;
                        println!("bridge {name}: not removed: {p}");
                    }
                }
            }
            Ok(code)
        }
        Command::Reset => {
            let removed = podshim_kube::collect::reset(&cfg).context("reset")?;
            if removed.bridge {
                println!("bridge {}: removed with its node rules", cfg.bridge);
            }
            for dir in removed.dirs {
                println!("removed {}", dir.display());
            }
            Ok(0)
        }
        Command::Image(ImageCommand::Import { name, path }) => {
            let store = Store::open(&cfg.root).context("open the image store")?;
            let images = store
                .import(&path, name.as_deref())
                .with_context(|| format!("import {}", path.display()))?;
            for i in images {
                println!("{} {}", i.name, i.digest);
            }
            Ok(0)
        }
        Command::Image(ImageCommand::Pull { quiet, reference }) => {
            let store = Store::open(&cfg.root).context("open the image store")?;
            let opts = pull_options(&cli.global)?;
            let info = if !quiet && std::io::stderr().is_terminal() {
                store.pull(&reference, &opts, &Terminal::new(std::io::stderr()))
            } else {
                store.pull(&reference, &opts, &Quiet)
            };
            let info = info.context("image pull")?;
            println!("{} {}", info.name, info.digest);
            Ok(0)
        }
        Command::Image(ImageCommand::Ls { output }) => {
            let store = Store::open(&cfg.root).context("open the image store")?;
            let images = store.list()?;
            match output {
                Format::Json => {
                    let list: Vec<serde_json::Value> = images
                        .iter()
                        .map(|i| {
                            serde_json::json!({"name": i.name, "digest": i.digest,
                                "size": i.size, "created": i.created})
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Format::Table => {
                    println!("{:<50} {:<14} {:>10}  CREATED", "NAME", "DIGEST", "SIZE");
                    for i in images {
                        let digest: String = i
                            .digest
                            .trim_start_matches("sha256:")
                            .chars()
                            .take(12)
                            .collect();
                        let created = i.created.as_deref().unwrap_or("-");
                        println!(
                            "{:<50} {:<14} {:>10}  {created}",
                            i.name,
                            digest,
                            human(i.size)
                        );
                    }
                }
            }
            Ok(0)
        }
        Command::Image(ImageCommand::Inspect { reference }) => {
            let store = Store::open(&cfg.root).context("open the image store")?;
            let image = store.inspect(&reference).context("image inspect")?;
            println!("{}", serde_json::to_string_pretty(&image)?);
            Ok(0)
        }
        Command::Image(ImageCommand::Rm { references }) => {
            let store = Store::open(&cfg.root).context("open the image store")?;
            let in_use = Journal::images_in_use(&cfg.pods_dir());
            let mut code = 0;
            for reference in references {
                match store.remove(&reference, &in_use) {
                    Ok((names, pruned)) => {
                        for n in names {
                            println!("removed {n}");
                        }
                        print_pruned(&pruned);
                    }
                    Err(e) => {
                        eprintln!("podshim: image rm {reference}: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Command::Image(ImageCommand::Prune) => {
            let store = Store::open(&cfg.root).context("open the image store")?;
            let in_use = Journal::images_in_use(&cfg.pods_dir());
            let pruned = store.prune(&in_use).context("image prune")?;
            print_pruned(&pruned);
            Ok(0)
        }
    }
}

fn print_pruned(p: &podshim_image::Pruned) {
    if p.blobs + p.layers > 0 {
        println!(
            "freed {} blob(s) ({}) and {} unpacked layer(s)",
            p.blobs,
            human(p.bytes),
            p.layers
        );
    }
}

/// The node's pull options: --insecure-registry and the auth file's credentials.
fn pull_options(g: &Global) -> Result<PullOptions> {
    Ok(PullOptions {
        insecure_registries: g.insecure_registries.clone(),
        auths: Auths::load(g.authfile.as_deref())?,
    })
}
