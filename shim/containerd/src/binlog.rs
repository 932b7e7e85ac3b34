//! containerd's `binary://` log URIs (`ctr run --log-uri binary:///path?key=value`): a logging
//! program the shim starts for a process, reading its stdout at descriptor 3 and its stderr at
//! 4, and closing descriptor 5 (or writing to it) once it is ready, with `CONTAINER_ID` and
//! `CONTAINER_NAMESPACE` in its environment. This is the contract containerd's runtime v2
//! documents for logging binaries and what its runc shim implements; each query pair becomes
//! two arguments (`key`, `value`; a bare key's value is empty), in the URI's order.
//!
//! The process is made only after the logger said it is ready, so no early output is lost. The
//! logger sees EOF once every holder of the pipes' write ends (the container's processes) has
//! gone; when the process is deleted the shim waits a little for it to finish on its own, then
//! asks it to stop (SIGTERM) and, a while later, kills it.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Result, ShimError};

/// How long a logger may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a deleted process's logger gets to drain its pipes before SIGTERM.
const DRAIN: Duration = Duration::from_secs(2);
/// How long it gets after SIGTERM before SIGKILL (containerd's runc shim waits 12 s).
const TERM_GRACE: Duration = Duration::from_secs(12);

pub const SCHEME: &str = "binary://";

/// The program and arguments of a `binary://` URI.
pub fn parse(uri: &str) -> Result<(PathBuf, Vec<String>)> {
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| ShimError::Invalid(format!("log URI {uri:?}: not binary://")))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = decode(path);
    if !path.starts_with('/') {
        return Err(ShimError::Invalid(format!(
            "log URI {uri:?}: the logging binary needs an absolute path"
        )));
    }
    let mut args = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        // A bare key has the empty value, as containerd's own shims pass it.
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        args.push(decode_query(k));
        args.push(decode_query(v));
    }
    Ok((PathBuf::from(path), args))
}

fn decode_query(s: &str) -> String {
    decode(&s.replace('+', " "))
}

/// Percent-decoding; a malformed escape is kept as written.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A running logging program. Dropping it waits for it as the module says.
pub struct Logger {
    child: Option<Child>,
}

/// What a process's output is written to when a logger takes it.
pub struct Started {
    pub stdout: File,
    pub stderr: File,
    pub logger: Logger,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ShimError::io("create", "a pipe")(e.into()))
}

/// Start the logger of `uri` for process `id` of `namespace` and wait until it is ready.
pub fn start(uri: &str, id: &str, namespace: &str) -> Result<Started> {
    let (program, args) = parse(uri)?;
    let name = program.display().to_string();
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (ready_r, ready_w) = pipe()?;
    let mut cmd = Command::new(&program);
    cmd.args(&args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    podshim_engine::sys::inherit_stdio_and(&mut cmd, &[&out_r, &err_r, &ready_w]);
    let child = cmd
        .spawn()
        .map_err(ShimError::io("start logging binary", name.clone()))?;
    drop((out_r, err_r, ready_w));
    let mut logger = Logger { child: Some(child) };
    // Ready: a byte, or EOF once the logger (and whatever it started) closed descriptor 5.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut ready = File::from(ready_r);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let readable = podshim_engine::sys::poll_readable(&[ready.as_fd()], Some(left))
            .map_err(ShimError::io("wait for logging binary", name.clone()))?;
        if readable.first() == Some(&true) {
            let mut b = [0u8; 1];
            match ready.read(&mut b) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ShimError::io("wait for logging binary", name)(e)),
            }
        }
        if left.is_zero() {
            logger.kill();
            return Err(ShimError::io("wait for logging binary", name)(
                std::io::ErrorKind::TimedOut.into(),
            ));
        }
    }
    Ok(Started {
        stdout: File::from(out_w),
        stderr: File::from(err_w),
        logger,
    })
}

/// Whether the child has exited (and is reaped). A child already reaped by someone else's
/// `waitpid(-1)` (the engine's teardown reaps what it finds) counts as exited.
fn exited(child: &mut Child) -> bool {
    !matches!(child.try_wait(), Ok(None))
}

impl Logger {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Logger {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + DRAIN;
        while Instant::now() < deadline {
            if exited(&mut child) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Still running (a container child kept the pipes, or the logger ignores EOF): stop it
        // without holding up the caller.
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let _ = std::thread::Builder::new()
            .name("logger-stop".into())
            .spawn(move || {
                let deadline = Instant::now() + TERM_GRACE;
                while Instant::now() < deadline {
                    if exited(&mut child) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_to_command() {
        let (p, a) = parse("binary:///usr/local/bin/log%20er?tag=web&verbose&msg=a+b%2Fc").unwrap();
        assert_eq!(p, PathBuf::from("/usr/local/bin/log er"));
        assert_eq!(a, ["tag", "web", "verbose", "", "msg", "a b/c"]);
        let (p, a) = parse("binary:///bin/logger").unwrap();
        assert_eq!(p, PathBuf::from("/bin/logger"));
        assert!(a.is_empty());
        assert!(parse("binary://relative/path").is_err());
        assert!(parse("file:///x").is_err());
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%41"), "%zzA");
    }

    #[test]
    fn logger_gets_both_streams_and_the_ready_pipe() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("podshim-binlog-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("logger.sh");
        let out = dir.join("out");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nexec 5>&-\n{{ echo \"$CONTAINER_NAMESPACE/$CONTAINER_ID $*\"; \
                 sed 's/^/out: /' <&3; sed 's/^/err: /' <&4; }} > {}\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut s = start(&format!("binary://{}?tag=t1", script.display()), "c1", "ns").unwrap();
        s.stdout.write_all(b"hello\n").unwrap();
        s.stderr.write_all(b"oops\n").unwrap();
        drop((s.stdout, s.stderr));
        drop(s.logger);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "ns/c1 tag t1\nout: hello\nerr: oops\n"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
