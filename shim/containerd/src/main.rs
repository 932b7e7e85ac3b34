//! `containerd-shim-podshim-v1`: podshim as a containerd runtime shim (runtime type
//! `io.containerd.podshim.v1`). containerd runs it with `start` (find or start the Pod's server
//! and print its address), `delete` (clean up after a dead server), or with no action (the
//! server, which `start` runs); see `args` for the command line.
//!
//! The front-end only translates: the task API over ttrpc (`service`) to calls on podshim's
//! engine (`tasks`), errors to ttrpc codes in one place (`error`), events to containerd's
//! publisher in order (`events`). It uses `containerd-shim-protos` (messages, the generated
//! service and ttrpc) rather than the `containerd-shim` crate, whose runtime answers the task
//! API v3 only, replies to `start` in 2.x's JSON form only, and starts threads before the shim's
//! code runs, while the engine's runtime helper must be forked from a single-threaded process.

mod args;
mod binlog;
mod cgpath;
mod cgroupview;
mod delete;
mod error;
mod events;
mod metrics;
mod oom;
mod server;
mod service;
mod slices;
mod start;
mod stdio;
mod tasks;
mod warm;

use args::Action;

/// One line to the shim's log (stderr: containerd's log FIFO, or nothing).
pub fn log(msg: &str) {
    eprintln!("containerd-shim-podshim-v1[{}]: {msg}", std::process::id());
}

fn main() {
    let args = match args::parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("containerd-shim-podshim-v1: {e}");
            std::process::exit(2);
        }
    };
    let result = match args.action {
        Action::Version => {
            println!(
                "containerd-shim-podshim-v1:\n  Version: {}",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
        Action::Start => start::run(&args),
        Action::Delete => delete::run(&args),
        Action::Serve => server::run(&args),
    };
    if let Err(e) = result {
        log(&format!("{:?} {}: {e:#}", args.action, args.id));
        std::process::exit(1);
    }
}
