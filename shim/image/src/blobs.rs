//! Content-addressed blobs under `images/blobs/sha256/<hex>`: written to a temporary file,
//! verified against digest and size while copying, fsynced, then renamed into place.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use super::error::ImageError;
use super::reference::valid_digest;

/// Returns the hex part of a `sha256:<hex>` digest, refusing anything else (digests come from
/// untrusted JSON and become file names).
pub fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    if valid_digest(digest) {
        Ok(&digest["sha256:".len()..])
    } else {
        Err(ImageError::UnsupportedDigest {
            digest: digest.to_string(),
        })
    }
}

/// A unique name for a temporary file or directory of this process.
pub fn temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        ".tmp-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A reader that hashes and counts what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Reads what is left, then returns (`sha256:<hex>`, bytes read).
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
    tmp: PathBuf,
}

impl Blobs {
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Blobs { dir, tmp }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.dir.join(digest_hex(digest)?))
    }

    pub fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.path(digest)?;
        fs::read(&path).map_err(|e| ImageError::io("read blob", path, e))
    }

    /// Copies a blob whose digest and size are known, verifying both. Returns the stored path
    /// when this call created it (for rollback), `None` when it was already present.
    pub fn put(
        &self,
        reader: impl Read,
        digest: &str,
        size: u64,
    ) -> Result<Option<PathBuf>, ImageError> {
        let dest = self.path(digest)?;
        if dest.is_file() {
            return Ok(None);
        }
        // One byte more than announced is enough to detect an oversized blob.
        let (tmp, actual, actual_size) = self.write_temp(reader.take(size.saturating_add(1)))?;
        let mismatch = if actual_size != size {
            Some(ImageError::SizeMismatch {
                digest: digest.to_string(),
                expected: size,
                actual: actual_size,
            })
        } else if actual != digest {
            Some(ImageError::DigestMismatch {
                digest: digest.to_string(),
                actual,
            })
        } else {
            None
        };
        if let Some(err) = mismatch {
            let _ = fs::remove_file(&tmp);
            return Err(err);
        }
        self.commit(&tmp, &dest)?;
        Ok(Some(dest))
    }

    /// Copies a blob whose digest is not known in advance (docker-archive files), checking it
    /// against `expected` when given; returns (digest, size, path if created).
    pub fn put_unknown(
        &self,
        reader: impl Read,
        expected: Option<&str>,
    ) -> Result<(String, u64, Option<PathBuf>), ImageError> {
        let (tmp, digest, size) = self.write_temp(reader)?;
        if let Some(expected) = expected.filter(|e| *e != digest) {
            let _ = fs::remove_file(&tmp);
            return Err(ImageError::DigestMismatch {
                digest: expected.to_string(),
                actual: digest,
            });
        }
        let dest = self.path(&digest)?;
        if dest.is_file() {
            let _ = fs::remove_file(&tmp);
            return Ok((digest, size, None));
        }
        self.commit(&tmp, &dest)?;
        Ok((digest, size, Some(dest)))
    }

    /// Stores bytes already in memory (a synthesized manifest).
    pub fn put_bytes(
        &self,
        bytes: &[u8],
        expected: Option<&str>,
    ) -> Result<(String, Option<PathBuf>), ImageError> {
        let (digest, _, created) = self.put_unknown(bytes, expected)?;
        Ok((digest, created))
    }

    /// Moves a temporary file whose content the caller verified against `digest` into place.
    /// Returns the stored path when this call created it, `None` when it was already present.
    pub fn adopt(&self, tmp: &Path, digest: &str) -> Result<Option<PathBuf>, ImageError> {
        let dest = self.path(digest)?;
        if dest.is_file() {
            let _ = fs::remove_file(tmp);
            return Ok(None);
        }
        self.commit(tmp, &dest)?;
        Ok(Some(dest))
    }

    fn write_temp(&self, reader: impl Read) -> Result<(PathBuf, String, u64), ImageError> {
        let tmp = self.tmp.join(temp_name("blob"));
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let mut hashing = HashingReader::new(reader);
            io::copy(&mut hashing, &mut file)?;
            file.flush()?;
            file.sync_all()?;
            hashing.finish()
        })();
        match result {
            Ok((digest, size)) => Ok((tmp, digest, size)),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(ImageError::io("write blob", tmp, e))
            }
        }
    }

    fn commit(&self, tmp: &Path, dest: &Path) -> Result<(), ImageError> {
        fs::rename(tmp, dest).map_err(|e| {
            let _ = fs::remove_file(tmp);
            ImageError::io("store blob", dest, e)
        })?;
        sync_dir(&self.dir)
    }
}

/// fsyncs a directory so a rename into it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io("sync", dir, e))
}
