//! Where a task's cgroup goes: `linux.cgroupsPath` read as containerd-shim-runc-v2 and runc 1.1
//! read it, so a task lands where runc would put it. runc's shim takes the cgroup driver from
//! the Create request's options (`containerd.runc.v1.Options`, field `systemd_cgroup`, which
//! ctr's `--runc-systemd-cgroup` and the CRI's `SystemdCgroup = true` set):
//!
//! - systemd driver: the path must be `slice:prefix:name`; podshim lays it out as systemd would
//!   (see [`podshim_engine::cgroups::cgroupfs_path`]) on a host without systemd. podshim's own
//!   systemd cgroup driver (a systemd host with cgroup v2) takes that form as systemd's too,
//!   without the option: containerd's CRI sends runc's options only to runc's runtime type, and
//!   a kubelet with the systemd driver sends the form.
//! - cgroupfs driver (no option): runc cleans the path (`..` cannot climb above the start) and
//!   takes an absolute one from each hierarchy's root, a relative one (which a `slice:prefix:name`
//!   is: a plain directory name then) below runc's own cgroup in each v1 hierarchy, or below the
//!   parent of its own cgroup on v2. runc runs in the shim's cgroup, so the base is this
//!   process's cgroup.
//!
//! The engine (libcontainer's cgroup managers) gives every hierarchy one path, joined to each
//! hierarchy's mount point. A relative path whose bases differ between the v1 hierarchies (this
//! process in `/system.slice/containerd.service` for memory and `/` for freezer, say) cannot be
//! expressed that way: that is refused with an error naming the option that gives the systemd
//! layout instead, rather than putting the task somewhere runc would not.

use std::path::{Component, Path, PathBuf};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::Options as RuncOptions;
use libcontainer::oci_spec::runtime::Spec;
use podshim_engine::cgroups::{is_systemd_path, Cgroups, Mode};

use crate::error::ShimError;

/// The type containerd gives runc's options (`io.containerd.runc.v1.Options` in its registry).
const RUNC_OPTIONS: &str = "containerd.runc.v1.Options";

/// Whether the Create request's options ask for the systemd cgroup driver. Options of another
/// type (the CRI's `runtimeoptions.v1.Options` for a non-runc runtime) or none do not.
pub fn systemd_option(options: Option<&Any>) -> Result<bool, ShimError> {
    let Some(any) = options.filter(|a| a.type_url.trim_start_matches('/').ends_with(RUNC_OPTIONS))
    else {
        return Ok(false);
    };
    RuncOptions::parse_from_bytes(&any.value)
        .map(|o| o.systemd_cgroup)
        .map_err(|e| ShimError::Invalid(format!("runc options ({}): {e}", any.type_url)))
}

/// Rewrite the spec's `cgroupsPath` to where runc would put the task, as a path from each
/// hierarchy's root (a `slice:prefix:name` under the systemd driver stays for the engine to
/// lay out). `systemd`: runc's options ask for the systemd driver; `podshim_systemd`: podshim's
/// own cgroup driver is systemd's (a systemd host with cgroup v2, see the README), which also
/// takes a `slice:prefix:name` as systemd's, since containerd's CRI sends runc's options to runc
/// only and a kubelet with the systemd driver sends that form. `own` is this process's
/// `/proc/self/cgroup`.
pub fn place(
    spec: &mut Spec,
    systemd: bool,
    podshim_systemd: bool,
    mode: Mode,
    own: &str,
) -> Result<(), ShimError> {
    let Some(mut linux) = spec.linux().clone() else {
        return Ok(());
    };
    let Some(given) = linux
        .cgroups_path()
        .as_ref()
        .map(|p| p.display().to_string())
    else {
        return Ok(());
    };
    if given.is_empty() {
        return Ok(());
    }
    if systemd {
        if is_systemd_path(&given) {
            return Ok(());
        }
        // runc's own refusal (libcontainer/specconv).
        return Err(ShimError::Invalid(format!(
            "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups \
             (SystemdCgroup = true in the runtime's options), got {given:?} instead"
        )));
    }
    if podshim_systemd && is_systemd_path(&given) {
        return Ok(());
    }
    let placed = cgroupfs_place(&given, mode, own)?;
    linux.set_cgroups_path(Some(placed));
    spec.set_linux(Some(linux));
    Ok(())
}

/// runc's cgroupfs reading of `given` (see the module's doc), as one path from every hierarchy's
/// root, or why there is none.
pub fn cgroupfs_place(given: &str, mode: Mode, own: &str) -> Result<PathBuf, ShimError> {
    let inner = clean(given);
    if given.starts_with('/') {
        return Ok(Path::new("/").join(inner));
    }
    let bases = bases(mode, own);
    let Some((_, first)) = bases.first() else {
        return Err(ShimError::Invalid(format!(
            "cgroupsPath {given:?} is relative to the shim's own cgroup, and /proc/self/cgroup \
             names none"
        )));
    };
    if let Some((ctl, other)) = bases.iter().find(|(_, b)| b != first) {
        return Err(ShimError::Invalid(format!(
            "cgroupsPath {given:?} is relative: with the cgroupfs driver runc places it below \
             its own cgroup in each hierarchy, which differ here ({} in {}, {other} in {ctl}), \
             and podshim gives all hierarchies one path; set SystemdCgroup = true in the \
             runtime's options (a systemd-form path is then laid out as systemd would) or send \
             an absolute cgroupsPath",
            first, bases[0].0
        )));
    }
    Ok(Path::new(first).join(inner))
}

/// The base of a relative path per hierarchy (controllers, base): every v1 hierarchy with a
/// controller (named ones such as `name=systemd` hold none and the engine does not use them);
/// on a v2-only host the parent of this process's cgroup, since processes cannot sit in a v2
/// cgroup that has children with controllers (runc: the "no internal processes" rule).
fn bases(mode: Mode, own: &str) -> Vec<(String, String)> {
    own.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            Some((f.next()?, f.next()?, f.next()?))
        })
        .filter_map(|(id, ctls, path)| match mode {
            Mode::Unified if id == "0" => Some((
                "cgroup2".to_string(),
                Path::new(path)
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .display()
                    .to_string(),
            )),
            Mode::Legacy | Mode::Hybrid
                if id != "0" && ctls.split(',').any(|c| !c.starts_with("name=")) =>
            {
                Some((ctls.to_string(), path.to_string()))
            }
            _ => None,
        })
        .collect()
}

/// runc's `CleanPath` of a path, without its leading `/`: `.` and empty components dropped, `..`
/// taking one back but never above the start.
fn clean(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// This process's `/proc/self/cgroup` and the host's cgroup mode.
pub fn own_cgroups() -> Result<(Mode, String), ShimError> {
    let mode = Cgroups::detect()
        .map_err(|e| ShimError::Engine(e.into()))?
        .mode;
    let own = std::fs::read_to_string("/proc/self/cgroup")
        .map_err(ShimError::io("read", "/proc/self/cgroup"))?;
    Ok((mode, own))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_MIXED: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/x\n\
                                2:cpu,cpuacct:/\n0::/\n";
    const HYBRID_SAME: &str = "9:name=systemd:/\n8:pids:/c.service\n4:memory:/c.service\n0::/\n";

    #[test]
    fn runc_options_say_which_driver() {
        assert!(!systemd_option(None).unwrap());
        let mut o = RuncOptions::new();
        o.systemd_cgroup = true;
        let mut any = Any::new();
        any.type_url = "containerd.runc.v1.Options".into();
        any.value = o.write_to_bytes().unwrap();
        assert!(systemd_option(Some(&any)).unwrap());
        any.value = RuncOptions::new().write_to_bytes().unwrap();
        assert!(!systemd_option(Some(&any)).unwrap());
        // The CRI's options for a runtime that is not runc carry no driver.
        any.type_url = "runtimeoptions.v1.Options".into();
        any.value = vec![0x12, 1, b'x'];
        assert!(!systemd_option(Some(&any)).unwrap());
    }

    #[test]
    fn absolute_paths_are_from_every_root_cleaned() {
        let p = cgroupfs_place("/a/../../b/./c", Mode::Hybrid, HYBRID_MIXED).unwrap();
        assert_eq!(p, Path::new("/b/c"));
        // A colon in an absolute path is part of a name.
        let p = cgroupfs_place("/x.slice:p:n", Mode::Hybrid, HYBRID_MIXED).unwrap();
        assert_eq!(p, Path::new("/x.slice:p:n"));
    }

    #[test]
    fn relative_paths_are_below_the_own_cgroup() {
        let p = cgroupfs_place("t.slice:podshim:sd", Mode::Hybrid, HYBRID_SAME).unwrap();
        assert_eq!(p, Path::new("/c.service/t.slice:podshim:sd"));
        let p = cgroupfs_place("../../a", Mode::Legacy, "3:memory:/\n").unwrap();
        assert_eq!(p, Path::new("/a"));
        // v2: below the parent of the own cgroup.
        let p = cgroupfs_place("t.slice:p:n", Mode::Unified, "0::/system.slice/c.service\n");
        assert_eq!(p.unwrap(), Path::new("/system.slice/t.slice:p:n"));
    }

    #[test]
    fn differing_bases_are_refused_naming_the_option() {
        let e = cgroupfs_place("t.slice:podshim:sd", Mode::Hybrid, HYBRID_MIXED)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SystemdCgroup = true"), "{e}");
        assert!(e.contains("/process_api/x in memory"), "{e}");
    }

    #[test]
    fn the_systemd_driver_wants_the_systemd_form() {
        let mut spec = Spec::default();
        let mut linux = spec.linux().clone().unwrap();
        linux.set_cgroups_path(Some("/a/b".into()));
        spec.set_linux(Some(linux));
        let e = place(&mut spec, true, false, Mode::Hybrid, HYBRID_SAME).unwrap_err();
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
    }
}
