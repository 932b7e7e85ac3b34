//! What a container's init runs, and how a failure to run it is told the way runc tells it
//! (and so the kubelet: `StartError`, exit code 128, runc's message in the status).
//!
//! Two moments can fail. Before the init says it is ready, [`validate`] looks the command up
//! in the container's filesystem as runc's `LookPath` does, so a missing or non-executable
//! file fails `create` with runc's words (`exec: "/x": stat /x: no such file or directory`).
//! After `start`, `execve(2)` itself can still fail (a script whose interpreter is missing,
//! a binary for another machine, a `noexec` mount): nobody waits on the init any more, so the
//! init writes the error (`exec /x: no such file or directory`) to [`EXEC_ERROR`], a file in
//! the bundle opened before the fork and closed by a successful `execve` (close-on-exec),
//! where the caller reads it after the exit ([`exec_failure`]). It also does what runc's init
//! does then (runc 1.1, whose parent is gone by that time): it prints the error on the process's
//! stderr and exits with status 1, so a containerd client (`ctr run`, `ctr task exec`, the CRI's
//! exec) sees what it sees with runc. An exec'd process fails the same way.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::{ExecutorError, ExecutorValidationError};
use nix::errno::Errno;

/// The file in a container's bundle where its init reports a failed `execve`.
pub const EXEC_ERROR: &str = "exec-error";

/// An errno as Go (and so runc) words it: lower case.
fn words(e: Errno) -> String {
    let d = e.desc();
    let mut c = d.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => d.to_string(),
    }
}

fn io_words(e: &std::io::Error) -> String {
    e.raw_os_error()
        .map(|n| words(Errno::from_raw(n)))
        .unwrap_or_else(|| e.to_string())
}

/// A regular file (or anything but a directory) with an execute bit, as Go's
/// `findExecutable`; else why not.
fn executable(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(m) if !m.is_dir() && m.permissions().mode() & 0o111 != 0 => Ok(()),
        Ok(_) => Err(words(Errno::EACCES)),
        Err(e) => Err(format!("stat {}: {}", path.display(), io_words(&e))),
    }
}

/// Check, inside the container, that its command can be found and run (runc's `LookPath`).
/// A command with a `/` is the file it names, needing no `PATH` (libcontainer 0.7 refuses
/// any process without `PATH`, but Kubernetes' pause image and podshim's set no environment
/// and runc runs them); a bare name is searched in the process's `PATH`.
pub(crate) fn validate(spec: &Spec) -> Result<(), ExecutorValidationError> {
    let process = spec.process().as_ref();
    let Some(command) = process
        .and_then(|p| p.args().as_ref())
        .and_then(|a| a.first())
    else {
        return Err(ExecutorValidationError::ArgValidationError(
            "the process has no command".into(),
        ));
    };
    let refuse = |why: String| {
        Err(ExecutorValidationError::ArgValidationError(format!(
            "exec: {command:?}: {why}"
        )))
    };
    if command.contains('/') {
        return executable(Path::new(command)).or_else(refuse);
    }
    let path = process
        .and_then(|p| p.env().as_ref())
        .and_then(|env| env.iter().find_map(|e| e.strip_prefix("PATH=")))
        .unwrap_or("");
    let found = path
        .split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(command))
        .any(|p| executable(&p).is_ok());
    if found {
        Ok(())
    } else {
        refuse("executable file not found in $PATH".into())
    }
}

/// Run the command (`execvp`, as libcontainer's default executor); when the kernel refuses
/// it, say why in `report` and on stderr, and exit with status 1 (see the module's note).
pub(crate) fn exec(spec: &Spec, report: Option<&OwnedFd>) -> Result<(), ExecutorError> {
    let args = spec
        .process()
        .as_ref()
        .and_then(|p| p.args().as_ref())
        .filter(|a| !a.is_empty())
        .ok_or(ExecutorError::InvalidArg)?;
    let argv: Vec<CString> = args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ExecutorError::InvalidArg)?;
    let Err(e) = nix::unistd::execvp(&argv[0], &argv);
    let message = format!("exec {}: {}", args[0], words(e));
    if let Some(fd) = report {
        let _ = nix::unistd::write(fd, message.as_bytes());
    }
    let _ = nix::unistd::write(std::io::stderr(), format!("{message}\n").as_bytes());
    // This process is a fork of the caller: no exit handlers or buffers of the caller's to run.
    crate::sys::exit_now(1)
}

/// What the init of the container with bundle `bundle` reported of a failed `execve`, if it
/// did (read after its exit).
pub fn exec_failure(bundle: &Path) -> Option<String> {
    let text = std::fs::read_to_string(bundle.join(EXEC_ERROR)).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcontainer::oci_spec::runtime::{ProcessBuilder, SpecBuilder};

    fn spec(args: &[&str], env: &[&str]) -> Spec {
        let p = ProcessBuilder::default()
            .args(args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .env(env.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .build()
            .unwrap();
        SpecBuilder::default().process(p).build().unwrap()
    }

    fn refused(s: &Spec) -> String {
        match validate(s) {
            Err(ExecutorValidationError::ArgValidationError(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn runc_words_for_what_cannot_run() {
        assert!(validate(&spec(&["/bin/sh"], &[])).is_ok());
        assert!(validate(&spec(&["sh"], &["PATH=/usr/bin:/bin"])).is_ok());
        assert_eq!(
            refused(&spec(&["/nonexistent"], &[])),
            "exec: \"/nonexistent\": stat /nonexistent: no such file or directory"
        );
        assert_eq!(
            refused(&spec(&["/etc/passwd"], &[])),
            "exec: \"/etc/passwd\": permission denied"
        );
        assert_eq!(
            refused(&spec(&["/etc"], &[])),
            "exec: \"/etc\": permission denied"
        );
        assert_eq!(
            refused(&spec(&["nope-podshim"], &["PATH=/bin"])),
            "exec: \"nope-podshim\": executable file not found in $PATH"
        );
        assert_eq!(
            refused(&spec(&["sh"], &[])),
            "exec: \"sh\": executable file not found in $PATH"
        );
    }

    #[test]
    fn a_refused_execve_is_reported_in_the_file() {
        let dir = std::env::temp_dir().join(format!("podshim-launch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("s");
        std::fs::write(&script, "#!/nonexistent-interpreter\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let report: OwnedFd = std::fs::File::create(dir.join(EXEC_ERROR)).unwrap().into();
        let s = spec(&[script.to_str().unwrap()], &[]);
        assert!(validate(&s).is_ok());
        // It exits (status 1, as runc's init): in a child, which does nothing else.
        match crate::sys::fork().unwrap() {
            None => {
                let _ = exec(&s, Some(&report));
                crate::sys::exit_now(2)
            }
            Some(pid) => assert_eq!(
                nix::sys::wait::waitpid(pid, None).unwrap(),
                nix::sys::wait::WaitStatus::Exited(pid, 1)
            ),
        }
        assert_eq!(
            exec_failure(&dir).unwrap(),
            format!("exec {}: no such file or directory", script.display())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
