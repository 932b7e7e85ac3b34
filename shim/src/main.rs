//! The `podshim` command line: a thin front-end that parses options and calls the engine.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use podshim::config::Config;
use podshim::image::{human, Auths, PullOptions, Quiet, Store, Terminal};
use podshim::pod::journal::Journal;
use podshim::{foreground, manifest, plan, pulling};

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
    /// Keep the bridge when the last Pod leaves it (default: remove it)
    #[arg(long, global = true, env = "PODSHIM_KEEP_BRIDGE")]
    keep_bridge: bool,
    /// Masquerade Pod traffic leaving the Pod subnet, so Pods reach other networks
    #[arg(long, global = true, env = "PODSHIM_MASQUERADE")]
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
}

#[derive(Subcommand)]
enum Command {
    /// Run the Pods of a manifest in the foreground (FILE or - for stdin)
    Run {
        /// Validate, print the defaulted Pods as YAML, create nothing
        #[arg(long)]
        dry_run: bool,
        /// Scale the restart back-off (1 = Kubernetes' 10 s doubling to 300 s)
        #[arg(
            long,
            default_value_t = 1.0,
            hide = true,
            env = "PODSHIM_BACKOFF_SCALE"
        )]
        backoff_scale: f64,
        file: String,
    },
    /// Tear down the Pods of this instance whose podshim is gone (killed or crashed)
    Gc,
    /// Manage the local image store
    #[command(subcommand)]
    Image(ImageCommand),
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
    // Sealing re-executes podshim from a memfd, after which /proc/self/exe no longer says where
    // podshim is installed: find the pause binary next to it first.
    if std::env::var_os("PODSHIM_PAUSE").is_none() {
        std::env::set_var("PODSHIM_PAUSE", Config::find_pause());
    }
    // libcontainer forks this binary into containers: seal /proc/self/exe first (CVE-2019-5736).
    if let Err(e) = pentacle::ensure_sealed() {
        eprintln!("podshim: cannot seal the podshim binary: {e}");
        return ExitCode::from(1);
    }
    podshim::sys::reset_ignored_signals();
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
            eprintln!("podshim: {e:#}");
            ExitCode::from(1)
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

fn dispatch(cli: Cli) -> Result<i32> {
    let cfg = config(&cli.global)?;
    match cli.command {
        Command::Run {
            dry_run,
            backoff_scale,
            file,
        } => run(&cfg, &cli.global, &file, dry_run, backoff_scale),
        Command::Gc => {
            let mut code = 0;
            for outcome in podshim::pod::gc::gc(&cfg) {
                match outcome {
                    podshim::pod::gc::Outcome::Running { key, pid } => {
                        println!("{key}: running (podshim pid {pid})")
                    }
                    podshim::pod::gc::Outcome::Removed { key, problems } if problems.is_empty() => {
                        println!("{key}: removed")
                    }
                    podshim::pod::gc::Outcome::Removed { key, problems } => {
                        code = 1;
                        println!("{key}: removed with problems: {}", problems.join("; "));
                    }
                }
            }
            Ok(code)
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

fn print_pruned(p: &podshim::image::Pruned) {
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

fn run(
    cfg: &Config,
    global: &Global,
    file: &str,
    dry_run: bool,
    backoff_scale: f64,
) -> Result<i32> {
    let text = if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("read the manifest from stdin")?;
        s
    } else {
        std::fs::read_to_string(file).with_context(|| format!("read {file}"))?
    };
    let manifest = match manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    for w in &manifest.warnings {
        eprintln!("Warning: {w}");
    }
    if dry_run {
        print!("{}", manifest::to_yaml(&manifest));
        return Ok(0);
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
    let store = Store::open(&cfg.root).context("open the image store")?;
    // Pulls first: a Pod whose image cannot be pulled fails before anything is created.
    let opts = pull_options(global)?;
    let pulled = if std::io::stderr().is_terminal() {
        pulling::pull_for_pods(&manifest, &store, &opts, &Terminal::new(std::io::stderr()))
    } else {
        pulling::pull_for_pods(&manifest, &store, &opts, &Quiet)
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
    // The pulls' runtimes are gone: libcontainer may fork this process now.
    podshim::pod::ensure_single_threaded()?;
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for pod in &manifest.pods {
        match plan::plan(pod, &manifest, &store) {
            Ok(p) => {
                for w in &p.warnings {
                    eprintln!("Warning: pod {:?}: {w}", pod.name());
                }
                plans.push(p)
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
    let opts = foreground::Options {
        backoff: podshim::pod::restart::Backoff::default().scaled(backoff_scale),
    };
    foreground::run(cfg, plans, opts)
}
