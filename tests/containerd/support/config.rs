//! The generated configuration of a test's private containerd (`version = 2`) and of the CNI
//! network its CRI plugin uses: every path is the test's own, so several daemons (and the host's
//! own containerd, if any) never share a socket, a root, a netns pin or an IPAM lease.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::handler::Handler;

/// Where one daemon keeps everything; all of it under `dir` except what containerd 1.6 puts in
/// fixed places (shim sockets in /run/containerd/s, cgroups under `cgroup_root`).
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub address: PathBuf,
    pub ttrpc_address: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
    /// `/podshim-test-TAG`: the cgroup every container of this daemon is put under (ctr runs
    /// pass `--cgroup`, CRI sandboxes take it as their `cgroup_parent`).
    pub cgroup_root: String,
}

impl Layout {
    pub fn new(dir: &Path, tag: &str) -> Self {
        Layout {
            dir: dir.to_path_buf(),
            root: dir.join("root"),
            state: dir.join("state"),
            address: dir.join("containerd.sock"),
            ttrpc_address: dir.join("containerd.sock.ttrpc"),
            config: dir.join("config.toml"),
            log: dir.join("containerd.log"),
            cgroup_root: format!("/podshim-test-{tag}"),
        }
    }
}

/// The CRI plugin's network and images.
#[derive(Debug, Clone)]
pub struct Cri {
    pub sandbox_image: String,
    pub cni_bin_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub bridge: String,
    pub subnet: String,
    pub ipam_dir: PathBuf,
}

/// containerd's config: the CRI plugin disabled (ctr and shim tests) or configured for the test
/// (`cri`), with a runtime for each handler.
pub fn containerd_toml(layout: &Layout, cri: Option<&Cri>, handlers: &[Handler]) -> String {
    let mut t = String::new();
    let q = |p: &Path| toml_string(&p.display().to_string());
    writeln!(t, "version = 2").unwrap();
    writeln!(t, "root = {}", q(&layout.root)).unwrap();
    writeln!(t, "state = {}", q(&layout.state)).unwrap();
    if cri.is_none() {
        writeln!(t, "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]").unwrap();
    }
    writeln!(t, "\n[grpc]\n  address = {}", q(&layout.address)).unwrap();
    writeln!(t, "\n[ttrpc]\n  address = {}", q(&layout.ttrpc_address)).unwrap();
    // The opt plugin would otherwise create /opt/containerd.
    writeln!(
        t,
        "\n[plugins.\"io.containerd.internal.v1.opt\"]\n  path = {}",
        q(&layout.dir.join("opt"))
    )
    .unwrap();
    let Some(cri) = cri else { return t };
    let p = "plugins.\"io.containerd.grpc.v1.cri\"";
    writeln!(t, "\n[{p}]").unwrap();
    writeln!(t, "  sandbox_image = {}", toml_string(&cri.sandbox_image)).unwrap();
    // Root here lacks CAP_SYS_RESOURCE: the kubelet's negative oom_score_adj values (-997 for
    // Guaranteed Pods) would make every container create fail; this clamps them to containerd's.
    writeln!(t, "  restrict_oom_score_adj = true").unwrap();
    // Netns pins under the daemon's state instead of the host's /var/run/netns.
    writeln!(t, "  netns_mounts_under_state_dir = true").unwrap();
    // ContainerStats answers from the last collection; collect every second, not every 10.
    writeln!(t, "  stats_collect_period = 1").unwrap();
    writeln!(t, "\n[{p}.cni]").unwrap();
    writeln!(t, "  bin_dir = {}", q(&cri.cni_bin_dir)).unwrap();
    writeln!(t, "  conf_dir = {}", q(&cri.cni_conf_dir)).unwrap();
    writeln!(t, "\n[{p}.containerd]").unwrap();
    writeln!(t, "  default_runtime_name = \"runc\"").unwrap();
    let mut runtimes: Vec<&Handler> = handlers.iter().collect();
    let runc = Handler::runc();
    if !handlers.iter().any(|h| h.name == "runc") {
        runtimes.push(&runc);
    }
    for h in runtimes {
        writeln!(t, "\n[{p}.containerd.runtimes.{}]", h.name).unwrap();
        writeln!(t, "  runtime_type = {}", toml_string(h.runtime_type)).unwrap();
        if h.needs_path() {
            writeln!(t, "  runtime_path = {}", q(&h.shim)).unwrap();
        }
        if h.name == "runc" {
            // runc's own state (default /run/containerd/runc) in the test's directory too.
            writeln!(t, "\n[{p}.containerd.runtimes.runc.options]").unwrap();
            writeln!(t, "  Root = {}", q(&layout.dir.join("runc"))).unwrap();
        }
    }
    t
}

/// The CNI network list of the CRI plugin: podshim's own `podshim-bridge` (containerd adds the
/// loopback plugin itself, from the same bin dir).
pub fn cni_conflist(cri: &Cri) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": format!("podshim-test-{}", cri.bridge),
        "plugins": [{
            "type": "podshim-bridge",
            "bridge": cri.bridge,
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": cri.subnet}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": cri.ipam_dir,
            }
        }]
    })
}

/// A TOML basic string (paths and image names here have no control characters).
pub fn toml_string(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
