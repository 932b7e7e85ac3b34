//! What the user sees of a run of Pods: container output on podshim's stdout and stderr, each
//! line prefixed with `[container]`, in the foreground only (a detached supervisor's containers
//! write to their CRI logs alone); notices on stderr as `[container] podshim: ...` (in
//! `supervisor.log` for a detached Pod).

use std::io::{self, Write};

use podshim_kube::supervise::{Notice, Reporter};

/// Prints notices on stderr, and container output too when `echo`.
pub struct Terminal {
    pub echo: bool,
}

impl Reporter for Terminal {
    fn output(&mut self, label: &str, stderr: bool, lines: &[u8]) {
        if !self.echo {
            return;
        }
        let mut out: Vec<u8> = Vec::with_capacity(lines.len() + 16);
        for line in lines.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(format!("[{label}] ").as_bytes());
            out.extend_from_slice(line);
        }
        // A reader that went away gets nothing more; the Pod goes on (see `supervise::signals`).
        let _ = if stderr {
            io::stderr().write_all(&out)
        } else {
            let mut o = io::stdout();
            o.write_all(&out).and_then(|_| o.flush())
        };
    }

    fn notice(&mut self, notice: &Notice) {
        let prefix = notice
            .container
            .as_ref()
            .map(|c| format!("[{c}] "))
            .unwrap_or_default();
        eprintln!("{prefix}podshim: {}", notice.what);
    }
}
