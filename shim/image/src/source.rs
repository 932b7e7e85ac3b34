//! Read access to what is being imported: an OCI layout directory or an (OCI or docker) archive
//! tar. A tar is indexed once (name → offset) so its files can be read in any order without
//! unpacking it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::error::ImageError;

/// The kind of image archive, from the files it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Oci,
    Docker,
}

#[derive(Debug)]
pub enum Source {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        files: HashMap<String, (u64, u64)>,
        links: HashMap<String, Link>,
    },
}

#[derive(Debug)]
pub enum Link {
    Hard(String),
    Sym(String),
}

/// The symlink hops followed when reading a file of an archive.
const MAX_LINK_HOPS: usize = 16;

impl Source {
    /// Opens `path`, a directory or an uncompressed tar (the caller decompresses gzip first).
    pub fn open(path: &Path) -> Result<Source, ImageError> {
        let meta = std::fs::metadata(path).map_err(|e| ImageError::io("read", path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
        let mut archive = tar::Archive::new(file);
        let mut files = HashMap::new();
        let mut links = HashMap::new();
        let bad = |e| ImageError::io("read the archive", path, e);
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let Some(name) = clean(&entry.path().map_err(bad)?) else {
                continue;
            };
            let kind = entry.header().entry_type();
            let link = || -> Result<String, ImageError> {
                let target = entry.link_name().map_err(bad)?.unwrap_or_default();
                Ok(target.to_string_lossy().into_owned())
            };
            if kind.is_file() || kind == tar::EntryType::Continuous {
                files.insert(name, (entry.raw_file_position(), entry.size()));
            } else if kind.is_hard_link() {
                links.insert(name, Link::Hard(link()?));
            } else if kind.is_symlink() {
                links.insert(name, Link::Sym(link()?));
            }
        }
        Ok(Source::Tar {
            path: path.to_path_buf(),
            files,
            links,
        })
    }

    pub fn format(&self, path: &Path) -> Result<Format, ImageError> {
        // Docker ≥ 25 writes both an OCI layout and manifest.json; the OCI side carries more
        // (io.containerd.image.name), so it wins when `oci-layout` is present.
        let oci = self.exists("oci-layout") && self.exists("index.json");
        if oci {
            Ok(Format::Oci)
        } else if self.exists("manifest.json") {
            Ok(Format::Docker)
        } else if self.exists("index.json") {
            Ok(Format::Oci)
        } else {
            Err(ImageError::UnknownFormat {
                path: path.to_path_buf(),
            })
        }
    }

    pub fn exists(&self, name: &str) -> bool {
        match self {
            Source::Dir(dir) => clean(Path::new(name)).is_some_and(|n| dir.join(n).is_file()),
            Source::Tar { .. } => self.resolve(name).is_ok(),
        }
    }

    /// Opens the file `name` (a path relative to the archive root; names come from untrusted
    /// JSON, so `..` and absolute paths never leave the archive).
    pub fn open_file(&self, name: &str) -> Result<Box<dyn Read + '_>, ImageError> {
        let missing = || ImageError::MissingFile {
            name: name.to_string(),
        };
        match self {
            Source::Dir(dir) => {
                let rel = clean(Path::new(name)).ok_or_else(missing)?;
                let path = dir.join(rel);
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => missing(),
                    _ => ImageError::io("open", &path, e),
                })?;
                Ok(Box::new(file))
            }
            Source::Tar { path, .. } => {
                let (offset, size) = self.resolve(name)?;
                let mut file = File::open(path).map_err(|e| ImageError::io("open", path, e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| ImageError::io("read", path, e))?;
                Ok(Box::new(file.take(size)))
            }
        }
    }

    pub fn read_all(&self, name: &str, limit: u64) -> Result<Vec<u8>, ImageError> {
        let mut buf = Vec::new();
        self.open_file(name)?
            .take(limit)
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io("read", name, e))?;
        Ok(buf)
    }

    /// Follows hard and symbolic links inside a tar to a regular file's (offset, size).
    fn resolve(&self, name: &str) -> Result<(u64, u64), ImageError> {
        let Source::Tar { files, links, .. } = self else {
            unreachable!("resolve is only called on tars");
        };
        let missing = || ImageError::MissingFile {
            name: name.to_string(),
        };
        let mut current = clean(Path::new(name)).ok_or_else(missing)?;
        for _ in 0..MAX_LINK_HOPS {
            if let Some(found) = files.get(&current) {
                return Ok(*found);
            }
            current = match links.get(&current).ok_or_else(missing)? {
                Link::Hard(target) => clean(Path::new(target)).ok_or_else(missing)?,
                Link::Sym(target) => {
                    let base = Path::new(&current).parent().unwrap_or(Path::new(""));
                    clean(&base.join(target)).ok_or_else(missing)?
                }
            };
        }
        Err(missing())
    }
}

/// A path inside an archive as a canonical relative string: no `.`, no leading `/`, `..`
/// resolved lexically and never above the root. `None` for the root itself.
pub fn clean(path: &Path) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_str()?),
            Component::ParentDir => {
                parts.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_links_are_followed_inside_the_archive() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut append = |name: &str, kind: tar::EntryType, link: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            builder.append_data(&mut h, name, data).unwrap();
        };
        append("./blobs/x", tar::EntryType::Regular, "", b"content");
        append("a/layer.tar", tar::EntryType::Symlink, "../blobs/x", b"");
        append("h", tar::EntryType::Link, "blobs/x", b"");
        append("loop", tar::EntryType::Symlink, "loop", b"");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.tar");
        std::fs::write(&path, builder.into_inner().unwrap()).unwrap();
        let source = Source::open(&path).unwrap();
        for name in ["blobs/x", "/blobs/x", "a/layer.tar", "h", "a/../h"] {
            assert_eq!(source.read_all(name, 100).unwrap(), b"content", "{name}");
        }
        assert!(matches!(
            source.open_file("loop"),
            Err(ImageError::MissingFile { .. })
        ));
        assert!(matches!(
            source.open_file("nope"),
            Err(ImageError::MissingFile { .. })
        ));
        assert!(matches!(
            source.format(&path),
            Err(ImageError::UnknownFormat { .. })
        ));
    }
}
