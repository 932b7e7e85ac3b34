//! The container's `RLIMIT_MEMLOCK` on cgroup v2. There the device rules are an eBPF program,
//! and libcgroups raises `RLIMIT_MEMLOCK` to 128 MiB in the process that loads it (older kernels
//! charge BPF memory to it) and never lowers it again; libcontainer's init forks from that
//! process, so a container whose spec names no such limit would run with 128 MiB where runc's
//! keep their caller's (the CRI comparison in the cgroup v2 VM caught it). The spec gets the
//! limit this process had before any container was made.

use std::sync::OnceLock;

use libcontainer::oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Spec};
use nix::sys::resource::{getrlimit, Resource};

static BEFORE: OnceLock<Option<(u64, u64)>> = OnceLock::new();

/// This process's memlock limit as it was before the first container (the first call reads
/// it; every container is made after that call).
fn before() -> Option<(u64, u64)> {
    *BEFORE.get_or_init(|| getrlimit(Resource::RLIMIT_MEMLOCK).ok())
}

/// On a unified host, give `spec` an `RLIMIT_MEMLOCK` equal to this process's original one
/// unless it names one itself.
pub fn keep(spec: &mut Spec, unified: bool) {
    let original = before();
    if !unified {
        return;
    }
    let Some((soft, hard)) = original else { return };
    let Some(process) = spec.process_mut() else {
        return;
    };
    let mut rlimits = process.rlimits().clone().unwrap_or_default();
    if rlimits
        .iter()
        .any(|r| r.typ() == PosixRlimitType::RlimitMemlock)
    {
        return;
    }
    if let Ok(r) = PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitMemlock)
        .soft(soft)
        .hard(hard)
        .build()
    {
        rlimits.push(r);
        process.set_rlimits(Some(rlimits));
    }
}

#[cfg(test)]
mod tests {
    use libcontainer::oci_spec::runtime::ProcessBuilder;

    use super::*;

    fn memlock(spec: &Spec) -> Option<(u64, u64)> {
        spec.process()
            .as_ref()?
            .rlimits()
            .as_ref()?
            .iter()
            .find(|r| r.typ() == PosixRlimitType::RlimitMemlock)
            .map(|r| (r.soft(), r.hard()))
    }

    #[test]
    fn a_unified_host_keeps_the_callers_memlock_unless_the_spec_names_one() {
        let mut spec = Spec::default();
        spec.set_process(Some(ProcessBuilder::default().build().unwrap()));
        let mine = getrlimit(Resource::RLIMIT_MEMLOCK).unwrap();
        keep(&mut spec, false);
        assert_eq!(memlock(&spec), None, "v1 loads no device program");
        keep(&mut spec, true);
        assert_eq!(memlock(&spec), Some(mine));
        let named = PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitMemlock)
            .soft(1u64)
            .hard(2u64)
            .build()
            .unwrap();
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_rlimits(Some(vec![named]));
        keep(&mut spec, true);
        assert_eq!(memlock(&spec), Some((1, 2)));
    }
}
