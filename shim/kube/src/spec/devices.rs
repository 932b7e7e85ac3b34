//! The host's devices, as a privileged container gets them (containerd's `WithDevices` over
//! `HostDevices`: every character and block device under `/dev`, with its mode and owner).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use libcontainer::oci_spec::runtime::{LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType};

/// Directories under `/dev` that are not the host's devices: the container gets its own
/// (`pts`, `shm`, `mqueue`) or they are links and runtime state.
const SKIP_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Every device node under `dir` (normally `/dev`), sorted by path; `console` is left out (the
/// container's console is its own), and nodes that vanish while being read are skipped.
pub fn host_devices(dir: &Path) -> Vec<LinuxDevice> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<LinuxDevice>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                walk(root, &e.path(), out);
            }
            continue;
        }
        if name == "console" {
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        let rdev = meta.rdev();
        let Ok(rel) = e.path().strip_prefix(root).map(Path::to_path_buf) else {
            continue;
        };
        let device = LinuxDeviceBuilder::default()
            .path(Path::new("/dev").join(rel))
            .typ(typ)
            .major(libc::major(rdev) as i64)
            .minor(libc::minor(rdev) as i64)
            .file_mode(meta.mode() & 0o7777)
            .uid(meta.uid())
            .gid(meta.gid())
            .build();
        out.extend(device.ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_dev_null_is_among_its_devices() {
        let devices = host_devices(Path::new("/dev"));
        let null = devices
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null");
        assert_eq!(
            (null.typ(), null.major(), null.minor()),
            (LinuxDeviceType::C, 1, 3)
        );
        assert!(devices.iter().all(|d| !d.path().starts_with("/dev/pts")));
        assert!(devices
            .iter()
            .all(|d| d.path() != Path::new("/dev/console")));
    }
}
