//! What the containerd tests share: a private containerd 1.6 per test (`daemon`), its generated
//! config (`config`), the runtime handler under test (`handler`), `ctr` (`ctr`), a CRI client
//! over tonic (`cri`), what a container sees of itself (`inside`), the recorded answers of the
//! reference runtime (`answers`), and a client of the shim binary protocol and task API
//! (`shim`).
//!
//! Each test target compiles this whole module and uses a part of it, hence the `dead_code`
//! allowance (a test crate has no other way to share code between targets without making it a
//! library every other test binary links).
#![allow(dead_code)]

pub mod answers;
pub mod cleanup;
pub mod config;
pub mod cri;
pub mod ctr;
pub mod daemon;
pub mod grpc;
pub mod handler;
pub mod inside;
pub mod shim;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A tag unique to one test of this process: names its directory (`/tmp/podshim-test-TAG`), its
/// cgroup root (`/podshim-test-TAG`) and its bridge (`pstTAG`, hexadecimal as
/// scripts/check-leaks.sh expects of test bridges). Also returns the test's ordinal, which picks
/// its subnet.
pub fn unique_tag() -> (String, u32) {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    (format!("c{:x}{:02x}", std::process::id() % 0xfff, n), n)
}

/// The workspace's root directory.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Poll `f` every 20 ms until it returns `Some`, or panic after `timeout` describing `what`.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    // A deadline only: stretched on slow hosts (PODSHIM_TEST_TIME_SCALE, the VM's emulation).
    let timeout = podshim_tests::scaled(timeout);
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A binary that must be installed (`scripts/install-deps.sh` installs them all).
pub fn installed(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in PATH: run scripts/install-deps.sh"))
}
