//! The signals a run of Pods reacts to: SIGINT, SIGTERM and SIGHUP stop every Pod, SIGUSR1 says a
//! stop request is waiting (from `podshim stop`), SIGCHLD says a child exited; each wakes the loop
//! through a socket pair. SIGPIPE gets a handler, so that a reader of podshim's output that goes
//! away turns into EPIPE errors rather than killing podshim before teardown (a handler, not
//! SIG_IGN, which containers would inherit across exec).

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

/// The flags the handlers set and the socket they wake the loop through.
pub(super) struct Signals {
    /// The stop signal received (0: none).
    pub stop: Arc<AtomicUsize>,
    /// A stop request is waiting.
    pub requests: Arc<AtomicBool>,
    /// Readable when a signal arrived.
    pub wake: UnixStream,
}

impl Signals {
    pub(super) fn install() -> io::Result<Signals> {
        let stop = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicBool::new(false));
        let (wake_r, wake_w) = UnixStream::pair()?;
        wake_r.set_nonblocking(true)?;
        wake_w.set_nonblocking(true)?;
        // SIGHUP too: a closed terminal must not leave the Pod behind.
        let stops = [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ];
        for sig in stops {
            signal_hook::flag::register_usize(sig, Arc::clone(&stop), sig as usize)?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&requests))?;
        signal_hook::flag::register(
            signal_hook::consts::SIGPIPE,
            Arc::new(AtomicBool::new(false)),
        )?;
        let wakers = stops
            .into_iter()
            .chain([signal_hook::consts::SIGCHLD, signal_hook::consts::SIGUSR1]);
        for sig in wakers {
            signal_hook::low_level::pipe::register(sig, wake_w.try_clone()?)?;
        }
        Ok(Signals {
            stop,
            requests,
            wake: wake_r,
        })
    }

    /// Whether a stop signal arrived.
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) != 0
    }
}
