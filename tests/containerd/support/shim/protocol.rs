//! The shim binary protocol as containerd drives it, built exactly as each containerd version
//! does (read from containerd's `runtime/v2/binary.go` and `shim/util.go` at v1.6.20 and
//! `core/runtime/v2/binary.go`, `pkg/shim/util.go` at v2.3.4):
//!
//! - `start`: arguments, environment, working directory (the bundle) and stdin, then the reply
//!   on the combined stdout+stderr pipe: containerd 1.6 reads a bare socket address; containerd
//!   2.3 writes `BootstrapParams` (protobuf, on stdin) and accepts a protobuf `BootstrapResult`,
//!   the JSON `{"version":3,"address":...,"protocol":"ttrpc"}` of 2.0-2.2 shims, or a bare
//!   address (task API v2), in that order.
//! - `delete` (cleanup after a dead shim): `-bundle` and the action, a protobuf
//!   `DeleteResponse` on stdout.

use std::path::PathBuf;

use containerd_shim_protos::bootstrap_api::{
    BootstrapParams, BootstrapResult, Extension, LogLevel,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::{Message, MessageField};

/// Which containerd's invocation to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// containerd 1.6 (Debian 12) and 1.7: runtime options on stdin, a bare address back.
    Containerd16,
    /// containerd 2.3 and later: the bootstrap protocol.
    Containerd23,
}

/// The task service a shim serves: `containerd.task.v2.Task` (1.x) or `containerd.task.v3.Task`
/// (2.x; the same messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskApi {
    V2,
    V3,
}

impl TaskApi {
    pub fn service(self) -> &'static str {
        match self {
            TaskApi::V2 => "containerd.task.v2.Task",
            TaskApi::V3 => "containerd.task.v3.Task",
        }
    }
}

/// What containerd knows when it starts or deletes a shim.
#[derive(Debug, Clone)]
pub struct ShimConfig {
    pub id: String,
    pub namespace: String,
    pub bundle: PathBuf,
    /// containerd's gRPC socket (`-address`; shims derive their socket name from it).
    pub grpc_address: String,
    /// containerd's ttrpc socket (`TTRPC_ADDRESS`): where shims publish events.
    pub ttrpc_address: String,
    /// containerd's own executable (`-publish-binary`).
    pub containerd_binary: String,
    /// Reported in `BootstrapParams.containerd_version` (2.3+).
    pub containerd_version: String,
    /// 2.3+: the shim socket directory (`socket_dir` of the shim manager's config, default
    /// /run/containerd/s), always sent.
    pub socket_dir: String,
    pub debug: bool,
    /// Runtime options (e.g. runc's `Options`), as containerd marshals them into an `Any`.
    pub options: Option<Any>,
    /// 2.x: the shim manager's `env` config, added to the environment.
    pub extra_env: Vec<(String, String)>,
}

/// One run of the shim binary: what to pass besides the inherited environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub args: Vec<String>,
    /// Added to (and overriding) the caller's environment, in order.
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// None: stdin is /dev/null (Go's exec with a nil Stdin).
    pub stdin: Option<Vec<u8>>,
}

impl ShimConfig {
    fn common_args(&self) -> Vec<String> {
        vec![
            "-namespace".into(),
            self.namespace.clone(),
            "-address".into(),
            self.grpc_address.clone(),
            "-publish-binary".into(),
            self.containerd_binary.clone(),
        ]
    }

    /// The `start` invocation.
    pub fn start(&self, caller: Caller) -> Invocation {
        let mut args = self.common_args();
        args.extend(["-id".into(), self.id.clone()]);
        if self.debug {
            args.push("-debug".into());
        }
        args.push("start".into());
        let (env, stdin) = match caller {
            Caller::Containerd16 => (
                vec![
                    ("GOMAXPROCS".into(), "2".into()),
                    ("TTRPC_ADDRESS".into(), self.ttrpc_address.clone()),
                ],
                self.options.as_ref().map(|o| o.write_to_bytes().unwrap()),
            ),
            Caller::Containerd23 => {
                let mut env = self.env_23();
                env.extend(self.extra_env.iter().cloned());
                (env, Some(self.bootstrap_params().write_to_bytes().unwrap()))
            }
        };
        Invocation {
            args,
            env,
            cwd: self.bundle.clone(),
            stdin,
        }
    }

    /// The `delete` invocation (containerd cleaning up after a dead shim).
    pub fn delete(&self, caller: Caller) -> Invocation {
        let mut args = self.common_args();
        args.extend(["-id".into(), self.id.clone()]);
        args.extend(["-bundle".into(), self.bundle.display().to_string()]);
        let env = match caller {
            // 1.6 never passes -debug to delete.
            Caller::Containerd16 => vec![
                ("GOMAXPROCS".into(), "2".into()),
                ("TTRPC_ADDRESS".into(), self.ttrpc_address.clone()),
            ],
            Caller::Containerd23 => {
                if self.debug {
                    args.push("-debug".into());
                }
                self.env_23()
            }
        };
        args.push("delete".into());
        Invocation {
            args,
            env,
            cwd: self.bundle.clone(),
            stdin: None,
        }
    }

    fn env_23(&self) -> Vec<(String, String)> {
        vec![
            ("GOMAXPROCS".into(), "2".into()),
            ("MAX_SHIM_VERSION".into(), "2".into()),
            ("TTRPC_ADDRESS".into(), self.ttrpc_address.clone()),
            ("GRPC_ADDRESS".into(), self.grpc_address.clone()),
            ("NAMESPACE".into(), self.namespace.clone()),
        ]
    }

    /// What containerd 2.3+ writes to a starting shim's stdin.
    pub fn bootstrap_params(&self) -> BootstrapParams {
        let mut p = BootstrapParams::new();
        p.instance_id = self.id.clone();
        p.namespace = self.namespace.clone();
        p.log_level = if self.debug {
            LogLevel::LOG_LEVEL_DEBUG
        } else {
            LogLevel::LOG_LEVEL_INFO
        }
        .into();
        p.containerd_version = self.containerd_version.clone();
        p.containerd_ttrpc_address = self.ttrpc_address.clone();
        p.containerd_grpc_address = self.grpc_address.clone();
        p.containerd_binary = self.containerd_binary.clone();
        p.socket_dir = Some(self.socket_dir.clone());
        if let Some(options) = &self.options {
            let mut ext = Extension::new();
            ext.value = MessageField::some(options.clone());
            p.extensions.push(ext);
        }
        p
    }
}

/// Where a started shim listens and what it speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// 2: task API v2; 3: task API v3.
    pub version: i32,
    /// e.g. `unix:///run/containerd/s/<sha256>`.
    pub address: String,
    pub protocol: String,
}

impl Reply {
    pub fn task_api(&self) -> TaskApi {
        if self.version >= 3 {
            TaskApi::V3
        } else {
            TaskApi::V2
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReplyError {
    /// The shim printed nothing usable as an address.
    NoAddress,
    /// A version newer than containerd 2.3 knows (3).
    UnsupportedVersion(i32),
    /// Only ttrpc is spoken here (containerd also dials `grpc`).
    UnsupportedProtocol(String),
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::NoAddress => write!(f, "the shim printed no address"),
            ReplyError::UnsupportedVersion(v) => write!(f, "unsupported shim version ({v})"),
            ReplyError::UnsupportedProtocol(p) => write!(f, "unsupported protocol {p:?}"),
        }
    }
}

/// The newest shim protocol version containerd 2.3 accepts (`CurrentShimVersion`).
pub const CURRENT_SHIM_VERSION: i32 = 3;

/// The JSON reply of 2.0-2.2 shims (containerd's `shim.BootstrapParams`).
#[derive(serde::Deserialize, Default)]
struct JsonReply {
    #[serde(default)]
    version: i32,
    #[serde(default)]
    address: String,
    #[serde(default)]
    protocol: String,
}

/// Parse a `start` reply as `caller` does (`parseStartResponse` in 2.3; a trimmed string in 1.6).
pub fn parse_start_reply(out: &[u8], caller: Caller) -> Result<Reply, ReplyError> {
    let reply = match caller {
        Caller::Containerd16 => bare(out),
        Caller::Containerd23 => match BootstrapResult::parse_from_bytes(out) {
            Ok(r) => Reply {
                version: r.version,
                address: r.address,
                protocol: r.protocol,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(out);
                match serde_json::from_str::<JsonReply>(text.trim()) {
                    Ok(j) if j.version >= 2 => Reply {
                        version: j.version,
                        address: j.address,
                        protocol: j.protocol,
                    },
                    // Not JSON, or JSON of a version < 2: the whole reply is the address.
                    _ => bare(out),
                }
            }
        },
    };
    if reply.version > CURRENT_SHIM_VERSION {
        return Err(ReplyError::UnsupportedVersion(reply.version));
    }
    if reply.address.is_empty() {
        return Err(ReplyError::NoAddress);
    }
    if !reply.protocol.eq_ignore_ascii_case("ttrpc") {
        return Err(ReplyError::UnsupportedProtocol(reply.protocol));
    }
    Ok(reply)
}

fn bare(out: &[u8]) -> Reply {
    Reply {
        version: 2,
        address: String::from_utf8_lossy(out).trim().to_string(),
        protocol: "ttrpc".into(),
    }
}

/// The reply a 2.3+ shim writes (for tests of the parser, and for podshim's shim to match).
pub fn bootstrap_result(version: i32, address: &str) -> Vec<u8> {
    let mut r = BootstrapResult::new();
    r.version = version;
    r.address = address.to_string();
    r.protocol = "ttrpc".into();
    r.write_to_bytes().unwrap()
}
