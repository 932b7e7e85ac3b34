//! Everything podshim writes is private to root (issue 11 §1): its data root, state directory
//! and log root are mode 0700 and owned by root, so no other host user can reach what lies below
//! them: image layers and writable layers (setuid binaries, device nodes an image or a container
//! brings), bundles, Secret volumes, specs and logs. The directories are made so when they are
//! created and tightened on every start, so an install made by an older podshim (0755) is closed
//! too. Below them, modes stay what a container needs (a layer's own modes, an emptyDir's 0777):
//! the kernel checks the modes of every directory on a path, so the top one is enough.
//!
//! containerd does the same (`/var/lib/containerd` and `/run/containerd` 0711, every plugin
//! directory below 0700); podshim needs no traversal by other users at all, so 0700 throughout.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mode of podshim's own directories.
pub const DIR_MODE: u32 = 0o700;
/// The mode of the state root and its `pods` directory while a Pod with its own user namespace
/// runs: others may pass through (no listing, no reading), as containerd's roots are 0711, so
/// that the Pod's root can reach its own directory, which is open to the Pod's group only
/// ([`open_to_group`]). The mode [`ensure_dir`] keeps as it is.
pub const TRAVERSE_MODE: u32 = 0o711;
/// The mode of files that hold specs, records or secrets.
pub const FILE_MODE: u32 = 0o600;

#[derive(Debug, thiserror::Error)]
#[error("cannot make {path} private to root ({what})")]
pub struct PrivateError {
    pub path: PathBuf,
    pub what: &'static str,
    #[source]
    pub source: io::Error,
}

/// Create `dir` (and missing parents) as 0700, or, when it exists, make it 0700 and owned by
/// root. A symlink is followed: `--root` may well be one, and only root can point it anywhere.
pub fn ensure_dir(dir: &Path) -> Result<(), PrivateError> {
    let err = |what| {
        move |source| PrivateError {
            path: dir.to_path_buf(),
            what,
            source,
        }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(err("create"))?;
    let meta = fs::metadata(dir).map_err(err("stat"))?;
    if meta.uid() != 0 || meta.gid() != 0 {
        // Another user owning it could open it again with chmod.
        std::os::unix::fs::chown(dir, Some(0), Some(0)).map_err(err("chown"))?;
    }
    let mode = meta.mode() & 0o7777;
    if mode != DIR_MODE && mode != TRAVERSE_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).map_err(err("chmod"))?;
    }
    Ok(())
}

/// Let others pass through `dir` (mode 0711), e.g. the state root, for a Pod with its own user
/// namespace (see [`TRAVERSE_MODE`]).
pub fn open_for_traversal(dir: &Path) -> io::Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(TRAVERSE_MODE))
}

/// Make `dir` (created if needed) root's, group `gid`'s with mode 0710: the group may pass
/// through it, nobody else may (a Pod's directories, to the Pod's root group in its own user
/// namespace, whose container processes reach their root filesystem and volumes through it).
pub fn open_to_group(dir: &Path, gid: u32) -> io::Result<()> {
    create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(0), Some(gid))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o710))
}

/// [`ensure_dir`] for a directory that exists; nothing is created.
pub fn tighten(dir: &Path) -> Result<(), PrivateError> {
    if dir.exists() {
        ensure_dir(dir)?;
    }
    Ok(())
}

/// Create `dir` and its missing parents as 0700 (an existing directory is left as it is: below
/// a private root its mode does not open anything).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Write `data` to a new or truncated file of mode 0600 (an existing file's mode is set too).
pub fn write_file(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    f.write_all(data)
}

/// Create (or truncate) a file of mode 0600 for writing, e.g. the temporary file of an atomic
/// write.
pub fn create_file(path: &Path) -> io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directories_are_created_and_tightened_to_0700() {
        let t = tempfile::tempdir().unwrap();
        let new = t.path().join("a/b");
        ensure_dir(&new).unwrap();
        for d in [t.path().join("a"), new.clone()] {
            assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700, "{d:?}");
        }
        let old = t.path().join("old");
        fs::create_dir(&old).unwrap();
        fs::set_permissions(&old, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&old).unwrap();
        assert_eq!(fs::metadata(&old).unwrap().mode() & 0o7777, 0o700);
        // Twice is fine.
        ensure_dir(&old).unwrap();
    }

    #[test]
    fn files_are_written_0600_even_over_an_open_one() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("config.json");
        fs::write(&p, b"old").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        write_file(&p, b"{}").unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(fs::read(&p).unwrap(), b"{}");
    }
}
