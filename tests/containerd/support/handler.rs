//! The runtime under test, as containerd names it: a CRI runtime handler and a shim runtime type.
//! Every containerd test body takes one, so the same body runs with runc (Debian's
//! containerd-shim-runc-v2, the reference) today and with podshim's shim once it exists.

use std::path::PathBuf;

use super::{installed, workspace};

#[derive(Debug, Clone)]
pub struct Handler {
    /// The CRI `runtime_handler` (the key under `containerd.runtimes`), also the directory of
    /// its answers under target/containerd-answers.
    pub name: &'static str,
    /// `runtime_type`, e.g. `io.containerd.runc.v2`; `ctr run --runtime` takes it too.
    pub runtime_type: &'static str,
    /// The shim binary containerd runs for it (`containerd-shim-<name>-<version>`).
    pub shim: PathBuf,
}

impl Handler {
    /// The reference: Debian's containerd-shim-runc-v2 driving runc.
    pub fn runc() -> Self {
        Handler {
            name: "runc",
            runtime_type: "io.containerd.runc.v2",
            shim: installed("containerd-shim-runc-v2"),
        }
    }

    /// podshim's shim (issue 13): `PODSHIM_SHIM`, else the workspace's debug build.
    pub fn podshim() -> Self {
        let shim = std::env::var_os("PODSHIM_SHIM")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target/debug/containerd-shim-podshim-v1"));
        assert!(
            shim.is_file(),
            "podshim's shim {} not found: build it (cargo build) or set PODSHIM_SHIM",
            shim.display()
        );
        Handler {
            name: "podshim",
            runtime_type: "io.containerd.podshim.v1",
            shim,
        }
    }

    /// Whether containerd finds the shim from the runtime type alone (it looks for
    /// `containerd-shim-<name>-<version>` on its PATH); otherwise the config names the binary.
    pub fn needs_path(&self) -> bool {
        self.name != "runc"
    }
}

/// Generates one `#[test]` per listed body for a handler, in a module named after it:
/// `handler_tests!(runc, Handler::runc(), [a, b]);` makes `runc::a` calling `a(&Handler::runc())`.
/// Attributes before the module name (e.g. `#[ignore = "..."]`) go on every test.
#[macro_export]
macro_rules! handler_tests {
    // The attributes travel as one token tree, so each test can repeat them.
    (@module $attrs:tt $module:ident, $handler:expr, [$($body:ident),*]) => {
        mod $module {
            use super::*;
            $($crate::handler_tests!(@one $attrs $handler; $body);)*
        }
    };
    (@one [$(#[$attr:meta])*] $handler:expr; $body:ident) => {
        #[test]
        $(#[$attr])*
        fn $body() {
            super::$body(&$handler);
        }
    };
    ($(#[$attr:meta])* $module:ident, $handler:expr, [$($body:ident),* $(,)?]) => {
        $crate::handler_tests!(@module [$(#[$attr])*] $module, $handler, [$($body),*]);
    };
}
