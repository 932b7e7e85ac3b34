//! `linux.cgroupsPath` in either of its forms (cgroupfs, or the systemd driver's
//! `slice:prefix:name`) as a path from each hierarchy's root.

use super::*;

/// A `linux.cgroupsPath` as a path from each hierarchy's root: the cgroupfs form as it is; the
/// systemd driver's `slice:prefix:name` as systemd lays it out (`a-b.slice` nests in `a.slice`,
/// the unit is `prefix-name.scope`).
pub fn cgroupfs_path(path: &str) -> String {
    if !super::is_systemd_path(path) {
        return path.to_string();
    }
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts[..] else {
        return path.to_string();
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    let mut out = String::new();
    let stem = slice.trim_end_matches(".slice");
    let mut acc = String::new();
    for (i, part) in stem.split('-').enumerate() {
        if i > 0 {
            acc.push('-');
        }
        acc.push_str(part);
        if acc != "-" {
            out.push_str(&format!("/{acc}.slice"));
        }
    }
    if stem == "-" || stem.is_empty() {
        out.clear();
    }
    let unit = if name.ends_with(".slice") || name.ends_with(".scope") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    format!("{out}/{unit}")
}

/// The cgroup of a spec's `linux.cgroupsPath` as a path from each hierarchy's root (empty when
/// it has none). With the cgroupfs driver, the systemd driver's `slice:prefix:name` (what
/// containerd's CRI sends with `SystemdCgroup = true`) is rewritten in the spec to the
/// cgroupfs form, laid out as systemd does, for libcontainer's cgroupfs manager, which would take
/// it as one directory name. With the systemd driver (see [`super::Driver`]) it stays as it is:
/// libcontainer's systemd manager then has systemd make the container's scope.
pub fn cgroupfs_spec_path(spec: &mut Spec) -> String {
    cgroupfs_spec_path_for(spec, super::Driver::current())
}

/// [`cgroupfs_spec_path`] under `driver`.
pub fn cgroupfs_spec_path_for(spec: &mut Spec, driver: super::Driver) -> String {
    let Some(mut linux) = spec.linux().clone() else {
        return String::new();
    };
    let Some(given) = linux.cgroups_path().clone() else {
        return String::new();
    };
    let given_text = given.display().to_string();
    let path = cgroupfs_path(&given_text);
    let keep = super::is_systemd_path(&given_text) && driver == super::Driver::Systemd;
    if !keep && Path::new(&path) != given {
        linux.set_cgroups_path(Some(PathBuf::from(&path)));
        spec.set_linux(Some(linux));
    }
    path
}
