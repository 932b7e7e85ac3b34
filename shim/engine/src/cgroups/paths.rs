//! `linux.cgroupsPath` in either of its forms (cgroupfs, or the systemd driver's
//! `slice:prefix:name`) as a path from each hierarchy's root.

use super::*;

/// A `linux.cgroupsPath` as a path from each hierarchy's root: the cgroupfs form as it is; the
/// systemd driver's `slice:prefix:name` as systemd lays it out (`a-b.slice` nests in `a.slice`,
/// the unit is `prefix-name.scope`).
pub fn cgroupfs_path(path: &str) -> String {
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

/// Rewrite a spec's `linux.cgroupsPath` in the cgroupfs form and return it (empty when it has
/// none). libcontainer is driven with its cgroupfs manager, which would take the systemd
/// driver's `slice:prefix:name` (what containerd's CRI sends with `SystemdCgroup = true`) as one
/// directory name; laid out as systemd does, it is the same cgroup either driver would use.
pub fn cgroupfs_spec_path(spec: &mut Spec) -> String {
    let Some(mut linux) = spec.linux().clone() else {
        return String::new();
    };
    let Some(given) = linux.cgroups_path().clone() else {
        return String::new();
    };
    let path = cgroupfs_path(&given.display().to_string());
    if Path::new(&path) != given {
        linux.set_cgroups_path(Some(PathBuf::from(&path)));
        spec.set_linux(Some(linux));
    }
    path
}
