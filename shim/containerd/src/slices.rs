//! The `.slice` parents of a container whose `cgroupsPath` is in the systemd driver's form
//! (`slice:prefix:name`) on a host whose cgroups are not systemd's: the engine lays the path out
//! as systemd would (`/a.slice/a-b.slice/prefix-name.scope`), and libcontainer makes the
//! parents on the way but removes only the container's own cgroup. The shim removes the parents
//! it caused to exist, when the container is deleted (or its create fails), so a task leaves no
//! cgroup behind. They are recorded in the bundle (`podshim-slices.json`, written whole by a
//! rename) before the create makes them, so that `delete` after a SIGKILLed shim removes them
//! too: only directories that did not exist are recorded, and only empty ones are removed.

use std::io::Write;
use std::path::{Path, PathBuf};

use podshim_engine::cgroups::{is_systemd_path, Cgroups, Driver};

/// Where in the bundle the directories are recorded.
pub const RECORD: &str = "podshim-slices.json";

/// The parent directories a container's create is about to make, in every hierarchy, and the
/// record of them once written.
#[derive(Debug, Default)]
pub struct MadeSlices(Vec<PathBuf>, Option<PathBuf>);

impl MadeSlices {
    /// `given` is the spec's `cgroupsPath` as containerd sent it, `laid_out` the path the
    /// engine uses for it. Parents that exist already (another container's slice) are not ours.
    pub fn before_create(given: Option<&str>, laid_out: &str) -> Self {
        if !given.is_some_and(is_systemd_path) || Driver::current() != Driver::Cgroupfs {
            return MadeSlices::default();
        }
        let Ok(cgroups) = Cgroups::detect() else {
            return MadeSlices::default();
        };
        let mut dirs = Vec::new();
        for h in &cgroups.hierarchies {
            let mut parent = Path::new(laid_out).parent();
            while let Some(rel) = parent.filter(|r| {
                r.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".slice"))
            }) {
                let dir = h.mount.join(rel.strip_prefix("/").unwrap_or(rel));
                if !dir.exists() {
                    dirs.push(dir);
                }
                parent = rel.parent();
            }
        }
        // Deepest first, for the removal.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        MadeSlices(dirs, None)
    }

    /// Record them in `bundle`, before the create makes them: a temporary file renamed over
    /// the record, so a crash leaves the whole list or none (and then nothing was made).
    pub fn record(&mut self, bundle: &Path) -> std::io::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let path = bundle.join(RECORD);
        let tmp = bundle.join(format!(".{RECORD}.tmp"));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(&self.0)?)?;
        drop(f);
        std::fs::rename(&tmp, &path)?;
        self.1 = Some(path);
        Ok(())
    }

    /// The directories recorded in `bundle` by a shim that is gone (none without a record).
    pub fn load(bundle: &Path) -> Self {
        let path = bundle.join(RECORD);
        let dirs = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        MadeSlices(dirs, Some(path))
    }

    /// Remove them, deepest first. One another container has come to use meanwhile holds that
    /// container's cgroup and stays, as do its parents. The record goes with them: the
    /// container is gone for good.
    pub fn remove(&self) {
        for dir in &self.0 {
            remove_when_empty(dir);
        }
        if let Some(record) = &self.1 {
            let _ = std::fs::remove_file(record);
        }
    }
}

/// rmdir `dir`. A cgroup whose last child was removed a moment ago (or whose last process is
/// still exiting) refuses for a little while with EBUSY although it has no child left: that
/// is waited out (up to a second); a child directory means it is in use, and it stays.
fn remove_when_empty(dir: &Path) {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Err(e) if e.raw_os_error() == Some(libc_ebusy()) && !has_subdir(dir) => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => return,
        }
    }
}

fn libc_ebusy() -> i32 {
    nix::errno::Errno::EBUSY as i32
}

fn has_subdir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| {
        entries.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| t.is_dir())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_systemd_form_has_parents_to_remove() {
        let none = MadeSlices::before_create(Some("/podshim-test/c1"), "/podshim-test/c1");
        assert!(none.0.is_empty());
        let none = MadeSlices::before_create(None, "");
        assert!(none.0.is_empty());
    }

    #[test]
    fn the_record_round_trips_and_goes_with_the_directories() {
        let dir = std::env::temp_dir().join(format!("podshim-slices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = dir.join("a.slice/a-b.slice");
        let mut slices = MadeSlices(vec![made.clone(), dir.join("a.slice")], None);
        slices.record(&dir).unwrap();
        std::fs::create_dir_all(&made).unwrap();
        let loaded = MadeSlices::load(&dir);
        assert_eq!(loaded.0, slices.0);
        loaded.remove();
        assert!(!dir.join("a.slice").exists() && !dir.join(RECORD).exists());
        // Nothing recorded: no file.
        MadeSlices::default().record(&dir).unwrap();
        assert!(!dir.join(RECORD).exists());
        std::fs::remove_dir(&dir).unwrap();
    }
}
