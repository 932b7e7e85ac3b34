//! `hostPath` volumes: the kubelet's type checks (`pkg/volume/hostpath` `checkType`) with its
//! messages, and the `DirectoryOrCreate`/`FileOrCreate` creation (0755 directories with their
//! parents; 0644 files, whose parent must exist, as the Kubernetes docs note). A hostPath is the
//! host's: it outlives the Pod and is never removed by teardown.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What exists at `path`, as the checks need it.
fn kind(path: &Path) -> Option<fs::FileType> {
    fs::metadata(path).ok().map(|m| m.file_type())
}

/// Check `path` against `type_` (creating it for the `…OrCreate` types when it is missing).
/// The error is the kubelet's text after `MountVolume.SetUp failed for volume "<name>" : `.
pub fn prepare(path: &Path, type_: &str, create: bool) -> Result<(), String> {
    let p = path.display();
    let k = kind(path);
    let failed = |what: &str| format!("hostPath type check failed: {p} is not {what}");
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if k.is_none() => {
            if create {
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(path)
                    .map_err(|e| format!("mkdir {p}: {e}"))?;
            }
            Ok(())
        }
        "FileOrCreate" if k.is_none() => {
            if create {
                OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o644)
                    .open(path)
                    .map_err(|e| format!("open {p}: {e}"))?;
            } else if !path.parent().is_some_and(Path::is_dir) {
                return Err(format!(
                    "open {p}: no such file or directory (FileOrCreate does not create the \
                     parent directory)"
                ));
            }
            Ok(())
        }
        "Directory" | "DirectoryOrCreate" if !k.is_some_and(|k| k.is_dir()) => {
            Err(failed("a directory"))
        }
        "File" | "FileOrCreate" if !k.is_some_and(|k| k.is_file()) => Err(failed("a file")),
        "Socket" if !k.is_some_and(|k| k.is_socket()) => Err(failed("a socket file")),
        "CharDevice" if !k.is_some_and(|k| k.is_char_device()) => Err(failed("a character device")),
        "BlockDevice" if !k.is_some_and(|k| k.is_block_device()) => Err(failed("a block device")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_checked_with_the_kubelets_words_and_created_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("f"), "x").unwrap();
        assert_eq!(prepare(&d.join("f"), "File", false), Ok(()));
        assert_eq!(prepare(d, "Directory", false), Ok(()));
        assert_eq!(prepare(&d.join("none"), "", false), Ok(()));
        assert_eq!(
            prepare(&d.join("f"), "Directory", false).unwrap_err(),
            format!(
                "hostPath type check failed: {}/f is not a directory",
                d.display()
            )
        );
        assert!(prepare(d, "FileOrCreate", false)
            .unwrap_err()
            .ends_with("is not a file"));
        assert!(prepare(&d.join("f"), "Socket", false)
            .unwrap_err()
            .ends_with("is not a socket file"));
        assert!(prepare(Path::new("/dev/null"), "CharDevice", false).is_ok());
        assert!(prepare(Path::new("/dev/null"), "BlockDevice", false)
            .unwrap_err()
            .ends_with("is not a block device"));
        // Creation: a directory with its parents, a file only in an existing directory.
        assert_eq!(prepare(&d.join("a/b"), "DirectoryOrCreate", true), Ok(()));
        assert!(d.join("a/b").is_dir());
        assert_eq!(prepare(&d.join("a/new"), "FileOrCreate", true), Ok(()));
        assert!(d.join("a/new").is_file());
        assert!(prepare(&d.join("x/y"), "FileOrCreate", false).is_err());
        assert!(prepare(&d.join("x/y"), "FileOrCreate", true).is_err());
    }
}
