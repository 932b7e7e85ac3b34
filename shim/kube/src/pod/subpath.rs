//! `volumeMounts[].subPath` and `subPathExpr`, resolved as the kubelet resolves them
//! (`pkg/volume/util/subpath`): missing directories are made, symlinks inside the volume are
//! followed, and anything that resolves outside the volume (through `..` or a symlink, which a
//! container can plant in a shared volume) is refused. The resolved path is opened `O_PATH`,
//! checked again through the descriptor (so a swap after the check is caught), and bind-mounted
//! from the descriptor onto a staging point the container's mount then uses: the runtime never
//! walks the container-controlled path itself.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, MsFlags};

/// Why a subPath cannot be used (the kubelet reports these as `CreateContainerConfigError`).
#[derive(Debug, thiserror::Error)]
pub enum SubPathError {
    #[error("subpath {sub:?} not within volume path {volume:?}")]
    Escapes { sub: String, volume: PathBuf },
    #[error("subpath {sub:?} must be a relative path without '..'")]
    Invalid { sub: String },
    #[error("cannot {what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind {path}")]
    Mount {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SubPathError + 'a {
    move |source| SubPathError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Open `sub` inside `volume` (made as a directory when missing), refusing an escape.
pub fn open(volume: &Path, sub: &str) -> Result<(File, PathBuf), SubPathError> {
    let root = fs::canonicalize(volume).map_err(io("resolve", volume))?;
    let escapes = || SubPathError::Escapes {
        sub: sub.to_string(),
        volume: root.clone(),
    };
    let rel = Path::new(sub);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(SubPathError::Invalid {
            sub: sub.to_string(),
        });
    }
    // Walk down, resolving each step inside the volume and making what is missing.
    let mut at = root.clone();
    for c in rel.components() {
        let Component::Normal(name) = c else {
            continue;
        };
        let next = at.join(name);
        match fs::symlink_metadata(&next) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&next)
                    .map_err(io("create", &next))?;
            }
            Err(e) => return Err(io("inspect", &next)(e)),
        }
        let real = fs::canonicalize(&next).map_err(io("resolve", &next))?;
        if !real.starts_with(&root) {
            return Err(escapes());
        }
        at = real;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&at)
        .map_err(io("open", &at))?;
    // What the descriptor really is, whatever happened to the path since it was checked.
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    let opened = fs::read_link(&fd_path).map_err(io("resolve", &fd_path))?;
    if !opened.starts_with(&root) {
        return Err(escapes());
    }
    Ok((file, opened))
}

/// Bind what `file` (from [`open`]) is onto `target` (made as an empty directory or file to
/// match), through the descriptor.
pub fn bind(file: &File, target: &Path) -> Result<(), SubPathError> {
    let meta = file.metadata().map_err(io("inspect", target))?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(io("create", parent))?;
    }
    if !target.exists() {
        if meta.is_dir() {
            fs::create_dir(target).map_err(io("create", target))?;
        } else {
            File::create(target).map_err(io("create", target))?;
        }
    }
    let source = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    mount(
        Some(&source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|source| SubPathError::Mount {
        path: target.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subpaths_stay_in_the_volume() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        fs::create_dir_all(vol.join("data/inner")).unwrap();
        fs::write(vol.join("data/file"), "x").unwrap();
        std::os::unix::fs::symlink("inner", vol.join("data/link")).unwrap();
        std::os::unix::fs::symlink("/etc", vol.join("out")).unwrap();
        std::os::unix::fs::symlink("../..", vol.join("data/up")).unwrap();
        let root = fs::canonicalize(&vol).unwrap();

        let (_, p) = open(&vol, "data/file").unwrap();
        assert_eq!(p, root.join("data/file"));
        // A symlink inside the volume is followed.
        let (_, p) = open(&vol, "data/link").unwrap();
        assert_eq!(p, root.join("data/inner"));
        // Missing directories are made.
        let (_, p) = open(&vol, "new/deeper").unwrap();
        assert!(p.is_dir() && p.starts_with(&root));
        // Out through a symlink, absolute or relative: refused, and nothing made outside.
        for sub in ["out", "out/passwd", "data/up", "data/up/x"] {
            let e = open(&vol, sub).unwrap_err();
            assert!(matches!(e, SubPathError::Escapes { .. }), "{sub}: {e}");
        }
        assert!(!dir.path().join("x").exists());
        assert!(matches!(
            open(&vol, "../x").unwrap_err(),
            SubPathError::Invalid { .. }
        ));
        assert!(matches!(
            open(&vol, "/etc").unwrap_err(),
            SubPathError::Invalid { .. }
        ));
    }
}
