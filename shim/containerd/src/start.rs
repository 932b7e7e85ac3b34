//! The `start` action: find the Pod's running shim or start a server for it, and tell containerd
//! where it listens, in the form the calling containerd reads.
//!
//! - One shim per Pod: the group is the `io.containerd.runc.v2.group` annotation of the bundle's
//!   spec, then the CRI's `io.kubernetes.cri.sandbox-id`, then the task's own id. The socket is
//!   `/run/containerd/s/<sha256 of address/namespace/group>` (containerd's `SocketAddress`), so a
//!   second container of a Pod finds the first one's server there.
//! - The server is this binary again without the action, in a process group of its own. As
//!   containerd-shim-runc-v2 does, `start` makes the listening socket and hands it to the
//!   server (`-listen-fd`), then replies at once: containerd's first calls wait in the socket's
//!   backlog while the server starts (an `execve` and its setup, about 3 ms, that would
//!   otherwise come before containerd's own work on the reply instead of beside it). A server
//!   that fails to start closes the socket: containerd's call fails, and it runs `delete`. The
//!   server's stdout and stderr are never containerd's pipe: containerd reads that pipe to EOF
//!   before it uses the address.
//! - The reply: containerd 1.6/1.7 read a bare address (task API v2). containerd 2.x sets
//!   `GRPC_ADDRESS`/`MAX_SHIM_VERSION` in the environment; 2.3+ also writes `BootstrapParams`
//!   (protobuf) on stdin and takes a protobuf `BootstrapResult` back, 2.0-2.2 a JSON
//!   `{"version":3,...}`. Either way version 3 says the task API v3; the server answers both.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use containerd_shim_protos::bootstrap_api::{BootstrapParams, BootstrapResult};
use containerd_shim_protos::protobuf::Message;
use sha2::{Digest, Sha256};

use crate::args::Args;

/// Where containerd (1.6 and the 2.x default) puts shim sockets.
pub const SOCKET_DIR: &str = "/run/containerd/s";

/// The annotations that group the containers of one Pod into one shim, in order.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// Which containerd started us, from what it passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// 1.x: a bare address back.
    V1,
    /// 2.0-2.2: JSON with version 3.
    V2Json,
    /// 2.3+: BootstrapParams in, a protobuf BootstrapResult out.
    V2Bootstrap,
}

/// Tell the caller apart: 2.x sets `GRPC_ADDRESS`/`MAX_SHIM_VERSION` (1.x never does; stdin alone
/// cannot tell, since 1.x's runtime options `Any` also parses as a `BootstrapParams`).
pub fn detect(env_2x: bool, stdin: &[u8], id: &str) -> (Caller, Option<BootstrapParams>) {
    if !env_2x {
        return (Caller::V1, None);
    }
    match BootstrapParams::parse_from_bytes(stdin) {
        Ok(p) if !stdin.is_empty() && p.instance_id == id => (Caller::V2Bootstrap, Some(p)),
        _ => (Caller::V2Json, None),
    }
}

/// The reply for `caller` when the server listens at `address` (`unix://...`).
pub fn reply(caller: Caller, address: &str) -> Vec<u8> {
    match caller {
        Caller::V1 => address.as_bytes().to_vec(),
        Caller::V2Json => {
            serde_json::json!({"version": 3, "address": address, "protocol": "ttrpc"})
                .to_string()
                .into_bytes()
        }
        Caller::V2Bootstrap => {
            let mut r = BootstrapResult::new();
            r.version = 3;
            r.address = address.to_string();
            r.protocol = "ttrpc".into();
            r.write_to_bytes().unwrap_or_default()
        }
    }
}

/// The group of a task from its spec's annotations (its own id when it has none).
pub fn group(annotations: &serde_json::Value, id: &str) -> String {
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(k).and_then(|v| v.as_str()))
        .filter(|g| !g.is_empty())
        .unwrap_or(id)
        .to_string()
}

/// containerd's `SocketAddress`: the socket path of the shim of `group`.
pub fn socket_path(dir: &Path, address: &str, namespace: &str, group: &str) -> PathBuf {
    let key = Path::new(address).join(namespace).join(group);
    let digest = Sha256::digest(key.as_os_str().as_encoded_bytes());
    dir.join(hex::encode(digest))
}

/// Whether a server answers at `path`.
fn answers(path: &Path) -> bool {
    UnixStream::connect(path).is_ok()
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let bundle = std::env::current_dir().context("the bundle (working directory)")?;
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let env_2x = std::env::var_os("GRPC_ADDRESS").is_some()
        || std::env::var_os("MAX_SHIM_VERSION").is_some();
    let (caller, params) = detect(env_2x, &stdin, &args.id);
    let socket_dir = params
        .as_ref()
        .and_then(|p| p.socket_dir.clone())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| SOCKET_DIR.to_string());

    let config = bundle.join("config.json");
    let spec: serde_json::Value = std::fs::read(&config)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let group = group(&spec["annotations"], &args.id);
    let socket = socket_path(
        Path::new(&socket_dir),
        &args.address,
        &args.namespace,
        &group,
    );
    let address = format!("unix://{}", socket.display());

    if socket.exists() {
        if answers(&socket) {
            return finish(&bundle, caller, &address);
        }
        // A server that died (SIGKILL) cannot remove its socket.
        let _ = std::fs::remove_file(&socket);
    }
    std::fs::create_dir_all(&socket_dir).with_context(|| format!("create {socket_dir}"))?;

    adjust_oom_score();
    let listener =
        UnixListener::bind(&socket).with_context(|| format!("listen on {}", socket.display()))?;
    // Inherited by the server (std opens it close-on-exec); the server marks it so again.
    nix::fcntl::fcntl(
        listener.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .context("hand the socket to the server")?;
    // The server runs from a read-only bind mount of this binary (CVE-2019-5736, see
    // `podshim_engine::exe`). Made here and the server started through it, the server finds
    // itself protected and need not execute itself again (an `execve` and the loading of the
    // binary saved on every Pod start). Where mounting fails, the server protects itself.
    let read_only = podshim_engine::exe::read_only_binary();
    let exe = match &read_only {
        // Close-on-exec, but execve(2) opens the file before it closes such descriptors.
        Ok(fd) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd())),
        Err(_) => std::env::current_exe().context("this executable")?,
    };
    let mut cmd = Command::new(exe);
    // Its own process group: a signal to containerd's group (a Ctrl-C on a containerd run in a
    // terminal) does not reach the shim, not even while it starts (see the function).
    podshim_engine::sys::own_process_group(&mut cmd);
    if let Some(name) = std::env::args_os().next() {
        // What ps shows, rather than /proc/self/fd/N.
        cmd.arg0(name);
    }
    cmd.args([
        "-namespace",
        &args.namespace,
        "-id",
        &args.id,
        "-address",
        &args.address,
    ]);
    cmd.args(["-publish-binary", &args.publish_binary, "-socket", &address]);
    cmd.args(["-listen-fd", &listener.as_raw_fd().to_string()]);
    if args.debug {
        cmd.arg("-debug");
    }
    if let Some(p) = &params {
        // The server publishes events there (2.3 puts it in the parameters, not only the env).
        if !p.containerd_ttrpc_address.is_empty() {
            cmd.env("TTRPC_ADDRESS", &p.containerd_ttrpc_address);
        }
    }
    // One malloc arena for all the server's threads (they allocate little, and each arena
    // of its own would stay resident).
    cmd.env("MALLOC_ARENA_MAX", "1");
    let spawned = cmd
        .current_dir(&bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    if let Err(e) = spawned {
        let _ = std::fs::remove_file(&socket);
        return Err(e).context("start the shim server");
    }
    finish(&bundle, caller, &address)
}

/// Make the shim (and so its helper and the containers, unless their spec says otherwise) a
/// little more likely to be OOM-killed than containerd, which started us: containerd's score
/// plus one, as containerd-shim-runc-v2 does (`AdjustOOMScore`). Raising a score needs no
/// privilege, and the server inherits it.
fn adjust_oom_score() {
    let parent = std::os::unix::process::parent_id();
    let Some(score) = std::fs::read_to_string(format!("/proc/{parent}/oom_score_adj"))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let mine = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let want = (score + 1).min(1000);
    if want > mine {
        let _ = std::fs::write("/proc/self/oom_score_adj", want.to_string());
    }
}

/// Write the address where containerd looks for it after a restart (`<bundle>/address`), and
/// reply.
fn finish(bundle: &Path, caller: Caller, address: &str) -> anyhow::Result<()> {
    std::fs::write(bundle.join("address"), address).context("write the address file")?;
    let mut out = std::io::stdout().lock();
    out.write_all(&reply(caller, address))?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_share_a_shim() {
        let a = json!({"io.kubernetes.cri.sandbox-id": "sb", "io.kubernetes.cri.container-type": "container"});
        assert_eq!(group(&a, "c1"), "sb");
        let g = json!({"io.containerd.runc.v2.group": "g", "io.kubernetes.cri.sandbox-id": "sb"});
        assert_eq!(group(&g, "c1"), "g");
        assert_eq!(group(&serde_json::Value::Null, "c1"), "c1");
        // containerd's own derivation: sha256("/run/containerd/containerd.sock/default/t1").
        let p = socket_path(
            Path::new(SOCKET_DIR),
            "/run/containerd/containerd.sock",
            "default",
            "t1",
        );
        let digest = Sha256::digest(b"/run/containerd/containerd.sock/default/t1");
        assert_eq!(p, Path::new(SOCKET_DIR).join(hex::encode(digest)));
    }

    #[test]
    fn callers_and_their_replies() {
        let mut p = BootstrapParams::new();
        p.instance_id = "t1".into();
        let bytes = p.write_to_bytes().unwrap();
        assert_eq!(detect(false, &bytes, "t1").0, Caller::V1);
        assert_eq!(detect(true, &bytes, "t1").0, Caller::V2Bootstrap);
        assert_eq!(detect(true, b"", "t1").0, Caller::V2Json);
        let addr = "unix:///run/containerd/s/x";
        assert_eq!(reply(Caller::V1, addr), addr.as_bytes());
        let j: serde_json::Value = serde_json::from_slice(&reply(Caller::V2Json, addr)).unwrap();
        assert_eq!(j["version"], 3);
        let r = BootstrapResult::parse_from_bytes(&reply(Caller::V2Bootstrap, addr)).unwrap();
        assert_eq!(
            (r.version, r.address.as_str(), r.protocol.as_str()),
            (3, addr, "ttrpc")
        );
    }
}
