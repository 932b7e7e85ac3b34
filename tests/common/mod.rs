//! Shared helpers of the privileged end-to-end tests: one private podshim instance per test
//! (its own --root, --state, bridge and subnet), running the real `podshim` binary, and checks
//! that nothing of the instance is left behind.
//!
//! These tests need root, the podshim and pause binaries and the busybox test image; when any is
//! missing they fail with the reason (never skip). `scripts/test.sh` provides all of them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

mod time;
pub use time::{scaled, time_scale};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The podshim binary under test (`PODSHIM_BIN`, else the workspace's debug build).
pub fn podshim_bin() -> PathBuf {
    let bin = std::env::var_os("PODSHIM_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/podshim"));
    assert!(
        bin.is_file(),
        "podshim binary {} not found: run scripts/test.sh (or set PODSHIM_BIN)",
        bin.display()
    );
    bin
}

/// The busybox OCI archive made by scripts/make-busybox-image.sh (`PODSHIM_TEST_IMAGE`).
pub fn busybox_archive() -> PathBuf {
    let p = std::env::var_os("PODSHIM_TEST_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-images/busybox-oci.tar")
        });
    assert!(
        p.is_file(),
        "test image {} not found: run scripts/test.sh (or scripts/make-busybox-image.sh)",
        p.display()
    );
    p
}

/// The directory of cgroup `rel` (relative to the hierarchy's root, e.g. `podshim/<uid>/<name>`)
/// for `controller`: in its v1 hierarchy `/sys/fs/cgroup/<controller>` (legacy and hybrid hosts),
/// else in the single cgroup2 tree of a unified host.
pub fn cgroup_dir(controller: &str, rel: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    let base = if v1.is_dir() {
        v1
    } else {
        PathBuf::from("/sys/fs/cgroup")
    };
    base.join(rel.trim_start_matches('/'))
}

/// The cgroup driver a podshim started with `env` uses: `$PODSHIM_CGROUP_DRIVER` from `env` or
/// this process, else podshim's default (systemd on a host booted with systemd and cgroup v2
/// only, else cgroupfs).
pub fn cgroup_driver(env: &[(String, String)]) -> String {
    let given = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PODSHIM_CGROUP_DRIVER")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PODSHIM_CGROUP_DRIVER").ok());
    given.unwrap_or_else(|| {
        let systemd = Path::new("/run/systemd/system").is_dir();
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        if systemd && v2 { "systemd" } else { "cgroupfs" }.into()
    })
}

/// The cgroup of Pod `uid` (relative to the hierarchy's root) under `driver`.
pub fn pod_cgroup_of(driver: &str, uid: &str) -> String {
    match driver {
        "systemd" => format!("podshim.slice/podshim-pod{}.slice", uid.replace('-', "_")),
        _ => format!("podshim/{uid}"),
    }
}

/// The cgroup of container `name` of Pod `uid` under `driver` (relative to the root).
pub fn container_cgroup_of(driver: &str, uid: &str, name: &str) -> String {
    let pod = pod_cgroup_of(driver, uid);
    match pod.strip_prefix("podshim.slice/podshim-") {
        // The systemd driver's scope: podshim-pod<uid>-<name>.scope in the Pod's slice.
        Some(slice) => format!(
            "{pod}/podshim-{}-{name}.scope",
            slice.trim_end_matches(".slice")
        ),
        None => format!("{pod}/{name}"),
    }
}

pub fn require_root() {
    let uid = unsafe_free_euid();
    assert_eq!(
        uid, 0,
        "the privileged tests must run as root (euid is {uid}); run them with scripts/test.sh"
    );
}

fn unsafe_free_euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("euid in /proc/self/status")
}

/// One private podshim instance.
pub struct Instance {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub bridge: String,
    pub subnet: String,
    /// The first three octets of the /24 subnet, e.g. "10.123.4".
    pub prefix: String,
    /// Unique to this instance; Pod names made by `name()` end with it.
    pub tag: String,
    /// Environment variables every podshim command of the instance gets (e.g. `PODSHIM_CNI_CONF`).
    pub env: Vec<(String, String)>,
    /// Run every podshim command of the instance in this named network namespace
    /// (`/run/netns/NAME`, through `nsenter --net`: only the network namespace changes).
    pub netns: Option<String>,
    /// podshim processes started by `spawn`, stopped by `Drop` if a failed test left them.
    spawned: std::sync::Mutex<Vec<u32>>,
}

impl Instance {
    /// A fresh instance; `suite` (0..=99) keeps the subnets of different test binaries apart.
    pub fn new(suite: u32) -> Self {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let tag = format!("{:x}{:02x}", pid % 0xfff, n);
        let dir = std::env::temp_dir().join(format!("podshim-test-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let prefix = format!("10.{}.{}", 120 + suite, n % 250);
        Instance {
            root: dir.join("root"),
            state: dir.join("state"),
            bridge: format!("pst{tag}"),
            subnet: format!("{prefix}.0/24"),
            prefix,
            dir,
            tag,
            env: Vec::new(),
            netns: None,
            spawned: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A Pod name unique to this instance.
    pub fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.tag)
    }

    pub fn command(&self) -> Command {
        let mut c = match &self.netns {
            None => Command::new(podshim_bin()),
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(podshim_bin());
                c
            }
        };
        c.arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state);
        c.arg("--bridge")
            .arg(&self.bridge)
            .arg("--subnet")
            .arg(&self.subnet);
        c.arg("--log-root").arg(self.dir.join("logs"));
        c.env("PODSHIM_BACKOFF_SCALE", "0.05");
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// The cgroup of Pod `uid` (relative to the hierarchy's root), as this instance makes it.
    pub fn pod_cgroup(&self, uid: &str) -> String {
        pod_cgroup_of(&cgroup_driver(&self.env), uid)
    }

    /// The cgroup of container `name` of Pod `uid` (relative to the hierarchy's root).
    pub fn container_cgroup(&self, uid: &str, name: &str) -> String {
        container_cgroup_of(&cgroup_driver(&self.env), uid, name)
    }

    /// Import the busybox test image as busybox:1.35.
    pub fn import_busybox(&self) {
        let out = self
            .command()
            .args(["image", "import", "--name", "busybox:1.35"])
            .arg(busybox_archive())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "image import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Build an image from the busybox test image with `script` run (by `sh`, in a directory
    /// holding the unpacked `bundle/rootfs`) and import it as `name`. Returns the archive's path.
    pub fn import_derived_busybox(&self, name: &str, script: &str) -> PathBuf {
        let out = derive_busybox(&self.dir, &name.replace([':', '/'], "-"), script);
        let o = self
            .command()
            .args(["image", "import", "--name", name])
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "image import of {name} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    fn write_manifest(&self, yaml: &str) -> PathBuf {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = self.dir.join(format!("pod-{n}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        path
    }

    /// `podshim run FILE` to completion (bounded by `timeout`).
    pub fn run(&self, yaml: &str, timeout: Duration) -> Output {
        let child = self.spawn(yaml);
        wait_output(child, timeout)
    }

    /// `podshim run FILE` in the background, output piped.
    pub fn spawn(&self, yaml: &str) -> Child {
        let path = self.write_manifest(yaml);
        self.command()
            .arg("run")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .inspect(|c| self.spawned.lock().unwrap().push(c.id()))
            .expect("start podshim")
    }

    /// `podshim ARGS...` to completion (bounded by `timeout`).
    pub fn podshim(&self, args: &[&str], timeout: Duration) -> Output {
        let child = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start podshim");
        wait_output(child, timeout)
    }

    /// The log directory of Pod `name` (namespace `default`) with uid `uid`.
    pub fn pod_logs(&self, name: &str, uid: &str) -> PathBuf {
        self.dir.join("logs").join(format!("default_{name}_{uid}"))
    }

    /// What the supervisor of Pod `name` wrote to its `supervisor.log`.
    pub fn supervisor_log(&self, name: &str, uid: &str) -> String {
        std::fs::read_to_string(self.pod_logs(name, uid).join("supervisor.log")).unwrap_or_default()
    }

    /// `podshim run -d FILE` (returns once the Pod's containers have started).
    pub fn detach(&self, yaml: &str) -> Output {
        let path = self.write_manifest(yaml);
        let path = path.to_string_lossy().to_string();
        self.podshim(&["run", "-d", &path], Duration::from_secs(120))
    }

    /// `podshim inspect POD` as JSON.
    pub fn inspect(&self, pod: &str) -> serde_json::Value {
        let out = self.podshim(&["inspect", pod], Duration::from_secs(30));
        ok(&out);
        serde_json::from_slice(&out.stdout).expect("inspect prints JSON")
    }

    /// Poll `inspect` until `check` holds (or fail after `timeout`); returns the last object.
    pub fn wait_for(
        &self,
        pod: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.podshim(&["inspect", pod], Duration::from_secs(30));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if out.status.success() && check(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "pod {pod}: {what} did not happen within {timeout:?}; last status:\n{}",
                serde_json::to_string_pretty(&v["status"]).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The supervisor PID of a running Pod (`ps -o wide`).
    pub fn supervisor_pid(&self, pod: &str) -> Option<u32> {
        let out = self.podshim(&["ps", "-o", "wide"], Duration::from_secs(30));
        ok(&out);
        stdout(&out)
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.get(1) == Some(&pod))
            .and_then(|w| w.last()?.parse().ok())
    }

    /// Everything the instance can create is gone.
    pub fn assert_clean(&self, pod_uids: &[&str]) {
        let leaks = self.leaks(pod_uids);
        assert!(
            leaks.is_empty(),
            "instance {} leaked:\n{}",
            self.dir.display(),
            leaks.join("\n")
        );
    }

    /// What the instance left: Pod state and records, IPAM leases, writable layers, mounts
    /// (netns pins among them), the bridge, the Pods' cgroups and veths, pause processes, any
    /// process in a Pod's cgroup, any podshim process of the instance (a fork libcontainer
    /// made) and NAT rules of the Pods.
    pub fn leaks(&self, pod_uids: &[&str]) -> Vec<String> {
        let mut leaks = Vec::new();
        for dir in ["pods", "records"] {
            if let Ok(entries) = std::fs::read_dir(self.state.join(dir)) {
                for e in entries.flatten() {
                    leaks.push(format!("pod state {}", e.path().display()));
                }
            }
        }
        let ipam = self.root.join("ipam").join(&self.bridge);
        if let Ok(entries) = std::fs::read_dir(&ipam) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().to_string();
                if name.parse::<std::net::Ipv4Addr>().is_ok() {
                    leaks.push(format!("IPAM lease {name}"));
                }
            }
        }
        let containers = self.root.join("containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for e in entries.flatten() {
                leaks.push(format!("writable layers {}", e.path().display()));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dir = self.dir.display().to_string();
        for l in mounts.lines() {
            if l.split(' ').nth(4).is_some_and(|m| m.starts_with(&dir)) {
                leaks.push(format!("mount {l}"));
            }
        }
        // The bridge stays (node infrastructure), but with no port left on it.
        let ports = bridge_ports(&self.bridge);
        if !ports.is_empty() {
            leaks.push(format!("ports {ports:?} on bridge {}", self.bridge));
        }
        for uid in pod_uids {
            for driver in ["cgroupfs", "systemd"] {
                for h in ["memory", "pids", "cpu", "devices", "freezer"] {
                    let p = cgroup_dir(h, &pod_cgroup_of(driver, uid));
                    if p.exists() {
                        leaks.push(format!("cgroup {}", p.display()));
                    }
                }
            }
            let veth = host_veth(uid);
            if Path::new("/sys/class/net").join(&veth).exists() {
                leaks.push(format!("veth {veth}"));
            }
        }
        let out = Command::new("pgrep")
            .args(["-f", &format!("pause --hostname [^ ]*-{} ", self.tag)])
            .output()
            .unwrap();
        if !out.stdout.is_empty() {
            leaks.push(format!(
                "pause processes {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        leaks.extend(self.processes(pod_uids));
        if !pod_uids.is_empty() {
            let rules = Command::new("nft")
                .args(["list", "ruleset"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
                .unwrap_or_default();
            for uid in pod_uids {
                if rules.contains(uid) {
                    leaks.push(format!("nftables rules of pod {uid}"));
                }
            }
        }
        leaks
    }

    /// Live processes in a Pod's cgroup, or whose command line names this instance.
    fn processes(&self, pod_uids: &[&str]) -> Vec<String> {
        let dir = self.dir.display().to_string();
        let me = std::process::id().to_string();
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = e.file_name().to_string_lossy().to_string();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                continue;
            }
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
            {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
            let in_pod = pod_uids.iter().any(|u| {
                ["cgroupfs", "systemd"]
                    .iter()
                    .any(|d| cgroup.contains(&format!("/{}", pod_cgroup_of(d, u))))
            });
            if in_pod || cmdline.contains(&dir) {
                found.push(format!("process {pid}: {}", cmdline.trim_end()));
            }
        }
        found
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // A failed test may leave podshim processes running: stop them (SIGTERM makes podshim
        // tear its Pods down), then collect whatever a killed one left.
        let dir = self.dir.display().to_string();
        let alive = |pid: &u32| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                String::from_utf8_lossy(&c).contains(&dir)
                    && !String::from_utf8_lossy(
                        &std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default(),
                    )
                    .contains(") Z")
            })
        };
        let pids: Vec<u32> = self
            .spawned
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(alive)
            .collect();
        for pid in &pids {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + scaled(Duration::from_secs(10));
        while pids.iter().any(alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for pid in pids.iter().filter(|p| alive(p)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        if std::thread::panicking() {
            // Workload controllers a failed test left would make its Pods anew: kill them
            // first (their keepers before their workers, so no worker is restarted).
            for word in [" controller --keeper ", " controller "] {
                for pid in processes_with(&dir, word) {
                    let _ = Command::new("kill")
                        .args(["-KILL", &pid.to_string()])
                        .status();
                }
            }
            // Detached Pods a failed test left: remove them (their supervisors stop them).
            if let Ok(out) = self.command().args(["ps", "-o", "json"]).output() {
                let list: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                for item in list["items"].as_array().into_iter().flatten() {
                    let pod = format!(
                        "{}/{}",
                        item["metadata"]["namespace"].as_str().unwrap_or("default"),
                        item["metadata"]["name"].as_str().unwrap_or_default()
                    );
                    let _ = self
                        .command()
                        .args(["rm", "-f", "--grace-period", "0", &pod])
                        .output();
                }
            }
        }
        if !pids.is_empty() || std::thread::panicking() {
            let _ = self.command().arg("gc").output();
        }
        // The node state the instance kept (bridge, its NAT and forward rules): a test host
        // is left as it was found. A passing test whose Pods are not all gone fails here, by
        // name: otherwise only the leak check after the whole suite would see what it left
        // (the bridge's rules, the Pod's cgroups), without saying which test left it.
        let reset = self.command().arg("reset").output();
        let refused = match &reset {
            Ok(out) if out.status.success() => None,
            Ok(out) => Some(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )),
            Err(e) => Some(format!("cannot run podshim reset: {e}")),
        };
        if refused.is_some() {
            // Still leave the host clean (the test fails below): collect, then reset again.
            let _ = self.command().arg("gc").output();
            let _ = self.command().arg("reset").output();
        }
        // Best effort: never leave a test's bridge behind even when an assertion failed.
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
            if let Some(why) = refused {
                panic!(
                    "instance {} was not left clean: `podshim reset` failed: {why}",
                    self.tag
                );
            }
        }
    }
}

/// The PIDs of the processes whose command line holds both `dir` and `word`.
fn processes_with(dir: &str, word: &str) -> Vec<u32> {
    let Ok(proc) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c).replace('\0', " ");
                c.contains(dir) && c.contains(word)
            })
        })
        .collect()
}

/// The ports of bridge `name` (none when it does not exist).
pub fn bridge_ports(name: &str) -> Vec<String> {
    std::fs::read_dir(Path::new("/sys/class/net").join(name).join("brif"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Standard base64 with padding (docker config `auth` fields, bearer tokens).
pub fn base64_encode(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// The host veth name podshim derives from a Pod uid (asked from the binary's library).
pub fn host_veth(uid: &str) -> String {
    podshim_cni::host_veth_name(uid)
}

/// Starts `cmd` with its stdout piped and waits for its first line, which must be `ready` (a
/// helper server saying it listens).
pub fn spawn_ready(cmd: &mut Command) -> Child {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    child
}

/// Wait for a child with a deadline (`timeout`, [`scaled`]); on timeout it is killed and the
/// test fails.
pub fn wait_output(mut child: Child, timeout: Duration) -> Output {
    let timeout = scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "podshim did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Lines a container printed (podshim prefixes each with `[name] `).
pub fn lines_of(out: &str, container: &str) -> Vec<String> {
    let prefix = format!("[{container}] ");
    out.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

/// An OCI archive `DIR/NAME-oci.tar` made from the busybox test image with `rootfs_script`
/// run by `sh` where the image is unpacked (its root filesystem is `bundle/rootfs`).
pub fn derive_busybox(dir: &Path, name: &str, rootfs_script: &str) -> PathBuf {
    let out = dir.join(format!("{name}-oci.tar"));
    let work = dir.join(format!("{name}-build"));
    std::fs::create_dir_all(&work).unwrap();
    let script = format!(
        r#"set -e
cd "$1"
mkdir layout
tar -xf "$2" -C layout
umoci unpack --image layout:1.35 bundle >/dev/null
{rootfs_script}
umoci repack --image layout:1.35 bundle
umoci gc --layout layout
tar -C layout -cf "$3" .
"#
    );
    let status = Command::new("sh")
        .args(["-c", &script, "sh"])
        .arg(&work)
        .arg(busybox_archive())
        .arg(&out)
        .status()
        .expect("sh runs");
    std::fs::remove_dir_all(&work).unwrap();
    assert!(status.success(), "building the image {name} failed");
    out
}

/// A Pod uid unique to this test process.
pub fn uid(n: u32) -> String {
    format!(
        "00000000-0000-4000-8000-{:012x}",
        std::process::id() as u64 * 1000 + n as u64
    )
}

/// A Pod manifest: `containers` and `volumes` are YAML list items indented for `spec:`.
pub fn pod(name: &str, uid: &str, restart: &str, containers: &str, volumes: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  uid: {uid}\nspec:\n  restartPolicy: {restart}\n  terminationGracePeriodSeconds: 1\n  containers:\n{containers}{volumes}"
    )
}

/// One busybox container running `script` with `sh -c` (`mounts`: YAML lines for it).
pub fn container(name: &str, script: &str, mounts: &str) -> String {
    let script = script.replace('\'', "''");
    format!(
        "  - name: {name}\n    image: busybox:1.35\n    command: [sh, -c, '{script}']\n{mounts}"
    )
}

/// Assert podshim exited 0, showing its output otherwise.
pub fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "podshim failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

/// The IPv4 address in `ip -o -4 addr` output lines.
pub fn ipv4_of(lines: &[String]) -> Option<String> {
    // `ip -o -4 addr show dev eth0`: "2: eth0    inet 10.x.y.z/24 brd ..."
    lines.iter().find_map(|l| {
        let mut w = l.split_whitespace();
        w.position(|x| x == "inet")?;
        Some(w.next()?.split('/').next()?.to_string())
    })
}

/// The body of `GET /` at `addr` (plain HTTP/1.0), or None when nothing answers.
pub fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut s = String::new();
    c.read_to_string(&mut s).ok()?;
    s.split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
}

/// SIGTERM to a (podshim) child process.
pub fn term(child: &Child) {
    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
}
