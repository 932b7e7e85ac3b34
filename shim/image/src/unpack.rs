//! Unpacks one layer blob into a directory usable as an overlayfs lower layer: OCI whiteouts
//! become overlay whiteouts, metadata is preserved, and no entry can write outside the directory.
//!
//! Containment: entry paths are made relative (a leading `/` is dropped) and `..` is refused;
//! every parent of an entry is checked with `lstat` to be a real directory (never a symlink), so
//! a symlink planted by an earlier entry cannot redirect a later one. The directory being filled
//! is private to this process until renamed into place, so these checks cannot be raced.

use std::ffi::OsStr;
use std::fs::{self, File, FileTimes, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime};

use flate2::read::MultiGzDecoder;
use nix::fcntl::AtFlags;
use nix::sys::stat::{makedev, mknod, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, Gid, Uid};

use super::blobs::HashingReader;
use super::error::ImageError;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// RFC 8878: a zstd frame starts with 0xFD2FB528, little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// overlayfs(5): a directory with this xattr set to "y" hides the lower directories' contents.
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Overlay xattrs coming from an image would let it forge whiteouts, redirects or metacopy
/// files in the container's overlay, so they are dropped; podshim writes its own.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Unpacks `blob` (a tar, plain, gzip or zstd) into `dest` (which must not exist yet),
/// verifying that the uncompressed stream hashes to `diff_id`. On error `dest` may be left partially filled; the caller removes it.
pub fn unpack_layer(
    blob: &Path,
    media_type: &str,
    blob_digest: &str,
    diff_id: &str,
    dest: &Path,
) -> Result<(), ImageError> {
    if !layer_media_type_supported(media_type) {
        return Err(ImageError::UnsupportedMediaType {
            digest: blob_digest.to_string(),
            media_type: media_type.to_string(),
        });
    }
    let file = File::open(blob).map_err(|e| ImageError::io("open layer blob", blob, e))?;
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let magic = reader
        .fill_buf()
        .map_err(|e| ImageError::io("read layer blob", blob, e))?;
    // Detect by magic bytes rather than trusting the media type (docker archives say nothing);
    // a `+zstd`/`+gzip` media type on content that is not is caught by the diff_id check.
    let stream: Box<dyn Read> = if magic.starts_with(&GZIP_MAGIC) {
        Box::new(MultiGzDecoder::new(reader))
    } else if magic.starts_with(&ZSTD_MAGIC) {
        let decoder = zstd::stream::read::Decoder::with_buffer(reader)
            .map_err(|e| ImageError::io("read layer blob", blob, e))?;
        Box::new(decoder)
    } else {
        Box::new(reader)
    };
    fs::DirBuilder::new()
        .mode(0o755)
        .create(dest)
        .map_err(|e| ImageError::io("create layer directory", dest, e))?;

    let mut archive = tar::Archive::new(HashingReader::new(stream));
    let mut unpacker = Unpacker {
        root: dest,
        layer: diff_id,
        dirs: Vec::new(),
    };
    let read_err = |e| ImageError::io("read layer", blob, e);
    for entry in archive.entries().map_err(read_err)? {
        unpacker.entry(entry.map_err(read_err)?)?;
    }
    unpacker.finish_dirs()?;
    let (actual, _) = archive.into_inner().finish().map_err(read_err)?;
    if actual != diff_id {
        return Err(ImageError::DiffIdMismatch {
            diff_id: diff_id.to_string(),
            actual,
        });
    }
    Ok(())
}

/// Tar layers, plain, gzip or zstd, OCI or docker, distributable or not; not encrypted or
/// other artifacts. An empty media type (docker archives) is a tar by definition.
fn layer_media_type_supported(media_type: &str) -> bool {
    media_type.is_empty()
        || (media_type.contains(".tar")
            && [".tar", "+gzip", ".gzip", "+zstd"]
                .iter()
                .any(|suffix| media_type.ends_with(suffix)))
}

/// The metadata of one entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

struct DirMeta {
    rel: PathBuf,
    mode: u32,
    mtime: (i64, u32),
}

struct Unpacker<'a> {
    root: &'a Path,
    layer: &'a str,
    /// Directory modes and mtimes, applied after everything else so that writing the contents
    /// neither fails on a read-only directory nor bumps its mtime.
    dirs: Vec<DirMeta>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<R>) -> Result<(), ImageError> {
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let meta = self.meta(&mut entry, &name)?;
        let path = entry.path().map_err(|e| self.err(&name, e))?.into_owned();
        let Some(rel) = self.relative(&path, &name)? else {
            // The layer root itself ("./").
            if kind.is_dir() {
                self.chown(self.root, &meta, &name)?;
                self.dirs.push(DirMeta {
                    rel: PathBuf::new(),
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            return Ok(());
        };
        let file_name = rel.file_name().map(OsStr::as_bytes).unwrap_or_default();
        let file_name = String::from_utf8_lossy(file_name).into_owned();

        if file_name == OPAQUE_MARKER {
            let parent = self.parents(&rel, &name)?;
            return self.set_xattr(&parent, OVERLAY_OPAQUE_XATTR.as_bytes(), b"y", &name);
        }
        if file_name.starts_with(".wh..wh.") {
            // AUFS bookkeeping (e.g. `.wh..wh.plnk`), meaningless for overlayfs.
            return Ok(());
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(self.unsafe_entry(&name, "is a whiteout without a valid name"));
            }
            let parent = self.parents(&rel, &name)?;
            let target = parent.join(hidden);
            self.remove_existing(&target, false, &name)?;
            mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| self.err(&name, e.into()))?;
            return self.chown(&target, &meta, &name);
        }

        let parent = self.parents(&rel, &name)?;
        let target = parent.join(rel.file_name().unwrap_or_default());
        match kind {
            tar::EntryType::Directory => {
                let exists = self.remove_existing(&target, true, &name)?;
                if !exists {
                    fs::DirBuilder::new()
                        .mode(0o700)
                        .create(&target)
                        .map_err(|e| self.err(&name, e))?;
                }
                self.chown(&target, &meta, &name)?;
                for (key, value) in &meta.xattrs {
                    self.set_xattr(&target, key, value, &name)?;
                }
                self.dirs.push(DirMeta {
                    rel,
                    mode: meta.mode,
                    mtime: meta.mtime,
                });
            }
            tar::EntryType::Symlink => {
                let link = self.link_name(&entry, &name)?;
                self.remove_existing(&target, false, &name)?;
                std::os::unix::fs::symlink(&link, &target).map_err(|e| self.err(&name, e))?;
                self.chown(&target, &meta, &name)?;
                self.set_mtime(&target, meta.mtime, &name)?;
            }
            tar::EntryType::Link => {
                let link = self.link_name(&entry, &name)?;
                let Some(link_rel) = self.relative(&link, &name)? else {
                    return Err(self.unsafe_entry(&name, "is a hard link to the layer root"));
                };
                let source = self.existing(&link_rel, &name)?;
                if source != target {
                    self.remove_existing(&target, false, &name)?;
                    // linkat(2) without AT_SYMLINK_FOLLOW: a link to a symlink links the
                    // symlink itself, never what it points to.
                    fs::hard_link(&source, &target).map_err(|e| self.err(&name, e))?;
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (flag, dev) = match kind {
                    tar::EntryType::Char => (SFlag::S_IFCHR, self.device(&entry, &name)?),
                    tar::EntryType::Block => (SFlag::S_IFBLK, self.device(&entry, &name)?),
                    _ => (SFlag::S_IFIFO, 0),
                };
                self.remove_existing(&target, false, &name)?;
                mknod(&target, flag, Mode::empty(), dev).map_err(|e| self.err(&name, e.into()))?;
                self.chown(&target, &meta, &name)?;
                fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode))
                    .map_err(|e| self.err(&name, e))?;
                for (key, value) in &meta.xattrs {
                    self.set_xattr(&target, key, value, &name)?;
                }
                self.set_mtime(&target, meta.mtime, &name)?;
            }
            // POSIX: an unknown type flag is treated as a regular file (as are contiguous and
            // sparse files, which the tar crate expands while reading).
            _ => self.regular(&mut entry, &target, &meta, &name)?,
        }
        Ok(())
    }

    fn regular<R: Read>(
        &self,
        entry: &mut tar::Entry<R>,
        target: &Path,
        meta: &Meta,
        name: &str,
    ) -> Result<(), ImageError> {
        self.remove_existing(target, false, name)?;
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(target)
            .map_err(|e| self.err(name, e))?;
        io::copy(entry, &mut file).map_err(|e| self.err(name, e))?;
        // Owner first: chown(2) clears set-user-ID and set-group-ID bits.
        nix::unistd::fchown(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| self.err(name, e.into()))?;
        file.set_permissions(fs::Permissions::from_mode(meta.mode))
            .map_err(|e| self.err(name, e))?;
        for (key, value) in &meta.xattrs {
            if let Err(e) = xattr::FileExt::set_xattr(&file, OsStr::from_bytes(key), value) {
                if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
                    return Err(self.err(name, e));
                }
            }
        }
        let time = SystemTime::UNIX_EPOCH
            + Duration::new(u64::try_from(meta.mtime.0).unwrap_or(0), meta.mtime.1);
        file.set_times(FileTimes::new().set_accessed(time).set_modified(time))
            .map_err(|e| self.err(name, e))
    }

    /// Applies directory modes and mtimes in archive order (a repeated directory entry wins),
    /// skipping any directory that a later entry replaced.
    fn finish_dirs(&mut self) -> Result<(), ImageError> {
        for dir in &self.dirs {
            let name = dir.rel.display().to_string();
            if !self.is_contained_dir(&dir.rel) {
                continue;
            }
            let path = self.root.join(&dir.rel);
            fs::set_permissions(&path, fs::Permissions::from_mode(dir.mode))
                .map_err(|e| self.err(&name, e))?;
            self.set_mtime(&path, dir.mtime, &name)?;
        }
        Ok(())
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<R>, name: &str) -> Result<Meta, ImageError> {
        let header = entry.header();
        let bad_header = |_| self.unsafe_entry(name, "has an unreadable header");
        let mut meta = Meta {
            mode: header.mode().map_err(bad_header)? & 0o7777,
            uid: u32::try_from(header.uid().map_err(bad_header)?).unwrap_or(u32::MAX),
            gid: u32::try_from(header.gid().map_err(bad_header)?).unwrap_or(u32::MAX),
            mtime: (
                i64::try_from(header.mtime().map_err(bad_header)?).unwrap_or(0),
                0,
            ),
            xattrs: Vec::new(),
        };
        let Some(extensions) = entry.pax_extensions().map_err(|e| self.err(name, e))? else {
            return Ok(meta);
        };
        for ext in extensions {
            let ext = ext.map_err(|e| self.err(name, e))?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            let text = std::str::from_utf8(value).unwrap_or_default();
            match key {
                b"uid" => meta.uid = text.parse().unwrap_or(meta.uid),
                b"gid" => meta.gid = text.parse().unwrap_or(meta.gid),
                b"mtime" => meta.mtime = parse_pax_time(text).unwrap_or(meta.mtime),
                _ => {
                    if let Some(attr) = key.strip_prefix(PAX_XATTR_PREFIX.as_bytes()) {
                        if !attr.starts_with(OVERLAY_XATTR_PREFIX.as_bytes()) {
                            meta.xattrs.push((attr.to_vec(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// The entry's path relative to the layer root; `None` for the root itself.
    fn relative(&self, path: &Path, name: &str) -> Result<Option<PathBuf>, ImageError> {
        let mut rel = PathBuf::new();
        for component in path.components() {
            match component {
                Component::Normal(part) => rel.push(part),
                // Absolute names are taken relative to the layer root, as docker does.
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    return Err(self.unsafe_entry(name, "has a '..' path component"))
                }
            }
        }
        Ok((!rel.as_os_str().is_empty()).then_some(rel))
    }

    /// Creates the missing parents of `rel` and returns the parent's absolute path, refusing
    /// any parent that is not a real directory (a symlink could lead outside the layer).
    fn parents(&self, rel: &Path, name: &str) -> Result<PathBuf, ImageError> {
        let mut current = self.root.to_path_buf();
        let Some(parent) = rel.parent() else {
            return Ok(current);
        };
        for component in parent.components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self
                        .unsafe_entry(name, "has a parent that is a symlink or not a directory"))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&current)
                        .map_err(|e| self.err(name, e))?;
                }
                Err(e) => return Err(self.err(name, e)),
            }
        }
        Ok(current)
    }

    /// The absolute path of an existing non-directory reached through real directories only
    /// (the source of a hard link).
    fn existing(&self, rel: &Path, name: &str) -> Result<PathBuf, ImageError> {
        let Some(parent) = rel.parent() else {
            return Err(self.unsafe_entry(name, "links to the layer root"));
        };
        if !self.is_contained_dir(parent) {
            return Err(self.unsafe_entry(name, "links through a symlink or a missing directory"));
        }
        let path = self.root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if !m.is_dir() => Ok(path),
            Ok(_) => Err(self.unsafe_entry(name, "is a hard link to a directory")),
            Err(_) => Err(self.unsafe_entry(name, "links to a file that is not in the layer")),
        }
    }

    fn is_contained_dir(&self, rel: &Path) -> bool {
        let mut current = self.root.to_path_buf();
        for component in rel.components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(m) if m.is_dir() => {}
                _ => return false,
            }
        }
        true
    }

    /// Removes what is at `path` (a later entry replaces an earlier one). Keeps a directory
    /// when `keep_dir`; returns whether a directory was kept.
    fn remove_existing(&self, path: &Path, keep_dir: bool, name: &str) -> Result<bool, ImageError> {
        let result = match fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => Err(e),
            Ok(m) if m.is_dir() && keep_dir => return Ok(true),
            Ok(m) if m.is_dir() => fs::remove_dir_all(path),
            Ok(_) => fs::remove_file(path),
        };
        result.map(|()| false).map_err(|e| self.err(name, e))
    }

    fn link_name<R: Read>(&self, entry: &tar::Entry<R>, name: &str) -> Result<PathBuf, ImageError> {
        match entry.link_name().map_err(|e| self.err(name, e))? {
            Some(link) if !link.as_os_str().is_empty() => Ok(link.into_owned()),
            _ => Err(self.unsafe_entry(name, "is a link without a target")),
        }
    }

    fn device<R: Read>(&self, entry: &tar::Entry<R>, name: &str) -> Result<u64, ImageError> {
        let header = entry.header();
        let bad = |_| self.unsafe_entry(name, "has an unreadable device number");
        let major = header.device_major().map_err(bad)?.unwrap_or(0);
        let minor = header.device_minor().map_err(bad)?.unwrap_or(0);
        Ok(makedev(major.into(), minor.into()))
    }

    fn chown(&self, path: &Path, meta: &Meta, name: &str) -> Result<(), ImageError> {
        fchownat(
            None,
            path,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(name, e.into()))
    }

    fn set_mtime(&self, path: &Path, mtime: (i64, u32), name: &str) -> Result<(), ImageError> {
        let time = TimeSpec::new(mtime.0, i64::from(mtime.1));
        utimensat(None, path, &time, &time, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| self.err(name, e.into()))
    }

    /// `path` is a directory or device checked by the caller, never a symlink.
    fn set_xattr(
        &self,
        path: &Path,
        key: &[u8],
        value: &[u8],
        name: &str,
    ) -> Result<(), ImageError> {
        match xattr::set(path, OsStr::from_bytes(key), value) {
            Err(e) if e.raw_os_error() != Some(libc::EOPNOTSUPP) => Err(self.err(name, e)),
            _ => Ok(()),
        }
    }

    fn err(&self, entry: &str, source: io::Error) -> ImageError {
        ImageError::Unpack {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            source,
        }
    }

    fn unsafe_entry(&self, entry: &str, reason: &'static str) -> ImageError {
        ImageError::UnsafeEntry {
            layer: self.layer.to_string(),
            entry: entry.to_string(),
            reason,
        }
    }
}

/// A PAX `mtime` ("1700000000.123456789") as (seconds, nanoseconds).
fn parse_pax_time(text: &str) -> Option<(i64, u32)> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let secs = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    let nanos = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    Some((secs, nanos))
}
