//! The `delete` action: containerd's cleanup after a shim that died (SIGKILL, OOM, a crash).
//! Everything the container held is in the journal in its bundle, recorded before it was made:
//! its processes are killed, its libcontainer state and cgroup removed, its rootfs unmounted,
//! and the `.slice` parents recorded in the bundle removed (see [`crate::slices`]).
//! The reply is a `DeleteResponse` on stdout, with exit status 137 as containerd-shim-runc-v2
//! reports a task it had to kill.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use containerd_shim_protos::api::DeleteResponse;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use podshim_engine::journal::{Journal, Resource};

use crate::args::Args;
use crate::tasks::JOURNAL;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let bundle = match &args.bundle {
        Some(b) => b.clone(),
        None => std::env::current_dir().context("the bundle (working directory)")?,
    };
    let runtime_dir = crate::server::runtime_dir(&args.address, &args.namespace);
    let pid = libcontainer::container::Container::load(runtime_dir.join(&args.id))
        .ok()
        .and_then(|c| c.pid())
        .map(|p| p.as_raw() as u32)
        .unwrap_or(0);
    let journal = bundle.join(JOURNAL);
    // Read before the teardown: the journal's first record is the bundle directory, which goes
    // last, with the record in it.
    let slices = crate::slices::MadeSlices::load(&bundle);
    let mut problems = Vec::new();
    match Journal::load(&journal) {
        Ok(mut j) => {
            problems = podshim_engine::teardown::teardown(&mut j);
            if problems.is_empty() {
                let _ = std::fs::remove_file(&journal);
            }
        }
        // No journal: the container was never made, or was deleted already; make sure anyway.
        Err(_) => {
            let rootfs = bundle.join("rootfs");
            for r in [
                Resource::Container {
                    id: args.id.clone(),
                    runtime_dir: runtime_dir.clone(),
                    cgroup: None,
                },
                Resource::Mount {
                    path: PathBuf::from(&rootfs),
                },
            ] {
                if let Err(e) = podshim_engine::teardown::remove(&r) {
                    problems.push(e);
                }
            }
        }
    }
    // The `.slice` parents its create made for a systemd-form path, after the container's
    // cgroup (only empty ones go).
    slices.remove();
    for p in &problems {
        eprintln!("containerd-shim-podshim-v1 delete {}: {p}", args.id);
    }
    let mut r = DeleteResponse::new();
    r.pid = pid;
    r.exit_status = 128 + 9;
    r.exited_at = MessageField::some(Timestamp::now());
    let mut out = std::io::stdout().lock();
    out.write_all(&r.write_to_bytes()?)?;
    out.flush()?;
    if !problems.is_empty() {
        anyhow::bail!("{} resources of {} are left", problems.len(), args.id);
    }
    Ok(())
}
