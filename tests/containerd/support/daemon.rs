//! A private containerd for one test: its own root, state, gRPC and ttrpc sockets and config
//! under `/tmp/podshim-test-TAG`, started by the test process and stopped by PID when the test
//! ends. `shutdown` (the end of a passing test) stops it and fails the test when anything it
//! made is left; `Drop` (a failing test) stops and cleans up the same way without asserting.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::cleanup::{self, Leftovers};
use super::config::{self, Layout};
use super::handler::Handler;
use super::{installed, unique_tag, wait_until, workspace};

/// Which plugins a test needs.
pub struct Options {
    /// Runtime handlers besides runc (which is always configured: CRI's default).
    pub handlers: Vec<Handler>,
    /// The CRI plugin with podshim-bridge networking and podshim's pause as sandbox image.
    pub cri: bool,
}

pub struct Containerd {
    pub layout: Layout,
    pub tag: String,
    /// Set with the CRI plugin.
    pub cri: Option<config::Cri>,
    child: Option<Child>,
    /// containerd's PATH (where it finds shims).
    path: std::ffi::OsString,
    /// Cgroups below `cgroup_root` that are expected to stay (the CRI Pod-level parents that the
    /// kubelet, not containerd, removes); anything else left there is a leak.
    expected_cgroups: std::sync::Mutex<Vec<String>>,
    /// (namespace, shim id) pairs used by the test: where to look for shim sockets.
    shim_ids: std::sync::Mutex<Vec<(String, String)>>,
}

/// The subnet of the `n`th CRI daemon of this process (10.140.0.0/16 is this suite's range;
/// podshim's own tests use 10.120-139 and the CNI tests 10.248-252).
fn subnet(n: u32) -> String {
    format!("10.140.{}.0/24", n % 250)
}

impl Containerd {
    pub fn start(options: Options) -> Self {
        podshim_tests::require_root();
        let (tag, n) = unique_tag();
        let dir = std::env::temp_dir().join(format!("podshim-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let layout = Layout::new(&dir, &tag);
        let cri = options.cri.then(|| setup_cni(&dir, &tag, n));
        let toml = config::containerd_toml(&layout, cri.as_ref(), &options.handlers);
        std::fs::write(&layout.config, toml).unwrap();
        // Shims are found on containerd's PATH by runtime type: put every handler's directory
        // first (runc's is /usr/bin, already there).
        let mut path: Vec<PathBuf> = options
            .handlers
            .iter()
            .filter_map(|h| h.shim.parent().map(Path::to_path_buf))
            .collect();
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(path).unwrap();
        let child = spawn(&layout, &path);
        let mut daemon = Containerd {
            layout,
            tag,
            cri,
            child: Some(child),
            path,
            expected_cgroups: std::sync::Mutex::new(Vec::new()),
            shim_ids: std::sync::Mutex::new(Vec::new()),
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        wait_until(Duration::from_secs(30), "containerd to answer", || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "containerd exited at start ({status}):\n{}",
                    self.log_tail(40)
                );
            }
            let out = self
                .ctr("default")
                .arg("version")
                .stderr(Stdio::null())
                .output()
                .unwrap();
            out.status.success().then_some(())
        });
    }

    /// `ctr --address SOCKET -n NAMESPACE`.
    pub fn ctr(&self, namespace: &str) -> Command {
        let mut c = Command::new(installed("ctr"));
        c.arg("--address")
            .arg(&self.layout.address)
            .args(["-n", namespace]);
        c
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The last `lines` lines of containerd's log (its shims log there too), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.layout.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A cgroup below the daemon's root that may stay after every container is gone (a CRI
    /// sandbox's `cgroup_parent`: the kubelet removes Pod cgroups, not containerd).
    pub fn expect_cgroup(&self, path: &str) {
        self.expected_cgroups
            .lock()
            .unwrap()
            .push(path.trim_end_matches('/').to_string());
    }

    /// Remember a shim's (namespace, id): its socket in /run/containerd/s is then checked and
    /// removed at the end (containerd forgets a task's bundle once it is deleted).
    pub fn note_shim(&self, namespace: &str, id: &str) {
        self.shim_ids
            .lock()
            .unwrap()
            .push((namespace.to_string(), id.to_string()));
    }

    /// The end of a passing test: stop containerd, then fail if it or its shims left anything
    /// (process, mount, cgroup, netns pin, veth, shim socket); everything is removed either way.
    pub fn shutdown(mut self) {
        let left = self.stop_and_clean();
        assert!(
            left.is_empty(),
            "containerd {} left:\n{left}\n--- containerd log ---\n{}",
            self.layout.dir.display(),
            self.log_tail(30)
        );
        let _ = std::fs::remove_dir_all(&self.layout.dir);
    }

    /// Stop containerd (SIGTERM, SIGKILL after 15 s) and start it again with the same config:
    /// its shims and containers keep running meanwhile, and it reconnects to them.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn(&self.layout, &self.path));
        self.wait_ready();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = Pid::from_raw(child.id() as i32);
            let _ = kill(pid, Signal::SIGTERM);
            let deadline = std::time::Instant::now() + Duration::from_secs(15);
            while child.try_wait().unwrap().is_none() {
                if std::time::Instant::now() > deadline {
                    eprintln!("containerd {pid} ignored SIGTERM for 15 s: SIGKILL");
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn stop_and_clean(&mut self) -> Leftovers {
        self.stop();
        let expected = self.expected_cgroups.lock().unwrap().clone();
        let ids = self.shim_ids.lock().unwrap().clone();
        let left = cleanup::leftovers(&self.layout, self.cri.as_ref(), &expected, &ids);
        cleanup::remove_everything(&self.layout, self.cri.as_ref(), &ids);
        left
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        // A failed test: clean up, say what was left, keep the directory (logs) for a look.
        let left = self.stop_and_clean();
        if !left.is_empty() {
            eprintln!(
                "containerd {} left (removed now):\n{left}",
                self.layout.dir.display()
            );
        }
        eprintln!(
            "containerd log kept in {}; its end:\n{}",
            self.layout.log.display(),
            self.log_tail(30)
        );
    }
}

/// containerd with the layout's config, its output appended to the layout's log.
fn spawn(layout: &Layout, path: &std::ffi::OsStr) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&layout.log)
        .unwrap();
    Command::new(installed("containerd"))
        .arg("--config")
        .arg(&layout.config)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn containerd")
}

/// The CRI plugin's CNI directories: `podshim-bridge` (the workspace's build) and Debian's
/// `loopback` (containerd sets up `lo` with it), and the network list.
fn setup_cni(dir: &Path, tag: &str, n: u32) -> config::Cri {
    let bridge_plugin = std::env::var_os("PODSHIM_CNI_PLUGIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/debug/podshim-bridge"));
    assert!(
        bridge_plugin.is_file(),
        "CNI plugin {} not found: run scripts/test.sh (or cargo build -p podshim-cni)",
        bridge_plugin.display()
    );
    let loopback = Path::new("/usr/lib/cni/loopback");
    assert!(
        loopback.is_file(),
        "{} not found: run scripts/install-deps.sh (containernetworking-plugins)",
        loopback.display()
    );
    let cri = config::Cri {
        sandbox_image: super::cri::PAUSE_IMAGE.to_string(),
        cni_bin_dir: dir.join("cni/bin"),
        cni_conf_dir: dir.join("cni/conf"),
        bridge: format!("pst{tag}"),
        subnet: subnet(n),
        ipam_dir: dir.join("ipam"),
    };
    std::fs::create_dir_all(&cri.cni_bin_dir).unwrap();
    std::fs::create_dir_all(&cri.cni_conf_dir).unwrap();
    std::os::unix::fs::symlink(&bridge_plugin, cri.cni_bin_dir.join("podshim-bridge")).unwrap();
    std::os::unix::fs::symlink(loopback, cri.cni_bin_dir.join("loopback")).unwrap();
    std::fs::write(
        cri.cni_conf_dir.join("10-podshim.conflist"),
        serde_json::to_vec_pretty(&config::cni_conflist(&cri)).unwrap(),
    )
    .unwrap();
    cri
}
