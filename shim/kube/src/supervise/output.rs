//! Container output: each container's stdout and stderr (or its terminal, logged as stdout as the
//! kubelet does), line by line, into its CRI log file and to the run's reporter (which shows it,
//! labelled with the container, or not), and as it comes to the attaches (see `attach`).

use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::notice::{Notice, Reporter, What};
use crate::logs;

struct Stream {
    file: File,
    buf: Vec<u8>,
    to_stderr: bool,
}

/// A container's output: its label, its open streams, the log file of its current run.
pub(super) struct Output {
    /// The container's name (`pod/container` when several Pods run).
    pub label: String,
    streams: Vec<Stream>,
    log: Option<logs::Writer>,
    /// The attach socket of the container's current run, with its stdin (`stdin: true`).
    pub attach: Option<super::attach::Attach>,
}

/// poll(2) the wake pipe and every open stream; returns the (output, stream) pairs that are
/// ready. `before_sleep` runs right before the poll (the supervisor trims its memory there, so
/// that as little as possible runs between the trim and the sleep).
pub(super) fn wait<'a>(
    wake: &UnixStream,
    outputs: impl Iterator<Item = &'a Output>,
    timeout: Option<Duration>,
    before_sleep: impl FnOnce(),
) -> io::Result<Vec<(usize, usize)>> {
    let mut index = Vec::new();
    let mut fds = vec![PollFd::new(wake.as_fd(), PollFlags::POLLIN)];
    for (i, o) in outputs.enumerate() {
        for (j, st) in o.streams.iter().enumerate() {
            fds.push(PollFd::new(st.file.as_fd(), PollFlags::POLLIN));
            index.push((i, j));
        }
        for (fd, flags, j) in o.attach.iter().flat_map(|s| s.poll_fds()) {
            fds.push(PollFd::new(fd, flags));
            index.push((i, j));
        }
    }
    let ms = timeout.map_or(-1, |d| d.as_millis().min(i32::MAX as u128) as i32);
    let timeout = PollTimeout::try_from(ms.max(-1)).unwrap_or(PollTimeout::NONE);
    before_sleep();
    match poll(&mut fds, timeout) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(fds[1..]
        .iter()
        .zip(index)
        .filter(|(fd, _)| fd.revents().is_some_and(|r| !r.is_empty()))
        .map(|(_, i)| i)
        .collect())
}

impl Output {
    pub(super) fn new(label: String) -> Self {
        Output {
            label,
            streams: Vec::new(),
            log: None,
            attach: None,
        }
    }

    /// Copy a (re)started container's stdout and stderr (none with a tty) from now on, into
    /// `log`.
    pub(super) fn follow(&mut self, stdout: File, stderr: Option<File>, log: Option<logs::Writer>) {
        self.log = log;
        self.streams = [Some((stdout, false)), stderr.map(|e| (e, true))]
            .into_iter()
            .flatten()
            .map(|(file, to_stderr)| {
                let _ = fcntl(file.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
                Stream {
                    file,
                    buf: Vec::new(),
                    to_stderr,
                }
            })
            .collect();
    }

    /// Read what a stream has, print whole lines; at EOF print the rest and close it.
    pub(super) fn pump(&mut self, j: usize, reporter: &mut dyn Reporter) {
        if super::attach::is_attach(j) {
            if let Some(attach) = self.attach.as_mut() {
                attach.ready(j);
            }
            return;
        }
        let s = self;
        let mut chunk = [0u8; 65536];
        let mut eof = false;
        {
            let st = &mut s.streams[j];
            loop {
                match st.file.read(&mut chunk) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        st.buf.extend_from_slice(&chunk[..n]);
                        // Attaches get it as it comes, whole lines or not (a shell's prompt).
                        if let Some(a) = s.attach.as_mut() {
                            a.output(st.to_stderr, &chunk[..n]);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
        }
        emit(&s.label, reporter, &mut s.log, &mut s.streams[j], eof);
        if eof {
            s.streams.remove(j);
        }
    }

    /// Read every stream to its end (after the container exited), printing everything.
    pub(super) fn flush(&mut self, reporter: &mut dyn Reporter) {
        let s = self;
        while !s.streams.is_empty() {
            let last = s.streams.len() - 1;
            let _ = fcntl(
                s.streams[last].file.as_raw_fd(),
                FcntlArg::F_SETFL(OFlag::empty()),
            );
            s.pump(last, reporter);
            if s.streams.len() > last {
                let mut st = s.streams.remove(last);
                emit(&s.label, reporter, &mut s.log, &mut st, true);
            }
        }
    }

    /// The container is gone (with `exit`, its exit code, when it was reaped): so are its stdin
    /// and its attaches, which are told the exit code (a restart gets new ones).
    pub(super) fn end_attach(&mut self, exit: Option<i32>) {
        if let Some(a) = self.attach.take() {
            a.finish(exit);
        }
    }
}

fn emit(
    label: &str,
    reporter: &mut dyn Reporter,
    log: &mut Option<logs::Writer>,
    st: &mut Stream,
    all: bool,
) {
    let end = if all {
        st.buf.len()
    } else {
        st.buf
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1)
    };
    if end == 0 {
        return;
    }
    let mut text: Vec<u8> = st.buf.drain(..end).collect();
    if let Some(w) = log {
        let stream = match st.to_stderr {
            true => logs::Stream::Stderr,
            false => logs::Stream::Stdout,
        };
        for line in text.split_inclusive(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            if let Err(e) = w.write_line(stream, line) {
                reporter.notice(&Notice::container(
                    label,
                    What::LogWrite {
                        message: e.to_string(),
                    },
                ));
                *log = None;
                break;
            }
        }
    }
    if !text.ends_with(b"\n") {
        text.push(b'\n');
    }
    reporter.output(label, st.to_stderr, &text);
}

/// Empty the wake pipe (signals and SIGCHLD write to it).
pub(super) fn drain_wake(wake: &UnixStream) {
    let mut buf = [0u8; 64];
    while matches!((&*wake).read(&mut buf), Ok(n) if n > 0) {}
}
