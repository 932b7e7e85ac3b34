//! A test client of the containerd shim protocol, without containerd: the binary's `start` and
//! `delete` invocations (`protocol`, `process`), the task service over ttrpc (`task`), the events
//! a shim publishes (`events`), and OCI bundles to hand it (`bundle`).
//!
//! `Shim::start` runs a shim binary exactly as containerd 1.6 or 2.3 does and connects to it; the
//! v2 flavour is exercised against Debian's containerd-shim-runc-v2 today, the v3 one waits for
//! podshim's shim (its pure parts are unit-tested in `containerd_unit`).

pub mod bundle;
pub mod events;
pub mod process;
pub mod protocol;
pub mod task;

use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::Message;

use process::ShimLog;
use protocol::{Caller, Reply, ShimConfig};
use task::TaskClient;

/// A started shim: its reply, a connected task client, and its log.
pub struct Shim {
    pub binary: PathBuf,
    pub config: ShimConfig,
    pub caller: Caller,
    pub reply: Reply,
    pub task: TaskClient,
    pub log: ShimLog,
    /// How long `start` took, from spawn to a parsed reply.
    pub start_time: Duration,
}

impl Shim {
    /// Run `<binary> ... start` as `caller` does, parse its reply and connect.
    pub fn start(binary: &Path, config: ShimConfig, caller: Caller) -> Self {
        let log = ShimLog::open(&config.bundle);
        let inv = config.start(caller);
        let t0 = std::time::Instant::now();
        let ran = process::run_start(binary, &inv, Duration::from_secs(20));
        let out = String::from_utf8_lossy(&ran.stdout).into_owned();
        assert!(
            ran.status.success(),
            "{} start failed ({}): {out}\nshim log: {}",
            binary.display(),
            ran.status,
            log.text()
        );
        let reply = protocol::parse_start_reply(&ran.stdout, caller)
            .unwrap_or_else(|e| panic!("start reply {out:?}: {e}"));
        let start_time = t0.elapsed();
        let task = TaskClient::connect(&reply.address, reply.task_api())
            .unwrap_or_else(|e| panic!("connect to {}: {e}", reply.address));
        Shim {
            binary: binary.to_path_buf(),
            config,
            caller,
            reply,
            task,
            log,
            start_time,
        }
    }

    /// Run `<binary> ... delete` (containerd's cleanup after a dead shim) and decode its answer.
    pub fn delete_action(binary: &Path, config: &ShimConfig, caller: Caller) -> DeleteResponse {
        let ran = process::run_delete(binary, &config.delete(caller), Duration::from_secs(20));
        assert!(
            ran.status.success(),
            "{} delete failed ({}): {}",
            binary.display(),
            ran.status,
            String::from_utf8_lossy(&ran.stderr)
        );
        DeleteResponse::parse_from_bytes(&ran.stdout).unwrap_or_else(|e| {
            panic!(
                "delete printed no DeleteResponse ({e}): {:?}",
                String::from_utf8_lossy(&ran.stdout)
            )
        })
    }

    /// The socket path of the reply's `unix://` address.
    pub fn socket(&self) -> PathBuf {
        PathBuf::from(
            self.reply
                .address
                .strip_prefix("unix://")
                .unwrap_or(&self.reply.address),
        )
    }
}
