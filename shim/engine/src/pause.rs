//! The pause process of a Pod sandbox: its start (dying with podshim until handed over), the
//! handshake that makes or joins the Pod's user namespace, its ready line, and the hand-over
//! after which it outlives podshim.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::config::Config;
use crate::error::Error;
use crate::journal::{Journal, Resource};
use crate::mounts;
use crate::sandbox::{Network, PodUserns, PAUSE_USER};

/// How pause gets the Pod's user namespace.
pub(crate) enum UsernsArg<'a> {
    /// It makes it (see [`map_and_pin`]).
    New,
    /// It joins the Pod's, by its pin.
    Join(&'a Path),
}

/// The handshake of `pause --new-userns`: once pause says `userns`, write the namespace's ID
/// maps, pin it (recorded first), and let pause go on to make the Pod's other namespaces in it.
pub(crate) fn map_and_pin(
    cfg: &Config,
    child: &mut Child,
    userns: &PodUserns,
    journal: &mut Journal,
) -> Result<(), Error> {
    use std::io::Write;
    let err = |source| Error::Pause {
        path: cfg.pause.clone(),
        source,
    };
    let out = child.stdout.take().expect("piped stdout");
    let mut reader = BufReader::new(out);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    // pause writes nothing more until it is answered, so nothing is left in the buffer.
    child.stdout = Some(reader.into_inner());
    if line.trim() != "userns" {
        let status = child.wait().map_err(err)?;
        return Err(err(std::io::Error::other(format!(
            "pause exited before it made the user namespace ({status})"
        ))));
    }
    let pid = child.id() as i32;
    crate::userns::write_maps(pid, userns.block)?;
    journal.record(Resource::Mount {
        path: userns.pin.clone(),
    })?;
    mounts::bind_file(Path::new(&format!("/proc/{pid}/ns/user")), &userns.pin)?;
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(b"\n").map_err(err)
}

/// Start pause (see [`pause_ready`] for its handshake). It dies with this process
/// (`--die-with-parent`: a parent-death signal, set before anything else it does and again
/// after it changed its credentials, which clear it) until [`hand_over`] releases it: a
/// podshim killed between the fork and the journal's record of pause takes pause with it.
pub(crate) fn spawn_pause(
    cfg: &Config,
    hostname: &str,
    network: &Network,
    share_pid: bool,
    userns: Option<UsernsArg<'_>>,
) -> Result<Child, Error> {
    let err = |source| Error::Pause {
        path: cfg.pause.clone(),
        source,
    };
    let mut args: Vec<std::ffi::OsString> = vec![
        "--hostname".into(),
        hostname.into(),
        "--user".into(),
        PAUSE_USER.into(),
        "--die-with-parent".into(),
        std::process::id().to_string().into(),
    ];
    match network {
        Network::Pod { .. } => {}
        Network::Host { .. } => args.push("--host-network".into()),
        Network::Join(path) => {
            args.push("--netns".into());
            args.push(path.into());
        }
    }
    if share_pid {
        args.push("--pid".into());
    }
    match userns {
        None => {}
        Some(UsernsArg::New) => args.push("--new-userns".into()),
        Some(UsernsArg::Join(pin)) => {
            args.push("--userns".into());
            args.push(pin.into());
        }
    }
    let mut cmd = Command::new(&cfg.pause);
    crate::sys::inherit_only_stdio(&mut cmd);
    // Its own process group: Ctrl-C on podshim's terminal goes to the foreground process group,
    // and must stop the Pod through podshim (graceful stop), not kill pause under it.
    podshim_cni::own_process_group(&mut cmd);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(err)
}

/// Wait until pause reports that the namespaces exist (a new network namespace, the host's,
/// or a joined one; IPC and UTS are always new).
pub(crate) fn pause_ready(cfg: &Config, child: &mut Child) -> Result<(), Error> {
    let err = |source| Error::Pause {
        path: cfg.pause.clone(),
        source,
    };
    let mut line = String::new();
    let out = child.stdout.take().expect("piped stdout");
    let _ = BufReader::new(out).read_line(&mut line);
    if line.trim() != "ready" {
        let status = child.wait().map_err(err)?;
        return Err(err(std::io::Error::other(format!(
            "pause exited before it was ready ({status})"
        ))));
    }
    Ok(())
}

/// Release pause from its parent-death signal: one byte on its stdin (end of file instead
/// tells it its parent gave up, and it exits).
pub(crate) fn hand_over(cfg: &Config, child: &mut Child) -> Result<(), Error> {
    use std::io::Write;
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(b"\n").map_err(|source| Error::Pause {
        path: cfg.pause.clone(),
        source,
    })
}
