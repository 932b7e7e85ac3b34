//! `ctr` driven against a test's containerd, as a user types it: images imported from the
//! project's offline archives, `run` with the handler's runtime and a cgroup below the daemon's
//! cgroup root, and the task subcommands.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::daemon::Containerd;
use super::handler::Handler;
use super::{wait_until, workspace};

/// The name `ctr images import --base-name docker.io/library/busybox` gives the busybox archive
/// (its index names it by tag only: `1.35`).
pub const BUSYBOX: &str = "docker.io/library/busybox:1.35";

/// The busybox OCI archive of scripts/make-busybox-image.sh.
pub fn busybox_archive() -> std::path::PathBuf {
    podshim_tests::busybox_archive()
}

/// podshim's pause image archive (scripts/pause-image.sh), `PODSHIM_PAUSE_IMAGE` or
/// target/test-images/pause-oci.tar as scripts/test.sh makes it.
pub fn pause_archive() -> std::path::PathBuf {
    let p = std::env::var_os("PODSHIM_PAUSE_IMAGE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/test-images/pause-oci.tar"));
    assert!(
        p.is_file(),
        "pause image {} not found: run scripts/test.sh (or scripts/pause-image.sh {})",
        p.display(),
        p.display()
    );
    p
}

/// The output of a command that must succeed; otherwise the test fails with its stderr.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Containerd {
    /// Import busybox into `namespace`; returns the image name.
    pub fn import_busybox(&self, namespace: &str) -> String {
        let out = ok(self
            .ctr(namespace)
            .args([
                "images",
                "import",
                "--base-name",
                "docker.io/library/busybox",
            ])
            .arg(busybox_archive()));
        assert!(out.contains(&format!("unpacking {BUSYBOX} ")), "{out}");
        BUSYBOX.to_string()
    }

    /// Import podshim's pause image into `namespace` with a plain `ctr images import` (as a node
    /// does); returns the name the import gave it.
    pub fn import_pause(&self, namespace: &str) -> String {
        let out = ok(self
            .ctr(namespace)
            .args(["images", "import"])
            .arg(pause_archive()));
        let name = out
            .strip_prefix("unpacking ")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected import output: {out}"))
            .to_string();
        name
    }

    /// The cgroup a `ctr run` container of this daemon gets.
    pub fn cgroup_of(&self, id: &str) -> String {
        format!("{}/{id}", self.layout.cgroup_root)
    }

    /// `ctr run` of busybox with the handler's runtime, in its own cgroup below the daemon's
    /// root; `flags` go before the image (e.g. `--rm`, `-d`, `--memory-limit`).
    pub fn ctr_run(&self, handler: &Handler, id: &str, flags: &[&str], args: &[&str]) -> Command {
        self.note_shim("default", id);
        let mut c = self.ctr("default");
        c.args(["run", "--runtime", handler.runtime_type, "--cgroup"])
            .arg(self.cgroup_of(id))
            .arg("--fifo-dir")
            .arg(self.fifo_dir());
        if handler.name == "runc" {
            // runc's state in the test's directory (default /run/containerd/runc/<namespace>).
            c.arg("--runc-root").arg(self.layout.dir.join("runc"));
        }
        c.args(flags).arg(BUSYBOX).arg(id).args(args);
        c
    }

    /// Where ctr makes its IO FIFOs (default /run/containerd/fifo, where a failed test would
    /// leave them).
    pub fn fifo_dir(&self) -> std::path::PathBuf {
        self.layout.dir.join("fifo")
    }

    /// `ctr task exec --fifo-dir DIR --exec-id EXEC_ID [-t] ID`; the command follows.
    pub fn ctr_exec(&self, id: &str, exec_id: &str, tty: bool) -> Command {
        let mut c = self.ctr("default");
        c.args(["task", "exec", "--fifo-dir"])
            .arg(self.fifo_dir())
            .args(["--exec-id", exec_id]);
        if tty {
            c.arg("-t");
        }
        c.arg(id);
        c
    }

    /// The status column of `ctr task ls` for a task (`RUNNING`, `PAUSED`, `STOPPED`), if listed.
    pub fn task_status(&self, id: &str) -> Option<String> {
        let out = ok(self.ctr("default").args(["task", "ls"]));
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&id))
            .and_then(|w| w.get(2).map(|s| s.to_string()))
    }

    /// Wait for a task to reach a status.
    pub fn wait_task(&self, id: &str, status: &str) {
        wait_until(
            Duration::from_secs(20),
            &format!("task {id} to be {status}"),
            || (self.task_status(id).as_deref() == Some(status)).then_some(()),
        );
    }

    /// The init pid of a running task (`ctr task ls`'s PID column).
    pub fn task_pid(&self, id: &str) -> u32 {
        let out = ok(self.ctr("default").args(["task", "ls"]));
        out.lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|w| w.first() == Some(&id))
            .and_then(|w| w.get(1).and_then(|p| p.parse().ok()))
            .unwrap_or_else(|| panic!("task {id} not listed:\n{out}"))
    }

    /// Kill (SIGKILL), delete the task and the container: the end of a `ctr run -d`.
    pub fn remove_task(&self, id: &str) {
        let _ = self
            .ctr("default")
            .args(["task", "kill", "-s", "SIGKILL", id])
            .output();
        wait_until(Duration::from_secs(20), "the task to stop", || {
            (self.task_status(id).as_deref() != Some("RUNNING")).then_some(())
        });
        ok(self.ctr("default").args(["task", "delete", id]));
        ok(self.ctr("default").args(["container", "delete", id]));
    }
}

/// A daemon for the ctr tests of `handler` (no CRI), busybox imported.
pub fn daemon(handler: &Handler) -> Containerd {
    let handlers = if handler.name == "runc" {
        vec![]
    } else {
        vec![handler.clone()]
    };
    let d = super::daemon::Containerd::start(super::daemon::Options {
        handlers,
        cri: false,
    });
    d.import_busybox("default");
    d
}

/// Wait for a child (a `ctr run` in the foreground) with a deadline.
pub fn wait_child(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    wait_until(timeout, "ctr to finish", || child.try_wait().unwrap());
    child.wait_with_output().unwrap()
}
